//! Wall-clock time as the bridge stores it: milliseconds since the Unix
//! epoch. Every module that stamps a call, an event or an utterance reads the
//! time here, so nothing needs the app's wiring for it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
