//! What the bot does in a room: accept invites, answer commands, and start,
//! report and end calls.
//!
//! Decisions come from the pure parts (`commands`, `calls`, `power`); this file
//! performs them against the homeserver and the store. Every reply carries a
//! structured `org.salon.reply` field next to its human `body`, so that other
//! programs can read outcomes without scraping text.

use ruma::{OwnedEventId, OwnedRoomId, RoomId, UserId};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::calls::{self, Call, EndReason, Refusal, RoomStateWrite, StartOutcome, StartRequest};
use crate::clock::now_millis;
use crate::commands::{self, Command};
use crate::matrix::{MatrixError, txn_for};
use crate::metrics::Metrics;
use crate::power::{self, PowerLevels};
use crate::store::{EventKind, QueuedEvent};
use crate::worker::Bridge;
use salon_minutes::render::html as escape_html;

/// The call-state event type, and the widget events Element reads.
pub const CALL_EVENT: &str = "org.salon.call";
pub const WIDGET_EVENT: &str = "im.vector.modular.widgets";
pub const LAYOUT_EVENT: &str = "io.element.widgets.layout";
/// Every state event type the bot writes for a call.
const CALL_STATE_EVENTS: [&str; 3] = [CALL_EVENT, WIDGET_EVENT, LAYOUT_EVENT];

/// A write of a call's room state that failed, and whether part of it went
/// through first.
#[derive(Debug)]
struct StateWriteError {
    wrote_some: bool,
    error: MatrixError,
}

fn is_forbidden(error: &MatrixError) -> bool {
    error.errcode() == Some("M_FORBIDDEN")
}

/// What the start reply says when the room cannot show the call: once, in
/// that reply, never again on later commands.
fn hidden_call_remark(need: i64) -> String {
    format!(
        "I can't show the call in this room's header yet: I need power level {need} ({}) to set the call and widget state. Once I have it, the next `!visio` command puts it there.",
        power::role_name(need)
    )
}

/// `room_state` in the structured replies about a live call.
fn room_state_field(call: &Call) -> &'static str {
    if call.hidden_from_room() {
        "missing_power"
    } else {
        "shown"
    }
}

/// An event the bot handles: typed once where it came in (`store/event.rs`).
pub(crate) type Event = QueuedEvent;

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

pub(crate) fn format_time(ms: u64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "an unknown time".to_owned())
}

/// The reply to `!visio start`: body, HTML and `org.salon.reply`. `hidden`:
/// the level the bot needs to show a call just started in the room's state,
/// said once, in this reply.
fn start_reply(
    call: &Call,
    url: &str,
    outcome: &str,
    hidden: Option<i64>,
) -> (String, String, Value) {
    let (body, html) = if outcome == "started" {
        let (mut body, mut html) = (
            format!("📞 Call started. Join here: {url}"),
            format!(
                "📞 Call started. <a href=\"{0}\">Join the call</a>: {0}",
                escape_html(url)
            ),
        );
        if let Some(need) = hidden {
            let remark = hidden_call_remark(need);
            body = format!("{body}\n{remark}");
            html = format!("{html}<br>{}", escape_html(&remark));
        }
        (body, html)
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
                escape_html(&intro),
                escape_html(url)
            ),
        )
    };
    let mut structured = json!({
        "command": "start",
        "outcome": outcome,
        "call_id": call.id,
        "url": url,
        "room_state": room_state_field(call),
    });
    if let Some(need) = hidden {
        structured["required_power_level"] = json!(need);
    }
    (body, html, structured)
}

impl Bridge {
    /// Handles one event from the room's queue.
    pub async fn handle_event(&self, queued: &QueuedEvent) -> Result<(), HandleError> {
        // An encrypted event is handled as its decrypted self (matrix/e2ee).
        let decrypted;
        let event = match self.matrix.reveal(queued).await? {
            crate::matrix::Revealed::Plain => queued,
            crate::matrix::Revealed::Decrypted(event) => {
                decrypted = event;
                &decrypted
            }
            crate::matrix::Revealed::Undecryptable => return Ok(()),
        };
        let bot = self.matrix.bot_user_id();
        if event.sender == bot || event.sender == self.sender_user_id {
            return Ok(());
        }
        match &event.kind {
            EventKind::Member {
                state_key,
                membership,
            } if state_key == bot.as_str() && membership == "invite" => {
                self.on_invite(&event.room_id, event).await?;
            }
            EventKind::Text { body } => {
                if let Some(command) = commands::parse(body) {
                    self.metrics.command(command.name());
                    info!(command = command.name(), sender = %event.sender, event_id = %event.event_id, "command");
                    self.on_command(&event.room_id, event, command).await?;
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
        // Whatever the command, first write what the room's state still owes
        // its call (the bot may have been promoted since it could not).
        if let Err(e) = self.catch_up_room_state(room_id).await {
            if e.is_transient() {
                return Err(e);
            }
            warn!(error = %e, "cannot bring the room's state up to date with its call");
        }
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

    /// The level the bot lacks to write a call's room state, if any.
    fn bot_lacks_power(&self, power: &PowerLevels) -> Option<i64> {
        power.lacks_for_state(self.matrix.bot_user_id(), &CALL_STATE_EVENTS)
    }

    /// Writes what the room's state still owes its current call, if the bot
    /// may now. Cheap when nothing is owed: only the store is read.
    async fn catch_up_room_state(&self, room_id: &RoomId) -> Result<(), HandleError> {
        let Some(mut call) = self.store.room_call(room_id)? else {
            return Ok(());
        };
        let owed = call.room_state_owed();
        if owed == RoomStateWrite::Nothing {
            return Ok(());
        }
        if let Some(need) = self.bot_lacks_power(&self.power_levels(room_id).await?) {
            debug!(call_id = %call.id, need, "the room's state still lacks the call: the bot is not promoted");
            return Ok(());
        }
        self.write_room_state(&mut call, owed).await?;
        if !call.hidden_from_room() {
            info!(call_id = %call.id, ?owed, "the room's state caught up with the call");
        }
        Ok(())
    }

    /// Writes the call's room state and records how much of it the room now
    /// shows. A refusal (the bot lacks power) is recorded and is not an error:
    /// the call's truth is in the store; other failures are.
    async fn write_room_state(
        &self,
        call: &mut Call,
        write: RoomStateWrite,
    ) -> Result<(), HandleError> {
        let result = match write {
            RoomStateWrite::Nothing => return Ok(()),
            RoomStateWrite::Publish => self.publish_call(call).await,
            RoomStateWrite::Unpublish => self.unpublish_call(call).await,
        };
        match result {
            Ok(()) => {
                if call.room_state_written() {
                    self.store.save_call_only(call).await?;
                }
                Ok(())
            }
            Err(StateWriteError { wrote_some, error }) => {
                if call.room_state_failed(wrote_some) {
                    self.store.save_call_only(call).await?;
                }
                if is_forbidden(&error) {
                    warn!(call_id = %call.id, ?write, "the bot may not set the call's room state; it is written once the bot is promoted");
                    Ok(())
                } else {
                    Err(error.into())
                }
            }
        }
    }

    /// Shows a change of the call (participants, transcription, minutes) in
    /// the room's `org.salon.call`. A call the room has never shown is left
    /// out (once the bot may, the next command publishes it whole), and a
    /// refusal is recorded, never fatal.
    pub(crate) async fn show_call_change(&self, call: &mut Call) -> Result<(), HandleError> {
        if !call.room_shows_changes() {
            return Ok(());
        }
        let content = self.call_state_content(call);
        match self
            .matrix
            .send_state(&call.room_id, CALL_EVENT, "", &content)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_forbidden(&e) => {
                warn!(call_id = %call.id, "the bot may not update the call's room state; it is written once the bot is promoted");
                if call.room_state_failed(false) {
                    self.store.save_call_only(call).await?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sets state events in order; on failure says whether some went through.
    async fn write_states(
        &self,
        room_id: &RoomId,
        events: [(&str, &str, Value); 3],
    ) -> Result<(), StateWriteError> {
        for (i, (kind, key, content)) in events.iter().enumerate() {
            if let Err(error) = self.matrix.send_state(room_id, kind, key, content).await {
                return Err(StateWriteError {
                    wrote_some: i > 0,
                    error,
                });
            }
        }
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
    async fn publish_call(&self, call: &Call) -> Result<(), StateWriteError> {
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
        let layout = json!({
            "widgets": { &widget_id: { "container": "top", "index": 0, "width": 100, "height": 50 } }
        });
        self.write_states(
            &call.room_id,
            [
                (CALL_EVENT, "", self.call_state_content(call)),
                (WIDGET_EVENT, widget_id.as_str(), widget),
                (LAYOUT_EVENT, "", layout),
            ],
        )
        .await
    }

    /// Marks the call ended in the room and removes the widget.
    async fn unpublish_call(&self, call: &Call) -> Result<(), StateWriteError> {
        self.write_states(
            &call.room_id,
            [
                (CALL_EVENT, "", self.call_state_content(call)),
                (WIDGET_EVENT, Self::widget_id(call).as_str(), json!({})),
                (LAYOUT_EVENT, "", json!({})),
            ],
        )
        .await
    }

    async fn start_call(&self, room_id: &OwnedRoomId, event: &Event) -> Result<(), HandleError> {
        let current = self.store.room_call(room_id)?;
        let power = self.power_levels(room_id).await?;
        // The level to name if the room cannot show the call.
        let need = self
            .bot_lacks_power(&power)
            .unwrap_or_else(|| power.state_level_for_all(&CALL_STATE_EVENTS));
        // A replay of the very command that started the live call (after a
        // crash mid-way): the catch-up before this command wrote what the room
        // lacked; answer as the first time instead of calling it a duplicate.
        if let Some(call) = current
            .as_ref()
            .filter(|c| c.is_active() && c.started_by_event.as_ref() == Some(&event.event_id))
        {
            let hidden = call.hidden_from_room().then_some(need);
            let (body, html, structured) =
                start_reply(call, &self.config.call_url(&call.id), "started", hidden);
            self.reply(room_id, event, &body, Some(html), structured)
                .await?;
            return Ok(());
        }
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
                let (body, html, structured) =
                    start_reply(&call, &self.config.call_url(&call.id), "already_live", None);
                self.reply(room_id, event, &body, Some(html), structured)
                    .await?;
            }
            Ok(StartOutcome::Started(mut call)) => {
                // Saved before it is announced; the join link needs no room
                // state, so a bot without power still starts the call.
                self.store.save_call(&call).await?;
                if self.bot_lacks_power(&power).is_none()
                    && let Err(e) = self
                        .write_room_state(&mut call, RoomStateWrite::Publish)
                        .await
                {
                    // Undo: a call whose link nobody got must not block the next start.
                    call.end(now_millis(), EndReason::Failed, None);
                    self.store.save_call(&call).await?;
                    return Err(e);
                }
                Metrics::inc(&self.metrics.calls_started);
                self.refresh_live_calls();
                let hidden = call.hidden_from_room().then_some(need);
                info!(call_id = %call.id, shown_in_room = hidden.is_none(), "call started");
                let (body, html, structured) =
                    start_reply(&call, &self.config.call_url(&call.id), "started", hidden);
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
            self.media.close_call(&call.id).await;
            Metrics::inc(&self.metrics.calls_ended);
            self.refresh_live_calls();
            info!(call_id = %call.id, ?reason, "call ended");
        }
        // a call the room never showed leaves nothing to clear
        let owed = call.room_state_owed();
        self.write_room_state(&mut call, owed).await?;
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
                        "room_state": room_state_field(&call),
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
        self.show_call_change(&mut call).await
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

    fn call() -> Call {
        use ruma::{owned_room_id, owned_user_id};
        let start = calls::start(
            None,
            StartRequest {
                room_id: &owned_room_id!("!r:example.org"),
                by: &owned_user_id!("@alice:example.org"),
                by_power: 0,
                event: None,
                now: 0,
            },
            || "c1".into(),
            &crate::config::Permissions {
                start_power_level: 0,
                stop_power_level: 50,
                transcribe_power_level: 50,
            },
        );
        match start {
            Ok(StartOutcome::Started(call)) => call,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_call_the_room_cannot_show_still_gets_its_link_and_one_remark() {
        let url = "https://visio.example.org/call/c1";
        let hidden = call();
        let (body, html, structured) = start_reply(&hidden, url, "started", Some(50));
        assert!(body.starts_with(&format!("📞 Call started. Join here: {url}\n")));
        assert_eq!(
            body.matches("power level 50 (Moderator)").count(),
            1,
            "{body}"
        );
        assert!(body.contains("header"), "{body}");
        assert!(html.contains(&format!("<a href=\"{url}\">")));
        assert!(html.contains("power level 50 (Moderator)"));
        assert_eq!(
            structured,
            json!({
                "command": "start", "outcome": "started", "call_id": "c1", "url": url,
                "room_state": "missing_power", "required_power_level": 50,
            })
        );
        // the next start points to the live call and says nothing more
        let (again, _, again_structured) = start_reply(&hidden, url, "already_live", None);
        assert!(!again.contains("power level"), "{again}");
        assert!(again.contains(url));
        assert_eq!(again_structured["room_state"], "missing_power");
        assert!(again_structured.get("required_power_level").is_none());
        // a room that shows the call: no remark
        let mut shown = call();
        shown.room_state_written();
        let (body, _, structured) = start_reply(&shown, url, "started", None);
        assert_eq!(body, format!("📞 Call started. Join here: {url}"));
        assert_eq!(structured["room_state"], "shown");
        assert!(structured.get("required_power_level").is_none());
        assert!(hidden_call_remark(100).contains("power level 100 (Admin)"));
    }

    #[test]
    fn times_are_formatted_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
    }
}
