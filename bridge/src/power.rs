//! Power levels: who may do what in a room.
//!
//! Read from the room's `m.room.power_levels` content and its `m.room.create`
//! event. Since room version 12 (Synapse's default), the room's creators have
//! unlimited power and are not listed in `users`; older versions list them.

use std::collections::HashMap;

use ruma::UserId;
use serde_json::Value;

/// Room versions in which the creators hold unlimited power.
const PRIVILEGED_CREATOR_VERSIONS: [&str; 2] = ["12", "org.matrix.hydra.11"];

/// The parts of a room's power levels that Salon needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerLevels {
    users: HashMap<String, i64>,
    users_default: i64,
    events: HashMap<String, i64>,
    state_default: i64,
    creators: Vec<String>,
}

fn as_level(value: &Value) -> Option<i64> {
    // Old rooms may carry levels as strings.
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

fn level_map(value: Option<&Value>) -> HashMap<String, i64> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| as_level(v).map(|l| (k.clone(), l)))
                .collect()
        })
        .unwrap_or_default()
}

impl PowerLevels {
    /// From the power-levels *content* and the create *event* (either may be missing).
    pub fn from_state(levels: Option<&Value>, create_event: Option<&Value>) -> Self {
        let mut creators = Vec::new();
        if let Some(create) = create_event {
            let content = create.get("content");
            let version = content
                .and_then(|c| c.get("room_version"))
                .and_then(Value::as_str)
                .unwrap_or("1");
            if PRIVILEGED_CREATOR_VERSIONS.contains(&version) {
                if let Some(sender) = create.get("sender").and_then(Value::as_str) {
                    creators.push(sender.to_owned());
                }
                if let Some(extra) = content
                    .and_then(|c| c.get("additional_creators"))
                    .and_then(Value::as_array)
                {
                    creators.extend(extra.iter().filter_map(Value::as_str).map(str::to_owned));
                }
            }
        }
        match levels {
            Some(levels) => PowerLevels {
                users: level_map(levels.get("users")),
                users_default: levels.get("users_default").and_then(as_level).unwrap_or(0),
                events: level_map(levels.get("events")),
                state_default: levels.get("state_default").and_then(as_level).unwrap_or(50),
                creators,
            },
            // No power-levels event: everyone may send state (spec default 0).
            None => PowerLevels {
                creators,
                ..Default::default()
            },
        }
    }

    /// A user's level; creators in v12 rooms rank above everyone.
    pub fn user_level(&self, user: &UserId) -> i64 {
        if self.creators.iter().any(|c| c == user.as_str()) {
            return i64::MAX;
        }
        self.users
            .get(user.as_str())
            .copied()
            .unwrap_or(self.users_default)
    }

    /// The level needed to send a state event of this type.
    pub fn state_level(&self, event_type: &str) -> i64 {
        self.events
            .get(event_type)
            .copied()
            .unwrap_or(self.state_default)
    }

    /// The level needed to send every one of these state event types.
    pub fn state_level_for_all(&self, event_types: &[&str]) -> i64 {
        event_types
            .iter()
            .map(|t| self.state_level(t))
            .max()
            .unwrap_or(self.state_default)
    }

    /// `Some(level needed)` if `user` may not send all of these state event
    /// types, `None` if it may.
    pub fn lacks_for_state(&self, user: &UserId, event_types: &[&str]) -> Option<i64> {
        let need = self.state_level_for_all(event_types);
        (self.user_level(user) < need).then_some(need)
    }
}

/// The name Element gives a power level, for asking to be promoted.
pub fn role_name(level: i64) -> &'static str {
    match level {
        100.. => "Admin",
        50.. => "Moderator",
        _ => "a custom role",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::user_id;
    use serde_json::json;

    #[test]
    fn levels_from_a_typical_room() {
        let levels = json!({
            "users": {"@admin:x": 100, "@mod:x": 50, "@visio:x": "50"},
            "users_default": 0,
            "events": {"im.vector.modular.widgets": 50, "m.room.name": 50},
            "state_default": 50
        });
        let create = json!({"sender": "@admin:x", "content": {"room_version": "10"}});
        let p = PowerLevels::from_state(Some(&levels), Some(&create));
        assert_eq!(p.user_level(user_id!("@admin:x")), 100);
        assert_eq!(p.user_level(user_id!("@visio:x")), 50);
        assert_eq!(p.user_level(user_id!("@bob:x")), 0);
        assert_eq!(p.state_level("org.salon.call"), 50);
        assert_eq!(p.state_level("im.vector.modular.widgets"), 50);
    }

    #[test]
    fn v12_creators_outrank_everyone() {
        let levels = json!({"users": {"@mod:x": 50}, "state_default": 50});
        let create = json!({
            "sender": "@alice:x",
            "content": {"room_version": "12", "additional_creators": ["@carol:x"]}
        });
        let p = PowerLevels::from_state(Some(&levels), Some(&create));
        assert_eq!(p.user_level(user_id!("@alice:x")), i64::MAX);
        assert_eq!(p.user_level(user_id!("@carol:x")), i64::MAX);
        assert_eq!(p.user_level(user_id!("@mod:x")), 50);
    }

    #[test]
    fn a_member_at_level_0_lacks_the_highest_level_of_the_call_events() {
        let types = ["org.salon.call", "im.vector.modular.widgets"];
        // an invited member of a private room: 0 against state_default 50
        let private = json!({"users": {"@owner:x": 100}, "state_default": 50});
        let p = PowerLevels::from_state(Some(&private), None);
        assert_eq!(p.lacks_for_state(user_id!("@visio:x"), &types), Some(50));
        // the most demanding event type decides
        let strict = json!({
            "users": {"@visio:x": 50},
            "state_default": 50,
            "events": {"org.salon.call": 100}
        });
        let p = PowerLevels::from_state(Some(&strict), None);
        assert_eq!(p.lacks_for_state(user_id!("@visio:x"), &types), Some(100));
        // promoted: nothing lacks
        let promoted = json!({"users": {"@visio:x": 100}, "events": {"org.salon.call": 100}});
        let p = PowerLevels::from_state(Some(&promoted), None);
        assert_eq!(p.lacks_for_state(user_id!("@visio:x"), &types), None);
        assert_eq!(role_name(100), "Admin");
        assert_eq!(role_name(50), "Moderator");
        assert_eq!(role_name(20), "a custom role");
    }

    #[test]
    fn no_power_levels_event_means_anyone_may_send_state() {
        let p = PowerLevels::from_state(None, None);
        assert_eq!(p.state_level("org.salon.call"), 0);
        assert_eq!(p.user_level(user_id!("@anyone:x")), 0);
    }
}
