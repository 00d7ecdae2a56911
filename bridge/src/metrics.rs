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
    pub calls_started: AtomicU64,
    pub calls_ended: AtomicU64,
    commands: Mutex<BTreeMap<&'static str, u64>>,
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
        let _ = writeln!(
            out,
            "# HELP salon_commands_total Commands received, by command."
        );
        let _ = writeln!(out, "# TYPE salon_commands_total counter");
        for (name, value) in self.commands.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "salon_commands_total{{command=\"{name}\"}} {value}");
        }
        out
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
    }
}
