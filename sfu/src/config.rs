//! Configuration of the SFU: where it binds its media sockets, what it announces
//! to clients, which TURN/STUN servers clients should use, the LiveKit API key
//! and secret that sign join tokens, and the per-call limits.
//!
//! The bridge builds an [`SfuConfig`] from its own TOML `[sfu]` section; nothing
//! here reads files or the environment. What a setting must satisfy is written
//! once, in [`rules`]: [`SfuConfig::validate`] (run by `Sfu::new`) applies it,
//! and so does the bridge when it reads `[sfu]`, so a config the bridge accepts
//! is one the SFU starts with.

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

/// A setting the SFU refuses: its key, as in the bridge's `[sfu]` section, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sfu.{key}: {reason}")]
pub struct InvalidSetting {
    /// The key at fault, without the `sfu.` prefix.
    pub key: &'static str,
    /// What is wrong, in words an admin can act on.
    pub reason: String,
}

impl SfuConfig {
    /// Checks every setting against [`rules`]; the error names the first key at fault.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let at = |key: &'static str| move |reason| InvalidSetting { key, reason };
        rules::bind_ip(self.bind_ip).map_err(at("bind_ip"))?;
        rules::udp_ports(self.udp_port_min, self.udp_port_max).map_err(at("udp_port_min"))?;
        rules::api_key(&self.api_key).map_err(at("api_key"))?;
        rules::api_secret(&self.api_secret).map_err(at("api_secret"))?;
        rules::max_participants(self.max_participants).map_err(at("max_participants"))?;
        rules::max_bitrate_bps(self.max_bitrate_bps).map_err(at("max_bitrate_bps"))?;
        for server in &self.ice_servers {
            rules::ice_urls(&server.urls).map_err(at("ice_servers"))?;
        }
        Ok(())
    }
}

/// What each setting must satisfy, one function a setting, each answering the
/// reason it is refused. Shared with the bridge's config loader.
pub mod rules {
    use std::net::IpAddr;

    /// The shortest API secret accepted. It is the HS256 key of every join
    /// token: 32 characters is what RFC 7518 asks of an HS256 key (256 bits)
    /// when each character carries a byte; the bridge generates 48.
    pub const MIN_API_SECRET_LEN: usize = 32;

    /// The lowest per-track bitrate limit: below it even audio is cut off.
    pub const MIN_BITRATE_BPS: u64 = 64_000;

    /// A concrete address: `0.0.0.0` or `::` makes the WebRTC stack skip loopback.
    pub fn bind_ip(ip: IpAddr) -> Result<(), String> {
        if ip.is_unspecified() {
            return Err(format!(
                "{ip} skips loopback in the WebRTC stack: bind the interface's address"
            ));
        }
        Ok(())
    }

    /// Both ends of the UDP range (min <= max), or neither (ephemeral ports).
    pub fn udp_ports(min: u16, max: u16) -> Result<(), String> {
        if (min == 0) != (max == 0) || min > max {
            return Err(
                "set both udp_port_min and udp_port_max (min <= max), or neither for ephemeral ports"
                    .into(),
            );
        }
        Ok(())
    }

    /// The `iss` of join tokens: not empty.
    pub fn api_key(key: &str) -> Result<(), String> {
        if key.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(())
    }

    /// At least [`MIN_API_SECRET_LEN`] characters.
    pub fn api_secret(secret: &str) -> Result<(), String> {
        if secret.len() < MIN_API_SECRET_LEN {
            return Err(format!("must be at least {MIN_API_SECRET_LEN} characters"));
        }
        Ok(())
    }

    /// At least one participant per room.
    pub fn max_participants(max: usize) -> Result<(), String> {
        if max == 0 {
            return Err("must be at least 1".into());
        }
        Ok(())
    }

    /// At least [`MIN_BITRATE_BPS`].
    pub fn max_bitrate_bps(bps: u64) -> Result<(), String> {
        if bps < MIN_BITRATE_BPS {
            return Err(format!("must be at least {} kbps", MIN_BITRATE_BPS / 1000));
        }
        Ok(())
    }

    /// A server's URLs: at least one, each `turn:`, `turns:` or `stun:`.
    pub fn ice_urls(urls: &[String]) -> Result<(), String> {
        let known = |u: &String| {
            ["turn:", "turns:", "stun:"]
                .iter()
                .any(|p| u.starts_with(p))
        };
        if urls.is_empty() || !urls.iter().all(known) {
            return Err("each server needs urls starting with turn:, turns: or stun:".into());
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_key_at_fault() {
        let secret = "s".repeat(rules::MIN_API_SECRET_LEN);
        assert_eq!(SfuConfig::local("k", &secret).validate(), Ok(()));
        let short = SfuConfig::local("k", &secret[1..]).validate().unwrap_err();
        assert_eq!(short.key, "api_secret");
        assert_eq!(
            short.to_string(),
            "sfu.api_secret: must be at least 32 characters"
        );
        let mut wildcard = SfuConfig::local("k", &secret);
        wildcard.bind_ip = "::".parse().expect("ip");
        assert_eq!(wildcard.validate().unwrap_err().key, "bind_ip");
        let mut ports = SfuConfig::local("k", &secret);
        ports.udp_port_max = 50_000;
        assert_eq!(ports.validate().unwrap_err().key, "udp_port_min");
        let mut stun = SfuConfig::local("k", &secret);
        stun.ice_servers = vec![IceServer {
            urls: vec!["http://x".into()],
            username: String::new(),
            credential: String::new(),
        }];
        assert_eq!(stun.validate().unwrap_err().key, "ice_servers");
    }
}
