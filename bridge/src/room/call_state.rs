//! What the room shows of a call: the `org.salon.call` state, the Element
//! widget and its layout. The store is the call's truth; this writes it to
//! the room when the bot's power allows, records a refused write instead of
//! failing, and catches up once the bot is promoted. Called by `room` (before
//! each command) and `lifecycle` (start, participants, end).

use super::*;

/// The call-state event type, and the widget events Element reads.
pub const CALL_EVENT: &str = "org.salon.call";
pub const WIDGET_EVENT: &str = "im.vector.modular.widgets";
pub const LAYOUT_EVENT: &str = "io.element.widgets.layout";
/// Every state event type the bot writes for a call.
pub(super) const CALL_STATE_EVENTS: [&str; 3] = [CALL_EVENT, WIDGET_EVENT, LAYOUT_EVENT];

/// A write of a call's room state that failed, and whether part of it went
/// through first.
#[derive(Debug)]
pub(super) struct StateWriteError {
    pub(super) wrote_some: bool,
    pub(super) error: MatrixError,
}

pub(super) fn is_forbidden(error: &MatrixError) -> bool {
    error.errcode() == Some("M_FORBIDDEN")
}

/// What the start reply says when the room cannot show the call: once, in
/// that reply, never again on later commands.
pub(super) fn hidden_call_remark(need: i64) -> String {
    format!(
        "I can't show the call in this room's header yet: I need power level {need} ({}) to set the call and widget state. Once I have it, the next `!visio` command puts it there.",
        power::role_name(need)
    )
}

/// `room_state` in the structured replies about a live call.
pub(super) fn room_state_field(call: &Call) -> &'static str {
    if call.hidden_from_room() {
        "missing_power"
    } else {
        "shown"
    }
}

impl Bridge {
    /// Writes what the room's state still owes its current call, if the bot
    /// may now. Cheap when nothing is owed: only the store is read.
    pub(super) async fn catch_up_room_state(&self, room_id: &RoomId) -> Result<(), HandleError> {
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
    pub(super) async fn write_room_state(
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
    pub(super) async fn write_states(
        &self,
        room_id: &RoomId,
        events: &[(&str, &str, Value)],
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
            "origin": call.origin,
        })
    }

    pub(super) fn widget_id(call: &Call) -> String {
        format!("salon_{}", call.id)
    }

    /// Sets `org.salon.call`, the widget and its layout for a live call. A
    /// call Element Call began gets no widget: Element shows that call itself.
    pub(super) async fn publish_call(&self, call: &Call) -> Result<(), StateWriteError> {
        if call.origin == CallOrigin::MatrixRtc {
            let state = [(CALL_EVENT, "", self.call_state_content(call))];
            return self.write_states(&call.room_id, &state).await;
        }
        let widget_id = Self::widget_id(call);
        let widget = json!({
            "type": "m.custom",
            "url": format!("{}?room=$matrix_room_id&user=$matrix_user_id&deviceId=$org.matrix.msc3819.matrix_device_id", self.config.call_url(&call.id)),
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
            &[
                (CALL_EVENT, "", self.call_state_content(call)),
                (WIDGET_EVENT, widget_id.as_str(), widget),
                (LAYOUT_EVENT, "", layout),
            ],
        )
        .await
    }

    /// Marks the call ended in the room and removes the widget.
    pub(super) async fn unpublish_call(&self, call: &Call) -> Result<(), StateWriteError> {
        if call.origin == CallOrigin::MatrixRtc {
            let state = [(CALL_EVENT, "", self.call_state_content(call))];
            return self.write_states(&call.room_id, &state).await;
        }
        self.write_states(
            &call.room_id,
            &[
                (CALL_EVENT, "", self.call_state_content(call)),
                (WIDGET_EVENT, Self::widget_id(call).as_str(), json!({})),
                (LAYOUT_EVENT, "", json!({})),
            ],
        )
        .await
    }
}
