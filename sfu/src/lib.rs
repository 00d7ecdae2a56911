//! Salon's media plane: a selective forwarding unit that speaks LiveKit's
//! signaling protocol, so unmodified LiveKit clients (livekit-client in the
//! browser, the Python and Rust SDKs) join calls served by it.
//!
//! The bridge embeds it as a library. It builds an [`Sfu`] from an
//! [`SfuConfig`], merges [`Sfu::router`] into its web server, mints join tokens
//! with [`token::mint`], and listens to [`Sfu::events`] and
//! [`Sfu::subscribe_audio`] for the call lifecycle and transcription. The SFU
//! knows nothing of Matrix: a room holds participants, participants publish
//! tracks, and every other participant receives them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), salon_sfu::SfuError> {
//! use salon_sfu::{Sfu, SfuConfig};
//! let sfu = Sfu::new(SfuConfig::local("APIkey", "secret"))?;
//! let app = axum::Router::new().merge(sfu.router());
//! let token = salon_sfu::token::mint("APIkey", "secret", "call-1", "@alice:example.org", "Alice",
//!     std::time::Duration::from_secs(300));
//! # let _ = (app, token); Ok(()) }
//! ```
//!
//! Inside: `signal` runs one WebSocket session per participant, `room` holds
//! rooms, participants and the forwarding loops, `media` is the only module
//! that touches the `webrtc` crate, `speakers` turns audio levels into
//! speaking states.

pub mod config;
pub mod error;
pub mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod media;
mod room;
mod signal;
mod simulcast;
pub mod speakers;
pub mod token;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use livekit_protocol as proto;
use tokio::sync::{broadcast, watch};

pub use config::{IceServer, SfuConfig};
pub use error::SfuError;
pub use events::{
    AudioPacket, AudioTap, Encryption, MuteWhat, ParticipantInfoSummary, RoomEvent, TappedTrack,
    TrackKind, TrackSummary,
};
pub use signal::{MAX_FRAME_BYTES, SERVER_VERSION};

use media::MediaSettings;
use room::Rooms;

/// The SFU: rooms, their participants and the signaling endpoint.
pub struct Sfu {
    config: SfuConfig,
    rooms: Arc<Rooms>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Sfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sfu").field("config", &self.config).finish()
    }
}

impl Sfu {
    /// Builds the SFU. Fails on an unusable configuration (the message names
    /// the key). Nothing is bound until participants join.
    pub fn new(config: SfuConfig) -> Result<Arc<Self>, SfuError> {
        config
            .validate()
            .map_err(|e| SfuError::Config(e.to_string()))?;
        let media = MediaSettings::from_config(&config)?;
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Self {
            rooms: Arc::new(Rooms::new(config.clone(), media)),
            config,
            shutdown,
        }))
    }

    /// The configuration in use.
    pub fn config(&self) -> &SfuConfig {
        &self.config
    }

    /// The HTTP routes: `/rtc` (signaling, two peer connections),
    /// `/rtc/validate`, and `/rtc/v1` + `/rtc/v1/validate` answered 404 with
    /// CORS so clients fall back to `/rtc`. Merge it into the bridge's router.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        signal::router(self.clone())
    }

    /// Room events from every room, in order per room.
    pub fn events(&self) -> broadcast::Receiver<RoomEvent> {
        self.rooms.events.subscribe()
    }

    /// The audio `identity` publishes in `room`, from now on. `None` if they
    /// are not in the room. The tap ends when they leave.
    pub fn subscribe_audio(&self, room: &str, identity: &str) -> Option<AudioTap> {
        self.rooms.get(room)?.find(identity)?.audio_tap()
    }

    /// Sends a caption to every participant of `room` as a LiveKit
    /// `Transcription` data packet (livekit-client raises
    /// `TranscriptionReceived`). Dropped silently if the room or speaker is gone.
    #[allow(clippy::too_many_arguments, deprecated)]
    pub async fn send_transcription(
        &self,
        room: &str,
        speaker_identity: &str,
        segment_id: &str,
        text: &str,
        start_ms: u64,
        end_ms: u64,
        is_final: bool,
    ) {
        let Some(room) = self.rooms.get(room) else {
            return;
        };
        let track_id = room
            .find(speaker_identity)
            .and_then(|p| p.first_audio_track())
            .unwrap_or_default();
        let packet = proto::DataPacket {
            kind: proto::data_packet::Kind::Reliable as i32,
            value: Some(proto::data_packet::Value::Transcription(
                proto::Transcription {
                    transcribed_participant_identity: speaker_identity.to_owned(),
                    track_id,
                    segments: vec![proto::TranscriptionSegment {
                        id: segment_id.to_owned(),
                        text: text.to_owned(),
                        start_time: start_ms,
                        end_time: end_ms,
                        r#final: is_final,
                        language: String::new(),
                    }],
                },
            )),
            ..Default::default()
        };
        room.send_data_to_all("_reliable", &packet).await;
    }

    /// Sends a reliable data packet from the server to every participant of
    /// `room` on `topic` (livekit-client raises `DataReceived` with no
    /// participant). Dropped silently if the room is gone.
    #[allow(deprecated)]
    pub async fn send_data(&self, room: &str, topic: &str, payload: &[u8]) {
        let Some(room) = self.rooms.get(room) else {
            return;
        };
        let packet = proto::DataPacket {
            kind: proto::data_packet::Kind::Reliable as i32,
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                payload: payload.to_vec(),
                topic: Some(topic.to_owned()),
                ..Default::default()
            })),
            ..Default::default()
        };
        room.send_data_to_all("_reliable", &packet).await;
    }

    /// Disconnects everyone in `room` (they get a `leave`) and removes it;
    /// those removed from it may join it again.
    pub async fn close_room(&self, room: &str) {
        if let Some(room) = self.rooms.get(room) {
            room.close(proto::DisconnectReason::RoomDeleted).await;
        }
        self.rooms.lift_bars(room);
    }

    /// A moderator's mute of `identity`'s tracks in `room` (see
    /// [`MuteWhat`]): the publisher is told to mute them and the SFU stops
    /// forwarding them until the publisher unmutes. The sids muted.
    pub fn mute(&self, room: &str, identity: &str, what: MuteWhat) -> Vec<String> {
        let Some(participant) = self.rooms.get(room).and_then(|r| r.find(identity)) else {
            return Vec::new();
        };
        let muted = participant.mute_for_moderator(what);
        tracing::info!(
            room,
            identity,
            ?what,
            tracks = muted.len(),
            "muted by a moderator"
        );
        muted
    }

    /// Removes `identity` from `room`: they get a `leave` saying they were
    /// removed and are disconnected, and the room refuses them (their token
    /// included) until [`Sfu::readmit`] or [`Sfu::close_room`]. True if they
    /// were in the room.
    pub async fn remove(&self, room: &str, identity: &str) -> bool {
        self.rooms.bar(room, identity);
        let Some((room_ref, participant)) = self
            .rooms
            .get(room)
            .and_then(|r| r.find(identity).map(|p| (r, p)))
        else {
            tracing::info!(room, identity, "barred from the room (not in it)");
            return false;
        };
        participant.send(proto::signal_response::Message::Leave(
            proto::LeaveRequest {
                can_reconnect: false,
                reason: proto::DisconnectReason::ParticipantRemoved as i32,
                action: proto::leave_request::Action::Disconnect as i32,
                regions: None,
            },
        ));
        room_ref.remove_participant(&participant).await;
        tracing::info!(room, identity, "removed by a moderator");
        true
    }

    /// Lets `identity`, removed from `room` earlier, join it again.
    pub fn readmit(&self, room: &str, identity: &str) {
        self.rooms.unbar(room, identity);
    }

    /// Who is in `room` now, sorted by identity.
    pub fn participants(&self, room: &str) -> Vec<ParticipantInfoSummary> {
        self.rooms
            .get(room)
            .map(|r| r.summaries())
            .unwrap_or_default()
    }

    /// Names of the rooms that have participants.
    pub fn rooms(&self) -> Vec<String> {
        self.rooms.names()
    }

    /// Disconnects everyone, closes every peer connection and refuses new joins.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        self.rooms.close_all().await;
    }
}
