//! MatrixRTC, as the bridge reads it: the names a room's call has on the
//! LiveKit side (MSC4195, as lk-jwt-service computes them) and the call
//! memberships Element Call writes into the room. Pure: no I/O.
//!
//! Where it sits: `focus.rs` names the LiveKit room and identity of each
//! token with [`livekit_room`], [`legacy_identity`] and [`hashed_identity`];
//! every Salon call joins the same LiveKit room ([`room_media_name`]), so
//! people on Salon's page and in Element Call meet. `store/event.rs` reads
//! `org.matrix.msc3401.call.member` state events and sticky
//! `org.matrix.msc4143.rtc.member` events into a [`MemberChange`] with
//! [`read_call_member`] / [`read_rtc_member`]; the room's worker applies it to
//! the room's [`RtcMembers`] (kept in its settings) and starts a Salon call
//! when a MatrixRTC session begins in a room without one.

use std::collections::BTreeMap;

use base64::Engine;
use ruma::OwnedUserId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The slot of a room's one call: what `/sfu/get` always joins, so that both
/// token endpoints (and Salon's own page) meet in the same LiveKit room.
pub const ROOM_SLOT: &str = "m.call#ROOM";
/// The state event of a call membership (MSC3401, what Element Call 0.26
/// writes in its default mode).
pub const CALL_MEMBER_EVENT: &str = "org.matrix.msc3401.call.member";
/// The sticky timeline event of a call membership (MSC4143, `matrix_2_0`).
pub const RTC_MEMBER_EVENT: &str = "org.matrix.msc4143.rtc.member";
/// How long a sticky membership lives when it does not say (Element Call
/// sends them with a one-hour sticky duration and refreshes them).
const STICKY_DEFAULT_MS: u64 = 3_600_000;

/// The LiveKit room of a MatrixRTC slot (MSC4195):
/// `unpaddedStdBase64(SHA-256(JSON [room_id, slot_id]))`.
pub fn livekit_room(room_id: &str, slot_id: &str) -> String {
    hash_of_strings(&[room_id, slot_id])
}

/// The LiveKit room of a Matrix room's call: Element Call's (the
/// [`ROOM_SLOT`]), which Salon's own calls use too.
pub fn room_media_name(room_id: &str) -> String {
    livekit_room(room_id, ROOM_SLOT)
}

/// The LiveKit identity of a MatrixRTC member (MSC4195), as `/get_token`
/// gives it: `unpaddedStdBase64(SHA-256(JSON [mxid, device_id, member_id]))`.
pub fn hashed_identity(user_id: &str, device_id: &str, member_id: &str) -> String {
    hash_of_strings(&[user_id, device_id, member_id])
}

/// The LiveKit identity `/sfu/get` gives: `{mxid}:{device_id}`, what Element
/// Call expects of a state-event member.
pub fn legacy_identity(user_id: &str, device_id: &str) -> String {
    format!("{user_id}:{device_id}")
}

/// The hash of a JSON list of strings, written as Go's `json.Marshal` writes
/// it (compact; `<`, `>`, `&`, U+2028 and U+2029 escaped), so that the names
/// match lk-jwt-service's for every input.
fn hash_of_strings(parts: &[&str]) -> String {
    let compact = serde_json::to_string(parts).expect("a list of strings serialises");
    let mut go = String::with_capacity(compact.len());
    for c in compact.chars() {
        match c {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                go.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => go.push(c),
        }
    }
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(go.as_bytes()))
}

/// The state key of `user`'s `device` membership, as Element Call writes it
/// (the leading `_` keeps it clear of the rule that a key starting with `@`
/// is the sender's own, in the room versions without MSC3757).
pub fn membership_state_key(user: &str, device: &str) -> String {
    format!("_{user}_{device}_m.call")
}

/// How long a membership Salon writes lasts (Element Call's 4 h).
pub const MEMBERSHIP_LASTS_MS: u64 = 14_400_000;

/// Whether a membership Salon wrote at `written_at` (ms) should be written
/// again at `now`: an hour before it lapses, or when nobody knows when.
pub fn membership_refresh_due(written_at: Option<u64>, now: u64) -> bool {
    written_at.is_none_or(|at| now.saturating_sub(at) >= MEMBERSHIP_LASTS_MS - 3_600_000)
}

/// A call membership for `user`'s `device` in `room_id`'s call, naming
/// Salon's focus at `focus_url`, as Element Call 0.26 writes its own,
/// created at `created_ts` (ms): it lasts [`MEMBERSHIP_LASTS_MS`] from then
/// (a rewrite with a new `created_ts` refreshes it; the homeserver would
/// ignore a rewrite of the same content).
pub fn membership_content(
    user: &str,
    device: &str,
    room_id: &str,
    focus_url: &str,
    created_ts: u64,
) -> serde_json::Value {
    serde_json::json!({
        "application": "m.call", "call_id": "", "scope": "m.room",
        "device_id": device, "membershipID": legacy_identity(user, device),
        "expires": MEMBERSHIP_LASTS_MS, "created_ts": created_ts, "m.call.intent": "audio",
        "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
        "foci_preferred": [{"type": "livekit", "livekit_alias": room_id, "livekit_service_url": focus_url}],
    })
}

/// One device's membership of the room's call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcMember {
    pub user_id: OwnedUserId,
    pub device_id: String,
    /// When the membership lapses unless refreshed (ms since the epoch).
    pub expires_at: u64,
}

/// What a membership event says about one membership slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    /// The slot: a state key, or the sender and sticky key of a sticky event.
    pub key: String,
    /// The device's membership, or `None`: it left (or this is not a
    /// membership of the room's call).
    pub device: Option<(String, u64)>,
}

/// Reads an `org.matrix.msc3401.call.member` state event's content.
/// `origin_ts` is the event's `origin_server_ts`. A membership of another
/// application or scope, or an empty content, is a leave of that slot.
pub fn read_call_member(
    state_key: &str,
    content: &serde_json::Value,
    origin_ts: u64,
) -> MemberChange {
    let key = format!("state:{state_key}");
    let text = |name: &str| content.get(name).and_then(|v| v.as_str());
    let of_the_room_call = text("application") == Some("m.call")
        && text("scope").unwrap_or("m.room") == "m.room"
        && text("call_id").unwrap_or("").is_empty();
    let device = match text("device_id") {
        Some(device) if of_the_room_call && usable_device(device) => {
            let since = content
                .get("created_ts")
                .and_then(|v| v.as_u64())
                .unwrap_or(origin_ts);
            let lasts = content
                .get("expires")
                .and_then(|v| v.as_u64())
                .unwrap_or(4 * 3_600_000);
            Some((device.to_owned(), since.saturating_add(lasts)))
        }
        _ => None,
    };
    MemberChange { key, device }
}

/// Reads a sticky `org.matrix.msc4143.rtc.member` event sent by `sender`.
/// The member must be the sender; another slot than the room's call, or no
/// application, is a leave of that slot.
pub fn read_rtc_member(sender: &str, content: &serde_json::Value, origin_ts: u64) -> MemberChange {
    let member = content.get("member");
    let field = |name: &str| member.and_then(|m| m.get(name)).and_then(|v| v.as_str());
    let sticky_key = content
        .get("msc4354_sticky_key")
        .and_then(|v| v.as_str())
        .or_else(|| field("id"))
        .unwrap_or("");
    let key = format!("sticky:{sender}|{sticky_key}");
    let application = content
        .get("application")
        .and_then(|a| a.get("type"))
        .and_then(|v| v.as_str());
    let slot = content.get("slot_id").and_then(|v| v.as_str());
    let device = match (field("user_id"), field("device_id")) {
        (Some(user), Some(device))
            if user == sender
                && application == Some("m.call")
                && slot.unwrap_or(ROOM_SLOT) == ROOM_SLOT
                && usable_device(device) =>
        {
            Some((
                device.to_owned(),
                origin_ts.saturating_add(STICKY_DEFAULT_MS),
            ))
        }
        _ => None,
    };
    MemberChange { key, device }
}

fn usable_device(device: &str) -> bool {
    !device.is_empty() && device.len() <= 255 && device.bytes().all(|b| b.is_ascii_graphic())
}

/// What applying a membership change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A device joined that was not in the call.
    Joined,
    /// A device's membership was refreshed.
    Refreshed,
    /// A device left.
    Left,
    /// Nothing changed.
    Nothing,
}

/// The call memberships of one room, by slot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcMembers(pub BTreeMap<String, RtcMember>);

impl RtcMembers {
    /// Applies what `sender`'s event says; `now` drops lapsed memberships.
    pub fn apply(&mut self, sender: &OwnedUserId, change: MemberChange, now: u64) -> Applied {
        self.0.retain(|_, m| m.expires_at > now);
        match change.device {
            Some((device_id, expires_at)) if expires_at > now => {
                let member = RtcMember {
                    user_id: sender.clone(),
                    device_id,
                    expires_at,
                };
                match self.0.insert(change.key, member.clone()) {
                    Some(old)
                        if old.user_id == member.user_id && old.device_id == member.device_id =>
                    {
                        Applied::Refreshed
                    }
                    _ => Applied::Joined,
                }
            }
            _ => match self.0.remove(&change.key) {
                Some(_) => Applied::Left,
                None => Applied::Nothing,
            },
        }
    }

    /// The memberships that have not lapsed at `now`.
    pub fn active(&self, now: u64) -> impl Iterator<Item = &RtcMember> {
        self.0.values().filter(move |m| m.expires_at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::owned_user_id;
    use serde_json::json;

    #[test]
    fn names_match_lk_jwt_services_test_vectors() {
        assert_eq!(
            livekit_room("!roomid:example.com", "slot1234"),
            "O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc"
        );
        assert_eq!(
            hashed_identity("@alice:example.com", "DEVICE123", "memberABC"),
            "J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU"
        );
        assert_eq!(
            legacy_identity("@alice:example.org", "ABCDEF"),
            "@alice:example.org:ABCDEF"
        );
    }

    #[test]
    fn names_hash_the_json_go_writes() {
        // Go's json.Marshal escapes these; serde_json does not.
        let expected = base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(
            br#"["!a\u003cb\u003e\u0026c:hs","\u2028\u2029"]"#,
        ));
        assert_eq!(livekit_room("!a<b>&c:hs", "\u{2028}\u{2029}"), expected);
        // Plain ids hash their compact JSON.
        let plain = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(Sha256::digest(br#"["!r:hs","m.call#ROOM"]"#));
        assert_eq!(room_media_name("!r:hs"), plain);
    }

    /// The content Element Call 0.26.1 wrote, as observed
    /// (`../shared/notes/element-call.md` §4.1).
    fn element_call_membership() -> serde_json::Value {
        json!({"application":"m.call","call_id":"","scope":"m.room","device_id":"DEVA",
            "membershipID":"@a:localhost:DEVA","expires":14400000,"m.call.intent":"video",
            "focus_active":{"type":"livekit","focus_selection":"multi_sfu"},
            "foci_preferred":[{"livekit_alias":"!r:localhost","type":"livekit",
                "livekit_service_url":"http://localhost:7880/jwt"}]})
    }

    #[test]
    fn element_calls_state_membership_is_read() {
        let change = read_call_member(
            "_@a:localhost_DEVA_m.call",
            &element_call_membership(),
            1_000,
        );
        assert_eq!(change.key, "state:_@a:localhost_DEVA_m.call");
        assert_eq!(change.device, Some(("DEVA".to_owned(), 1_000 + 14_400_000)));
        // created_ts, when present, is when the membership began.
        let mut refreshed = element_call_membership();
        refreshed["created_ts"] = json!(500);
        let change = read_call_member("k", &refreshed, 9_000);
        assert_eq!(change.device.unwrap().1, 500 + 14_400_000);
    }

    #[test]
    fn salons_own_membership_reads_as_element_calls() {
        let content = membership_content(
            "@visio:hs",
            "BOTDEV",
            "!r:hs",
            "https://v.example/livekit/jwt",
            5,
        );
        let change = read_call_member(&membership_state_key("@visio:hs", "BOTDEV"), &content, 7);
        assert_eq!(change.key, "state:_@visio:hs_BOTDEV_m.call");
        // it lasts from its created_ts, not from when the server stamped it
        assert_eq!(change.device, Some(("BOTDEV".to_owned(), 5 + 14_400_000)));
        // written again an hour before it lapses
        assert!(membership_refresh_due(None, 0));
        assert!(!membership_refresh_due(Some(1_000), 1_000 + 10_799_999));
        assert!(membership_refresh_due(Some(1_000), 1_000 + 10_800_000));
        assert_eq!(content["membershipID"], "@visio:hs:BOTDEV");
        assert_eq!(
            content["foci_preferred"][0]["livekit_service_url"],
            "https://v.example/livekit/jwt"
        );
    }

    #[test]
    fn a_leave_or_another_call_is_no_membership() {
        assert_eq!(read_call_member("k", &json!({}), 1).device, None);
        let mut other = element_call_membership();
        other["application"] = json!("m.other");
        assert_eq!(read_call_member("k", &other, 1).device, None);
        let mut scoped = element_call_membership();
        scoped["call_id"] = json!("breakout");
        assert_eq!(read_call_member("k", &scoped, 1).device, None);
        let mut bad_device = element_call_membership();
        bad_device["device_id"] = json!("D E V");
        assert_eq!(read_call_member("k", &bad_device, 1).device, None);
        // not even an object
        assert_eq!(read_call_member("k", &json!([1, 2]), 1).device, None);
    }

    #[test]
    fn sticky_memberships_are_read_for_their_sender_only() {
        let content = json!({"application":{"type":"m.call"},"slot_id":"m.call#ROOM",
            "member":{"user_id":"@a:hs","device_id":"DEV","id":"m1"},"msc4354_sticky_key":"m1",
            "transports":{"published":[]},"versions":[]});
        let change = read_rtc_member("@a:hs", &content, 10);
        assert_eq!(change.key, "sticky:@a:hs|m1");
        assert_eq!(
            change.device,
            Some(("DEV".to_owned(), 10 + STICKY_DEFAULT_MS))
        );
        // someone claiming another user's membership is not a member
        assert_eq!(read_rtc_member("@eve:hs", &content, 10).device, None);
        // another slot is another call
        let mut other = content.clone();
        other["slot_id"] = json!("m.call#breakout");
        assert_eq!(read_rtc_member("@a:hs", &other, 10).device, None);
        // a leave keeps the key, so it removes the membership
        let leave = read_rtc_member("@a:hs", &json!({"msc4354_sticky_key":"m1"}), 20);
        assert_eq!(leave.key, change.key);
        assert_eq!(leave.device, None);
    }

    #[test]
    fn members_join_refresh_leave_and_lapse() {
        let (alice, bob) = (owned_user_id!("@a:hs"), owned_user_id!("@b:hs"));
        let mut members = RtcMembers::default();
        let join = |key: &str, device: &str, until: u64| MemberChange {
            key: key.into(),
            device: Some((device.into(), until)),
        };
        let leave = |key: &str| MemberChange {
            key: key.into(),
            device: None,
        };
        assert_eq!(
            members.apply(&alice, join("ka", "A", 100), 0),
            Applied::Joined
        );
        assert_eq!(
            members.apply(&alice, join("ka", "A", 200), 10),
            Applied::Refreshed
        );
        assert_eq!(
            members.apply(&bob, join("kb", "B", 50), 10),
            Applied::Joined
        );
        assert_eq!(members.active(20).count(), 2);
        // bob's membership lapsed: he is no longer counted, and a new one is a join
        assert_eq!(members.active(60).count(), 1);
        assert_eq!(
            members.apply(&bob, join("kb", "B", 500), 60),
            Applied::Joined
        );
        assert_eq!(members.apply(&alice, leave("ka"), 70), Applied::Left);
        assert_eq!(members.apply(&alice, leave("ka"), 71), Applied::Nothing);
        // an already lapsed membership is no join
        assert_eq!(
            members.apply(&alice, join("ka", "A", 50), 72),
            Applied::Nothing
        );
        let users: Vec<_> = members.active(80).map(|m| m.user_id.as_str()).collect();
        assert_eq!(users, ["@b:hs"]);
    }
}
