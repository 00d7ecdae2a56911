//! End-to-end transcription and minutes on a real Synapse, the real bridge
//! and its embedded SFU, with Whisper (models/base) transcribing.
//!
//! Two participants join a call as webrtc-crate LiveKit clients and publish
//! espeak-ng sentences as Opus, at real-time pace and at the same time. The
//! room must get transcript notices attributed to the right Matrix user with
//! the words they said, the other participant must get the captions, and
//! when the call ends the room must get minutes and both transcript files.

#[path = "support/score.rs"]
mod score;
#[path = "support/slow_proxy.rs"]
mod slow_proxy;
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use livekit_protocol::data_packet;
use serde_json::{Value, json};
use support::backends::{Backend, bridge_on};
use support::{Env, User, join_call, room_with_bot, speak, talk, workspace_root};

const WAIT: Duration = Duration::from_secs(30);
/// Transcription on a loaded two-core machine can lag; this is a ceiling, not a target.
const TRANSCRIPT_WAIT: Duration = Duration::from_secs(90);

const ALICE_SAYS: [&str; 2] = [
    "The budget for the new school library is ready for review.",
    "We agreed to open the library in September.",
];
const BOB_SAYS: [&str; 2] = [
    "I will send the final report to the minister on Friday.",
    "The workers need two more weeks to paint the walls.",
];

fn model_dir() -> PathBuf {
    let dir = workspace_root().join("models/base");
    assert!(
        dir.join("model.bin").exists(),
        "no Whisper model at {}: run scripts/install-models.sh",
        dir.display()
    );
    dir
}

/// `!visio start`; returns the call id.
async fn start_call(user: &User, room: &str) -> String {
    let started = user.command(room, "!visio start").await;
    started["org.salon.reply"]["call_id"]
        .as_str()
        .expect("a started call")
        .to_owned()
}

/// `user` starts a call, joins it with a microphone and turns transcription on.
async fn transcribed_call(
    env: &Env,
    user: &User,
    room: &str,
) -> (
    String,
    salon_sfu::testing::TestClient,
    salon_sfu::testing::TrackSender,
) {
    let call_id = start_call(user, room).await;
    let client = join_call(env, user, &call_id, "Alice").await;
    let mic = client.publish(true).await.unwrap();
    let on = user.command(room, "!visio transcribe on").await;
    assert_eq!(on["org.salon.reply"]["outcome"], "on", "{on}");
    (call_id, client, mic)
}

/// The room's transcript notices, with when they were first seen.
async fn transcript_notices(user: &User, room: &str) -> Vec<Value> {
    user.timeline(room)
        .await
        .into_iter()
        .filter(|e| e["content"]["org.salon.transcript"].is_object())
        .collect()
}

/// Everything `speaker` was heard saying, in order.
fn heard_from(notices: &[Value], speaker: &str) -> String {
    notices
        .iter()
        .filter(|e| e["content"]["org.salon.transcript"]["speaker"] == speaker)
        .map(|e| {
            e["content"]["org.salon.transcript"]["text"]
                .as_str()
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn download(env: &Env, user: &User, mxc: &str) -> String {
    let path = mxc.strip_prefix("mxc://").expect("an mxc uri");
    let response = env
        .http
        .get(format!(
            "{}/_matrix/client/v1/media/download/{path}",
            env.hs_url
        ))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "download {mxc}");
    response.text().await.unwrap()
}

backend_tests!(
    two_speakers_are_transcribed_captioned_and_summarised,
    two_speakers_journey
);

/// On either backend: the embedded SFU taps the audio itself; on a LiveKit
/// cluster a hidden participant subscribes to it and sends the captions.
async fn two_speakers_journey(backend: Backend) {
    model_dir();
    let Some((env, _cluster)) = bridge_on(backend, |_| {}).await else {
        return;
    };
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let room = room_with_bot(&env, &alice, &[&bob]).await;
    let call_id = start_call(&alice, &room).await;

    // A member without the power level may not turn transcription on.
    let refused = bob.command(&room, "!visio transcribe on").await;
    assert_eq!(
        refused["org.salon.reply"]["outcome"], "refused",
        "{refused}"
    );

    let alice_client = join_call(&env, &alice, &call_id, "Alice").await;
    let bob_client = join_call(&env, &bob, &call_id, "Bob").await;
    let alice_mic = alice_client.publish(true).await.unwrap();
    let bob_mic = bob_client.publish(true).await.unwrap();

    // The room is English-speaking: no per-sentence guessing.
    let saved = alice.command(&room, "!visio settings language=en").await;
    assert_eq!(saved["org.salon.reply"]["language"], "en", "{saved}");

    // Alice (room creator) turns it on: the room is told, the page shows it.
    let on = alice.command(&room, "!visio transcribe on").await;
    assert_eq!(on["org.salon.reply"]["outcome"], "on", "{on}");
    let thread_root = alice
        .timeline(&room)
        .await
        .into_iter()
        .find(|e| e["content"]["org.salon.transcription"]["state"] == "on")
        .expect("a 'transcription is on' notice")["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let info: Value = env
        .http
        .get(format!(
            "http://127.0.0.1:{}/_salon/v1/calls/{call_id}",
            env.web_port
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["transcription"], true, "{info}");
    let state = alice.state(&room, "org.salon.call", "").await.unwrap();
    assert_eq!(state["transcription"], true);
    let status = bob.command(&room, "!visio status").await;
    assert_eq!(status["org.salon.reply"]["transcription"], true, "{status}");
    assert!(
        status["body"]
            .as_str()
            .unwrap()
            .contains("Transcription is on")
    );

    // Bob's client collects what the SFU sends him: the banner flag and captions.
    let alice_id = alice.user_id.clone();
    let captions = tokio::spawn(async move {
        let mut banner = false;
        let mut finals = Vec::new();
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
                    if score::wer(&ALICE_SAYS.join(" "), &finals.join(" ")) <= 0.25 {
                        break;
                    }
                }
                _ => {}
            }
        }
        (banner, finals, bob_client)
    });

    // Both speak at once, each on their own track.
    let dir = env.dir.path().to_owned();
    let alice_speech: Vec<Vec<f32>> = ALICE_SAYS
        .iter()
        .enumerate()
        .map(|(i, s)| speak(&dir, &format!("alice{i}"), s, "en-us"))
        .collect();
    let bob_speech: Vec<Vec<f32>> = BOB_SAYS
        .iter()
        .enumerate()
        .map(|(i, s)| speak(&dir, &format!("bob{i}"), s, "en-gb"))
        .collect();
    // The room is watched while they speak.
    let watcher = {
        let (alice, bob, room) = (alice.clone(), bob.clone(), room.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + TRANSCRIPT_WAIT;
            loop {
                let notices = transcript_notices(&alice, &room).await;
                let alice_ok =
                    score::wer(&ALICE_SAYS.join(" "), &heard_from(&notices, &alice.user_id))
                        <= 0.25;
                let bob_ok =
                    score::wer(&BOB_SAYS.join(" "), &heard_from(&notices, &bob.user_id)) <= 0.25;
                if (alice_ok && bob_ok) || Instant::now() > deadline {
                    return notices;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::join!(talk(&alice_mic, alice_speech), talk(&bob_mic, bob_speech));

    // The room gets each sentence, attributed to its speaker, in the thread.
    let notices = watcher.await.unwrap();
    let (alice_heard, bob_heard) = (
        heard_from(&notices, &alice.user_id),
        heard_from(&notices, &bob.user_id),
    );
    assert!(
        score::wer(&ALICE_SAYS.join(" "), &alice_heard) <= 0.25
            && score::wer(&BOB_SAYS.join(" "), &bob_heard) <= 0.25,
        "transcripts do not match.\nalice said {ALICE_SAYS:?}, heard {alice_heard:?}\nbob said {BOB_SAYS:?}, heard {bob_heard:?}\n{}",
        env.logs()
    );
    for e in &notices {
        let content = &e["content"];
        let t = &content["org.salon.transcript"];
        assert_eq!(e["sender"], env.bot_id());
        assert_eq!(t["call_id"], call_id.as_str());
        assert_eq!(t["lang"], "en");
        assert!(t["end_ms"].as_u64().unwrap() > t["start_ms"].as_u64().unwrap());
        assert_eq!(content["m.relates_to"]["rel_type"], "m.thread");
        assert_eq!(content["m.relates_to"]["event_id"], thread_root.as_str());
        let speaker = t["speaker"].as_str().unwrap();
        assert!(
            speaker == alice.user_id || speaker == bob.user_id,
            "{speaker}"
        );
    }
    // Nobody's words are given to the other.
    assert!(
        !score::words(&alice_heard).contains(&"minister".to_owned()),
        "{alice_heard}"
    );
    assert!(
        !score::words(&bob_heard).contains(&"library".to_owned()),
        "{bob_heard}"
    );

    let (banner, finals, _bob_client) = captions.await.unwrap();
    assert!(banner, "bob's page was told transcription is on");
    assert!(
        score::wer(&ALICE_SAYS.join(" "), &finals.join(" ")) <= 0.25,
        "bob's captions of alice: {finals:?}"
    );

    // Stopping the call brings the minutes and both transcript files.
    let stop = alice.command(&room, "!visio stop").await;
    assert_eq!(stop["org.salon.reply"]["outcome"], "ended", "{stop}");
    let deadline = Instant::now() + WAIT * 3;
    let minutes_event = loop {
        if let Some(e) = alice
            .timeline(&room)
            .await
            .into_iter()
            .find(|e| e["content"]["org.salon.minutes"].is_object())
        {
            break e;
        }
        assert!(Instant::now() < deadline, "no minutes:\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let content = &minutes_event["content"];
    let minutes = &content["org.salon.minutes"];
    assert_eq!(minutes["call_id"], call_id.as_str());
    assert!(minutes["ended_at"].as_u64().unwrap() > minutes["started_at"].as_u64().unwrap());
    let people: Vec<&str> = minutes["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["mxid"].as_str().unwrap())
        .collect();
    assert!(people.contains(&alice.user_id.as_str()) && people.contains(&bob.user_id.as_str()));
    for key in ["summary", "decisions", "actions", "questions"] {
        assert!(minutes[key].is_array(), "{key} in {minutes}");
    }
    assert!(
        !minutes["summary"].as_array().unwrap().is_empty(),
        "a transcribed call has a summary: {minutes}"
    );
    let html = content["formatted_body"].as_str().unwrap();
    assert!(
        html.contains(&format!("https://matrix.to/#/{}", alice.user_id)),
        "{html}"
    );
    let files = &content["org.salon.transcript_files"];
    for (kind, must_have) in [("webvtt", "WEBVTT"), ("markdown", "#")] {
        let event_id = files[kind]["event_id"].as_str().unwrap();
        assert!(html.contains(event_id), "the minutes link the {kind} file");
        let url = files[kind]["file"]["url"].as_str().unwrap();
        let text = download(&env, &alice, url).await.to_lowercase();
        assert!(text.contains(&must_have.to_lowercase()), "{kind}: {text}");
        for word in ["library", "minister", "september", "friday"] {
            assert!(text.contains(word), "{kind} file lacks {word:?}: {text}");
        }
        let file_event = alice
            .timeline(&room)
            .await
            .into_iter()
            .find(|e| e["event_id"] == event_id)
            .unwrap();
        assert_eq!(file_event["content"]["msgtype"], "m.file");
    }

    // `!visio minutes` posts them again, as a reply.
    let again = alice.command(&room, "!visio minutes").await;
    assert_eq!(again["org.salon.minutes"]["call_id"], call_id.as_str());
    let all_minutes = alice
        .timeline(&room)
        .await
        .into_iter()
        .filter(|e| e["content"]["org.salon.minutes"].is_object())
        .count();
    assert_eq!(all_minutes, 2, "the original and the re-post");

    let metrics = env.metrics().await;
    assert!(metrics.contains("salon_transcript_segments_total"));
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("salon_transcription_") || l.starts_with("salon_transcript_"))
    {
        eprintln!("{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn minutes_owed_at_a_crash_are_posted_once_after_restart() {
    let mut env = Env::start_with(|cfg| {
        cfg.push_str("\n[minutes]\npost_delay_seconds = 6\n");
    })
    .await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let room = room_with_bot(&env, &alice, &[&bob]).await;
    let call_id = start_call(&alice, &room).await;
    let client = join_call(&env, &bob, &call_id, "Bob").await;
    alice.wait_in_call(&room, &bob.user_id).await;
    let stop = alice.command(&room, "!visio stop").await;
    assert_eq!(stop["org.salon.reply"]["outcome"], "ended");
    drop(client);
    // The call has ended and its minutes are owed, not yet posted: crash now.
    env.kill_bridge();
    let minutes_in_room = || async {
        alice
            .timeline(&room)
            .await
            .into_iter()
            .filter(|e| e["content"]["org.salon.minutes"].is_object())
            .collect::<Vec<_>>()
    };
    assert!(
        minutes_in_room().await.is_empty(),
        "posted before the crash"
    );
    env.start_bridge().await;
    alice
        .wait_until("the owed minutes", WAIT, || async {
            !minutes_in_room().await.is_empty()
        })
        .await;
    // Another restart must not post them again. The bridge queues owed
    // minutes before it listens, so once /metrics answers, a call still owing
    // them would count in salon_minutes_owed: zero proves none is on its way.
    env.kill_bridge();
    env.start_bridge().await;
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("\nsalon_minutes_owed 0\n"),
        "minutes owed after the second restart:\n{metrics}"
    );
    let posted = minutes_in_room().await;
    assert_eq!(posted.len(), 1, "minutes posted exactly once");
    let minutes = &posted[0]["content"]["org.salon.minutes"];
    assert_eq!(minutes["call_id"], call_id.as_str());
    // No transcription: short minutes, nothing invented.
    assert_eq!(minutes["summary"], json!([]));
    assert_eq!(minutes["actions"], json!([]));
    assert_eq!(minutes["decisions"], json!([]));
    assert!(
        minutes["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["mxid"] == bob.user_id.as_str())
    );
    let body = posted[0]["content"]["body"].as_str().unwrap();
    assert!(body.contains("No transcript"), "{body}");
    assert!(posted[0]["content"]["org.salon.transcript_files"] == json!({}));
    let state = alice.state(&room, "org.salon.call", "").await.unwrap();
    assert_eq!(state["minutes_event_id"], posted[0]["event_id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn transcript_files_the_homeserver_refuses_leave_the_minutes_posted_and_say_so() {
    model_dir();
    // A homeserver that takes no upload over 100 bytes.
    let mut env = Env::start_full(|_| {}, |hs| hs.push_str("max_upload_size: 100\n")).await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let room = room_with_bot(&env, &alice, &[]).await;
    let (call_id, _client, mic) = transcribed_call(&env, &alice, &room).await;
    let speech = speak(env.dir.path(), "alice", ALICE_SAYS[0], "en-us");
    talk(&mic, vec![speech]).await;
    alice
        .wait_until("a transcript notice", TRANSCRIPT_WAIT, || async {
            !transcript_notices(&alice, &room).await.is_empty()
        })
        .await;
    let stop = alice.command(&room, "!visio stop").await;
    assert_eq!(stop["org.salon.reply"]["outcome"], "ended", "{stop}");
    let deadline = Instant::now() + WAIT * 2;
    let minutes = loop {
        if let Some(e) = alice
            .timeline(&room)
            .await
            .into_iter()
            .find(|e| e["content"]["org.salon.minutes"].is_object())
        {
            break e;
        }
        assert!(Instant::now() < deadline, "no minutes:\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let content = &minutes["content"];
    assert_eq!(content["org.salon.minutes"]["call_id"], call_id.as_str());
    let error = content["org.salon.transcript_files"]["error"]
        .as_str()
        .expect("the refusal is in the structured field");
    assert!(error.contains("M_TOO_LARGE"), "{error}");
    assert!(
        content["body"]
            .as_str()
            .unwrap()
            .contains("transcript files could not be uploaded"),
        "{content}"
    );
    // No file event was posted, and the minutes came once.
    let timeline = alice.timeline(&room).await;
    assert!(!timeline.iter().any(|e| e["content"]["msgtype"] == "m.file"));
    assert_eq!(
        timeline
            .iter()
            .filter(|e| e["content"]["org.salon.minutes"].is_object())
            .count(),
        1
    );
}

/// Precision on the live path (the SFU's audio tap): speech between
/// silences, looped like a browser's fake microphone, reaches the room with
/// its first words and without words nobody said.
#[tokio::test(flavor = "multi_thread")]
async fn looped_speech_reaches_the_room_without_invented_words() {
    const BRIEFING: &str = "Good morning everyone. We agreed to publish the budget report on \
                            Friday. Alice will send the final figures to the minister.";
    model_dir();
    let mut env = Env::start().await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let room = room_with_bot(&env, &alice, &[]).await;
    alice.command(&room, "!visio settings language=en").await;
    let (_call_id, _client, mic) = transcribed_call(&env, &alice, &room).await;

    let dir = tempfile::tempdir().unwrap();
    let speech = speak(dir.path(), "briefing", BRIEFING, "en");
    // `talk` leaves silence before and after each sentence: 1 s, then 2 s
    let mut quiet_then_speech = vec![0.0; 16_000 / 2];
    quiet_then_speech.extend_from_slice(&speech);
    talk(&mic, vec![quiet_then_speech.clone(), quiet_then_speech]).await;

    // Each loop is one utterance, so two notices: whatever words Whisper
    // heard in them ("minute" once stood for "minister"), what is scored
    // below is what they say.
    let started = Instant::now();
    let mut notices = Vec::new();
    while started.elapsed() < TRANSCRIPT_WAIT {
        notices = transcript_notices(&alice, &room).await;
        if notices.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        notices.len() >= 2,
        "both loops were not in the room after {TRANSCRIPT_WAIT:?}; heard: {:?}\n{}",
        heard_from(&notices, &alice.user_id),
        env.logs()
    );
    // the sentinel: the minutes come after the call's transcription has
    // drained, so whatever else this audio would have made is in the room
    let stopped = alice.command(&room, "!visio stop").await;
    assert_eq!(stopped["org.salon.reply"]["outcome"], "ended", "{stopped}");
    alice
        .wait_until("the minutes", TRANSCRIPT_WAIT, || async {
            alice
                .timeline(&room)
                .await
                .iter()
                .any(|e| e["content"]["org.salon.minutes"].is_object())
        })
        .await;
    let notices = transcript_notices(&alice, &room).await;
    let heard = heard_from(&notices, &alice.user_id);
    let said = [BRIEFING; 2].join(" ");
    let inserted = score::inserted_rate(&said, &heard);
    eprintln!(
        "live looped: wer {:.3} inserted {inserted:.3}: {heard}",
        score::wer(&said, &heard)
    );
    assert!(
        inserted < 0.05,
        "{inserted:.3} of the words were never said: {heard:?}"
    );
    for notice in &notices {
        let text = notice["content"]["org.salon.transcript"]["text"]
            .as_str()
            .unwrap();
        if score::words(text).contains(&"agreed".to_owned()) {
            assert_eq!(
                score::words(text).first().map(String::as_str),
                Some("good"),
                "the first words are lost: {text:?}"
            );
        }
    }
}

/// Rooms never wait on each other: with the homeserver holding every message
/// sent to one room for 8 s, the other room's transcript notice still
/// arrives as soon as it is transcribed, before the slow room's.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_room_does_not_delay_another_rooms_notices() {
    const DELAY: Duration = Duration::from_secs(8);
    model_dir();
    let slow = slow_proxy::SlowRoom::default();
    let proxied = slow.clone();
    let mut env = Env::start_with(move |config| {
        let line = config
            .lines()
            .find(|l| l.starts_with("url = \""))
            .expect("the homeserver url")
            .to_owned();
        let target = line.trim_start_matches("url = \"").trim_end_matches('"');
        let proxy = slow_proxy::start(target, proxied, DELAY);
        *config = config.replacen(&line, &format!("url = \"{proxy}\""), 1);
    })
    .await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let slow_room = room_with_bot(&env, &alice, &[]).await;
    let fast_room = room_with_bot(&env, &bob, &[]).await;
    for (user, room) in [(&alice, &slow_room), (&bob, &fast_room)] {
        user.command(room, "!visio settings language=en").await;
    }
    let (_, _slow_client, slow_mic) = transcribed_call(&env, &alice, &slow_room).await;
    let (_, _fast_client, fast_mic) = transcribed_call(&env, &bob, &fast_room).await;
    slow.set(&slow_room);

    // The slow room's speaker starts first, so its notice is ready first.
    let dir = tempfile::tempdir().unwrap();
    let slow_speech = speak(dir.path(), "slow", ALICE_SAYS[0], "en-us");
    let fast_speech = speak(dir.path(), "fast", BOB_SAYS[0], "en-us");
    let fast_talk = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        talk(&fast_mic, vec![fast_speech]).await
    };
    let _ = tokio::join!(talk(&slow_mic, vec![slow_speech]), fast_talk);

    let mut fast_at = None;
    let mut slow_at = None;
    let started = Instant::now();
    while (fast_at.is_none() || slow_at.is_none()) && started.elapsed() < TRANSCRIPT_WAIT {
        if fast_at.is_none() && !transcript_notices(&bob, &fast_room).await.is_empty() {
            fast_at = Some(started.elapsed());
        }
        if slow_at.is_none() && !transcript_notices(&alice, &slow_room).await.is_empty() {
            slow_at = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (fast_at, slow_at) = (
        fast_at.expect("the fast room's notice"),
        slow_at.expect("the slow room's notice, late but there"),
    );
    eprintln!("fast room notice after {fast_at:?}, slow room notice after {slow_at:?}");
    assert!(
        fast_at + Duration::from_secs(3) < slow_at,
        "the fast room waited for the slow one: {fast_at:?} vs {slow_at:?}"
    );
    let heard = heard_from(&transcript_notices(&bob, &fast_room).await, &bob.user_id);
    assert!(score::wer(BOB_SAYS[0], &heard) <= 0.25, "{heard:?}");
}

/// Element Call's call membership (its 0.26 default mode), for `device`,
/// naming Salon's focus.
fn element_call_membership(env: &Env, room: &str, device: &str, user: &User) -> Value {
    json!({
        "application": "m.call", "call_id": "", "scope": "m.room", "device_id": device,
        "membershipID": format!("{}:{device}", user.user_id), "expires": 14_400_000,
        "m.call.intent": "audio",
        "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
        "foci_preferred": [{"type": "livekit", "livekit_alias": room,
            "livekit_service_url": format!("http://127.0.0.1:{}/livekit/jwt", env.web_port)}],
    })
}

/// Joins the room's media as Element Call does: a token from the focus API
/// (`/sfu/get`, identity `{mxid}:{device}`), then the SFU.
async fn element_call_joins(
    env: &Env,
    user: &User,
    room: &str,
    device: &str,
) -> salon_sfu::testing::TestClient {
    let grant: Value = env
        .http
        .post(format!(
            "http://127.0.0.1:{}/livekit/jwt/sfu/get",
            env.web_port
        ))
        .json(
            &json!({"room": room, "openid_token": user.openid_token().await, "device_id": device}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    salon_sfu::testing::TestClient::connect(
        grant["url"].as_str().expect("a focus grant"),
        grant["jwt"].as_str().unwrap(),
    )
    .await
    .expect("the SFU accepts the focus token")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_element_call_session_is_the_rooms_call_transcribed_under_each_members_name() {
    model_dir();
    let mut env = Env::start_with(|cfg| {
        cfg.push_str("\n[calls]\nempty_grace_seconds = 3\n");
        cfg.push_str("\n[minutes]\npost_delay_seconds = 2\n");
    })
    .await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let room = room_with_bot(&env, &alice, &[&bob]).await;
    // as in rooms Element Call creates: members may write call memberships
    alice
        .set_power_levels(&room, |levels| {
            levels["events"]["org.matrix.msc3401.call.member"] = json!(0);
        })
        .await;

    // Alice presses the call button: Element Call gets a token from Salon,
    // connects, and writes her membership.
    let alice_media = element_call_joins(&env, &alice, &room, "ALICEDEV").await;
    let alice_key = format!("_{}_ALICEDEV_m.call", alice.user_id);
    let membership = element_call_membership(&env, &room, "ALICEDEV", &alice);
    alice
        .send_state(
            &room,
            "org.matrix.msc3401.call.member",
            &alice_key,
            membership,
        )
        .await;

    // The session is the room's call: the bot says so, with the browser link.
    let started = alice
        .wait_for("the bot to see Element Call's session", WAIT, || async {
            alice
                .timeline(&room)
                .await
                .into_iter()
                .find(|e| e["content"]["org.salon.reply"]["command"] == "matrixrtc")
        })
        .await;
    let reply = &started["content"]["org.salon.reply"];
    assert_eq!(reply["outcome"], "started", "{started}");
    assert_eq!(started["sender"], env.bot_id().as_str());
    let call_id = reply["call_id"].as_str().unwrap().to_owned();
    assert!(
        started["content"]["body"]
            .as_str()
            .unwrap()
            .contains(&alice.user_id),
        "{started}"
    );
    // No Salon widget: Element shows its own call.
    let shown = alice
        .state(&room, "org.salon.call", "")
        .await
        .expect("the call's state");
    assert_eq!(shown["call_id"], call_id.as_str());
    assert_eq!(shown["origin"], "matrix_rtc");
    assert!(
        alice
            .state(
                &room,
                "im.vector.modular.widgets",
                &format!("salon_{call_id}")
            )
            .await
            .is_none(),
        "a widget for an Element Call call"
    );
    // A second membership refresh is no second call.
    let mut refreshed = element_call_membership(&env, &room, "ALICEDEV", &alice);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    refreshed["created_ts"] = json!(now_ms);
    alice
        .send_state(
            &room,
            "org.matrix.msc3401.call.member",
            &alice_key,
            refreshed,
        )
        .await;

    // Bob has no Element Call: `!visio start` gives him the same call's link,
    // and on Salon's page he is in the same media room as Alice.
    let again = bob.command(&room, "!visio start").await;
    assert_eq!(
        again["org.salon.reply"]["outcome"], "already_live",
        "{again}"
    );
    assert_eq!(again["org.salon.reply"]["call_id"], call_id.as_str());
    let bob_media = join_call(&env, &bob, &call_id, "Bob").await;
    let alice_mic = alice_media.publish(true).await.unwrap();
    let bob_mic = bob_media.publish(true).await.unwrap();
    // Transcription: each sentence under its speaker's Matrix id.
    let on = alice.command(&room, "!visio transcribe on").await;
    assert_eq!(on["org.salon.reply"]["outcome"], "on", "{on}");
    let dir = tempfile::tempdir().unwrap();
    let alice_says = speak(dir.path(), "alice", ALICE_SAYS[0], "en-us");
    let bob_says = speak(dir.path(), "bob", BOB_SAYS[0], "en-gb");
    let talking = tokio::spawn(async move {
        tokio::join!(
            talk(&alice_mic, vec![alice_says]),
            talk(&bob_mic, vec![bob_says])
        );
        (alice_mic, bob_mic)
    });
    bob_media
        .next_track(WAIT)
        .await
        .expect("Bob, on Salon's page, hears Alice in Element Call");
    alice_media
        .next_track(WAIT)
        .await
        .expect("Alice, in Element Call, hears Bob on Salon's page");

    // `!visio status` shows the call and both of them by Matrix id (Alice's
    // identity is `@alice:…:ALICEDEV`).
    bob.wait_until("status to list both", WAIT, || async {
        let status = bob.command(&room, "!visio status").await;
        let reply = &status["org.salon.reply"];
        let people: Vec<&str> = reply["participants"]
            .as_array()
            .map(|p| p.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        reply["call_id"] == call_id.as_str()
            && reply["origin"] == "matrix_rtc"
            && people.contains(&alice.user_id.as_str())
            && people.contains(&bob.user_id.as_str())
            && people.len() == 2
    })
    .await;

    let _mics = talking.await.unwrap();
    let notices = alice
        .wait_for("both members' transcripts", TRANSCRIPT_WAIT, || async {
            let notices = transcript_notices(&alice, &room).await;
            let heard_alice = heard_from(&notices, &alice.user_id).to_lowercase();
            let heard_bob = heard_from(&notices, &bob.user_id).to_lowercase();
            (heard_alice.contains("library") && heard_bob.contains("minister")).then_some(notices)
        })
        .await;
    let heard_alice = heard_from(&notices, &alice.user_id).to_lowercase();
    let heard_bob = heard_from(&notices, &bob.user_id).to_lowercase();
    assert!(heard_alice.contains("budget"), "{heard_alice}");
    // nobody's words under the other's name, and nothing under the device identity
    assert!(!heard_alice.contains("minister"), "{heard_alice}");
    assert!(!heard_bob.contains("library"), "{heard_bob}");
    let alice_identity = format!("{}:ALICEDEV", alice.user_id);
    assert!(heard_from(&notices, &alice_identity).is_empty());

    // Alice hangs up (Element Call clears her membership, then leaves the
    // media), Bob closes his page: the call ends after the grace period,
    // and the minutes come.
    alice
        .send_state(
            &room,
            "org.matrix.msc3401.call.member",
            &alice_key,
            json!({}),
        )
        .await;
    alice_media.leave().await;
    bob_media.leave().await;
    let minutes = alice
        .wait_for("the minutes", TRANSCRIPT_WAIT, || async {
            alice
                .timeline(&room)
                .await
                .into_iter()
                .find(|e| e["content"]["org.salon.minutes"].is_object())
        })
        .await;
    let body = minutes["content"]["body"].as_str().unwrap().to_lowercase();
    assert!(body.contains("alice") && body.contains("bob"), "{body}");
    let ended = alice.state(&room, "org.salon.call", "").await.unwrap();
    assert_eq!(ended["state"], "ended", "{ended}");
    assert_eq!(ended["call_id"], call_id.as_str(), "{ended}");
}
