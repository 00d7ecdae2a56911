//! One encrypted audio frame: its layout, and its decryption with one key.
//!
//! Where it sits: `ring.rs` finds the keys for a frame's key index and calls
//! [`decrypt`] here, once per key it tries (the key, then the ratchet
//! window); the transcriber's decryptor (`mod.rs`) strips a server-injected
//! frame first with [`strip_sif`]. Pure functions on byte slices.
//!
//! Layout, as livekit-client 2.22.3's `FrameCryptor.encodeFunction` writes
//! it, for audio (`UNENCRYPTED_BYTES.audio` = 1, the Opus TOC byte):
//!
//! ```text
//! [TOC (1)][AES-128-GCM ciphertext ‖ tag (16)][IV (12)][IV length = 12][key index]
//! ```
//!
//! The clear header (the TOC) is the additional authenticated data, and
//! the plaintext Opus is the TOC followed by the decrypted bytes. The IV is
//! read from the trailer (the sender builds it from SSRC, RTP timestamp and
//! a send counter; the receiver never needs to). Every length is checked
//! before it is used, so no input panics: a frame is either decrypted or
//! refused with a [`FrameError`].

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead, Payload};

use super::keys::KeySet;

/// The clear bytes of an audio frame (`UNENCRYPTED_BYTES.audio`).
pub const AUDIO_HEADER_LEN: usize = 1;
/// `IV_LENGTH`: the only IV length livekit-client writes.
pub const IV_LENGTH: usize = 12;
/// AES-GCM's tag (WebCrypto's default `tagLength` of 128 bits).
const TAG_LEN: usize = 16;
/// `[IV length][key index]`.
const TRAILER_LEN: usize = 2;
/// The shortest frame: an empty Opus body still has its tag.
pub const MIN_FRAME_LEN: usize = AUDIO_HEADER_LEN + TAG_LEN + IV_LENGTH + TRAILER_LEN;

/// livekit-client's `OpusSilenceFrame` (`e2ee/worker/sifPayload.ts`): the only
/// audio payload a server may inject unencrypted.
pub const OPUS_SILENCE_FRAME: [u8; 80] = {
    let mut frame = [0u8; 80];
    frame[0] = 0xf8;
    frame[1] = 0xff;
    frame[2] = 0xfe;
    frame
};

/// Why a frame was not decrypted. Counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than a header, a tag and a trailer.
    #[error("frame too short ({0} bytes)")]
    TooShort(usize),
    /// The trailer names an IV length livekit-client never writes.
    #[error("unsupported IV length {0}")]
    IvLength(u8),
    /// No key for this frame's key index (yet).
    #[error("no key at index {0}")]
    NoKey(u8),
    /// The key at this index failed too often; frames with it are dropped
    /// until a new key comes (livekit-client's `hasInvalidKeyAtIndex`).
    #[error("key at index {0} marked invalid")]
    InvalidKey(u8),
    /// The tag did not verify with the key nor any ratchet of it: a wrong
    /// key or a tampered frame.
    #[error("authentication failed at index {0}")]
    Authentication(u8),
    /// It ends with the server-injected-frame trailer but is not a known
    /// injected payload.
    #[error("unexpected server-injected frame")]
    UnexpectedSif,
    /// The track is encrypted with a scheme other than LiveKit's GCM.
    #[error("unsupported encryption")]
    UnsupportedEncryption,
}

impl FrameError {
    /// A short name for logs and labels.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::TooShort(_) => "too_short",
            FrameError::IvLength(_) => "iv_length",
            FrameError::NoKey(_) => "no_key",
            FrameError::InvalidKey(_) => "invalid_key",
            FrameError::Authentication(_) => "authentication",
            FrameError::UnexpectedSif => "unexpected_sif",
            FrameError::UnsupportedEncryption => "unsupported_encryption",
        }
    }
}

/// An encrypted audio frame, split along its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedFrame<'a> {
    /// The clear Opus TOC byte, also the AAD.
    pub header: &'a [u8],
    /// Ciphertext with its 16-byte tag.
    pub ciphertext: &'a [u8],
    pub iv: &'a [u8; IV_LENGTH],
    pub key_index: u8,
}

/// Splits an encrypted audio frame; refuses one whose trailer does not fit.
pub fn parse(frame: &[u8]) -> Result<EncryptedFrame<'_>, FrameError> {
    if frame.len() < MIN_FRAME_LEN {
        return Err(FrameError::TooShort(frame.len()));
    }
    let (rest, trailer) = frame.split_at(frame.len() - TRAILER_LEN);
    let (iv_len, key_index) = (trailer[0], trailer[1]);
    if usize::from(iv_len) != IV_LENGTH {
        return Err(FrameError::IvLength(iv_len));
    }
    let (rest, iv) = rest.split_at(rest.len() - IV_LENGTH);
    let (header, ciphertext) = rest.split_at(AUDIO_HEADER_LEN);
    let iv: &[u8; IV_LENGTH] = iv.try_into().map_err(|_| FrameError::IvLength(iv_len))?;
    Ok(EncryptedFrame {
        header,
        ciphertext,
        iv,
        key_index,
    })
}

/// The plaintext Opus of `frame` with `keys`: the TOC followed by the
/// decrypted bytes, or [`FrameError::Authentication`].
pub fn decrypt(keys: &KeySet, frame: &EncryptedFrame<'_>) -> Result<Vec<u8>, FrameError> {
    let body = keys
        .cipher
        .decrypt(
            Nonce::from_slice(frame.iv),
            Payload {
                msg: frame.ciphertext,
                aad: frame.header,
            },
        )
        .map_err(|_| FrameError::Authentication(frame.key_index))?;
    let mut opus = Vec::with_capacity(frame.header.len() + body.len());
    opus.extend_from_slice(frame.header);
    opus.extend_from_slice(&body);
    Ok(opus)
}

/// A frame the server injected in the clear (livekit-client's
/// `isFrameServerInjected`): `None` when `frame` does not end with the
/// room's `sif_trailer` (or there is none), else its payload when that is
/// the Opus silence frame, or [`FrameError::UnexpectedSif`].
pub fn strip_sif<'a>(frame: &'a [u8], trailer: &[u8]) -> Option<Result<&'a [u8], FrameError>> {
    if trailer.is_empty() || !frame.ends_with(trailer) {
        return None;
    }
    let payload = &frame[..frame.len() - trailer.len()];
    Some(if payload == OPUS_SILENCE_FRAME {
        Ok(payload)
    } else {
        Err(FrameError::UnexpectedSif)
    })
}

/// Encrypts as livekit-client's `encodeFunction` does, for tests of the
/// receiving side (the fixture from livekit-client itself is the real check).
#[cfg(test)]
pub(crate) fn encrypt_for_test(keys: &KeySet, opus: &[u8], iv: [u8; 12], key_index: u8) -> Vec<u8> {
    let (header, body) = opus.split_at(AUDIO_HEADER_LEN.min(opus.len()));
    let ciphertext = keys
        .cipher
        .encrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: body,
                aad: header,
            },
        )
        .expect("encrypt");
    let mut frame = header.to_vec();
    frame.extend_from_slice(&ciphertext);
    frame.extend_from_slice(&iv);
    frame.extend_from_slice(&[IV_LENGTH as u8, key_index]);
    frame
}

#[cfg(test)]
mod tests {
    use super::super::keys::KeyMaterial;
    use super::*;

    fn keys() -> KeySet {
        KeyMaterial::new(vec![3; 16]).unwrap().key_set()
    }

    #[test]
    fn a_frame_round_trips_and_keeps_its_toc_in_the_clear() {
        let opus = [0x78, 1, 2, 3, 4, 5];
        let frame = encrypt_for_test(&keys(), &opus, [9; 12], 4);
        assert_eq!(frame.len(), opus.len() + TAG_LEN + IV_LENGTH + TRAILER_LEN);
        assert_eq!(frame[0], 0x78);
        let parsed = parse(&frame).unwrap();
        assert_eq!(parsed.key_index, 4);
        assert_eq!(parsed.iv, &[9; 12]);
        assert_eq!(decrypt(&keys(), &parsed).unwrap(), opus);
        // a TOC alone is a frame too: the tag covers the header
        let frame = encrypt_for_test(&keys(), &[0x78], [1; 12], 0);
        assert_eq!(frame.len(), MIN_FRAME_LEN);
        assert_eq!(decrypt(&keys(), &parse(&frame).unwrap()).unwrap(), [0x78]);
    }

    #[test]
    fn the_header_is_authenticated() {
        let mut frame = encrypt_for_test(&keys(), &[0x78, 1, 2, 3], [9; 12], 0);
        frame[0] = 0x79;
        let parsed = parse(&frame).unwrap();
        assert_eq!(
            decrypt(&keys(), &parsed),
            Err(FrameError::Authentication(0))
        );
    }

    #[test]
    fn hostile_frames_are_refused_without_panicking() {
        for len in 0..MIN_FRAME_LEN {
            assert_eq!(parse(&vec![12; len]), Err(FrameError::TooShort(len)));
        }
        for iv_len in [0u8, 1, 11, 13, 200, 255] {
            let mut frame = vec![0u8; 64];
            frame[62] = iv_len;
            assert_eq!(parse(&frame), Err(FrameError::IvLength(iv_len)));
        }
        // every byte value in every trailer position, on every short length
        for len in 0..48 {
            for byte in [0u8, 1, 12, 13, 0x7f, 0xff] {
                let frame = vec![byte; len];
                if let Ok(parsed) = parse(&frame) {
                    assert!(decrypt(&keys(), &parsed).is_err());
                }
            }
        }
    }

    #[test]
    fn only_the_opus_silence_frame_may_be_injected() {
        let trailer = b"LKSIF".as_slice();
        assert_eq!(strip_sif(&[1, 2, 3], &[]), None);
        assert_eq!(strip_sif(&[1, 2, 3], trailer), None);
        let mut injected = OPUS_SILENCE_FRAME.to_vec();
        injected.extend_from_slice(trailer);
        assert_eq!(
            strip_sif(&injected, trailer),
            Some(Ok(OPUS_SILENCE_FRAME.as_slice()))
        );
        let mut other = vec![0xf8, 0xff, 0xfe, 1];
        other.extend_from_slice(trailer);
        assert_eq!(
            strip_sif(&other, trailer),
            Some(Err(FrameError::UnexpectedSif))
        );
        assert_eq!(
            strip_sif(trailer, trailer),
            Some(Err(FrameError::UnexpectedSif))
        );
    }
}
