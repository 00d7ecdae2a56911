//! Entry points for the coverage-guided fuzz targets in `fuzz/` (feature
//! `fuzzing`; not part of the bridge's build).
//!
//! Each function takes the bytes an outsider controls at one of the bridge's
//! doors and runs them through the same code the door does, without sockets:
//! the appservice transaction (then each event, the store's record of it and
//! the chat command in it), the focus API's JSON bodies, LiveKit webhooks and
//! the JWT that signs them, the config file, and on the transcription tap the
//! E2EE frame trailer and the to-device key events. None may panic, hang or
//! allocate without bound on any input; where the code promises more (an
//! accepted event is one the store can keep), that is asserted too, so the
//! fuzzer reports it as a crash.

use std::path::Path;

use ruma::user_id;
use serde_json::Value;

use crate::media_e2ee::{KeyMaterial, OlmSender, ParticipantKeys, parse_key_event};
use crate::store::{EventKind, QueuedEvent};

/// `PUT /_matrix/app/v1/transactions/{txnId}`: the body as the handler reads
/// it, each event as the inbox stores it, and each text as a command.
pub fn appservice_transaction(body: &[u8]) {
    let Ok(events) = crate::appservice::parse_transaction_events(body) else {
        return;
    };
    for wire in events {
        let Ok(event) = wire.into_event(None) else {
            continue;
        };
        // the inbox keeps it as JSON before the homeserver gets its 200: an
        // accepted event must come back from the store as it went in
        let stored = serde_json::to_vec(&event).expect("an accepted event serialises");
        let back: QueuedEvent =
            serde_json::from_slice(&stored).expect("the store reads back what it wrote");
        assert_eq!(back.event_id, event.event_id);
        if let EventKind::Text { body, mentions } = &event.kind {
            let _ = crate::commands::parse_with_mentions(body, mentions);
        }
    }
}

/// A chat message's body as a `!visio` command.
pub fn command(body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    let mut lines = text.splitn(2, '\n');
    let body = lines.next().unwrap_or_default();
    let mentions: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let _ = crate::commands::parse_with_mentions(body, &mentions);
    let _ = crate::commands::parse(body);
}

/// The focus API's bodies: `POST /sfu/get` (legacy) and `/get_token`.
pub fn focus_bodies(body: &[u8]) {
    crate::focus::parse_bodies_for_fuzzing(body);
}

/// `POST /_salon/v1/livekit/webhook`: the signature check on the
/// `Authorization` header (first line of the input), then the body.
pub fn livekit_webhook(input: &[u8]) {
    let (header, body) = match input.iter().position(|&b| b == b'\n') {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (input, &[][..]),
    };
    let header = std::str::from_utf8(header).ok();
    let _ = crate::livekit::webhook::verify(header, body, "APIfuzz", "fuzz-secret-fuzz-secret");
    let _ = crate::livekit::webhook::parse(body);
}

/// The config file, parsed and checked (without reading token files: the
/// fuzzer would otherwise have the config name device files to read).
pub fn config(text: &[u8]) {
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let _ = crate::config::Config::check_text(text, Path::new("/nonexistent/salon-fuzz"));
}

/// One encrypted Opus frame from the tap, against a participant holding a
/// key at index 0 (and, from the first input byte, maybe one more).
pub fn e2ee_frame(frame: &[u8]) {
    let mut keys = ParticipantKeys::default();
    let material = KeyMaterial::new(b"salon fuzz key material".to_vec()).expect("a key");
    keys.set_key(0, material, 1);
    if let Some(&index) = frame.first() {
        let other = KeyMaterial::new(vec![index; 16]).expect("a key");
        keys.set_key(index, other, 2);
    }
    let _ = crate::media_e2ee::frame_parse_for_fuzzing(frame);
    let _ = keys.decrypt(frame);
}

/// A decrypted to-device event, as the key intake reads it.
pub fn e2ee_key_event(json: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let user = user_id!("@alice:salon.test");
    let olm = OlmSender {
        user,
        device: Some("ALICEDEVICE"),
    };
    let _ = parse_key_event(&event, Some(olm));
    let _ = parse_key_event(&event, None);
}
