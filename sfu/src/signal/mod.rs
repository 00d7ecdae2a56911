//! LiveKit signaling over WebSocket: the `/rtc` endpoint (two peer
//! connections, protocol 16–18), and the `/rtc/v1` endpoints answered with a
//! CORS-enabled 404 so current clients fall back to `/rtc`.
//!
//! One session per WebSocket: check the token, admit the participant, send
//! `join` first, then loop over client frames, the participant's outbox and
//! its peer-connection events until either side ends. Every failure ends only
//! this session: a frame that is not a `SignalRequest`, a text frame, a frame
//! over 1 MiB, an SDP that cannot be applied or a stuck client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use livekit_protocol::signal_response;
use prost::Message as _;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::Sfu;
use crate::room::{Admission, JoinError};

pub(crate) mod dispatch;

use crate::token::{self, Claims};
use dispatch::{Verdict, decode_request, handle_request};

/// Largest WebSocket message accepted from a client.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Version announced in `JoinResponse.server_info`.
pub const SERVER_VERSION: &str = "1.8.4";
/// Signaling protocol version we speak.
const PROTOCOL_VERSION: i32 = 16;
/// Seconds between client pings, as told to clients.
const PING_INTERVAL_SECS: i32 = 10;
/// Seconds of client silence after which the session ends.
const PING_TIMEOUT_SECS: i32 = 20;

/// WebSocket close codes we use.
const CLOSE_UNSUPPORTED: u16 = 1003;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_NORMAL: u16 = 1000;

pub(crate) fn router(sfu: Arc<Sfu>) -> Router {
    Router::new()
        .route("/rtc", get(rtc))
        .route("/rtc/validate", any(validate))
        .route("/rtc/v1", any(single_pc_not_here))
        .route("/rtc/v1/validate", any(single_pc_not_here))
        .with_state(sfu)
}

fn cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    response
}

/// `/rtc/v1` (single peer connection) is not served yet: a 404 with CORS makes
/// livekit-client fall back to `/rtc`.
async fn single_pc_not_here(method: Method) -> Response {
    if method == Method::OPTIONS {
        return cors(StatusCode::NO_CONTENT.into_response());
    }
    cors(
        (
            StatusCode::NOT_FOUND,
            "single peer connection mode is not supported",
        )
            .into_response(),
    )
}

fn bearer(params: &HashMap<String, String>, headers: &HeaderMap) -> Option<String> {
    if let Some(token) = params.get("access_token") {
        return Some(token.clone());
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

fn check_token(
    sfu: &Sfu,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Claims, (StatusCode, String)> {
    let token = bearer(params, headers)
        .ok_or_else(|| (StatusCode::UNAUTHORIZED, "no access token".to_owned()))?;
    let claims = token::verify(&token, &sfu.config.api_key, &sfu.config.api_secret, None)
        .map_err(|error| (StatusCode::UNAUTHORIZED, error.to_string()))?;
    // A removed participant's token stays valid until it expires; the
    // removal is what refuses it.
    if sfu.rooms.is_barred(&claims.video.room, &claims.sub) {
        return Err((
            StatusCode::FORBIDDEN,
            "removed from this call by a moderator".to_owned(),
        ));
    }
    Ok(claims)
}

/// livekit-client asks this after a failed connection, to show why.
async fn validate(
    State(sfu): State<Arc<Sfu>>,
    method: Method,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if method == Method::OPTIONS {
        return cors(StatusCode::NO_CONTENT.into_response());
    }
    let response = match check_token(&sfu, &params, &headers) {
        Ok(claims) => {
            if sfu.rooms.participant_count(&claims.video.room) >= sfu.config.max_participants {
                (StatusCode::FORBIDDEN, "room is full").into_response()
            } else {
                (StatusCode::OK, "success").into_response()
            }
        }
        Err((status, message)) => (status, message).into_response(),
    };
    cors(response)
}

/// The two-peer-connection signaling endpoint.
async fn rtc(
    State(sfu): State<Arc<Sfu>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let claims = match check_token(&sfu, &params, &headers) {
        Ok(claims) => claims,
        Err((status, message)) => {
            info!(reason = %message, "join refused");
            return cors((status, message).into_response());
        }
    };
    let reconnect = params
        .get("reconnect")
        .is_some_and(|v| v == "1" || v == "true");
    // LiveKit's clients send `auto_subscribe=0|1` (the Python SDK `false`).
    let auto_subscribe = !params
        .get("auto_subscribe")
        .is_some_and(|v| v == "0" || v == "false");
    upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| {
            let span = info_span!("signal", room = %claims.video.room, identity = %claims.sub);
            session(sfu, socket, claims, reconnect, auto_subscribe).instrument(span)
        })
}

fn frame(message: signal_response::Message) -> Message {
    let response = proto::SignalResponse {
        message: Some(message),
    };
    Message::Binary(response.encode_to_vec().into())
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn leave(reason: proto::DisconnectReason, action: proto::leave_request::Action) -> Message {
    frame(signal_response::Message::Leave(proto::LeaveRequest {
        can_reconnect: action != proto::leave_request::Action::Disconnect,
        reason: reason as i32,
        action: action as i32,
        regions: None,
    }))
}

async fn session(
    sfu: Arc<Sfu>,
    socket: WebSocket,
    claims: Claims,
    reconnect: bool,
    auto_subscribe: bool,
) {
    let (mut sink, mut stream) = socket.split();
    if reconnect {
        // No session resumption yet: ask for a full rejoin.
        info!("reconnect requested; asking for a full rejoin");
        let _ = sink
            .send(leave(
                proto::DisconnectReason::StateMismatch,
                proto::leave_request::Action::Reconnect,
            ))
            .await;
        let _ = sink.send(close_frame(CLOSE_NORMAL, "rejoin")).await;
        return;
    }
    let room_name = claims.video.room.clone();
    let name = if claims.name.is_empty() {
        claims.sub.clone()
    } else {
        claims.name.clone()
    };
    let joined = sfu
        .rooms
        .join(
            &room_name,
            &claims.sub,
            &name,
            Admission {
                can_publish: claims.can_publish(),
                can_subscribe: claims.can_subscribe(),
                can_publish_data: claims.can_publish_data(),
                auto_subscribe,
            },
        )
        .await;
    let (participant, mut channels) = match joined {
        Ok(joined) => joined,
        Err(error) => {
            warn!(%error, "join failed");
            let reason = match error {
                JoinError::RoomFull => proto::DisconnectReason::JoinFailure,
                JoinError::Removed => proto::DisconnectReason::ParticipantRemoved,
                JoinError::ShuttingDown => proto::DisconnectReason::ServerShutdown,
                JoinError::Media(_) => proto::DisconnectReason::JoinFailure,
            };
            let _ = sink
                .send(leave(reason, proto::leave_request::Action::Disconnect))
                .await;
            let _ = sink.send(close_frame(CLOSE_POLICY, "join refused")).await;
            return;
        }
    };
    let Some(room) = participant.room() else {
        return;
    };
    info!(sid = %participant.sid, "participant joined");

    let others: Vec<proto::ParticipantInfo> = room
        .participants()
        .into_iter()
        .filter(|p| p.sid != participant.sid)
        .map(|p| p.info())
        .collect();
    let join = proto::JoinResponse {
        room: Some(room.proto_room()),
        participant: Some(participant.info()),
        other_participants: others,
        server_version: SERVER_VERSION.to_owned(),
        ice_servers: sfu
            .config
            .ice_servers
            .iter()
            .map(|s| proto::IceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect(),
        subscriber_primary: false,
        ping_timeout: PING_TIMEOUT_SECS,
        ping_interval: PING_INTERVAL_SECS,
        server_info: Some(proto::ServerInfo {
            edition: proto::server_info::Edition::Standard as i32,
            version: SERVER_VERSION.to_owned(),
            protocol: PROTOCOL_VERSION,
            region: "local".to_owned(),
            node_id: "salon".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if sink
        .send(frame(signal_response::Message::Join(join)))
        .await
        .is_err()
    {
        room.remove_participant(&participant).await;
        return;
    }
    participant.open_data_channels().await;
    room.announce_join(&participant).await;

    let mut last_seen = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut shutdown = sfu.shutdown.subscribe();
    let max_bitrate = sfu.config.max_bitrate_bps;
    let mut publisher_connected = false;
    let close: Option<(u16, &'static str)> = loop {
        tokio::select! {
            incoming = stream.next() => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => {
                        let text = error.to_string();
                        debug!(%text, "websocket error");
                        if text.contains("too long") || text.contains("too big") || text.contains("size") {
                            break Some((CLOSE_TOO_BIG, "message too big"));
                        }
                        break None;
                    }
                    None => break None,
                };
                last_seen = Instant::now();
                match message {
                    Message::Binary(bytes) => {
                        let Some(request) = decode_request(&bytes) else {
                            warn!(len = bytes.len(), "frame is not a SignalRequest");
                            break Some((CLOSE_UNSUPPORTED, "not a SignalRequest"));
                        };
                        let Some(message) = request.message else {
                            debug!("unknown or empty request ignored");
                            continue;
                        };
                        match handle_request(&participant, message).await {
                            Verdict::Continue => {}
                            Verdict::Close(reason) => {
                                info!(reason, "closing session");
                                break Some((if reason == "client left" { CLOSE_NORMAL } else { CLOSE_POLICY }, reason));
                            }
                        }
                    }
                    Message::Text(_) => {
                        warn!("text frame refused (binary protobuf only)");
                        break Some((CLOSE_UNSUPPORTED, "binary protobuf only"));
                    }
                    Message::Close(_) => break None,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            outgoing = channels.outbox.recv() => {
                let Some(response) = outgoing else { break None };
                if sink.send(Message::Binary(response.encode_to_vec().into())).await.is_err() {
                    break None;
                }
            }
            event = channels.publisher_events.recv() => {
                match event {
                    Some(crate::media::PeerEvent::Track(up)) => {
                        participant.on_up_track(up, max_bitrate).await;
                    }
                    Some(crate::media::PeerEvent::DataChannel(link)) => participant.on_data_channel(link),
                    Some(crate::media::PeerEvent::Connected) => publisher_connected = true,
                    Some(crate::media::PeerEvent::Down) if publisher_connected => {
                        break Some((CLOSE_NORMAL, "media connection lost"));
                    }
                    Some(crate::media::PeerEvent::Down) | None => {}
                }
            }
            event = channels.subscriber_events.recv() => {
                if let Some(crate::media::PeerEvent::Down) = event {
                    break Some((CLOSE_NORMAL, "media connection lost"));
                }
            }
            _ = tick.tick() => {
                if participant.is_closed() {
                    break Some((CLOSE_NORMAL, "removed"));
                }
                if last_seen.elapsed() > Duration::from_secs(PING_TIMEOUT_SECS as u64) {
                    info!("client silent past ping timeout");
                    break Some((CLOSE_POLICY, "ping timeout"));
                }
            }
            _ = shutdown.changed() => {
                let _ = sink.send(leave(proto::DisconnectReason::ServerShutdown, proto::leave_request::Action::Disconnect)).await;
                break Some((CLOSE_NORMAL, "server shutdown"));
            }
        }
    };
    // Flush what is queued (e.g. a Leave) before closing.
    while let Ok(response) = channels.outbox.try_recv() {
        let _ = sink
            .send(Message::Binary(response.encode_to_vec().into()))
            .await;
    }
    room.remove_participant(&participant).await;
    if let Some((code, reason)) = close {
        let _ = sink.send(close_frame(code, reason)).await;
    }
    let _ = sink.close().await;
    info!("session ended");
}
