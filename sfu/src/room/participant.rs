//! A participant in a room: their two peer connections, what they publish
//! (`add_track`, then the media, then a forwarding loop per track), what they
//! receive (down tracks, subscriber renegotiation), their data channels,
//! audio tap and speaker meter. Called from the signaling session (`signal`)
//! and from the room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use livekit_protocol as proto;
use livekit_protocol::signal_response;
use prost::Message;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::error::SfuError;
use crate::events::{
    AudioPacket, AudioTap, Encryption, MuteWhat, RoomEvent, TappedTrack, TrackKind,
};
use crate::media::{DataLink, DownTrack, PeerLink, UpTrack};
use crate::simulcast::{EarlySetting, EarlySettings, LayerRequest, LayerSizes, MAX_LAYERS};
use crate::speakers::AudioMeter;

use super::*;

#[derive(Default)]
pub(super) struct Negotiation {
    pub(super) in_flight: bool,
    pub(super) pending: bool,
}

/// The `TrackInfo` announced for an `add_track`. `mime_type` is always set
/// (livekit-client's E2EE receiver needs it, audio included) and `encryption`
/// is the publisher's, so subscribers know to decrypt: the SFU forwards the
/// payloads untouched.
pub(super) fn track_info(request: &proto::AddTrackRequest, sid: String) -> proto::TrackInfo {
    let kind = proto::TrackType::try_from(request.r#type).unwrap_or(proto::TrackType::Audio);
    let mime_type = match kind {
        proto::TrackType::Video => request
            .simulcast_codecs
            .iter()
            .find(|c| !c.codec.is_empty())
            .map(|c| format!("video/{}", c.codec.to_ascii_lowercase()))
            .unwrap_or_else(|| default_mime_type(TrackKind::Video).to_owned()),
        _ => default_mime_type(TrackKind::Audio).to_owned(),
    };
    let mut info = proto::TrackInfo {
        sid,
        r#type: kind as i32,
        name: request.name.chars().take(256).collect(),
        muted: request.muted,
        width: request.width,
        height: request.height,
        source: request.source,
        mime_type,
        disable_red: request.disable_red,
        stream: request.stream.chars().take(256).collect(),
        encryption: request.encryption,
        ..Default::default()
    };
    // The simulcast layers: `layers`, or (newer clients) the first codec's.
    let layers = if request.layers.is_empty() {
        request
            .simulcast_codecs
            .iter()
            .map(|c| &c.layers)
            .find(|l| !l.is_empty())
            .cloned()
            .unwrap_or_default()
    } else {
        request.layers.clone()
    };
    #[allow(deprecated)] // LiveKit's server still fills both; clients read them.
    {
        info.simulcast = layers.len() > 1;
        info.layers = layers.into_iter().take(MAX_LAYERS).collect();
    }
    info
}

/// The codec assumed when none was negotiated or announced.
pub(super) fn default_mime_type(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Video => "video/vp8",
        TrackKind::Audio => "audio/opus",
    }
}

/// A track announced by `add_track` whose media has not arrived yet.
pub(super) struct PendingTrack {
    pub(super) cid: String,
    pub(super) info: proto::TrackInfo,
}

/// A participant in a room.
pub(crate) struct Participant {
    pub(crate) sid: String,
    pub(crate) identity: String,
    pub(crate) name: String,
    pub(super) joined_at: i64,
    pub(super) can_publish: bool,
    pub(super) can_subscribe: bool,
    /// Subscribed to every track as it comes (else only to what it asks for).
    pub(super) auto_subscribe: bool,
    pub(super) can_publish_data: bool,
    pub(super) room: Weak<Room>,
    pub(super) outbox: mpsc::Sender<proto::SignalResponse>,
    pub(crate) publisher: PeerLink,
    pub(crate) subscriber: PeerLink,
    pub(super) version: AtomicU32,
    pub(super) published: Mutex<Vec<Arc<PublishedTrack>>>,
    pub(super) pending_tracks: Mutex<Vec<PendingTrack>>,
    pub(super) subscriptions: Mutex<HashMap<String, Arc<DownTrack>>>,
    pub(super) data_links: Mutex<HashMap<String, DataLink>>,
    pub(super) negotiation: Mutex<Negotiation>,
    pub(super) offer_id: AtomicU32,
    pub(super) audio_tap: Mutex<Option<broadcast::Sender<AudioPacket>>>,
    /// Audio levels of the participant's tracks, written by their forwarding
    /// loops, read by the room's speaker task.
    pub(super) meter: AudioMeter,
    /// The audio track the taps carry (the first published audio track).
    pub(super) tapped_track: Arc<Mutex<Option<TappedTrack>>>,
    /// Asked to end (stuck outbox, room closing): the session notices.
    pub(super) closed: AtomicBool,
    /// Already removed from its room.
    pub(super) removed: AtomicBool,
    pub(super) tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(super) pending_candidates: Mutex<Vec<(proto::SignalTarget, String)>>,
    /// Track settings that came before their subscription (applied by `subscribe`).
    pub(super) early_settings: Mutex<EarlySettings>,
}

impl Participant {
    pub(crate) fn room(&self) -> Option<Arc<Room>> {
        self.room.upgrade()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues a signaling message. A participant whose outbox is full is
    /// stuck and gets disconnected.
    pub(crate) fn send(&self, message: signal_response::Message) {
        let response = proto::SignalResponse {
            message: Some(message),
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.outbox.try_send(response) {
            warn!(identity = %self.identity, "signaling outbox full; disconnecting");
            self.request_close();
        }
    }

    /// Asks the session to end (it notices its outbox closing).
    pub(crate) fn request_close(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        // Dropping every sender is not possible from here (the room holds one);
        // the session watches `closed` via `is_closed`.
        self.closed.store(true, Ordering::Release);
    }

    pub(super) fn spawn(&self, future: impl std::future::Future<Output = ()> + Send + 'static) {
        let span = info_span!("participant", identity = %self.identity, sid = %self.sid);
        let handle = tokio::spawn(future.instrument(span));
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    pub(crate) fn permission(&self) -> proto::ParticipantPermission {
        proto::ParticipantPermission {
            can_subscribe: self.can_subscribe,
            can_publish: self.can_publish,
            can_publish_data: self.can_publish_data,
            ..Default::default()
        }
    }

    pub(crate) fn info(&self) -> proto::ParticipantInfo {
        let tracks: Vec<proto::TrackInfo> = lock(&self.published)
            .iter()
            .map(|t| lock(&t.info).clone())
            .collect();
        proto::ParticipantInfo {
            is_publisher: !tracks.is_empty(),
            sid: self.sid.clone(),
            identity: self.identity.clone(),
            name: self.name.clone(),
            state: proto::participant_info::State::Active as i32,
            tracks,
            joined_at: self.joined_at,
            joined_at_ms: self.joined_at * 1000,
            version: self.version.load(Ordering::Acquire),
            permission: Some(self.permission()),
            ..Default::default()
        }
    }

    pub(super) fn bump_and_broadcast(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
        if let Some(room) = self.room() {
            room.broadcast_update(self.info(), &self.sid);
        }
    }

    pub(crate) fn published_track(&self, sid: &str) -> Option<Arc<PublishedTrack>> {
        lock(&self.published).iter().find(|t| t.sid == sid).cloned()
    }

    pub(crate) fn audio_tap(&self) -> Option<AudioTap> {
        let tap = lock(&self.audio_tap);
        tap.as_ref().map(|sender| AudioTap {
            identity: self.identity.clone(),
            track: self.tapped_track.clone(),
            receiver: sender.subscribe(),
            skipped: 0,
        })
    }

    /// Closes both peer connections and ends the audio taps.
    pub(super) async fn close_links(&self) {
        self.request_close();
        lock(&self.audio_tap).take();
        lock(&self.data_links).clear();
        self.publisher.close().await;
        self.subscriber.close().await;
    }

    /// Opens the server-to-client data channels on the subscriber connection.
    pub(crate) async fn open_data_channels(&self) {
        for (label, reliable) in [("_reliable", true), ("_lossy", false)] {
            match self.subscriber.create_data_channel(label, reliable).await {
                Ok(link) => {
                    lock(&self.data_links).insert(label.to_owned(), link);
                }
                Err(error) => warn!(%error, label, "could not open data channel"),
            }
        }
    }

    pub(super) async fn send_data(&self, label: &str, bytes: &[u8]) {
        let link = lock(&self.data_links).get(label).cloned();
        if let Some(link) = link
            && !link.send(bytes).await
        {
            debug!(identity = %self.identity, label, "data packet not delivered");
        }
    }

    /// Handles `add_track`: reserves a `TR_` sid and answers `track_published`.
    pub(crate) fn add_track(&self, request: proto::AddTrackRequest) -> Result<(), &'static str> {
        if !self.can_publish {
            return Err("not allowed to publish");
        }
        let count = lock(&self.published).len() + lock(&self.pending_tracks).len();
        if count >= MAX_TRACKS_PER_PARTICIPANT {
            return Err("too many tracks");
        }
        let info = track_info(&request, new_sid("TR_"));
        let cid: String = request.cid.chars().take(256).collect();
        self.send(signal_response::Message::TrackPublished(
            proto::TrackPublishedResponse {
                cid: cid.clone(),
                track: Some(info.clone()),
            },
        ));
        lock(&self.pending_tracks).push(PendingTrack { cid, info });
        Ok(())
    }

    /// Handles `mute` for one of this participant's tracks.
    pub(crate) fn mute(&self, track_sid: &str, muted: bool) {
        let Some(track) = self.published_track(track_sid) else {
            // Maybe still pending: published muted, then.
            if let Some(pending) = lock(&self.pending_tracks)
                .iter_mut()
                .find(|p| p.info.sid == track_sid)
            {
                pending.info.muted = muted;
            }
            return;
        };
        track.muted.store(muted, Ordering::Release);
        {
            let mut info = lock(&track.info);
            if info.muted == muted {
                return;
            }
            info.muted = muted;
        }
        self.bump_and_broadcast();
        if let Some(room) = self.room() {
            room.emit(RoomEvent::TrackMuted {
                room: room.name.clone(),
                identity: self.identity.clone(),
                track_sid: track_sid.to_owned(),
                muted,
            });
        }
    }

    /// A moderator's mute of the tracks `what` names: the publisher is asked
    /// to mute them (`MuteTrackRequest`, which LiveKit clients obey: they
    /// stop sending and show themselves muted), everyone sees them muted, and
    /// the SFU stops forwarding them until the publisher unmutes them itself.
    /// The sids of the tracks this muted (none if all were muted already).
    pub(crate) fn mute_for_moderator(&self, what: MuteWhat) -> Vec<String> {
        let tracks: Vec<Arc<PublishedTrack>> = lock(&self.published)
            .iter()
            .filter(|t| what.covers(t.kind, lock(&t.info).source))
            .filter(|t| !t.muted.load(Ordering::Acquire))
            .cloned()
            .collect();
        let mut muted = Vec::new();
        for track in tracks {
            self.send(signal_response::Message::Mute(proto::MuteTrackRequest {
                sid: track.sid.clone(),
                muted: true,
            }));
            self.mute(&track.sid, true);
            muted.push(track.sid.clone());
        }
        muted
    }

    /// A track's media arrived on the publisher connection: match it with
    /// its `add_track`, start forwarding it, and give it to everyone.
    pub(crate) async fn on_up_track(self: &Arc<Self>, up: UpTrack, max_bitrate_bps: u64) {
        let Some(room) = self.room() else { return };
        if !self.can_publish {
            return;
        }
        let pending = {
            let mut pending = lock(&self.pending_tracks);
            let by_cid = pending.iter().position(|p| p.cid == up.track_id);
            let expected = if up.kind == TrackKind::Video {
                proto::TrackType::Video as i32
            } else {
                proto::TrackType::Audio as i32
            };
            let index = by_cid.or_else(|| pending.iter().position(|p| p.info.r#type == expected));
            index.map(|i| pending.remove(i))
        };
        let mut info = match pending {
            Some(p) => p.info,
            None => {
                if lock(&self.published).len() >= MAX_TRACKS_PER_PARTICIPANT {
                    return;
                }
                debug!(track_id = %up.track_id, "media without add_track; publishing it anyway");
                proto::TrackInfo {
                    sid: new_sid("TR_"),
                    r#type: if up.kind == TrackKind::Video {
                        proto::TrackType::Video as i32
                    } else {
                        proto::TrackType::Audio as i32
                    },
                    ..Default::default()
                }
            }
        };
        if !up.mime_type.is_empty() {
            info.mime_type = up.mime_type.clone();
        }
        if info.mime_type.is_empty() {
            // livekit-client cannot set up an E2EE receiver without it.
            info.mime_type = default_mime_type(up.kind).to_owned();
        }
        let codec = up.codec().await;
        #[allow(deprecated)] // the layers announced in `add_track`, see `track_info`
        let (sizes, simulcast) = (
            LayerSizes::from_layers(info.layers.iter().map(|l| (l.quality, l.width, l.height))),
            info.simulcast,
        );
        let track = Arc::new(PublishedTrack {
            sid: info.sid.clone(),
            kind: up.kind,
            publisher_sid: self.sid.clone(),
            ssrc: up.ssrc,
            media_id: up.track_id.clone(),
            codec,
            sizes,
            simulcast,
            info: Mutex::new(info.clone()),
            subscribers: Subscribers::default(),
            keyframe: up.handle(),
            last_keyframe_request: Mutex::new([None; MAX_LAYERS]),
            layer_ssrcs: Default::default(),
            dynacast_sent: Mutex::new(None),
            publisher: Arc::downgrade(self),
            ended: AtomicBool::new(false),
            muted: AtomicBool::new(info.muted),
            forwarded: AtomicU64::new(0),
        });
        let encryption = Encryption::from_proto(info.encryption);
        lock(&self.published).push(track.clone());
        if track.kind == TrackKind::Audio {
            let mut tapped = lock(&self.tapped_track);
            if tapped.is_none() {
                *tapped = Some(track.tapped());
            }
        }
        info!(track_sid = %track.sid, kind = ?track.kind, mime = %info.mime_type, ?encryption, "track published");
        room.emit(RoomEvent::TrackPublished {
            room: room.name.clone(),
            identity: self.identity.clone(),
            track_sid: track.sid.clone(),
            kind: track.kind,
            mime_type: info.mime_type.clone(),
            encryption,
        });
        self.bump_and_broadcast();

        // Forwarding loop.
        let forwarder = Forwarder {
            track: track.clone(),
            participant: Arc::downgrade(self),
            audio_level_id: self.publisher.audio_level_id(),
            max_bitrate_bps,
            encryption,
        };
        self.spawn(forwarder.run(up));

        for other in room.others(&self.sid) {
            if other.can_subscribe && other.auto_subscribe {
                other.subscribe(&track).await;
                other.negotiate_subscriber().await;
            }
        }
        // Also when nobody subscribed: the publisher may pause every layer.
        track.dynacast();
    }

    /// Handles `track_setting`: what this subscriber wants of some tracks
    /// (a simulcast layer by quality or by view size, or nothing).
    pub(crate) fn update_track_settings(&self, settings: &proto::UpdateTrackSettings) {
        let Some(room) = self.room() else { return };
        for sid in settings.track_sids.iter().take(64) {
            let Some(track) = room
                .others(&self.sid)
                .iter()
                .find_map(|p| p.published_track(sid))
            else {
                continue;
            };
            let Some(down) = track.subscribers.get(&self.sid) else {
                // not subscribed yet: applied when it is
                lock(&self.early_settings).remember(
                    sid,
                    EarlySetting {
                        disabled: settings.disabled,
                        quality: settings.quality,
                        width: settings.width,
                        height: settings.height,
                    },
                );
                continue;
            };
            let request = LayerRequest::from_settings(
                settings.disabled,
                settings.quality,
                settings.width,
                settings.height,
                &track.sizes,
            );
            debug!(track_sid = %sid, ?request, "track settings");
            down.set_request(request);
            track.dynacast();
        }
    }

    /// Adds a down track for `track` (no renegotiation; the caller does it).
    pub(crate) async fn subscribe(self: &Arc<Self>, track: &Arc<PublishedTrack>) {
        if lock(&self.subscriptions).contains_key(&track.sid) || track.ended.load(Ordering::Acquire)
        {
            return;
        }
        let stream_id = format!("{}|{}", track.publisher_sid, track.sid);
        match self
            .subscriber
            .add_down_track(&stream_id, &track.sid, track.kind, track.codec.clone())
            .await
        {
            Ok(down) => {
                let down = Arc::new(down);
                if let Some(early) = lock(&self.early_settings).take(&track.sid) {
                    let request = LayerRequest::from_settings(
                        early.disabled,
                        early.quality,
                        early.width,
                        early.height,
                        &track.sizes,
                    );
                    debug!(track_sid = %track.sid, ?request, "track settings sent before the subscription");
                    down.set_request(request);
                }
                lock(&self.subscriptions).insert(track.sid.clone(), down.clone());
                track.subscribers.insert(self.sid.clone(), down.clone());
                track.dynacast();
                if down.kind == TrackKind::Video {
                    let track = track.clone();
                    let down_for_task = down.clone();
                    self.spawn(async move {
                        let layer = |down: &DownTrack| down.current_layer().unwrap_or(0);
                        track.request_keyframe(layer(&down_for_task)).await;
                        while down_for_task.next_keyframe_request().await.is_some() {
                            track.request_keyframe(layer(&down_for_task)).await;
                        }
                    });
                }
            }
            Err(error) => warn!(%error, track_sid = %track.sid, "could not subscribe"),
        }
    }

    /// Removes the down track for `track_sid` (no renegotiation).
    pub(crate) async fn unsubscribe(&self, track_sid: &str) {
        let down = lock(&self.subscriptions).remove(track_sid);
        if let Some(down) = down {
            self.subscriber.remove_down_track(&down).await;
        }
    }

    /// Handles `subscription` (the client turning tracks on or off).
    pub(crate) async fn update_subscription(self: &Arc<Self>, update: proto::UpdateSubscription) {
        let Some(room) = self.room() else { return };
        let mut sids: Vec<String> = update.track_sids.clone();
        for pt in &update.participant_tracks {
            sids.extend(pt.track_sids.iter().cloned());
        }
        sids.truncate(64);
        let mut changed = false;
        for sid in sids {
            let track = room
                .others(&self.sid)
                .iter()
                .find_map(|p| p.published_track(&sid));
            let Some(track) = track else { continue };
            let has = lock(&self.subscriptions).contains_key(&sid);
            if update.subscribe && !has && self.can_subscribe {
                self.subscribe(&track).await;
                changed = true;
            } else if !update.subscribe && has {
                track.subscribers.remove(&self.sid);
                track.dynacast();
                self.unsubscribe(&sid).await;
                changed = true;
            }
        }
        if changed {
            self.negotiate_subscriber().await;
        }
    }

    /// Sends a new subscriber offer, or marks one as pending if an offer is
    /// already waiting for its answer.
    pub(crate) async fn negotiate_subscriber(&self) {
        if self.is_closed() {
            return;
        }
        {
            let mut negotiation = lock(&self.negotiation);
            if negotiation.in_flight {
                negotiation.pending = true;
                return;
            }
            negotiation.in_flight = true;
            negotiation.pending = false;
        }
        match self.subscriber.offer().await {
            Ok(sdp) => {
                let id = self.offer_id.fetch_add(1, Ordering::AcqRel) + 1;
                self.send(signal_response::Message::Offer(proto::SessionDescription {
                    r#type: "offer".into(),
                    sdp,
                    id,
                    ..Default::default()
                }));
            }
            Err(error) => {
                warn!(%error, "subscriber offer failed");
                lock(&self.negotiation).in_flight = false;
            }
        }
    }

    /// The client answered our subscriber offer.
    pub(crate) async fn on_subscriber_answer(&self, sdp: String) -> Result<(), SfuError> {
        let result = self.subscriber.apply_answer(sdp).await;
        self.flush_candidates(proto::SignalTarget::Subscriber).await;
        let again = {
            let mut negotiation = lock(&self.negotiation);
            negotiation.in_flight = false;
            std::mem::take(&mut negotiation.pending)
        };
        if again {
            Box::pin(self.negotiate_subscriber()).await;
        }
        result
    }

    /// A trickled candidate from the client; kept until its description is set.
    pub(crate) async fn on_trickle(&self, target: proto::SignalTarget, candidate_init: String) {
        let link = match target {
            proto::SignalTarget::Publisher => &self.publisher,
            proto::SignalTarget::Subscriber => &self.subscriber,
        };
        if link.add_candidate(&candidate_init).await.is_err() {
            let mut pending = lock(&self.pending_candidates);
            if pending.len() < 64 {
                pending.push((target, candidate_init));
            }
        }
    }

    pub(crate) async fn flush_candidates(&self, target: proto::SignalTarget) {
        let ready: Vec<String> = {
            let mut pending = lock(&self.pending_candidates);
            let (ready, keep): (Vec<_>, Vec<_>) =
                pending.drain(..).partition(|(t, _)| *t == target);
            *pending = keep;
            ready.into_iter().map(|(_, c)| c).collect()
        };
        let link = match target {
            proto::SignalTarget::Publisher => &self.publisher,
            proto::SignalTarget::Subscriber => &self.subscriber,
        };
        for candidate in ready {
            if let Err(error) = link.add_candidate(&candidate).await {
                debug!(%error, "trickled candidate refused");
            }
        }
    }

    /// A data channel the client opened on its publisher connection: relay
    /// its packets to the room.
    pub(crate) fn on_data_channel(self: &Arc<Self>, link: DataLink) {
        if link.label != "_reliable" && link.label != "_lossy" {
            debug!(label = %link.label, "ignoring unknown data channel");
            return;
        }
        let participant = Arc::downgrade(self);
        self.spawn(async move {
            while let Some(bytes) = link.recv().await {
                let Some(participant) = participant.upgrade() else {
                    return;
                };
                if !participant.can_publish_data {
                    continue;
                }
                let Ok(mut packet) = proto::DataPacket::decode(bytes.as_ref()) else {
                    debug!("undecodable data packet dropped");
                    continue;
                };
                packet.participant_identity = participant.identity.clone();
                packet.participant_sid = participant.sid.clone();
                if let Some(room) = participant.room() {
                    room.relay_data(&participant.sid, &link.label, &packet)
                        .await;
                }
            }
        });
    }

    /// The audio track sid used for transcriptions of this participant.
    pub(crate) fn first_audio_track(&self) -> Option<String> {
        lock(&self.published)
            .iter()
            .find(|t| t.kind == TrackKind::Audio)
            .map(|t| t.sid.clone())
    }

    /// After a new publisher offer: tracks the offer no longer sends (the
    /// client removed them) are unpublished.
    pub(crate) async fn reconcile_published(self: &Arc<Self>, offer_sdp: &str) {
        if !offer_sdp.contains("\nm=audio") && !offer_sdp.contains("\nm=video") {
            return; // No media sections at all: nothing to compare.
        }
        let sending = crate::media::sending_track_ids(offer_sdp);
        debug!(?sending, "tracks the publisher offer sends");
        let gone: Vec<Arc<PublishedTrack>> = lock(&self.published)
            .iter()
            .filter(|t| !sending.contains(&t.media_id))
            .cloned()
            .collect();
        for track in gone {
            info!(track_sid = %track.sid, "track removed by the publisher");
            self.unpublish(&track).await;
        }
    }

    /// The taps follow the next audio track when the tapped one is removed.
    pub(super) fn retap_if_gone(&self, track_sid: &str) {
        let mut tapped = lock(&self.tapped_track);
        if tapped.as_ref().is_none_or(|t| t.sid != track_sid) {
            return;
        }
        *tapped = lock(&self.published)
            .iter()
            .find(|t| t.kind == TrackKind::Audio)
            .map(|t| t.tapped());
    }

    /// Removes a published track (its media ended) and tells the room.
    pub(super) async fn unpublish(self: &Arc<Self>, track: &Arc<PublishedTrack>) {
        let removed = {
            let mut published = lock(&self.published);
            let before = published.len();
            published.retain(|t| !Arc::ptr_eq(t, track));
            before != published.len()
        };
        if !removed || self.removed.load(Ordering::Acquire) {
            return;
        }
        track.ended.store(true, Ordering::Release);
        self.retap_if_gone(&track.sid);
        self.send(signal_response::Message::TrackUnpublished(
            proto::TrackUnpublishedResponse {
                track_sid: track.sid.clone(),
            },
        ));
        let Some(room) = self.room() else { return };
        let subs: Vec<String> = track
            .subscribers
            .drain()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        for other in room.others(&self.sid) {
            if subs.contains(&other.sid) {
                other.unsubscribe(&track.sid).await;
                other.negotiate_subscriber().await;
            }
        }
        self.bump_and_broadcast();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_track_info_carries_mime_type_and_encryption() {
        let audio = track_info(
            &proto::AddTrackRequest {
                cid: "mic".into(),
                r#type: proto::TrackType::Audio as i32,
                encryption: proto::encryption::Type::Gcm as i32,
                ..Default::default()
            },
            "TR_a".into(),
        );
        assert_eq!(audio.sid, "TR_a");
        assert_eq!(audio.mime_type, "audio/opus");
        assert_eq!(audio.encryption, proto::encryption::Type::Gcm as i32);

        let video = track_info(
            &proto::AddTrackRequest {
                r#type: proto::TrackType::Video as i32,
                simulcast_codecs: vec![proto::SimulcastCodec {
                    codec: "VP9".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            "TR_v".into(),
        );
        assert_eq!(video.mime_type, "video/vp9");
        assert_eq!(video.encryption, proto::encryption::Type::None as i32);

        let bare_video = track_info(
            &proto::AddTrackRequest {
                r#type: proto::TrackType::Video as i32,
                encryption: proto::encryption::Type::Custom as i32,
                ..Default::default()
            },
            "TR_w".into(),
        );
        assert_eq!(bare_video.mime_type, "video/vp8");
        assert_eq!(
            bare_video.encryption,
            proto::encryption::Type::Custom as i32
        );
    }
}
