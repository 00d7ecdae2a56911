//! The engine's bounded [`JobQueue`]: finals wait, partials make way.
//!
//! The audio taps ([`track`](super::track)) push utterances here without ever
//! waiting; the ASR worker threads ([`worker`](super::worker)) block on
//! [`JobQueue::pop`]. When the queue is full a partial is dropped first, and
//! the oldest final only when nothing else is left; both drops are counted in
//! `/metrics`. At shutdown [`JobQueue::close`] lets the workers finish what is
//! queued, then exit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tracing::warn;

use super::session::{Pending, Session};
use super::track::UtteranceId;
use crate::metrics::Metrics;

/// One utterance (or partial) for the engine.
pub(super) struct Job {
    pub(super) session: Arc<Session>,
    /// Set for finals.
    pub(super) pending: Pending,
    /// The LiveKit identity the audio came from.
    pub(super) identity: String,
    /// The Matrix user behind it.
    pub(super) speaker: String,
    pub(super) speaker_name: String,
    pub(super) utterance: UtteranceId,
    pub(super) start_ms: u64,
    pub(super) end_ms: u64,
    pub(super) pcm: Vec<f32>,
    pub(super) is_final: bool,
    pub(super) speech_end_at: Instant,
}

/// The engine's bounded queue: finals wait, partials make way.
pub(super) struct JobQueue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
    capacity: usize,
    workers: usize,
    busy: AtomicUsize,
    /// Set at shutdown: workers finish what is queued, then exit.
    closed: AtomicBool,
    metrics: Arc<Metrics>,
}

impl JobQueue {
    /// A queue of at most `capacity` jobs for `workers` worker threads.
    pub(super) fn new(capacity: usize, workers: usize, metrics: Arc<Metrics>) -> Self {
        JobQueue {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity,
            workers,
            busy: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            metrics,
        }
    }

    pub(super) fn push(&self, job: Job) {
        let mut jobs = self.jobs.lock().expect("transcription queue lock");
        if job.is_final {
            // the final supersedes its partials
            jobs.retain(|j| j.is_final || j.utterance != job.utterance);
        }
        while jobs.len() >= self.capacity {
            if let Some(i) = jobs.iter().position(|j| !j.is_final) {
                jobs.remove(i);
                Metrics::inc(&self.metrics.transcription_dropped_partials);
            } else if let Some(oldest) = jobs.pop_front() {
                Metrics::inc(&self.metrics.transcription_dropped_finals);
                warn!(call_id = %oldest.session.call_id, speaker = %oldest.speaker, "transcription queue full: dropped the oldest utterance");
            }
        }
        jobs.push_back(job);
        Metrics::set(&self.metrics.transcription_queue, jobs.len() as u64);
        self.ready.notify_one();
    }

    /// Blocks until there is a job (the caller is then busy until `done`),
    /// or returns `None` once the queue is closed and empty.
    pub(super) fn pop(&self) -> Option<Job> {
        let mut jobs = self.jobs.lock().expect("transcription queue lock");
        loop {
            if let Some(job) = jobs.pop_front() {
                self.busy.fetch_add(1, Ordering::SeqCst);
                Metrics::set(&self.metrics.transcription_queue, jobs.len() as u64);
                return Some(job);
            }
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            jobs = self.ready.wait(jobs).expect("transcription queue lock");
        }
    }

    /// Lets the workers exit once the queue is empty.
    pub(super) fn close(&self) {
        let _jobs = self.jobs.lock().expect("transcription queue lock");
        self.closed.store(true, Ordering::SeqCst);
        self.ready.notify_all();
    }

    pub(super) fn done(&self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// True when a worker would start on a new job at once.
    pub(super) fn idle(&self) -> bool {
        let jobs = self.jobs.lock().expect("transcription queue lock");
        jobs.is_empty() && self.busy.load(Ordering::SeqCst) < self.workers
    }
}

#[cfg(test)]
mod tests {
    use salon_speech::Language;

    use super::*;

    fn session() -> Arc<Session> {
        Session::new(
            "c1".into(),
            ruma::owned_room_id!("!r:example.org"),
            "media".into(),
            0,
            Language::Auto,
        )
    }

    fn job(session: &Arc<Session>, utterance: &str, is_final: bool) -> Job {
        Job {
            session: session.clone(),
            pending: if is_final {
                Pending::new(session)
            } else {
                Pending::none()
            },
            identity: "@a:example.org:DEV".into(),
            speaker: "@a:example.org".into(),
            speaker_name: "A".into(),
            utterance: UtteranceId::from_raw(utterance),
            start_ms: 0,
            end_ms: 1000,
            pcm: vec![0.0; 16],
            is_final,
            speech_end_at: Instant::now(),
        }
    }

    fn queue(capacity: usize, metrics: &Arc<Metrics>) -> JobQueue {
        JobQueue::new(capacity, 1, metrics.clone())
    }

    #[test]
    fn a_full_queue_drops_partials_first_then_the_oldest_final() {
        let metrics = Arc::new(Metrics::default());
        let q = queue(3, &metrics);
        let s = session();
        q.push(job(&s, "u1", false));
        q.push(job(&s, "u2", true));
        q.push(job(&s, "u3", true));
        q.push(job(&s, "u4", true));
        assert_eq!(
            metrics
                .transcription_dropped_partials
                .load(Ordering::Relaxed),
            1
        );
        assert_eq!(
            metrics.transcription_dropped_finals.load(Ordering::Relaxed),
            0
        );
        q.push(job(&s, "u5", true));
        assert_eq!(
            metrics.transcription_dropped_finals.load(Ordering::Relaxed),
            1
        );
        // the dropped final no longer counts as outstanding
        assert_eq!(s.outstanding.load(Ordering::SeqCst), 3);
        let order: Vec<String> = (0..3)
            .map(|_| q.pop().unwrap().utterance.as_str().to_owned())
            .collect();
        assert_eq!(order, ["u3", "u4", "u5"]);
        // closed and empty: a worker exits instead of waiting
        q.close();
        assert!(q.pop().is_none());
        assert_eq!(
            s.outstanding.load(Ordering::SeqCst),
            0,
            "handled finals are done"
        );
    }

    #[test]
    fn a_final_replaces_its_queued_partials() {
        let metrics = Arc::new(Metrics::default());
        let q = queue(8, &metrics);
        let s = session();
        q.push(job(&s, "u1", false));
        q.push(job(&s, "u2", false));
        q.push(job(&s, "u1", true));
        let first = q.pop().unwrap();
        assert_eq!((first.utterance.as_str(), first.is_final), ("u2", false));
        let second = q.pop().unwrap();
        assert_eq!((second.utterance.as_str(), second.is_final), ("u1", true));
        q.done();
        q.done();
        assert!(q.idle());
    }
}
