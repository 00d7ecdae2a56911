//! Live transcription of calls, per speaker, on this machine: the
//! [`Transcriber`] service and the [`Transcribed`] results it hands on.
//!
//! Every participant's audio comes from the SFU as their own Opus track (an
//! [`AudioTap`](crate::media::AudioTap)), so each word is attributed to
//! exactly one Matrix user with no diarisation guesswork. The flow, file by
//! file:
//!
//! - here, the service the bridge calls: it starts and stops a call's
//!   transcription (one session each, `session.rs`), loads the speech engine
//!   once and starts its worker threads, drains a call when it ends, and
//!   everything at shutdown;
//! - `track.rs`: one task per participant decodes the packets to 16 kHz and
//!   cuts them into utterances on silence; media never waits for the engine:
//!   the taps only decode and queue;
//! - `queue.rs`: the bounded queue of utterances for the engine;
//! - `worker.rs`: a small pool of OS threads drains it through the engine.
//!
//! Backpressure: while the engine keeps up, every utterance is transcribed.
//! Partial captions (the open utterance, transcribed while someone is still
//! speaking) are only queued when a worker is idle, and are the first thing
//! dropped when the queue is full; finals are dropped only when the queue holds
//! nothing else. Both drops are counted in `/metrics`.
//!
//! Results flow back on a channel to the bridge, which stores them, sends
//! captions into the call and posts the transcript notices (see
//! `transcripts.rs`).

mod queue;
mod session;
mod track;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ruma::OwnedRoomId;
use salon_speech::{Language, SpeechEngine, TranscribeOptions};
use tokio::sync::{OnceCell, mpsc};
use tracing::{Instrument, info, info_span, warn};

use self::queue::JobQueue;
use self::session::{Pending, Session};
use self::track::TrackTranscription;
use crate::calls::Call;
use crate::config::{SpeechEngineConfig, TranscriptionConfig};
use crate::media::{Caption, MediaBackend};
use crate::media_e2ee::MediaKeys;
use crate::metrics::Metrics;
use crate::store::Store;

/// One transcribed utterance (or partial), on its way to the room. Dropping
/// a final tells its call that one less utterance is outstanding.
#[derive(Debug)]
pub struct Transcribed {
    pub call_id: String,
    pub room_id: OwnedRoomId,
    /// The call's LiveKit room, where its captions go.
    pub media_room: String,
    /// The LiveKit identity that spoke (a caption names it).
    pub identity: String,
    /// The speaker's Matrix user id.
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
            call_id: &self.media_room,
            speaker: &self.identity,
            utterance: &self.utterance,
            text: &self.text,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            is_final,
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
    /// Who the media side's identities are.
    store: Store,
    metrics: Arc<Metrics>,
    engine: OnceCell<Arc<dyn SpeechEngine>>,
    queue: Arc<JobQueue>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    results: mpsc::UnboundedSender<Transcribed>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The media keys the bot's device receives, for encrypted calls.
    media_keys: std::sync::OnceLock<MediaKeys>,
}

impl Transcriber {
    /// The service, and the stream of results for the bridge to post.
    pub fn new(
        config: TranscriptionConfig,
        media: Arc<dyn MediaBackend>,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Transcribed>) {
        let (results, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(JobQueue::new(config.queue, config.workers, metrics.clone()));
        let transcriber = Arc::new(Transcriber {
            config,
            media,
            store,
            metrics,
            engine: OnceCell::new(),
            queue,
            sessions: Mutex::new(HashMap::new()),
            results,
            workers: Mutex::new(Vec::new()),
            media_keys: std::sync::OnceLock::new(),
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
                .spawn(move || worker::run_worker(&*engine, &queue, &results, &metrics, &options));
            match spawned {
                Ok(handle) => self.workers.lock().expect("workers lock").push(handle),
                Err(e) => warn!(error = %e, "cannot start a transcription worker"),
            }
        }
    }

    /// Decrypts encrypted calls with the keys the bot's device receives
    /// (`Matrix::media_keys`). Without them, encrypted audio is skipped.
    pub fn use_media_keys(&self, keys: MediaKeys) {
        let _ = self.media_keys.set(keys);
    }

    fn media_keys(&self) -> MediaKeys {
        self.media_keys.get().cloned().unwrap_or_default()
    }

    /// Starts transcribing a live call: taps everyone in it now; later
    /// arrivals are tapped by [`Transcriber::participant_joined`].
    /// `language` is the room's setting (a code), if it has one.
    pub fn start(&self, call: &Call, language: Option<&str>) {
        let language = Language::parse(language.unwrap_or(&self.config.language));
        let session = {
            let mut sessions = self.sessions.lock().expect("sessions lock");
            if let Some(existing) = sessions.get(&call.id)
                && !existing.stopped()
            {
                existing.clone()
            } else {
                let session = Session::new(
                    call.id.clone(),
                    call.room_id.clone(),
                    call.media_room(),
                    call.started_at,
                    language,
                );
                sessions.insert(call.id.clone(), session.clone());
                session
            }
        };
        // the bot takes its call's media keys from now on (until stopped)
        self.media_keys().open_room(&call.room_id);
        info!(call_id = %call.id, language = %session.language, "transcription started");
        for participant in self.media.participants(&session.media_room) {
            self.tap(&session, &participant.identity, &participant.name);
        }
    }

    /// Someone joined a LiveKit room: tap them if its call is transcribed.
    pub fn participant_joined(&self, media_room: &str, identity: &str) {
        let session = self
            .sessions
            .lock()
            .expect("sessions lock")
            .values()
            .find(|s| s.media_room == media_room && !s.stopped())
            .cloned();
        if let Some(session) = session {
            let name = self
                .media
                .participants(media_room)
                .into_iter()
                .find(|p| p.identity == identity)
                .map(|p| p.name)
                .unwrap_or_default();
            self.tap(&session, identity, &name);
        }
    }

    /// The call's session, stopped or not, until it is drained.
    fn session(&self, call_id: &str) -> Option<Arc<Session>> {
        self.sessions
            .lock()
            .expect("sessions lock")
            .get(call_id)
            .cloned()
    }

    fn tap(&self, session: &Arc<Session>, identity: &str, name: &str) {
        let mut taps = session.taps.lock().expect("taps lock");
        if taps.get(identity).is_some_and(|t| !t.is_finished()) {
            return;
        }
        // people who left: their taps ended; do not keep them for the call's life
        taps.retain(|_, t| !t.is_finished());
        // the Matrix user behind the identity (Element Call's are
        // `{mxid}:{device}` or a hash, recorded when the token was minted)
        let who = match self.store.identity(identity) {
            Ok(Some(who)) => who,
            Ok(None) => {
                warn!(call_id = %session.call_id, %identity, "not transcribed: nobody Salon knows (no token of Salon's names this identity)");
                return;
            }
            Err(e) => {
                warn!(call_id = %session.call_id, %identity, error = %e, "not transcribed: cannot read who this identity is");
                return;
            }
        };
        let name = if who.name.is_empty() { name } else { &who.name };
        let Some(tap) = self.media.subscribe_audio(&session.media_room, identity) else {
            return;
        };
        let span = info_span!("audio_tap", call_id = %session.call_id, speaker = %identity);
        let track = TrackTranscription::new(
            session,
            self.queue.clone(),
            identity,
            (who.user_id.as_str(), name),
            self.config.max_utterance,
            self.config.partials,
            self.media_keys()
                .decryptor(&session.room_id, identity, self.metrics.clone()),
        );
        taps.insert(
            identity.to_owned(),
            tokio::spawn(track.run(tap).instrument(span)),
        );
    }

    /// Stops transcribing a call: open utterances are finished and still
    /// transcribed. Returns false if it was not being transcribed.
    pub fn stop(&self, call_id: &str) -> bool {
        let session = self.session(call_id);
        match session {
            Some(session) => {
                let _ = session.stop.send(true);
                self.media_keys().forget_room(&session.room_id);
                info!(call_id, "transcription stopped");
                true
            }
            None => false,
        }
    }

    /// Waits until everything said in the call is transcribed and posted (or
    /// `limit` passed), then forgets the call's session.
    pub async fn drain(&self, call_id: &str, limit: Duration) {
        let session = self.session(call_id);
        let Some(session) = session else {
            return;
        };
        let _ = session.stop.send(true);
        self.media_keys().forget_room(&session.room_id);
        let waited = tokio::time::timeout(limit, session.all_done()).await;
        if waited.is_err() {
            warn!(
                call_id,
                outstanding = session.outstanding.load(Ordering::SeqCst),
                "transcription still busy after the wait; going on without the rest (the minutes, or the shutdown)"
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
