//! A call's life in its room: `!visio start`, `status` and `stop`, the
//! media backend's joins and leaves, the grace period when the last one
//! leaves, and ending a call (which queues its minutes). Reached from `room`
//! (commands) and `worker` (participants, timeouts).

use super::*;

/// The reply to `!visio start`: body, HTML and `org.salon.reply`. `hidden`:
/// the level the bot needs to show a call just started in the room's state,
/// said once, in this reply.
pub(super) fn start_reply(
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
    pub(super) async fn start_call(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
    ) -> Result<(), HandleError> {
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

    pub(super) async fn stop_call(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
    ) -> Result<(), HandleError> {
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
            self.media.close_call(&call.media_room()).await;
            if let Err(e) = self.leave_call_as_member(&mut call).await {
                warn!(call_id = %call.id, error = %e, "cannot leave the ended call as a member");
            }
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

    pub(super) async fn report_status(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
    ) -> Result<(), HandleError> {
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
                let with = match call.origin {
                    CallOrigin::MatrixRtc => " with Element Call",
                    CallOrigin::Command => "",
                };
                let locked = match &call.locked_by {
                    Some(by) => format!(" 🔒 Locked by {by}: only moderators can join."),
                    None => String::new(),
                };
                let waiting: Vec<String> = self
                    .store
                    .knocks_of(&call.id)?
                    .into_iter()
                    .filter(|k| k.state == crate::guests::KnockState::Waiting)
                    .map(|k| format!("{} ({})", k.number, k.label()))
                    .collect();
                let lobby = if waiting.is_empty() {
                    String::new()
                } else {
                    format!(
                        " Waiting in the lobby: {} (`!visio admit`).",
                        waiting.join(", ")
                    )
                };
                (
                    format!(
                        "A call is live since {} ({}), started by {}{with}. {people}{transcription}{locked}{lobby} Join here: {}",
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
                        "origin": call.origin,
                        "locked_by": call.locked_by,
                        "lobby": waiting.len(),
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

    /// Someone joined or left the room's media session: the call's
    /// participants become who is connected now (one user may be there from
    /// two devices; leaving one keeps them in), shown in the room state.
    pub async fn on_participant(
        &self,
        room_id: &OwnedRoomId,
        identity: &str,
        joined: bool,
    ) -> Result<(), HandleError> {
        let Some(mut call) = self.store.room_call(room_id)?.filter(Call::is_active) else {
            debug!(%identity, joined, "media change in a room without a live call");
            return Ok(());
        };
        // Someone a moderator removed came back (on a LiveKit cluster, which
        // keeps no list of the removed, with a token minted before): out again.
        if joined
            && let Some(who) = self.store.identity(identity)?
            && call.removed.contains(&who.user_id)
        {
            warn!(call_id = %call.id, %identity, user = %who.user_id, "a removed participant joined again; removing them");
            self.media.remove(&call.media_room(), identity).await;
        }
        if self.sync_participants(&mut call)? {
            self.store.save_call(&call).await?;
            info!(call_id = %call.id, %identity, joined, participants = call.participants.len(), "participants changed");
            self.show_call_change(&mut call).await?;
        }
        Ok(())
    }

    /// Sets the call's participants to the Matrix users connected to its
    /// media room now. Returns whether that changed anything.
    pub(super) fn sync_participants(&self, call: &mut Call) -> Result<bool, HandleError> {
        let mut present = std::collections::BTreeSet::new();
        for participant in self.media.participants(&call.media_room()) {
            match self.store.identity(&participant.identity)? {
                Some(who) => {
                    present.insert(who.user_id);
                }
                None => debug!(identity = %participant.identity, "a participant Salon cannot name"),
            }
        }
        let now = now_millis();
        let gone: Vec<_> = call.participants.difference(&present).cloned().collect();
        let mut changed = false;
        for user in &present {
            changed |= call.join(user);
        }
        for user in &gone {
            changed |= call.leave(user, now);
        }
        Ok(changed)
    }

    /// A MatrixRTC call membership changed (Element Call's call button):
    /// the room's memberships are kept, and a session that begins in a room
    /// without a live call becomes its call.
    pub(super) async fn on_rtc_member(
        &self,
        event: &Event,
        change: crate::rtc::MemberChange,
    ) -> Result<(), HandleError> {
        let room_id = &event.room_id;
        let now = now_millis();
        let sender = event.sender.clone();
        // read, apply, write: this room's worker is the only writer
        let mut members = self.store.room_settings(room_id)?.rtc_members;
        let applied = members.apply(&sender, change, now);
        self.store
            .update_room_settings(room_id, |settings| {
                settings.rtc_members = members.clone();
            })
            .await?;
        info!(user = %sender, ?applied, "MatrixRTC membership");
        let current = self.store.room_call(room_id)?;
        // This very event started the live call, and the homeserver failed
        // before the room was told (the event came back): finish telling it.
        let replayed = current
            .as_ref()
            .filter(|c| c.is_active() && c.started_by_event.as_ref() == Some(&event.event_id))
            .cloned();
        let mut call = match replayed {
            Some(call) => call,
            None if applied == crate::rtc::Applied::Joined => {
                let outcome = calls::start_from_session(
                    current.as_ref(),
                    StartRequest {
                        room_id,
                        by: &sender,
                        by_power: 0,
                        event: Some(event.event_id.clone()),
                        now,
                    },
                    new_call_id,
                );
                let StartOutcome::Started(mut call) = outcome else {
                    return Ok(());
                };
                self.sync_participants(&mut call)?;
                self.store.save_call(&call).await?;
                Metrics::inc(&self.metrics.calls_started);
                self.refresh_live_calls();
                info!(call_id = %call.id, by = %sender, "call started from a MatrixRTC session (Element Call)");
                call
            }
            None => return Ok(()),
        };
        let power = self.power_levels(room_id).await?;
        if self.bot_lacks_power(&power).is_none() {
            let owed = call.room_state_owed();
            self.write_room_state(&mut call, owed).await?;
        }
        let url = self.config.call_url(&call.id);
        let body = format!(
            "📞 {sender} started a call with Element Call. Type `!visio transcribe on` to transcribe it; people without Element Call can join from a browser: {url}"
        );
        let html = format!(
            "📞 {} started a call with Element Call. Type <code>!visio transcribe on</code> to transcribe it; people without Element Call can <a href=\"{1}\">join from a browser</a>: {1}",
            escape_html(sender.as_str()),
            escape_html(&url)
        );
        let content = json!({
            "msgtype": "m.notice",
            "body": body,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
            "org.salon.reply": {
                "command": "matrixrtc", "outcome": "started", "call_id": call.id, "url": url,
                "room_state": room_state_field(&call),
            },
        });
        self.matrix
            .send_message(room_id, &txn_for(&event.event_id, "rtc-start"), &content)
            .await?;
        if call.transcribing {
            return Ok(());
        }
        self.auto_transcribe(&mut call).await
    }

    /// Ends the room's call if its grace period or unjoined timeout has passed.
    pub async fn check_timeout(&self, room_id: &OwnedRoomId) -> Result<(), HandleError> {
        let Some(mut call) = self.store.room_call(room_id)? else {
            return Ok(());
        };
        // Visio's membership of an encrypted call lapses after 4 h unless
        // written again; members stop sending keys to a lapsed member.
        let now = now_millis();
        if call.is_active()
            && call.bot_membership.is_some()
            && crate::rtc::membership_refresh_due(call.bot_membership_at, now)
            && let Err(e) = self.join_call_as_member(&mut call).await
        {
            // never in the way of the call's timeouts; try again in 10 min
            warn!(call_id = %call.id, error = %e, "cannot refresh Visio's membership of the encrypted call");
            let lasts = crate::rtc::MEMBERSHIP_LASTS_MS - 3_600_000;
            call.bot_membership_at = Some((now + 600_000).saturating_sub(lasts));
            self.store.save_call_only(&call).await?;
        }
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

/// A fresh, URL-safe call id.
pub(super) fn new_call_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_url_safe_and_distinct() {
        let (a, b) = (new_call_id(), new_call_id());
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
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
                moderate_power_level: 50,
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
}
