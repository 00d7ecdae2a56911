//! Frames encrypted by livekit-client's own `FrameCryptor`, decrypted here.
//!
//! Where it sits: the test side of `tests/e2ee_frames/`. That folder's
//! `generate.mjs` bundles livekit-client 2.22.3's cryptor (esbuild), runs
//! it in Node with Element Call's key-provider options, and writes
//! `fixture.json`: the keys, the Opus frames it was given (real libopus
//! packets, `opus_frames.json`, written by [`write_opus_frames`] below),
//! and the frames it encrypted, across a rotation, a ratchet, and the last
//! key index. These tests decrypt them with this module's code and compare.

use std::sync::Arc;

use base64::Engine;
use ruma::room_id;
use serde_json::Value;

use super::keys::{KeyMaterial, derive_frame_key_bytes};
use super::ring::ParticipantKeys;
use super::{FrameError, MediaKeys, OlmSender, parse_key_event};
use crate::metrics::Metrics;

const FIXTURE: &str = include_str!("../../../tests/e2ee_frames/fixture.json");
const OPUS_FRAMES: &str = "../tests/e2ee_frames/opus_frames.json";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).unwrap()
}

fn raw_key(key: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(key["key"].as_str().unwrap())
        .unwrap()
}

/// A ring with the keys as Element Call would send them (not ratcheted).
fn ring(fixture: &Value) -> ParticipantKeys {
    let mut ring = ParticipantKeys::default();
    for key in fixture["keys"].as_array().unwrap() {
        let index = key["index"].as_u64().unwrap() as u8;
        ring.set_key(index, KeyMaterial::new(raw_key(key)).unwrap(), 1);
    }
    ring
}

fn frames(fixture: &Value) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    fixture["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                unhex(f["plaintext"].as_str().unwrap()),
                unhex(f["encrypted"].as_str().unwrap()),
            )
        })
        .collect()
}

#[test]
fn the_fixture_comes_from_livekit_client_and_covers_rotation_and_ratchet() {
    let fixture = fixture();
    assert_eq!(fixture["livekit_client"], "2.22.3");
    let names: Vec<String> = frames(&fixture).into_iter().map(|f| f.0).collect();
    for kind in ["index0", "rotated", "ratcheted-", "ratcheted2", "index255"] {
        assert!(
            names.iter().any(|n| n.starts_with(kind)),
            "{kind} missing in {names:?}"
        );
    }
}

#[test]
fn our_derivation_and_ratchet_match_livekit_clients() {
    let fixture = fixture();
    for key in fixture["keys"].as_array().unwrap() {
        let material = KeyMaterial::new(raw_key(key)).unwrap();
        assert_eq!(
            hex(material.ratchet().expose()),
            key["ratcheted"].as_str().unwrap(),
            "livekit-client's ratchet() of key {}",
            key["index"]
        );
        assert_eq!(
            hex(&derive_frame_key_bytes(material.expose())),
            key["frame_key"].as_str().unwrap(),
            "WebCrypto's HKDF with deriveKeys' parameters"
        );
    }
}

#[test]
fn every_frame_livekit_client_encrypted_decrypts_to_its_opus() {
    let fixture = fixture();
    let mut ring = ring(&fixture);
    let frames = frames(&fixture);
    assert!(frames.len() >= 8);
    for (name, plaintext, encrypted) in &frames {
        assert_eq!(encrypted[0], plaintext[0], "{name}: the TOC stays clear");
        assert_eq!(
            ring.decrypt(encrypted).as_deref(),
            Ok(plaintext.as_slice()),
            "{name}"
        );
    }
    // and they decode as the Opus they were: the 440 Hz tone, 20 ms each
    // (16 kHz after the decoder's resampler, which holds back a little)
    let mut decoder = salon_speech::live::OpusTrackDecoder::new(1).unwrap();
    let mut pcm = Vec::new();
    for (name, plaintext, _) in &frames {
        pcm.extend(
            decoder
                .decode_packet(plaintext)
                .unwrap_or_else(|e| panic!("{name}: {e}")),
        );
    }
    assert!(
        pcm.len() >= 320 * (frames.len() - 1),
        "{} samples",
        pcm.len()
    );
    let tail = &pcm[pcm.len() / 2..];
    let rms = (tail.iter().map(|s| s * s).sum::<f32>() / tail.len() as f32).sqrt();
    assert!(rms > 0.05, "the tone is heard: rms {rms}");
}

#[test]
fn the_whole_path_from_the_to_device_event_decrypts_the_fixture() {
    let fixture = fixture();
    let identity = fixture["identity"].as_str().unwrap();
    let (user, device) = identity.rsplit_once(':').unwrap();
    let user = ruma::UserId::parse(user).unwrap();
    let keys = MediaKeys::default();
    let room = room_id!("!call:hs");
    keys.open_room(room);
    for key in fixture["keys"].as_array().unwrap() {
        let event = serde_json::json!({
            "type": "io.element.call.encryption_keys",
            "sender": user,
            "content": {
                "keys": {"index": key["index"], "key": key["key"]},
                "room_id": room,
                "member": {"claimed_device_id": device, "id": "m"},
                "session": {"call_id": "", "application": "m.call", "scope": "m.room"},
                "sent_ts": 1,
            },
        });
        let olm = OlmSender {
            user: &user,
            device: Some(device),
        };
        let announcement = parse_key_event(&event, Some(olm)).unwrap();
        assert_eq!(announcement.identity, identity);
        keys.accept(announcement).unwrap();
    }
    let metrics = Arc::new(Metrics::default());
    let mut decryptor = keys.decryptor(room, identity, metrics);
    for (name, plaintext, encrypted) in frames(&fixture) {
        assert_eq!(decryptor.decrypt(&encrypted).unwrap(), plaintext, "{name}");
    }
}

#[test]
fn tampered_misindexed_and_truncated_fixture_frames_fail_cleanly() {
    let fixture = fixture();
    let frames = frames(&fixture);
    let (_, _, good) = frames.iter().find(|f| f.0.starts_with("index0")).unwrap();
    let len = good.len();

    // a flipped bit in the tag, the ciphertext, the IV, or the clear TOC
    for at in [len - 3, len - 14 - 1, len - 14 - 16, 1, 0] {
        let mut ring = ring(&fixture);
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        assert_eq!(
            ring.decrypt(&bad),
            Err(FrameError::Authentication(0)),
            "byte {at} flipped"
        );
    }
    // another index: a key that is not this frame's, or none at all
    let mut ring = ring(&fixture);
    let mut bad = good.clone();
    bad[len - 1] = 1;
    assert_eq!(ring.decrypt(&bad), Err(FrameError::Authentication(1)));
    bad[len - 1] = 7;
    assert_eq!(ring.decrypt(&bad), Err(FrameError::NoKey(7)));
    // a trailer cut short (its IV-length byte now reads as the key index)
    // or lying about the IV
    assert_eq!(ring.decrypt(&good[..len - 1]), Err(FrameError::NoKey(12)));
    assert!(ring.decrypt(&good[..len - 2]).is_err());
    let short = [&good[..20], &[12, 0]].concat();
    assert_eq!(ring.decrypt(&short), Err(FrameError::TooShort(22)));
    let mut bad = good.clone();
    bad[len - 2] = 13;
    assert_eq!(ring.decrypt(&bad), Err(FrameError::IvLength(13)));
    // and the good frame still decrypts afterwards
    let mut ring = self::ring(&fixture);
    assert!(ring.decrypt(good).is_ok());
}

#[test]
fn without_the_ratchet_window_the_ratcheted_frames_do_not_decrypt() {
    // the fixture's ratcheted frames really were encrypted with a ratcheted
    // key: the raw key alone, tried directly, fails
    let fixture = fixture();
    let key = fixture["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["index"] == 1)
        .unwrap();
    let keys = KeyMaterial::new(raw_key(key)).unwrap().key_set();
    for (name, _, encrypted) in frames(&fixture) {
        if name.starts_with("ratcheted") {
            let parsed = super::frame::parse(&encrypted).unwrap();
            assert!(super::frame::decrypt(&keys, &parsed).is_err(), "{name}");
        }
    }
}

#[test]
fn a_sender_two_ratchets_ahead_is_followed_directly() {
    // livekit-client's receiver needs a one-ratchet frame first; ours does not
    let fixture = fixture();
    let (_, plaintext, encrypted) = frames(&fixture)
        .into_iter()
        .find(|f| f.0 == "ratcheted2-0")
        .unwrap();
    let mut ring = ring(&fixture);
    assert_eq!(ring.decrypt(&encrypted).unwrap(), plaintext);
}

/// The CPU cost of decryption, for docs/e2ee.md: a participant sends 50
/// frames a second. Run by hand:
/// `cargo test -p salon --lib media_e2ee::fixture_tests::decryption_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn decryption_cost() {
    let fixture = fixture();
    let frames: Vec<Vec<u8>> = frames(&fixture)
        .into_iter()
        .filter(|f| f.0.starts_with("index0") || f.0.starts_with("rotated"))
        .map(|f| f.2)
        .collect();
    let mut keys = ring(&fixture);
    let rounds = 20_000;
    let started = std::time::Instant::now();
    for n in 0..rounds {
        keys.decrypt(&frames[n % frames.len()]).unwrap();
    }
    let good = started.elapsed() / rounds as u32;
    // the worst case: a wrong key, tried with the whole ratchet window (the
    // key is set again each time so the slot is never given up on)
    let mut wrong = frames[0].clone();
    wrong[1] ^= 1;
    let material = KeyMaterial::new(raw_key(&fixture["keys"][0])).unwrap();
    let rounds = 1_000;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        keys.set_key(0, material.clone(), 1);
        assert!(keys.decrypt(&wrong).is_err());
    }
    let failing = started.elapsed() / rounds as u32;
    println!(
        "decrypt: {good:?} per good frame ({:.3} % of a core at 50 frames/s); \
         {failing:?} per failing frame (key, 10 ratchets, all refused)",
        good.as_secs_f64() * 50.0 * 100.0
    );
}

/// Writes `tests/e2ee_frames/opus_frames.json`: 20 ms libopus packets of a
/// 440 Hz tone, the plaintext `generate.mjs` encrypts. Run by hand:
/// `cargo test -p salon --lib media_e2ee::fixture_tests::write_opus_frames -- --ignored`.
#[test]
#[ignore = "writes the fixture's input; run by hand"]
fn write_opus_frames() {
    let mut encoder =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    encoder.set_bitrate(opus::Bitrate::Bits(16_000)).unwrap();
    let mut frames = Vec::new();
    for n in 0..12 {
        let pcm: Vec<i16> = (0..960)
            .map(|i| {
                let t = (n * 960 + i) as f32 / 48_000.0;
                ((t * 440.0 * std::f32::consts::TAU).sin() * 8_000.0) as i16
            })
            .collect();
        frames.push(hex(&encoder.encode_vec(&pcm, 400).unwrap()));
    }
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "about": "20 ms libopus packets (48 kHz mono, 16 kb/s) of a 440 Hz tone; \
                  written by media_e2ee::fixture_tests::write_opus_frames",
        "frames": frames,
    }))
    .unwrap();
    std::fs::write(OPUS_FRAMES, text + "\n").unwrap();
}
