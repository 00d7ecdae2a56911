//! Guests without a Matrix account, on a real Synapse with Whisper, on the
//! embedded SFU and on a LiveKit cluster alike: a moderator makes a guest link, the guest knocks and waits
//! in the lobby (no token, so no media and no data), the room is told, a
//! member without the power level cannot admit, the moderator admits, the
//! guest joins with a webrtc-crate LiveKit client, is heard and transcribed
//! under "Name (guest, invited by @mxid)", and appears so in the minutes.
//! A second guest is denied and never gets a token; a revoked link, a
//! forged one and a wrong secret are refused.

mod support;

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use support::backends::{Backend, bridge_on};
use support::{Env, join_call, room_with_bot, speak, talk};

const WAIT: Duration = support::WAIT;
const GUEST_SAYS: &str = "The workers need two more weeks to paint the walls.";

/// A call to the lobby API: status and JSON body.
async fn lobby(
    env: &Env,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    secret: Option<&str>,
) -> (u16, Value) {
    let mut request = env.http.request(
        method,
        format!("http://127.0.0.1:{}/_salon/v1/guests/{path}", env.web_port),
    );
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

backend_tests!(
    a_guest_waits_in_the_lobby_is_admitted_and_transcribed_under_their_label,
    guest_journey
);

async fn guest_journey(backend: Backend) {
    let Some((env, _cluster)) = bridge_on(backend, |cfg| {
        cfg.push_str("\n[calls]\nempty_grace_seconds = 2\n")
    })
    .await
    else {
        return;
    };
    let alice = env.user("alice").await; // the room's creator: a moderator
    let bob = env.user("bob").await;
    let room = room_with_bot(&env, &alice, &[&bob]).await;
    let started = alice.command(&room, "!visio start").await;
    let call_id = started["org.salon.reply"]["call_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Only moderators make guest links.
    let refused = bob.command(&room, "!visio guest").await;
    assert_eq!(
        refused["org.salon.reply"]["outcome"], "refused",
        "{refused}"
    );
    let made = alice.command(&room, "!visio guest Mairie de Lyon").await;
    assert_eq!(made["org.salon.reply"]["outcome"], "created", "{made}");
    let url = made["org.salon.reply"]["url"].as_str().unwrap().to_owned();
    assert!(made["body"].as_str().unwrap().contains(&url), "{made}");
    let token = url.rsplit('/').next().unwrap().to_owned();
    assert!(url.contains("/guest/"), "{url}");
    let page = env.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200, "the guest link opens a page");

    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let (status, info) = lobby(&env, get.clone(), &token, None, None).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["call_id"], call_id.as_str());
    assert_eq!(info["invited_by"], alice.user_id.as_str());
    assert_eq!(info["name_hint"], "Mairie de Lyon");
    // A forged link, of the right shape or not.
    let forged = "A".repeat(43);
    for bad in [forged.as_str(), "nope", "..%2F..%2Fetc"] {
        let (status, body) = lobby(&env, get.clone(), bad, None, None).await;
        assert_eq!(status, 401, "{bad}: {body}");
        assert_eq!(body["errcode"], "M_UNKNOWN_TOKEN");
    }

    // The guest knocks: a name is required, markup stays text.
    let knock_path = format!("{token}/knock");
    let (status, body) = lobby(
        &env,
        post.clone(),
        &knock_path,
        Some(json!({"name": "x"})),
        None,
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_BAD_JSON")),
        "{body}"
    );
    let (status, knocked) = lobby(
        &env,
        post.clone(),
        &knock_path,
        Some(json!({"display_name": "  Ada <b>Lovelace</b> "})),
        None,
    )
    .await;
    assert_eq!(status, 202, "{knocked}");
    assert_eq!(knocked["state"], "waiting");
    assert!(knocked.get("token").is_none(), "no token before admission");
    let guest = knocked["guest"].as_str().unwrap().to_owned();
    let secret = knocked["secret"].as_str().unwrap().to_owned();
    assert!(guest.ends_with(":guests.salon.invalid"), "{guest}");
    let label = format!("Ada <b>Lovelace</b> (guest, invited by {})", alice.user_id);
    // The room is told who waits, and how to let them in.
    let waiting = alice
        .wait_for("the lobby notice", WAIT, || async {
            alice.timeline(&room).await.into_iter().find(|e| {
                e["content"]["org.salon.lobby"]["guest"] == guest.as_str()
                    && e["content"]["org.salon.lobby"]["state"] == "waiting"
            })
        })
        .await;
    let body = waiting["content"]["body"].as_str().unwrap();
    assert!(
        body.contains(&label) && body.contains("!visio admit 1"),
        "{body}"
    );
    // Polling needs the knock's secret; waiting means no token.
    let state_path = format!("{token}/knock/{guest}");
    let (status, _) = lobby(&env, get.clone(), &state_path, None, Some(&forged)).await;
    assert_eq!(status, 401);
    let (status, state) = lobby(&env, get.clone(), &state_path, None, Some(&secret)).await;
    assert_eq!(
        (status, &state["state"]),
        (200, &json!("waiting")),
        "{state}"
    );
    assert!(state.get("token").is_none());

    let status = bob.command(&room, "!visio status").await;
    assert_eq!(status["org.salon.reply"]["lobby"], 1, "{status}");
    assert!(
        status["body"].as_str().unwrap().contains(&label),
        "{status}"
    );
    // A member cannot admit; the moderator can.
    let refused = bob.command(&room, "!visio admit").await;
    assert_eq!(
        refused["org.salon.reply"]["outcome"], "refused",
        "{refused}"
    );
    let on = alice.command(&room, "!visio transcribe on").await;
    assert_eq!(on["org.salon.reply"]["outcome"], "on", "{on}");
    let alice_client = join_call(&env, &alice, &call_id, "Alice").await;
    let admitted = alice.command(&room, "!visio admit").await;
    assert_eq!(
        admitted["org.salon.reply"]["outcome"], "admitted",
        "{admitted}"
    );
    assert_eq!(admitted["org.salon.lobby"]["guest"], guest.as_str());
    let (status, state) = lobby(&env, get.clone(), &state_path, None, Some(&secret)).await;
    assert_eq!(
        (status, &state["state"]),
        (200, &json!("admitted")),
        "{state}"
    );
    let grant = claims(state["token"].as_str().unwrap());
    assert_eq!(grant["sub"], guest.as_str());
    assert_eq!(grant["name"], label.as_str());

    // The guest joins, is heard by alice and transcribed under their label.
    let guest_client = salon_sfu::testing::TestClient::connect(
        state["url"].as_str().unwrap(),
        state["token"].as_str().unwrap(),
    )
    .await
    .expect("the admitted guest joins");
    let mic = guest_client.publish(true).await.unwrap();
    let speech = speak(env.dir.path(), "guest", GUEST_SAYS, "en-gb");
    let talking = tokio::spawn(async move {
        talk(&mic, vec![speech.clone(), speech]).await;
        mic
    });
    let mut heard = alice_client
        .next_track(WAIT)
        .await
        .expect("the guest's track");
    let mut packets = 0;
    while packets < 50 {
        if tokio::time::timeout(WAIT, heard.packets.recv())
            .await
            .ok()
            .flatten()
            .is_none()
        {
            break;
        }
        packets += 1;
    }
    assert_eq!(packets, 50, "alice hears the guest");
    let notice = alice
        .wait_for(
            "the guest's words in the transcript",
            Duration::from_secs(120),
            || async {
                alice.timeline(&room).await.into_iter().find(|e| {
                    let t = &e["content"]["org.salon.transcript"];
                    t["speaker"] == guest.as_str()
                        && t["text"].as_str().is_some_and(|text| {
                            let text = text.to_lowercase();
                            text.contains("paint") && text.contains("walls")
                        })
                })
            },
        )
        .await;
    let body = notice["content"]["body"].as_str().unwrap();
    assert!(body.starts_with(&format!("{label}: ")), "{body}");
    let html = notice["content"]["formatted_body"].as_str().unwrap();
    assert!(
        !html.contains("<b>Lovelace</b>") && html.contains("&lt;b&gt;"),
        "{html}"
    );
    assert!(
        !html.contains("matrix.to"),
        "a guest has no Matrix account: {html}"
    );
    drop(talking);

    // A second guest is denied: never a token.
    let (status, second) = lobby(
        &env,
        post.clone(),
        &knock_path,
        Some(json!({"display_name": "Mallory"})),
        None,
    )
    .await;
    assert_eq!(status, 202, "{second}");
    // Denied from the moderator's call page (the lobby's data message names
    // the guest; the page sends back its id).
    let deny = env
        .http
        .post(format!(
            "http://127.0.0.1:{}/_salon/v1/calls/{call_id}/moderate",
            env.web_port
        ))
        .json(&json!({"openid_token": alice.openid_token().await, "action": "deny", "guest": second["guest"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(deny.status(), 200);
    let denied: Value = deny.json().await.unwrap();
    assert_eq!(denied["outcome"], "denied", "{denied}");
    let (status, state) = lobby(
        &env,
        get.clone(),
        &format!("{token}/knock/{}", second["guest"].as_str().unwrap()),
        None,
        second["secret"].as_str(),
    )
    .await;
    assert_eq!(
        (status, &state["state"]),
        (200, &json!("denied")),
        "{state}"
    );
    assert!(state.get("token").is_none());
    let nobody = alice.command(&room, "!visio admit").await;
    assert_eq!(
        nobody["org.salon.reply"]["outcome"], "no_such_guest",
        "{nobody}"
    );

    // Revoked: the link opens nothing any more.
    let revoked = alice.command(&room, "!visio guest revoke").await;
    assert_eq!(revoked["org.salon.reply"]["revoked"], 1, "{revoked}");
    let (status, body) = lobby(&env, get.clone(), &token, None, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    let (status, _) = lobby(
        &env,
        post.clone(),
        &knock_path,
        Some(json!({"display_name": "Late"})),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // The minutes name the guest as such.
    guest_client.leave().await;
    alice_client.leave().await;
    let minutes = alice
        .wait_for_minutes(&room, &call_id, Duration::from_secs(120))
        .await;
    let participants = &minutes["content"]["org.salon.minutes"]["participants"];
    let listed = participants
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mxid"] == guest.as_str())
        .unwrap_or_else(|| panic!("the guest in the minutes: {participants}"));
    assert_eq!(listed["display_name"], label.as_str());
    // Neither the link's token nor a knock's secret is ever logged.
    let log = std::fs::read_to_string(env.dir.path().join("bridge.log")).unwrap();
    assert!(
        !log.contains(&token),
        "the guest link's token is in the log"
    );
    assert!(!log.contains(&secret), "a lobby secret is in the log");
}
