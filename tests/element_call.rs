//! The real, unmodified Element Call 0.26.1 on Salon, on a real Synapse set up
//! as `docs/element-call.md` says, in headless Chromium.
//!
//! `tests/element_call/run.mjs` runs Element Call under a minimal widget host
//! (matrix-widget-api's `ClientWidgetApi` with a driver backed by a real
//! matrix-js-sdk client logged in with a password, as Element Web hosts it),
//! each person in their own Chromium whose fake microphone plays an espeak-ng
//! sentence. The packages come from `scripts/setup-element-call.sh` (into
//! `.cache/element-call`; Element Call is AGPL and is never committed or
//! served by Salon).
//!
//! - Two members press the call button in an unencrypted room: each hears the
//!   other at a real level; their `call.member` events name Salon as the
//!   focus; Element Call's console shows the LiveKit connection succeeding.
//!   The time from the call button to hearing the other is printed.
//! - The MatrixRTC session is a Salon call: `!visio status` lists both,
//!   `!visio start` links the same call, a third member on Salon's page hears
//!   both and is heard, `!visio transcribe on` attributes each sentence to
//!   its speaker, and the minutes come once everyone has left.
//! - In an encrypted room (Element Call then encrypts every frame, with
//!   per-member keys sent Olm-encrypted to the call's members), the hosts
//!   run matrix-js-sdk's Rust crypto: the members hear each other, no key
//!   reaches Visio before `!visio transcribe on` makes it a member, then
//!   every member sends it their keys and each sentence comes back,
//!   encrypted, under its speaker; a join and a leave rotate the keys and
//!   transcription follows; `off` ends Visio's membership; the minutes come
//!   encrypted. The decrypt counters and the caption latency are printed.
//! - livekit-client 2.22.3 with its default options (Element Call's
//!   signalling: `/rtc/v1` first) falls back to `/rtc` and is heard.

#[path = "support/score.rs"]
mod score;
mod support;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Env, User, room_with_bot};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// One test at a time: each runs two or three Chromiums beside Synapse, the
/// bridge and Whisper, and two cores do not carry two such tests at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An inbound audio level (0..1, linear) clearly above silence: silence (or
/// nothing arriving) reads 0.
const HEARD_LEVEL: f64 = 0.05;
/// The RMS over a listening window, from the receiver's energy counters,
/// that speech reaches and silence does not.
const HEARD_RMS: f64 = 0.005;
const LISTEN_MS: u64 = 5000;
const TRANSCRIPT_WAIT: Duration = Duration::from_secs(120);

const ALICE_SAYS: &str = "The budget for the new school library is ready for review.";
const BOB_SAYS: &str = "I will send the final report to the minister on Friday.";
const CAROL_SAYS: &str = "The workers need two more weeks to paint the walls.";
/// Alice's sentence in the encrypted call. Through Chromium's fake capture,
/// on two cores shared with Whisper, every loop lost its first 0.3 s and
/// "review": "The budget … is ready for review" came back as "Get for the
/// new school library is ready for a new" (WER 0.36) on nearly every loop
/// of a CI run. This one keeps WER 0.11 with its first word gone.
const ALICE_SAYS_ENCRYPTED: &str = "Hello everyone, the library will open in September.";

/// What `docs/element-call.md` tells the admin to add to `homeserver.yaml`,
/// naming this test's bridge as the transport. Delayed-event management is
/// unthrottled: two Element Calls restart their delayed leave every 4 s.
fn matrix_rtc_yaml(web_port: u16) -> String {
    format!(
        r#"
experimental_features:
  msc4143_enabled: true
  msc4222_enabled: true
max_event_delay_duration: 24h
matrix_rtc:
  transports:
    - type: livekit
      livekit_service_url: "http://127.0.0.1:{web_port}/livekit/jwt"
rc_delayed_event_mgmt: {{per_second: 1000, burst_count: 1000}}
"#
    )
}

/// A Synapse with MatrixRTC on and this test's bridge as its transport; the
/// bridge runs. `bridge_config` is added to the bridge's config.
async fn matrix_rtc_env(bridge_config: &str) -> Env {
    matrix_rtc_env_on(bridge_config, None).await
}

/// [`matrix_rtc_env`], with the bridge's media on a LiveKit cluster started
/// from `livekit` (the server binary) when given.
async fn matrix_rtc_env_on(
    bridge_config: &str,
    livekit: Option<(&Path, &mut Option<salon_lkclient::server::Cluster>)>,
) -> Env {
    let web_port = Cell::new(0u16);
    let mut env = Env::start_full(
        |config| {
            // [appservice] bind comes first, [web] bind last
            let web = config.lines().rev().find_map(|l| {
                l.strip_prefix("bind = \"127.0.0.1:")
                    .and_then(|rest| rest.trim_end_matches('"').parse().ok())
            });
            web_port.set(web.unwrap_or_else(|| panic!("no [web] bind in {config}")));
            config.push_str(bridge_config);
        },
        |homeserver| homeserver.push_str(&matrix_rtc_yaml(web_port.get())),
    )
    .await;
    assert_eq!(web_port.get(), env.web_port);
    if let Some((binary, cluster)) = livekit {
        *cluster = Some(support::backends::attach_cluster(&env, binary));
    }
    env.start_bridge().await;
    env
}

/// A room made by `owner` with the bot and `others`, unencrypted, where
/// members may send `org.matrix.msc3401.call.member` (as Element Call's own
/// rooms allow).
async fn call_room(env: &Env, owner: &User, others: &[&User]) -> String {
    let room = room_with_bot(env, owner, others).await;
    owner
        .set_power_levels(&room, |levels| {
            levels["events"]["org.matrix.msc3401.call.member"] = json!(0);
        })
        .await;
    assert!(
        owner.state(&room, "m.room.encryption", "").await.is_none(),
        "the room must be unencrypted"
    );
    room
}

/// `text` spoken by espeak-ng in `voice`, then `pause` seconds of silence:
/// Chromium loops the file as the microphone.
fn speech_wav(dir: &Path, name: &str, text: &str, voice: &str, pause: &str) -> PathBuf {
    let raw = dir.join(format!("{name}-speech.wav"));
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng is installed (scripts/setup.sh)")
        .success();
    assert!(ok, "espeak-ng failed");
    let path = dir.join(format!("{name}.wav"));
    let ok = std::process::Command::new("sox")
        .arg(&raw)
        .arg(&path)
        .args(["pad", "0", pause])
        .status()
        .expect("sox is installed (scripts/setup.sh)")
        .success();
    assert!(ok, "sox failed");
    path
}

/// `tests/element_call/run.mjs`, spoken to one JSON line at a time.
struct Browsers {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: PathBuf,
}

impl Browsers {
    async fn start(dir: &Path) -> Browsers {
        let script = support::workspace_root().join("tests/element_call/run.mjs");
        let stderr = dir.join("run.mjs.stderr");
        let mut child = tokio::process::Command::new("node")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("node is installed (scripts/setup.sh)");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut browsers = Browsers {
            child,
            stdin,
            lines,
            stderr,
        };
        let ready = browsers.read(Duration::from_secs(60)).await;
        assert_eq!(
            ready["ready"], true,
            "run.mjs did not start (run scripts/setup-element-call.sh?): {ready}"
        );
        browsers
    }

    async fn read(&mut self, timeout: Duration) -> Value {
        let line = tokio::time::timeout(timeout, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("run.mjs gave no answer in {timeout:?}{}", self.log()))
            .unwrap()
            .unwrap_or_else(|| panic!("run.mjs ended{}", self.log()));
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("run.mjs said {line}"))
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("\n--- run.mjs stderr ---\n{text}")
    }

    /// Sends a command; returns the answer, whatever it says.
    async fn try_ask(&mut self, command: Value, timeout: Duration) -> Value {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        self.read(timeout).await
    }

    /// Sends a command and panics, with the browsers' consoles, unless it succeeded.
    async fn ask(&mut self, command: Value, timeout: Duration) -> Value {
        let what = command["cmd"].clone();
        let answer = self.try_ask(command, timeout).await;
        assert!(
            answer["ok"] == true,
            "{what} failed: {}\n{}{}",
            answer["error"],
            serde_json::to_string_pretty(&answer["consoles"]).unwrap_or_default(),
            self.log()
        );
        answer
    }
}

impl Drop for Browsers {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn person(name: &str, wav: &Path) -> Value {
    json!({"name": name, "login": name, "password": support::PASSWORD, "wav": wav})
}

/// The inbound audio streams of one person's `listen` that were heard: a
/// level clearly above silence, bytes arriving and speech-like energy.
fn heard_streams(listen: &Value) -> Vec<(String, Value)> {
    listen["streams"]
        .as_object()
        .map(|streams| {
            streams
                .iter()
                .filter(|(_, s)| {
                    s["max"].as_f64().unwrap_or(0.0) > HEARD_LEVEL
                        && s["rms"].as_f64().unwrap_or(0.0) > HEARD_RMS
                        && s["bytes"].as_u64().unwrap_or(0) > 0
                })
                .map(|(id, s)| (id.clone(), s.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Two members, each in Element Call, in a call on Salon: the homeserver,
/// alice, bob, their room, the browsers, and run.mjs's `ec_join` answer by name.
async fn element_call_pair(bridge_config: &str) -> (Env, User, User, String, Browsers, Value) {
    element_call_pair_on(bridge_config, None).await
}

/// [`element_call_pair`], with the media on a LiveKit cluster when given
/// (see [`matrix_rtc_env_on`]).
async fn element_call_pair_on(
    bridge_config: &str,
    livekit: Option<(&Path, &mut Option<salon_lkclient::server::Cluster>)>,
) -> (Env, User, User, String, Browsers, Value) {
    let env = matrix_rtc_env_on(bridge_config, livekit).await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let room = call_room(&env, &alice, &[&bob]).await;
    let dir = env.dir.path().to_owned();
    let alice_wav = speech_wav(&dir, "alice", ALICE_SAYS, "en-us", "1.5");
    let bob_wav = speech_wav(&dir, "bob", BOB_SAYS, "en-gb", "1.5");
    let mut browsers = Browsers::start(&dir).await;
    let answer = browsers
        .ask(
            json!({
                "cmd": "ec_join", "hs": env.hs_url, "room": room,
                "people": [person("alice", &alice_wav), person("bob", &bob_wav)],
                "expect_heard": 1, "timeout_ms": 120_000, "stagger": true,
            }),
            Duration::from_secs(200),
        )
        .await;
    let joined = answer["people"].clone();
    (env, alice, bob, room, browsers, joined)
}

/// Per Element Call person, the to-device messages its host sent and received.
async fn host_state(browsers: &mut Browsers) -> Value {
    browsers
        .ask(json!({"cmd": "host_state"}), Duration::from_secs(30))
        .await["people"]
        .clone()
}

/// `listen`'s answer without each page's console: the levels alone, for the
/// log of a passing run (a failure prints the console with its person).
fn without_console(heard: &Value) -> Value {
    let mut heard = heard.clone();
    if let Some(people) = heard.as_object_mut() {
        for person in people.values_mut() {
            if let Some(person) = person.as_object_mut() {
                person.remove("console");
            }
        }
    }
    heard
}

/// What each person heard over `LISTEN_MS`.
async fn listen(browsers: &mut Browsers) -> Value {
    listen_for(browsers, LISTEN_MS).await
}

/// What each person heard over `ms`: longer than one loop of the speakers'
/// files, so that a pause is never all that is sampled.
async fn listen_for(browsers: &mut Browsers, ms: u64) -> Value {
    browsers
        .ask(json!({"cmd": "listen", "ms": ms}), Duration::from_secs(60))
        .await["people"]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn element_call_members_hear_each_other_through_salon() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (env, alice, bob, room, mut browsers, joined) = element_call_pair("").await;
    let focus = format!("http://127.0.0.1:{}/livekit/jwt", env.web_port);

    // The call button to hearing the other person, for the closing note.
    // Alice starts the call and waits for Bob; Bob presses the call button
    // once Alice is connected, so his time is the one a user waits to hear
    // someone already in the call.
    for name in ["alice", "bob"] {
        let p = &joined[name];
        let since_widget =
            |key: &str| p[key].as_i64().unwrap_or(-1) - p["widget_opened_ms"].as_i64().unwrap_or(0);
        eprintln!(
            "element call timing: {name}: host page opened → Element Call iframe opened (login + sync done) {} ms, → widget API ready {} ms, → LiveKit connected {} ms, → first audio bytes {} ms, → hears the other {} ms",
            p["widget_opened_ms"],
            p["ready_ms"],
            p["connected_ms"],
            p["first_bytes_ms"],
            p["first_heard_ms"]
        );
        eprintln!(
            "element call timing: {name}: call button (iframe opened, as Element Web does) → LiveKit connected {} ms, → hears the other {} ms",
            since_widget("connected_ms"),
            since_widget("first_heard_ms")
        );
    }

    // 1. Each hears the other at a real level.
    let heard = listen(&mut browsers).await;
    eprintln!("element call listening: {}", without_console(&heard));
    for name in ["alice", "bob"] {
        let streams = heard_streams(&heard[name]);
        assert_eq!(
            streams.len(),
            1,
            "{name} must hear exactly the other member (level > {HEARD_LEVEL}, RMS > {HEARD_RMS}): {}",
            heard[name]
        );
    }

    // 2. Both call.member state events, in the shape Element Call 0.26 writes,
    // naming Salon as the focus.
    for (user, name) in [(&alice, "alice"), (&bob, "bob")] {
        let device = joined[name]["device_id"].as_str().unwrap();
        assert_eq!(joined[name]["user_id"], user.user_id.as_str());
        let key = format!("_{}_{device}_m.call", user.user_id);
        let member = user
            .state(&room, "org.matrix.msc3401.call.member", &key)
            .await
            .unwrap_or_else(|| panic!("no call.member event {key}"));
        assert_eq!(member["application"], "m.call", "{member}");
        assert_eq!(member["scope"], "m.room", "{member}");
        assert_eq!(member["device_id"], device, "{member}");
        assert_eq!(member["focus_active"]["type"], "livekit", "{member}");
        assert_eq!(
            member["focus_active"]["focus_selection"], "multi_sfu",
            "{member}"
        );
        let preferred = &member["foci_preferred"][0];
        assert_eq!(preferred["type"], "livekit", "{member}");
        assert_eq!(preferred["livekit_service_url"], focus.as_str(), "{member}");
    }

    // 3. Element Call's console: connected to Salon's SFU, no missing
    // transport, no failed connection. Element Call asks for two tokens and
    // may start a connection with each; it can cancel the first itself
    // ("livekitRoom.connect FAILED … ConnectionError: Client initiated
    // disconnect", livekit-client's `ConnectionError.cancelled` when the app
    // calls `disconnect()` while connecting). That cancel is Element Call's
    // own doing, so it is allowed when a later connect succeeds; any other
    // failure is not.
    for name in ["alice", "bob"] {
        let console: Vec<&str> = joined[name]["console"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let ws = format!("ws://127.0.0.1:{}", env.web_port);
        let success = console
            .iter()
            .rposition(|l| l.contains("livekitRoom.connect SUCCESS") && l.contains(&ws));
        assert!(
            success.is_some(),
            "{name}: no 'livekitRoom.connect SUCCESS {ws}' in {console:#?}"
        );
        for (i, line) in console.iter().enumerate() {
            assert!(
                !line.contains("MatrixRTCTransportMissingError"),
                "{name}: {line}"
            );
            let cancelled_then_connected =
                line.contains("Client initiated disconnect") && success.is_some_and(|s| s > i);
            assert!(
                !line.contains("livekitRoom.connect FAILED") || cancelled_then_connected,
                "{name}: {line} in {console:#?}"
            );
        }
    }
    browsers
        .ask(
            json!({"cmd": "hang_up", "names": ["alice", "bob"]}),
            Duration::from_secs(60),
        )
        .await;
    // Hanging up ends the membership (its content becomes {}).
    for (user, name) in [(&alice, "alice"), (&bob, "bob")] {
        let key = format!(
            "_{}_{}_m.call",
            user.user_id,
            joined[name]["device_id"].as_str().unwrap()
        );
        user.wait_until(
            &format!("{name}'s membership to end"),
            support::WAIT,
            || async {
                user.state(&room, "org.matrix.msc3401.call.member", &key)
                    .await
                    .is_some_and(|m| m.as_object().is_some_and(|o| o.is_empty()))
            },
        )
        .await;
    }
}

/// Everything `speaker` was heard saying in `notices`, in order.
fn heard_from(notices: &[Value], speaker: &str) -> String {
    notices
        .iter()
        .filter(|e| e["content"]["org.salon.transcript"]["speaker"] == speaker)
        .filter_map(|e| e["content"]["org.salon.transcript"]["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The share of the words heard that are not in what was said: the
/// microphones loop one sentence, so repeats are fine and inventions are not.
fn invented_share(said: &str, heard: &str) -> f64 {
    let said = score::words(said);
    let heard = score::words(heard);
    let invented = heard.iter().filter(|w| !said.contains(w)).count();
    invented as f64 / heard.len().max(1) as f64
}

/// The transcript notices of the room so far.
async fn transcript_notices(user: &User, room: &str) -> Vec<Value> {
    user.timeline(room)
        .await
        .into_iter()
        .filter(|e| e["content"]["org.salon.transcript"].is_object())
        .collect()
}

/// What is wrong with what the room was told `user` said (`sentence`, whose
/// `words` must be there), or None.
fn transcript_problem(
    notices: &[Value],
    user: &User,
    sentence: &str,
    words: &[&str],
) -> Option<String> {
    let heard = heard_from(notices, &user.user_id);
    let heard_words = score::words(&heard);
    let missing: Vec<&&str> = words
        .iter()
        .filter(|w| !heard_words.contains(&w.to_string()))
        .collect();
    let invented = invented_share(sentence, &heard);
    (!missing.is_empty() || invented > 0.25).then(|| {
        format!(
            "{} said {sentence:?}; the transcript attributed to them is {heard:?}: missing {missing:?}, {:.0}% of its words never said by them",
            user.user_id,
            invented * 100.0
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_element_call_is_a_salon_call_joined_from_salons_page_transcribed_and_minuted() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (env, alice, bob, room, mut browsers, joined) =
        element_call_pair("\n[calls]\nempty_grace_seconds = 5\n").await;
    let carol = env.user("carol").await;
    alice.invite(&room, &carol.user_id).await;
    carol.join(&room).await;
    // The checks below that do not depend on each other are collected, so
    // that one failing does not hide how the others went.
    let mut failures: Vec<String> = Vec::new();

    // `!visio status` names both Element Call members as in the call.
    let start = Instant::now();
    let status = loop {
        let status = bob.command(&room, "!visio status").await;
        let body = status["body"].as_str().unwrap_or("").to_owned();
        if body.contains(&alice.user_id) && body.contains(&bob.user_id) {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "!visio status does not name both Element Call members: {status}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    assert_eq!(status["msgtype"], "m.notice", "{status}");
    assert_eq!(status["org.salon.reply"]["outcome"], "live", "{status}");
    let call_id = status["org.salon.reply"]["call_id"]
        .as_str()
        .expect("the live call's id")
        .to_owned();

    // `!visio start` while the MatrixRTC call is live links the same call.
    let started = carol.command(&room, "!visio start").await;
    if started["org.salon.reply"]["call_id"] != call_id.as_str() {
        failures.push(format!(
            "!visio start during the Element Call call did not link call {call_id}: {started}"
        ));
    }
    let link = started["org.salon.reply"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("a call link: {started}"))
        .to_owned();

    // The room speaks English: no per-sentence guessing.
    let saved = alice.command(&room, "!visio settings language=en").await;
    assert_eq!(saved["org.salon.reply"]["language"], "en", "{saved}");
    let on = alice.command(&room, "!visio transcribe on").await;
    assert_eq!(on["org.salon.reply"]["outcome"], "on", "{on}");
    let thread_root = alice
        .timeline(&room)
        .await
        .into_iter()
        .find(|e| e["content"]["org.salon.transcription"]["state"] == "on")
        .expect("a 'transcription started' notice")["event_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Carol joins from Salon's page and hears both; both hear her.
    let carol_wav = speech_wav(env.dir.path(), "carol", CAROL_SAYS, "en", "1.5");
    let carol_joined = browsers
        .try_ask(
            json!({"cmd": "salon_join", "person": person("carol", &carol_wav), "url": link,
                   "expect_heard": 2, "timeout_ms": 90_000}),
            Duration::from_secs(150),
        )
        .await;
    eprintln!("salon page: {carol_joined}");
    if carol_joined["ok"] != true {
        failures.push(format!(
            "carol on Salon's page did not hear both Element Call members: {carol_joined}"
        ));
    }
    let heard = listen(&mut browsers).await;
    eprintln!("three-way listening: {}", without_console(&heard));
    for (name, user) in [("alice", &alice), ("bob", &bob)] {
        if heard_streams(&heard[name]).len() != 2 {
            failures.push(format!(
                "{name} (Element Call) must hear the other member and carol (two streams above level {HEARD_LEVEL}, RMS {HEARD_RMS}): {}",
                heard[name]
            ));
        }
        let device = joined[name]["device_id"].as_str().unwrap();
        let identity = format!("{}:{device}", user.user_id);
        let level = heard["carol"]["by_identity"][&identity]["max"].as_f64();
        if !level.is_some_and(|l| l > 0.01) {
            failures.push(format!(
                "carol (Salon's page) must hear {identity} at RMS > 0.01 (the loudest over {LISTEN_MS} ms): {}",
                heard["carol"]
            ));
        }
    }

    // Each sentence arrives in the thread, attributed to its speaker.
    let said = [
        (&alice, ALICE_SAYS, ["budget", "library"]),
        (&bob, BOB_SAYS, ["report", "minister"]),
    ];
    let deadline = Instant::now() + TRANSCRIPT_WAIT;
    let notices = loop {
        let notices = transcript_notices(&alice, &room).await;
        let all_heard = said.iter().all(|(user, sentence, words)| {
            transcript_problem(&notices, user, sentence, words).is_none()
        });
        if all_heard || Instant::now() > deadline {
            break notices;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    for (user, sentence, words) in &said {
        failures.extend(transcript_problem(&notices, user, sentence, words));
    }
    for e in &notices {
        let relates = &e["content"]["m.relates_to"];
        if e["sender"] != env.bot_id().as_str()
            || relates["rel_type"] != "m.thread"
            || relates["event_id"] != thread_root.as_str()
        {
            failures.push(format!(
                "a transcript notice outside the thread of {thread_root}: {e}"
            ));
        }
    }
    eprintln!(
        "transcripts: {:#?}",
        notices
            .iter()
            .map(|e| &e["content"]["org.salon.transcript"])
            .collect::<Vec<_>>()
    );
    let (latency, captions, buckets) = caption_latency(&env).await;
    eprintln!(
        "unencrypted call: caption latency (end of speech → transcript event) mean {latency:.2} s over {captions} transcripts; s≤count: {buckets}"
    );

    // Everyone hangs up: the minutes come.
    browsers
        .ask(
            json!({"cmd": "hang_up", "names": ["alice", "bob", "carol"]}),
            Duration::from_secs(60),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(180);
    let minutes = loop {
        if let Some(e) = alice
            .timeline(&room)
            .await
            .into_iter()
            .find(|e| e["content"]["org.salon.minutes"].is_object())
        {
            break Some(e["content"]["org.salon.minutes"].clone());
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    match minutes {
        None => failures.push("no minutes within 180 s of everyone leaving".into()),
        Some(minutes) => {
            let people: Vec<&str> = minutes["participants"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["mxid"].as_str())
                .collect();
            if minutes["call_id"] != call_id.as_str()
                || [&alice, &bob, &carol]
                    .iter()
                    .any(|u| !people.contains(&u.user_id.as_str()))
            {
                failures.push(format!(
                    "the minutes are not call {call_id}'s with alice, bob and carol: {minutes}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} check(s) failed:\n- {}\n{}",
        failures.len(),
        failures.join("\n- "),
        env.logs()
    );
}

/// Asks Salon for a LiveKit token as Element Call does (`/sfu/get`).
async fn sfu_grant(env: &Env, user: &User, room: &str, device: &str) -> Value {
    let response = env
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
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn livekit_client_with_element_calls_signalling_falls_back_to_rtc_and_is_heard() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = matrix_rtc_env("").await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let room = room_with_bot(&env, &alice, &[&bob]).await;
    let dir = env.dir.path().to_owned();
    let mut people = Vec::new();
    for (user, name, says, voice) in [
        (&alice, "alice", ALICE_SAYS, "en-us"),
        (&bob, "bob", BOB_SAYS, "en-gb"),
    ] {
        let grant = sfu_grant(&env, user, &room, &format!("{}DEV", name.to_uppercase())).await;
        people.push(json!({
            "name": name, "url": grant["url"], "token": grant["jwt"],
            "wav": speech_wav(&dir, name, says, voice, "1.5"),
        }));
    }
    let mut browsers = Browsers::start(&dir).await;
    let joined = browsers
        .ask(
            json!({"cmd": "lk_join", "people": people, "expect_heard": 1, "timeout_ms": 60_000}),
            Duration::from_secs(120),
        )
        .await["people"]
        .clone();
    let heard = listen(&mut browsers).await;
    eprintln!("livekit-client listening: {}", without_console(&heard));
    let rtc = format!("ws://127.0.0.1:{}/rtc", env.web_port);
    for (name, other) in [
        ("alice", "@bob:salon.test:BOBDEV"),
        ("bob", "@alice:salon.test:ALICEDEV"),
    ] {
        let p = &joined[name];
        eprintln!(
            "livekit-client timing: {name}: page opened → first audio bytes {} ms, → hears the other {} ms",
            p["first_bytes_ms"], p["first_heard_ms"]
        );
        assert_eq!(p["remotes"], json!([other]), "{p}");
        assert_eq!(
            heard_streams(&heard[name]).len(),
            1,
            "{name} must hear {other}: {}",
            heard[name]
        );
        // The signalling: /rtc/v1 first, refused, then /rtc, which opened.
        let sockets: Vec<(String, bool)> = p["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["url"].as_str().unwrap().to_owned(), s["opened"] == true))
            .collect();
        assert!(
            sockets.len() >= 2
                && sockets[0].0.starts_with(&format!("{rtc}/v1?"))
                && !sockets[0].1
                && sockets[1].0.starts_with(&format!("{rtc}?"))
                && sockets[1].1,
            "{name}'s signalling sockets: {sockets:#?}"
        );
        let console = p["console"].to_string();
        assert!(
            console.contains("v1 RTC path not found"),
            "{name}: {console}"
        );
    }
}

/// Alice's end-to-end-encrypted client (matrix-sdk, its own device), syncing
/// in the background: it sends her encrypted commands and decrypts what the
/// bot says in an encrypted room, as her Element would.
struct Decrypting {
    client: matrix_sdk::Client,
    /// The same person on the plain client-server API, to read the timeline raw.
    viewer: User,
    bot: String,
    sync: tokio::task::JoinHandle<()>,
    _store: tempfile::TempDir,
}

impl Drop for Decrypting {
    fn drop(&mut self) {
        self.sync.abort();
    }
}

impl Decrypting {
    async fn log_in(env: &Env, viewer: &User) -> Decrypting {
        let name = viewer.user_id[1..].split(':').next().unwrap();
        use matrix_sdk::config::{RequestConfig, SyncSettings};
        let store = tempfile::tempdir().unwrap();
        let client = matrix_sdk::Client::builder()
            .homeserver_url(&env.hs_url)
            .sqlite_store(store.path(), None)
            .request_config(RequestConfig::short_retry())
            .build()
            .await
            .unwrap();
        client
            .matrix_auth()
            .login_username(name, support::PASSWORD)
            .initial_device_display_name("element call e2ee test")
            .send()
            .await
            .unwrap();
        // Its keys are on the server before any room key is shared.
        client
            .sync_once(SyncSettings::default().timeout(Duration::ZERO))
            .await
            .unwrap();
        let syncing = client.clone();
        let sync = tokio::spawn(async move {
            loop {
                let _ = syncing
                    .sync_once(SyncSettings::default().timeout(Duration::from_secs(2)))
                    .await;
            }
        });
        Decrypting {
            client,
            viewer: viewer.clone(),
            bot: env.bot_id(),
            sync,
            _store: store,
        }
    }

    async fn room(&self, room: &str) -> matrix_sdk::Room {
        let id = ruma::OwnedRoomId::try_from(room).unwrap();
        let start = Instant::now();
        loop {
            if let Some(room) = self.client.get_room(&id) {
                return room;
            }
            assert!(start.elapsed() < support::WAIT, "{id} never synced");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Sends `text` encrypted; its event id.
    async fn say(&self, room: &str, text: &str) -> String {
        use ruma::events::room::message::RoomMessageEventContent;
        self.room(room)
            .await
            .send(RoomMessageEventContent::text_plain(text))
            .await
            .unwrap()
            .response
            .event_id
            .to_string()
    }

    /// The clear event of a raw `m.room.encrypted` one, once its key is here.
    async fn decrypt(&self, room: &str, raw: &Value) -> Option<Value> {
        let raw = ruma::serde::Raw::from_json_string(raw.to_string()).unwrap();
        let event = self.room(room).await.decrypt_event(&raw, None).await.ok()?;
        if event.kind.is_utd() {
            return None;
        }
        serde_json::from_str(event.raw().json().get()).ok()
    }

    /// The bot's messages in the room so far, each encrypted (asserted) and
    /// decrypted, in order; `seen` caches those already decrypted.
    async fn bot_messages(
        &self,
        room: &str,
        seen: &mut std::collections::BTreeMap<String, Value>,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        for raw in self.viewer.timeline(room).await {
            if raw["sender"] != self.bot.as_str() || raw.get("state_key").is_some() {
                continue;
            }
            let id = raw["event_id"].as_str().unwrap_or("").to_owned();
            if let Some(clear) = seen.get(&id) {
                out.push(clear.clone());
                continue;
            }
            assert_eq!(
                raw["type"], "m.room.encrypted",
                "the bot spoke in the clear in an encrypted room: {raw}"
            );
            if let Some(mut clear) = self.decrypt(room, &raw).await {
                clear["origin_server_ts"] = raw["origin_server_ts"].clone();
                clear["event_id"] = raw["event_id"].clone();
                seen.insert(id, clear.clone());
                out.push(clear);
            }
        }
        out
    }

    /// Says a command, encrypted; the bot's decrypted reply content.
    async fn command(&self, room: &str, text: &str) -> Value {
        let id = self.say(room, text).await;
        let mut seen = std::collections::BTreeMap::new();
        let start = Instant::now();
        loop {
            if let Some(reply) = self
                .bot_messages(room, &mut seen)
                .await
                .into_iter()
                .find(|e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == id.as_str())
            {
                return reply["content"].clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no decryptable reply to {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// A room made by `owner` with `m.room.encryption` from its creation (as
/// Tchap makes private rooms), the bot a moderator, `others` joined, and
/// `org.matrix.msc3401.call.member` open to members.
async fn encrypted_call_room(env: &Env, owner: &User, others: &[&User]) -> String {
    let room = owner
        .create_room(json!({
            "initial_state": [{"type": "m.room.encryption", "state_key": "",
                               "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
            "power_level_content_override": {"users": {env.bot_id(): 50}},
        }))
        .await;
    owner
        .set_power_levels(&room, |levels| {
            levels["events"]["org.matrix.msc3401.call.member"] = json!(0);
        })
        .await;
    for other in others {
        owner.invite(&room, &other.user_id).await;
        other.join(&room).await;
    }
    owner.invite(&room, &env.bot_id()).await;
    let bot = env.bot_id();
    owner
        .wait_until("the bot to join", support::WAIT, || {
            owner.is_joined(&room, &bot)
        })
        .await;
    room
}

/// One counter's value in the bridge's `/metrics` (0 when absent).
async fn metric(env: &Env, name: &str) -> f64 {
    let text = env.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The mean caption latency so far (end of speech to the transcript event),
/// from the bridge's histogram, how many it averages, and the histogram's
/// cumulative buckets (`le` seconds, count).
async fn caption_latency(env: &Env) -> (f64, f64, String) {
    let text = env.metrics().await;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) = (
        value("salon_caption_latency_seconds_sum"),
        value("salon_caption_latency_seconds_count"),
    );
    let buckets: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("salon_caption_latency_seconds_bucket{le=\""))
        .map(|l| l.trim_end())
        .collect();
    let buckets = buckets.join(", ").replace("\"} ", "≤");
    (if count > 0.0 { sum / count } else { 0.0 }, count, buckets)
}

/// How `user`'s saying of `sentence` came out best in `notices` sent after
/// `after_ms` (server time): the lowest word error rate over one notice or
/// up to three consecutive ones of theirs (the segmenter may cut a sentence
/// at a pause), with the text it scored.
fn best_sentence(
    notices: &[Value],
    user: &User,
    sentence: &str,
    after_ms: i64,
) -> Option<(f64, String)> {
    let texts: Vec<&str> = notices
        .iter()
        .filter(|e| e["content"]["org.salon.transcript"]["speaker"] == user.user_id.as_str())
        .filter(|e| e["origin_server_ts"].as_i64().unwrap_or(0) > after_ms)
        .filter_map(|e| e["content"]["org.salon.transcript"]["text"].as_str())
        .collect();
    let texts = &texts;
    (0..texts.len())
        .flat_map(|i| (i + 1..=(i + 3).min(texts.len())).map(move |j| texts[i..j].join(" ")))
        .map(|text| (score::wer(sentence, &text), text))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// How long a sentence may take to come back once three people talk without
/// pause: on two busy cores Whisper falls behind three continuous speakers
/// (the queue drops the oldest utterances; captions then lag 30–45 s).
const THREE_SPEAKERS_WAIT: Duration = Duration::from_secs(200);

/// The highest word error rate a sentence may be heard with.
const MAX_WER: f64 = 0.25;

/// Waits until each of `said` (user, sentence) has a notice sent after
/// `after_ms` with WER ≤ [`MAX_WER`], or `wait`; the failures
/// (with what was heard), and per speaker the seconds from now to their
/// first good sentence, its WER and text.
async fn wait_for_sentences(
    elements: &Decrypting,
    room: &str,
    seen: &mut std::collections::BTreeMap<String, Value>,
    said: &[(&User, &str)],
    after_ms: i64,
    wait: Duration,
) -> (Vec<String>, Vec<(String, f64, f64, String)>) {
    let start = Instant::now();
    let mut first: Vec<Option<(f64, f64, String)>> = vec![None; said.len()];
    loop {
        let notices: Vec<Value> = elements
            .bot_messages(room, seen)
            .await
            .into_iter()
            .filter(|e| e["content"]["org.salon.transcript"].is_object())
            .collect();
        for (i, (user, sentence)) in said.iter().enumerate() {
            if first[i].is_none()
                && let Some((wer, text)) = best_sentence(&notices, user, sentence, after_ms)
                && wer <= MAX_WER
            {
                first[i] = Some((start.elapsed().as_secs_f64(), wer, text));
            }
        }
        if first.iter().all(Option::is_some) || start.elapsed() > wait {
            let mut failures = Vec::new();
            let mut firsts = Vec::new();
            for (i, (user, sentence)) in said.iter().enumerate() {
                let heard: Vec<&str> = notices
                    .iter()
                    .filter(|e| {
                        e["content"]["org.salon.transcript"]["speaker"] == user.user_id.as_str()
                            && e["origin_server_ts"].as_i64().unwrap_or(0) > after_ms
                    })
                    .filter_map(|e| e["content"]["org.salon.transcript"]["text"].as_str())
                    .collect();
                eprintln!("  heard from {} in this phase: {heard:?}", user.user_id);
                match first[i].take() {
                    Some((secs, wer, text)) => firsts.push((user.user_id.clone(), secs, wer, text)),
                    None => {
                        failures.push(format!(
                            "{} said {sentence:?}; no notice within {wait:?} heard it with WER ≤ {MAX_WER}: {heard:?}",
                            user.user_id
                        ));
                    }
                }
            }
            return (failures, firsts);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Milliseconds since the epoch, to compare with `origin_server_ts` (Synapse
/// runs on this machine).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The E2EE counters and the caption latency, for the log.
async fn e2ee_figures(env: &Env, when: &str) -> (f64, f64) {
    let decrypted = metric(env, "salon_e2ee_frames_decrypted_total").await;
    let undecryptable = metric(env, "salon_e2ee_frames_undecryptable_total").await;
    let (latency, captions, buckets) = caption_latency(env).await;
    eprintln!(
        "encrypted call, {when}: salon_e2ee_frames_decrypted_total {decrypted}, salon_e2ee_frames_undecryptable_total {undecryptable}; caption latency (end of speech → transcript event) mean {latency:.2} s over {captions} transcripts; s≤count: {buckets}"
    );
    (decrypted, undecryptable)
}

/// The `io.element.call.encryption_keys` messages `name`'s Element Call sent
/// to `device` (user:device), from a `host_state` answer.
fn keys_sent_to(hosts: &Value, name: &str, device: &str) -> Vec<Value> {
    hosts[name]["toDeviceSent"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["type"] == "io.element.call.encryption_keys"
                && m["to"]
                    .as_array()
                    .is_some_and(|to| to.iter().any(|t| t == device))
        })
        .cloned()
        .collect()
}

/// Element Call in an encrypted room encrypts every frame with per-member
/// keys it sends, Olm-encrypted, only to the call's members. Two members
/// hear each other through Salon; before consent no member sends Visio a key
/// and Salon decrypts nothing; `!visio transcribe on` makes Visio's device a
/// member of the call, the members send it their keys, and each sentence
/// comes back, encrypted, in the thread under its speaker. A third member
/// joins (a new key) and is transcribed; one leaves (everyone rotates) and
/// transcription goes on; `off` ends the membership; the minutes come,
/// encrypted, when the call ends.
#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_element_call_is_transcribed_once_visio_joins_it_as_a_member() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = matrix_rtc_env("\n[calls]\nempty_grace_seconds = 5\n").await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let carol = env.user("carol").await;
    let elements = Decrypting::log_in(&env, &alice).await;
    let room = encrypted_call_room(&env, &alice, &[&bob, &carol]).await;
    let bot = env.bot_id();
    let dir = env.dir.path().to_owned();
    // Three people who take breaths, not three who talk over each other
    // without a pause: with 1.5 s between loops, three voices are 2.1 s of
    // speech a second, more than Whisper on two cores shared with three
    // Chromiums transcribes, and captions fell 40 s behind by the end.
    // Alice speaks with the British voice too: Whisper base hears espeak's
    // American one as "it's for the new school library is ready for a new"
    // most loops, over the word error rate allowed.
    let alice_wav = speech_wav(&dir, "alice", ALICE_SAYS_ENCRYPTED, "en-gb", "6");
    let bob_wav = speech_wav(&dir, "bob", BOB_SAYS, "en-gb", "6");
    let carol_wav = speech_wav(&dir, "carol", CAROL_SAYS, "en", "6");
    let mut browsers = Browsers::start(&dir).await;
    let mut failures: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    // The bot's device, as it keeps it next to its crypto store.
    let device: Value = serde_json::from_str(
        &std::fs::read_to_string(env.dir.path().join("data/e2ee/device.json"))
            .expect("the bot's E2EE device"),
    )
    .unwrap();
    let bot_device = device["device_id"].as_str().unwrap().to_owned();
    let bot_identity = format!("{bot}:{bot_device}");
    let bot_member = format!("_{bot}_{bot_device}_m.call");

    // 1. Both join (the room is encrypted, so Element Call encrypts per
    // participant) and hear each other through Salon.
    browsers
        .ask(
            json!({
                "cmd": "ec_join", "hs": env.hs_url, "room": room, "e2ee": true,
                "people": [person("alice", &alice_wav), person("bob", &bob_wav)],
                "expect_heard": 1, "timeout_ms": 120_000, "stagger": true,
            }),
            Duration::from_secs(200),
        )
        .await;
    let heard = listen_for(&mut browsers, 11_000).await;
    eprintln!(
        "encrypted element call listening: {}",
        without_console(&heard)
    );
    for name in ["alice", "bob"] {
        if heard_streams(&heard[name]).len() != 1 {
            failures.push(format!(
                "{name} must hear the other member in the encrypted call: {}",
                heard[name]
            ));
        }
    }
    let hosts = host_state(&mut browsers).await;
    eprintln!("to-device before transcription: {hosts}");

    // 5. Before consent Visio is no member: no key goes to its device and
    // Salon decrypts nothing (it forwards what it cannot read).
    for name in ["alice", "bob"] {
        let exchanged = hosts[name]["toDeviceSent"].as_array().is_some_and(|sent| {
            sent.iter()
                .any(|m| m["type"] == "io.element.call.encryption_keys")
        });
        if !exchanged {
            failures.push(format!(
                "{name}'s Element Call sent no media key to the other member: is E2EE on? {}",
                hosts[name]
            ));
        }
        let to_bot = keys_sent_to(&hosts, name, &bot_identity);
        if !to_bot.is_empty() {
            failures.push(format!(
                "{name} sent Visio a media key before it was a member: {to_bot:?}"
            ));
        }
    }
    let (decrypted, _) = e2ee_figures(&env, "before transcription").await;
    if decrypted != 0.0 {
        failures.push(format!(
            "Salon decrypted {decrypted} frames before Visio was a member"
        ));
    }

    // 2. Transcription on, asked encrypted as from Element.
    let saved = elements.command(&room, "!visio settings language=en").await;
    assert_eq!(saved["org.salon.reply"]["language"], "en", "{saved}");
    let on = elements.command(&room, "!visio transcribe on").await;
    assert_eq!(on["org.salon.reply"]["outcome"], "on", "{on}");
    assert_eq!(on["org.salon.transcription"]["member"], true, "{on}");
    let on_ms = now_ms();
    let membership = alice
        .wait_for("Visio's call membership", support::WAIT, || async {
            alice
                .state(&room, "org.matrix.msc3401.call.member", &bot_member)
                .await
                .filter(|m| m.get("device_id").is_some())
        })
        .await;
    assert_eq!(membership["device_id"], bot_device.as_str(), "{membership}");
    eprintln!("visio's membership: {membership}");

    // Each sentence arrives in the thread, encrypted, under its speaker.
    let (missed, firsts) = wait_for_sentences(
        &elements,
        &room,
        &mut seen,
        &[(&alice, ALICE_SAYS_ENCRYPTED), (&bob, BOB_SAYS)],
        on_ms,
        TRANSCRIPT_WAIT,
    )
    .await;
    eprintln!(
        "encrypted call: after transcribe on, first sentence with WER ≤ {MAX_WER} (speaker, s, WER, text): {firsts:?}"
    );
    failures.extend(missed);
    let (decrypted, _) = e2ee_figures(&env, "two members transcribed").await;
    if decrypted == 0.0 {
        failures.push("salon_e2ee_frames_decrypted_total is 0 after transcription on".into());
    }
    let hosts = host_state(&mut browsers).await;
    for name in ["alice", "bob"] {
        let to_bot = keys_sent_to(&hosts, name, &bot_identity);
        eprintln!("{name}'s keys to Visio: {to_bot:?}");
        if to_bot.is_empty() {
            failures.push(format!(
                "{name}'s Element Call sent no media key to Visio's device {bot_device}"
            ));
        }
    }

    // 3. Carol joins mid-call: her key reaches Visio, she is transcribed.
    let carol_at = now_ms();
    let carol_joined = browsers
        .try_ask(
            json!({
                "cmd": "ec_join", "hs": env.hs_url, "room": room, "e2ee": true,
                "people": [person("carol", &carol_wav)],
                "expect_heard": 2, "timeout_ms": 120_000,
            }),
            Duration::from_secs(200),
        )
        .await;
    if carol_joined["ok"] != true {
        failures.push(format!(
            "carol's Element Call did not join and hear both: {}",
            carol_joined["error"]
        ));
    }
    let (missed, firsts) = wait_for_sentences(
        &elements,
        &room,
        &mut seen,
        &[(&carol, CAROL_SAYS)],
        carol_at,
        THREE_SPEAKERS_WAIT,
    )
    .await;
    eprintln!("encrypted call: carol joined, first sentence (speaker, s, WER, text): {firsts:?}");
    failures.extend(missed);
    e2ee_figures(&env, "carol joined").await;

    // Bob leaves: the others rotate to a new key index; both still transcribed.
    let leaving = now_ms();
    browsers
        .ask(
            json!({"cmd": "hang_up", "names": ["bob"]}),
            Duration::from_secs(60),
        )
        .await;
    let bob_left = now_ms();
    // livekit-client switches to a rotated key 1 s after sending it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (missed, firsts) = wait_for_sentences(
        &elements,
        &room,
        &mut seen,
        &[(&alice, ALICE_SAYS_ENCRYPTED), (&carol, CAROL_SAYS)],
        bob_left + 3000,
        THREE_SPEAKERS_WAIT,
    )
    .await;
    eprintln!("encrypted call: bob left, first sentence (speaker, s, WER, text): {firsts:?}");
    failures.extend(missed);
    let hosts = host_state(&mut browsers).await;
    for name in ["alice", "carol"] {
        let to_bot = keys_sent_to(&hosts, name, &bot_identity);
        eprintln!("{name}'s keys to Visio: {to_bot:?}");
        let rotated = to_bot
            .iter()
            .any(|m| m["at"].as_i64().unwrap_or(0) >= leaving);
        if !rotated {
            failures.push(format!(
                "{name} sent Visio no new key after bob left: {to_bot:?}"
            ));
        }
    }
    // The rotated keys are in use: frames keep decrypting, few fail.
    let (decrypted_before, failed_before) = e2ee_figures(&env, "bob left").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (decrypted, failed) = e2ee_figures(&env, "10 s later").await;
    let (decrypted, failed) = (decrypted - decrypted_before, failed - failed_before);
    if decrypted < 200.0 || failed * 10.0 > decrypted {
        failures.push(format!(
            "after the rotation, over 10 s: {decrypted} frames decrypted, {failed} undecryptable"
        ));
    }

    // 4. Off: Visio's membership is emptied.
    let off = elements.command(&room, "!visio transcribe off").await;
    assert_eq!(off["org.salon.reply"]["outcome"], "off", "{off}");
    let left = alice
        .state(&room, "org.matrix.msc3401.call.member", &bot_member)
        .await;
    if left != Some(json!({})) {
        failures.push(format!("Visio is still a member after off: {left:?}"));
    }

    // Everyone hangs up: the minutes come, encrypted.
    browsers
        .ask(
            json!({"cmd": "hang_up", "names": ["alice", "carol"]}),
            Duration::from_secs(60),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(180);
    let minutes = loop {
        let found = elements
            .bot_messages(&room, &mut seen)
            .await
            .into_iter()
            .find(|e| e["content"]["org.salon.minutes"].is_object());
        if found.is_some() || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    match minutes {
        None => failures.push("no decryptable minutes within 180 s of everyone leaving".into()),
        Some(m) => eprintln!("encrypted minutes: {}", m["content"]["org.salon.minutes"]),
    }
    assert!(
        failures.is_empty(),
        "{} check(s) failed:\n- {}\n{}",
        failures.len(),
        failures.join("\n- "),
        env.logs()
    );
}

/// A guest without a Matrix account on Salon's page: the guest link opens
/// the pre-join, the guest picks a name and waits in the lobby (the room is
/// told), a moderator admits them from the chat, and they and a member on
/// Salon's page hear each other; the guest's words are transcribed under
/// "Name (guest, invited by @mxid)".
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_on_salons_page_waits_in_the_lobby_then_is_heard_and_transcribed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = matrix_rtc_env("\n[calls]\nempty_grace_seconds = 5\n").await;
    let alice = env.user("alice").await;
    let room = call_room(&env, &alice, &[]).await;
    let started = alice.command(&room, "!visio start").await;
    let link = started["org.salon.reply"]["url"]
        .as_str()
        .expect("a join link")
        .to_owned();
    let saved = alice.command(&room, "!visio settings language=en").await;
    assert_eq!(saved["org.salon.reply"]["outcome"], "saved", "{saved}");
    let on = alice.command(&room, "!visio transcribe on").await;
    assert_eq!(on["org.salon.reply"]["outcome"], "on", "{on}");
    let made = alice.command(&room, "!visio guest").await;
    let guest_url = made["org.salon.reply"]["url"]
        .as_str()
        .expect("a guest link")
        .to_owned();
    let dir = env.dir.path().to_owned();
    let alice_wav = speech_wav(&dir, "alice", ALICE_SAYS, "en-gb", "3");
    let guest_wav = speech_wav(&dir, "guest", CAROL_SAYS, "en-gb", "3");
    let mut browsers = Browsers::start(&dir).await;

    // The member is in the call on Salon's page.
    browsers
        .ask(
            json!({"cmd": "salon_join", "person": person("alice", &alice_wav), "url": link,
                   "expect_heard": 0, "timeout_ms": 90_000}),
            Duration::from_secs(150),
        )
        .await;
    // The guest knocks and waits: the page says so, the room is told.
    let knocked = browsers
        .ask(
            json!({"cmd": "guest_knock", "url": guest_url, "timeout_ms": 60_000,
                   "person": {"name": "guest", "display_name": "Ada Lovelace", "wav": guest_wav}}),
            Duration::from_secs(90),
        )
        .await;
    assert!(
        knocked["lobby_text"]
            .as_str()
            .is_some_and(|t| t.contains(alice.user_id.as_str())),
        "the lobby names who invited the guest: {knocked}"
    );
    let label = format!("Ada Lovelace (guest, invited by {})", alice.user_id);
    let waiting = alice
        .wait_for("the lobby notice", support::WAIT, || async {
            alice.timeline(&room).await.into_iter().find(|e| {
                e["content"]["org.salon.lobby"]["state"] == "waiting"
                    && e["content"]["org.salon.lobby"]["name"] == "Ada Lovelace"
            })
        })
        .await;
    let guest = waiting["content"]["org.salon.lobby"]["guest"]
        .as_str()
        .unwrap()
        .to_owned();
    // Waiting, the guest hears nothing: nobody else is in alice's call.
    let before = listen_for(&mut browsers, 3000).await;
    assert!(
        heard_streams(&before["alice"]).is_empty(),
        "alice hears someone while the guest waits: {}",
        without_console(&before)
    );

    // Alice's page (she moderates) lists the guest; she admits them there.
    let listed = browsers
        .ask(
            json!({"cmd": "page_text", "name": "alice", "selector": ".lobby-entry .lobby-name"}),
            Duration::from_secs(60),
        )
        .await;
    assert!(
        listed["text"]
            .as_str()
            .is_some_and(|t| t.contains("Ada Lovelace")),
        "alice's page lists the waiting guest: {listed}"
    );
    browsers
        .ask(
            json!({"cmd": "page_click", "name": "alice", "selector": ".lobby-entry .lobby-admit"}),
            Duration::from_secs(60),
        )
        .await;
    let admitted = alice
        .wait_for("the admission in the room", support::WAIT, || async {
            alice.timeline(&room).await.into_iter().find(|e| {
                e["content"]["org.salon.lobby"]["state"] == "admitted"
                    && e["content"]["org.salon.lobby"]["guest"] == guest.as_str()
            })
        })
        .await;
    assert_eq!(
        admitted["content"]["org.salon.lobby"]["by"],
        alice.user_id.as_str()
    );
    let decided = browsers
        .ask(
            json!({"cmd": "guest_decided", "name": "guest", "expect_heard": 1, "timeout_ms": 60_000}),
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(decided["state"], "in-call", "{decided}");
    assert_eq!(decided["person"]["identity"], guest.as_str(), "{decided}");
    let heard = listen_for(&mut browsers, 8000).await;
    let level = heard["alice"]["by_identity"][&guest]["max"].as_f64();
    assert!(
        level.is_some_and(|l| l > 0.01),
        "alice must hear the guest: {}",
        without_console(&heard)
    );

    // The guest's words, under the guest's label.
    let notice = alice
        .wait_for("the guest's sentence", Duration::from_secs(120), || async {
            transcript_notices(&alice, &room)
                .await
                .into_iter()
                .find(|e| {
                    e["content"]["org.salon.transcript"]["speaker"] == guest.as_str()
                        && e["content"]["org.salon.transcript"]["text"]
                            .as_str()
                            .is_some_and(|t| score::wer(CAROL_SAYS, t) <= MAX_WER)
                })
        })
        .await;
    let body = notice["content"]["body"].as_str().unwrap();
    assert!(body.starts_with(&format!("{label}: ")), "{body}");

    // Alice mutes the guest from the guest's tile: the guest's page says who.
    browsers
        .ask(
            json!({"cmd": "page_click", "name": "alice",
                   "selector": format!("li.tile[data-identity=\"{guest}\"] .tile-action-mute")}),
            Duration::from_secs(60),
        )
        .await;
    let told = browsers
        .ask(
            json!({"cmd": "page_text", "name": "guest", "selector": "#notice-text"}),
            Duration::from_secs(60),
        )
        .await;
    assert!(
        told["text"]
            .as_str()
            .is_some_and(|t| t.contains("alice") && t.to_lowercase().contains("mute")),
        "the guest's page says who muted them: {told}"
    );
    let muted = listen_for(&mut browsers, 4000).await;
    let after = muted["alice"]["by_identity"][&guest]["max"].as_f64();
    assert!(
        after.unwrap_or(0.0) < 0.01,
        "alice must not hear the muted guest (before: {level:?}): {}",
        without_console(&muted)
    );
    browsers
        .ask(
            json!({"cmd": "hang_up", "names": ["alice", "guest"]}),
            Duration::from_secs(60),
        )
        .await;
}

/// The same Element Call on a LiveKit cluster: Salon stays the focus (its
/// `/sfu/get` hands out the cluster's URL and a token LiveKit takes), two
/// members hear each other through it (LiveKit's own `/rtc/v1`), and the
/// room knows the call from LiveKit's webhooks.
#[tokio::test(flavor = "multi_thread")]
async fn element_call_members_hear_each_other_on_a_livekit_cluster() {
    let Some(binary) = support::backends::livekit_binary() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = None;
    let (_env, alice, bob, room, mut browsers, joined) = element_call_pair_on(
        "\n[calls]\nempty_grace_seconds = 5\n",
        Some((&binary, &mut cluster)),
    )
    .await;
    let cluster = cluster.expect("the cluster");
    let heard = listen(&mut browsers).await;
    for name in ["alice", "bob"] {
        assert_eq!(
            heard_streams(&heard[name]).len(),
            1,
            "{name} must hear the other member on the cluster: {}",
            heard[name]
        );
        let console = joined[name]["console"].to_string();
        let node = cluster.nodes[0].ws_url();
        assert!(
            console.contains("livekitRoom.connect SUCCESS") && console.contains(&node),
            "{name} connected to the cluster ({node}): {console}"
        );
    }
    // The webhooks made it a Salon call with both members in it.
    let status = alice
        .wait_for(
            "both members in !visio status",
            Duration::from_secs(40),
            || async {
                let status = alice.command(&room, "!visio status").await;
                let body = status["body"].as_str().unwrap_or("").to_owned();
                (body.contains(alice.user_id.as_str()) && body.contains(bob.user_id.as_str()))
                    .then_some(status)
            },
        )
        .await;
    assert_eq!(status["org.salon.reply"]["outcome"], "live", "{status}");
    browsers
        .ask(
            json!({"cmd": "hang_up", "names": ["alice", "bob"]}),
            Duration::from_secs(60),
        )
        .await;
}
