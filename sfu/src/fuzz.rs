//! Entry points for the coverage-guided fuzz targets in `fuzz/` (feature
//! `fuzzing`; not part of the SFU's build).
//!
//! Each takes what a LiveKit client controls at the signalling door and runs
//! it through the code that door runs, without sockets: the protobuf frame
//! (`SignalRequest`), the SDP of offers and answers (our own readers of it,
//! then the WebRTC stack's offer/answer on a sans-IO peer connection with
//! Salon's codecs and interceptors), trickled candidates, the access token,
//! and the first bytes of forwarded RTP payloads that layer switching reads.

use std::sync::OnceLock;
use std::time::Instant;

use livekit_protocol::signal_request;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;

use crate::media::{AUDIO_LEVEL_URI, MAX_SDP_BYTES};

/// One certificate for every input: generating one per input would be
/// most of the work.
fn certificate() -> RTCCertificate {
    static CERT: OnceLock<RTCCertificate> = OnceLock::new();
    CERT.get_or_init(|| {
        let provider = rtc::crypto::default_provider().expect("a crypto provider");
        RTCCertificate::generate(
            provider.crypto(),
            rtc::crypto::SignatureScheme::EcdsaP256Sha256,
            CertificateParams::new(vec!["salon-fuzz".to_owned()]).expect("params"),
        )
        .expect("a certificate")
    })
    .clone()
}

/// A client's offer (publisher) or answer (subscriber) SDP, as Salon reads it
/// and as the WebRTC stack applies it; then trickled candidates on it.
fn sdp(text: &str, is_offer: bool, candidates: &[String]) {
    if text.len() > MAX_SDP_BYTES {
        return;
    }
    let _ = crate::media::extmap_id(text, AUDIO_LEVEL_URI);
    let _ = crate::media::sending_track_ids(text);
    let _ = crate::media::announce_public_ip(
        text,
        "127.0.0.1".parse().expect("an address"),
        "192.0.2.1".parse().expect("an address"),
    );
    let Ok((engine, registry)) = crate::media::media_engine() else {
        return;
    };
    let Ok(mut pc) = RTCPeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_certificates(vec![certificate()])
                .build(),
        )
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .build(Instant::now())
    else {
        return;
    };
    let applied = if is_offer {
        RTCSessionDescription::offer(text.to_owned())
            .ok()
            .and_then(|offer| pc.set_remote_description(Instant::now(), offer).ok())
            .and_then(|()| pc.create_answer(None).ok())
            .is_some()
    } else {
        let offer = pc.create_offer(None).ok();
        offer
            .and_then(|o| pc.set_local_description(Instant::now(), o).ok())
            .and_then(|()| RTCSessionDescription::answer(text.to_owned()).ok())
            .and_then(|answer| pc.set_remote_description(Instant::now(), answer).ok())
            .is_some()
    };
    if applied {
        for candidate in candidates {
            trickle(&mut pc, candidate);
        }
    }
}

/// A trickled candidate, the JSON LiveKit sends (`candidateInit`).
fn trickle(pc: &mut rtc::peer_connection::RTCPeerConnection, candidate_init: &str) {
    let Ok(init) = serde_json::from_str::<RTCIceCandidateInit>(candidate_init) else {
        return;
    };
    if !init.candidate.is_empty() {
        let _ = pc.add_remote_candidate(init);
    }
}

/// One WebSocket frame from a client: a `SignalRequest`.
pub fn signal_request(frame: &[u8]) {
    let Some(request) = crate::signal::dispatch::decode_request(frame) else {
        return;
    };
    match request.message {
        Some(signal_request::Message::Offer(sd)) => sdp(&sd.sdp, true, &[]),
        Some(signal_request::Message::Answer(sd)) => sdp(&sd.sdp, false, &[]),
        Some(signal_request::Message::Trickle(t)) => {
            // a candidate on a fresh connection that has no remote description
            let _ = serde_json::from_str::<RTCIceCandidateInit>(&t.candidate_init);
        }
        Some(signal_request::Message::TrackSetting(settings)) => {
            let _ = crate::simulcast::LayerRequest::from_settings(
                settings.disabled,
                settings.quality,
                settings.width,
                settings.height,
                &crate::simulcast::LayerSizes::from_layers([
                    (0, 320, 180),
                    (1, 640, 360),
                    (2, 1280, 720),
                ]),
            );
        }
        _ => {}
    }
}

/// An SDP text (an offer when the first byte is even, else an answer),
/// then, after a line `--`, one trickled candidate JSON per line.
pub fn sdp_text(input: &[u8]) {
    let Some((&first, rest)) = input.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (sdp_part, candidates) = match text.split_once("\n--\n") {
        Some((s, c)) => (s, c.lines().map(str::to_owned).collect::<Vec<_>>()),
        None => (text.as_ref(), Vec::new()),
    };
    sdp(sdp_part, first % 2 == 0, &candidates);
}

/// The `access_token` of `/rtc`, against Salon's key and secret.
pub fn access_token(token: &[u8]) {
    let token = String::from_utf8_lossy(token);
    if let Ok(claims) = crate::token::verify(&token, "APIfuzz", "fuzz-secret-fuzz-secret", None) {
        let _ = (
            claims.can_publish(),
            claims.can_subscribe(),
            claims.can_publish_data(),
        );
    }
    let _ = crate::token::verify(&token, "APIfuzz", "fuzz-secret-fuzz-secret", Some("room"));
}

/// A forwarded video payload's first bytes, as the layer switch reads them.
pub fn rtp_payload(payload: &[u8]) {
    let _ = crate::simulcast::vp8_keyframe(payload);
    let _ = crate::simulcast::h264_keyframe(payload);
    for mime in [
        "video/VP8",
        "video/H264",
        "video/VP9",
        "video/AV1",
        "audio/opus",
    ] {
        let probe = crate::simulcast::KeyframeProbe::for_mime(mime);
        let _ = (probe.starts_keyframe(payload), probe.can_switch());
    }
}
