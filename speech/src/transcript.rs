//! What a transcription asks for ([`TranscribeOptions`]) and what it gives
//! back ([`Transcript`] of [`Segment`]s), shared by every engine.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The spoken language: detected, or given as an ISO 639-1 code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Language {
    #[default]
    Auto,
    Code(String),
}

impl Language {
    /// Parses `auto` or a language code such as `en`, `fr`.
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "" | "auto" => Language::Auto,
            code => Language::Code(code.to_ascii_lowercase()),
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Language::Auto => f.write_str("auto"),
            Language::Code(code) => f.write_str(code),
        }
    }
}

/// How to transcribe.
#[derive(Clone, Debug)]
pub struct TranscribeOptions {
    pub language: Language,
    /// Sampling temperatures tried in turn when a window's decode looks like a
    /// hallucination (too repetitive or too unlikely). `[0.0]` is pure greedy.
    pub temperatures: Vec<f32>,
    /// Above this gzip compression ratio a decode counts as repetitive.
    pub compression_ratio_threshold: f32,
    /// Below this average token log-probability a decode counts as unlikely.
    pub logprob_threshold: f32,
    /// A window is silence when its no-speech probability is above this and
    /// its decode is unlikely.
    pub no_speech_threshold: f32,
    /// A window is silence whatever its decode when its no-speech
    /// probability is above this (Whisper's "you" / "Thank you." on silence).
    pub certain_silence_threshold: f32,
    /// Encode short audio in a window just longer than the speech instead of
    /// the full 30 s (several times faster; Whisper stays accurate).
    pub short_window: bool,
    /// Seed for the temperature sampling, so runs are reproducible.
    pub seed: u64,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: Language::Auto,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: 2.4,
            logprob_threshold: -1.0,
            no_speech_threshold: 0.6,
            certain_silence_threshold: 0.9,
            short_window: true,
            seed: 0,
        }
    }
}

/// A stretch of speech with its text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    /// Probability the model gave to "no speech" for the window this came from.
    pub no_speech_prob: f32,
    /// Mean token log-probability of the decode this came from (0 when the
    /// engine does not say): low for text the model was unsure of.
    #[serde(default)]
    pub avg_logprob: f32,
}

/// `[mm:ss.mmm --> mm:ss.mmm] text`, the `salon transcribe` line.
impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{} --> {}] {}",
            Timestamp(self.start_ms),
            Timestamp(self.end_ms),
            self.text
        )
    }
}

struct Timestamp(u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        let hours = ms / 3_600_000;
        let minutes = ms / 60_000 % 60;
        let seconds = ms / 1000 % 60;
        if hours > 0 {
            write!(f, "{hours}:")?;
        }
        write!(f, "{minutes:02}:{seconds:02}.{:03}", ms % 1000)
    }
}

/// The result of a transcription.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// Language code, given or detected.
    pub language: String,
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// All segment texts joined by single spaces.
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_prints_as_a_transcribe_line() {
        let segment = Segment {
            start_ms: 0,
            end_ms: 11_000,
            text: "And so my fellow Americans".into(),
            no_speech_prob: 0.01,
            avg_logprob: -0.2,
        };
        assert_eq!(
            segment.to_string(),
            "[00:00.000 --> 00:11.000] And so my fellow Americans"
        );
        let late = Segment {
            start_ms: 3_723_456,
            end_ms: 3_725_000,
            text: "x".into(),
            no_speech_prob: 0.0,
            avg_logprob: 0.0,
        };
        assert_eq!(late.to_string(), "[1:02:03.456 --> 1:02:05.000] x");
    }

    #[test]
    fn language_parses_auto_and_codes() {
        assert_eq!(Language::parse("auto"), Language::Auto);
        assert_eq!(Language::parse("FR"), Language::Code("fr".into()));
    }
}
