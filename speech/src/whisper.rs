//! The built-in Whisper engine: loading and checking a model folder, and the
//! transcription loop over 30 s windows (language detection, greedy decoding
//! with timestamp rules, temperature fallback, and the guards against
//! hallucinated text: no-speech probability, compression ratio, repeats).
//!
//! The loop follows OpenAI's reference `transcribe()`: a window's decoded
//! timestamp pairs become segments, and the next window starts where the last
//! complete segment ended.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tracing::{debug, info_span, warn};

use crate::SpeechEngine;
use crate::ct2::{Ct2Index, Ct2Weights};
use crate::error::SpeechError;
use crate::guard::{self, compression_ratio};
use crate::mel::{HOP, MelExtractor, SAMPLE_RATE, WINDOW_FRAMES};
use crate::model::{DecoderState, Whisper};
use crate::tokenizer::Tokenizer;
use crate::transcript::{Language, Segment, TranscribeOptions, Transcript};

/// Seconds per timestamp token.
const TIME_PRECISION: f64 = 0.02;
/// Latest first timestamp allowed: 1 s.
const MAX_INITIAL_TIMESTAMP_TOKENS: u32 = 50;
/// Silence kept after the speech in a short encoder window (frames).
const SHORT_WINDOW_MARGIN: usize = 100;

/// Models `scripts/install-models.sh` installs: folder name, size and
/// sha256 of their `model.bin`.
const KNOWN_MODELS: &[(&str, u64, &str)] = &[
    (
        "tiny.en",
        75_537_502,
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
    (
        "base",
        145_217_532,
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
];

/// Token budget of a window: this many, plus [`TOKENS_PER_SECOND`] per second
/// of audio it covers.
const MIN_TOKEN_BUDGET: usize = 16;
const TOKENS_PER_SECOND: usize = 12;

/// What [`check_model`] found in a model folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub dir: PathBuf,
    /// `tiny.en` or `base` when `model.bin` has one of their sizes.
    pub known_as: Option<&'static str>,
    pub model_bin_bytes: u64,
    /// CTranslate2 spec revision of `model.bin` (3 for these packages).
    pub spec_revision: u32,
    pub variables: usize,
    pub multilingual: bool,
}

/// Cheap health check for `salon doctor`: the files exist, `model.bin`'s
/// index is complete (every variable inside the file, so a truncated file is
/// caught) and the vocabulary and config parse. Does not load the weights.
pub fn check_model(dir: &Path) -> Result<ModelInfo, SpeechError> {
    let bin = dir.join("model.bin");
    let index = Ct2Index::read(&bin)?;
    if index.spec != "WhisperSpec" {
        return Err(SpeechError::corrupt(
            &bin,
            format!("spec {} is not WhisperSpec", index.spec),
        ));
    }
    let tokenizer = Tokenizer::load(dir)?;
    let bytes = std::fs::metadata(&bin)
        .map_err(|source| SpeechError::ModelFile {
            path: bin.clone(),
            source,
        })?
        .len();
    let vocab = index
        .get("decoder/embeddings/weight")
        .map(|v| v.dims[0])
        .ok_or_else(|| SpeechError::corrupt(&bin, "missing decoder/embeddings/weight"))?;
    if vocab != tokenizer.vocab_size() {
        return Err(SpeechError::corrupt(
            dir,
            format!(
                "model.bin has {vocab} tokens but vocabulary.txt has {}",
                tokenizer.vocab_size()
            ),
        ));
    }
    Ok(ModelInfo {
        dir: dir.to_owned(),
        known_as: KNOWN_MODELS
            .iter()
            .find(|&&(_, size, _)| size == bytes)
            .map(|&(name, _, _)| name),
        model_bin_bytes: bytes,
        spec_revision: index.revision,
        variables: index.variables.len(),
        multilingual: is_multilingual(vocab),
    })
}

/// Full check: the sha256 of `model.bin` is the one recorded for a model
/// the install script installs. Reads the whole file (about 0.5 s for base).
pub fn verify_model_sha256(dir: &Path) -> Result<&'static str, SpeechError> {
    let bin = dir.join("model.bin");
    let bytes = std::fs::read(&bin).map_err(|source| SpeechError::ModelFile {
        path: bin.clone(),
        source,
    })?;
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    KNOWN_MODELS
        .iter()
        .find(|&&(_, _, sha)| sha == digest)
        .map(|&(name, _, _)| name)
        .ok_or_else(|| {
            SpeechError::corrupt(
                &bin,
                format!("sha256 {digest} is not a known model (run scripts/install-models.sh)"),
            )
        })
}

fn is_multilingual(vocab: usize) -> bool {
    vocab >= 51_865
}

/// A loaded Whisper model, ready to transcribe. Cheap to share (`Arc`) and
/// safe to use from several threads at once.
pub struct WhisperModel {
    model: Whisper,
    tokenizer: Tokenizer,
    mel: MelExtractor,
    multilingual: bool,
    dir: PathBuf,
}

/// One decode of one window.
struct WindowDecode {
    tokens: Vec<u32>,
    avg_logprob: f32,
    compression_ratio: f32,
    temperature: f32,
}

impl WhisperModel {
    /// Loads `dir` (`model.bin`, `vocabulary.txt`, `config.json`).
    pub fn load(dir: &Path) -> Result<Self, SpeechError> {
        let _span = info_span!("whisper_load", dir = %dir.display()).entered();
        let info = check_model(dir)?;
        let bin = dir.join("model.bin");
        let index = Ct2Index::read(&bin)?;
        let bytes = std::fs::read(&bin).map_err(|source| SpeechError::ModelFile {
            path: bin.clone(),
            source,
        })?;
        let weights = Ct2Weights {
            index: &index,
            bytes: &bytes,
            path: &bin,
        };
        let model = Whisper::load(&weights, &Device::Cpu)?;
        let tokenizer = Tokenizer::load(dir)?;
        debug!(dims = ?model.dims, known_as = ?info.known_as, "whisper model loaded");
        Ok(WhisperModel {
            model,
            tokenizer,
            mel: MelExtractor::new(),
            multilingual: info.multilingual,
            dir: dir.to_owned(),
        })
    }

    /// True for multilingual models (base), false for English-only (tiny.en).
    pub fn multilingual(&self) -> bool {
        self.multilingual
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(
        &self,
        pcm: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, SpeechError> {
        let _span = info_span!(
            "whisper_transcribe",
            seconds = pcm.len() as f64 / SAMPLE_RATE as f64
        )
        .entered();
        let mut language = match (&opts.language, self.multilingual) {
            (Language::Code(code), _) => {
                if self.multilingual && self.tokenizer.language_token(code).is_none()
                    || !self.multilingual && code != "en"
                {
                    return Err(SpeechError::UnsupportedLanguage(code.clone()));
                }
                Some(code.clone())
            }
            (Language::Auto, false) => Some("en".to_owned()),
            (Language::Auto, true) => None,
        };
        let mel = self.mel.compute(pcm);
        let content = mel.content_frames;
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let mut segments: Vec<Segment> = Vec::new();
        let mut seek = 0usize;
        while seek < content {
            let segment_size = (content - seek).min(WINDOW_FRAMES);
            let frames = if opts.short_window && segment_size < WINDOW_FRAMES {
                (segment_size + SHORT_WINDOW_MARGIN)
                    .div_ceil(100)
                    .saturating_mul(100)
                    .min(WINDOW_FRAMES)
            } else {
                WINDOW_FRAMES
            };
            let _window = info_span!("window", seek_ms = seek * 10, frames).entered();
            let started = Instant::now();
            let audio = self.model.encode(&mel.window(seek, frames), frames)?;
            let encode_ms = started.elapsed().as_millis() as u64;
            let mut state = self.model.start(&audio)?;
            // the logits at <|startoftranscript|> give both the language and
            // the no-speech probability
            let first = self
                .model
                .decode(&mut state, &[self.tokenizer.special.sot], 1)?
                .swap_remove(0);
            let no_speech_prob = softmax_at(&first, self.tokenizer.special.no_speech as usize);
            if language.is_none() {
                language = Some(self.detect_language(&first)?);
            }
            let mut prompt_rest = Vec::new();
            if self.multilingual {
                let code = language.as_deref().unwrap_or("en");
                prompt_rest.push(
                    self.tokenizer
                        .language_token(code)
                        .ok_or_else(|| SpeechError::UnsupportedLanguage(code.to_owned()))?,
                );
                prompt_rest.push(self.tokenizer.special.transcribe);
            }
            let initial = if prompt_rest.is_empty() {
                first
            } else {
                self.model
                    .decode(&mut state, &prompt_rest, 1)?
                    .swap_remove(0)
            };
            let prompt_len = state.position;
            let max_timestamp = (frames / 2) as u32;
            let started = Instant::now();
            let decode = self.decode_with_fallback(
                &mut state,
                prompt_len,
                &initial,
                max_timestamp,
                opts,
                &mut rng,
            )?;
            debug!(
                encode_ms,
                decode_ms = started.elapsed().as_millis() as u64,
                tokens = decode.tokens.len(),
                avg_logprob = decode.avg_logprob,
                compression_ratio = decode.compression_ratio,
                temperature = decode.temperature,
                no_speech_prob,
                "window decoded"
            );
            if no_speech_prob > opts.certain_silence_threshold
                || no_speech_prob > opts.no_speech_threshold
                    && decode.avg_logprob < opts.logprob_threshold
            {
                debug!("window is silence");
                seek += segment_size;
                continue;
            }
            let looped = decode.compression_ratio > opts.compression_ratio_threshold;
            if looped {
                // every temperature looped: keep the decode (the guards judge
                // each segment), but not a copy of the segment before it
                // from this same looping decode
                warn!(
                    compression_ratio = decode.compression_ratio,
                    "repetitive decode after every fallback"
                );
            }
            let time_offset_ms = (seek * HOP * 1000 / SAMPLE_RATE) as u64;
            let (window_segments, advance) =
                self.split_segments(&decode, time_offset_ms, segment_size, no_speech_prob);
            let window_start = segments.len();
            for segment in window_segments {
                // A sentence said twice is two segments; only a looping
                // decode's copies of its own previous segment are dropped.
                let looped_copy = looped
                    && segments[window_start..]
                        .last()
                        .is_some_and(|prev| prev.text.trim() == segment.text.trim());
                if segment.text.trim().is_empty() || looped_copy {
                    continue;
                }
                segments.push(segment);
            }
            // never stall: a window always moves the seek forward
            seek += advance.max(1);
        }
        let transcript = Transcript {
            language: language.unwrap_or_else(|| "en".to_owned()),
            segments,
        };
        Ok(guard::apply(transcript, pcm, opts).0)
    }

    fn detect_language(&self, logits: &[f32]) -> Result<String, SpeechError> {
        let best = self
            .tokenizer
            .languages
            .iter()
            .filter(|&&(_, id)| (id as usize) < logits.len())
            .max_by(|a, b| logits[a.1 as usize].total_cmp(&logits[b.1 as usize]))
            .map(|(code, _)| code.clone())
            .ok_or_else(|| SpeechError::UnsupportedLanguage("auto".into()))?;
        debug!(language = %best, "language detected");
        Ok(best)
    }

    fn decode_with_fallback(
        &self,
        state: &mut DecoderState,
        prompt_len: usize,
        initial: &[f32],
        max_timestamp: u32,
        opts: &TranscribeOptions,
        rng: &mut StdRng,
    ) -> Result<WindowDecode, SpeechError> {
        let temperatures = if opts.temperatures.is_empty() {
            &[0.0][..]
        } else {
            &opts.temperatures[..]
        };
        let mut best: Option<WindowDecode> = None;
        for (i, &temperature) in temperatures.iter().enumerate() {
            if i > 0 {
                self.model.truncate(state, prompt_len)?;
            }
            let decode = self.decode_window(state, initial, max_timestamp, temperature, rng)?;
            let too_repetitive = decode.compression_ratio > opts.compression_ratio_threshold;
            let too_unlikely = decode.avg_logprob < opts.logprob_threshold;
            if !too_repetitive && !too_unlikely {
                return Ok(decode);
            }
            debug!(
                temperature,
                too_repetitive, too_unlikely, "decode needs a fallback"
            );
            let better = best.as_ref().is_none_or(|b| {
                (b.compression_ratio > opts.compression_ratio_threshold
                    && decode.compression_ratio <= opts.compression_ratio_threshold)
                    || (decode.compression_ratio <= opts.compression_ratio_threshold)
                        == (b.compression_ratio <= opts.compression_ratio_threshold)
                        && decode.avg_logprob > b.avg_logprob
            });
            if better {
                best = Some(decode);
            }
        }
        best.ok_or_else(|| SpeechError::Inference(candle_core::Error::Msg("no decode".into())))
    }

    /// Samples one window's tokens after the prompt.
    fn decode_window(
        &self,
        state: &mut DecoderState,
        initial: &[f32],
        max_timestamp: u32,
        temperature: f32,
        rng: &mut StdRng,
    ) -> Result<WindowDecode, SpeechError> {
        let special = &self.tokenizer.special;
        // Nobody says more than ~12 tokens a second (words and timestamps);
        // a decode past that is a repetition loop, cut short instead of
        // running to the context's end (seconds of CPU on a short utterance).
        let plausible = MIN_TOKEN_BUDGET + max_timestamp as usize * TOKENS_PER_SECOND / 50;
        let sample_len = (self.model.dims.text_ctx / 2)
            .min(self.model.dims.text_ctx - state.position)
            .min(plausible);
        let mut tokens: Vec<u32> = Vec::new();
        let mut sum_logprob = 0.0f64;
        let mut logits = initial.to_vec();
        loop {
            self.apply_rules(&mut logits, &tokens, max_timestamp);
            let logprobs = log_softmax(&logits);
            let next = if temperature <= 0.0 {
                argmax(&logits)
            } else {
                sample(&logits, temperature, rng)
            };
            sum_logprob += logprobs[next as usize] as f64;
            if next == special.eot {
                break;
            }
            tokens.push(next);
            if tokens.len() >= sample_len {
                break;
            }
            logits = self.model.decode(state, &[next], 1)?.swap_remove(0);
        }
        let text = self.tokenizer.decode(&tokens);
        Ok(WindowDecode {
            avg_logprob: (sum_logprob / (tokens.len() + 1) as f64) as f32,
            compression_ratio: compression_ratio(&text),
            tokens,
            temperature,
        })
    }

    /// Whisper's logit filters: suppressed tokens, blank start, and the
    /// timestamp grammar (pairs, non-decreasing, first within 1 s, inside
    /// the encoded window).
    fn apply_rules(&self, logits: &mut [f32], tokens: &[u32], max_timestamp: u32) {
        let special = &self.tokenizer.special;
        let ts_begin = special.timestamp_begin as usize;
        let vocab = logits.len();
        let ninf = f32::NEG_INFINITY;
        let mut suppress = |id: u32| {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = ninf;
            }
        };
        for &id in &self.tokenizer.suppress {
            suppress(id);
        }
        for id in [
            Some(special.transcribe),
            special.translate,
            Some(special.sot),
            special.sot_prev,
            special.sot_lm,
            Some(special.no_speech),
            Some(special.no_timestamps),
        ]
        .into_iter()
        .flatten()
        {
            suppress(id);
        }
        if tokens.is_empty() {
            for &id in &self.tokenizer.suppress_at_begin {
                suppress(id);
            }
        }
        let is_ts = |t: u32| t as usize >= ts_begin;
        let last_ts = tokens.last().is_some_and(|&t| is_ts(t));
        let penultimate_ts = tokens.len() < 2 || is_ts(tokens[tokens.len() - 2]);
        if last_ts {
            if penultimate_ts {
                logits[ts_begin..].fill(ninf);
            } else {
                logits[..special.eot as usize].fill(ninf);
            }
        }
        if let Some(&last) = tokens.iter().rev().find(|&&t| is_ts(t)) {
            let upto = if last_ts && !penultimate_ts {
                last as usize
            } else {
                last as usize + 1
            };
            logits[ts_begin..upto.min(vocab)].fill(ninf);
        }
        if tokens.is_empty() {
            logits[..ts_begin].fill(ninf);
            let last_allowed = ts_begin + MAX_INITIAL_TIMESTAMP_TOKENS as usize;
            if last_allowed + 1 < vocab {
                logits[last_allowed + 1..].fill(ninf);
            }
        }
        let window_end = ts_begin + max_timestamp as usize;
        if window_end + 1 < vocab {
            logits[window_end + 1..].fill(ninf);
        }
        // if timestamps together are likelier than any text token, take one
        let logprobs = log_softmax(logits);
        let ts_logprob = log_sum_exp(&logprobs[ts_begin..]);
        let max_text = logprobs[..ts_begin]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        if ts_logprob > max_text {
            logits[..ts_begin].fill(ninf);
        }
    }

    /// Turns a window's tokens into segments; returns them and how many
    /// frames the seek advances.
    fn split_segments(
        &self,
        decode: &WindowDecode,
        offset_ms: u64,
        segment_size: usize,
        no_speech_prob: f32,
    ) -> (Vec<Segment>, usize) {
        let tokens = &decode.tokens[..];
        let ts_begin = self.tokenizer.special.timestamp_begin;
        let is_ts = |t: u32| t >= ts_begin;
        let ms = |t: u32| offset_ms + ((t - ts_begin) as f64 * TIME_PRECISION * 1000.0) as u64;
        let segment = |start_ms, end_ms, from: usize, to: usize| Segment {
            start_ms,
            end_ms,
            text: self.tokenizer.decode(&tokens[from..to]).trim().to_owned(),
            no_speech_prob,
            // as OpenAI's and faster-whisper's answers have it: the
            // window's figures, so the guards judge every engine alike (a
            // few tokens' own mean is too noisy to judge on)
            avg_logprob: decode.avg_logprob,
        };
        let n = tokens.len();
        let single_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
        let mut slices: Vec<usize> = (1..n)
            .filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i]))
            .collect();
        if slices.is_empty() {
            let duration_ms = match tokens.iter().rev().find(|&&t| is_ts(t)) {
                Some(&t) if t != ts_begin => ms(t) - offset_ms,
                _ => (segment_size * HOP * 1000 / SAMPLE_RATE) as u64,
            };
            return (
                vec![segment(offset_ms, offset_ms + duration_ms, 0, n)],
                segment_size,
            );
        }
        if single_ending {
            slices.push(n);
        }
        let mut out = Vec::new();
        let mut last = 0;
        for &current in &slices {
            let sliced = &tokens[last..current];
            if let (Some(&first), Some(&end)) = (sliced.first(), sliced.last())
                && is_ts(first)
                && is_ts(end)
            {
                out.push(segment(ms(first), ms(end), last, current));
            }
            last = current;
        }
        let advance = if single_ending {
            segment_size
        } else {
            ((tokens[last - 1] - ts_begin) * 2) as usize
        };
        (out, advance)
    }
}

impl SpeechEngine for WhisperModel {
    fn transcribe(&self, pcm: &[f32], opts: &TranscribeOptions) -> Result<Transcript, SpeechError> {
        WhisperModel::transcribe(self, pcm, opts)
    }
}

fn argmax(values: &[f32]) -> u32 {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u32)
        .unwrap_or(0)
}

fn log_sum_exp(values: &[f32]) -> f32 {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(logits);
    logits.iter().map(|l| l - lse).collect()
}

fn softmax_at(logits: &[f32], index: usize) -> f32 {
    logits
        .get(index)
        .map(|l| (l - log_sum_exp(logits)).exp())
        .unwrap_or(0.0)
}

fn sample(logits: &[f32], temperature: f32, rng: &mut StdRng) -> u32 {
    let scaled: Vec<f32> = logits.iter().map(|l| l / temperature).collect();
    let lse = log_sum_exp(&scaled);
    let mut target: f32 = rng.random();
    for (i, l) in scaled.iter().enumerate() {
        target -= (l - lse).exp();
        if target <= 0.0 {
            return i as u32;
        }
    }
    argmax(logits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_sums_to_one() {
        let lp = log_softmax(&[1.0, 2.0, 3.0, f32::NEG_INFINITY]);
        let total: f32 = lp.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), 1);
    }
}
