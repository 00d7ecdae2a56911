//! The participant itself: one signalling WebSocket and two peer connections,
//! as livekit-client runs them in the two-peer-connection mode. It connects to
//! `/rtc` with a token, takes the `join`, publishes tracks with `add_track` +
//! an offer on its publisher connection, answers the server's offers on its
//! subscriber connection, pings as the server asks, and keeps the latest
//! signals (bounded) so callers can wait on what a user's client would see.
//!
//! In the flow: the bridge's LiveKit backend connects one hidden [`Client`]
//! per transcribed call, reads [`Client::next_track`] for the audio and sends
//! captions with [`Client::send_packet`]; the tests and the bench drive it as
//! a browser would.

use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use livekit_protocol::{signal_request, signal_response};
use prost::Message as _;
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability,
    RtpCodecKind,
};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::rtp_transceiver::RtpSender;

use crate::interceptors::{KeyframeRequestForwarder, register_interceptors};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The WebSocket handshake failed (e.g. HTTP 401 for a bad token).
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The WebRTC stack failed.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// The server's first message was not `join`, or it never came.
    #[error("no join response: {0}")]
    NoJoin(String),
    /// Waiting for something timed out.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

/// One RTP packet the client received.
#[derive(Clone, Debug)]
pub struct ReceivedPacket {
    /// Payload as received.
    pub payload: Bytes,
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Payload type.
    pub payload_type: u8,
}

/// A track the server sent to this client.
pub struct ReceivedTrack {
    remote: Arc<dyn TrackRemote>,
    /// The stream id (`PA_x|TR_y` on a LiveKit server).
    pub stream_id: String,
    /// The track id (`TR_y`).
    pub track_id: String,
    /// Audio or video.
    pub is_audio: bool,
    /// Its packets, in arrival order.
    pub packets: mpsc::UnboundedReceiver<ReceivedPacket>,
}

impl ReceivedTrack {
    /// The SSRC the server sends this track with (0 before it is known).
    pub async fn ssrc(&self) -> u32 {
        self.remote.ssrcs().await.first().copied().unwrap_or(0)
    }

    /// Sends a PLI (keyframe request) for this track to the server.
    pub async fn request_keyframe(&self) -> Result<(), ClientError> {
        let ssrc = self.remote.ssrcs().await.first().copied().unwrap_or(0);
        self.remote
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            })])
            .await?;
        Ok(())
    }
}

/// A track this client publishes; write packets with [`send`](Self::send).
pub struct TrackSender {
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    /// The `cid` sent in `add_track`.
    pub cid: String,
    /// The sid the server gave it.
    pub sid: String,
    ssrc: u32,
    payload_type: u8,
    clock_step: u32,
    sequence: AtomicU16,
    timestamp: AtomicU32,
    is_audio: bool,
}

impl TrackSender {
    /// The local track, for callers that packetize their own RTP (the bench
    /// replays pre-encoded frames with its own timestamps and marker bits).
    pub fn local_track(&self) -> Arc<TrackLocalStaticRTP> {
        self.track.clone()
    }

    /// The SSRC announced for this track.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The payload type this client writes (111 Opus, 96 VP8).
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// The next keyframe request (PLI/FIR) the server sends for this track.
    pub async fn next_keyframe_request(&self, timeout: Duration) -> Result<(), ClientError> {
        let wait = async {
            loop {
                match self.track.poll().await {
                    Some(TrackLocalEvent::OnRtcpPacket(_)) => return Ok(()),
                    Some(_) => continue,
                    None => return Err(ClientError::Timeout("track unbound".into())),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout("keyframe request".into()))?
    }

    /// Sends one packet with `payload`; for audio, with an RFC 6464 level.
    pub async fn send(&self, payload: &[u8], level_dbov: u8) -> bool {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let timestamp = self.timestamp.fetch_add(self.clock_step, Ordering::Relaxed);
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: !self.is_audio,
                payload_type: self.payload_type,
                sequence_number: sequence,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        if self.is_audio {
            self.track
                .write_rtp_with_extensions(
                    packet,
                    &[HeaderExtension::AudioLevel(AudioLevelExtension {
                        level: level_dbov.min(127),
                        voice: level_dbov < 60,
                    })],
                )
                .await
                .is_ok()
        } else {
            self.track.write_rtp(packet).await.is_ok()
        }
    }
}

/// The signals kept for [`Client::wait_signal`]: the latest
/// [`SIGNALS_KEPT`], so a long-lived participant does not grow without bound.
struct SignalLog {
    messages: Mutex<std::collections::VecDeque<signal_response::Message>>,
    changed: Notify,
    live: tokio::sync::broadcast::Sender<signal_response::Message>,
}

impl Default for SignalLog {
    fn default() -> Self {
        Self {
            messages: Mutex::default(),
            changed: Notify::new(),
            live: tokio::sync::broadcast::channel(256).0,
        }
    }
}

/// How many signals a client keeps for [`Client::wait_signal`].
pub const SIGNALS_KEPT: usize = 4096;

/// How a client binds its media and what it asks of the server.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The local address its peer connections bind (`ip:0` for any port).
    pub udp_addr: String,
    /// Offer loopback candidates (needed when the server is on 127.0.0.1).
    pub include_loopback: bool,
    /// Subscribe to every published track as it comes.
    pub auto_subscribe: bool,
}

impl Default for ClientOptions {
    /// Loopback, auto-subscribed: a test or bench client of a local server.
    fn default() -> Self {
        Self {
            udp_addr: "127.0.0.1:0".to_owned(),
            include_loopback: true,
            auto_subscribe: true,
        }
    }
}

impl ClientOptions {
    /// Binds media on `ip` (loopback candidates only if `ip` is loopback).
    pub fn bound_to(ip: std::net::IpAddr) -> Self {
        let udp_addr = std::net::SocketAddr::new(ip, 0).to_string();
        Self {
            udp_addr,
            include_loopback: ip.is_loopback(),
            auto_subscribe: true,
        }
    }
}

struct ClientHandler {
    gathered: Arc<Notify>,
    connected: Arc<Notify>,
    tracks: Option<mpsc::UnboundedSender<ReceivedTrack>>,
    data: Option<mpsc::UnboundedSender<(String, proto::DataPacket)>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            self.connected.notify_waiters();
            self.connected.notify_one();
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(tracks) = &self.tracks else { return };
        let (tx, rx) = mpsc::unbounded_channel();
        let received = ReceivedTrack {
            remote: track.clone(),
            stream_id: track.stream_id().await,
            track_id: track.track_id().await,
            is_audio: track.kind().await == RtpCodecKind::Audio,
            packets: rx,
        };
        let _ = tracks.send(received);
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

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let Some(data) = self.data.clone() else {
            return;
        };
        let label = channel.label().await.unwrap_or_default();
        tokio::spawn(async move {
            while let Some(event) = channel.poll().await {
                match event {
                    DataChannelEvent::OnMessage(message) => {
                        if let Ok(packet) = proto::DataPacket::decode(message.data.as_ref()) {
                            let _ = data.send((label.clone(), packet));
                        }
                    }
                    DataChannelEvent::OnClose => return,
                    _ => {}
                }
            }
        });
    }
}

struct Peer {
    pc: Arc<dyn PeerConnection>,
    gathered: Arc<Notify>,
    connected: Arc<Notify>,
    gather_done: std::sync::atomic::AtomicBool,
    /// Trickled candidates held until the remote description is set; `None`
    /// once it is.
    early_candidates: Mutex<Option<Vec<RTCIceCandidateInit>>>,
}

impl Peer {
    async fn new(
        options: &ClientOptions,
        tracks: Option<mpsc::UnboundedSender<ReceivedTrack>>,
        data: Option<mpsc::UnboundedSender<(String, proto::DataPacket)>>,
    ) -> Result<Self, ClientError> {
        let mut engine = MediaEngine::default();
        engine.register_default_codecs()?;
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level".to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )?;
        let registry = register_interceptors(Registry::new(), &mut engine)?
            .with(Slot::from(14_000), KeyframeRequestForwarder::default());
        let gathered = Arc::new(Notify::new());
        let connected = Arc::new(Notify::new());
        let handler = Arc::new(ClientHandler {
            gathered: gathered.clone(),
            connected: connected.clone(),
            tracks,
            data,
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_include_loopback_candidate(options.include_loopback)
                    .build(),
            )
            .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(vec![options.udp_addr.clone()])
            .build()
            .await?;
        Ok(Self {
            pc: Arc::new(pc),
            gathered,
            connected,
            gather_done: std::sync::atomic::AtomicBool::new(false),
            early_candidates: Mutex::new(Some(Vec::new())),
        })
    }

    /// Adds a candidate the server trickled (`candidate_init` is the JSON
    /// LiveKit sends). One that comes before the remote description is kept
    /// until [`Peer::remote_description_set`].
    async fn add_candidate(&self, candidate_init: &str) {
        let Ok(init) = serde_json::from_str::<RTCIceCandidateInit>(candidate_init) else {
            tracing::debug!("ignoring a malformed trickled candidate");
            return;
        };
        if init.candidate.is_empty() {
            return; // end of candidates
        }
        {
            let mut early = self
                .early_candidates
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(early) = early.as_mut() {
                early.push(init);
                return;
            }
        }
        if let Err(error) = self.pc.add_ice_candidate(init).await {
            tracing::debug!(%error, "could not add a trickled candidate");
        }
    }

    /// The remote description is set: the candidates that came before it apply.
    async fn remote_description_set(&self) {
        let early = self
            .early_candidates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        for init in early {
            if let Err(error) = self.pc.add_ice_candidate(init).await {
                tracing::debug!(%error, "could not add a trickled candidate");
            }
        }
    }

    async fn local_sdp(&self) -> String {
        if !self.gather_done.swap(true, Ordering::AcqRel) {
            let _ = tokio::time::timeout(Duration::from_secs(3), self.gathered.notified()).await;
        }
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default()
    }
}

/// A LiveKit participant connected to a server.
pub struct Client {
    /// The server's `join` answer.
    pub join: proto::JoinResponse,
    outgoing: mpsc::UnboundedSender<proto::SignalRequest>,
    log: Arc<SignalLog>,
    publisher: Arc<Peer>,
    subscriber: Arc<Peer>,
    tracks: tokio::sync::Mutex<mpsc::UnboundedReceiver<ReceivedTrack>>,
    data: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, proto::DataPacket)>>,
    publisher_reliable: Arc<dyn DataChannel>,
    offer_id: AtomicU32,
    closed: Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How long the client waits for the server by default.
pub const WAIT: Duration = Duration::from_secs(10);

impl Client {
    /// Connects to `ws_base` (e.g. `ws://127.0.0.1:7880`) with `token` as the
    /// `access_token` query parameter.
    pub async fn connect(ws_base: &str, token: &str) -> Result<Self, ClientError> {
        Self::connect_with(ws_base, token, &ClientOptions::default()).await
    }

    /// Connects with `options` (where media binds, whether to subscribe).
    pub async fn connect_with(
        ws_base: &str,
        token: &str,
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let ws_base = ws_base.trim_end_matches('/');
        let auto = u8::from(options.auto_subscribe);
        let url = format!("{ws_base}/rtc?access_token={token}&protocol=16&auto_subscribe={auto}");
        Self::connect_request(url.into_client_request()?, options).await
    }

    /// Connects sending `token` as a Bearer header instead.
    pub async fn connect_bearer(ws_base: &str, token: &str) -> Result<Self, ClientError> {
        let mut request = format!("{ws_base}/rtc?protocol=16").into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}")
                .parse()
                .map_err(|_| ClientError::NoJoin("bad header".into()))?,
        );
        Self::connect_request(request, &ClientOptions::default()).await
    }

    async fn connect_request(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        let (mut sink, mut stream) = socket.split();
        let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .map_err(|_| ClientError::NoJoin("nothing within 5 s".into()))?;
        let join = match first {
            Some(Ok(WsMessage::Binary(bytes))) => match proto::SignalResponse::decode(bytes) {
                Ok(proto::SignalResponse {
                    message: Some(signal_response::Message::Join(join)),
                }) => join,
                other => return Err(ClientError::NoJoin(format!("{other:?}"))),
            },
            other => return Err(ClientError::NoJoin(format!("{other:?}"))),
        };

        let (tracks_tx, tracks_rx) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::unbounded_channel();
        let publisher = Arc::new(Peer::new(options, None, None).await?);
        let subscriber = Arc::new(Peer::new(options, Some(tracks_tx), Some(data_tx)).await?);
        let publisher_reliable = publisher
            .pc
            .create_data_channel(
                "_reliable",
                Some(RTCDataChannelInit {
                    ordered: true,
                    ..Default::default()
                }),
            )
            .await?;
        publisher
            .pc
            .create_data_channel(
                "_lossy",
                Some(RTCDataChannelInit {
                    ordered: true,
                    max_retransmits: Some(0),
                    ..Default::default()
                }),
            )
            .await?;

        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<proto::SignalRequest>();
        let log = Arc::new(SignalLog::default());
        let closed = Arc::new(Notify::new());
        let writer = tokio::spawn(async move {
            while let Some(request) = outgoing_rx.recv().await {
                if sink
                    .send(WsMessage::Binary(request.encode_to_vec().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        let reader = {
            let log = log.clone();
            let publisher = publisher.clone();
            let subscriber = subscriber.clone();
            let outgoing = outgoing.clone();
            let closed = closed.clone();
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    let WsMessage::Binary(bytes) = frame else {
                        if matches!(frame, WsMessage::Close(_)) {
                            break;
                        }
                        continue;
                    };
                    let Ok(response) = proto::SignalResponse::decode(bytes) else {
                        continue;
                    };
                    let Some(message) = response.message else {
                        continue;
                    };
                    match &message {
                        signal_response::Message::Offer(offer) => {
                            let answer = async {
                                let offer = RTCSessionDescription::offer(offer.sdp.clone())?;
                                subscriber.pc.set_remote_description(offer).await?;
                                subscriber.remote_description_set().await;
                                let answer = subscriber.pc.create_answer(None).await?;
                                subscriber.pc.set_local_description(answer).await?;
                                Ok::<_, webrtc::error::Error>(subscriber.local_sdp().await)
                            }
                            .await;
                            match answer {
                                Ok(sdp) => {
                                    let _ = outgoing.send(proto::SignalRequest {
                                        message: Some(signal_request::Message::Answer(
                                            proto::SessionDescription {
                                                r#type: "answer".into(),
                                                sdp,
                                                id: offer.id,
                                                ..Default::default()
                                            },
                                        )),
                                    });
                                }
                                Err(error) => {
                                    tracing::warn!(%error, "LiveKit client could not answer")
                                }
                            }
                        }
                        signal_response::Message::Answer(answer) => {
                            if let Ok(answer) = RTCSessionDescription::answer(answer.sdp.clone()) {
                                match publisher.pc.set_remote_description(answer).await {
                                    Ok(()) => publisher.remote_description_set().await,
                                    Err(error) => {
                                        tracing::warn!(%error, "LiveKit client could not apply answer")
                                    }
                                }
                            }
                        }
                        signal_response::Message::Trickle(trickle) => {
                            let peer = if trickle.target == proto::SignalTarget::Subscriber as i32 {
                                &subscriber
                            } else {
                                &publisher
                            };
                            peer.add_candidate(&trickle.candidate_init).await;
                        }
                        _ => {}
                    }
                    let _ = log.live.send(message.clone());
                    {
                        let mut messages = log.messages.lock().unwrap_or_else(|e| e.into_inner());
                        if messages.len() == SIGNALS_KEPT {
                            messages.pop_front();
                        }
                        messages.push_back(message);
                    }
                    log.changed.notify_waiters();
                }
                closed.notify_waiters();
                closed.notify_one();
                log.changed.notify_waiters();
            })
        };

        // The server drops a client silent past its ping timeout.
        let pinger = {
            let outgoing = outgoing.clone();
            let every = Duration::from_secs(join.ping_interval.clamp(1, 60) as u64);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    let ping = proto::SignalRequest {
                        message: Some(signal_request::Message::Ping(now)),
                    };
                    if outgoing.send(ping).is_err() {
                        return;
                    }
                }
            })
        };

        Ok(Self {
            join,
            outgoing,
            log,
            publisher,
            subscriber,
            tracks: tokio::sync::Mutex::new(tracks_rx),
            data: tokio::sync::Mutex::new(data_rx),
            publisher_reliable,
            offer_id: AtomicU32::new(0),
            closed,
            tasks: vec![writer, reader, pinger],
        })
    }

    /// This participant's sid.
    pub fn sid(&self) -> &str {
        self.join
            .participant
            .as_ref()
            .map(|p| p.sid.as_str())
            .unwrap_or("")
    }

    /// Sends a raw request.
    pub fn send(&self, message: signal_request::Message) {
        let _ = self.outgoing.send(proto::SignalRequest {
            message: Some(message),
        });
    }

    /// Waits for a signal matching `predicate` (seen at any time since join).
    pub async fn wait_signal<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut predicate: impl FnMut(&signal_response::Message) -> Option<T>,
    ) -> Result<T, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.log.changed.notified();
            {
                let messages = self.log.messages.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(found) = messages.iter().find_map(&mut predicate) {
                    return Ok(found);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout(what.to_owned()));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }

    /// Every signal received so far.
    pub fn signals(&self) -> Vec<signal_response::Message> {
        self.log
            .messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The signals from now on, as they come (a slow reader skips some).
    pub fn subscribe_signals(&self) -> tokio::sync::broadcast::Receiver<signal_response::Message> {
        self.log.live.subscribe()
    }

    /// Sends `packet` on the publisher's reliable data channel (user data,
    /// LiveKit `Transcription` packets). The publisher connection must be
    /// negotiated: see [`Client::open_data_channels`].
    pub async fn send_packet(&self, packet: &proto::DataPacket) -> Result<(), ClientError> {
        self.publisher_reliable
            .send(BytesMut::from(packet.encode_to_vec().as_slice()))
            .await?;
        Ok(())
    }

    /// For a participant that publishes no track: negotiates the publisher
    /// connection for its data channels alone and waits until it is up.
    pub async fn open_data_channels(&self, timeout: Duration) -> Result<(), ClientError> {
        self.negotiate_publisher().await?;
        let open = async {
            loop {
                if let Ok(webrtc::data_channel::RTCDataChannelState::Open) =
                    self.publisher_reliable.ready_state().await
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| ClientError::Timeout("the reliable data channel".into()))
    }

    /// Sends the publisher offer (after adding tracks or data channels).
    pub async fn negotiate_publisher(&self) -> Result<(), ClientError> {
        let offer = self.publisher.pc.create_offer(None).await?;
        self.publisher.pc.set_local_description(offer).await?;
        let sdp = self.publisher.local_sdp().await;
        let id = self.offer_id.fetch_add(1, Ordering::AcqRel) + 1;
        self.send(signal_request::Message::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp,
            id,
            ..Default::default()
        }));
        Ok(())
    }

    /// Publishes an Opus microphone track (or a VP8 camera track when
    /// `audio` is false): `add_track`, wait for `track_published`, offer.
    pub async fn publish(&self, audio: bool) -> Result<TrackSender, ClientError> {
        self.publish_encrypted(audio, proto::encryption::Type::None)
            .await
    }

    /// As [`Client::publish`], with `encryption` in the `add_track`, as
    /// livekit-client sends it for an end-to-end encrypted track. The payloads
    /// sent are the test's own, so they stand for ciphertext.
    pub async fn publish_encrypted(
        &self,
        audio: bool,
        encryption: proto::encryption::Type,
    ) -> Result<TrackSender, ClientError> {
        let cid = format!("TR_client_{}", rand::random::<u32>());
        let ssrc: u32 = rand::random();
        let (codec, payload_type, clock_step, kind) = if audio {
            (
                RTCRtpCodec {
                    mime_type: "audio/opus".into(),
                    clock_rate: 48000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                    rtcp_feedback: vec![],
                },
                111,
                960,
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
                3000,
                RtpCodecKind::Video,
            )
        };
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("stream_{}", rand::random::<u32>()),
            cid.clone(),
            cid.clone(),
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
        let sender = self
            .publisher
            .pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await?;
        self.send(signal_request::Message::AddTrack(proto::AddTrackRequest {
            cid: cid.clone(),
            name: if audio { "microphone" } else { "camera" }.into(),
            r#type: if audio {
                proto::TrackType::Audio
            } else {
                proto::TrackType::Video
            } as i32,
            source: if audio {
                proto::TrackSource::Microphone
            } else {
                proto::TrackSource::Camera
            } as i32,
            width: if audio { 0 } else { 640 },
            height: if audio { 0 } else { 360 },
            encryption: encryption as i32,
            ..Default::default()
        }));
        let wanted = cid.clone();
        let info = self
            .wait_signal("track_published", WAIT, |m| match m {
                signal_response::Message::TrackPublished(p) if p.cid == wanted => p.track.clone(),
                _ => None,
            })
            .await?;
        self.negotiate_publisher().await?;
        // Packets written before the transport is up are lost; wait for it.
        let _ = tokio::time::timeout(WAIT, self.publisher.connected.notified()).await;
        Ok(TrackSender {
            track,
            sender,
            cid,
            sid: info.sid,
            ssrc,
            payload_type,
            clock_step,
            sequence: AtomicU16::new(rand::random()),
            timestamp: AtomicU32::new(rand::random()),
            is_audio: audio,
        })
    }

    /// Stops publishing `track` (removes it and renegotiates), as
    /// livekit-client's `unpublishTrack` does.
    pub async fn unpublish(&self, track: &TrackSender) -> Result<(), ClientError> {
        self.publisher.pc.remove_track(&track.sender).await?;
        self.negotiate_publisher().await
    }

    /// The next track the server sends to this client.
    pub async fn next_track(&self, timeout: Duration) -> Result<ReceivedTrack, ClientError> {
        let mut tracks = self.tracks.lock().await;
        tokio::time::timeout(timeout, tracks.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| ClientError::Timeout("a subscribed track".into()))
    }

    /// The next data packet received from the server, with its channel label.
    pub async fn next_data(
        &self,
        timeout: Duration,
    ) -> Result<(String, proto::DataPacket), ClientError> {
        let mut data = self.data.lock().await;
        tokio::time::timeout(timeout, data.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| ClientError::Timeout("a data packet".into()))
    }

    /// Sends a user data packet on the publisher's `_reliable` channel.
    #[allow(deprecated)]
    pub async fn send_user_data(&self, payload: &[u8], topic: &str) -> Result<(), ClientError> {
        let packet = proto::DataPacket {
            kind: proto::data_packet::Kind::Reliable as i32,
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                payload: payload.to_vec(),
                topic: Some(topic.to_owned()),
                ..Default::default()
            })),
            ..Default::default()
        };
        self.publisher_reliable
            .send(BytesMut::from(packet.encode_to_vec().as_slice()))
            .await?;
        Ok(())
    }

    /// Waits until the subscriber connection is up.
    pub async fn wait_subscriber_connected(&self, timeout: Duration) -> Result<(), ClientError> {
        tokio::time::timeout(timeout, self.subscriber.connected.notified())
            .await
            .map_err(|_| ClientError::Timeout("subscriber connection".into()))
    }

    /// Waits until the server closes the signaling connection.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<(), ClientError> {
        tokio::time::timeout(timeout, self.closed.notified())
            .await
            .map_err(|_| ClientError::Timeout("server close".into()))
    }

    /// Sends `leave` and closes both peer connections.
    pub async fn leave(self) {
        self.send(signal_request::Message::Leave(proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated as i32,
            ..Default::default()
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = self.publisher.pc.close().await;
        let _ = self.subscriber.pc.close().await;
    }

    /// Closes the peer connections without saying goodbye (a crash).
    pub async fn vanish(self) {
        let _ = self.publisher.pc.close().await;
        let _ = self.subscriber.pc.close().await;
        drop(self);
    }
}
