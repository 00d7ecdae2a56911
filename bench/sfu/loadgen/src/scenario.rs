//! The two scenarios, set up on either SFU: A, one publisher (Opus + VP8) to
//! N subscribers; B, an audio room of 10 speakers (each hearing the 9
//! others) and N listeners. Salon and LiveKit server are driven through
//! LiveKit's protocol (`TestClient`, the same code for both: only the URL
//! differs), Janus through its VideoRoom; the media, pacing and measurement
//! are the same code for all three.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::future::try_join_all;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use salon_sfu::testing::{ReceivedTrack, TestClient};
use serde_json::json;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;

use crate::janus::{self, Janus};
use crate::measure::{Collector, Outbound, Window};
use crate::media::Vp8Clip;
use crate::peer::Peer;

/// The API key and secret tokens are signed with: `sfu-serve`'s defaults,
/// and the ones the suite writes into LiveKit server's config.
pub const KEY: &str = "APIbench";
pub const SECRET: &str = "bench-secret-of-sufficient-length";
/// Speakers in scenario B.
pub const SPEAKERS: usize = 10;
/// Clients connected at once while setting up.
const BATCH: usize = 10;
const TRACK_WAIT: Duration = Duration::from_secs(30);
/// Where the generator's Janus peers bind (the client end of the veth pair).
const JANUS_CLIENT_IP: &str = "127.0.0.3";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scenario {
    A,
    B,
}

/// A receiver's video track, to send it keyframe requests from: one of a
/// LiveKit-protocol client (Salon or LiveKit server) or of a Janus peer.
pub enum VideoLeg {
    LiveKit(ReceivedTrack),
    Janus(Arc<dyn TrackRemote>),
}

impl VideoLeg {
    pub async fn request_keyframe(&self) {
        match self {
            VideoLeg::LiveKit(track) => {
                let _ = track.request_keyframe().await;
            }
            VideoLeg::Janus(track) => {
                let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
                let _ = track
                    .write_rtcp(vec![Box::new(PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: ssrc,
                    })])
                    .await;
            }
        }
    }
}

/// Everything a running scenario holds.
#[derive(Default)]
pub struct Setup {
    pub outbounds: Vec<Outbound>,
    /// (source, audio?, packets it sent in the window, how many receive it).
    pub fan_out: Vec<(u16, bool, Arc<AtomicU64>, u64)>,
    pub video_legs: Vec<VideoLeg>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    pub receivers: usize,
    keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl Setup {
    fn publish(
        &mut self,
        outbound: Outbound,
        receivers: u64,
        clip: &Arc<Vp8Clip>,
        window: &Arc<Window>,
    ) {
        self.fan_out.push((
            outbound.source,
            outbound.audio,
            outbound.sent_in_window.clone(),
            receivers,
        ));
        self.tasks
            .extend(outbound.start(clip.clone(), window.clone()));
        self.outbounds.push(outbound);
    }
}

fn mint(identity: &str) -> String {
    salon_sfu::token::mint(
        KEY,
        SECRET,
        "bench",
        identity,
        identity,
        Duration::from_secs(3600),
    )
}

fn take_packets(
    track: &mut ReceivedTrack,
) -> mpsc::UnboundedReceiver<salon_sfu::testing::ReceivedPacket> {
    let (_, empty) = mpsc::unbounded_channel();
    std::mem::replace(&mut track.packets, empty)
}

/// Connects a LiveKit-protocol client that receives `tracks` tracks, reading them.
async fn livekit_receiver(
    ws: &str,
    identity: String,
    tracks: usize,
    collector: &Collector,
) -> Result<(TestClient, Vec<tokio::task::JoinHandle<()>>, Vec<VideoLeg>)> {
    let client = TestClient::connect(ws, &mint(&identity)).await?;
    let (readers, legs) = livekit_read(&client, tracks, collector).await?;
    Ok((client, readers, legs))
}

async fn livekit_read(
    client: &TestClient,
    tracks: usize,
    collector: &Collector,
) -> Result<(Vec<tokio::task::JoinHandle<()>>, Vec<VideoLeg>)> {
    let mut readers = Vec::new();
    let mut legs = Vec::new();
    for _ in 0..tracks {
        let mut track = client.next_track(TRACK_WAIT).await?;
        readers.push(collector.spawn_reader(take_packets(&mut track)));
        if !track.is_audio {
            legs.push(VideoLeg::LiveKit(track));
        }
    }
    Ok((readers, legs))
}

/// Sets `scenario` up on an SFU that speaks LiveKit's protocol at `ws`:
/// Salon's `sfu-serve` or LiveKit server.
pub async fn livekit_protocol(
    scenario: Scenario,
    n: usize,
    ws: &str,
    clip: &Arc<Vp8Clip>,
    window: &Arc<Window>,
    collector: &Collector,
) -> Result<Setup> {
    let mut setup = Setup::default();
    let per_receiver;
    match scenario {
        Scenario::A => {
            let publisher = TestClient::connect(ws, &mint("publisher")).await?;
            let audio = publisher.publish(true).await?;
            let video = publisher.publish(false).await?;
            for (sender, audio, source) in [(&audio, true, 0), (&video, false, 1)] {
                let out = Outbound::new(
                    sender.local_track(),
                    sender.ssrc(),
                    sender.payload_type(),
                    audio,
                    source,
                );
                setup.publish(out, n as u64, clip, window);
            }
            setup.keep.push(Box::new(publisher));
            setup.keep.push(Box::new((audio, video)));
            per_receiver = 2;
        }
        Scenario::B => {
            let mut speakers = Vec::new();
            for i in 0..SPEAKERS {
                let speaker = TestClient::connect(ws, &mint(&format!("speaker-{i}"))).await?;
                let audio = speaker.publish(true).await?;
                let out = Outbound::new(
                    audio.local_track(),
                    audio.ssrc(),
                    audio.payload_type(),
                    true,
                    i as u16,
                );
                setup.publish(out, (n + SPEAKERS - 1) as u64, clip, window);
                setup.keep.push(Box::new(audio));
                speakers.push(speaker);
            }
            for speaker in &speakers {
                let (readers, _) = livekit_read(speaker, SPEAKERS - 1, collector).await?;
                setup.tasks.extend(readers);
            }
            setup.receivers += SPEAKERS;
            setup.keep.push(Box::new(speakers));
            per_receiver = SPEAKERS;
        }
    }
    for batch in (0..n).collect::<Vec<_>>().chunks(BATCH) {
        let joined = try_join_all(
            batch
                .iter()
                .map(|i| livekit_receiver(ws, format!("sub-{i}"), per_receiver, collector)),
        )
        .await?;
        for (client, readers, legs) in joined {
            setup.tasks.extend(readers);
            setup.video_legs.extend(legs);
            setup.keep.push(Box::new(client));
        }
    }
    setup.receivers += n;
    Ok(setup)
}

/// Joins the room as a publisher of `audio` (+ video when `video`), returns
/// the feed id.
async fn janus_publisher(
    janus: &Janus,
    name: &str,
    sources: &[(bool, u16)],
) -> Result<(u64, Peer, Vec<Outbound>)> {
    let handle = janus.attach().await?;
    let joined = janus
        .message(
            handle,
            json!({"request": "join", "ptype": "publisher", "room": janus::ROOM, "display": name}),
            None,
        )
        .await?;
    let feed = joined["plugindata"]["data"]["id"]
        .as_u64()
        .context("no publisher id")?;
    let peer = Peer::new(JANUS_CLIENT_IP).await?;
    let mut outbounds = Vec::new();
    for &(audio, source) in sources {
        outbounds.push(peer.add_outbound(audio, source).await?);
    }
    let offer = peer.offer().await?;
    let published = janus
        .message(
            handle,
            json!({"request": "publish"}),
            Some(json!({"type": "offer", "sdp": offer})),
        )
        .await?;
    let answer = published["jsep"]["sdp"]
        .as_str()
        .context("publish: no answer")?;
    peer.apply_answer(answer.to_owned()).await?;
    peer.wait_connected(Duration::from_secs(15)).await?;
    Ok((feed, peer, outbounds))
}

/// Subscribes one peer to `feeds` and reads `tracks` tracks.
async fn janus_subscriber(
    janus: &Janus,
    feeds: &[u64],
    tracks: usize,
    collector: &Collector,
) -> Result<(Peer, Vec<tokio::task::JoinHandle<()>>, Vec<VideoLeg>)> {
    let handle = janus.attach().await?;
    let streams: Vec<_> = feeds.iter().map(|f| json!({"feed": f})).collect();
    // A feed is subscribable once Janus has seen its media start, which can
    // be a moment after our side reports the publisher connected.
    let mut tries = 0;
    let attached = loop {
        let reply = janus
            .message(
                handle,
                json!({"request": "join", "ptype": "subscriber", "room": janus::ROOM, "streams": streams}),
                None,
            )
            .await;
        match reply {
            Err(error) if tries < 50 && error.to_string().contains("No such feed") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other?,
        }
    };
    let offer = attached["jsep"]["sdp"]
        .as_str()
        .context("subscribe: no offer")?;
    let peer = Peer::new(JANUS_CLIENT_IP).await?;
    let answer = peer.answer(offer.to_owned()).await?;
    janus
        .message(
            handle,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer})),
        )
        .await?;
    let mut readers = Vec::new();
    let mut legs = Vec::new();
    for _ in 0..tracks {
        let (track, packets) = peer.next_track(TRACK_WAIT).await?;
        readers.push(collector.spawn_reader(packets));
        if track.kind().await == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video {
            legs.push(VideoLeg::Janus(track));
        }
    }
    Ok((peer, readers, legs))
}

pub async fn janus(
    scenario: Scenario,
    n: usize,
    url: &str,
    clip: &Arc<Vp8Clip>,
    window: &Arc<Window>,
    collector: &Collector,
) -> Result<Setup> {
    let janus = Janus::connect(url).await?;
    let mut setup = Setup::default();
    let (feeds, per_receiver) = match scenario {
        Scenario::A => {
            let (feed, peer, outbounds) =
                janus_publisher(&janus, "publisher", &[(true, 0), (false, 1)]).await?;
            for out in outbounds {
                setup.publish(out, n as u64, clip, window);
            }
            setup.keep.push(Box::new(peer));
            (vec![feed], 2)
        }
        Scenario::B => {
            let mut feeds = Vec::new();
            for i in 0..SPEAKERS {
                let (feed, peer, outbounds) =
                    janus_publisher(&janus, &format!("speaker-{i}"), &[(true, i as u16)]).await?;
                for out in outbounds {
                    setup.publish(out, (n + SPEAKERS - 1) as u64, clip, window);
                }
                setup.keep.push(Box::new(peer));
                feeds.push(feed);
            }
            for (i, _) in feeds.iter().enumerate() {
                let others: Vec<u64> = feeds
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, f)| *f)
                    .collect();
                let (peer, readers, _) =
                    janus_subscriber(&janus, &others, SPEAKERS - 1, collector).await?;
                setup.tasks.extend(readers);
                setup.keep.push(Box::new(peer));
            }
            setup.receivers += SPEAKERS;
            (feeds, SPEAKERS)
        }
    };
    for batch in (0..n).collect::<Vec<_>>().chunks(BATCH) {
        let joined = try_join_all(
            batch
                .iter()
                .map(|_| janus_subscriber(&janus, &feeds, per_receiver, collector)),
        )
        .await?;
        for (peer, readers, legs) in joined {
            setup.tasks.extend(readers);
            setup.video_legs.extend(legs);
            setup.keep.push(Box::new(peer));
        }
    }
    setup.receivers += n;
    setup.keep.push(Box::new(janus));
    Ok(setup)
}
