//! One call member's keys, by key index, and the receiver's side of
//! livekit-client's `ParticipantKeyHandler` and `FrameCryptor.decryptFrame`.
//!
//! Where it sits: `MediaKeys` (`mod.rs`) keeps one [`ParticipantKeys`] per
//! LiveKit identity in a room; the key intake sets keys into it
//! ([`ParticipantKeys::set_key`]) and the transcriber's decryptor decrypts
//! each frame with it ([`ParticipantKeys::decrypt`]), through `frame.rs`.
//!
//! As Element Call configures livekit-client (`MatrixKeyProvider`):
//! - 256 slots (`keyringSize: 256`): the frame's key-index byte picks one;
//! - a frame that fails with its slot's key is retried with up to 10
//!   ratchets of it (`ratchetWindowSize: 10`); a ratchet that works replaces
//!   the slot's key;
//! - after more than 10 failures in a row on a slot
//!   (`DECRYPTION_FAILURE_TOLERANCE`), its frames are dropped without
//!   trying until a new key comes for it, so a broken or hostile stream
//!   costs one byte comparison per frame, not eleven decryptions.
//!
//! One difference, on purpose: livekit-client 2.22.3's receiver ratchets
//! the slot's *original* material on every step of its window (its
//! `ratchetKey(keyIndex, false)` does not store the result), so it only ever
//! recovers a sender one ratchet ahead; here each step ratchets the last,
//! so a sender up to ten ratchets ahead is followed. Element Call senders
//! rotate by index, not by ratchet, so both behave the same there.

use super::frame::{self, FrameError};
use super::keys::{KeyMaterial, KeySet};

/// `keyringSize` in Element Call: every key-index byte has a slot.
pub const KEYRING_SIZE: usize = 256;
/// `ratchetWindowSize` in Element Call.
pub const RATCHET_WINDOW: usize = 10;
/// livekit-client's `DECRYPTION_FAILURE_TOLERANCE`.
pub const FAILURE_TOLERANCE: u32 = 10;

/// A key in a slot, with the sender's timestamp for it.
#[derive(Debug)]
struct Slot {
    keys: KeySet,
    sent_ts: u64,
}

/// What became of a key given to [`ParticipantKeys::set_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUpdate {
    /// It is the slot's key now.
    Set,
    /// The slot holds a key sent later; this one is ignored (an old
    /// message delivered late, or an index reused 256 rotations on).
    Stale,
}

/// One member's keys, by key index. Dropping it (or [`erase`]) wipes them.
///
/// [`erase`]: ParticipantKeys::erase
#[derive(Debug)]
pub struct ParticipantKeys {
    slots: Vec<Option<Slot>>,
    failures: Vec<u32>,
    current: Option<u8>,
}

impl Default for ParticipantKeys {
    fn default() -> Self {
        ParticipantKeys {
            slots: (0..KEYRING_SIZE).map(|_| None).collect(),
            failures: vec![0; KEYRING_SIZE],
            current: None,
        }
    }
}

impl ParticipantKeys {
    /// Sets the key at `index`, unless the slot holds one sent later. A
    /// set key clears the slot's failures and becomes the current index.
    pub fn set_key(&mut self, index: u8, material: KeyMaterial, sent_ts: u64) -> KeyUpdate {
        let i = usize::from(index);
        if self.slots[i].as_ref().is_some_and(|s| s.sent_ts > sent_ts) {
            return KeyUpdate::Stale;
        }
        self.slots[i] = Some(Slot {
            keys: material.key_set(),
            sent_ts,
        });
        self.failures[i] = 0;
        self.current = Some(index);
        KeyUpdate::Set
    }

    /// The index of the key set last, if any.
    pub fn current_index(&self) -> Option<u8> {
        self.current
    }

    /// Whether a key is held at `index`.
    pub fn has_key(&self, index: u8) -> bool {
        self.slots[usize::from(index)].is_some()
    }

    /// How many slots hold a key.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether no slot holds a key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wipes every key.
    pub fn erase(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.failures.iter_mut().for_each(|f| *f = 0);
        self.current = None;
    }

    /// The plaintext Opus of an encrypted audio frame, trying the slot its
    /// key-index byte names, then the ratchet window.
    pub fn decrypt(&mut self, data: &[u8]) -> Result<Vec<u8>, FrameError> {
        let Some(&index) = data.last() else {
            return Err(FrameError::TooShort(0));
        };
        let i = usize::from(index);
        if self.failures[i] > FAILURE_TOLERANCE {
            return Err(FrameError::InvalidKey(index));
        }
        let result = match &self.slots[i] {
            None => Err(FrameError::NoKey(index)),
            Some(slot) => {
                frame::parse(data).and_then(|parsed| match frame::decrypt(&slot.keys, &parsed) {
                    Ok(opus) => Ok((opus, None)),
                    Err(e) => ratchet_window(&slot.keys, &parsed)
                        .map(|(opus, keys)| (opus, Some(keys)))
                        .ok_or(e),
                })
            }
        };
        match result {
            Ok((opus, ratcheted)) => {
                if let (Some(keys), Some(slot)) = (ratcheted, self.slots[i].as_mut()) {
                    slot.keys = keys;
                }
                self.failures[i] = 0;
                Ok(opus)
            }
            Err(e) => {
                self.failures[i] = self.failures[i].saturating_add(1);
                Err(e)
            }
        }
    }
}

/// Tries up to [`RATCHET_WINDOW`] successive ratchets of `keys`; the
/// plaintext and the ratcheted keys that decrypted it.
fn ratchet_window(keys: &KeySet, parsed: &frame::EncryptedFrame<'_>) -> Option<(Vec<u8>, KeySet)> {
    let mut material = keys.material().ratchet();
    for _ in 0..RATCHET_WINDOW {
        let next = material.key_set();
        if let Ok(opus) = frame::decrypt(&next, parsed) {
            return Some((opus, next));
        }
        material = material.ratchet();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_e2ee::frame::encrypt_for_test;

    fn material(byte: u8) -> KeyMaterial {
        KeyMaterial::new(vec![byte; 16]).unwrap()
    }

    const OPUS: [u8; 5] = [0x78, 10, 20, 30, 40];

    #[test]
    fn frames_use_the_key_their_index_names_across_rotations() {
        let mut ring = ParticipantKeys::default();
        assert!(ring.is_empty());
        ring.set_key(0, material(1), 10);
        ring.set_key(1, material(2), 20);
        assert_eq!(ring.current_index(), Some(1));
        assert_eq!(ring.len(), 2);
        let old = encrypt_for_test(&material(1).key_set(), &OPUS, [1; 12], 0);
        let new = encrypt_for_test(&material(2).key_set(), &OPUS, [2; 12], 1);
        // frames in flight with the previous index still decrypt
        assert_eq!(ring.decrypt(&new).unwrap(), OPUS);
        assert_eq!(ring.decrypt(&old).unwrap(), OPUS);
        // index 255 is a slot like any other (the index wraps mod 256)
        ring.set_key(255, material(3), 30);
        let last = encrypt_for_test(&material(3).key_set(), &OPUS, [3; 12], 255);
        assert_eq!(ring.decrypt(&last).unwrap(), OPUS);
    }

    #[test]
    fn a_key_sent_earlier_does_not_replace_a_later_one() {
        let mut ring = ParticipantKeys::default();
        assert_eq!(ring.set_key(4, material(2), 200), KeyUpdate::Set);
        assert_eq!(ring.set_key(4, material(1), 100), KeyUpdate::Stale);
        let frame = encrypt_for_test(&material(2).key_set(), &OPUS, [1; 12], 4);
        assert_eq!(ring.decrypt(&frame).unwrap(), OPUS);
        assert_eq!(ring.set_key(4, material(5), 200), KeyUpdate::Set);
    }

    #[test]
    fn the_ratchet_window_follows_a_sender_that_ratcheted() {
        let mut ring = ParticipantKeys::default();
        ring.set_key(0, material(7), 1);
        let mut ahead = material(7);
        for _ in 0..3 {
            ahead = ahead.ratchet();
        }
        let frame = encrypt_for_test(&ahead.key_set(), &OPUS, [5; 12], 0);
        assert_eq!(ring.decrypt(&frame).unwrap(), OPUS);
        // the slot moved on: the next frame needs no ratchet, and the
        // original key's frames no longer decrypt
        let next = encrypt_for_test(&ahead.key_set(), &OPUS, [6; 12], 0);
        assert_eq!(ring.decrypt(&next).unwrap(), OPUS);
        let original = encrypt_for_test(&material(7).key_set(), &OPUS, [6; 12], 0);
        assert_eq!(ring.decrypt(&original), Err(FrameError::Authentication(0)));
        // past the window: not followed
        let mut far = ahead.clone();
        for _ in 0..=RATCHET_WINDOW {
            far = far.ratchet();
        }
        let frame = encrypt_for_test(&far.key_set(), &OPUS, [5; 12], 0);
        assert_eq!(ring.decrypt(&frame), Err(FrameError::Authentication(0)));
    }

    #[test]
    fn a_failing_slot_is_dropped_until_a_new_key_comes() {
        let mut ring = ParticipantKeys::default();
        ring.set_key(2, material(1), 1);
        let wrong = encrypt_for_test(&material(9).key_set(), &OPUS, [1; 12], 2);
        for _ in 0..=FAILURE_TOLERANCE {
            assert_eq!(ring.decrypt(&wrong), Err(FrameError::Authentication(2)));
        }
        assert_eq!(ring.decrypt(&wrong), Err(FrameError::InvalidKey(2)));
        let right = encrypt_for_test(&material(1).key_set(), &OPUS, [1; 12], 2);
        assert_eq!(ring.decrypt(&right), Err(FrameError::InvalidKey(2)));
        // another slot is not affected
        ring.set_key(3, material(1), 1);
        let other = encrypt_for_test(&material(1).key_set(), &OPUS, [1; 12], 3);
        assert_eq!(ring.decrypt(&other).unwrap(), OPUS);
        // the rotation's key revives the slot
        ring.set_key(2, material(9), 2);
        assert_eq!(ring.decrypt(&wrong).unwrap(), OPUS);
    }

    #[test]
    fn missing_keys_and_bad_frames_fail_cleanly() {
        let mut ring = ParticipantKeys::default();
        assert_eq!(ring.decrypt(&[]), Err(FrameError::TooShort(0)));
        assert_eq!(ring.decrypt(&[0x78, 12, 0]), Err(FrameError::NoKey(0)));
        ring.set_key(0, material(1), 1);
        assert_eq!(ring.decrypt(&[0x78, 12, 0]), Err(FrameError::TooShort(3)));
        let mut frame = encrypt_for_test(&material(1).key_set(), &OPUS, [1; 12], 0);
        let len = frame.len();
        frame[len - 2] = 16;
        assert_eq!(ring.decrypt(&frame), Err(FrameError::IvLength(16)));
    }

    #[test]
    fn erasing_forgets_every_key() {
        let mut ring = ParticipantKeys::default();
        ring.set_key(0, material(1), 1);
        ring.set_key(9, material(2), 2);
        ring.erase();
        assert!(ring.is_empty());
        assert_eq!(ring.current_index(), None);
        let frame = encrypt_for_test(&material(1).key_set(), &OPUS, [1; 12], 0);
        assert_eq!(ring.decrypt(&frame), Err(FrameError::NoKey(0)));
    }
}
