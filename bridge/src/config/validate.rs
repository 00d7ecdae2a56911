//! Every check on the config's values, in one place: from the file as written
//! ([`RawConfig`]) to the [`Config`] the rest of the bridge trusts.
//!
//! In the flow: `Config::load` → `raw::parse` → [`validate`] → `Config`. Each
//! refusal names its key (`config key `sfu.api_secret`: …`). The `[sfu]`
//! settings are checked by the SFU's own rules (`salon_sfu::config::rules`),
//! so the bridge accepts exactly what `salon_sfu::Sfu::new` will. Relative
//! paths are resolved against `base`, the config file's folder.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use ruma::{ServerName, UserId};
use salon_sfu::config::rules;
use url::Url;

use super::raw::{
    RawAppservice, RawConfig, RawMinutes, RawSfu, RawTranscription, SfuBackendKind,
    SpeechEngineKind, SummaryEngineKind,
};
use super::{
    AppserviceConfig, BotConfig, CallsConfig, Config, ConfigError, E2eeConfig, HomeserverConfig,
    LoggingConfig, MinutesConfig, Permissions, Secret, SfuBackend, SfuSettings, SpeechEngineConfig,
    StorageConfig, SummaryEngineConfig, Tokens, TranscriptionConfig, TurnServer, WebConfig,
    invalid, registration, secret,
};

/// Checks `raw` and builds the config. With `with_tokens` false the tokens are
/// left unread (`generate-registration` runs before they exist).
pub(super) fn validate(
    raw: RawConfig,
    base: &Path,
    with_tokens: bool,
) -> Result<Config, ConfigError> {
    let hs_url = http_url("homeserver.url", &raw.homeserver.url)?;
    let hs_public_url = match &raw.homeserver.public_url {
        Some(url) => http_url("homeserver.public_url", url)?,
        None => hs_url.clone(),
    };
    let server_name = ServerName::parse(&raw.homeserver.server_name)
        .map_err(|e| invalid("homeserver.server_name", format!("not a server name: {e}")))?;

    let appservice = &raw.appservice;
    if appservice.id.trim().is_empty() {
        return Err(invalid("appservice.id", "must not be empty"));
    }
    let as_bind = socket_addr("appservice.bind", &appservice.bind, "127.0.0.1:9009")?;
    let as_url = match &appservice.url {
        Some(url) => http_url("appservice.url", url)?,
        None => Url::parse(&format!("http://{as_bind}"))
            .map_err(|e| invalid("appservice.bind", e.to_string()))?,
    };
    localpart("appservice.bot_localpart", &appservice.bot_localpart)?;
    UserId::parse(format!("@{}:{server_name}", appservice.bot_localpart))
        .map_err(|e| invalid("appservice.bot_localpart", e.to_string()))?;
    let tokens = if with_tokens {
        tokens(appservice, base)?
    } else {
        None
    };

    let public_url = http_url("web.public_url", &raw.web.public_url)?;
    let web_bind = socket_addr("web.bind", &raw.web.bind, "127.0.0.1:8090")?;
    let focus_path = focus_path(&raw.web.focus_path)?;
    if raw.web.attempts_per_minute == 0 {
        return Err(invalid(
            "web.attempts_per_minute",
            "must be at least 1 (Element Call asks twice per join)",
        ));
    }

    let autojoin_servers = raw
        .bot
        .autojoin_servers
        .iter()
        .map(|s| {
            ServerName::parse(s).map_err(|e| invalid("bot.autojoin_servers", format!("`{s}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let autojoin_users = raw
        .bot
        .autojoin_users
        .iter()
        .map(|s| UserId::parse(s).map_err(|e| invalid("bot.autojoin_users", format!("`{s}`: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;

    if raw.calls.empty_grace_seconds > 24 * 3600 {
        return Err(invalid(
            "calls.empty_grace_seconds",
            "must be at most one day (86400)",
        ));
    }
    if !(1..=7 * 24 * 60).contains(&raw.calls.guest_link_minutes) {
        return Err(invalid(
            "calls.guest_link_minutes",
            "must be between 1 and 10080 (a week)",
        ));
    }
    if raw.calls.unjoined_timeout_minutes == 0 {
        return Err(invalid(
            "calls.unjoined_timeout_minutes",
            "must be at least 1",
        ));
    }
    let sfu = sfu(&raw.sfu, base)?;
    let transcription = transcription(&raw.transcription, base)?;
    let minutes = minutes(&raw.minutes)?;
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
            trusted_proxies: raw.web.trusted_proxies,
            focus_path,
            attempts_per_minute: raw.web.attempts_per_minute,
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
            moderate_power_level: raw.permissions.moderate_power_level,
        },
        calls: CallsConfig {
            empty_grace: Duration::from_secs(raw.calls.empty_grace_seconds),
            unjoined_timeout: Duration::from_secs(raw.calls.unjoined_timeout_minutes * 60),
            guest_link_ttl: Duration::from_secs(raw.calls.guest_link_minutes * 60),
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

fn transcription(raw: &RawTranscription, base: &Path) -> Result<TranscriptionConfig, ConfigError> {
    let engine = match raw.engine {
        SpeechEngineKind::Builtin => SpeechEngineConfig::Builtin {
            model: base.join(&raw.model),
        },
        SpeechEngineKind::Remote => {
            let url = raw.remote_url.as_deref().ok_or_else(|| {
                invalid(
                    "transcription.remote_url",
                    "engine = \"remote\" needs the server's base URL",
                )
            })?;
            SpeechEngineConfig::Remote {
                url: http_url("transcription.remote_url", url)?,
                model: raw.remote_model.clone(),
                api_key: secret::from_env(
                    "transcription.remote_api_key_env",
                    raw.remote_api_key_env.as_deref(),
                )?,
                timeout: timeout(
                    "transcription.remote_timeout_seconds",
                    raw.remote_timeout_seconds,
                )?,
            }
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
        max_utterance: Duration::from_secs(raw.max_utterance_seconds),
    })
}

fn minutes(raw: &RawMinutes) -> Result<MinutesConfig, ConfigError> {
    let engine = match raw.engine {
        SummaryEngineKind::Builtin => SummaryEngineConfig::Builtin,
        SummaryEngineKind::Llm => {
            let url = raw.llm_url.as_deref().ok_or_else(|| {
                invalid(
                    "minutes.llm_url",
                    "engine = \"llm\" needs the OpenAI-compatible base URL (…/v1)",
                )
            })?;
            SummaryEngineConfig::Llm {
                url: http_url("minutes.llm_url", url)?,
                model: raw.llm_model.clone(),
                api_key: secret::from_env(
                    "minutes.llm_api_key_env",
                    raw.llm_api_key_env.as_deref(),
                )?,
                timeout: timeout("minutes.llm_timeout_seconds", raw.llm_timeout_seconds)?,
            }
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
        post_delay: Duration::from_secs(raw.post_delay_seconds),
    })
}

/// `[sfu]`, by the SFU's own rules: what passes here, `Sfu::new` accepts.
fn sfu(raw: &RawSfu, base: &Path) -> Result<SfuSettings, ConfigError> {
    let rule =
        |key: &'static str, checked: Result<(), String>| checked.map_err(|e| invalid(key, e));
    let bind_ip = ip("sfu.bind_ip", &raw.bind_ip)?;
    rule("sfu.bind_ip", rules::bind_ip(bind_ip))?;
    let public_ip = raw
        .public_ip
        .as_deref()
        .map(|value| ip("sfu.public_ip", value))
        .transpose()?;
    rule(
        "sfu.udp_port_min",
        rules::udp_ports(raw.udp_port_min, raw.udp_port_max),
    )?;
    rule("sfu.api_key", rules::api_key(&raw.api_key))?;
    let api_secret = match (&raw.api_secret, &raw.api_secret_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "sfu.api_secret",
                "set api_secret or api_secret_file, not both",
            ));
        }
        (Some(secret), None) => Some(secret.clone()),
        (None, Some(path)) => Some(secret::from_file("sfu.api_secret_file", &base.join(path))?),
        (None, None) => None,
    };
    if let Some(secret) = &api_secret {
        rule("sfu.api_secret", rules::api_secret(secret.expose()))?;
    }
    let backend = sfu_backend(raw, api_secret.is_some())?;
    rule(
        "sfu.max_participants",
        rules::max_participants(raw.max_participants),
    )?;
    let max_bitrate_bps = raw.max_bitrate_kbps.saturating_mul(1000);
    rule(
        "sfu.max_bitrate_kbps",
        rules::max_bitrate_bps(max_bitrate_bps),
    )?;
    let turn = raw
        .turn
        .iter()
        .map(|t| {
            rule("sfu.turn.urls", rules::ice_urls(&t.urls))?;
            Ok(TurnServer {
                urls: t.urls.clone(),
                username: t.username.clone(),
                credential: t.credential.clone().unwrap_or_else(|| Secret::new("")),
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    Ok(SfuSettings {
        backend,
        bind_ip,
        udp_port_min: raw.udp_port_min,
        udp_port_max: raw.udp_port_max,
        public_ip,
        api_key: raw.api_key.clone(),
        api_secret,
        max_participants: raw.max_participants,
        max_bitrate_bps,
        turn,
    })
}

/// `[sfu] backend` and, for LiveKit, its `url` (`ws(s)://`, or `http(s)://`
/// taken as the same host). A cluster's secret cannot be made up here, so
/// LiveKit needs `api_secret` or `api_secret_file`.
fn sfu_backend(raw: &RawSfu, has_secret: bool) -> Result<SfuBackend, ConfigError> {
    match raw.backend {
        SfuBackendKind::Embedded => {
            if raw.url.is_some() {
                return Err(invalid(
                    "sfu.url",
                    "is the LiveKit cluster's URL: set backend = \"livekit\" with it, or remove it",
                ));
            }
            Ok(SfuBackend::Embedded)
        }
        SfuBackendKind::LiveKit => {
            let value = raw.url.as_deref().ok_or_else(|| {
                invalid(
                    "sfu.url",
                    "backend = \"livekit\" needs the cluster's URL, e.g. wss://livekit.example.org",
                )
            })?;
            let mut url = Url::parse(value)
                .map_err(|e| invalid("sfu.url", format!("`{value}` is not a URL: {e}")))?;
            let scheme = match url.scheme() {
                "ws" | "http" => "ws",
                "wss" | "https" => "wss",
                _ => {
                    return Err(invalid(
                        "sfu.url",
                        format!("`{value}` must start with wss:// (or ws://, https://, http://)"),
                    ));
                }
            };
            if url.host_str().is_none() {
                return Err(invalid("sfu.url", format!("`{value}` has no host")));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(invalid(
                    "sfu.url",
                    format!("`{value}`: no query or fragment, only the server's address"),
                ));
            }
            let _ = url.set_scheme(scheme);
            if !has_secret {
                return Err(invalid(
                    "sfu.api_secret_file",
                    "backend = \"livekit\" needs the cluster's API secret for api_key: \
                     set api_secret_file (or api_secret)",
                ));
            }
            Ok(SfuBackend::LiveKit { url })
        }
    }
}

/// The appservice tokens, from exactly one of the three ways the config allows.
fn tokens(raw: &RawAppservice, base: &Path) -> Result<Option<Tokens>, ConfigError> {
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
        let read = registration::read(&base.join(path))?;
        (read.as_token, read.hs_token, Some(read.sender_localpart))
    } else if inline {
        let keys = ["appservice.as_token", "appservice.hs_token"];
        let (a, h) = both(raw.as_token.clone(), raw.hs_token.clone(), keys)?;
        (a, h, raw.sender_localpart.clone())
    } else if files {
        let keys = ["appservice.as_token_file", "appservice.hs_token_file"];
        let (a, h) = both(raw.as_token_file.as_ref(), raw.hs_token_file.as_ref(), keys)?;
        (
            secret::from_file(keys[0], &base.join(a))?,
            secret::from_file(keys[1], &base.join(h))?,
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
    localpart("appservice.sender_localpart", &sender_localpart)?;
    if as_token.expose().len() < 32 || hs_token.expose().len() < 32 {
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
        as_token,
        hs_token,
        sender_localpart,
    }))
}

/// Both keys of a pair, or an error at the one missing.
fn both<T>(a: Option<T>, b: Option<T>, keys: [&'static str; 2]) -> Result<(T, T), ConfigError> {
    let name = |i: usize| keys[i].trim_start_matches("appservice.");
    let missing = |i: usize| {
        invalid(
            keys[i],
            format!("{} is set but {} is not", name(1 - i), name(i)),
        )
    };
    match (a, b) {
        (Some(a), Some(b)) => Ok((a, b)),
        (None, _) => Err(missing(0)),
        (_, None) => Err(missing(1)),
    }
}

/// An `http://` or `https://` URL with a host.
fn http_url(key: &'static str, value: &str) -> Result<Url, ConfigError> {
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

fn socket_addr(key: &'static str, value: &str, example: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|e| invalid(key, format!("expected an address like {example}: {e}")))
}

fn ip(key: &'static str, value: &str) -> Result<IpAddr, ConfigError> {
    value
        .parse()
        .map_err(|e| invalid(key, format!("`{value}` is not an IP address: {e}")))
}

/// A remote engine's timeout: at least one second.
fn timeout(key: &'static str, seconds: u64) -> Result<Duration, ConfigError> {
    if seconds == 0 {
        return Err(invalid(key, "must be at least 1"));
    }
    Ok(Duration::from_secs(seconds))
}

fn localpart(key: &'static str, value: &str) -> Result<(), ConfigError> {
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

/// The focus API's base path: absolute, plain URL path characters, and
/// clear of the paths Salon serves itself.
fn focus_path(path: &str) -> Result<String, ConfigError> {
    let trimmed = path.trim_end_matches('/');
    let plain = trimmed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
    if !trimmed.starts_with('/') || !plain || trimmed.contains("//") || trimmed.contains("/.") {
        return Err(invalid(
            "web.focus_path",
            format!(
                "`{path}` must be an absolute path like /livekit/jwt (letters, digits, - _ . ~ and /)"
            ),
        ));
    }
    let taken = [
        "/_salon", "/rtc", "/call", "/dist", "/metrics", "/healthz", "/_matrix",
    ];
    if let Some(prefix) = taken
        .iter()
        .find(|p| trimmed == **p || trimmed.starts_with(&format!("{p}/")))
    {
        return Err(invalid(
            "web.focus_path",
            format!("`{path}` is under {prefix}, which Salon serves itself"),
        ));
    }
    Ok(trimmed.to_owned())
}
