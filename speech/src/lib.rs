//! Salon's speech engine: speech to timestamped text, on premises.
//!
//! The built-in engine is Whisper in pure Rust on candle ([`WhisperModel`]),
//! reading the CTranslate2 `model.bin` that PyPI packages ship (installed by
//! `scripts/install-models.sh`), with Whisper's exact log-mel front end and a
//! key/value-cached decoder. [`RemoteEngine`] instead sends the audio to an
//! OpenAI-compatible `/v1/audio/transcriptions` server. Both implement
//! [`SpeechEngine`], the one interface the bridge uses.
//!
//! Everything here is synchronous and CPU-bound: call it from a blocking
//! worker (`tokio::task::spawn_blocking` on a bounded pool), never from an
//! async task directly. [`decode_audio_file`] turns wav, flac and ogg/opus
//! files into the 16 kHz mono samples the engines take.

mod audio;
mod ct2;
mod error;
mod fastops;
pub mod guard;
pub mod live;
mod mel;
mod model;
mod remote;
mod tokenizer;
mod transcript;
mod whisper;

pub use audio::{decode_audio_file, resample_to_16k};
pub use error::SpeechError;
pub use mel::SAMPLE_RATE;
pub use remote::{RemoteConfig, RemoteEngine};
pub use transcript::{Language, Segment, TranscribeOptions, Transcript};
pub use whisper::{ModelInfo, WhisperModel, check_model, verify_model_sha256};

/// Anything that turns 16 kHz mono samples into a transcript.
///
/// Implementations block (CPU work or HTTP): run them on a blocking pool.
pub trait SpeechEngine: Send + Sync {
    fn transcribe(&self, pcm: &[f32], opts: &TranscribeOptions) -> Result<Transcript, SpeechError>;
}
