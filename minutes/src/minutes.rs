//! The minutes of a meeting, in the shape of the `org.salon.minutes` field.
//!
//! Both summarisers produce this type; the renderers turn it into the notice's
//! `body` and `formatted_body`, and the bridge puts it, serialised as is, in
//! the event's `org.salon.minutes` field so other programs can read it.

use serde::{Deserialize, Serialize};

use crate::meeting::Participant;

/// Something someone said they would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Matrix user id of the person who will do it, when one was said.
    pub owner: Option<String>,
    pub text: String,
    /// The deadline as it was said ("by Friday", "d'ici vendredi"), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
}

/// Which summariser wrote the minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratedBy {
    Builtin,
    Llm,
}

/// The minutes of one call; serialises to the `org.salon.minutes` schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minutes {
    pub call_id: String,
    /// Milliseconds since the Unix epoch.
    pub started_at: u64,
    /// Milliseconds since the Unix epoch.
    pub ended_at: u64,
    pub participants: Vec<Participant>,
    /// The summary, one sentence per entry, in the order they were said.
    pub summary: Vec<String>,
    pub decisions: Vec<String>,
    pub actions: Vec<Action>,
    pub questions: Vec<String>,
    /// What moderators did during the call (muted, removed, locked), one
    /// sentence each, in order. Filled by the bridge, not by a summariser.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moderation: Vec<String>,
    /// Language of the meeting (`fr` or `en`).
    pub lang: String,
    pub generated_by: GeneratedBy,
}

impl Minutes {
    /// True when the minutes hold nothing but times and participants, as for a
    /// call without transcript.
    pub fn is_bare(&self) -> bool {
        self.summary.is_empty()
            && self.decisions.is_empty()
            && self.actions.is_empty()
            && self.questions.is_empty()
    }
}
