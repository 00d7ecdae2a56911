//! The bot's identity on the homeserver: the appservice registers the bot
//! user and logs it in, and the bot's device and token are kept across
//! restarts.
//!
//! Where it sits: `Matrix::connect` (`matrix/mod.rs`) runs this once at
//! start-up. The appservice's own matrix-sdk client (its `as_token`) registers
//! `@visio:…` and logs it in with `m.login.application_service`; the resulting
//! [`BotSession`] is kept in the sled `meta` tree. Without E2EE, this file also
//! opens the bot's plain device ([`open_plain`]); with E2EE, `e2ee/device.rs`
//! opens it with a crypto store. [`build_client`] makes every matrix-sdk client
//! of the bridge, with matrix-sdk's retries off (`retry.rs` retries instead).

use std::path::Path;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::RequestConfig;
use matrix_sdk::encryption::EncryptionSettings;
use matrix_sdk::{Client, SessionMeta, SessionTokens};
use ruma::api::client::account::register;
use ruma::api::client::session::login;
use ruma::api::client::uiaa::{MatrixUserIdentifier, UserIdentifier};
use ruma::{OwnedDeviceId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::client::BotClient;
use super::retry::{MatrixError, RetryPolicy};
use crate::config::Config;
use crate::store::Store;

/// The bot's device and token, kept in the store. Its `Debug` leaves the
/// token out.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct BotSession {
    pub(crate) user_id: OwnedUserId,
    pub(crate) device_id: OwnedDeviceId,
    pub(crate) access_token: String,
}

impl std::fmt::Debug for BotSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotSession")
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

/// The sled `meta` key of the bot's last [`BotSession`].
pub(crate) const BOT_SESSION_KEY: &str = "bot_session";

/// A matrix-sdk client for the homeserver, with its retries off. With
/// `crypto_store`, the client keeps its state and crypto stores (SQLite)
/// in that folder and encrypts; cross-signing and backups are set up by
/// the bridge itself (`e2ee/device.rs`).
pub(crate) async fn build_client(
    config: &Config,
    crypto_store: Option<&Path>,
) -> Result<Client, MatrixError> {
    let mut builder = Client::builder()
        .homeserver_url(config.homeserver.url.as_str())
        .server_versions([ruma::api::MatrixVersion::V1_11])
        .request_config(RequestConfig::new().disable_retry());
    if let Some(dir) = crypto_store {
        builder = builder
            .sqlite_store(dir, None)
            .with_encryption_settings(EncryptionSettings {
                auto_enable_cross_signing: false,
                auto_enable_backups: false,
                ..Default::default()
            });
    }
    builder
        .build()
        .await
        .map_err(|e| MatrixError::other("build a homeserver client", e))
}

/// Makes `client` act as the session's device.
pub(crate) async fn restore(client: &Client, session: &BotSession) -> Result<(), MatrixError> {
    client
        .restore_session(MatrixSession {
            meta: SessionMeta {
                user_id: session.user_id.clone(),
                device_id: session.device_id.clone(),
            },
            tokens: SessionTokens {
                access_token: session.access_token.clone(),
                refresh_token: None,
            },
        })
        .await
        .map_err(|e| MatrixError::other("restore session", e))
}

/// The appservice's own client: the sender user, with the `as_token`.
pub(crate) struct Appservice {
    sdk: Client,
    bot: OwnedUserId,
    policy: RetryPolicy,
}

impl Appservice {
    pub(crate) async fn connect(config: &Config, policy: RetryPolicy) -> Result<Self, MatrixError> {
        let tokens = config
            .tokens()
            .map_err(|e| MatrixError::other("connect", e))?;
        let sender = UserId::parse(format!(
            "@{}:{}",
            tokens.sender_localpart, config.homeserver.server_name
        ))
        .map_err(|e| MatrixError::other("connect", e))?;
        let sdk = build_client(config, None).await?;
        let session = BotSession {
            user_id: sender,
            device_id: "SALON_APPSERVICE".into(),
            access_token: tokens.as_token.expose().to_owned(),
        };
        restore(&sdk, &session).await?;
        Ok(Self {
            sdk,
            bot: config.bot_user_id(),
            policy,
        })
    }

    /// Registers the bot user, unless it exists.
    pub(crate) async fn ensure_bot_registered(&self) -> Result<(), MatrixError> {
        let mut request = register::v3::Request::new();
        request.username = Some(self.bot.localpart().to_owned());
        request.inhibit_login = true;
        request.login_type = Some(register::LoginType::ApplicationService);
        match self
            .policy
            .run_sdk("register bot", true, |cfg| {
                self.sdk.send(request.clone()).with_request_config(cfg)
            })
            .await
        {
            Ok(_) => {
                info!(user_id = %self.bot, "registered the bot user");
                Ok(())
            }
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Logs the bot in: a new device and token.
    pub(crate) async fn login_bot(&self) -> Result<BotSession, MatrixError> {
        let identifier = UserIdentifier::Matrix(MatrixUserIdentifier::new(self.bot.to_string()));
        let info = login::v3::LoginInfo::ApplicationService(login::v3::ApplicationService::new(
            identifier,
        ));
        let mut request = login::v3::Request::new(info);
        request.initial_device_display_name = Some("Salon bridge".to_owned());
        let response = self
            .policy
            .run_sdk("log the bot in", true, |cfg| {
                self.sdk.send(request.clone()).with_request_config(cfg)
            })
            .await?;
        Ok(BotSession {
            user_id: response.user_id,
            device_id: response.device_id,
            access_token: response.access_token,
        })
    }
}

/// Opens the bot's plain device (E2EE off): the stored one while its token
/// works, else a new login, which is then stored.
pub(crate) async fn open_plain(
    config: &Config,
    store: &Store,
    appservice: &Appservice,
    policy: RetryPolicy,
) -> Result<Client, MatrixError> {
    let stored: Option<BotSession> = store
        .meta(BOT_SESSION_KEY)
        .map_err(|e| MatrixError::other("load bot session", e))?;
    if let Some(session) = stored.filter(|s| s.user_id == config.bot_user_id()) {
        let client = build_client(config, None).await?;
        restore(&client, &session).await?;
        match BotClient::new(client.clone(), policy).whoami().await {
            Ok(_) => {
                info!(device_id = %session.device_id, "reusing the bot's device");
                return Ok(client);
            }
            Err(e) if e.errcode() == Some("M_UNKNOWN_TOKEN") => {
                warn!("the bot's stored token is no longer valid; logging in again");
            }
            Err(e) => return Err(e),
        }
    }
    let session = appservice.login_bot().await?;
    let client = build_client(config, None).await?;
    restore(&client, &session).await?;
    store
        .set_meta(BOT_SESSION_KEY, &session)
        .await
        .map_err(|e| MatrixError::other("save bot session", e))?;
    info!(device_id = %session.device_id, "the bot logged in with a new device");
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{owned_device_id, owned_user_id};

    #[test]
    fn a_session_never_prints_its_token() {
        let session = BotSession {
            user_id: owned_user_id!("@visio:x"),
            device_id: owned_device_id!("DEVICE"),
            access_token: "syt_very_secret".into(),
        };
        let printed = format!("{session:?}");
        assert!(printed.contains("DEVICE"), "{printed}");
        assert!(!printed.contains("syt_very_secret"), "{printed}");
    }
}
