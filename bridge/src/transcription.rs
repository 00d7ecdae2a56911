//! Live transcription of calls, per speaker, on this machine.
//!
//! Every participant's audio comes from the SFU as their own Opus track (an
//! [`AudioTap`]), so each word is attributed to exactly one Matrix user with
//! no diarisation guesswork. One task per participant decodes the packets to
//! 16 kHz ([`OpusTrackDecoder`]) and cuts them into utterances on silence
//! ([`UtteranceSegmenter`]); finished utterances go to a bounded queue that a
//! small pool of OS threads drains through the speech engine. Media never
//! waits for the engine: the taps only decode and queue.
//!
//! Backpressure: while the engine keeps up, every utterance is transcribed.
//! Partial captions (the open utterance, transcribed while someone is still
//! speaking) are only queued when a worker is idle, and are the first thing
//! dropped when the queue is full; finals are dropped only when the queue holds
//! nothing else. Both drops are counted in `/metrics`.
//!
//! Results flow back on a channel to the bridge, which stores them, sends
//! captions into the call and posts the transcript notices (see `room.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ruma::OwnedRoomId;
use salon_speech::live::{OpusTrackDecoder, SegmenterConfig, UtteranceSegmenter};
use salon_speech::{Language, SpeechEngine, TranscribeOptions};
use tokio::sync::{OnceCell, mpsc, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::calls::Call;
use crate::clock::now_millis;
use crate::config::{SpeechEngineConfig, TranscriptionConfig};
use crate::media::{AudioTap, Caption, MediaBackend};
use crate::metrics::Metrics;

/// A participant silent this long while an utterance is open closes it (DTX
/// or a muted microphone stops the packets).
const SILENCE_TIMEOUT: Duration = Duration::from_millis(700);
/// The longest gap in a track filled with silence; beyond it the track's
/// clock jumps.
const MAX_GAP_MS: u64 = 3_000;
/// A partial caption needs this much open speech, and this long since the last.
const PARTIAL_MIN_AUDIO_MS: u64 = 1_000;
/// Past this, a partial costs too much; the final follows soon (the
/// utterance is cut at `max_utterance_seconds`).
const PARTIAL_MAX_AUDIO_MS: u64 = 8_000;
const PARTIAL_EVERY: Duration = Duration::from_millis(1_200);

/// One transcribed utterance (or partial), on its way to the room. Dropping
/// a final tells its call that one less utterance is outstanding.
#[derive(Debug)]
pub struct Transcribed {
    pub call_id: String,
    pub room_id: OwnedRoomId,
    /// The speaker's Matrix user id (the SFU identity).
    pub speaker: String,
    /// The speaker's display name in the call.
    pub speaker_name: String,
    /// Stable per utterance: a partial and its final share it.
    pub utterance: String,
    /// Milliseconds from the start of the call.
    pub start_ms: u64,
    pub end_ms: u64,
    pub lang: String,
    /// Empty when the engine heard no words (or failed).
    pub text: String,
    pub is_final: bool,
    /// When the speech ended (approximately), for the caption latency.
    pub speech_end_at: Instant,
    _pending: Pending,
}

impl Transcribed {
    /// The caption this result shows in the call.
    pub fn caption(&self, is_final: bool) -> Caption<'_> {
        Caption {
            call_id: &self.call_id,
            speaker: &self.speaker,
            utterance: &self.utterance,
            text: &self.text,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            is_final,
        }
    }
}

/// An outstanding final of a session: counted from its queuing until it is
/// dropped (posted, skipped, or dropped from a full queue).
#[derive(Debug)]
struct Pending(Option<Arc<Session>>);

impl Pending {
    fn new(session: &Arc<Session>) -> Self {
        session.outstanding.fetch_add(1, Ordering::SeqCst);
        Pending(Some(session.clone()))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(session) = self.0.take() {
            session.job_done();
        }
    }
}

struct Job {
    session: Arc<Session>,
    /// Set for finals.
    pending: Pending,
    speaker: String,
    speaker_name: String,
    utterance: String,
    start_ms: u64,
    end_ms: u64,
    pcm: Vec<f32>,
    is_final: bool,
    speech_end_at: Instant,
}

/// The engine's bounded queue: finals wait, partials make way.
struct JobQueue {
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
    fn push(&self, job: Job) {
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
    fn pop(&self) -> Option<Job> {
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
    fn close(&self) {
        let _jobs = self.jobs.lock().expect("transcription queue lock");
        self.closed.store(true, Ordering::SeqCst);
        self.ready.notify_all();
    }

    fn done(&self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// True when a worker would start on a new job at once.
    fn idle(&self) -> bool {
        let jobs = self.jobs.lock().expect("transcription queue lock");
        jobs.is_empty() && self.busy.load(Ordering::SeqCst) < self.workers
    }
}

/// One call being transcribed.
#[derive(Debug)]
struct Session {
    call_id: String,
    room_id: OwnedRoomId,
    /// The call's start, ms since the epoch: segment times count from it.
    call_started_at: u64,
    /// The room's language, or the server's (`auto`: detected per utterance).
    language: Language,
    /// Running taps by identity.
    taps: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    /// Finals queued or being transcribed or posted, plus running taps.
    outstanding: AtomicUsize,
    drained: tokio::sync::Notify,
    stop: watch::Sender<bool>,
}

impl Session {
    fn job_done(&self) {
        if self.outstanding.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.drained.notify_waiters();
        }
    }
}

/// Why transcription cannot run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EngineUnavailable(String);

/// The live transcription service of the bridge.
pub struct Transcriber {
    config: TranscriptionConfig,
    media: Arc<dyn MediaBackend>,
    metrics: Arc<Metrics>,
    engine: OnceCell<Arc<dyn SpeechEngine>>,
    queue: Arc<JobQueue>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    results: mpsc::UnboundedSender<Transcribed>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Transcriber {
    /// The service, and the stream of results for the bridge to post.
    pub fn new(
        config: TranscriptionConfig,
        media: Arc<dyn MediaBackend>,
        metrics: Arc<Metrics>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Transcribed>) {
        let (results, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(JobQueue {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity: config.queue,
            workers: config.workers,
            busy: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            metrics: metrics.clone(),
        });
        let transcriber = Arc::new(Transcriber {
            config,
            media,
            metrics,
            engine: OnceCell::new(),
            queue,
            sessions: Mutex::new(HashMap::new()),
            results,
            workers: Mutex::new(Vec::new()),
        });
        (transcriber, rx)
    }

    /// Loads the speech engine (once) and starts its workers. Errors say what
    /// to install or fix; a later call tries again.
    pub async fn ensure_engine(&self) -> Result<(), EngineUnavailable> {
        self.engine
            .get_or_try_init(|| async {
                let config = self.config.engine.clone();
                let started = Instant::now();
                let engine = tokio::task::spawn_blocking(move || load_engine(&config))
                    .await
                    .map_err(|e| EngineUnavailable(format!("the engine failed to load: {e}")))??;
                info!(
                    load_ms = started.elapsed().as_millis() as u64,
                    workers = self.config.workers,
                    "speech engine ready"
                );
                self.start_workers(engine.clone());
                Ok(engine)
            })
            .await
            .map(|_| ())
    }

    fn start_workers(&self, engine: Arc<dyn SpeechEngine>) {
        let options = TranscribeOptions {
            language: Language::parse(&self.config.language),
            ..TranscribeOptions::default()
        };
        // A partial is cut mid-word and soon replaced: one greedy pass, never
        // the temperature fallback that a garbled ending would trigger.
        let partial = TranscribeOptions {
            temperatures: vec![0.0],
            ..options.clone()
        };
        for n in 0..self.config.workers {
            let (engine, queue, results, metrics, options) = (
                engine.clone(),
                self.queue.clone(),
                self.results.clone(),
                self.metrics.clone(),
                [options.clone(), partial.clone()],
            );
            let spawned = std::thread::Builder::new()
                .name(format!("salon-asr-{n}"))
                .spawn(move || run_worker(&*engine, &queue, &results, &metrics, &options));
            match spawned {
                Ok(handle) => self.workers.lock().expect("workers lock").push(handle),
                Err(e) => warn!(error = %e, "cannot start a transcription worker"),
            }
        }
    }

    /// Starts transcribing a live call: taps everyone in it now; later
    /// arrivals are tapped by [`Transcriber::participant_joined`].
    /// `language` is the room's setting (a code), if it has one.
    pub fn start(&self, call: &Call, language: Option<&str>) {
        let language = Language::parse(language.unwrap_or(&self.config.language));
        let session = {
            let mut sessions = self.sessions.lock().expect("sessions lock");
            if let Some(existing) = sessions.get(&call.id)
                && !*existing.stop.borrow()
            {
                existing.clone()
            } else {
                let session = Arc::new(Session {
                    call_id: call.id.clone(),
                    room_id: call.room_id.clone(),
                    call_started_at: call.started_at,
                    language,
                    taps: Mutex::new(HashMap::new()),
                    outstanding: AtomicUsize::new(0),
                    drained: tokio::sync::Notify::new(),
                    stop: watch::channel(false).0,
                });
                sessions.insert(call.id.clone(), session.clone());
                session
            }
        };
        info!(call_id = %call.id, language = %session.language, "transcription started");
        for participant in self.media.participants(&call.id) {
            self.tap(&session, &participant.identity, &participant.name);
        }
    }

    /// Someone joined a call's media session: tap them if it is transcribed.
    pub fn participant_joined(&self, call_id: &str, identity: &str, name: &str) {
        let session = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get(call_id)
            .cloned();
        if let Some(session) = session.filter(|s| !*s.stop.borrow()) {
            self.tap(&session, identity, name);
        }
    }

    fn tap(&self, session: &Arc<Session>, identity: &str, name: &str) {
        let mut taps = session.taps.lock().expect("taps lock");
        if taps.get(identity).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let Some(tap) = self.media.subscribe_audio(&session.call_id, identity) else {
            return;
        };
        let span = info_span!("audio_tap", call_id = %session.call_id, speaker = %identity);
        let track = TrackTranscription {
            _alive: Pending::new(session),
            session: session.clone(),
            queue: self.queue.clone(),
            speaker: identity.to_owned(),
            speaker_name: if name.is_empty() { identity } else { name }.to_owned(),
            max_utterance: self.config.max_utterance,
            partials: self.config.partials,
        };
        taps.insert(
            identity.to_owned(),
            tokio::spawn(track.run(tap).instrument(span)),
        );
    }

    /// Stops transcribing a call: open utterances are finished and still
    /// transcribed. Returns false if it was not being transcribed.
    pub fn stop(&self, call_id: &str) -> bool {
        let session = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get(call_id)
            .cloned();
        match session {
            Some(session) => {
                let _ = session.stop.send(true);
                info!(call_id, "transcription stopped");
                true
            }
            None => false,
        }
    }

    /// Waits until everything said in the call is transcribed and posted (or
    /// `limit` passed), then forgets the call's session.
    pub async fn drain(&self, call_id: &str, limit: Duration) {
        let session = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get(call_id)
            .cloned();
        let Some(session) = session else {
            return;
        };
        let _ = session.stop.send(true);
        let waited = tokio::time::timeout(limit, async {
            loop {
                let notified = session.drained.notified();
                if session.outstanding.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
        })
        .await;
        if waited.is_err() {
            warn!(
                call_id,
                outstanding = session.outstanding.load(Ordering::SeqCst),
                "transcription still busy; writing the minutes without the rest"
            );
        }
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions
            .get(call_id)
            .is_some_and(|s| Arc::ptr_eq(s, &session))
        {
            sessions.remove(call_id);
        }
    }
}

impl Transcriber {
    /// At shutdown: stops every call's taps, waits (up to `limit` in all)
    /// for what was said to be transcribed and handed on, then lets the
    /// worker threads finish and exit. Calls stay marked as transcribed in
    /// the store, so the next start resumes them.
    pub async fn shutdown(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let calls: Vec<String> = self
            .sessions
            .lock()
            .expect("sessions lock")
            .keys()
            .cloned()
            .collect();
        for call_id in &calls {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.drain(call_id, left).await;
        }
        self.queue.close();
        let workers = std::mem::take(&mut *self.workers.lock().expect("workers lock"));
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let joined = tokio::time::timeout(
            left.max(Duration::from_secs(1)),
            tokio::task::spawn_blocking(move || {
                for worker in workers {
                    let _ = worker.join();
                }
            }),
        )
        .await;
        if joined.is_err() {
            warn!("a transcription worker is still busy; leaving it behind");
        }
    }
}

fn load_engine(config: &SpeechEngineConfig) -> Result<Arc<dyn SpeechEngine>, EngineUnavailable> {
    match config {
        SpeechEngineConfig::Builtin { model } => salon_speech::WhisperModel::load(model)
            .map(|m| Arc::new(m) as Arc<dyn SpeechEngine>)
            .map_err(|e| {
                EngineUnavailable(format!(
                    "the speech model at {} cannot be used ({e}); install it with scripts/install-models.sh",
                    model.display()
                ))
            }),
        SpeechEngineConfig::Remote {
            url,
            model,
            api_key,
            timeout,
        } => salon_speech::RemoteEngine::new(salon_speech::RemoteConfig {
            base_url: url.as_str().trim_end_matches('/').to_owned(),
            api_key: api_key.as_ref().map(|k| k.expose().to_owned()),
            model: model.clone(),
            timeout: *timeout,
        })
        .map(|e| Arc::new(e) as Arc<dyn SpeechEngine>)
        .map_err(|e| EngineUnavailable(format!("the remote speech engine cannot be used: {e}"))),
    }
}

fn run_worker(
    engine: &dyn SpeechEngine,
    queue: &JobQueue,
    results: &mpsc::UnboundedSender<Transcribed>,
    metrics: &Metrics,
    [final_options, partial_options]: &[TranscribeOptions; 2],
) {
    while let Some(job) = queue.pop() {
        let started = Instant::now();
        let mut options = if job.is_final {
            final_options.clone()
        } else {
            partial_options.clone()
        };
        options.language = job.session.language.clone();
        let outcome = engine.transcribe(&job.pcm, &options);
        queue.done();
        let audio_ms = job.pcm.len() as u64 * 1000 / salon_speech::SAMPLE_RATE as u64;
        let engine_ms = started.elapsed().as_millis() as u64;
        Metrics::add(&metrics.transcription_audio_ms, audio_ms);
        Metrics::add(&metrics.transcription_engine_ms, engine_ms);
        let (text, lang) = match outcome {
            Ok(transcript) => (transcript.text(), transcript.language),
            Err(e) => {
                Metrics::inc(&metrics.transcription_errors);
                warn!(call_id = %job.session.call_id, speaker = %job.speaker, error = %e, "transcription failed");
                (String::new(), String::new())
            }
        };
        debug!(call_id = %job.session.call_id, speaker = %job.speaker, is_final = job.is_final, audio_ms, engine_ms, chars = text.len(), "utterance transcribed");
        let result = Transcribed {
            call_id: job.session.call_id.clone(),
            room_id: job.session.room_id.clone(),
            speaker: job.speaker,
            speaker_name: job.speaker_name,
            utterance: job.utterance,
            start_ms: job.start_ms,
            end_ms: job.end_ms,
            lang,
            text,
            is_final: job.is_final,
            speech_end_at: job.speech_end_at,
            _pending: job.pending,
        };
        let _ = results.send(result);
    }
}

/// One participant's audio, from packets to queued utterances.
struct TrackTranscription {
    /// A running tap counts as outstanding: it may still queue an utterance.
    _alive: Pending,
    session: Arc<Session>,
    queue: Arc<JobQueue>,
    speaker: String,
    speaker_name: String,
    max_utterance: Duration,
    partials: bool,
}

/// Maps RTP timestamps to milliseconds from the start of the call.
struct TrackClock {
    first_rtp: u32,
    first_ms: u64,
    last_rtp: u32,
}

impl TrackClock {
    /// The packet's time, or `None` for a late (reordered) packet.
    fn at(&mut self, rtp: u32) -> Option<u64> {
        let step = rtp.wrapping_sub(self.last_rtp) as i32;
        if step < 0 {
            return None;
        }
        self.last_rtp = rtp;
        let since_first = rtp.wrapping_sub(self.first_rtp) as u64;
        Some(self.first_ms + since_first / 48)
    }
}

/// Whether a chunk sounds like someone speaking right now (above -40 dBFS):
/// a partial is not worth it when the utterance is about to end.
fn is_loud(pcm: &[f32]) -> bool {
    !pcm.is_empty() && pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len() as f32 > 1e-4
}

impl TrackTranscription {
    async fn run(self, mut tap: AudioTap) {
        let mut decoder = match OpusTrackDecoder::new(1) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot decode this track");
                return;
            }
        };
        let mut segmenter = UtteranceSegmenter::new(SegmenterConfig {
            max_utterance_ms: self.max_utterance.as_millis() as u64,
            ..SegmenterConfig::default()
        });
        let end_silence = Duration::from_millis(segmenter.config().end_silence_ms);
        let mut stop = self.session.stop.subscribe();
        let mut clock: Option<TrackClock> = None;
        // track time of the next sample given to the segmenter
        let mut position_ms = 0u64;
        let mut utterances = 0u64;
        let mut last_partial = Instant::now();
        debug!("tapping audio");
        loop {
            let packet = tokio::select! {
                packet = tap.recv() => packet,
                _ = tokio::time::sleep(SILENCE_TIMEOUT), if segmenter.in_speech() => {
                    // the packets stopped mid-utterance (DTX, mute): it is silence
                    let zeros = vec![0.0; (end_silence.as_millis() as usize + 100) * 16];
                    for u in segmenter.push(position_ms, &zeros) {
                        self.queue_final(&mut utterances, u, Instant::now() - SILENCE_TIMEOUT);
                    }
                    position_ms += end_silence.as_millis() as u64 + 100;
                    continue;
                }
                _ = stop.wait_for(|stopped| *stopped) => None,
            };
            let Some(packet) = packet else { break };
            let clock = clock.get_or_insert_with(|| TrackClock {
                first_rtp: packet.rtp_timestamp,
                first_ms: now_millis().saturating_sub(self.session.call_started_at),
                last_rtp: packet.rtp_timestamp,
            });
            let Some(at_ms) = clock.at(packet.rtp_timestamp) else {
                continue;
            };
            if position_ms == 0 {
                position_ms = at_ms;
            }
            if at_ms > position_ms + 60 {
                // a gap (DTX or loss): silence, so utterances end on time
                let gap = (at_ms - position_ms).min(MAX_GAP_MS);
                let zeros = vec![0.0; gap as usize * 16];
                for u in segmenter.push(position_ms, &zeros) {
                    self.queue_final(&mut utterances, u, packet.received_at - end_silence);
                }
                position_ms = at_ms;
            }
            let pcm = match decoder.decode_packet(&packet.payload) {
                Ok(pcm) => pcm,
                Err(e) => {
                    debug!(error = %e, "undecodable packet");
                    continue;
                }
            };
            for u in segmenter.push(position_ms, &pcm) {
                self.queue_final(&mut utterances, u, packet.received_at - end_silence);
            }
            position_ms += pcm.len() as u64 / 16;
            if self.partials
                && is_loud(&pcm)
                && last_partial.elapsed() >= PARTIAL_EVERY
                && let Some((start_ms, audio)) = segmenter.open_audio()
                && (PARTIAL_MIN_AUDIO_MS..=PARTIAL_MAX_AUDIO_MS)
                    .contains(&(audio.len() as u64 / 16))
                && self.queue.idle()
            {
                last_partial = Instant::now();
                self.queue.push(Job {
                    session: self.session.clone(),
                    pending: Pending(None),
                    speaker: self.speaker.clone(),
                    speaker_name: self.speaker_name.clone(),
                    utterance: self.utterance_id(utterances),
                    start_ms,
                    end_ms: start_ms + audio.len() as u64 / 16,
                    pcm: audio.to_vec(),
                    is_final: false,
                    speech_end_at: Instant::now(),
                });
            }
        }
        if let Some(u) = segmenter.finish() {
            self.queue_final(&mut utterances, u, Instant::now());
        }
        if tap.skipped() > 0 {
            warn!(
                skipped = tap.skipped(),
                "the audio tap fell behind and skipped packets"
            );
        }
        debug!(utterances, "audio tap ended");
    }

    fn utterance_id(&self, n: u64) -> String {
        // the speaker's id is part of it so captions of two speakers never clash
        let speaker: String = self
            .speaker
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(24)
            .collect();
        format!("{}-{speaker}-{n}", self.session.call_id)
    }

    fn queue_final(
        &self,
        utterances: &mut u64,
        u: salon_speech::live::Utterance,
        speech_end_at: Instant,
    ) {
        let id = self.utterance_id(*utterances);
        *utterances += 1;
        self.queue.push(Job {
            session: self.session.clone(),
            pending: Pending::new(&self.session),
            speaker: self.speaker.clone(),
            speaker_name: self.speaker_name.clone(),
            utterance: id,
            start_ms: u.start_ms,
            end_ms: u.end_ms,
            pcm: u.pcm,
            is_final: true,
            speech_end_at,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Arc<Session> {
        Arc::new(Session {
            call_id: "c1".into(),
            room_id: ruma::owned_room_id!("!r:example.org"),
            call_started_at: 0,
            language: Language::Auto,
            taps: Mutex::new(HashMap::new()),
            outstanding: AtomicUsize::new(0),
            drained: tokio::sync::Notify::new(),
            stop: watch::channel(false).0,
        })
    }

    fn job(session: &Arc<Session>, utterance: &str, is_final: bool) -> Job {
        Job {
            session: session.clone(),
            pending: if is_final {
                Pending::new(session)
            } else {
                Pending(None)
            },
            speaker: "@a:example.org".into(),
            speaker_name: "A".into(),
            utterance: utterance.into(),
            start_ms: 0,
            end_ms: 1000,
            pcm: vec![0.0; 16],
            is_final,
            speech_end_at: Instant::now(),
        }
    }

    fn queue(capacity: usize, metrics: &Arc<Metrics>) -> JobQueue {
        JobQueue {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity,
            workers: 1,
            busy: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            metrics: metrics.clone(),
        }
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
        let order: Vec<String> = (0..3).map(|_| q.pop().unwrap().utterance.clone()).collect();
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

    #[test]
    fn the_track_clock_follows_rtp_time_and_skips_late_packets() {
        let mut clock = TrackClock {
            first_rtp: u32::MAX - 959,
            first_ms: 5_000,
            last_rtp: u32::MAX - 959,
        };
        assert_eq!(clock.at(u32::MAX - 959), Some(5_000));
        // across the wrap of the 32-bit timestamp
        assert_eq!(clock.at(0), Some(5_020));
        assert_eq!(clock.at(960 * 2), Some(5_060));
        assert_eq!(clock.at(960), None, "late packet");
    }
}
