//! Who is who on the media side: which Matrix room a LiveKit room belongs
//! to, and which Matrix user a LiveKit identity is.
//!
//! Where it sits: a LiveKit room's name is a one-way hash of its Matrix room
//! (`rtc::room_media_name`), and Element Call's identities are
//! `{mxid}:{device}` or a hash (`rtc`); the SFU only knows those names. The
//! focus API (`focus.rs`) and the call page's join (`access.rs`) record the
//! pair here when they mint a token; the media backend's joins and leaves
//! (`app.rs`), `!visio status` and transcription read them back. Kept on
//! disk because tokens outlive a restart of the bridge (an hour).

use ruma::{OwnedRoomId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, encode, read};

/// The Matrix user behind a LiveKit identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaIdentity {
    pub user_id: OwnedUserId,
    /// The display name in the room, when the token was minted.
    #[serde(default)]
    pub name: String,
}

/// A [`MediaIdentity`] as kept: with when it was last recorded, so that
/// identities of tokens long expired can be let go.
#[derive(Serialize, Deserialize)]
struct Kept {
    #[serde(flatten)]
    who: MediaIdentity,
    #[serde(default)]
    recorded_at: u64,
}

impl Store {
    /// Records that `media_room` is the LiveKit room of `room_id`.
    pub fn record_media_room(
        &self,
        media_room: &str,
        room_id: &OwnedRoomId,
    ) -> Result<(), StoreError> {
        if self.media_rooms.get(media_room.as_bytes())?.as_deref() != Some(room_id.as_bytes()) {
            self.media_rooms
                .insert(media_room.as_bytes(), room_id.as_bytes())?;
        }
        Ok(())
    }

    /// The Matrix room of a LiveKit room, if Salon named it.
    pub fn media_room(&self, media_room: &str) -> Result<Option<OwnedRoomId>, StoreError> {
        Ok(self.media_rooms.get(media_room.as_bytes())?.and_then(|v| {
            std::str::from_utf8(&v)
                .ok()
                .and_then(|s| OwnedRoomId::try_from(s).ok())
        }))
    }

    /// Records who `identity` is (not flushed: a lost record is rebuilt from
    /// the identity's own text where it can be, see [`Store::identity`]).
    pub fn record_identity(&self, identity: &str, who: &MediaIdentity) -> Result<(), StoreError> {
        let kept = Kept {
            who: who.clone(),
            recorded_at: crate::clock::now_millis(),
        };
        self.identities.insert(identity.as_bytes(), encode(&kept))?;
        Ok(())
    }

    /// Lets go of identities recorded before `cutoff` (ms since the epoch):
    /// their tokens expired long ago (a focus token lives an hour), and
    /// Element Call's Matrix 2.0 identities are new at every join. Returns
    /// how many went.
    pub fn prune_identities(&self, cutoff: u64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        for entry in self.identities.iter() {
            let (key, value) = entry?;
            let old =
                serde_json::from_slice::<Kept>(&value).map_or(true, |k| k.recorded_at < cutoff);
            if old {
                self.identities.remove(key)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// Who `identity` is: as recorded, else the identity itself when it is
    /// a Matrix user id (Salon's page), else a `{mxid}:{device}` identity's
    /// user. A hashed identity nobody recorded is nobody.
    pub fn identity(&self, identity: &str) -> Result<Option<MediaIdentity>, StoreError> {
        if let Some(kept) = read::<Kept>(&self.identities, "media_identities", identity.as_bytes())?
        {
            return Ok(Some(kept.who));
        }
        Ok(user_of_identity(identity).map(|user_id| MediaIdentity {
            user_id,
            name: String::new(),
        }))
    }
}

/// The user an identity names by itself: a Matrix user id (Salon's page),
/// or one followed by `:{device_id}` (Element Call's `/sfu/get`; a device id
/// holds no `:`, and a server's port is digits, so the two read apart).
pub fn user_of_identity(identity: &str) -> Option<OwnedUserId> {
    if let Ok(user) = UserId::parse(identity) {
        return Some(user);
    }
    let (user, _device) = identity.rsplit_once(':')?;
    UserId::parse(user).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_name_their_user() {
        let user = |s: &str| user_of_identity(s).map(|u| u.to_string());
        assert_eq!(user("@alice:hs.example"), Some("@alice:hs.example".into()));
        assert_eq!(
            user("@alice:hs.example:8448"),
            Some("@alice:hs.example:8448".into())
        );
        assert_eq!(
            user("@alice:hs.example:DEVA"),
            Some("@alice:hs.example".into())
        );
        assert_eq!(
            user("@alice:hs.example:8448:DEVA"),
            Some("@alice:hs.example:8448".into())
        );
        assert_eq!(user("J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU"), None);
        assert_eq!(user(""), None);
    }
}
