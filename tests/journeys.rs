//! End-to-end journeys on a real Synapse: an admin registers Salon, staff
//! start, inspect and stop calls from a room, and the bridge survives a
//! `kill -9` without losing or repeating a command.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Env, User, room_with_bot, room_with_bot_at};

const WAIT: Duration = support::WAIT;

fn reply_field(content: &Value) -> &Value {
    &content["org.salon.reply"]
}

/// What the room's state shows of a call: `org.salon.call`, the call's
/// widget and the widget layout, each `None` where the room has none.
async fn room_view(user: &User, room: &str, call_id: &str) -> [Option<Value>; 3] {
    let widget_id = format!("salon_{call_id}");
    [
        user.state(room, "org.salon.call", "").await,
        user.state(room, "im.vector.modular.widgets", &widget_id)
            .await,
        user.state(room, "io.element.widgets.layout", "").await,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_start_a_call_see_its_status_and_stop_it() {
    let mut env = Env::start().await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let carol = env.user("carol").await;
    let room = room_with_bot(&env, &alice, &[&bob, &carol]).await;

    // The bot greets the room once it has joined.
    alice
        .wait_until("the bot's greeting", WAIT, || async {
            alice.timeline(&room).await.iter().any(|e| {
                e["sender"] == env.bot_id()
                    && e["content"]["body"]
                        .as_str()
                        .unwrap_or("")
                        .contains("!visio start")
            })
        })
        .await;

    let help = bob.command(&room, "!visio help").await;
    for word in ["!visio start", "!visio status", "!visio stop"] {
        assert!(
            help["body"].as_str().unwrap().contains(word),
            "help lacks {word}: {help}"
        );
    }
    assert_eq!(help["msgtype"], "m.notice");

    // Nothing is live yet.
    let idle = bob.command(&room, "!visio status").await;
    assert_eq!(reply_field(&idle)["outcome"], "idle");

    // Bob (power level 0) starts a call with the short alias.
    let started = bob.command(&room, "!call").await;
    let info = reply_field(&started);
    assert_eq!(info["outcome"], "started", "{started}");
    let call_id = info["call_id"].as_str().unwrap().to_owned();
    let link = format!("http://127.0.0.1:{}/call/{call_id}", env.web_port);
    assert_eq!(info["url"], link.as_str());
    assert!(started["body"].as_str().unwrap().contains(&link));

    // The room shows the call: state, widget and layout.
    let state = alice
        .state(&room, "org.salon.call", "")
        .await
        .expect("call state");
    assert_eq!(state["state"], "active");
    assert_eq!(state["call_id"], call_id.as_str());
    assert_eq!(state["url"], link.as_str());
    assert_eq!(state["started_by"], bob.user_id.as_str());
    assert!(state["started_at"].as_u64().unwrap() > 0);
    let widget_id = format!("salon_{call_id}");
    let widget = alice
        .state(&room, "im.vector.modular.widgets", &widget_id)
        .await
        .expect("widget");
    assert_eq!(widget["type"], "m.custom");
    assert_eq!(widget["name"], "Visio");
    assert_eq!(widget["waitForIframeLoad"], true);
    assert_eq!(
        widget["url"],
        format!(
            "{link}?room=$matrix_room_id&user=$matrix_user_id&deviceId=$org.matrix.msc3819.matrix_device_id"
        )
        .as_str()
    );
    let layout = alice
        .state(&room, "io.element.widgets.layout", "")
        .await
        .expect("layout");
    assert!(layout["widgets"][&widget_id].is_object(), "{layout}");

    // The link opens the call page, and the page's API knows the call.
    let page = env.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/assets/call.js"));
    let (_, info) = env.call_info(&call_id).await;
    assert_eq!(info["state"], "active");

    // Starting again gives the same call, never a second one.
    let again = carol.command(&room, "!visio start").await;
    assert_eq!(reply_field(&again)["outcome"], "already_live");
    assert_eq!(reply_field(&again)["call_id"], call_id.as_str());
    assert!(again["body"].as_str().unwrap().contains(&link));

    let status = carol.command(&room, "!visio status").await;
    let s = reply_field(&status);
    assert_eq!(s["outcome"], "live");
    assert_eq!(s["call_id"], call_id.as_str());
    assert_eq!(s["started_by"], bob.user_id.as_str());
    assert!(status["body"].as_str().unwrap().contains(&bob.user_id));

    // Carol neither started it nor moderates: refused, and told why.
    let refused = carol.command(&room, "!visio stop").await;
    assert_eq!(reply_field(&refused)["outcome"], "refused");
    assert!(
        refused["body"].as_str().unwrap().contains("power level 50"),
        "{refused}"
    );
    assert_eq!(
        alice.state(&room, "org.salon.call", "").await.unwrap()["state"],
        "active"
    );

    // Alice created the room (room v12: a creator outranks everyone) and may stop it.
    let stopped = alice.command(&room, "!visio stop").await;
    assert_eq!(reply_field(&stopped)["outcome"], "ended", "{stopped}");
    assert!(
        stopped["body"]
            .as_str()
            .unwrap()
            .starts_with("Call ended after")
    );
    let [state, widget, layout] = room_view(&alice, &room, &call_id).await;
    let state = state.unwrap();
    assert_eq!(state["state"], "ended");
    assert!(state["ended_at"].as_u64().unwrap() >= state["started_at"].as_u64().unwrap());
    assert_eq!(widget, Some(json!({})), "widget removed");
    assert_eq!(layout, Some(json!({})));
    assert_eq!(env.call_info(&call_id).await.0, 404);

    // Stopping again: nothing is live.
    let nothing = bob.command(&room, "!visio stop").await;
    assert_eq!(reply_field(&nothing)["outcome"], "no_live_call");

    // The starter may stop their own call.
    let second = bob.command(&room, "!visio start").await;
    assert_eq!(reply_field(&second)["outcome"], "started");
    assert_ne!(reply_field(&second)["call_id"], call_id.as_str());
    let own = bob.command(&room, "!visio stop").await;
    assert_eq!(reply_field(&own)["outcome"], "ended");

    let unknown = bob.command(&room, "!visio dance").await;
    assert_eq!(reply_field(&unknown)["outcome"], "unknown_command");

    // Ordinary chat gets no answer. The room's events are handled in order,
    // so the reply to a later command proves the chat was handled.
    let chat = bob.say(&room, "visio start tomorrow?").await;
    bob.command(&room, "!visio status").await;
    assert!(bob.replies_to(&room, &chat).await.is_empty());

    let metrics = env.metrics().await;
    assert!(metrics.contains("salon_calls_started_total 2"), "{metrics}");
    assert!(metrics.contains("salon_live_calls 0"), "{metrics}");
    assert!(
        metrics.contains("salon_commands_total{command=\"start\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn power_rules_refuse_starters_and_a_powerless_bot_names_the_level_it_needs() {
    let mut env = Env::start_with(|cfg| {
        cfg.push_str("\n[permissions]\nstart_power_level = 20\nstop_power_level = 60\n");
    })
    .await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let room = room_with_bot(&env, &alice, &[&bob]).await;

    // Bob has power level 0 and the site requires 20 to start.
    let refused = bob.command(&room, "!visio start").await;
    assert_eq!(reply_field(&refused)["outcome"], "refused");
    assert!(
        refused["body"].as_str().unwrap().contains("power level 20"),
        "{refused}"
    );
    assert!(alice.state(&room, "org.salon.call", "").await.is_none());

    // The room asks 100 for the call state, more than the bot's 50: the call
    // starts all the same, and the reply names the level that would show it.
    alice
        .set_power_levels(&room, |pl| {
            pl["events"]["org.salon.call"] = json!(100);
            pl["users"][&bob.user_id] = json!(20);
        })
        .await;
    let started = bob.command(&room, "!visio start").await;
    let info = reply_field(&started);
    assert_eq!(info["outcome"], "started", "{started}");
    assert_eq!(info["room_state"], "missing_power", "{started}");
    assert_eq!(info["required_power_level"], 100, "{started}");
    let call_id = info["call_id"].as_str().unwrap().to_owned();
    assert!(
        started["body"]
            .as_str()
            .unwrap()
            .contains("power level 100 (Admin)"),
        "{started}"
    );
    assert!(alice.state(&room, "org.salon.call", "").await.is_none());

    // Promoted, any command (help here) shows the live call in the room.
    let bot = env.bot_id();
    alice
        .set_power_levels(&room, |pl| {
            pl["users"][&bot] = json!(100);
        })
        .await;
    let help = bob.command(&room, "!visio help").await;
    assert_eq!(reply_field(&help)["outcome"], "ok");
    let state = alice.state(&room, "org.salon.call", "").await.unwrap();
    assert_eq!(state["call_id"], call_id.as_str());
    assert_eq!(state["state"], "active");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bot_without_power_gives_the_join_link_and_shows_the_call_once_promoted() {
    let mut env = Env::start().await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let bot = env.bot_id();
    // A private room as Tchap makes them: the bot is invited as an ordinary
    // member, power level 0 against state_default 50.
    let room = room_with_bot_at(&env, &alice, &[&bob], None).await;
    let levels = alice.state(&room, "m.room.power_levels", "").await.unwrap();
    assert_eq!(levels["state_default"], 50, "{levels}");
    assert!(levels["users"].get(&bot).is_none(), "{levels}");

    // Bob starts a call: he gets the link, and is told once why the room's
    // header does not show it.
    let started = bob.command(&room, "!visio start").await;
    let info = reply_field(&started);
    assert_eq!(info["outcome"], "started", "{started}");
    assert_eq!(info["room_state"], "missing_power");
    assert_eq!(info["required_power_level"], 50);
    let call_id = info["call_id"].as_str().unwrap().to_owned();
    let link = format!("http://127.0.0.1:{}/call/{call_id}", env.web_port);
    assert_eq!(info["url"], link.as_str());
    let body = started["body"].as_str().unwrap();
    assert!(
        body.starts_with(&format!("📞 Call started. Join here: {link}")),
        "{body}"
    );
    assert!(body.contains("header"), "{body}");
    assert_eq!(
        body.matches("power level 50 (Moderator)").count(),
        1,
        "{body}"
    );
    // The reply came after the bot tried what it may: nothing in the room state.
    assert_eq!(room_view(&alice, &room, &call_id).await, [None, None, None]);

    // The link works: the page knows the call, and bob joins its media.
    let (_, page) = env.call_info(&call_id).await;
    assert_eq!(page["state"], "active", "{page}");
    let _bob_in_call = support::join_call(&env, &bob, &call_id, "Bob").await;

    // Status reads the bridge's record: live, with bob in it, and no remark.
    // (each status reply proves the join was or was not handled before it)
    let asked = std::time::Instant::now();
    let status = loop {
        let status = alice.command(&room, "!visio status").await;
        if reply_field(&status)["participants"]
            .as_array()
            .is_some_and(|p| p.iter().any(|u| u == bob.user_id.as_str()))
        {
            break status;
        }
        assert!(asked.elapsed() < WAIT, "status never listed bob: {status}");
    };
    let s = reply_field(&status);
    assert_eq!(s["outcome"], "live", "{status}");
    assert_eq!(s["call_id"], call_id.as_str());
    assert_eq!(s["room_state"], "missing_power");
    let said = status["body"].as_str().unwrap();
    assert!(
        said.contains(&format!("In the call: {}", bob.user_id)),
        "{said}"
    );
    assert!(!said.contains("power level"), "said more than once: {said}");

    // Transcription works as usual: the consent notice is the reply.
    let on = alice.command(&room, "!visio transcribe on").await;
    assert_eq!(reply_field(&on)["outcome"], "on", "{on}");
    assert!(
        !on["body"].as_str().unwrap().contains("power level"),
        "{on}"
    );
    // Still nothing in the room state, and still no widget.
    assert_eq!(room_view(&alice, &room, &call_id).await, [None, None, None]);

    // Alice (the room's creator) promotes the bot; the next command shows the
    // live call in the room, as it is now.
    alice
        .set_power_levels(&room, |pl| {
            pl["users"][&bot] = json!(50);
        })
        .await;
    let status = bob.command(&room, "!visio status").await;
    assert_eq!(reply_field(&status)["outcome"], "live", "{status}");
    assert_eq!(reply_field(&status)["room_state"], "shown", "{status}");
    assert!(
        !status["body"].as_str().unwrap().contains("power level"),
        "{status}"
    );
    let [state, widget, layout] = room_view(&alice, &room, &call_id).await;
    let state = state.expect("the call state, once the bot may write it");
    assert_eq!(state["call_id"], call_id.as_str());
    assert_eq!(state["state"], "active");
    assert_eq!(state["url"], link.as_str());
    assert_eq!(state["started_by"], bob.user_id.as_str());
    assert_eq!(state["participants"], json!([bob.user_id]));
    assert_eq!(state["transcription"], true);
    let widget = widget.expect("the widget, once the bot may add it");
    assert_eq!(widget["type"], "m.custom");
    assert!(
        widget["url"].as_str().unwrap().starts_with(&link),
        "{widget}"
    );
    let layout = layout.expect("layout");
    assert!(
        layout["widgets"][format!("salon_{call_id}")].is_object(),
        "{layout}"
    );

    // Bob stops his call: the room shows it ended, the widget goes away.
    let stopped = bob.command(&room, "!visio stop").await;
    assert_eq!(reply_field(&stopped)["outcome"], "ended", "{stopped}");
    let [state, widget, _] = room_view(&alice, &room, &call_id).await;
    let state = state.unwrap();
    assert_eq!(state["call_id"], call_id.as_str());
    assert_eq!(state["state"], "ended");
    assert_eq!(widget, Some(json!({})), "widget removed");
    assert_eq!(env.call_info(&call_id).await.0, 404);

    // The remark was made once in the whole conversation: in the start reply.
    let remarks = alice
        .timeline(&room)
        .await
        .into_iter()
        .filter(|e| {
            e["sender"] == bot.as_str()
                && e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("header"))
        })
        .count();
    assert_eq!(remarks, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_ended_before_the_bot_was_promoted_leaves_nothing_stale() {
    let mut env = Env::start().await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let bot = env.bot_id();
    let room = room_with_bot_at(&env, &alice, &[], None).await;

    let started = alice.command(&room, "!visio start").await;
    assert_eq!(reply_field(&started)["room_state"], "missing_power");
    let stopped = alice.command(&room, "!visio stop").await;
    assert_eq!(reply_field(&stopped)["outcome"], "ended", "{stopped}");
    alice
        .set_power_levels(&room, |pl| {
            pl["users"][&bot] = json!(50);
        })
        .await;
    // The sentinel: once its reply is in, the command was handled.
    let idle = alice.command(&room, "!visio status").await;
    assert_eq!(reply_field(&idle)["outcome"], "idle", "{idle}");
    let call_id = reply_field(&started)["call_id"].as_str().unwrap();
    assert_eq!(
        room_view(&alice, &room, call_id).await,
        [None, None, None],
        "an ended call the room never showed is not news"
    );
    // A new call is shown at once.
    let next = alice.command(&room, "!visio start").await;
    assert_eq!(reply_field(&next)["room_state"], "shown", "{next}");
    assert!(!next["body"].as_str().unwrap().contains("power level"));
    assert_eq!(
        alice.state(&room, "org.salon.call", "").await.unwrap()["state"],
        "active"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_appservice_api_refuses_bad_tokens_and_malformed_transactions_and_ignores_replays() {
    let mut env = Env::start().await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let room = room_with_bot(&env, &alice, &[]).await;
    let url = |txn: &str| format!("{}/_matrix/app/v1/transactions/{txn}", env.as_url());
    let http = &env.http;

    let missing = http
        .put(url("t1"))
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["errcode"],
        "M_UNAUTHORIZED"
    );
    let wrong = http
        .put(url("t1"))
        .bearer_auth("not-the-token")
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["errcode"],
        "M_FORBIDDEN"
    );

    let token = env.hs_token();
    let not_json = http
        .put(url("t2"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"events\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        not_json.json::<Value>().await.unwrap()["errcode"],
        "M_NOT_JSON"
    );
    let bad_shape = http
        .put(url("t3"))
        .bearer_auth(&token)
        .json(&json!({"events": "everything"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_shape.status(), 400);
    assert_eq!(
        bad_shape.json::<Value>().await.unwrap()["errcode"],
        "M_BAD_JSON"
    );

    // A real command, answered once.
    let cmd = alice.say(&room, "!visio status").await;
    alice.reply_to(&room, &cmd, WAIT).await;
    // The same event comes again: twice under one txn id (a retry), then under
    // another (Synapse restarted and numbers its transactions afresh).
    let event = alice
        .timeline(&room)
        .await
        .into_iter()
        .find(|e| e["event_id"] == cmd.as_str())
        .unwrap();
    let mut event = event;
    event["room_id"] = json!(room);
    for txn in ["replay-a", "replay-a", "replay-b"] {
        let replay = http
            .put(url(txn))
            .bearer_auth(&token)
            .json(&json!({"events": [event.clone()]}))
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), 200);
    }
    // Let any (wrong) second answer arrive before counting.
    let probe = alice.command(&room, "!visio help").await;
    assert!(probe["body"].is_string());
    assert_eq!(
        alice.replies_to(&room, &cmd).await.len(),
        1,
        "a replayed command was answered twice"
    );

    // The other appservice endpoints.
    let ping = http
        .post(format!("{}/_matrix/app/v1/ping", env.as_url()))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    let as_get = |path: String| {
        let request = http
            .get(format!("{}{path}", env.as_url()))
            .bearer_auth(&token);
        async move { request.send().await.unwrap().status() }
    };
    let bot_query = as_get(format!("/_matrix/app/v1/users/{}", env.bot_id())).await;
    assert_eq!(bot_query, 200);
    let other_query = as_get("/_matrix/app/v1/users/@someone:salon.test".into()).await;
    assert_eq!(other_query, 404);
    let alias = as_get("/_matrix/app/v1/rooms/%23x:salon.test".into()).await;
    assert_eq!(alias, 404);
    let health = http
        .get(format!("{}/health", env.as_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = http
        .get(format!("{}/metrics", env.as_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("salon_transactions_rejected_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("salon_transactions_replayed_total 1"),
        "{metrics}"
    );

    // The bridge log never carries the tokens.
    let log = std::fs::read_to_string(env.dir.path().join("bridge.log")).unwrap();
    assert!(!log.contains(&token), "hs_token leaked into the log");
    let reg = std::fs::read_to_string(env.dir.path().join("appservice.yaml")).unwrap();
    let as_token = reg
        .lines()
        .find_map(|l| l.strip_prefix("as_token: "))
        .unwrap();
    assert!(
        !log.contains(as_token.trim()),
        "as_token leaked into the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bridge_killed_mid_call_answers_what_it_missed_exactly_once() {
    let mut env = Env::start().await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let room = room_with_bot(&env, &alice, &[]).await;
    let started = alice.command(&room, "!visio start").await;
    let call_id = reply_field(&started)["call_id"]
        .as_str()
        .unwrap()
        .to_owned();

    env.kill_bridge();
    // Commands said while the bridge is down wait in Synapse's queue.
    let status = alice.say(&room, "!visio status").await;
    let again = alice.say(&room, "!visio start").await;
    env.start_bridge().await;

    let status_reply = alice
        .reply_to(&room, &status, Duration::from_secs(60))
        .await;
    assert_eq!(
        reply_field(&status_reply)["outcome"],
        "live",
        "{status_reply}"
    );
    assert_eq!(reply_field(&status_reply)["call_id"], call_id.as_str());
    let again_reply = alice.reply_to(&room, &again, Duration::from_secs(60)).await;
    assert_eq!(reply_field(&again_reply)["outcome"], "already_live");
    assert_eq!(reply_field(&again_reply)["call_id"], call_id.as_str());

    // Give Synapse's retries time to deliver anything twice, then count.
    let stop = alice.say(&room, "!visio stop").await;
    let stop_reply = alice.reply_to(&room, &stop, WAIT).await;
    assert_eq!(reply_field(&stop_reply)["outcome"], "ended");
    for (event, what) in [(&status, "status"), (&again, "start"), (&stop, "stop")] {
        assert_eq!(
            alice.replies_to(&room, event).await.len(),
            1,
            "{what} answered more than once"
        );
    }
    let started_replies = alice
        .timeline(&room)
        .await
        .into_iter()
        .filter(|e| e["content"]["org.salon.reply"]["outcome"] == "started")
        .count();
    assert_eq!(started_replies, 1, "only one call was ever started");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_says_what_is_wrong_in_plain_words() {
    let mut env = Env::start().await;
    // Before the bridge runs, doctor answers the homeserver's ping itself.
    let (ok, out) = env.doctor(&env.config_path);
    assert!(ok, "{out}");
    assert!(out.contains("the homeserver accepts the as_token"), "{out}");
    assert!(out.contains("speech model base"), "{out}");
    assert!(out.contains("reaches the bridge"), "{out}");
    // MatrixRTC is optional: without it, a warning that says what to add
    assert!(
        out.contains("! Element Call's call button cannot use Salon"),
        "{out}"
    );
    env.start_bridge().await;
    let (ok, out) = env.doctor(&env.config_path);
    assert!(ok, "with the bridge running: {out}");

    // A homeserver that is down.
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    let down = env.dir.path().join("down.toml");
    let dead_port = support::free_port();
    std::fs::write(
        &down,
        text.replace(&env.hs_url, &format!("http://127.0.0.1:{dead_port}")),
    )
    .unwrap();
    let (ok, out) = env.doctor(&down);
    assert!(!ok);
    assert!(out.contains("cannot reach the homeserver"), "{out}");

    // Tokens the homeserver does not know.
    let other = env.dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "as_token: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nhs_token: BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\nsender_localpart: _x\n",
    )
    .unwrap();
    let wrong = env.dir.path().join("wrong.toml");
    std::fs::write(&wrong, text.replace("appservice.yaml", "other.yaml")).unwrap();
    let (ok, out) = env.doctor(&wrong);
    assert!(!ok);
    assert!(out.contains("refused the as_token"), "{out}");

    // A truncated speech model is named, with the way to fix it.
    let broken_model = env.dir.path().join("broken-model");
    std::fs::create_dir(&broken_model).unwrap();
    let installed = support::workspace_root().join("models/base");
    for file in std::fs::read_dir(&installed).unwrap() {
        let file = file.unwrap().path();
        let bytes = std::fs::read(&file).unwrap();
        let keep = if file.ends_with("model.bin") {
            bytes.len() / 2
        } else {
            bytes.len()
        };
        std::fs::write(broken_model.join(file.file_name().unwrap()), &bytes[..keep]).unwrap();
    }
    let truncated = env.dir.path().join("truncated.toml");
    std::fs::write(
        &truncated,
        text.replace(
            &installed.display().to_string(),
            &broken_model.display().to_string(),
        ),
    )
    .unwrap();
    let (ok, out) = env.doctor(&truncated);
    assert!(!ok);
    assert!(
        out.contains("speech model") && out.contains("install-models.sh"),
        "{out}"
    );
    assert!(out.contains("the homeserver accepts the as_token"), "{out}");

    // A config with a typo names the key.
    let typo = env.dir.path().join("typo.toml");
    std::fs::write(&typo, text.replace("public_url", "public_ulr")).unwrap();
    let (ok, out) = env.doctor(&typo);
    assert!(!ok);
    assert!(out.contains("public_ulr"), "{out}");
}

/// The claims of a LiveKit JWT (not verified here: the SFU does that).
fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn members_join_with_their_matrix_identity_and_the_room_sees_who_is_in_the_call() {
    let mut env = Env::start_with(|cfg| cfg.push_str("\n[calls]\nempty_grace_seconds = 2\n")).await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let dave = env.user("dave").await;
    let room = room_with_bot(&env, &alice, &[]).await;
    let started = alice.command(&room, "!visio start").await;
    let call_id = reply_field(&started)["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = format!("http://127.0.0.1:{}/_salon/v1/calls", env.web_port);
    let join = |call: String, body: Value| {
        let http = env.http.clone();
        let url = format!("{api}/{call}/join");
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    let info: Value = env
        .http
        .get(format!("{api}/{call_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["room_id"], room.as_str());
    assert_eq!(info["state"], "active");
    assert_eq!(info["homeserver_url"], env.hs_url.as_str());

    // A forged token, an outsider, an unknown call: each refused with its own code.
    let forged = json!({"openid_token": {"access_token": "forged", "matrix_server_name": "salon.test", "token_type": "Bearer", "expires_in": 3600}});
    let (status, body) = join(call_id.clone(), forged).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (401, Some("M_UNKNOWN_TOKEN")),
        "{body}"
    );
    let (status, body) = join(
        call_id.clone(),
        json!({"openid_token": dave.openid_token().await}),
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (403, Some("M_FORBIDDEN")),
        "{body}"
    );
    let (status, _) = join(
        "0123456789abcdef".into(),
        json!({"openid_token": alice.openid_token().await}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = join(call_id.clone(), json!({"nonsense": true})).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_BAD_JSON"))
    );
    // A device id that cannot be part of a LiveKit identity (`{mxid}:{device}`).
    let (status, body) = join(
        call_id.clone(),
        json!({"openid_token": alice.openid_token().await, "device_id": "NO SPACES"}),
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_BAD_JSON")),
        "{body}"
    );

    // A member gets a five-minute LiveKit token for this call, as themselves.
    let (status, grant) = join(
        call_id.clone(),
        json!({"openid_token": alice.openid_token().await, "display_name": "Alice Martin"}),
    )
    .await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!(
        grant["url"],
        format!("ws://127.0.0.1:{}", env.web_port).as_str()
    );
    let claims = jwt_claims(grant["token"].as_str().unwrap());
    assert_eq!(claims["sub"], alice.user_id.as_str());
    assert_eq!(claims["name"], "Alice Martin");
    // The room's one LiveKit room, the one Element Call's members join too.
    assert_eq!(
        claims["video"]["room"],
        salon::rtc::room_media_name(&room).as_str()
    );
    assert_eq!(claims["video"]["roomJoin"], true);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ttl = claims["exp"].as_u64().unwrap() - now;
    assert!((290..=300).contains(&ttl), "token lives {ttl} s");

    // Alice joins the SFU with it: the room's call state lists her, and so does status.
    let client = salon_sfu::testing::TestClient::connect(
        grant["url"].as_str().unwrap(),
        grant["token"].as_str().unwrap(),
    )
    .await
    .expect("the SFU accepts the bridge's token");
    alice.wait_in_call(&room, &alice.user_id).await;
    let status = alice.command(&room, "!visio status").await;
    assert!(
        status["body"]
            .as_str()
            .unwrap()
            .contains(&format!("In the call: {}", alice.user_id)),
        "{status}"
    );

    // She leaves; after the grace period the call ends by itself and the room is told.
    client.leave().await;
    alice
        .wait_until("the call to end after everyone left", WAIT, || async {
            alice
                .state(&room, "org.salon.call", "")
                .await
                .is_some_and(|s| s["state"] == "ended")
        })
        .await;
    alice
        .wait_until(
            "a notice that the call ended because everyone left",
            WAIT,
            || async {
                alice.timeline(&room).await.iter().any(|e| {
                    e["content"]["org.salon.reply"]["command"] == "timeout"
                        && e["content"]["body"]
                            .as_str()
                            .unwrap_or("")
                            .contains("everyone left")
                })
            },
        )
        .await;
    let state = alice.state(&room, "org.salon.call", "").await.unwrap();
    assert_eq!(state["participants"], json!([]));
    // The ended call accepts no more joins.
    let (status, _) = join(
        call_id.clone(),
        json!({"openid_token": alice.openid_token().await}),
    )
    .await;
    assert_eq!(status, 404);

    // Someone hammering the join endpoint is slowed down.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(join(call_id.clone(), json!({"nonsense": true})).await.0);
    }
    assert!(
        statuses.contains(&429),
        "no 429 after 25 quick attempts: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bot_declines_invites_from_outside_the_autojoin_lists() {
    let mut env = Env::start_with(|cfg| {
        cfg.push_str("\n[bot]\nautojoin_users = [\"@alice:salon.test\"]\n");
    })
    .await;
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let eve = env.user("eve").await;
    let bot = env.bot_id();

    let eves_room = eve.create_room(json!({})).await;
    eve.invite(&eves_room, &bot).await;
    // Twice the usual wait: once, with the browser journey loading both cores
    // beside it, the decline took longer than 30 s to show.
    eve.wait_until("the bot to decline eve's invite", 2 * WAIT, || async {
        eve.state(&eves_room, "m.room.member", &bot)
            .await
            .is_some_and(|m| m["membership"] == "leave")
    })
    .await;

    let room = room_with_bot(&env, &alice, &[]).await;
    let started = alice.command(&room, "!visio start").await;
    assert_eq!(reply_field(&started)["outcome"], "started");
}

/// Speech for a fake microphone: espeak-ng, as Chromium reads it.
/// `text` spoken by espeak-ng, then 1.5 s of silence: Chromium loops the
/// file as a microphone, and people pause between sentences.
fn speech_wav(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let raw = dir.join(format!("{name}-speech.wav"));
    let status = std::process::Command::new("espeak-ng")
        .args(["-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng is installed (scripts/setup.sh)");
    assert!(status.success());
    let path = dir.join(format!("{name}.wav"));
    let status = std::process::Command::new("sox")
        .arg(&raw)
        .arg(&path)
        .args(["pad", "0", "1.5"])
        .status()
        .expect("sox is installed (scripts/setup.sh)");
    assert!(status.success());
    path
}

/// The MatrixRTC membership state event the call page writes for its user.
const CALL_MEMBER: &str = "org.matrix.msc3401.call.member";

backend_tests!(
    on_the_call_page_two_members_sign_in_join_and_hear_each_other,
    call_page_journey
);

async fn call_page_journey(backend: support::backends::Backend) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    // Delayed events on (MSC4140), as a MatrixRTC homeserver has them: the
    // page schedules its delayed leave and restarts it every 4 s.
    let mut env = Env::start_full(
        |_| {},
        |homeserver| {
            homeserver.push_str(
                "\nmax_event_delay_duration: 24h\nrc_delayed_event_mgmt: {per_second: 1000, burst_count: 1000}\n",
            )
        },
    )
    .await;
    let Some(_cluster) = support::backends::cluster_for(backend, &env) else {
        return;
    };
    env.start_bridge().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    // Alice made the room (power 100) and may send call memberships; bob
    // (power 0, state events need 50) may not: his page must carry on.
    let room = room_with_bot(&env, &alice, &[&bob]).await;
    let started = alice.command(&room, "!visio start").await;
    let link = reply_field(&started)["url"].as_str().unwrap().to_owned();
    let call_id = reply_field(&started)["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let focus_url = format!("http://127.0.0.1:{}/livekit/jwt", env.web_port);
    let (_, info) = env.call_info(&call_id).await;
    assert_eq!(info["focus_url"], focus_url.as_str(), "{info}");
    // Transcription on before they join: each page must show the banner and
    // the other person's words as captions.
    let on = alice.command(&room, "!visio transcribe on").await;
    assert_eq!(reply_field(&on)["outcome"], "on", "{on}");

    let a = speech_wav(
        env.dir.path(),
        "alice",
        "Good morning everyone, the budget review starts now.",
    );
    let b = speech_wav(
        env.dir.path(),
        "bob",
        "Thank you Alice, I have the figures for the third quarter.",
    );
    let script = support::workspace_root().join("web/tests/call-journey.mjs");
    let pw = support::PASSWORD;
    let mut journey = tokio::process::Command::new("node")
        .arg(&script)
        .env("SALON_CALL_URL", &link)
        .env("SALON_USERS", format!("alice:{pw},bob:{pw}"))
        .env(
            "SALON_AUDIO_FILES",
            format!("{},{}", a.display(), b.display()),
        )
        .env("SALON_TIMEOUT_MS", "90000")
        .env("SALON_CAPTION_WAIT_MS", "60000")
        .env("SALON_CAPTION_WORDS", "budget,figures")
        .env("SALON_HOLD", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed");
    let mut stderr = journey.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = tokio::io::BufReader::new(journey.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    // Everyone is in the call: the pages hold it until told to hang up.
    let holding = tokio::time::timeout(Duration::from_secs(240), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stdout.push(line.clone());
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["holding"] == true
            {
                return Some(v);
            }
        }
        None
    })
    .await
    .expect("the journey holds the call within 240 s");
    let Some(holding) = holding else {
        let _ = journey.wait().await;
        panic!(
            "the browser journey failed:\n{}\n{}",
            stdout.join("\n"),
            stderr.await.unwrap()
        );
    };
    eprintln!("in the call: {holding}");
    let in_call = holding["users"].as_array().unwrap();
    let (alice_in, bob_in) = (&in_call[0], &in_call[1]);
    for (person, user) in [(alice_in, &alice), (bob_in, &bob)] {
        let device = person["device_id"].as_str().expect("a device id");
        assert_eq!(
            person["livekit_identity"],
            format!("{}:{device}", user.user_id).as_str(),
            "{person}"
        );
    }
    // Alice's membership is in the room, as Element Call would write it.
    let alice_key = format!(
        "_{}_{}_m.call",
        alice.user_id,
        alice_in["device_id"].as_str().unwrap()
    );
    assert_eq!(alice_in["membership"]["state"], "joined", "{alice_in}");
    assert_eq!(alice_in["membership"]["delayed"], true, "{alice_in}");
    let member = alice
        .state(&room, CALL_MEMBER, &alice_key)
        .await
        .expect("alice's call membership");
    assert_eq!(member["device_id"], alice_in["device_id"], "{member}");
    assert_eq!(member["application"], "m.call", "{member}");
    assert_eq!(member["focus_active"]["type"], "livekit", "{member}");
    assert_eq!(
        member["foci_preferred"][0]["livekit_service_url"],
        focus_url.as_str(),
        "{member}"
    );
    assert_eq!(member["foci_preferred"][0]["livekit_alias"], room.as_str());
    // Bob may not send it: refused, and his call went on (he hears alice).
    assert_eq!(bob_in["membership"]["state"], "refused", "{bob_in}");
    // `!visio status` lists each user once, by Matrix id.
    let status = alice.command(&room, "!visio status").await;
    let mut listed: Vec<String> = reply_field(&status)["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("participants in {status}"))
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [alice.user_id.clone(), bob.user_id.clone()],
        "{status}"
    );

    // Hang up.
    let mut stdin = journey.stdin.take().unwrap();
    stdin.write_all(b"hang up\n").await.unwrap();
    drop(stdin);
    let finished = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stdout.push(line);
        }
        journey.wait().await.unwrap()
    })
    .await
    .expect("the journey ends within 90 s of hanging up");
    let stdout = stdout.join("\n");
    assert!(
        finished.success(),
        "the browser journey failed:\n{stdout}\n{}",
        stderr.await.unwrap()
    );
    let result: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line");
    eprintln!("browser journey: {result}");
    assert_eq!(
        alice.state(&room, CALL_MEMBER, &alice_key).await,
        Some(json!({})),
        "alice hung up: her membership must be {{}}"
    );
    let users = result["users"].as_array().unwrap();
    assert_eq!(users[0]["membership_after_leave"]["state"], "left");
    for (user, other, said) in [
        (&users[0], &users[1], "figures"),
        (&users[1], &users[0], "budget"),
    ] {
        assert_eq!(user["transcription_banner"], true, "{user}");
        let other = other["livekit_identity"].as_str().unwrap();
        let captions: Vec<String> = user["captions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["identity"] == other)
            .map(|c| c["text"].as_str().unwrap().to_lowercase())
            .collect();
        assert!(
            captions.iter().any(|c| c.contains(said)),
            "{} sees no caption of {other} saying {said:?}: {captions:?}",
            user["identity"]
        );
    }

    // The room saw both of them in the call.
    let attended = alice
        .timeline(&room)
        .await
        .into_iter()
        .filter(|e| e["type"] == "org.salon.call")
        .flat_map(|e| {
            e["content"]["participants"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect::<Vec<_>>();
    for user in [&alice.user_id, &bob.user_id] {
        assert!(
            attended.iter().any(|p| p == user.as_str()),
            "{user} never showed in org.salon.call: {attended:?}"
        );
    }
}
