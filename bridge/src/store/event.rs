//! The typed event: what an event becomes where it enters the bridge, what
//! the inbox keeps on disk, and what a room's worker handles.
//!
//! Where it sits: `appservice.rs` reads a transaction's `events` straight
//! into [`WireEvent`]s, in the one pass over the body (no event is held as a
//! JSON value and read again), and [`WireEvent::into_event`] keeps what the
//! bot acts on as a [`QueuedEvent`]. The E2EE path (`matrix/e2ee/decrypt.rs`)
//! does the same with an event it decrypts. `store/inbox.rs` writes the
//! `QueuedEvent` as it is, the room queue (`queues.rs`) carries it, and
//! `room.rs` matches on its [`EventKind`].
//!
//! An event's `content` is taken whole (a `RawValue`: its bytes, checked,
//! nothing built) during that pass, because `type` may come after it; it is
//! then read once, for the few types the bot looks into. A value of the wrong
//! type in one event makes that one event unusable, never the transaction.

use std::fmt;
use std::marker::PhantomData;

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An event, as the inbox keeps it and a room handles it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedEvent {
    pub room_id: OwnedRoomId,
    pub event_id: OwnedEventId,
    pub sender: OwnedUserId,
    pub kind: EventKind,
}

/// What the bot can make of an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `m.room.message` with `msgtype: m.text`: maybe a command. `mentions`
    /// are the users its `m.mentions` names (a pill typed after `!visio
    /// mute` shows the person's name in `body`, their mxid only there).
    Text {
        body: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<String>,
    },
    /// `m.room.member`: `state_key`'s membership is now `membership`.
    Member {
        state_key: String,
        membership: String,
    },
    /// `m.room.encrypted`: what the bot's device needs to decrypt it, as sent.
    Encrypted {
        origin_server_ts: Box<RawValue>,
        content: Box<RawValue>,
    },
    /// A MatrixRTC call membership (`org.matrix.msc3401.call.member` state,
    /// or a sticky `org.matrix.msc4143.rtc.member`): the sender's device
    /// joined, refreshed or left the room's call (`rtc.rs`).
    RtcMember { change: crate::rtc::MemberChange },
    /// Anything else: handled by doing nothing.
    Other { event_type: String },
}

/// The fields of one item of a transaction's `events` (or of one decrypted
/// event), as read; [`WireEvent::into_event`] says whether it is an event.
#[derive(Debug, Default)]
pub struct WireEvent {
    is_object: bool,
    event_type: Option<String>,
    event_id: Option<String>,
    room_id: Option<String>,
    sender: Option<String>,
    state_key: Option<String>,
    origin_server_ts: Option<Box<RawValue>>,
    content: Option<Box<RawValue>>,
}

impl WireEvent {
    /// The event the bot acts on, or why this item is none. `room_id` is the
    /// room of an event that does not say (a sync event); it wins over the
    /// event's own.
    pub fn into_event(self, room_id: Option<&RoomId>) -> Result<QueuedEvent, String> {
        if !self.is_object {
            return Err("not a JSON object".to_owned());
        }
        let event_id = self.event_id.ok_or("no event_id")?;
        let event_id = OwnedEventId::try_from(event_id).map_err(|e| format!("event_id: {e}"))?;
        let room_id = match (room_id, self.room_id) {
            (Some(room_id), _) => room_id.to_owned(),
            (None, Some(id)) => OwnedRoomId::try_from(id).map_err(|e| format!("room_id: {e}"))?,
            (None, None) => return Err("no room_id".to_owned()),
        };
        let sender = self.sender.ok_or("no sender")?;
        let sender = OwnedUserId::try_from(sender).map_err(|e| format!("sender: {e}"))?;
        let event_type = self.event_type.ok_or("no type")?;
        let kind = match (event_type.as_str(), self.content) {
            ("m.room.message", Some(content)) => read_message(&content),
            ("m.room.member", Some(content)) => {
                self.state_key
                    .zip(read_membership(&content))
                    .map(|(state_key, membership)| EventKind::Member {
                        state_key,
                        membership,
                    })
            }
            ("m.room.encrypted", Some(content)) => {
                self.origin_server_ts
                    .map(|origin_server_ts| EventKind::Encrypted {
                        origin_server_ts,
                        content,
                    })
            }
            (crate::rtc::CALL_MEMBER_EVENT, Some(content)) => {
                let origin_ts = read_ts(self.origin_server_ts.as_deref());
                self.state_key.map(|state_key| EventKind::RtcMember {
                    change: crate::rtc::read_call_member(
                        &state_key,
                        &read_object(&content),
                        origin_ts,
                    ),
                })
            }
            (crate::rtc::RTC_MEMBER_EVENT, Some(content)) => {
                let origin_ts = read_ts(self.origin_server_ts.as_deref());
                Some(EventKind::RtcMember {
                    change: crate::rtc::read_rtc_member(
                        sender.as_str(),
                        &read_object(&content),
                        origin_ts,
                    ),
                })
            }
            _ => None,
        };
        Ok(QueuedEvent {
            room_id,
            event_id,
            sender,
            kind: kind.unwrap_or(EventKind::Other { event_type }),
        })
    }
}

/// A content as a JSON value (`null` when it is not JSON, which reads as no
/// membership).
fn read_object(content: &RawValue) -> serde_json::Value {
    serde_json::from_str(content.get()).unwrap_or(serde_json::Value::Null)
}

/// An `origin_server_ts` in milliseconds (now, when absent or not a number).
fn read_ts(ts: Option<&RawValue>) -> u64 {
    ts.and_then(|ts| serde_json::from_str(ts.get()).ok())
        .unwrap_or_else(crate::clock::now_millis)
}

/// One event's JSON (say, as the E2EE path decrypted it) read into its typed
/// form; `room_id` for a sync event, which does not name its room.
pub fn event_from_json(json: &str, room_id: &RoomId) -> Result<QueuedEvent, String> {
    serde_json::from_str::<WireEvent>(json)
        .map_err(|e| e.to_string())?
        .into_event(Some(room_id))
}

/// A text message's body; other messages are nothing the bot acts on.
fn read_message(content: &RawValue) -> Option<EventKind> {
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        msgtype: Text,
        #[serde(default)]
        body: Text,
        #[serde(default, rename = "m.mentions")]
        mentions: Option<serde_json::Value>,
    }
    let message: Message = serde_json::from_str(content.get()).ok()?;
    match (message.msgtype.0.as_deref(), message.body.0) {
        (Some("m.text"), Some(body)) => Some(EventKind::Text {
            body,
            mentions: mentioned_users(message.mentions.as_ref()),
        }),
        _ => None,
    }
}

/// The user ids of an `m.mentions` object (at most 20; anything else in it
/// is ignored).
fn mentioned_users(mentions: Option<&serde_json::Value>) -> Vec<String> {
    mentions
        .and_then(|m| m.get("user_ids"))
        .and_then(serde_json::Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(serde_json::Value::as_str)
                .filter(|id| id.len() <= 255)
                .take(20)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn read_membership(content: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Member {
        #[serde(default)]
        membership: Text,
    }
    serde_json::from_str::<Member>(content.get())
        .ok()?
        .membership
        .0
}

/// The fields of an event the bot reads; the others are skipped unread.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    #[serde(rename = "type")]
    Type,
    EventId,
    RoomId,
    Sender,
    StateKey,
    OriginServerTs,
    Content,
    #[serde(other)]
    Other,
}

/// What a value read in one pass makes of the JSON it meets: a string, an
/// object, or (anything else, arrays read past) its default; never an error,
/// so one odd event spoils only itself.
trait Tolerant<'de>: Default {
    fn from_str(_: &str) -> Self {
        Self::default()
    }
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

struct TolerantVisitor<T>(PhantomData<T>);

impl<'de, T: Tolerant<'de>> Visitor<'de> for TolerantVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::from_str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(T::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

impl<'de> Deserialize<'de> for WireEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TolerantVisitor(PhantomData))
    }
}

impl<'de> Tolerant<'de> for WireEvent {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut wire = WireEvent {
            is_object: true,
            ..WireEvent::default()
        };
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Type => wire.event_type = map.next_value::<Text>()?.0,
                Field::EventId => wire.event_id = map.next_value::<Text>()?.0,
                Field::RoomId => wire.room_id = map.next_value::<Text>()?.0,
                Field::Sender => wire.sender = map.next_value::<Text>()?.0,
                Field::StateKey => wire.state_key = map.next_value::<Text>()?.0,
                Field::OriginServerTs => wire.origin_server_ts = Some(map.next_value()?),
                Field::Content => wire.content = Some(map.next_value()?),
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(wire)
    }
}

/// A string, or `None` where the JSON holds anything else.
#[derive(Debug, Default)]
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TolerantVisitor(PhantomData))
    }
}

impl<'de> Tolerant<'de> for Text {
    fn from_str(v: &str) -> Self {
        Text(Some(v.to_owned()))
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
}

/// An inbox record as bridges before typed events wrote it: the event's JSON
/// whole. Read once, at the start-up that follows the upgrade.
#[derive(Deserialize)]
pub(super) struct LegacyRecord {
    room_id: OwnedRoomId,
    event_id: OwnedEventId,
    json: String,
}

impl LegacyRecord {
    /// The typed event, or its id and why it is none.
    pub(super) fn into_event(self) -> Result<QueuedEvent, (OwnedEventId, String)> {
        event_from_json(&self.json, &self.room_id).map_err(|why| (self.event_id, why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::room_id;

    fn read(json: &str) -> Result<QueuedEvent, String> {
        serde_json::from_str::<WireEvent>(json)
            .unwrap()
            .into_event(None)
    }

    #[test]
    fn commands_invites_and_encrypted_events_are_typed_the_rest_is_other() {
        let text = read(
            r#"{"content":{"body":"!visio start","msgtype":"m.text"},"type":"m.room.message","room_id":"!r:x","event_id":"$e","sender":"@a:x","origin_server_ts":1,"unsigned":{"age":3}}"#,
        )
        .unwrap();
        assert_eq!(text.event_id.as_str(), "$e");
        assert_eq!(text.room_id.as_str(), "!r:x");
        assert_eq!(text.sender.as_str(), "@a:x");
        assert!(matches!(text.kind, EventKind::Text { ref body, .. } if body == "!visio start"));

        let invite = read(
            r#"{"type":"m.room.member","state_key":"@bot:x","content":{"membership":"invite"},"room_id":"!r:x","event_id":"$i","sender":"@a:x"}"#,
        )
        .unwrap();
        assert!(
            matches!(invite.kind, EventKind::Member { ref state_key, ref membership } if state_key == "@bot:x" && membership == "invite")
        );

        let encrypted = read(
            r#"{"type":"m.room.encrypted","content":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AA"},"room_id":"!r:x","event_id":"$c","sender":"@a:x","origin_server_ts":42}"#,
        )
        .unwrap();
        assert!(
            matches!(&encrypted.kind, EventKind::Encrypted { origin_server_ts, content }
                if origin_server_ts.get() == "42" && content.get().contains("\"ciphertext\":\"AA\"")),
            "{encrypted:?}"
        );

        for other in [
            r#"{"type":"m.room.message","content":{"msgtype":"m.image","body":"x"},"room_id":"!r:x","event_id":"$o","sender":"@a:x"}"#,
            r#"{"type":"m.room.message","content":{"msgtype":"m.text","body":5},"room_id":"!r:x","event_id":"$o","sender":"@a:x"}"#,
            r#"{"type":"m.room.message","content":"odd","room_id":"!r:x","event_id":"$o","sender":"@a:x"}"#,
            r#"{"type":"m.room.topic","content":{"topic":"t"},"room_id":"!r:x","event_id":"$o","sender":"@a:x"}"#,
            r#"{"type":"m.room.member","content":{"membership":"join"},"room_id":"!r:x","event_id":"$o","sender":"@a:x"}"#,
        ] {
            let event = read(other).unwrap();
            assert!(matches!(event.kind, EventKind::Other { .. }), "{other}");
        }
    }

    #[test]
    fn call_memberships_are_typed_and_survive_the_inbox() {
        let join = read(
            r#"{"type":"org.matrix.msc3401.call.member","state_key":"_@a:x_DEVA_m.call","content":{"application":"m.call","call_id":"","scope":"m.room","device_id":"DEVA","expires":14400000,"focus_active":{"type":"livekit"}},"room_id":"!r:x","event_id":"$m","sender":"@a:x","origin_server_ts":1000}"#,
        )
        .unwrap();
        let EventKind::RtcMember { change } = &join.kind else {
            panic!("{join:?}");
        };
        assert_eq!(change.key, "state:_@a:x_DEVA_m.call");
        assert_eq!(change.device, Some(("DEVA".to_owned(), 1000 + 14_400_000)));
        // the inbox keeps it as it is
        let kept: QueuedEvent =
            serde_json::from_str(&serde_json::to_string(&join).unwrap()).unwrap();
        assert!(matches!(kept.kind, EventKind::RtcMember { change: ref c } if c == change));

        let leave = read(
            r#"{"type":"org.matrix.msc3401.call.member","state_key":"_@a:x_DEVA_m.call","content":{},"room_id":"!r:x","event_id":"$l","sender":"@a:x","origin_server_ts":2000}"#,
        )
        .unwrap();
        assert!(
            matches!(leave.kind, EventKind::RtcMember { ref change } if change.device.is_none())
        );

        let sticky = read(
            r#"{"type":"org.matrix.msc4143.rtc.member","content":{"application":{"type":"m.call"},"slot_id":"m.call#ROOM","member":{"user_id":"@a:x","device_id":"D","id":"m1"}},"room_id":"!r:x","event_id":"$s","sender":"@a:x","origin_server_ts":5}"#,
        )
        .unwrap();
        assert!(
            matches!(sticky.kind, EventKind::RtcMember { ref change } if change.device.is_some())
        );

        // a membership state event without a state key is no membership
        let keyless = read(
            r#"{"type":"org.matrix.msc3401.call.member","content":{"application":"m.call","device_id":"D"},"room_id":"!r:x","event_id":"$k","sender":"@a:x"}"#,
        )
        .unwrap();
        assert!(matches!(keyless.kind, EventKind::Other { .. }));
    }

    #[test]
    fn an_item_that_is_not_an_event_is_refused_alone() {
        for bad in [
            "1",
            "\"x\"",
            "null",
            "[1,{}]",
            r#"{"type":"m.room.message","room_id":"!r:x","sender":"@a:x"}"#,
            r#"{"type":"m.room.message","event_id":5,"room_id":"!r:x","sender":"@a:x"}"#,
            r#"{"type":"m.room.message","event_id":"no sigil","room_id":"!r:x","sender":"@a:x"}"#,
            r#"{"type":"m.room.message","event_id":"$e","sender":"@a:x"}"#,
            r#"{"type":"m.room.message","event_id":"$e","room_id":"!r:x","sender":{"a":[1]}}"#,
            r#"{"event_id":"$e","room_id":"!r:x","sender":"@a:x"}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_typed_event_survives_the_inbox_and_a_legacy_record_is_read() {
        let event = read(
            r#"{"type":"m.room.encrypted","content":{"ciphertext":"AA"},"room_id":"!r:x","event_id":"$c","sender":"@a:x","origin_server_ts":42}"#,
        )
        .unwrap();
        let stored = serde_json::to_vec(&event).unwrap();
        let back: QueuedEvent = serde_json::from_slice(&stored).unwrap();
        assert_eq!(format!("{back:?}"), format!("{event:?}"));

        let legacy: LegacyRecord = serde_json::from_str(
            r#"{"room_id":"!r:x","event_id":"$e","json":"{\"type\":\"m.room.message\",\"event_id\":\"$e\",\"sender\":\"@a:x\",\"room_id\":\"!r:x\",\"content\":{\"msgtype\":\"m.text\",\"body\":\"!visio help\"}}"}"#,
        )
        .unwrap();
        let event = legacy.into_event().unwrap();
        assert!(matches!(event.kind, EventKind::Text { ref body, .. } if body == "!visio help"));
        assert_eq!(
            event_from_json(
                r#"{"type":"x","event_id":"$s","sender":"@a:x"}"#,
                room_id!("!s:x")
            )
            .unwrap()
            .room_id
            .as_str(),
            "!s:x"
        );
    }
}
