//! The appservice HTTP API that the homeserver calls.
//!
//! `PUT /_matrix/app/v1/transactions/{txnId}` is the front door: the bearer
//! token is checked in constant time, the body is read once, straight into
//! typed events (`store/event.rs`), the events are queued durably in the
//! store, and only then does the homeserver get its `200`. Handling happens
//! afterwards, one ordered queue per room (see `queues.rs`), on the same typed
//! events. Also here: ping, user and alias queries, `/health` and `/metrics`.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use subtle::ConstantTimeEq;
use tracing::{Instrument, debug, info_span, warn};

use crate::config::Secret;
use crate::metrics::Metrics;
use crate::queues::RoomQueues;
use crate::store::{Store, WireEvent};

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

/// A transaction's body (the fields Salon reads), read in one pass: each of
/// its `events` straight into a [`WireEvent`].
#[derive(Deserialize)]
struct Transaction {
    events: Vec<WireEvent>,
    /// Read past, but it must be a list, as the spec has it.
    #[serde(default, rename = "ephemeral")]
    _ephemeral: Vec<IgnoredAny>,
}

/// Why a transaction's body is refused.
#[derive(Debug)]
enum Malformed {
    /// `M_NOT_JSON`
    NotJson,
    /// `M_BAD_JSON`: JSON, but not a transaction.
    NotATransaction(String),
}

async fn transaction(
    State(state): State<AppserviceState>,
    Path(txn_id): Path<String>,
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
        let transaction = match parse_transaction(&body) {
            Ok(transaction) => transaction,
            Err(Malformed::NotJson) => {
                Metrics::inc(&state.metrics.transactions_rejected);
                return matrix_error(
                    StatusCode::BAD_REQUEST,
                    "M_NOT_JSON",
                    "the body is not valid JSON",
                );
            }
            Err(Malformed::NotATransaction(reason)) => {
                Metrics::inc(&state.metrics.transactions_rejected);
                warn!(%reason, "malformed transaction refused");
                return matrix_error(
                    StatusCode::BAD_REQUEST,
                    "M_BAD_JSON",
                    &format!("not an appservice transaction: {reason}"),
                );
            }
        };
        let received = transaction.events.len();
        Metrics::add(&state.metrics.events_received, received as u64);
        let mut events = Vec::with_capacity(received);
        for wire in transaction.events {
            match wire.into_event(None) {
                Ok(event) => events.push(event),
                Err(reason) => warn!(%reason, "skipping an item that is no event"),
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

/// The body as a transaction, in one pass. Only when that fails is the body
/// read again, to tell broken JSON (`M_NOT_JSON`) from JSON of the wrong
/// shape (`M_BAD_JSON`): the first error serde meets may be either.
fn parse_transaction(body: &[u8]) -> Result<Transaction, Malformed> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data if serde_json::from_slice::<IgnoredAny>(body).is_ok() => {
            Malformed::NotATransaction(e.to_string())
        }
        _ => Malformed::NotJson,
    })
}

/// The events of a transaction body, as the handler reads them: the entry of
/// the `appservice_transaction` fuzz target.
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_transaction_events(body: &[u8]) -> Result<Vec<WireEvent>, ()> {
    parse_transaction(body).map(|t| t.events).map_err(|_| ())
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
        let body = br#"{"events":[{"type":"m.room.message","room_id":"!r:x","event_id":"$e","sender":"@a:x","origin_server_ts":1,"content":{"msgtype":"m.text","body":"!visio"}}],"ephemeral":[]}"#;
        let transaction = parse_transaction(body).unwrap();
        assert_eq!(transaction.events.len(), 1);
        let event = transaction.events.into_iter().next().unwrap();
        assert_eq!(event.into_event(None).unwrap().event_id.as_str(), "$e");
    }

    #[test]
    fn wrong_shapes_are_refused_not_panicked_on() {
        for body in [
            &b"{}"[..],
            br#"{"events":{}}"#,
            b"[]",
            br#"{"events":"x"}"#,
            br#"{"events":[],"ephemeral":{}}"#,
        ] {
            let result = parse_transaction(body);
            assert!(
                matches!(result, Err(Malformed::NotATransaction(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for body in [&b""[..], b"{\"events\": [", br#"{"events":"x""#, b"{} x"] {
            let result = parse_transaction(body);
            assert!(
                matches!(result, Err(Malformed::NotJson)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // A list whose items are not events parses, and each item is then skipped.
        let transaction = parse_transaction(br#"{"events":[1,{"event_id":"$e"}]}"#).unwrap();
        assert!(
            transaction
                .events
                .into_iter()
                .all(|item| item.into_event(None).is_err())
        );
    }
}
