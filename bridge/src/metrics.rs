//! Counters for `/metrics`, in Prometheus' text format.
//!
//! A handful of atomics is all the bridge needs; they are rendered by hand so
//! that no metrics framework sits on the request path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The bridge's counters and gauges.
#[derive(Default)]
pub struct Metrics {
    pub transactions: AtomicU64,
    pub transactions_replayed: AtomicU64,
    pub transactions_rejected: AtomicU64,
    pub events_received: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub events_handled: AtomicU64,
    pub errors: AtomicU64,
    pub live_calls: AtomicU64,
    /// Calls whose minutes are queued or being written.
    pub minutes_owed: AtomicU64,
    pub calls_started: AtomicU64,
    pub calls_ended: AtomicU64,
    /// Final transcript segments posted to rooms.
    pub transcript_segments: AtomicU64,
    /// Partial captions sent into calls.
    pub transcript_partials: AtomicU64,
    /// Queued partials dropped because the engine fell behind.
    pub transcription_dropped_partials: AtomicU64,
    /// Queued finals dropped because the queue was full of finals.
    pub transcription_dropped_finals: AtomicU64,
    /// Utterances waiting for an engine worker now.
    pub transcription_queue: AtomicU64,
    /// Speech sent to the engine, and the engine's time on it (ms).
    pub transcription_audio_ms: AtomicU64,
    pub transcription_engine_ms: AtomicU64,
    pub transcription_errors: AtomicU64,
    /// From the end of an utterance to its transcript event in the room.
    pub caption_latency: Histogram,
    pub minutes_posted: AtomicU64,
    pub minutes_failed: AtomicU64,
    /// End-to-end encrypted audio frames decrypted for transcription, and
    /// those that could not be (no key, wrong key, malformed), skipped.
    pub e2ee_frames_decrypted: AtomicU64,
    pub e2ee_frames_undecryptable: AtomicU64,
    commands: Mutex<BTreeMap<&'static str, u64>>,
}

/// A Prometheus histogram with fixed buckets, in seconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

const LATENCY_BOUNDS: &[f64] = &[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0];

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            bounds: LATENCY_BOUNDS,
            counts: LATENCY_BOUNDS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, value: std::time::Duration) {
        let secs = value.as_secs_f64();
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {total}");
    }
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// Counts one command by name.
    pub fn command(&self, name: &'static str) {
        let mut commands = self.commands.lock().expect("metrics lock");
        *commands.entry(name).or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            "salon_transactions_total",
            "Appservice transactions accepted.",
            "counter",
            get(&self.transactions),
        );
        counter(
            "salon_transactions_replayed_total",
            "Transactions seen before (answered without work).",
            "counter",
            get(&self.transactions_replayed),
        );
        counter(
            "salon_transactions_rejected_total",
            "Transactions refused (auth or malformed).",
            "counter",
            get(&self.transactions_rejected),
        );
        counter(
            "salon_events_received_total",
            "Events received from the homeserver.",
            "counter",
            get(&self.events_received),
        );
        counter(
            "salon_events_duplicate_total",
            "Events skipped because they were handled or queued already.",
            "counter",
            get(&self.events_duplicate),
        );
        counter(
            "salon_events_handled_total",
            "Events handled.",
            "counter",
            get(&self.events_handled),
        );
        counter(
            "salon_errors_total",
            "Errors while handling events or calling the homeserver.",
            "counter",
            get(&self.errors),
        );
        counter(
            "salon_calls_started_total",
            "Calls started.",
            "counter",
            get(&self.calls_started),
        );
        counter(
            "salon_calls_ended_total",
            "Calls ended.",
            "counter",
            get(&self.calls_ended),
        );
        counter(
            "salon_live_calls",
            "Calls live now.",
            "gauge",
            get(&self.live_calls),
        );
        counter(
            "salon_minutes_owed",
            "Calls whose minutes are queued or being written.",
            "gauge",
            get(&self.minutes_owed),
        );
        for (name, help, kind, value) in [
            (
                "salon_transcript_segments_total",
                "Transcript segments posted to rooms.",
                "counter",
                &self.transcript_segments,
            ),
            (
                "salon_transcript_partials_total",
                "Partial captions sent into calls.",
                "counter",
                &self.transcript_partials,
            ),
            (
                "salon_transcription_dropped_partials_total",
                "Partial captions dropped because the speech engine fell behind.",
                "counter",
                &self.transcription_dropped_partials,
            ),
            (
                "salon_transcription_dropped_finals_total",
                "Utterances dropped because the engine's queue was full.",
                "counter",
                &self.transcription_dropped_finals,
            ),
            (
                "salon_transcription_queue",
                "Utterances waiting for the speech engine.",
                "gauge",
                &self.transcription_queue,
            ),
            (
                "salon_transcription_audio_ms_total",
                "Milliseconds of speech given to the engine.",
                "counter",
                &self.transcription_audio_ms,
            ),
            (
                "salon_transcription_engine_ms_total",
                "Milliseconds the engine spent transcribing.",
                "counter",
                &self.transcription_engine_ms,
            ),
            (
                "salon_transcription_errors_total",
                "Utterances the engine failed on.",
                "counter",
                &self.transcription_errors,
            ),
            (
                "salon_minutes_posted_total",
                "Minutes posted to rooms.",
                "counter",
                &self.minutes_posted,
            ),
            (
                "salon_minutes_failed_total",
                "Minutes that could not be posted after retries.",
                "counter",
                &self.minutes_failed,
            ),
            (
                "salon_e2ee_frames_decrypted_total",
                "End-to-end encrypted audio frames decrypted for transcription.",
                "counter",
                &self.e2ee_frames_decrypted,
            ),
            (
                "salon_e2ee_frames_undecryptable_total",
                "End-to-end encrypted audio frames that could not be decrypted and were skipped.",
                "counter",
                &self.e2ee_frames_undecryptable,
            ),
        ] {
            counter(name, help, kind, get(value));
        }
        self.caption_latency.render(
            &mut out,
            "salon_caption_latency_seconds",
            "From the end of an utterance to its transcript event in the room.",
        );
        let _ = writeln!(
            out,
            "# HELP salon_commands_total Commands received, by command."
        );
        let _ = writeln!(out, "# TYPE salon_commands_total counter");
        for (name, value) in self.commands.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "salon_commands_total{{command=\"{name}\"}} {value}");
        }
        render_process(&mut out);
        out
    }
}

/// What a soak watches for leaks: the process's resident memory and open
/// file descriptors (Linux `/proc`; absent elsewhere) and the tokio tasks
/// alive on the runtime that serves `/metrics`.
fn render_process(out: &mut String) {
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    };
    // statm: sizes in pages; the second is resident
    if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
    {
        gauge(
            "salon_process_resident_bytes",
            "Resident memory of the bridge process.",
            pages * 4096,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            "salon_process_open_fds",
            "Open file descriptors of the bridge process.",
            fds.count() as u64,
        );
    }
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        gauge(
            "salon_tokio_alive_tasks",
            "Tasks alive on the bridge's tokio runtime.",
            handle.metrics().num_alive_tasks() as u64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.transactions);
        Metrics::set(&m.live_calls, 2);
        m.command("start");
        m.command("start");
        let text = m.render();
        assert!(text.contains("salon_transactions_total 1\n"));
        assert!(text.contains("# TYPE salon_live_calls gauge\nsalon_live_calls 2\n"));
        assert!(text.contains("salon_commands_total{command=\"start\"} 2\n"));
        // outside a runtime there are no tasks to count; on Linux the
        // process figures are there
        assert!(!text.contains("salon_tokio_alive_tasks"));
        if cfg!(target_os = "linux") {
            assert!(text.contains("# TYPE salon_process_resident_bytes gauge\n"));
            assert!(text.contains("salon_process_open_fds "));
        }
        m.caption_latency
            .observe(std::time::Duration::from_millis(1200));
        let text = m.render();
        assert!(text.contains("salon_caption_latency_seconds_bucket{le=\"1\"} 0\n"));
        assert!(text.contains("salon_caption_latency_seconds_bucket{le=\"1.5\"} 1\n"));
        assert!(text.contains("salon_caption_latency_seconds_count 1\n"));
    }
}
