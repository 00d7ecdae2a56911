//! Moderation, performed: `!visio mute|remove|lock|unlock` from the chat.
//! The rules are `crate::moderation` (pure); this file reads the power
//! levels, finds the target's identities in the call's media room, records
//! the act on the call, has the media backend perform it, and tells
//! everyone: one notice in the room (a reply to the command, with the
//! structured `org.salon.moderation` field) and one data message in the
//! call (topic [`MODERATION_TOPIC`]), so that the page of the person
//! affected shows who acted.

use ruma::{OwnedRoomId, OwnedUserId, UserId};
use serde_json::json;
use tracing::{info, warn};

use super::guests::LobbyDecided;
use super::{Event, HandleError};
use crate::calls::{Call, Refusal};
use crate::clock::now_millis;
use crate::media::MuteWhat;
use crate::moderation::{self, Action, Request, Verdict};
use crate::queues::{PageAct, PageAnswer};
use crate::worker::Bridge;

/// The data topic of moderation messages in a call.
pub const MODERATION_TOPIC: &str = "org.salon.moderation";

/// What a moderation request came to.
pub(crate) enum Moderated {
    /// Performed: the notice's text and the structured fields.
    Done {
        body: String,
        reply: serde_json::Value,
        moderation: serde_json::Value,
    },
    /// Already so (a lock of a locked call): what to say.
    Unchanged(&'static str),
    Refused(Refusal),
}

impl Bridge {
    pub(super) async fn moderate_command(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
        action: Action,
        target: Option<OwnedUserId>,
    ) -> Result<(), HandleError> {
        let command = action.name();
        match self
            .moderate(room_id, &event.sender, action, target)
            .await?
        {
            Moderated::Refused(refusal) => self.refuse(room_id, event, command, &refusal).await,
            Moderated::Unchanged(body) => {
                self.reply(
                    room_id,
                    event,
                    body,
                    None,
                    json!({ "command": command, "outcome": "unchanged" }),
                )
                .await?;
                Ok(())
            }
            Moderated::Done {
                body,
                reply,
                moderation,
            } => {
                self.reply_with(
                    room_id,
                    event,
                    &body,
                    reply,
                    ("org.salon.moderation", moderation),
                )
                .await?;
                Ok(())
            }
        }
    }

    /// Decides and performs one moderation act by `by` (from the chat or
    /// the call page): the act is recorded on the call, the media backend
    /// performs it and the call's pages are told; the caller tells the room.
    pub(crate) async fn moderate(
        &self,
        room_id: &OwnedRoomId,
        by: &UserId,
        action: Action,
        target: Option<OwnedUserId>,
    ) -> Result<Moderated, HandleError> {
        let command = action.name();
        if action.needs_target() && target.is_none() {
            return Ok(Moderated::Refused(Refusal::NoTarget));
        }
        let mut current = self.store.room_call(room_id)?;
        let power = self.power_levels(room_id).await?;
        let by_power = power.user_level(by);
        let target_power = target.as_deref().map_or(0, |t| power.user_level(t));
        // Whom the act reaches in the media room: decided before the act is
        // recorded, so that muting someone absent records nothing.
        let identities = match (&current, target.as_deref()) {
            (Some(call), Some(target)) if call.is_active() => self.identities_of(call, target)?,
            _ => Vec::new(),
        };
        if matches!(action, Action::Mute | Action::StopVideo)
            && identities.is_empty()
            && let Some(target) = &target
            && by_power >= self.config.permissions.moderate_power_level
            && current.as_ref().is_some_and(Call::is_active)
        {
            return Ok(Moderated::Refused(Refusal::NotInCall {
                target: target.clone(),
            }));
        }
        let verdict = moderation::decide(
            current.as_mut(),
            Request {
                action,
                target: target.as_deref(),
                by,
                by_power,
                target_power,
                now: now_millis(),
            },
            &self.config.permissions,
        );
        let call = match verdict {
            Err(refusal) => return Ok(Moderated::Refused(refusal)),
            Ok(Verdict::Unchanged) => {
                return Ok(Moderated::Unchanged(match action {
                    Action::Lock => "The call is already locked.",
                    _ => "The call is not locked.",
                }));
            }
            Ok(Verdict::Apply) => current.expect("decide applies only to a live call"),
        };
        self.store.save_call(&call).await?;
        let media_room = call.media_room();
        // The pages hear of it first: a removed page is gone a moment later.
        let act = call.moderation.last().expect("decide recorded the act");
        let by_name = self.display_name(room_id, by).await;
        let payload = json!({
            "call_id": call.id,
            "action": command,
            "target": act.target,
            "by": act.by,
            "by_name": by_name,
        });
        self.media
            .send_data(
                &media_room,
                MODERATION_TOPIC,
                payload.to_string().as_bytes(),
            )
            .await;
        let tracks = match action {
            Action::Mute | Action::StopVideo => {
                let what = if action == Action::Mute {
                    MuteWhat::Microphone
                } else {
                    MuteWhat::Video
                };
                let mut tracks = 0;
                for identity in &identities {
                    tracks += self.media.mute(&media_room, identity, what).await;
                }
                tracks
            }
            Action::MuteAll => {
                let mut tracks = 0;
                for participant in self.media.participants(&media_room) {
                    let user = self
                        .store
                        .identity(&participant.identity)?
                        .map(|w| w.user_id);
                    if user.as_deref() == Some(by) {
                        continue;
                    }
                    tracks += self
                        .media
                        .mute(&media_room, &participant.identity, MuteWhat::Microphone)
                        .await;
                }
                tracks
            }
            Action::Remove => {
                for identity in &identities {
                    self.media.remove(&media_room, identity).await;
                }
                0
            }
            Action::Lock | Action::Unlock => 0,
        };
        info!(call_id = %call.id, action = command, target = ?act.target, by = %act.by, tracks, "moderation");
        Ok(Moderated::Done {
            body: format!("🛡️ {} {}.", by_name, sentence_tail(act)),
            reply: json!({ "command": command, "outcome": "done", "call_id": call.id, "tracks": tracks }),
            moderation: json!({
                "call_id": call.id,
                "action": command,
                "target": act.target,
                "by": act.by,
            }),
        })
    }

    /// A moderator's act from the call page (`access.rs`'s moderation
    /// route), performed as the same command from the chat would be; the
    /// room gets a plain notice (there is no message to reply to).
    pub(crate) async fn page_act(
        &self,
        room_id: &OwnedRoomId,
        by: &UserId,
        act: PageAct,
    ) -> PageAnswer {
        let unavailable = |e: HandleError| {
            warn!(error = %e, "a moderation act from the call page failed");
            (
                503,
                "the homeserver or Salon's storage failed; try again".to_owned(),
            )
        };
        let refused = |refusal: Refusal| match refusal {
            Refusal::NoLiveCall => (404, refusal.to_string()),
            Refusal::NoTarget | Refusal::NotInCall { .. } => (400, refusal.to_string()),
            other => (403, other.to_string()),
        };
        let (field, body, reply, structured) = match act {
            PageAct::Moderate {
                action,
                target_identity,
            } => {
                let target = match target_identity {
                    Some(identity) => match self
                        .store
                        .identity(&identity)
                        .map_err(|e| unavailable(e.into()))?
                    {
                        Some(who) => Some(who.user_id),
                        None => return Err((400, format!("nobody Salon knows is {identity}"))),
                    },
                    None => None,
                };
                match self
                    .moderate(room_id, by, action, target)
                    .await
                    .map_err(unavailable)?
                {
                    Moderated::Refused(refusal) => return Err(refused(refusal)),
                    Moderated::Unchanged(body) => {
                        return Ok(json!({ "outcome": "unchanged", "reason": body }));
                    }
                    Moderated::Done {
                        body,
                        reply,
                        moderation,
                    } => ("org.salon.moderation", body, reply, moderation),
                }
            }
            PageAct::Lobby { admit, guest } => match self
                .decide_knock(room_id, by, admit, Some(&guest))
                .await
                .map_err(unavailable)?
            {
                LobbyDecided::Refused(refusal) => return Err(refused(refusal)),
                LobbyDecided::NoSuchGuest { reason, .. } => return Err((404, reason)),
                LobbyDecided::Done { body, reply, lobby } => {
                    ("org.salon.lobby", body, reply, lobby)
                }
            },
        };
        let content = json!({
            "msgtype": "m.notice",
            "body": body,
            "org.salon.reply": reply,
            field: structured,
        });
        let txn = format!("salon.page.{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = self.matrix.send_message(room_id, &txn, &content).await {
            warn!(error = %e, "cannot tell the room of a moderation act from the call page");
        }
        Ok(reply)
    }

    /// The identities `user` is connected to the call's media room under
    /// (their page, each of their Element Call devices).
    fn identities_of(&self, call: &Call, user: &UserId) -> Result<Vec<String>, HandleError> {
        let mut identities = Vec::new();
        for participant in self.media.participants(&call.media_room()) {
            if self
                .store
                .identity(&participant.identity)?
                .is_some_and(|who| who.user_id == user)
            {
                identities.push(participant.identity);
            }
        }
        Ok(identities)
    }

    /// A member's display name in the room, else their user id.
    pub(crate) async fn display_name(&self, room_id: &OwnedRoomId, user: &UserId) -> String {
        self.matrix
            .state(room_id, "m.room.member", user.as_str())
            .await
            .ok()
            .flatten()
            .and_then(|m| m["displayname"].as_str().map(str::to_owned))
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| user.to_string())
    }
}

/// What follows the moderator's name in the notice: "muted @bob:hs in the
/// call", "locked the call: only moderators can join now".
fn sentence_tail(act: &moderation::Act) -> String {
    let target = act.target.as_ref().map(|t| t.as_str()).unwrap_or_default();
    match act.action {
        Action::Mute => format!("muted {target} in the call"),
        Action::StopVideo => format!("stopped the camera and screen share of {target}"),
        Action::MuteAll => "muted everyone in the call".to_owned(),
        Action::Remove => format!("removed {target} from the call; they cannot rejoin it"),
        Action::Lock => "locked the call: only moderators can join it now".to_owned(),
        Action::Unlock => "unlocked the call: members can join it again".to_owned(),
    }
}
