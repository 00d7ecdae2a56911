//! The media the generator replays, prepared once before any measurement:
//! VP8 frames read from an IVF file (encoded once by `vpxenc` from a
//! synthetic moving picture, see `bench/sfu/run`) and packetized per RFC 7741,
//! and Opus-shaped 20 ms audio packets. Nothing is encoded while measuring.
//!
//! Every packet sent carries a 16-byte trailer appended to its payload:
//! magic, source id, packet index and the send time, so a receiver can tell
//! added latency, loss and duplicates without any shared state.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Largest VP8 payload per RTP packet (before the trailer).
const VP8_MAX_PAYLOAD: usize = 1100;
/// Trailer magic.
const MAGIC: u16 = 0x5342; // "SB"
/// Size of the trailer appended to every payload.
pub const TRAILER_BYTES: usize = 16;

/// The monotonic epoch every send time is counted from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`].
pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// One video frame as RTP payloads (descriptor included); the last one ends
/// the frame (marker bit).
#[derive(Clone, Debug)]
pub struct Frame {
    pub packets: Vec<Vec<u8>>,
    pub keyframe: bool,
}

/// A VP8 stream ready to replay.
#[derive(Clone, Debug)]
pub struct Vp8Clip {
    pub frames: Vec<Frame>,
    pub fps: f64,
}

impl Vp8Clip {
    /// Reads an IVF file of VP8 frames and packetizes it.
    pub fn from_ivf(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if data.len() < 32 || &data[0..4] != b"DKIF" || &data[8..12] != b"VP80" {
            bail!("{} is not a VP8 IVF file", path.display());
        }
        let rate = u32::from_le_bytes(data[16..20].try_into()?) as f64;
        let scale = u32::from_le_bytes(data[20..24].try_into()?) as f64;
        let fps = if scale > 0.0 { rate / scale } else { 30.0 };
        let mut frames = Vec::new();
        let mut at = 32;
        while at + 12 <= data.len() {
            let size = u32::from_le_bytes(data[at..at + 4].try_into()?) as usize;
            at += 12;
            let frame = data.get(at..at + size).context("truncated IVF frame")?;
            at += size;
            frames.push(packetize_vp8(frame));
        }
        if frames.is_empty() || !frames[0].keyframe {
            bail!(
                "{} has no frames or does not start with a keyframe",
                path.display()
            );
        }
        Ok(Self { frames, fps })
    }

    /// Average bitrate of the clip in bits per second.
    pub fn bitrate(&self) -> f64 {
        let bytes: usize = self
            .frames
            .iter()
            .flat_map(|f| f.packets.iter())
            .map(Vec::len)
            .sum();
        bytes as f64 * 8.0 * self.fps / self.frames.len() as f64
    }

    /// Average packets per second.
    pub fn packet_rate(&self) -> f64 {
        let packets: usize = self.frames.iter().map(|f| f.packets.len()).sum();
        packets as f64 * self.fps / self.frames.len() as f64
    }
}

/// RFC 7741: a one-byte payload descriptor (S bit on the first packet,
/// partition 0), then the frame cut into pieces.
fn packetize_vp8(frame: &[u8]) -> Frame {
    // VP8 frame tag: bit 0 of the first byte is 0 for a keyframe.
    let keyframe = frame.first().is_some_and(|b| b & 1 == 0);
    let packets = frame
        .chunks(VP8_MAX_PAYLOAD)
        .enumerate()
        .map(|(i, chunk)| {
            let mut payload = Vec::with_capacity(chunk.len() + 1 + TRAILER_BYTES);
            payload.push(if i == 0 { 0x10 } else { 0x00 });
            payload.extend_from_slice(chunk);
            payload
        })
        .collect();
    Frame { packets, keyframe }
}

/// A 20 ms Opus packet shape: TOC byte for CELT fullband 20 ms mono, one
/// frame, and 63 bytes of frame data (~32 kbit/s with the trailer). SFUs
/// never decode Opus, so the frame body only has to have the right size.
pub fn opus_packet() -> Vec<u8> {
    let mut payload = vec![0xF8];
    payload.extend((0..63u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    payload
}

/// What a receiver reads back from a packet's trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub source: u16,
    pub index: u32,
    pub sent_ns: u64,
}

/// Appends the trailer to `payload`.
pub fn stamp(payload: &[u8], source: u16, index: u32, sent_ns: u64) -> bytes::Bytes {
    let mut out = bytes::BytesMut::with_capacity(payload.len() + TRAILER_BYTES);
    out.extend_from_slice(payload);
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&source.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&sent_ns.to_be_bytes());
    out.freeze()
}

/// Reads the trailer of a received payload.
pub fn read_stamp(payload: &[u8]) -> Option<Stamp> {
    let tail = payload.get(payload.len().checked_sub(TRAILER_BYTES)?..)?;
    if u16::from_be_bytes([tail[0], tail[1]]) != MAGIC {
        return None;
    }
    Some(Stamp {
        source: u16::from_be_bytes([tail[2], tail[3]]),
        index: u32::from_be_bytes(tail[4..8].try_into().ok()?),
        sent_ns: u64::from_be_bytes(tail[8..16].try_into().ok()?),
    })
}

/// Writes a Y4M picture sequence (a moving, textured scene that needs about
/// 1 Mbit/s of VP8 at 640x360) for `vpxenc` to encode once.
pub fn write_y4m(path: &Path, seconds: u32) -> Result<()> {
    use std::io::Write;
    let (w, h, fps) = (640usize, 360usize, 30u32);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg")?;
    let mut noise: u32 = 0x1234_5678;
    let mut luma = vec![0u8; w * h];
    let chroma = vec![128u8; (w / 2) * (h / 2)];
    for n in 0..(seconds * fps) as usize {
        for y in 0..h {
            for x in 0..w {
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                let wave = ((x + 3 * n) as f64 / 23.0).sin() * ((y + 2 * n) as f64 / 17.0).cos();
                let block = (((x + 4 * n) / 40 + (y / 40)) % 2) as f64;
                let value = 110.0 + 60.0 * wave + 40.0 * block + (noise % 24) as f64;
                luma[y * w + x] = value.clamp(0.0, 255.0) as u8;
            }
        }
        out.write_all(b"FRAME\n")?;
        out.write_all(&luma)?;
        out.write_all(&chroma)?;
        out.write_all(&chroma)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trips() {
        let payload = stamp(&[1, 2, 3], 7, 42, 123_456_789);
        assert_eq!(payload.len(), 3 + TRAILER_BYTES);
        assert_eq!(
            read_stamp(&payload),
            Some(Stamp {
                source: 7,
                index: 42,
                sent_ns: 123_456_789
            })
        );
        assert_eq!(read_stamp(&[0u8; 20]), None);
    }

    #[test]
    fn vp8_frames_are_cut_with_descriptors() {
        let frame: Vec<u8> = (0..2500).map(|i| (i % 7) as u8 * 2).collect();
        let packed = packetize_vp8(&frame);
        assert!(packed.keyframe);
        assert_eq!(packed.packets.len(), 3);
        assert_eq!(packed.packets[0][0], 0x10);
        assert_eq!(packed.packets[1][0], 0x00);
        let total: usize = packed.packets.iter().map(|p| p.len() - 1).sum();
        assert_eq!(total, frame.len());
    }
}
