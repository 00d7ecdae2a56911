//! Media through the SFU with real LiveKit-protocol clients on the webrtc
//! crate: people hear each other, newcomers get everyone, leavers vanish from
//! everyone's view, and the embedder sees audio taps, events and captions.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use livekit_protocol::{signal_request, signal_response};
use salon_sfu::testing::{ReceivedTrack, TestClient, TrackSender, WAIT};
use salon_sfu::{Encryption, RoomEvent};
use tokio::sync::broadcast;

/// Sends `label:N` payloads every 20 ms until the returned handle is aborted.
fn pump(
    sender: Arc<TrackSender>,
    label: &'static str,
    level_dbov: u8,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0u32;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            let payload = format!("{label}:{n}:{}", "x".repeat(40));
            sender.send(payload.as_bytes(), level_dbov).await;
            n += 1;
        }
    })
}

/// Reads `count` packets of a track and returns their payloads as text.
async fn collect(track: &mut ReceivedTrack, count: usize) -> Vec<String> {
    let mut payloads = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while payloads.len() < count {
        match tokio::time::timeout_at(deadline, track.packets.recv()).await {
            Ok(Some(packet)) => {
                payloads.push(String::from_utf8(packet.payload.to_vec()).expect("utf8 payload"))
            }
            _ => break,
        }
    }
    payloads
}

fn assert_all_from(payloads: &[String], label: &str) {
    assert!(!payloads.is_empty(), "no packets received from {label}");
    let mut seen = HashSet::new();
    for payload in payloads {
        let mut parts = payload.split(':');
        assert_eq!(
            parts.next(),
            Some(label),
            "payload {payload:?} is not {label}'s"
        );
        let n: u32 = parts.next().and_then(|n| n.parse().ok()).expect("counter");
        assert_eq!(
            parts.next(),
            Some("x".repeat(40).as_str()),
            "payload altered"
        );
        assert!(seen.insert(n), "duplicate packet {n}");
    }
}

fn stream_parts(track: &ReceivedTrack) -> (String, String) {
    let (participant, track_sid) = track
        .stream_id
        .split_once('|')
        .unwrap_or_else(|| panic!("stream id {:?} is not PA_x|TR_y", track.stream_id));
    (participant.to_owned(), track_sid.to_owned())
}

async fn next_event(
    events: &mut broadcast::Receiver<RoomEvent>,
    mut want: impl FnMut(&RoomEvent) -> bool,
) -> RoomEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("event in time")
            .expect("event channel open");
        if want(&event) {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_participants_hear_each_other_then_a_third_hears_both_and_a_leaver_disappears() {
    let server = common::start().await;
    let mut events = server.sfu.events();

    let alice = TestClient::connect(&server.ws, &common::token("call", "alice"))
        .await
        .expect("alice joins");
    let join = &alice.join;
    let me = join.participant.as_ref().expect("participant");
    assert!(me.sid.starts_with("PA_"), "sid {}", me.sid);
    assert_eq!(me.identity, "alice");
    assert!(me.permission.as_ref().expect("permission").can_publish);
    assert!(
        !join
            .server_info
            .as_ref()
            .expect("server info")
            .version
            .is_empty()
    );
    assert!(join.ping_interval > 0 && join.ping_timeout > 0);

    let bob = TestClient::connect_bearer(&server.ws, &common::token("call", "bob"))
        .await
        .expect("bob joins with a Bearer header");
    assert_eq!(bob.join.other_participants.len(), 1);
    assert_eq!(bob.join.other_participants[0].identity, "alice");
    // Alice is told bob joined.
    alice
        .wait_signal("update with bob", WAIT, |m| match m {
            signal_response::Message::Update(u) => {
                u.participants.iter().find(|p| p.identity == "bob").cloned()
            }
            _ => None,
        })
        .await
        .expect("alice sees bob");

    let alice_mic = Arc::new(alice.publish(true).await.expect("alice publishes"));
    let bob_mic = Arc::new(bob.publish(true).await.expect("bob publishes"));
    assert!(alice_mic.sid.starts_with("TR_") && bob_mic.sid.starts_with("TR_"));
    let alice_pump = pump(alice_mic.clone(), "alice", 30);
    let bob_pump = pump(bob_mic.clone(), "bob", 127);
    // A track is published once its media arrives.
    let published = next_event(
        &mut events,
        |e| matches!(e, RoomEvent::TrackPublished { identity, .. } if identity == "alice"),
    )
    .await;
    let RoomEvent::TrackPublished { mime_type, .. } = published else {
        unreachable!()
    };
    assert_eq!(mime_type, "audio/opus");

    let mut at_bob = bob.next_track(WAIT).await.expect("bob gets a track");
    let mut at_alice = alice.next_track(WAIT).await.expect("alice gets a track");
    assert_eq!(
        stream_parts(&at_bob),
        (alice.sid().to_owned(), alice_mic.sid.clone())
    );
    assert_eq!(at_bob.track_id, alice_mic.sid);
    assert_eq!(
        stream_parts(&at_alice),
        (bob.sid().to_owned(), bob_mic.sid.clone())
    );
    assert_all_from(&collect(&mut at_bob, 25).await, "alice");
    assert_all_from(&collect(&mut at_alice, 25).await, "bob");

    // Alice speaks (level 30 dBov), bob is silent: bob is told alice speaks.
    let alice_sid = alice.sid().to_owned();
    bob.wait_signal("speakers_changed", WAIT, |m| match m {
        signal_response::Message::SpeakersChanged(s) => s
            .speakers
            .iter()
            .find(|s| s.sid == alice_sid && s.active)
            .cloned(),
        _ => None,
    })
    .await
    .expect("alice reported speaking");
    next_event(&mut events, |e| matches!(e, RoomEvent::Speaking { identity, speaking: true, .. } if identity == "alice")).await;
    assert!(
        !bob.signals()
            .iter()
            .any(|m| matches!(m, signal_response::Message::SpeakersChanged(s)
            if s.speakers.iter().any(|s| s.sid == bob.sid() && s.active))),
        "silent bob must not be a speaker"
    );

    // Carol joins and receives both.
    let carol = TestClient::connect(&server.ws, &common::token("call", "carol"))
        .await
        .expect("carol joins");
    assert_eq!(carol.join.other_participants.len(), 2);
    let mut first = carol.next_track(WAIT).await.expect("carol's first track");
    let mut second = carol.next_track(WAIT).await.expect("carol's second track");
    let mut by_owner = vec![
        (stream_parts(&first).0, collect(&mut first, 15).await),
        (stream_parts(&second).0, collect(&mut second, 15).await),
    ];
    by_owner.sort();
    let mut expected = vec![alice.sid().to_owned(), bob.sid().to_owned()];
    expected.sort();
    assert_eq!(
        by_owner.iter().map(|(o, _)| o.clone()).collect::<Vec<_>>(),
        expected
    );
    for (owner, payloads) in &by_owner {
        let label = if owner == alice.sid() { "alice" } else { "bob" };
        assert_all_from(payloads, label);
    }
    assert_eq!(server.sfu.participants("call").len(), 3);

    // Alice leaves: bob and carol see her disconnected and stop getting her audio.
    alice_pump.abort();
    let alice_sid = alice.sid().to_owned();
    alice.leave().await;
    for watcher in [&bob, &carol] {
        watcher
            .wait_signal("alice disconnected", WAIT, |m| match m {
                signal_response::Message::Update(u) => u
                    .participants
                    .iter()
                    .find(|p| {
                        p.sid == alice_sid
                            && p.state == proto::participant_info::State::Disconnected as i32
                    })
                    .cloned(),
                _ => None,
            })
            .await
            .expect("leaver announced");
    }
    next_event(
        &mut events,
        |e| matches!(e, RoomEvent::ParticipantLeft { identity, .. } if identity == "alice"),
    )
    .await;
    let left: Vec<String> = server
        .sfu
        .participants("call")
        .into_iter()
        .map(|p| p.identity)
        .collect();
    assert_eq!(left, vec!["bob".to_owned(), "carol".to_owned()]);
    // The leaver's track is gone from the subscriber connection: a new offer
    // without it reaches carol.
    carol
        .wait_signal("renegotiation after leave", WAIT, |m| match m {
            signal_response::Message::Offer(o) if o.id >= 2 && !o.sdp.contains(&alice_sid) => {
                Some(())
            }
            _ => None,
        })
        .await
        .expect("carol renegotiated");
    bob_pump.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_tap_mute_data_and_captions_reach_their_audience() {
    let server = common::start().await;
    let mut events = server.sfu.events();
    let alice = TestClient::connect(&server.ws, &common::token("tap", "alice"))
        .await
        .expect("alice joins");
    let bob = TestClient::connect(&server.ws, &common::token("tap", "bob"))
        .await
        .expect("bob joins");
    next_event(&mut events, |e| matches!(e, RoomEvent::ParticipantJoined { identity, name, .. } if identity == "bob" && name == "Name of bob")).await;

    let mut tap = server
        .sfu
        .subscribe_audio("tap", "alice")
        .expect("alice is in the room");
    assert!(server.sfu.subscribe_audio("tap", "nobody").is_none());
    let mic = Arc::new(alice.publish(true).await.expect("publish"));
    let pumping = pump(mic.clone(), "alice", 20);
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let packet = tokio::time::timeout(WAIT, tap.recv())
            .await
            .expect("tap packet in time")
            .expect("tap open");
        assert_eq!(packet.track_sid, mic.sid);
        assert_eq!(packet.level_dbov, Some(20));
        assert_eq!(packet.ssrc, mic.ssrc());
        assert_eq!(packet.encryption, Encryption::None);
        seen.push(String::from_utf8(packet.payload.to_vec()).expect("utf8"));
    }
    assert_all_from(&seen, "alice");
    let tapped = tap.track().expect("the tap names its track");
    assert_eq!(
        (tapped.sid.as_str(), tapped.ssrc, tapped.mime_type.as_str()),
        (mic.sid.as_str(), mic.ssrc(), "audio/opus")
    );
    assert!(!tap.is_encrypted());

    // Mute is announced to the others and to the embedder.
    alice.send(signal_request::Message::Mute(proto::MuteTrackRequest {
        sid: mic.sid.clone(),
        muted: true,
    }));
    let sid = mic.sid.clone();
    bob.wait_signal("muted update", WAIT, |m| match m {
        signal_response::Message::Update(u) => u
            .participants
            .iter()
            .flat_map(|p| p.tracks.iter())
            .find(|t| t.sid == sid && t.muted)
            .cloned(),
        _ => None,
    })
    .await
    .expect("bob sees the mute");
    next_event(
        &mut events,
        |e| matches!(e, RoomEvent::TrackMuted { muted: true, identity, .. } if identity == "alice"),
    )
    .await;
    assert!(server.sfu.participants("tap")[0].tracks[0].muted);

    // A user data packet from alice reaches bob on _reliable, attributed to her.
    bob.wait_subscriber_connected(WAIT)
        .await
        .expect("bob's subscriber up");
    let mut delivered = None;
    for _ in 0..20 {
        alice.send_user_data(b"hello bob", "chat").await.ok();
        if let Ok((label, packet)) = bob.next_data(Duration::from_millis(500)).await {
            delivered = Some((label, packet));
            break;
        }
    }
    let (label, packet) = delivered.expect("bob receives alice's data");
    assert_eq!(label, "_reliable");
    assert_eq!(packet.participant_identity, "alice");
    match packet.value {
        Some(proto::data_packet::Value::User(user)) => {
            assert_eq!(user.payload, b"hello bob");
            assert_eq!(user.topic.as_deref(), Some("chat"));
        }
        other => panic!("not a user packet: {other:?}"),
    }

    // A caption from the embedder reaches bob as a Transcription packet.
    server
        .sfu
        .send_transcription(
            "tap",
            "alice",
            "seg-1",
            "bonjour à tous",
            1_000,
            2_500,
            true,
        )
        .await;
    let (label, packet) = loop {
        let (label, packet) = bob.next_data(WAIT).await.expect("caption delivered");
        if matches!(
            packet.value,
            Some(proto::data_packet::Value::Transcription(_))
        ) {
            break (label, packet);
        }
    };
    assert_eq!(label, "_reliable");
    let Some(proto::data_packet::Value::Transcription(t)) = packet.value else {
        unreachable!()
    };
    assert_eq!(t.transcribed_participant_identity, "alice");
    assert_eq!(t.track_id, mic.sid);
    assert_eq!(t.segments.len(), 1);
    assert_eq!(t.segments[0].id, "seg-1");
    assert_eq!(t.segments[0].text, "bonjour à tous");
    assert_eq!(
        (t.segments[0].start_time, t.segments[0].end_time),
        (1_000, 2_500)
    );
    assert!(t.segments[0].r#final);

    // The tap ends when alice leaves.
    pumping.abort();
    alice.leave().await;
    let end = tokio::time::timeout(WAIT, async { while tap.recv().await.is_some() {} }).await;
    assert!(
        end.is_ok(),
        "audio tap must end when its participant leaves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_is_forwarded_keyframe_requests_reach_the_publisher_and_unpublish_is_seen() {
    let server = common::start().await;
    let alice = TestClient::connect(&server.ws, &common::token("video", "alice"))
        .await
        .expect("alice joins");
    let bob = TestClient::connect(&server.ws, &common::token("video", "bob"))
        .await
        .expect("bob joins");
    let camera = Arc::new(alice.publish(false).await.expect("camera"));
    let pumping = pump(camera.clone(), "cam", 127);
    let camera_sid = camera.sid.clone();
    let (version_with_camera, info) = bob
        .wait_signal("camera in update", WAIT, |m| match m {
            signal_response::Message::Update(u) => u.participants.iter().find_map(|p| {
                p.tracks
                    .iter()
                    .find(|t| t.sid == camera_sid)
                    .map(|t| (p.version, t.clone()))
            }),
            _ => None,
        })
        .await
        .expect("bob learns of the camera");
    assert_eq!(info.mime_type, "video/vp8");
    assert_eq!(info.r#type, proto::TrackType::Video as i32);
    let mut track = bob.next_track(WAIT).await.expect("video track");
    assert!(!track.is_audio);
    assert_all_from(&collect(&mut track, 20).await, "cam");

    // The SFU asks the publisher for a keyframe when someone subscribes.
    camera
        .next_keyframe_request(WAIT)
        .await
        .expect("keyframe request on subscribe");
    tokio::time::sleep(Duration::from_millis(600)).await;
    while camera
        .next_keyframe_request(Duration::from_millis(50))
        .await
        .is_ok()
    {}
    // A burst of PLIs from bob reaches alice, throttled to one per 500 ms.
    for _ in 0..10 {
        track.request_keyframe().await.expect("PLI sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut forwarded = 0;
    while camera
        .next_keyframe_request(Duration::from_millis(700))
        .await
        .is_ok()
    {
        forwarded += 1;
    }
    assert!(
        (1..=2).contains(&forwarded),
        "10 PLIs in 100 ms must reach the publisher once or twice, got {forwarded}"
    );

    // Alice stops her camera: she gets track_unpublished, bob an update without it.
    pumping.abort();
    alice.unpublish(&camera).await.expect("unpublish");
    alice
        .wait_signal("track_unpublished", WAIT, |m| match m {
            signal_response::Message::TrackUnpublished(t) if t.track_sid == camera.sid => Some(()),
            _ => None,
        })
        .await
        .expect("alice told her track is unpublished");
    let alice_sid = alice.sid().to_owned();
    bob.wait_signal("update without the camera", WAIT, |m| match m {
        signal_response::Message::Update(u) => u
            .participants
            .iter()
            .find(|p| {
                p.sid == alice_sid
                    && p.version > version_with_camera
                    && !p.tracks.iter().any(|t| t.sid == camera.sid)
            })
            .map(|_| ()),
        _ => None,
    })
    .await
    .expect("bob sees the camera gone");
    assert!(server.sfu.participants("video")[0].tracks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_over_the_bitrate_limit_is_cut_off() {
    let mut config = salon_sfu::SfuConfig::local(common::KEY, common::SECRET);
    config.max_bitrate_bps = 100_000;
    let server = common::start_with(config).await;
    let alice = TestClient::connect(&server.ws, &common::token("limit", "alice"))
        .await
        .expect("alice joins");
    let bob = TestClient::connect(&server.ws, &common::token("limit", "bob"))
        .await
        .expect("bob joins");
    let camera = Arc::new(alice.publish(false).await.expect("camera"));
    // About 1 Mbit/s: ten times the limit.
    let flooding = {
        let camera = camera.clone();
        tokio::spawn(async move {
            let payload = vec![7u8; 1200];
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                camera.send(&payload, 127).await;
            }
        })
    };
    let mut track = bob.next_track(WAIT).await.expect("video track");
    tokio::time::timeout(WAIT, track.packets.recv())
        .await
        .expect("media flows at first")
        .expect("open");
    // Within a few seconds the SFU stops forwarding: a full second passes with nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut cut_off = false;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), track.packets.recv()).await {
            Err(_) => {
                cut_off = true;
                break;
            }
            Ok(Some(_)) => continue,
            Ok(None) => break,
        }
    }
    flooding.abort();
    assert!(
        cut_off,
        "a publisher at 10x the bitrate limit must be cut off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_and_reconnect_asks_for_a_full_rejoin() {
    let server = common::start().await;
    let alice = TestClient::connect(&server.ws, &common::token("ping", "alice"))
        .await
        .expect("alice joins");
    alice.send(signal_request::Message::Ping(12345));
    alice.send(signal_request::Message::PingReq(proto::Ping {
        timestamp: 777,
        rtt: 3,
    }));
    alice
        .wait_signal("pong", WAIT, |m| match m {
            signal_response::Message::Pong(12345) => Some(()),
            _ => None,
        })
        .await
        .expect("pong");
    alice
        .wait_signal("pong_resp", WAIT, |m| match m {
            signal_response::Message::PongResp(p) if p.last_ping_timestamp == 777 => Some(()),
            _ => None,
        })
        .await
        .expect("pong_resp");

    // reconnect=1: a leave asking for a full reconnect, then close.
    let url = format!(
        "{}/rtc?access_token={}&reconnect=1",
        server.ws,
        common::token("ping", "alice")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    use futures_util::StreamExt;
    use prost::Message as _;
    let first = tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("answer in time")
        .expect("a frame")
        .expect("ok frame");
    let bytes = first.into_data();
    let response = proto::SignalResponse::decode(bytes).expect("protobuf");
    match response.message {
        Some(signal_response::Message::Leave(leave)) => {
            assert_eq!(leave.action, proto::leave_request::Action::Reconnect as i32);
        }
        other => panic!("expected leave, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_refuses_the_next_participant() {
    let mut config = salon_sfu::SfuConfig::local(common::KEY, common::SECRET);
    config.max_participants = 2;
    let server = common::start_with(config).await;
    let _a = TestClient::connect(&server.ws, &common::token("small", "a"))
        .await
        .expect("a joins");
    let _b = TestClient::connect(&server.ws, &common::token("small", "b"))
        .await
        .expect("b joins");
    let refused = TestClient::connect(&server.ws, &common::token("small", "c")).await;
    assert!(refused.is_err(), "third participant must be refused");
    // Another room is not affected by that limit.
    TestClient::connect(&server.ws, &common::token("other", "c"))
        .await
        .expect("c joins another room");
    assert_eq!(server.sfu.participants("small").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_disconnects_everyone() {
    let server = common::start().await;
    let alice = TestClient::connect(&server.ws, &common::token("s", "alice"))
        .await
        .expect("alice");
    server.sfu.shutdown().await;
    alice.wait_closed(WAIT).await.expect("alice disconnected");
    assert!(server.sfu.rooms().is_empty());
    assert!(
        TestClient::connect(&server.ws, &common::token("s", "bob"))
            .await
            .is_err(),
        "no joins after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_stops_a_track_and_resubscribing_brings_it_back() {
    let server = common::start().await;
    let alice = TestClient::connect(&server.ws, &common::token("sub", "alice"))
        .await
        .expect("alice joins");
    let bob = TestClient::connect(&server.ws, &common::token("sub", "bob"))
        .await
        .expect("bob joins");
    let mic = Arc::new(alice.publish(true).await.expect("publish"));
    let pumping = pump(mic.clone(), "alice", 127);
    let mut track = bob.next_track(WAIT).await.expect("track");
    assert_all_from(&collect(&mut track, 5).await, "alice");
    let offers_before = bob
        .signals()
        .iter()
        .filter(|m| matches!(m, signal_response::Message::Offer(_)))
        .count();

    bob.send(signal_request::Message::Subscription(
        proto::UpdateSubscription {
            track_sids: vec![mic.sid.clone()],
            subscribe: false,
            participant_tracks: vec![],
        },
    ));
    bob.wait_signal("offer without the track", WAIT, |m| match m {
        signal_response::Message::Offer(o) if o.id as usize > offers_before => Some(()),
        _ => None,
    })
    .await
    .expect("renegotiated after unsubscribe");
    // Drain what was in flight, then nothing more arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while track.packets.try_recv().is_ok() {}
    let silence = tokio::time::timeout(Duration::from_millis(700), track.packets.recv()).await;
    assert!(
        !matches!(silence, Ok(Some(_))),
        "packets still arrive after unsubscribing"
    );

    bob.send(signal_request::Message::Subscription(
        proto::UpdateSubscription {
            track_sids: vec![mic.sid.clone()],
            subscribe: true,
            participant_tracks: vec![],
        },
    ));
    // The audio comes back. (Browsers raise a new track; the webrtc crate's
    // client keys tracks by id and resumes the old one, so accept either.)
    let payloads = tokio::select! {
        again = bob.next_track(WAIT) => {
            let mut again = again.expect("track comes back");
            assert_eq!(again.track_id, mic.sid);
            collect(&mut again, 5).await
        }
        _ = async {
            loop {
                if track.packets.recv().await.is_some() { break; }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } => collect(&mut track, 5).await,
    };
    assert_all_from(&payloads, "alice");
    pumping.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_twice_with_one_identity_replaces_the_first_session() {
    let server = common::start().await;
    let first = TestClient::connect(&server.ws, &common::token("dup", "alice"))
        .await
        .expect("first session");
    let second = TestClient::connect(&server.ws, &common::token("dup", "alice"))
        .await
        .expect("second session");
    first
        .wait_signal("leave for duplicate identity", WAIT, |m| match m {
            signal_response::Message::Leave(l)
                if l.reason == proto::DisconnectReason::DuplicateIdentity as i32 =>
            {
                Some(())
            }
            _ => None,
        })
        .await
        .expect("first session told to leave");
    first.wait_closed(WAIT).await.expect("first session closed");
    let people = server.sfu.participants("dup");
    assert_eq!(people.len(), 1);
    assert_eq!(people[0].sid, second.sid());
}

/// What an end-to-end encrypted frame looks like to the SFU: bytes it cannot
/// read (here a counter, then noise, then a GCM-style IV and trailer).
fn ciphertext(n: u32) -> Vec<u8> {
    let mut frame = n.to_be_bytes().to_vec();
    let mut x = n.wrapping_mul(2_654_435_761).wrapping_add(0xdead_beef);
    for _ in 0..48 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        frame.push(x as u8);
    }
    frame.extend_from_slice(&[0xff; 12]);
    frame.extend_from_slice(&[12, 0]);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_tracks_are_announced_as_such_with_mime_types_and_forwarded_unchanged() {
    let server = common::start().await;
    let alice = TestClient::connect(&server.ws, &common::token("e2ee", "alice"))
        .await
        .expect("alice joins");
    let bob = TestClient::connect(&server.ws, &common::token("e2ee", "bob"))
        .await
        .expect("bob joins");
    let gcm = proto::encryption::Type::Gcm as i32;
    let mut tap = server
        .sfu
        .subscribe_audio("e2ee", "alice")
        .expect("alice is in the room");
    assert!(
        tap.track().is_none() && !tap.is_encrypted(),
        "nothing published yet"
    );
    let mic = Arc::new(
        alice
            .publish_encrypted(true, proto::encryption::Type::Gcm)
            .await
            .expect("encrypted microphone"),
    );
    let camera = Arc::new(
        alice
            .publish_encrypted(false, proto::encryption::Type::Gcm)
            .await
            .expect("encrypted camera"),
    );
    // The publisher's own track_published says so too.
    let published: Vec<proto::TrackInfo> = alice
        .signals()
        .into_iter()
        .filter_map(|m| match m {
            signal_response::Message::TrackPublished(p) => p.track,
            _ => None,
        })
        .collect();
    assert_eq!(published.len(), 2);
    assert!(
        published.iter().all(|t| t.encryption == gcm),
        "{published:?}"
    );

    let pumps: Vec<_> = [mic.clone(), camera.clone()]
        .into_iter()
        .map(|sender| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                for n in 0u32.. {
                    tick.tick().await;
                    sender.send(&ciphertext(n), 30).await;
                }
            })
        })
        .collect();

    // Bob, already in the room, learns of both tracks: encrypted, with codecs.
    let tracks = bob
        .wait_signal("alice's two tracks", WAIT, |m| match m {
            signal_response::Message::Update(u) => u
                .participants
                .iter()
                .find(|p| p.identity == "alice" && p.tracks.len() == 2)
                .map(|p| p.tracks.clone()),
            _ => None,
        })
        .await
        .expect("bob sees alice's tracks");
    let kinds_and_mimes = |tracks: &[proto::TrackInfo]| {
        let mut seen: Vec<(i32, String, i32)> = tracks
            .iter()
            .map(|t| (t.r#type, t.mime_type.clone(), t.encryption))
            .collect();
        seen.sort();
        seen
    };
    let expected = vec![
        (proto::TrackType::Audio as i32, "audio/opus".to_owned(), gcm),
        (proto::TrackType::Video as i32, "video/vp8".to_owned(), gcm),
    ];
    assert_eq!(kinds_and_mimes(&tracks), expected);

    // So does a late joiner, in its join response.
    let carol = TestClient::connect(&server.ws, &common::token("e2ee", "carol"))
        .await
        .expect("carol joins");
    let at_join = carol
        .join
        .other_participants
        .iter()
        .find(|p| p.identity == "alice")
        .expect("alice in carol's join")
        .tracks
        .clone();
    assert_eq!(kinds_and_mimes(&at_join), expected);

    // The embedder's tap says the audio is ciphertext, and hands it over as sent.
    assert_eq!(tap.encryption(), Encryption::Gcm);
    assert!(tap.is_encrypted());
    assert_eq!(tap.track().map(|t| t.ssrc), Some(mic.ssrc()));
    let tapped = tokio::time::timeout(WAIT, tap.recv())
        .await
        .expect("tap packet in time")
        .expect("tap open");
    assert_eq!(
        (tapped.encryption, tapped.ssrc, tapped.track_sid.as_str()),
        (Encryption::Gcm, mic.ssrc(), mic.sid.as_str())
    );
    let n = u32::from_be_bytes(tapped.payload[..4].try_into().expect("counter"));
    assert_eq!(tapped.payload.as_ref(), ciphertext(n).as_slice());
    let summary = server.sfu.participants("e2ee");
    let alice_tracks = &summary
        .iter()
        .find(|p| p.identity == "alice")
        .expect("alice")
        .tracks;
    assert!(alice_tracks.iter().all(|t| t.encryption == Encryption::Gcm));

    // The SFU never touches the payload: every byte arrives as sent.
    for _ in 0..2 {
        let mut track = bob.next_track(WAIT).await.expect("bob gets a track");
        let mut checked = 0;
        let deadline = tokio::time::Instant::now() + WAIT;
        while checked < 20 {
            let packet = tokio::time::timeout_at(deadline, track.packets.recv())
                .await
                .expect("packets in time")
                .expect("track open");
            let n = u32::from_be_bytes(packet.payload[..4].try_into().expect("counter"));
            assert_eq!(
                packet.payload.as_ref(),
                ciphertext(n).as_slice(),
                "payload {n} rewritten"
            );
            checked += 1;
        }
    }
    for pump in pumps {
        pump.abort();
    }
}
