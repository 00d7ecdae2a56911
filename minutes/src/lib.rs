//! Meeting minutes for Salon.
//!
//! When a call ends, the bridge hands a [`Meeting`] (times, participants and
//! the per-speaker transcript) to a [`Summarizer`] and gets [`Minutes`] back:
//! a short summary, decisions, action items with owners and deadlines, and
//! open questions. The built-in summariser runs offline and deterministically
//! in French and English; the optional LLM summariser asks an
//! OpenAI-compatible endpoint and falls back to the built-in one whenever the
//! answer is late or unusable.
//!
//! The [`render`] functions turn minutes into the Matrix notice (`body` and
//! `formatted_body`); [`transcript`] writes and reads the transcript files
//! (WebVTT and Markdown, plus our JSON) used for the uploads and for
//! `salon summarize`.

mod actions;
mod builtin;
mod cues;
mod deadline;
mod decisions;
mod dialogue;
mod error;
pub mod language;
mod llm;
mod meeting;
mod minutes;
mod questions;
pub mod render;
mod summarizer;
mod summary;
mod text;
mod time;
pub mod transcript;

pub use builtin::BuiltinSummarizer;
pub use error::MinutesError;
pub use language::Language;
pub use llm::{LlmConfig, LlmSummarizer};
pub use meeting::{Meeting, Participant, TranscriptSegment};
pub use minutes::{Action, GeneratedBy, Minutes};
pub use render::{
    TranscriptLinks, render_html, render_html_with, render_markdown, render_markdown_with,
    render_plain, render_plain_with,
};
pub use summarizer::Summarizer;
pub use transcript::{load_transcript, transcript_markdown, transcript_webvtt};
