//! One call being transcribed: its [`Session`] (language, taps, stop signal)
//! and the count of what is still outstanding in it.
//!
//! The [`Transcriber`](super::Transcriber) creates a session when a call's
//! transcription starts; each audio tap ([`track`](super::track)) and each
//! queued final holds a [`Pending`] on it until the final is posted, skipped
//! or dropped, so `drain` knows when everything said has been handed on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ruma::OwnedRoomId;
use salon_speech::Language;
use tokio::sync::{Notify, watch};

/// One call being transcribed.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) call_id: String,
    pub(super) room_id: OwnedRoomId,
    /// The call's LiveKit room, where its audio is tapped.
    pub(super) media_room: String,
    /// The call's start, ms since the epoch: segment times count from it.
    pub(super) call_started_at: u64,
    /// The room's language, or the server's (`auto`: detected per utterance).
    pub(super) language: Language,
    /// Running taps by identity.
    pub(super) taps: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    /// Finals queued or being transcribed or posted, plus running taps.
    pub(super) outstanding: AtomicUsize,
    pub(super) drained: Notify,
    pub(super) stop: watch::Sender<bool>,
}

impl Session {
    pub(super) fn new(
        call_id: String,
        room_id: OwnedRoomId,
        media_room: String,
        call_started_at: u64,
        language: Language,
    ) -> Arc<Self> {
        Arc::new(Session {
            call_id,
            room_id,
            media_room,
            call_started_at,
            language,
            taps: Mutex::new(HashMap::new()),
            outstanding: AtomicUsize::new(0),
            drained: Notify::new(),
            stop: watch::channel(false).0,
        })
    }

    /// Whether the call's transcription was stopped.
    pub(super) fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits until nothing is outstanding.
    pub(super) async fn all_done(&self) {
        loop {
            let notified = self.drained.notified();
            if self.outstanding.load(Ordering::SeqCst) == 0 {
                break;
            }
            notified.await;
        }
    }

    fn job_done(&self) {
        if self.outstanding.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.drained.notify_waiters();
        }
    }
}

/// An outstanding final of a session: counted from its queuing until it is
/// dropped (posted, skipped, or dropped from a full queue).
#[derive(Debug)]
pub(super) struct Pending(Option<Arc<Session>>);

impl Pending {
    pub(super) fn new(session: &Arc<Session>) -> Self {
        session.outstanding.fetch_add(1, Ordering::SeqCst);
        Pending(Some(session.clone()))
    }

    /// Counts nothing: what a partial carries.
    pub(super) fn none() -> Self {
        Pending(None)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(session) = self.0.take() {
            session.job_done();
        }
    }
}
