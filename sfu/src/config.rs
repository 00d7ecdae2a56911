//! Configuration of the SFU: where it binds its media sockets, what it announces
//! to clients, which TURN/STUN servers clients should use, the LiveKit API key
//! and secret that sign join tokens, and the per-call limits.
//!
//! The bridge builds an [`SfuConfig`] from its own TOML `[sfu]` section; nothing
//! here reads files or the environment.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// A STUN or TURN server handed to clients in `JoinResponse.ice_servers`.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username (empty for STUN).
    pub username: String,
    /// TURN credential (empty for STUN). Never logged.
    pub credential: String,
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// Everything the SFU needs to run.
#[derive(Clone)]
pub struct SfuConfig {
    /// Address the media (UDP) sockets bind to. Bind a concrete address:
    /// `0.0.0.0` makes the webrtc crate skip loopback.
    pub bind_ip: IpAddr,
    /// First UDP port a peer connection may bind (inclusive). `0` with
    /// `udp_port_max == 0` means "any ephemeral port".
    pub udp_port_min: u16,
    /// Last UDP port a peer connection may bind (inclusive).
    pub udp_port_max: u16,
    /// Address announced in ICE candidates next to `bind_ip` (1:1 NAT): each
    /// host candidate on `bind_ip` is repeated with this address.
    pub public_ip: Option<IpAddr>,
    /// STUN/TURN servers given to clients.
    pub ice_servers: Vec<IceServer>,
    /// LiveKit API key: the `iss` of accepted tokens.
    pub api_key: String,
    /// LiveKit API secret: the HS256 key of accepted tokens. Never logged.
    pub api_secret: String,
    /// Participants allowed in one room; the next join is refused.
    pub max_participants: usize,
    /// Highest bitrate a publisher may send per track, in bits per second.
    /// A publisher exceeding it for several seconds has its packets dropped
    /// until it falls back under.
    pub max_bitrate_bps: u64,
    /// The public `ws(s)://` URL clients use, for logs and the bridge's
    /// join answers; the SFU itself does not need it.
    pub ws_url: Option<String>,
}

impl SfuConfig {
    /// A configuration for tests and local runs: loopback, ephemeral ports,
    /// no ICE servers.
    pub fn local(api_key: &str, api_secret: &str) -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            udp_port_min: 0,
            udp_port_max: 0,
            public_ip: None,
            ice_servers: Vec::new(),
            api_key: api_key.to_owned(),
            api_secret: api_secret.to_owned(),
            max_participants: 50,
            max_bitrate_bps: 6_000_000,
            ws_url: None,
        }
    }
}

impl fmt::Debug for SfuConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SfuConfig")
            .field("bind_ip", &self.bind_ip)
            .field("udp_port_min", &self.udp_port_min)
            .field("udp_port_max", &self.udp_port_max)
            .field("public_ip", &self.public_ip)
            .field("ice_servers", &self.ice_servers.len())
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .field("max_participants", &self.max_participants)
            .field("max_bitrate_bps", &self.max_bitrate_bps)
            .field("ws_url", &self.ws_url)
            .finish()
    }
}
