//! Durable state in `sled`: the inbox of events to handle, the handled event
//! ids, calls, room settings, the transcript segments of calls and how far
//! the posting of each call's minutes got.
//!
//! The appservice acknowledges a transaction only after its events sit in the
//! inbox on disk, and an event leaves the inbox in the same sled transaction
//! that records its id as handled. A `kill -9` at any point therefore loses no
//! command and handles none twice. Homeserver transaction ids restart at 1 when
//! Synapse restarts, so deduplication is by **event id**, never by txn id.
//!
//! Every write that matters is flushed before the function returns.

use std::path::Path;

use ruma::{OwnedEventId, OwnedRoomId, RoomId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::calls::{Call, Millis};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in tree `{tree}`: {source}")]
    Corrupt {
        tree: &'static str,
        source: serde_json::Error,
    },
    #[error("the storage flush did not finish: {0}")]
    Flush(String),
    #[error("cannot open storage at {path}: {reason}")]
    Open { path: String, reason: String },
}

/// An event waiting in the inbox, as the homeserver sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedEvent {
    pub room_id: OwnedRoomId,
    pub event_id: OwnedEventId,
    /// The event's JSON, untouched.
    pub json: String,
}

/// Per-room settings that outlive calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// The room's current (or last) call.
    pub current_call: Option<String>,
    /// `!visio settings transcription=auto`: every call here is transcribed
    /// from its start.
    #[serde(default)]
    pub transcription_auto: bool,
    /// `!visio settings language=fr`: calls here are transcribed in this
    /// language; `None` detects it per utterance (or uses the server's).
    #[serde(default)]
    pub language: Option<String>,
}

/// One transcribed utterance of a call, and the room event that shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub segment: salon_minutes::TranscriptSegment,
    /// The transcript notice, once posted.
    pub event_id: Option<OwnedEventId>,
}

/// How far the posting of a call's minutes got, so a restart resumes it
/// instead of uploading or posting twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinutesProgress {
    /// `mxc://` URIs (or, in encrypted rooms, the `file` objects) of the uploads.
    pub webvtt: Option<serde_json::Value>,
    pub markdown: Option<serde_json::Value>,
    /// The `m.file` events.
    pub webvtt_event: Option<OwnedEventId>,
    pub markdown_event: Option<OwnedEventId>,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// The handle on Salon's sled database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    inbox: sled::Tree,
    pending: sled::Tree,
    handled: sled::Tree,
    calls: sled::Tree,
    rooms: sled::Tree,
    meta: sled::Tree,
    segments: sled::Tree,
    minutes: sled::Tree,
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("our records always serialise")
}

impl Store {
    /// Opens (or creates) the database under `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let db = sled::Config::new()
            .path(path.join("salon.sled"))
            .open()
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: match &e {
                    sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                        "it is locked by another process (is another `salon run` using it?)"
                            .to_owned()
                    }
                    other => other.to_string(),
                },
            })?;
        Ok(Store {
            inbox: db.open_tree("inbox")?,
            pending: db.open_tree("pending")?,
            handled: db.open_tree("handled_events")?,
            calls: db.open_tree("calls")?,
            rooms: db.open_tree("room_settings")?,
            meta: db.open_tree("meta")?,
            segments: db.open_tree("segments")?,
            minutes: db.open_tree("minutes_progress")?,
            db,
        })
    }

    /// Writes everything to disk now (at shutdown).
    pub async fn flush_now(&self) -> Result<(), StoreError> {
        self.flush().await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Not `flush_async`: it runs on sled's small I/O pool, and enough
        // concurrent flushes (rooms completing events while the appservice and
        // the E2EE sync queue more) occupy every pool thread waiting for writes
        // that need a pool thread: a deadlock. A blocking flush waits on
        // tokio's blocking pool instead.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Flush(e.to_string()))??;
        Ok(())
    }

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
            // E2EE sync (crypto.rs) may queue the same event at the same time.
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
        self.inbox
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let seq = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8]));
                Ok((seq, decode("inbox", &value)?))
            })
            .collect()
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

    /// Saves a call and makes it its room's current call; flushes.
    pub async fn save_call(&self, call: &Call) -> Result<(), StoreError> {
        let mut settings = self.room_settings(&call.room_id)?;
        settings.current_call = Some(call.id.clone());
        let call_value = encode(call);
        let settings_value = encode(&settings);
        (&self.calls, &self.rooms)
            .transaction(|(calls, rooms)| {
                calls.insert(call.id.as_bytes(), call_value.as_slice())?;
                rooms.insert(call.room_id.as_bytes(), settings_value.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)?;
        self.flush().await
    }

    /// Saves a call without touching which call is its room's current one
    /// (for an older call, e.g. when its minutes are posted); flushes.
    pub async fn save_call_only(&self, call: &Call) -> Result<(), StoreError> {
        self.calls.insert(call.id.as_bytes(), encode(call))?;
        self.flush().await
    }

    pub fn call(&self, id: &str) -> Result<Option<Call>, StoreError> {
        self.calls
            .get(id.as_bytes())?
            .map(|v| decode("calls", &v))
            .transpose()
    }

    /// The room's current or last call.
    pub fn room_call(&self, room_id: &RoomId) -> Result<Option<Call>, StoreError> {
        match self.room_settings(room_id)?.current_call {
            Some(id) => self.call(&id),
            None => Ok(None),
        }
    }

    pub fn active_calls(&self) -> Result<Vec<Call>, StoreError> {
        self.calls_where(Call::is_active)
    }

    /// Every stored call that `keep` accepts.
    fn calls_where(&self, keep: impl Fn(&Call) -> bool) -> Result<Vec<Call>, StoreError> {
        let mut out = Vec::new();
        for entry in self.calls.iter() {
            let (_, value) = entry?;
            let call: Call = decode("calls", &value)?;
            if keep(&call) {
                out.push(call);
            }
        }
        Ok(out)
    }

    pub fn room_settings(&self, room_id: &RoomId) -> Result<RoomSettings, StoreError> {
        Ok(self
            .rooms
            .get(room_id.as_bytes())?
            .map(|v| decode("room_settings", &v))
            .transpose()?
            .unwrap_or_default())
    }

    /// Changes the room's settings (not its current call); flushes.
    pub async fn update_room_settings(
        &self,
        room_id: &RoomId,
        change: impl Fn(&mut RoomSettings),
    ) -> Result<RoomSettings, StoreError> {
        let updated = self
            .rooms
            .transaction(|rooms| {
                let mut settings: RoomSettings = match rooms.get(room_id.as_bytes())? {
                    Some(v) => serde_json::from_slice(&v).unwrap_or_default(),
                    None => RoomSettings::default(),
                };
                change(&mut settings);
                rooms.insert(room_id.as_bytes(), encode(&settings))?;
                Ok::<_, ConflictableTransactionError<()>>(settings)
            })
            .map_err(tx_error)?;
        self.flush().await?;
        Ok(updated)
    }

    /// Appends a transcript segment to its call; flushes. Returns its key,
    /// which orders the call's segments and names the notice's transaction.
    pub async fn append_segment(
        &self,
        segment: &salon_minutes::TranscriptSegment,
    ) -> Result<u64, StoreError> {
        let seq = self.db.generate_id()?;
        let record = SegmentRecord {
            segment: segment.clone(),
            event_id: None,
        };
        self.segments
            .insert(segment_key(&segment.call_id, seq), encode(&record))?;
        self.flush().await?;
        Ok(seq)
    }

    /// Records the notice that shows a segment.
    pub async fn segment_posted(
        &self,
        call_id: &str,
        seq: u64,
        event_id: OwnedEventId,
    ) -> Result<(), StoreError> {
        let key = segment_key(call_id, seq);
        if let Some(value) = self.segments.get(&key)? {
            let mut record: SegmentRecord = decode("segments", &value)?;
            record.event_id = Some(event_id);
            self.segments.insert(key, encode(&record))?;
            self.flush().await?;
        }
        Ok(())
    }

    /// A call's transcript, in the order it was written.
    pub fn segments(&self, call_id: &str) -> Result<Vec<SegmentRecord>, StoreError> {
        let mut prefix = call_id.as_bytes().to_vec();
        prefix.push(0);
        self.segments
            .scan_prefix(prefix)
            .map(|entry| {
                let (_, value) = entry?;
                decode("segments", &value)
            })
            .collect()
    }

    /// Ended calls whose minutes are still owed, oldest first.
    pub fn calls_owing_minutes(&self) -> Result<Vec<Call>, StoreError> {
        let mut out = self.calls_where(|c| c.minutes_owed)?;
        out.sort_by_key(|c| c.ended_at);
        Ok(out)
    }

    pub fn minutes_progress(&self, call_id: &str) -> Result<MinutesProgress, StoreError> {
        Ok(self
            .minutes
            .get(call_id.as_bytes())?
            .map(|v| decode("minutes_progress", &v))
            .transpose()?
            .unwrap_or_default())
    }

    pub async fn set_minutes_progress(
        &self,
        call_id: &str,
        progress: &MinutesProgress,
    ) -> Result<(), StoreError> {
        self.minutes.insert(call_id.as_bytes(), encode(progress))?;
        self.flush().await
    }

    /// A small JSON value under `key` in the `meta` tree (e.g. the bot's session).
    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.meta
            .get(key.as_bytes())?
            .map(|v| decode("meta", &v))
            .transpose()
    }

    pub async fn set_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.meta.insert(key.as_bytes(), encode(value))?;
        self.flush().await
    }
}

/// `call_id`, a zero byte, then the sequence number big-endian: a prefix scan
/// gives a call's segments in order.
fn segment_key(call_id: &str, seq: u64) -> Vec<u8> {
    let mut key = call_id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn tx_error(err: TransactionError<()>) -> StoreError {
    match err {
        TransactionError::Storage(e) => StoreError::Sled(e),
        TransactionError::Abort(()) => unreachable!("our transactions never abort"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::{CallState, EndReason};
    use ruma::{owned_event_id, owned_room_id, owned_user_id};
    use std::collections::BTreeSet;

    fn event(room: &str, id: &str) -> QueuedEvent {
        QueuedEvent {
            room_id: OwnedRoomId::try_from(room).unwrap(),
            event_id: OwnedEventId::try_from(id).unwrap(),
            json: format!("{{\"event_id\":\"{id}\"}}"),
        }
    }

    fn call(id: &str) -> Call {
        Call {
            id: id.into(),
            room_id: owned_room_id!("!room:example.org"),
            state: CallState::Active,
            started_by: owned_user_id!("@alice:example.org"),
            started_by_event: None,
            started_at: 1,
            ended_at: None,
            end_reason: None,
            ended_by: None,
            ended_by_event: None,
            participants: BTreeSet::new(),
            attendees: BTreeSet::new(),
            empty_since: None,
            minutes_event_id: None,
            transcribing: false,
            transcript_thread: None,
            transcription_sessions: 0,
            minutes_owed: false,
            room_view: crate::calls::RoomView::Current,
        }
    }

    fn segment(call_id: &str, speaker: &str, text: &str) -> salon_minutes::TranscriptSegment {
        salon_minutes::TranscriptSegment {
            call_id: call_id.into(),
            speaker: speaker.into(),
            speaker_name: None,
            start_ms: 0,
            end_ms: 1000,
            lang: "en".into(),
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn transcripts_owed_minutes_and_room_settings_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let a = store
                .append_segment(&segment("c1", "@a:x", "one"))
                .await
                .unwrap();
            store
                .append_segment(&segment("c10", "@b:x", "other call"))
                .await
                .unwrap();
            store
                .append_segment(&segment("c1", "@b:x", "two"))
                .await
                .unwrap();
            store
                .segment_posted("c1", a, owned_event_id!("$posted"))
                .await
                .unwrap();
            let mut ended = call("c1");
            ended.join(&owned_user_id!("@b:x"));
            assert!(ended.end(5, EndReason::Stopped, None));
            store.save_call(&ended).await.unwrap();
            let mut failed = call("c2");
            failed.room_id = owned_room_id!("!other:example.org");
            failed.join(&owned_user_id!("@b:x"));
            assert!(failed.end(6, EndReason::Failed, None));
            store.save_call(&failed).await.unwrap();
            store
                .update_room_settings(&ended.room_id, |s| s.transcription_auto = true)
                .await
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let c1 = store.segments("c1").unwrap();
        let texts: Vec<&str> = c1.iter().map(|r| r.segment.text.as_str()).collect();
        assert_eq!(texts, ["one", "two"], "only c1's, in order");
        assert_eq!(c1[0].event_id, Some(owned_event_id!("$posted")));
        assert_eq!(c1[1].event_id, None);
        let owed: Vec<String> = store
            .calls_owing_minutes()
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(owed, ["c1"], "a failed call owes no minutes");
        let settings = store
            .room_settings(&owned_room_id!("!room:example.org"))
            .unwrap();
        assert!(settings.transcription_auto);
        assert_eq!(settings.current_call.as_deref(), Some("c1"));
    }

    #[tokio::test]
    async fn an_event_is_queued_once_and_handled_once_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let first = store
                .enqueue(vec![event("!a:x", "$1"), event("!a:x", "$2")])
                .await
                .unwrap();
            assert_eq!(first.len(), 2);
            // A replay of the same events (say, after Synapse restarted its txn ids).
            assert!(
                store
                    .enqueue(vec![event("!a:x", "$1")])
                    .await
                    .unwrap()
                    .is_empty()
            );
            store
                .complete(first[0].0, &owned_event_id!("$1"), 10)
                .await
                .unwrap();
        }
        // Reopen as after a kill: $2 is still owed, $1 is never queued again.
        let store = Store::open(dir.path()).unwrap();
        let inbox = store.inbox().unwrap();
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].1.event_id, owned_event_id!("$2"));
        assert!(store.is_handled(&owned_event_id!("$1")).unwrap());
        assert!(
            store
                .enqueue(vec![event("!a:x", "$1")])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .enqueue(vec![event("!a:x", "$2")])
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn inbox_keeps_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..20 {
            store
                .enqueue(vec![event("!a:x", &format!("$e{i}"))])
                .await
                .unwrap();
        }
        let ids: Vec<String> = store
            .inbox()
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.event_id.to_string())
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("$e{i}")).collect();
        assert_eq!(ids, expected);
    }

    #[tokio::test]
    async fn calls_survive_reopen_and_rooms_know_their_call() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.save_call(&call("c1")).await.unwrap();
            let mut ended = call("c1");
            ended.state = CallState::Ended;
            ended.end_reason = Some(EndReason::Stopped);
            store.save_call(&ended).await.unwrap();
            store.save_call(&call("c2")).await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let room = owned_room_id!("!room:example.org");
        assert_eq!(store.room_call(&room).unwrap().unwrap().id, "c2");
        assert_eq!(
            store.call("c1").unwrap().unwrap().end_reason,
            Some(EndReason::Stopped)
        );
        let active: Vec<String> = store
            .active_calls()
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(active, vec!["c2".to_string()]);
        assert!(
            store
                .room_call(&owned_room_id!("!other:example.org"))
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn old_handled_ids_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let queued = store
            .enqueue(vec![event("!a:x", "$old"), event("!a:x", "$new")])
            .await
            .unwrap();
        store
            .complete(queued[0].0, &owned_event_id!("$old"), 100)
            .await
            .unwrap();
        store
            .complete(queued[1].0, &owned_event_id!("$new"), 900)
            .await
            .unwrap();
        assert_eq!(store.prune_handled(500).unwrap(), 1);
        assert!(!store.is_handled(&owned_event_id!("$old")).unwrap());
        assert!(store.is_handled(&owned_event_id!("$new")).unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_same_event_queued_from_two_paths_at_once_is_queued_once() {
        // The appservice and the E2EE sync race to queue the same events. Eight
        // writers flushing at once also used to deadlock sled's `flush_async`.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids: Vec<String> = (0..100).map(|i| format!("$race{i}")).collect();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, ids) = (store.clone(), ids.clone());
            tasks.push(tokio::spawn(async move {
                let mut queued = 0;
                for id in &ids {
                    queued += store.enqueue(vec![event("!a:x", id)]).await.unwrap().len();
                }
                queued
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        assert_eq!(total, ids.len());
        assert_eq!(store.inbox().unwrap().len(), ids.len());
    }
}
