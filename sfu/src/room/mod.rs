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
//!
//! This file holds the rooms (admission, lookup, closing) and a room (its
//! participants, speakers, broadcasts); `participant` a participant's two
//! connections, publishing and subscribing; `track` a published track and
//! its subscriber list; `forward` the per-track forwarding loop.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use livekit_protocol as proto;
use livekit_protocol::signal_response;
use prost::Message;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span};

use crate::config::SfuConfig;
use crate::error::SfuError;
use crate::events::{Encryption, ParticipantInfoSummary, RoomEvent, TrackSummary};
use crate::media::{DownTrack, MediaSettings, PeerEvent, PeerLink, PeerRole};
use crate::simulcast::EarlySettings;
use crate::speakers::{AudioMeter, SpeakerDetector};

mod forward;
mod participant;
mod track;

use forward::Forwarder;
use participant::Negotiation;
pub(crate) use participant::Participant;
pub(crate) use track::PublishedTrack;
use track::Subscribers;

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

pub(crate) fn now_ms() -> i64 {
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
    #[error("removed from this call by a moderator")]
    Removed,
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
    /// Per room, the identities a moderator removed: refused until the
    /// embedder lets them back or closes the room (the call ends).
    removed: Mutex<HashMap<String, HashSet<String>>>,
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
            removed: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses `identity` in `room` from now on; true if it was not already.
    pub(crate) fn bar(&self, room: &str, identity: &str) -> bool {
        lock(&self.removed)
            .entry(room.to_owned())
            .or_default()
            .insert(identity.to_owned())
    }

    /// Whether a moderator removed `identity` from `room`.
    pub(crate) fn is_barred(&self, room: &str, identity: &str) -> bool {
        lock(&self.removed)
            .get(room)
            .is_some_and(|barred| barred.contains(identity))
    }

    /// Lets `identity` join `room` again.
    pub(crate) fn unbar(&self, room: &str, identity: &str) {
        let mut removed = lock(&self.removed);
        if let Some(barred) = removed.get_mut(room) {
            barred.remove(identity);
            if barred.is_empty() {
                removed.remove(room);
            }
        }
    }

    /// Lets everyone removed from `room` join it again.
    pub(crate) fn lift_bars(&self, room: &str) {
        lock(&self.removed).remove(room);
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
        admission: Admission,
    ) -> Result<(Arc<Participant>, ParticipantChannels), JoinError> {
        let Admission {
            can_publish,
            can_subscribe,
            can_publish_data,
            auto_subscribe,
        } = admission;
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
            auto_subscribe,
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
            early_settings: Mutex::new(EarlySettings::default()),
        });

        // Admission and duplicate identity, atomically.
        let admission = {
            let mut state = lock(&room.state);
            if room.closed.load(Ordering::Acquire) {
                Err(JoinError::ShuttingDown)
            } else if self.is_barred(room_name, identity) {
                Err(JoinError::Removed)
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
        // Give the newcomer everything already published (unless it joined
        // with `auto_subscribe=0` and subscribes itself).
        if participant.can_subscribe && participant.auto_subscribe {
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

/// What a joining participant may do (from its token's grants) and whether
/// it is subscribed to every track by itself (`auto_subscribe`, a query
/// parameter of `/rtc`; LiveKit's default is yes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Admission {
    pub(crate) can_publish: bool,
    pub(crate) can_subscribe: bool,
    pub(crate) can_publish_data: bool,
    pub(crate) auto_subscribe: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_have_livekit_prefixes() {
        let sid = new_sid("TR_");
        assert!(sid.starts_with("TR_") && sid.len() == 15);
        assert_ne!(new_sid("PA_"), new_sid("PA_"));
    }
}
