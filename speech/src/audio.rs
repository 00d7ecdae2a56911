//! Audio in: files (wav, flac, ogg/vorbis through symphonia; ogg/opus through
//! the `ogg` crate and libopus) decoded, mixed down to mono and resampled to
//! the 16 kHz Whisper takes, with rubato.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::error::SpeechError;
use crate::mel::SAMPLE_RATE;

/// Reads an audio file into 16 kHz mono samples in [-1, 1].
pub fn decode_audio_file(path: &Path) -> Result<Vec<f32>, SpeechError> {
    let fail = |reason: String| SpeechError::Audio {
        path: path.to_owned(),
        reason,
    };
    let mut magic = [0u8; 64];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| fail(e.to_string()))?;
    let (mono, rate) =
        if magic[..n].starts_with(b"OggS") && magic[..n].windows(8).any(|w| w == b"OpusHead") {
            decode_ogg_opus(path).map_err(fail)?
        } else {
            decode_with_symphonia(path).map_err(fail)?
        };
    tracing::debug!(path = %path.display(), rate, samples = mono.len(), "audio decoded");
    resample_to_16k(&mono, rate).map_err(fail)
}

/// Resamples mono samples from `rate` Hz to 16 kHz.
pub fn resample_to_16k(samples: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    if rate as usize == SAMPLE_RATE {
        return Ok(samples.to_vec());
    }
    let mut resampler = StreamResampler::new(rate)?;
    let mut out = resampler.push(samples)?;
    out.extend(resampler.finish()?);
    Ok(out)
}

/// Streaming resampler to 16 kHz: push blocks of any size, get what is ready.
pub struct StreamResampler {
    inner: FftFixedIn<f32>,
    pending: Vec<f32>,
    /// Output samples still to drop for the filter's delay.
    delay_left: usize,
    consumed: u64,
    produced: u64,
    rate: u32,
}

impl StreamResampler {
    pub fn new(rate: u32) -> Result<Self, String> {
        if rate == 0 {
            return Err("sample rate 0".into());
        }
        let chunk = (rate as usize / 50).max(64); // 20 ms
        let inner = FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE, chunk, 1, 1)
            .map_err(|e| e.to_string())?;
        let delay_left = inner.output_delay();
        Ok(StreamResampler {
            inner,
            pending: Vec::new(),
            delay_left,
            consumed: 0,
            produced: 0,
            rate,
        })
    }

    /// Adds input; returns the 16 kHz samples that are ready.
    pub fn push(&mut self, input: &[f32]) -> Result<Vec<f32>, String> {
        self.pending.extend_from_slice(input);
        self.consumed += input.len() as u64;
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let need = self.inner.input_frames_next();
            if self.pending.len() - start < need {
                break;
            }
            let block = self
                .inner
                .process(&[&self.pending[start..start + need]], None)
                .map_err(|e| e.to_string())?;
            start += need;
            self.emit(&block[0], &mut out);
        }
        self.pending.drain(..start);
        Ok(out)
    }

    /// Flushes what is left at the end of the stream.
    pub fn finish(&mut self) -> Result<Vec<f32>, String> {
        let expected = self.consumed * SAMPLE_RATE as u64 / self.rate as u64;
        let mut out = Vec::new();
        // pad the tail with zeros until the filter delay is flushed out
        let mut rest = std::mem::take(&mut self.pending);
        while self.produced < expected {
            let need = self.inner.input_frames_next();
            rest.resize(need, 0.0);
            let block = self
                .inner
                .process(&[&rest[..]], None)
                .map_err(|e| e.to_string())?;
            rest.clear();
            if block[0].is_empty() {
                break;
            }
            self.emit(&block[0], &mut out);
        }
        if self.produced > expected {
            let extra = (self.produced - expected) as usize;
            out.truncate(out.len().saturating_sub(extra));
            self.produced = expected;
        }
        Ok(out)
    }

    fn emit(&mut self, block: &[f32], out: &mut Vec<f32>) {
        let skip = self.delay_left.min(block.len());
        self.delay_left -= skip;
        out.extend_from_slice(&block[skip..]);
        self.produced += (block.len() - skip) as u64;
    }
}

fn decode_with_symphonia(path: &Path) -> Result<(Vec<f32>, u32), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| format!("unsupported or corrupt audio: {e}"))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or("no audio track")?;
    let track_id = track.id;
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| format!("unsupported codec: {e}"))?;
    let mut mono = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(e.to_string()),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::DecodeError(e)) => {
                tracing::debug!(error = e, "skipping an undecodable packet");
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        let spec = *decoded.spec();
        rate = spec.rate;
        let channels = spec.channels.count().max(1);
        let mut buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buffer.copy_interleaved_ref(decoded);
        mono.extend(
            buffer
                .samples()
                .chunks(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
    }
    if rate == 0 {
        return Err("unknown sample rate".into());
    }
    Ok((mono, rate))
}

/// Ogg/Opus (RFC 7845): OpusHead, OpusTags, then audio packets at 48 kHz.
fn decode_ogg_opus(path: &Path) -> Result<(Vec<f32>, u32), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut reader = ogg::PacketReader::new(BufReader::new(file));
    let head = reader
        .read_packet()
        .map_err(|e| e.to_string())?
        .ok_or("empty ogg file")?;
    if head.data.len() < 19 || !head.data.starts_with(b"OpusHead") {
        return Err("ogg stream is not opus".into());
    }
    let channels = head.data[9].clamp(1, 2) as usize;
    let pre_skip = u16::from_le_bytes([head.data[10], head.data[11]]) as usize;
    let mut decoder = opus::Decoder::new(
        48_000,
        if channels == 2 {
            opus::Channels::Stereo
        } else {
            opus::Channels::Mono
        },
    )
    .map_err(|e| e.to_string())?;
    let mut mono = Vec::new();
    let mut frame = vec![0f32; 5760 * channels];
    let mut last_granule = 0u64;
    let mut index = 0usize;
    while let Some(packet) = reader.read_packet().map_err(|e| e.to_string())? {
        index += 1;
        if index == 1 && packet.data.starts_with(b"OpusTags") {
            continue;
        }
        last_granule = packet.absgp_page();
        let n = decoder
            .decode_float(&packet.data, &mut frame, false)
            .map_err(|e| format!("opus packet {index}: {e}"))?;
        mono.extend(
            frame[..n * channels]
                .chunks(channels)
                .map(|f| f.iter().sum::<f32>() / channels as f32),
        );
    }
    // the last page's granule position says where the audio really ends
    let end = (last_granule as usize).saturating_sub(pre_skip);
    let mut mono = mono.split_off(pre_skip.min(mono.len()));
    if end > 0 && end < mono.len() {
        mono.truncate(end);
    }
    Ok((mono, 48_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_length_and_pitch() {
        let rate = 48_000;
        let tone: Vec<f32> = (0..rate)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
            .collect();
        let out = resample_to_16k(&tone, rate as u32).unwrap();
        assert_eq!(out.len(), 16_000);
        // zero crossings of a 440 Hz tone over one second: 880
        let crossings = out[100..15_900]
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((860..=880).contains(&crossings), "{crossings} crossings");
    }

    #[test]
    fn streaming_in_small_blocks_matches_one_shot() {
        let input: Vec<f32> = (0..44_100)
            .map(|i| ((i % 100) as f32 / 100.0) - 0.5)
            .collect();
        let whole = resample_to_16k(&input, 44_100).unwrap();
        let mut stream = StreamResampler::new(44_100).unwrap();
        let mut pieces = Vec::new();
        for block in input.chunks(333) {
            pieces.extend(stream.push(block).unwrap());
        }
        pieces.extend(stream.finish().unwrap());
        assert_eq!(whole.len(), pieces.len());
        assert!(whole.iter().zip(&pieces).all(|(a, b)| (a - b).abs() < 1e-4));
    }
}
