//! Which calls still owe their minutes, and how far posting them got.
//!
//! Where it sits: ending a call sets `minutes_owed` in the same write
//! (`calls.rs`); the minutes worker (`minutes.rs` at the crate root) asks
//! here which calls owe minutes, records each upload and post as it goes,
//! and so resumes after a crash without uploading or posting twice.

use ruma::OwnedEventId;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, encode, read};
use crate::calls::Call;

/// How far the posting of a call's minutes got, so a restart resumes it
/// instead of uploading or posting twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinutesProgress {
    /// `mxc://` URIs (or, in encrypted rooms, the `file` objects) of the uploads.
    pub webvtt: Option<serde_json::Value>,
    pub markdown: Option<serde_json::Value>,
    /// The `m.file` events.
    pub webvtt_event: Option<OwnedEventId>,
    pub markdown_event: Option<OwnedEventId>,
}

impl Store {
    /// Ended calls whose minutes are still owed, oldest first.
    pub fn calls_owing_minutes(&self) -> Result<Vec<Call>, StoreError> {
        let mut out = self.calls_where(|c| c.minutes_owed)?;
        out.sort_by_key(|c| c.ended_at);
        Ok(out)
    }

    pub fn minutes_progress(&self, call_id: &str) -> Result<MinutesProgress, StoreError> {
        Ok(read(&self.minutes, "minutes_progress", call_id.as_bytes())?.unwrap_or_default())
    }

    pub async fn set_minutes_progress(
        &self,
        call_id: &str,
        progress: &MinutesProgress,
    ) -> Result<(), StoreError> {
        self.minutes.insert(call_id.as_bytes(), encode(progress))?;
        self.flush().await
    }
}
