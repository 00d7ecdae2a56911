//! Errors of the minutes crate.
//!
//! Summarising never fails (the built-in summariser always answers and the LLM
//! summariser falls back to it), so errors only come from reading transcript
//! files and from the LLM endpoint, whose errors are logged and then absorbed.

use std::path::PathBuf;

/// What can go wrong while loading a transcript or asking an LLM for minutes.
#[derive(Debug, thiserror::Error)]
pub enum MinutesError {
    /// The transcript file could not be read.
    #[error("cannot read transcript {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file's extension is none of `json`, `md`, `vtt`.
    #[error("unknown transcript format for {path}: expected a .json, .md or .vtt file")]
    UnknownFormat { path: PathBuf },
    /// A JSON transcript is neither a meeting nor an array of segments.
    #[error("invalid JSON transcript: {0}")]
    Json(#[from] serde_json::Error),
    /// A Markdown or WebVTT transcript does not follow the format we write.
    #[error("invalid {format} transcript at line {line}: {reason}")]
    Syntax {
        format: &'static str,
        line: usize,
        reason: String,
    },
    /// The LLM endpoint could not be reached, timed out or answered with an error status.
    #[error("LLM request failed: {0}")]
    LlmRequest(String),
    /// The LLM answered, but not with minutes we can use.
    #[error("LLM output rejected: {0}")]
    LlmOutput(String),
}
