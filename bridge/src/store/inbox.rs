//! The inbox: events accepted from the homeserver (or the E2EE sync) and not
//! yet handled, and the ids of those handled.
//!
//! Where it sits: between the ingress and the room queues. `appservice.rs`
//! and `matrix/e2ee/decrypt.rs` [`Store::enqueue`] typed events (`event.rs`)
//! and only then hand them to `queues.rs`; a room's worker calls
//! [`Store::complete`] when it is done with one; at start-up `app.rs` replays
//! [`Store::inbox`]. The `pending` tree maps an event id to its inbox key so
//! that one event is queued once, whichever path brings it first.

use ruma::OwnedEventId;
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;
use tracing::warn;

use super::event::{LegacyRecord, QueuedEvent};
use super::{Store, StoreError, decode, encode, tx_error};
use crate::calls::Millis;

impl Store {
    /// Puts new events in the inbox and flushes. Events already handled or
    /// already queued are skipped. Returns the newly queued ones, with their
    /// sequence numbers, in order.
    pub async fn enqueue(
        &self,
        events: Vec<QueuedEvent>,
    ) -> Result<Vec<(u64, QueuedEvent)>, StoreError> {
        let mut queued = Vec::new();
        for event in events {
            let id = event.event_id.as_bytes();
            if self.handled.contains_key(id)? || self.pending.contains_key(id)? {
                continue;
            }
            let seq = self.db.generate_id()?;
            let key = seq.to_be_bytes();
            let value = encode(&event);
            // Checked again inside the transaction: the appservice and the
            // E2EE sync (`matrix/e2ee/decrypt.rs`) may queue the same event at the same time.
            let fresh = (&self.inbox, &self.pending, &self.handled)
                .transaction(|(inbox, pending, handled)| {
                    if handled.get(id)?.is_some() || pending.get(id)?.is_some() {
                        return Ok(false);
                    }
                    inbox.insert(&key, value.as_slice())?;
                    pending.insert(id, &key)?;
                    Ok::<_, ConflictableTransactionError<()>>(true)
                })
                .map_err(tx_error)?;
            if fresh {
                queued.push((seq, event));
            }
        }
        if !queued.is_empty() {
            self.flush().await?;
        }
        Ok(queued)
    }

    /// Everything still in the inbox, oldest first (used at start-up).
    pub fn inbox(&self) -> Result<Vec<(u64, QueuedEvent)>, StoreError> {
        let mut events = Vec::new();
        for entry in self.inbox.iter() {
            let (key, value) = entry?;
            let seq = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8]));
            match read_record(&value)? {
                Ok(event) => events.push((seq, event)),
                Err((event_id, why)) => {
                    // What the room would have ignored: it leaves the inbox.
                    warn!(%event_id, %why, "dropping an old inbox record that is no event");
                    self.inbox.remove(&key)?;
                    self.pending.remove(event_id.as_bytes())?;
                }
            }
        }
        Ok(events)
    }

    /// Marks an event handled and removes it from the inbox, atomically.
    pub async fn complete(
        &self,
        seq: u64,
        event_id: &OwnedEventId,
        now: Millis,
    ) -> Result<(), StoreError> {
        let key = seq.to_be_bytes();
        let id = event_id.as_bytes();
        (&self.inbox, &self.pending, &self.handled)
            .transaction(|(inbox, pending, handled)| {
                inbox.remove(&key)?;
                pending.remove(id)?;
                handled.insert(id, &now.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)?;
        self.flush().await
    }

    /// Whether an event was handled already.
    pub fn is_handled(&self, event_id: &OwnedEventId) -> Result<bool, StoreError> {
        Ok(self.handled.contains_key(event_id.as_bytes())?)
    }

    /// Forgets handled ids older than `before`; the homeserver never replays
    /// events that old.
    pub fn prune_handled(&self, before: Millis) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.handled.iter() {
            let (key, value) = entry?;
            let at = u64::from_be_bytes(value.as_ref().try_into().unwrap_or([0; 8]));
            if at < before {
                self.handled.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// An inbox record: a typed event, or (left by a bridge from before typed
/// events) the event's JSON, read now; or, for a legacy record that is no
/// event the bot can read, its id and why.
fn read_record(value: &[u8]) -> Result<Result<QueuedEvent, (OwnedEventId, String)>, StoreError> {
    let typed = decode("inbox", value);
    if let Ok(event) = typed {
        return Ok(Ok(event));
    }
    match decode::<LegacyRecord>("inbox", value) {
        Ok(legacy) => Ok(legacy.into_event()),
        Err(_) => typed.map(Ok),
    }
}
