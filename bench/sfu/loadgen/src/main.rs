//! The SFU-vs-Janus benchmark's load generator and driver (`bench/sfu/run`
//! calls it inside a private network namespace).
//!
//! ```text
//! loadgen make-y4m OUT.y4m SECONDS
//! loadgen suite [--quick] --ivf clip.ivf --janus-etc DIR --sfu-serve PATH [--livekit PATH] [--seconds S] [--sfu-cpu C] [--netem-dev lo]
//! loadgen suite --soak [SECONDS] [--soak-bucket S] ...   # the soak run (default 3600 s, 60 s buckets)
//! loadgen report SAVED-OUTPUT   # the table again from a run's RESULT lines
//! loadgen soak-report SAVED-OUTPUT SVG-DIR   # the soak report and SVGs again from its SOAK lines
//! loadgen one --sfu salon|janus|livekit --scenario a|b --n N --pid PID --ivf clip.ivf [--seconds S] [--netem-loss PCT] [--soak S --bucket S]
//! ```
//!
//! `suite` runs every case against Salon, Janus and (with `--livekit`)
//! LiveKit server, alternating, each SFU freshly started and pinned with
//! `taskset` to the same core, each measurement in a fresh `one` child
//! process, and prints the table, the ratios and, last, `sfu pps-per-cpu
//! ratio salon/janus: X.XX` (after `sfu pps-per-cpu ratio salon/livekit`).
//! `suite --soak` runs the long cases instead (`soak`): a time series of the
//! SFU's RSS and CPU, loss and stalled tracks per bucket, a table and SVGs.

mod janus;
mod measure;
mod media;
mod peer;
mod scenario;
mod soak;
mod suite;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use measure::{Collector, Window, cpu_seconds, quantile_ms, rss_kib};
use scenario::Scenario;

/// One measured case on one SFU.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub sfu: String,
    pub scenario: Scenario,
    pub n: usize,
    pub netem_loss_pct: f64,
    pub seconds: f64,
    pub receivers: usize,
    pub expected: u64,
    pub received: u64,
    pub duplicates: u64,
    pub loss_pct: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub audio_loss_pct: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub video_loss_pct: f64,
    /// Received tracks that got less than half of what their source sent
    /// in the window (a stalled leg rather than scattered loss).
    pub stalled_tracks: usize,
    pub forwarded_pps: f64,
    pub sfu_cpu_pct: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub pps_per_cpu_s: f64,
    pub rss_idle_kib: u64,
    pub rss_kib: u64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p50_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p99_ms: f64,
    pub generator_cpu_pct: f64,
    pub keyframe_requests: u64,
    pub setup_s: f64,
}

/// JSON has no NaN (serde_json writes `null`); read it back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

struct OneArgs {
    sfu: String,
    scenario: Scenario,
    n: usize,
    pid: u32,
    ivf: PathBuf,
    seconds: f64,
    netem_loss_pct: f64,
    netem_devs: Vec<String>,
    salon_ws: String,
    janus_ws: String,
    livekit_ws: String,
    /// Soak mode: run this long instead of one window (0: the window).
    soak_s: f64,
    /// Soak mode: loss and stalled tracks are counted per bucket this long.
    bucket_s: f64,
}

fn value<T: std::str::FromStr>(args: &mut impl Iterator<Item = String>, name: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let raw = args
        .next()
        .with_context(|| format!("{name} needs a value"))?;
    raw.parse()
        .map_err(|e| anyhow::anyhow!("{name} {raw}: {e}"))
}

fn parse_one(mut args: impl Iterator<Item = String>) -> Result<OneArgs> {
    let mut parsed = OneArgs {
        sfu: String::new(),
        scenario: Scenario::A,
        n: 10,
        pid: 0,
        ivf: PathBuf::new(),
        seconds: 10.0,
        netem_loss_pct: 0.0,
        netem_devs: vec!["lo".into()],
        salon_ws: "ws://127.0.0.1:7880".into(),
        janus_ws: "ws://127.0.0.1:8188".into(),
        livekit_ws: suite::LIVEKIT_WS.into(),
        soak_s: 0.0,
        bucket_s: 60.0,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sfu" => parsed.sfu = value(&mut args, &arg)?,
            "--scenario" => {
                parsed.scenario = match value::<String>(&mut args, &arg)?.as_str() {
                    "a" | "A" => Scenario::A,
                    "b" | "B" => Scenario::B,
                    other => bail!("unknown scenario {other}"),
                }
            }
            "--n" => parsed.n = value(&mut args, &arg)?,
            "--pid" => parsed.pid = value(&mut args, &arg)?,
            "--ivf" => parsed.ivf = value(&mut args, &arg)?,
            "--seconds" => parsed.seconds = value(&mut args, &arg)?,
            "--netem-loss" => parsed.netem_loss_pct = value(&mut args, &arg)?,
            "--netem-dev" => {
                parsed.netem_devs = value::<String>(&mut args, &arg)?
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            "--salon-ws" => parsed.salon_ws = value(&mut args, &arg)?,
            "--janus-ws" => parsed.janus_ws = value(&mut args, &arg)?,
            "--livekit-ws" => parsed.livekit_ws = value(&mut args, &arg)?,
            "--soak" => parsed.soak_s = value(&mut args, &arg)?,
            "--bucket" => parsed.bucket_s = value(&mut args, &arg)?,
            other => bail!("unknown argument {other}"),
        }
    }
    if parsed.pid == 0 || parsed.sfu.is_empty() {
        bail!("one needs --sfu and --pid");
    }
    Ok(parsed)
}

/// Sets the case's scenario up on the SFU (every client connected, every
/// track arriving).
async fn connect(
    args: &OneArgs,
    clip: &Arc<media::Vp8Clip>,
    window: &Arc<Window>,
    collector: &Collector,
) -> Result<scenario::Setup> {
    // Salon and LiveKit server speak the same protocol: one client code path.
    let livekit_ws = match args.sfu.as_str() {
        "salon" => Some(&args.salon_ws),
        "livekit" => Some(&args.livekit_ws),
        "janus" => None,
        other => bail!("unknown SFU {other}"),
    };
    match livekit_ws {
        Some(ws) => {
            scenario::livekit_protocol(args.scenario, args.n, ws, clip, window, collector).await
        }
        None => {
            scenario::janus(
                args.scenario,
                args.n,
                &args.janus_ws,
                clip,
                window,
                collector,
            )
            .await
        }
    }
}

/// Measures one case against an SFU that is already running as `pid`.
async fn one(args: OneArgs) -> Result<Outcome> {
    media::epoch();
    let clip = Arc::new(media::Vp8Clip::from_ivf(&args.ivf)?);
    let rss_idle = rss_kib(args.pid)?;
    let window = Window::new();
    let (collector, stop) = Collector::new(window.clone());
    let started = Instant::now();
    let setup = connect(&args, &clip, &window, &collector).await?;
    let setup_s = started.elapsed().as_secs_f64();
    // Loss starts once everyone is connected: it is media recovery that is
    // measured, not how handshakes survive loss.
    if args.netem_loss_pct > 0.0 {
        let how = suite::inject_loss(&args.netem_devs, args.netem_loss_pct)?;
        eprintln!("{}% UDP loss injected with {how}", args.netem_loss_pct);
    }
    // Let every subscriber settle (first keyframe, NACK windows) first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let me = std::process::id();
    let keyframes_before: u64 = setup
        .outbounds
        .iter()
        .map(|o| o.keyframe_requests.load(Ordering::Relaxed))
        .sum();
    let cpu_start = cpu_seconds(args.pid)?;
    let gen_start = cpu_seconds(me)?;
    let t0 = Instant::now();
    window.open();
    if args.netem_loss_pct > 0.0 {
        // Under loss, every subscriber asks for a keyframe once mid-window,
        // as a decoder that lost a frame would.
        tokio::time::sleep(Duration::from_secs_f64(args.seconds / 2.0)).await;
        for leg in &setup.video_legs {
            leg.request_keyframe().await;
        }
        tokio::time::sleep(Duration::from_secs_f64(args.seconds / 2.0)).await;
    } else {
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    }
    window.close();
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(args.pid)? - cpu_start;
    let gen_cpu = cpu_seconds(me)? - gen_start;
    let rss = rss_kib(args.pid)?;
    let keyframe_requests = setup
        .outbounds
        .iter()
        .map(|o| o.keyframe_requests.load(Ordering::Relaxed))
        .sum::<u64>()
        - keyframes_before;
    // Late and retransmitted packets of the window still count.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop.send(true);
    if args.netem_loss_pct > 0.0 {
        suite::inject_loss(&args.netem_devs, 0.0)?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut received = collector.take();
    received.latencies_us.sort_unstable();
    let expected: u64 = setup
        .fan_out
        .iter()
        .map(|(_, _, sent, receivers)| sent.load(Ordering::Relaxed) * receivers)
        .sum();
    let kind_loss = |audio: bool| {
        let (mut want, mut got) = (0u64, 0u64);
        for (source, is_audio, sent, receivers) in &setup.fan_out {
            if *is_audio == audio {
                want += sent.load(Ordering::Relaxed) * receivers;
                got += received.by_source.get(source).copied().unwrap_or(0);
            }
        }
        if want == 0 {
            f64::NAN
        } else {
            100.0 * (1.0 - got as f64 / want as f64)
        }
    };
    let forwarded_pps = received.unique as f64 / elapsed;
    let sent_by_source = |source: u16| {
        setup
            .fan_out
            .iter()
            .find(|(s, ..)| *s == source)
            .map_or(0, |(_, _, sent, _)| sent.load(Ordering::Relaxed))
    };
    let stalled_tracks = received
        .per_track
        .iter()
        .filter(|(source, got)| match source {
            Some(source) => *got * 2 < sent_by_source(*source),
            None => true,
        })
        .count();
    Ok(Outcome {
        sfu: args.sfu,
        scenario: args.scenario,
        n: args.n,
        netem_loss_pct: args.netem_loss_pct,
        seconds: elapsed,
        receivers: setup.receivers,
        expected,
        received: received.unique,
        duplicates: received.duplicates,
        loss_pct: if expected > 0 {
            100.0 * (1.0 - received.unique as f64 / expected as f64)
        } else {
            100.0
        },
        audio_loss_pct: kind_loss(true),
        video_loss_pct: kind_loss(false),
        stalled_tracks,
        forwarded_pps,
        sfu_cpu_pct: 100.0 * cpu / elapsed,
        pps_per_cpu_s: if cpu > 0.0 {
            received.unique as f64 / cpu
        } else {
            f64::NAN
        },
        rss_idle_kib: rss_idle,
        rss_kib: rss,
        p50_ms: quantile_ms(&received.latencies_us, 0.50),
        p99_ms: quantile_ms(&received.latencies_us, 0.99),
        generator_cpu_pct: 100.0 * gen_cpu / elapsed,
        keyframe_requests,
        setup_s,
    })
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    match command.as_str() {
        "make-y4m" => {
            let path: PathBuf = value(&mut args, "path")?;
            let seconds: u32 = value(&mut args, "seconds")?;
            media::write_y4m(&path, seconds)
        }
        "clip-info" => {
            let path: PathBuf = value(&mut args, "path")?;
            let clip = media::Vp8Clip::from_ivf(&path)?;
            println!(
                "{} frames at {:.0} fps, {:.0} kbit/s, {:.0} packets/s, {} keyframes",
                clip.frames.len(),
                clip.fps,
                clip.bitrate() / 1000.0,
                clip.packet_rate(),
                clip.frames.iter().filter(|f| f.keyframe).count()
            );
            Ok(())
        }
        "one" => {
            let parsed = parse_one(args)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            if parsed.soak_s > 0.0 {
                let outcome = runtime.block_on(soak::one(parsed))?;
                println!("SOAK {}", serde_json::to_string(&outcome)?);
            } else {
                let outcome = runtime.block_on(one(parsed))?;
                println!("RESULT {}", serde_json::to_string(&outcome)?);
            }
            // Tearing down hundreds of peer connections is slow and measures
            // nothing; the SFU is killed by the suite anyway.
            std::process::exit(0);
        }
        "suite" => suite::run(args),
        "report" => {
            let path: PathBuf = value(&mut args, "path")?;
            suite::report_file(&path)
        }
        "soak-report" => {
            let path: PathBuf = value(&mut args, "path")?;
            let dir: PathBuf = value(&mut args, "svg dir")?;
            soak::report_file(&path, &dir)
        }
        _ => bail!(
            "usage: loadgen make-y4m|clip-info|one|suite|report|soak-report ... (see bench/sfu/README.md)"
        ),
    }
}
