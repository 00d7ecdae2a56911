//! The live pipeline's pure parts, with no sockets and no clocks: a
//! participant's Opus packets (48 kHz) are decoded and resampled to 16 kHz
//! ([`OpusTrackDecoder`]), and an energy-based voice activity detector cuts
//! the stream into utterances ([`UtteranceSegmenter`]): it starts one when the
//! level rises above the noise floor, ends it after a stretch of silence, and
//! caps its length so captions keep flowing during long monologues. The
//! bridge feeds packets in, hands finished utterances to a [`crate::SpeechEngine`]
//! on its worker pool, and stamps the results with the speaker.

use std::collections::VecDeque;

use crate::audio::StreamResampler;
use crate::error::SpeechError;
use crate::mel::SAMPLE_RATE;

/// Samples per 20 ms VAD frame at 16 kHz.
const FRAME: usize = SAMPLE_RATE / 50;
const FRAME_MS: u64 = 20;
/// Silence kept after the end of an utterance's speech.
const TAIL_KEEP_MS: u64 = 200;
/// Largest Opus frame: 120 ms at 48 kHz, stereo.
const MAX_OPUS_SAMPLES: usize = 5760 * 2;

/// Decodes one track's Opus packets to 16 kHz mono.
pub struct OpusTrackDecoder {
    decoder: opus::Decoder,
    channels: usize,
    resampler: StreamResampler,
    scratch: Vec<f32>,
}

impl OpusTrackDecoder {
    /// `channels`: 1 or 2, as negotiated for the track (WebRTC Opus is
    /// signalled as stereo but usually carries mono).
    pub fn new(channels: usize) -> Result<Self, SpeechError> {
        let channels = channels.clamp(1, 2);
        let layout = if channels == 2 {
            opus::Channels::Stereo
        } else {
            opus::Channels::Mono
        };
        let decoder = opus::Decoder::new(48_000, layout).map_err(opus_error)?;
        Ok(OpusTrackDecoder {
            decoder,
            channels,
            resampler: StreamResampler::new(48_000).map_err(track_error)?,
            scratch: vec![0.0; MAX_OPUS_SAMPLES],
        })
    }

    /// Decodes one packet; returns the 16 kHz samples that are ready.
    pub fn decode_packet(&mut self, packet: &[u8]) -> Result<Vec<f32>, SpeechError> {
        let n = self
            .decoder
            .decode_float(packet, &mut self.scratch, false)
            .map_err(opus_error)?;
        self.resample(n)
    }

    /// Conceals one lost packet of `samples_48k` samples (packet loss
    /// concealment), so the timeline stays continuous.
    pub fn conceal_loss(&mut self, samples_48k: usize) -> Result<Vec<f32>, SpeechError> {
        let len = (samples_48k * self.channels).min(self.scratch.len());
        let n = self
            .decoder
            .decode_float(&[], &mut self.scratch[..len], false)
            .map_err(opus_error)?;
        self.resample(n)
    }

    fn resample(&mut self, samples: usize) -> Result<Vec<f32>, SpeechError> {
        let mono: Vec<f32> = self.scratch[..samples * self.channels]
            .chunks(self.channels)
            .map(|f| f.iter().sum::<f32>() / self.channels as f32)
            .collect();
        self.resampler.push(&mono).map_err(track_error)
    }
}

fn opus_error(e: opus::Error) -> SpeechError {
    track_error(e.to_string())
}

fn track_error(reason: String) -> SpeechError {
    SpeechError::Audio {
        path: "<opus track>".into(),
        reason,
    }
}

/// Tuning of the utterance segmenter.
#[derive(Clone, Debug)]
pub struct SegmenterConfig {
    /// Frames quieter than this (dBFS) are never speech.
    pub min_level_db: f32,
    /// Speech must be this many dB above the tracked noise floor.
    pub above_noise_db: f32,
    /// Silence that ends an utterance.
    pub end_silence_ms: u64,
    /// Utterances with less speech than this are dropped (clicks, coughs).
    pub min_speech_ms: u64,
    /// Longer utterances are cut here and a new one starts.
    pub max_utterance_ms: u64,
    /// Audio kept from before the speech started: the energy onset fires on
    /// the vowel, after a soft first consonant ("Good", "Hello") has begun.
    pub pre_roll_ms: u64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            min_level_db: -45.0,
            above_noise_db: 12.0,
            end_silence_ms: 600,
            min_speech_ms: 200,
            max_utterance_ms: 15_000,
            pre_roll_ms: 300,
        }
    }
}

/// A stretch of speech ready for the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    /// Track time of the first sample, ms.
    pub start_ms: u64,
    /// Track time just after the last sample, ms.
    pub end_ms: u64,
    /// 16 kHz mono samples.
    pub pcm: Vec<f32>,
}

struct Open {
    start_ms: u64,
    pcm: Vec<f32>,
    speech_ms: u64,
    silence_ms: u64,
}

/// Energy VAD state machine: push 16 kHz samples with their track time,
/// get finished utterances back.
pub struct UtteranceSegmenter {
    config: SegmenterConfig,
    /// Samples not yet making a whole frame, and the time of the first.
    partial: Vec<f32>,
    partial_start_ms: u64,
    pre_roll: VecDeque<(u64, Vec<f32>)>,
    noise_floor_db: f32,
    open: Option<Open>,
}

impl UtteranceSegmenter {
    pub fn new(config: SegmenterConfig) -> Self {
        UtteranceSegmenter {
            noise_floor_db: config.min_level_db - config.above_noise_db,
            config,
            partial: Vec::new(),
            partial_start_ms: 0,
            pre_roll: VecDeque::new(),
            open: None,
        }
    }

    /// True while an utterance is open (someone is speaking).
    pub fn in_speech(&self) -> bool {
        self.open.is_some()
    }

    /// The open utterance so far (its start and samples), for a partial
    /// transcription while the speaker is still talking.
    pub fn open_audio(&self) -> Option<(u64, &[f32])> {
        self.open.as_ref().map(|o| (o.start_ms, o.pcm.as_slice()))
    }

    /// The configuration in use.
    pub fn config(&self) -> &SegmenterConfig {
        &self.config
    }

    /// Adds samples whose first one is at `start_ms` of the track.
    pub fn push(&mut self, start_ms: u64, pcm: &[f32]) -> Vec<Utterance> {
        if self.partial.is_empty() {
            self.partial_start_ms = start_ms;
        }
        self.partial.extend_from_slice(pcm);
        let mut done = Vec::new();
        let whole = self.partial.len() / FRAME * FRAME;
        let frames: Vec<f32> = self.partial.drain(..whole).collect();
        for frame in frames.chunks_exact(FRAME) {
            let at = self.partial_start_ms;
            self.partial_start_ms += FRAME_MS;
            if let Some(u) = self.frame(at, frame) {
                done.push(u);
            }
        }
        done
    }

    /// Ends the track: returns the open utterance, if it has enough speech.
    pub fn finish(&mut self) -> Option<Utterance> {
        let open = self.open.take()?;
        self.close(open)
    }

    fn frame(&mut self, at: u64, frame: &[f32]) -> Option<Utterance> {
        let energy = frame.iter().map(|s| s * s).sum::<f32>() / frame.len() as f32;
        let level_db = 10.0 * energy.max(1e-12).log10();
        let speech = level_db > self.config.min_level_db
            && level_db > self.noise_floor_db + self.config.above_noise_db;
        if !speech {
            // the floor follows quiet frames quickly and loud ones slowly
            let rate = if level_db < self.noise_floor_db {
                0.2
            } else {
                0.01
            };
            self.noise_floor_db += rate * (level_db - self.noise_floor_db);
        }
        let mut finished = None;
        match self.open.as_mut() {
            None if speech => {
                let start_ms = self.pre_roll.front().map_or(at, |(t, _)| *t);
                let mut pcm: Vec<f32> = self.pre_roll.drain(..).flat_map(|(_, f)| f).collect();
                pcm.extend_from_slice(frame);
                self.open = Some(Open {
                    start_ms,
                    pcm,
                    speech_ms: FRAME_MS,
                    silence_ms: 0,
                });
            }
            None => {
                self.pre_roll.push_back((at, frame.to_vec()));
                while self.pre_roll.len() as u64 * FRAME_MS > self.config.pre_roll_ms {
                    self.pre_roll.pop_front();
                }
            }
            Some(open) => {
                open.pcm.extend_from_slice(frame);
                if speech {
                    open.speech_ms += FRAME_MS;
                    open.silence_ms = 0;
                } else {
                    open.silence_ms += FRAME_MS;
                }
                let length_ms = open.pcm.len() as u64 * 1000 / SAMPLE_RATE as u64;
                if open.silence_ms >= self.config.end_silence_ms {
                    let mut open = self.open.take()?;
                    // keep a little of the silence: Whisper likes a clean
                    // ending, but more silence is room to invent words in
                    let keep_ms = open.silence_ms.min(TAIL_KEEP_MS);
                    let cut = (open.silence_ms - keep_ms) as usize * SAMPLE_RATE / 1000;
                    open.pcm.truncate(open.pcm.len() - cut);
                    finished = self.close(open);
                } else if length_ms >= self.config.max_utterance_ms {
                    let open = self.open.take()?;
                    let next_start = open.start_ms + length_ms;
                    finished = self.close(open);
                    if speech {
                        self.open = Some(Open {
                            start_ms: next_start,
                            pcm: Vec::new(),
                            speech_ms: 0,
                            silence_ms: 0,
                        });
                    }
                }
            }
        }
        finished
    }

    fn close(&mut self, open: Open) -> Option<Utterance> {
        if open.speech_ms < self.config.min_speech_ms {
            return None;
        }
        let end_ms = open.start_ms + open.pcm.len() as u64 * 1000 / SAMPLE_RATE as u64;
        Some(Utterance {
            start_ms: open.start_ms,
            end_ms,
            pcm: open.pcm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of a 300 Hz tone at -12 dBFS-ish, standing in for a voice.
    fn voice(ms: u64) -> Vec<f32> {
        (0..ms as usize * 16)
            .map(|i| 0.35 * (2.0 * std::f32::consts::PI * 300.0 * i as f32 / 16_000.0).sin())
            .collect()
    }

    /// `ms` of faint noise.
    fn quiet(ms: u64) -> Vec<f32> {
        (0..ms as usize * 16)
            .map(|i| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * 0.002)
            .collect()
    }

    fn feed(seg: &mut UtteranceSegmenter, audio: &[f32]) -> Vec<Utterance> {
        // in 20 ms blocks with their track time, like decoded Opus packets
        let mut out = Vec::new();
        for (i, block) in audio.chunks(320).enumerate() {
            out.extend(seg.push(i as u64 * 20, block));
        }
        out
    }

    #[test]
    fn one_sentence_between_silences_is_one_utterance() {
        let mut audio = quiet(1000);
        audio.extend(voice(1500));
        audio.extend(quiet(1500));
        let mut seg = UtteranceSegmenter::new(SegmenterConfig::default());
        let utterances = feed(&mut seg, &audio);
        assert_eq!(utterances.len(), 1, "{utterances:?}");
        let u = &utterances[0];
        assert!(
            (680..=1000).contains(&u.start_ms),
            "starts at {}",
            u.start_ms
        );
        assert!((2500..=2750).contains(&u.end_ms), "ends at {}", u.end_ms);
        assert_eq!(u.pcm.len() as u64, (u.end_ms - u.start_ms) * 16);
        assert!(!seg.in_speech());
        assert_eq!(seg.finish(), None);
    }

    #[test]
    fn a_pause_splits_two_sentences() {
        let mut audio = quiet(500);
        audio.extend(voice(1000));
        audio.extend(quiet(900));
        audio.extend(voice(1200));
        audio.extend(quiet(1000));
        let utterances = feed(
            &mut UtteranceSegmenter::new(SegmenterConfig::default()),
            &audio,
        );
        assert_eq!(utterances.len(), 2, "{utterances:?}");
        assert!(utterances[0].end_ms <= utterances[1].start_ms);
        // speech resumes at 2400 ms; the pre-roll keeps 300 ms before it
        assert!(
            (2050..=2400).contains(&utterances[1].start_ms),
            "{}",
            utterances[1].start_ms
        );
    }

    #[test]
    fn a_short_breath_does_not_split() {
        let mut audio = quiet(500);
        audio.extend(voice(1000));
        audio.extend(quiet(300));
        audio.extend(voice(1000));
        audio.extend(quiet(1000));
        let utterances = feed(
            &mut UtteranceSegmenter::new(SegmenterConfig::default()),
            &audio,
        );
        assert_eq!(utterances.len(), 1, "{utterances:?}");
    }

    #[test]
    fn a_monologue_is_cut_at_the_length_cap() {
        let config = SegmenterConfig {
            max_utterance_ms: 4000,
            ..SegmenterConfig::default()
        };
        let mut audio = quiet(500);
        audio.extend(voice(10_000));
        let mut seg = UtteranceSegmenter::new(config);
        let mut utterances = feed(&mut seg, &audio);
        assert!(seg.in_speech());
        utterances.extend(seg.finish());
        assert_eq!(utterances.len(), 3, "{utterances:?}");
        assert!(utterances.iter().all(|u| u.end_ms - u.start_ms <= 4000));
        // contiguous: no audio lost between the pieces
        assert_eq!(utterances[0].end_ms, utterances[1].start_ms);
        assert_eq!(utterances[1].end_ms, utterances[2].start_ms);
    }

    #[test]
    fn a_click_is_not_an_utterance() {
        let mut audio = quiet(500);
        audio.extend(voice(60));
        audio.extend(quiet(1500));
        let utterances = feed(
            &mut UtteranceSegmenter::new(SegmenterConfig::default()),
            &audio,
        );
        assert!(utterances.is_empty(), "{utterances:?}");
    }

    #[test]
    fn opus_packets_come_out_at_sixteen_khz() {
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let mut decoder = OpusTrackDecoder::new(1).unwrap();
        let tone: Vec<f32> = (0..48_000)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin())
            .collect();
        let mut out = Vec::new();
        for (i, frame) in tone.chunks(960).enumerate() {
            if i == 10 {
                out.extend(decoder.conceal_loss(960).unwrap());
                continue;
            }
            let packet = encoder.encode_vec_float(frame, 4000).unwrap();
            out.extend(decoder.decode_packet(&packet).unwrap());
        }
        // one second in, one second out (less the resampler's flush tail)
        assert!(
            (15_500..=16_000).contains(&out.len()),
            "{} samples",
            out.len()
        );
        let rms = (out[4000..12000].iter().map(|s| s * s).sum::<f32>() / 8000.0).sqrt();
        assert!(rms > 0.1, "rms {rms}");
    }
}
