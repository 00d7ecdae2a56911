//! A meeting as the summariser sees it: who took part and what each of them said.
//!
//! Segments carry the same fields as the `org.salon.transcript` events the
//! bridge posts during a call (`call_id`, `speaker`, `start_ms`, `end_ms`,
//! `lang`, `text`), plus the speaker's display name when it was known. Times in
//! segments are milliseconds from the start of the call; `started_at` and
//! `ended_at` are milliseconds since the Unix epoch.

use serde::{Deserialize, Serialize};

/// One utterance of one speaker, as transcribed from that speaker's own track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    pub call_id: String,
    /// The speaker's Matrix user id, e.g. `@alice:example.org`.
    pub speaker: String,
    /// The speaker's display name at the time, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_name: Option<String>,
    /// Start of the utterance, in milliseconds from the start of the call.
    pub start_ms: u64,
    /// End of the utterance, in milliseconds from the start of the call.
    pub end_ms: u64,
    /// Language code of the utterance (`fr`, `en`, …), empty when unknown.
    #[serde(default)]
    pub lang: String,
    pub text: String,
}

/// Someone who joined the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Matrix user id, e.g. `@alice:example.org`.
    pub mxid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl Participant {
    /// The name to show: the display name, or the user id when there is none.
    pub fn name(&self) -> &str {
        self.display_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(&self.mxid)
    }
}

/// A finished call: its times, its participants and its transcript (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    pub call_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_name: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub started_at: u64,
    /// Milliseconds since the Unix epoch.
    pub ended_at: u64,
    #[serde(default)]
    pub participants: Vec<Participant>,
    #[serde(default)]
    pub segments: Vec<TranscriptSegment>,
}

impl Meeting {
    /// Builds a meeting from bare segments, as found in a JSON array of
    /// `org.salon.transcript` contents: participants are the speakers in order
    /// of first appearance, and times are taken from the segments.
    pub fn from_segments(mut segments: Vec<TranscriptSegment>) -> Meeting {
        segments.sort_by_key(|s| (s.start_ms, s.end_ms));
        let mut participants: Vec<Participant> = Vec::new();
        for segment in &segments {
            if !participants.iter().any(|p| p.mxid == segment.speaker) {
                participants.push(Participant {
                    mxid: segment.speaker.clone(),
                    display_name: segment.speaker_name.clone(),
                });
            }
        }
        Meeting {
            call_id: segments
                .first()
                .map(|s| s.call_id.clone())
                .unwrap_or_default(),
            room_name: None,
            started_at: 0,
            ended_at: segments.iter().map(|s| s.end_ms).max().unwrap_or(0),
            participants,
            segments,
        }
    }

    /// How long the call lasted, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.ended_at.saturating_sub(self.started_at)
    }

    /// The participant with this user id, if they are listed.
    pub fn participant(&self, mxid: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.mxid == mxid)
    }

    /// The name to show for a speaker: the segment's own name, else the
    /// participant's display name, else the user id.
    pub fn speaker_name<'a>(&'a self, segment: &'a TranscriptSegment) -> &'a str {
        if let Some(name) = segment
            .speaker_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
        {
            return name;
        }
        self.participant(&segment.speaker)
            .map(Participant::name)
            .unwrap_or(&segment.speaker)
    }

    /// The name to show for a user id.
    pub fn name_of<'a>(&'a self, mxid: &'a str) -> &'a str {
        if let Some(p) = self.participant(mxid)
            && p.display_name.is_some()
        {
            return p.name();
        }
        self.segments
            .iter()
            .filter(|s| s.speaker == mxid)
            .find_map(|s| s.speaker_name.as_deref())
            .unwrap_or(mxid)
    }

    /// Everyone who took part: the listed participants, then any speaker
    /// missing from that list.
    pub fn everyone(&self) -> Vec<Participant> {
        let mut all = self.participants.clone();
        for segment in &self.segments {
            if !all.iter().any(|p| p.mxid == segment.speaker) {
                all.push(Participant {
                    mxid: segment.speaker.clone(),
                    display_name: segment.speaker_name.clone(),
                });
            }
        }
        all
    }
}
