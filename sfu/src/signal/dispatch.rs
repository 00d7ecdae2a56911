//! Signal dispatch: decodes a client's `SignalRequest` and applies it to its
//! participant (offers, answers, trickle, tracks, mute, subscriptions,
//! simulcast settings, pings). Called by the session loop in `signal`.

use std::sync::Arc;

use livekit_protocol as proto;
use livekit_protocol::{signal_request, signal_response};
use prost::Message;
use tracing::{debug, warn};

use crate::room::{Participant, now_ms};

/// Decodes a client frame. `None` for anything that is not a `SignalRequest`.
pub(crate) fn decode_request(frame: &[u8]) -> Option<proto::SignalRequest> {
    proto::SignalRequest::decode(frame).ok()
}

/// What the session should do after a request.
pub(crate) enum Verdict {
    Continue,
    Close(&'static str),
}

/// Applies one client request.
pub(crate) async fn handle_request(
    participant: &Arc<Participant>,
    request: signal_request::Message,
) -> Verdict {
    match request {
        signal_request::Message::Offer(sd) => {
            if sd.sdp.len() > crate::media::MAX_SDP_BYTES {
                return Verdict::Close("offer SDP too large");
            }
            debug!(id = sd.id, len = sd.sdp.len(), "publisher offer");
            let offer_sdp = sd.sdp.clone();
            match participant.publisher.answer(sd.sdp).await {
                Ok(sdp) => {
                    participant.reconcile_published(&offer_sdp).await;
                    participant
                        .flush_candidates(proto::SignalTarget::Publisher)
                        .await;
                    participant.send(signal_response::Message::Answer(
                        proto::SessionDescription {
                            r#type: "answer".into(),
                            sdp,
                            id: sd.id,
                            ..Default::default()
                        },
                    ));
                    Verdict::Continue
                }
                Err(error) => {
                    warn!(%error, "bad publisher offer");
                    Verdict::Close("offer could not be applied")
                }
            }
        }
        signal_request::Message::Answer(sd) => {
            if sd.sdp.len() > crate::media::MAX_SDP_BYTES {
                return Verdict::Close("answer SDP too large");
            }
            match participant.on_subscriber_answer(sd.sdp).await {
                Ok(()) => Verdict::Continue,
                Err(error) => {
                    warn!(%error, "bad subscriber answer");
                    Verdict::Close("answer could not be applied")
                }
            }
        }
        signal_request::Message::Trickle(trickle) => {
            if trickle.candidate_init.len() > 4096 {
                return Verdict::Close("candidate too large");
            }
            let target = proto::SignalTarget::try_from(trickle.target)
                .unwrap_or(proto::SignalTarget::Publisher);
            participant.on_trickle(target, trickle.candidate_init).await;
            Verdict::Continue
        }
        signal_request::Message::AddTrack(request) => {
            if let Err(reason) = participant.add_track(request) {
                warn!(reason, "add_track refused");
            }
            Verdict::Continue
        }
        signal_request::Message::Mute(mute) => {
            participant.mute(&mute.sid, mute.muted);
            Verdict::Continue
        }
        signal_request::Message::Subscription(update) => {
            participant.update_subscription(update).await;
            Verdict::Continue
        }
        signal_request::Message::TrackSetting(settings) => {
            participant.update_track_settings(&settings);
            Verdict::Continue
        }
        signal_request::Message::Leave(_) => Verdict::Close("client left"),
        signal_request::Message::Ping(ts) => {
            participant.send(signal_response::Message::Pong(ts));
            Verdict::Continue
        }
        signal_request::Message::PingReq(ping) => {
            participant.send(signal_response::Message::PongResp(proto::Pong {
                last_ping_timestamp: ping.timestamp,
                timestamp: now_ms(),
            }));
            Verdict::Continue
        }
        other => {
            debug!(message = ?std::mem::discriminant(&other), "request not handled");
            Verdict::Continue
        }
    }
}
