//! LiveKit-format access tokens: HS256 JWTs whose `iss` is the API key, `sub`
//! the participant identity, and whose `video` grant names the room and what
//! the holder may do there.
//!
//! The bridge [`mint`]s one after it has checked a Matrix user may join a call;
//! the signaling endpoint [`verify`]s it. Only HS256 signed with the configured
//! secret, issued by the configured key, unexpired and granting `roomJoin` to a
//! named room is accepted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The `video` grant of a LiveKit token (camelCase on the wire).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    /// Room the holder may join.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    /// Whether the holder may join `room`.
    #[serde(default)]
    pub room_join: bool,
    /// Whether the holder may publish tracks (absent means yes, as in LiveKit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    /// Whether the holder may subscribe (absent means yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    /// Whether the holder may send data packets (absent means yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    /// Whether the holder may change its own name and metadata (Element
    /// Call expects it, as lk-jwt-service grants it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_update_own_metadata: Option<bool>,
}

/// The claims of a LiveKit token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// API key that issued the token.
    pub iss: String,
    /// Participant identity.
    pub sub: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not before, seconds since the epoch.
    #[serde(default)]
    pub nbf: u64,
    /// What the holder may do.
    #[serde(default)]
    pub video: VideoGrant,
}

impl Claims {
    /// Whether the holder may publish (LiveKit's default is yes).
    pub fn can_publish(&self) -> bool {
        self.video.can_publish.unwrap_or(true)
    }
    /// Whether the holder may subscribe (default yes).
    pub fn can_subscribe(&self) -> bool {
        self.video.can_subscribe.unwrap_or(true)
    }
    /// Whether the holder may send data packets (default yes).
    pub fn can_publish_data(&self) -> bool {
        self.video.can_publish_data.unwrap_or(true)
    }
}

/// Why a token was refused. The messages never contain the token or secret.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT, a bad signature, another algorithm, or malformed claims.
    #[error("token is malformed or its signature is invalid")]
    Invalid,
    /// `exp` is in the past (or `nbf` in the future).
    #[error("token has expired or is not yet valid")]
    Expired,
    /// `iss` is not our API key.
    #[error("token was issued by an unknown API key")]
    UnknownIssuer,
    /// The grant does not allow joining, names no room, or names another room.
    #[error("token does not grant joining this room")]
    WrongRoom,
    /// No identity (`sub`).
    #[error("token carries no identity")]
    NoIdentity,
}

/// Clock skew tolerated on `exp`/`nbf`, in seconds.
const LEEWAY_SECS: u64 = 5;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Mints a LiveKit token for `identity` in `room`, valid for `ttl`, allowed
/// to publish, subscribe and send data.
pub fn mint(
    api_key: &str,
    api_secret: &str,
    room: &str,
    identity: &str,
    name: &str,
    ttl: Duration,
) -> String {
    let now = now_secs();
    let claims = Claims {
        iss: api_key.to_owned(),
        sub: identity.to_owned(),
        name: name.to_owned(),
        exp: now + ttl.as_secs().max(1),
        nbf: now.saturating_sub(LEEWAY_SECS),
        video: VideoGrant {
            room: room.to_owned(),
            room_join: true,
            can_publish: Some(true),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            can_update_own_metadata: Some(true),
        },
    };
    encode(api_secret, &claims)
}

/// Signs arbitrary claims with HS256. Used by [`mint`], and by tests that
/// need a token with unusual claims.
pub fn encode(api_secret: &str, claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(api_secret.as_bytes()),
    )
    // HS256 encoding of a serialisable struct cannot fail.
    .unwrap_or_default()
}

/// Verifies `token` against our key and secret. With `expected_room`, the grant
/// must name exactly that room; without, any named room is accepted.
pub fn verify(
    token: &str,
    api_key: &str,
    api_secret: &str,
    expected_room: Option<&str>,
) -> Result<Claims, TokenError> {
    if token.len() > 8192 {
        return Err(TokenError::Invalid);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(api_secret.as_bytes()),
        &validation,
    )
    .map_err(|error| match error.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
        | jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::Expired,
        _ => TokenError::Invalid,
    })?;
    let claims = data.claims;
    if claims.iss != api_key {
        return Err(TokenError::UnknownIssuer);
    }
    if claims.sub.is_empty() {
        return Err(TokenError::NoIdentity);
    }
    if !claims.video.room_join || claims.video.room.is_empty() {
        return Err(TokenError::WrongRoom);
    }
    if let Some(room) = expected_room
        && claims.video.room != room
    {
        return Err(TokenError::WrongRoom);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "APIkey";
    const SECRET: &str = "a-secret-of-enough-length-for-hs256";

    #[test]
    fn minted_token_verifies_with_its_claims() {
        let token = mint(
            KEY,
            SECRET,
            "call-1",
            "@alice:example.org",
            "Alice",
            Duration::from_secs(300),
        );
        let claims = verify(&token, KEY, SECRET, Some("call-1")).expect("valid token");
        assert_eq!(claims.sub, "@alice:example.org");
        assert_eq!(claims.name, "Alice");
        assert_eq!(claims.iss, KEY);
        assert!(claims.video.room_join && claims.can_publish() && claims.can_subscribe());
        let now = now_secs();
        assert!(claims.exp > now + 290 && claims.exp <= now + 300);
    }

    #[test]
    fn token_uses_livekit_claim_names() {
        let token = mint(KEY, SECRET, "r", "bob", "Bob", Duration::from_secs(60));
        let payload = token.split('.').nth(1).expect("payload part");
        let json = base64_url_decode(payload);
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(value["video"]["roomJoin"], true);
        assert_eq!(value["video"]["canPublish"], true);
        assert_eq!(value["video"]["canSubscribe"], true);
        assert_eq!(value["video"]["canUpdateOwnMetadata"], true);
        assert_eq!(value["video"]["room"], "r");
        assert_eq!(value["sub"], "bob");
    }

    #[test]
    fn wrong_secret_is_refused() {
        let token = mint(
            KEY,
            "another-secret",
            "r",
            "bob",
            "",
            Duration::from_secs(60),
        );
        assert_eq!(verify(&token, KEY, SECRET, None), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_token_is_refused() {
        let mut claims = verify(
            &mint(KEY, SECRET, "r", "bob", "", Duration::from_secs(60)),
            KEY,
            SECRET,
            None,
        )
        .expect("valid");
        claims.exp = now_secs() - 60;
        claims.nbf = 0;
        let token = encode(SECRET, &claims);
        assert_eq!(verify(&token, KEY, SECRET, None), Err(TokenError::Expired));
    }

    #[test]
    fn other_issuer_is_refused() {
        let token = mint("OtherKey", SECRET, "r", "bob", "", Duration::from_secs(60));
        assert_eq!(
            verify(&token, KEY, SECRET, None),
            Err(TokenError::UnknownIssuer)
        );
    }

    #[test]
    fn wrong_room_or_no_join_grant_is_refused() {
        let token = mint(KEY, SECRET, "room-a", "bob", "", Duration::from_secs(60));
        assert_eq!(
            verify(&token, KEY, SECRET, Some("room-b")),
            Err(TokenError::WrongRoom)
        );
        let mut claims = verify(&token, KEY, SECRET, None).expect("valid");
        claims.video.room_join = false;
        let token = encode(SECRET, &claims);
        assert_eq!(
            verify(&token, KEY, SECRET, None),
            Err(TokenError::WrongRoom)
        );
    }

    #[test]
    fn unsigned_and_garbage_tokens_are_refused() {
        // alg "none" with the same claims.
        let token = mint(KEY, SECRET, "r", "bob", "", Duration::from_secs(60));
        let payload = token.split('.').nth(1).expect("payload");
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        let forged = format!("{none_header}.{payload}.");
        assert_eq!(verify(&forged, KEY, SECRET, None), Err(TokenError::Invalid));
        assert_eq!(
            verify("not-a-jwt", KEY, SECRET, None),
            Err(TokenError::Invalid)
        );
        assert_eq!(verify("", KEY, SECRET, None), Err(TokenError::Invalid));
        let huge = "a".repeat(100_000);
        assert_eq!(verify(&huge, KEY, SECRET, None), Err(TokenError::Invalid));
    }

    #[test]
    fn tampered_payload_is_refused() {
        let token = mint(KEY, SECRET, "r", "bob", "", Duration::from_secs(60));
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&base64_url_decode(parts[1])).expect("json");
        claims["sub"] = "mallory".into();
        let forged_payload = base64_url_encode(&serde_json::to_vec(&claims).expect("json"));
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(verify(&forged, KEY, SECRET, None), Err(TokenError::Invalid));
    }

    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn base64_url_decode(input: &str) -> Vec<u8> {
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut out = Vec::new();
        for c in input.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64url") as u32;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
        }
        out
    }

    fn base64_url_encode(input: &[u8]) -> String {
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
