//! Reading a member's media key from the to-device message Element Call
//! sends it in: `io.element.call.encryption_keys`, Olm-encrypted to every
//! device with a call membership (matrix-js-sdk's `ToDeviceKeyTransport`).
//!
//! Where it sits: the bot's background sync (`matrix/e2ee/`) hands every
//! to-device event matrix-sdk decrypted, with the Olm-authenticated sender
//! and device, to [`parse_key_event`] here; a valid [`KeyAnnouncement`]
//! goes into `MediaKeys` (`mod.rs`) for its room. A pure function.
//!
//! Decrypted content (`../shared/notes/element-call.md` §5.2):
//!
//! ```json
//! {"keys":{"index":0,"key":"<base64, 16 bytes>"},"room_id":"!r:hs",
//!  "member":{"claimed_device_id":"DEV","id":"<memberId>"},
//!  "session":{"call_id":"","application":"m.call","scope":"m.room"},"sent_ts":1700000000000}
//! ```
//!
//! The key is bound to the LiveKit identity `${sender}:${claimed_device_id}`
//! (Element Call's compatibility mode, the identity Salon's focus mints).
//! The sender and its device must be the ones Olm authenticated: a member
//! can only announce keys for its own device's media. Errors name the field
//! at fault, never its value, so a key never reaches a log.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;
use zeroize::Zeroizing;

use super::keys::KeyMaterial;

/// The to-device event type of media keys.
pub const EVENT_TYPE: &str = "io.element.call.encryption_keys";
/// The MatrixRTC application of calls (`session.application`).
const CALL_APPLICATION: &str = "m.call";
/// Longest device id taken (Synapse's own limit is lower).
const MAX_DEVICE_ID_LEN: usize = 255;

/// Standard base64, padded or not (matrix-js-sdk's `decodeBase64` takes both).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A member's media key, checked and bound to its LiveKit identity.
/// Its `Debug` never shows the key.
#[derive(Debug)]
pub struct KeyAnnouncement {
    pub room_id: OwnedRoomId,
    /// `${sender}:${claimed_device_id}`.
    pub identity: String,
    pub sender: OwnedUserId,
    pub device_id: String,
    pub index: u8,
    pub key: KeyMaterial,
    /// The sender's clock when it sent the key (ms); 0 when absent.
    pub sent_ts: u64,
    /// `session.call_id` (`""` for a room's call).
    pub call_id: String,
}

/// Why a to-device event gave no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// Another to-device event type: not ours, not an error.
    #[error("not a media key event")]
    NotKeys,
    /// It came in the clear (or matrix-sdk could not say who sent it): keys
    /// are only taken from Olm-decrypted messages.
    #[error("not Olm-encrypted")]
    NotEncrypted,
    /// A field is missing or wrong; names the field, not its value.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// For another MatrixRTC application than calls.
    #[error("not a call's key")]
    NotCall,
    /// The event's sender is not the one Olm authenticated.
    #[error("the sender is not the Olm-authenticated sender")]
    SenderMismatch,
    /// The claimed device is not the one Olm authenticated.
    #[error("the claimed device is not the Olm-authenticated device")]
    DeviceMismatch,
}

/// Who sent a to-device event, as matrix-sdk's Olm decryption reports it
/// (`EncryptionInfo::sender` and `sender_device`).
#[derive(Debug, Clone, Copy)]
pub struct OlmSender<'a> {
    pub user: &'a UserId,
    pub device: Option<&'a str>,
}

/// Reads and checks one decrypted to-device event (`{type, sender,
/// content}`); `olm` is who Olm says sent it, `None` for a plaintext event.
pub fn parse_key_event(
    event: &Value,
    olm: Option<OlmSender<'_>>,
) -> Result<KeyAnnouncement, IntakeError> {
    if event.get("type").and_then(Value::as_str) != Some(EVENT_TYPE) {
        return Err(IntakeError::NotKeys);
    }
    let olm = olm.ok_or(IntakeError::NotEncrypted)?;
    let sender = event
        .get("sender")
        .and_then(Value::as_str)
        .and_then(|s| UserId::parse(s).ok())
        .ok_or(IntakeError::Malformed("sender"))?;
    if sender.as_str() != olm.user.as_str() {
        return Err(IntakeError::SenderMismatch);
    }
    let content = event
        .get("content")
        .filter(|c| c.is_object())
        .ok_or(IntakeError::Malformed("content"))?;

    let session = content
        .get("session")
        .filter(|s| s.is_object())
        .ok_or(IntakeError::Malformed("session"))?;
    let application = session
        .get("application")
        .and_then(Value::as_str)
        .ok_or(IntakeError::Malformed("session.application"))?;
    if application != CALL_APPLICATION {
        return Err(IntakeError::NotCall);
    }
    let call_id = match session.get("call_id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(IntakeError::Malformed("session.call_id")),
    };

    let room_id = content
        .get("room_id")
        .and_then(Value::as_str)
        .and_then(|r| RoomId::parse(r).ok())
        .ok_or(IntakeError::Malformed("room_id"))?;

    let device_id = content
        .get("member")
        .and_then(|m| m.get("claimed_device_id"))
        .and_then(Value::as_str)
        .filter(|d| valid_device_id(d))
        .ok_or(IntakeError::Malformed("member.claimed_device_id"))?;
    if olm.device != Some(device_id) {
        return Err(IntakeError::DeviceMismatch);
    }

    let keys = content
        .get("keys")
        .filter(|k| k.is_object())
        .ok_or(IntakeError::Malformed("keys"))?;
    let index = keys
        .get("index")
        .and_then(Value::as_u64)
        .and_then(|i| u8::try_from(i).ok())
        .ok_or(IntakeError::Malformed("keys.index"))?;
    let key = keys
        .get("key")
        .and_then(Value::as_str)
        .and_then(|k| BASE64.decode(k).ok())
        .map(Zeroizing::new)
        .ok_or(IntakeError::Malformed("keys.key"))?;
    let key = KeyMaterial::new(key.to_vec()).ok_or(IntakeError::Malformed("keys.key"))?;

    let sent_ts = match content.get("sent_ts") {
        None | Some(Value::Null) => 0,
        Some(ts) => ts.as_u64().ok_or(IntakeError::Malformed("sent_ts"))?,
    };

    Ok(KeyAnnouncement {
        identity: format!("{sender}:{device_id}"),
        room_id,
        sender,
        device_id: device_id.to_owned(),
        index,
        key,
        sent_ts,
        call_id,
    })
}

/// A device id that can be part of an identity: non-empty, not huge, no
/// control characters.
fn valid_device_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_DEVICE_ID_LEN && !id.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::user_id;
    use serde_json::json;

    /// A key event as Element Call 0.26 sends it, decrypted.
    fn event() -> Value {
        json!({
            "type": "io.element.call.encryption_keys",
            "sender": "@alice:hs",
            "content": {
                "keys": {"index": 3, "key": "AAECAwQFBgcICQoLDA0ODw=="},
                "room_id": "!room:hs",
                "member": {"claimed_device_id": "ALICEDEV", "id": "m1"},
                "session": {"call_id": "", "application": "m.call", "scope": "m.room"},
                "sent_ts": 1_700_000_000_000u64,
            },
        })
    }

    fn alice() -> Option<OlmSender<'static>> {
        Some(OlmSender {
            user: user_id!("@alice:hs"),
            device: Some("ALICEDEV"),
        })
    }

    #[test]
    fn element_calls_key_event_is_read_and_bound_to_the_livekit_identity() {
        let key = parse_key_event(&event(), alice()).unwrap();
        assert_eq!(key.identity, "@alice:hs:ALICEDEV");
        assert_eq!(key.room_id.as_str(), "!room:hs");
        assert_eq!(key.index, 3);
        assert_eq!(key.key.expose(), (0u8..16).collect::<Vec<_>>());
        assert_eq!(key.sent_ts, 1_700_000_000_000);
        assert_eq!(key.call_id, "");
        let shown = format!("{key:?}");
        assert!(!shown.contains("AAECAw") && shown.contains("redacted"));
        // unpadded base64 and a missing timestamp are fine
        let mut e = event();
        e["content"]["keys"]["key"] = json!("AAECAwQFBgcICQoLDA0ODw");
        e["content"].as_object_mut().unwrap().remove("sent_ts");
        let key = parse_key_event(&e, alice()).unwrap();
        assert_eq!(key.key.expose().len(), 16);
        assert_eq!(key.sent_ts, 0);
    }

    #[test]
    fn only_what_olm_authenticated_is_believed() {
        assert_eq!(
            parse_key_event(&event(), None).unwrap_err(),
            IntakeError::NotEncrypted
        );
        let mallory = Some(OlmSender {
            user: user_id!("@mallory:hs"),
            device: Some("ALICEDEV"),
        });
        assert_eq!(
            parse_key_event(&event(), mallory).unwrap_err(),
            IntakeError::SenderMismatch
        );
        for device in [Some("OTHERDEV"), None] {
            let other = Some(OlmSender {
                user: user_id!("@alice:hs"),
                device,
            });
            assert_eq!(
                parse_key_event(&event(), other).unwrap_err(),
                IntakeError::DeviceMismatch
            );
        }
    }

    #[test]
    fn other_events_and_applications_are_not_keys() {
        let mut e = event();
        e["type"] = json!("m.room_key");
        assert_eq!(
            parse_key_event(&e, alice()).unwrap_err(),
            IntakeError::NotKeys
        );
        let mut e = event();
        e["content"]["session"]["application"] = json!("m.other");
        assert_eq!(
            parse_key_event(&e, alice()).unwrap_err(),
            IntakeError::NotCall
        );
    }

    #[test]
    fn malformed_fields_are_named_not_shown() {
        let cases: &[(&str, Value, &str)] = &[
            ("/content/keys/index", json!(256), "keys.index"),
            ("/content/keys/index", json!(-1), "keys.index"),
            ("/content/keys/index", json!(1.5), "keys.index"),
            ("/content/keys/index", json!("1"), "keys.index"),
            ("/content/keys/key", json!("not base64!"), "keys.key"),
            ("/content/keys/key", json!(""), "keys.key"),
            ("/content/keys/key", json!(7), "keys.key"),
            (
                "/content/keys",
                json!([{"index": 0, "key": "AAAA"}]),
                "keys",
            ),
            ("/content/room_id", json!("not a room"), "room_id"),
            (
                "/content/member/claimed_device_id",
                json!(""),
                "member.claimed_device_id",
            ),
            (
                "/content/member/claimed_device_id",
                json!("A\nB"),
                "member.claimed_device_id",
            ),
            ("/content/member", json!(null), "member.claimed_device_id"),
            ("/content/session", json!("m.call"), "session"),
            ("/content/session/call_id", json!(5), "session.call_id"),
            ("/content/sent_ts", json!(-5), "sent_ts"),
            ("/content", json!([]), "content"),
            ("/sender", json!("alice"), "sender"),
        ];
        for (pointer, value, field) in cases {
            let mut e = event();
            *e.pointer_mut(pointer).unwrap() = value.clone();
            let err = parse_key_event(&e, alice()).unwrap_err();
            assert_eq!(err, IntakeError::Malformed(field), "{pointer} = {value}");
            assert!(!err.to_string().contains("AAECAw"));
        }
        let huge = BASE64.encode([1u8; 65]);
        let mut e = event();
        e["content"]["keys"]["key"] = json!(huge);
        assert_eq!(
            parse_key_event(&e, alice()).unwrap_err(),
            IntakeError::Malformed("keys.key")
        );
    }
}
