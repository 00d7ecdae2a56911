//! The calls that owe minutes: ending a call (or a restart finding minutes
//! owed in the store) queues the call once here, and `minutes` takes each
//! one onto a task of its own. `salon_minutes_owed` counts them. A separate module so the room worker can hold
//! the queue without importing the minutes' own code.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Asks for a call's minutes: the worker posts them once the call's
/// transcript is complete.
#[derive(Clone)]
pub struct MinutesQueue {
    tx: mpsc::UnboundedSender<String>,
    queued: Arc<Mutex<HashSet<String>>>,
    metrics: Arc<Metrics>,
}

impl MinutesQueue {
    pub fn new(metrics: Arc<Metrics>) -> (Self, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            MinutesQueue {
                tx,
                queued: Arc::new(Mutex::new(HashSet::new())),
                metrics,
            },
            rx,
        )
    }

    /// Queues a call once (a second request while it waits is a no-op).
    pub fn owe(&self, call_id: &str) {
        let mut queued = self.queued.lock().expect("minutes queue lock");
        if queued.insert(call_id.to_owned()) {
            Metrics::set(&self.metrics.minutes_owed, queued.len() as u64);
            let _ = self.tx.send(call_id.to_owned());
        }
    }

    pub(crate) fn done(&self, call_id: &str) {
        let mut queued = self.queued.lock().expect("minutes queue lock");
        queued.remove(call_id);
        Metrics::set(&self.metrics.minutes_owed, queued.len() as u64);
    }
}
