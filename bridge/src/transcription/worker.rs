//! The blocking ASR worker loop: one OS thread (`salon-asr-N`) per configured
//! worker, started by [`Transcriber::ensure_engine`](super::Transcriber::ensure_engine)
//! once the engine is loaded.
//!
//! Each worker takes a [`Job`] from the [`JobQueue`], runs it through the
//! speech engine in the call's language, counts the audio and engine time in
//! `/metrics`, and sends the [`Transcribed`] result on to the bridge (see
//! `transcripts.rs`). A failed transcription still sends an empty result, so
//! its final is accounted for. The loop ends when the queue is closed and
//! empty.

use std::time::Instant;

use salon_speech::{SpeechEngine, TranscribeOptions};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Transcribed;
use super::queue::{Job, JobQueue};
use crate::metrics::Metrics;

/// Transcribes jobs from `queue` until it is closed and empty: finals with
/// `final_options`, partials with `partial_options`.
pub(super) fn run_worker(
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
        let _ = results.send(transcribed(job, text, lang));
    }
}

/// The result of a job, carrying its final's [`Pending`](super::session::Pending)
/// on to the bridge.
fn transcribed(job: Job, text: String, lang: String) -> Transcribed {
    Transcribed {
        call_id: job.session.call_id.clone(),
        room_id: job.session.room_id.clone(),
        media_room: job.session.media_room.clone(),
        identity: job.identity,
        speaker: job.speaker,
        speaker_name: job.speaker_name,
        utterance: job.utterance.into_string(),
        start_ms: job.start_ms,
        end_ms: job.end_ms,
        lang,
        text,
        is_final: job.is_final,
        speech_end_at: job.speech_end_at,
        _pending: job.pending,
    }
}
