//! The one error type of the speech engine. Every failure a caller can meet
//! (missing or corrupt model, undecodable audio, remote server trouble, a
//! tensor operation gone wrong) is a variant here, never a panic.

use std::path::PathBuf;

/// Why a speech operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// A model file is missing or unreadable.
    #[error("model file {path}: {source} (run scripts/install-models.sh)")]
    ModelFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The model folder is there but its content is not a usable Whisper model.
    #[error("corrupt model {path}: {reason}")]
    CorruptModel { path: PathBuf, reason: String },
    /// The audio file could not be read or decoded.
    #[error("audio {path}: {reason}")]
    Audio { path: PathBuf, reason: String },
    /// The requested language is not one this model knows.
    #[error("language {0:?} is not supported by this model")]
    UnsupportedLanguage(String),
    /// A tensor operation failed inside the Whisper forward pass.
    #[error("whisper inference: {0}")]
    Inference(#[from] candle_core::Error),
    /// The remote transcription server could not be reached or answered badly.
    #[error("remote transcription: {0}")]
    Remote(String),
}

impl SpeechError {
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        SpeechError::CorruptModel {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
