//! End-to-end encryption for the bot: its device and crypto store
//! (`device.rs`), decrypting commands (`decrypt.rs`), encrypting what it
//! says (`encrypt.rs`), and the sync that feeds the device its keys (here).
//!
//! Where it sits: with `[e2ee] enabled`, `Matrix` (`matrix/mod.rs`) holds a
//! [`Device`] and routes through it: `reveal` for events from the inbox,
//! `send_message` and `upload_file` in encrypted rooms. This part knows nothing
//! of `Matrix`: it uses the layers below it (`retry`, `session`, `client`,
//! `as_bot`) and is used only by `matrix/mod.rs`.
//!
//! At start-up, one sync runs before the bridge serves (the device's keys
//! are then on the server), the device is cross-signed, and a background
//! sync keeps going (30 s long-poll): to-device room keys, device-list
//! changes, one-time-key top-ups, the decrypted messages it routes into
//! the inbox, and Element Call's media keys (`media_keys.rs`), kept in the
//! device's [`MediaKeys`] for the transcriber. See `docs/e2ee.md`.

mod decrypt;
pub(crate) mod device;
mod encrypt;
mod media_keys;

use std::time::{Duration, Instant};

use matrix_sdk::Client;
use matrix_sdk::config::SyncSettings;
use ruma::api::client::filter::{FilterDefinition, RoomEventFilter, RoomFilter};
use ruma::api::client::sync::sync_events::v3::Filter;
use ruma::{OwnedEventId, OwnedUserId, RoomId, UInt};
use serde_json::Value;
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

pub use decrypt::Revealed;
pub(crate) use decrypt::undecryptable_notice;
pub(crate) use encrypt::EncryptedAttachment;

use super::retry::{Backoff, MatrixError, RetryPolicy};
use crate::media_e2ee::MediaKeys;
use crate::queues::RoomQueues;
use crate::store::{QueuedEvent, Store};

/// The long-poll of the background sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeline events asked for per room: enough for the last commands.
const SYNC_TIMELINE_LIMIT: u32 = 20;

/// The bot's encrypted device.
#[derive(Clone)]
pub(crate) struct Device {
    sdk: Client,
    bot: OwnedUserId,
    policy: RetryPolicy,
    /// Element Call's media keys the sync receives (in memory only).
    media_keys: MediaKeys,
}

impl Device {
    pub(crate) fn new(sdk: Client, bot: OwnedUserId, policy: RetryPolicy) -> Self {
        Self {
            sdk,
            bot,
            policy,
            media_keys: MediaKeys::default(),
        }
    }

    /// The media keys of the calls the bot is in, as the sync receives them.
    pub(crate) fn media_keys(&self) -> &MediaKeys {
        &self.media_keys
    }

    /// The device's id: the one a call membership names, so that members
    /// send it their media keys.
    pub(crate) fn device_id(&self) -> Option<ruma::OwnedDeviceId> {
        self.sdk.device_id().map(ToOwned::to_owned)
    }

    /// See [`decrypt::decrypt`].
    pub(crate) async fn decrypt(&self, queued: &QueuedEvent) -> Result<Revealed, MatrixError> {
        decrypt::decrypt(&self.sdk, &self.bot, queued).await
    }

    /// See [`encrypt::known_encryption`].
    pub(crate) async fn known_encryption(
        &self,
        room_id: &RoomId,
    ) -> Result<Option<bool>, MatrixError> {
        encrypt::known_encryption(&self.sdk, &self.policy, room_id).await
    }

    /// See [`encrypt::send`].
    pub(crate) async fn send(
        &self,
        room_id: &RoomId,
        txn_id: &str,
        content: &Value,
    ) -> Result<OwnedEventId, MatrixError> {
        encrypt::send(&self.sdk, &self.policy, room_id, txn_id, content).await
    }

    /// One sync so the device's keys are up and the rooms known,
    /// cross-signing, then the background sync that routes decrypted
    /// commands into the room queues.
    pub(crate) async fn start(&self, store: &Store, rooms: &RoomQueues) -> JoinHandle<()> {
        decrypt::route_synced_messages(&self.sdk, store, rooms, self.bot.clone());
        media_keys::route_media_keys(&self.sdk, self.media_keys.clone());
        let settings = {
            let mut timeline = RoomEventFilter::default();
            timeline.limit = Some(UInt::from(SYNC_TIMELINE_LIMIT));
            let mut room = RoomFilter::default();
            room.timeline = timeline;
            let mut definition = FilterDefinition::default();
            definition.room = room;
            SyncSettings::default().filter(Filter::FilterDefinition(definition))
        };
        let started = Instant::now();
        let first = self
            .policy
            .run("first sync", || async {
                self.sdk
                    .sync_once(settings.clone().timeout(Duration::ZERO))
                    .await
                    .map_err(|e| MatrixError::from_sdk("first sync", &e))
            })
            .await;
        match first {
            Ok(_) => info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "first sync done; the bot's device keys are up"
            ),
            Err(e) => warn!(error = %e, "the first sync failed; the background sync will retry"),
        }
        device::cross_sign(&self.sdk, store).await;
        let span = info_span!(parent: None, "e2ee_sync");
        tokio::spawn(standing_sync(self.sdk.clone(), settings, self.policy).instrument(span))
    }
}

/// The background sync. It never gives up: after a failure it waits as the
/// retry policy would (the homeserver's 429 wait, else the backoff), and
/// after a success it starts the backoff afresh.
async fn standing_sync(client: Client, settings: SyncSettings, policy: RetryPolicy) {
    let mut backoff = Backoff::new(policy);
    loop {
        match client
            .sync_once(settings.clone().timeout(SYNC_TIMEOUT))
            .await
        {
            Ok(_) => backoff = Backoff::new(policy),
            Err(e) => {
                let e = MatrixError::from_sdk("sync", &e);
                let wait = backoff.next_unbounded(e.retry_after());
                warn!(error = %e, wait_ms = wait.as_millis() as u64, "sync failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}
