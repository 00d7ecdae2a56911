//! LiveKit's webhooks: how the bridge learns who joined and left a call on a
//! LiveKit cluster. Each node posts `WebhookEvent`s (JSON) to
//! [`WEBHOOK_PATH`] on the bridge's web listener, signed with the API key: the
//! `Authorization` header is a JWT (HS256, `iss` = the key) whose `sha256`
//! claim is the base64 SHA-256 of the body. Anything else is refused with 401
//! and changes nothing.
//!
//! In the flow: `router` mounts [`handle`] for the backend (`LiveKitBackend::
//! router`); a verified event goes to `LiveKitBackend::webhook_event`, which
//! turns participant_joined/left into `MediaEvent`s. [`verify`] and
//! [`parse`] are pure and unit-tested here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use super::LiveKitBackend;

/// Where LiveKit posts its webhooks (set it in LiveKit's `webhook.urls`).
pub const WEBHOOK_PATH: &str = "/_salon/v1/livekit/webhook";

/// The largest webhook body accepted (events are a few kB).
const MAX_BODY: usize = 256 * 1024;

/// Why a webhook was refused. None of them says anything of the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("no Authorization header")]
    NoAuthorization,
    #[error("the signature is not a valid JWT signed with the API secret")]
    BadSignature,
    #[error("signed by another API key")]
    WrongKey,
    #[error("the body does not match the signed hash")]
    BodyMismatch,
}

#[derive(Deserialize)]
struct WebhookClaims {
    #[serde(default)]
    sha256: String,
}

/// Checks a webhook: the JWT in `authorization` (with or without `Bearer `)
/// is HS256 with `api_secret`, issued by `api_key`, current, and its `sha256`
/// claim is the base64 SHA-256 of `body`.
pub fn verify(
    authorization: Option<&str>,
    body: &[u8],
    api_key: &str,
    api_secret: &str,
) -> Result<(), WebhookError> {
    let token = authorization
        .map(|h| h.trim())
        .map(|h| h.strip_prefix("Bearer ").unwrap_or(h).trim())
        .filter(|t| !t.is_empty())
        .ok_or(WebhookError::NoAuthorization)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.set_issuer(&[api_key]);
    let claims = jsonwebtoken::decode::<WebhookClaims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(api_secret.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidIssuer => WebhookError::WrongKey,
        _ => WebhookError::BadSignature,
    })?
    .claims;
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    if subtle::ConstantTimeEq::ct_eq(claims.sha256.as_bytes(), hash.as_bytes()).into() {
        Ok(())
    } else {
        Err(WebhookError::BodyMismatch)
    }
}

/// What the bridge takes from a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    ParticipantJoined {
        room: String,
        identity: String,
        name: String,
    },
    ParticipantLeft {
        room: String,
        identity: String,
    },
    /// The room is gone (deleted, or empty past its timeout).
    RoomFinished {
        room: String,
    },
    /// Anything else (track_published, egress…): ignored.
    Other(String),
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    event: String,
    #[serde(default)]
    room: Option<RawRoom>,
    #[serde(default)]
    participant: Option<RawParticipant>,
}

#[derive(Deserialize)]
struct RawRoom {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct RawParticipant {
    #[serde(default)]
    identity: String,
    #[serde(default)]
    name: String,
}

/// Reads a verified body (LiveKit's protojson `WebhookEvent`).
pub fn parse(body: &[u8]) -> Result<WebhookEvent, serde_json::Error> {
    let raw: RawEvent = serde_json::from_slice(body)?;
    let room = raw.room.map(|r| r.name).unwrap_or_default();
    let participant = raw.participant;
    Ok(match (raw.event.as_str(), participant) {
        ("participant_joined", Some(p)) if !room.is_empty() => WebhookEvent::ParticipantJoined {
            room,
            identity: p.identity,
            name: p.name,
        },
        ("participant_left", Some(p)) if !room.is_empty() => WebhookEvent::ParticipantLeft {
            room,
            identity: p.identity,
        },
        ("room_finished", _) if !room.is_empty() => WebhookEvent::RoomFinished { room },
        (other, _) => WebhookEvent::Other(other.to_owned()),
    })
}

/// `POST /_salon/v1/livekit/webhook`.
pub(super) async fn handle(
    State(backend): State<Arc<LiveKitBackend>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if body.len() > MAX_BODY {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (key, secret) = backend.credentials();
    if let Err(error) = verify(authorization, &body, key, secret) {
        warn!(%error, "refused a LiveKit webhook");
        backend.count_refused_webhook();
        return StatusCode::UNAUTHORIZED;
    }
    match parse(&body) {
        Ok(event) => {
            debug!(?event, "LiveKit webhook");
            backend.webhook_event(event);
            StatusCode::OK
        }
        Err(error) => {
            warn!(%error, "a signed LiveKit webhook that is not an event");
            StatusCode::BAD_REQUEST
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    const KEY: &str = "APIkey";
    const SECRET: &str = "a-secret-long-enough-for-livekit-0123456789";

    #[derive(Serialize)]
    struct Signed<'a> {
        iss: &'a str,
        exp: u64,
        nbf: u64,
        sha256: String,
    }

    fn sign(key: &str, secret: &str, body: &[u8], exp_offset: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = Signed {
            iss: key,
            exp: now.saturating_add_signed(exp_offset),
            nbf: now - 10,
            sha256: base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body)),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    const JOINED: &[u8] = br#"{"event":"participant_joined","room":{"sid":"RM_1","name":"call-1"},"participant":{"sid":"PA_1","identity":"@alice:example.org","name":"Alice","state":"ACTIVE"},"id":"EV_1","createdAt":"1700000000"}"#;

    #[test]
    fn a_webhook_signed_by_livekit_is_accepted_as_livekit_sends_it() {
        let token = sign(KEY, SECRET, JOINED, 300);
        assert_eq!(verify(Some(&token), JOINED, KEY, SECRET), Ok(()));
        let bearer = format!("Bearer {token}");
        assert_eq!(verify(Some(&bearer), JOINED, KEY, SECRET), Ok(()));
    }

    #[test]
    fn anything_else_is_refused() {
        let token = sign(KEY, SECRET, JOINED, 300);
        assert_eq!(
            verify(None, JOINED, KEY, SECRET),
            Err(WebhookError::NoAuthorization)
        );
        assert_eq!(
            verify(Some(""), JOINED, KEY, SECRET),
            Err(WebhookError::NoAuthorization)
        );
        assert_eq!(
            verify(Some("not a jwt"), JOINED, KEY, SECRET),
            Err(WebhookError::BadSignature)
        );
        // Another secret, another key, an expired token, another body.
        let forged = sign(
            KEY,
            "another-secret-long-enough-for-livekit-0000",
            JOINED,
            300,
        );
        assert_eq!(
            verify(Some(&forged), JOINED, KEY, SECRET),
            Err(WebhookError::BadSignature)
        );
        let other_key = sign("APIother", SECRET, JOINED, 300);
        assert_eq!(
            verify(Some(&other_key), JOINED, KEY, SECRET),
            Err(WebhookError::WrongKey)
        );
        let expired = sign(KEY, SECRET, JOINED, -120);
        assert_eq!(
            verify(Some(&expired), JOINED, KEY, SECRET),
            Err(WebhookError::BadSignature)
        );
        let tampered = JOINED
            .to_vec()
            .into_iter()
            .map(|b| if b == b'1' { b'2' } else { b })
            .collect::<Vec<_>>();
        assert_eq!(
            verify(Some(&token), &tampered, KEY, SECRET),
            Err(WebhookError::BodyMismatch)
        );
        // A token whose header says "none" is no signature at all.
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = token.split('.').nth(1).unwrap();
        let unsigned = format!("{header}.{payload}.");
        assert_eq!(
            verify(Some(&unsigned), JOINED, KEY, SECRET),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn joins_leaves_and_finished_rooms_are_read() {
        assert_eq!(
            parse(JOINED).unwrap(),
            WebhookEvent::ParticipantJoined {
                room: "call-1".into(),
                identity: "@alice:example.org".into(),
                name: "Alice".into()
            }
        );
        let left = br#"{"event":"participant_left","room":{"name":"call-1"},"participant":{"identity":"@bob:example.org"}}"#;
        assert_eq!(
            parse(left).unwrap(),
            WebhookEvent::ParticipantLeft {
                room: "call-1".into(),
                identity: "@bob:example.org".into()
            }
        );
        let finished = br#"{"event":"room_finished","room":{"name":"call-1"}}"#;
        assert_eq!(
            parse(finished).unwrap(),
            WebhookEvent::RoomFinished {
                room: "call-1".into()
            }
        );
        let track = br#"{"event":"track_published","room":{"name":"call-1"}}"#;
        assert_eq!(
            parse(track).unwrap(),
            WebhookEvent::Other("track_published".into())
        );
        assert!(parse(b"not json").is_err());
    }
}
