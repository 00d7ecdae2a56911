//! The transcriber on a LiveKit cluster: one hidden participant per
//! transcribed call (see `token::transcriber`), connected with
//! `salon-lkclient`. It subscribes to every audio track, finds whose it is
//! from the participant list LiveKit sends it, and forwards the packets to
//! that speaker's [`Feed`], which the bridge's [`AudioTap`]s read exactly as
//! they read the embedded SFU's. Captions go out from it as LiveKit
//! `Transcription` packets.
//!
//! In the flow: `LiveKitBackend::subscribe_audio` opens a feed and starts the
//! call's listener ([`listen`]); `send_caption` sends through [`Listener`]'s
//! client; a webhook's participant_left drops the speaker's feed (their tap
//! ends); `close_call` stops the listener.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use salon_lkclient::proto::{self, signal_response};
use salon_lkclient::{Client, ClientOptions, ReceivedTrack};
use salon_sfu::{AudioPacket, AudioTap, Encryption, TappedTrack};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use super::LiveKitBackend;

/// Packets a tap may fall behind by before it skips (10 s of Opus, as the
/// embedded SFU's taps: Whisper on a busy machine can starve the tap
/// task for seconds, and a skip loses words).
const FEED_DEPTH: usize = 512;
/// How long a track may wait for LiveKit to say whose it is.
const WHOSE_WAIT: Duration = Duration::from_secs(5);

/// One speaker's audio in one call, for the taps that read it.
pub(super) struct Feed {
    sender: broadcast::Sender<AudioPacket>,
    track: Arc<Mutex<Option<TappedTrack>>>,
    /// The last packet forwarded: (track sid, sequence, when).
    last: Option<(String, u16, Instant)>,
}

/// A track silent this long gives way to another of the same speaker's.
const TRACK_SWITCH_AFTER: Duration = Duration::from_secs(1);

impl Feed {
    /// Whether `packet` continues the feed: from its track, newer than the
    /// last one (a packet seen twice, or a second subscription to the same
    /// track, would play its audio twice), or from a new track once the old
    /// one fell silent.
    fn admits(&mut self, packet: &AudioPacket) -> bool {
        let now = packet.received_at;
        match &self.last {
            Some((sid, seq, _))
                if *sid == packet.track_sid && (packet.sequence.wrapping_sub(*seq) as i16) <= 0 =>
            {
                return false;
            }
            Some((sid, _, at))
                if *sid != packet.track_sid
                    && now.saturating_duration_since(*at) < TRACK_SWITCH_AFTER =>
            {
                return false;
            }
            _ => {}
        }
        self.last = Some((packet.track_sid.clone(), packet.sequence, now));
        true
    }
}

/// Speakers' feeds by (call, identity).
#[derive(Default)]
pub(super) struct Feeds(Mutex<HashMap<(String, String), Feed>>);

impl Feeds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Feed>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new tap on `identity`'s audio in `call_id` (the feed is made on first use).
    pub(super) fn tap(&self, call_id: &str, identity: &str) -> AudioTap {
        let mut feeds = self.lock();
        let feed = feeds
            .entry((call_id.to_owned(), identity.to_owned()))
            .or_insert_with(|| Feed {
                sender: broadcast::channel(FEED_DEPTH).0,
                track: Arc::default(),
                last: None,
            });
        AudioTap::from_parts(identity, feed.track.clone(), feed.sender.subscribe())
    }

    /// The speaker left: their taps end.
    pub(super) fn end(&self, call_id: &str, identity: &str) {
        self.lock()
            .remove(&(call_id.to_owned(), identity.to_owned()));
    }

    /// The call ended: every tap on it ends.
    pub(super) fn end_call(&self, call_id: &str) {
        self.lock().retain(|(call, _), _| call != call_id);
    }

    /// The sid of the track `identity`'s taps carry, if known.
    pub(super) fn track_sid(&self, call_id: &str, identity: &str) -> Option<String> {
        let feeds = self.lock();
        let feed = feeds.get(&(call_id.to_owned(), identity.to_owned()))?;
        let track = feed.track.lock().unwrap_or_else(|e| e.into_inner());
        track.as_ref().map(|t| t.sid.clone())
    }

    /// Hands a packet to the speaker's taps, if anyone listens.
    fn forward(&self, call_id: &str, identity: &str, tapped: &TappedTrack, packet: AudioPacket) {
        let mut feeds = self.lock();
        let Some(feed) = feeds.get_mut(&(call_id.to_owned(), identity.to_owned())) else {
            return;
        };
        if !feed.admits(&packet) {
            return;
        }
        {
            let mut track = feed.track.lock().unwrap_or_else(|e| e.into_inner());
            if track.as_ref().is_none_or(|t| t.sid != tapped.sid) {
                *track = Some(tapped.clone());
            }
        }
        let _ = feed.sender.send(packet);
    }
}

/// A call's hidden participant.
pub(super) struct Listener {
    /// The connected client, once it is.
    pub(super) client: watch::Receiver<Option<Arc<Client>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Starts connecting the transcriber to `call_id`.
    pub(super) fn start(backend: Weak<LiveKitBackend>, call_id: &str) -> Self {
        let (ready, client) = watch::channel(None);
        let task = tokio::spawn(listen(backend, call_id.to_owned(), ready));
        Self { client, task }
    }

    /// Whether it still runs (a dropped connection ends it).
    pub(super) fn alive(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Who publishes what, as LiveKit tells the listener.
#[derive(Default)]
struct Roster {
    /// participant sid → (identity, their tracks by sid)
    by_sid: HashMap<String, (String, Vec<proto::TrackInfo>)>,
}

impl Roster {
    fn learn(&mut self, participants: &[proto::ParticipantInfo]) {
        for p in participants {
            if p.state == proto::participant_info::State::Disconnected as i32 {
                self.by_sid.remove(&p.sid);
            } else {
                self.by_sid
                    .insert(p.sid.clone(), (p.identity.clone(), p.tracks.clone()));
            }
        }
    }

    /// The identity and track info of a subscribed track (`PA_x|TR_y`).
    fn whose(&self, stream_id: &str, track_id: &str) -> Option<(String, Option<proto::TrackInfo>)> {
        let participant_sid = stream_id.split('|').next().unwrap_or_default();
        let track_sid = stream_id.split('|').nth(1).unwrap_or(track_id);
        let find = |(identity, tracks): &(String, Vec<proto::TrackInfo>)| {
            (
                identity.clone(),
                tracks.iter().find(|t| t.sid == track_sid).cloned(),
            )
        };
        self.by_sid.get(participant_sid).map(find).or_else(|| {
            self.by_sid
                .values()
                .find(|(_, tracks)| tracks.iter().any(|t| t.sid == track_sid))
                .map(find)
        })
    }
}

fn encryption(value: i32) -> Encryption {
    match value {
        0 => Encryption::None,
        1 => Encryption::Gcm,
        _ => Encryption::Custom,
    }
}

/// Connects the transcriber to `call_id`, then forwards every audio track
/// it receives until the connection ends.
async fn listen(
    backend: Weak<LiveKitBackend>,
    call_id: String,
    ready: watch::Sender<Option<Arc<Client>>>,
) {
    let Some((url, token, options, feeds)) = backend.upgrade().map(|b| {
        (
            b.ws_url.clone(),
            b.transcriber_token(&call_id),
            ClientOptions::bound_to(b.bind_ip),
            b.feeds.clone(),
        )
    }) else {
        return;
    };
    let client = match Client::connect_with(&url, &token, &options).await {
        Ok(client) => Arc::new(client),
        Err(error) => {
            warn!(%call_id, %error, "the transcriber cannot join the LiveKit room");
            return;
        }
    };
    if let Err(error) = client.open_data_channels(salon_lkclient::WAIT).await {
        warn!(%call_id, %error, "the transcriber's data channel did not open: no captions in the call");
    }
    info!(%call_id, "the transcriber joined the LiveKit room");
    let roster = Arc::new(Mutex::new(Roster::default()));
    roster
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .learn(&client.join.other_participants);
    let mut signals = client.subscribe_signals();
    ready.send_replace(Some(client.clone()));
    let closed = client.wait_closed(Duration::MAX);
    tokio::pin!(closed);
    loop {
        tokio::select! {
            track = client.next_track(Duration::from_secs(3600)) => {
                let Ok(track) = track else { continue };
                if track.is_audio {
                    tokio::spawn(forward(track, roster.clone(), feeds.clone(), call_id.clone()));
                }
            }
            signal = signals.recv() => match signal {
                Ok(signal_response::Message::Update(update)) => roster
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .learn(&update.participants),
                Ok(signal_response::Message::Leave(_)) => break,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = &mut closed => break,
        }
    }
    info!(%call_id, "the transcriber left the LiveKit room");
    ready.send_replace(None);
}

/// Forwards one subscribed audio track to its speaker's feed.
async fn forward(
    mut track: ReceivedTrack,
    roster: Arc<Mutex<Roster>>,
    feeds: Arc<Feeds>,
    call_id: String,
) {
    let started = Instant::now();
    let (identity, info) = loop {
        let found = roster
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .whose(&track.stream_id, &track.track_id);
        if let Some(found) = found {
            break found;
        }
        if started.elapsed() > WHOSE_WAIT {
            warn!(%call_id, stream = %track.stream_id, "LiveKit never said whose this audio is; not transcribed");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tapped = TappedTrack {
        sid: info
            .as_ref()
            .map(|i| i.sid.clone())
            .unwrap_or_else(|| track.track_id.clone()),
        ssrc: track.ssrc().await,
        mime_type: info
            .as_ref()
            .map(|i| i.mime_type.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "audio/opus".into()),
        encryption: encryption(info.as_ref().map_or(0, |i| i.encryption)),
    };
    debug!(%call_id, speaker = %identity, track = %tapped.sid, "transcriber hears a track");
    while let Some(packet) = track.packets.recv().await {
        let audio = AudioPacket {
            track_sid: tapped.sid.clone(),
            payload: packet.payload,
            rtp_timestamp: packet.timestamp,
            sequence: packet.sequence,
            received_at: Instant::now(),
            level_dbov: None,
            ssrc: tapped.ssrc,
            encryption: tapped.encryption,
        };
        feeds.forward(&call_id, &identity, &tapped, audio);
    }
}

/// A caption as LiveKit's `Transcription` packet, attributed to `speaker`.
pub(super) fn transcription_packet(
    speaker: &str,
    track_sid: Option<String>,
    caption: &crate::media::Caption<'_>,
) -> proto::DataPacket {
    proto::DataPacket {
        value: Some(proto::data_packet::Value::Transcription(
            proto::Transcription {
                transcribed_participant_identity: speaker.to_owned(),
                track_id: track_sid.unwrap_or_default(),
                segments: vec![proto::TranscriptionSegment {
                    id: caption.utterance.to_owned(),
                    text: caption.text.to_owned(),
                    start_time: caption.start_ms,
                    end_time: caption.end_ms,
                    r#final: caption.is_final,
                    language: String::new(),
                }],
            },
        )),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(sid: &str, identity: &str, tracks: &[&str]) -> proto::ParticipantInfo {
        proto::ParticipantInfo {
            sid: sid.into(),
            identity: identity.into(),
            state: proto::participant_info::State::Active as i32,
            tracks: tracks
                .iter()
                .map(|t| proto::TrackInfo {
                    sid: (*t).into(),
                    mime_type: "audio/opus".into(),
                    encryption: 1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_track_is_attributed_by_its_stream_or_its_sid() {
        let mut roster = Roster::default();
        roster.learn(&[
            participant("PA_a", "@alice:x", &["TR_1"]),
            participant("PA_b", "@bob:x", &["TR_2"]),
        ]);
        let (who, info) = roster.whose("PA_b|TR_2", "TR_2").unwrap();
        assert_eq!(who, "@bob:x");
        assert_eq!(encryption(info.unwrap().encryption), Encryption::Gcm);
        // A stream id that names no participant: found by the track's sid.
        assert_eq!(roster.whose("stream", "TR_1").unwrap().0, "@alice:x");
        assert!(roster.whose("PA_c|TR_3", "TR_3").is_none());
        let mut gone = participant("PA_b", "@bob:x", &[]);
        gone.state = proto::participant_info::State::Disconnected as i32;
        roster.learn(&[gone]);
        assert!(roster.whose("PA_b|TR_2", "TR_2").is_none());
    }

    #[tokio::test]
    async fn a_feed_reaches_its_taps_and_ends_them_when_the_speaker_leaves() {
        let feeds = Feeds::default();
        let mut tap = feeds.tap("call-1", "@alice:x");
        let mut other = feeds.tap("call-1", "@bob:x");
        let tapped = TappedTrack {
            sid: "TR_1".into(),
            ssrc: 7,
            mime_type: "audio/opus".into(),
            encryption: Encryption::None,
        };
        let packet = AudioPacket {
            track_sid: "TR_1".into(),
            payload: b"opus".to_vec().into(),
            rtp_timestamp: 960,
            sequence: 1,
            received_at: Instant::now(),
            level_dbov: None,
            ssrc: 7,
            encryption: Encryption::None,
        };
        feeds.forward("call-1", "@alice:x", &tapped, packet.clone());
        let got = tap.recv().await.expect("alice's packet");
        assert_eq!(got.payload.as_ref(), b"opus");
        // The same packet again (a second subscription, a retransmission),
        // or an older one, is not played twice; the next one is.
        feeds.forward("call-1", "@alice:x", &tapped, packet.clone());
        let older = AudioPacket {
            sequence: 0,
            ..packet.clone()
        };
        feeds.forward("call-1", "@alice:x", &tapped, older);
        let next = AudioPacket {
            sequence: 2,
            ..packet.clone()
        };
        feeds.forward("call-1", "@alice:x", &tapped, next);
        assert_eq!(tap.recv().await.expect("the next packet").sequence, 2);
        // Another track of hers waits until the first falls silent.
        let other_track = AudioPacket {
            track_sid: "TR_9".into(),
            sequence: 500,
            ..packet.clone()
        };
        feeds.forward("call-1", "@alice:x", &tapped, other_track.clone());
        let later = AudioPacket {
            received_at: Instant::now() + Duration::from_secs(2),
            sequence: 501,
            ..other_track
        };
        feeds.forward("call-1", "@alice:x", &tapped, later);
        assert_eq!(
            tap.recv().await.expect("the new track's packet").sequence,
            501
        );
        assert_eq!(tap.track(), Some(tapped));
        assert_eq!(
            feeds.track_sid("call-1", "@alice:x").as_deref(),
            Some("TR_1")
        );
        feeds.end("call-1", "@alice:x");
        assert!(tap.recv().await.is_none(), "alice left: her tap ends");
        feeds.end_call("call-1");
        assert!(
            other.recv().await.is_none(),
            "the call ended: every tap ends"
        );
    }
}
