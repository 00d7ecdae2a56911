//! The soak run (`loadgen suite --soak SECONDS`, issue 18): scenario B with
//! 20 listeners and scenario A with 25 subscribers, each on every SFU in turn
//! for the whole run. The SFU's RSS and CPU are sampled every
//! [`SAMPLE_S`] seconds; loss and stalled tracks (a received track with no
//! packet for [`STALL`] or more) are counted per bucket (a minute unless
//! `--soak-bucket` says otherwise). The suite prints, per SFU and scenario,
//! the per-bucket table, then one summary table, the targets, and writes one
//! SVG of RSS and CPU over time each.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::OneArgs;
use crate::measure::{Collector, Window, cpu_seconds, rss_kib};
use crate::media::{self, Stamp, Vp8Clip};
use crate::scenario::Scenario;

/// `--soak` without a value: an hour.
pub const DEFAULT_SECONDS: f64 = 3600.0;
/// The soak cases, in this order, each on every SFU.
pub const CASES: [(Scenario, usize); 2] = [(Scenario::B, 20), (Scenario::A, 25)];
/// RSS and CPU are sampled this often.
pub const SAMPLE_S: f64 = 10.0;
/// A track that received nothing for this long is stalled.
pub const STALL: Duration = Duration::from_secs(2);
/// How often the tracks are checked for a stall.
const STALL_CHECK: Duration = Duration::from_millis(250);
/// Source ids the ledger counts (A uses 0 and 1, B 0 to 9).
const MAX_SOURCES: usize = 16;
/// RSS growth is measured from this point of an hour-long run (minute 5), or
/// from 10 % of a shorter run, whichever is earlier.
const GROWTH_FROM_S: f64 = 300.0;
/// The RSS growth target, in %.
const GROWTH_TARGET_PCT: f64 = 5.0;

/// Packets a soak run sent and received, per bucket and source, and each
/// received track's last arrival; shared by the pumps and the readers
/// through the [`Window`].
pub struct Ledger {
    /// [`media::now_ns`] of the run's start; `u64::MAX` until it starts.
    start_ns: AtomicU64,
    length_ns: u64,
    bucket_ns: u64,
    buckets: usize,
    sent: Vec<AtomicU64>,
    received: Vec<AtomicU64>,
    tracks: Mutex<Vec<Arc<AtomicU64>>>,
}

impl Ledger {
    pub fn new(seconds: f64, bucket_s: f64) -> Arc<Self> {
        let buckets = (seconds / bucket_s).ceil().max(1.0) as usize;
        let counters = || {
            (0..buckets * MAX_SOURCES)
                .map(|_| AtomicU64::new(0))
                .collect()
        };
        Arc::new(Self {
            start_ns: AtomicU64::new(u64::MAX),
            length_ns: (seconds * 1e9) as u64,
            bucket_ns: (bucket_s * 1e9) as u64,
            buckets,
            sent: counters(),
            received: counters(),
            tracks: Mutex::default(),
        })
    }

    /// A received track's last-arrival cell, watched for stalls.
    pub fn register_track(&self) -> Arc<AtomicU64> {
        let last = Arc::new(AtomicU64::new(media::now_ns()));
        self.tracks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(last.clone());
        last
    }

    fn tracks(&self) -> Vec<Arc<AtomicU64>> {
        self.tracks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts the run now: every track counts as having just received.
    fn start(&self) {
        let now = media::now_ns();
        for last in self.tracks() {
            last.store(now, Ordering::Relaxed);
        }
        self.start_ns.store(now, Ordering::Release);
    }

    /// The bucket of a packet sent at `ns`, if inside the run.
    fn bucket_of(&self, ns: u64) -> Option<usize> {
        let since = ns.checked_sub(self.start_ns.load(Ordering::Acquire))?;
        (since < self.length_ns).then(|| ((since / self.bucket_ns) as usize).min(self.buckets - 1))
    }

    fn slot(&self, bucket: usize, source: u16) -> Option<usize> {
        (usize::from(source) < MAX_SOURCES).then(|| bucket * MAX_SOURCES + usize::from(source))
    }

    /// A publisher sent a packet of `source` at `sent_ns`.
    pub fn sent(&self, source: u16, sent_ns: u64) {
        if let Some(slot) = self.bucket_of(sent_ns).and_then(|b| self.slot(b, source)) {
            self.sent[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A track (`last`, its last arrival) received `stamp` at `now`.
    pub fn received(&self, last: &AtomicU64, stamp: &Stamp, now: u64, seen: &mut Dedupe) {
        last.store(now, Ordering::Relaxed);
        if let Some(slot) = self
            .bucket_of(stamp.sent_ns)
            .and_then(|b| self.slot(b, stamp.source))
            && seen.first(stamp.source, stamp.index)
        {
            self.received[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count(counters: &[AtomicU64], bucket: usize, source: u16) -> u64 {
        counters[bucket * MAX_SOURCES + usize::from(source)].load(Ordering::Relaxed)
    }
}

/// One track's duplicate filter over the recent packets of each source
/// (bounded, unlike a set of everything over an hour).
#[derive(Default)]
pub struct Dedupe {
    by_source: HashMap<u16, (u32, HashSet<u32>)>,
}

impl Dedupe {
    /// Packets further than this behind the newest are forgotten.
    const KEEP: u32 = 4096;

    /// Whether `index` of `source` is seen for the first time.
    pub fn first(&mut self, source: u16, index: u32) -> bool {
        let (newest, seen) = self.by_source.entry(source).or_default();
        *newest = (*newest).max(index);
        if seen.len() > 2 * Self::KEEP as usize {
            let floor = newest.saturating_sub(Self::KEEP);
            seen.retain(|&i| i >= floor);
        }
        seen.insert(index)
    }
}

/// The SFU's memory and CPU at one point of the run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    pub rss_kib: u64,
    /// CPU since the previous sample, in % of one core.
    pub cpu_pct: f64,
}

/// Loss and stalls of one bucket.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    /// Seconds since the run started, at the bucket's end.
    pub until_s: f64,
    pub expected: u64,
    pub received: u64,
    /// Received tracks that got nothing for [`STALL`] or more in the bucket.
    pub stalled_tracks: usize,
}

impl Bucket {
    fn loss_pct(&self) -> f64 {
        loss_pct(self.expected, self.received)
    }
}

fn loss_pct(expected: u64, received: u64) -> f64 {
    if expected == 0 {
        100.0
    } else {
        100.0 * expected.saturating_sub(received) as f64 / expected as f64
    }
}

/// One SFU's soak run of one scenario.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SoakOutcome {
    pub sfu: String,
    pub scenario: Scenario,
    pub n: usize,
    pub receivers: usize,
    pub tracks: usize,
    pub seconds: f64,
    pub bucket_s: f64,
    pub setup_s: f64,
    pub rss_idle_kib: u64,
    pub generator_cpu_pct: f64,
    pub samples: Vec<Sample>,
    pub buckets: Vec<Bucket>,
}

impl SoakOutcome {
    fn name(&self) -> String {
        format!("{} {:?} N={}", self.sfu, self.scenario, self.n)
    }
    /// Where RSS growth is measured from.
    fn growth_from_s(&self) -> f64 {
        GROWTH_FROM_S.min(self.seconds / 10.0)
    }
    fn rss_at(&self, t_s: f64) -> Option<u64> {
        self.samples
            .iter()
            .find(|s| s.t_s + 0.5 >= t_s)
            .map(|s| s.rss_kib)
    }
    fn growth_pct(&self) -> f64 {
        match (
            self.rss_at(self.growth_from_s()),
            self.samples.last().map(|s| s.rss_kib),
        ) {
            (Some(from), Some(end)) if from > 0 => 100.0 * (end as f64 - from as f64) / from as f64,
            _ => f64::NAN,
        }
    }
    fn expected(&self) -> u64 {
        self.buckets.iter().map(|b| b.expected).sum()
    }
    fn received(&self) -> u64 {
        self.buckets.iter().map(|b| b.received).sum()
    }
    fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received())
    }
    /// Stalled tracks summed over the buckets (track-minutes with 60 s buckets).
    fn stalled(&self) -> usize {
        self.buckets.iter().map(|b| b.stalled_tracks).sum()
    }
    fn cpu_mean(&self) -> f64 {
        self.samples.iter().map(|s| s.cpu_pct).sum::<f64>() / self.samples.len().max(1) as f64
    }
}

/// Reads the SFU's RSS and its CPU since the previous sample.
struct Sampler {
    pid: u32,
    last_t: f64,
    last_cpu: f64,
    samples: Vec<Sample>,
}

impl Sampler {
    fn take(&mut self, t: f64) -> Result<()> {
        let cpu = cpu_seconds(self.pid)?;
        self.samples.push(Sample {
            t_s: t,
            rss_kib: rss_kib(self.pid)?,
            cpu_pct: 100.0 * (cpu - self.last_cpu) / (t - self.last_t),
        });
        (self.last_t, self.last_cpu) = (t, cpu);
        Ok(())
    }
}

/// Runs one soak case against the SFU running as `args.pid`.
pub async fn one(args: OneArgs) -> Result<SoakOutcome> {
    media::epoch();
    let clip = Arc::new(Vp8Clip::from_ivf(&args.ivf)?);
    let rss_idle_kib = rss_kib(args.pid)?;
    let ledger = Ledger::new(args.soak_s, args.bucket_s);
    let window = Window::with_ledger(ledger.clone());
    let (collector, stop) = Collector::new(window.clone());
    let started = Instant::now();
    let setup = crate::connect(&args, &clip, &window, &collector).await?;
    let setup_s = started.elapsed().as_secs_f64();
    // Let every subscriber settle (first keyframe, NACK windows) first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let me = std::process::id();
    let generator_start = cpu_seconds(me)?;
    let tracks = ledger.tracks();
    ledger.start();
    let t0 = Instant::now();
    let mut stalled = vec![HashSet::new(); ledger.buckets];
    let mut sampler = Sampler {
        pid: args.pid,
        last_t: 0.0,
        last_cpu: cpu_seconds(args.pid)?,
        samples: Vec::new(),
    };
    let mut tick = tokio::time::interval(STALL_CHECK);
    let mut next_sample = SAMPLE_S;
    loop {
        tick.tick().await;
        let t = t0.elapsed().as_secs_f64();
        if t >= args.soak_s {
            // The last interval, unless one just ended.
            if t - sampler.last_t >= 1.0 {
                sampler.take(t)?;
            }
            break;
        }
        let now = media::now_ns();
        if let Some(bucket) = ledger.bucket_of(now) {
            for (i, last) in tracks.iter().enumerate() {
                if now.saturating_sub(last.load(Ordering::Relaxed)) >= STALL.as_nanos() as u64 {
                    stalled[bucket].insert(i);
                }
            }
        }
        if t >= next_sample {
            sampler.take(t)?;
            next_sample += SAMPLE_S;
        }
    }
    let generator_cpu_pct =
        100.0 * (cpu_seconds(me)? - generator_start) / t0.elapsed().as_secs_f64();
    // Late and retransmitted packets of the last bucket still count.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop.send(true);
    let buckets = (0..ledger.buckets)
        .map(|b| Bucket {
            until_s: ((b + 1) as f64 * args.bucket_s).min(args.soak_s),
            expected: setup
                .fan_out
                .iter()
                .map(|(source, _, _, receivers)| {
                    Ledger::count(&ledger.sent, b, *source) * receivers
                })
                .sum(),
            received: (0..MAX_SOURCES as u16)
                .map(|source| Ledger::count(&ledger.received, b, source))
                .sum(),
            stalled_tracks: stalled[b].len(),
        })
        .collect();
    Ok(SoakOutcome {
        sfu: args.sfu.clone(),
        scenario: args.scenario,
        n: args.n,
        receivers: setup.receivers,
        tracks: tracks.len(),
        seconds: args.soak_s,
        bucket_s: args.bucket_s,
        setup_s,
        rss_idle_kib,
        generator_cpu_pct,
        samples: sampler.samples,
        buckets,
    })
}

/// The per-bucket tables, the summary, the targets, and one SVG per outcome
/// written to `dir` (their paths are printed).
pub fn report(outcomes: &[SoakOutcome], dir: &Path) -> Result<String> {
    let mut out = String::new();
    for o in outcomes {
        let _ = writeln!(
            out,
            "\n{}: {} receivers, {} tracks, {:.0} s, buckets of {:.0} s (setup {:.1} s)\n",
            o.name(),
            o.receivers,
            o.tracks,
            o.seconds,
            o.bucket_s,
            o.setup_s
        );
        out.push_str(
            "| until s | expected | received | loss % | stalled tracks |\n|---|---|---|---|---|\n",
        );
        for b in &o.buckets {
            let _ = writeln!(
                out,
                "| {:.0} | {} | {} | {:.3} | {} |",
                b.until_s,
                b.expected,
                b.received,
                b.loss_pct(),
                b.stalled_tracks
            );
        }
    }
    let Some(first) = outcomes.first() else {
        out.push_str("\nsoak: no case completed\n");
        return Ok(out);
    };
    let _ = writeln!(
        out,
        "\nSoak summary ({:.0} s per SFU and case; RSS and CPU every {SAMPLE_S:.0} s; RSS growth from {:.0} s{} to the end)\n",
        first.seconds,
        first.growth_from_s(),
        if first.growth_from_s() < GROWTH_FROM_S {
            " (10 % of this short run; minute 5 in an hour-long one)"
        } else {
            " (minute 5)"
        },
    );
    out.push_str("| SFU | case | RSS idle KiB | RSS from KiB | RSS end KiB | growth % | CPU mean % | CPU max % | lost / expected | loss % | stalled track-buckets | gen CPU % |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for o in outcomes {
        let _ = writeln!(
            out,
            "| {} | {:?} N={} | {} | {} | {} | {:.2} | {:.1} | {:.1} | {} / {} | {:.3} | {} | {:.0} |",
            o.sfu,
            o.scenario,
            o.n,
            o.rss_idle_kib,
            o.rss_at(o.growth_from_s()).unwrap_or(0),
            o.samples.last().map_or(0, |s| s.rss_kib),
            o.growth_pct(),
            o.cpu_mean(),
            o.samples.iter().map(|s| s.cpu_pct).fold(0.0, f64::max),
            o.lost(),
            o.expected(),
            loss_pct(o.expected(), o.received()),
            o.stalled(),
            o.generator_cpu_pct,
        );
    }
    out.push('\n');
    for o in outcomes {
        let path = dir.join(format!("soak-{}-{:?}{}.svg", o.sfu, o.scenario, o.n));
        std::fs::write(&path, svg(o))?;
        let _ = writeln!(out, "plot {}: {}", o.name(), path.display());
    }
    out.push_str(&format!(
        "\nTargets: no loss and no stalled track where Janus has none; RSS growth < {GROWTH_TARGET_PCT} %\n"
    ));
    for o in outcomes {
        let janus = outcomes
            .iter()
            .find(|j| j.sfu == "janus" && j.scenario == o.scenario && j.n == o.n);
        let clean = |x: &SoakOutcome| x.lost() == 0 && x.stalled() == 0;
        let media = match janus {
            _ if clean(o) => "met".to_owned(),
            Some(j) if !clean(j) => format!(
                "not clean, nor is Janus's ({} lost, {} stalled)",
                j.lost(),
                j.stalled()
            ),
            _ => format!("MISSED ({} lost, {} stalled)", o.lost(), o.stalled()),
        };
        let growth = o.growth_pct();
        let _ = writeln!(
            out,
            "soak {}: loss/stalls {media}; RSS growth {growth:.2} % {}",
            o.name(),
            if growth < GROWTH_TARGET_PCT {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    Ok(out)
}

/// Prints the soak report again from a saved run's `SOAK` lines, writing
/// the SVGs to `dir`.
pub fn report_file(path: &Path, dir: &Path) -> Result<()> {
    let outcomes = crate::suite::saved::<SoakOutcome>(path, "SOAK ")?;
    print!("{}", report(&outcomes, dir)?);
    Ok(())
}

/// A round step for about five ticks up to `max`.
fn tick_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The ticks 0, `step`, 2 `step`, ... up to `max`, rounded for their labels.
fn ticks(step: f64, max: f64) -> impl Iterator<Item = f64> {
    (0..)
        .map(move |i| (i as f64 * step * 1000.0).round() / 1000.0)
        .take_while(move |v| *v <= max + 1e-9)
}

/// A hand-written SVG of RSS (MiB, left axis) and CPU (% of one core, right
/// axis) over the run.
pub fn svg(o: &SoakOutcome) -> String {
    const W: f64 = 760.0;
    const H: f64 = 380.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 70.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 50.0;
    let (plot_w, plot_h) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let minutes = o.seconds >= 600.0;
    let x_unit = if minutes { 60.0 } else { 1.0 };
    let x_max = o.seconds / x_unit;
    let rss_mib = |s: &Sample| s.rss_kib as f64 / 1024.0;
    let axis_max = |max: f64| {
        let step = tick_step(max * 1.1);
        (step, (max * 1.1 / step).ceil().max(1.0) * step)
    };
    let (x_step, x_max) = (tick_step(x_max), x_max);
    let (rss_step, rss_max) = axis_max(o.samples.iter().map(rss_mib).fold(1.0, f64::max));
    let (cpu_step, cpu_max) = axis_max(o.samples.iter().map(|s| s.cpu_pct).fold(10.0, f64::max));
    let x = |t_s: f64| LEFT + plot_w * (t_s / x_unit) / x_max;
    let y = |v: f64, max: f64| TOP + plot_h * (1.0 - v / max);
    let line = |value: &dyn Fn(&Sample) -> f64, max: f64| {
        o.samples
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.t_s), y(value(s), max)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}: SFU RSS and CPU over {:.0} s (every {SAMPLE_S:.0} s)</text>\n\
         <rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"black\"/>\n",
        W / 2.0,
        o.name(),
        o.seconds
    );
    for tick in ticks(x_step, x_max) {
        let px = LEFT + plot_w * tick / x_max;
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"black\"/><text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{tick}</text>",
            TOP + plot_h,
            TOP + plot_h + 5.0,
            TOP + plot_h + 18.0
        );
    }
    for (step, max, at, anchor) in [
        (rss_step, rss_max, LEFT - 8.0, "end"),
        (cpu_step, cpu_max, LEFT + plot_w + 8.0, "start"),
    ] {
        for value in ticks(step, max) {
            let py = y(value, max);
            let _ = writeln!(
                svg,
                "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{}\" y2=\"{py:.1}\" stroke=\"#ddd\"/><text x=\"{at}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{value}</text>",
                LEFT + plot_w,
                py + 4.0
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time ({})</text>\n\
         <text transform=\"translate(18 {mid}) rotate(-90)\" text-anchor=\"middle\" fill=\"#1f5fbf\">RSS (MiB)</text>\n\
         <text transform=\"translate({} {mid}) rotate(90)\" text-anchor=\"middle\" fill=\"#c0392b\">SFU CPU (% of one core)</text>\n\
         <polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"2\" points=\"{}\"/>\n\
         <polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" points=\"{}\"/>\n\
         <text x=\"{}\" y=\"{}\" fill=\"#1f5fbf\">— RSS</text><text x=\"{}\" y=\"{}\" fill=\"#c0392b\">— CPU</text>\n\
         </svg>\n",
        LEFT + plot_w / 2.0,
        H - 10.0,
        if minutes { "min" } else { "s" },
        W - 18.0,
        line(&rss_mib, rss_max),
        line(&|s: &Sample| s.cpu_pct, cpu_max),
        LEFT + 10.0,
        TOP + 16.0,
        LEFT + 80.0,
        TOP + 16.0,
        mid = TOP + plot_h / 2.0,
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_inside_the_run_only() {
        let ledger = Ledger::new(2.5, 1.0);
        assert_eq!(ledger.buckets, 3);
        ledger.start();
        let start = ledger.start_ns.load(Ordering::Relaxed);
        ledger.sent(1, start + 500_000_000);
        ledger.sent(1, start + 2_400_000_000);
        ledger.sent(1, start + 2_600_000_000);
        ledger.sent(40, start);
        assert_eq!(Ledger::count(&ledger.sent, 0, 1), 1);
        assert_eq!(Ledger::count(&ledger.sent, 2, 1), 1);
        let last = ledger.register_track();
        let mut seen = Dedupe::default();
        let stamp = Stamp {
            source: 1,
            index: 7,
            sent_ns: start + 10,
        };
        ledger.received(&last, &stamp, start + 20, &mut seen);
        ledger.received(&last, &stamp, start + 30, &mut seen);
        assert_eq!(Ledger::count(&ledger.received, 0, 1), 1);
        assert_eq!(last.load(Ordering::Relaxed), start + 30);
    }

    #[test]
    fn growth_and_plot() {
        let o = SoakOutcome {
            sfu: "salon".into(),
            scenario: Scenario::A,
            n: 25,
            receivers: 25,
            tracks: 50,
            seconds: 120.0,
            bucket_s: 60.0,
            setup_s: 1.0,
            rss_idle_kib: 4000,
            generator_cpu_pct: 5.0,
            samples: (1..=12)
                .map(|i| Sample {
                    t_s: i as f64 * 10.0,
                    rss_kib: if i < 2 { 30_000 } else { 31_000 },
                    cpu_pct: 7.0,
                })
                .collect(),
            buckets: vec![],
        };
        // From 10 % of 120 s (12 s: the 20 s sample) to the end: 0 %.
        assert_eq!(o.growth_pct(), 0.0);
        let plot = svg(&o);
        assert_eq!(plot.matches("<polyline").count(), 2);
        assert!(plot.contains("RSS (MiB)") && plot.contains("time (s)"));
        assert_eq!(tick_step(120.0), 50.0);
        let labels: Vec<f64> = ticks(0.1, 0.35).collect();
        assert_eq!(labels, [0.0, 0.1, 0.2, 0.3]);
    }
}
