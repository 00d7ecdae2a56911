//! Guards against words nobody said, applied by every engine (built-in
//! Whisper, remote server) to the segments it returns, so the live path, the
//! `salon transcribe` file path and a remote engine all filter the same way.
//!
//! Whisper invents text in three known ways, each with its own evidence:
//! - over silence or noise ("Thank you.", "So, the first thing we're going to
//!   do…"): the window's no-speech probability is high and the segment's
//!   tokens are unlikely (low average log-probability);
//! - past the end of the speech: the segment's timestamps lie where the
//!   audio has no voice at all, which the samples themselves show;
//! - in loops: the same words again and again (a high compression ratio, an
//!   n-gram repeated many times);
//! - from a hum, a click or a breath: a whole sentence over half a second of
//!   sound, far more words than anyone can say in the voiced time (seen in
//!   a browser call: 480 ms of a participant's hum came back as "I'm not sure
//!   if I can do it.", no-speech probability 0.81 but a confident decode).
//!
//! Each rule drops a whole segment and says why ([`Dropped`]). None of them
//! drops a sentence just because it was said before: people say things
//! twice, and a repeat over voiced audio is speech.

use std::io::Write;

use tracing::debug;

use crate::mel::SAMPLE_RATE;
use crate::transcript::{Segment, TranscribeOptions, Transcript};

/// VAD frame: 20 ms.
const FRAME_MS: u64 = 20;
/// A frame is voiced when it is this loud (dBFS) … (low: a quiet microphone
/// or recording still has its speech judged, only digital near-silence not)
const VOICED_MIN_DB: f32 = -65.0;
/// … and no more than this far below the loudest frame of the audio.
const VOICED_BELOW_PEAK_DB: f32 = 40.0;
/// Voiced stretches closer than this are one stretch (pauses between words).
const VOICED_BRIDGE_MS: u64 = 300;
/// Whisper's timestamps are coarse (20 ms ticks, often a few hundred ms
/// early or late): a segment counts as voiced if voice lies within this
/// margin of it.
const TIMESTAMP_SLACK_MS: u64 = 400;
/// A segment needs this much voice under it (with the slack), or this share
/// of its length, whichever is less.
const MIN_VOICED_MS: u64 = 200;
const MIN_VOICED_SHARE: f32 = 0.15;
/// An n-gram of this many words repeated this many times in one segment is
/// a decoding loop, not speech.
const LOOP_NGRAM: usize = 3;
const LOOP_REPEATS: usize = 4;
/// Nobody says more than this many words per second of voiced sound (fast
/// speech is 4 to 5), plus a couple of words for timestamps that cut short.
const MAX_WORDS_PER_VOICED_SECOND: f32 = 7.0;
const SPARE_WORDS: f32 = 2.0;
/// A segment this short, unlikely, with this no-speech probability, is
/// treated as silence (real one-word answers, "Yes.", decode confidently).
const FEW_WORDS: usize = 2;
const FEW_WORDS_NO_SPEECH: f32 = 0.4;

/// Why a segment was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// High no-speech probability and unlikely tokens.
    LikelySilence,
    /// Its timestamps cover no voiced audio.
    OutsideVoice,
    /// Its text loops (compression ratio, repeated n-grams).
    Repetitive,
    /// More words than the voiced sound under it could carry.
    TooManyWords,
}

/// A segment a guard removed, for logs and for the evidence in tests.
#[derive(Clone, Debug, PartialEq)]
pub struct Dropped {
    pub segment: Segment,
    pub reason: DropReason,
}

/// Voiced stretches of 16 kHz mono audio, as `(start_ms, end_ms)`, found by
/// frame energy relative to the audio's own loudest frame. Pure and cheap
/// (one pass), so it can run on every utterance.
pub fn voiced_spans(pcm: &[f32]) -> Vec<(u64, u64)> {
    let frame = SAMPLE_RATE * FRAME_MS as usize / 1000;
    let levels: Vec<f32> = pcm
        .chunks(frame)
        .map(|f| {
            let energy = f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32;
            10.0 * energy.max(1e-12).log10()
        })
        .collect();
    let peak = levels.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let threshold = VOICED_MIN_DB.max(peak - VOICED_BELOW_PEAK_DB);
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (i, &level) in levels.iter().enumerate() {
        if level < threshold {
            continue;
        }
        let (start, end) = (i as u64 * FRAME_MS, (i as u64 + 1) * FRAME_MS);
        match spans.last_mut() {
            Some(last) if start <= last.1 + VOICED_BRIDGE_MS => last.1 = end,
            _ => spans.push((start, end)),
        }
    }
    spans
}

/// How many ms of `spans` fall inside `[start, end)`.
fn overlap_ms(spans: &[(u64, u64)], start: u64, end: u64) -> u64 {
    spans
        .iter()
        .map(|&(s, e)| e.min(end).saturating_sub(s.max(start)))
        .sum()
}

/// gzip-style compression ratio of the text: high for looping repeats.
pub(crate) fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    if encoder.write_all(text.as_bytes()).is_err() {
        return 0.0;
    }
    match encoder.finish() {
        Ok(compressed) if !compressed.is_empty() => text.len() as f32 / compressed.len() as f32,
        _ => 0.0,
    }
}

/// The most times any `n`-word sequence occurs in the text.
fn max_ngram_repeats(text: &str, n: usize) -> usize {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() < n {
        return 0;
    }
    let mut counts = std::collections::HashMap::new();
    for gram in words.windows(n) {
        *counts.entry(gram).or_insert(0usize) += 1;
    }
    counts.into_values().max().unwrap_or(0)
}

/// Applies every guard to the segments of `transcript`, whose times are
/// relative to the start of `pcm`. Returns the kept transcript and what was
/// dropped, in order.
pub fn apply(
    mut transcript: Transcript,
    pcm: &[f32],
    opts: &TranscribeOptions,
) -> (Transcript, Vec<Dropped>) {
    let spans = voiced_spans(pcm);
    let mut dropped = Vec::new();
    let segments = std::mem::take(&mut transcript.segments);
    for segment in segments {
        match judge(&segment, &spans, opts) {
            None => transcript.segments.push(segment),
            Some(reason) => {
                debug!(
                    ?reason,
                    start_ms = segment.start_ms,
                    end_ms = segment.end_ms,
                    no_speech_prob = segment.no_speech_prob,
                    avg_logprob = segment.avg_logprob,
                    words = segment.text.split_whitespace().count(),
                    "segment dropped by a guard"
                );
                dropped.push(Dropped { segment, reason });
            }
        }
    }
    (transcript, dropped)
}

/// The reason to drop `segment`, if any.
fn judge(segment: &Segment, spans: &[(u64, u64)], opts: &TranscribeOptions) -> Option<DropReason> {
    let words = segment.text.split_whitespace().count();
    // ". . ." or "♪": nothing was said
    if !segment.text.chars().any(char::is_alphanumeric) {
        return Some(DropReason::LikelySilence);
    }
    if segment.no_speech_prob > opts.certain_silence_threshold
        || segment.no_speech_prob > opts.no_speech_threshold
            && segment.avg_logprob < opts.logprob_threshold
        // a word or two the model is unsure of, over sound it half thinks is
        // not speech: "The" on a chord of music (no-speech 0.53, -1.79)
        || words <= FEW_WORDS
            && segment.no_speech_prob > FEW_WORDS_NO_SPEECH
            && segment.avg_logprob < opts.logprob_threshold
    {
        return Some(DropReason::LikelySilence);
    }
    let length = segment.end_ms.saturating_sub(segment.start_ms).max(1);
    let voiced = overlap_ms(
        spans,
        segment.start_ms.saturating_sub(TIMESTAMP_SLACK_MS),
        segment.end_ms + TIMESTAMP_SLACK_MS,
    );
    let needed = MIN_VOICED_MS.min((length as f32 * MIN_VOICED_SHARE) as u64);
    if voiced < needed.max(FRAME_MS) {
        return Some(DropReason::OutsideVoice);
    }
    if compression_ratio(&segment.text) > opts.compression_ratio_threshold
        || max_ngram_repeats(&segment.text, LOOP_NGRAM) >= LOOP_REPEATS
    {
        return Some(DropReason::Repetitive);
    }
    let words = words as f32;
    if words > SPARE_WORDS + voiced as f32 / 1000.0 * MAX_WORDS_PER_VOICED_SECOND {
        return Some(DropReason::TooManyWords);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u64, amplitude: f32) -> Vec<f32> {
        (0..ms as usize * 16)
            .map(|i| amplitude * (2.0 * std::f32::consts::PI * 220.0 * i as f32 / 16_000.0).sin())
            .collect()
    }

    fn silence(ms: u64) -> Vec<f32> {
        vec![0.0; ms as usize * 16]
    }

    fn segment(start_ms: u64, end_ms: u64, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.into(),
            no_speech_prob: 0.05,
            avg_logprob: -0.3,
        }
    }

    /// 1 s silence, 2 s voice, 3 s silence.
    fn padded_voice() -> Vec<f32> {
        let mut pcm = silence(1000);
        pcm.extend(tone(2000, 0.3));
        pcm.extend(silence(3000));
        pcm
    }

    fn kept(segments: Vec<Segment>, pcm: &[f32]) -> (Vec<String>, Vec<DropReason>) {
        let transcript = Transcript {
            language: "en".into(),
            segments,
        };
        let (kept, dropped) = apply(transcript, pcm, &TranscribeOptions::default());
        (
            kept.segments.into_iter().map(|s| s.text).collect(),
            dropped.into_iter().map(|d| d.reason).collect(),
        )
    }

    #[test]
    fn voiced_spans_follow_the_voice_and_bridge_short_pauses() {
        let mut pcm = padded_voice();
        pcm.extend(tone(500, 0.3));
        pcm.extend(silence(200));
        pcm.extend(tone(500, 0.3));
        let spans = voiced_spans(&pcm);
        assert_eq!(spans, vec![(1000, 3000), (6000, 7200)]);
        assert!(voiced_spans(&silence(2000)).is_empty());
    }

    #[test]
    fn a_segment_over_the_trailing_silence_is_dropped_the_speech_is_kept() {
        let pcm = padded_voice();
        let (kept, dropped) = kept(
            vec![
                segment(900, 3100, "We agreed to publish the report."),
                segment(3600, 5800, "So, the first thing we're going to do."),
            ],
            &pcm,
        );
        assert_eq!(kept, vec!["We agreed to publish the report."]);
        assert_eq!(dropped, vec![DropReason::OutsideVoice]);
    }

    #[test]
    fn coarse_timestamps_at_the_edges_of_speech_are_tolerated() {
        // Whisper often puts a segment's start a little before the voice.
        let pcm = padded_voice();
        let (kept, _) = kept(vec![segment(400, 1300, "Good morning.")], &pcm);
        assert_eq!(kept, vec!["Good morning."]);
    }

    #[test]
    fn likely_silence_is_dropped_but_a_confident_decode_is_not() {
        let pcm = padded_voice();
        let silent = Segment {
            no_speech_prob: 0.7,
            avg_logprob: -1.4,
            ..segment(1000, 3000, "Thank you.")
        };
        let certain = Segment {
            no_speech_prob: 0.95,
            ..segment(1000, 3000, "you")
        };
        let confident = Segment {
            no_speech_prob: 0.7,
            avg_logprob: -0.2,
            ..segment(1000, 3000, "Yes.")
        };
        let (kept, dropped) = kept(vec![silent, certain, confident], &pcm);
        assert_eq!(kept, vec!["Yes."]);
        assert_eq!(dropped, vec![DropReason::LikelySilence; 2]);
    }

    #[test]
    fn loops_are_dropped_but_a_sentence_said_twice_is_kept() {
        let mut pcm = padded_voice();
        pcm.extend(tone(2000, 0.3));
        let (kept, dropped) = kept(
            vec![
                segment(1000, 3000, "We will publish the report on Friday."),
                segment(6000, 8000, "We will publish the report on Friday."),
                segment(
                    1000,
                    3000,
                    "we're going to do the first thing we're going to do the first thing \
                     we're going to do the first thing we're going to do the first thing",
                ),
            ],
            &pcm,
        );
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(dropped, vec![DropReason::Repetitive]);
    }

    #[test]
    fn an_unsure_word_over_music_is_dropped_a_sure_one_is_kept() {
        let pcm = padded_voice();
        let music = Segment {
            no_speech_prob: 0.53,
            avg_logprob: -1.79,
            ..segment(1000, 3000, "The")
        };
        let answer = Segment {
            no_speech_prob: 0.53,
            avg_logprob: -0.3,
            ..segment(1000, 3000, "Yes.")
        };
        let dots = segment(1000, 3000, ". . .");
        let (kept, dropped) = kept(vec![music, answer, dots], &pcm);
        assert_eq!(kept, vec!["Yes."]);
        assert_eq!(dropped, vec![DropReason::LikelySilence; 2]);
    }

    #[test]
    fn a_quiet_recording_keeps_its_speech() {
        // speech at about -55 dBFS, silence around it
        let mut pcm = silence(1000);
        pcm.extend(tone(2000, 0.0025));
        pcm.extend(silence(1000));
        let (kept, _) = kept(vec![segment(900, 3100, "We agreed.")], &pcm);
        assert_eq!(kept, vec!["We agreed."]);
    }

    #[test]
    fn a_sentence_over_half_a_second_of_hum_is_dropped() {
        let mut pcm = tone(480, 0.02);
        pcm.extend(silence(500));
        let (hum, dropped) = kept(vec![segment(0, 1000, "I'm not sure if I can do it.")], &pcm);
        assert!(hum.is_empty());
        assert_eq!(dropped, vec![DropReason::TooManyWords]);
        // the same words over two seconds of sound are speech
        let pcm = tone(2000, 0.02);
        let (speech, _) = kept(vec![segment(0, 2000, "I'm not sure if I can do it.")], &pcm);
        assert_eq!(speech.len(), 1);
    }

    #[test]
    fn real_speech_with_repeated_phrases_is_not_a_loop() {
        let jfk = "And so my fellow Americans, ask not what your country can do for you, \
                   ask what you can do for your country.";
        assert!(max_ngram_repeats(jfk, LOOP_NGRAM) < LOOP_REPEATS);
        assert!(compression_ratio(jfk) < 2.4);
        assert!(compression_ratio(&"Thank you. ".repeat(20)) > 2.4);
    }
}
