//! Who may join a call: the `/_salon/v1` API the call page talks to.
//!
//! The page proves who it is with a Matrix OpenID token. The bridge checks it
//! with the homeserver (`/_matrix/federation/v1/openid/userinfo`), checks that
//! the user is **joined** to the call's room, and only then returns a LiveKit
//! token for this call's SFU room, valid for five minutes, whose identity is
//! the user's mxid, or `{mxid}:{device_id}` when the page names its Matrix
//! device (it then writes a MatrixRTC membership for that device, which
//! Element Call matches to this identity). This is the model of MatrixRTC's
//! lk-jwt-service.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ruma::{OwnedUserId, RoomId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::appservice::matrix_error;
use crate::calls::Call;
use crate::config::Config;
use crate::matrix::{Matrix, MatrixError};
use crate::media::MediaBackend;
use crate::rtc::legacy_identity;
use crate::store::{MediaIdentity, Store};

/// How long a join token is valid.
pub const JOIN_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);

/// What the access routes need.
#[derive(Clone)]
pub struct AccessState {
    pub config: Arc<Config>,
    pub store: Store,
    pub matrix: Matrix,
    pub media: Arc<dyn MediaBackend>,
    /// The rooms' queues, for moderators' acts from the page (in order with
    /// the room's commands). `None`: the page cannot moderate.
    pub rooms: Option<crate::queues::RoomQueues>,
    http: reqwest::Client,
    limiter: Arc<Mutex<RateLimiter>>,
}

impl AccessState {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        matrix: Matrix,
        media: Arc<dyn MediaBackend>,
    ) -> Self {
        Self {
            config,
            store,
            matrix,
            media,
            rooms: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client builds"),
            limiter: Arc::new(Mutex::new(RateLimiter::default())),
        }
    }

    /// The same, with the rooms' queues for the page's moderation route.
    pub fn with_rooms(mut self, rooms: crate::queues::RoomQueues) -> Self {
        self.rooms = Some(rooms);
        self
    }

    /// The 429 answer when the client behind `peer` made more than
    /// `[web] attempts_per_minute` attempts this minute (this one counted);
    /// `None` while it may go on.
    pub(crate) fn over_limit(&self, peer: SocketAddr, headers: &HeaderMap) -> Option<Response> {
        (!self.allow_attempt(peer, headers)).then(|| {
            matrix_error(
                StatusCode::TOO_MANY_REQUESTS,
                "M_LIMIT_EXCEEDED",
                "too many attempts from this address; wait a minute",
            )
        })
    }

    /// Counts one attempt from the client behind `peer`; false once it made
    /// more than `[web] attempts_per_minute` this minute.
    pub(crate) fn allow_attempt(&self, peer: SocketAddr, headers: &HeaderMap) -> bool {
        let ip = client_ip(peer.ip(), headers, &self.config.web.trusted_proxies);
        self.limiter.lock().expect("limiter lock").allow(
            ip,
            Instant::now(),
            self.config.web.attempts_per_minute,
        )
    }

    /// Asks the homeserver who an OpenID token belongs to
    /// (`/_matrix/federation/v1/openid/userinfo`). Only tokens of this
    /// bridge's homeserver, for its users, are vouched for.
    pub(crate) async fn verify_openid(
        &self,
        access_token: &str,
        matrix_server_name: &str,
    ) -> Verification {
        let homeserver = &self.config.homeserver;
        if matrix_server_name != homeserver.server_name.as_str() {
            return Verification::Rejected;
        }
        let url = match url::Url::parse_with_params(
            &format!(
                "{}/_matrix/federation/v1/openid/userinfo",
                homeserver.url.as_str().trim_end_matches('/')
            ),
            [("access_token", access_token)],
        ) {
            Ok(url) => url,
            Err(_) => return Verification::Rejected,
        };
        let response = match self.http.get(url).send().await {
            Ok(r) => r,
            Err(e) => return Verification::Unavailable(e.without_url().to_string()),
        };
        if response.status().is_server_error() {
            return Verification::Unavailable(response.status().to_string());
        }
        if !response.status().is_success() {
            return Verification::Rejected;
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match body["sub"].as_str().map(UserId::parse) {
            Some(Ok(user)) if user.server_name() == homeserver.server_name => {
                Verification::User(user)
            }
            _ => Verification::Rejected,
        }
    }

    /// Whether the live `call` lets `user` in: not if a moderator removed
    /// them, nor, while it is locked, unless they are a moderator. The power
    /// levels are read only for a locked call. `Err`: status, errcode and
    /// the reason in words.
    pub(crate) async fn call_admits(
        &self,
        call: &Call,
        user: &UserId,
    ) -> Result<(), (StatusCode, &'static str, String)> {
        let power = match &call.locked_by {
            None => 0,
            Some(_) => match self.matrix.power_levels(&call.room_id).await {
                Ok(levels) => levels.user_level(user),
                Err(e) => {
                    warn!(call_id = %call.id, error = %e, "cannot read the power levels of a locked call");
                    return Err((
                        StatusCode::SERVICE_UNAVAILABLE,
                        "M_UNAVAILABLE",
                        "cannot check who may join this locked call right now; try again shortly"
                            .into(),
                    ));
                }
            },
        };
        crate::moderation::admits(call, user, power, &self.config.permissions).map_err(|refusal| {
            info!(call_id = %call.id, %user, %refusal, "join refused by moderation");
            (StatusCode::FORBIDDEN, "M_FORBIDDEN", refusal.to_string())
        })
    }

    /// Whether `user` is joined to `room_id`, as the bot reads the room.
    pub(crate) async fn membership(&self, room_id: &RoomId, user: &UserId) -> Membership {
        match self
            .matrix
            .state(room_id, "m.room.member", user.as_str())
            .await
        {
            Ok(Some(member)) if member["membership"].as_str() == Some("join") => {
                Membership::Joined(member)
            }
            Ok(_) => Membership::NotJoined,
            Err(e) => Membership::Unknown(e),
        }
    }
}

/// Whether the homeserver vouched for an OpenID token.
pub(crate) enum Verification {
    User(OwnedUserId),
    Rejected,
    Unavailable(String),
}

/// A user's membership of a room.
pub(crate) enum Membership {
    /// Joined; the `m.room.member` content (display name…).
    Joined(Value),
    NotJoined,
    /// The bot could not read it.
    Unknown(MatrixError),
}

/// A fixed-window counter per client address.
#[derive(Default)]
struct RateLimiter {
    windows: HashMap<IpAddr, (Instant, u32)>,
}

impl RateLimiter {
    fn allow(&mut self, ip: IpAddr, now: Instant, per_minute: u32) -> bool {
        if self.windows.len() > 10_000 {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = self.windows.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= per_minute
    }
}

pub fn router(state: AccessState) -> Router {
    Router::new()
        .route("/_salon/v1/calls/{call_id}", get(call_info))
        .route("/_salon/v1/calls/{call_id}/join", post(join))
        .route("/_salon/v1/calls/{call_id}/moderate", post(moderate))
        .with_state(state)
}

fn live_call(store: &Store, call_id: &str) -> Option<Call> {
    if call_id.len() > 64 || !call_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    store.call(call_id).ok().flatten()
}

fn not_found() -> Response {
    matrix_error(
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
        "no such call, or it has ended",
    )
}

async fn call_info(State(state): State<AccessState>, Path(call_id): Path<String>) -> Response {
    let Some(call) = live_call(&state.store, &call_id).filter(Call::is_active) else {
        return not_found();
    };
    let room_name = state
        .matrix
        .state(&call.room_id, "m.room.name", "")
        .await
        .ok()
        .flatten()
        .and_then(|c| c["name"].as_str().map(str::to_owned));
    Json(json!({
        "call_id": call.id,
        "room_id": call.room_id,
        "room_name": room_name,
        "state": call.state,
        "homeserver_url": state.config.homeserver.public_url.as_str().trim_end_matches('/'),
        "server_name": state.config.homeserver.server_name,
        "transcription": call.transcribing,
        // The page's MatrixRTC membership names this as its transport.
        "focus_url": state.config.focus_url(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct JoinRequest {
    openid_token: OpenIdToken,
    #[serde(default)]
    display_name: Option<String>,
    /// The Matrix device the page signed in as: the LiveKit identity is then
    /// `{mxid}:{device_id}`, as Element Call expects of a call membership.
    #[serde(default)]
    device_id: Option<String>,
}

/// Whether `device_id` may go into a LiveKit identity: 1 to 255 bytes of
/// printable ASCII, no spaces.
fn valid_device_id(device_id: &str) -> bool {
    (1..=255).contains(&device_id.len()) && device_id.bytes().all(|b| b.is_ascii_graphic())
}

/// The LiveKit identity of `user` joining from the page: the bare mxid, or
/// `{mxid}:{device_id}` when the page names its device.
fn page_identity(user: &UserId, device_id: Option<&str>) -> String {
    match device_id {
        Some(device) => legacy_identity(user.as_str(), device),
        None => user.to_string(),
    }
}

#[derive(Deserialize)]
struct OpenIdToken {
    access_token: String,
    matrix_server_name: String,
}

impl AccessState {
    /// Who `token` is, if they are joined to `call`'s room: the user and
    /// their `m.room.member` content; else the answer that says why not.
    async fn verified_member(
        &self,
        call: &Call,
        token: &OpenIdToken,
    ) -> Result<(OwnedUserId, Value), Response> {
        let user = match self
            .verify_openid(&token.access_token, &token.matrix_server_name)
            .await
        {
            Verification::User(user) => user,
            Verification::Rejected => {
                warn!(call_id = %call.id, "refused: the homeserver did not vouch for the OpenID token");
                return Err(matrix_error(
                    StatusCode::UNAUTHORIZED,
                    "M_UNKNOWN_TOKEN",
                    "the homeserver did not accept this OpenID token; sign in again",
                ));
            }
            Verification::Unavailable(reason) => {
                warn!(call_id = %call.id, %reason, "cannot verify an OpenID token: homeserver unavailable");
                return Err(matrix_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "M_UNAVAILABLE",
                    "the homeserver cannot be reached to check who you are; try again shortly",
                ));
            }
        };
        match self.membership(&call.room_id, &user).await {
            Membership::Joined(member) => Ok((user, member)),
            Membership::NotJoined => {
                info!(call_id = %call.id, user = %user, "refused: not a member of the room");
                Err(matrix_error(
                    StatusCode::FORBIDDEN,
                    "M_FORBIDDEN",
                    "only members of the room can join its call",
                ))
            }
            Membership::Unknown(e) => {
                warn!(call_id = %call.id, error = %e, "cannot read room membership");
                Err(matrix_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "M_UNAVAILABLE",
                    "cannot check room membership right now; try again shortly",
                ))
            }
        }
    }
}

async fn join(
    State(state): State<AccessState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(call_id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(refused) = state.over_limit(peer, &headers) {
        return refused;
    }
    let Some(call) = live_call(&state.store, &call_id).filter(Call::is_active) else {
        return not_found();
    };
    let request: JoinRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return matrix_error(
                StatusCode::BAD_REQUEST,
                "M_BAD_JSON",
                &format!("expected {{openid_token, display_name, device_id}}: {e}"),
            );
        }
    };
    if request
        .device_id
        .as_deref()
        .is_some_and(|d| !valid_device_id(d))
    {
        return matrix_error(
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
            "device_id must be 1 to 255 printable ASCII characters",
        );
    }
    let (user, membership) = match state.verified_member(&call, &request.openid_token).await {
        Ok(member) => member,
        Err(refused) => return refused,
    };
    if let Err((status, code, reason)) = state.call_admits(&call, &user).await {
        return matrix_error(status, code, &reason);
    }
    let name = request
        .display_name
        .map(|n| n.trim().chars().take(80).collect::<String>())
        .filter(|n| !n.is_empty())
        .or_else(|| membership["displayname"].as_str().map(str::to_owned))
        .unwrap_or_else(|| user.to_string());
    let media_room = call.media_room();
    let identity = page_identity(&user, request.device_id.as_deref());
    let who = MediaIdentity {
        user_id: user.clone(),
        name: name.clone(),
    };
    let recorded = state
        .store
        .record_media_room(&media_room, &call.room_id)
        .and_then(|_| match request.device_id {
            Some(_) => state.store.record_identity(&identity, &who),
            None => Ok(()),
        });
    if let Err(e) = recorded {
        warn!(call_id = %call.id, error = %e, "cannot record the call's media room or who joins it");
        return matrix_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "M_UNAVAILABLE",
            "Salon's storage failed; try again shortly",
        );
    }
    let grant = state
        .media
        .join_grant(&media_room, &identity, &name, JOIN_TOKEN_TTL);
    // Whether the page shows moderation controls (the bridge checks again
    // at each act); unknown power levels show none.
    let moderator = state
        .matrix
        .power_levels(&call.room_id)
        .await
        .is_ok_and(|p| p.user_level(&user) >= state.config.permissions.moderate_power_level);
    info!(call_id = %call.id, user = %user, %identity, moderator, "join token issued");
    Json(json!({ "url": grant.url, "token": grant.token, "identity": identity, "moderator": moderator }))
        .into_response()
}

#[derive(Deserialize)]
struct ModerateRequest {
    openid_token: OpenIdToken,
    action: String,
    /// The LiveKit identity acted on (mute, stop_video, remove).
    #[serde(default)]
    target: Option<String>,
    /// The waiting guest (admit, deny).
    #[serde(default)]
    guest: Option<String>,
}

/// A moderator's act from the call page: `{openid_token, action, target?,
/// guest?}` with `action` one of `mute`, `stop_video`, `mute_all`,
/// `remove`, `lock`, `unlock`, `admit`, `deny`. Performed by the room's
/// worker, in order with the room's commands, with the same rules.
async fn moderate(
    State(state): State<AccessState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(call_id): Path<String>,
    body: Bytes,
) -> Response {
    use crate::queues::PageAct;
    if let Some(refused) = state.over_limit(peer, &headers) {
        return refused;
    }
    let Some(call) = live_call(&state.store, &call_id).filter(Call::is_active) else {
        return not_found();
    };
    let Some(rooms) = state.rooms.clone() else {
        return not_found();
    };
    let request: ModerateRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return matrix_error(
                StatusCode::BAD_REQUEST,
                "M_BAD_JSON",
                &format!("expected {{openid_token, action, target?, guest?}}: {e}"),
            );
        }
    };
    let act = match (request.action.as_str(), request.guest) {
        ("admit" | "deny", Some(guest)) if guest.len() <= 255 => PageAct::Lobby {
            admit: request.action == "admit",
            guest,
        },
        (name, _) => match crate::moderation::Action::from_name(name) {
            Some(action) => PageAct::Moderate {
                action,
                target_identity: request.target.filter(|t| t.len() <= 255),
            },
            None => {
                return matrix_error(
                    StatusCode::BAD_REQUEST,
                    "M_BAD_JSON",
                    "action must be mute, stop_video, mute_all, remove, lock, unlock, or admit/deny with a guest",
                );
            }
        },
    };
    let user = match state.verified_member(&call, &request.openid_token).await {
        Ok((user, _)) => user,
        Err(refused) => return refused,
    };
    let answer = rooms.page_act(call.room_id.clone(), user, act);
    match tokio::time::timeout(Duration::from_secs(60), answer).await {
        Ok(Ok(Ok(outcome))) => Json(outcome).into_response(),
        Ok(Ok(Err((status, reason)))) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            let code = match status {
                StatusCode::NOT_FOUND => "M_NOT_FOUND",
                StatusCode::BAD_REQUEST => "M_BAD_JSON",
                StatusCode::SERVICE_UNAVAILABLE => "M_UNAVAILABLE",
                _ => "M_FORBIDDEN",
            };
            matrix_error(status, code, &reason)
        }
        _ => matrix_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "M_UNAVAILABLE",
            "the room is busy; try again shortly",
        ),
    }
}

/// The client's address: the connecting peer, or, when the peer is a
/// trusted reverse proxy, the right-most `X-Forwarded-For` hop that is not one
/// (hops left of it are whatever the client chose to send).
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_behind_a_trusted_proxy_is_the_forwarded_one() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let trusted = [proxy];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.7, 192.0.2.1".parse().unwrap(),
        );
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            "192.0.2.1".parse::<IpAddr>().unwrap(),
            "the hop the proxy added, not what the client claimed"
        );
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_ip(stranger, &headers, &trusted),
            stranger,
            "untrusted peers cannot pick their address"
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn the_limiter_allows_a_burst_then_refuses_until_the_minute_passes() {
        let mut limiter = RateLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(limiter.allow(ip, t0, 20));
        }
        assert!(!limiter.allow(ip, t0 + Duration::from_secs(30), 20));
        assert!(
            limiter.allow(other, t0, 20),
            "other clients are not affected"
        );
        assert!(limiter.allow(ip, t0 + Duration::from_secs(61), 20));
    }

    #[test]
    fn a_named_device_makes_the_identity_element_call_matches() {
        let alice = UserId::parse("@alice:example.org").unwrap();
        assert_eq!(page_identity(&alice, None), "@alice:example.org");
        assert_eq!(
            page_identity(&alice, Some("ABCDEF")),
            "@alice:example.org:ABCDEF"
        );
        assert!(valid_device_id("ABCDEF"));
        assert!(valid_device_id(&"D".repeat(255)));
        for bad in ["", "A B", "tab\t", "é", &"D".repeat(256)] {
            assert!(!valid_device_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn only_plain_call_ids_are_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(live_call(&store, "../../etc").is_none());
        assert!(live_call(&store, &"a".repeat(65)).is_none());
    }
}
