//! The transcript of each call: one record per final utterance, in order.
//!
//! Where it sits: `transcripts.rs` appends a segment here before anything
//! else is done with it (the caption, the notice), then records the notice's
//! event once posted; the minutes (`minutes.rs`) read a call's segments back
//! to build its meeting and transcript files.

use ruma::OwnedEventId;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode, encode};

/// One transcribed utterance of a call, and the room event that shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub segment: salon_minutes::TranscriptSegment,
    /// The transcript notice, once posted.
    pub event_id: Option<OwnedEventId>,
}

impl Store {
    /// Appends a transcript segment to its call; flushes. Returns its key,
    /// which orders the call's segments and names the notice's transaction.
    pub async fn append_segment(
        &self,
        segment: &salon_minutes::TranscriptSegment,
    ) -> Result<u64, StoreError> {
        let seq = self.db.generate_id()?;
        let record = SegmentRecord {
            segment: segment.clone(),
            event_id: None,
        };
        self.segments
            .insert(segment_key(&segment.call_id, seq), encode(&record))?;
        self.flush().await?;
        Ok(seq)
    }

    /// Records the notice that shows a segment.
    pub async fn segment_posted(
        &self,
        call_id: &str,
        seq: u64,
        event_id: OwnedEventId,
    ) -> Result<(), StoreError> {
        let key = segment_key(call_id, seq);
        if let Some(value) = self.segments.get(&key)? {
            let mut record: SegmentRecord = decode("segments", &value)?;
            record.event_id = Some(event_id);
            self.segments.insert(key, encode(&record))?;
            self.flush().await?;
        }
        Ok(())
    }

    /// A call's transcript, in the order it was written.
    pub fn segments(&self, call_id: &str) -> Result<Vec<SegmentRecord>, StoreError> {
        let mut prefix = call_id.as_bytes().to_vec();
        prefix.push(0);
        self.segments
            .scan_prefix(prefix)
            .map(|entry| {
                let (_, value) = entry?;
                decode("segments", &value)
            })
            .collect()
    }
}

/// `call_id`, a zero byte, then the sequence number big-endian: a prefix scan
/// gives a call's segments in order.
fn segment_key(call_id: &str, seq: u64) -> Vec<u8> {
    let mut key = call_id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}
