//! The MatrixRTC focus: Salon answering in place of lk-jwt-service, so that
//! an unmodified Element Call (the call button of Element and Tchap) runs its
//! calls on Salon's SFU.
//!
//! Where it sits: the homeserver advertises Salon as a MatrixRTC transport
//! (`matrix_rtc.transports[].livekit_service_url` = the public URL of
//! [`BASE_PATH`], `docs/element-call.md`). Element Call posts a Matrix OpenID
//! token here; like [`access`](crate::access) for the call page, the bridge
//! checks it with the homeserver and checks that the user is **joined** to
//! the room (lk-jwt-service does not; a call membership is not required, as
//! Element Call asks before it writes one), then has the media backend
//! ([`MediaBackend::join_grant`](crate::media::MediaBackend::join_grant))
//! mint a LiveKit token for the room's LiveKit room. Element Call then
//! connects to the URL it gets back (`/rtc`, the embedded SFU).
//!
//! The request and response shapes, the identities and the LiveKit room
//! names are exactly lk-jwt-service's (v0.5):
//! - `POST {base}/sfu/get` `{room, openid_token, device_id}`: identity
//!   `{mxid}:{device_id}`, room [`livekit_room`]`(room, "m.call#ROOM")`;
//! - `POST {base}/get_token` `{room_id, slot_id, openid_token, member}`:
//!   identity [`hashed_identity`] (MSC4195), room
//!   [`livekit_room`]`(room_id, slot_id)`;
//! - both answer `{url, jwt}`; errors are `{errcode, error}`, with CORS on
//!   every answer and `OPTIONS` answered.
//!
//! What the tokens record (`store/media.rs`): which Matrix room a LiveKit
//! room is, and which Matrix user (and display name) an identity is, so the
//! bridge can name Element Call's participants in `!visio status`,
//! transcripts and minutes. The room's call itself comes from the call
//! memberships Element Call writes (`rtc.rs`, `room/lifecycle.rs`), and every
//! Salon call of the room uses the same LiveKit room, so Element Call and the
//! call page meet.
//!
//! Delegating the delayed leave event (`{base}/delegate_delayed_leave`) is
//! not offered: it answers 404, which Element Call reads as "not supported".
//! The base path is `[web] focus_path` (default [`BASE_PATH`]).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use ruma::{OwnedRoomId, OwnedUserId, RoomId};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::json;
use tracing::{info, warn};

use crate::access::{AccessState, Membership, Verification};
use crate::appservice::matrix_error;
use crate::matrix::MatrixError;
pub use crate::rtc::{ROOM_SLOT, hashed_identity, legacy_identity, livekit_room};
use crate::store::MediaIdentity;

/// Where the focus API is served on the web listener, by default.
pub const BASE_PATH: &str = "/livekit/jwt";
/// How long a focus token is valid (lk-jwt-service's hour: Element Call
/// reconnects with the same token).
pub const FOCUS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The largest request body read.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The focus routes under `base` (e.g. [`BASE_PATH`]).
pub fn router(base: &str, state: AccessState) -> Router {
    let base = base.trim_end_matches('/');
    Router::new()
        .route(&format!("{base}/sfu/get"), post(sfu_get))
        .route(&format!("{base}/get_token"), post(get_token))
        .route(&format!("{base}/healthz"), get(|| async { StatusCode::OK }))
        .route(
            &format!("{base}/delegate_delayed_leave"),
            any(delegate_delayed_leave),
        )
        .route(&format!("{base}/{{*rest}}"), any(not_here))
        .layer(middleware::from_fn(cors))
        .with_state(state)
}

/// CORS on every answer (Element Call runs on another origin); a preflight
/// `OPTIONS` is answered here, as lk-jwt-service does.
async fn cors(request: Request, next: Next) -> Response {
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token",
        ),
    );
    response
}

/// A refusal, as `{errcode, error}`.
#[derive(Debug)]
struct Refusal(StatusCode, &'static str, String);

impl Refusal {
    fn bad_json(error: impl Into<String>) -> Self {
        Refusal(StatusCode::BAD_REQUEST, "M_BAD_JSON", error.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        matrix_error(self.0, self.1, &self.2)
    }
}

/// The OpenID token object, as the widget API's `get_openid` returns it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenIdToken {
    access_token: String,
    #[serde(default, rename = "token_type")]
    _token_type: Option<String>,
    matrix_server_name: String,
    #[serde(default, rename = "expires_in")]
    _expires_in: Option<i64>,
}

/// `POST {base}/sfu/get`. No `delay_*` fields: a client that sends them is
/// told `M_BAD_JSON`, and Element Call then asks again without them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyRequest {
    room: String,
    openid_token: OpenIdToken,
    #[serde(default)]
    device_id: String,
}

/// `POST {base}/get_token`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    room_id: String,
    slot_id: String,
    openid_token: OpenIdToken,
    member: Member,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    id: String,
    claimed_user_id: String,
    claimed_device_id: String,
}

/// The body as `T`: 413 past [`MAX_BODY_BYTES`], `M_NOT_JSON` for what is
/// not JSON, `M_BAD_JSON` for JSON of another shape (unknown fields too).
async fn read_body<T: DeserializeOwned>(body: Body, expected: &str) -> Result<T, Refusal> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            Refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "M_TOO_LARGE",
                format!("the body is over {MAX_BODY_BYTES} bytes"),
            )
        })?;
    parse_body(&bytes, expected)
}

fn parse_body<T: DeserializeOwned>(bytes: &[u8], expected: &str) -> Result<T, Refusal> {
    serde_json::from_slice(bytes).map_err(|e| {
        if serde_json::from_slice::<IgnoredAny>(bytes).is_ok() {
            Refusal::bad_json(format!("expected {expected}: {e}"))
        } else {
            Refusal(
                StatusCode::BAD_REQUEST,
                "M_NOT_JSON",
                "the body is not valid JSON".into(),
            )
        }
    })
}

fn required(fields: &[(&str, &str)]) -> Result<(), Refusal> {
    match fields.iter().find(|(_, value)| value.is_empty()) {
        Some((name, _)) => Err(Refusal::bad_json(format!("`{name}` is missing or empty"))),
        None => Ok(()),
    }
}

/// Both bodies, parsed and checked as the handlers do before they ask the
/// homeserver anything: the entry of the `focus_bodies` fuzz target.
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_bodies_for_fuzzing(body: &[u8]) {
    if let Ok(request) = parse_body::<LegacyRequest>(body, "") {
        let _ = request.validate();
    }
    if let Ok(request) = parse_body::<TokenRequest>(body, "") {
        let _ = request.validate();
    }
}

fn matrix_room(room_id: &str) -> Result<OwnedRoomId, Refusal> {
    RoomId::parse(room_id)
        .map_err(|_| Refusal::bad_json(format!("not a Matrix room id: {room_id}")))
}

impl LegacyRequest {
    fn validate(&self) -> Result<OwnedRoomId, Refusal> {
        let token = &self.openid_token;
        required(&[
            ("room", &self.room),
            ("openid_token.access_token", &token.access_token),
            ("openid_token.matrix_server_name", &token.matrix_server_name),
            ("device_id", &self.device_id),
        ])?;
        // The device id is part of the identity as it is, and Element Call
        // reads the token with `atob`: plain printable ASCII only.
        if self.device_id.len() > 255 || !self.device_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Refusal::bad_json("`device_id` must be printable ASCII"));
        }
        matrix_room(&self.room)
    }
}

impl TokenRequest {
    fn validate(&self) -> Result<OwnedRoomId, Refusal> {
        let (token, member) = (&self.openid_token, &self.member);
        required(&[
            ("room_id", &self.room_id),
            ("slot_id", &self.slot_id),
            ("openid_token.access_token", &token.access_token),
            ("openid_token.matrix_server_name", &token.matrix_server_name),
            ("member.id", &member.id),
            ("member.claimed_user_id", &member.claimed_user_id),
            ("member.claimed_device_id", &member.claimed_device_id),
        ])?;
        matrix_room(&self.room_id)
    }
}

/// Who the token belongs to (and their display name in the room), and that
/// they are joined to `room_id`.
async fn joined_user(
    state: &AccessState,
    token: &OpenIdToken,
    room_id: &RoomId,
    claimed_user_id: Option<&str>,
) -> Result<(OwnedUserId, String), Refusal> {
    let unauthorized = || {
        Refusal(
            StatusCode::UNAUTHORIZED,
            "M_UNAUTHORIZED",
            "the homeserver did not vouch for this OpenID token".into(),
        )
    };
    let user = match state
        .verify_openid(&token.access_token, &token.matrix_server_name)
        .await
    {
        Verification::User(user) => user,
        Verification::Rejected => {
            warn!(%room_id, "focus token refused: the homeserver did not vouch for the OpenID token");
            return Err(unauthorized());
        }
        Verification::Unavailable(reason) => {
            warn!(%reason, "cannot verify an OpenID token: homeserver unavailable");
            return Err(Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "M_UNAVAILABLE",
                "the homeserver cannot be reached to check who you are; try again shortly".into(),
            ));
        }
    };
    if claimed_user_id.is_some_and(|claimed| claimed != user.as_str()) {
        warn!(%user, "focus token refused: member.claimed_user_id is someone else");
        return Err(unauthorized());
    }
    match state.membership(room_id, &user).await {
        Membership::Joined(member) => {
            let name = member["displayname"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            Ok((user, name))
        }
        Membership::NotJoined => {
            info!(%room_id, %user, "focus token refused: not a member of the room");
            Err(Refusal(
                StatusCode::FORBIDDEN,
                "M_FORBIDDEN",
                "only members of the room can join its call".into(),
            ))
        }
        // The bot cannot see the room: it was never invited, or left.
        Membership::Unknown(MatrixError::Refused { .. }) => {
            info!(%room_id, %user, "focus token refused: the bot is not in the room");
            Err(Refusal(
                StatusCode::FORBIDDEN,
                "M_FORBIDDEN",
                format!(
                    "Salon cannot see this room's members; invite {} to the room first",
                    state.config.bot_user_id()
                ),
            ))
        }
        Membership::Unknown(e) => {
            warn!(%room_id, error = %e, "cannot read room membership");
            Err(Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "M_UNAVAILABLE",
                "cannot check room membership right now; try again shortly".into(),
            ))
        }
    }
}

/// Element Call decodes the token's claims with `atob`, which knows only the
/// standard base64 alphabet: the payload must hold no `-` or `_`.
fn readable_by_atob(jwt: &str) -> bool {
    jwt.split('.')
        .nth(1)
        .is_some_and(|payload| !payload.contains(['-', '_']))
}

/// The answer `{url, jwt}`, for `identity` (`who`) in the LiveKit room
/// `room`. The room's call, when it is the Matrix room's (`room_id`), and
/// who the identity is, are recorded first, so that the bridge can name the
/// participant when the SFU reports the join.
/// The moderators' word on `user` joining the room's live call, if there is
/// one (a removal, a lock): as for Salon's page.
async fn admitted_to_room_call(
    state: &AccessState,
    room_id: &OwnedRoomId,
    user: &ruma::UserId,
) -> Result<(), Refusal> {
    let call = match state.store.room_call(room_id) {
        Ok(call) => call.filter(crate::calls::Call::is_active),
        Err(e) => {
            warn!(error = %e, "cannot read the room's call");
            return Err(Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "M_UNAVAILABLE",
                "Salon's storage failed; try again shortly".into(),
            ));
        }
    };
    match call {
        Some(call) => state
            .call_admits(&call, user)
            .await
            .map_err(|(status, code, reason)| Refusal(status, code, reason)),
        None => Ok(()),
    }
}

fn grant(
    state: &AccessState,
    (room, room_id): (&str, Option<&OwnedRoomId>),
    identity: &str,
    who: &MediaIdentity,
) -> Result<Response, Refusal> {
    let recorded = room_id
        .map(|room_id| state.store.record_media_room(room, room_id))
        .transpose()
        .and_then(|_| state.store.record_identity(identity, who));
    if let Err(e) = recorded {
        warn!(error = %e, "cannot record who a focus token is for");
        return Err(Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "M_UNAVAILABLE",
            "Salon's storage failed; try again shortly".into(),
        ));
    }
    // No `name`: claims stay ASCII (Element Call shows the Matrix name).
    let grant = state.media.join_grant(room, identity, "", FOCUS_TOKEN_TTL);
    if !readable_by_atob(&grant.token) {
        return Err(Refusal::bad_json(
            "this identity cannot be carried in a token Element Call can read",
        ));
    }
    Ok(Json(json!({ "url": grant.url, "jwt": grant.token })).into_response())
}

/// A request counted against its address's attempts, then read as `T`.
async fn admit<T: DeserializeOwned>(
    state: &AccessState,
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
    body: Body,
    expected: &str,
) -> Result<T, Refusal> {
    if !state.allow_attempt(peer, headers) {
        return Err(Refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "M_LIMIT_EXCEEDED",
            "too many token requests; wait a minute".into(),
        ));
    }
    read_body(body, expected).await
}

async fn sfu_get(
    State(state): State<AccessState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let request: LegacyRequest = admit(
        &state,
        peer,
        &headers,
        body,
        "{room, openid_token, device_id}",
    )
    .await?;
    let room_id = request.validate()?;
    let (user, name) = joined_user(&state, &request.openid_token, &room_id, None).await?;
    admitted_to_room_call(&state, &room_id, &user).await?;
    let room = livekit_room(room_id.as_str(), ROOM_SLOT);
    let identity = legacy_identity(user.as_str(), &request.device_id);
    let who = MediaIdentity {
        user_id: user.clone(),
        name,
    };
    let answer = grant(&state, (&room, Some(&room_id)), &identity, &who)?;
    info!(%room_id, %user, %identity, livekit_room = %room, "focus token issued (sfu/get)");
    Ok(answer)
}

async fn get_token(
    State(state): State<AccessState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let request: TokenRequest = admit(
        &state,
        peer,
        &headers,
        body,
        "{room_id, slot_id, openid_token, member}",
    )
    .await?;
    let room_id = request.validate()?;
    let member = &request.member;
    let (user, name) = joined_user(
        &state,
        &request.openid_token,
        &room_id,
        Some(&member.claimed_user_id),
    )
    .await?;
    let room = livekit_room(room_id.as_str(), &request.slot_id);
    let identity = hashed_identity(user.as_str(), &member.claimed_device_id, &member.id);
    let who = MediaIdentity {
        user_id: user.clone(),
        name,
    };
    // another slot than the room's call is a call Salon does not run
    let room_call = (request.slot_id == ROOM_SLOT).then_some(&room_id);
    if room_call.is_some() {
        admitted_to_room_call(&state, &room_id, &user).await?;
    }
    let answer = grant(&state, (&room, room_call), &identity, &who)?;
    info!(%room_id, %user, %identity, livekit_room = %room, "focus token issued (get_token)");
    Ok(answer)
}

/// Element Call probes this; 404 means "the focus does not delegate".
async fn delegate_delayed_leave() -> Refusal {
    Refusal(
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
        "delegating the delayed leave event is not supported by this focus".into(),
    )
}

async fn not_here() -> Refusal {
    Refusal(
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
        "no such focus endpoint".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<T>(result: Result<T, Refusal>) -> (u16, &'static str) {
        match result {
            Ok(_) => panic!("expected a refusal"),
            Err(Refusal(status, errcode, _)) => (status.as_u16(), errcode),
        }
    }

    #[test]
    fn element_calls_sfu_get_body_parses_and_validates() {
        let body = br#"{"room":"!r:localhost","openid_token":{"access_token":"tok","expires_in":3600,"matrix_server_name":"localhost","token_type":"Bearer"},"device_id":"DEVA"}"#;
        let request: LegacyRequest = parse_body(body, "").unwrap();
        assert_eq!(request.validate().unwrap().as_str(), "!r:localhost");
        assert_eq!(request.device_id, "DEVA");
    }

    #[test]
    fn element_calls_get_token_body_parses_and_validates() {
        let body = br#"{"room_id":"!r:hs","slot_id":"m.call#ROOM","openid_token":{"access_token":"t","expires_in":3600,"matrix_server_name":"hs","token_type":"Bearer"},"member":{"id":"m1","claimed_user_id":"@u:hs","claimed_device_id":"DEV"}}"#;
        let request: TokenRequest = parse_body(body, "").unwrap();
        assert_eq!(request.validate().unwrap().as_str(), "!r:hs");
    }

    #[test]
    fn malformed_bodies_are_told_apart() {
        assert_eq!(
            refusal(parse_body::<LegacyRequest>(b"not json", "")),
            (400, "M_NOT_JSON")
        );
        assert_eq!(
            refusal(parse_body::<LegacyRequest>(b"", "")),
            (400, "M_NOT_JSON")
        );
        assert_eq!(
            refusal(parse_body::<LegacyRequest>(br#"{"room": 1}"#, "")),
            (400, "M_BAD_JSON")
        );
        // Delegation fields are unknown here: Element Call retries without them.
        let delayed = br#"{"room":"!r:hs","openid_token":{"access_token":"t","matrix_server_name":"hs"},"device_id":"D","delay_id":"x","delay_timeout":1000,"delay_cs_api_url":"https://hs"}"#;
        assert_eq!(
            refusal(parse_body::<LegacyRequest>(delayed, "")),
            (400, "M_BAD_JSON")
        );
        let nested = br#"{"room":"!r:hs","openid_token":{"access_token":"t","matrix_server_name":"hs","extra":1},"device_id":"D"}"#;
        assert_eq!(
            refusal(parse_body::<LegacyRequest>(nested, "")),
            (400, "M_BAD_JSON")
        );
    }

    #[test]
    fn empty_or_unusable_fields_are_refused() {
        let legacy = |room: &str, device: &str, server: &str| LegacyRequest {
            room: room.into(),
            openid_token: OpenIdToken {
                access_token: "t".into(),
                _token_type: None,
                matrix_server_name: server.into(),
                _expires_in: None,
            },
            device_id: device.into(),
        };
        assert!(legacy("!r:hs", "DEV", "hs").validate().is_ok());
        for bad in [
            legacy("", "DEV", "hs"),
            legacy("!r:hs", "", "hs"),
            legacy("!r:hs", "DEV", ""),
            legacy("not-a-room", "DEV", "hs"),
            legacy("!r:hs", "DÉV", "hs"),
            legacy("!r:hs", "D V", "hs"),
        ] {
            assert_eq!(refusal(bad.validate()), (400, "M_BAD_JSON"));
        }
    }

    #[test]
    fn the_embedded_sfus_token_is_what_element_call_reads() {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD_NO_PAD;
        let room = livekit_room("!roomid:example.com", ROOM_SLOT);
        for identity in [
            legacy_identity("@alice:example.com", "DEVICE123"),
            hashed_identity("@alice:example.com", "DEVICE123", "memberABC"),
        ] {
            let token = salon_sfu::token::mint(
                "salon",
                "a-secret-of-enough-length-for-hs256",
                &room,
                &identity,
                "",
                FOCUS_TOKEN_TTL,
            );
            let parts: Vec<&str> = token.split('.').collect();
            let header: serde_json::Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(parts[0])
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(header["alg"], "HS256");
            assert!(readable_by_atob(&token), "{token}");
            // atob's alphabet: standard base64, and the claims are ASCII.
            let payload = STANDARD_NO_PAD.decode(parts[1]).expect("standard base64");
            assert!(payload.is_ascii());
            let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(claims["sub"], identity.as_str());
            assert!(claims.get("name").is_none());
            let video = &claims["video"];
            assert_eq!(video["room"], room.as_str());
            for grant in [
                "roomJoin",
                "canPublish",
                "canSubscribe",
                "canUpdateOwnMetadata",
            ] {
                assert_eq!(video[grant], true, "{grant}");
            }
        }
        assert!(!readable_by_atob("a.eyJ-_.b"));
    }
}
