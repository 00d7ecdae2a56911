//! `salon doctor`: checks the set-up and says in plain words what is wrong.
//!
//! It checks, in order: the config, the storage folder, the speech model (when
//! transcription uses the built-in engine), a LiveKit cluster (with `[sfu]
//! backend = "livekit"`: it answers, takes the key and secret, Salon's
//! webhook URL answers), the homeserver URL,
//! the `as_token` (whoami as the appservice sender), and the homeserver's route
//! back to the bridge with the `hs_token` (the appservice ping), and whether
//! Element Call's call button can use Salon as its MatrixRTC focus (a warning
//! when not: it is optional). If the bridge is not running, doctor answers
//! the ping itself on the appservice address.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::config::registration::random_token;
use crate::config::{Config, SpeechEngineConfig};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ok(String),
    Warn(String),
    Fail(String),
}

/// Runs every check and returns them in order; stops early when later checks
/// cannot mean anything.
pub async fn run(config_path: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = match Config::load(config_path) {
        Ok(c) => {
            checks.push(Check::Ok(format!(
                "config {} is valid",
                config_path.display()
            )));
            c
        }
        Err(e) => {
            checks.push(Check::Fail(format!("config: {e}")));
            return checks;
        }
    };
    checks.push(check_storage(&config.storage.path));
    if let Some(check) = check_speech(&config) {
        checks.push(check);
    }
    if let (crate::config::SfuBackend::LiveKit { url }, Some(secret)) =
        (&config.sfu.backend, &config.sfu.api_secret)
    {
        let webhook = format!(
            "{}{}",
            config.web.public_url.as_str().trim_end_matches('/'),
            crate::livekit::WEBHOOK_PATH
        );
        let cluster =
            crate::livekit::doctor_checks(url, &config.sfu.api_key, secret.expose(), &webhook)
                .await;
        let failed = cluster.iter().any(|c| matches!(c, Check::Fail(_)));
        checks.extend(cluster);
        if failed {
            return checks;
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a plain HTTP client builds");
    let hs = config.homeserver.url.as_str().trim_end_matches('/');

    match http
        .get(format!("{hs}/_matrix/client/versions"))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {
            checks.push(Check::Ok(format!("homeserver {hs} answers the client API")))
        }
        Ok(r) => {
            checks.push(Check::Fail(format!(
                "homeserver {hs} answered {} to /_matrix/client/versions: is this the client API URL?",
                r.status()
            )));
            return checks;
        }
        Err(e) => {
            checks.push(Check::Fail(format!(
                "cannot reach the homeserver at {hs}: {e}. Check [homeserver] url and that Synapse is running."
            )));
            return checks;
        }
    }

    let tokens = match config.tokens() {
        Ok(t) => t.clone(),
        Err(e) => {
            checks.push(Check::Fail(e.to_string()));
            return checks;
        }
    };
    let whoami = http
        .get(format!("{hs}/_matrix/client/v3/account/whoami"))
        .bearer_auth(tokens.as_token.expose())
        .send()
        .await;
    match whoami {
        Ok(r) if r.status().is_success() => {
            let user = r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["user_id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            checks.push(Check::Ok(format!(
                "the homeserver accepts the as_token (appservice sender {user})"
            )));
        }
        Ok(r) => {
            checks.push(Check::Fail(format!(
                "the homeserver refused the as_token ({}): add appservice.yaml to Synapse's \
                 app_service_config_files, with the tokens this config uses, and restart Synapse",
                r.status()
            )));
            return checks;
        }
        Err(e) => {
            checks.push(Check::Fail(format!("whoami failed: {e}")));
            return checks;
        }
    }

    checks.push(
        ping(
            &http,
            hs,
            &config,
            tokens.as_token.expose(),
            tokens.hs_token.expose(),
        )
        .await,
    );

    checks.extend(check_matrix_rtc(&http, hs, &config, tokens.as_token.expose()).await);

    let public = &config.web.public_url;
    if public.scheme() == "http"
        && !matches!(public.host_str(), Some("localhost" | "127.0.0.1" | "::1"))
    {
        checks.push(Check::Warn(format!(
            "web.public_url {public} is plain http: browsers only allow camera and microphone on https (put a TLS reverse proxy in front)"
        )));
    } else {
        checks.push(Check::Ok(format!("join links will point to {public}")));
    }
    checks
}

/// Whether Element Call's call button can use Salon as its MatrixRTC focus:
/// the homeserver advertises MatrixRTC transports (MSC4143) and delayed
/// events (MSC4140), and its transports list Salon's focus URL. Optional
/// (Salon's own call page needs none of it), so a gap is a warning that says
/// what to add to `homeserver.yaml` (`docs/element-call.md`).
async fn check_matrix_rtc(
    http: &reqwest::Client,
    hs: &str,
    config: &Config,
    as_token: &str,
) -> Vec<Check> {
    let focus = config.focus_url();
    let versions: Value = match http
        .get(format!("{hs}/_matrix/client/versions"))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    let advertised = |feature: &str| versions["unstable_features"][feature] == true;
    let mut checks = Vec::new();
    if !advertised("org.matrix.msc4143") {
        checks.push(Check::Warn(format!(
            "Element Call's call button cannot use Salon: the homeserver does not advertise \
             MatrixRTC transports (org.matrix.msc4143). In homeserver.yaml set \
             experimental_features: {{msc4143_enabled: true}} and list {focus} under \
             matrix_rtc.transports (docs/element-call.md)"
        )));
        return checks;
    }
    if advertised("org.matrix.msc4140") {
        checks.push(Check::Ok(
            "the homeserver has delayed events (MSC4140)".into(),
        ));
    } else {
        checks.push(Check::Warn(
            "delayed events are off: Element Call members whose browser crashes stay in the \
             call. In homeserver.yaml set max_event_delay_duration: 24h"
                .into(),
        ));
    }
    let transports: Value = match http
        .get(format!(
            "{hs}/_matrix/client/unstable/org.matrix.msc4143/rtc/transports"
        ))
        .bearer_auth(as_token)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        Ok(r) => {
            checks.push(Check::Warn(format!(
                "the homeserver answered {} to /rtc/transports: is matrix_rtc configured?",
                r.status()
            )));
            return checks;
        }
        Err(e) => {
            checks.push(Check::Warn(format!("cannot read /rtc/transports: {e}")));
            return checks;
        }
    };
    let listed = transports["rtc_transports"].as_array().and_then(|all| {
        all.iter().find_map(|t| {
            let url = t["livekit_service_url"].as_str()?;
            (t["type"] == "livekit" && url.trim_end_matches('/') == focus).then_some(url)
        })
    });
    checks.push(if listed == Some(focus.as_str()) {
        Check::Ok(format!(
            "Element Call's call button uses Salon: matrix_rtc.transports lists {focus}"
        ))
    } else if let Some(url) = listed {
        // Element Call tells transports apart by this exact string: the page's
        // membership (which names `focus`) would look like another focus, and
        // Element Call would connect to it a second time.
        Check::Warn(format!(
            "matrix_rtc.transports lists Salon as {url}, and Salon's call page names it {focus}:              write livekit_service_url exactly as {focus} (no trailing /)"
        ))
    } else {
        Check::Warn(format!(
            "matrix_rtc.transports does not list Salon: add `- type: livekit` with \
             `livekit_service_url: {focus}` to matrix_rtc.transports in homeserver.yaml"
        ))
    });
    checks
}

/// The built-in speech engine's model: present, complete and a known build.
fn check_speech(config: &Config) -> Option<Check> {
    let transcription = &config.transcription;
    if !transcription.enabled {
        return Some(Check::Ok("transcription is disabled".into()));
    }
    let SpeechEngineConfig::Builtin { model } = &transcription.engine else {
        return Some(Check::Ok(
            "transcription uses a remote engine (not checked here)".into(),
        ));
    };
    let fix = "install it with scripts/install-models.sh, or set [transcription] model";
    let info = match salon_speech::check_model(model) {
        Ok(info) => info,
        Err(e) => {
            return Some(Check::Fail(format!(
                "speech model at {}: {e}; {fix}",
                model.display()
            )));
        }
    };
    Some(match salon_speech::verify_model_sha256(model) {
        Ok(name) => Check::Ok(format!(
            "speech model {name} at {} is complete ({} MB, {})",
            model.display(),
            info.model_bin_bytes / 1_000_000,
            if info.multilingual {
                "multilingual"
            } else {
                "English only"
            }
        )),
        Err(e) => Check::Warn(format!(
            "speech model at {} loads but is not a build Salon knows ({e})",
            model.display()
        )),
    })
}

fn check_storage(path: &Path) -> Check {
    if let Err(e) = std::fs::create_dir_all(path) {
        return Check::Fail(format!(
            "storage.path {}: cannot create it: {e}",
            path.display()
        ));
    }
    let probe = path.join(format!(".doctor-{}", random_token(8)));
    match std::fs::write(&probe, b"ok") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Check::Ok(format!("storage folder {} is writable", path.display()))
        }
        Err(e) => Check::Fail(format!(
            "storage.path {} is not writable: {e}",
            path.display()
        )),
    }
}

/// Asks the homeserver to ping the bridge. If nothing listens on the appservice
/// address, doctor listens there itself for the duration of the check.
async fn ping(
    http: &reqwest::Client,
    hs: &str,
    config: &Config,
    as_token: &str,
    hs_token: &str,
) -> Check {
    let temporary = match tokio::net::TcpListener::bind(config.appservice.bind).await {
        Ok(listener) => {
            let expected = format!("Bearer {hs_token}");
            let app = axum::Router::new().route(
                "/_matrix/app/v1/ping",
                axum::routing::post(move |headers: axum::http::HeaderMap| {
                    let expected = expected.clone();
                    async move {
                        let ok = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| v == expected);
                        if ok {
                            (axum::http::StatusCode::OK, "{}")
                        } else {
                            (
                                axum::http::StatusCode::FORBIDDEN,
                                "{\"errcode\":\"M_FORBIDDEN\"}",
                            )
                        }
                    }
                }),
            );
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }))
        }
        Err(_) => None, // the bridge is running and answers itself
    };
    let url = format!(
        "{hs}/_matrix/client/v1/appservice/{}/ping",
        config.appservice.id
    );
    let result = http
        .post(url)
        .bearer_auth(as_token)
        .json(&serde_json::json!({ "transaction_id": format!("doctor-{}", random_token(8)) }))
        .send()
        .await;
    if let Some(task) = temporary {
        task.abort();
    }
    match result {
        Ok(r) if r.status().is_success() => Check::Ok(format!(
            "the homeserver reaches the bridge at {} and the hs_token matches",
            config.appservice.url
        )),
        Ok(r) => {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let errcode = body["errcode"].as_str().unwrap_or("");
            let hint = match errcode {
                "M_CONNECTION_FAILED" | "M_CONNECTION_TIMEOUT" => format!(
                    "the homeserver cannot reach the bridge at {}: check the `url` in appservice.yaml and [appservice] bind",
                    config.appservice.url
                ),
                "M_BAD_STATUS" => "the bridge refused the homeserver's ping: the hs_token in Synapse's copy of appservice.yaml differs from this config's".to_owned(),
                "M_FORBIDDEN" => format!(
                    "the as_token does not belong to appservice id `{}`: check [appservice] id",
                    config.appservice.id
                ),
                _ => format!("the appservice ping failed ({status} {errcode})"),
            };
            Check::Fail(hint)
        }
        Err(e) => Check::Fail(format!("the appservice ping failed: {e}")),
    }
}
