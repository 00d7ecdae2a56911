//! Simulcast per subscriber, as pure logic (no sockets, no locks): which layer
//! each subscriber gets, when it may switch, and how its packets are
//! renumbered so that its decoder sees one continuous stream.
//!
//! It sits in the forwarding loop (`room::forward`): for every packet of a
//! published track, the loop asks the subscriber's [`LayerForward`] whether to
//! send it and with which sequence number and timestamp. What a subscriber
//! asked for (`UpdateTrackSettings`) is kept in a [`LayerRequest`], packed in
//! one atomic on its down track, so the loop reads it without a lock.
//!
//! Layers are numbered by LiveKit's video quality: 0 = LOW (rid `q`), 1 =
//! MEDIUM (`h`), 2 = HIGH (`f`). A track without simulcast has one layer, 0.
//! Payloads are only read (the first bytes of a VP8 or H.264 frame, which
//! LiveKit's end-to-end encryption leaves in the clear for this purpose),
//! never rewritten.

use std::time::{Duration, Instant};

/// Number of simulcast layers LiveKit clients publish at most.
pub(crate) const MAX_LAYERS: usize = 3;

/// A layer not heard from for this long counts as stopped (the publisher's
/// network, or dynacast, paused it).
pub(crate) const LAYER_STALE: Duration = Duration::from_millis(1500);

/// Layer index for a RID as livekit-client names them (`q`, `h`, `f`).
/// Unknown RIDs and tracks without simulcast are layer 0.
pub(crate) fn layer_for_rid(rid: Option<&str>) -> u8 {
    match rid {
        Some("h") => 1,
        Some("f") => 2,
        _ => 0,
    }
}

/// The size of each published layer, from `AddTrackRequest.layers`
/// (indexed by quality; zero where unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LayerSizes {
    pub(crate) sizes: [(u32, u32); MAX_LAYERS],
}

impl LayerSizes {
    /// From the protocol's `VideoLayer`s (quality, width, height).
    pub(crate) fn from_layers(layers: impl IntoIterator<Item = (i32, u32, u32)>) -> Self {
        let mut sizes = [(0, 0); MAX_LAYERS];
        for (quality, width, height) in layers {
            if let Ok(q) = usize::try_from(quality)
                && q < MAX_LAYERS
            {
                sizes[q] = (width, height);
            }
        }
        Self { sizes }
    }

    /// The quality that fits a `width`×`height` view, as LiveKit chooses it:
    /// the smallest layer at least that large, else the largest known. `None`
    /// when no layer size is known.
    pub(crate) fn quality_for(&self, width: u32, height: u32) -> Option<u8> {
        let known: Vec<(u8, (u32, u32))> = (0..MAX_LAYERS as u8)
            .map(|q| (q, self.sizes[q as usize]))
            .filter(|(_, (w, h))| *w > 0 && *h > 0)
            .collect();
        let last = known.last()?.0;
        Some(
            known
                .iter()
                .find(|(_, (w, h))| *w >= width && *h >= height)
                .map(|(q, _)| *q)
                .unwrap_or(last),
        )
    }
}

/// What a subscriber asked for one track (`UpdateTrackSettings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LayerRequest {
    /// Nothing is forwarded (the client hid the video or asked quality OFF).
    pub(crate) disabled: bool,
    /// The wanted layer (quality), 0..=2.
    pub(crate) quality: u8,
}

impl Default for LayerRequest {
    /// LiveKit's default for a new subscription: the best layer.
    fn default() -> Self {
        Self {
            disabled: false,
            quality: 2,
        }
    }
}

impl LayerRequest {
    /// From `UpdateTrackSettings`: width and height, when given and the layer
    /// sizes are known, choose the layer; otherwise `quality` (3 = OFF).
    pub(crate) fn from_settings(
        disabled: bool,
        quality: i32,
        width: u32,
        height: u32,
        sizes: &LayerSizes,
    ) -> Self {
        let by_size = (width > 0 && height > 0)
            .then(|| sizes.quality_for(width, height))
            .flatten();
        let (off, quality) = match by_size {
            Some(q) => (false, q),
            None if quality >= 3 => (true, 2),
            None => (false, quality.clamp(0, 2) as u8),
        };
        Self {
            disabled: disabled || off,
            quality,
        }
    }

    /// Packed into one word, for an atomic.
    pub(crate) fn pack(self) -> u32 {
        u32::from(self.quality) | (u32::from(self.disabled) << 8)
    }

    pub(crate) fn unpack(word: u32) -> Self {
        Self {
            disabled: word & 0x100 != 0,
            quality: (word & 0xff).min(2) as u8,
        }
    }
}

/// The layer to forward for `wanted` among those `live` now: the highest
/// live layer at or below it, else the lowest above it; `wanted` itself when
/// none is live (its packets will tell).
pub(crate) fn effective_layer(wanted: u8, live: [bool; MAX_LAYERS]) -> u8 {
    (0..=wanted.min(MAX_LAYERS as u8 - 1))
        .rev()
        .find(|&l| live[l as usize])
        .or_else(|| (wanted + 1..MAX_LAYERS as u8).find(|&l| live[l as usize]))
        .unwrap_or(wanted)
}

/// Which layers of a track sent a packet lately.
#[derive(Debug, Default)]
pub(crate) struct LiveLayers {
    last: [Option<Instant>; MAX_LAYERS],
}

impl LiveLayers {
    pub(crate) fn saw(&mut self, layer: u8, now: Instant) {
        if let Some(slot) = self.last.get_mut(layer as usize) {
            *slot = Some(now);
        }
    }

    pub(crate) fn live(&self, now: Instant) -> [bool; MAX_LAYERS] {
        self.last
            .map(|at| at.is_some_and(|at| now.saturating_duration_since(at) < LAYER_STALE))
    }
}

/// Whether an RTP payload starts a keyframe, by codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyframeProbe {
    Vp8,
    H264,
    /// Audio: every packet stands alone.
    Audio,
    /// A codec this SFU cannot read: the first packet starts the stream, and
    /// the subscriber never switches layers.
    Opaque,
}

impl KeyframeProbe {
    pub(crate) fn for_mime(mime: &str) -> Self {
        let mime = mime.to_ascii_lowercase();
        if mime.starts_with("audio/") {
            Self::Audio
        } else if mime == "video/vp8" {
            Self::Vp8
        } else if mime == "video/h264" {
            Self::H264
        } else {
            Self::Opaque
        }
    }

    /// True if a subscriber may start (or switch to) this stream here.
    pub(crate) fn starts_keyframe(self, payload: &[u8]) -> bool {
        match self {
            Self::Vp8 => vp8_keyframe(payload).is_some(),
            Self::H264 => h264_keyframe(payload),
            Self::Audio | Self::Opaque => true,
        }
    }

    /// Whether layers can be switched at keyframes (else a subscriber stays
    /// on the layer it started with).
    pub(crate) fn can_switch(self) -> bool {
        matches!(self, Self::Vp8 | Self::H264)
    }
}

/// If `payload` (RFC 7741) is the first packet of a VP8 keyframe, its width
/// and height.
pub(crate) fn vp8_keyframe(payload: &[u8]) -> Option<(u16, u16)> {
    let first = *payload.first()?;
    let start = first & 0x10 != 0;
    let partition = first & 0x0f;
    if !start || partition != 0 {
        return None;
    }
    let mut i = 1;
    if first & 0x80 != 0 {
        let x = *payload.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let m = *payload.get(i)?;
            i += if m & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    let frame = payload.get(i..)?;
    // Frame tag bit 0 is the inverse keyframe flag; a keyframe then has the
    // start code 9d 01 2a and the 14-bit width and height.
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((width, height))
}

/// True if an H.264 RTP payload (RFC 6184) starts an IDR picture or carries
/// its parameter sets.
pub(crate) fn h264_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let is_key = |nal: u8| matches!(nal & 0x1f, 5 | 7);
    match first & 0x1f {
        24 => {
            // STAP-A: 16-bit sizes, each followed by a NAL unit.
            let mut i = 1;
            while i + 2 < payload.len() {
                let size = usize::from(u16::from_be_bytes([payload[i], payload[i + 1]]));
                if is_key(payload[i + 2]) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => payload.get(1).is_some_and(|&h| h & 0x80 != 0 && is_key(h)),
        _ => is_key(first),
    }
}

/// Keeps one subscriber's stream continuous across layer switches and
/// pauses: sequence numbers go on from the last one sent, and timestamps
/// from the last one plus the time that passed.
#[derive(Debug, Default)]
pub(crate) struct SeqRewriter {
    /// Added to the source's numbers (wrapping).
    seq_offset: u16,
    ts_offset: u32,
    /// The first source sequence number of the current run: older ones
    /// (reordered from before the switch) are dropped.
    run_start: u16,
    /// Last sequence number and timestamp sent, and when.
    last: Option<(u16, u32, Instant)>,
}

impl SeqRewriter {
    /// Starts a new run at this source packet (after a switch or a pause).
    /// The very first run keeps the source's own numbers.
    pub(crate) fn start_run(&mut self, seq: u16, ts: u32, now: Instant, clock_rate: u32) {
        let (out_seq, out_ts) = match self.last {
            None => (seq, ts),
            Some((last_seq, last_ts, at)) => {
                let elapsed = now.saturating_duration_since(at);
                let ticks = (elapsed.as_micros() * u128::from(clock_rate) / 1_000_000) as u32;
                (last_seq.wrapping_add(1), last_ts.wrapping_add(ticks.max(1)))
            }
        };
        self.seq_offset = out_seq.wrapping_sub(seq);
        self.ts_offset = out_ts.wrapping_sub(ts);
        self.run_start = seq;
    }

    /// The subscriber's numbers for a source packet of the current run;
    /// `None` for one older than the run's start.
    pub(crate) fn rewrite(&mut self, seq: u16, ts: u32, now: Instant) -> Option<(u16, u32)> {
        if seq.wrapping_sub(self.run_start) >= 0x8000 {
            return None;
        }
        let out = (
            seq.wrapping_add(self.seq_offset),
            ts.wrapping_add(self.ts_offset),
        );
        let newer = self
            .last
            .is_none_or(|(last, _, _)| out.0.wrapping_sub(last).wrapping_sub(1) < 0x8000);
        if newer {
            self.last = Some((out.0, out.1, now));
        }
        Some(out)
    }
}

/// What to do with one source packet for one subscriber.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not for this subscriber.
    Drop,
    /// Not for this subscriber, and the layer it waits for needs a keyframe.
    NeedKeyframe(u8),
    /// Send it with these numbers.
    Forward { seq: u16, ts: u32 },
    /// Send it with these numbers, and ask `layer` for a keyframe (the
    /// subscriber waits to switch to it).
    ForwardNeedKeyframe { seq: u16, ts: u32, layer: u8 },
}

/// One subscriber's position in a published track: the layer it is on and
/// its renumbering.
#[derive(Debug, Default)]
pub(crate) struct LayerForward {
    current: Option<u8>,
    rewriter: SeqRewriter,
}

/// One source packet, as [`LayerForward::decide`] needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SourcePacket {
    pub(crate) layer: u8,
    pub(crate) seq: u16,
    pub(crate) ts: u32,
    /// The packet starts a keyframe (per [`KeyframeProbe`]).
    pub(crate) keyframe: bool,
}

impl LayerForward {
    /// The layer being forwarded, if any.
    pub(crate) fn current(&self) -> Option<u8> {
        self.current
    }

    /// Decides for `packet`, the subscriber wanting `target` (`None`: paused).
    /// A switch happens only on a keyframe of the target layer; until then
    /// the current layer keeps flowing.
    pub(crate) fn decide(
        &mut self,
        packet: SourcePacket,
        target: Option<u8>,
        can_switch: bool,
        now: Instant,
        clock_rate: u32,
    ) -> Verdict {
        let Some(target) = target else {
            self.current = None;
            return Verdict::Drop;
        };
        let target = match self.current {
            Some(current) if !can_switch => current,
            _ => target,
        };
        if self.current == Some(packet.layer) {
            let Some((seq, ts)) = self.rewriter.rewrite(packet.seq, packet.ts, now) else {
                return Verdict::Drop;
            };
            if packet.layer == target {
                return Verdict::Forward { seq, ts };
            }
            return Verdict::ForwardNeedKeyframe {
                seq,
                ts,
                layer: target,
            };
        }
        if packet.layer != target {
            return Verdict::Drop;
        }
        if !packet.keyframe {
            return Verdict::NeedKeyframe(target);
        }
        self.current = Some(target);
        self.rewriter
            .start_run(packet.seq, packet.ts, now, clock_rate);
        match self.rewriter.rewrite(packet.seq, packet.ts, now) {
            Some((seq, ts)) => Verdict::Forward { seq, ts },
            None => Verdict::Drop,
        }
    }
}

/// Track settings a subscriber sent before its down track existed.
/// livekit-client sends `UpdateTrackSettings` as soon as it learns of a
/// track (adaptive stream, `setVideoQuality`), which can be before the
/// subscription is set up here; they are kept, newest per track, and
/// applied when it is. Bounded: a client naming endless tracks costs
/// nothing beyond [`EarlySettings::MAX`] entries.
#[derive(Debug, Default)]
pub(crate) struct EarlySettings {
    by_track: Vec<(String, EarlySetting)>,
}

/// The fields of one `UpdateTrackSettings` that choose a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EarlySetting {
    pub(crate) disabled: bool,
    pub(crate) quality: i32,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl EarlySettings {
    pub(crate) const MAX: usize = 64;

    /// Keeps `setting` for `track_sid`, replacing an older one; when full,
    /// the oldest track's is forgotten.
    pub(crate) fn remember(&mut self, track_sid: &str, setting: EarlySetting) {
        self.by_track.retain(|(sid, _)| sid != track_sid);
        if self.by_track.len() >= Self::MAX {
            self.by_track.remove(0);
        }
        self.by_track.push((track_sid.to_owned(), setting));
    }

    /// The setting kept for `track_sid`, taken out.
    pub(crate) fn take(&mut self, track_sid: &str) -> Option<EarlySetting> {
        let at = self.by_track.iter().position(|(sid, _)| sid == track_sid)?;
        Some(self.by_track.remove(at).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_settings_keep_the_newest_per_track_and_stay_bounded() {
        let low = EarlySetting {
            disabled: false,
            quality: 0,
            width: 0,
            height: 0,
        };
        let off = EarlySetting {
            disabled: true,
            ..low
        };
        let mut early = EarlySettings::default();
        early.remember("TR_a", low);
        early.remember("TR_a", off);
        assert_eq!(early.take("TR_a"), Some(off), "the newest wins");
        assert_eq!(early.take("TR_a"), None, "taken once");
        for i in 0..EarlySettings::MAX + 10 {
            early.remember(&format!("TR_{i}"), low);
        }
        assert_eq!(early.by_track.len(), EarlySettings::MAX);
        assert_eq!(early.take("TR_0"), None, "the oldest went first");
        assert_eq!(
            early.take(&format!("TR_{}", EarlySettings::MAX + 9)),
            Some(low)
        );
    }

    /// A VP8 RTP payload: descriptor with a 15-bit PictureID, then a frame.
    fn vp8(keyframe: bool, start: bool, width: u16, height: u16) -> Vec<u8> {
        let mut p = vec![0x80 | if start { 0x10 } else { 0 }, 0x80, 0x80 | 0x12, 0x34];
        if keyframe {
            p.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
            p.extend_from_slice(&width.to_le_bytes());
            p.extend_from_slice(&height.to_le_bytes());
        } else {
            p.extend_from_slice(&[0x01, 0x00, 0x00, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0]);
        }
        p
    }

    #[test]
    fn vp8_keyframes_are_recognised_with_their_size() {
        assert_eq!(vp8_keyframe(&vp8(true, true, 640, 360)), Some((640, 360)));
        assert_eq!(vp8_keyframe(&vp8(false, true, 640, 360)), None);
        assert_eq!(
            vp8_keyframe(&vp8(true, false, 640, 360)),
            None,
            "not a frame start"
        );
        // The short descriptor (no extensions), as libvpx-based senders use.
        let mut short = vec![0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a];
        short.extend_from_slice(&320u16.to_le_bytes());
        short.extend_from_slice(&180u16.to_le_bytes());
        assert_eq!(vp8_keyframe(&short), Some((320, 180)));
        assert_eq!(vp8_keyframe(&[]), None);
        assert_eq!(vp8_keyframe(&[0x90, 0x80]), None, "truncated");
        assert!(KeyframeProbe::for_mime("video/VP8").starts_keyframe(&short));
    }

    #[test]
    fn h264_idr_and_parameter_sets_start_a_keyframe() {
        assert!(h264_keyframe(&[0x65, 1, 2])); // IDR slice
        assert!(!h264_keyframe(&[0x41, 1, 2])); // non-IDR slice
        assert!(h264_keyframe(&[24, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce])); // STAP-A SPS+PPS
        assert!(h264_keyframe(&[28, 0x85, 0])); // FU-A start of an IDR
        assert!(!h264_keyframe(&[28, 0x05, 0])); // FU-A middle
        assert!(!h264_keyframe(&[]));
    }

    #[test]
    fn rids_map_to_livekit_qualities() {
        assert_eq!(layer_for_rid(Some("q")), 0);
        assert_eq!(layer_for_rid(Some("h")), 1);
        assert_eq!(layer_for_rid(Some("f")), 2);
        assert_eq!(layer_for_rid(None), 0);
    }

    #[test]
    fn a_view_size_picks_the_smallest_layer_that_fills_it() {
        let sizes = LayerSizes::from_layers([(0, 320, 180), (1, 640, 360), (2, 1280, 720)]);
        assert_eq!(sizes.quality_for(320, 180), Some(0));
        assert_eq!(sizes.quality_for(400, 225), Some(1));
        assert_eq!(sizes.quality_for(1280, 720), Some(2));
        assert_eq!(
            sizes.quality_for(1920, 1080),
            Some(2),
            "larger than all: the best"
        );
        assert_eq!(LayerSizes::default().quality_for(320, 180), None);
        let req = LayerRequest::from_settings(false, 2, 320, 180, &sizes);
        assert_eq!(
            req,
            LayerRequest {
                disabled: false,
                quality: 0
            }
        );
        let req = LayerRequest::from_settings(false, 1, 0, 0, &sizes);
        assert_eq!(req.quality, 1);
        assert!(
            LayerRequest::from_settings(false, 3, 0, 0, &sizes).disabled,
            "OFF"
        );
        assert!(LayerRequest::from_settings(true, 2, 0, 0, &sizes).disabled);
        for r in [
            req,
            LayerRequest::default(),
            LayerRequest {
                disabled: true,
                quality: 0,
            },
        ] {
            assert_eq!(LayerRequest::unpack(r.pack()), r);
        }
    }

    #[test]
    fn the_best_live_layer_at_or_below_the_wanted_one_is_forwarded() {
        assert_eq!(effective_layer(2, [true, true, true]), 2);
        assert_eq!(effective_layer(2, [true, true, false]), 1);
        assert_eq!(effective_layer(1, [true, false, true]), 0);
        assert_eq!(
            effective_layer(0, [false, true, true]),
            1,
            "none below: lowest above"
        );
        assert_eq!(effective_layer(1, [false, false, false]), 1);
        let mut live = LiveLayers::default();
        let t0 = Instant::now();
        live.saw(0, t0);
        live.saw(2, t0 + Duration::from_secs(2));
        assert_eq!(live.live(t0 + Duration::from_secs(2)), [false, false, true]);
    }

    fn packet(layer: u8, seq: u16, ts: u32, keyframe: bool) -> SourcePacket {
        SourcePacket {
            layer,
            seq,
            ts,
            keyframe,
        }
    }

    #[test]
    fn a_subscriber_starts_and_switches_on_keyframes_with_continuous_numbers() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut f = LayerForward::default();
        // Waiting for a keyframe on layer 0.
        assert_eq!(
            f.decide(packet(0, 100, 9000, false), Some(0), true, ms(0), 90_000),
            Verdict::NeedKeyframe(0)
        );
        assert_eq!(
            f.decide(packet(2, 5000, 1, true), Some(0), true, ms(0), 90_000),
            Verdict::Drop,
            "other layers are not for it"
        );
        // The first run keeps the source's numbers.
        assert_eq!(
            f.decide(packet(0, 101, 12_000, true), Some(0), true, ms(33), 90_000),
            Verdict::Forward {
                seq: 101,
                ts: 12_000
            }
        );
        assert_eq!(
            f.decide(packet(0, 102, 15_000, false), Some(0), true, ms(66), 90_000),
            Verdict::Forward {
                seq: 102,
                ts: 15_000
            }
        );
        // It asks for layer 2: layer 0 keeps flowing until layer 2's keyframe.
        assert_eq!(
            f.decide(packet(2, 7000, 500, false), Some(2), true, ms(70), 90_000),
            Verdict::NeedKeyframe(2)
        );
        assert_eq!(
            f.decide(packet(0, 103, 18_000, false), Some(2), true, ms(99), 90_000),
            Verdict::ForwardNeedKeyframe {
                seq: 103,
                ts: 18_000,
                layer: 2
            }
        );
        // Layer 2's keyframe 11 ms later: numbers go on from 103 / 18000.
        let Verdict::Forward { seq, ts } =
            f.decide(packet(2, 7001, 3500, true), Some(2), true, ms(110), 90_000)
        else {
            panic!("switch on the keyframe");
        };
        assert_eq!(seq, 104);
        assert_eq!(ts, 18_000 + 990, "11 ms at 90 kHz");
        assert_eq!(f.current(), Some(2));
        assert_eq!(
            f.decide(packet(0, 104, 21_000, true), Some(2), true, ms(120), 90_000),
            Verdict::Drop,
            "the old layer stops"
        );
        assert_eq!(
            f.decide(packet(2, 7002, 6500, false), Some(2), true, ms(143), 90_000),
            Verdict::Forward {
                seq: 105,
                ts: 18_990 + 3000
            }
        );
        // A reordered packet from before the switch point is dropped.
        assert_eq!(
            f.decide(packet(2, 7000, 500, false), Some(2), true, ms(150), 90_000),
            Verdict::Drop
        );
        // Paused, then resumed: waits for a keyframe, numbers continue.
        assert_eq!(
            f.decide(packet(2, 7003, 9500, false), None, true, ms(176), 90_000),
            Verdict::Drop
        );
        assert_eq!(
            f.decide(
                packet(2, 7004, 12_500, false),
                Some(2),
                true,
                ms(200),
                90_000
            ),
            Verdict::NeedKeyframe(2)
        );
        let Verdict::Forward { seq, .. } = f.decide(
            packet(2, 7100, 40_000, true),
            Some(2),
            true,
            ms(1200),
            90_000,
        ) else {
            panic!("resume on the keyframe");
        };
        assert_eq!(seq, 106, "no gap for the time it was paused");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut r = SeqRewriter::default();
        r.start_run(65_534, u32::MAX - 10, t0, 90_000);
        assert_eq!(
            r.rewrite(65_534, u32::MAX - 10, t0),
            Some((65_534, u32::MAX - 10))
        );
        assert_eq!(r.rewrite(65_535, u32::MAX, t0), Some((65_535, u32::MAX)));
        assert_eq!(r.rewrite(0, 5, t0), Some((0, 5)));
        r.start_run(10, 100, t0 + Duration::from_millis(1), 90_000);
        assert_eq!(r.rewrite(10, 100, t0), Some((1, 5 + 90)));
    }

    #[test]
    fn opaque_codecs_stay_on_their_first_layer() {
        let t0 = Instant::now();
        let mut f = LayerForward::default();
        assert!(matches!(
            f.decide(packet(0, 1, 1, true), Some(0), false, t0, 90_000),
            Verdict::Forward { .. }
        ));
        assert!(matches!(
            f.decide(packet(0, 2, 2, false), Some(2), false, t0, 90_000),
            Verdict::Forward { .. }
        ));
        assert_eq!(
            f.decide(packet(2, 9, 9, true), Some(2), false, t0, 90_000),
            Verdict::Drop
        );
    }
}
