//! Salon as Element Call's focus, on a real Synapse set up as
//! `docs/element-call.md` says: a room member gets a LiveKit token from
//! `/livekit/jwt/sfu/get` (and `/get_token`) exactly as Element Call asks for
//! it, joins Salon's SFU with it and publishes audio that another member
//! hears; everything else is refused with the status and errcode it should.

mod support;

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Env, User, room_with_bot};

const WAIT: Duration = support::WAIT;
/// What `docs/element-call.md` tells the admin to add to `homeserver.yaml`
/// (the transport's URL aside, which names this test's bridge).
const MATRIX_RTC: &str = r#"
experimental_features:
  msc4143_enabled: true
  msc4222_enabled: true
max_event_delay_duration: 24h
matrix_rtc:
  transports:
    - type: livekit
      livekit_service_url: "http://salon.test.invalid/livekit/jwt"
"#;

struct Focus {
    base: String,
    http: reqwest::Client,
}

impl Focus {
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("origin", "https://call.element.example")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "*",
            "CORS on {path}"
        );
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post(path, body.to_string()).await
    }
}

/// The `/sfu/get` body Element Call 0.26 sends.
async fn sfu_get_body(user: &User, room: &str, device: &str) -> Value {
    json!({"room": room, "openid_token": user.openid_token().await, "device_id": device})
}

/// The `/get_token` body of a Matrix 2.0 client.
async fn get_token_body(user: &User, room: &str, claimed_user: &str) -> Value {
    json!({
        "room_id": room, "slot_id": "m.call#ROOM",
        "openid_token": user.openid_token().await,
        "member": {"id": "member-1", "claimed_user_id": claimed_user, "claimed_device_id": "BOBDEV"},
    })
}

fn hash(parts: &[&str]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(Sha256::digest(serde_json::to_string(parts).unwrap()))
}

/// The JWT's claims, decoded as Element Call does (`atob`: the standard
/// alphabet), checking they are ASCII.
fn claims_as_element_call_reads_them(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(payload)
        .expect("the payload decodes with atob's alphabet");
    assert!(bytes.is_ascii(), "claims are ASCII");
    serde_json::from_slice(&bytes).unwrap()
}

fn assert_element_call_grant(claims: &Value, identity: &str, livekit_room: &str) {
    assert_eq!(claims["sub"], identity, "{claims}");
    let video = &claims["video"];
    assert_eq!(video["room"], livekit_room, "{claims}");
    for grant in [
        "roomJoin",
        "canPublish",
        "canSubscribe",
        "canUpdateOwnMetadata",
    ] {
        assert_eq!(video[grant], true, "{grant} in {claims}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ttl = claims["exp"].as_u64().unwrap() - now;
    assert!((3590..=3600).contains(&ttl), "token lives {ttl} s");
}

#[tokio::test(flavor = "multi_thread")]
async fn element_call_gets_a_token_from_salon_and_joins_its_sfu() {
    let mut env = Env::start_full(|_| {}, |hs| hs.push_str(MATRIX_RTC)).await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let mallory = env.user("mallory").await;
    let room = room_with_bot(&env, &alice, &[&bob]).await;
    let focus = Focus {
        base: format!("http://127.0.0.1:{}/livekit/jwt", env.web_port),
        http: env.http.clone(),
    };

    // The homeserver accepts the documented settings and advertises the transport.
    let homeserver = |path: &str| {
        let request = env.http.get(format!("{}{path}", env.hs_url));
        async { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let transports = homeserver(&format!(
        "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports?access_token={}",
        alice.token
    ))
    .await;
    assert_eq!(
        transports["rtc_transports"][0]["livekit_service_url"],
        "http://salon.test.invalid/livekit/jwt",
        "{transports}"
    );
    let versions = homeserver("/_matrix/client/versions").await;
    for feature in ["org.matrix.msc4143", "org.matrix.msc4140"] {
        assert_eq!(versions["unstable_features"][feature], true, "{feature}");
    }
    // doctor sees MatrixRTC and delayed events on, and names the transport
    // URL this bridge needs (the one configured above points elsewhere)
    let (ok, out) = env.doctor(&env.config_path);
    assert!(ok, "{out}");
    assert!(out.contains("✓ the homeserver has delayed events"), "{out}");
    assert!(
        out.contains(&format!(
            "! matrix_rtc.transports does not list Salon: add `- type: livekit` with `livekit_service_url: http://127.0.0.1:{}/livekit/jwt`",
            env.web_port
        )),
        "{out}"
    );

    // The browser's preflight is answered, with CORS.
    let preflight = env
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/sfu/get", focus.base))
        .header("origin", "https://call.element.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert!(
        preflight.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("content-type")
    );

    // Alice, a member, asks twice as Element Call does: both are answered.
    let livekit_room = hash(&[&room, "m.call#ROOM"]);
    let alice_identity = format!("{}:ALICEDEV", alice.user_id);
    let mut grants = Vec::new();
    for _ in 0..2 {
        let (status, grant) = focus
            .post_json("/sfu/get", &sfu_get_body(&alice, &room, "ALICEDEV").await)
            .await;
        assert_eq!(status, 200, "{grant}");
        assert_eq!(
            grant.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["jwt", "url"]
        );
        assert_eq!(
            grant["url"],
            format!("ws://127.0.0.1:{}", env.web_port).as_str()
        );
        let claims = claims_as_element_call_reads_them(grant["jwt"].as_str().unwrap());
        assert_element_call_grant(&claims, &alice_identity, &livekit_room);
        grants.push(grant);
    }

    // Bob, through the Matrix 2.0 endpoint: a hashed identity, the same LiveKit room.
    let (status, bob_grant) = focus
        .post_json(
            "/get_token",
            &get_token_body(&bob, &room, &bob.user_id).await,
        )
        .await;
    assert_eq!(status, 200, "{bob_grant}");
    let claims = claims_as_element_call_reads_them(bob_grant["jwt"].as_str().unwrap());
    let bob_identity = hash(&[&bob.user_id, "BOBDEV", "member-1"]);
    assert_element_call_grant(&claims, &bob_identity, &livekit_room);

    // Both join Salon's SFU with those tokens; Alice publishes audio, Bob hears it.
    let alice_media = salon_sfu::testing::TestClient::connect(
        grants[1]["url"].as_str().unwrap(),
        grants[1]["jwt"].as_str().unwrap(),
    )
    .await
    .expect("the SFU accepts the focus token");
    let bob_media = salon_sfu::testing::TestClient::connect(
        bob_grant["url"].as_str().unwrap(),
        bob_grant["jwt"].as_str().unwrap(),
    )
    .await
    .expect("the SFU accepts the hashed identity");
    let microphone = alice_media
        .publish(true)
        .await
        .expect("the SFU accepts Alice's audio");
    let tone: Vec<f32> = (0..16_000)
        .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin())
        .collect();
    let sending = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for (packet, level) in support::opus_frames(&tone) {
            tick.tick().await;
            microphone.send(&packet, level).await;
        }
        microphone
    });
    let heard = bob_media
        .next_track(WAIT)
        .await
        .expect("Bob receives Alice's audio");
    drop(heard);
    let _microphone = sending.await.unwrap();

    // Bad input, each refused with its status and errcode, with CORS.
    let refused = |status: u16, errcode: &str, answer: &(u16, Value)| {
        assert_eq!(
            (answer.0, answer.1["errcode"].as_str()),
            (status, Some(errcode)),
            "{}",
            answer.1
        );
        assert!(answer.1["error"].is_string(), "{}", answer.1);
    };
    let mut forged = sfu_get_body(&alice, &room, "ALICEDEV").await;
    forged["openid_token"]["access_token"] = "forged-token".into();
    refused(
        401,
        "M_UNAUTHORIZED",
        &focus.post_json("/sfu/get", &forged).await,
    );
    let mut other_server = sfu_get_body(&alice, &room, "ALICEDEV").await;
    other_server["openid_token"]["matrix_server_name"] = "evil.example".into();
    refused(
        401,
        "M_UNAUTHORIZED",
        &focus.post_json("/sfu/get", &other_server).await,
    );
    // A member claiming to be someone else.
    refused(
        401,
        "M_UNAUTHORIZED",
        &focus
            .post_json(
                "/get_token",
                &get_token_body(&bob, &room, &alice.user_id).await,
            )
            .await,
    );
    // Not a member of the room.
    refused(
        403,
        "M_FORBIDDEN",
        &focus
            .post_json("/sfu/get", &sfu_get_body(&mallory, &room, "MALDEV").await)
            .await,
    );
    refused(
        403,
        "M_FORBIDDEN",
        &focus
            .post_json(
                "/get_token",
                &get_token_body(&mallory, &room, &mallory.user_id).await,
            )
            .await,
    );
    // Unknown fields (the delegation fields too), missing fields, not JSON, too big.
    let mut unknown = sfu_get_body(&alice, &room, "ALICEDEV").await;
    unknown["delay_id"] = "syd_abc".into();
    unknown["delay_timeout"] = 18000.into();
    unknown["delay_cs_api_url"] = env.hs_url.as_str().into();
    refused(
        400,
        "M_BAD_JSON",
        &focus.post_json("/sfu/get", &unknown).await,
    );
    refused(
        400,
        "M_BAD_JSON",
        &focus
            .post_json("/sfu/get", &json!({"room": room, "device_id": "D"}))
            .await,
    );
    refused(400, "M_NOT_JSON", &focus.post("/get_token", "{room").await);
    refused(
        413,
        "M_TOO_LARGE",
        &focus
            .post(
                "/sfu/get",
                format!("{{\"room\": \"{}\"}}", "x".repeat(70_000)),
            )
            .await,
    );
    // Delegating the delayed leave event is not offered.
    refused(
        404,
        "M_UNRECOGNIZED",
        &focus.post("/delegate_delayed_leave", "").await,
    );

    // A room the bot is not in: Salon cannot vouch for its members.
    let private = alice.create_room(json!({})).await;
    refused(
        403,
        "M_FORBIDDEN",
        &focus
            .post_json(
                "/sfu/get",
                &sfu_get_body(&alice, &private, "ALICEDEV").await,
            )
            .await,
    );

    // Past 20 attempts a minute from one address: 429 (13 were made above).
    let body = json!({"room": room, "device_id": "D"}).to_string();
    let mut statuses = Vec::new();
    for _ in 0..9 {
        statuses.push(focus.post("/sfu/get", body.clone()).await);
    }
    for answer in &statuses[..7] {
        refused(400, "M_BAD_JSON", answer);
    }
    for answer in &statuses[7..] {
        refused(429, "M_LIMIT_EXCEEDED", answer);
    }
    alice_media.leave().await;
    bob_media.leave().await;
}
