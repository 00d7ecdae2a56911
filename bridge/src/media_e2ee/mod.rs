//! Element Call's end-to-end encrypted media, on the bridge's side: the
//! keys members send the bot, and the decryption of their audio frames
//! before the transcriber decodes them. The SFU never decrypts: it
//! forwards ciphertext byte for byte; only the bridge's tap is decrypted,
//! and only while the bot is a member of the call.
//!
//! The flow, file by file:
//! - `intake.rs`: the bot's device receives each member's key in an
//!   Olm-encrypted to-device `io.element.call.encryption_keys`; the sync in
//!   `matrix/e2ee/` hands it over, and it is checked and bound to the
//!   member's LiveKit identity `${user}:${device}`;
//! - here, [`MediaKeys`]: the keys of the rooms the bot takes keys for,
//!   per identity; a room is [opened](MediaKeys::open_room) when the bot
//!   joins its call and [forgotten](MediaKeys::forget_room) (every key
//!   wiped) when it leaves;
//! - `ring.rs`: one member's keys by key index (256 slots), rotations, the
//!   ratchet window, and the slots that keep failing;
//! - `keys.rs`: HKDF-SHA256 derivation and ratchet, as livekit-client;
//! - `frame.rs`: the frame layout and AES-128-GCM decryption;
//! - here, [`FrameDecryptor`]: what the transcriber calls for each packet
//!   of an encrypted track, counting the frames it cannot decrypt in
//!   `/metrics` (`salon_e2ee_frames_undecryptable_total`).
//!
//! Keys live only in memory, in zeroize-on-drop buffers; no type prints
//! one, nothing logs one, nothing writes one to disk. See `docs/e2ee.md`.

mod frame;
mod intake;
mod keys;
mod ring;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ruma::{OwnedRoomId, RoomId};

pub use frame::{FrameError, MIN_FRAME_LEN, OPUS_SILENCE_FRAME};
pub use intake::{EVENT_TYPE, IntakeError, KeyAnnouncement, OlmSender, parse_key_event};
pub use keys::KeyMaterial;
pub use ring::{KeyUpdate, ParticipantKeys};

use crate::metrics::Metrics;

/// The most members whose keys are kept for one room: a bound on what a
/// member sending keys for made-up devices can make the bot hold.
pub const MAX_IDENTITIES_PER_ROOM: usize = 1024;

/// One member's keys, shared by the key intake and that member's decryptor.
pub type SharedKeys = Arc<Mutex<ParticipantKeys>>;

/// Why a key was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefused {
    /// The bot is not taking keys for this room: it is not in its call.
    #[error("not taking keys for this room")]
    RoomClosed,
    /// The room holds keys for [`MAX_IDENTITIES_PER_ROOM`] members already.
    #[error("too many members with keys in this room")]
    TooManyMembers,
}

/// The media keys of every room whose call the bot is in, by LiveKit
/// identity. Cheap to clone; the clones share the keys.
#[derive(Clone, Default)]
pub struct MediaKeys {
    rooms: Arc<Mutex<HashMap<OwnedRoomId, HashMap<String, SharedKeys>>>>,
}

impl std::fmt::Debug for MediaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaKeys")
            .field("rooms", &self.rooms().len())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl MediaKeys {
    fn rooms(&self) -> MutexGuard<'_, HashMap<OwnedRoomId, HashMap<String, SharedKeys>>> {
        lock(&self.rooms)
    }

    /// Takes keys for `room_id` from now on. Call it before the bot's call
    /// membership is written: members send their keys as soon as they see
    /// it, and a key that comes while the room is closed is dropped.
    pub fn open_room(&self, room_id: &RoomId) {
        self.rooms().entry(room_id.to_owned()).or_default();
    }

    /// Whether keys are taken for `room_id`.
    pub fn is_open(&self, room_id: &RoomId) -> bool {
        self.rooms().contains_key(room_id)
    }

    /// Wipes every key of `room_id` and takes no more for it (the bot left
    /// the call, transcription was turned off, or the call ended). Returns
    /// how many members' keys were wiped.
    pub fn forget_room(&self, room_id: &RoomId) -> usize {
        let Some(members) = self.rooms().remove(room_id) else {
            return 0;
        };
        // a decryptor may hold a member's keys right now: wipe them in place
        for keys in members.values() {
            lock(keys).erase();
        }
        members.len()
    }

    /// Wipes every key of every room (shutdown).
    pub fn forget_all(&self) {
        let rooms: Vec<OwnedRoomId> = self.rooms().keys().cloned().collect();
        for room_id in rooms {
            self.forget_room(&room_id);
        }
    }

    /// Keeps a member's key, if the room is open.
    pub fn accept(&self, announcement: KeyAnnouncement) -> Result<KeyUpdate, KeyRefused> {
        let KeyAnnouncement {
            room_id,
            identity,
            index,
            key,
            sent_ts,
            ..
        } = announcement;
        let keys = {
            let mut rooms = self.rooms();
            let members = rooms.get_mut(&room_id).ok_or(KeyRefused::RoomClosed)?;
            if !members.contains_key(&identity) && members.len() >= MAX_IDENTITIES_PER_ROOM {
                return Err(KeyRefused::TooManyMembers);
            }
            members.entry(identity).or_default().clone()
        };
        Ok(lock(&keys).set_key(index, key, sent_ts))
    }

    /// The keys of `identity` in `room_id`, once any has come.
    pub fn keys_for(&self, room_id: &RoomId, identity: &str) -> Option<SharedKeys> {
        self.rooms().get(room_id)?.get(identity).cloned()
    }

    /// The identities with keys in `room_id`.
    pub fn identities(&self, room_id: &RoomId) -> Vec<String> {
        self.rooms()
            .get(room_id)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A decryptor for the audio of `identity` in `room_id`. It finds the
    /// member's keys frame by frame, so it works for keys that come after
    /// the track started, and stops working the moment the room is
    /// forgotten.
    pub fn decryptor(
        &self,
        room_id: &RoomId,
        identity: &str,
        metrics: Arc<Metrics>,
    ) -> FrameDecryptor {
        FrameDecryptor {
            keys: self.clone(),
            room_id: room_id.to_owned(),
            identity: identity.to_owned(),
            sif_trailer: Vec::new(),
            metrics,
            stats: DecryptStats::default(),
        }
    }
}

/// How a tapped track's payloads are protected, as its publisher announced
/// (the SFU's `Encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackEncryption {
    /// Plain Opus.
    None,
    /// livekit-client's AES-GCM frames (Element Call).
    Gcm,
    /// Something else: cannot be decrypted here.
    Custom,
}

impl From<salon_sfu::Encryption> for TrackEncryption {
    fn from(encryption: salon_sfu::Encryption) -> Self {
        match encryption {
            salon_sfu::Encryption::None => TrackEncryption::None,
            salon_sfu::Encryption::Gcm => TrackEncryption::Gcm,
            salon_sfu::Encryption::Custom => TrackEncryption::Custom,
        }
    }
}

/// What one decryptor has seen, for a closing log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecryptStats {
    pub decrypted: u64,
    pub failed: u64,
    /// The reason of the last failure.
    pub last_failure: Option<&'static str>,
}

/// Turns one member's encrypted Opus payloads into plaintext Opus.
pub struct FrameDecryptor {
    keys: MediaKeys,
    room_id: OwnedRoomId,
    identity: String,
    sif_trailer: Vec<u8>,
    metrics: Arc<Metrics>,
    stats: DecryptStats,
}

impl std::fmt::Debug for FrameDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecryptor")
            .field("room_id", &self.room_id)
            .field("identity", &self.identity)
            .field("stats", &self.stats)
            .finish()
    }
}

impl FrameDecryptor {
    /// Frames ending with `trailer` were injected by the server in the
    /// clear (the `sif_trailer` of LiveKit's JoinResponse). Salon's SFU
    /// injects none, so none is set by default.
    pub fn with_sif_trailer(mut self, trailer: &[u8]) -> Self {
        self.sif_trailer = trailer.to_vec();
        self
    }

    /// The plaintext Opus of one encrypted payload. An empty payload (DTX)
    /// stays empty. A failure is counted in `/metrics`; the caller skips
    /// the packet.
    pub fn decrypt(&mut self, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
        let result = self.decrypt_inner(payload);
        match &result {
            Ok(_) => {
                self.stats.decrypted += 1;
                Metrics::inc(&self.metrics.e2ee_frames_decrypted);
            }
            Err(e) => {
                self.stats.failed += 1;
                self.stats.last_failure = Some(e.reason());
                Metrics::inc(&self.metrics.e2ee_frames_undecryptable);
            }
        }
        result
    }

    /// The Opus of one tapped packet: a plain one as it is, an encrypted one
    /// decrypted; `None` (counted) when it cannot be decrypted, and the
    /// caller skips it. The transcriber's tap path in one call.
    pub fn opus<'a>(
        &mut self,
        encryption: TrackEncryption,
        payload: &'a [u8],
    ) -> Option<std::borrow::Cow<'a, [u8]>> {
        match encryption {
            TrackEncryption::None => Some(std::borrow::Cow::Borrowed(payload)),
            TrackEncryption::Gcm => self.decrypt(payload).ok().map(std::borrow::Cow::Owned),
            TrackEncryption::Custom => {
                self.refuse(FrameError::UnsupportedEncryption);
                None
            }
        }
    }

    /// A payload the decryptor cannot even try (an encryption scheme other
    /// than LiveKit's GCM): counted like any undecryptable frame.
    pub fn refuse(&mut self, error: FrameError) -> FrameError {
        self.stats.failed += 1;
        self.stats.last_failure = Some(error.reason());
        Metrics::inc(&self.metrics.e2ee_frames_undecryptable);
        error
    }

    fn decrypt_inner(&self, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
        if payload.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(injected) = frame::strip_sif(payload, &self.sif_trailer) {
            return injected.map(<[u8]>::to_vec);
        }
        let index = payload[payload.len() - 1];
        let keys = self
            .keys
            .keys_for(&self.room_id, &self.identity)
            .ok_or(FrameError::NoKey(index))?;
        lock(&keys).decrypt(payload)
    }

    /// What it has seen so far.
    pub fn stats(&self) -> DecryptStats {
        self.stats
    }

    /// The member whose audio it decrypts.
    pub fn identity(&self) -> &str {
        &self.identity
    }
}

#[cfg(test)]
mod fixture_tests;

/// Reads a frame's trailer (and a SIF trailer): the entry of the
/// `e2ee_frame` fuzz target.
#[cfg(feature = "fuzzing")]
pub fn frame_parse_for_fuzzing(payload: &[u8]) -> bool {
    let _ = frame::strip_sif(payload, b"LKROCKS");
    frame::parse(payload).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{owned_user_id, room_id};

    fn announcement(
        room: &str,
        identity: &str,
        index: u8,
        byte: u8,
        sent_ts: u64,
    ) -> KeyAnnouncement {
        KeyAnnouncement {
            room_id: RoomId::parse(room).unwrap(),
            identity: identity.to_owned(),
            sender: owned_user_id!("@a:hs"),
            device_id: "D".to_owned(),
            index,
            key: KeyMaterial::new(vec![byte; 16]).unwrap(),
            sent_ts,
            call_id: String::new(),
        }
    }

    fn frame(byte: u8, index: u8) -> Vec<u8> {
        let keys = KeyMaterial::new(vec![byte; 16]).unwrap().key_set();
        frame::encrypt_for_test(&keys, &[0x78, 1, 2, 3], [4; 12], index)
    }

    #[test]
    fn keys_are_taken_only_for_open_rooms_and_wiped_when_forgotten() {
        let keys = MediaKeys::default();
        let room = room_id!("!r:hs");
        assert_eq!(
            keys.accept(announcement("!r:hs", "@a:hs:D", 0, 1, 1)),
            Err(KeyRefused::RoomClosed)
        );
        keys.open_room(room);
        assert!(keys.is_open(room));
        assert_eq!(
            keys.accept(announcement("!r:hs", "@a:hs:D", 0, 1, 1)),
            Ok(KeyUpdate::Set)
        );
        assert_eq!(keys.identities(room), vec!["@a:hs:D".to_owned()]);
        let held = keys.keys_for(room, "@a:hs:D").unwrap();
        assert!(keys.keys_for(room_id!("!other:hs"), "@a:hs:D").is_none());
        assert_eq!(keys.forget_room(room), 1);
        assert!(lock(&held).is_empty(), "a held copy is wiped too");
        assert!(!keys.is_open(room));
        assert_eq!(
            keys.accept(announcement("!r:hs", "@a:hs:D", 1, 1, 2)),
            Err(KeyRefused::RoomClosed),
            "a key arriving late does not bring the room back"
        );
    }

    #[test]
    fn a_room_holds_keys_for_a_bounded_number_of_members() {
        let keys = MediaKeys::default();
        keys.open_room(room_id!("!r:hs"));
        for n in 0..MAX_IDENTITIES_PER_ROOM {
            keys.accept(announcement("!r:hs", &format!("@a:hs:D{n}"), 0, 1, 1))
                .unwrap();
        }
        assert_eq!(
            keys.accept(announcement("!r:hs", "@a:hs:NEW", 0, 1, 1)),
            Err(KeyRefused::TooManyMembers)
        );
        // a known member still rotates
        assert_eq!(
            keys.accept(announcement("!r:hs", "@a:hs:D0", 1, 2, 2)),
            Ok(KeyUpdate::Set)
        );
    }

    #[test]
    fn the_decryptor_finds_keys_that_come_after_it_and_counts_failures() {
        let keys = MediaKeys::default();
        let room = room_id!("!r:hs");
        keys.open_room(room);
        let metrics = Arc::new(Metrics::default());
        let mut decryptor = keys.decryptor(room, "@a:hs:D", metrics.clone());
        assert_eq!(decryptor.decrypt(&frame(1, 0)), Err(FrameError::NoKey(0)));
        keys.accept(announcement("!r:hs", "@a:hs:D", 0, 1, 1))
            .unwrap();
        assert_eq!(decryptor.decrypt(&frame(1, 0)).unwrap(), [0x78, 1, 2, 3]);
        assert_eq!(decryptor.decrypt(&[]).unwrap(), Vec::<u8>::new());
        // someone else's key does not decrypt this member's audio
        keys.accept(announcement("!r:hs", "@b:hs:E", 1, 2, 1))
            .unwrap();
        assert_eq!(decryptor.decrypt(&frame(2, 1)), Err(FrameError::NoKey(1)));
        keys.forget_room(room);
        assert_eq!(decryptor.decrypt(&frame(1, 0)), Err(FrameError::NoKey(0)));
        let stats = decryptor.stats();
        assert_eq!((stats.decrypted, stats.failed), (2, 3));
        assert_eq!(stats.last_failure, Some("no_key"));
        let text = metrics.render();
        assert!(
            text.contains("salon_e2ee_frames_undecryptable_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("salon_e2ee_frames_decrypted_total 2\n"),
            "{text}"
        );
    }

    #[test]
    fn the_tap_path_passes_plain_packets_and_decrypts_encrypted_ones() {
        let keys = MediaKeys::default();
        let room = room_id!("!r:hs");
        keys.open_room(room);
        keys.accept(announcement("!r:hs", "@a:hs:D", 0, 1, 1))
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut decryptor = keys.decryptor(room, "@a:hs:D", metrics.clone());
        let plain = [0x78, 9, 9];
        assert_eq!(
            decryptor.opus(TrackEncryption::None, &plain).as_deref(),
            Some(plain.as_slice())
        );
        assert_eq!(
            decryptor
                .opus(TrackEncryption::Gcm, &frame(1, 0))
                .as_deref(),
            Some([0x78, 1, 2, 3].as_slice())
        );
        assert_eq!(decryptor.opus(TrackEncryption::Gcm, &plain), None);
        assert_eq!(decryptor.opus(TrackEncryption::Custom, &frame(1, 0)), None);
        assert_eq!(decryptor.stats().failed, 2);
        assert_eq!(
            decryptor.stats().last_failure,
            Some("unsupported_encryption")
        );
    }

    #[test]
    fn server_injected_silence_passes_and_other_injections_do_not() {
        let keys = MediaKeys::default();
        let room = room_id!("!r:hs");
        keys.open_room(room);
        let mut decryptor = keys
            .decryptor(room, "@a:hs:D", Arc::new(Metrics::default()))
            .with_sif_trailer(b"SIF!");
        let mut injected = OPUS_SILENCE_FRAME.to_vec();
        injected.extend_from_slice(b"SIF!");
        assert_eq!(decryptor.decrypt(&injected).unwrap(), OPUS_SILENCE_FRAME);
        assert_eq!(
            decryptor.decrypt(b"\x78junkSIF!"),
            Err(FrameError::UnexpectedSif)
        );
    }

    #[test]
    fn no_payload_panics_the_decryptor() {
        let keys = MediaKeys::default();
        let room = room_id!("!r:hs");
        keys.open_room(room);
        for index in [0u8, 1, 255] {
            keys.accept(announcement("!r:hs", "@a:hs:D", index, 1, 1))
                .unwrap();
        }
        let mut decryptor = keys.decryptor(room, "@a:hs:D", Arc::new(Metrics::default()));
        let good = frame(1, 1);
        // every truncation and every single-byte change of a good frame
        for len in 0..good.len() {
            let _ = decryptor.decrypt(&good[..len]);
        }
        for at in 0..good.len() {
            for value in [0u8, 1, 12, 0xff] {
                let mut bad = good.clone();
                bad[at] = value;
                let _ = decryptor.decrypt(&bad);
            }
        }
        // a small deterministic fuzz
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 96) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (state >> (i % 56)) as u8).collect();
            let _ = decryptor.decrypt(&bytes);
        }
    }
}
