//! The built-in summariser: offline, deterministic, French and English.
//!
//! It detects the meeting's language, ranks sentences for the summary, and
//! reads decisions, action items and open questions from cue phrases. A
//! meeting without transcript gets bare minutes: times and participants.

use tracing::{debug, info_span};

use crate::dialogue::Dialogue;
use crate::language;
use crate::meeting::Meeting;
use crate::minutes::{GeneratedBy, Minutes};
use crate::{actions, decisions, questions, summary};

/// Writes minutes with no model and no network.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinSummarizer;

impl BuiltinSummarizer {
    /// Summarises a meeting. The same meeting always gives the same minutes.
    pub fn summarize(&self, meeting: &Meeting) -> Minutes {
        let span = info_span!("builtin_summary", call_id = %meeting.call_id, segments = meeting.segments.len());
        let _guard = span.enter();
        let lang = language::detect(&meeting.segments);
        let dialogue = Dialogue::new(meeting, lang);
        let minutes = Minutes {
            call_id: meeting.call_id.clone(),
            started_at: meeting.started_at,
            ended_at: meeting.ended_at,
            participants: meeting.everyone(),
            summary: summary::summarize(&dialogue),
            decisions: decisions::find(&dialogue),
            actions: actions::find(&dialogue),
            questions: questions::find(&dialogue),
            moderation: Vec::new(),
            lang: lang.code().to_string(),
            generated_by: GeneratedBy::Builtin,
        };
        debug!(
            lang = lang.code(),
            summary = minutes.summary.len(),
            decisions = minutes.decisions.len(),
            actions = minutes.actions.len(),
            questions = minutes.questions.len(),
            "minutes written"
        );
        minutes
    }
}
