//! End-to-end encryption on a real Synapse: a staff member with an E2EE client
//! (matrix-sdk, SQLite store) runs the bot from an encrypted room. The bot
//! reads her encrypted commands and everything it says there is encrypted;
//! it keeps working after a restart and after losing its crypto store, and it
//! says so when it cannot decrypt a message.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::{Client, Room};
use ruma::api::client::room::create_room;
use ruma::events::room::message::RoomMessageEventContent;
use ruma::serde::Raw;
use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};
use support::{Env, PASSWORD, User};

const WAIT: Duration = Duration::from_secs(30);

/// A person on an E2EE-capable client, syncing in the background.
struct Member {
    client: Client,
    sync: tokio::task::JoinHandle<()>,
    _store: tempfile::TempDir,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.sync.abort();
    }
}

impl Member {
    async fn log_in(env: &Env, name: &str) -> Member {
        let store = tempfile::tempdir().unwrap();
        let client = Client::builder()
            .homeserver_url(&env.hs_url)
            .sqlite_store(store.path(), None)
            .request_config(RequestConfig::short_retry())
            .build()
            .await
            .unwrap();
        client
            .matrix_auth()
            .login_username(name, PASSWORD)
            .initial_device_display_name("e2ee test client")
            .send()
            .await
            .unwrap();
        // Upload the device's keys before anything else happens.
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
        Member {
            client,
            sync,
            _store: store,
        }
    }

    /// Creates an encrypted room where the bot is a moderator, and invites it.
    async fn encrypted_room_with_bot(&self, env: &Env) -> Room {
        let bot: OwnedUserId = env.bot_id().try_into().unwrap();
        let mut request = create_room::v3::Request::new();
        request.name = Some("Encrypted Salon room".into());
        request.preset = Some(create_room::v3::RoomPreset::PrivateChat);
        request.invite = vec![bot];
        request.initial_state = vec![
            Raw::from_json_string(
                json!({"type": "m.room.encryption", "state_key": "",
                       "content": {"algorithm": "m.megolm.v1.aes-sha2"}})
                .to_string(),
            )
            .unwrap(),
        ];
        request.power_level_content_override =
            Some(Raw::from_json_string(json!({"users": {env.bot_id(): 50}}).to_string()).unwrap());
        self.client.create_room(request).await.unwrap()
    }

    /// Sends a text message, encrypted by the client; returns its event id.
    async fn say(&self, room: &Room, text: &str) -> String {
        room.send(RoomMessageEventContent::text_plain(text))
            .await
            .unwrap()
            .response
            .event_id
            .to_string()
    }

    /// Decrypts a raw event from the room's timeline, waiting for its key.
    async fn decrypt(&self, room: &Room, raw: &Value) -> Option<Value> {
        let raw = Raw::from_json_string(raw.to_string()).unwrap();
        let event = room.decrypt_event(&raw, None).await.ok()?;
        if event.kind.is_utd() {
            return None;
        }
        serde_json::from_str(event.raw().json().get()).ok()
    }
}

/// The bot's message events (not state) in the room, raw as the server has them.
async fn bot_messages(viewer: &User, room: &str, bot: &str) -> Vec<Value> {
    viewer
        .timeline(room)
        .await
        .into_iter()
        .filter(|e| e["sender"] == bot && e.get("state_key").is_none())
        .collect()
}

/// Waits for the bot's reply to `event_id`; asserts it went out encrypted and
/// returns its decrypted content.
async fn encrypted_reply(
    env: &Env,
    viewer: &User,
    member: &Member,
    room: &Room,
    event_id: &str,
) -> Value {
    let what = format!("a decryptable reply to {event_id}");
    viewer
        .wait_for(&what, WAIT, || async {
            let replies: Vec<Value> = bot_messages(viewer, room.room_id().as_str(), &env.bot_id())
                .await
                .into_iter()
                .filter(|e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id)
                .collect();
            let raw = replies.first()?;
            assert_eq!(
                raw["type"], "m.room.encrypted",
                "the bot answered in the clear: {raw}"
            );
            assert!(
                raw["content"].get("body").is_none(),
                "plaintext leaked: {raw}"
            );
            let event = member.decrypt(room, raw).await?;
            assert_eq!(event["type"], "m.room.message", "{event}");
            Some(event["content"].clone())
        })
        .await
}

/// Waits for the bot's message whose content has `field`; asserts it went out
/// encrypted and returns its decrypted content.
async fn encrypted_message_with(
    env: &Env,
    viewer: &User,
    member: &Member,
    room: &Room,
    field: &str,
    timeout: Duration,
) -> Value {
    let what = format!("a decryptable message with {field}");
    viewer
        .wait_for(&what, timeout, || async {
            for raw in bot_messages(viewer, room.room_id().as_str(), &env.bot_id()).await {
                if let Some(event) = member.decrypt(room, &raw).await
                    && event["content"].get(field).is_some()
                {
                    assert_eq!(raw["type"], "m.room.encrypted", "{raw}");
                    return Some(event["content"].clone());
                }
            }
            None
        })
        .await
}

fn e2ee_dir(env: &Env) -> PathBuf {
    env.dir.path().join("data").join("e2ee")
}

fn bot_device(env: &Env) -> String {
    let text = std::fs::read_to_string(e2ee_dir(env).join("device.json"))
        .expect("the bot keeps its device next to its crypto store");
    let device: Value = serde_json::from_str(&text).unwrap();
    device["device_id"].as_str().unwrap().to_owned()
}

/// The bot's devices that have keys on the server, as another member sees them.
async fn bot_devices_with_keys(env: &Env, viewer: &User) -> Vec<String> {
    bot_device_keys(env, viewer)
        .await
        .as_object()
        .map(|devices| devices.keys().cloned().collect())
        .unwrap_or_default()
}

/// Whether the bot signed `device` with its identity (self-signing key), not
/// only with the device's own key.
async fn cross_signed(env: &Env, viewer: &User, device: &str) -> bool {
    let keys = bot_device_keys(env, viewer).await;
    let signatures = &keys[device]["signatures"][env.bot_id()];
    signatures
        .as_object()
        .is_some_and(|s| s.keys().any(|k| k != &format!("ed25519:{device}")))
}

/// The bot's device keys, as `/keys/query` gives them to another member.
async fn bot_device_keys(env: &Env, viewer: &User) -> Value {
    let response: Value = env
        .http
        .post(format!("{}/_matrix/client/v3/keys/query", env.hs_url))
        .bearer_auth(&viewer.token)
        .json(&json!({"device_keys": {env.bot_id(): []}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["device_keys"][env.bot_id()].clone()
}

async fn joined(env: &Env, viewer: &User, room: &OwnedRoomId) {
    let bot = env.bot_id();
    viewer
        .wait_until("the bot to join", WAIT, || {
            viewer.is_joined(room.as_str(), &bot)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_commands_get_encrypted_replies_and_minutes_across_restart_and_lost_store() {
    let mut env = Env::start().await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let member = Member::log_in(&env, "alice").await;
    let room = member.encrypted_room_with_bot(&env).await;
    let room_id = room.room_id().to_owned();
    joined(&env, &alice, &room_id).await;
    let first_device = bot_device(&env);
    assert!(
        bot_devices_with_keys(&env, &alice)
            .await
            .contains(&first_device),
        "the bot's device published no keys"
    );
    assert!(
        cross_signed(&env, &alice, &first_device).await,
        "the bot did not cross-sign its device"
    );

    // The greeting is encrypted too.
    let greeting = alice
        .wait_for("a decryptable greeting", WAIT, || async {
            let messages = bot_messages(&alice, room_id.as_str(), &env.bot_id()).await;
            let raw = messages.first()?;
            assert_eq!(raw["type"], "m.room.encrypted", "{raw}");
            member.decrypt(&room, raw).await
        })
        .await;
    assert!(
        greeting["content"]["body"]
            .as_str()
            .unwrap()
            .contains("!visio start"),
        "{greeting}"
    );

    // An encrypted `!visio start` starts a call; the reply carries the link.
    let mut commands = Vec::new();
    let command = member.say(&room, "!visio start").await;
    commands.push(command.clone());
    let reply = encrypted_reply(&env, &alice, &member, &room, &command).await;
    assert_eq!(reply["org.salon.reply"]["outcome"], "started", "{reply}");
    let call_id = reply["org.salon.reply"]["call_id"].as_str().unwrap();
    let link = format!("http://127.0.0.1:{}/call/{call_id}", env.web_port);
    assert!(reply["body"].as_str().unwrap().contains(&link), "{reply}");
    assert_eq!(reply["msgtype"], "m.notice");
    // State events stay readable by the homeserver and every client.
    let call = alice
        .state(room_id.as_str(), "org.salon.call", "")
        .await
        .expect("the call's state event is in the clear");
    assert_eq!(call["state"], "active");
    assert_eq!(call["call_id"], call_id);

    // Transcription in an encrypted room: the consent notice and what is
    // said come out encrypted, and decrypt to the speaker's words.
    let mic_client = support::join_call(&env, &alice, call_id, "Alice").await;
    let mic = mic_client.publish(true).await.unwrap();
    let command = member.say(&room, "!visio transcribe on").await;
    commands.push(command.clone());
    let reply = encrypted_reply(&env, &alice, &member, &room, &command).await;
    assert_eq!(reply["org.salon.reply"]["outcome"], "on", "{reply}");
    let sentence = "The budget for the new school library is ready for review.";
    let speech = support::speak(env.dir.path(), "alice", sentence, "en-us");
    support::talk(&mic, vec![speech]).await;
    let notice = encrypted_message_with(
        &env,
        &alice,
        &member,
        &room,
        "org.salon.transcript",
        WAIT * 3,
    )
    .await;
    let transcript = &notice["org.salon.transcript"];
    assert_eq!(transcript["speaker"], alice.user_id.as_str());
    let text = transcript["text"].as_str().unwrap().to_lowercase();
    assert!(
        text.contains("budget") && text.contains("library"),
        "{transcript}"
    );
    drop(mic_client);

    // Restarted, the bot keeps its device and still reads new messages.
    env.kill_bridge();
    env.start_bridge().await;
    assert_eq!(bot_device(&env), first_device, "the device was kept");
    let command = member.say(&room, "!visio status").await;
    commands.push(command.clone());
    let reply = encrypted_reply(&env, &alice, &member, &room, &command).await;
    assert_eq!(reply["org.salon.reply"]["outcome"], "live", "{reply}");

    // The crypto store is lost: a new device replaces the old, which is gone.
    env.kill_bridge();
    let dir = e2ee_dir(&env);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("matrix-sdk-crypto.sqlite3") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    env.start_bridge().await;
    let second_device = bot_device(&env);
    assert_ne!(
        second_device, first_device,
        "a new device after a lost store"
    );
    let devices = bot_devices_with_keys(&env, &alice).await;
    assert!(devices.contains(&second_device), "{devices:?}");
    assert!(
        !devices.contains(&first_device),
        "the old device is still there: {devices:?}"
    );
    assert!(
        cross_signed(&env, &alice, &second_device).await,
        "the new device was not cross-signed with the recovered identity"
    );
    let command = member.say(&room, "!visio stop").await;
    commands.push(command.clone());
    let reply = encrypted_reply(&env, &alice, &member, &room, &command).await;
    assert_eq!(reply["org.salon.reply"]["outcome"], "ended", "{reply}");

    // Each command was answered once, whichever way it reached the bot.
    let said = bot_messages(&alice, room_id.as_str(), &env.bot_id()).await;
    for command in &commands {
        let replies = said
            .iter()
            .filter(|e| {
                e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == command.as_str()
            })
            .count();
        assert_eq!(replies, 1, "{command} got {replies} replies");
    }

    // The call's minutes follow, encrypted like the rest.
    let minutes =
        encrypted_message_with(&env, &alice, &member, &room, "org.salon.minutes", WAIT * 4).await;
    assert_eq!(minutes["msgtype"], "m.notice", "{minutes}");

    // Nothing the bot said in this room went out in the clear.
    let said = bot_messages(&alice, room_id.as_str(), &env.bot_id()).await;
    assert!(said.len() >= 5, "{said:?}");
    for event in &said {
        assert_eq!(event["type"], "m.room.encrypted", "{event}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecryptable_message_gets_one_notice() {
    let mut env = Env::start().await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let member = Member::log_in(&env, "alice").await;
    let room = member.encrypted_room_with_bot(&env).await;
    let room_id = room.room_id().to_owned();
    joined(&env, &alice, &room_id).await;

    // A message encrypted with a room key the bot never received.
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.encrypted/utd1",
        url::form_urlencoded::byte_serialize(room_id.as_str().as_bytes()).collect::<String>()
    );
    let sent: Value = env
        .http
        .put(format!("{}{path}", env.hs_url))
        .bearer_auth(&alice.token)
        .json(&json!({
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            "device_id": "NOSUCHDEVICE",
            "session_id": "Jc0ySbAYbUsUlDp4nj9Y3PHcIg0tkXy4q0M5fj0tWWk",
            "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg2yyOwAtHaZTwyNg37afzg8f3r9IsN9rH4RNFg7MaZencUJeuSTlN1nifYSbuTuTXNJRNn+WB9cZLgE5hjmngZSTVH9Crv6p5nXwAahERC6MfeGi6E4l4ULNRbRZ+4v1w2GzY3yY7Mmtsk7lPODfKWFi2axBa2fsX6MxW0tp2zJ6dYN3BSATfgE4sHy76TokDASYIXa/cXNXi1iMZk46m1kI9g"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event_id = sent["event_id"].as_str().unwrap().to_owned();

    // One notice, encrypted, asking to re-send.
    let notice = encrypted_reply(&env, &alice, &member, &room, &event_id).await;
    assert_eq!(notice["msgtype"], "m.notice");
    assert_eq!(
        notice["body"],
        "I could not decrypt your message. Please re-send once I have joined"
    );
    // The bot goes on working, and never repeats the notice.
    let command = member.say(&room, "!visio status").await;
    let reply = encrypted_reply(&env, &alice, &member, &room, &command).await;
    assert_eq!(reply["org.salon.reply"]["outcome"], "idle", "{reply}");
    let notices = bot_messages(&alice, room_id.as_str(), &env.bot_id())
        .await
        .into_iter()
        .filter(|e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id.as_str())
        .count();
    assert_eq!(notices, 1, "one notice per undecryptable event");
}

#[tokio::test(flavor = "multi_thread")]
async fn files_go_to_encrypted_rooms_as_encrypted_attachments() {
    let mut env = Env::start().await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let member = Member::log_in(&env, "alice").await;
    let room = member.encrypted_room_with_bot(&env).await;
    let room_id = room.room_id().to_owned();
    joined(&env, &alice, &room_id).await;
    let plain = alice
        .create_room(json!({"power_level_content_override": {"users": {env.bot_id(): 50}}}))
        .await;
    alice.invite(&plain, &env.bot_id()).await;
    let bot = env.bot_id();
    alice
        .wait_until("the bot to join the plain room", WAIT, || {
            alice.is_joined(&plain, &bot)
        })
        .await;
    // Once the greeting is out, the bot's device knows the encrypted room.
    alice
        .wait_until("the bot's greeting", WAIT, || async {
            !bot_messages(&alice, room_id.as_str(), &bot)
                .await
                .is_empty()
        })
        .await;

    // The bridge's own API, as the minutes code calls it. One process per
    // crypto store: the running bridge steps aside.
    env.kill_bridge();
    let config = salon::config::Config::load(&env.config_path).unwrap();
    let store = salon::store::Store::open(&config.storage.path).unwrap();
    let matrix = salon::matrix::Matrix::connect(&config, &store)
        .await
        .unwrap();
    let minutes: Vec<u8> = "# Minutes\n\n- Decision: ship it.\n"
        .repeat(50)
        .into_bytes();

    let fields = matrix
        .upload_file(&room_id, minutes.clone(), "text/markdown", "minutes.md")
        .await
        .unwrap();
    assert!(
        fields.get("url").is_none(),
        "a plain url in an encrypted room: {fields}"
    );
    let file = &fields["file"];
    for key in ["url", "key", "iv", "hashes"] {
        assert!(
            file.get(key).is_some(),
            "the attachment lacks {key}: {file}"
        );
    }
    let mut content = fields.clone();
    content["msgtype"] = json!("m.file");
    content["body"] = json!("minutes.md");
    content["filename"] = json!("minutes.md");
    let event_id = matrix
        .send_message(&room_id, "salon.test.minutes", &content)
        .await
        .unwrap();

    // The event is encrypted; Alice decrypts it, then the file.
    let raw = alice
        .timeline(room_id.as_str())
        .await
        .into_iter()
        .find(|e| e["event_id"] == event_id.as_str())
        .expect("the file message is in the room");
    assert_eq!(raw["type"], "m.room.encrypted", "{raw}");
    let event = alice
        .wait_for("the file message to decrypt", WAIT, || {
            member.decrypt(&room, &raw)
        })
        .await;
    let file: ruma::events::room::EncryptedFile =
        serde_json::from_value(event["content"]["file"].clone()).unwrap();
    let mxc = file.url.clone();
    let request = matrix_sdk::media::MediaRequestParameters {
        source: ruma::events::room::MediaSource::Encrypted(Box::new(file)),
        format: matrix_sdk::media::MediaFormat::File,
    };
    let downloaded = member
        .client
        .media()
        .get_media_content(&request, false)
        .await
        .unwrap();
    assert_eq!(downloaded, minutes, "the attachment decrypts to the file");
    // What the homeserver stores is ciphertext.
    let (server, media_id) = mxc.parts().unwrap();
    let stored = env
        .http
        .get(format!(
            "{}/_matrix/client/v1/media/download/{server}/{media_id}",
            env.hs_url
        ))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored.len(), minutes.len());
    assert_ne!(
        stored.as_ref(),
        minutes.as_slice(),
        "the server has the plaintext"
    );

    // In a room without encryption the file is a plain `url`.
    let plain_id: ruma::OwnedRoomId = plain.as_str().try_into().unwrap();
    let fields = matrix
        .upload_file(&plain_id, minutes.clone(), "text/markdown", "minutes.md")
        .await
        .unwrap();
    assert!(fields.get("file").is_none(), "{fields}");
    assert!(
        fields["url"].as_str().unwrap().starts_with("mxc://"),
        "{fields}"
    );
}

/// Element Call encrypts a call's media in an encrypted room, with keys it
/// sends only to the call's members: turning transcription on makes Visio a
/// member everyone can see (its own device's call membership, and the name
/// "Visio (transcription)"), and turning it off takes that back.
#[tokio::test(flavor = "multi_thread")]
async fn in_an_encrypted_element_call_visio_joins_as_a_visible_member_while_transcribing() {
    let mut env = Env::start().await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let member = Member::log_in(&env, "alice").await;
    let room = member.encrypted_room_with_bot(&env).await;
    let room_id = room.room_id().to_owned();
    joined(&env, &alice, &room_id).await;
    let bot = env.bot_id();
    let bot_device = bot_device(&env);
    let bot_key = format!("_{bot}_{bot_device}_m.call");
    let bot_name =
        |name: Option<Value>| name.and_then(|m| m["displayname"].as_str().map(str::to_owned));

    // Alice presses Element Call's call button: her membership starts the call.
    let alice_key = format!("_{}_ALICEDEV_m.call", alice.user_id);
    let focus = format!("http://127.0.0.1:{}/livekit/jwt", env.web_port);
    alice
        .send_state(
            room_id.as_str(),
            "org.matrix.msc3401.call.member",
            &alice_key,
            json!({"application": "m.call", "call_id": "", "scope": "m.room", "device_id": "ALICEDEV",
                   "expires": 14_400_000, "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
                   "foci_preferred": [{"type": "livekit", "livekit_alias": room_id, "livekit_service_url": focus}]}),
        )
        .await;
    alice
        .wait_until(
            "the Element Call session to be the room's call",
            WAIT,
            || async {
                alice
                    .state(room_id.as_str(), "org.salon.call", "")
                    .await
                    .is_some_and(|c| c["state"] == "active" && c["origin"] == "matrix_rtc")
            },
        )
        .await;
    // Before consent, Visio is no member of the call.
    assert!(
        alice
            .state(room_id.as_str(), "org.matrix.msc3401.call.member", &bot_key)
            .await
            .is_none()
    );

    let command = member.say(&room, "!visio transcribe on").await;
    let reply = encrypted_reply(&env, &alice, &member, &room, &command).await;
    assert_eq!(reply["org.salon.reply"]["outcome"], "on", "{reply}");
    assert_eq!(reply["org.salon.transcription"]["member"], true, "{reply}");
    assert!(
        reply["body"]
            .as_str()
            .unwrap()
            .contains("joined it as a member"),
        "{reply}"
    );
    let membership = alice
        .wait_for("Visio's call membership", WAIT, || async {
            alice
                .state(room_id.as_str(), "org.matrix.msc3401.call.member", &bot_key)
                .await
                .filter(|m| m.get("device_id").is_some())
        })
        .await;
    assert_eq!(membership["device_id"], bot_device.as_str(), "{membership}");
    assert_eq!(membership["application"], "m.call");
    assert_eq!(
        membership["foci_preferred"][0]["livekit_service_url"],
        focus.as_str(),
        "{membership}"
    );
    assert_eq!(
        bot_name(alice.state(room_id.as_str(), "m.room.member", &bot).await).as_deref(),
        Some("Visio (transcription)")
    );

    // A restart loses the media keys (memory only): Visio leaves the call and
    // joins it again, so that members send it their current keys.
    let bot_memberships = || async {
        alice
            .timeline(room_id.as_str())
            .await
            .into_iter()
            .filter(|e| {
                e["type"] == "org.matrix.msc3401.call.member" && e["sender"] == bot.as_str()
            })
            .map(|e| e["content"].get("device_id").is_some())
            .collect::<Vec<bool>>()
    };
    assert_eq!(
        bot_memberships().await,
        [true],
        "one join before the restart"
    );
    env.kill_bridge();
    env.start_bridge().await;
    alice
        .wait_until(
            "Visio to rejoin the call after the restart",
            WAIT,
            || async { bot_memberships().await == [true, false, true] },
        )
        .await;

    // Off: Visio leaves the call and takes its usual name back.
    let command = member.say(&room, "!visio transcribe off").await;
    let reply = encrypted_reply(&env, &alice, &member, &room, &command).await;
    assert_eq!(reply["org.salon.reply"]["outcome"], "off", "{reply}");
    let left = alice
        .state(room_id.as_str(), "org.matrix.msc3401.call.member", &bot_key)
        .await
        .expect("the membership slot stays, emptied");
    assert_eq!(left, json!({}), "Visio is still a member: {left}");
    assert_eq!(
        bot_name(alice.state(room_id.as_str(), "m.room.member", &bot).await).as_deref(),
        Some("Visio")
    );
}
