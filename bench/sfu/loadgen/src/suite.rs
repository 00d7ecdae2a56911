//! The whole run: for each case, Salon, Janus and LiveKit server (when its
//! binary is given), each freshly started on the same pinned core and
//! measured by a fresh `one` child; optional `tc netem` loss around the
//! lossy cases; then the table, the ratios and the last line. With
//! `--soak`, the soak run (`crate::soak`) instead.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::Outcome;
use crate::scenario::{self, Scenario};
use crate::soak;

/// LiveKit server's signalling port in the bench (Salon's is 7880).
const LIVEKIT_PORT: u16 = 7890;
/// Where the generator joins LiveKit server.
pub const LIVEKIT_WS: &str = "ws://127.0.0.1:7890";

struct SuiteArgs {
    quick: bool,
    ivf: PathBuf,
    janus_etc: PathBuf,
    sfu_serve: PathBuf,
    /// LiveKit server's binary; `None`: Salon and Janus only.
    livekit: Option<PathBuf>,
    seconds: f64,
    sfu_cpu: String,
    netem_devs: Vec<String>,
    log_dir: PathBuf,
    only: Option<String>,
    /// `--soak [SECONDS]`: the soak run instead of the cases.
    soak: Option<f64>,
    /// `--soak-bucket SECONDS`: loss and stalls are counted per bucket.
    soak_bucket: f64,
}

struct Case {
    scenario: Scenario,
    n: usize,
    netem_loss_pct: f64,
}

fn parse(args: impl Iterator<Item = String>) -> Result<SuiteArgs> {
    let mut parsed = SuiteArgs {
        quick: false,
        ivf: PathBuf::new(),
        janus_etc: PathBuf::new(),
        sfu_serve: PathBuf::new(),
        livekit: None,
        seconds: 0.0,
        sfu_cpu: "1".into(),
        netem_devs: vec!["lo".into()],
        log_dir: std::env::temp_dir(),
        only: None,
        soak: None,
        soak_bucket: 60.0,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        // `--soak` takes an optional value: an hour without one.
        if arg == "--soak" {
            let seconds = args.peek().and_then(|v| v.parse::<f64>().ok());
            if seconds.is_some() {
                args.next();
            }
            parsed.soak = Some(seconds.unwrap_or(soak::DEFAULT_SECONDS));
            continue;
        }
        let mut next = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => parsed.quick = true,
            "--ivf" => parsed.ivf = next()?.into(),
            "--janus-etc" => parsed.janus_etc = next()?.into(),
            "--sfu-serve" => parsed.sfu_serve = next()?.into(),
            // An empty value (no binary found) is the same as none.
            "--livekit" => {
                parsed.livekit =
                    Some(next()?.into()).filter(|p: &PathBuf| !p.as_os_str().is_empty())
            }
            "--seconds" => parsed.seconds = next()?.parse()?,
            "--sfu-cpu" => parsed.sfu_cpu = next()?,
            "--netem-dev" => parsed.netem_devs = next()?.split(',').map(str::to_owned).collect(),
            "--log-dir" => parsed.log_dir = next()?.into(),
            "--only" => parsed.only = Some(next()?),
            "--soak-bucket" => parsed.soak_bucket = next()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    if parsed.seconds == 0.0 {
        parsed.seconds = if parsed.quick { 8.0 } else { 15.0 };
    }
    Ok(parsed)
}

fn cases(args: &SuiteArgs) -> Vec<Case> {
    let case = |scenario, n, netem_loss_pct| Case {
        scenario,
        n,
        netem_loss_pct,
    };
    let all = if args.quick {
        vec![
            case(Scenario::A, 10, 0.0),
            case(Scenario::A, 25, 0.0),
            case(Scenario::B, 10, 0.0),
        ]
    } else {
        let mut all: Vec<Case> = [10, 25, 50, 100]
            .into_iter()
            .map(|n| case(Scenario::A, n, 0.0))
            .collect();
        all.extend(
            [10, 25, 50, 100]
                .into_iter()
                .map(|n| case(Scenario::B, n, 0.0)),
        );
        all.push(case(Scenario::A, 25, 2.0));
        all.push(case(Scenario::B, 25, 2.0));
        all
    };
    match &args.only {
        // e.g. --only a:50,b:10,a:25:2
        Some(only) => only
            .split(',')
            .filter_map(|spec| {
                let mut parts = spec.split(':');
                let scenario = match parts.next()? {
                    "a" | "A" => Scenario::A,
                    _ => Scenario::B,
                };
                let n = parts.next()?.parse().ok()?;
                let loss = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0.0);
                Some(case(scenario, n, loss))
            })
            .collect(),
        None => all,
    }
}

/// A started SFU, killed on drop.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_salon(args: &SuiteArgs) -> Result<Server> {
    let mut child = Command::new("taskset")
        .args(["-c", &args.sfu_cpu])
        .arg(&args.sfu_serve)
        .args(["--listen", "127.0.0.1:7880", "--bind-ip", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting sfu-serve")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if !line.starts_with("LISTENING") {
        bail!("sfu-serve did not start: {line}");
    }
    Ok(Server { child })
}

fn start_janus(args: &SuiteArgs, label: &str) -> Result<Server> {
    let log = args.log_dir.join(format!("janus-{label}.log"));
    let _ = std::fs::remove_file(&log);
    let child = Command::new("taskset")
        .args(["-c", &args.sfu_cpu])
        .arg("janus")
        .arg("-C")
        .arg(args.janus_etc.join("janus.jcfg"))
        .arg("-F")
        .arg(&args.janus_etc)
        .arg("-L")
        .arg(&log)
        .arg("-N")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting janus (apt-get install -y --no-install-recommends janus)")?;
    let server = Server { child };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::janus::wait_ready(
        "ws://127.0.0.1:8188",
        Duration::from_secs(15),
    ))?;
    Ok(server)
}

/// LiveKit server's config: a single node (no Redis), signalling on
/// [`LIVEKIT_PORT`], media on 127.0.0.1 with one UDP port per peer
/// connection from its production default range (as Salon and Janus do:
/// neither multiplexes), warnings only in its log (Salon's `sfu-serve` logs
/// nothing). Everything else is LiveKit's default.
fn livekit_config() -> String {
    format!(
        "port: {LIVEKIT_PORT}\n\
         bind_addresses: [\"127.0.0.1\"]\n\
         keys:\n  {key}: {secret}\n\
         rtc:\n  node_ip: 127.0.0.1\n  use_external_ip: false\n  \
         enable_loopback_candidate: true\n  port_range_start: 50000\n  \
         port_range_end: 60000\n  tcp_port: {tcp}\n\
         logging:\n  level: warn\n",
        key = scenario::KEY,
        secret = scenario::SECRET,
        tcp = LIVEKIT_PORT + 1,
    )
}

fn start_livekit(args: &SuiteArgs, binary: &std::path::Path, label: &str) -> Result<Server> {
    let config = args.log_dir.join("livekit.yaml");
    std::fs::write(&config, livekit_config())?;
    let log = std::fs::File::create(args.log_dir.join(format!("livekit-{label}.log")))?;
    let child = Command::new("taskset")
        .args(["-c", &args.sfu_cpu])
        .arg(binary)
        .arg("--config")
        .arg(&config)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting livekit-server")?;
    let mut server = Server { child };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", LIVEKIT_PORT)).is_err() {
        if let Some(status) = server.child.try_wait()? {
            bail!("livekit-server exited ({status}): see livekit-{label}.log");
        }
        if std::time::Instant::now() > deadline {
            bail!("livekit-server did not listen on {LIVEKIT_PORT} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(server)
}

/// Injects `loss_pct` random loss on every UDP packet in the namespace (0
/// removes it): `tc netem` on the devices when the kernel has it, else an
/// nftables `numgen random` drop rule on input (silent to the sender, unlike
/// output, where a drop fails the `sendmsg`), which every packet in the
/// namespace crosses once, as it would cross `lo`'s netem once. Returns how
/// the loss was injected.
pub(crate) fn inject_loss(devs: &[String], loss_pct: f64) -> Result<&'static str> {
    let quiet = |command: &mut Command| {
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if loss_pct <= 0.0 {
        for dev in devs {
            quiet(Command::new("tc").args(["qdisc", "del", "dev", dev, "root"]));
        }
        quiet(Command::new("nft").args(["delete", "table", "inet", "salonbench"]));
        return Ok("none");
    }
    let netem = devs.iter().all(|dev| {
        quiet(
            Command::new("tc")
                .args(["qdisc", "replace", "dev", dev, "root", "netem", "loss"])
                .arg(format!("{loss_pct}%")),
        )
    });
    if netem {
        return Ok("tc netem");
    }
    let per_mille = (loss_pct * 10.0).round() as u32;
    let rule = format!(
        "add table inet salonbench\n\
         add chain inet salonbench in {{ type filter hook input priority 0; }}\n\
         add rule inet salonbench in meta l4proto udp numgen random mod 1000 < {per_mille} drop\n"
    );
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("neither tc netem nor nft works: apt-get install -y nftables")?;
    std::io::Write::write_all(&mut child.stdin.take().context("stdin")?, rule.as_bytes())?;
    if !child.wait()?.success() {
        bail!("nft could not add the loss rule");
    }
    Ok("nftables numgen (no netem in this kernel)")
}

/// Starts `sfu` fresh and runs one `loadgen one` child against it (with
/// `extra` arguments), returning the JSON after `prefix` on its stdout.
fn run_child(
    args: &SuiteArgs,
    case: &Case,
    sfu: &str,
    extra: &[String],
    prefix: &str,
) -> Result<String> {
    let label = format!(
        "{sfu}-{:?}-{}{}{}",
        case.scenario,
        case.n,
        if case.netem_loss_pct > 0.0 {
            "-loss"
        } else {
            ""
        },
        if extra.is_empty() { "" } else { "-soak" }
    );
    let server = match (sfu, &args.livekit) {
        ("salon", _) => start_salon(args)?,
        ("livekit", Some(binary)) => start_livekit(args, binary, &label)?,
        _ => start_janus(args, &label)?,
    };
    std::thread::sleep(Duration::from_millis(500));
    let child_log = std::fs::File::create(args.log_dir.join(format!("loadgen-{label}.log")))?;
    let output = Command::new(std::env::current_exe()?)
        .arg("one")
        .args(["--sfu", sfu])
        .args([
            "--scenario",
            match case.scenario {
                Scenario::A => "a",
                Scenario::B => "b",
            },
        ])
        .args(["--n", &case.n.to_string()])
        .args(["--pid", &server.child.id().to_string()])
        .arg("--ivf")
        .arg(&args.ivf)
        .args(["--seconds", &args.seconds.to_string()])
        .args(["--netem-loss", &case.netem_loss_pct.to_string()])
        .args(["--netem-dev", &args.netem_devs.join(",")])
        .args(extra)
        .stderr(child_log)
        .output()
        .context("running the measurement")?;
    drop(server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .with_context(|| {
            format!(
                "{label} failed (see {})",
                args.log_dir.join(format!("loadgen-{label}.log")).display()
            )
        })?;
    Ok(line.to_owned())
}

fn measure(args: &SuiteArgs, case: &Case, sfu: &str) -> Result<Outcome> {
    Ok(serde_json::from_str(&run_child(
        args,
        case,
        sfu,
        &[],
        "RESULT ",
    )?)?)
}

/// The soak run: each of [`soak::CASES`] on every SFU in turn, each for
/// `seconds`, then the per-bucket tables, the summary and one SVG each.
fn run_soak(args: &SuiteArgs, sfus: &[&str], seconds: f64) -> Result<()> {
    let extra = [
        "--soak".to_owned(),
        seconds.to_string(),
        "--bucket".to_owned(),
        args.soak_bucket.to_string(),
    ];
    let mut outcomes = Vec::new();
    for (scenario, n) in soak::CASES {
        let case = Case {
            scenario,
            n,
            netem_loss_pct: 0.0,
        };
        for &sfu in sfus {
            eprintln!("bench: soak {seconds} s, scenario {scenario:?} N={n} on {sfu}");
            match run_child(args, &case, sfu, &extra, "SOAK ") {
                Ok(line) => {
                    println!("SOAK {line}");
                    outcomes.push(serde_json::from_str(&line)?);
                }
                Err(error) => eprintln!("bench: {error:#}"),
            }
        }
    }
    print!("{}", soak::report(&outcomes, &args.log_dir)?);
    Ok(())
}

pub fn run(args: impl Iterator<Item = String>) -> Result<()> {
    let args = parse(args)?;
    let mut sfus = vec!["salon", "janus"];
    match &args.livekit {
        Some(binary) => {
            sfus.push("livekit");
            eprintln!("bench: LiveKit server is {}", binary.display());
        }
        None => eprintln!(
            "bench: no LiveKit server binary (scripts/setup-livekit-server.sh builds it): Salon and Janus only"
        ),
    }
    if let Some(seconds) = args.soak {
        return run_soak(&args, &sfus, seconds);
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    for case in cases(&args) {
        for &sfu in &sfus {
            eprintln!(
                "bench: scenario {:?} N={} loss={}% on {sfu}",
                case.scenario, case.n, case.netem_loss_pct
            );
            match measure(&args, &case, sfu) {
                Ok(outcome) => {
                    println!("RESULT {}", serde_json::to_string(&outcome)?);
                    outcomes.push(outcome);
                }
                Err(error) => eprintln!("bench: {error:#}"),
            }
        }
    }
    print!("{}", report(&outcomes));
    Ok(())
}

fn find<'a>(outcomes: &'a [Outcome], o: &Outcome, sfu: &str) -> Option<&'a Outcome> {
    outcomes.iter().find(|x| {
        x.sfu == sfu
            && x.scenario == o.scenario
            && x.n == o.n
            && x.netem_loss_pct == o.netem_loss_pct
    })
}

fn case_name(o: &Outcome) -> String {
    format!(
        "{:?} N={}{}",
        o.scenario,
        o.n,
        if o.netem_loss_pct > 0.0 {
            format!(" netem {}%", o.netem_loss_pct)
        } else {
            String::new()
        }
    )
}

/// The JSON after `prefix` on each line of a saved run's output.
pub fn saved<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    prefix: &str,
) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(serde_json::from_str)
        .collect::<Result<Vec<T>, _>>()?)
}

/// Prints the report again from a saved run's `RESULT` lines.
pub fn report_file(path: &std::path::Path) -> Result<()> {
    print!("{}", report(&saved::<Outcome>(path, "RESULT ")?));
    Ok(())
}

/// Salon's ratios to `peer` per case (Markdown), and the geometric mean of
/// the pps/CPU ratio over the cases without netem, with their count.
fn ratios(outcomes: &[Outcome], peer: &str) -> (String, f64, usize) {
    let mut out = format!(
        "\nRatios salon/{peer} (pps/CPU: higher is better; the others: lower is better)\n\n"
    );
    out.push_str(
        "| case | pps/CPU-s | CPU/sub | RSS/sub | p50 | p99 |\n|---|---|---|---|---|---|\n",
    );
    let mut logs = Vec::new();
    for salon in outcomes.iter().filter(|o| o.sfu == "salon") {
        let Some(other) = find(outcomes, salon, peer) else {
            continue;
        };
        let pps = salon.pps_per_cpu_s / other.pps_per_cpu_s;
        let rss =
            |o: &Outcome| o.rss_kib.saturating_sub(o.rss_idle_kib) as f64 / o.receivers as f64;
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            case_name(salon),
            pps,
            (salon.sfu_cpu_pct / salon.receivers as f64)
                / (other.sfu_cpu_pct / other.receivers as f64),
            rss(salon) / rss(other).max(1.0),
            salon.p50_ms / other.p50_ms,
            salon.p99_ms / other.p99_ms,
        ));
        if salon.netem_loss_pct == 0.0 && pps.is_finite() && pps > 0.0 {
            logs.push(pps.ln());
        }
    }
    let mean = if logs.is_empty() {
        f64::NAN
    } else {
        (logs.iter().sum::<f64>() / logs.len() as f64).exp()
    };
    (out, mean, logs.len())
}

/// The table (Markdown), the ratios, the largest N, and the last line.
pub fn report(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    out.push_str("\n| case | SFU | recv | fwd pps | SFU CPU % | pps/CPU-s | CPU %/sub | RSS KiB/sub | p50 ms | p99 ms | loss % (audio/video) | stalled | dup | PLI@pub | gen CPU % |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for o in outcomes {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.0} | {:.2} | {:.0} | {:.1} | {:.1} | {:.2} ({:.2}/{}) | {} | {} | {} | {:.0} |\n",
            case_name(o),
            o.sfu,
            o.receivers,
            o.forwarded_pps,
            o.sfu_cpu_pct,
            o.pps_per_cpu_s,
            o.sfu_cpu_pct / o.receivers as f64,
            o.rss_kib.saturating_sub(o.rss_idle_kib) as f64 / o.receivers as f64,
            o.p50_ms,
            o.p99_ms,
            o.loss_pct,
            o.audio_loss_pct,
            if o.video_loss_pct.is_nan() {
                "-".to_owned()
            } else {
                format!("{:.2}", o.video_loss_pct)
            },
            o.stalled_tracks,
            o.duplicates,
            o.keyframe_requests,
            o.generator_cpu_pct,
        ));
    }
    // Janus last: its ratio line must be the last line printed.
    let peers: Vec<&str> = ["livekit", "janus"]
        .into_iter()
        .filter(|peer| *peer == "janus" || outcomes.iter().any(|o| o.sfu == *peer))
        .collect();
    let mut means = Vec::new();
    for &peer in &peers {
        let (table, mean, cases) = ratios(outcomes, peer);
        out.push_str(&table);
        means.push((peer, mean, cases));
    }
    out.push_str("\nLargest N before loss > 1% or p99 > 50 ms (of the N tried; no netem)\n\n");
    for scenario in [Scenario::A, Scenario::B] {
        for sfu in std::iter::once("salon").chain(peers.iter().rev().copied()) {
            let mut tried: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.sfu == sfu && o.scenario == scenario && o.netem_loss_pct == 0.0)
                .collect();
            tried.sort_by_key(|o| o.n);
            // The largest N before the first one over the limits.
            let best = tried
                .iter()
                .take_while(|o| o.loss_pct <= 1.0 && o.p99_ms <= 50.0)
                .map(|o| o.n)
                .last();
            out.push_str(&format!(
                "- scenario {scenario:?}, {sfu}: {}\n",
                best.map_or("none".to_owned(), |n| n.to_string())
            ));
        }
    }
    let counts: Vec<String> = means
        .iter()
        .map(|(peer, _, cases)| format!("{cases} with {peer}"))
        .collect();
    out.push_str(&format!(
        "\n(geometric mean over the cases without netem: {})\n",
        counts.join(", ")
    ));
    for (peer, mean, _) in means {
        out.push_str(&format!("sfu pps-per-cpu ratio salon/{peer}: {mean:.2}\n"));
    }
    out
}
