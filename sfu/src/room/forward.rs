//! The forwarding loop of one published track: reads its RTP packets, drops
//! duplicates and over-limit bursts, feeds the speaker meter and audio taps,
//! and gives each subscriber the simulcast layer it asked for, renumbered
//! (see `simulcast`). The hot path: no lock and no allocation per packet and
//! subscriber beyond the packet copy queued to the down track.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tracing::{debug, warn};

use crate::events::{AudioPacket, Encryption, TrackKind};
use crate::media::{DownTrack, UpTrack};
use crate::simulcast::{
    KeyframeProbe, LayerForward, LiveLayers, MAX_LAYERS, SourcePacket, Verdict as LayerVerdict,
    effective_layer,
};

use super::*;

/// Copies one published track's packets to its subscribers.
pub(super) struct Forwarder {
    pub(super) track: Arc<PublishedTrack>,
    pub(super) participant: Weak<Participant>,
    pub(super) audio_level_id: Option<u8>,
    pub(super) max_bitrate_bps: u64,
    pub(super) encryption: Encryption,
}

impl Forwarder {
    pub(super) async fn run(self, mut up: UpTrack) {
        let mut window_start = Instant::now();
        let mut window_bytes: u64 = 0;
        let mut over_limit_windows = 0u32;
        let mut dropping = false;
        let probe = KeyframeProbe::for_mime(&self.track.codec.mime_type);
        let can_switch = probe.can_switch();
        let clock_rate = self.track.codec.clock_rate.max(1);
        // Each subscriber with its layer and renumbering, owned by this loop.
        let mut subscribers: Vec<(Arc<DownTrack>, LayerForward)> = Vec::new();
        let mut generation = u64::MAX;
        let mut seen: [SeenSequences; MAX_LAYERS] = Default::default();
        let mut live = LiveLayers::default();
        let mut asked: [Option<Instant>; MAX_LAYERS] = [None; MAX_LAYERS];
        // Held for the loop's life (the participant owns this loop's task,
        // and the tap's sender ends when the loop does).
        let participant = self.participant.upgrade();
        let tap = participant
            .as_ref()
            .and_then(|p| lock(&p.audio_tap).clone());
        while let Some(mut packet) = up.next().await {
            if self.track.ended.load(Ordering::Acquire) {
                break;
            }
            // Muted: nothing goes out, not even to the transcriber.
            if self.track.muted.load(Ordering::Acquire) {
                continue;
            }
            let now = Instant::now();
            // On a simulcast track, a stream of unknown layer is not
            // forwarded: taken for layer 0 it would interleave with it.
            let layer = match up.layer_of(packet.ssrc()) {
                Some(layer) => layer.min(MAX_LAYERS as u8 - 1),
                None if self.track.simulcast || up.has_layers() => continue,
                None => 0,
            };
            let slot = &self.track.layer_ssrcs[usize::from(layer)];
            if slot.load(Ordering::Relaxed) != packet.ssrc() {
                slot.store(packet.ssrc(), Ordering::Relaxed);
            }
            live.saw(layer, now);
            // A retransmission of a packet that had already arrived would
            // otherwise go out again to every subscriber.
            if !seen[usize::from(layer)].first_time(packet.sequence()) {
                continue;
            }
            // Bitrate limit, judged over one-second windows.
            window_bytes += packet.size() as u64;
            let elapsed = now.saturating_duration_since(window_start);
            if elapsed >= Duration::from_secs(1) {
                let bps = window_bytes * 8 * 1000 / (elapsed.as_millis().max(1) as u64);
                if bps > self.max_bitrate_bps {
                    over_limit_windows += 1;
                } else {
                    over_limit_windows = 0;
                }
                let now_dropping = over_limit_windows >= 3;
                if now_dropping != dropping {
                    warn!(track_sid = %self.track.sid, bps, limit = self.max_bitrate_bps, dropping = now_dropping, "publisher bitrate limit");
                    dropping = now_dropping;
                }
                window_start = now;
                window_bytes = 0;
            }
            if dropping {
                continue;
            }
            if self.track.kind == TrackKind::Audio
                && let Some(participant) = &participant
            {
                self.observe_audio(&packet, now, participant, tap.as_ref());
            }
            // The subscriber list is re-read only when it changed; each one
            // keeps its layer state across the refresh.
            let current = self.track.subscribers.generation();
            if current != generation {
                let mut next = Vec::new();
                for down in self.track.subscribers.snapshot() {
                    let state = subscribers
                        .iter()
                        .position(|(d, _)| Arc::ptr_eq(d, &down))
                        .map(|i| subscribers.swap_remove(i).1)
                        .unwrap_or_default();
                    next.push((down, state));
                }
                subscribers = next;
                generation = current;
            }
            // Header extensions are the publisher's (their ids mean nothing to
            // a subscriber): drop them once here, so the per-subscriber copies
            // below clone no extension list.
            packet.strip_extensions();
            let source = SourcePacket {
                layer,
                seq: packet.sequence(),
                ts: packet.timestamp(),
                // A single-layer track starts anywhere (as it always did: the
                // subscriber's decoder asks for a keyframe itself); layers are
                // entered on keyframes only.
                keyframe: !(self.track.simulcast || up.has_layers())
                    || probe.starts_keyframe(packet.payload()),
            };
            let live_now = live.live(now);
            let mut wanted_keyframe = None;
            for (down, state) in &mut subscribers {
                if !down.is_ready() {
                    continue;
                }
                let request = down.request();
                let target =
                    (!request.disabled).then(|| effective_layer(request.quality, live_now));
                let (seq, ts) = match state.decide(source, target, can_switch, now, clock_rate) {
                    LayerVerdict::Drop => continue,
                    LayerVerdict::NeedKeyframe(layer) => {
                        wanted_keyframe = Some(layer);
                        continue;
                    }
                    LayerVerdict::Forward { seq, ts } => (seq, ts),
                    LayerVerdict::ForwardNeedKeyframe { seq, ts, layer } => {
                        wanted_keyframe = Some(layer);
                        (seq, ts)
                    }
                };
                down.set_current_layer(state.current());
                if down.forward_as(&packet, seq, ts) {
                    self.track.forwarded.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A subscriber waits for a keyframe to start or switch layers.
            if let Some(layer) = wanted_keyframe
                && can_switch
            {
                let last = &mut asked[usize::from(layer)];
                if last.is_none_or(|at| now.saturating_duration_since(at) >= KEYFRAME_REQUEST_GAP) {
                    *last = Some(now);
                    self.track.request_keyframe(layer).await;
                }
            }
        }
        debug!(track_sid = %self.track.sid, forwarded = self.track.forwarded.load(Ordering::Relaxed), "track ended");
        if let Some(p) = self.participant.upgrade() {
            p.unpublish(&self.track).await;
        }
    }

    /// An audio packet feeds the speaker meter and the audio taps (`tap`,
    /// taken once when the loop starts: it ends with the participant).
    pub(super) fn observe_audio(
        &self,
        packet: &crate::media::RtpIn,
        now: Instant,
        participant: &Participant,
        tap: Option<&broadcast::Sender<AudioPacket>>,
    ) {
        let level = packet.audio_level(self.audio_level_id);
        if let Some(level) = level {
            participant.meter.observe(level, now);
        }
        if let Some(tap) = tap
            && tap.receiver_count() > 0
        {
            let _ = tap.send(AudioPacket {
                track_sid: self.track.sid.clone(),
                payload: packet.payload().clone(),
                rtp_timestamp: packet.timestamp(),
                sequence: packet.sequence(),
                received_at: now,
                level_dbov: level,
                ssrc: packet.ssrc(),
                encryption: self.encryption,
            });
        }
    }
}

/// How many recent sequence numbers [`SeenSequences`] remembers.
pub(super) const SEEN_WINDOW: u16 = 1024;

/// Remembers which of the last [`SEEN_WINDOW`] RTP sequence numbers of one
/// stream were forwarded, so that a packet received twice (the publisher
/// answering a NACK for a packet that was only late) is forwarded once.
#[derive(Debug)]
pub(super) struct SeenSequences {
    pub(super) highest: Option<u16>,
    pub(super) bits: [u64; SEEN_WINDOW as usize / 64],
}

impl Default for SeenSequences {
    fn default() -> Self {
        Self {
            highest: None,
            bits: [0; SEEN_WINDOW as usize / 64],
        }
    }
}

impl SeenSequences {
    pub(super) fn slot(sequence: u16) -> (usize, u64) {
        let index = (sequence % SEEN_WINDOW) as usize;
        (index / 64, 1 << (index % 64))
    }

    pub(super) fn mark(&mut self, sequence: u16, seen: bool) {
        let (word, bit) = Self::slot(sequence);
        if seen {
            self.bits[word] |= bit;
        } else {
            self.bits[word] &= !bit;
        }
    }

    /// True the first time `sequence` is offered within the window; a
    /// sequence older than the window is always let through.
    pub(super) fn first_time(&mut self, sequence: u16) -> bool {
        let Some(highest) = self.highest else {
            self.highest = Some(sequence);
            self.mark(sequence, true);
            return true;
        };
        let ahead = sequence.wrapping_sub(highest);
        if ahead == 0 {
            return false;
        }
        if ahead < 0x8000 {
            // Newer: forget the slots it skips over, they belong to old numbers.
            if ahead >= SEEN_WINDOW {
                self.bits = [0; SEEN_WINDOW as usize / 64];
            } else {
                for step in 1..ahead {
                    self.mark(highest.wrapping_add(step), false);
                }
            }
            self.highest = Some(sequence);
            self.mark(sequence, true);
            return true;
        }
        if highest.wrapping_sub(sequence) >= SEEN_WINDOW {
            return true;
        }
        let (word, bit) = Self::slot(sequence);
        if self.bits[word] & bit != 0 {
            return false;
        }
        self.bits[word] |= bit;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_received_twice_is_forwarded_once() {
        let mut seen = SeenSequences::default();
        assert!(seen.first_time(65_534));
        assert!(seen.first_time(65_535));
        assert!(seen.first_time(1), "wraps, skipping 0");
        assert!(!seen.first_time(65_535), "a duplicate");
        assert!(seen.first_time(0), "the late one still goes");
        assert!(!seen.first_time(0));
        assert!(!seen.first_time(1));
        // Far ahead: the window moves on and old numbers are forgotten.
        assert!(seen.first_time(5_000));
        assert!(seen.first_time(5_000 - SEEN_WINDOW + 1));
        assert!(seen.first_time(1), "older than the window: let through");
        // Slots reused by newer numbers are cleared as the window passes.
        assert!(seen.first_time(5_000 + SEEN_WINDOW - 1));
        assert!(!seen.first_time(5_000 + SEEN_WINDOW - 1));
    }
}
