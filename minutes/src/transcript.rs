//! Transcript files: WebVTT with speaker-tagged cues (`<v Name>`) and
//! Markdown (speaker, time, text) for the uploads, and a reader for those two
//! formats and our JSON, used by `salon summarize`.
//!
//! Both text formats carry the call's metadata (call id, room, start and end,
//! participants with their Matrix ids) so that reading a file we wrote gives
//! the meeting back. WebVTT files from elsewhere are read too; their voices
//! then stand in for user ids.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::MinutesError;
use crate::language::{self, Language};
use crate::meeting::{Meeting, Participant, TranscriptSegment};
use crate::render::md;
use crate::time;

/// The language most segments carry (as written, e.g. `fr`), or "".
fn main_lang(meeting: &Meeting) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for segment in &meeting.segments {
        *counts.entry(segment.lang.as_str()).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(lang, _)| lang.to_string())
        .unwrap_or_default()
}

/// The name each segment is tagged with: the speaker's name, or their user
/// id when that name would be read back as somebody else.
fn voices(meeting: &Meeting) -> Vec<String> {
    let everyone = meeting.everyone();
    meeting
        .segments
        .iter()
        .map(|segment| {
            let name = meeting.speaker_name(segment);
            let owner_of_name: Vec<&str> = everyone
                .iter()
                .filter(|p| p.display_name.as_deref() == Some(name))
                .map(|p| p.mxid.as_str())
                .collect();
            if owner_of_name == [segment.speaker.as_str()] {
                name.to_string()
            } else {
                segment.speaker.clone()
            }
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// WebVTT for players and archives: a `NOTE` block with the call's metadata,
/// then one cue per segment, `<v Name>text`, times from the call's start.
pub fn transcript_webvtt(meeting: &Meeting) -> String {
    let note = |text: &str| one_line(text).replace("-->", "->");
    let lang = main_lang(meeting);
    let mut out = String::from("WEBVTT\n\nNOTE\n");
    out.push_str(&format!("call: {}\n", note(&meeting.call_id)));
    if let Some(room) = &meeting.room_name {
        out.push_str(&format!("room: {}\n", note(room)));
    }
    out.push_str(&format!("started: {}\n", time::iso(meeting.started_at)));
    out.push_str(&format!("ended: {}\n", time::iso(meeting.ended_at)));
    if !lang.is_empty() {
        out.push_str(&format!("lang: {}\n", note(&lang)));
    }
    for participant in meeting.everyone() {
        match &participant.display_name {
            Some(name) => out.push_str(&format!(
                "participant: {} {}\n",
                note(&participant.mxid),
                note(name)
            )),
            None => out.push_str(&format!("participant: {}\n", note(&participant.mxid))),
        }
    }
    for (index, (segment, voice)) in meeting.segments.iter().zip(voices(meeting)).enumerate() {
        let voice = one_line(&voice).replace('>', "›");
        let text = vtt_escape(&one_line(&segment.text));
        let text = if segment.lang != lang && !segment.lang.is_empty() {
            format!(
                "<lang {}>{text}</lang>",
                one_line(&segment.lang).replace([' ', '>'], "")
            )
        } else {
            text
        };
        out.push_str(&format!(
            "\n{}\n{} --> {}\n<v {voice}>{text}\n",
            index + 1,
            time::cue(segment.start_ms),
            time::cue(segment.end_ms.max(segment.start_ms)),
        ));
    }
    out
}

fn vtt_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn vtt_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&lrm;", "\u{200e}")
        .replace("&rlm;", "\u{200f}")
        .replace("&amp;", "&")
}

/// Markdown for people: the call's details, its participants, then one line
/// per segment, `- **[start → end] Name:** text`.
pub fn transcript_markdown(meeting: &Meeting) -> String {
    let lang = main_lang(meeting);
    let display_lang = Language::from_code(&lang).unwrap_or(language::detect(&meeting.segments));
    let (title, participants_title, transcript_title) = match display_lang {
        Language::French => ("Transcription", "Participants", "Transcription"),
        Language::English => ("Transcript", "Participants", "Transcript"),
    };
    let date = time::date(meeting.started_at, display_lang);
    let mut out = match &meeting.room_name {
        Some(room) => format!("# {title} — {} — {date}\n\n", md(&one_line(room))),
        None => format!("# {title} — {date}\n\n"),
    };
    out.push_str(&format!("- Call: {}\n", md(&one_line(&meeting.call_id))));
    if let Some(room) = &meeting.room_name {
        out.push_str(&format!("- Room: {}\n", md(&one_line(room))));
    }
    out.push_str(&format!("- Started: {}\n", time::iso(meeting.started_at)));
    out.push_str(&format!("- Ended: {}\n", time::iso(meeting.ended_at)));
    if !lang.is_empty() {
        out.push_str(&format!("- Language: {}\n", md(&one_line(&lang))));
    }
    out.push_str(&format!("\n## {participants_title}\n\n"));
    for participant in meeting.everyone() {
        match &participant.display_name {
            Some(name) => out.push_str(&format!(
                "- {} ({})\n",
                md(&one_line(name)),
                participant.mxid
            )),
            None => out.push_str(&format!("- {}\n", participant.mxid)),
        }
    }
    out.push_str(&format!("\n## {transcript_title}\n\n"));
    for (segment, voice) in meeting.segments.iter().zip(voices(meeting)) {
        let lang_note = if segment.lang != lang && !segment.lang.is_empty() {
            format!(" ({})", one_line(&segment.lang))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "- **[{} → {}] {}{lang_note}:** {}\n",
            time::cue(segment.start_ms),
            time::cue(segment.end_ms.max(segment.start_ms)),
            md(&one_line(&voice)),
            md(&one_line(&segment.text)),
        ));
    }
    out
}

/// Reads a transcript for `salon summarize`: our JSON (a meeting, or an array
/// of `org.salon.transcript` segments), our Markdown, or WebVTT, chosen by
/// the file's extension.
pub fn load_transcript(path: impl AsRef<Path>) -> Result<Meeting, MinutesError> {
    let path = path.as_ref();
    let read = || {
        std::fs::read_to_string(path).map_err(|source| MinutesError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match extension.as_str() {
        "json" => parse_json(&read()?),
        "md" | "markdown" => parse_markdown(&read()?),
        "vtt" => parse_webvtt(&read()?),
        _ => Err(MinutesError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// Reads a meeting, or an array of segments, from JSON.
pub fn parse_json(text: &str) -> Result<Meeting, MinutesError> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    if value.is_array() {
        let segments: Vec<TranscriptSegment> = serde_json::from_value(value)?;
        return Ok(Meeting::from_segments(segments));
    }
    Ok(serde_json::from_value(value)?)
}

/// What the metadata of a text transcript says.
#[derive(Default)]
struct Header {
    call_id: String,
    room_name: Option<String>,
    started_at: Option<u64>,
    ended_at: Option<u64>,
    lang: String,
    participants: Vec<Participant>,
}

impl Header {
    fn speaker(&self, voice: &str) -> (String, Option<String>) {
        if let Some(p) = self
            .participants
            .iter()
            .find(|p| p.display_name.as_deref() == Some(voice))
        {
            return (p.mxid.clone(), Some(voice.to_string()));
        }
        if voice.starts_with('@') && voice.contains(':') {
            return (voice.to_string(), None);
        }
        (
            voice.to_string(),
            Some(voice.to_string()).filter(|v| !v.is_empty()),
        )
    }

    fn meeting(self, segments: Vec<TranscriptSegment>) -> Meeting {
        let last_end = segments.iter().map(|s| s.end_ms).max().unwrap_or(0);
        let started_at = self.started_at.unwrap_or(0);
        let mut meeting = Meeting {
            call_id: self.call_id,
            room_name: self.room_name,
            started_at,
            ended_at: self.ended_at.unwrap_or(started_at + last_end),
            participants: self.participants,
            segments,
        };
        meeting.participants = meeting.everyone();
        meeting
    }
}

fn syntax(format: &'static str, line: usize, reason: impl Into<String>) -> MinutesError {
    MinutesError::Syntax {
        format,
        line,
        reason: reason.into(),
    }
}

fn participant(text: &str) -> Participant {
    let text = text.trim();
    match text.split_once(' ') {
        Some((mxid, name)) => Participant {
            mxid: mxid.to_string(),
            display_name: Some(name.trim().to_string()),
        },
        None => Participant {
            mxid: text.to_string(),
            display_name: None,
        },
    }
}

/// Reads WebVTT: ours, with its `NOTE` metadata, or any file with `<v>` voices.
pub fn parse_webvtt(text: &str) -> Result<Meeting, MinutesError> {
    const FORMAT: &str = "WebVTT";
    let text = text.trim_start_matches('\u{feff}').replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().collect();
    if !lines.first().is_some_and(|l| l.starts_with("WEBVTT")) {
        return Err(syntax(FORMAT, 1, "the file does not start with WEBVTT"));
    }
    let mut header = Header::default();
    let mut segments = Vec::new();
    let mut at = 1;
    while at < lines.len() {
        if lines[at].trim().is_empty() {
            at += 1;
            continue;
        }
        let block_start = at;
        let mut block = Vec::new();
        while at < lines.len() && !lines[at].trim().is_empty() {
            block.push(lines[at]);
            at += 1;
        }
        if block[0].starts_with("NOTE") {
            for line in &block[1..] {
                if let Some((key, value)) = line.split_once(": ") {
                    match key {
                        "call" => header.call_id = value.to_string(),
                        "room" => header.room_name = Some(value.to_string()),
                        "started" => header.started_at = time::parse_iso(value),
                        "ended" => header.ended_at = time::parse_iso(value),
                        "lang" => header.lang = value.to_string(),
                        "participant" => header.participants.push(participant(value)),
                        _ => {}
                    }
                }
            }
            continue;
        }
        if block[0].starts_with("STYLE") || block[0].starts_with("REGION") {
            continue;
        }
        let timing_index = block
            .iter()
            .position(|l| l.contains("-->"))
            .ok_or_else(|| syntax(FORMAT, block_start + 1, "a cue has no timing line"))?;
        let timing = block[timing_index];
        let (start, rest) = timing.split_once("-->").expect("checked above");
        let end = rest.split_whitespace().next().unwrap_or("");
        let line_number = block_start + timing_index + 1;
        let start_ms = time::parse_cue(start)
            .ok_or_else(|| syntax(FORMAT, line_number, format!("bad start time {start:?}")))?;
        let end_ms = time::parse_cue(end)
            .ok_or_else(|| syntax(FORMAT, line_number, format!("bad end time {end:?}")))?;
        let payload = block[timing_index + 1..].join(" ");
        let (voice, lang, spoken) = cue_payload(&payload);
        let (speaker, speaker_name) = header.speaker(&voice);
        segments.push(TranscriptSegment {
            call_id: header.call_id.clone(),
            speaker,
            speaker_name,
            start_ms,
            end_ms,
            lang: lang.unwrap_or_else(|| header.lang.clone()),
            text: spoken,
        });
    }
    Ok(header.meeting(segments))
}

/// Splits a cue's text into its voice, its `<lang>` and the words, dropping
/// other tags and unescaping entities.
fn cue_payload(payload: &str) -> (String, Option<String>, String) {
    let mut voice = String::new();
    let mut lang = None;
    let mut spoken = String::new();
    let mut rest = payload;
    while let Some(open) = rest.find('<') {
        spoken.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            spoken.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let tag = &rest[open + 1..open + close];
        if let Some(annotation) = tag.strip_prefix('v').filter(|t| t.starts_with([' ', '.'])) {
            // "<v.loud Esme>": classes first, then the voice.
            let name = annotation.split_once(' ').map(|(_, n)| n).unwrap_or("");
            if voice.is_empty() {
                voice = name.trim().replace('›', ">");
            }
        } else if let Some(code) = tag.strip_prefix("lang ") {
            lang = Some(code.trim().to_string());
        }
        rest = &rest[open + close + 1..];
    }
    spoken.push_str(rest);
    (voice, lang, vtt_unescape(spoken.trim()))
}

/// Removes Markdown backslash escapes.
fn md_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads the Markdown transcript [`transcript_markdown`] writes.
pub fn parse_markdown(text: &str) -> Result<Meeting, MinutesError> {
    const FORMAT: &str = "Markdown";
    let mut header = Header::default();
    let mut segments = Vec::new();
    let mut section = 0; // 0: details, 1: participants, 2: transcript
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim_end();
        if line.starts_with("## ") {
            section += 1;
            continue;
        }
        let Some(item) = line.strip_prefix("- ") else {
            continue;
        };
        match section {
            0 => {
                if let Some((key, value)) = item.split_once(": ") {
                    let value = md_unescape(value);
                    match key {
                        "Call" => header.call_id = value,
                        "Room" => header.room_name = Some(value),
                        "Started" => header.started_at = time::parse_iso(&value),
                        "Ended" => header.ended_at = time::parse_iso(&value),
                        "Language" => header.lang = value,
                        _ => {}
                    }
                }
            }
            1 => match item.rfind(" (@") {
                Some(at) if item.ends_with(')') => header.participants.push(Participant {
                    mxid: item[at + 2..item.len() - 1].to_string(),
                    display_name: Some(md_unescape(&item[..at])),
                }),
                _ => header.participants.push(Participant {
                    mxid: item.trim().to_string(),
                    display_name: None,
                }),
            },
            _ => {
                let bad = |reason: &str| syntax(FORMAT, line_number, reason);
                let rest = item
                    .strip_prefix("**[")
                    .ok_or_else(|| bad("a line does not start with **[time"))?;
                let (times, rest) = rest
                    .split_once("] ")
                    .ok_or_else(|| bad("no ] after the times"))?;
                let (start, end) = times
                    .split_once(" → ")
                    .ok_or_else(|| bad("times are not `start → end`"))?;
                let start_ms = time::parse_cue(start).ok_or_else(|| bad("bad start time"))?;
                let end_ms = time::parse_cue(end).ok_or_else(|| bad("bad end time"))?;
                let (voice, spoken) = rest
                    .split_once(":** ")
                    .or_else(|| rest.strip_suffix(":**").map(|v| (v, "")))
                    .ok_or_else(|| bad("no `:**` after the speaker"))?;
                let (voice, lang) = match voice.rsplit_once(" (") {
                    Some((name, code))
                        if code.ends_with(')')
                            && code.len() <= 9
                            && code[..code.len() - 1]
                                .chars()
                                .all(|c| c.is_ascii_alphabetic() || c == '-') =>
                    {
                        (name, Some(code[..code.len() - 1].to_string()))
                    }
                    _ => (voice, None),
                };
                let (speaker, speaker_name) = header.speaker(&md_unescape(voice));
                segments.push(TranscriptSegment {
                    call_id: header.call_id.clone(),
                    speaker,
                    speaker_name,
                    start_ms,
                    end_ms,
                    lang: lang.unwrap_or_else(|| header.lang.clone()),
                    text: md_unescape(spoken),
                });
            }
        }
    }
    if section < 2 {
        return Err(syntax(
            FORMAT,
            text.lines().count(),
            "no transcript section",
        ));
    }
    Ok(header.meeting(segments))
}
