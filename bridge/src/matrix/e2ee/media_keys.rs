//! Taking Element Call's media keys off the bot's sync: the Olm-encrypted
//! to-device `io.element.call.encryption_keys` every call member sends to
//! every other member's device, the bot's included once it is a member.
//!
//! Where it sits: `Device::start` (`e2ee/mod.rs`) registers [`route_media_keys`]
//! on the background sync. matrix-sdk decrypts each to-device event and
//! calls it with the Olm-authenticated sender and device; it is checked by
//! `media_e2ee::parse_key_event` and kept in the device's
//! [`MediaKeys`](crate::media_e2ee::MediaKeys) for its room, where the
//! transcriber's decryptors find it. Keys for a room whose call the bot is
//! not in are dropped; a key is never logged.

use matrix_sdk::Client;
use matrix_sdk::deserialized_responses::{AlgorithmInfo, EncryptionInfo};
use ruma::events::AnyToDeviceEvent;
use ruma::events::room::member::MembershipState;
use ruma::serde::Raw;
use serde_json::Value;
use tracing::{debug, warn};

use crate::media_e2ee::{
    EVENT_TYPE, IntakeError, KeyAnnouncement, MediaKeys, OlmSender, parse_key_event,
};

/// Makes the sync hand every media key it decrypts to `keys`.
pub(crate) fn route_media_keys(client: &Client, keys: MediaKeys) {
    client.add_event_handler(
        move |raw: Raw<AnyToDeviceEvent>, encryption: Option<EncryptionInfo>, client: Client| {
            let keys = keys.clone();
            async move {
                if raw.get_field::<String>("type").ok().flatten().as_deref() != Some(EVENT_TYPE) {
                    return;
                }
                let Ok(event) = serde_json::from_str::<Value>(raw.json().get()) else {
                    return;
                };
                let olm = olm_sender(encryption.as_ref());
                match parse_key_event(&event, olm) {
                    Ok(key) => keep(&client, &keys, key).await,
                    Err(IntakeError::NotKeys) => {}
                    Err(e) => warn!(
                        reason = %e,
                        sender = ?encryption.as_ref().map(|i| i.sender.as_str()),
                        "ignoring a media key"
                    ),
                }
            }
        },
    );
}

/// Who sent it, when Olm decrypted it.
fn olm_sender(encryption: Option<&EncryptionInfo>) -> Option<OlmSender<'_>> {
    let info = encryption?;
    if !matches!(
        info.algorithm_info,
        AlgorithmInfo::OlmV1Curve25519AesSha2 { .. }
    ) {
        return None;
    }
    Some(OlmSender {
        user: &info.sender,
        device: info.sender_device.as_deref().map(|d| d.as_str()),
    })
}

/// Keeps a checked key if its room is open and its sender is in the room.
async fn keep(client: &Client, keys: &MediaKeys, key: KeyAnnouncement) {
    let (room_id, identity, index) = (key.room_id.clone(), key.identity.clone(), key.index);
    if !keys.is_open(&room_id) {
        debug!(%room_id, %identity, index, "a media key for a call the bot is not in; dropped");
        return;
    }
    let joined = match client.get_room(&room_id) {
        Some(room) => match room.get_member(&key.sender).await {
            Ok(Some(member)) => *member.membership() == MembershipState::Join,
            Ok(None) => false,
            Err(e) => {
                warn!(%room_id, error = %e, "cannot check a media key's sender; dropped");
                return;
            }
        },
        None => false,
    };
    if !joined {
        warn!(%room_id, %identity, "a media key from someone not in the room; dropped");
        return;
    }
    match keys.accept(key) {
        Ok(update) => debug!(%room_id, %identity, index, ?update, "media key received"),
        Err(e) => warn!(%room_id, %identity, index, reason = %e, "media key not kept"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matrix_sdk::deserialized_responses::VerificationState;
    use ruma::{owned_device_id, owned_user_id};

    fn info(algorithm_info: AlgorithmInfo) -> EncryptionInfo {
        EncryptionInfo {
            sender: owned_user_id!("@a:hs"),
            sender_device: Some(owned_device_id!("DEV")),
            forwarder: None,
            algorithm_info,
            verification_state: VerificationState::Verified,
        }
    }

    #[test]
    fn only_olm_decrypted_events_name_a_sender() {
        assert!(olm_sender(None).is_none());
        let olm = info(AlgorithmInfo::OlmV1Curve25519AesSha2 {
            curve25519_public_key_base64: "k".into(),
        });
        let sender = olm_sender(Some(&olm)).unwrap();
        assert_eq!(sender.user.as_str(), "@a:hs");
        assert_eq!(sender.device, Some("DEV"));
        let megolm = info(AlgorithmInfo::MegolmV1AesSha2 {
            curve25519_key: "k".into(),
            sender_claimed_keys: Default::default(),
            session_id: None,
        });
        assert!(olm_sender(Some(&megolm)).is_none());
    }
}
