//! Salon's configuration: one TOML file, read once at start-up into the
//! [`Config`] every other module trusts.
//!
//! The flow, one file a step: `raw.rs` parses the file as written (serde, the
//! default of every key written once, unknown keys refused), `validate.rs`
//! checks every value and builds [`Config`] (each error names its key),
//! `secret.rs` holds tokens and keys so they are never printed, and
//! `registration.rs` writes and reads the appservice registration
//! (`appservice.yaml`) the tokens come from. Every key is documented in
//! `config.example.toml`. This module holds the validated types and the entry
//! points: [`Config::load`], [`Config::load_without_tokens`], [`Config::from_toml`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ruma::{OwnedServerName, OwnedUserId, UserId};
use url::Url;

mod raw;
pub mod registration;
mod secret;
#[cfg(test)]
mod tests;
mod validate;

pub use secret::Secret;

/// A configuration that could not be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// The validated configuration the rest of the bridge trusts.
#[derive(Debug, Clone)]
pub struct Config {
    pub homeserver: HomeserverConfig,
    pub appservice: AppserviceConfig,
    pub web: WebConfig,
    pub bot: BotConfig,
    pub permissions: Permissions,
    pub calls: CallsConfig,
    pub sfu: SfuSettings,
    pub transcription: TranscriptionConfig,
    pub minutes: MinutesConfig,
    pub storage: StorageConfig,
    pub logging: LoggingConfig,
    pub e2ee: E2eeConfig,
}

#[derive(Debug, Clone)]
pub struct HomeserverConfig {
    pub url: Url,
    pub server_name: OwnedServerName,
    /// The homeserver as browsers reach it (the call page logs in there).
    pub public_url: Url,
}

/// The embedded SFU's settings, checked by the SFU's own rules
/// (`salon_sfu::config::rules`), so `salon_sfu::Sfu::new` accepts them.
#[derive(Debug, Clone)]
pub struct SfuSettings {
    pub backend: SfuBackend,
    /// Where the embedded SFU binds media; with LiveKit, where the
    /// transcriber's own media connections bind.
    pub bind_ip: IpAddr,
    pub udp_port_min: u16,
    pub udp_port_max: u16,
    pub public_ip: Option<IpAddr>,
    pub api_key: String,
    /// `None`: generated on first start and kept in the store (embedded
    /// only: a LiveKit backend requires it).
    pub api_secret: Option<Secret>,
    pub max_participants: usize,
    pub max_bitrate_bps: u64,
    pub turn: Vec<TurnServer>,
}

/// Who forwards media (`[sfu] backend`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuBackend {
    /// The SFU embedded in this process (the default).
    Embedded,
    /// A LiveKit server cluster: clients get `url`, Salon calls its server API
    /// at the same host over http(s), both with `api_key` and `api_secret`.
    LiveKit {
        /// As clients are given it: `wss://…` (or `ws://`).
        url: Url,
    },
}

#[derive(Debug, Clone)]
pub struct TurnServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: Secret,
}

#[derive(Debug, Clone)]
pub struct AppserviceConfig {
    pub id: String,
    pub bind: SocketAddr,
    /// How the homeserver reaches the bridge (written into the registration).
    pub url: Url,
    pub bot_localpart: String,
    pub tokens: Option<Tokens>,
}

/// The two appservice tokens and the sender's localpart.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub as_token: Secret,
    pub hs_token: Secret,
    pub sender_localpart: String,
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub public_url: Url,
    pub bind: SocketAddr,
    /// The call page's folder (`call.html`, `dist/`).
    pub assets: PathBuf,
    /// Reverse proxies trusted to name the client in `X-Forwarded-For`
    /// (for the per-client rate limits of the join and token APIs).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The focus API's base path (`/livekit/jwt`): no trailing `/`.
    pub focus_path: String,
    /// Join and token attempts allowed per client address per minute.
    pub attempts_per_minute: u32,
}

#[derive(Debug, Clone)]
pub struct BotConfig {
    pub displayname: String,
    pub autojoin_servers: Vec<OwnedServerName>,
    pub autojoin_users: Vec<OwnedUserId>,
}

/// Who may do what, by power level.
#[derive(Debug, Clone, Copy)]
pub struct Permissions {
    pub start_power_level: i64,
    pub stop_power_level: i64,
    /// Needed to turn transcription on or off, and to change the room's setting.
    pub transcribe_power_level: i64,
    /// Needed to mute or remove others, and to lock the call.
    pub moderate_power_level: i64,
}

/// Which speech engine transcribes calls.
#[derive(Debug, Clone)]
pub enum SpeechEngineConfig {
    /// Whisper in-process, from a model folder made by `scripts/install-models.sh`.
    Builtin { model: PathBuf },
    /// An OpenAI-compatible `/v1/audio/transcriptions` server.
    Remote {
        url: Url,
        model: String,
        /// Read from the environment variable the config names.
        api_key: Option<Secret>,
        timeout: Duration,
    },
}

/// Live transcription.
#[derive(Debug, Clone)]
pub struct TranscriptionConfig {
    /// Whether calls on this server may be transcribed at all.
    pub enabled: bool,
    pub engine: SpeechEngineConfig,
    /// `auto`, or a language code (`fr`, `en`, …).
    pub language: String,
    /// Engine workers (each uses one core while transcribing).
    pub workers: usize,
    /// Utterances waiting for a worker before the oldest are dropped.
    pub queue: usize,
    /// Transcribe the open utterance now and then while someone speaks.
    pub partials: bool,
    pub max_utterance: Duration,
}

/// Which summariser writes the minutes.
#[derive(Debug, Clone)]
pub enum SummaryEngineConfig {
    Builtin,
    Llm {
        url: Url,
        model: String,
        api_key: Option<Secret>,
        timeout: Duration,
    },
}

/// Minutes posted when a call ends.
#[derive(Debug, Clone)]
pub struct MinutesConfig {
    pub enabled: bool,
    pub engine: SummaryEngineConfig,
    /// Wait this long after a call ends before writing its minutes.
    pub post_delay: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct CallsConfig {
    pub empty_grace: Duration,
    pub unjoined_timeout: Duration,
    /// A guest link expires after this long (or when its call ends).
    pub guest_link_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub path: PathBuf,
}

/// End-to-end encryption for the bot (see `crypto.rs`).
#[derive(Debug, Clone, Copy)]
pub struct E2eeConfig {
    /// The bot keeps a device with a crypto store and works in encrypted rooms.
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct LoggingConfig {
    pub level: String,
    pub json: bool,
}

impl Config {
    /// Reads and validates the file; relative paths are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, true)
    }

    /// Like [`Config::load`] but leaves the tokens unread: `generate-registration`
    /// runs before they exist, often with stdout redirected onto the very file.
    pub fn load_without_tokens(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, false)
    }

    fn load_with(path: &Path, with_tokens: bool) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, path, base, with_tokens)
    }

    /// Parses the TOML text; `base` is the folder relative paths start from.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        Self::parse(text, Path::new(""), base, true)
    }

    fn parse(text: &str, path: &Path, base: &Path, with_tokens: bool) -> Result<Self, ConfigError> {
        let raw = raw::parse(text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        validate::validate(raw, base, with_tokens)
    }

    /// Parses and checks `text` without reading token files: the entry of
    /// the `config` fuzz target.
    #[cfg(feature = "fuzzing")]
    pub fn check_text(text: &str, base: &Path) -> Result<Self, ConfigError> {
        Self::parse(text, Path::new(""), base, false)
    }

    /// The bot's full user id, e.g. `@visio:example.org`.
    pub fn bot_user_id(&self) -> OwnedUserId {
        UserId::parse(format!(
            "@{}:{}",
            self.appservice.bot_localpart, self.homeserver.server_name
        ))
        .expect("validated at load time")
    }

    /// The tokens, or an error telling the admin how to provide them.
    pub fn tokens(&self) -> Result<&Tokens, ConfigError> {
        self.appservice.tokens.as_ref().ok_or_else(|| {
            invalid(
                "appservice.registration",
                "no tokens configured: run `salon generate-registration -c CONFIG > appservice.yaml` \
                 and set `registration = \"appservice.yaml\"` (or set as_token/hs_token)",
            )
        })
    }

    /// The SFU's WebSocket base URL as browsers reach it (`/rtc` is appended
    /// by the client): the public URL with `ws`/`wss`.
    pub fn sfu_ws_url(&self) -> String {
        let mut url = self.web.public_url.clone();
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        let _ = url.set_scheme(scheme);
        url.as_str().trim_end_matches('/').to_owned()
    }

    /// The join link for a call.
    pub fn call_url(&self, call_id: &str) -> String {
        let base = self.web.public_url.as_str().trim_end_matches('/');
        format!("{base}/call/{call_id}")
    }

    /// A guest link: the page that lets someone without a Matrix account
    /// knock at a call's lobby.
    pub fn guest_url(&self, token: &str) -> String {
        let base = self.web.public_url.as_str().trim_end_matches('/');
        format!("{base}/guest/{token}")
    }

    /// The public URL of the focus API (Element Call's token service):
    /// what `matrix_rtc.transports` must name exactly, and what the call
    /// memberships Salon writes name as their transport.
    pub fn focus_url(&self) -> String {
        let base = self.web.public_url.as_str().trim_end_matches('/');
        format!("{base}{}", self.web.focus_path)
    }
}
