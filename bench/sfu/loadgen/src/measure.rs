//! Sending and receiving during a measurement: pumps that replay the
//! prepared media on a publisher's track at its real pace, readers that turn
//! every received payload's trailer into latency and loss, and the SFU's CPU
//! and memory read from `/proc`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use rtc::rtp;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use salon_sfu::testing::ReceivedPacket;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

use crate::media::{self, Vp8Clip};
use crate::soak::{Dedupe, Ledger};

/// Linux USER_HZ, the unit of utime/stime in /proc/PID/stat.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields after ")" start at field 3 (state); utime is 14, stime 15.
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / CLOCK_TICKS_PER_SEC)
}

/// Resident set size of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
}

/// The measurement window, in [`media::now_ns`] time; packets sent inside it
/// are the ones counted, wherever and whenever they arrive.
/// In soak mode it also carries the [`Ledger`] that counts per bucket.
#[derive(Default)]
pub struct Window {
    start: AtomicU64,
    end: AtomicU64,
    ledger: std::sync::OnceLock<Arc<Ledger>>,
}

impl Window {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: AtomicU64::new(u64::MAX),
            end: AtomicU64::new(u64::MAX),
            ledger: std::sync::OnceLock::new(),
        })
    }
    /// A window whose packets are also counted per bucket by `ledger` (soak).
    pub fn with_ledger(ledger: Arc<Ledger>) -> Arc<Self> {
        let window = Self::new();
        let _ = window.ledger.set(ledger);
        window
    }
    pub fn ledger(&self) -> Option<&Arc<Ledger>> {
        self.ledger.get()
    }
    pub fn open(&self) {
        self.start.store(media::now_ns(), Ordering::Release);
    }
    pub fn close(&self) {
        self.end.store(media::now_ns(), Ordering::Release);
    }
    pub fn contains(&self, ns: u64) -> bool {
        ns >= self.start.load(Ordering::Acquire) && ns < self.end.load(Ordering::Acquire)
    }
}

/// One published track the generator feeds.
pub struct Outbound {
    pub track: Arc<TrackLocalStaticRTP>,
    pub ssrc: u32,
    pub payload_type: u8,
    pub audio: bool,
    /// Source id written in the trailer.
    pub source: u16,
    /// Packets sent inside the window.
    pub sent_in_window: Arc<AtomicU64>,
    /// Keyframe requests (PLI/FIR) that reached this publisher.
    pub keyframe_requests: Arc<AtomicU64>,
}

impl Outbound {
    pub fn new(
        track: Arc<TrackLocalStaticRTP>,
        ssrc: u32,
        payload_type: u8,
        audio: bool,
        source: u16,
    ) -> Self {
        Self {
            track,
            ssrc,
            payload_type,
            audio,
            source,
            sent_in_window: Arc::new(AtomicU64::new(0)),
            keyframe_requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Starts replaying: Opus every 20 ms, or the VP8 clip frame by frame
    /// (each frame's packets back to back, restarting at the clip's first
    /// keyframe when the SFU asks for one). Also counts keyframe requests.
    pub fn start(
        &self,
        clip: Arc<Vp8Clip>,
        window: Arc<Window>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let restart = Arc::new(AtomicU32::new(0));
        let track = self.track.clone();
        let requests = self.keyframe_requests.clone();
        let restart_on_request = restart.clone();
        let rtcp = tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(_) = event {
                    requests.fetch_add(1, Ordering::Relaxed);
                    restart_on_request.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let track = self.track.clone();
        let (ssrc, pt, source, audio) = (self.ssrc, self.payload_type, self.source, self.audio);
        let sent = self.sent_in_window.clone();
        let pump = tokio::spawn(async move {
            let mut sequence: u16 = rand::random();
            let mut timestamp: u32 = rand::random();
            let mut index: u32 = 0;
            let opus = media::opus_packet();
            let (interval, clock_step) = if audio {
                (Duration::from_millis(20), 960)
            } else {
                (
                    Duration::from_secs_f64(1.0 / clip.fps),
                    (90_000.0 / clip.fps) as u32,
                )
            };
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut frame_at = 0usize;
            let mut restarts_seen = 0u32;
            loop {
                tick.tick().await;
                let payloads: Vec<&[u8]> = if audio {
                    vec![&opus]
                } else {
                    let requested = restart.load(Ordering::Relaxed);
                    if requested != restarts_seen {
                        restarts_seen = requested;
                        frame_at = 0;
                    }
                    let frame = &clip.frames[frame_at % clip.frames.len()];
                    frame_at += 1;
                    frame.packets.iter().map(Vec::as_slice).collect()
                };
                let last = payloads.len() - 1;
                for (i, payload) in payloads.into_iter().enumerate() {
                    let sent_ns = media::now_ns();
                    let packet = rtp::Packet {
                        header: rtp::header::Header {
                            version: 2,
                            marker: !audio && i == last,
                            payload_type: pt,
                            sequence_number: sequence,
                            timestamp,
                            ssrc,
                            ..Default::default()
                        },
                        payload: media::stamp(payload, source, index, sent_ns),
                    };
                    sequence = sequence.wrapping_add(1);
                    index = index.wrapping_add(1);
                    let ok = if audio {
                        track
                            .write_rtp_with_extensions(
                                packet,
                                &[HeaderExtension::AudioLevel(AudioLevelExtension {
                                    level: 30,
                                    voice: true,
                                })],
                            )
                            .await
                            .is_ok()
                    } else {
                        track.write_rtp(packet).await.is_ok()
                    };
                    if ok && window.contains(sent_ns) {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    if let (true, Some(ledger)) = (ok, window.ledger()) {
                        ledger.sent(source, sent_ns);
                    }
                }
                timestamp = timestamp.wrapping_add(clock_step);
            }
        });
        vec![rtcp, pump]
    }
}

/// What all readers saw, merged.
#[derive(Default, Debug)]
pub struct Received {
    /// Distinct packets sent inside the window and received.
    pub unique: u64,
    /// Copies of a packet already received.
    pub duplicates: u64,
    /// Added latency of each unique packet, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Distinct packets received, per source.
    pub by_source: std::collections::HashMap<u16, u64>,
    /// Per received track: its source (`None` if nothing came) and count.
    pub per_track: Vec<(Option<u16>, u64)>,
}

/// Collects every reader's results when they stop.
#[derive(Clone)]
pub struct Collector {
    merged: Arc<std::sync::Mutex<Received>>,
    stop: watch::Receiver<bool>,
    window: Arc<Window>,
}

impl Collector {
    pub fn new(window: Arc<Window>) -> (Self, watch::Sender<bool>) {
        let (stop_tx, stop) = watch::channel(false);
        (
            Self {
                merged: Arc::default(),
                stop,
                window,
            },
            stop_tx,
        )
    }

    /// Reads one received track until told to stop, then merges.
    pub fn spawn_reader(
        &self,
        mut packets: mpsc::UnboundedReceiver<ReceivedPacket>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut stop = this.stop.clone();
            let mut seen: HashSet<(u16, u32)> = HashSet::new();
            let mut local = Received::default();
            let mut source = None;
            // Soak: this track's last arrival, and the dedupe of its buckets.
            let soak = this
                .window
                .ledger()
                .map(|l| (l.clone(), l.register_track()));
            let mut soak_seen = Dedupe::default();
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    packet = packets.recv() => {
                        let Some(packet) = packet else { break };
                        let now = media::now_ns();
                        let Some(stamp) = media::read_stamp(&packet.payload) else { continue };
                        source = Some(stamp.source);
                        if let Some((ledger, last)) = &soak {
                            ledger.received(last, &stamp, now, &mut soak_seen);
                        }
                        if !this.window.contains(stamp.sent_ns) {
                            continue;
                        }
                        if seen.insert((stamp.source, stamp.index)) {
                            local.unique += 1;
                            *local.by_source.entry(stamp.source).or_default() += 1;
                            local.latencies_us.push((now.saturating_sub(stamp.sent_ns) / 1000) as u32);
                        } else {
                            local.duplicates += 1;
                        }
                    }
                }
            }
            let mut merged = this.merged.lock().unwrap_or_else(|e| e.into_inner());
            merged.per_track.push((source, local.unique));
            merged.unique += local.unique;
            merged.duplicates += local.duplicates;
            merged.latencies_us.extend(local.latencies_us);
            for (source, count) in local.by_source {
                *merged.by_source.entry(source).or_default() += count;
            }
        })
    }

    pub fn take(&self) -> Received {
        std::mem::take(&mut *self.merged.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The `q` quantile (0..=1) of sorted values, in milliseconds.
pub fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted_us.len() - 1) as f64 * q).round() as usize;
    sorted_us[at] as f64 / 1000.0
}
