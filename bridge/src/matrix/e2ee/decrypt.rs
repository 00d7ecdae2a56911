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

use std::time::{Duration, Instant};

use matrix_sdk::deserialized_responses::{EncryptionInfo, TimelineEventKind};
use matrix_sdk::event_handler::RawEvent;
use matrix_sdk::{Client, Room};
use ruma::events::room::encrypted::OriginalSyncRoomEncryptedEvent;
use ruma::events::room::message::OriginalSyncRoomMessageEvent;
use ruma::serde::Raw;
use ruma::{EventId, OwnedEventId, OwnedUserId, RoomId, UInt, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{debug, error, warn};

use crate::matrix::retry::MatrixError;
use crate::queues::RoomQueues;
use crate::store::{QueuedEvent, Store};

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

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    sender: OwnedUserId,
}

/// A sync event (no `room_id`) as the inbox keeps events.
fn as_queued(
    room_id: &RoomId,
    raw: &serde_json::value::RawValue,
) -> Result<QueuedEvent, serde_json::Error> {
    let mut event: serde_json::Map<String, Value> = serde_json::from_str(raw.get())?;
    event.insert("room_id".into(), json!(room_id));
    let event_id: OwnedEventId =
        serde_json::from_value(event.get("event_id").cloned().unwrap_or(Value::Null))?;
    Ok(QueuedEvent {
        room_id: room_id.to_owned(),
        event_id,
        json: serde_json::to_string(&event)?,
    })
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
    let Ok(head) = serde_json::from_str::<Head>(&queued.json) else {
        return Ok(Revealed::Plain);
    };
    if head.kind != "m.room.encrypted" || head.sender == bot {
        return Ok(Revealed::Plain);
    }
    let raw: Raw<OriginalSyncRoomEncryptedEvent> = Raw::from_json_string(queued.json.clone())
        .map_err(|e| MatrixError::other("read an encrypted event", e))?;
    let deadline = Instant::now() + KEY_WAIT;
    let mut why = String::from("the room is not synced yet");
    loop {
        if let Some(room) = client.get_room(&queued.room_id) {
            match room.decrypt_event(&raw, None).await {
                Ok(event) if !event.kind.is_utd() => {
                    let decrypted = as_queued(&queued.room_id, event.raw().json())
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
    warn!(event_id = %queued.event_id, sender = %head.sender, reason = %why, "cannot decrypt an event; telling the sender");
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
              encryption: Option<EncryptionInfo>,
              raw: RawEvent| {
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
                route_decrypted(&store, &rooms, room.room_id(), &raw).await;
            }
        },
    );
}

/// Puts a message the sync decrypted into the inbox and its room's queue,
/// unless the appservice already brought it (same event id).
async fn route_decrypted(
    store: &Store,
    rooms: &RoomQueues,
    room_id: &RoomId,
    raw: &serde_json::value::RawValue,
) {
    let event = match as_queued(room_id, raw) {
        Ok(event) => event,
        Err(e) => {
            warn!(error = %e, "cannot read a decrypted event");
            return;
        }
    };
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
        let raw = serde_json::value::RawValue::from_string(
            r#"{"type":"m.room.message","sender":"@a:x","event_id":"$e1","origin_server_ts":1,"content":{"msgtype":"m.text","body":"!visio start"}}"#.to_owned(),
        )
        .unwrap();
        let queued = as_queued(room_id!("!r:x"), &raw).unwrap();
        assert_eq!(queued.event_id, owned_event_id!("$e1"));
        assert_eq!(queued.room_id.as_str(), "!r:x");
        let event: Value = serde_json::from_str(&queued.json).unwrap();
        assert_eq!(event["room_id"], "!r:x");
        assert_eq!(event["content"]["body"], "!visio start");

        let no_id =
            serde_json::value::RawValue::from_string(r#"{"type":"m.room.message"}"#.to_owned())
                .unwrap();
        assert!(as_queued(room_id!("!r:x"), &no_id).is_err());
    }
}
