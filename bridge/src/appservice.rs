//! The appservice HTTP API that the homeserver calls.
//!
//! `PUT /_matrix/app/v1/transactions/{txnId}` is the front door: the bearer
//! token is checked in constant time, the body is parsed with ruma's
//! `appservice-api-s` types, the events are queued durably in the store, and
//! only then does the homeserver get its `200`. Handling happens afterwards,
//! one ordered queue per room (see `queues.rs`). Also here: ping, user and alias
//! queries, `/health` and `/metrics`.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ruma::api::IncomingRequest;
use ruma::api::appservice::event::push_events;
use ruma::{OwnedEventId, OwnedRoomId};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tracing::{Instrument, debug, info_span, warn};

use crate::config::Secret;
use crate::metrics::Metrics;
use crate::queues::RoomQueues;
use crate::store::{QueuedEvent, Store};

/// A transaction's body may hold up to 100 PDUs of 64 KiB, plus ephemeral data.
const MAX_TRANSACTION_BYTES: usize = 16 * 1024 * 1024;
/// How many transaction ids are remembered in memory.
const SEEN_TXN_CAPACITY: usize = 4096;

/// What the appservice routes need.
#[derive(Clone)]
pub struct AppserviceState {
    pub hs_token: Secret,
    pub bot_user_id: ruma::OwnedUserId,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub rooms: RoomQueues,
    seen: Arc<Mutex<SeenTxns>>,
}

impl AppserviceState {
    pub fn new(
        hs_token: Secret,
        bot_user_id: ruma::OwnedUserId,
        store: Store,
        metrics: Arc<Metrics>,
        rooms: RoomQueues,
    ) -> Self {
        Self {
            hs_token,
            bot_user_id,
            store,
            metrics,
            rooms,
            seen: Arc::new(Mutex::new(SeenTxns::default())),
        }
    }
}

/// Transaction ids seen since start-up (bounded). Durable dedup is by event id.
#[derive(Default)]
struct SeenTxns {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl SeenTxns {
    fn contains(&self, txn: &str) -> bool {
        self.set.contains(txn)
    }
    fn insert(&mut self, txn: String) {
        if self.set.insert(txn.clone()) {
            self.order.push_back(txn);
            if self.order.len() > SEEN_TXN_CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// A Matrix-style error response.
pub fn matrix_error(status: StatusCode, errcode: &str, error: &str) -> Response {
    (status, Json(json!({ "errcode": errcode, "error": error }))).into_response()
}

/// The routes the homeserver calls, plus health and metrics.
pub fn router(state: AppserviceState) -> Router {
    let authed = Router::new()
        .route(
            "/_matrix/app/v1/transactions/{txn_id}",
            put(transaction).layer(DefaultBodyLimit::max(MAX_TRANSACTION_BYTES)),
        )
        .route("/_matrix/app/v1/ping", post(ping))
        .route("/_matrix/app/v1/users/{user_id}", get(query_user))
        .route("/_matrix/app/v1/rooms/{alias}", get(query_alias))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_hs_token,
        ));
    Router::new()
        .merge(authed)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Checks `Authorization: Bearer <hs_token>` in constant time.
async fn require_hs_token(
    State(state): State<AppserviceState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(presented) = presented else {
        Metrics::inc(&state.metrics.transactions_rejected);
        return matrix_error(
            StatusCode::UNAUTHORIZED,
            "M_UNAUTHORIZED",
            "missing Authorization: Bearer token",
        );
    };
    let expected = state.hs_token.expose().as_bytes();
    if !bool::from(presented.as_bytes().ct_eq(expected)) {
        Metrics::inc(&state.metrics.transactions_rejected);
        warn!(path = %request.uri().path(), "request with a wrong hs_token refused");
        return matrix_error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "wrong hs_token");
    }
    next.run(request).await
}

/// Just the routing fields of an event; the rest stays raw.
#[derive(Deserialize)]
struct EventHead {
    event_id: OwnedEventId,
    room_id: OwnedRoomId,
}

async fn transaction(
    State(state): State<AppserviceState>,
    Path(txn_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let span = info_span!("transaction", txn_id = %txn_id);
    async move {
        // Synapse numbers transactions afresh after it restarts, so a txn id
        // alone does not identify a transaction: the body's hash goes with it.
        let seen_key = format!("{txn_id}:{:016x}", body_hash(&body));
        if state.seen.lock().expect("txn lock").contains(&seen_key) {
            Metrics::inc(&state.metrics.transactions_replayed);
            debug!("transaction seen already");
            return (StatusCode::OK, Json(json!({}))).into_response();
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            Metrics::inc(&state.metrics.transactions_rejected);
            return matrix_error(
                StatusCode::BAD_REQUEST,
                "M_NOT_JSON",
                "the body is not valid JSON",
            );
        }
        let parsed = parse_transaction(&txn_id, &headers, body);
        let request = match parsed {
            Ok(request) => request,
            Err(reason) => {
                Metrics::inc(&state.metrics.transactions_rejected);
                warn!(%reason, "malformed transaction refused");
                return matrix_error(
                    StatusCode::BAD_REQUEST,
                    "M_BAD_JSON",
                    &format!("not an appservice transaction: {reason}"),
                );
            }
        };
        let received = request.events.len();
        Metrics::add(&state.metrics.events_received, received as u64);
        let mut events = Vec::with_capacity(received);
        for raw in &request.events {
            match raw.deserialize_as_unchecked::<EventHead>() {
                Ok(head) => events.push(QueuedEvent {
                    room_id: head.room_id,
                    event_id: head.event_id,
                    json: raw.json().get().to_owned(),
                }),
                Err(e) => warn!(error = %e, "skipping an event without event_id/room_id"),
            }
        }
        let queued = match state.store.enqueue(events).await {
            Ok(queued) => queued,
            Err(e) => {
                Metrics::inc(&state.metrics.errors);
                tracing::error!(error = %e, "cannot queue events; the homeserver will retry");
                return matrix_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "M_UNKNOWN",
                    "storage failure",
                );
            }
        };
        Metrics::add(
            &state.metrics.events_duplicate,
            (received - queued.len()) as u64,
        );
        debug!(received, queued = queued.len(), "transaction queued");
        for (seq, event) in queued {
            state.rooms.dispatch_event(seq, event);
        }
        state.seen.lock().expect("txn lock").insert(seen_key);
        Metrics::inc(&state.metrics.transactions);
        (StatusCode::OK, Json(json!({}))).into_response()
    }
    .instrument(span)
    .await
}

fn body_hash(body: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    hasher.finish()
}

fn parse_transaction(
    txn_id: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<push_events::v1::Request, String> {
    let mut builder = axum::http::Request::builder()
        .method("PUT")
        .uri(format!("/_matrix/app/v1/transactions/{txn_id}"));
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    let http_request = builder.body(body).map_err(|e| e.to_string())?;
    push_events::v1::Request::try_from_http_request(http_request, &[txn_id])
        .map_err(|e| e.to_string())
}

async fn ping() -> Response {
    (StatusCode::OK, Json(json!({}))).into_response()
}

async fn query_user(State(state): State<AppserviceState>, Path(user_id): Path<String>) -> Response {
    if user_id == state.bot_user_id.as_str() {
        (StatusCode::OK, Json(json!({}))).into_response()
    } else {
        matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such user here")
    }
}

async fn query_alias(Path(_alias): Path<String>) -> Response {
    matrix_error(
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
        "Salon provides no room aliases",
    )
}

async fn health() -> Response {
    (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
}

async fn metrics(State(state): State<AppserviceState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_transactions_are_bounded() {
        let mut seen = SeenTxns::default();
        for i in 0..(SEEN_TXN_CAPACITY + 10) {
            seen.insert(i.to_string());
        }
        assert!(!seen.contains("0"));
        assert!(seen.contains(&(SEEN_TXN_CAPACITY + 9).to_string()));
        assert_eq!(seen.set.len(), SEEN_TXN_CAPACITY);
    }

    #[test]
    fn synapse_shaped_transaction_parses() {
        let body = Bytes::from_static(
            br#"{"events":[{"type":"m.room.message","room_id":"!r:x","event_id":"$e","sender":"@a:x","origin_server_ts":1,"content":{"msgtype":"m.text","body":"!visio"}}],"ephemeral":[]}"#,
        );
        let req = parse_transaction("1", &HeaderMap::new(), body).unwrap();
        assert_eq!(req.events.len(), 1);
        let head: EventHead = req.events[0].deserialize_as_unchecked().unwrap();
        assert_eq!(head.event_id.as_str(), "$e");
    }

    #[test]
    fn wrong_shapes_are_refused_not_panicked_on() {
        for body in [&b"{}"[..], br#"{"events":{}}"#, b"[]", br#"{"events":"x"}"#] {
            let result = parse_transaction("1", &HeaderMap::new(), Bytes::from(body.to_vec()));
            assert!(result.is_err(), "{}", String::from_utf8_lossy(body));
        }
        // A list whose items are not events parses, and each item is then skipped.
        let req = parse_transaction(
            "1",
            &HeaderMap::new(),
            Bytes::from_static(br#"{"events":[1]}"#),
        )
        .unwrap();
        assert!(
            req.events[0]
                .deserialize_as_unchecked::<EventHead>()
                .is_err()
        );
    }
}
