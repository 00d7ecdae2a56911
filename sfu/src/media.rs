//! The only module that touches the `webrtc` crate. It wraps a peer connection
//! in [`PeerLink`], a received track in [`UpTrack`], a forwarded track in
//! [`DownTrack`] and a data channel in [`DataLink`], so that the room logic is
//! written in our own terms and a change of WebRTC stack stays in this file.
//!
//! Each peer connection binds one UDP socket on the configured address, taken
//! from the configured port range. Server-side ICE candidates are gathered up
//! front (host only, plus the announced public address) and put in the SDP, so
//! the server never trickles; it does accept the client's trickled candidates.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use tokio::sync::{Notify, mpsc};
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::config::{SfuConfig, rules};
use crate::error::SfuError;
use crate::events::TrackKind;

/// RFC 6464 client-to-mixer audio level.
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// Largest SDP accepted from a client.
pub(crate) const MAX_SDP_BYTES: usize = 64 * 1024;
/// How long to wait for local ICE gathering before sending what we have.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and how peer connections bind and what they announce.
#[derive(Clone, Debug)]
pub(crate) struct MediaSettings {
    bind_ip: IpAddr,
    port_min: u16,
    port_max: u16,
    public_ip: Option<IpAddr>,
    next_port: Arc<AtomicU16>,
}

impl MediaSettings {
    pub(crate) fn from_config(config: &SfuConfig) -> Result<Self, SfuError> {
        // The same rules as `SfuConfig::validate`, for the two settings used here.
        rules::bind_ip(config.bind_ip)
            .map_err(|e| SfuError::Config(format!("sfu.bind_ip: {e}")))?;
        rules::udp_ports(config.udp_port_min, config.udp_port_max)
            .map_err(|e| SfuError::Config(format!("sfu.udp_port_min: {e}")))?;
        Ok(Self {
            bind_ip: config.bind_ip,
            port_min: config.udp_port_min,
            port_max: config.udp_port_max,
            public_ip: config.public_ip,
            next_port: Arc::new(AtomicU16::new(config.udp_port_min)),
        })
    }

    /// A free UDP address in the range (or an ephemeral port when no range).
    fn free_addr(&self) -> Result<SocketAddr, SfuError> {
        if self.port_min == 0 {
            return Ok(SocketAddr::new(self.bind_ip, 0));
        }
        let span = u32::from(self.port_max - self.port_min) + 1;
        for _ in 0..span {
            let offset = self.next_port.fetch_add(1, Ordering::Relaxed);
            let port = self.port_min + (offset.wrapping_sub(self.port_min) as u32 % span) as u16;
            let addr = SocketAddr::new(self.bind_ip, port);
            if UdpSocket::bind(addr).is_ok() {
                return Ok(addr);
            }
        }
        Err(SfuError::NoFreePort {
            ip: self.bind_ip,
            min: self.port_min,
            max: self.port_max,
        })
    }
}

/// What a peer connection reports to the room.
pub(crate) enum PeerEvent {
    /// A remote track started (publisher connection).
    Track(UpTrack),
    /// The remote opened a data channel.
    DataChannel(DataLink),
    /// ICE+DTLS connected.
    Connected,
    /// The connection failed or closed.
    Down,
}

struct PeerHandler {
    events: mpsc::UnboundedSender<PeerEvent>,
    gathered: Arc<Notify>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PeerHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let event = match state {
            RTCPeerConnectionState::Connected => PeerEvent::Connected,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => PeerEvent::Down,
            _ => return,
        };
        let _ = self.events.send(event);
    }

    async fn on_data_channel(&self, data_channel: Arc<dyn DataChannel>) {
        let label = data_channel.label().await.unwrap_or_default();
        let _ = self.events.send(PeerEvent::DataChannel(DataLink {
            channel: data_channel,
            label,
        }));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
        let mime_type = track
            .codec(ssrc)
            .await
            .map(|c| c.mime_type.to_ascii_lowercase())
            .unwrap_or_default();
        let kind = match track.kind().await {
            RtpCodecKind::Video => TrackKind::Video,
            _ => TrackKind::Audio,
        };
        let up = UpTrack {
            track_id: track.track_id().await,
            kind,
            mime_type,
            ssrc,
            track,
            layers: Vec::new(),
        };
        let _ = self.events.send(PeerEvent::Track(up));
    }
}

/// A peer connection, either a participant's publisher (they offer) or their
/// subscriber (we offer).
pub(crate) struct PeerLink {
    pc: Arc<dyn PeerConnection>,
    /// (bind address, announced address) when a public address is configured.
    public_ip: Option<(IpAddr, IpAddr)>,
    gathered: Arc<Notify>,
    gathering_done: std::sync::atomic::AtomicBool,
    audio_level_id: std::sync::Mutex<Option<u8>>,
}

/// Which side of a participant a peer connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerRole {
    /// Receives the participant's media; they offer.
    Publisher,
    /// Sends the room's media to the participant; we offer.
    Subscriber,
}

/// NACKs sent for one missing packet before giving up. The rtc crate's
/// default is unlimited, and its NACK generator never sees a packet repaired
/// over RTX: it reads RTX packets under the RTX SSRC, before they are
/// de-encapsulated. So a repaired packet stays "missing" and is NACKed again
/// every 100 ms, and retransmitted each time, until it leaves the receive log.
/// The bench measured half the stream sent twice under 2 % loss because of it
/// (`docs/sfu-performance.md`).
pub const MAX_NACKS_PER_PACKET: u16 = 3;

/// The rtc crate's default interceptors (NACK generator and responder, TWCC
/// receiver, RTCP reports, simulcast header extensions), with the NACK
/// generator capped at [`MAX_NACKS_PER_PACKET`].
pub fn register_interceptors(
    registry: Registry,
    engine: &mut MediaEngine,
) -> Result<Registry, rtc::shared::error::Error> {
    use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder};
    use rtc::peer_connection::configuration::interceptor_registry::{
        configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
    };
    use rtc::rtp_transceiver::rtp_sender::RTCPFeedback;
    for parameter in ["", "pli"] {
        engine.register_feedback(
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    let registry = registry
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_max_nacks_per_packet(MAX_NACKS_PER_PACKET)
                .build(),
        );
    configure_simulcast_extension_headers(engine)?;
    let registry = configure_twcc_receiver_only(registry, engine)?;
    Ok(configure_rtcp_reports(registry))
}

pub(crate) fn media_engine() -> Result<(MediaEngine, Registry), SfuError> {
    let mut engine = MediaEngine::default();
    engine.register_default_codecs()?;
    engine.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    let registry = register_interceptors(Registry::new(), &mut engine)?;
    Ok((engine, registry))
}

impl PeerLink {
    /// Builds a peer connection bound per `settings`.
    pub(crate) async fn new(
        settings: &MediaSettings,
        role: PeerRole,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<Self, SfuError> {
        let (engine, mut registry) = media_engine()?;
        if role == PeerRole::Subscriber {
            registry = registry.with(Slot::from(14_000), KeyframeRequestForwarder::default());
        }
        let mut setting = SettingEngineBuilder::new();
        if settings.bind_ip.is_loopback() {
            setting = setting.with_include_loopback_candidate(true);
        }
        let gathered = Arc::new(Notify::new());
        let handler = Arc::new(PeerHandler {
            events,
            gathered: gathered.clone(),
        });
        let addr = settings.free_addr()?;
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting.build())
            .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(vec![addr])
            .build()
            .await?;
        Ok(Self {
            pc: Arc::new(pc),
            public_ip: settings.public_ip.map(|public| (settings.bind_ip, public)),
            gathered,
            gathering_done: std::sync::atomic::AtomicBool::new(false),
            audio_level_id: std::sync::Mutex::new(None),
        })
    }

    async fn wait_gathered(&self) {
        if self.gathering_done.load(Ordering::Acquire) {
            return;
        }
        let _ = tokio::time::timeout(GATHER_TIMEOUT, self.gathered.notified()).await;
        self.gathering_done.store(true, Ordering::Release);
    }

    async fn local_sdp(&self) -> Result<String, SfuError> {
        self.wait_gathered().await;
        let sdp = self
            .pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| SfuError::Config("no local description".into()))?;
        Ok(match self.public_ip {
            Some((bind, public)) => announce_public_ip(&sdp, bind, public),
            None => sdp,
        })
    }

    /// Applies a client's offer and returns our answer.
    pub(crate) async fn answer(&self, offer_sdp: String) -> Result<String, SfuError> {
        if let Some(id) = extmap_id(&offer_sdp, AUDIO_LEVEL_URI) {
            *self
                .audio_level_id
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(id);
        }
        let offer = RTCSessionDescription::offer(offer_sdp)?;
        self.pc.set_remote_description(offer).await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        self.local_sdp().await
    }

    /// Creates and applies an offer, returning its SDP.
    pub(crate) async fn offer(&self) -> Result<String, SfuError> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.local_sdp().await
    }

    /// Applies the client's answer to our offer.
    pub(crate) async fn apply_answer(&self, answer_sdp: String) -> Result<(), SfuError> {
        let answer = RTCSessionDescription::answer(answer_sdp)?;
        self.pc.set_remote_description(answer).await?;
        Ok(())
    }

    /// Adds a trickled remote candidate (`candidate_init` is the JSON LiveKit sends).
    pub(crate) async fn add_candidate(&self, candidate_init: &str) -> Result<(), SfuError> {
        let init: RTCIceCandidateInit = serde_json::from_str(candidate_init)
            .map_err(|e| SfuError::Config(format!("bad candidate: {e}")))?;
        if init.candidate.is_empty() {
            return Ok(()); // end-of-candidates
        }
        self.pc.add_ice_candidate(init).await?;
        Ok(())
    }

    /// The extmap id the publisher uses for RFC 6464 audio levels.
    pub(crate) fn audio_level_id(&self) -> Option<u8> {
        *self
            .audio_level_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a track forwarding `codec` media to the client, labelled with
    /// LiveKit's `PA_x|TR_y` stream id and `TR_y` track id.
    pub(crate) async fn add_down_track(
        &self,
        stream_id: &str,
        track_sid: &str,
        kind: TrackKind,
        codec: RTCRtpCodec,
    ) -> Result<DownTrack, SfuError> {
        let ssrc: u32 = rand::random();
        let rtc_kind = match kind {
            TrackKind::Audio => RtpCodecKind::Audio,
            TrackKind::Video => RtpCodecKind::Video,
        };
        let local = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            stream_id.to_owned(),
            track_sid.to_owned(),
            track_sid.to_owned(),
            rtc_kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec.clone(),
                ..Default::default()
            }],
        )));
        let transceiver = self
            .pc
            .add_transceiver_from_track(
                Arc::clone(&local) as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    ..Default::default()
                }),
            )
            .await?;
        let sender = transceiver
            .sender()
            .await?
            .ok_or_else(|| SfuError::Config("transceiver without sender".into()))?;
        let (queue, queued) = mpsc::channel(DOWN_QUEUE_PACKETS);
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = DownWriter {
            local: local.clone(),
            sender: sender.clone(),
            ssrc,
            mime_type: codec.mime_type.to_ascii_lowercase(),
            payload_type: None,
            ready: ready.clone(),
        };
        tokio::spawn(tracing::Instrument::in_current_span(writer.run(queued)));
        Ok(DownTrack {
            local,
            sender,
            queue,
            kind,
            request: AtomicU32::new(crate::simulcast::LayerRequest::default().pack()),
            current_layer: std::sync::atomic::AtomicU8::new(NO_LAYER),
            ready,
        })
    }

    /// Stops forwarding a track to the client (needs a renegotiation).
    pub(crate) async fn remove_down_track(&self, down: &DownTrack) {
        if let Err(error) = self.pc.remove_track(&down.sender).await {
            tracing::debug!(%error, "remove_track failed");
        }
    }

    /// Opens a data channel towards the client.
    pub(crate) async fn create_data_channel(
        &self,
        label: &str,
        reliable: bool,
    ) -> Result<DataLink, SfuError> {
        let init = if reliable {
            RTCDataChannelInit {
                ordered: true,
                ..Default::default()
            }
        } else {
            RTCDataChannelInit {
                ordered: true,
                max_retransmits: Some(0),
                ..Default::default()
            }
        };
        let channel = self.pc.create_data_channel(label, Some(init)).await?;
        Ok(DataLink {
            channel,
            label: label.to_owned(),
        })
    }

    /// Closes the connection, its socket and its driver task.
    pub(crate) async fn close(&self) {
        if let Err(error) = self.pc.close().await {
            tracing::debug!(%error, "peer connection close failed");
        }
    }
}

/// Adds, after each host candidate on `bind`, the same candidate on `public`
/// (for 1:1 NAT), with its own foundation and a slightly lower priority. The
/// webrtc crate stores but does not apply `nat_1to1_ips`, so it is done here.
pub(crate) fn announce_public_ip(sdp: &str, bind: IpAddr, public: IpAddr) -> String {
    let bind = bind.to_string();
    let public = public.to_string();
    let mut out = String::with_capacity(sdp.len() + 256);
    for line in sdp.split_inclusive('\n') {
        out.push_str(line);
        let Some(candidate) = line.trim_end().strip_prefix("a=candidate:") else {
            continue;
        };
        let fields: Vec<&str> = candidate.split(' ').collect();
        // foundation component transport priority address port "typ" type ...
        if fields.len() < 8 || fields[4] != bind || fields[7] != "host" {
            continue;
        }
        let priority: u64 = fields[3].parse().unwrap_or(0);
        let mut copy: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        copy[0] = format!("{}1", fields[0]);
        copy[3] = priority.saturating_sub(1).to_string();
        copy[4] = public.clone();
        out.push_str("a=candidate:");
        out.push_str(&copy.join(" "));
        out.push_str(if line.ends_with("\r\n") { "\r\n" } else { "\n" });
    }
    out
}

/// Reads `a=extmap:<id> <uri>` from an SDP.
pub(crate) fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=extmap:")?;
        let (id, tail) = rest.split_once(' ')?;
        let found_uri = tail.split_whitespace().next()?;
        if found_uri != uri {
            return None;
        }
        id.split('/').next()?.parse().ok()
    })
}

/// Track ids (`a=msid:<stream> <track>`) of the media sections of `sdp` that
/// send (direction `sendrecv` or `sendonly`, or none given).
pub(crate) fn sending_track_ids(sdp: &str) -> std::collections::HashSet<String> {
    let mut ids = std::collections::HashSet::new();
    for section in sdp.split("\nm=").skip(1) {
        let mut sends = true;
        let mut track = None;
        for line in section.lines().map(str::trim) {
            match line {
                "a=recvonly" | "a=inactive" => sends = false,
                _ => {
                    if let Some(msid) = line.strip_prefix("a=msid:") {
                        track = msid.split_whitespace().nth(1).map(str::to_owned);
                    }
                }
            }
        }
        if sends && let Some(track) = track {
            ids.insert(track);
        }
    }
    ids
}

/// One RTP packet received from a publisher, in our terms.
pub(crate) struct RtpIn {
    pub(crate) packet: rtc::rtp::Packet,
}

impl RtpIn {
    pub(crate) fn payload(&self) -> &Bytes {
        &self.packet.payload
    }
    pub(crate) fn sequence(&self) -> u16 {
        self.packet.header.sequence_number
    }
    pub(crate) fn timestamp(&self) -> u32 {
        self.packet.header.timestamp
    }
    /// RFC 6464 level (-dBov) if the packet carries it under `id`.
    pub(crate) fn audio_level(&self, id: Option<u8>) -> Option<u8> {
        let data = self.packet.header.get_extension(id?)?;
        data.first().map(|b| b & 0x7f)
    }
    /// The sender's SSRC (one per simulcast layer).
    pub(crate) fn ssrc(&self) -> u32 {
        self.packet.header.ssrc
    }
    /// Removes the header extensions (before the packet is copied to every
    /// subscriber, whose negotiated extension ids differ).
    pub(crate) fn strip_extensions(&mut self) {
        let header = &mut self.packet.header;
        header.extension = false;
        header.extensions.clear();
        header.extensions_padding = 0;
    }

    /// Bytes on the wire (roughly), for bitrate accounting.
    pub(crate) fn size(&self) -> usize {
        12 + self.packet.payload.len()
    }
}

/// A track a participant publishes, as received by the SFU.
pub(crate) struct UpTrack {
    pub(crate) track_id: String,
    pub(crate) kind: TrackKind,
    pub(crate) mime_type: String,
    pub(crate) ssrc: u32,
    track: Arc<dyn TrackRemote>,
    /// Simulcast layer of each SSRC seen (from its RID), at most a few.
    layers: Vec<(u32, u8)>,
}

impl UpTrack {
    /// The next RTP packet; `None` when the track ended. Learns each
    /// simulcast SSRC's layer as it opens.
    pub(crate) async fn next(&mut self) -> Option<RtpIn> {
        loop {
            match self.track.poll().await? {
                TrackRemoteEvent::OnRtpPacket(packet) => return Some(RtpIn { packet }),
                TrackRemoteEvent::OnOpen(init) => {
                    let layer = crate::simulcast::layer_for_rid(init.rid.as_deref());
                    tracing::debug!(ssrc = init.ssrc, rid = ?init.rid, layer, "publisher stream opened");
                    if self.layers.len() < 16 {
                        self.layers.retain(|(ssrc, _)| *ssrc != init.ssrc);
                        self.layers.push((init.ssrc, layer));
                    }
                }
                TrackRemoteEvent::OnEnded | TrackRemoteEvent::OnError => return None,
                _ => continue,
            }
        }
    }

    /// Whether more than one simulcast layer was seen.
    pub(crate) fn has_layers(&self) -> bool {
        self.layers.iter().any(|(_, layer)| *layer > 0)
    }

    /// The simulcast layer an SSRC carries (0 without simulcast); `None` for
    /// an SSRC whose opening was not seen (the crate drops that event when
    /// its queue is full).
    pub(crate) fn layer_of(&self, ssrc: u32) -> Option<u8> {
        self.layers
            .iter()
            .find(|(s, _)| *s == ssrc)
            .map(|(_, layer)| *layer)
    }

    /// The codec as negotiated, for the forwarded copies.
    pub(crate) async fn codec(&self) -> RTCRtpCodec {
        self.track.codec(self.ssrc).await.unwrap_or_default()
    }

    pub(crate) fn handle(&self) -> KeyframeHandle {
        KeyframeHandle {
            track: self.track.clone(),
            ssrc: Arc::new(AtomicU32::new(self.ssrc)),
        }
    }
}

/// A cheap handle to ask a publisher for keyframes.
#[derive(Clone)]
pub(crate) struct KeyframeHandle {
    track: Arc<dyn TrackRemote>,
    /// The track's first SSRC, asked when no layer's SSRC is known yet.
    ssrc: Arc<AtomicU32>,
}

impl KeyframeHandle {
    pub(crate) async fn request(&self) {
        self.request_ssrc(self.ssrc.load(Ordering::Relaxed)).await;
    }

    /// Asks for a keyframe on one simulcast SSRC.
    pub(crate) async fn request_ssrc(&self, ssrc: u32) {
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        let _ = self.track.write_rtcp(vec![Box::new(pli)]).await;
    }
}

/// Packets queued for one subscriber's track before newer ones are dropped:
/// a slow subscriber loses its own packets and never holds up the others.
const DOWN_QUEUE_PACKETS: usize = 256;

/// A published track forwarded to one subscriber. Packets go through a
/// bounded queue to a writer task of its own.
pub(crate) struct DownTrack {
    local: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    queue: mpsc::Sender<rtc::rtp::Packet>,
    pub(crate) kind: TrackKind,
    /// What the subscriber asked for (a packed [`crate::simulcast::LayerRequest`]).
    request: AtomicU32,
    /// The simulcast layer it receives now (`NO_LAYER`: none), for its PLIs.
    current_layer: std::sync::atomic::AtomicU8,
    /// The subscriber negotiated the track: packets can reach it.
    ready: Arc<std::sync::atomic::AtomicBool>,
}

const NO_LAYER: u8 = u8::MAX;

/// Rewrites packets for one subscriber leg (SSRC, negotiated payload type, no
/// header extensions) and hands them to its peer connection.
struct DownWriter {
    local: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    mime_type: String,
    payload_type: Option<u8>,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

/// How often a new down track checks whether the subscriber negotiated it.
const NEGOTIATION_POLL: Duration = Duration::from_millis(20);

impl DownWriter {
    async fn negotiated_payload_type(&mut self) -> Option<u8> {
        if self.payload_type.is_some() {
            return self.payload_type;
        }
        let params = self.sender.get_parameters().await.ok()?;
        self.payload_type = params
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&self.mime_type))
            .map(|c| c.payload_type);
        self.payload_type
    }

    async fn run(mut self, mut queue: mpsc::Receiver<rtc::rtp::Packet>) {
        // Until the subscriber has negotiated the track, the forwarder sends
        // nothing (a first keyframe would be lost, and the subscriber would
        // start on deltas).
        let pt = loop {
            if let Some(pt) = self.negotiated_payload_type().await {
                break pt;
            }
            if queue.is_closed() {
                return;
            }
            tokio::time::sleep(NEGOTIATION_POLL).await;
        };
        self.ready.store(true, Ordering::Release);
        while let Some(mut packet) = queue.recv().await {
            // Extensions were stripped once by the forwarder.
            packet.header.ssrc = self.ssrc;
            packet.header.payload_type = pt;
            let _ = self.local.write_rtp(packet).await;
        }
    }
}

impl DownTrack {
    /// Queues one packet for this subscriber, renumbered for it (the payload
    /// is shared, never copied or changed). False if their queue is full (the
    /// packet is dropped for them alone).
    pub(crate) fn forward_as(&self, packet: &RtpIn, sequence: u16, timestamp: u32) -> bool {
        let mut copy = packet.packet.clone();
        copy.header.sequence_number = sequence;
        copy.header.timestamp = timestamp;
        self.queue.try_send(copy).is_ok()
    }

    /// Whether the subscriber negotiated this track (before, nothing is sent).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// What the subscriber asked for this track.
    pub(crate) fn request(&self) -> crate::simulcast::LayerRequest {
        crate::simulcast::LayerRequest::unpack(self.request.load(Ordering::Relaxed))
    }

    /// The simulcast layer it receives now.
    pub(crate) fn current_layer(&self) -> Option<u8> {
        Some(self.current_layer.load(Ordering::Relaxed)).filter(|&l| l != NO_LAYER)
    }

    /// Set by the forwarding loop as it switches layers.
    pub(crate) fn set_current_layer(&self, layer: Option<u8>) {
        let layer = layer.unwrap_or(NO_LAYER);
        if self.current_layer.load(Ordering::Relaxed) != layer {
            self.current_layer.store(layer, Ordering::Relaxed);
        }
    }

    /// Records what the subscriber asked for (`UpdateTrackSettings`).
    pub(crate) fn set_request(&self, request: crate::simulcast::LayerRequest) {
        self.request.store(request.pack(), Ordering::Relaxed);
    }

    /// The subscriber's next keyframe request; `None` when the track is gone.
    pub(crate) async fn next_keyframe_request(&self) -> Option<()> {
        loop {
            match self.local.poll().await? {
                TrackLocalEvent::OnRtcpPacket(_) => return Some(()),
                #[allow(unreachable_patterns)]
                _ => continue,
            }
        }
    }
}

/// A data channel (`_reliable` or `_lossy`).
#[derive(Clone)]
pub(crate) struct DataLink {
    channel: Arc<dyn DataChannel>,
    pub(crate) label: String,
}

impl DataLink {
    /// The next binary message; `None` when the channel closed.
    pub(crate) async fn recv(&self) -> Option<BytesMut> {
        loop {
            match self.channel.poll().await? {
                DataChannelEvent::OnMessage(message) => return Some(message.data),
                DataChannelEvent::OnClose => return None,
                _ => continue,
            }
        }
    }

    /// Sends a binary message; errors (channel not open yet, closed) are dropped.
    pub(crate) async fn send(&self, data: &[u8]) -> bool {
        self.channel.send(BytesMut::from(data)).await.is_ok()
    }
}

/// Passes inbound PLI/FIR on to the application (so the SFU can forward them
/// to the publisher) and drops other inbound RTCP, which the interceptors
/// before it have already acted on.
#[derive(Default)]
pub(crate) struct KeyframeRequestForwarder {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extmap_id_is_read_from_sdp() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=extmap:3/sendrecv http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n";
        assert_eq!(extmap_id(sdp, AUDIO_LEVEL_URI), Some(1));
        assert_eq!(
            extmap_id(
                sdp,
                "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
            ),
            Some(3)
        );
        assert_eq!(extmap_id(sdp, "urn:other"), None);
    }

    #[test]
    fn public_address_is_announced_next_to_host_candidates() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=candidate:123 1 udp 2130706431 10.0.0.5 40000 typ host\r\na=candidate:9 1 udp 1 10.0.0.6 40001 typ host\r\na=end-of-candidates\r\n";
        let out = announce_public_ip(
            sdp,
            "10.0.0.5".parse().expect("ip"),
            "203.0.113.7".parse().expect("ip"),
        );
        assert!(out.contains("a=candidate:123 1 udp 2130706431 10.0.0.5 40000 typ host\r\n"));
        assert!(out.contains("a=candidate:1231 1 udp 2130706430 203.0.113.7 40000 typ host\r\n"));
        assert!(
            !out.contains("203.0.113.7 40001"),
            "only the bind address is mapped"
        );
        assert!(out.ends_with("a=end-of-candidates\r\n"));
    }

    #[test]
    fn sending_tracks_are_read_from_sdp() {
        let sdp = "v=0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=msid:stream mic-1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=inactive\r\na=msid:stream cam-1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=msid:s2 mic-2\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n";
        let ids = sending_track_ids(sdp);
        assert!(ids.contains("mic-1") && ids.contains("mic-2"));
        assert!(!ids.contains("cam-1"));
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn port_range_hands_out_ports_inside_it() {
        let mut config = SfuConfig::local("k", "s");
        config.udp_port_min = 40_100;
        config.udp_port_max = 40_103;
        let settings = MediaSettings::from_config(&config).expect("valid");
        for _ in 0..8 {
            let port = settings.free_addr().expect("free").port();
            assert!((40_100..=40_103).contains(&port), "{port}");
        }
    }

    #[test]
    fn wildcard_bind_is_refused() {
        let mut config = SfuConfig::local("k", "s");
        config.bind_ip = "0.0.0.0".parse().expect("ip");
        assert!(MediaSettings::from_config(&config).is_err());
    }
}
