//! The client against LiveKit's own server: two LiveKit nodes sharing a
//! Redis on loopback, a participant on each, and a hidden agent, as the
//! bridge's LiveKit backend runs one. What each must see: the other's audio
//! packets, byte for byte; the agent's `Transcription` packets; never the
//! hidden agent in the participant list.
//!
//! Skips (loudly) when the LiveKit binary is absent and
//! `SALON_REQUIRE_LIVEKIT` is unset; `scripts/setup.sh` builds it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use salon_lkclient::proto::{self, signal_response};
use salon_lkclient::server::{Cluster, ClusterConfig};
use salon_lkclient::{Client, WAIT};
use serde::Serialize;

const KEY: &str = "salon-test";
const SECRET: &str = "a-test-secret-that-is-long-enough-for-livekit";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Grant {
    room: String,
    room_join: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    can_publish: Option<bool>,
    /// LiveKit defaults it to `can_publish`: a hidden agent must say it.
    #[serde(skip_serializing_if = "Option::is_none")]
    can_publish_data: Option<bool>,
    hidden: bool,
    agent: bool,
}

#[derive(Serialize)]
struct Claims {
    iss: String,
    sub: String,
    name: String,
    exp: u64,
    nbf: u64,
    video: Grant,
}

fn token(room: &str, identity: &str, hidden: bool) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        iss: KEY.into(),
        sub: identity.into(),
        name: identity.into(),
        exp: now + 600,
        nbf: now - 5,
        video: Grant {
            room: room.into(),
            room_join: true,
            can_publish: hidden.then_some(false),
            can_publish_data: hidden.then_some(true),
            hidden,
            agent: hidden,
        },
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn cluster() -> Option<(tempdir::Dir, Cluster)> {
    let Some(binary) = salon_lkclient::server::binary() else {
        assert!(
            std::env::var_os("SALON_REQUIRE_LIVEKIT").is_none(),
            "SALON_REQUIRE_LIVEKIT is set but there is no LiveKit server: run scripts/setup-livekit-server.sh"
        );
        eprintln!(
            "\n*** SKIPPED: no LiveKit server binary (run scripts/setup-livekit-server.sh) ***\n"
        );
        return None;
    };
    let dir = tempdir::Dir::new();
    let cluster = Cluster::start(
        &binary,
        &dir.0,
        &ClusterConfig {
            nodes: 2,
            api_key: KEY.into(),
            api_secret: SECRET.into(),
            webhook_urls: vec![],
            empty_timeout_s: 10,
        },
    );
    Some((dir, cluster))
}

mod tempdir {
    /// A folder removed on drop (kept when the test fails, for its logs).
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("lk-test-{}", rand::random::<u64>()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            if std::thread::panicking() || std::env::var_os("KEEP_LK").is_some() {
                for log in ["livekit-0.log", "livekit-1.log"] {
                    let text = std::fs::read_to_string(self.0.join(log)).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    eprintln!(
                        "--- {log} ({}) ---\n{}",
                        self.0.display(),
                        lines[lines.len().saturating_sub(30)..].join("\n")
                    );
                }
            } else {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_on_two_nodes_hear_each_other_and_get_an_agents_captions() {
    let Some((_dir, cluster)) = cluster() else {
        return;
    };
    let room = "lkclient-interop";
    let alice = Client::connect(&cluster.nodes[0].ws_url(), &token(room, "alice", false))
        .await
        .expect("node 0 takes alice");
    let bob = Client::connect(&cluster.nodes[1].ws_url(), &token(room, "bob", false))
        .await
        .expect("node 1 takes bob");
    let agent = Client::connect(&cluster.nodes[1].ws_url(), &token(room, "agent", true))
        .await
        .expect("node 1 takes the hidden agent");
    agent
        .open_data_channels(WAIT)
        .await
        .expect("the agent's data channels open");

    let track = alice.publish(true).await.expect("alice publishes audio");
    let sid = track.sid.clone();
    // A track reaches a subscriber with its first packet: keep talking.
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..500u32 {
            tick.tick().await;
            let b = (i % 251) as u8;
            track.send(&[0xf8, b, b, b], 30).await;
        }
        track
    });
    let mut received = bob.next_track(WAIT).await.expect("bob gets alice's track");
    assert!(received.is_audio);
    assert!(
        received.stream_id.contains(&sid),
        "the stream names alice's track: {}",
        received.stream_id
    );
    // The agent hears her too (it subscribes to every track).
    let mut agent_track = agent.next_track(WAIT).await.expect("the agent gets it");

    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < 20 {
        match tokio::time::timeout_at(deadline, received.packets.recv()).await {
            Ok(Some(p)) => got.push(p.payload.to_vec()),
            _ => break,
        }
    }
    assert!(
        got.len() >= 20,
        "bob heard {} packets across the two nodes",
        got.len()
    );
    assert!(
        got.iter()
            .all(|p| p.len() == 4 && p[0] == 0xf8 && p[1] == p[2])
    );
    let from_agent = tokio::time::timeout(WAIT, agent_track.packets.recv())
        .await
        .ok()
        .flatten();
    let from_agent = from_agent.expect("the hidden agent hears alice");
    assert!(
        from_agent.payload.len() == 4
            && from_agent.payload[0] == 0xf8
            && from_agent.payload_type == 111,
        "the agent gets alice's Opus as she sent it: {from_agent:?}"
    );
    sender.abort();

    // A caption from the hidden agent reaches alice on the other node.
    let packet = proto::DataPacket {
        value: Some(proto::data_packet::Value::Transcription(
            proto::Transcription {
                transcribed_participant_identity: "alice".into(),
                track_id: String::new(),
                segments: vec![proto::TranscriptionSegment {
                    id: "u1".into(),
                    text: "hello from the agent".into(),
                    start_time: 0,
                    end_time: 1000,
                    r#final: true,
                    language: String::new(),
                }],
            },
        )),
        ..Default::default()
    };
    agent.send_packet(&packet).await.expect("the agent sends");
    let deadline = tokio::time::Instant::now() + WAIT;
    let caption = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (_, packet) = alice.next_data(left).await.expect("alice gets the caption");
        if let Some(proto::data_packet::Value::Transcription(t)) = packet.value {
            break t;
        }
    };
    assert_eq!(caption.transcribed_participant_identity, "alice");
    assert_eq!(caption.segments[0].text, "hello from the agent");

    // The agent is hidden: nobody is told about it.
    let told_of_agent = bob.signals().iter().any(|m| match m {
        signal_response::Message::Update(u) => u.participants.iter().any(|p| p.identity == "agent"),
        signal_response::Message::Join(j) => {
            j.other_participants.iter().any(|p| p.identity == "agent")
        }
        _ => false,
    }) || alice
        .join
        .other_participants
        .iter()
        .any(|p| p.identity == "agent");
    assert!(!told_of_agent, "the hidden agent was announced");
    // Bob is told about alice (across nodes), though.
    bob.wait_signal("alice in bob's participant list", WAIT, |m| match m {
        signal_response::Message::Update(u) => u
            .participants
            .iter()
            .any(|p| p.identity == "alice")
            .then_some(()),
        _ => None,
    })
    .await
    .or_else(|_| {
        bob.join
            .other_participants
            .iter()
            .any(|p| p.identity == "alice")
            .then_some(())
            .ok_or(())
    })
    .expect("bob knows alice");
}
