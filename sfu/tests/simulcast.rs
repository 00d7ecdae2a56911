//! Simulcast per subscriber, with real peers on the webrtc crate: a publisher
//! sends three VP8 layers (rids `q`, `h`, `f`, as livekit-client and Element
//! Call do), a subscriber asks for one layer, then another, then nothing, and
//! receives one continuous stream of the layer it asked for, every payload
//! byte for byte as published.
//!
//! The publisher here speaks just enough of LiveKit's protocol to publish a
//! simulcast track (the shared test client publishes single-layer tracks).

mod common;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use livekit_protocol::{signal_request, signal_response};
use prost::Message as _;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::shared::marshal::{Marshal, MarshalSize};
use salon_sfu::testing::{ReceivedPacket, TestClient, WAIT, register_interceptors};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

const RIDS: [&str; 3] = ["q", "h", "f"];
const SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// An SDES header extension value (mid or rid): its bytes.
struct Sdes(String);

impl MarshalSize for Sdes {
    fn marshal_size(&self) -> usize {
        self.0.len()
    }
}

impl Marshal for Sdes {
    fn marshal_to(&self, buf: &mut [u8]) -> Result<usize, rtc::shared::error::Error> {
        buf[..self.0.len()].copy_from_slice(self.0.as_bytes());
        Ok(self.0.len())
    }
}

/// One VP8 packet of layer `layer`, frame `n`: an RFC 7741 descriptor, a
/// keyframe header with the layer's size or a delta frame tag, then a tag
/// the test reads back (layer, frame number) and bytes derived from both.
fn vp8_payload(layer: usize, n: u32, keyframe: bool) -> Vec<u8> {
    let mut p = vec![0x90, 0x80, 0x80 | ((n >> 8) as u8 & 0x7f), n as u8];
    if keyframe {
        let (w, h) = SIZES[layer];
        p.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
        p.extend_from_slice(&w.to_le_bytes());
        p.extend_from_slice(&h.to_le_bytes());
    } else {
        p.extend_from_slice(&[0x01, 0x00, 0x00]);
    }
    p.push(layer as u8);
    p.extend_from_slice(&n.to_be_bytes());
    let mut x = n.wrapping_mul(2_654_435_761) ^ (layer as u32 + 1);
    for _ in 0..40 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p.push(x as u8);
    }
    p
}

/// Reads back (layer, frame, keyframe size) from a payload made by
/// [`vp8_payload`], checking that it is exactly what was sent.
fn read_payload(payload: &[u8]) -> (usize, u32, Option<(u16, u16)>) {
    let keyframe = payload[4] & 0x01 == 0;
    let at = if keyframe { 14 } else { 7 };
    let layer = usize::from(payload[at]);
    let n = u32::from_be_bytes(payload[at + 1..at + 5].try_into().expect("frame number"));
    assert_eq!(
        payload,
        vp8_payload(layer, n, keyframe).as_slice(),
        "payload rewritten"
    );
    let size = keyframe.then(|| SIZES[layer]);
    (layer, n, size)
}

struct Handler {
    gathered: Arc<Notify>,
    connected: Arc<Notify>,
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
            self.connected.notify_one();
        }
    }
}

/// A LiveKit participant that publishes one three-layer VP8 track.
struct SimulcastPublisher {
    track: Arc<TrackLocalStaticRTP>,
    ssrcs: [u32; 3],
    track_sid: String,
    /// Every signal the server sent after the join.
    signals: mpsc::UnboundedReceiver<signal_response::Message>,
    _pc: Arc<dyn PeerConnection>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimulcastPublisher {
    async fn connect(ws: &str, token: &str) -> Self {
        let url = format!("{ws}/rtc?access_token={token}");
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("upgrade");
        let (mut sink, mut stream) = socket.split();
        let first = stream.next().await.expect("frame").expect("ok");
        let join = proto::SignalResponse::decode(first.into_data()).expect("protobuf");
        assert!(matches!(
            join.message,
            Some(signal_response::Message::Join(_))
        ));
        let (signals_tx, mut signals) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                if let WsMessage::Binary(bytes) = frame
                    && let Ok(proto::SignalResponse {
                        message: Some(message),
                    }) = proto::SignalResponse::decode(bytes)
                {
                    let _ = signals_tx.send(message);
                }
            }
        });
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<signal_request::Message>();
        let writer = tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                let request = proto::SignalRequest {
                    message: Some(message),
                };
                if sink
                    .send(WsMessage::Binary(request.encode_to_vec().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });

        let mut engine = MediaEngine::default();
        engine.register_default_codecs().expect("codecs");
        let registry = register_interceptors(Registry::new(), &mut engine).expect("interceptors");
        let gathered = Arc::new(Notify::new());
        let connected = Arc::new(Notify::new());
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(engine)
                .with_interceptor_registry(registry)
                .with_setting_engine(
                    SettingEngineBuilder::new()
                        .with_include_loopback_candidate(true)
                        .build(),
                )
                .with_handler(Arc::new(Handler {
                    gathered: gathered.clone(),
                    connected: connected.clone(),
                }) as Arc<dyn PeerConnectionEventHandler>)
                .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
                .build()
                .await
                .expect("peer connection"),
        );
        let ssrcs: [u32; 3] = [rand::random(), rand::random(), rand::random()];
        let codec = RTCRtpCodec {
            mime_type: "video/VP8".into(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        };
        let cid = "simulcast-camera".to_owned();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "simulcast-stream".to_owned(),
            cid.clone(),
            cid.clone(),
            RtpCodecKind::Video,
            RIDS.iter()
                .zip(ssrcs)
                .map(|(rid, ssrc)| RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: (*rid).to_owned(),
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codec.clone(),
                    ..Default::default()
                })
                .collect(),
        )));
        pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .expect("add track");
        // As livekit-client announces a simulcast camera.
        let layers = SIZES
            .iter()
            .enumerate()
            .map(|(q, (w, h))| proto::VideoLayer {
                quality: q as i32,
                width: u32::from(*w),
                height: u32::from(*h),
                rid: RIDS[q].to_owned(),
                ..Default::default()
            })
            .collect();
        out_tx
            .send(signal_request::Message::AddTrack(proto::AddTrackRequest {
                cid: cid.clone(),
                name: "camera".into(),
                r#type: proto::TrackType::Video as i32,
                source: proto::TrackSource::Camera as i32,
                width: 1280,
                height: 720,
                layers,
                simulcast_codecs: vec![proto::SimulcastCodec {
                    codec: "vp8".into(),
                    cid: cid.clone(),
                    ..Default::default()
                }],
                ..Default::default()
            }))
            .expect("writer");
        let track_sid = wait_for(&mut signals, |m| match m {
            signal_response::Message::TrackPublished(p) if p.cid == cid => {
                p.track.as_ref().map(|t| t.sid.clone())
            }
            _ => None,
        })
        .await;
        let offer = pc.create_offer(None).await.expect("offer");
        pc.set_local_description(offer).await.expect("local offer");
        let _ = tokio::time::timeout(Duration::from_secs(3), gathered.notified()).await;
        let sdp = pc.local_description().await.expect("offer sdp").sdp;
        assert!(sdp.contains("a=rid:q send"), "simulcast offer: {sdp}");
        out_tx
            .send(signal_request::Message::Offer(proto::SessionDescription {
                r#type: "offer".into(),
                sdp,
                id: 1,
                ..Default::default()
            }))
            .expect("writer");
        let answer = wait_for(&mut signals, |m| match m {
            signal_response::Message::Answer(a) => Some(a.sdp.clone()),
            _ => None,
        })
        .await;
        pc.set_remote_description(RTCSessionDescription::answer(answer).expect("answer"))
            .await
            .expect("remote answer");
        tokio::time::timeout(WAIT, connected.notified())
            .await
            .expect("publisher connected");
        Self {
            track,
            ssrcs,
            track_sid,
            signals,
            _pc: pc,
            _tasks: vec![reader, writer],
        }
    }
}

async fn wait_for<T>(
    signals: &mut mpsc::UnboundedReceiver<signal_response::Message>,
    mut pick: impl FnMut(&signal_response::Message) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let message = signals.recv().await.expect("signals open");
            if let Some(found) = pick(&message) {
                return found;
            }
        }
    })
    .await
    .expect("signal in time")
}

/// The subscriber's view: checks, packet by packet, that what arrives is one
/// decodable stream (contiguous sequence numbers, timestamps moving forward,
/// each layer entered on a keyframe, then only that layer's frames).
#[derive(Default)]
struct StreamCheck {
    last: Option<(u16, u32)>,
    layer: Option<usize>,
    packets: usize,
    sizes_seen: Vec<(u16, u16)>,
}

impl StreamCheck {
    fn take(&mut self, packet: &ReceivedPacket) -> usize {
        let (layer, _n, size) = read_payload(&packet.payload);
        if let Some((seq, ts)) = self.last {
            assert_eq!(
                packet.sequence,
                seq.wrapping_add(1),
                "sequence numbers run on"
            );
            assert!(
                packet.timestamp.wrapping_sub(ts) < 0x8000_0000,
                "timestamps move forward"
            );
        }
        self.last = Some((packet.sequence, packet.timestamp));
        match size {
            Some(size) => {
                if self.sizes_seen.last() != Some(&size) {
                    self.sizes_seen.push(size);
                }
                self.layer = Some(layer);
            }
            None => assert_eq!(
                self.layer,
                Some(layer),
                "a delta frame of the layer whose keyframe came last"
            ),
        }
        self.packets += 1;
        layer
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_subscriber_gets_the_layer_it_asks_for_as_one_stream() {
    let server = common::start().await;
    let bob = TestClient::connect(&server.ws, &common::token("sim", "bob"))
        .await
        .expect("bob joins");
    let mut alice = SimulcastPublisher::connect(&server.ws, &common::token("sim", "alice")).await;

    let publisher = alice.start_sending();

    let mut video = bob.next_track(WAIT).await.expect("bob gets the video");
    assert_eq!(video.track_id, alice.track_sid);
    let mut check = StreamCheck::default();
    let mut next = async |check: &mut StreamCheck| {
        let packet = tokio::time::timeout(WAIT, video.packets.recv())
            .await
            .expect("packet in time")
            .expect("track open");
        check.take(&packet)
    };

    // By default a subscriber gets the best layer.
    while next(&mut check).await != 2 {}
    assert_eq!(check.sizes_seen.last(), Some(&SIZES[2]));

    // Asks for the lowest quality: it switches on a keyframe, and stays.
    bob.send(signal_request::Message::TrackSetting(
        proto::UpdateTrackSettings {
            track_sids: vec![alice.track_sid.clone()],
            quality: proto::VideoQuality::Low as i32,
            ..Default::default()
        },
    ));
    while next(&mut check).await != 0 {}
    for _ in 0..30 {
        assert_eq!(next(&mut check).await, 0, "only the low layer now");
    }
    assert_eq!(check.sizes_seen.last(), Some(&SIZES[0]));
    // The publisher is told that only the low layer is watched (dynacast).
    let enabled = wait_for(&mut alice.signals, |m| match m {
        signal_response::Message::SubscribedQualityUpdate(u)
            if u.subscribed_codecs
                .first()
                .is_some_and(|c| c.qualities.iter().filter(|q| q.enabled).count() == 1) =>
        {
            Some(u.subscribed_codecs[0].qualities.clone())
        }
        _ => None,
    })
    .await;
    assert!(
        enabled.iter().all(|q| q.enabled == (q.quality == 0)),
        "{enabled:?}"
    );

    // Asks by view size, as adaptiveStream does: 1280x720 is the high layer.
    bob.send(signal_request::Message::TrackSetting(
        proto::UpdateTrackSettings {
            track_sids: vec![alice.track_sid.clone()],
            width: 1280,
            height: 720,
            ..Default::default()
        },
    ));
    while next(&mut check).await != 2 {}
    for _ in 0..30 {
        assert_eq!(next(&mut check).await, 2, "only the high layer now");
    }
    // (At the start it may climb from the first layer heard to the best.)
    assert!(
        check.sizes_seen.ends_with(&[SIZES[2], SIZES[0], SIZES[2]]),
        "the resolution followed the requests: {:?}",
        check.sizes_seen
    );

    // Disabled: nothing more arrives.
    bob.send(signal_request::Message::TrackSetting(
        proto::UpdateTrackSettings {
            track_sids: vec![alice.track_sid.clone()],
            disabled: true,
            ..Default::default()
        },
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    while video.packets.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        video.packets.try_recv().is_err(),
        "no packet while disabled"
    );
    // Enabled again: the stream resumes on a keyframe, numbers continuing.
    bob.send(signal_request::Message::TrackSetting(
        proto::UpdateTrackSettings {
            track_sids: vec![alice.track_sid.clone()],
            quality: proto::VideoQuality::Medium as i32,
            ..Default::default()
        },
    ));
    let resumed = tokio::time::timeout(WAIT, video.packets.recv())
        .await
        .expect("resumes in time")
        .expect("open");
    let (layer, _, size) = read_payload(&resumed.payload);
    assert_eq!((layer, size), (1, Some(SIZES[1])), "resumes on a keyframe");
    let (last_seq, _) = check.last.expect("packets before");
    assert!(
        resumed.sequence.wrapping_sub(last_seq) < 100,
        "no jump of the time it was paused"
    );
    publisher.abort();
}

/// livekit-client sends `UpdateTrackSettings` as soon as it learns of a
/// track, which can be before its subscription is set up: the settings
/// must still hold when it is. Carol joins without auto-subscribe, asks for
/// the low layer of Alice's video, then subscribes: the first frames she
/// gets are already the low layer, never the best one a new subscription
/// starts with. Until she subscribes she gets no track at all.
#[tokio::test]
async fn track_settings_sent_before_the_subscription_are_applied_to_it() {
    let server = common::start().await;
    let alice = SimulcastPublisher::connect(&server.ws, &common::token("early", "alice")).await;
    let publisher = alice.start_sending();
    let options = salon_sfu::testing::ClientOptions {
        auto_subscribe: false,
        ..Default::default()
    };
    let carol = TestClient::connect_with(&server.ws, &common::token("early", "carol"), &options)
        .await
        .expect("carol joins");
    // Without auto-subscribe, nothing comes until she asks (as on LiveKit).
    assert!(
        carol.next_track(Duration::from_millis(700)).await.is_err(),
        "auto_subscribe=0 was not honoured"
    );
    carol.send(signal_request::Message::TrackSetting(
        proto::UpdateTrackSettings {
            track_sids: vec![alice.track_sid.clone()],
            quality: proto::VideoQuality::Low as i32,
            ..Default::default()
        },
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    carol.send(signal_request::Message::Subscription(
        proto::UpdateSubscription {
            track_sids: vec![alice.track_sid.clone()],
            subscribe: true,
            ..Default::default()
        },
    ));
    let mut video = carol.next_track(WAIT).await.expect("carol gets the video");
    assert_eq!(video.track_id, alice.track_sid);
    let mut check = StreamCheck::default();
    for _ in 0..45 {
        let packet = tokio::time::timeout(WAIT, video.packets.recv())
            .await
            .expect("packet in time")
            .expect("track open");
        assert_eq!(
            check.take(&packet),
            0,
            "only the low layer, from the first frame"
        );
    }
    assert_eq!(check.sizes_seen, vec![SIZES[0]]);
    publisher.abort();
}

impl SimulcastPublisher {
    /// Sends 30 frames a second on every layer, a keyframe on each every 15
    /// frames (0.5 s), until the task is aborted.
    fn start_sending(&self) -> tokio::task::JoinHandle<()> {
        let me = SimulcastPublisherHandle {
            track: self.track.clone(),
            ssrcs: self.ssrcs,
        };
        tokio::spawn(async move {
            let mut sequences = [1000u16, 20_000, 40_000];
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            for n in 0u32.. {
                tick.tick().await;
                me.send_frame(n, n % 15 == 0, &mut sequences).await;
            }
        })
    }
}

/// The part of the publisher the sending task needs.
struct SimulcastPublisherHandle {
    track: Arc<TrackLocalStaticRTP>,
    ssrcs: [u32; 3],
}

impl SimulcastPublisherHandle {
    /// Sends frame `n` on every layer (with its mid and rid, as a browser
    /// does), a keyframe when `keyframe`.
    async fn send_frame(&self, n: u32, keyframe: bool, sequences: &mut [u16; 3]) {
        for layer in 0..3 {
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: true,
                    payload_type: 96,
                    sequence_number: sequences[layer],
                    timestamp: n.wrapping_mul(3000),
                    ssrc: self.ssrcs[layer],
                    ..Default::default()
                },
                payload: Bytes::from(vp8_payload(layer, n, keyframe)),
            };
            sequences[layer] = sequences[layer].wrapping_add(1);
            let extensions = [
                HeaderExtension::Custom {
                    uri: Cow::Borrowed(MID_URI),
                    extension: Box::new(Sdes("0".into())),
                },
                HeaderExtension::Custom {
                    uri: Cow::Borrowed(RID_URI),
                    extension: Box::new(Sdes(RIDS[layer].into())),
                },
            ];
            let _ = self
                .track
                .write_rtp_with_extensions(packet, &extensions)
                .await;
        }
    }
}
