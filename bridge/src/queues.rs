//! One ordered queue per room.
//!
//! Events for one room are handled strictly in order by that room's own task;
//! different rooms never wait on each other. Timers (a call whose grace period
//! ran out), participant changes and transcript notices go through the same
//! queue, so they never race a command and a slow room delays only itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ruma::{OwnedRoomId, OwnedUserId};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info_span};

use crate::store::QueuedEvent;
use crate::transcription::Transcribed;

/// A unit of work for one room.
#[derive(Debug)]
pub enum RoomJob {
    /// An event from the inbox, with its sequence number.
    Event(u64, QueuedEvent),
    /// Check whether the room's call should end by itself.
    CheckTimeout,
    /// Someone (a LiveKit identity) joined (`true`) or left the room's
    /// media session.
    Participant { identity: String, joined: bool },
    /// A stored utterance to post in the call's transcript thread.
    TranscriptNotice(u64, Box<Transcribed>),
    /// A moderator's act from the call page, in order with the room's
    /// commands; `answer` gets the outcome for the page.
    PageAct {
        by: OwnedUserId,
        act: PageAct,
        answer: oneshot::Sender<PageAnswer>,
    },
}

/// What a moderator asks from the call page.
#[derive(Debug, Clone)]
pub enum PageAct {
    /// Mute, remove… the participant behind a LiveKit identity (none for
    /// mute all, lock, unlock).
    Moderate {
        action: crate::moderation::Action,
        target_identity: Option<String>,
    },
    /// Admit or deny a guest waiting in the lobby.
    Lobby { admit: bool, guest: String },
}

/// The outcome of a [`PageAct`]: the JSON for the page, or an HTTP status
/// and the reason.
pub type PageAnswer = Result<serde_json::Value, (u16, String)>;

/// What runs a room's jobs; implemented by the app.
pub trait RoomWorker: Send + Sync + 'static {
    fn run(
        &self,
        room_id: OwnedRoomId,
        job: RoomJob,
    ) -> impl std::future::Future<Output = ()> + Send;
}

type Senders = HashMap<OwnedRoomId, mpsc::UnboundedSender<RoomJob>>;
type Spawner = Arc<dyn Fn(OwnedRoomId) -> mpsc::UnboundedSender<RoomJob> + Send + Sync>;

/// The per-room queues. Cheap to clone.
#[derive(Clone, Default)]
pub struct RoomQueues {
    senders: Arc<Mutex<Senders>>,
    spawner: Arc<OnceLock<Spawner>>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl RoomQueues {
    /// Starts serving jobs with `worker`. Jobs sent before are kept in order.
    pub fn start<W: RoomWorker>(&self, worker: Arc<W>) {
        let tasks = self.tasks.clone();
        let spawner: Spawner = Arc::new(move |room_id: OwnedRoomId| {
            let (tx, mut rx) = mpsc::unbounded_channel::<RoomJob>();
            let worker = worker.clone();
            // A root span: the room outlives the transaction that created its task.
            let span = info_span!(parent: None, "room", room_id = %room_id);
            let task = tokio::spawn(
                async move {
                    while let Some(job) = rx.recv().await {
                        worker.run(room_id.clone(), job).await;
                    }
                }
                .instrument(span),
            );
            let mut tasks = tasks.lock().expect("queues lock");
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
            tx
        });
        let _ = self.spawner.set(spawner);
    }

    fn send(&self, room_id: OwnedRoomId, job: RoomJob) {
        let spawner = self
            .spawner
            .get()
            .expect("room queues are started before the HTTP server");
        let mut senders = self.senders.lock().expect("queues lock");
        let tx = senders
            .entry(room_id.clone())
            .or_insert_with(|| spawner(room_id.clone()));
        if let Err(mpsc::error::SendError(job)) = tx.send(job) {
            // The room's task ended (it only does at shutdown); start a new one.
            let fresh = spawner(room_id.clone());
            let _ = fresh.send(job);
            senders.insert(room_id, fresh);
        }
    }

    /// At shutdown: takes no more jobs and waits (up to `limit`) for every
    /// room to finish the jobs it has. Returns how many rooms were still busy.
    /// Events not finished stay in the inbox and are replayed at the next start.
    pub async fn shutdown(&self, limit: std::time::Duration) -> usize {
        // dropping the senders ends each room's task after its queued jobs
        self.senders.lock().expect("queues lock").clear();
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("queues lock"));
        let deadline = tokio::time::Instant::now() + limit;
        let mut busy = 0;
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
                busy += 1;
            }
        }
        busy
    }

    pub fn dispatch_event(&self, seq: u64, event: QueuedEvent) {
        self.send(event.room_id.clone(), RoomJob::Event(seq, event));
    }

    pub fn participant(&self, room_id: OwnedRoomId, identity: String, joined: bool) {
        self.send(room_id, RoomJob::Participant { identity, joined });
    }

    pub fn check_timeout(&self, room_id: OwnedRoomId) {
        self.send(room_id, RoomJob::CheckTimeout);
    }

    pub fn transcript_notice(&self, room_id: OwnedRoomId, seq: u64, t: Box<Transcribed>) {
        self.send(room_id, RoomJob::TranscriptNotice(seq, t));
    }

    /// Queues a moderator's act from the call page; the outcome comes on the
    /// returned channel (dropped unanswered if the bridge stops first).
    pub fn page_act(
        &self,
        room_id: OwnedRoomId,
        by: OwnedUserId,
        act: PageAct,
    ) -> oneshot::Receiver<PageAnswer> {
        let (answer, outcome) = oneshot::channel();
        self.send(room_id, RoomJob::PageAct { by, act, answer });
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Recorder {
        log: Mutex<Vec<(String, String)>>,
    }

    impl RoomWorker for Recorder {
        async fn run(&self, room_id: OwnedRoomId, job: RoomJob) {
            if let RoomJob::Event(_, e) = job {
                // Room A's first event is slow: room B must not wait for it.
                if e.event_id.as_str() == "$a1" {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                self.log
                    .lock()
                    .unwrap()
                    .push((room_id.to_string(), e.event_id.to_string()));
            }
        }
    }

    fn event(room: &str, id: &str) -> QueuedEvent {
        QueuedEvent {
            room_id: room.try_into().unwrap(),
            event_id: id.try_into().unwrap(),
            sender: "@a:x".try_into().unwrap(),
            kind: crate::store::EventKind::Other {
                event_type: "m.room.message".into(),
            },
        }
    }

    /// Queues served by a fresh recorder.
    fn started() -> (Arc<Recorder>, RoomQueues) {
        let recorder = Arc::new(Recorder {
            log: Mutex::new(Vec::new()),
        });
        let queues = RoomQueues::default();
        queues.start(recorder.clone());
        (recorder, queues)
    }

    #[tokio::test]
    async fn rooms_are_ordered_and_independent() {
        let (recorder, queues) = started();
        queues.dispatch_event(1, event("!a:x", "$a1"));
        queues.dispatch_event(2, event("!a:x", "$a2"));
        queues.dispatch_event(3, event("!b:x", "$b1"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let log = recorder.log.lock().unwrap().clone();
        let order: Vec<&str> = log.iter().map(|(_, e)| e.as_str()).collect();
        assert_eq!(order, vec!["$b1", "$a1", "$a2"]);
    }

    #[tokio::test]
    async fn shutdown_finishes_queued_jobs_then_stops() {
        let (recorder, queues) = started();
        queues.dispatch_event(1, event("!a:x", "$a1"));
        queues.dispatch_event(2, event("!a:x", "$a2"));
        let busy = queues.shutdown(Duration::from_secs(2)).await;
        assert_eq!(busy, 0);
        let log = recorder.log.lock().unwrap().clone();
        assert_eq!(
            log.len(),
            2,
            "the slow first event and the one after it ran"
        );
    }
}
