//! The signaling endpoint under bad input: bad tokens are refused before any
//! WebSocket exists, hostile frames end only their own session, and a call in
//! another room keeps flowing throughout. Also the `/rtc/v1` fallback answer.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use livekit_protocol::{signal_request, signal_response};
use prost::Message as _;
use salon_sfu::testing::{TestClient, WAIT};
use salon_sfu::token;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_join(ws: &str, room: &str, identity: &str) -> Socket {
    let url = format!("{ws}/rtc?access_token={}", common::token(room, identity));
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let first = tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("join in time")
        .expect("frame")
        .expect("ok");
    let response = proto::SignalResponse::decode(first.into_data()).expect("protobuf");
    assert!(matches!(
        response.message,
        Some(signal_response::Message::Join(_))
    ));
    socket
}

/// Reads until the server closes; returns the close code if it sent one.
async fn closed_by_server(socket: &mut Socket) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => panic!("server did not close the connection"),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

fn request(message: signal_request::Message) -> Message {
    Message::Binary(
        proto::SignalRequest {
            message: Some(message),
        }
        .encode_to_vec()
        .into(),
    )
}

fn offer(sdp: String) -> Message {
    request(signal_request::Message::Offer(proto::SessionDescription {
        r#type: "offer".into(),
        sdp,
        id: 1,
        ..Default::default()
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_missing_tokens_are_refused() {
    let server = common::start().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let forged = token::mint(
        common::KEY,
        "somebody-elses-secret-123456",
        "room",
        "mallory",
        "",
        Duration::from_secs(60),
    );
    let expired = token::encode(
        common::SECRET,
        &token::Claims {
            iss: common::KEY.into(),
            sub: "late".into(),
            name: String::new(),
            exp: now - 120,
            nbf: 0,
            video: token::VideoGrant {
                room: "room".into(),
                room_join: true,
                ..Default::default()
            },
        },
    );
    let no_join = token::encode(
        common::SECRET,
        &token::Claims {
            iss: common::KEY.into(),
            sub: "nojoin".into(),
            name: String::new(),
            exp: now + 60,
            nbf: 0,
            video: token::VideoGrant {
                room: "room".into(),
                room_join: false,
                ..Default::default()
            },
        },
    );
    let other_key = token::mint(
        "OtherKey",
        common::SECRET,
        "room",
        "x",
        "",
        Duration::from_secs(60),
    );
    for (what, token) in [
        ("forged", forged.as_str()),
        ("expired", expired.as_str()),
        ("no roomJoin", no_join.as_str()),
        ("other key", other_key.as_str()),
        ("garbage", "not.a.jwt"),
    ] {
        let refused = TestClient::connect(&server.ws, token).await;
        match refused {
            Err(salon_sfu::testing::ClientError::WebSocket(
                tokio_tungstenite::tungstenite::Error::Http(response),
            )) => assert_eq!(response.status(), 401, "{what}"),
            Err(other) => panic!("{what}: unexpected error {other}"),
            Ok(_) => panic!("{what} token was accepted"),
        }
    }
    let (status, _) = http_get(&server.http, "/rtc").await;
    assert!(status == 401 || status == 400, "no token: {status}");
    assert!(
        server.sfu.rooms().is_empty(),
        "refused joins create no room"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_close_only_their_session_and_other_calls_keep_flowing() {
    let server = common::start().await;
    // A healthy call in another room.
    let alice = TestClient::connect(&server.ws, &common::token("calm", "alice"))
        .await
        .expect("alice");
    let bob = TestClient::connect(&server.ws, &common::token("calm", "bob"))
        .await
        .expect("bob");
    let mic = Arc::new(alice.publish(true).await.expect("publish"));
    let pumping = {
        let mic = mic.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                mic.send(b"calm-audio", 127).await;
            }
        })
    };
    let mut track = bob.next_track(WAIT).await.expect("bob gets alice");
    tokio::time::timeout(WAIT, track.packets.recv())
        .await
        .expect("audio flows")
        .expect("open");

    // 1. Not protobuf at all.
    let mut socket = raw_join(&server.ws, "storm", "m1").await;
    socket
        .send(Message::Binary(vec![0xff; 64].into()))
        .await
        .expect("send");
    assert_eq!(closed_by_server(&mut socket).await, Some(1003));

    // 2. A text frame (LiveKit signaling is binary protobuf).
    let mut socket = raw_join(&server.ws, "storm", "m2").await;
    socket
        .send(Message::Text("{\"join\":{}}".into()))
        .await
        .expect("send");
    assert_eq!(closed_by_server(&mut socket).await, Some(1003));

    // 3. A frame over 1 MiB.
    let mut socket = raw_join(&server.ws, "storm", "m3").await;
    let _ = socket
        .send(Message::Binary(vec![0u8; 1024 * 1024 + 4096].into()))
        .await;
    let _ = closed_by_server(&mut socket).await;

    // 4. A huge SDP.
    let mut socket = raw_join(&server.ws, "storm", "m4").await;
    socket
        .send(offer(format!("v=0\r\n{}", "a=x\r\n".repeat(40_000))))
        .await
        .expect("send");
    assert_eq!(closed_by_server(&mut socket).await, Some(1008));

    // 5. An unparsable SDP.
    let mut socket = raw_join(&server.ws, "storm", "m5").await;
    socket
        .send(offer("this is not sdp".into()))
        .await
        .expect("send");
    assert_eq!(closed_by_server(&mut socket).await, Some(1008));

    // 6. An unknown message (a field this protocol version does not define)
    //    is ignored: the session stays and still answers pings.
    let mut socket = raw_join(&server.ws, "storm", "m6").await;
    // Field 200, varint 1: valid protobuf, unknown to SignalRequest.
    socket
        .send(Message::Binary(vec![0xc0, 0x0c, 0x01].into()))
        .await
        .expect("send");
    socket
        .send(request(signal_request::Message::Ping(42)))
        .await
        .expect("send");
    let pong = tokio::time::timeout(WAIT, async {
        while let Some(Ok(frame)) = socket.next().await {
            if let Message::Binary(bytes) = frame
                && let Ok(response) = proto::SignalResponse::decode(bytes)
                && matches!(response.message, Some(signal_response::Message::Pong(42)))
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(pong, Ok(true), "session survives an unknown message");
    drop(socket);

    // The calm call still flows: fresh packets keep arriving at bob.
    while track.packets.try_recv().is_ok() {}
    for _ in 0..10 {
        let packet = tokio::time::timeout(WAIT, track.packets.recv())
            .await
            .expect("audio still flows")
            .expect("open");
        assert_eq!(&packet.payload[..], b"calm-audio");
    }
    assert_eq!(server.sfu.participants("calm").len(), 2);
    // The hostile sessions are gone.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !server.sfu.participants("storm").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "hostile sessions not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pumping.abort();
}

/// One raw HTTP/1.1 request from a page at another origin; the status and
/// the whole response (headers and body).
async fn http(base: &str, method: &str, path: &str, extra: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://page.example\r\n{extra}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

async fn http_get(base: &str, path: &str) -> (u16, String) {
    http(base, "GET", path, "").await
}

fn assert_cors(path: &str, response: &str) {
    assert!(
        response
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{path} lacks CORS: {response}"
    );
}

/// livekit-client >= 2.17 tries `/rtc/v1` first and falls back to `/rtc` only
/// if the upgrade fails and `/rtc/v1/validate` answers a CORS-readable 404
/// (a 401 there would stop it), so the token must not matter on those paths.
#[tokio::test]
async fn single_peer_connection_endpoints_answer_404_with_cors_whatever_the_token() {
    let server = common::start().await;
    let good = common::token("room", "alice");
    for token in [good.as_str(), "bad"] {
        for path in [
            format!("/rtc/v1/validate?access_token={token}&join_request=abc%3D"),
            format!("/rtc/v1?access_token={token}&join_request=abc"),
        ] {
            let (status, response) = http_get(&server.http, &path).await;
            assert_eq!(status, 404, "{path}: {response}");
            assert_cors(&path, &response);
            assert!(
                !response.contains("requested room does not exist"),
                "that body would stop the fallback: {response}"
            );
        }
    }
    let (status, response) = http_get(&server.http, "/rtc/v1/validate").await;
    assert_eq!(status, 404, "no token: {response}");
    assert_cors("/rtc/v1/validate", &response);

    // A real WebSocket upgrade at /rtc/v1, with a valid token, is refused.
    let url = format!("{}/rtc/v1?access_token={good}&join_request=abc", server.ws);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 404);
            assert_eq!(
                response
                    .headers()
                    .get("access-control-allow-origin")
                    .map(|v| v.as_bytes()),
                Some(&b"*"[..])
            );
        }
        Err(other) => panic!("upgrade refused the wrong way: {other}"),
        Ok(_) => panic!("/rtc/v1 must not upgrade"),
    }
    // The fallback path is still served.
    raw_join(&server.ws, "room", "alice").await;
}

#[tokio::test]
async fn rtc_validate_answers_with_cors() {
    let server = common::start().await;
    let token = common::token("room", "alice");
    let path = format!("/rtc/validate?access_token={token}");
    let (status, response) = http_get(&server.http, &path).await;
    assert_eq!(status, 200, "{response}");
    assert_cors(&path, &response);
    let (status, response) = http(
        &server.http,
        "GET",
        "/rtc/validate",
        &format!("Authorization: Bearer {token}\r\n"),
    )
    .await;
    assert_eq!(status, 200, "bearer header: {response}");
    assert_cors("/rtc/validate (bearer)", &response);
    for path in ["/rtc/validate?access_token=bad", "/rtc/validate"] {
        let (status, response) = http_get(&server.http, path).await;
        assert_eq!(status, 401, "{path}: {response}");
        assert_cors(path, &response);
    }
}

#[tokio::test]
async fn cors_preflights_are_answered() {
    let server = common::start().await;
    for path in ["/rtc/validate", "/rtc/v1", "/rtc/v1/validate"] {
        let (status, response) = http(
            &server.http,
            "OPTIONS",
            &format!("{path}?access_token=x"),
            "Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\n",
        )
        .await;
        assert!((200..300).contains(&status), "{path}: {response}");
        assert_cors(path, &response);
        let lower = response.to_ascii_lowercase();
        assert!(
            lower.contains("access-control-allow-methods:") && lower.contains("get"),
            "{path}: {response}"
        );
        assert!(
            lower.contains("access-control-allow-headers:") && lower.contains("authorization"),
            "{path}: {response}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_announces_ice_servers_and_offers_the_public_address() {
    let mut config = salon_sfu::SfuConfig::local(common::KEY, common::SECRET);
    config.public_ip = Some("127.0.0.2".parse().expect("ip"));
    config.ice_servers = vec![salon_sfu::IceServer {
        urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
        username: "user".into(),
        credential: "pass".into(),
    }];
    let server = common::start_with(config).await;
    let url = format!(
        "{}/rtc?access_token={}",
        server.ws,
        common::token("net", "alice")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let mut join = None;
    let mut offer = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while join.is_none() || offer.is_none() {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("join and offer in time")
            .expect("frame")
            .expect("ok");
        let Message::Binary(bytes) = frame else {
            continue;
        };
        match proto::SignalResponse::decode(bytes)
            .expect("protobuf")
            .message
        {
            Some(signal_response::Message::Join(j)) => join = Some(j),
            Some(signal_response::Message::Offer(o)) => offer = Some(o),
            _ => {}
        }
    }
    let join = join.expect("join");
    assert_eq!(join.ice_servers.len(), 1);
    assert_eq!(
        join.ice_servers[0].urls,
        vec!["turn:turn.example.org:3478?transport=udp".to_owned()]
    );
    assert_eq!(join.ice_servers[0].username, "user");
    let sdp = offer.expect("subscriber offer").sdp;
    assert!(
        sdp.contains("127.0.0.2"),
        "public address not announced:\n{sdp}"
    );
    assert!(
        sdp.contains("m=application"),
        "data channels in the subscriber offer"
    );
}
