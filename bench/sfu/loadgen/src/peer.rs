//! A bare WebRTC peer on the `webrtc` crate for the Janus side (the Salon
//! side uses `salon_sfu::testing::TestClient`, which speaks LiveKit's
//! protocol): the same media engine, default interceptors (NACK, reports)
//! and the same keyframe-request filter, so both SFUs face identical clients.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability,
    RtpCodecKind,
};
use rtc::sansio::Protocol;
use salon_sfu::testing::ReceivedPacket;
use tokio::sync::{Notify, mpsc, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

use crate::measure::Outbound;

struct Handler {
    gathered: Arc<Notify>,
    connected: watch::Sender<bool>,
    tracks: Option<mpsc::UnboundedSender<IncomingTrack>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            let _ = self.connected.send(true);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(tracks) = &self.tracks else { return };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tracks.send((track.clone(), rx));
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let received = ReceivedPacket {
                            payload: packet.payload.clone(),
                            sequence: packet.header.sequence_number,
                            timestamp: packet.header.timestamp,
                            payload_type: packet.header.payload_type,
                        };
                        if tx.send(received).is_err() {
                            return;
                        }
                    }
                    TrackRemoteEvent::OnEnded => return,
                    _ => {}
                }
            }
        });
    }
}

/// A track received by a [`Peer`], with its packets.
pub type IncomingTrack = (
    Arc<dyn TrackRemote>,
    mpsc::UnboundedReceiver<ReceivedPacket>,
);

/// One peer connection.
pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    gathered: Arc<Notify>,
    connected: watch::Receiver<bool>,
    pub tracks: tokio::sync::Mutex<mpsc::UnboundedReceiver<IncomingTrack>>,
}

impl Peer {
    /// A peer bound to `bind_ip` (a loopback address inside the bench's
    /// network namespace).
    pub async fn new(bind_ip: &str) -> Result<Self> {
        let mut engine = MediaEngine::default();
        engine.register_default_codecs()?;
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level".to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )?;
        // The same interceptors as Salon's and its test client's (NACK capped
        // per packet, see `salon_sfu::testing::MAX_NACKS_PER_PACKET`).
        let registry = salon_sfu::testing::register_interceptors(Registry::new(), &mut engine)?
            .with(Slot::from(14_000), KeyframeRequestForwarder::default());
        let gathered = Arc::new(Notify::new());
        let (connected_tx, connected) = watch::channel(false);
        let (tracks_tx, tracks_rx) = mpsc::unbounded_channel();
        let handler = Arc::new(Handler {
            gathered: gathered.clone(),
            connected: connected_tx,
            tracks: Some(tracks_tx),
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_include_loopback_candidate(true)
                    .build(),
            )
            .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(vec![format!("{bind_ip}:0")])
            .build()
            .await?;
        Ok(Self {
            pc: Arc::new(pc),
            gathered,
            connected,
            tracks: tokio::sync::Mutex::new(tracks_rx),
        })
    }

    /// Adds a send-only track (Opus or VP8) to publish with `source` as its
    /// trailer id.
    pub async fn add_outbound(&self, audio: bool, source: u16) -> Result<Outbound> {
        let ssrc: u32 = rand::random();
        let (codec, payload_type, kind) = if audio {
            (
                RTCRtpCodec {
                    mime_type: "audio/opus".into(),
                    clock_rate: 48000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                    rtcp_feedback: vec![],
                },
                111,
                RtpCodecKind::Audio,
            )
        } else {
            (
                RTCRtpCodec {
                    mime_type: "video/VP8".into(),
                    clock_rate: 90000,
                    channels: 0,
                    sdp_fmtp_line: String::new(),
                    rtcp_feedback: vec![],
                },
                96,
                RtpCodecKind::Video,
            )
        };
        let id = format!("bench-{source}");
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("stream-{source}"),
            id.clone(),
            id,
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        )));
        self.pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await?;
        Ok(Outbound::new(track, ssrc, payload_type, audio, source))
    }

    /// Our SDP once ICE gathering is complete (Janus takes candidates in
    /// the SDP; no trickle).
    pub async fn local_sdp(&self) -> Result<String> {
        let _ = tokio::time::timeout(Duration::from_secs(3), self.gathered.notified()).await;
        Ok(self
            .pc
            .local_description()
            .await
            .context("no local description")?
            .sdp)
    }

    pub async fn offer(&self) -> Result<String> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.local_sdp().await
    }

    pub async fn answer(&self, offer_sdp: String) -> Result<String> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer_sdp)?)
            .await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        self.local_sdp().await
    }

    pub async fn apply_answer(&self, answer_sdp: String) -> Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer_sdp)?)
            .await?;
        Ok(())
    }

    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut connected = self.connected.clone();
        tokio::time::timeout(timeout, connected.wait_for(|c| *c))
            .await
            .context("peer connection did not connect")??;
        Ok(())
    }

    /// The next track the remote sends.
    pub async fn next_track(&self, timeout: Duration) -> Result<IncomingTrack> {
        let mut tracks = self.tracks.lock().await;
        tokio::time::timeout(timeout, tracks.recv())
            .await
            .ok()
            .flatten()
            .context("no track arrived")
    }
}

/// Passes inbound PLI/FIR on to the application (so a publisher sees the
/// keyframe requests an SFU sends) and drops other inbound RTCP, which the
/// interceptors before it have acted on. The same filter as the SFU's.
#[derive(Default)]
pub struct KeyframeRequestForwarder {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            tracing::debug!(
                kinds = ?packets.iter().map(|p| p.header().packet_type).collect::<Vec<_>>(),
                "inbound RTCP"
            );
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                })
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            tracing::debug!(
                media_ssrcs = ?requests.iter().map(|p| p.destination_ssrc()).collect::<Vec<_>>(),
                "keyframe request"
            );
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
