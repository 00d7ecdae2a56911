//! What the SFU tells its embedder: room events (joined, left, speaking,
//! muted, published) on a broadcast channel, and per-participant audio taps
//! carrying the Opus payloads a participant publishes, for transcription.
//! Also the few words the embedder uses to act on a participant
//! ([`MuteWhat`]).

use std::time::Instant;

use bytes::Bytes;
use tokio::sync::broadcast;

/// Something that happened in a room, in the order it happened there.
#[derive(Clone, Debug, PartialEq)]
pub enum RoomEvent {
    /// A participant finished joining (their `join` was answered).
    ParticipantJoined {
        /// Room name (from the token).
        room: String,
        /// Participant identity (the token's `sub`).
        identity: String,
        /// Display name (the token's `name`).
        name: String,
    },
    /// A participant left or was disconnected.
    ParticipantLeft {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
    },
    /// A participant started or stopped speaking (from their audio level).
    Speaking {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
        /// Whether they are speaking now.
        speaking: bool,
    },
    /// A participant muted or unmuted one of their tracks.
    TrackMuted {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
        /// Track sid (`TR_…`).
        track_sid: String,
        /// Whether the track is muted now.
        muted: bool,
    },
    /// A participant published a track.
    TrackPublished {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
        /// Track sid (`TR_…`).
        track_sid: String,
        /// `audio` or `video`.
        kind: TrackKind,
        /// Codec MIME type, e.g. `audio/opus`.
        mime_type: String,
        /// End-to-end encryption the publisher announced for it.
        encryption: Encryption,
    },
    /// A room's last participant left and the room was removed.
    RoomClosed {
        /// Room name.
        room: String,
    },
}

/// Media kind of a track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// Microphone.
    Audio,
    /// Camera or screen share.
    Video,
}

/// Which of a participant's tracks a moderator mutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuteWhat {
    /// Their microphone (audio that is not a screen share's).
    Microphone,
    /// Their camera and screen share, with the screen share's audio.
    Video,
}

impl MuteWhat {
    /// Whether a track of `kind` from `source` (LiveKit's `TrackSource`
    /// number as published) is one of these.
    pub fn covers(self, kind: TrackKind, source: i32) -> bool {
        let screen_audio = source == livekit_protocol::TrackSource::ScreenShareAudio as i32;
        match self {
            MuteWhat::Microphone => kind == TrackKind::Audio && !screen_audio,
            MuteWhat::Video => kind == TrackKind::Video || screen_audio,
        }
    }
}

/// End-to-end encryption of a track's media, as its publisher announced it in
/// `AddTrackRequest.encryption` (LiveKit's `Encryption.Type`). The SFU never
/// decrypts or rewrites payloads: for an encrypted track, [`AudioPacket::payload`]
/// is the sender's ciphertext frame (e.g. Element Call's per-participant
/// AES-GCM), and a transcriber needs the keys to hear it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// Plain media.
    #[default]
    None,
    /// LiveKit's AES-GCM frame encryption (livekit-client, Element Call).
    Gcm,
    /// An application-defined scheme.
    Custom,
}

impl Encryption {
    /// From the protocol's `Encryption.Type` value (unknown values count as
    /// `Custom`: encrypted somehow, so not plain).
    pub(crate) fn from_proto(value: i32) -> Self {
        match value {
            0 => Self::None,
            1 => Self::Gcm,
            _ => Self::Custom,
        }
    }

    /// True unless the media is plain.
    pub fn is_encrypted(self) -> bool {
        self != Self::None
    }
}

/// One audio packet of a participant, as published (Opus, 48 kHz clock).
#[derive(Clone, Debug)]
pub struct AudioPacket {
    /// Sid of the track it came on.
    pub track_sid: String,
    /// The Opus payload (one frame, usually 20 ms).
    pub payload: Bytes,
    /// RTP timestamp (48 kHz units).
    pub rtp_timestamp: u32,
    /// RTP sequence number.
    pub sequence: u16,
    /// When the SFU received it.
    pub received_at: Instant,
    /// Audio level in -dBov (0 loudest, 127 silence) if the sender reported it.
    pub level_dbov: Option<u8>,
    /// The publisher's SSRC for this track.
    pub ssrc: u32,
    /// The track's end-to-end encryption: when encrypted, `payload` is
    /// ciphertext, not Opus.
    pub encryption: Encryption,
}

/// The audio track an [`AudioTap`] currently carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TappedTrack {
    /// `TR_…` sid.
    pub sid: String,
    /// The publisher's SSRC for it.
    pub ssrc: u32,
    /// Codec MIME type, e.g. `audio/opus`.
    pub mime_type: String,
    /// End-to-end encryption the publisher announced for it.
    pub encryption: Encryption,
}

/// A stream of a participant's audio packets. Ends (`None`) when the
/// participant leaves. A tap that falls behind skips the oldest packets.
#[derive(Debug)]
pub struct AudioTap {
    pub(crate) identity: String,
    /// The participant's first audio track, once published (shared with the
    /// participant, which sets it).
    pub(crate) track: std::sync::Arc<std::sync::Mutex<Option<TappedTrack>>>,
    pub(crate) receiver: broadcast::Receiver<AudioPacket>,
    pub(crate) skipped: u64,
}

impl AudioTap {
    /// A tap fed from outside the SFU: the bridge's LiveKit backend forwards
    /// what its hidden participant receives from a LiveKit cluster. `track`
    /// is set by the feeder once the participant's audio track is known; the
    /// tap ends when every sender of `receiver` is dropped.
    pub fn from_parts(
        identity: impl Into<String>,
        track: std::sync::Arc<std::sync::Mutex<Option<TappedTrack>>>,
        receiver: broadcast::Receiver<AudioPacket>,
    ) -> Self {
        Self {
            identity: identity.into(),
            track,
            receiver,
            skipped: 0,
        }
    }

    /// The identity whose audio this is.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The audio track this tap carries: the participant's first published
    /// audio track, or `None` while they have published none. Each
    /// [`AudioPacket`] also says its own track, SSRC and encryption.
    pub fn track(&self) -> Option<TappedTrack> {
        self.track.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The encryption of [`AudioTap::track`]; `None` (plain) while no audio
    /// track is published.
    pub fn encryption(&self) -> Encryption {
        self.track().map(|t| t.encryption).unwrap_or_default()
    }

    /// Whether the tapped audio is end-to-end encrypted (its payloads are
    /// ciphertext that cannot be decoded without the participant's keys).
    pub fn is_encrypted(&self) -> bool {
        self.encryption().is_encrypted()
    }

    /// The next packet, or `None` once the participant has left.
    pub async fn recv(&mut self) -> Option<AudioPacket> {
        loop {
            match self.receiver.recv().await {
                Ok(packet) => return Some(packet),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.skipped += n;
                    tracing::debug!(identity = %self.identity, skipped = n, "audio tap fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// How many packets were skipped because this tap fell behind.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// A participant as the embedder sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantInfoSummary {
    /// `PA_…` sid.
    pub sid: String,
    /// Identity (token `sub`).
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Published tracks.
    pub tracks: Vec<TrackSummary>,
    /// Whether they are speaking now.
    pub speaking: bool,
}

/// A published track as the embedder sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackSummary {
    /// `TR_…` sid.
    pub sid: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Codec MIME type.
    pub mime_type: String,
    /// Muted by its publisher.
    pub muted: bool,
    /// End-to-end encryption the publisher announced for it.
    pub encryption: Encryption,
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_protocol::TrackSource;

    #[test]
    fn a_moderators_mute_names_the_tracks_it_covers() {
        let mic = TrackSource::Microphone as i32;
        let camera = TrackSource::Camera as i32;
        let screen = TrackSource::ScreenShare as i32;
        let screen_audio = TrackSource::ScreenShareAudio as i32;
        let unknown = TrackSource::Unknown as i32;
        assert!(MuteWhat::Microphone.covers(TrackKind::Audio, mic));
        // Clients that name no source still publish their microphone.
        assert!(MuteWhat::Microphone.covers(TrackKind::Audio, unknown));
        assert!(!MuteWhat::Microphone.covers(TrackKind::Audio, screen_audio));
        assert!(!MuteWhat::Microphone.covers(TrackKind::Video, camera));
        assert!(MuteWhat::Video.covers(TrackKind::Video, camera));
        assert!(MuteWhat::Video.covers(TrackKind::Video, screen));
        assert!(MuteWhat::Video.covers(TrackKind::Audio, screen_audio));
        assert!(!MuteWhat::Video.covers(TrackKind::Audio, mic));
    }
}
