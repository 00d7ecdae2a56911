//! The lobby's web side: what a guest's page (`/guest/{token}`, the call
//! page in guest mode) asks.
//!
//! - `GET  /_salon/v1/guests/{token}`: is this link good, and for which call;
//! - `POST /_salon/v1/guests/{token}/knock` `{display_name}`: wait in the
//!   lobby; the room is told (a notice with `org.salon.lobby`) and so are the
//!   moderators' pages (a data message); answers the guest's id and a secret;
//! - `GET  /_salon/v1/guests/{token}/knock/{guest}` with
//!   `Authorization: Bearer {secret}`: waiting, denied, or admitted with the
//!   LiveKit grant. Only an admitted guest ever gets a token.
//!
//! Admitting and denying are the room's worker's (`room/guests.rs`): this
//! side only adds knocks and reads them (`store/guests.rs`). Attempts count
//! against the address, as for members' joins.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use crate::access::{AccessState, JOIN_TOKEN_TTL};
use crate::appservice::matrix_error;
use crate::calls::Call;
use crate::clock::now_millis;
use crate::guests::{self, GuestLink, Knock, KnockState, LinkRefusal};
use crate::room::LOBBY_TOPIC;

/// Guests waiting at once in one call's lobby, at most.
const MAX_WAITING: usize = 20;

pub fn router(state: AccessState) -> Router {
    Router::new()
        .route("/_salon/v1/guests/{token}", get(link_info))
        .route("/_salon/v1/guests/{token}/knock", post(knock))
        .route("/_salon/v1/guests/{token}/knock/{guest}", get(knock_state))
        .with_state(state)
}

/// A refusal: status, errcode and the reason in words.
type Refused = (StatusCode, &'static str, String);

fn answer((status, code, reason): Refused) -> Response {
    matrix_error(status, code, &reason)
}

/// The answer when the store fails (`what` it was doing, for the log).
fn storage_failed(what: &str, e: crate::store::StoreError) -> Response {
    warn!(error = %e, "cannot {what}");
    matrix_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "M_UNAVAILABLE",
        "Salon's storage failed; try again shortly",
    )
}

/// The link behind `token` and its live call, or why not.
fn open_link(state: &AccessState, token: &str) -> Result<(GuestLink, Call), Refused> {
    let unknown = || {
        (
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
            LinkRefusal::Unknown.to_string(),
        )
    };
    if !guests::looks_like_secret(token) {
        return Err(unknown());
    }
    let unavailable = |e: crate::store::StoreError| {
        warn!(error = %e, "cannot read a guest link");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "M_UNAVAILABLE",
            "Salon's storage failed; try again shortly".to_owned(),
        )
    };
    let link = state
        .store
        .guest_link(&guests::hash_secret(token))
        .map_err(unavailable)?
        .ok_or_else(unknown)?;
    let call = state.store.call(&link.call_id).map_err(unavailable)?;
    match call {
        Some(call) => match link.check(call.is_active(), now_millis()) {
            Ok(()) => Ok((link, call)),
            Err(refusal) => {
                info!(call_id = %link.call_id, %refusal, "guest link refused");
                Err((StatusCode::FORBIDDEN, "M_FORBIDDEN", refusal.to_string()))
            }
        },
        None => Err((
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            LinkRefusal::CallEnded.to_string(),
        )),
    }
}

async fn room_name(state: &AccessState, call: &Call) -> Option<String> {
    state
        .matrix
        .state(&call.room_id, "m.room.name", "")
        .await
        .ok()
        .flatten()
        .and_then(|c| c["name"].as_str().map(str::to_owned))
}

async fn link_info(State(state): State<AccessState>, Path(token): Path<String>) -> Response {
    let (link, call) = match open_link(&state, &token) {
        Ok(open) => open,
        Err(refused) => return answer(refused),
    };
    Json(json!({
        "call_id": call.id,
        "room_name": room_name(&state, &call).await,
        "invited_by": link.invited_by,
        "name_hint": link.name_hint,
        "expires_at": link.expires_at,
        "transcription": call.transcribing,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct KnockRequest {
    display_name: String,
}

async fn knock(
    State(state): State<AccessState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(refused) = state.over_limit(peer, &headers) {
        return refused;
    }
    let (link, call) = match open_link(&state, &token) {
        Ok(open) => open,
        Err(refused) => return answer(refused),
    };
    let name = match serde_json::from_slice::<KnockRequest>(&body) {
        Ok(request) => guests::clean_name(&request.display_name),
        Err(_) => None,
    };
    let Some(name) = name else {
        return matrix_error(
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
            "expected {\"display_name\": \"…\"} with a name of 1 to 60 characters",
        );
    };
    let knocks = match state.store.knocks_of(&call.id) {
        Ok(knocks) => knocks,
        Err(e) => return storage_failed("read the lobby", e),
    };
    let waiting = knocks
        .iter()
        .filter(|k| k.state == KnockState::Waiting)
        .count();
    if waiting >= MAX_WAITING {
        return matrix_error(
            StatusCode::TOO_MANY_REQUESTS,
            "M_LIMIT_EXCEEDED",
            "the lobby is full; try again in a few minutes",
        );
    }
    let secret = guests::new_secret();
    let knock = Knock {
        guest: guests::new_guest_id(),
        secret_hash: guests::hash_secret(&secret),
        call_id: call.id.clone(),
        link_hash: link.token_hash.clone(),
        name,
        invited_by: link.invited_by.clone(),
        number: knocks.iter().map(|k| k.number).max().unwrap_or(0) + 1,
        at: now_millis(),
        state: KnockState::Waiting,
    };
    if let Err(e) = state.store.save_knock(&knock).await {
        return storage_failed("record a knock", e);
    }
    info!(call_id = %call.id, guest = %knock.guest, number = knock.number, "a guest knocks");
    let lobby = knock.lobby_json();
    state
        .media
        .send_data(
            &call.media_room(),
            LOBBY_TOPIC,
            lobby.to_string().as_bytes(),
        )
        .await;
    let body = format!(
        "🚪 {} is waiting in the lobby. Type `!visio admit {n}` to let them in, or `!visio deny {n}`.",
        knock.label(),
        n = knock.number
    );
    let notice = json!({
        "msgtype": "m.notice",
        "body": body,
        "org.salon.lobby": lobby,
    });
    let txn = format!("salon.lobby.{}", knock.guest.localpart());
    if let Err(e) = state
        .matrix
        .send_message(&call.room_id, &txn, &notice)
        .await
    {
        // The guest still waits; the moderators' pages were told.
        warn!(call_id = %call.id, error = %e, "cannot tell the room a guest is waiting");
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "guest": knock.guest, "secret": secret, "state": "waiting", "number": knock.number })),
    )
        .into_response()
}

async fn knock_state(
    State(state): State<AccessState>,
    headers: HeaderMap,
    Path((token, guest)): Path<(String, String)>,
) -> Response {
    let (_, call) = match open_link(&state, &token) {
        Ok(open) => open,
        Err(refused) => return answer(refused),
    };
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let knock = match state.store.knock(&call.id, &guest) {
        Ok(knock) => knock,
        Err(e) => return storage_failed("read the lobby", e),
    };
    let Some(knock) = knock.filter(|k| {
        guests::looks_like_secret(secret) && k.secret_hash == guests::hash_secret(secret)
    }) else {
        return matrix_error(
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
            "no such guest in this lobby, or the wrong secret",
        );
    };
    match &knock.state {
        KnockState::Waiting => {
            Json(json!({ "state": "waiting", "number": knock.number })).into_response()
        }
        KnockState::Denied { .. } => Json(json!({ "state": "denied" })).into_response(),
        KnockState::Admitted { .. } => {
            // Removed since: out for the rest of the call. (A lock does not
            // stop a guest a moderator admitted: that was their decision.)
            if call.removed.contains(&knock.guest) {
                return matrix_error(
                    StatusCode::FORBIDDEN,
                    "M_FORBIDDEN",
                    &crate::calls::Refusal::RemovedFromCall.to_string(),
                );
            }
            let grant = state.media.join_grant(
                &call.media_room(),
                knock.guest.as_str(),
                &knock.label(),
                JOIN_TOKEN_TTL,
            );
            info!(call_id = %call.id, guest = %knock.guest, "guest join token issued");
            Json(json!({
                "state": "admitted",
                "url": grant.url,
                "token": grant.token,
                "identity": knock.guest,
                "name": knock.label(),
            }))
            .into_response()
        }
    }
}
