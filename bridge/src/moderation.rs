//! Moderation, as pure rules: who may mute or remove whom, lock the call, and
//! who a locked call or a removal still lets in.
//!
//! Flow: a `!visio mute|remove|lock|unlock` command (`commands`) or the call
//! page's buttons (`access`'s moderation route) name an [`Action`]; the room's
//! worker reads the power levels, asks [`decide`], saves the call and then
//! performs it (`room/moderation.rs`: the media backend mutes or removes, the
//! room gets an `org.salon.moderation` notice, the call a data message so
//! that the person affected sees who acted). [`admits`] is asked by every
//! way into a call (the page's join, the MatrixRTC focus).

use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use crate::calls::{Call, Millis, Refusal};
use crate::config::Permissions;

/// At most this many acts are kept per call (the oldest go first).
const MAX_ACTS: usize = 500;

/// What a moderator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Mute someone's microphone.
    Mute,
    /// Stop someone's camera and screen share.
    StopVideo,
    /// Mute everyone's microphone but the moderator's.
    MuteAll,
    /// Remove someone from the call; they cannot rejoin it.
    Remove,
    /// No new joins except moderators.
    Lock,
    Unlock,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 6] = [
        Action::Mute,
        Action::StopVideo,
        Action::MuteAll,
        Action::Remove,
        Action::Lock,
        Action::Unlock,
    ];

    /// The stable name in `org.salon.moderation.action` and the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Action::Mute => "mute",
            Action::StopVideo => "stop_video",
            Action::MuteAll => "mute_all",
            Action::Remove => "remove",
            Action::Lock => "lock",
            Action::Unlock => "unlock",
        }
    }

    /// From [`Action::name`].
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether it acts on one person.
    pub fn needs_target(self) -> bool {
        matches!(self, Action::Mute | Action::StopVideo | Action::Remove)
    }

    /// In words, for notices and the minutes: "muted", "removed"…
    pub fn past_tense(self) -> &'static str {
        match self {
            Action::Mute => "muted",
            Action::StopVideo => "stopped the camera of",
            Action::MuteAll => "muted everyone",
            Action::Remove => "removed",
            Action::Lock => "locked the call",
            Action::Unlock => "unlocked the call",
        }
    }
}

/// One moderation act, as the call keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Act {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<OwnedUserId>,
    pub by: OwnedUserId,
    pub at: Millis,
}

impl Act {
    /// "@mod:hs muted @bob:hs", "@mod:hs locked the call".
    pub fn sentence(&self) -> String {
        match &self.target {
            Some(target) => format!("{} {} {}", self.by, self.action.past_tense(), target),
            None => format!("{} {}", self.by, self.action.past_tense()),
        }
    }
}

/// What [`decide`] made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Recorded on the call: perform it.
    Apply,
    /// Already so (lock of a locked call): nothing to do.
    Unchanged,
}

/// A moderation request, as the room's worker reads it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub action: Action,
    pub target: Option<&'a UserId>,
    pub by: &'a UserId,
    pub by_power: i64,
    /// The target's power level (0 without a target).
    pub target_power: i64,
    pub now: Millis,
}

/// Decides a moderation request against the room's live call, and records
/// it there when it is to be performed. As with a Matrix kick, a moderator
/// acts only on people below their own power level (themselves excepted,
/// for a mute).
pub fn decide(
    current: Option<&mut Call>,
    req: Request<'_>,
    rules: &Permissions,
) -> Result<Verdict, Refusal> {
    let call = current
        .filter(|c| c.is_active())
        .ok_or(Refusal::NoLiveCall)?;
    if req.by_power < rules.moderate_power_level {
        return Err(Refusal::CannotModerate {
            required: rules.moderate_power_level,
            actual: req.by_power,
        });
    }
    let target = match (req.action.needs_target(), req.target) {
        (true, Some(target)) => Some(target),
        (true, None) => return Err(Refusal::NoTarget),
        (false, _) => None,
    };
    if let Some(target) = target {
        if target == req.by {
            if req.action == Action::Remove {
                return Err(Refusal::CannotRemoveSelf);
            }
        } else if req.target_power >= req.by_power {
            return Err(Refusal::Outranked {
                target: target.to_owned(),
                level: req.target_power,
            });
        }
    }
    match req.action {
        Action::Lock if call.locked_by.is_some() => return Ok(Verdict::Unchanged),
        Action::Unlock if call.locked_by.is_none() => return Ok(Verdict::Unchanged),
        Action::Lock => call.locked_by = Some(req.by.to_owned()),
        Action::Unlock => call.locked_by = None,
        Action::Remove => {
            call.removed
                .insert(target.expect("checked above").to_owned());
        }
        Action::Mute | Action::StopVideo | Action::MuteAll => {}
    }
    if call.moderation.len() >= MAX_ACTS {
        call.moderation.remove(0);
    }
    call.moderation.push(Act {
        action: req.action,
        target: target.map(ToOwned::to_owned),
        by: req.by.to_owned(),
        at: req.now,
    });
    Ok(Verdict::Apply)
}

/// Whether `call` lets `user` (of `user_power`) join: not if a moderator
/// removed them, nor, while it is locked, unless they are a moderator.
pub fn admits(
    call: &Call,
    user: &UserId,
    user_power: i64,
    rules: &Permissions,
) -> Result<(), Refusal> {
    if call.removed.contains(user) {
        return Err(Refusal::RemovedFromCall);
    }
    match &call.locked_by {
        Some(by) if user_power < rules.moderate_power_level => {
            Err(Refusal::CallLocked { by: by.clone() })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::{StartOutcome, StartRequest, start};
    use ruma::{owned_room_id, owned_user_id, user_id};

    const RULES: Permissions = Permissions {
        start_power_level: 0,
        stop_power_level: 50,
        transcribe_power_level: 50,
        moderate_power_level: 50,
    };

    fn live_call() -> Call {
        let room = owned_room_id!("!r:hs");
        let started = start(
            None,
            StartRequest {
                room_id: &room,
                by: user_id!("@alice:hs"),
                by_power: 0,
                event: None,
                now: 1,
            },
            || "c1".into(),
            &RULES,
        );
        match started {
            Ok(StartOutcome::Started(call)) => call,
            other => panic!("{other:?}"),
        }
    }

    fn req<'a>(action: Action, target: Option<&'a UserId>, by_power: i64) -> Request<'a> {
        Request {
            action,
            target,
            by: user_id!("@mod:hs"),
            by_power,
            target_power: 0,
            now: 10,
        }
    }

    #[test]
    fn a_moderator_mutes_and_the_act_is_recorded() {
        let mut call = live_call();
        let bob = user_id!("@bob:hs");
        let verdict = decide(Some(&mut call), req(Action::Mute, Some(bob), 50), &RULES);
        assert_eq!(verdict, Ok(Verdict::Apply));
        assert_eq!(call.moderation.len(), 1);
        assert_eq!(call.moderation[0].sentence(), "@mod:hs muted @bob:hs");
        // A mute bars nobody.
        assert_eq!(admits(&call, bob, 0, &RULES), Ok(()));
    }

    #[test]
    fn a_member_without_the_level_is_refused_and_nothing_is_recorded() {
        let mut call = live_call();
        let bob = user_id!("@bob:hs");
        for action in [Action::Mute, Action::Remove, Action::Lock, Action::MuteAll] {
            let verdict = decide(Some(&mut call), req(action, Some(bob), 49), &RULES);
            assert_eq!(
                verdict,
                Err(Refusal::CannotModerate {
                    required: 50,
                    actual: 49
                }),
                "{action:?}"
            );
        }
        assert!(call.moderation.is_empty() && call.removed.is_empty());
        assert!(call.locked_by.is_none());
    }

    #[test]
    fn nobody_acts_on_an_equal_or_a_superior() {
        let mut call = live_call();
        let admin = user_id!("@admin:hs");
        let mut request = req(Action::Remove, Some(admin), 50);
        request.target_power = 50;
        assert_eq!(
            decide(Some(&mut call), request, &RULES),
            Err(Refusal::Outranked {
                target: admin.to_owned(),
                level: 50
            })
        );
        assert!(call.removed.is_empty());
    }

    #[test]
    fn a_removed_person_is_refused_until_the_call_ends() {
        let mut call = live_call();
        let bob = user_id!("@bob:hs");
        decide(Some(&mut call), req(Action::Remove, Some(bob), 100), &RULES).unwrap();
        assert_eq!(admits(&call, bob, 0, &RULES), Err(Refusal::RemovedFromCall));
        // Even a moderator removed by a superior stays out.
        assert_eq!(
            admits(&call, bob, 50, &RULES),
            Err(Refusal::RemovedFromCall)
        );
        assert_eq!(admits(&call, user_id!("@carol:hs"), 0, &RULES), Ok(()));
        // Removing oneself is hanging up.
        let me = user_id!("@mod:hs");
        assert_eq!(
            decide(Some(&mut call), req(Action::Remove, Some(me), 100), &RULES),
            Err(Refusal::CannotRemoveSelf)
        );
    }

    #[test]
    fn a_locked_call_admits_moderators_only_until_it_is_unlocked() {
        let mut call = live_call();
        let carol = user_id!("@carol:hs");
        assert_eq!(
            decide(Some(&mut call), req(Action::Lock, None, 50), &RULES),
            Ok(Verdict::Apply)
        );
        assert_eq!(
            decide(Some(&mut call), req(Action::Lock, None, 50), &RULES),
            Ok(Verdict::Unchanged)
        );
        assert_eq!(
            admits(&call, carol, 0, &RULES),
            Err(Refusal::CallLocked {
                by: owned_user_id!("@mod:hs")
            })
        );
        assert_eq!(admits(&call, carol, 50, &RULES), Ok(()));
        assert_eq!(
            decide(Some(&mut call), req(Action::Unlock, None, 50), &RULES),
            Ok(Verdict::Apply)
        );
        assert_eq!(admits(&call, carol, 0, &RULES), Ok(()));
        let actions: Vec<_> = call.moderation.iter().map(|a| a.action).collect();
        assert_eq!(actions, [Action::Lock, Action::Unlock]);
    }

    #[test]
    fn no_live_call_no_moderation() {
        let mut call = live_call();
        call.state = crate::calls::CallState::Ended;
        assert_eq!(
            decide(Some(&mut call), req(Action::Lock, None, 100), &RULES),
            Err(Refusal::NoLiveCall)
        );
        assert_eq!(
            decide(None, req(Action::Lock, None, 100), &RULES),
            Err(Refusal::NoLiveCall)
        );
    }

    #[test]
    fn action_names_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::from_name(action.name()), Some(action));
        }
        assert_eq!(Action::from_name("ban"), None);
    }
}
