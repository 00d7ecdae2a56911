//! What the bot does in a room: accept invites, answer commands, and start,
//! report and end calls.
//!
//! Decisions come from the pure parts (`commands`, `calls`, `power`); this file
//! performs them against the homeserver and the store. Every reply carries a
//! structured `org.salon.reply` field next to its human `body`, so that other
//! programs can read outcomes without scraping text.

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::app::{App, now_millis};
use crate::calls::{self, Call, EndReason, Refusal, StartOutcome, StartRequest};
use crate::commands::{self, Command};
use crate::matrix::MatrixError;
use crate::metrics::Metrics;
use crate::power::PowerLevels;
use crate::store::QueuedEvent;

/// The call-state event type, and the widget events Element reads.
pub const CALL_EVENT: &str = "org.salon.call";
pub const WIDGET_EVENT: &str = "im.vector.modular.widgets";
pub const LAYOUT_EVENT: &str = "io.element.widgets.layout";

/// The fields of an event the bot looks at.
#[derive(Debug, Deserialize)]
pub(crate) struct Event {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) sender: OwnedUserId,
    pub(crate) event_id: OwnedEventId,
    #[serde(default)]
    pub(crate) state_key: Option<String>,
    #[serde(default)]
    pub(crate) content: Value,
}

/// Why handling an event failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl HandleError {
    /// Worth retrying later (the homeserver is down or overloaded).
    pub fn is_transient(&self) -> bool {
        matches!(self, HandleError::Matrix(e) if e.is_transient())
    }
}

/// A transaction id for a message caused by `event`: stable across replays, so
/// the homeserver drops a second copy after a crash.
pub(crate) fn txn_for(event_id: &OwnedEventId, what: &str) -> String {
    let hex: String = event_id
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("salon.{what}.{hex}")
}

pub(crate) fn format_time(ms: u64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "an unknown time".to_owned())
}

pub(crate) fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl App {
    /// Handles one event from the room's queue.
    pub async fn handle_event(&self, queued: &QueuedEvent) -> Result<(), HandleError> {
        // An encrypted event is handled as its decrypted self (crypto.rs).
        let decrypted;
        let queued = match self.matrix.reveal(queued).await? {
            crate::crypto::Revealed::Plain => queued,
            crate::crypto::Revealed::Decrypted(event) => {
                decrypted = event;
                &decrypted
            }
            crate::crypto::Revealed::Undecryptable => return Ok(()),
        };
        let event: Event = match serde_json::from_str(&queued.json) {
            Ok(e) => e,
            Err(e) => {
                warn!(event_id = %queued.event_id, error = %e, "ignoring an event we cannot read");
                return Ok(());
            }
        };
        let bot = self.matrix.bot_user_id();
        if event.sender == bot || event.sender == self.sender_user_id {
            return Ok(());
        }
        match event.kind.as_str() {
            "m.room.member"
                if event.state_key.as_deref() == Some(bot.as_str())
                    && event.content.get("membership").and_then(Value::as_str)
                        == Some("invite") =>
            {
                self.on_invite(&queued.room_id, &event).await?;
            }
            "m.room.message" => {
                let msgtype = event.content.get("msgtype").and_then(Value::as_str);
                let body = event.content.get("body").and_then(Value::as_str);
                if let (Some("m.text"), Some(body)) = (msgtype, body)
                    && let Some(command) = commands::parse(body)
                {
                    self.metrics.command(command.name());
                    info!(command = command.name(), sender = %event.sender, event_id = %event.event_id, "command");
                    self.on_command(&queued.room_id, &event, command).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn on_invite(&self, room_id: &OwnedRoomId, event: &Event) -> Result<(), HandleError> {
        if !may_autojoin(&self.config.bot, &event.sender) {
            info!(inviter = %event.sender, "invite declined: inviter not in the auto-join lists");
            self.matrix
                .leave(
                    room_id,
                    "Salon only joins rooms for invited servers or users",
                )
                .await?;
            return Ok(());
        }
        self.matrix.join(room_id).await?;
        info!(inviter = %event.sender, "joined the room");
        let body = "Hello! I am Visio, the call bot. Type `!visio start` to start a call in this room, or `!visio help` for the list of commands.";
        let content = json!({
            "msgtype": "m.notice",
            "body": body,
            "org.salon.reply": { "command": "invite", "outcome": "joined" },
        });
        self.matrix
            .send_message(room_id, &txn_for(&event.event_id, "hello"), &content)
            .await?;
        Ok(())
    }

    pub(crate) async fn reply(
        &self,
        room_id: &RoomId,
        to: &Event,
        body: &str,
        html: Option<String>,
        structured: Value,
    ) -> Result<OwnedEventId, HandleError> {
        let mut content = json!({
            "msgtype": "m.notice",
            "body": body,
            "m.relates_to": { "m.in_reply_to": { "event_id": to.event_id } },
            "org.salon.reply": structured,
        });
        if let Some(html) = html {
            content["format"] = json!("org.matrix.custom.html");
            content["formatted_body"] = json!(html);
        }
        Ok(self
            .matrix
            .send_message(room_id, &txn_for(&to.event_id, "reply"), &content)
            .await?)
    }

    async fn on_command(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
        command: Command,
    ) -> Result<(), HandleError> {
        match command {
            Command::Help => {
                self.reply(
                    room_id,
                    event,
                    commands::help_text(),
                    None,
                    json!({ "command": "help", "outcome": "ok" }),
                )
                .await?;
            }
            Command::Unknown(word) => {
                let body = format!("I don't know `{word}`. {}", commands::help_text());
                self.reply(
                    room_id,
                    event,
                    &body,
                    None,
                    json!({ "command": "unknown", "outcome": "unknown_command" }),
                )
                .await?;
            }
            Command::Start => self.start_call(room_id, event).await?,
            Command::Stop => self.stop_call(room_id, event).await?,
            Command::Status => self.report_status(room_id, event).await?,
            Command::Transcribe(on) => self.transcribe_command(room_id, event, on).await?,
            Command::Settings(setting) => self.settings_command(room_id, event, setting).await?,
            Command::Minutes => self.minutes_command(room_id, event).await?,
        }
        Ok(())
    }

    pub(crate) async fn power_levels(&self, room_id: &RoomId) -> Result<PowerLevels, HandleError> {
        let levels = self
            .matrix
            .state(room_id, "m.room.power_levels", "")
            .await?;
        let create = self
            .matrix
            .state_event(room_id, "m.room.create", "")
            .await?;
        Ok(PowerLevels::from_state(levels.as_ref(), create.as_ref()))
    }

    /// "promote me" text, if the bot cannot send the call's state events.
    fn missing_bot_power(&self, power: &PowerLevels) -> Option<i64> {
        let bot = self.matrix.bot_user_id();
        let have = power.user_level(bot);
        let need = [CALL_EVENT, WIDGET_EVENT, LAYOUT_EVENT]
            .iter()
            .map(|t| power.state_level(t))
            .max()
            .unwrap_or(50);
        (have < need).then_some(need)
    }

    async fn refuse_for_bot_power(
        &self,
        room_id: &RoomId,
        event: &Event,
        command: &str,
        need: i64,
    ) -> Result<(), HandleError> {
        let role = if need >= 100 {
            "Admin"
        } else if need >= 50 {
            "Moderator"
        } else {
            "a higher role"
        };
        let body = format!(
            "I can't show the call in this room: promote me to {role} (power level {need}) so that I can set the call and widget state, then try again."
        );
        self.reply(
            room_id,
            event,
            &body,
            None,
            json!({ "command": command, "outcome": "bot_lacks_power", "required_power_level": need }),
        )
        .await?;
        Ok(())
    }

    pub(crate) fn call_state_content(&self, call: &Call) -> Value {
        json!({
            "call_id": call.id,
            "state": call.state,
            "url": self.config.call_url(&call.id),
            "started_by": call.started_by,
            "started_at": call.started_at,
            "ended_at": call.ended_at,
            "participants": call.participants.iter().collect::<Vec<_>>(),
            "minutes_event_id": call.minutes_event_id,
            "transcription": call.transcribing,
        })
    }

    fn widget_id(call: &Call) -> String {
        format!("salon_{}", call.id)
    }

    /// Sets `org.salon.call`, the widget and its layout for a live call.
    async fn publish_call(&self, call: &Call) -> Result<(), MatrixError> {
        let room_id = &call.room_id;
        self.matrix
            .send_state(room_id, CALL_EVENT, "", &self.call_state_content(call))
            .await?;
        let widget_id = Self::widget_id(call);
        let widget = json!({
            "type": "m.custom",
            "url": format!("{}?room=$matrix_room_id&user=$matrix_user_id", self.config.call_url(&call.id)),
            "name": "Visio",
            "data": {},
            "waitForIframeLoad": true,
            "id": widget_id,
            "creatorUserId": self.matrix.bot_user_id(),
        });
        self.matrix
            .send_state(room_id, WIDGET_EVENT, &widget_id, &widget)
            .await?;
        let layout = json!({
            "widgets": { widget_id: { "container": "top", "index": 0, "width": 100, "height": 50 } }
        });
        self.matrix
            .send_state(room_id, LAYOUT_EVENT, "", &layout)
            .await?;
        Ok(())
    }

    /// Marks the call ended in the room and removes the widget.
    async fn unpublish_call(&self, call: &Call) -> Result<(), MatrixError> {
        let room_id = &call.room_id;
        self.matrix
            .send_state(room_id, CALL_EVENT, "", &self.call_state_content(call))
            .await?;
        self.matrix
            .send_state(room_id, WIDGET_EVENT, &Self::widget_id(call), &json!({}))
            .await?;
        self.matrix
            .send_state(room_id, LAYOUT_EVENT, "", &json!({}))
            .await?;
        Ok(())
    }

    fn started_reply(&self, call: &Call, outcome: &str) -> (String, String, Value) {
        let url = self.config.call_url(&call.id);
        let (body, html) = if outcome == "started" {
            (
                format!("📞 Call started. Join here: {url}"),
                format!(
                    "📞 Call started. <a href=\"{0}\">Join the call</a>: {0}",
                    html_escape(&url)
                ),
            )
        } else {
            let intro = format!(
                "A call is already live in this room (started by {} at {}).",
                call.started_by,
                format_time(call.started_at)
            );
            (
                format!("{intro} Join here: {url}"),
                format!(
                    "{} <a href=\"{1}\">Join the call</a>: {1}",
                    html_escape(&intro),
                    html_escape(&url)
                ),
            )
        };
        let structured = json!({
            "command": "start",
            "outcome": outcome,
            "call_id": call.id,
            "url": url,
        });
        (body, html, structured)
    }

    async fn start_call(&self, room_id: &OwnedRoomId, event: &Event) -> Result<(), HandleError> {
        let current = self.store.room_call(room_id)?;
        // A replay of the very command that started the live call (after a
        // crash mid-way): finish announcing it instead of calling it a duplicate.
        if let Some(call) = current
            .as_ref()
            .filter(|c| c.is_active() && c.started_by_event.as_ref() == Some(&event.event_id))
        {
            self.publish_call(call).await?;
            let (body, html, structured) = self.started_reply(call, "started");
            self.reply(room_id, event, &body, Some(html), structured)
                .await?;
            return Ok(());
        }
        let power = self.power_levels(room_id).await?;
        let outcome = calls::start(
            current.as_ref(),
            StartRequest {
                room_id,
                by: &event.sender,
                by_power: power.user_level(&event.sender),
                event: Some(event.event_id.clone()),
                now: now_millis(),
            },
            new_call_id,
            &self.config.permissions,
        );
        match outcome {
            Err(refusal) => {
                self.refuse(room_id, event, "start", &refusal).await?;
            }
            Ok(StartOutcome::AlreadyLive(call)) => {
                let (body, html, structured) = self.started_reply(&call, "already_live");
                self.reply(room_id, event, &body, Some(html), structured)
                    .await?;
            }
            Ok(StartOutcome::Started(mut call)) => {
                if let Some(need) = self.missing_bot_power(&power) {
                    return self
                        .refuse_for_bot_power(room_id, event, "start", need)
                        .await;
                }
                self.store.save_call(&call).await?;
                if let Err(e) = self.publish_call(&call).await {
                    // Undo: a call nobody can see must not block the next start.
                    call.end(now_millis(), EndReason::Failed, None);
                    self.store.save_call(&call).await?;
                    if e.errcode() == Some("M_FORBIDDEN") {
                        return self.refuse_for_bot_power(room_id, event, "start", 50).await;
                    }
                    return Err(e.into());
                }
                Metrics::inc(&self.metrics.calls_started);
                self.refresh_live_calls();
                info!(call_id = %call.id, "call started");
                let (body, html, structured) = self.started_reply(&call, "started");
                self.reply(room_id, event, &body, Some(html), structured)
                    .await?;
                self.auto_transcribe(&mut call).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn refuse(
        &self,
        room_id: &RoomId,
        event: &Event,
        command: &str,
        refusal: &Refusal,
    ) -> Result<(), HandleError> {
        let outcome = match refusal {
            Refusal::NoLiveCall => "no_live_call",
            Refusal::CannotStart { .. }
            | Refusal::CannotStop { .. }
            | Refusal::CannotTranscribe { .. } => "refused",
            Refusal::TranscriptionDisabled => "disabled",
        };
        let body = match refusal {
            Refusal::NoLiveCall => {
                "There is no live call in this room. Type `!visio start` to start one.".to_owned()
            }
            other => format!("Sorry, {other}."),
        };
        self.reply(
            room_id,
            event,
            &body,
            None,
            json!({ "command": command, "outcome": outcome, "reason": refusal.to_string() }),
        )
        .await?;
        Ok(())
    }

    async fn stop_call(&self, room_id: &OwnedRoomId, event: &Event) -> Result<(), HandleError> {
        let current = self.store.room_call(room_id)?;
        // A replay of the very command that ended the call (the homeserver
        // failed mid-way): finish clearing the room and answer as the first time.
        let replayed = current
            .as_ref()
            .filter(|c| c.ended_by_event.as_ref() == Some(&event.event_id))
            .cloned();
        let call = match replayed {
            Some(call) => call,
            None => {
                let by_power = match current.as_ref() {
                    Some(call) if call.is_active() && call.started_by != event.sender => {
                        self.power_levels(room_id).await?.user_level(&event.sender)
                    }
                    _ => 0,
                };
                match calls::may_stop(
                    current.as_ref(),
                    &event.sender,
                    by_power,
                    &self.config.permissions,
                ) {
                    Ok(call) => {
                        let mut call = call.clone();
                        call.ended_by_event = Some(event.event_id.clone());
                        call
                    }
                    Err(refusal) => return self.refuse(room_id, event, "stop", &refusal).await,
                }
            }
        };
        let ended = self
            .end_call(call, EndReason::Stopped, Some(&event.sender))
            .await?;
        let duration = ended.duration(now_millis());
        let body = format!("Call ended after {}.", calls::human_duration(duration));
        self.reply(
            room_id,
            event,
            &body,
            None,
            json!({
                "command": "stop",
                "outcome": "ended",
                "call_id": ended.id,
                "duration_ms": duration.as_millis() as u64,
            }),
        )
        .await?;
        Ok(())
    }

    /// Ends a call: store first (so a crash cannot resurrect it), then the room.
    pub(crate) async fn end_call(
        &self,
        mut call: Call,
        reason: EndReason,
        by: Option<&UserId>,
    ) -> Result<Call, HandleError> {
        if call.end(now_millis(), reason, by) {
            self.store.save_call(&call).await?;
            self.transcriber.stop(&call.id);
            self.sfu.close_room(&call.id).await;
            Metrics::inc(&self.metrics.calls_ended);
            self.refresh_live_calls();
            info!(call_id = %call.id, ?reason, "call ended");
        }
        if let Err(e) = self.unpublish_call(&call).await {
            if e.errcode() == Some("M_FORBIDDEN") {
                warn!(call_id = %call.id, "cannot clear the call state: the bot lost its power level");
            } else {
                return Err(e.into());
            }
        }
        if call.minutes_owed && self.config.minutes.enabled {
            self.minutes.owe(&call.id);
        } else {
            // nobody waits for the transcript: let the session go once it drains
            let (transcriber, call_id) = (self.transcriber.clone(), call.id.clone());
            tokio::spawn(async move {
                transcriber
                    .drain(&call_id, std::time::Duration::from_secs(90))
                    .await
            });
        }
        Ok(call)
    }

    async fn report_status(&self, room_id: &OwnedRoomId, event: &Event) -> Result<(), HandleError> {
        let current = self.store.room_call(room_id)?;
        let now = now_millis();
        let (body, structured) = match current {
            Some(call) if call.is_active() => {
                let people = if call.participants.is_empty() {
                    "Nobody has joined yet.".to_owned()
                } else {
                    format!(
                        "In the call: {}.",
                        call.participants
                            .iter()
                            .map(|u| u.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let transcription = if call.transcribing {
                    " Transcription is on."
                } else {
                    ""
                };
                (
                    format!(
                        "A call is live since {} ({}), started by {}. {people}{transcription} Join here: {}",
                        format_time(call.started_at),
                        calls::human_duration(call.duration(now)),
                        call.started_by,
                        self.config.call_url(&call.id)
                    ),
                    json!({
                        "command": "status",
                        "outcome": "live",
                        "call_id": call.id,
                        "started_by": call.started_by,
                        "started_at": call.started_at,
                        "participants": call.participants,
                        "url": self.config.call_url(&call.id),
                        "transcription": call.transcribing,
                    }),
                )
            }
            last => {
                let tail = match &last {
                    Some(call) => format!(
                        " The last call ended at {} after {}.",
                        format_time(call.ended_at.unwrap_or(call.started_at)),
                        calls::human_duration(call.duration(now))
                    ),
                    None => String::new(),
                };
                (
                    format!(
                        "No call is live in this room.{tail} Type `!visio start` to start one."
                    ),
                    json!({
                        "command": "status",
                        "outcome": "idle",
                        "last_call_id": last.map(|c| c.id),
                    }),
                )
            }
        };
        self.reply(room_id, event, &body, None, structured).await?;
        Ok(())
    }

    /// Records a participant joining or leaving the call's media session, and
    /// shows who is in the call in the room state.
    pub async fn on_participant(
        &self,
        call_id: &str,
        user: &UserId,
        joined: bool,
    ) -> Result<(), HandleError> {
        let Some(mut call) = self.store.call(call_id)? else {
            return Ok(());
        };
        let changed = if joined {
            call.join(user)
        } else {
            call.leave(user, now_millis())
        };
        if !changed {
            return Ok(());
        }
        self.store.save_call(&call).await?;
        info!(call_id, user = %user, joined, participants = call.participants.len(), "participants changed");
        self.matrix
            .send_state(
                &call.room_id,
                CALL_EVENT,
                "",
                &self.call_state_content(&call),
            )
            .await?;
        Ok(())
    }

    /// Ends the room's call if its grace period or unjoined timeout has passed.
    pub async fn check_timeout(&self, room_id: &OwnedRoomId) -> Result<(), HandleError> {
        let Some(call) = self.store.room_call(room_id)? else {
            return Ok(());
        };
        let calls_cfg = self.config.calls;
        if let Some(reason) = call.timeout_due(
            now_millis(),
            calls_cfg.empty_grace,
            calls_cfg.unjoined_timeout,
        ) {
            let ended = self.end_call(call, reason, None).await?;
            let why = match reason {
                EndReason::Empty => "everyone left",
                _ => "nobody joined",
            };
            let content = json!({
                "msgtype": "m.notice",
                "body": format!("Call ended ({why}) after {}.", calls::human_duration(ended.duration(now_millis()))),
                "org.salon.reply": { "command": "timeout", "outcome": "ended", "call_id": ended.id },
            });
            self.matrix
                .send_message(room_id, &format!("salon.timeout.{}", ended.id), &content)
                .await?;
        }
        Ok(())
    }
}

/// Whether the bot accepts an invite from `inviter`: everyone when both lists
/// are empty, else only the listed users and servers.
fn may_autojoin(bot: &crate::config::BotConfig, inviter: &UserId) -> bool {
    if bot.autojoin_servers.is_empty() && bot.autojoin_users.is_empty() {
        return true;
    }
    bot.autojoin_users.iter().any(|u| u == inviter)
        || bot
            .autojoin_servers
            .iter()
            .any(|s| s.as_str() == inviter.server_name().as_str())
}

/// A fresh, URL-safe call id.
fn new_call_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::owned_event_id;

    #[test]
    fn reply_txn_ids_are_stable_per_event() {
        let a = txn_for(&owned_event_id!("$abc/def+g"), "reply");
        assert_eq!(a, txn_for(&owned_event_id!("$abc/def+g"), "reply"));
        assert_ne!(a, txn_for(&owned_event_id!("$abc/def+h"), "reply"));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'));
    }

    #[test]
    fn call_ids_are_url_safe_and_distinct() {
        let (a, b) = (new_call_id(), new_call_id());
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn autojoin_lists_limit_who_may_invite_the_bot() {
        use crate::config::BotConfig;
        use ruma::{owned_server_name, owned_user_id, user_id};
        let open = BotConfig {
            displayname: "Visio".into(),
            autojoin_servers: vec![],
            autojoin_users: vec![],
        };
        assert!(may_autojoin(&open, user_id!("@anyone:elsewhere.org")));
        let limited = BotConfig {
            autojoin_servers: vec![owned_server_name!("agents.gouv.fr")],
            autojoin_users: vec![owned_user_id!("@partner:example.org")],
            ..open
        };
        assert!(may_autojoin(&limited, user_id!("@alice:agents.gouv.fr")));
        assert!(may_autojoin(&limited, user_id!("@partner:example.org")));
        assert!(!may_autojoin(&limited, user_id!("@eve:example.org")));
        assert!(!may_autojoin(
            &limited,
            user_id!("@mallory:evil.agents.gouv.fr")
        ));
    }

    #[test]
    fn times_are_formatted_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
    }
}
