//! Reading encrypted commands: decrypting an `m.room.encrypted` event from
//! the inbox, and routing the messages the sync decrypts into the inbox.
//!
//! Where it sits: encrypted commands reach the room queue in either of two
//! ways, and are handled once whichever comes first, because the inbox
//! deduplicates by event id:
//! - the appservice transaction carries the `m.room.encrypted` event; the
//!   room's worker asks `Matrix::reveal`, which calls [`decrypt`] here
//!   (waiting a little for a late room key) and, when the event stays
//!   undecryptable, posts [`undecryptable_notice`] once;
//! - the background sync (`e2ee/mod.rs`) decrypts it too, and
//!   [`route_synced_messages`] puts it in the inbox and its room's queue.
//!
//! Either way the decrypted event becomes a typed `QueuedEvent` once, here:
//! [`decrypt`] reads the decrypted JSON with `store::event_from_json`, and the
//! sync's messages arrive typed by matrix-sdk and are only copied across.
//! The encrypted event itself comes from the inbox typed too; the event the
//! device decrypts is written back from it, not parsed.

use std::time::{Duration, Instant};

use matrix_sdk::deserialized_responses::{EncryptionInfo, TimelineEventKind};
use matrix_sdk::{Client, Room};
use ruma::events::room::encrypted::OriginalSyncRoomEncryptedEvent;
use ruma::events::room::message::{MessageType, OriginalSyncRoomMessageEvent};
use ruma::serde::Raw;
use ruma::{EventId, OwnedUserId, RoomId, UInt, UserId};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tracing::{debug, error, warn};

use crate::matrix::retry::MatrixError;
use crate::queues::RoomQueues;
use crate::store::{EventKind, QueuedEvent, Store, event_from_json};

/// How long a worker waits for the room key of an encrypted event.
const KEY_WAIT: Duration = Duration::from_secs(10);
/// Events older than this that the sync decrypts are history, not commands.
const SYNC_FRESHNESS: Duration = Duration::from_secs(3600);

/// The text of the notice for an event the bot cannot decrypt.
const UNDECRYPTABLE_NOTICE: &str =
    "I could not decrypt your message. Please re-send once I have joined";

/// What the worker should handle instead of an event from the inbox.
#[derive(Debug)]
pub enum Revealed {
    /// Not encrypted: handle the event as it is.
    Plain,
    /// The decrypted event, with the same event id and room.
    Decrypted(QueuedEvent),
    /// It could not be decrypted; the sender was told. Nothing else to do.
    Undecryptable,
}

/// The `m.room.encrypted` event for the device, written from its typed
/// self in the inbox.
fn encrypted_event(
    queued: &QueuedEvent,
    origin_server_ts: &RawValue,
    content: &RawValue,
) -> Result<Raw<OriginalSyncRoomEncryptedEvent>, serde_json::Error> {
    #[derive(Serialize)]
    struct Encrypted<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        event_id: &'a EventId,
        sender: &'a UserId,
        room_id: &'a RoomId,
        origin_server_ts: &'a RawValue,
        content: &'a RawValue,
    }
    let event = Encrypted {
        kind: "m.room.encrypted",
        event_id: &queued.event_id,
        sender: &queued.sender,
        room_id: &queued.room_id,
        origin_server_ts,
        content,
    };
    Ok(Raw::from_json(serde_json::value::to_raw_value(&event)?))
}

/// A text message the sync decrypted (and matrix-sdk typed), as the inbox
/// keeps events.
fn synced_message(room_id: &RoomId, event: OriginalSyncRoomMessageEvent) -> QueuedEvent {
    let kind = match event.content.msgtype {
        MessageType::Text(text) => EventKind::Text {
            body: text.body,
            mentions: event
                .content
                .mentions
                .map(|m| m.user_ids.into_iter().map(String::from).collect())
                .unwrap_or_default(),
        },
        _ => EventKind::Other {
            event_type: "m.room.message".to_owned(),
        },
    };
    QueuedEvent {
        room_id: room_id.to_owned(),
        event_id: event.event_id,
        sender: event.sender,
        kind,
    }
}

/// Decrypts an `m.room.encrypted` event from the inbox; other events, and
/// the bot's own, are [`Revealed::Plain`]. A missing room key is waited for
/// a little (it may still be on its way through the sync); after that the
/// answer is [`Revealed::Undecryptable`], and the caller tells the sender.
pub(crate) async fn decrypt(
    client: &Client,
    bot: &UserId,
    queued: &QueuedEvent,
) -> Result<Revealed, MatrixError> {
    let EventKind::Encrypted {
        origin_server_ts,
        content,
    } = &queued.kind
    else {
        return Ok(Revealed::Plain);
    };
    if queued.sender == bot {
        return Ok(Revealed::Plain);
    }
    let raw = encrypted_event(queued, origin_server_ts, content)
        .map_err(|e| MatrixError::other("write an encrypted event", e))?;
    let deadline = Instant::now() + KEY_WAIT;
    let mut why = String::from("the room is not synced yet");
    loop {
        if let Some(room) = client.get_room(&queued.room_id) {
            match room.decrypt_event(&raw, None).await {
                Ok(event) if !event.kind.is_utd() => {
                    let decrypted = event_from_json(event.raw().json().get(), &queued.room_id)
                        .map_err(|e| MatrixError::other("read a decrypted event", e))?;
                    debug!(event_id = %queued.event_id, "decrypted an event");
                    return Ok(Revealed::Decrypted(decrypted));
                }
                Ok(event) => {
                    why = match &event.kind {
                        TimelineEventKind::UnableToDecrypt { utd_info, .. } => {
                            format!("{:?}", utd_info.reason)
                        }
                        _ => "unable to decrypt".to_owned(),
                    };
                }
                Err(e) => why = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    warn!(event_id = %queued.event_id, sender = %queued.sender, reason = %why, "cannot decrypt an event; telling the sender");
    Ok(Revealed::Undecryptable)
}

/// The notice that tells the sender of `event_id` to re-send.
pub(crate) fn undecryptable_notice(event_id: &EventId) -> Value {
    json!({
        "msgtype": "m.notice",
        "body": UNDECRYPTABLE_NOTICE,
        "m.relates_to": { "m.in_reply_to": { "event_id": event_id } },
        "org.salon.reply": { "command": "undecryptable", "outcome": "undecryptable" },
    })
}

/// Makes the sync hand the messages it decrypts (and only those: plain ones
/// come through the appservice) to the inbox and their room's queue.
pub(crate) fn route_synced_messages(
    client: &Client,
    store: &Store,
    rooms: &RoomQueues,
    bot: OwnedUserId,
) {
    let (inbox, rooms) = (store.clone(), rooms.clone());
    client.add_event_handler(
        move |event: OriginalSyncRoomMessageEvent,
              room: Room,
              encryption: Option<EncryptionInfo>| {
            let (store, rooms, bot) = (inbox.clone(), rooms.clone(), bot.clone());
            async move {
                if encryption.is_none() || event.sender == bot {
                    return;
                }
                let age = ruma::MilliSecondsSinceUnixEpoch::now()
                    .get()
                    .saturating_sub(event.origin_server_ts.get());
                if age > UInt::try_from(SYNC_FRESHNESS.as_millis() as u64).unwrap_or(UInt::MAX) {
                    debug!(event_id = %event.event_id, "ignoring an old decrypted message");
                    return;
                }
                route_decrypted(&store, &rooms, synced_message(room.room_id(), event)).await;
            }
        },
    );
}

/// Puts a message the sync decrypted into the inbox and its room's queue,
/// unless the appservice already brought it (same event id).
async fn route_decrypted(store: &Store, rooms: &RoomQueues, event: QueuedEvent) {
    let event_id = event.event_id.clone();
    match store.enqueue(vec![event]).await {
        Ok(queued) => {
            for (seq, event) in queued {
                debug!(%event_id, "queued a message decrypted by the sync");
                rooms.dispatch_event(seq, event);
            }
        }
        Err(e) => error!(error = %e, %event_id, "cannot queue a decrypted message"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{owned_event_id, room_id};

    #[test]
    fn a_synced_event_enters_the_inbox_with_its_room_and_id() {
        let event: OriginalSyncRoomMessageEvent = serde_json::from_str(
            r#"{"type":"m.room.message","sender":"@a:x","event_id":"$e1","origin_server_ts":1,"content":{"msgtype":"m.text","body":"!visio start"}}"#,
        )
        .unwrap();
        let queued = synced_message(room_id!("!r:x"), event);
        assert_eq!(queued.event_id, owned_event_id!("$e1"));
        assert_eq!(queued.room_id.as_str(), "!r:x");
        assert_eq!(queued.sender.as_str(), "@a:x");
        assert!(matches!(queued.kind, EventKind::Text { ref body, .. } if body == "!visio start"));

        let notice: OriginalSyncRoomMessageEvent = serde_json::from_str(
            r#"{"type":"m.room.message","sender":"@a:x","event_id":"$e2","origin_server_ts":1,"content":{"msgtype":"m.notice","body":"!visio start"}}"#,
        )
        .unwrap();
        let queued = synced_message(room_id!("!r:x"), notice);
        assert!(matches!(queued.kind, EventKind::Other { .. }));
    }

    #[test]
    fn the_device_gets_the_encrypted_event_as_it_was_sent() {
        let sent = r#"{"type":"m.room.encrypted","sender":"@a:x","event_id":"$c","room_id":"!r:x","origin_server_ts":42,"content":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AwgA","sender_key":"k","device_id":"D","session_id":"s"}}"#;
        let queued = event_from_json(sent, room_id!("!r:x")).unwrap();
        let EventKind::Encrypted {
            origin_server_ts,
            content,
        } = &queued.kind
        else {
            panic!("{queued:?}");
        };
        let raw = encrypted_event(&queued, origin_server_ts, content).unwrap();
        let event = raw.deserialize().unwrap();
        assert_eq!(event.event_id, owned_event_id!("$c"));
        assert_eq!(event.sender.as_str(), "@a:x");
        assert_eq!(u64::from(event.origin_server_ts.get()), 42);
        let written: Value = serde_json::from_str(raw.json().get()).unwrap();
        assert_eq!(written, serde_json::from_str::<Value>(sent).unwrap());
    }
}
