//! The public web side: the call page at `/call/{call_id}` (and at
//! `/guest/{token}`, where it runs in guest mode) and its assets.
//!
//! When the page is built (`web/build.sh` makes `web/dist/`), every call id is
//! served the same `call.html`, which asks `/_salon/v1` about the call and joins
//! the embedded SFU with livekit-client. Without a built page, a plain status
//! page says whether the call is live, so a join link never leads nowhere.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::config::Config;
use crate::store::Store;

#[derive(Clone)]
pub struct WebState {
    pub config: Arc<Config>,
    pub store: Store,
}

pub fn router(state: WebState) -> Router {
    let dist = state.config.web.assets.join("dist");
    Router::new()
        .route("/call/{call_id}", get(call_page))
        .route("/guest/{token}", get(guest_page))
        .route("/health", get(|| async { "ok" }))
        .nest_service("/assets", tower_http::services::ServeDir::new(dist))
        .with_state(state)
}

/// A guest link: the call page, which reads the token from its path and asks
/// `/_salon/v1/guests/…` (`lobby.rs`); without a built page, a plain one.
async fn guest_page(State(state): State<WebState>) -> Response {
    let assets = &state.config.web.assets;
    if assets.join("dist/call.js").exists()
        && let Ok(page) = tokio::fs::read_to_string(assets.join("call.html")).await
    {
        return Html(page).into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html("<!doctype html><title>Visio</title><p>The call page is not installed on this server (web/build.sh).</p>"),
    )
        .into_response()
}

async fn call_page(State(state): State<WebState>, Path(call_id): Path<String>) -> Response {
    let assets = &state.config.web.assets;
    if assets.join("dist/call.js").exists()
        && let Ok(page) = tokio::fs::read_to_string(assets.join("call.html")).await
    {
        return Html(page).into_response();
    }
    let call = if call_id.len() <= 64 && call_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        state.store.call(&call_id).ok().flatten()
    } else {
        None
    };
    let (status, title, text) = match call {
        Some(call) if call.is_active() => (
            StatusCode::OK,
            "Visio — call in progress".to_owned(),
            format!(
                "This call is live in room {}.",
                salon_minutes::render::html(call.room_id.as_str())
            ),
        ),
        Some(_) => (
            StatusCode::GONE,
            "Visio — call ended".to_owned(),
            "This call has ended. Type <code>!visio start</code> in the room to start a new one."
                .to_owned(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            "Visio — unknown call".to_owned(),
            "There is no such call.".to_owned(),
        ),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"></head>\
         <body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;color:#161616\">\
         <h1 style=\"color:#000091\">{title}</h1><p>{text}</p></body></html>"
    );
    (status, Html(html)).into_response()
}
