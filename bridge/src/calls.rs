//! The call lifecycle, as a pure state machine.
//!
//! A room has at most one live call. A call starts, people join and leave, and
//! it ends on `!visio stop`, when the last participant has been gone for the
//! grace period, or when nobody joined for a long while. Nothing here does I/O:
//! the caller passes the time in, and decides what to send from the outcome, so
//! every rule is unit-tested without a homeserver.

use std::collections::BTreeSet;
use std::time::Duration;

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use crate::config::Permissions;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Active,
    Ended,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Someone said `!visio stop`.
    Stopped,
    /// The last participant left and the grace period passed.
    Empty,
    /// Nobody joined for the unjoined timeout.
    Unjoined,
    /// The call could not be announced: the homeserver failed before the
    /// link was given. (A bot without power still starts the call.)
    Failed,
}

/// One call in one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub id: String,
    pub room_id: OwnedRoomId,
    pub state: CallState,
    pub started_by: OwnedUserId,
    /// The command that started it: a replay of that command is recognised.
    pub started_by_event: Option<OwnedEventId>,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    pub end_reason: Option<EndReason>,
    pub ended_by: Option<OwnedUserId>,
    /// The command that ended it: a replay of that command is recognised.
    #[serde(default)]
    pub ended_by_event: Option<OwnedEventId>,
    /// Who is in the call now.
    pub participants: BTreeSet<OwnedUserId>,
    /// Everyone who was ever in the call, for the minutes.
    pub attendees: BTreeSet<OwnedUserId>,
    /// Since when nobody has been in the call (set once someone has left).
    pub empty_since: Option<Millis>,
    pub minutes_event_id: Option<OwnedEventId>,
    /// Whether speech is being transcribed now.
    #[serde(default)]
    pub transcribing: bool,
    /// The "transcription started" notice that transcript notices thread under.
    #[serde(default)]
    pub transcript_thread: Option<OwnedEventId>,
    /// How many times transcription was turned on (names each thread's txn).
    #[serde(default)]
    pub transcription_sessions: u32,
    /// Set when the call ends; cleared once its minutes are in the room.
    #[serde(default)]
    pub minutes_owed: bool,
    /// How much of the call the room's state (`org.salon.call`, the widget)
    /// shows; the store is the call's truth, the room state only displays it.
    #[serde(default)]
    pub room_view: RoomView,
    /// How the call began: `!visio start`, or a MatrixRTC session (the call
    /// button of Element or Tchap).
    #[serde(default)]
    pub origin: CallOrigin,
    /// The bot's device, while the bot is a member of the (encrypted) call
    /// to receive its media keys.
    #[serde(default)]
    pub bot_membership: Option<String>,
    /// When the bot's membership was last written (ms), to refresh it
    /// before it lapses.
    #[serde(default)]
    pub bot_membership_at: Option<Millis>,
    /// The moderator who locked the call (no new joins but moderators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<OwnedUserId>,
    /// Who a moderator removed: refused until the call ends.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub removed: BTreeSet<OwnedUserId>,
    /// Every moderation act, in order, for the room and the minutes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moderation: Vec<crate::moderation::Act>,
}

/// How a call began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOrigin {
    /// `!visio start`.
    #[default]
    Command,
    /// A call membership (Element Call): Element shows the call itself, so
    /// the room's state gets no widget for it.
    MatrixRtc,
}

/// How much of a call the room's state shows. Writing it needs the bot to
/// hold the power level the room requires for those state events; a bot
/// without it still runs the call, and catches the room up once promoted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomView {
    /// The room shows the call as it is.
    #[default]
    Current,
    /// Nothing of this call was written: the bot lacked the power when it started.
    Missing,
    /// The call was shown once, but a later change could not be written
    /// (the bot lost its power level): the room shows an old version.
    Behind,
}

/// What to write so that the room's state shows a call as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStateWrite {
    /// Nothing is owed.
    Nothing,
    /// The call state, the widget and its layout, for a live call.
    Publish,
    /// The ended call state, and the widget and layout cleared.
    Unpublish,
}

/// What `start` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// A new call; the caller announces it.
    Started(Call),
    /// A call is live already; the caller points to it and creates nothing.
    AlreadyLive(Call),
}

/// Why a request about a call was refused, in words for the room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("there is no live call in this room")]
    NoLiveCall,
    #[error(
        "you need power level {required} to start a call here (you have {actual}); ask a moderator"
    )]
    CannotStart { required: i64, actual: i64 },
    #[error(
        "only the person who started the call or a member with power level {required} or more can stop it (you have {actual})"
    )]
    CannotStop { required: i64, actual: i64 },
    #[error(
        "you need power level {required} to turn transcription on or off here (you have {actual}); ask a moderator"
    )]
    CannotTranscribe { required: i64, actual: i64 },
    #[error("transcription is disabled on this server")]
    TranscriptionDisabled,
    #[error(
        "you need power level {required} to moderate the call here (you have {actual}); ask a moderator"
    )]
    CannotModerate { required: i64, actual: i64 },
    #[error(
        "{target} has power level {level}, not below yours: a moderator cannot act on an equal or a superior"
    )]
    Outranked { target: OwnedUserId, level: i64 },
    #[error("{target} is not in the call")]
    NotInCall { target: OwnedUserId },
    #[error("say who: `!visio mute @user:server` (or mention them)")]
    NoTarget,
    #[error("you cannot remove yourself; hang up instead")]
    CannotRemoveSelf,
    #[error("a moderator removed you from this call")]
    RemovedFromCall,
    #[error("{by} locked the call: only moderators can join it now")]
    CallLocked { by: OwnedUserId },
}

impl Call {
    /// The LiveKit room the call's media runs in: the Matrix room's own
    /// (the one Element Call joins), so every way in meets in one room.
    pub fn media_room(&self) -> String {
        crate::rtc::room_media_name(self.room_id.as_str())
    }

    /// The room's call, if it is live.
    pub fn is_active(&self) -> bool {
        self.state == CallState::Active
    }

    /// How long the call lasted, or has lasted until `now`.
    pub fn duration(&self, now: Millis) -> Duration {
        let end = self.ended_at.unwrap_or(now);
        Duration::from_millis(end.saturating_sub(self.started_at))
    }

    /// Someone joined the media session. Returns true if that changed anything.
    pub fn join(&mut self, user: &UserId) -> bool {
        if !self.is_active() {
            return false;
        }
        self.empty_since = None;
        self.attendees.insert(user.to_owned());
        self.participants.insert(user.to_owned())
    }

    /// Someone left. The grace period starts when the last one goes.
    pub fn leave(&mut self, user: &UserId, now: Millis) -> bool {
        if !self.is_active() || !self.participants.remove(user) {
            return false;
        }
        if self.participants.is_empty() {
            self.empty_since = Some(now);
        }
        true
    }

    /// Ends the call. Returns false if it had ended already.
    pub fn end(&mut self, now: Millis, reason: EndReason, by: Option<&UserId>) -> bool {
        if !self.is_active() {
            return false;
        }
        self.state = CallState::Ended;
        // the room shows it live until the end is written
        self.room_view = match self.room_view {
            RoomView::Missing => RoomView::Missing,
            RoomView::Current | RoomView::Behind => RoomView::Behind,
        };
        self.transcribing = false;
        // a call nobody could see (Failed) or nobody joined has no minutes
        self.minutes_owed = reason != EndReason::Failed && !self.attendees.is_empty();
        self.ended_at = Some(now.max(self.started_at));
        self.end_reason = Some(reason);
        self.ended_by = by.map(ToOwned::to_owned);
        self.participants.clear();
        self.empty_since = None;
        true
    }

    /// What the room's state still owes this call. An ended call that was
    /// never shown owes nothing: showing it now would only be stale news.
    pub fn room_state_owed(&self) -> RoomStateWrite {
        match (self.room_view, self.state) {
            (RoomView::Current, _) | (RoomView::Missing, CallState::Ended) => {
                RoomStateWrite::Nothing
            }
            (RoomView::Missing | RoomView::Behind, CallState::Active) => RoomStateWrite::Publish,
            (RoomView::Behind, CallState::Ended) => RoomStateWrite::Unpublish,
        }
    }

    /// Whether a change of the call (participants, transcription, minutes)
    /// goes to the room's `org.salon.call`: not while the room has never
    /// shown the call, which is then published whole once the bot may.
    pub fn room_shows_changes(&self) -> bool {
        self.room_view != RoomView::Missing
    }

    /// A write of the call's room state failed (a refusal: the bot lacks
    /// power). `wrote_some`: part of it went through before the failure.
    /// Returns whether the record changed (and must be saved).
    pub fn room_state_failed(&mut self, wrote_some: bool) -> bool {
        let view = match self.room_view {
            RoomView::Missing if !wrote_some => RoomView::Missing,
            _ => RoomView::Behind,
        };
        std::mem::replace(&mut self.room_view, view) != view
    }

    /// The room's state was written as the call is now.
    pub fn room_state_written(&mut self) -> bool {
        std::mem::replace(&mut self.room_view, RoomView::Current) != RoomView::Current
    }

    /// Whether the room's state does not show the call as it is.
    pub fn hidden_from_room(&self) -> bool {
        self.room_view != RoomView::Current
    }

    /// Whether the call should end by itself at `now`, and why.
    pub fn timeout_due(
        &self,
        now: Millis,
        empty_grace: Duration,
        unjoined: Duration,
    ) -> Option<EndReason> {
        if !self.is_active() {
            return None;
        }
        if let Some(since) = self.empty_since
            && now.saturating_sub(since) >= empty_grace.as_millis() as u64
        {
            return Some(EndReason::Empty);
        }
        if self.attendees.is_empty()
            && now.saturating_sub(self.started_at) >= unjoined.as_millis() as u64
        {
            return Some(EndReason::Unjoined);
        }
        None
    }
}

/// Who asks to start a call, where, and when.
#[derive(Debug, Clone)]
pub struct StartRequest<'a> {
    pub room_id: &'a OwnedRoomId,
    pub by: &'a UserId,
    pub by_power: i64,
    pub event: Option<OwnedEventId>,
    pub now: Millis,
}

/// Decides what `!visio start` does in a room whose current call is `current`.
pub fn start(
    current: Option<&Call>,
    req: StartRequest<'_>,
    new_id: impl FnOnce() -> String,
    rules: &Permissions,
) -> Result<StartOutcome, Refusal> {
    if let Some(call) = current.filter(|c| c.is_active()) {
        return Ok(StartOutcome::AlreadyLive(call.clone()));
    }
    if req.by_power < rules.start_power_level {
        return Err(Refusal::CannotStart {
            required: rules.start_power_level,
            actual: req.by_power,
        });
    }
    Ok(StartOutcome::Started(fresh_call(
        req,
        new_id(),
        CallOrigin::Command,
    )))
}

/// A call that has just begun.
fn fresh_call(req: StartRequest<'_>, id: String, origin: CallOrigin) -> Call {
    Call {
        id,
        room_id: req.room_id.clone(),
        state: CallState::Active,
        started_by: req.by.to_owned(),
        started_by_event: req.event,
        started_at: req.now,
        ended_at: None,
        end_reason: None,
        ended_by: None,
        ended_by_event: None,
        participants: BTreeSet::new(),
        attendees: BTreeSet::new(),
        empty_since: None,
        minutes_event_id: None,
        transcribing: false,
        transcript_thread: None,
        transcription_sessions: 0,
        minutes_owed: false,
        // nothing is in the room until the caller publishes it
        room_view: RoomView::Missing,
        origin,
        bot_membership: None,
        bot_membership_at: None,
        locked_by: None,
        removed: BTreeSet::new(),
        moderation: Vec::new(),
    }
}

/// Decides what a MatrixRTC session beginning in a room makes of it: its
/// call, started by the member who joined first, unless a call is live
/// (which the session then is). No power check: the homeserver let them
/// write the membership, and Element already shows the call.
pub fn start_from_session(
    current: Option<&Call>,
    req: StartRequest<'_>,
    new_id: impl FnOnce() -> String,
) -> StartOutcome {
    match current.filter(|c| c.is_active()) {
        Some(call) => StartOutcome::AlreadyLive(call.clone()),
        None => StartOutcome::Started(fresh_call(req, new_id(), CallOrigin::MatrixRtc)),
    }
}

/// What `!visio transcribe on|off` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscribeOutcome {
    /// It was off and is now on (the caller announces it).
    TurnedOn,
    /// It was on and is now off.
    TurnedOff,
    /// It was already as asked.
    Unchanged,
}

/// Decides `!visio transcribe on|off` for the room's live call. Consent is a
/// power-level matter: only members with the configured level may change it.
pub fn set_transcription(
    current: Option<&mut Call>,
    on: bool,
    by_power: i64,
    enabled_on_server: bool,
    rules: &Permissions,
) -> Result<TranscribeOutcome, Refusal> {
    let call = current
        .filter(|c| c.is_active())
        .ok_or(Refusal::NoLiveCall)?;
    if by_power < rules.transcribe_power_level {
        return Err(Refusal::CannotTranscribe {
            required: rules.transcribe_power_level,
            actual: by_power,
        });
    }
    if on && !enabled_on_server {
        return Err(Refusal::TranscriptionDisabled);
    }
    if call.transcribing == on {
        return Ok(TranscribeOutcome::Unchanged);
    }
    call.transcribing = on;
    if on {
        call.transcription_sessions += 1;
        call.transcript_thread = None;
    }
    Ok(if on {
        TranscribeOutcome::TurnedOn
    } else {
        TranscribeOutcome::TurnedOff
    })
}

/// Decides whether `by` may stop `current`: the starter always may, others need
/// the configured power level.
pub fn may_stop<'c>(
    current: Option<&'c Call>,
    by: &UserId,
    by_power: i64,
    rules: &Permissions,
) -> Result<&'c Call, Refusal> {
    let call = current
        .filter(|c| c.is_active())
        .ok_or(Refusal::NoLiveCall)?;
    if call.started_by == by || by_power >= rules.stop_power_level {
        Ok(call)
    } else {
        Err(Refusal::CannotStop {
            required: rules.stop_power_level,
            actual: by_power,
        })
    }
}

/// A duration in words, e.g. "1 h 05 min", "12 min 30 s", "45 s".
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{owned_room_id, owned_user_id};

    const RULES: Permissions = Permissions {
        start_power_level: 0,
        stop_power_level: 50,
        transcribe_power_level: 50,
        moderate_power_level: 50,
    };

    fn req<'a>(
        room_id: &'a OwnedRoomId,
        by: &'a UserId,
        by_power: i64,
        now: Millis,
    ) -> StartRequest<'a> {
        StartRequest {
            room_id,
            by,
            by_power,
            event: None,
            now,
        }
    }

    fn started(now: Millis) -> Call {
        match start(
            None,
            req(
                &owned_room_id!("!r:example.org"),
                &owned_user_id!("@alice:example.org"),
                0,
                now,
            ),
            || "call1".into(),
            &RULES,
        )
        .unwrap()
        {
            StartOutcome::Started(c) => c,
            other => panic!("expected a new call, got {other:?}"),
        }
    }

    #[test]
    fn starting_twice_returns_the_live_call() {
        let call = started(1_000);
        let again = start(
            Some(&call),
            req(&call.room_id, &owned_user_id!("@bob:example.org"), 0, 2_000),
            || panic!("no new id may be made for a live call"),
            &RULES,
        )
        .unwrap();
        assert_eq!(again, StartOutcome::AlreadyLive(call));
    }

    #[test]
    fn an_ended_call_does_not_block_a_new_one() {
        let mut call = started(1_000);
        assert!(call.end(5_000, EndReason::Stopped, None));
        let next = start(
            Some(&call),
            req(&call.room_id, &owned_user_id!("@bob:example.org"), 0, 6_000),
            || "call2".into(),
            &RULES,
        )
        .unwrap();
        assert!(matches!(next, StartOutcome::Started(c) if c.id == "call2"));
    }

    #[test]
    fn start_needs_the_configured_power() {
        let strict = Permissions {
            start_power_level: 50,
            stop_power_level: 50,
            transcribe_power_level: 50,
            moderate_power_level: 50,
        };
        let refused = start(
            None,
            req(
                &owned_room_id!("!r:example.org"),
                &owned_user_id!("@eve:example.org"),
                0,
                0,
            ),
            || "x".into(),
            &strict,
        )
        .unwrap_err();
        assert_eq!(
            refused,
            Refusal::CannotStart {
                required: 50,
                actual: 0
            }
        );
        assert!(refused.to_string().contains("power level 50"));
    }

    #[test]
    fn starter_or_moderator_may_stop_others_are_told_why() {
        let call = started(0);
        assert!(
            may_stop(
                Some(&call),
                &owned_user_id!("@alice:example.org"),
                0,
                &RULES
            )
            .is_ok()
        );
        assert!(may_stop(Some(&call), &owned_user_id!("@mod:example.org"), 50, &RULES).is_ok());
        let refused =
            may_stop(Some(&call), &owned_user_id!("@bob:example.org"), 10, &RULES).unwrap_err();
        assert_eq!(
            refused,
            Refusal::CannotStop {
                required: 50,
                actual: 10
            }
        );
        assert_eq!(
            may_stop(None, &owned_user_id!("@alice:example.org"), 100, &RULES).unwrap_err(),
            Refusal::NoLiveCall
        );
    }

    #[test]
    fn stopping_twice_is_a_no_op() {
        let mut call = started(1_000);
        assert!(call.end(61_000, EndReason::Stopped, None));
        assert!(!call.end(99_000, EndReason::Stopped, None));
        assert_eq!(call.ended_at, Some(61_000));
        assert_eq!(call.duration(500_000), Duration::from_secs(60));
        assert_eq!(
            may_stop(
                Some(&call),
                &owned_user_id!("@alice:example.org"),
                0,
                &RULES
            )
            .unwrap_err(),
            Refusal::NoLiveCall
        );
    }

    #[test]
    fn last_participant_leaving_starts_the_grace_period() {
        let grace = Duration::from_secs(120);
        let unjoined = Duration::from_secs(3600);
        let mut call = started(0);
        let (alice, bob) = (
            owned_user_id!("@alice:example.org"),
            owned_user_id!("@bob:example.org"),
        );
        assert!(call.join(&alice));
        assert!(call.join(&bob));
        assert!(!call.join(&bob), "joining twice changes nothing");
        assert!(call.leave(&alice, 10_000));
        assert_eq!(call.empty_since, None, "bob is still there");
        assert!(call.leave(&bob, 20_000));
        assert_eq!(call.timeout_due(20_000 + 119_999, grace, unjoined), None);
        // Coming back within the grace period cancels it.
        call.join(&alice);
        assert_eq!(call.timeout_due(20_000 + 500_000, grace, unjoined), None);
        call.leave(&alice, 600_000);
        assert_eq!(
            call.timeout_due(720_000, grace, unjoined),
            Some(EndReason::Empty)
        );
        assert_eq!(call.attendees.len(), 2);
    }

    #[test]
    fn a_call_nobody_joins_times_out() {
        let call = started(0);
        let grace = Duration::from_secs(120);
        let unjoined = Duration::from_secs(3600);
        assert_eq!(call.timeout_due(3_599_999, grace, unjoined), None);
        assert_eq!(
            call.timeout_due(3_600_000, grace, unjoined),
            Some(EndReason::Unjoined)
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(45)), "45 s");
        assert_eq!(human_duration(Duration::from_secs(750)), "12 min 30 s");
        assert_eq!(human_duration(Duration::from_secs(3900)), "1 h 05 min");
    }

    #[test]
    fn transcription_needs_a_live_call_and_the_configured_power() {
        let mut call = started(1_000);
        assert_eq!(
            set_transcription(Some(&mut call), true, 0, true, &RULES),
            Err(Refusal::CannotTranscribe {
                required: 50,
                actual: 0
            })
        );
        assert!(!call.transcribing);
        assert_eq!(
            set_transcription(Some(&mut call), true, 50, false, &RULES),
            Err(Refusal::TranscriptionDisabled)
        );
        assert_eq!(
            set_transcription(Some(&mut call), true, 50, true, &RULES),
            Ok(TranscribeOutcome::TurnedOn)
        );
        assert!(call.transcribing);
        assert_eq!(call.transcription_sessions, 1);
        assert_eq!(
            set_transcription(Some(&mut call), true, 100, true, &RULES),
            Ok(TranscribeOutcome::Unchanged)
        );
        // off is allowed even where the server no longer allows on
        assert_eq!(
            set_transcription(Some(&mut call), false, 50, false, &RULES),
            Ok(TranscribeOutcome::TurnedOff)
        );
        assert_eq!(
            set_transcription(Some(&mut call), true, 50, true, &RULES),
            Ok(TranscribeOutcome::TurnedOn)
        );
        assert_eq!(call.transcription_sessions, 2);
        assert!(call.end(9_000, EndReason::Stopped, None));
        assert!(!call.transcribing, "an ended call transcribes nothing");
        assert_eq!(
            set_transcription(Some(&mut call), true, 100, true, &RULES),
            Err(Refusal::NoLiveCall)
        );
        assert_eq!(
            set_transcription(None, true, 100, true, &RULES),
            Err(Refusal::NoLiveCall)
        );
    }

    #[test]
    fn a_call_the_room_cannot_show_is_published_once_the_bot_may() {
        // started by a bot without power: nothing in the room yet
        let mut call = started(1_000);
        assert_eq!(call.room_view, RoomView::Missing);
        assert_eq!(call.room_state_owed(), RoomStateWrite::Publish);
        assert!(call.hidden_from_room());
        assert!(
            !call.room_shows_changes(),
            "a participant joining writes nothing: the room has no call to update"
        );
        // a refused attempt that wrote nothing changes nothing
        assert!(!call.room_state_failed(false));
        assert_eq!(call.room_state_owed(), RoomStateWrite::Publish);
        // promoted: published whole, then changes follow
        assert!(call.room_state_written());
        assert!(!call.room_state_written(), "written once is written");
        assert_eq!(call.room_state_owed(), RoomStateWrite::Nothing);
        assert!(call.room_shows_changes());
        assert!(!call.hidden_from_room());
    }

    #[test]
    fn an_ended_call_the_room_never_showed_is_never_written() {
        let mut call = started(1_000);
        call.join(&owned_user_id!("@bob:example.org"));
        assert!(call.end(5_000, EndReason::Stopped, None));
        assert_eq!(call.room_view, RoomView::Missing);
        assert_eq!(
            call.room_state_owed(),
            RoomStateWrite::Nothing,
            "an ended call would be stale news in the header"
        );
        assert!(!call.room_shows_changes(), "nor its minutes link");
    }

    #[test]
    fn a_shown_call_whose_end_could_not_be_written_is_cleared_later() {
        let mut call = started(1_000);
        call.room_state_written();
        assert!(call.end(5_000, EndReason::Stopped, None));
        assert_eq!(call.room_state_owed(), RoomStateWrite::Unpublish);
        // the bot lost its power meanwhile
        assert!(!call.room_state_failed(false), "already behind");
        assert_eq!(call.room_state_owed(), RoomStateWrite::Unpublish);
        assert!(call.room_state_written());
        assert_eq!(call.room_state_owed(), RoomStateWrite::Nothing);
    }

    #[test]
    fn a_refused_update_or_a_half_written_start_is_owed_whole() {
        let mut live = started(1_000);
        live.room_state_written();
        assert!(
            live.room_state_failed(false),
            "participants could not be shown"
        );
        assert_eq!(live.room_state_owed(), RoomStateWrite::Publish);
        assert!(live.room_shows_changes());
        let mut half = started(1_000);
        assert!(
            half.room_state_failed(true),
            "the call state went out, the widget was refused"
        );
        assert_eq!(half.room_view, RoomView::Behind);
        assert_eq!(half.room_state_owed(), RoomStateWrite::Publish);
        half.end(2_000, EndReason::Failed, None);
        assert_eq!(half.room_state_owed(), RoomStateWrite::Unpublish);
    }

    #[test]
    fn calls_stored_before_room_views_were_recorded_read_as_shown() {
        let mut call = started(1_000);
        call.room_state_written();
        let mut json = serde_json::to_value(&call).unwrap();
        json.as_object_mut().unwrap().remove("room_view");
        let old: Call = serde_json::from_value(json).unwrap();
        assert_eq!(old, call);
        assert_eq!(
            serde_json::to_value(RoomView::Missing).unwrap(),
            serde_json::json!("missing")
        );
    }

    #[test]
    fn only_a_call_someone_joined_owes_minutes() {
        let mut empty = started(1_000);
        assert!(empty.end(2_000, EndReason::Unjoined, None));
        assert!(!empty.minutes_owed, "nobody came: nothing to write up");
        let mut met = started(1_000);
        met.join(&ruma::owned_user_id!("@bob:example.org"));
        met.leave(&ruma::owned_user_id!("@bob:example.org"), 1_500);
        assert!(met.end(3_000, EndReason::Empty, None));
        assert!(met.minutes_owed);
        let mut hidden = started(1_000);
        hidden.join(&ruma::owned_user_id!("@bob:example.org"));
        assert!(hidden.end(3_000, EndReason::Failed, None));
        assert!(!hidden.minutes_owed);
    }

    #[test]
    fn a_matrixrtc_session_starts_a_call_unless_one_is_live() {
        let room = owned_room_id!("!r:hs");
        let alice = owned_user_id!("@alice:hs");
        let req = || StartRequest {
            room_id: &room,
            by: &alice,
            by_power: 0,
            event: None,
            now: 5,
        };
        let StartOutcome::Started(call) = start_from_session(None, req(), || "c1".into()) else {
            panic!("a session in a room without a call starts one");
        };
        assert_eq!(call.origin, CallOrigin::MatrixRtc);
        assert_eq!(call.started_by, alice);
        assert_eq!(call.media_room(), crate::rtc::room_media_name("!r:hs"));
        // the session joins a live call, whoever started it
        let live = start_from_session(Some(&call), req(), || "c2".into());
        assert_eq!(live, StartOutcome::AlreadyLive(call.clone()));
        let mut ended = call;
        ended.end(6, EndReason::Stopped, None);
        assert!(matches!(
            start_from_session(Some(&ended), req(), || "c3".into()),
            StartOutcome::Started(c) if c.id == "c3"
        ));
    }
}
