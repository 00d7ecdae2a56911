//! Measures the SFU's cost: one publisher replaying pre-encoded RTP (Opus-sized
//! audio at 50 packets/s, optionally ~1 Mbit/s of VP8-sized video) to N
//! subscribers. The SFU runs in a child process so its CPU and memory are its
//! own; the clients run here.
//!
//! ```text
//! cargo run -p salon-sfu --features testing --bin sfu-bench -- --subscribers 20 --seconds 10 [--video]
//! ```
//!
//! Prints the SFU's CPU-seconds per 1,000 forwarded packets and its RSS per
//! participant.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use salon_sfu::testing::{TestClient, TrackSender};
use salon_sfu::{Sfu, SfuConfig, token};

const KEY: &str = "APIbench";
const SECRET: &str = "bench-secret-of-sufficient-length";
/// Linux USER_HZ, the unit of utime/stime in /proc/PID/stat.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

struct Args {
    subscribers: usize,
    seconds: u64,
    video: bool,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        subscribers: 20,
        seconds: 10,
        video: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "serve" => return Ok(None),
            "--subscribers" => parsed.subscribers = args.next().context("value")?.parse()?,
            "--seconds" => parsed.seconds = args.next().context("value")?.parse()?,
            "--video" => parsed.video = true,
            other => bail!("unknown argument {other}; use --subscribers N --seconds S [--video]"),
        }
    }
    Ok(Some(parsed))
}

/// Child mode: serve the SFU on a free port and print it.
async fn serve() -> Result<()> {
    let mut config = SfuConfig::local(KEY, SECRET);
    config.max_participants = 1000;
    config.max_bitrate_bps = 50_000_000;
    let sfu = Sfu::new(config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("LISTENING {}", listener.local_addr()?.port());
    axum::serve(listener, sfu.router()).await?;
    Ok(())
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields after ")" start at field 3 (state); utime is 14, stime 15.
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / CLOCK_TICKS_PER_SEC)
}

/// Resident set size of `pid`, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
}

fn pump(
    sender: Arc<TrackSender>,
    payload: Vec<u8>,
    interval: Duration,
    per_tick: usize,
    sent: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            for _ in 0..per_tick {
                if sender.send(&payload, 40).await {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
}

async fn run(args: Args) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id();
    let mut stdout = std::io::BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .strip_prefix("LISTENING ")
        .context("child did not start")?
        .parse()?;
    let ws = format!("ws://127.0.0.1:{port}");
    let outcome = measure(&args, &ws, pid).await;
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

async fn measure(args: &Args, ws: &str, pid: u32) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(pid)?;
    let room = "bench";
    let mint = |identity: &str| {
        token::mint(
            KEY,
            SECRET,
            room,
            identity,
            identity,
            Duration::from_secs(3600),
        )
    };
    let publisher = TestClient::connect(ws, &mint("publisher")).await?;
    let audio = Arc::new(publisher.publish(true).await?);
    let video = if args.video {
        Some(Arc::new(publisher.publish(false).await?))
    } else {
        None
    };
    // Pre-encoded payloads: Opus 20 ms at ~32 kbit/s is ~80 bytes; VP8 at
    // ~1 Mbit/s is ~90 packets/s of ~1,200 bytes.
    let opus: Vec<u8> = (0..80u8).collect();
    let vp8: Vec<u8> = (0..1200).map(|i| (i % 251) as u8).collect();
    let sent = Arc::new(AtomicU64::new(0));
    let mut pumps = vec![pump(
        audio.clone(),
        opus,
        Duration::from_millis(20),
        1,
        sent.clone(),
    )];
    if let Some(video) = &video {
        pumps.push(pump(
            video.clone(),
            vp8,
            Duration::from_millis(33),
            3,
            sent.clone(),
        ));
    }

    let received = Arc::new(AtomicU64::new(0));
    let mut subscribers = Vec::new();
    let mut readers = Vec::new();
    let expected_tracks = if args.video { 2 } else { 1 };
    for i in 0..args.subscribers {
        let client = TestClient::connect(ws, &mint(&format!("sub-{i}"))).await?;
        for _ in 0..expected_tracks {
            let mut track = client.next_track(Duration::from_secs(20)).await?;
            let received = received.clone();
            readers.push(tokio::spawn(async move {
                while track.packets.recv().await.is_some() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        subscribers.push(client);
    }
    // Let every subscriber settle, then measure a steady window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_loaded = rss_kib(pid)?;
    let cpu_start = cpu_seconds(pid)?;
    let received_start = received.load(Ordering::Relaxed);
    let sent_start = sent.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - cpu_start;
    let forwarded = received.load(Ordering::Relaxed) - received_start;
    let published = sent.load(Ordering::Relaxed) - sent_start;
    for pump in pumps {
        pump.abort();
    }
    let participants = args.subscribers + 1;
    let expected = published as f64 * args.subscribers as f64;
    println!(
        "sfu-bench: 1 publisher ({}), {} subscribers, {:.1} s window",
        if args.video {
            "Opus 50 pps + VP8-sized 90 pps"
        } else {
            "Opus 50 pps"
        },
        args.subscribers,
        elapsed
    );
    println!(
        "  published {published} packets ({:.0} pps); subscribers received {forwarded} ({:.1}% of {:.0}), {:.0} pps",
        published as f64 / elapsed,
        100.0 * forwarded as f64 / expected.max(1.0),
        expected,
        forwarded as f64 / elapsed
    );
    println!(
        "  SFU CPU: {cpu:.2} s over {elapsed:.1} s = {:.1}% of one core",
        100.0 * cpu / elapsed
    );
    println!(
        "  SFU CPU-seconds per 1,000 forwarded packets: {:.4}",
        if forwarded > 0 {
            cpu * 1000.0 / forwarded as f64
        } else {
            f64::NAN
        }
    );
    println!(
        "  SFU RSS: idle {} KiB, loaded {} KiB, {:.0} KiB per participant",
        rss_idle,
        rss_loaded,
        (rss_loaded.saturating_sub(rss_idle)) as f64 / participants as f64
    );
    for reader in readers {
        reader.abort();
    }
    drop(subscribers);
    drop(publisher);
    Ok(())
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match parse_args()? {
        None => runtime.block_on(serve()),
        Some(args) => runtime.block_on(run(args)),
    }
}
