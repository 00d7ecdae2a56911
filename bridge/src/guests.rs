//! Guests without a Matrix account, as pure rules: guest links, the lobby,
//! and how a guest is named.
//!
//! Flow: a moderator's `!visio guest [name]` (`room/guests.rs`) makes a
//! [`GuestLink`] for the live call and shows its URL to the room only; the
//! bridge keeps the SHA-256 of its token, never the token. The guest opens
//! `/guest/{token}`, picks a name and knocks (`lobby.rs`): a [`Knock`] waits
//! in the lobby and the room is told. `!visio admit` / `deny` (the room's
//! worker) decide; only then does the guest's page get a LiveKit token, so a
//! waiting guest receives no media and no data. In the call, transcripts and
//! minutes, a guest is "Name (guest, invited by @mxid)" under an identifier
//! of the reserved `.invalid` domain, which no Matrix account can ever have:
//! guests never get a Matrix identity and never see the room.

use base64::Engine;
use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::calls::Millis;

/// The server part of guests' identifiers (RFC 2606: never a real host).
pub const GUEST_DOMAIN: &str = "guests.salon.invalid";

/// Longest display name a guest may choose, in characters.
pub const MAX_NAME_CHARS: usize = 60;

/// A guest link: what the bridge keeps of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestLink {
    /// SHA-256 of the link's token, hex: the key it is found by.
    pub token_hash: String,
    pub call_id: String,
    pub invited_by: OwnedUserId,
    /// The name the moderator gave (`!visio guest Mayor's office`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_hint: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
    #[serde(default)]
    pub revoked: bool,
}

/// Why a guest link does not open the lobby.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("this guest link is not valid")]
    Unknown,
    #[error("this guest link has expired; ask for a new one")]
    Expired,
    #[error("a moderator revoked this guest link")]
    Revoked,
    #[error("the call this guest link was for has ended")]
    CallEnded,
}

impl GuestLink {
    /// Whether the link still opens the lobby of a call that is `call_live`.
    pub fn check(&self, call_live: bool, now: Millis) -> Result<(), LinkRefusal> {
        if self.revoked {
            Err(LinkRefusal::Revoked)
        } else if !call_live {
            Err(LinkRefusal::CallEnded)
        } else if now >= self.expires_at {
            Err(LinkRefusal::Expired)
        } else {
            Ok(())
        }
    }
}

/// Where a guest is in the lobby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum KnockState {
    Waiting,
    Admitted { by: OwnedUserId },
    Denied { by: OwnedUserId },
}

/// A guest who knocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knock {
    /// The guest's identifier (`@g…:guests.salon.invalid`), their LiveKit
    /// identity once admitted.
    pub guest: OwnedUserId,
    /// SHA-256 of the secret the guest's page polls with, hex.
    pub secret_hash: String,
    pub call_id: String,
    pub link_hash: String,
    pub name: String,
    pub invited_by: OwnedUserId,
    /// A short number for `!visio admit 2`.
    pub number: u32,
    pub at: Millis,
    #[serde(flatten)]
    pub state: KnockState,
}

impl Knock {
    /// "Name (guest, invited by @mxid)".
    pub fn label(&self) -> String {
        label(&self.name, &self.invited_by)
    }

    /// The `org.salon.lobby` content of notices and data messages about it:
    /// `{call_id, guest, name, invited_by, number, state[, by]}`.
    pub fn lobby_json(&self) -> serde_json::Value {
        let (state, by) = match &self.state {
            KnockState::Waiting => ("waiting", None),
            KnockState::Admitted { by } => ("admitted", Some(by)),
            KnockState::Denied { by } => ("denied", Some(by)),
        };
        let mut value = serde_json::json!({
            "call_id": self.call_id,
            "guest": self.guest,
            "name": self.name,
            "invited_by": self.invited_by,
            "number": self.number,
            "state": state,
        });
        if let Some(by) = by {
            value["by"] = serde_json::json!(by);
        }
        value
    }
}

/// How a guest is shown: "Name (guest, invited by @mxid)".
pub fn label(name: &str, invited_by: &UserId) -> String {
    format!("{name} (guest, invited by {invited_by})")
}

/// A new random secret (a link's token, a knock's secret): 32 bytes,
/// URL-safe base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the bridge keeps of a secret.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `text` has the shape of [`new_secret`]'s output (so that other
/// input is refused before any lookup).
pub fn looks_like_secret(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new guest identifier.
pub fn new_guest_id() -> OwnedUserId {
    let n: u64 = rand::random();
    UserId::parse(format!("@g{n:016x}:{GUEST_DOMAIN}")).expect("a well-formed user id")
}

/// Whether `user` is a guest's identifier.
pub fn is_guest(user: &UserId) -> bool {
    user.server_name().as_str() == GUEST_DOMAIN
}

/// A guest's chosen name, cleaned: control characters dropped, spaces
/// folded, at most [`MAX_NAME_CHARS`]; `None` if nothing is left. Markup is
/// kept as typed: everything that shows it escapes it.
pub fn clean_name(name: &str) -> Option<String> {
    let folded: String = name
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect::<String>()
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let cut: String = folded.chars().take(MAX_NAME_CHARS).collect();
    let cut = cut.trim().to_owned();
    (!cut.is_empty()).then_some(cut)
}

/// Which waiting guest `!visio admit [which]` means: the only one when
/// `which` is absent, else the one with that number, name (case-insensitive)
/// or guest id (the call page's buttons).
pub fn pick_waiting<'k>(waiting: &'k [Knock], which: Option<&str>) -> Result<&'k Knock, PickError> {
    let waiting: Vec<&Knock> = waiting
        .iter()
        .filter(|k| k.state == KnockState::Waiting)
        .collect();
    match which.map(str::trim).filter(|w| !w.is_empty()) {
        None => match waiting.as_slice() {
            [] => Err(PickError::NobodyWaiting),
            [one] => Ok(one),
            _ => Err(PickError::Ambiguous),
        },
        Some(which) => {
            let which = which.trim_start_matches('#');
            let found: Vec<&Knock> = waiting
                .iter()
                .copied()
                .filter(|k| {
                    k.number.to_string() == which
                        || k.name.eq_ignore_ascii_case(which)
                        || k.guest.as_str() == which
                })
                .collect();
            match found.as_slice() {
                [] if waiting.is_empty() => Err(PickError::NobodyWaiting),
                [] => Err(PickError::NotFound),
                [one] => Ok(one),
                _ => Err(PickError::Ambiguous),
            }
        }
    }
}

/// Why [`pick_waiting`] found nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    #[error("nobody is waiting in the lobby")]
    NobodyWaiting,
    #[error("several guests are waiting: say which, by number or name")]
    Ambiguous,
    #[error("no guest waiting by that number or name")]
    NotFound,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::owned_user_id;

    fn knock(number: u32, name: &str, state: KnockState) -> Knock {
        Knock {
            guest: new_guest_id(),
            secret_hash: String::new(),
            call_id: "c".into(),
            link_hash: String::new(),
            name: name.into(),
            invited_by: owned_user_id!("@mod:hs"),
            number,
            at: 0,
            state,
        }
    }

    #[test]
    fn a_link_opens_the_lobby_only_while_valid() {
        let link = GuestLink {
            token_hash: hash_secret("t"),
            call_id: "c".into(),
            invited_by: owned_user_id!("@mod:hs"),
            name_hint: None,
            created_at: 0,
            expires_at: 100,
            revoked: false,
        };
        assert_eq!(link.check(true, 99), Ok(()));
        assert_eq!(link.check(true, 100), Err(LinkRefusal::Expired));
        assert_eq!(link.check(false, 1), Err(LinkRefusal::CallEnded));
        let revoked = GuestLink {
            revoked: true,
            ..link
        };
        assert_eq!(revoked.check(true, 1), Err(LinkRefusal::Revoked));
    }

    #[test]
    fn secrets_are_unguessable_and_kept_only_hashed() {
        let a = new_secret();
        assert!(looks_like_secret(&a), "{a}");
        assert_ne!(a, new_secret());
        assert_eq!(hash_secret(&a).len(), 64);
        assert_ne!(hash_secret(&a), a);
        for bad in [
            "",
            "short",
            "../../etc/passwd",
            &"x".repeat(44),
            &"é".repeat(43),
        ] {
            assert!(!looks_like_secret(bad), "{bad}");
        }
    }

    #[test]
    fn guests_are_named_apart_from_every_matrix_user() {
        let guest = new_guest_id();
        assert!(is_guest(&guest));
        assert!(!is_guest(&owned_user_id!("@alice:example.org")));
        assert_eq!(
            label("Maire de Lyon", &owned_user_id!("@mod:hs")),
            "Maire de Lyon (guest, invited by @mod:hs)"
        );
    }

    #[test]
    fn names_are_cleaned_not_escaped() {
        assert_eq!(
            clean_name("  Ada \n Lovelace\t"),
            Some("Ada Lovelace".into())
        );
        assert_eq!(clean_name("<b>Eve</b>"), Some("<b>Eve</b>".into()));
        assert_eq!(clean_name("\u{7}\u{1b}"), None);
        assert_eq!(clean_name("   "), None);
        assert_eq!(
            clean_name(&"é".repeat(100)).unwrap().chars().count(),
            MAX_NAME_CHARS
        );
    }

    #[test]
    fn admit_picks_the_only_guest_or_the_one_named() {
        let lobby = vec![
            knock(1, "Ada", KnockState::Waiting),
            knock(
                2,
                "Bob",
                KnockState::Denied {
                    by: owned_user_id!("@mod:hs"),
                },
            ),
        ];
        assert_eq!(pick_waiting(&lobby, None).unwrap().name, "Ada");
        assert_eq!(pick_waiting(&lobby, Some("ada")).unwrap().number, 1);
        assert_eq!(pick_waiting(&lobby, Some("#1")).unwrap().number, 1);
        assert_eq!(pick_waiting(&lobby, Some("2")), Err(PickError::NotFound));
        let two = vec![
            knock(1, "Ada", KnockState::Waiting),
            knock(2, "Cy", KnockState::Waiting),
        ];
        assert_eq!(pick_waiting(&two, None), Err(PickError::Ambiguous));
        assert_eq!(pick_waiting(&two, Some("cy")).unwrap().number, 2);
        assert_eq!(pick_waiting(&[], None), Err(PickError::NobodyWaiting));
    }
}
