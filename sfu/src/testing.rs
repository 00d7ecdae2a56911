//! The LiveKit-protocol client the SFU's tests and bench drive calls with
//! (feature `testing`). It lives in `salon-lkclient`, where the bridge's
//! LiveKit backend uses it too; this module keeps the names the tests know,
//! and the SFU's own interceptor settings for the bench's publishers.

pub use crate::media::{MAX_NACKS_PER_PACKET, register_interceptors};
pub use salon_lkclient::{
    Client as TestClient, ClientError, ClientOptions, ReceivedPacket, ReceivedTrack, TrackSender,
    WAIT,
};
