//! The bot's reads and membership through the client-server API: matrix-sdk
//! on the bot's own device, every request under the retry policy.
//!
//! Where it sits: `Matrix` (`matrix/mod.rs`) hands room-state reads, joins,
//! leaves and profile changes here; writes that must not be rate-limited
//! (messages, state events, uploads) go through `as_bot.rs` instead. With E2EE
//! on, the matrix-sdk client is the one holding the crypto store
//! (`e2ee/device.rs`); this file does not care which.

use matrix_sdk::Client;
use ruma::api::client::account::whoami;
use ruma::api::client::membership::{join_room_by_id, leave_room};
use ruma::api::client::profile::set_display_name;
use ruma::api::client::state::get_state_event_for_key;
use ruma::api::client::state::get_state_event_for_key::v3::StateEventFormat;
use ruma::events::StateEventType;
use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::Value;

use super::retry::{MatrixError, RetryPolicy};

/// matrix-sdk, authenticated as the bot, with our retries.
#[derive(Clone)]
pub(crate) struct BotClient {
    sdk: Client,
    policy: RetryPolicy,
}

impl BotClient {
    pub(crate) fn new(sdk: Client, policy: RetryPolicy) -> Self {
        Self { sdk, policy }
    }

    /// Who the bot's token belongs to.
    pub(crate) async fn whoami(&self) -> Result<OwnedUserId, MatrixError> {
        let request = whoami::v3::Request::new();
        let response = self
            .policy
            .run_sdk("whoami", false, |cfg| {
                self.sdk.send(request.clone()).with_request_config(cfg)
            })
            .await?;
        Ok(response.user_id)
    }

    /// Sets the bot's display name. The older endpoint is used on purpose:
    /// every homeserver serves it, unlike the newer profile-field API.
    #[allow(deprecated)]
    pub(crate) async fn set_displayname(
        &self,
        user: &UserId,
        name: &str,
    ) -> Result<(), MatrixError> {
        let request = set_display_name::v3::Request::new(user.to_owned(), Some(name.to_owned()));
        self.policy
            .run_sdk("set display name", false, |cfg| {
                self.sdk.send(request.clone()).with_request_config(cfg)
            })
            .await
            .map(|_| ())
    }

    pub(crate) async fn join(&self, room_id: &RoomId) -> Result<(), MatrixError> {
        let request = join_room_by_id::v3::Request::new(room_id.to_owned());
        self.policy
            .run_sdk("join room", false, |cfg| {
                self.sdk.send(request.clone()).with_request_config(cfg)
            })
            .await
            .map(|_| ())
    }

    pub(crate) async fn leave(&self, room_id: &RoomId, reason: &str) -> Result<(), MatrixError> {
        let mut request = leave_room::v3::Request::new(room_id.to_owned());
        request.reason = Some(reason.to_owned());
        self.policy
            .run_sdk("leave room", false, |cfg| {
                self.sdk.send(request.clone()).with_request_config(cfg)
            })
            .await
            .map(|_| ())
    }

    /// A state event (its content, or the whole event, as `format` says),
    /// or `None` if the room has none.
    pub(crate) async fn read_state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        format: StateEventFormat,
    ) -> Result<Option<Value>, MatrixError> {
        let mut request = get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            StateEventType::from(event_type),
            state_key.to_owned(),
        );
        request.format = format;
        match self
            .policy
            .run_sdk("read room state", false, |cfg| {
                self.sdk.send(request.clone()).with_request_config(cfg)
            })
            .await
        {
            Ok(response) => Ok(serde_json::from_str(response.event_or_content.get()).ok()),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }
}
