//! Guest links and the lobby, on disk (`crate::guests` holds their rules).
//!
//! Links are keyed by the SHA-256 of their token (the token itself is never
//! kept), knocks by `{call_id}/{guest}`. The room's worker writes links and
//! admits or denies; the lobby's HTTP routes (`lobby.rs`) add knocks and read
//! them back. Each record is written whole under its own key, so the two
//! sides never overwrite each other's changes; calls are never touched here.

use crate::guests::{GuestLink, Knock};

use super::{Store, StoreError, decode, encode, read};

fn knock_key(call_id: &str, guest: &str) -> Vec<u8> {
    format!("{call_id}/{guest}").into_bytes()
}

impl Store {
    pub async fn save_guest_link(&self, link: &GuestLink) -> Result<(), StoreError> {
        self.guest_links
            .insert(link.token_hash.as_bytes(), encode(link))?;
        self.flush().await
    }

    /// The link whose token hashes to `token_hash`.
    pub fn guest_link(&self, token_hash: &str) -> Result<Option<GuestLink>, StoreError> {
        read(&self.guest_links, "guest_links", token_hash.as_bytes())
    }

    /// Every link made for `call_id`.
    pub fn guest_links_of(&self, call_id: &str) -> Result<Vec<GuestLink>, StoreError> {
        let mut links = Vec::new();
        for entry in self.guest_links.iter() {
            let (_, value) = entry?;
            let link: GuestLink = decode("guest_links", &value)?;
            if link.call_id == call_id {
                links.push(link);
            }
        }
        Ok(links)
    }

    pub async fn save_knock(&self, knock: &Knock) -> Result<(), StoreError> {
        self.lobby.insert(
            knock_key(&knock.call_id, knock.guest.as_str()),
            encode(knock),
        )?;
        self.flush().await
    }

    /// Everyone who knocked at `call_id`'s lobby, in the order they did.
    pub fn knocks_of(&self, call_id: &str) -> Result<Vec<Knock>, StoreError> {
        let mut knocks = Vec::new();
        for entry in self.lobby.scan_prefix(format!("{call_id}/").as_bytes()) {
            let (_, value) = entry?;
            knocks.push(decode::<Knock>("lobby", &value)?);
        }
        knocks.sort_by_key(|k| (k.at, k.number));
        Ok(knocks)
    }

    /// One guest's knock at `call_id`.
    pub fn knock(&self, call_id: &str, guest: &str) -> Result<Option<Knock>, StoreError> {
        read(&self.lobby, "lobby", &knock_key(call_id, guest))
    }
}
