//! Requests as the bot through the appservice token: plaintext messages,
//! state events, media uploads and deleting the bot's old devices.
//!
//! Where it sits: `Matrix` (`matrix/mod.rs`) sends every write that is not
//! encrypted through here (encrypted messages go through the bot's device in
//! `e2ee/encrypt.rs`). The requests carry the appservice's `as_token` and
//! `?user_id=@visio:…` (identity assertion): the homeserver does not rate-limit
//! them (`rate_limited: false` in the registration), whereas the bot's own
//! device token is limited like any user's (with Synapse's defaults, 0.2
//! messages a second after a burst of ten). Every request runs under the retry
//! policy (`retry.rs`). The token is only ever put in the `Authorization`
//! header, never in a URL or a log line.

use std::time::Duration;

use reqwest::Method;
use ruma::{DeviceId, OwnedEventId, OwnedMxcUri, OwnedUserId, RoomId};
use serde_json::{Value, json};

use super::retry::{MatrixError, RetryPolicy};
use crate::config::Secret;

/// What a request as the bot carries.
enum Body<'a> {
    Json(&'a Value),
    Bytes { data: Vec<u8>, mime: &'a str },
}

/// The bot, as the appservice asserts it.
#[derive(Clone)]
pub(crate) struct AsBot {
    http: reqwest::Client,
    homeserver: url::Url,
    as_token: Secret,
    user_id: OwnedUserId,
    policy: RetryPolicy,
}

impl AsBot {
    pub(crate) fn new(
        homeserver: url::Url,
        as_token: Secret,
        user_id: OwnedUserId,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            http: reqwest::Client::new(),
            homeserver,
            as_token,
            user_id,
            policy,
        }
    }

    pub(crate) fn user_id(&self) -> &OwnedUserId {
        &self.user_id
    }

    /// `PUT /_matrix/client/v3/rooms/{room}/{action}/{kind}/{key}`; returns
    /// the new event's id. `action` is `send` (then `key` is the transaction
    /// id, which makes a replay a no-op) or `state` (then it is the state key).
    pub(crate) async fn put_room_event(
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
        let response = self
            .request(op, Method::PUT, &segments, &[], Body::Json(content))
            .await?;
        response["event_id"]
            .as_str()
            .and_then(|id| OwnedEventId::try_from(id).ok())
            .ok_or_else(|| MatrixError::other(op, "the homeserver answered without an event id"))
    }

    /// Uploads bytes to the media repository. An empty `filename` (an
    /// encrypted attachment's) is not sent at all.
    pub(crate) async fn upload(
        &self,
        data: Vec<u8>,
        mime: &str,
        filename: &str,
    ) -> Result<OwnedMxcUri, MatrixError> {
        const OP: &str = "upload file";
        let named = [("filename", filename)];
        let query = if filename.is_empty() {
            &named[..0]
        } else {
            &named[..]
        };
        let segments = ["_matrix", "media", "v3", "upload"];
        let response = self
            .request(
                OP,
                Method::POST,
                &segments,
                query,
                Body::Bytes { data, mime },
            )
            .await?;
        response["content_uri"]
            .as_str()
            .filter(|u| u.starts_with("mxc://"))
            .map(OwnedMxcUri::from)
            .ok_or_else(|| MatrixError::other(OP, "the homeserver answered without a content_uri"))
    }

    /// Deletes one of the bot's devices (no interactive auth is needed for a
    /// user the appservice owns). A device already gone is fine.
    pub(crate) async fn delete_device(&self, device_id: &DeviceId) -> Result<(), MatrixError> {
        let segments = ["_matrix", "client", "v3", "devices", device_id.as_str()];
        match self
            .request(
                "delete a device",
                Method::DELETE,
                &segments,
                &[],
                Body::Json(&json!({})),
            )
            .await
        {
            Err(MatrixError::Refused { status: 404, .. }) => Ok(()),
            result => result.map(|_| ()),
        }
    }

    /// One request as the bot under the retry policy; the JSON answer.
    async fn request(
        &self,
        op: &'static str,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Value, MatrixError> {
        let mut url = self.homeserver.clone();
        url.path_segments_mut()
            .map_err(|_| MatrixError::other(op, "the homeserver URL cannot take a path"))?
            .pop_if_empty()
            .extend(segments);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("user_id", self.user_id.as_str());
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        self.policy
            .run(op, || {
                let request = self
                    .http
                    .request(method.clone(), url.clone())
                    .bearer_auth(self.as_token.expose())
                    .timeout(self.policy.request_timeout);
                let request = match &body {
                    Body::Json(value) => request.json(value),
                    Body::Bytes { data, mime } => request
                        .header(reqwest::header::CONTENT_TYPE, *mime)
                        .body(data.clone()),
                };
                async move {
                    let response = request
                        .send()
                        .await
                        .map_err(|e| MatrixError::from_transport(op, e))?;
                    let status = response.status();
                    if status.is_success() {
                        return response
                            .json()
                            .await
                            .map_err(|e| MatrixError::from_transport(op, e));
                    }
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    Err(MatrixError::from_status(op, status, retry_after, &body))
                }
            })
            .await
    }
}
