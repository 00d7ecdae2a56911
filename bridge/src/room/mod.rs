//! What the bot does in a room: accept invites, answer commands, and start,
//! report and end calls. This file takes an event from the room's worker
//! (`worker.rs`), reveals and parses it, checks power and dispatches; the
//! call's life is in `lifecycle.rs` and what the room shows of it in
//! `call_state.rs`.
//!
//! Decisions come from the pure parts (`commands`, `calls`, `power`); these
//! files perform them against the homeserver and the store. Every reply
//! carries a structured `org.salon.reply` field next to its human `body`, so
//! that other programs can read outcomes without scraping text.

mod call_state;
mod guests;
mod lifecycle;
mod moderation;

pub use call_state::{CALL_EVENT, LAYOUT_EVENT, WIDGET_EVENT};
use call_state::{CALL_STATE_EVENTS, hidden_call_remark, room_state_field};
pub use guests::LOBBY_TOPIC;
pub use moderation::MODERATION_TOPIC;

use ruma::{OwnedEventId, OwnedRoomId, RoomId, UserId};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::calls::{
    self, Call, CallOrigin, EndReason, Refusal, RoomStateWrite, StartOutcome, StartRequest,
};
use crate::clock::now_millis;
use crate::commands::{self, Command};
use crate::matrix::{MatrixError, txn_for};
use crate::metrics::Metrics;
use crate::power::{self, PowerLevels};
use crate::store::{EventKind, QueuedEvent};
use crate::worker::Bridge;
use salon_minutes::render::html as escape_html;

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
            EventKind::RtcMember { change } => {
                self.on_rtc_member(event, change.clone()).await?;
            }
            EventKind::Text { body, mentions } => {
                if let Some(command) = commands::parse_with_mentions(body, mentions) {
                    self.metrics.command(command.name());
                    info!(command = command.name(), sender = %event.sender, event_id = %event.event_id, "command");
                    self.on_command(&event.room_id, event, command).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) async fn on_invite(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
    ) -> Result<(), HandleError> {
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

    /// A [`Bridge::reply`] that also carries one more structured field (say,
    /// `org.salon.moderation`), for the programs that read the room.
    pub(crate) async fn reply_with(
        &self,
        room_id: &RoomId,
        to: &Event,
        body: &str,
        structured: Value,
        (field, value): (&str, Value),
    ) -> Result<OwnedEventId, HandleError> {
        let content = json!({
            "msgtype": "m.notice",
            "body": body,
            "m.relates_to": { "m.in_reply_to": { "event_id": to.event_id } },
            "org.salon.reply": structured,
            field: value,
        });
        Ok(self
            .matrix
            .send_message(room_id, &txn_for(&to.event_id, "reply"), &content)
            .await?)
    }

    pub(super) async fn on_command(
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
            Command::Moderate(action, target) => {
                self.moderate_command(room_id, event, action, target)
                    .await?
            }
            Command::Guest(name) => self.guest_command(room_id, event, name).await?,
            Command::GuestRevoke => self.guest_revoke_command(room_id, event).await?,
            Command::Lobby { admit, which } => {
                self.lobby_command(room_id, event, admit, which).await?
            }
        }
        Ok(())
    }

    pub(crate) async fn power_levels(&self, room_id: &RoomId) -> Result<PowerLevels, HandleError> {
        Ok(self.matrix.power_levels(room_id).await?)
    }

    /// The level the bot lacks to write a call's room state, if any.
    pub(super) fn bot_lacks_power(&self, power: &PowerLevels) -> Option<i64> {
        power.lacks_for_state(self.matrix.bot_user_id(), &CALL_STATE_EVENTS)
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
            | Refusal::CannotTranscribe { .. }
            | Refusal::CannotModerate { .. }
            | Refusal::Outranked { .. }
            | Refusal::CannotRemoveSelf
            | Refusal::RemovedFromCall
            | Refusal::CallLocked { .. } => "refused",
            Refusal::NotInCall { .. } => "not_in_call",
            Refusal::NoTarget => "usage",
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
}

/// Whether the bot accepts an invite from `inviter`: everyone when both lists
/// are empty, else only the listed users and servers.
pub(super) fn may_autojoin(bot: &crate::config::BotConfig, inviter: &UserId) -> bool {
    if bot.autojoin_servers.is_empty() && bot.autojoin_users.is_empty() {
        return true;
    }
    bot.autojoin_users.iter().any(|u| u == inviter)
        || bot
            .autojoin_servers
            .iter()
            .any(|s| s.as_str() == inviter.server_name().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

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
