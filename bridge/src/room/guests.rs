//! Guests, performed by the room's worker: `!visio guest [name]` makes a
//! guest link, `!visio guest revoke` ends them, `!visio admit` / `deny`
//! decide on a guest waiting in the lobby. The rules are `crate::guests`;
//! the lobby's web side is `lobby.rs`.

use ruma::{OwnedRoomId, UserId};
use serde_json::json;
use tracing::info;

use super::{Event, HandleError, format_time};
use crate::calls::{Call, Refusal};
use crate::clock::now_millis;
use crate::guests::{self, GuestLink, KnockState};
use crate::store::MediaIdentity;
use crate::worker::Bridge;

/// The data topic of lobby messages in a call (a guest is waiting, was
/// admitted or denied), for moderators' pages.
pub const LOBBY_TOPIC: &str = "org.salon.lobby";

impl Bridge {
    /// The room's live call, if `by` may moderate it; else why not.
    async fn moderator_call(
        &self,
        room_id: &OwnedRoomId,
        by: &UserId,
    ) -> Result<Result<Call, Refusal>, HandleError> {
        let Some(call) = self.store.room_call(room_id)?.filter(Call::is_active) else {
            return Ok(Err(Refusal::NoLiveCall));
        };
        let required = self.config.permissions.moderate_power_level;
        let actual = self.power_levels(room_id).await?.user_level(by);
        if actual < required {
            return Ok(Err(Refusal::CannotModerate { required, actual }));
        }
        Ok(Ok(call))
    }

    /// [`Bridge::moderator_call`] for a command: a refusal is said.
    async fn moderated_call(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
        command: &str,
    ) -> Result<Option<Call>, HandleError> {
        match self.moderator_call(room_id, &event.sender).await? {
            Ok(call) => Ok(Some(call)),
            Err(refusal) => {
                self.refuse(room_id, event, command, &refusal).await?;
                Ok(None)
            }
        }
    }

    pub(super) async fn guest_command(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
        name_hint: Option<String>,
    ) -> Result<(), HandleError> {
        let Some(call) = self.moderated_call(room_id, event, "guest").await? else {
            return Ok(());
        };
        let token = guests::new_secret();
        let now = now_millis();
        let link = GuestLink {
            token_hash: guests::hash_secret(&token),
            call_id: call.id.clone(),
            invited_by: event.sender.clone(),
            name_hint: name_hint.as_deref().and_then(guests::clean_name),
            created_at: now,
            expires_at: now + self.config.calls.guest_link_ttl.as_millis() as u64,
            revoked: false,
        };
        self.store.save_guest_link(&link).await?;
        let url = self.config.guest_url(&token);
        info!(call_id = %call.id, by = %event.sender, "guest link made");
        let whom = link
            .name_hint
            .as_deref()
            .map(|n| format!(" for {n}"))
            .unwrap_or_default();
        let body = format!(
            "🔗 Guest link{whom}: {url}\nSend it to them only. It works until {} or until the call ends; they choose a name and wait in the lobby until a moderator types `!visio admit`. `!visio guest revoke` ends it.",
            format_time(link.expires_at)
        );
        self.reply(
            room_id,
            event,
            &body,
            None,
            json!({ "command": "guest", "outcome": "created", "call_id": call.id, "url": url, "expires_at": link.expires_at }),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn guest_revoke_command(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
    ) -> Result<(), HandleError> {
        let Some(call) = self.moderated_call(room_id, event, "guest_revoke").await? else {
            return Ok(());
        };
        let mut revoked = 0;
        for mut link in self.store.guest_links_of(&call.id)? {
            if !link.revoked {
                link.revoked = true;
                self.store.save_guest_link(&link).await?;
                revoked += 1;
            }
        }
        info!(call_id = %call.id, by = %event.sender, revoked, "guest links revoked");
        let body = format!(
            "The call's guest links no longer work ({revoked} revoked). Guests already in the call stay; `!visio remove` removes one."
        );
        self.reply(
            room_id,
            event,
            &body,
            None,
            json!({ "command": "guest_revoke", "outcome": "revoked", "call_id": call.id, "revoked": revoked }),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn lobby_command(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
        admit: bool,
        which: Option<String>,
    ) -> Result<(), HandleError> {
        let command = if admit { "admit" } else { "deny" };
        match self
            .decide_knock(room_id, &event.sender, admit, which.as_deref())
            .await?
        {
            LobbyDecided::Refused(refusal) => self.refuse(room_id, event, command, &refusal).await,
            LobbyDecided::NoSuchGuest { body, reason } => {
                self.reply(
                    room_id,
                    event,
                    &body,
                    None,
                    json!({ "command": command, "outcome": "no_such_guest", "reason": reason }),
                )
                .await?;
                Ok(())
            }
            LobbyDecided::Done { body, reply, lobby } => {
                self.reply_with(room_id, event, &body, reply, ("org.salon.lobby", lobby))
                    .await?;
                Ok(())
            }
        }
    }

    /// Admits or denies a waiting guest (`which`: number, name or guest
    /// id; none for the only one), on `by`'s word, from the chat or the
    /// call page; the caller tells the room.
    pub(crate) async fn decide_knock(
        &self,
        room_id: &OwnedRoomId,
        by: &UserId,
        admit: bool,
        which: Option<&str>,
    ) -> Result<LobbyDecided, HandleError> {
        let command = if admit { "admit" } else { "deny" };
        let call = match self.moderator_call(room_id, by).await? {
            Ok(call) => call,
            Err(refusal) => return Ok(LobbyDecided::Refused(refusal)),
        };
        let knocks = self.store.knocks_of(&call.id)?;
        let mut knock = match guests::pick_waiting(&knocks, which) {
            Ok(knock) => knock.clone(),
            Err(error) => {
                let waiting: Vec<String> = knocks
                    .iter()
                    .filter(|k| k.state == KnockState::Waiting)
                    .map(|k| format!("{} ({})", k.number, k.name))
                    .collect();
                let body = if waiting.is_empty() {
                    format!("Sorry, {error}.")
                } else {
                    format!("Sorry, {error}. Waiting: {}.", waiting.join(", "))
                };
                return Ok(LobbyDecided::NoSuchGuest {
                    body,
                    reason: error.to_string(),
                });
            }
        };
        let by = by.to_owned();
        knock.state = if admit {
            KnockState::Admitted { by: by.clone() }
        } else {
            KnockState::Denied { by: by.clone() }
        };
        if admit {
            // Who the guest's LiveKit identity is, for the call's
            // participants, transcripts and minutes.
            self.store
                .record_media_room(&call.media_room(), &call.room_id)?;
            self.store.record_identity(
                knock.guest.as_str(),
                &MediaIdentity {
                    user_id: knock.guest.clone(),
                    name: knock.label(),
                },
            )?;
        }
        self.store.save_knock(&knock).await?;
        info!(call_id = %call.id, guest = %knock.guest, %by, admitted = admit, "lobby decision");
        let outcome = if admit { "admitted" } else { "denied" };
        let lobby = knock.lobby_json();
        self.media
            .send_data(
                &call.media_room(),
                LOBBY_TOPIC,
                lobby.to_string().as_bytes(),
            )
            .await;
        let body = if admit {
            format!("✅ {} may join the call now.", knock.label())
        } else {
            format!("⛔ {} was not let into the call.", knock.label())
        };
        Ok(LobbyDecided::Done {
            body,
            reply: json!({ "command": command, "outcome": outcome, "call_id": call.id, "guest": knock.guest }),
            lobby,
        })
    }
}

/// What a lobby decision came to.
pub(crate) enum LobbyDecided {
    Refused(Refusal),
    /// Nobody waiting matched: what to say, and why in short.
    NoSuchGuest {
        body: String,
        reason: String,
    },
    Done {
        body: String,
        reply: serde_json::Value,
        lobby: serde_json::Value,
    },
}
