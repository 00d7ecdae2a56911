//! The config file as the admin wrote it: one struct per TOML section, and the
//! default of every key, each written once.
//!
//! In the flow: `Config::load` reads the text, [`parse`] turns it into a
//! [`RawConfig`] (refusing unknown keys and naming the key at fault), and
//! `validate.rs` checks it and builds the `Config` the bridge trusts. Nothing
//! here checks values beyond their TOML type.

use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;

/// Declares a section whose keys all have a default. The default stands once,
/// beside its key; serde fills a missing key from the `Default` made here.
macro_rules! section {
    ($(#[$attr:meta])* $name:ident {
        $($(#[$field_attr:meta])* $field:ident: $ty:ty = $default:expr,)*
    }) => {
        $(#[$attr])*
        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub(super) struct $name {
            $($(#[$field_attr])* pub(super) $field: $ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }
    };
}

/// The whole file. `[homeserver]`, `[appservice]` and `[web]` must be there.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) homeserver: RawHomeserver,
    pub(super) appservice: RawAppservice,
    pub(super) web: RawWeb,
    #[serde(default)]
    pub(super) bot: RawBot,
    #[serde(default)]
    pub(super) permissions: RawPermissions,
    #[serde(default)]
    pub(super) calls: RawCalls,
    #[serde(default)]
    pub(super) sfu: RawSfu,
    #[serde(default)]
    pub(super) transcription: RawTranscription,
    #[serde(default)]
    pub(super) minutes: RawMinutes,
    #[serde(default)]
    pub(super) storage: RawStorage,
    #[serde(default)]
    pub(super) logging: RawLogging,
    #[serde(default)]
    pub(super) e2ee: RawE2ee,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHomeserver {
    pub(super) url: String,
    pub(super) server_name: String,
    pub(super) public_url: Option<String>,
}

section! {
    RawAppservice {
        id: String = "salon".into(),
        bind: String = "127.0.0.1:9009".into(),
        url: Option<String> = None,
        bot_localpart: String = "visio".into(),
        registration: Option<PathBuf> = None,
        as_token: Option<Secret> = None,
        hs_token: Option<Secret> = None,
        as_token_file: Option<PathBuf> = None,
        hs_token_file: Option<PathBuf> = None,
        sender_localpart: Option<String> = None,
    }
}

/// `public_url` has no default, so this section is written out by hand.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub(super) public_url: String,
    #[serde(default = "default_web_bind")]
    pub(super) bind: String,
    #[serde(default = "default_web_assets")]
    pub(super) assets: PathBuf,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    #[serde(default = "default_trusted_proxies")]
    pub(super) trusted_proxies: Vec<std::net::IpAddr>,
    /// Where Element Call's token API (the MatrixRTC focus) is served.
    #[serde(default = "default_focus_path")]
    pub(super) focus_path: String,
    /// Join and token attempts allowed per client address per minute.
    #[serde(default = "default_attempts_per_minute")]
    pub(super) attempts_per_minute: u32,
}

fn default_focus_path() -> String {
    "/livekit/jwt".to_owned()
}

fn default_attempts_per_minute() -> u32 {
    20
}

fn default_trusted_proxies() -> Vec<std::net::IpAddr> {
    vec![
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ]
}

fn default_web_bind() -> String {
    "127.0.0.1:8090".into()
}

fn default_web_assets() -> PathBuf {
    PathBuf::from("web")
}

section! {
    RawBot {
        displayname: String = "Visio".into(),
        autojoin_servers: Vec<String> = Vec::new(),
        autojoin_users: Vec<String> = Vec::new(),
    }
}

section! {
    RawPermissions {
        start_power_level: i64 = 0,
        stop_power_level: i64 = 50,
        transcribe_power_level: i64 = 50,
        moderate_power_level: i64 = 50,
    }
}

section! {
    RawCalls {
        empty_grace_seconds: u64 = 120,
        unjoined_timeout_minutes: u64 = 60,
        guest_link_minutes: u64 = 240,
    }
}

/// `[sfu] backend`: who forwards media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SfuBackendKind {
    /// The SFU in this process.
    Embedded,
    /// A LiveKit server cluster (`url`, `api_key`, the secret).
    LiveKit,
}

section! {
    RawSfu {
        backend: SfuBackendKind = SfuBackendKind::Embedded,
        /// The LiveKit cluster's URL (`backend = "livekit"`).
        url: Option<String> = None,
        bind_ip: String = "127.0.0.1".into(),
        udp_port_min: u16 = 0,
        udp_port_max: u16 = 0,
        public_ip: Option<String> = None,
        api_key: String = "salon".into(),
        api_secret: Option<Secret> = None,
        api_secret_file: Option<PathBuf> = None,
        max_participants: usize = 50,
        max_bitrate_kbps: u64 = 6000,
        turn: Vec<RawTurn> = Vec::new(),
    }
}

/// One `[[sfu.turn]]` block.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTurn {
    pub(super) urls: Vec<String>,
    #[serde(default)]
    pub(super) username: String,
    #[serde(default)]
    pub(super) credential: Option<Secret>,
}

/// `[transcription] engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SpeechEngineKind {
    Builtin,
    Remote,
}

section! {
    RawTranscription {
        enabled: bool = true,
        engine: SpeechEngineKind = SpeechEngineKind::Builtin,
        model: PathBuf = PathBuf::from("models/base"),
        language: String = "auto".into(),
        workers: usize = 1,
        queue: usize = 64,
        partials: bool = true,
        max_utterance_seconds: u64 = 15,
        remote_url: Option<String> = None,
        remote_model: String = "whisper-1".into(),
        remote_api_key_env: Option<String> = None,
        remote_timeout_seconds: u64 = 30,
    }
}

/// `[minutes] engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SummaryEngineKind {
    Builtin,
    Llm,
}

section! {
    RawMinutes {
        enabled: bool = true,
        engine: SummaryEngineKind = SummaryEngineKind::Builtin,
        llm_url: Option<String> = None,
        llm_model: String = "default".into(),
        llm_api_key_env: Option<String> = None,
        llm_timeout_seconds: u64 = 60,
        post_delay_seconds: u64 = 0,
    }
}

section! {
    RawStorage {
        path: PathBuf = PathBuf::from("data"),
    }
}

section! {
    RawLogging {
        level: String = "info".into(),
        json: bool = false,
    }
}

section! {
    RawE2ee {
        enabled: bool = true,
    }
}

/// Parses the TOML text. A refusal names the key at fault and its line, e.g.
/// ``config key `transcription.engine` (line 9): unknown variant `cloud`…``.
pub(super) fn parse(text: &str) -> Result<RawConfig, String> {
    toml::from_str(text).map_err(|e| {
        let Some(span) = e.span() else {
            return e.to_string();
        };
        let line = 1 + text[..span.start.min(text.len())].matches('\n').count();
        let message = e.message().trim_end();
        match key_at(text, span.start) {
            Some(key) => format!("config key `{key}` (line {line}): {message}"),
            None => format!("line {line}: {message}"),
        }
    })
}

/// The dotted key written on the line holding `offset`: the table header
/// above it and the key before its `=` (`transcription.engine`). `None` when
/// the line holds no `key =` (a header, a value continued from above).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c);
    if key.is_empty() || !key.chars().all(bare) {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .and_then(|header| header.split(']').next())
        .map(|header| header.trim_start_matches('[').trim());
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_owned(),
    })
}
