//! A homeserver that is slow for one room: an HTTP proxy in front of the
//! test's Synapse that holds every message sent to that room for a while
//! (as a rate-limiting or overloaded homeserver would) and passes everything
//! else straight through. The bridge is pointed at the proxy.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;

/// Which room is slow (none at first), shared with the test.
#[derive(Clone, Default)]
pub struct SlowRoom(Arc<Mutex<Option<String>>>);

impl SlowRoom {
    pub fn set(&self, room_id: &str) {
        *self.0.lock().unwrap() = Some(room_id.to_owned());
    }

    fn matches(&self, path: &str) -> bool {
        let room = self.0.lock().unwrap().clone();
        room.is_some_and(|room| {
            let encoded: String = room
                .chars()
                .map(|c| match c {
                    '!' => "%21".to_owned(),
                    ':' => "%3A".to_owned(),
                    c => c.to_string(),
                })
                .collect();
            (path.contains(&encoded) || path.contains(&room)) && path.contains("/send/")
        })
    }
}

#[derive(Clone)]
struct Proxy {
    target: String,
    slow: SlowRoom,
    delay: Duration,
    http: reqwest::Client,
}

/// Starts the proxy for `target` (e.g. `http://127.0.0.1:8008`); returns its
/// URL. Must be called inside a tokio runtime.
pub fn start(target: &str, slow: SlowRoom, delay: Duration) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let proxy = Proxy {
        target: target.trim_end_matches('/').to_owned(),
        slow,
        delay,
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let _ = axum::serve(listener, app).await;
    });
    url
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if proxy.slow.matches(&path) {
        tokio::time::sleep(proxy.delay).await;
    }
    let Ok(body) = axum::body::to_bytes(body, 256 << 20).await else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut outgoing = proxy
        .http
        .request(parts.method, format!("{}{path}", proxy.target))
        .body(body);
    for (name, value) in &parts.headers {
        if !is_hop_header(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(answer) = outgoing.send().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !is_hop_header(name) {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap()
}

fn is_hop_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection"
    )
}

fn status(code: StatusCode) -> Response {
    Response::builder()
        .status(code)
        .body(Body::empty())
        .unwrap()
}
