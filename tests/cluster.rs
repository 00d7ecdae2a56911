//! Salon on a LiveKit cluster, end to end: Redis plus two LiveKit server
//! nodes on loopback (the binary `scripts/setup-livekit-server.sh` builds),
//! a real Synapse, and the real bridge with `[sfu] backend = "livekit"`.
//!
//! What a member must see: the join API hands out the cluster's URL and a
//! token LiveKit takes; two members, one through each node, hear each other;
//! the room lists who is in the call, learned from LiveKit's signed webhooks
//! (a forged or unsigned webhook is refused and changes nothing); with
//! transcription on, a spoken sentence comes back as a transcript notice
//! under the speaker's mxid and as a LiveKit caption in the call, also after
//! the bridge was killed and restarted mid-call; leaving
//! updates the room; `!visio stop` closes the LiveKit room (everyone is
//! disconnected) and the minutes arrive. `salon doctor` checks the cluster.
//!
//! Skips, loudly, only when there is no LiveKit binary AND
//! `SALON_REQUIRE_LIVEKIT` is unset (scripts/test.sh sets it).

#[path = "support/score.rs"]
mod score;
mod support;

use std::time::{Duration, Instant};

use livekit_protocol::data_packet;
use salon_sfu::testing::TestClient;
use serde_json::{Value, json};
use support::{User, join_grant, room_with_bot, speak, talk, workspace_root};

use support::backends::{KEY, SECRET, cluster_env, livekit_binary};
const WAIT: Duration = Duration::from_secs(30);
/// Transcription on a loaded two-core machine can lag; a ceiling, not a target.
const TRANSCRIPT_WAIT: Duration = Duration::from_secs(120);
const ALICE_SAYS: &str = "The budget for the new school library is ready for review.";

/// Who the room's `org.salon.call` lists.
async fn listed(user: &User, room: &str) -> Vec<String> {
    user.state(room, "org.salon.call", "")
        .await
        .and_then(|s| s["participants"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect()
}

/// A webhook body LiveKit could have sent: `identity` left `room`.
fn left_body(room: &str, identity: &str) -> String {
    json!({"event": "participant_left", "room": {"name": room},
           "participant": {"identity": identity}, "id": "EV_forged", "createdAt": "1"})
    .to_string()
}

/// A webhook signature as LiveKit makes it, with `secret`.
fn signature(secret: &str, body: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": KEY, "exp": now + 300, "nbf": now - 5,
        "sha256": base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body)),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Waits until `track` brings packets, and returns the payloads of up to `n`.
async fn hear(track: &mut salon_sfu::testing::ReceivedTrack, n: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < n {
        match tokio::time::timeout_at(deadline, track.packets.recv()).await {
            Ok(Some(p)) => got.push(p.payload.to_vec()),
            _ => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_on_a_livekit_cluster_is_joined_heard_transcribed_and_closed() {
    let Some(binary) = livekit_binary() else {
        return;
    };
    assert!(
        workspace_root().join("models/base/model.bin").exists(),
        "no Whisper model: run scripts/install-models.sh"
    );
    let (mut env, mut cluster) = cluster_env(&binary, |_| {}).await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let room = room_with_bot(&env, &alice, &[&bob]).await;

    // `salon doctor` checks the cluster: it answers and takes the key.
    let (_, report) = env.doctor(&env.config_path);
    assert!(report.contains("LiveKit answers at"), "{report}");
    assert!(
        report.contains(&format!("LiveKit accepts the API key `{KEY}`")),
        "{report}"
    );
    assert!(report.contains("Salon's webhook answers"), "{report}");
    // With a secret the cluster does not know, it says so in plain words.
    let wrong = env.dir.path().join("wrong-secret.toml");
    std::fs::write(
        env.dir.path().join("wrong_secret"),
        "not-the-cluster-secret-0123456789abcdef",
    )
    .unwrap();
    let text = std::fs::read_to_string(&env.config_path)
        .unwrap()
        .replace("livekit_secret", "wrong_secret");
    std::fs::write(&wrong, text).unwrap();
    let (ok, report) = env.doctor(&wrong);
    assert!(!ok, "doctor fails with a wrong secret:\n{report}");
    assert!(
        report.contains(&format!(
            "LiveKit refused the API key `{KEY}` or its secret"
        )),
        "{report}"
    );

    let started = alice.command(&room, "!visio start").await;
    let call_id = started["org.salon.reply"]["call_id"]
        .as_str()
        .expect("a started call")
        .to_owned();

    // The join API hands out the cluster's URL and a token LiveKit takes:
    // alice through node 0, bob through node 1 of the same cluster.
    let alice_grant = join_grant(&env, &alice, &call_id, "Alice").await;
    assert_eq!(
        alice_grant["url"],
        cluster.nodes[0].ws_url(),
        "{alice_grant}"
    );
    let alice_client = TestClient::connect(
        alice_grant["url"].as_str().unwrap(),
        alice_grant["token"].as_str().unwrap(),
    )
    .await
    .expect("LiveKit takes the token Salon minted");
    assert_eq!(
        alice_client.join.participant.as_ref().unwrap().identity,
        alice.user_id,
        "the member joins as their mxid"
    );
    let bob_grant = join_grant(&env, &bob, &call_id, "Bob").await;
    let bob_client = TestClient::connect(
        &cluster.nodes[1].ws_url(),
        bob_grant["token"].as_str().unwrap(),
    )
    .await
    .expect("the other node takes it too");

    // Salon learns both joins from the webhooks: the room lists them.
    alice.wait_in_call(&room, &alice.user_id).await;
    alice.wait_in_call(&room, &bob.user_id).await;

    // They hear each other, byte for byte.
    let alice_mic = alice_client.publish(true).await.unwrap();
    let bob_mic = bob_client.publish(true).await.unwrap();
    let chirps = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..150u8 {
            tick.tick().await;
            alice_mic.send(&[0xf8, 0xa1, i], 30).await;
            bob_mic.send(&[0xf8, 0xb0, i], 30).await;
        }
        (alice_mic, bob_mic)
    });
    let mut bob_hears = bob_client
        .next_track(WAIT)
        .await
        .expect("bob gets alice's audio");
    let mut alice_hears = alice_client
        .next_track(WAIT)
        .await
        .expect("alice gets bob's audio");
    let (from_alice, from_bob) = (
        hear(&mut bob_hears, 20).await,
        hear(&mut alice_hears, 20).await,
    );
    assert!(
        from_alice.len() >= 20 && from_alice.iter().all(|p| p[..2] == [0xf8, 0xa1]),
        "bob heard {} packets of alice's",
        from_alice.len()
    );
    assert!(
        from_bob.len() >= 20 && from_bob.iter().all(|p| p[..2] == [0xf8, 0xb0]),
        "alice heard {} packets of bob's",
        from_bob.len()
    );
    let (alice_mic, _bob_mic) = chirps.await.unwrap();

    // A forged webhook (unsigned, or signed with another secret) is refused
    // and changes nothing: alice stays in the call.
    let webhook = format!(
        "http://127.0.0.1:{}{}",
        env.web_port,
        salon::livekit::WEBHOOK_PATH
    );
    let body = left_body(&call_id, &alice.user_id);
    let post = |authorization: Option<String>| {
        let mut request = env.http.post(&webhook).body(body.clone());
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(None).await, 401, "an unsigned webhook");
    let other_secret = signature("not-the-cluster-secret-but-long-enough-000", &body);
    assert_eq!(
        post(Some(other_secret)).await,
        401,
        "signed with another secret"
    );
    let other_body = signature(SECRET, &left_body(&call_id, "@someone:else"));
    assert_eq!(
        post(Some(other_body)).await,
        401,
        "a signature for another body"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = listed(&alice, &room).await;
    assert!(
        still.contains(&alice.user_id) && still.contains(&bob.user_id),
        "a refused webhook changed the room: {still:?}"
    );

    // The bridge dies and comes back mid-call: the webhooks of those already
    // in the call are long gone, so it asks LiveKit who is there (the
    // transcription below needs it to know alice is in the call).
    env.kill_bridge();
    env.start_bridge().await;

    // Transcription on: the hidden transcriber joins, alice speaks, the room
    // gets her sentence under her mxid, and bob gets LiveKit captions.
    let saved = alice.command(&room, "!visio settings language=en").await;
    assert_eq!(saved["org.salon.reply"]["language"], "en", "{saved}");
    let on = alice.command(&room, "!visio transcribe on").await;
    assert_eq!(on["org.salon.reply"]["outcome"], "on", "{on}");
    let alice_id = alice.user_id.clone();
    let captions = tokio::spawn(async move {
        let mut finals = Vec::new();
        let mut banner = false;
        let deadline = Instant::now() + TRANSCRIPT_WAIT;
        while Instant::now() < deadline {
            let Ok((_, packet)) = bob_client.next_data(Duration::from_secs(5)).await else {
                continue;
            };
            match packet.value {
                Some(data_packet::Value::User(user))
                    if user.topic.as_deref() == Some("salon.transcription") =>
                {
                    banner |= String::from_utf8_lossy(&user.payload).contains("true");
                }
                Some(data_packet::Value::Transcription(t))
                    if t.transcribed_participant_identity == alice_id =>
                {
                    finals.extend(t.segments.into_iter().filter(|s| s.r#final).map(|s| s.text));
                    if score::wer(ALICE_SAYS, &finals.join(" ")) <= 0.25 {
                        break;
                    }
                }
                _ => {}
            }
        }
        (banner, finals, bob_client)
    });
    // The transcriber is a hidden participant: members are never told of it.
    let speech = speak(env.dir.path(), "alice", ALICE_SAYS, "en-us");
    talk(&alice_mic, vec![speech]).await;
    let deadline = Instant::now() + TRANSCRIPT_WAIT;
    let heard = loop {
        let notices: Vec<Value> = alice
            .timeline(&room)
            .await
            .into_iter()
            .filter(|e| e["content"]["org.salon.transcript"]["speaker"] == alice.user_id.as_str())
            .collect();
        let text: Vec<&str> = notices
            .iter()
            .filter_map(|e| e["content"]["org.salon.transcript"]["text"].as_str())
            .collect();
        let text = text.join(" ");
        if score::wer(ALICE_SAYS, &text) <= 0.25 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no transcript of alice's sentence (heard {text:?}):\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    eprintln!("alice said {ALICE_SAYS:?}; the room got {heard:?}");
    let (banner, finals, bob_client) = captions.await.unwrap();
    assert!(
        score::wer(ALICE_SAYS, &finals.join(" ")) <= 0.25,
        "bob's LiveKit captions of alice: {finals:?}"
    );
    assert!(banner, "bob was told transcription is on");
    let told_of_transcriber = bob_client.signals().iter().any(|m| match m {
        livekit_protocol::signal_response::Message::Update(u) => u
            .participants
            .iter()
            .any(|p| p.identity == salon::livekit::TRANSCRIBER_IDENTITY),
        _ => false,
    });
    assert!(!told_of_transcriber, "the hidden transcriber was announced");

    // Moderation through RoomService: alice mutes bob (LiveKit asks his
    // client to mute), then removes him. LiveKit keeps no list of the
    // removed: when bob comes back with the token he had, Salon learns it
    // from the webhook and removes him again.
    let muted = alice
        .command(&room, &format!("!visio mute {}", bob.user_id))
        .await;
    assert_eq!(muted["org.salon.reply"]["outcome"], "done", "{muted}");
    assert_eq!(muted["org.salon.reply"]["tracks"], 1, "{muted}");
    bob_client
        .wait_signal("LiveKit's mute request", WAIT, |m| match m {
            livekit_protocol::signal_response::Message::Mute(r) if r.muted => Some(()),
            _ => None,
        })
        .await
        .expect("bob's client is asked to mute");
    let removed = alice
        .command(&room, &format!("!visio remove {}", bob.user_id))
        .await;
    assert_eq!(removed["org.salon.reply"]["outcome"], "done", "{removed}");
    bob_client
        .wait_closed(WAIT)
        .await
        .expect("LiveKit disconnected bob");
    alice
        .wait_until("bob no longer listed", WAIT, || async {
            !listed(&alice, &room).await.contains(&bob.user_id)
        })
        .await;
    let back = TestClient::connect(
        &cluster.nodes[1].ws_url(),
        bob_grant["token"].as_str().unwrap(),
    )
    .await
    .expect("LiveKit itself takes the old token back");
    back.wait_closed(WAIT)
        .await
        .expect("Salon removes bob again when he comes back with his old token");
    let (status, _) = {
        let r = env
            .http
            .post(format!(
                "http://127.0.0.1:{}/_salon/v1/calls/{call_id}/join",
                env.web_port
            ))
            .json(&json!({"openid_token": bob.openid_token().await}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 403, "no new token for a removed member");

    // `!visio stop` closes the LiveKit room: alice is disconnected, LiveKit
    // no longer has the room, and the minutes arrive.
    let stopped = alice.command(&room, "!visio stop").await;
    assert_eq!(stopped["org.salon.reply"]["outcome"], "ended", "{stopped}");
    alice_client
        .wait_closed(WAIT)
        .await
        .expect("LiveKit disconnected alice when the call stopped");
    let api = salon::livekit::RoomService::new(
        &url::Url::parse(&cluster.nodes[1].ws_url()).unwrap(),
        KEY,
        SECRET,
    );
    let rooms = api.list_rooms().await.expect("the server API answers");
    assert!(
        !rooms.contains(&call_id),
        "the room is still open: {rooms:?}"
    );
    let deadline = Instant::now() + TRANSCRIPT_WAIT;
    loop {
        let minutes = alice
            .timeline(&room)
            .await
            .into_iter()
            .find(|e| e["content"]["org.salon.minutes"]["call_id"] == call_id.as_str());
        if let Some(minutes) = minutes {
            let people = minutes["content"]["org.salon.minutes"]["participants"].to_string();
            assert!(people.contains(&alice.user_id), "{people}");
            break;
        }
        assert!(Instant::now() < deadline, "no minutes:\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        cluster.nodes.iter_mut().all(|n| n.running()),
        "a LiveKit node died"
    );
    let log = std::fs::read_to_string(env.dir.path().join("bridge.log")).unwrap();
    assert!(
        log.contains("refused a LiveKit webhook"),
        "refusals are logged"
    );
    assert!(!log.contains(SECRET), "the secret is never logged");
}
