//! A LiveKit-protocol participant on the `webrtc` crate, as a library.
//!
//! Salon uses it in three places: the bridge's LiveKit backend joins each
//! transcribed call on a LiveKit cluster as a hidden participant with it (the
//! audio taps, the captions); the tests and the bench drive calls with it as
//! browsers would, against the embedded SFU and against LiveKit server
//! (`salon_sfu::testing` re-exports it). It shares nothing with the embedded
//! SFU's room logic, only the protobuf types and the WebRTC stack.
//!
//! `client` is the participant (signalling, the two peer connections, tracks
//! and data); `interceptors` its RTP/RTCP settings; `server` (feature
//! `testing`) a LiveKit cluster on loopback for the tests.

mod client;
mod interceptors;
#[cfg(feature = "testing")]
pub mod server;

pub use client::{
    Client, ClientError, ClientOptions, ReceivedPacket, ReceivedTrack, TrackSender, WAIT,
};
pub use interceptors::{MAX_NACKS_PER_PACKET, register_interceptors};
pub use livekit_protocol as proto;
