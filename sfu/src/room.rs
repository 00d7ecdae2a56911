//! Rooms, participants and published tracks: who is in a call, what each one
//! publishes, and who receives what.
//!
//! A [`Room`] holds [`Participant`]s. A participant has two peer connections:
//! the *publisher* one, on which they send their tracks (they offer), and the
//! *subscriber* one, on which the room's other tracks reach them (we offer).
//! Each track they publish becomes a [`PublishedTrack`] with one forwarding
//! task that copies its RTP packets to every subscriber's down track, feeds
//! the speaker detector and the participant's audio tap.
//!
//! Signaling messages to a participant go through its outbox, drained by its
//! WebSocket session (see `signal`). Different rooms share no lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use livekit_protocol as proto;
use livekit_protocol::{signal_request, signal_response};
use prost::Message;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::SfuConfig;
use crate::error::SfuError;
use crate::events::{
    AudioPacket, AudioTap, Encryption, ParticipantInfoSummary, RoomEvent, TappedTrack, TrackKind,
    TrackSummary,
};
use crate::media::{
    DataLink, DownTrack, KeyframeHandle, MediaSettings, PeerEvent, PeerLink, PeerRole, UpTrack,
};
use crate::simulcast::{
    KeyframeProbe, LayerForward, LayerRequest, LayerSizes, LiveLayers, MAX_LAYERS, SourcePacket,
    Verdict as LayerVerdict, effective_layer,
};
use crate::speakers::{AudioMeter, SpeakerDetector};

/// How often speaking states are re-evaluated.
const SPEAKER_TICK: Duration = Duration::from_millis(200);
/// Smallest gap between two keyframe requests sent to one publisher track.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(500);
/// Largest number of tracks one participant may publish.
const MAX_TRACKS_PER_PARTICIPANT: usize = 8;
/// Signaling messages queued for one participant before it counts as stuck.
pub(crate) const OUTBOX_CAPACITY: usize = 512;
/// Audio packets an audio tap may lag behind (about 10 s of 20 ms frames).
const AUDIO_TAP_CAPACITY: usize = 512;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random LiveKit-style sid: `prefix` + 12 base62 characters.
pub(crate) fn new_sid(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut sid = String::from(prefix);
    for _ in 0..12 {
        let i = rand::random_range(0..ALPHABET.len());
        sid.push(ALPHABET[i] as char);
    }
    sid
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why joining a room was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    #[error("room is full")]
    RoomFull,
    #[error("SFU is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Media(#[from] SfuError),
}

/// All rooms of the SFU.
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    pub(crate) config: SfuConfig,
    pub(crate) media: MediaSettings,
    pub(crate) events: broadcast::Sender<RoomEvent>,
    closed: AtomicBool,
}

impl Rooms {
    pub(crate) fn new(config: SfuConfig, media: MediaSettings) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            rooms: Mutex::new(HashMap::new()),
            config,
            media,
            events,
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Room>> {
        lock(&self.rooms).get(name).cloned()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        lock(&self.rooms).keys().cloned().collect()
    }

    fn get_or_create(self: &Arc<Self>, name: &str) -> Result<Arc<Room>, JoinError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(JoinError::ShuttingDown);
        }
        let mut rooms = lock(&self.rooms);
        if let Some(room) = rooms.get(name) {
            return Ok(room.clone());
        }
        let room = Room::new(name, Arc::downgrade(self));
        rooms.insert(name.to_owned(), room.clone());
        Ok(room)
    }

    fn remove_if_empty(&self, room: &Arc<Room>) {
        let mut rooms = lock(&self.rooms);
        let empty = lock(&room.state).participants.is_empty();
        if empty
            && rooms
                .get(&room.name)
                .is_some_and(|current| Arc::ptr_eq(current, room))
        {
            rooms.remove(&room.name);
            room.closed.store(true, Ordering::Release);
            drop(rooms);
            info!(room = %room.name, "room closed");
            let _ = self.events.send(RoomEvent::RoomClosed {
                room: room.name.clone(),
            });
        }
    }

    pub(crate) fn participant_count(&self, room: &str) -> usize {
        self.get(room)
            .map(|r| lock(&r.state).participants.len())
            .unwrap_or(0)
    }

    /// Admits a participant: builds their peer connections and registers
    /// them in the room. The caller then runs their signaling session.
    pub(crate) async fn join(
        self: &Arc<Self>,
        room_name: &str,
        identity: &str,
        name: &str,
        can_publish: bool,
        can_subscribe: bool,
        can_publish_data: bool,
    ) -> Result<(Arc<Participant>, ParticipantChannels), JoinError> {
        let room = self.get_or_create(room_name)?;
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        let (sub_tx, sub_rx) = mpsc::unbounded_channel();
        let publisher = PeerLink::new(&self.media, PeerRole::Publisher, peer_tx).await;
        let subscriber = PeerLink::new(&self.media, PeerRole::Subscriber, sub_tx).await;
        let (publisher, subscriber) = match (publisher, subscriber) {
            (Ok(p), Ok(s)) => (p, s),
            (p, s) => {
                let mut error = None;
                for link in [p, s] {
                    match link {
                        Ok(link) => link.close().await,
                        Err(e) => error = Some(e),
                    }
                }
                self.remove_if_empty(&room);
                return Err(error
                    .unwrap_or_else(|| SfuError::Config("peer connection".into()))
                    .into());
            }
        };
        let (outbox_tx, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
        let (audio_tap, _) = broadcast::channel(AUDIO_TAP_CAPACITY);
        let participant = Arc::new(Participant {
            sid: new_sid("PA_"),
            identity: identity.to_owned(),
            name: name.to_owned(),
            joined_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            can_publish,
            can_subscribe,
            can_publish_data,
            room: Arc::downgrade(&room),
            outbox: outbox_tx,
            publisher,
            subscriber,
            version: AtomicU32::new(1),
            published: Mutex::new(Vec::new()),
            pending_tracks: Mutex::new(Vec::new()),
            subscriptions: Mutex::new(HashMap::new()),
            data_links: Mutex::new(HashMap::new()),
            negotiation: Mutex::new(Negotiation::default()),
            offer_id: AtomicU32::new(0),
            audio_tap: Mutex::new(Some(audio_tap)),
            tapped_track: Arc::new(Mutex::new(None)),
            meter: AudioMeter::default(),
            closed: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            pending_candidates: Mutex::new(Vec::new()),
        });

        // Admission and duplicate identity, atomically.
        let admission = {
            let mut state = lock(&room.state);
            if room.closed.load(Ordering::Acquire) {
                Err(JoinError::ShuttingDown)
            } else {
                let duplicate = state
                    .participants
                    .values()
                    .find(|p| p.identity == identity)
                    .cloned();
                let others = state.participants.len() - usize::from(duplicate.is_some());
                if others >= self.config.max_participants {
                    Err(JoinError::RoomFull)
                } else {
                    state
                        .participants
                        .insert(participant.sid.clone(), participant.clone());
                    Ok(duplicate)
                }
            }
        };
        let replaced = match admission {
            Ok(replaced) => replaced,
            Err(error) => {
                participant.close_links().await;
                return Err(error);
            }
        };
        if let Some(old) = replaced {
            info!(room = %room.name, identity, "same identity joined again; removing the old session");
            old.send(signal_response::Message::Leave(proto::LeaveRequest {
                can_reconnect: false,
                reason: proto::DisconnectReason::DuplicateIdentity as i32,
                action: proto::leave_request::Action::Disconnect as i32,
                regions: None,
            }));
            room.remove_participant(&old).await;
        }
        room.ensure_speaker_task();
        Ok((
            participant,
            ParticipantChannels {
                outbox: outbox_rx,
                publisher_events: peer_rx,
                subscriber_events: sub_rx,
            },
        ))
    }

    pub(crate) async fn close_all(&self) {
        self.closed.store(true, Ordering::Release);
        let rooms: Vec<Arc<Room>> = lock(&self.rooms).values().cloned().collect();
        for room in rooms {
            room.close(proto::DisconnectReason::ServerShutdown).await;
        }
    }
}

/// The receiving ends a participant's session drains.
pub(crate) struct ParticipantChannels {
    pub(crate) outbox: mpsc::Receiver<proto::SignalResponse>,
    pub(crate) publisher_events: mpsc::UnboundedReceiver<PeerEvent>,
    pub(crate) subscriber_events: mpsc::UnboundedReceiver<PeerEvent>,
}

struct RoomState {
    participants: HashMap<String, Arc<Participant>>,
    speakers: SpeakerDetector,
    speaker_task: Option<JoinHandle<()>>,
}

/// One call's media room.
pub(crate) struct Room {
    pub(crate) name: String,
    pub(crate) sid: String,
    created_at: i64,
    rooms: Weak<Rooms>,
    state: Mutex<RoomState>,
    closed: AtomicBool,
}

impl Room {
    fn new(name: &str, rooms: Weak<Rooms>) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            sid: new_sid("RM_"),
            created_at: now_ms() / 1000,
            rooms,
            state: Mutex::new(RoomState {
                participants: HashMap::new(),
                speakers: SpeakerDetector::default(),
                speaker_task: None,
            }),
            closed: AtomicBool::new(false),
        })
    }

    fn emit(&self, event: RoomEvent) {
        if let Some(rooms) = self.rooms.upgrade() {
            let _ = rooms.events.send(event);
        }
    }

    pub(crate) fn participants(&self) -> Vec<Arc<Participant>> {
        let mut list: Vec<_> = lock(&self.state).participants.values().cloned().collect();
        list.sort_by_key(|p| p.joined_at);
        list
    }

    fn others(&self, sid: &str) -> Vec<Arc<Participant>> {
        self.participants()
            .into_iter()
            .filter(|p| p.sid != sid)
            .collect()
    }

    pub(crate) fn find(&self, identity: &str) -> Option<Arc<Participant>> {
        lock(&self.state)
            .participants
            .values()
            .find(|p| p.identity == identity)
            .cloned()
    }

    pub(crate) fn summaries(&self) -> Vec<ParticipantInfoSummary> {
        let state = lock(&self.state);
        let mut list: Vec<_> = state
            .participants
            .values()
            .map(|p| ParticipantInfoSummary {
                sid: p.sid.clone(),
                identity: p.identity.clone(),
                name: p.name.clone(),
                tracks: lock(&p.published)
                    .iter()
                    .map(|t| {
                        let info = lock(&t.info);
                        TrackSummary {
                            sid: t.sid.clone(),
                            kind: t.kind,
                            mime_type: info.mime_type.clone(),
                            muted: info.muted,
                            encryption: Encryption::from_proto(info.encryption),
                        }
                    })
                    .collect(),
                speaking: state.speakers.is_speaking(&p.sid),
            })
            .collect();
        list.sort_by(|a, b| a.identity.cmp(&b.identity));
        list
    }

    pub(crate) fn proto_room(&self) -> proto::Room {
        let count = lock(&self.state).participants.len() as u32;
        proto::Room {
            sid: self.sid.clone(),
            name: self.name.clone(),
            creation_time: self.created_at,
            creation_time_ms: self.created_at * 1000,
            num_participants: count,
            ..Default::default()
        }
    }

    fn ensure_speaker_task(self: &Arc<Self>) {
        let mut state = lock(&self.state);
        if state.speaker_task.is_some() {
            return;
        }
        let room = Arc::downgrade(self);
        let span = info_span!("speakers", room = %self.name);
        state.speaker_task = Some(tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(SPEAKER_TICK);
                loop {
                    tick.tick().await;
                    let Some(room) = room.upgrade() else { return };
                    if room.closed.load(Ordering::Acquire) {
                        return;
                    }
                    room.publish_speaker_changes();
                }
            }
            .instrument(span),
        ));
    }

    fn publish_speaker_changes(&self) {
        let (changes, participants) = {
            let mut state = lock(&self.state);
            // The forwarding loops measure levels without a lock; read them here.
            let RoomState {
                participants,
                speakers,
                ..
            } = &mut *state;
            for p in participants.values() {
                if let Some((level, last_loud)) = p.meter.read() {
                    speakers.observe_meter(&p.sid, level, last_loud);
                }
            }
            let changes = state.speakers.changes(Instant::now());
            if changes.is_empty() {
                return;
            }
            (changes, state.participants.clone())
        };
        let speakers: Vec<proto::SpeakerInfo> = changes
            .iter()
            .map(|c| proto::SpeakerInfo {
                sid: c.sid.clone(),
                level: c.level,
                active: c.active,
            })
            .collect();
        for change in &changes {
            if let Some(p) = participants.get(&change.sid) {
                self.emit(RoomEvent::Speaking {
                    room: self.name.clone(),
                    identity: p.identity.clone(),
                    speaking: change.active,
                });
            }
        }
        for p in participants.values() {
            p.send(signal_response::Message::SpeakersChanged(
                proto::SpeakersChanged {
                    speakers: speakers.clone(),
                },
            ));
        }
    }

    /// Tells everyone but `except` that `info` changed.
    fn broadcast_update(&self, info: proto::ParticipantInfo, except: &str) {
        for p in self.others(except) {
            p.send(signal_response::Message::Update(proto::ParticipantUpdate {
                participants: vec![info.clone()],
            }));
        }
    }

    /// Announces a fully joined participant and subscribes everyone.
    pub(crate) async fn announce_join(self: &Arc<Self>, participant: &Arc<Participant>) {
        self.broadcast_update(participant.info(), &participant.sid);
        self.emit(RoomEvent::ParticipantJoined {
            room: self.name.clone(),
            identity: participant.identity.clone(),
            name: participant.name.clone(),
        });
        // Give the newcomer everything already published.
        if participant.can_subscribe {
            for other in self.others(&participant.sid) {
                let tracks: Vec<_> = lock(&other.published).clone();
                for track in tracks {
                    participant.subscribe(&track).await;
                }
            }
        }
        participant.negotiate_subscriber().await;
    }

    /// Removes a participant: their tracks leave every subscriber, their
    /// connections close, everyone else is told.
    pub(crate) async fn remove_participant(self: &Arc<Self>, participant: &Arc<Participant>) {
        if participant.removed.swap(true, Ordering::AcqRel) {
            return;
        }
        let speaker_change = {
            let mut state = lock(&self.state);
            let is_current = state
                .participants
                .get(&participant.sid)
                .is_some_and(|p| Arc::ptr_eq(p, participant));
            if is_current {
                state.participants.remove(&participant.sid);
            }
            state.speakers.remove(&participant.sid)
        };
        info!(room = %self.name, identity = %participant.identity, sid = %participant.sid, "participant left");
        let published: Vec<_> = std::mem::take(&mut *lock(&participant.published));
        let others = self.others(&participant.sid);
        for track in &published {
            track.ended.store(true, Ordering::Release);
            let subs: Vec<(String, Arc<DownTrack>)> = track.subscribers.drain();
            for (sub_sid, _) in subs {
                if let Some(sub) = others.iter().find(|o| o.sid == sub_sid) {
                    sub.unsubscribe(&track.sid).await;
                }
            }
        }
        // Tracks forwarded to the leaver.
        let subscribed: Vec<String> = lock(&participant.subscriptions).keys().cloned().collect();
        for track_sid in subscribed {
            for other in &others {
                if let Some(track) = other.published_track(&track_sid) {
                    track.subscribers.remove(&participant.sid);
                    track.dynacast();
                }
            }
        }
        lock(&participant.subscriptions).clear();
        let mut info = participant.info();
        info.state = proto::participant_info::State::Disconnected as i32;
        info.tracks.clear();
        info.version = participant.version.fetch_add(1, Ordering::AcqRel) + 1;
        for other in &others {
            other.send(signal_response::Message::Update(proto::ParticipantUpdate {
                participants: vec![info.clone()],
            }));
            if let Some(change) = &speaker_change {
                other.send(signal_response::Message::SpeakersChanged(
                    proto::SpeakersChanged {
                        speakers: vec![proto::SpeakerInfo {
                            sid: change.sid.clone(),
                            level: 0.0,
                            active: false,
                        }],
                    },
                ));
            }
            other.negotiate_subscriber().await;
        }
        participant.close_links().await;
        self.emit(RoomEvent::ParticipantLeft {
            room: self.name.clone(),
            identity: participant.identity.clone(),
        });
        if let Some(rooms) = self.rooms.upgrade() {
            rooms.remove_if_empty(self);
        }
        let idle_speaker_task = {
            let mut state = lock(&self.state);
            if state.participants.is_empty() {
                state.speaker_task.take()
            } else {
                None
            }
        };
        if let Some(task) = idle_speaker_task {
            task.abort();
        }
    }

    /// Sends a data packet to every participant (except `from`) on the
    /// channel named `label`, honouring `destination_identities`.
    async fn relay_data(&self, from: &str, label: &str, packet: &proto::DataPacket) {
        let bytes = packet.encode_to_vec();
        for p in self.others(from) {
            if !packet.destination_identities.is_empty()
                && !packet.destination_identities.contains(&p.identity)
            {
                continue;
            }
            p.send_data(label, &bytes).await;
        }
    }

    /// Sends a data packet from the server to every participant.
    pub(crate) async fn send_data_to_all(&self, label: &str, packet: &proto::DataPacket) {
        let bytes = packet.encode_to_vec();
        for p in self.participants() {
            p.send_data(label, &bytes).await;
        }
    }

    /// Disconnects everyone and removes the room.
    pub(crate) async fn close(self: &Arc<Self>, reason: proto::DisconnectReason) {
        for p in self.participants() {
            p.send(signal_response::Message::Leave(proto::LeaveRequest {
                can_reconnect: false,
                reason: reason as i32,
                action: proto::leave_request::Action::Disconnect as i32,
                regions: None,
            }));
            self.remove_participant(&p).await;
        }
    }
}

#[derive(Default)]
struct Negotiation {
    in_flight: bool,
    pending: bool,
}

/// The `TrackInfo` announced for an `add_track`. `mime_type` is always set
/// (livekit-client's E2EE receiver needs it, audio included) and `encryption`
/// is the publisher's, so subscribers know to decrypt: the SFU forwards the
/// payloads untouched.
fn track_info(request: &proto::AddTrackRequest, sid: String) -> proto::TrackInfo {
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
fn default_mime_type(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Video => "video/vp8",
        TrackKind::Audio => "audio/opus",
    }
}

/// A track announced by `add_track` whose media has not arrived yet.
struct PendingTrack {
    cid: String,
    info: proto::TrackInfo,
}

/// A participant in a room.
pub(crate) struct Participant {
    pub(crate) sid: String,
    pub(crate) identity: String,
    pub(crate) name: String,
    joined_at: i64,
    can_publish: bool,
    can_subscribe: bool,
    can_publish_data: bool,
    room: Weak<Room>,
    outbox: mpsc::Sender<proto::SignalResponse>,
    pub(crate) publisher: PeerLink,
    pub(crate) subscriber: PeerLink,
    version: AtomicU32,
    published: Mutex<Vec<Arc<PublishedTrack>>>,
    pending_tracks: Mutex<Vec<PendingTrack>>,
    subscriptions: Mutex<HashMap<String, Arc<DownTrack>>>,
    data_links: Mutex<HashMap<String, DataLink>>,
    negotiation: Mutex<Negotiation>,
    offer_id: AtomicU32,
    audio_tap: Mutex<Option<broadcast::Sender<AudioPacket>>>,
    /// Audio levels of the participant's tracks, written by their forwarding
    /// loops, read by the room's speaker task.
    meter: AudioMeter,
    /// The audio track the taps carry (the first published audio track).
    tapped_track: Arc<Mutex<Option<TappedTrack>>>,
    /// Asked to end (stuck outbox, room closing): the session notices.
    closed: AtomicBool,
    /// Already removed from its room.
    removed: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    pending_candidates: Mutex<Vec<(proto::SignalTarget, String)>>,
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

    fn spawn(&self, future: impl std::future::Future<Output = ()> + Send + 'static) {
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

    fn bump_and_broadcast(&self) {
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
    async fn close_links(&self) {
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

    async fn send_data(&self, label: &str, bytes: &[u8]) {
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
            // Maybe still pending.
            if let Some(pending) = lock(&self.pending_tracks)
                .iter_mut()
                .find(|p| p.info.sid == track_sid)
            {
                pending.info.muted = muted;
            }
            return;
        };
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
            if other.can_subscribe {
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
    fn retap_if_gone(&self, track_sid: &str) {
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
    async fn unpublish(self: &Arc<Self>, track: &Arc<PublishedTrack>) {
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

/// A track one participant publishes, with everyone it is forwarded to.
pub(crate) struct PublishedTrack {
    pub(crate) sid: String,
    pub(crate) kind: TrackKind,
    publisher_sid: String,
    /// The publisher's first SSRC for it.
    ssrc: u32,
    /// The track id the publisher's SDP names it by (`a=msid:<stream> <id>`).
    media_id: String,
    codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
    info: Mutex<proto::TrackInfo>,
    subscribers: Subscribers,
    keyframe: KeyframeHandle,
    /// When each layer was last asked for a keyframe.
    last_keyframe_request: Mutex<[Option<Instant>; MAX_LAYERS]>,
    /// The publisher's SSRC of each simulcast layer, as seen (0: not yet).
    layer_ssrcs: [AtomicU32; MAX_LAYERS],
    /// Sizes of the simulcast layers announced in `add_track`.
    sizes: LayerSizes,
    /// Simulcast: the publisher is told which layers anyone watches.
    simulcast: bool,
    /// The best layer the publisher was last told is watched (dynacast);
    /// `Some(None)`: none.
    dynacast_sent: Mutex<Option<Option<u8>>>,
    publisher: Weak<Participant>,
    ended: AtomicBool,
    forwarded: AtomicU64,
}

/// The down tracks a published track is forwarded to. Its forwarding loop
/// re-reads the list only when the generation moved, so the per-packet path
/// takes no lock.
#[derive(Default)]
struct Subscribers {
    map: Mutex<HashMap<String, Arc<DownTrack>>>,
    generation: AtomicU64,
}

impl Subscribers {
    fn insert(&self, sid: String, down: Arc<DownTrack>) {
        lock(&self.map).insert(sid, down);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn remove(&self, sid: &str) {
        if lock(&self.map).remove(sid).is_some() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn drain(&self) -> Vec<(String, Arc<DownTrack>)> {
        let drained: Vec<_> = lock(&self.map).drain().collect();
        self.generation.fetch_add(1, Ordering::AcqRel);
        drained
    }

    fn get(&self, sid: &str) -> Option<Arc<DownTrack>> {
        lock(&self.map).get(sid).cloned()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn snapshot(&self) -> Vec<Arc<DownTrack>> {
        lock(&self.map).values().cloned().collect()
    }
}

impl PublishedTrack {
    fn tapped(&self) -> TappedTrack {
        let info = lock(&self.info);
        TappedTrack {
            sid: self.sid.clone(),
            ssrc: self.ssrc,
            mime_type: info.mime_type.clone(),
            encryption: Encryption::from_proto(info.encryption),
        }
    }

    /// Asks the publisher for a keyframe on `layer`, at most once per gap.
    async fn request_keyframe(&self, layer: u8) {
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
    fn dynacast(&self) {
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

/// Copies one published track's packets to its subscribers.
struct Forwarder {
    track: Arc<PublishedTrack>,
    participant: Weak<Participant>,
    audio_level_id: Option<u8>,
    max_bitrate_bps: u64,
    encryption: Encryption,
}

impl Forwarder {
    async fn run(self, mut up: UpTrack) {
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
            let now = Instant::now();
            let layer = up.layer_of(packet.ssrc()).min(MAX_LAYERS as u8 - 1);
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
    fn observe_audio(
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
const SEEN_WINDOW: u16 = 1024;

/// Remembers which of the last [`SEEN_WINDOW`] RTP sequence numbers of one
/// stream were forwarded, so that a packet received twice (the publisher
/// answering a NACK for a packet that was only late) is forwarded once.
#[derive(Debug)]
struct SeenSequences {
    highest: Option<u16>,
    bits: [u64; SEEN_WINDOW as usize / 64],
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
    fn slot(sequence: u16) -> (usize, u64) {
        let index = (sequence % SEEN_WINDOW) as usize;
        (index / 64, 1 << (index % 64))
    }

    fn mark(&mut self, sequence: u16, seen: bool) {
        let (word, bit) = Self::slot(sequence);
        if seen {
            self.bits[word] |= bit;
        } else {
            self.bits[word] &= !bit;
        }
    }

    /// True the first time `sequence` is offered within the window; a
    /// sequence older than the window is always let through.
    fn first_time(&mut self, sequence: u16) -> bool {
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

/// Decodes a client frame. `None` for anything that is not a `SignalRequest`.
pub(crate) fn decode_request(frame: &[u8]) -> Option<proto::SignalRequest> {
    proto::SignalRequest::decode(frame).ok()
}

/// What the session should do after a request.
pub(crate) enum Verdict {
    Continue,
    Close(&'static str),
}

/// Applies one client request.
pub(crate) async fn handle_request(
    participant: &Arc<Participant>,
    request: signal_request::Message,
) -> Verdict {
    match request {
        signal_request::Message::Offer(sd) => {
            if sd.sdp.len() > crate::media::MAX_SDP_BYTES {
                return Verdict::Close("offer SDP too large");
            }
            debug!(id = sd.id, len = sd.sdp.len(), "publisher offer");
            let offer_sdp = sd.sdp.clone();
            match participant.publisher.answer(sd.sdp).await {
                Ok(sdp) => {
                    participant.reconcile_published(&offer_sdp).await;
                    participant
                        .flush_candidates(proto::SignalTarget::Publisher)
                        .await;
                    participant.send(signal_response::Message::Answer(
                        proto::SessionDescription {
                            r#type: "answer".into(),
                            sdp,
                            id: sd.id,
                            ..Default::default()
                        },
                    ));
                    Verdict::Continue
                }
                Err(error) => {
                    warn!(%error, "bad publisher offer");
                    Verdict::Close("offer could not be applied")
                }
            }
        }
        signal_request::Message::Answer(sd) => {
            if sd.sdp.len() > crate::media::MAX_SDP_BYTES {
                return Verdict::Close("answer SDP too large");
            }
            match participant.on_subscriber_answer(sd.sdp).await {
                Ok(()) => Verdict::Continue,
                Err(error) => {
                    warn!(%error, "bad subscriber answer");
                    Verdict::Close("answer could not be applied")
                }
            }
        }
        signal_request::Message::Trickle(trickle) => {
            if trickle.candidate_init.len() > 4096 {
                return Verdict::Close("candidate too large");
            }
            let target = proto::SignalTarget::try_from(trickle.target)
                .unwrap_or(proto::SignalTarget::Publisher);
            participant.on_trickle(target, trickle.candidate_init).await;
            Verdict::Continue
        }
        signal_request::Message::AddTrack(request) => {
            if let Err(reason) = participant.add_track(request) {
                warn!(reason, "add_track refused");
            }
            Verdict::Continue
        }
        signal_request::Message::Mute(mute) => {
            participant.mute(&mute.sid, mute.muted);
            Verdict::Continue
        }
        signal_request::Message::Subscription(update) => {
            participant.update_subscription(update).await;
            Verdict::Continue
        }
        signal_request::Message::TrackSetting(settings) => {
            participant.update_track_settings(&settings);
            Verdict::Continue
        }
        signal_request::Message::Leave(_) => Verdict::Close("client left"),
        signal_request::Message::Ping(ts) => {
            participant.send(signal_response::Message::Pong(ts));
            Verdict::Continue
        }
        signal_request::Message::PingReq(ping) => {
            participant.send(signal_response::Message::PongResp(proto::Pong {
                last_ping_timestamp: ping.timestamp,
                timestamp: now_ms(),
            }));
            Verdict::Continue
        }
        other => {
            debug!(message = ?std::mem::discriminant(&other), "request not handled");
            Verdict::Continue
        }
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

    #[test]
    fn sids_have_livekit_prefixes() {
        let sid = new_sid("TR_");
        assert!(sid.starts_with("TR_") && sid.len() == 15);
        assert_ne!(new_sid("PA_"), new_sid("PA_"));
    }
}
