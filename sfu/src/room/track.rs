//! A published track: its subscribers' down tracks (a list the forwarding
//! loop re-reads only when its generation moves), keyframe requests per
//! simulcast layer, and dynacast (telling the publisher which layers anyone
//! watches).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use livekit_protocol as proto;
use livekit_protocol::signal_response;
use tracing::debug;

use crate::events::{Encryption, TappedTrack, TrackKind};
use crate::media::{DownTrack, KeyframeHandle};
use crate::simulcast::{LayerSizes, MAX_LAYERS};

use super::*;

/// A track one participant publishes, with everyone it is forwarded to.
pub(crate) struct PublishedTrack {
    pub(crate) sid: String,
    pub(crate) kind: TrackKind,
    pub(super) publisher_sid: String,
    /// The publisher's first SSRC for it.
    pub(super) ssrc: u32,
    /// The track id the publisher's SDP names it by (`a=msid:<stream> <id>`).
    pub(super) media_id: String,
    pub(super) codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
    pub(super) info: Mutex<proto::TrackInfo>,
    pub(super) subscribers: Subscribers,
    pub(super) keyframe: KeyframeHandle,
    /// When each layer was last asked for a keyframe.
    pub(super) last_keyframe_request: Mutex<[Option<Instant>; MAX_LAYERS]>,
    /// The publisher's SSRC of each simulcast layer, as seen (0: not yet).
    pub(super) layer_ssrcs: [AtomicU32; MAX_LAYERS],
    /// Sizes of the simulcast layers announced in `add_track`.
    pub(super) sizes: LayerSizes,
    /// Simulcast: the publisher is told which layers anyone watches.
    pub(super) simulcast: bool,
    /// The best layer the publisher was last told is watched (dynacast);
    /// `Some(None)`: none.
    pub(super) dynacast_sent: Mutex<Option<Option<u8>>>,
    pub(super) publisher: Weak<Participant>,
    pub(super) ended: AtomicBool,
    /// Muted (by its publisher, or by a moderator through the bridge): the
    /// forwarding loop drops its packets, so a client that ignores a
    /// moderator's mute is still not heard.
    pub(super) muted: AtomicBool,
    pub(super) forwarded: AtomicU64,
}

/// The down tracks a published track is forwarded to. Its forwarding loop
/// re-reads the list only when the generation moved, so the per-packet path
/// takes no lock.
#[derive(Default)]
pub(super) struct Subscribers {
    pub(super) map: Mutex<HashMap<String, Arc<DownTrack>>>,
    pub(super) generation: AtomicU64,
}

impl Subscribers {
    pub(super) fn insert(&self, sid: String, down: Arc<DownTrack>) {
        lock(&self.map).insert(sid, down);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn remove(&self, sid: &str) {
        if lock(&self.map).remove(sid).is_some() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    pub(super) fn drain(&self) -> Vec<(String, Arc<DownTrack>)> {
        let drained: Vec<_> = lock(&self.map).drain().collect();
        self.generation.fetch_add(1, Ordering::AcqRel);
        drained
    }

    pub(super) fn get(&self, sid: &str) -> Option<Arc<DownTrack>> {
        lock(&self.map).get(sid).cloned()
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(super) fn snapshot(&self) -> Vec<Arc<DownTrack>> {
        lock(&self.map).values().cloned().collect()
    }
}

impl PublishedTrack {
    pub(super) fn tapped(&self) -> TappedTrack {
        let info = lock(&self.info);
        TappedTrack {
            sid: self.sid.clone(),
            ssrc: self.ssrc,
            mime_type: info.mime_type.clone(),
            encryption: Encryption::from_proto(info.encryption),
        }
    }

    /// Asks the publisher for a keyframe on `layer`, at most once per gap.
    pub(super) async fn request_keyframe(&self, layer: u8) {
        let layer = usize::from(layer).min(MAX_LAYERS - 1);
        {
            let mut last = lock(&self.last_keyframe_request);
            let now = Instant::now();
            if last[layer].is_some_and(|at| now.duration_since(at) < KEYFRAME_REQUEST_GAP) {
                return;
            }
            last[layer] = Some(now);
        }
        match self.layer_ssrcs[layer].load(Ordering::Relaxed) {
            0 => self.keyframe.request().await,
            ssrc => self.keyframe.request_ssrc(ssrc).await,
        }
    }

    /// Tells the publisher which simulcast layers anyone watches (LiveKit's
    /// dynacast), when that changed: the best layer a subscriber asked for and
    /// every one below it stay on; the others may stop.
    pub(super) fn dynacast(&self) {
        if !self.simulcast {
            return;
        }
        let best = self
            .subscribers
            .snapshot()
            .iter()
            .map(|down| down.request())
            .filter(|r| !r.disabled)
            .map(|r| r.quality)
            .max();
        {
            let mut sent = lock(&self.dynacast_sent);
            if *sent == Some(best) {
                return;
            }
            *sent = Some(best);
        }
        let Some(publisher) = self.publisher.upgrade() else {
            return;
        };
        debug!(track_sid = %self.sid, ?best, "subscribed qualities");
        let qualities: Vec<proto::SubscribedQuality> = (0..MAX_LAYERS as i32)
            .map(|q| proto::SubscribedQuality {
                quality: q,
                enabled: best.is_some_and(|b| q <= i32::from(b)),
            })
            .collect();
        // Both forms: livekit-client reads `subscribed_codecs` (by codec name,
        // e.g. `vp8`) and older clients `subscribed_qualities`.
        let codec = self
            .codec
            .mime_type
            .split_once('/')
            .map(|(_, c)| c.to_ascii_lowercase())
            .unwrap_or_default();
        #[allow(deprecated)]
        let update = proto::SubscribedQualityUpdate {
            track_sid: self.sid.clone(),
            subscribed_qualities: qualities.clone(),
            subscribed_codecs: vec![proto::SubscribedCodec { codec, qualities }],
        };
        publisher.send(signal_response::Message::SubscribedQualityUpdate(update));
    }
}
