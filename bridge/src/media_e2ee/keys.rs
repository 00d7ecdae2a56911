//! Key material and the keys derived from it, exactly as livekit-client's
//! `e2ee/utils.ts` (`deriveKeys`, `ratchet`) does.
//!
//! Where it sits: a member's raw key arrives in `intake.rs` as
//! [`KeyMaterial`]; `ring.rs` keeps one [`KeySet`] per key index and, when a
//! frame fails, ratchets the material here; `frame.rs` decrypts with the
//! [`KeySet`]'s cipher.
//!
//! - frame key: `HKDF-SHA256(ikm = material, salt = "LKFrameEncryptionKey",
//!   info = 128 zero bytes, L = 16)`, an AES-128-GCM key (`keySize: 128`);
//! - ratchet: `material' = HKDF(material, same salt and info, L = 32)`
//!   (`deriveBits(…, 256)`), used by receivers only after a failure.
//!
//! Every byte of key material lives in zeroize-on-drop buffers, and no type
//! here prints a key: their `Debug` says only that there is one.

use std::fmt;

use aes_gcm::{Aes128Gcm, Key, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// livekit-client's `SALT` (`e2ee/constants.ts`), used for both derivations.
pub const SALT: &[u8] = b"LKFrameEncryptionKey";
/// `getAlgoOptions('HKDF')`: `info: new ArrayBuffer(128)`.
const INFO: [u8; 128] = [0; 128];
/// AES-128: `keySize: 128`.
const FRAME_KEY_LEN: usize = 16;
/// `ratchet()`: `deriveBits(…, 256)`.
const RATCHET_LEN: usize = 32;
/// The longest raw key accepted. Element Call sends 16 bytes, a ratcheted
/// key is 32; HKDF would take any length, but a key is never this long.
pub const MAX_MATERIAL_LEN: usize = 64;

/// A raw key as a member sent it (or as ratcheted): the HKDF input.
/// Wiped on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyMaterial(Vec<u8>);

impl KeyMaterial {
    /// The material, or `None` when empty or longer than
    /// [`MAX_MATERIAL_LEN`]. `bytes` is wiped either way.
    pub fn new(mut bytes: Vec<u8>) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > MAX_MATERIAL_LEN {
            bytes.zeroize();
            return None;
        }
        Some(KeyMaterial(bytes))
    }

    /// The material one ratchet step on: `deriveBits(HKDF, material, 256)`.
    pub fn ratchet(&self) -> KeyMaterial {
        let mut next = vec![0u8; RATCHET_LEN];
        hkdf_expand(&self.0, &mut next);
        KeyMaterial(next)
    }

    /// The AES-128-GCM frame key derived from it (`deriveKeys`).
    pub fn key_set(&self) -> KeySet {
        let mut key = Zeroizing::new([0u8; FRAME_KEY_LEN]);
        hkdf_expand(&self.0, &mut key[..]);
        let cipher = Aes128Gcm::new(Key::<Aes128Gcm>::from_slice(&key[..]));
        KeySet {
            material: self.clone(),
            cipher,
        }
    }

    /// The bytes, for tests comparing with livekit-client's own output.
    #[cfg(test)]
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial(<redacted {} bytes>)", self.0.len())
    }
}

/// HKDF-SHA256 with livekit-client's salt and info; fills `out`.
fn hkdf_expand(ikm: &[u8], out: &mut [u8]) {
    let hkdf = Hkdf::<Sha256>::new(Some(SALT), ikm);
    // out is 16 or 32 bytes, far below HKDF-SHA256's 255 × 32 limit
    if hkdf.expand(&INFO, out).is_err() {
        out.zeroize();
    }
}

/// One key index's material and the frame cipher derived from it
/// (livekit-client's `KeySet`). The cipher's AES round keys are wiped on
/// drop (`aes`' `zeroize` feature), the material too.
#[derive(Clone)]
pub struct KeySet {
    material: KeyMaterial,
    pub(super) cipher: Aes128Gcm,
}

impl KeySet {
    /// The material this set was derived from (the ratchet's input).
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySet(<redacted>)")
    }
}

/// The AES-128 key bytes `deriveKeys` makes from `material`, for tests.
#[cfg(test)]
pub(crate) fn derive_frame_key_bytes(material: &[u8]) -> [u8; FRAME_KEY_LEN] {
    let mut key = [0u8; FRAME_KEY_LEN];
    hkdf_expand(material, &mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn derivation_matches_hkdf_with_livekits_parameters() {
        // computed apart, with Python's hmac (RFC 5869 by hand):
        // PRK = HMAC(salt, ikm); T1 = HMAC(PRK, 128 zero bytes ‖ 0x01)
        const T1: &str = "7c92b56e8502babcc884c7b9a095ac24d9b779b47948050b8a70c6cc71b5da1f";
        let ikm = [7u8; 16];
        assert_eq!(hex(&derive_frame_key_bytes(&ikm)), T1[..32]);
        let material = KeyMaterial::new(ikm.to_vec()).unwrap();
        assert_eq!(hex(material.ratchet().expose()), T1);
    }

    #[test]
    fn keys_are_never_printed() {
        let material = KeyMaterial::new(vec![0xAB; 16]).unwrap();
        let shown = format!("{material:?} {:?}", material.key_set());
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn empty_or_huge_material_is_refused() {
        assert!(KeyMaterial::new(Vec::new()).is_none());
        assert!(KeyMaterial::new(vec![1; MAX_MATERIAL_LEN + 1]).is_none());
        assert!(KeyMaterial::new(vec![1; MAX_MATERIAL_LEN]).is_some());
    }
}
