//! Talking to the homeserver as the bot: the client-server API through
//! matrix-sdk, with retries we bound ourselves.
//!
//! The bot is a namespaced user (`@visio:server`) with a device of its own: it
//! is registered and logged in with `m.login.application_service`, and its
//! device id and token are kept in the store (the route end-to-end encryption
//! needs later). Messages and state events are sent as the bot through the
//! appservice's `as_token` with `?user_id=` (identity assertion), because the
//! homeserver rate-limits the bot's own device token like any user's, and
//! exempts appservice requests (`rate_limited: false`). The `as_token` also
//! registers and logs the bot in, and pings.
//!
//! matrix-sdk's default retries a failing call for 15 minutes; here every call
//! goes through [`Matrix::send`], which honours `429 retry_after`, backs off
//! exponentially with a cap, gives up after a bounded time and says so loudly.

use std::future::IntoFuture;
use std::time::Duration;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::RequestConfig;
use matrix_sdk::{Client, HttpError, SessionMeta, SessionTokens};
use ruma::api::client::account::register;
use ruma::api::client::membership::{join_room_by_id, joined_members};
use ruma::api::client::session::login;
use ruma::api::client::state::get_state_event_for_key;
use ruma::api::client::uiaa::UserIdentifier;
use ruma::api::error::{ErrorKind, RetryAfter};
use ruma::events::StateEventType;
use ruma::{OwnedDeviceId, OwnedEventId, OwnedTransactionId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::store::Store;

/// How a homeserver call failed, after retries.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// The homeserver refused: retrying will not help.
    #[error("the homeserver refused {op}: {errcode} {message}")]
    Refused {
        op: &'static str,
        status: u16,
        errcode: String,
        message: String,
    },
    /// The homeserver could not be reached or kept failing; worth trying later.
    #[error("the homeserver is unreachable or failing ({op}): {reason}")]
    Unavailable { op: &'static str, reason: String },
    #[error("{op}: {reason}")]
    Other { op: &'static str, reason: String },
}

impl MatrixError {
    /// True when it is worth trying the whole operation again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, MatrixError::Unavailable { .. })
    }
    /// The Matrix errcode, if the homeserver gave one.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            MatrixError::Refused { errcode, .. } => Some(errcode),
            _ => None,
        }
    }
}

/// Bounds on retrying one homeserver call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            request_timeout: Duration::from_secs(20),
        }
    }
}

/// The retry state of one homeserver call.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
    delay: Duration,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            attempt: 1,
            delay: policy.first_delay,
        }
    }

    /// How long to wait before the next attempt, or `None` once the attempts
    /// are spent. `server_wait` is the homeserver's `retry_after`, honoured up
    /// to a minute; otherwise the delay doubles up to the cap.
    pub(crate) fn next(&mut self, server_wait: Option<Duration>) -> Option<Duration> {
        if self.attempt >= self.policy.attempts {
            return None;
        }
        let wait = server_wait
            .map(|w| w.min(Duration::from_secs(60)))
            .unwrap_or(self.delay);
        self.delay = (self.delay * 2).min(self.policy.max_delay);
        self.attempt += 1;
        Some(wait)
    }
}

/// What one failed attempt means for the next.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Wait this long (the server said so), then retry.
    RetryAfter(Duration),
    /// Back off and retry.
    Backoff,
    /// Do not retry.
    GiveUp,
}

pub(crate) fn judge(err: &HttpError) -> Verdict {
    if let Some(api) = err.as_client_api_error() {
        if let Some(ErrorKind::LimitExceeded(data)) = err.client_api_error_kind() {
            let wait = match data.retry_after {
                Some(RetryAfter::Delay(d)) => d,
                Some(RetryAfter::DateTime(at)) => at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default(),
                None => Duration::from_secs(1),
            };
            return Verdict::RetryAfter(wait);
        }
        return if api.status_code.is_server_error() {
            Verdict::Backoff
        } else {
            Verdict::GiveUp
        };
    }
    match err {
        HttpError::Reqwest(_) => Verdict::Backoff,
        _ => Verdict::GiveUp,
    }
}

pub(crate) fn to_matrix_error(op: &'static str, err: &HttpError) -> MatrixError {
    if let Some(api) = err.as_client_api_error() {
        let errcode = err
            .client_api_error_kind()
            .map(|k| k.errcode().to_string())
            .unwrap_or_else(|| "M_UNKNOWN".to_owned());
        if api.status_code.is_server_error() || errcode == "M_LIMIT_EXCEEDED" {
            return MatrixError::Unavailable {
                op,
                reason: format!("{} {errcode}", api.status_code),
            };
        }
        return MatrixError::Refused {
            op,
            status: api.status_code.as_u16(),
            errcode,
            message: api.to_string(),
        };
    }
    match err {
        HttpError::Reqwest(e) => MatrixError::Unavailable {
            op,
            reason: e.to_string(),
        },
        other => MatrixError::Other {
            op,
            reason: other.to_string(),
        },
    }
}

/// The bot's device and token, kept in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BotSession {
    pub(crate) user_id: OwnedUserId,
    pub(crate) device_id: OwnedDeviceId,
    pub(crate) access_token: String,
}

pub(crate) const BOT_SESSION_KEY: &str = "bot_session";

/// What a request as the bot carries.
enum BotBody<'a> {
    Json(&'a Value),
    Bytes { data: Vec<u8>, mime: &'a str },
}

/// The bot's connection to its homeserver.
#[derive(Clone)]
pub struct Matrix {
    /// Authenticated with the as_token, as the appservice's sender.
    appservice: Client,
    /// Authenticated as the bot user, with its own device (and, with E2EE,
    /// its crypto store: see `crypto.rs`).
    pub(crate) bot: Client,
    pub(crate) bot_user_id: OwnedUserId,
    appservice_id: String,
    pub(crate) retry: RetryPolicy,
    /// For sends as the bot through the appservice token (see [`Matrix::put_as_bot`]).
    pub(crate) http: reqwest::Client,
    pub(crate) homeserver: url::Url,
    pub(crate) as_token: crate::config::Secret,
    /// The bot's device keeps a crypto store and encrypts in encrypted rooms.
    pub(crate) e2ee: bool,
}

async fn new_client(config: &Config) -> Result<Client, MatrixError> {
    Client::builder()
        .homeserver_url(config.homeserver.url.as_str())
        .server_versions([ruma::api::MatrixVersion::V1_11])
        .request_config(RequestConfig::new().disable_retry())
        .build()
        .await
        .map_err(|e| MatrixError::Other {
            op: "build client",
            reason: e.to_string(),
        })
}

pub(crate) async fn restore(
    client: &Client,
    user_id: OwnedUserId,
    device_id: OwnedDeviceId,
    token: &str,
) -> Result<(), MatrixError> {
    client
        .restore_session(MatrixSession {
            meta: SessionMeta { user_id, device_id },
            tokens: SessionTokens {
                access_token: token.to_owned(),
                refresh_token: None,
            },
        })
        .await
        .map_err(|e| MatrixError::Other {
            op: "restore session",
            reason: e.to_string(),
        })
}

impl Matrix {
    /// Connects as the appservice, makes sure the bot user exists, and logs the
    /// bot in (reusing its stored device when the token still works).
    pub async fn connect(config: &Config, store: &Store) -> Result<Self, MatrixError> {
        let tokens = config.tokens().map_err(|e| MatrixError::Other {
            op: "connect",
            reason: e.to_string(),
        })?;
        let sender = UserId::parse(format!(
            "@{}:{}",
            tokens.sender_localpart, config.homeserver.server_name
        ))
        .map_err(|e| MatrixError::Other {
            op: "connect",
            reason: e.to_string(),
        })?;
        let appservice = new_client(config).await?;
        restore(
            &appservice,
            sender,
            "SALON_APPSERVICE".into(),
            tokens.as_token.expose(),
        )
        .await?;
        let mut matrix = Matrix {
            bot: appservice.clone(),
            appservice,
            bot_user_id: config.bot_user_id(),
            appservice_id: config.appservice.id.clone(),
            retry: RetryPolicy::default(),
            http: reqwest::Client::new(),
            homeserver: config.homeserver.url.clone(),
            as_token: tokens.as_token.clone(),
            e2ee: false,
        };
        matrix.ensure_bot_registered().await?;
        if config.e2ee.enabled {
            matrix.bot = crate::crypto::open_device(config, &matrix, store).await?;
            matrix.e2ee = true;
            return Ok(matrix);
        }
        let bot = new_client(config).await?;
        let stored: Option<BotSession> =
            store
                .meta(BOT_SESSION_KEY)
                .map_err(|e| MatrixError::Other {
                    op: "load bot session",
                    reason: e.to_string(),
                })?;
        let session = match stored {
            Some(s) if s.user_id == matrix.bot_user_id => {
                restore(
                    &bot,
                    s.user_id.clone(),
                    s.device_id.clone(),
                    &s.access_token,
                )
                .await?;
                matrix.bot = bot.clone();
                match matrix.whoami().await {
                    Ok(_) => {
                        info!(device_id = %s.device_id, "reusing the bot's device");
                        None
                    }
                    Err(MatrixError::Refused { errcode, .. }) if errcode == "M_UNKNOWN_TOKEN" => {
                        warn!("the bot's stored token is no longer valid; logging in again");
                        Some(matrix.login_bot().await?)
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => Some(matrix.login_bot().await?),
        };
        if let Some(session) = session {
            let bot = new_client(config).await?;
            restore(
                &bot,
                session.user_id.clone(),
                session.device_id.clone(),
                &session.access_token,
            )
            .await?;
            store
                .set_meta(BOT_SESSION_KEY, &session)
                .await
                .map_err(|e| MatrixError::Other {
                    op: "save bot session",
                    reason: e.to_string(),
                })?;
            info!(device_id = %session.device_id, "the bot logged in with a new device");
            matrix.bot = bot;
        }
        Ok(matrix)
    }

    pub fn bot_user_id(&self) -> &UserId {
        &self.bot_user_id
    }

    /// Runs one homeserver call with bounded retries. `call` sends the
    /// request with the given config (matrix-sdk's own retries disabled).
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        op: &'static str,
        force_auth: bool,
        mut call: F,
    ) -> Result<T, MatrixError>
    where
        F: FnMut(RequestConfig) -> Fut,
        Fut: std::future::Future<Output = Result<T, HttpError>>,
    {
        let mut backoff = Backoff::new(self.retry);
        loop {
            let mut config = RequestConfig::new()
                .disable_retry()
                .timeout(self.retry.request_timeout);
            if force_auth {
                config = config.force_auth();
            }
            let err = match call(config).await {
                Ok(response) => return Ok(response),
                Err(err) => err,
            };
            let server_wait = match judge(&err) {
                Verdict::GiveUp => {
                    debug!(op, error = %err, "homeserver refused");
                    return Err(to_matrix_error(op, &err));
                }
                Verdict::RetryAfter(wait) => Some(wait),
                Verdict::Backoff => None,
            };
            let Some(wait) = backoff.next(server_wait) else {
                error!(op, attempts = backoff.attempt, error = %err, "giving up on the homeserver");
                return Err(to_matrix_error(op, &err));
            };
            warn!(op, attempt = backoff.attempt - 1, error = %err, wait_ms = wait.as_millis() as u64, "homeserver call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn ensure_bot_registered(&self) -> Result<(), MatrixError> {
        let mut request = register::v3::Request::new();
        request.username = Some(self.bot_user_id.localpart().to_owned());
        request.inhibit_login = true;
        request.login_type = Some(register::LoginType::ApplicationService);
        match self
            .retrying("register bot", true, |cfg| {
                self.appservice
                    .send(request.clone())
                    .with_request_config(cfg)
                    .into_future()
            })
            .await
        {
            Ok(_) => {
                info!(user_id = %self.bot_user_id, "registered the bot user");
                Ok(())
            }
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn login_bot(&self) -> Result<BotSession, MatrixError> {
        let identifier = UserIdentifier::Matrix(
            ruma::api::client::uiaa::MatrixUserIdentifier::new(self.bot_user_id.to_string()),
        );
        let info = login::v3::LoginInfo::ApplicationService(login::v3::ApplicationService::new(
            identifier,
        ));
        let mut request = login::v3::Request::new(info);
        request.initial_device_display_name = Some("Salon bridge".to_owned());
        let response = self
            .retrying("log the bot in", true, |cfg| {
                self.appservice
                    .send(request.clone())
                    .with_request_config(cfg)
                    .into_future()
            })
            .await?;
        Ok(BotSession {
            user_id: response.user_id,
            device_id: response.device_id,
            access_token: response.access_token,
        })
    }

    /// Who the bot's token belongs to.
    pub async fn whoami(&self) -> Result<OwnedUserId, MatrixError> {
        let request = ruma::api::client::account::whoami::v3::Request::new();
        Ok(self
            .retrying("whoami", false, |cfg| {
                self.bot
                    .send(request.clone())
                    .with_request_config(cfg)
                    .into_future()
            })
            .await?
            .user_id)
    }

    /// Asks the homeserver to ping the appservice (checks both tokens and the
    /// homeserver's route to us). Returns the round trip the homeserver measured.
    pub async fn ping_appservice(&self, txn: &str) -> Result<Duration, MatrixError> {
        let mut request = ruma::api::client::appservice::request_ping::v1::Request::new(
            self.appservice_id.clone(),
        );
        request.transaction_id = Some(OwnedTransactionId::from(txn));
        Ok(self
            .retrying("ping the appservice", true, |cfg| {
                self.appservice
                    .send(request.clone())
                    .with_request_config(cfg)
                    .into_future()
            })
            .await?
            .duration)
    }

    /// Sets the bot's display name. The older endpoint is used on purpose:
    /// every homeserver serves it, unlike the newer profile-field API.
    #[allow(deprecated)]
    pub async fn set_displayname(&self, name: &str) -> Result<(), MatrixError> {
        let request = ruma::api::client::profile::set_display_name::v3::Request::new(
            self.bot_user_id.clone(),
            Some(name.to_owned()),
        );
        self.retrying("set display name", false, |cfg| {
            self.bot
                .send(request.clone())
                .with_request_config(cfg)
                .into_future()
        })
        .await
        .map(|_| ())
    }

    pub async fn join(&self, room_id: &RoomId) -> Result<(), MatrixError> {
        let request = join_room_by_id::v3::Request::new(room_id.to_owned());
        self.retrying("join room", false, |cfg| {
            self.bot
                .send(request.clone())
                .with_request_config(cfg)
                .into_future()
        })
        .await
        .map(|_| ())
    }

    pub async fn leave(&self, room_id: &RoomId, reason: &str) -> Result<(), MatrixError> {
        let mut request =
            ruma::api::client::membership::leave_room::v3::Request::new(room_id.to_owned());
        request.reason = Some(reason.to_owned());
        self.retrying("leave room", false, |cfg| {
            self.bot
                .send(request.clone())
                .with_request_config(cfg)
                .into_future()
        })
        .await
        .map(|_| ())
    }

    /// `PUT`s to the client-server API as the bot, authenticated with the
    /// appservice token and `?user_id=` (identity assertion). The homeserver
    /// does not rate-limit these (`rate_limited: false` in the registration),
    /// whereas the bot's own device token is limited like any user's: with
    /// Synapse's defaults, 0.2 messages a second after a burst of ten.
    async fn put_as_bot(
        &self,
        op: &'static str,
        segments: &[&str],
        body: &Value,
    ) -> Result<Value, MatrixError> {
        self.request_as_bot(op, reqwest::Method::PUT, segments, &[], BotBody::Json(body))
            .await
    }

    /// Uploads bytes to the homeserver's media repository as the bot and
    /// returns the content fields that point at it (`{"url": "mxc://…"}`).
    /// Callers use [`Matrix::upload_file`] (crypto.rs), which encrypts the
    /// file first when the room is encrypted.
    pub(crate) async fn upload_plain(
        &self,
        data: Vec<u8>,
        mime: &str,
        filename: &str,
    ) -> Result<Value, MatrixError> {
        // An empty name (an encrypted attachment's) is not sent at all.
        let named = [("filename", filename)];
        let query = if filename.is_empty() {
            &named[..0]
        } else {
            &named[..]
        };
        let response = self
            .request_as_bot(
                "upload file",
                reqwest::Method::POST,
                &["_matrix", "media", "v3", "upload"],
                query,
                BotBody::Bytes { data, mime },
            )
            .await?;
        let uri = response["content_uri"]
            .as_str()
            .filter(|u| u.starts_with("mxc://"))
            .ok_or_else(|| MatrixError::Other {
                op: "upload file",
                reason: "the homeserver answered without a content_uri".into(),
            })?;
        Ok(serde_json::json!({ "url": uri }))
    }

    /// One request as the bot through the appservice token, retried with
    /// backoff while the homeserver is unavailable.
    async fn request_as_bot(
        &self,
        op: &'static str,
        method: reqwest::Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: BotBody<'_>,
    ) -> Result<Value, MatrixError> {
        let mut url = self.homeserver.clone();
        url.path_segments_mut()
            .map_err(|_| MatrixError::Other {
                op,
                reason: "the homeserver URL cannot take a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("user_id", self.bot_user_id.as_str());
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        let mut backoff = Backoff::new(self.retry);
        loop {
            let request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.as_token.expose())
                .timeout(self.retry.request_timeout);
            let request = match &body {
                BotBody::Json(value) => request.json(value),
                BotBody::Bytes { data, mime } => request
                    .header(reqwest::header::CONTENT_TYPE, *mime)
                    .body(data.clone()),
            };
            let result = request.send().await;
            let (server_wait, failure) = match result {
                Ok(response) if response.status().is_success() => {
                    return response.json().await.map_err(|e| MatrixError::Unavailable {
                        op,
                        reason: e.without_url().to_string(),
                    });
                }
                Ok(response) => {
                    let status = response.status();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    let errcode = body["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned();
                    let failure = if status.is_server_error() || status.as_u16() == 429 {
                        MatrixError::Unavailable {
                            op,
                            reason: format!("{status} {errcode}"),
                        }
                    } else {
                        debug!(op, %status, %errcode, "homeserver refused");
                        return Err(MatrixError::Refused {
                            op,
                            status: status.as_u16(),
                            errcode,
                            message: body["error"].as_str().unwrap_or("").to_owned(),
                        });
                    };
                    let wait = body["retry_after_ms"].as_u64().map(Duration::from_millis);
                    (wait, failure)
                }
                Err(e) => (
                    None,
                    MatrixError::Unavailable {
                        op,
                        reason: e.without_url().to_string(),
                    },
                ),
            };
            let Some(wait) = backoff.next(server_wait) else {
                error!(op, attempts = backoff.attempt, error = %failure, "giving up on the homeserver");
                return Err(failure);
            };
            warn!(op, attempt = backoff.attempt - 1, error = %failure, wait_ms = wait.as_millis() as u64, "homeserver call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// `PUT /_matrix/client/v3/rooms/{room}/{action}/{kind}/{key}` as the bot;
    /// returns the new event's id.
    async fn put_room_event(
        &self,
        op: &'static str,
        room_id: &RoomId,
        [action, kind, key]: [&str; 3],
        content: &Value,
    ) -> Result<OwnedEventId, MatrixError> {
        let segments = [
            "_matrix",
            "client",
            "v3",
            "rooms",
            room_id.as_str(),
            action,
            kind,
            key,
        ];
        let response = self.put_as_bot(op, &segments, content).await?;
        response["event_id"]
            .as_str()
            .and_then(|id| OwnedEventId::try_from(id).ok())
            .ok_or_else(|| MatrixError::Other {
                op,
                reason: "the homeserver answered without an event id".into(),
            })
    }

    /// Sends a message event with the given content. `txn_id` is derived from
    /// the command being answered, so a replay after a crash is deduplicated by
    /// the homeserver instead of posted twice. In an encrypted room (with E2EE
    /// on) the message is encrypted: see `crypto.rs`.
    pub async fn send_message(
        &self,
        room_id: &RoomId,
        txn_id: &str,
        content: &Value,
    ) -> Result<OwnedEventId, MatrixError> {
        if self.room_is_encrypted(room_id).await? {
            return self.send_encrypted(room_id, txn_id, content).await;
        }
        self.put_room_event(
            "send message",
            room_id,
            ["send", "m.room.message", txn_id],
            content,
        )
        .await
    }

    pub async fn send_state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        content: &Value,
    ) -> Result<OwnedEventId, MatrixError> {
        self.put_room_event(
            "send state event",
            room_id,
            ["state", event_type, state_key],
            content,
        )
        .await
    }

    /// A state event's content, or `None` if the room has none.
    pub async fn state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>, MatrixError> {
        self.read_state(
            room_id,
            event_type,
            state_key,
            get_state_event_for_key::v3::StateEventFormat::Content,
        )
        .await
    }

    /// A whole state event (sender, content, …), or `None` if the room has none.
    pub async fn state_event(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>, MatrixError> {
        self.read_state(
            room_id,
            event_type,
            state_key,
            get_state_event_for_key::v3::StateEventFormat::Event,
        )
        .await
    }

    async fn read_state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        format: get_state_event_for_key::v3::StateEventFormat,
    ) -> Result<Option<Value>, MatrixError> {
        let mut request = get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            StateEventType::from(event_type),
            state_key.to_owned(),
        );
        request.format = format;
        match self
            .retrying("read room state", false, |cfg| {
                self.bot
                    .send(request.clone())
                    .with_request_config(cfg)
                    .into_future()
            })
            .await
        {
            Ok(response) => Ok(serde_json::from_str(response.event_or_content.get()).ok()),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The users joined to a room, with their display names.
    pub async fn joined_members(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<(OwnedUserId, Option<String>)>, MatrixError> {
        let request = joined_members::v3::Request::new(room_id.to_owned());
        let response = self
            .retrying("list members", false, |cfg| {
                self.bot
                    .send(request.clone())
                    .with_request_config(cfg)
                    .into_future()
            })
            .await?;
        Ok(response
            .joined
            .into_iter()
            .map(|(user, member)| (user, member.display_name))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_and_honour_the_server_wait() {
        let mut backoff = Backoff::new(RetryPolicy::default());
        let mut waits = Vec::new();
        while let Some(wait) = backoff.next(None) {
            waits.push(wait);
        }
        assert_eq!(waits.len() as u32, RetryPolicy::default().attempts - 1);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
        let total: Duration = waits.iter().sum();
        // Backoff alone stays well under a minute, unlike matrix-sdk's 15.
        assert!(total < Duration::from_secs(30), "{total:?}");

        let mut backoff = Backoff::new(RetryPolicy::default());
        assert_eq!(
            backoff.next(Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            backoff.next(Some(Duration::from_secs(3600))),
            Some(Duration::from_secs(60)),
            "a huge retry_after is capped"
        );
    }
}
