//! Whisper's log-mel spectrogram, computed exactly as OpenAI's reference does
//! (candle's own `pcm_to_mel` differs: no centred reflect padding and a
//! constant offset, which costs words on the base model).
//!
//! The recipe: the audio is followed by 30 s of zeros; a centred STFT
//! (n_fft 400, hop 160, reflect padding of 200, periodic Hann window) gives
//! power spectra, the last frame is dropped; an 80-band Slaney mel filter bank
//! (librosa's), `log10` clamped at 1e-10, clamped again to `max - 8`, then
//! `(x + 4) / 4`. Frames that only see the zero padding are all the same, so
//! only the frames that touch the audio are computed.

use std::sync::Arc;

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

/// Sample rate Whisper expects.
pub const SAMPLE_RATE: usize = 16_000;
/// Mel bands.
pub const N_MELS: usize = 80;
/// STFT size.
pub const N_FFT: usize = 400;
/// STFT hop, i.e. 10 ms per mel frame.
pub const HOP: usize = 160;
/// Mel frames in one 30 s window.
pub const WINDOW_FRAMES: usize = 3000;

const N_BINS: usize = N_FFT / 2 + 1;

/// One filter of the bank: first bin and the non-zero weights from there.
struct Filter {
    first_bin: usize,
    weights: Vec<f32>,
}

/// The log-mel spectrogram of a whole recording (plus Whisper's padding).
#[derive(Clone, Debug)]
pub struct Mel {
    /// `[N_MELS][stored_frames]`, row-major, normalised.
    data: Vec<f32>,
    stored_frames: usize,
    /// Frames that hold audio: `samples / HOP`.
    pub content_frames: usize,
    /// Value of every frame that only sees the zero padding.
    floor: f32,
}

impl Mel {
    /// Frames `start..start + len` as `[N_MELS][len]`, padded with silence.
    pub fn window(&self, start: usize, len: usize) -> Vec<f32> {
        let mut out = vec![self.floor; N_MELS * len];
        let available = self.stored_frames.saturating_sub(start).min(len);
        for band in 0..N_MELS {
            let src = &self.data[band * self.stored_frames + start..][..available];
            out[band * len..band * len + available].copy_from_slice(src);
        }
        out
    }
}

/// Computes Whisper's log-mel spectrogram of 16 kHz mono samples.
pub struct MelExtractor {
    filters: Vec<Filter>,
    window: Vec<f32>,
    fft: Arc<dyn realfft::RealToComplex<f32>>,
}

impl Default for MelExtractor {
    fn default() -> Self {
        Self::new()
    }
}

impl MelExtractor {
    pub fn new() -> Self {
        let window = (0..N_FFT)
            .map(|i| {
                let x = 2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        MelExtractor {
            filters: slaney_filters(),
            window,
            fft,
        }
    }

    /// The spectrogram of `pcm` (16 kHz mono in [-1, 1]).
    pub fn compute(&self, pcm: &[f32]) -> Mel {
        let content_frames = pcm.len() / HOP;
        // Frames whose 400-sample span (centred, so starting at t*HOP - 200)
        // reaches into the audio; every later frame sees zeros only.
        let stored_frames = (pcm.len() + N_FFT / 2).div_ceil(HOP) + 1;
        let pad = N_FFT / 2;
        // reflect-pad on the left (like torch: the edge sample is not repeated),
        // the audio, then zeros (Whisper appends 30 s of them, reflected zeros
        // on the right stay zeros).
        let mut padded = vec![0.0f32; pad + stored_frames * HOP + N_FFT];
        for (i, slot) in padded[..pad].iter_mut().enumerate() {
            *slot = pcm.get(pad - i).copied().unwrap_or(0.0);
        }
        padded[pad..pad + pcm.len()].copy_from_slice(pcm);

        let mut data = vec![0.0f32; N_MELS * stored_frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = [0.0f32; N_BINS];
        let mut max = f32::NEG_INFINITY;
        for t in 0..stored_frames {
            let frame = &padded[t * HOP..t * HOP + N_FFT];
            for ((dst, &s), &w) in input.iter_mut().zip(frame).zip(&self.window) {
                *dst = s * w;
            }
            // the lengths come from the plan itself, so this cannot fail
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = norm_sqr(c);
            }
            for (band, filter) in self.filters.iter().enumerate() {
                let bins = &power[filter.first_bin..filter.first_bin + filter.weights.len()];
                let energy: f32 = bins.iter().zip(&filter.weights).map(|(p, w)| p * w).sum();
                let log = energy.max(1e-10).log10();
                max = max.max(log);
                data[band * stored_frames + t] = log;
            }
        }
        // the zero-padding frames are log10(1e-10) = -10
        let max = max.max(-10.0);
        let low = max - 8.0;
        for v in &mut data {
            *v = (v.max(low) + 4.0) / 4.0;
        }
        let floor = ((-10.0f32).max(low) + 4.0) / 4.0;
        Mel {
            data,
            stored_frames,
            content_frames,
            floor,
        }
    }
}

fn norm_sqr(c: &Complex<f32>) -> f32 {
    c.re * c.re + c.im * c.im
}

fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// librosa.filters.mel(sr=16000, n_fft=400, n_mels=80), Slaney scale and norm.
fn slaney_filters() -> Vec<Filter> {
    let fft_freqs: Vec<f64> = (0..N_BINS)
        .map(|k| k as f64 * SAMPLE_RATE as f64 / N_FFT as f64)
        .collect();
    let max_mel = hz_to_mel(SAMPLE_RATE as f64 / 2.0);
    let mel_points: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(max_mel * i as f64 / (N_MELS + 1) as f64))
        .collect();
    (0..N_MELS)
        .map(|band| {
            let (lo, mid, hi) = (mel_points[band], mel_points[band + 1], mel_points[band + 2]);
            let enorm = 2.0 / (hi - lo);
            let full: Vec<f32> = fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - lo) / (mid - lo);
                    let upper = (hi - f) / (hi - mid);
                    (lower.min(upper).max(0.0) * enorm) as f32
                })
                .collect();
            let first_bin = full.iter().position(|&w| w > 0.0).unwrap_or(0);
            let last_bin = full.iter().rposition(|&w| w > 0.0).unwrap_or(first_bin);
            Filter {
                first_bin,
                weights: full[first_bin..=last_bin].to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_bank_matches_librosa_first_band() {
        // librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)[0, 1] == 0.024862594
        // (checked against faster-whisper's FeatureExtractor.get_mel_filters)
        let filters = slaney_filters();
        assert_eq!(filters[0].first_bin, 1);
        assert!((filters[0].weights[0] - 0.024_862_59).abs() < 1e-6);
    }

    #[test]
    fn silence_gives_the_floor_everywhere() {
        let mel = MelExtractor::new().compute(&vec![0.0; 16_000]);
        assert_eq!(mel.content_frames, 100);
        let window = mel.window(0, 300);
        assert!(window.iter().all(|&v| (v - (-1.5)).abs() < 1e-6));
    }

    #[test]
    fn a_tone_lights_up_its_band_only_while_it_plays() {
        let pcm: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let mel = MelExtractor::new().compute(&pcm);
        let window = mel.window(0, 200);
        let column = |t: usize| (0..N_MELS).map(|b| window[b * 200 + t]).collect::<Vec<_>>();
        let during = column(50);
        let loudest = (0..N_MELS)
            .max_by(|&a, &b| during[a].total_cmp(&during[b]))
            .unwrap();
        // 1 kHz sits at mel 15, band ~ 15 / (max_mel / 81) ≈ 27
        assert!((26..=29).contains(&loudest), "loudest band {loudest}");
        let after = column(150);
        assert!(after.iter().all(|&v| v <= during[loudest] - 1.0));
    }
}
