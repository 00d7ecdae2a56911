//! Errors the SFU reports to its embedder. Per-connection failures (a hostile
//! frame, a bad SDP) never surface here: they close that one connection.

use thiserror::Error;

/// Why the SFU could not be built or could not act.
#[derive(Debug, Error)]
pub enum SfuError {
    /// The configuration is unusable; the message names the key.
    #[error("invalid SFU configuration: {0}")]
    Config(String),
    /// The WebRTC stack refused an operation.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// No UDP port of the configured range could be bound.
    #[error("no free UDP port in {min}..={max} on {ip}")]
    NoFreePort {
        /// Bind address.
        ip: std::net::IpAddr,
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
    },
}
