//! The media-backend seam: the one surface through which the bridge talks to
//! "the SFU". The bridge decides (who may join, when a call ends, what is
//! transcribed); the backend forwards media and tells the bridge who came and
//! went. Today's backend is the embedded `salon-sfu` ([`EmbeddedSfu`]); a
//! LiveKit cluster is a second implementation of [`MediaBackend`] behind the
//! same calls (join grants for its URL, webhooks for its events, its server
//! API to close rooms, a hidden participant for the audio taps).
//!
//! Flow: `access` asks for a [`JoinGrant`]; `app` follows [`MediaEvent`]s
//! into the room queues; `transcription` opens [`AudioTap`]s; `transcripts`
//! sends captions and the banner flag; `room` closes a call's media room.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use tracing::warn;

pub use salon_sfu::{AudioTap, MuteWhat};

/// Who is in a call's media room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaParticipant {
    /// The LiveKit identity: the Matrix user id for room members.
    pub identity: String,
    pub name: String,
}

/// What the backend tells the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    Joined {
        call_id: String,
        identity: String,
        name: String,
    },
    Left {
        call_id: String,
        identity: String,
    },
}

/// What a client needs to join a call's media room: the signalling URL and
/// a token for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGrant {
    pub url: String,
    pub token: String,
}

/// A caption sent into a call, attributed to its speaker.
#[derive(Clone, Copy, Debug)]
pub struct Caption<'a> {
    pub call_id: &'a str,
    pub speaker: &'a str,
    /// Stable per utterance: a partial and its final share it.
    pub utterance: &'a str,
    pub text: &'a str,
    pub start_ms: u64,
    pub end_ms: u64,
    pub is_final: bool,
}

/// The bridge's whole use of a media backend.
#[async_trait]
pub trait MediaBackend: Send + Sync + 'static {
    /// A token for `identity` to join `call_id`'s media room, valid for `ttl`.
    fn join_grant(&self, call_id: &str, identity: &str, name: &str, ttl: Duration) -> JoinGrant;
    /// Joins and leaves, as they happen.
    fn events(&self) -> broadcast::Receiver<MediaEvent>;
    /// Who is in the call's media room now.
    fn participants(&self, call_id: &str) -> Vec<MediaParticipant>;
    /// The Opus packets `identity` publishes in the call, for transcription.
    fn subscribe_audio(&self, call_id: &str, identity: &str) -> Option<AudioTap>;
    /// Sends a caption to everyone in the call.
    async fn send_caption(&self, caption: Caption<'_>);
    /// Sends a data packet on `topic` to everyone in the call.
    async fn send_data(&self, call_id: &str, topic: &str, payload: &[u8]);
    /// A moderator's mute of `identity`'s microphone or video: the client
    /// is told to mute (LiveKit's own message, so every LiveKit client obeys)
    /// and the tracks stop reaching the others. How many tracks it muted.
    async fn mute(&self, call_id: &str, identity: &str, what: MuteWhat) -> usize;
    /// Removes `identity` from the call: it is told why and disconnected.
    /// True if it was there.
    async fn remove(&self, call_id: &str, identity: &str) -> bool;
    /// Ends the call's media room: everyone is disconnected.
    async fn close_call(&self, call_id: &str);
    /// HTTP routes the backend serves itself (the embedded SFU's `/rtc`).
    fn router(&self) -> Option<axum::Router>;
    /// Disconnects everyone and stops.
    async fn shutdown(&self);
}

/// The SFU embedded in this process.
pub struct EmbeddedSfu {
    sfu: Arc<salon_sfu::Sfu>,
    events: broadcast::Sender<MediaEvent>,
    api_key: String,
    api_secret: String,
    ws_url: String,
}

impl EmbeddedSfu {
    /// Starts the SFU; `ws_url` is the signalling URL clients are given.
    pub fn start(config: salon_sfu::SfuConfig, ws_url: String) -> anyhow::Result<Arc<Self>> {
        let (api_key, api_secret) = (config.api_key.clone(), config.api_secret.clone());
        let sfu = salon_sfu::Sfu::new(config)?;
        let (events, _) = broadcast::channel(1024);
        let forward = events.clone();
        let mut from_sfu = sfu.events();
        tokio::spawn(async move {
            use salon_sfu::events::RoomEvent;
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let event = match from_sfu.recv().await {
                    Ok(RoomEvent::ParticipantJoined {
                        room,
                        identity,
                        name,
                    }) => MediaEvent::Joined {
                        call_id: room,
                        identity,
                        name,
                    },
                    Ok(RoomEvent::ParticipantLeft { room, identity }) => MediaEvent::Left {
                        call_id: room,
                        identity,
                    },
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        warn!(missed = n, "missed SFU events");
                        continue;
                    }
                    Err(RecvError::Closed) => break,
                };
                let _ = forward.send(event);
            }
        });
        Ok(Arc::new(EmbeddedSfu {
            sfu,
            events,
            api_key,
            api_secret,
            ws_url,
        }))
    }
}

#[async_trait]
impl MediaBackend for EmbeddedSfu {
    fn join_grant(&self, call_id: &str, identity: &str, name: &str, ttl: Duration) -> JoinGrant {
        JoinGrant {
            url: self.ws_url.clone(),
            token: salon_sfu::token::mint(
                &self.api_key,
                &self.api_secret,
                call_id,
                identity,
                name,
                ttl,
            ),
        }
    }

    fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.events.subscribe()
    }

    fn participants(&self, call_id: &str) -> Vec<MediaParticipant> {
        self.sfu
            .participants(call_id)
            .into_iter()
            .map(|p| MediaParticipant {
                identity: p.identity,
                name: p.name,
            })
            .collect()
    }

    fn subscribe_audio(&self, call_id: &str, identity: &str) -> Option<AudioTap> {
        self.sfu.subscribe_audio(call_id, identity)
    }

    async fn send_caption(&self, c: Caption<'_>) {
        self.sfu
            .send_transcription(
                c.call_id,
                c.speaker,
                c.utterance,
                c.text,
                c.start_ms,
                c.end_ms,
                c.is_final,
            )
            .await;
    }

    async fn send_data(&self, call_id: &str, topic: &str, payload: &[u8]) {
        self.sfu.send_data(call_id, topic, payload).await;
    }

    async fn mute(&self, call_id: &str, identity: &str, what: MuteWhat) -> usize {
        self.sfu.mute(call_id, identity, what).len()
    }

    async fn remove(&self, call_id: &str, identity: &str) -> bool {
        // The SFU also refuses the identity's token from now on: a removed
        // page cannot come back before its token expires.
        self.sfu.remove(call_id, identity).await
    }

    async fn close_call(&self, call_id: &str) {
        self.sfu.close_room(call_id).await;
    }

    fn router(&self) -> Option<axum::Router> {
        Some(self.sfu.router())
    }

    async fn shutdown(&self) {
        self.sfu.shutdown().await;
    }
}
