//! Calls and per-room settings.
//!
//! Where it sits: `room.rs` saves a call before it announces it and ends it
//! here before it tells the room (`calls.rs` decides, this file keeps), so a
//! crash never resurrects or duplicates a call; the join API, transcription
//! and minutes read calls from here. A room's settings name its current call
//! and what `!visio settings` chose.

use ruma::RoomId;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::{Store, StoreError, decode, encode, read, tx_error};
use crate::calls::Call;

/// Per-room settings that outlive calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// The room's current (or last) call.
    pub current_call: Option<String>,
    /// `!visio settings transcription=auto`: every call here is transcribed
    /// from its start.
    #[serde(default)]
    pub transcription_auto: bool,
    /// `!visio settings language=fr`: calls here are transcribed in this
    /// language; `None` detects it per utterance (or uses the server's).
    #[serde(default)]
    pub language: Option<String>,
    /// The MatrixRTC call memberships of the room (Element Call's), by slot.
    #[serde(default)]
    pub rtc_members: crate::rtc::RtcMembers,
}

impl Store {
    /// Saves a call and makes it its room's current call; flushes.
    pub async fn save_call(&self, call: &Call) -> Result<(), StoreError> {
        let mut settings = self.room_settings(&call.room_id)?;
        settings.current_call = Some(call.id.clone());
        let call_value = encode(call);
        let settings_value = encode(&settings);
        (&self.calls, &self.rooms)
            .transaction(|(calls, rooms)| {
                calls.insert(call.id.as_bytes(), call_value.as_slice())?;
                rooms.insert(call.room_id.as_bytes(), settings_value.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)?;
        self.flush().await
    }

    /// Saves a call without touching which call is its room's current one
    /// (for an older call, e.g. when its minutes are posted); flushes.
    pub async fn save_call_only(&self, call: &Call) -> Result<(), StoreError> {
        self.calls.insert(call.id.as_bytes(), encode(call))?;
        self.flush().await
    }

    pub fn call(&self, id: &str) -> Result<Option<Call>, StoreError> {
        read(&self.calls, "calls", id.as_bytes())
    }

    /// The room's current or last call.
    pub fn room_call(&self, room_id: &RoomId) -> Result<Option<Call>, StoreError> {
        match self.room_settings(room_id)?.current_call {
            Some(id) => self.call(&id),
            None => Ok(None),
        }
    }

    pub fn active_calls(&self) -> Result<Vec<Call>, StoreError> {
        self.calls_where(Call::is_active)
    }

    /// Every stored call that `keep` accepts.
    pub(super) fn calls_where(
        &self,
        keep: impl Fn(&Call) -> bool,
    ) -> Result<Vec<Call>, StoreError> {
        let mut out = Vec::new();
        for entry in self.calls.iter() {
            let (_, value) = entry?;
            let call: Call = decode("calls", &value)?;
            if keep(&call) {
                out.push(call);
            }
        }
        Ok(out)
    }

    pub fn room_settings(&self, room_id: &RoomId) -> Result<RoomSettings, StoreError> {
        Ok(read(&self.rooms, "room_settings", room_id.as_bytes())?.unwrap_or_default())
    }

    /// Changes the room's settings (not its current call); flushes.
    pub async fn update_room_settings(
        &self,
        room_id: &RoomId,
        change: impl Fn(&mut RoomSettings),
    ) -> Result<RoomSettings, StoreError> {
        let updated = self
            .rooms
            .transaction(|rooms| {
                let mut settings: RoomSettings = match rooms.get(room_id.as_bytes())? {
                    Some(v) => serde_json::from_slice(&v).unwrap_or_default(),
                    None => RoomSettings::default(),
                };
                change(&mut settings);
                rooms.insert(room_id.as_bytes(), encode(&settings))?;
                Ok::<_, ConflictableTransactionError<()>>(settings)
            })
            .map_err(tx_error)?;
        self.flush().await?;
        Ok(updated)
    }
}
