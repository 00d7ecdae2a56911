//! Salon's configuration: one TOML file, parsed once at start-up.
//!
//! Every key is documented in `config.example.toml`. Unknown keys are refused
//! (a typo should not silently fall back to a default), and every error names
//! the key and the reason, so `salon run` fails early and plainly. Secrets are
//! held in [`Secret`], whose `Debug` never prints the value.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ruma::{OwnedServerName, OwnedUserId, ServerName, UserId};
use serde::Deserialize;
use url::Url;

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

/// A secret string (token, key). Its `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The file as written by the admin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    homeserver: RawHomeserver,
    appservice: RawAppservice,
    web: RawWeb,
    #[serde(default)]
    bot: RawBot,
    #[serde(default)]
    permissions: RawPermissions,
    #[serde(default)]
    calls: RawCalls,
    #[serde(default)]
    sfu: RawSfu,
    #[serde(default)]
    transcription: RawTranscription,
    #[serde(default)]
    minutes: RawMinutes,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    logging: RawLogging,
    #[serde(default)]
    e2ee: RawE2ee,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSfu {
    #[serde(default = "default_sfu_bind_ip")]
    bind_ip: String,
    #[serde(default)]
    udp_port_min: u16,
    #[serde(default)]
    udp_port_max: u16,
    public_ip: Option<String>,
    #[serde(default = "default_sfu_api_key")]
    api_key: String,
    api_secret: Option<String>,
    api_secret_file: Option<PathBuf>,
    #[serde(default = "default_max_participants")]
    max_participants: usize,
    #[serde(default = "default_max_bitrate_kbps")]
    max_bitrate_kbps: u64,
    #[serde(default)]
    turn: Vec<RawTurn>,
}

impl Default for RawSfu {
    fn default() -> Self {
        Self {
            bind_ip: default_sfu_bind_ip(),
            udp_port_min: 0,
            udp_port_max: 0,
            public_ip: None,
            api_key: default_sfu_api_key(),
            api_secret: None,
            api_secret_file: None,
            max_participants: default_max_participants(),
            max_bitrate_kbps: default_max_bitrate_kbps(),
            turn: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTranscription {
    enabled: bool,
    engine: String,
    model: PathBuf,
    language: String,
    workers: usize,
    queue: usize,
    partials: bool,
    max_utterance_seconds: u64,
    remote_url: Option<String>,
    remote_model: String,
    remote_api_key_env: Option<String>,
    remote_timeout_seconds: u64,
}

impl Default for RawTranscription {
    fn default() -> Self {
        Self {
            enabled: true,
            engine: "builtin".into(),
            model: PathBuf::from("models/base"),
            language: "auto".into(),
            workers: 1,
            queue: 64,
            partials: true,
            max_utterance_seconds: 15,
            remote_url: None,
            remote_model: "whisper-1".into(),
            remote_api_key_env: None,
            remote_timeout_seconds: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMinutes {
    enabled: bool,
    engine: String,
    llm_url: Option<String>,
    llm_model: String,
    llm_api_key_env: Option<String>,
    llm_timeout_seconds: u64,
    post_delay_seconds: u64,
}

impl Default for RawMinutes {
    fn default() -> Self {
        Self {
            enabled: true,
            engine: "builtin".into(),
            llm_url: None,
            llm_model: "default".into(),
            llm_api_key_env: None,
            llm_timeout_seconds: 60,
            post_delay_seconds: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTurn {
    urls: Vec<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    credential: String,
}

fn default_sfu_bind_ip() -> String {
    "127.0.0.1".into()
}
fn default_sfu_api_key() -> String {
    "salon".into()
}
fn default_max_participants() -> usize {
    50
}
fn default_max_bitrate_kbps() -> u64 {
    6000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHomeserver {
    url: String,
    server_name: String,
    public_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppservice {
    #[serde(default = "default_id")]
    id: String,
    #[serde(default = "default_as_bind")]
    bind: String,
    url: Option<String>,
    #[serde(default = "default_bot_localpart")]
    bot_localpart: String,
    registration: Option<PathBuf>,
    as_token: Option<String>,
    hs_token: Option<String>,
    as_token_file: Option<PathBuf>,
    hs_token_file: Option<PathBuf>,
    sender_localpart: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    public_url: String,
    #[serde(default = "default_web_bind")]
    bind: String,
    #[serde(default = "default_web_assets")]
    assets: PathBuf,
}

fn default_web_assets() -> PathBuf {
    PathBuf::from("web")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBot {
    #[serde(default = "default_displayname")]
    displayname: String,
    #[serde(default)]
    autojoin_servers: Vec<String>,
    #[serde(default)]
    autojoin_users: Vec<String>,
}

impl Default for RawBot {
    fn default() -> Self {
        Self {
            displayname: default_displayname(),
            autojoin_servers: Vec::new(),
            autojoin_users: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPermissions {
    #[serde(default)]
    start_power_level: i64,
    #[serde(default = "default_moderator")]
    stop_power_level: i64,
    #[serde(default = "default_moderator")]
    transcribe_power_level: i64,
}

impl Default for RawPermissions {
    fn default() -> Self {
        Self {
            start_power_level: 0,
            stop_power_level: default_moderator(),
            transcribe_power_level: default_moderator(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalls {
    #[serde(default = "default_grace")]
    empty_grace_seconds: u64,
    #[serde(default = "default_unjoined")]
    unjoined_timeout_minutes: u64,
}

impl Default for RawCalls {
    fn default() -> Self {
        Self {
            empty_grace_seconds: default_grace(),
            unjoined_timeout_minutes: default_unjoined(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    #[serde(default = "default_storage")]
    path: PathBuf,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            path: default_storage(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawE2ee {
    #[serde(default = "default_true")]
    enabled: bool,
}

impl Default for RawE2ee {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    #[serde(default = "default_log_level")]
    level: String,
    #[serde(default)]
    json: bool,
}

impl Default for RawLogging {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            json: false,
        }
    }
}

fn default_id() -> String {
    "salon".into()
}
fn default_as_bind() -> String {
    "127.0.0.1:9009".into()
}
fn default_web_bind() -> String {
    "127.0.0.1:8090".into()
}
fn default_bot_localpart() -> String {
    "visio".into()
}
fn default_displayname() -> String {
    "Visio".into()
}
fn default_moderator() -> i64 {
    50
}
fn default_grace() -> u64 {
    120
}
fn default_unjoined() -> u64 {
    60
}
fn default_storage() -> PathBuf {
    PathBuf::from("data")
}
fn default_log_level() -> String {
    "info".into()
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

/// The embedded SFU's settings.
#[derive(Debug, Clone)]
pub struct SfuSettings {
    pub bind_ip: std::net::IpAddr,
    pub udp_port_min: u16,
    pub udp_port_max: u16,
    pub public_ip: Option<std::net::IpAddr>,
    pub api_key: String,
    /// `None`: generated on first start and kept in the store.
    pub api_secret: Option<Secret>,
    pub max_participants: usize,
    pub max_bitrate_bps: u64,
    pub turn: Vec<TurnServer>,
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
        timeout: std::time::Duration,
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
    pub max_utterance: std::time::Duration,
}

/// Which summariser writes the minutes.
#[derive(Debug, Clone)]
pub enum SummaryEngineConfig {
    Builtin,
    Llm {
        url: Url,
        model: String,
        api_key: Option<Secret>,
        timeout: std::time::Duration,
    },
}

/// Minutes posted when a call ends.
#[derive(Debug, Clone)]
pub struct MinutesConfig {
    pub enabled: bool,
    pub engine: SummaryEngineConfig,
    /// Wait this long after a call ends before writing its minutes.
    pub post_delay: std::time::Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct CallsConfig {
    pub empty_grace: std::time::Duration,
    pub unjoined_timeout: std::time::Duration,
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
        Self::parse(&text, base, with_tokens).map_err(|err| match err {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses the TOML text; `base` is the folder relative paths start from.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        Self::parse(text, base, true)
    }

    fn parse(text: &str, base: &Path, with_tokens: bool) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        Self::validate(raw, base, with_tokens)
    }

    fn validate(raw: RawConfig, base: &Path, with_tokens: bool) -> Result<Self, ConfigError> {
        let hs_url = parse_http_url("homeserver.url", &raw.homeserver.url)?;
        let hs_public_url = match &raw.homeserver.public_url {
            Some(url) => parse_http_url("homeserver.public_url", url)?,
            None => hs_url.clone(),
        };
        let server_name = ServerName::parse(&raw.homeserver.server_name)
            .map_err(|e| invalid("homeserver.server_name", format!("not a server name: {e}")))?;

        if raw.appservice.id.trim().is_empty() {
            return Err(invalid("appservice.id", "must not be empty"));
        }
        let as_bind: SocketAddr = raw.appservice.bind.parse().map_err(|e| {
            invalid(
                "appservice.bind",
                format!("expected an address like 127.0.0.1:9009: {e}"),
            )
        })?;
        let as_url = match &raw.appservice.url {
            Some(url) => parse_http_url("appservice.url", url)?,
            None => Url::parse(&format!("http://{as_bind}"))
                .map_err(|e| invalid("appservice.bind", e.to_string()))?,
        };
        validate_localpart("appservice.bot_localpart", &raw.appservice.bot_localpart)?;
        UserId::parse(format!("@{}:{}", raw.appservice.bot_localpart, server_name))
            .map_err(|e| invalid("appservice.bot_localpart", e.to_string()))?;
        let tokens = if with_tokens {
            resolve_tokens(&raw.appservice, base)?
        } else {
            None
        };

        let public_url = parse_http_url("web.public_url", &raw.web.public_url)?;
        let web_bind: SocketAddr = raw.web.bind.parse().map_err(|e| {
            invalid(
                "web.bind",
                format!("expected an address like 127.0.0.1:8090: {e}"),
            )
        })?;

        let autojoin_servers = raw
            .bot
            .autojoin_servers
            .iter()
            .map(|s| {
                ServerName::parse(s)
                    .map_err(|e| invalid("bot.autojoin_servers", format!("`{s}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let autojoin_users = raw
            .bot
            .autojoin_users
            .iter()
            .map(|s| {
                UserId::parse(s).map_err(|e| invalid("bot.autojoin_users", format!("`{s}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        if raw.calls.empty_grace_seconds > 24 * 3600 {
            return Err(invalid(
                "calls.empty_grace_seconds",
                "must be at most one day (86400)",
            ));
        }
        if raw.calls.unjoined_timeout_minutes == 0 {
            return Err(invalid(
                "calls.unjoined_timeout_minutes",
                "must be at least 1",
            ));
        }
        let sfu = validate_sfu(&raw.sfu, base)?;
        let transcription = validate_transcription(&raw.transcription, base)?;
        let minutes = validate_minutes(&raw.minutes)?;
        if raw.storage.path.as_os_str().is_empty() {
            return Err(invalid("storage.path", "must not be empty"));
        }
        if tracing_subscriber::EnvFilter::try_new(&raw.logging.level).is_err() {
            return Err(invalid(
                "logging.level",
                format!(
                    "`{}` is not a level or filter (try info, debug, salon=debug)",
                    raw.logging.level
                ),
            ));
        }

        Ok(Config {
            homeserver: HomeserverConfig {
                url: hs_url,
                server_name,
                public_url: hs_public_url,
            },
            appservice: AppserviceConfig {
                id: raw.appservice.id,
                bind: as_bind,
                url: as_url,
                bot_localpart: raw.appservice.bot_localpart,
                tokens,
            },
            web: WebConfig {
                public_url,
                bind: web_bind,
                assets: base.join(raw.web.assets),
            },
            bot: BotConfig {
                displayname: raw.bot.displayname,
                autojoin_servers,
                autojoin_users,
            },
            permissions: Permissions {
                start_power_level: raw.permissions.start_power_level,
                stop_power_level: raw.permissions.stop_power_level,
                transcribe_power_level: raw.permissions.transcribe_power_level,
            },
            calls: CallsConfig {
                empty_grace: std::time::Duration::from_secs(raw.calls.empty_grace_seconds),
                unjoined_timeout: std::time::Duration::from_secs(
                    raw.calls.unjoined_timeout_minutes * 60,
                ),
            },
            sfu,
            transcription,
            minutes,
            storage: StorageConfig {
                path: base.join(raw.storage.path),
            },
            logging: LoggingConfig {
                level: raw.logging.level,
                json: raw.logging.json,
            },
            e2ee: E2eeConfig {
                enabled: raw.e2ee.enabled,
            },
        })
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
}

/// Reads a secret from the environment variable `name`, if one is named.
fn secret_from_env(key: &'static str, name: Option<&str>) -> Result<Option<Secret>, ConfigError> {
    let Some(name) = name else {
        return Ok(None);
    };
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(Some(Secret::new(value.trim()))),
        _ => Err(invalid(
            key,
            format!("the environment variable `{name}` is not set"),
        )),
    }
}

fn validate_transcription(
    raw: &RawTranscription,
    base: &Path,
) -> Result<TranscriptionConfig, ConfigError> {
    let engine = match raw.engine.as_str() {
        "builtin" => SpeechEngineConfig::Builtin {
            model: base.join(&raw.model),
        },
        "remote" => {
            let url = raw.remote_url.as_deref().ok_or_else(|| {
                invalid(
                    "transcription.remote_url",
                    "engine = \"remote\" needs the server's base URL",
                )
            })?;
            if raw.remote_timeout_seconds == 0 {
                return Err(invalid(
                    "transcription.remote_timeout_seconds",
                    "must be at least 1",
                ));
            }
            SpeechEngineConfig::Remote {
                url: parse_http_url("transcription.remote_url", url)?,
                model: raw.remote_model.clone(),
                api_key: secret_from_env(
                    "transcription.remote_api_key_env",
                    raw.remote_api_key_env.as_deref(),
                )?,
                timeout: std::time::Duration::from_secs(raw.remote_timeout_seconds),
            }
        }
        other => {
            return Err(invalid(
                "transcription.engine",
                format!("`{other}`: expected \"builtin\" or \"remote\""),
            ));
        }
    };
    let language = raw.language.trim().to_ascii_lowercase();
    if language != "auto"
        && !(language.len() == 2 && language.chars().all(|c| c.is_ascii_lowercase()))
    {
        return Err(invalid(
            "transcription.language",
            format!(
                "`{}`: expected auto or a two-letter code like fr",
                raw.language
            ),
        ));
    }
    if !(1..=16).contains(&raw.workers) {
        return Err(invalid("transcription.workers", "must be between 1 and 16"));
    }
    if !(4..=10_000).contains(&raw.queue) {
        return Err(invalid(
            "transcription.queue",
            "must be between 4 and 10000",
        ));
    }
    if !(2..=30).contains(&raw.max_utterance_seconds) {
        return Err(invalid(
            "transcription.max_utterance_seconds",
            "must be between 2 and 30 (Whisper reads 30 s at a time)",
        ));
    }
    Ok(TranscriptionConfig {
        enabled: raw.enabled,
        engine,
        language,
        workers: raw.workers,
        queue: raw.queue,
        partials: raw.partials,
        max_utterance: std::time::Duration::from_secs(raw.max_utterance_seconds),
    })
}

fn validate_minutes(raw: &RawMinutes) -> Result<MinutesConfig, ConfigError> {
    let engine = match raw.engine.as_str() {
        "builtin" => SummaryEngineConfig::Builtin,
        "llm" => {
            let url = raw.llm_url.as_deref().ok_or_else(|| {
                invalid(
                    "minutes.llm_url",
                    "engine = \"llm\" needs the OpenAI-compatible base URL (…/v1)",
                )
            })?;
            if raw.llm_timeout_seconds == 0 {
                return Err(invalid("minutes.llm_timeout_seconds", "must be at least 1"));
            }
            SummaryEngineConfig::Llm {
                url: parse_http_url("minutes.llm_url", url)?,
                model: raw.llm_model.clone(),
                api_key: secret_from_env(
                    "minutes.llm_api_key_env",
                    raw.llm_api_key_env.as_deref(),
                )?,
                timeout: std::time::Duration::from_secs(raw.llm_timeout_seconds),
            }
        }
        other => {
            return Err(invalid(
                "minutes.engine",
                format!("`{other}`: expected \"builtin\" or \"llm\""),
            ));
        }
    };
    if raw.post_delay_seconds > 3600 {
        return Err(invalid(
            "minutes.post_delay_seconds",
            "must be at most one hour (3600)",
        ));
    }
    Ok(MinutesConfig {
        enabled: raw.enabled,
        engine,
        post_delay: std::time::Duration::from_secs(raw.post_delay_seconds),
    })
}

fn validate_sfu(raw: &RawSfu, base: &Path) -> Result<SfuSettings, ConfigError> {
    let bind_ip = raw.bind_ip.parse().map_err(|e| {
        invalid(
            "sfu.bind_ip",
            format!(
                "`{}` is not an IP address: {e} (0.0.0.0 is refused: bind the interface's address)",
                raw.bind_ip
            ),
        )
    })?;
    if let std::net::IpAddr::V4(v4) = bind_ip
        && v4.is_unspecified()
    {
        return Err(invalid(
            "sfu.bind_ip",
            "0.0.0.0 skips loopback in the WebRTC stack: bind the interface's address",
        ));
    }
    let public_ip = raw
        .public_ip
        .as_deref()
        .map(|ip| {
            ip.parse()
                .map_err(|e| invalid("sfu.public_ip", format!("`{ip}` is not an IP address: {e}")))
        })
        .transpose()?;
    if (raw.udp_port_min == 0) != (raw.udp_port_max == 0) || raw.udp_port_min > raw.udp_port_max {
        return Err(invalid(
            "sfu.udp_port_min",
            "set both udp_port_min and udp_port_max (min <= max), or neither for ephemeral ports",
        ));
    }
    if raw.api_key.is_empty() {
        return Err(invalid("sfu.api_key", "must not be empty"));
    }
    let api_secret = match (&raw.api_secret, &raw.api_secret_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "sfu.api_secret",
                "set api_secret or api_secret_file, not both",
            ));
        }
        (Some(secret), None) => Some(secret.clone()),
        (None, Some(path)) => Some(read_secret_file("sfu.api_secret_file", &base.join(path))?),
        (None, None) => None,
    };
    if let Some(secret) = &api_secret
        && secret.len() < 32
    {
        return Err(invalid("sfu.api_secret", "must be at least 32 characters"));
    }
    if raw.max_participants == 0 {
        return Err(invalid("sfu.max_participants", "must be at least 1"));
    }
    if raw.max_bitrate_kbps < 64 {
        return Err(invalid("sfu.max_bitrate_kbps", "must be at least 64"));
    }
    let turn = raw
        .turn
        .iter()
        .map(|t| {
            if t.urls.is_empty()
                || t.urls.iter().any(|u| {
                    !(u.starts_with("turn:") || u.starts_with("turns:") || u.starts_with("stun:"))
                })
            {
                return Err(invalid(
                    "sfu.turn.urls",
                    "each server needs urls starting with turn:, turns: or stun:",
                ));
            }
            Ok(TurnServer {
                urls: t.urls.clone(),
                username: t.username.clone(),
                credential: Secret::new(t.credential.clone()),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SfuSettings {
        bind_ip,
        udp_port_min: raw.udp_port_min,
        udp_port_max: raw.udp_port_max,
        public_ip,
        api_key: raw.api_key.clone(),
        api_secret: api_secret.map(Secret::new),
        max_participants: raw.max_participants,
        max_bitrate_bps: raw.max_bitrate_kbps * 1000,
        turn,
    })
}

fn parse_http_url(key: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(value).map_err(|e| invalid(key, format!("`{value}` is not a URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(
            key,
            format!("`{value}` must start with http:// or https://"),
        ));
    }
    if url.host_str().is_none() {
        return Err(invalid(key, format!("`{value}` has no host")));
    }
    Ok(url)
}

fn validate_localpart(key: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-/+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{value}` is not a valid localpart (use a-z, 0-9, ._=-/+)"),
        ))
    }
}

/// The registration file as Synapse reads it; only the fields Salon needs.
#[derive(Debug, Deserialize)]
struct RegistrationFile {
    as_token: String,
    hs_token: String,
    sender_localpart: String,
}

fn read_secret_file(key: &'static str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let value = text.trim().to_owned();
    if value.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(value)
}

fn resolve_tokens(raw: &RawAppservice, base: &Path) -> Result<Option<Tokens>, ConfigError> {
    let inline = raw.as_token.is_some() || raw.hs_token.is_some();
    let files = raw.as_token_file.is_some() || raw.hs_token_file.is_some();
    let registration = raw.registration.is_some();
    if [inline, files, registration].iter().filter(|b| **b).count() > 1 {
        return Err(invalid(
            "appservice.registration",
            "set tokens one way only: `registration`, or `as_token`/`hs_token`, or `as_token_file`/`hs_token_file`",
        ));
    }
    let (as_token, hs_token, sender) = if let Some(path) = &raw.registration {
        let path = base.join(path);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            invalid(
                "appservice.registration",
                format!(
                    "cannot read {}: {e} (create it with `salon generate-registration`)",
                    path.display()
                ),
            )
        })?;
        let reg: RegistrationFile = serde_yaml::from_str(&text).map_err(|e| {
            invalid(
                "appservice.registration",
                format!("{} is not a registration file: {e}", path.display()),
            )
        })?;
        (reg.as_token, reg.hs_token, Some(reg.sender_localpart))
    } else if inline {
        (
            raw.as_token.clone().ok_or_else(|| {
                invalid("appservice.as_token", "hs_token is set but as_token is not")
            })?,
            raw.hs_token.clone().ok_or_else(|| {
                invalid("appservice.hs_token", "as_token is set but hs_token is not")
            })?,
            raw.sender_localpart.clone(),
        )
    } else if files {
        let as_path = raw.as_token_file.as_ref().ok_or_else(|| {
            invalid(
                "appservice.as_token_file",
                "hs_token_file is set but as_token_file is not",
            )
        })?;
        let hs_path = raw.hs_token_file.as_ref().ok_or_else(|| {
            invalid(
                "appservice.hs_token_file",
                "as_token_file is set but hs_token_file is not",
            )
        })?;
        (
            read_secret_file("appservice.as_token_file", &base.join(as_path))?,
            read_secret_file("appservice.hs_token_file", &base.join(hs_path))?,
            raw.sender_localpart.clone(),
        )
    } else {
        return Ok(None);
    };
    let sender_localpart = sender.ok_or_else(|| {
        invalid(
            "appservice.sender_localpart",
            "required when the tokens are not read from a registration file",
        )
    })?;
    validate_localpart("appservice.sender_localpart", &sender_localpart)?;
    if as_token.len() < 32 || hs_token.len() < 32 {
        return Err(invalid(
            "appservice.registration",
            "as_token and hs_token must each be at least 32 characters",
        ));
    }
    if as_token == hs_token {
        return Err(invalid(
            "appservice.registration",
            "as_token and hs_token must differ",
        ));
    }
    Ok(Some(Tokens {
        as_token: Secret::new(as_token),
        hs_token: Secret::new(hs_token),
        sender_localpart,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[homeserver]
url = "http://127.0.0.1:8008"
server_name = "example.org"
[appservice]
[web]
public_url = "https://visio.example.org/"
"#;

    fn err_of(text: &str) -> String {
        Config::from_toml(text, Path::new("/tmp"))
            .expect_err("should be refused")
            .to_string()
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let cfg = Config::from_toml(MINIMAL, Path::new("/srv/salon")).unwrap();
        assert_eq!(cfg.bot_user_id().as_str(), "@visio:example.org");
        assert_eq!(cfg.permissions.start_power_level, 0);
        assert_eq!(cfg.permissions.stop_power_level, 50);
        assert_eq!(cfg.storage.path, PathBuf::from("/srv/salon/data"));
        assert_eq!(cfg.appservice.url.as_str(), "http://127.0.0.1:9009/");
        assert_eq!(
            cfg.call_url("abc"),
            "https://visio.example.org/call/abc".to_string()
        );
        assert!(cfg.appservice.tokens.is_none());
        assert!(
            cfg.tokens()
                .unwrap_err()
                .to_string()
                .contains("generate-registration")
        );
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let manifest = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
        );
        let root = manifest.parent().unwrap();
        let cfg = Config::load(&root.join("config.example.toml")).expect("config.example.toml");
        // It reads the example registration next to it.
        assert_eq!(cfg.tokens().unwrap().sender_localpart, "_salon_example");
        assert_eq!(cfg.web.public_url.as_str(), "https://visio.example.org/");
    }

    #[test]
    fn bad_values_name_the_key() {
        let bad_url = MINIMAL.replace("http://127.0.0.1:8008", "ftp://nope");
        assert!(err_of(&bad_url).contains("homeserver.url"));
        let bad_bind = MINIMAL.replace("[appservice]", "[appservice]\nbind = \"localhost\"");
        assert!(err_of(&bad_bind).contains("appservice.bind"));
        let bad_local = MINIMAL.replace(
            "[appservice]",
            "[appservice]\nbot_localpart = \"Visio Bot\"",
        );
        assert!(err_of(&bad_local).contains("appservice.bot_localpart"));
        let bad_server = MINIMAL.replace("example.org", "exa mple");
        assert!(err_of(&bad_server).contains("homeserver.server_name"));
    }

    #[test]
    fn transcription_and_minutes_settings_are_checked() {
        let cfg = Config::from_toml(MINIMAL, Path::new("/srv/salon")).unwrap();
        assert!(cfg.transcription.enabled);
        assert_eq!(cfg.permissions.transcribe_power_level, 50);
        assert!(matches!(
            &cfg.transcription.engine,
            SpeechEngineConfig::Builtin { model } if model == Path::new("/srv/salon/models/base")
        ));
        assert!(matches!(cfg.minutes.engine, SummaryEngineConfig::Builtin));
        let with = |section: &str, extra: &str| format!("{MINIMAL}[{section}]\n{extra}");
        assert!(
            err_of(&with("transcription", "engine = \"cloud\"")).contains("transcription.engine")
        );
        assert!(
            err_of(&with("transcription", "engine = \"remote\""))
                .contains("transcription.remote_url")
        );
        assert!(
            err_of(&with("transcription", "language = \"french\""))
                .contains("transcription.language")
        );
        assert!(err_of(&with("transcription", "workers = 0")).contains("transcription.workers"));
        let missing_key = with(
            "transcription",
            "engine = \"remote\"\nremote_url = \"http://gpu:8000\"\nremote_api_key_env = \"SALON_TEST_UNSET_KEY_VAR\"",
        );
        assert!(err_of(&missing_key).contains("SALON_TEST_UNSET_KEY_VAR"));
        assert!(err_of(&with("minutes", "engine = \"llm\"")).contains("minutes.llm_url"));
        let llm = Config::from_toml(
            &with(
                "minutes",
                "engine = \"llm\"\nllm_url = \"http://llm:8000/v1\"\nllm_model = \"m\"",
            ),
            Path::new("/tmp"),
        )
        .unwrap();
        assert!(
            matches!(llm.minutes.engine, SummaryEngineConfig::Llm { ref model, .. } if model == "m")
        );
    }

    #[test]
    fn sfu_settings_are_checked() {
        let with = |extra: &str| MINIMAL.to_owned() + "[sfu]\n" + extra;
        let cfg = Config::from_toml(
            &with("udp_port_min = 50000\nudp_port_max = 50100\n"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!((cfg.sfu.udp_port_min, cfg.sfu.udp_port_max), (50000, 50100));
        assert!(cfg.sfu.api_secret.is_none());
        assert_eq!(cfg.sfu_ws_url(), "wss://visio.example.org");
        assert!(err_of(&with("bind_ip = \"0.0.0.0\"\n")).contains("sfu.bind_ip"));
        assert!(err_of(&with("udp_port_min = 50000\n")).contains("sfu.udp_port_min"));
        assert!(err_of(&with("api_secret = \"short\"\n")).contains("sfu.api_secret"));
        assert!(err_of(&with("[[sfu.turn]]\nurls = [\"http://x\"]\n")).contains("sfu.turn"));
    }

    #[test]
    fn unknown_keys_and_missing_sections_are_refused() {
        let typo = MINIMAL.replace("[web]", "[web]\npublic_ulr = \"x\"");
        let msg = err_of(&typo);
        assert!(msg.contains("public_ulr"), "{msg}");
        let missing = MINIMAL.replace("[web]\npublic_url = \"https://visio.example.org/\"", "");
        assert!(err_of(&missing).contains("web"));
    }

    #[test]
    fn tokens_from_registration_file_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let reg = "id: salon\nas_token: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nhs_token: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nsender_localpart: _salon_x\n";
        std::fs::write(dir.path().join("appservice.yaml"), reg).unwrap();
        let text = MINIMAL.replace(
            "[appservice]",
            "[appservice]\nregistration = \"appservice.yaml\"",
        );
        let cfg = Config::from_toml(&text, dir.path()).unwrap();
        let tokens = cfg.tokens().unwrap();
        assert_eq!(tokens.sender_localpart, "_salon_x");
        assert_eq!(tokens.hs_token.expose().len(), 36);
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("aaaaaaaa"), "as_token leaked: {debug}");
        assert!(!debug.contains("bbbbbbbb"), "hs_token leaked: {debug}");
    }

    #[test]
    fn short_or_mixed_token_sources_are_refused() {
        let short = MINIMAL.replace(
            "[appservice]",
            "[appservice]\nas_token = \"short\"\nhs_token = \"alsoshort\"\nsender_localpart = \"s\"",
        );
        assert!(err_of(&short).contains("at least 32"));
        let mixed = MINIMAL.replace(
            "[appservice]",
            "[appservice]\nas_token = \"x\"\nregistration = \"r.yaml\"",
        );
        assert!(err_of(&mixed).contains("one way only"));
    }
}
