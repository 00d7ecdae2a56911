//! The summariser the bridge configured: built-in, or an LLM with the
//! built-in one as its fallback.

use crate::builtin::BuiltinSummarizer;
use crate::llm::LlmSummarizer;
use crate::meeting::Meeting;
use crate::minutes::Minutes;

/// The configured summariser (`[summary] engine = "builtin" | "openai"`).
#[derive(Debug, Clone)]
pub enum Summarizer {
    Builtin(BuiltinSummarizer),
    Llm(LlmSummarizer),
}

impl Default for Summarizer {
    fn default() -> Self {
        Summarizer::Builtin(BuiltinSummarizer)
    }
}

impl Summarizer {
    /// Writes the minutes of a meeting; never fails.
    pub async fn summarize(&self, meeting: &Meeting) -> Minutes {
        match self {
            Summarizer::Builtin(builtin) => builtin.summarize(meeting),
            Summarizer::Llm(llm) => llm.summarize(meeting).await,
        }
    }
}
