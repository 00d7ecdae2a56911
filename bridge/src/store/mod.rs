//! Durable state in `sled`: the inbox of events to handle and the handled
//! event ids (`inbox.rs`, holding typed events: `event.rs`), calls and room
//! settings (`calls.rs`), the transcript segments of calls (`segments.rs`)
//! how far the posting of each call's minutes got (`minutes.rs`), and which
//! Matrix room and user the SFU's room names and identities are (`media.rs`). This
//! file opens the database, flushes it, and keeps small `meta` values.
//!
//! Where it sits: everything that must outlive a `kill -9` goes through here.
//! The appservice acknowledges a transaction only after its events sit in the
//! inbox on disk, and an event leaves the inbox in the same sled transaction
//! that records its id as handled, so a crash loses no command and handles
//! none twice. Homeserver transaction ids restart at 1 when Synapse
//! restarts, so deduplication is by **event id**, never by txn id.
//!
//! Every write that matters is flushed before the function returns.

mod calls;
mod event;
mod guests;
mod inbox;
mod media;
mod minutes;
mod segments;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::TransactionError;

pub use calls::RoomSettings;
pub use event::{EventKind, QueuedEvent, WireEvent, event_from_json};
pub use media::{MediaIdentity, user_of_identity};
pub use minutes::MinutesProgress;
pub use segments::SegmentRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in tree `{tree}`: {source}")]
    Corrupt {
        tree: &'static str,
        source: serde_json::Error,
    },
    #[error("the storage flush did not finish: {0}")]
    Flush(String),
    #[error("cannot open storage at {path}: {reason}")]
    Open { path: String, reason: String },
}

/// The handle on Salon's sled database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    inbox: sled::Tree,
    pending: sled::Tree,
    handled: sled::Tree,
    calls: sled::Tree,
    rooms: sled::Tree,
    meta: sled::Tree,
    segments: sled::Tree,
    minutes: sled::Tree,
    media_rooms: sled::Tree,
    identities: sled::Tree,
    guest_links: sled::Tree,
    lobby: sled::Tree,
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

/// The record under `key` in `tree` (`name` in errors), if there is one.
fn read<T: DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    tree.get(key)?.map(|v| decode(name, &v)).transpose()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("our records always serialise")
}

fn tx_error(err: TransactionError<()>) -> StoreError {
    match err {
        TransactionError::Storage(e) => StoreError::Sled(e),
        TransactionError::Abort(()) => unreachable!("our transactions never abort"),
    }
}

impl Store {
    /// Opens (or creates) the database under `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let db = sled::Config::new()
            .path(path.join("salon.sled"))
            .open()
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: match &e {
                    sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                        "it is locked by another process (is another `salon run` using it?)"
                            .to_owned()
                    }
                    other => other.to_string(),
                },
            })?;
        Ok(Store {
            inbox: db.open_tree("inbox")?,
            pending: db.open_tree("pending")?,
            handled: db.open_tree("handled_events")?,
            calls: db.open_tree("calls")?,
            rooms: db.open_tree("room_settings")?,
            meta: db.open_tree("meta")?,
            segments: db.open_tree("segments")?,
            minutes: db.open_tree("minutes_progress")?,
            media_rooms: db.open_tree("media_rooms")?,
            identities: db.open_tree("media_identities")?,
            guest_links: db.open_tree("guest_links")?,
            lobby: db.open_tree("lobby")?,
            db,
        })
    }

    /// Writes everything to disk now (at shutdown).
    pub async fn flush_now(&self) -> Result<(), StoreError> {
        self.flush().await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Not `flush_async`: it runs on sled's small I/O pool, and enough
        // concurrent flushes (rooms completing events while the appservice and
        // the E2EE sync queue more) occupy every pool thread waiting for writes
        // that need a pool thread: a deadlock. A blocking flush waits on
        // tokio's blocking pool instead.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Flush(e.to_string()))??;
        Ok(())
    }

    /// A small JSON value under `key` in the `meta` tree (e.g. the bot's session).
    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        read(&self.meta, "meta", key.as_bytes())
    }

    pub async fn set_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.meta.insert(key.as_bytes(), encode(value))?;
        self.flush().await
    }
}
