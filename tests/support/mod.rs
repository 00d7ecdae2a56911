//! A real homeserver and a real bridge for the end-to-end journeys.
//!
//! Each test gets its own Synapse (from the venv that `scripts/setup-synapse.sh`
//! makes) on free ports on 127.0.0.1, users registered with
//! `register_new_matrix_user -k`, a registration written by
//! `salon generate-registration`, and the `salon` binary this build produced.
//! Users drive the journey through the client-server API, as Element would.

#![allow(dead_code)]

pub mod backends;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const SERVER_NAME: &str = "salon.test";
const SHARED_SECRET: &str = "salon-test-registration-secret";
pub const PASSWORD: &str = "correct horse battery staple";
/// How long a journey waits for the bot to act.
pub const WAIT: Duration = Duration::from_secs(20);

/// A room made by `owner`, where the bot is a moderator (as Element's widgets
/// need), with the bot invited and joined, and `others` joined.
pub async fn room_with_bot(env: &Env, owner: &User, others: &[&User]) -> String {
    room_with_bot_at(env, owner, others, Some(50)).await
}

/// Like [`room_with_bot`], with the bot at power level `bot_level`, or, for
/// `None`, as an ordinary member of a private room (level 0 against
/// `state_default` 50, as Tchap invites it).
pub async fn room_with_bot_at(
    env: &Env,
    owner: &User,
    others: &[&User],
    bot_level: Option<i64>,
) -> String {
    let create = match bot_level {
        Some(level) => json!({"power_level_content_override": {"users": {env.bot_id(): level}}}),
        None => json!({}),
    };
    let room = owner.create_room(create).await;
    for other in others {
        owner.invite(&room, &other.user_id).await;
        other.join(&room).await;
    }
    owner.invite(&room, &env.bot_id()).await;
    let bot = env.bot_id();
    owner
        .wait_until("the bot to join", WAIT, || owner.is_joined(&room, &bot))
        .await;
    room
}

pub fn workspace_root() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
    )
    .parent()
    .unwrap()
    .to_owned()
}

/// The Synapse venv: `$SALON_SYNAPSE_VENV`, else `.venv/synapse` in the workspace.
pub fn synapse_venv() -> PathBuf {
    let venv = std::env::var_os("SALON_SYNAPSE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/synapse"));
    assert!(
        venv.join("bin/python").exists(),
        "no Synapse venv at {}: run scripts/setup-synapse.sh (or set SALON_SYNAPSE_VENV)",
        venv.display()
    );
    venv
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signing_key() -> String {
    use base64::Engine;
    let seed: [u8; 32] = rand::random();
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed);
    format!("ed25519 a_salon {b64}\n")
}

/// A homeserver, the bridge's files, and the bridge process when running.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub hs_url: String,
    pub as_port: u16,
    pub web_port: u16,
    pub config_path: PathBuf,
    synapse: Child,
    bridge: Option<Child>,
    pub http: reqwest::Client,
}

impl Env {
    /// A fresh Synapse with the bridge registered (the bridge is not started).
    pub async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    /// Like [`Env::start`], letting the test edit the bridge's config text.
    pub async fn start_with(edit_config: impl FnOnce(&mut String)) -> Env {
        Self::start_full(edit_config, |_| {}).await
    }

    /// Like [`Env::start_with`], also letting the test edit `homeserver.yaml`.
    pub async fn start_full(
        edit_config: impl FnOnce(&mut String),
        edit_homeserver: impl FnOnce(&mut String),
    ) -> Env {
        let venv = synapse_venv();
        let dir = tempfile::tempdir().unwrap();
        let hs_port = free_port();
        let as_port = free_port();
        let web_port = free_port();
        let hs_url = format!("http://127.0.0.1:{hs_port}");
        let assets = workspace_root().join("web").display().to_string();
        let model = workspace_root().join("models/base").display().to_string();
        let mut config = format!(
            r#"[homeserver]
url = "{hs_url}"
server_name = "{SERVER_NAME}"

[appservice]
bind = "127.0.0.1:{as_port}"
registration = "appservice.yaml"

[web]
public_url = "http://127.0.0.1:{web_port}"
bind = "127.0.0.1:{web_port}"
assets = "{assets}"

[transcription]
model = "{model}"

[storage]
path = "data"

[logging]
level = "info,salon=debug"
"#
        );
        edit_config(&mut config);
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();

        let out = Command::new(env!("CARGO_BIN_EXE_salon"))
            .args(["generate-registration", "-c"])
            .arg(&config_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "generate-registration failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(dir.path().join("appservice.yaml"), &out.stdout).unwrap();

        let d = dir.path().display();
        std::fs::write(dir.path().join("signing.key"), signing_key()).unwrap();
        std::fs::write(
            dir.path().join("log.yaml"),
            format!(
                "version: 1\nformatters:\n  f:\n    format: '%(asctime)s %(levelname)s %(name)s %(message)s'\n\
                 handlers:\n  file:\n    class: logging.FileHandler\n    filename: {d}/synapse.log\n    formatter: f\n\
                 root:\n  level: INFO\n  handlers: [file]\ndisable_existing_loggers: false\n"
            ),
        )
        .unwrap();
        let mut homeserver_yaml = format!(
            r#"server_name: "{SERVER_NAME}"
pid_file: {d}/homeserver.pid
public_baseurl: {hs_url}/
listeners:
  - port: {hs_port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client, federation, openid]
        compress: false
database:
  name: sqlite3
  args:
    database: {d}/homeserver.db
log_config: {d}/log.yaml
media_store_path: {d}/media
signing_key_path: {d}/signing.key
registration_shared_secret: "{SHARED_SECRET}"
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
app_service_config_files: [{d}/appservice.yaml]
enable_metrics: false
rc_message: {{per_second: 1000, burst_count: 1000}}
rc_registration: {{per_second: 1000, burst_count: 1000}}
rc_login:
  address: {{per_second: 1000, burst_count: 1000}}
  account: {{per_second: 1000, burst_count: 1000}}
  failed_attempts: {{per_second: 1000, burst_count: 1000}}
rc_joins:
  local: {{per_second: 1000, burst_count: 1000}}
  remote: {{per_second: 1000, burst_count: 1000}}
rc_invites:
  per_room: {{per_second: 1000, burst_count: 1000}}
  per_user: {{per_second: 1000, burst_count: 1000}}
  per_issuer: {{per_second: 1000, burst_count: 1000}}
"#
        );
        edit_homeserver(&mut homeserver_yaml);
        std::fs::write(dir.path().join("homeserver.yaml"), homeserver_yaml).unwrap();
        let synapse = Command::new(venv.join("bin/python"))
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(dir.path().join("homeserver.yaml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("synapse.stderr")).unwrap())
            .spawn()
            .expect("start synapse");
        let env = Env {
            dir,
            hs_url,
            as_port,
            web_port,
            config_path,
            synapse,
            bridge: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        env.wait_for(
            &format!("{}/health", env.hs_url),
            Duration::from_secs(60),
            "synapse",
        )
        .await;
        env
    }

    async fn wait_for(&self, url: &str, timeout: Duration, what: &str) {
        let start = Instant::now();
        loop {
            if let Ok(r) = self.http.get(url).send().await
                && r.status().is_success()
            {
                return;
            }
            if start.elapsed() > timeout {
                panic!("{what} did not come up at {url}:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The tails of the logs, for failure messages.
    pub fn logs(&self) -> String {
        let tail = |name: &str| {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- bridge.log ---\n{}\n--- synapse.stderr ---\n{}\n--- synapse.log ---\n{}",
            tail("bridge.log"),
            tail("synapse.stderr"),
            tail("synapse.log")
        )
    }

    /// Registers a user with `register_new_matrix_user -k` and logs them in.
    pub async fn user(&self, name: &str) -> User {
        let out = Command::new(synapse_venv().join("bin/register_new_matrix_user"))
            .args([
                "-k",
                SHARED_SECRET,
                "-u",
                name,
                "-p",
                PASSWORD,
                "--no-admin",
                &self.hs_url,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "register {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let login: Value = self
            .http
            .post(format!("{}/_matrix/client/v3/login", self.hs_url))
            .json(&json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        User {
            user_id: login["user_id"].as_str().unwrap().to_owned(),
            token: login["access_token"].as_str().unwrap().to_owned(),
            hs_url: self.hs_url.clone(),
            http: self.http.clone(),
        }
    }

    pub fn bot_id(&self) -> String {
        format!("@visio:{SERVER_NAME}")
    }

    /// `GET /_salon/v1/calls/{call_id}`, as the call page asks it: the
    /// status and the body.
    pub async fn call_info(&self, call_id: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!(
                "http://127.0.0.1:{}/_salon/v1/calls/{call_id}",
                self.web_port
            ))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The bridge's Prometheus text (`/metrics`).
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.as_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn as_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.as_port)
    }

    pub fn hs_token(&self) -> String {
        let reg: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(self.dir.path().join("appservice.yaml")).unwrap(),
        )
        .unwrap();
        reg["hs_token"].as_str().unwrap().to_owned()
    }

    /// Starts `salon run` and waits until it answers.
    pub async fn start_bridge(&mut self) {
        assert!(self.bridge.is_none(), "bridge already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("bridge.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_salon"))
            .args(["run", "-c"])
            .arg(&self.config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.bridge = Some(child);
        let url = format!("{}/health", self.as_url());
        self.wait_for(&url, Duration::from_secs(60), "the bridge")
            .await;
    }

    /// `kill -9` the bridge.
    pub fn kill_bridge(&mut self) {
        let mut child = self.bridge.take().expect("bridge running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Runs `salon doctor` and returns (success, stdout).
    pub fn doctor(&self, config: &Path) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_salon"))
            .args(["doctor", "-c"])
            .arg(config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut b) = self.bridge.take() {
            let _ = b.kill();
            let _ = b.wait();
        }
        let _ = self.synapse.kill();
        let _ = self.synapse.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // SALON_TEST_LOGS=dir keeps each run's bridge log, to study timings.
        if let Some(keep) = std::env::var_os("SALON_TEST_LOGS") {
            let to = Path::new(&keep).join(format!("bridge-{}.log", self.web_port));
            let _ = std::fs::copy(self.dir.path().join("bridge.log"), to);
        }
    }
}

/// A person with a Matrix account, using the client-server API.
#[derive(Clone)]
pub struct User {
    pub user_id: String,
    pub token: String,
    hs_url: String,
    http: reqwest::Client,
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl User {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.hs_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {value}");
        value
    }

    pub async fn create_room(&self, extra: Value) -> String {
        let mut body = json!({"preset": "private_chat", "name": "Salon test room"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let v = self
            .ok(
                reqwest::Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(body),
            )
            .await;
        v["room_id"].as_str().unwrap().to_owned()
    }

    pub async fn invite(&self, room: &str, user: &str) {
        self.ok(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(room)),
            Some(json!({"user_id": user})),
        )
        .await;
    }

    pub async fn join(&self, room: &str) {
        self.ok(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/join/{}", enc(room)),
            Some(json!({})),
        )
        .await;
    }

    /// Sends a text message and returns its event id.
    pub async fn say(&self, room: &str, text: &str) -> String {
        let txn = format!("t{}", rand::random::<u64>());
        let v = self
            .ok(
                reqwest::Method::PUT,
                &format!(
                    "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
                    enc(room)
                ),
                Some(json!({"msgtype": "m.text", "body": text})),
            )
            .await;
        v["event_id"].as_str().unwrap().to_owned()
    }

    pub async fn set_power_levels(&self, room: &str, edit: impl FnOnce(&mut Value)) {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.power_levels/",
            enc(room)
        );
        let mut levels = self.ok(reqwest::Method::GET, &path, None).await;
        edit(&mut levels);
        self.ok(reqwest::Method::PUT, &path, Some(levels)).await;
    }

    /// Sets a state event; returns its event id.
    pub async fn send_state(&self, room: &str, kind: &str, key: &str, content: Value) -> String {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{kind}/{}",
            enc(room),
            enc(key)
        );
        let v = self.ok(reqwest::Method::PUT, &path, Some(content)).await;
        v["event_id"].as_str().unwrap().to_owned()
    }

    /// A state event's content, or None.
    pub async fn state(&self, room: &str, kind: &str, key: &str) -> Option<Value> {
        let (status, v) = self
            .call(
                reqwest::Method::GET,
                &format!(
                    "/_matrix/client/v3/rooms/{}/state/{kind}/{}",
                    enc(room),
                    enc(key)
                ),
                None,
            )
            .await;
        (status == 200).then_some(v)
    }

    /// The room's recent timeline, oldest first.
    pub async fn timeline(&self, room: &str) -> Vec<Value> {
        let v = self
            .ok(
                reqwest::Method::GET,
                &format!(
                    "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=200",
                    enc(room)
                ),
                None,
            )
            .await;
        let mut events = v["chunk"].as_array().cloned().unwrap_or_default();
        events.reverse();
        events
    }

    /// An OpenID token object, as the call page gets it.
    pub async fn openid_token(&self) -> Value {
        self.ok(
            reqwest::Method::POST,
            &format!(
                "/_matrix/client/v3/user/{}/openid/request_token",
                enc(&self.user_id)
            ),
            Some(json!({})),
        )
        .await
    }

    pub async fn is_joined(&self, room: &str, user: &str) -> bool {
        self.state(room, "m.room.member", user)
            .await
            .is_some_and(|m| m["membership"] == "join")
    }

    /// The bot's replies to `event_id`.
    pub async fn replies_to(&self, room: &str, event_id: &str) -> Vec<Value> {
        self.timeline(room)
            .await
            .into_iter()
            .filter(|e| {
                e["type"] == "m.room.message"
                    && e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id
            })
            .collect()
    }

    /// Waits for the bot's reply to `event_id` and returns its content.
    pub async fn reply_to(&self, room: &str, event_id: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            if let Some(e) = self.replies_to(room, event_id).await.into_iter().next() {
                return e["content"].clone();
            }
            assert!(
                start.elapsed() < timeout,
                "no reply to {event_id} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Says a command and returns the bot's reply content.
    pub async fn command(&self, room: &str, text: &str) -> Value {
        let id = self.say(room, text).await;
        self.reply_to(room, &id, Duration::from_secs(20)).await
    }

    /// Waits until `who` is listed in the room's `org.salon.call` participants.
    pub async fn wait_in_call(&self, room: &str, who: &str) {
        self.wait_until(
            &format!("{who} in org.salon.call participants"),
            WAIT,
            || async {
                self.state(room, "org.salon.call", "")
                    .await
                    .is_some_and(|s| {
                        s["participants"]
                            .as_array()
                            .is_some_and(|p| p.iter().any(|u| u == who))
                    })
            },
        )
        .await;
    }

    /// Waits for the minutes of `call_id` in `room`, and returns the event.
    pub async fn wait_for_minutes(&self, room: &str, call_id: &str, timeout: Duration) -> Value {
        self.wait_for("the minutes", timeout, || async {
            self.timeline(room)
                .await
                .into_iter()
                .find(|e| e["content"]["org.salon.minutes"]["call_id"] == call_id)
        })
        .await
    }

    /// Waits until a condition on the room holds.
    pub async fn wait_until<F, Fut>(&self, what: &str, timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        self.wait_for(what, timeout, || {
            let holds = check();
            async move { holds.await.then_some(()) }
        })
        .await
    }

    /// Waits until `find` finds something in the room, and returns it.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut find: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(found) = find().await {
                return found;
            }
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

/// 16 kHz mono speech of `text` from espeak-ng.
pub fn speak(dir: &Path, name: &str, text: &str, voice: &str) -> Vec<f32> {
    let wav = dir.join(format!("{name}.wav"));
    let out = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .output()
        .expect("espeak-ng is installed (scripts/setup.sh installs it)");
    assert!(out.status.success(), "espeak-ng failed");
    salon_speech::decode_audio_file(&wav).expect("espeak's wav decodes")
}

/// Opus packets of 20 ms for `pcm` (16 kHz mono).
pub fn opus_frames(pcm: &[f32]) -> Vec<(Vec<u8>, u8)> {
    let mut encoder =
        opus::Encoder::new(16_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    pcm.chunks(320)
        .map(|chunk| {
            let mut frame = chunk.to_vec();
            frame.resize(320, 0.0);
            let packet = encoder.encode_vec_float(&frame, 4000).unwrap();
            let rms = (frame.iter().map(|s| s * s).sum::<f32>() / 320.0).sqrt();
            let dbov = (-20.0 * rms.max(1e-6).log10()).clamp(0.0, 127.0) as u8;
            (packet, dbov)
        })
        .collect()
}

/// Publishes `sentences` with pauses between them, at real-time pace; returns
/// when each sentence's speech ended.
pub async fn talk(
    track: &salon_sfu::testing::TrackSender,
    sentences: Vec<Vec<f32>>,
) -> Vec<Instant> {
    let silence = opus_frames(&vec![0.0; 16_000 * 2]);
    let mut ends = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for (packet, level) in &silence[..25] {
        tick.tick().await;
        track.send(packet, *level).await;
    }
    for speech in sentences {
        for (packet, level) in opus_frames(&speech) {
            tick.tick().await;
            track.send(&packet, level).await;
        }
        ends.push(Instant::now());
        for (packet, level) in &silence {
            tick.tick().await;
            track.send(packet, *level).await;
        }
    }
    ends
}

/// The join API's grant for `user` (`url`, `token`), as the call page asks.
pub async fn join_grant(env: &Env, user: &User, call_id: &str, name: &str) -> Value {
    env.http
        .post(format!(
            "http://127.0.0.1:{}/_salon/v1/calls/{call_id}/join",
            env.web_port
        ))
        .json(&json!({"openid_token": user.openid_token().await, "display_name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Joins the call's media session through the join API, as the call page does.
pub async fn join_call(
    env: &Env,
    user: &User,
    call_id: &str,
    name: &str,
) -> salon_sfu::testing::TestClient {
    let grant = join_grant(env, user, call_id, name).await;
    salon_sfu::testing::TestClient::connect(
        grant["url"].as_str().expect("a join grant"),
        grant["token"].as_str().unwrap(),
    )
    .await
    .expect("the SFU accepts the grant")
}
