//! The one way out to the homeserver: everything the bridge says to or asks
//! of Matrix goes through [`Matrix`].
//!
//! Where it sits: the room workers (`room.rs`), the transcripts and the
//! minutes call [`Matrix`]; `app.rs` connects it at start-up and starts the
//! E2EE sync with [`start_sync`]. Inside, each file is one layer and uses
//! only the layers under it, never this one (so `e2ee/` and `mod.rs` do
//! not import each other both ways):
//!
//! ```text
//! mod.rs      Matrix: connect, send_message/_state, upload_file, reveal, reads
//! e2ee/       the bot's encrypted device, decrypting, encrypting, the sync
//! session.rs  registers and logs the bot in, keeps its device (BotSession)
//! client.rs   reads, joins and leaves through matrix-sdk on the bot's device
//! as_bot.rs   writes as the bot with the appservice token (not rate-limited)
//! retry.rs    the one retry policy and MatrixError, under every request
//! ```
//!
//! The bot is a namespaced user (`@visio:server`) with a device of its own.
//! Plaintext messages, state events and uploads go out with the appservice
//! token (`as_bot.rs`: exempt from rate limits); in an encrypted room a
//! message goes out encrypted through the bot's device (`e2ee/encrypt.rs`).
//! Every request runs under the one retry policy (`retry.rs`), and nothing else
//! retries it.

mod as_bot;
mod client;
mod e2ee;
mod retry;
mod session;

use ruma::api::client::state::get_state_event_for_key::v3::StateEventFormat;
use ruma::{EventId, OwnedEventId, RoomId, UserId};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tracing::info;

pub use e2ee::Revealed;
pub use retry::MatrixError;
use retry::RetryPolicy;

use crate::config::Config;
use crate::queues::RoomQueues;
use crate::store::{QueuedEvent, Store};

/// The bot's connection to its homeserver.
#[derive(Clone)]
pub struct Matrix {
    /// Reads, joins and leaves on the bot's device.
    client: client::BotClient,
    /// Writes as the bot through the appservice token.
    as_bot: as_bot::AsBot,
    /// The bot's encrypted device, with E2EE on (the same matrix-sdk client
    /// as `client`'s).
    e2ee: Option<e2ee::Device>,
}

/// A transaction id for a message caused by `event_id` (`what` tells the
/// messages of one event apart): stable across replays, so the homeserver
/// drops a second copy after a crash.
pub fn txn_for(event_id: &EventId, what: &str) -> String {
    let hex: String = event_id
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("salon.{what}.{hex}")
}

/// Starts the E2EE sync (see `e2ee/mod.rs`); `None` when E2EE is off.
pub async fn start_sync(
    matrix: &Matrix,
    store: &Store,
    rooms: &RoomQueues,
) -> Option<JoinHandle<()>> {
    Some(matrix.e2ee.as_ref()?.start(store, rooms).await)
}

impl Matrix {
    /// Connects as the appservice, makes sure the bot user exists, and opens
    /// the bot's device (reusing the stored one when it still works).
    pub async fn connect(config: &Config, store: &Store) -> Result<Self, MatrixError> {
        let policy = RetryPolicy::default();
        let tokens = config
            .tokens()
            .map_err(|e| MatrixError::other("connect", e))?;
        let bot = config.bot_user_id();
        let as_bot = as_bot::AsBot::new(
            config.homeserver.url.clone(),
            tokens.as_token.clone(),
            bot.clone(),
            policy,
        );
        let appservice = session::Appservice::connect(config, policy).await?;
        appservice.ensure_bot_registered().await?;
        let (sdk, e2ee) = if config.e2ee.enabled {
            let sdk = e2ee::device::open(config, store, &appservice, &as_bot, policy).await?;
            let device = e2ee::Device::new(sdk.clone(), bot, policy);
            (sdk, Some(device))
        } else {
            let sdk = session::open_plain(config, store, &appservice, policy).await?;
            (sdk, None)
        };
        Ok(Matrix {
            client: client::BotClient::new(sdk, policy),
            as_bot,
            e2ee,
        })
    }

    pub fn bot_user_id(&self) -> &UserId {
        self.as_bot.user_id()
    }

    /// Element Call's media keys the bot's device receives (see
    /// `media_e2ee`); `None` when E2EE is off.
    pub fn media_keys(&self) -> Option<crate::media_e2ee::MediaKeys> {
        Some(self.e2ee.as_ref()?.media_keys().clone())
    }

    /// The bot's encrypted device, when E2EE is on.
    pub fn e2ee_device_id(&self) -> Option<ruma::OwnedDeviceId> {
        self.e2ee.as_ref()?.device_id()
    }

    /// Sets the bot's display name.
    pub async fn set_displayname(&self, name: &str) -> Result<(), MatrixError> {
        self.client.set_displayname(self.bot_user_id(), name).await
    }

    pub async fn join(&self, room_id: &RoomId) -> Result<(), MatrixError> {
        self.client.join(room_id).await
    }

    pub async fn leave(&self, room_id: &RoomId, reason: &str) -> Result<(), MatrixError> {
        self.client.leave(room_id, reason).await
    }

    /// Sends a message event with the given content. `txn_id` is derived from
    /// what is being answered ([`txn_for`]), so a replay after a crash is
    /// deduplicated by the homeserver instead of posted twice. In an
    /// encrypted room (with E2EE on) the message is encrypted.
    pub async fn send_message(
        &self,
        room_id: &RoomId,
        txn_id: &str,
        content: &Value,
    ) -> Result<OwnedEventId, MatrixError> {
        if let Some(device) = self.encrypting_for(room_id).await? {
            return device.send(room_id, txn_id, content).await;
        }
        let path = ["send", "m.room.message", txn_id];
        self.as_bot
            .put_room_event("send message", room_id, path, content)
            .await
    }

    /// Sets a state event (never encrypted, as the spec requires).
    pub async fn send_state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        content: &Value,
    ) -> Result<OwnedEventId, MatrixError> {
        let path = ["state", event_type, state_key];
        self.as_bot
            .put_room_event("send state event", room_id, path, content)
            .await
    }

    /// A state event's content, or `None` if the room has none.
    pub async fn state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>, MatrixError> {
        let format = StateEventFormat::Content;
        self.client
            .read_state(room_id, event_type, state_key, format)
            .await
    }

    /// A whole state event (sender, content, …), or `None` if the room has none.
    pub async fn state_event(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>, MatrixError> {
        let format = StateEventFormat::Event;
        self.client
            .read_state(room_id, event_type, state_key, format)
            .await
    }

    /// The room's power levels (its `m.room.power_levels` and, for the
    /// creators' power, its `m.room.create`).
    pub async fn power_levels(
        &self,
        room_id: &RoomId,
    ) -> Result<crate::power::PowerLevels, MatrixError> {
        let levels = self.state(room_id, "m.room.power_levels", "").await?;
        let create = self.state_event(room_id, "m.room.create", "").await?;
        Ok(crate::power::PowerLevels::from_state(
            levels.as_ref(),
            create.as_ref(),
        ))
    }

    /// Uploads a file for a message in `room_id` and returns the content
    /// fields that point at it, to merge into an `m.file` event: in an
    /// encrypted room `{"file": {url, key, iv, hashes, v}}` (encrypted before
    /// it leaves the bridge; the media repository sees neither its name nor
    /// its type), else `{"url": "mxc://…"}`. Either way the upload goes
    /// through the appservice token. The caller adds `msgtype`, `body`,
    /// `filename` and `info` and sends the event with
    /// [`Matrix::send_message`], which encrypts it.
    pub async fn upload_file(
        &self,
        room_id: &RoomId,
        bytes: Vec<u8>,
        mime: &str,
        filename: &str,
    ) -> Result<Value, MatrixError> {
        if self.encrypting_for(room_id).await?.is_none() {
            let url = self.as_bot.upload(bytes, mime, filename).await?;
            return Ok(json!({ "url": url }));
        }
        let mut attachment = e2ee::EncryptedAttachment::new(&bytes)?;
        let ciphertext = std::mem::take(&mut attachment.ciphertext);
        let url = self
            .as_bot
            .upload(ciphertext, "application/octet-stream", "")
            .await?;
        info!(%room_id, filename, size = bytes.len(), "uploaded an encrypted attachment");
        attachment.content(url)
    }

    /// The event a room worker should handle in place of `queued`: itself
    /// when it is not encrypted, else its decrypted self. An event that
    /// stays undecryptable gets one notice asking the sender to re-send
    /// (its transaction id is derived from the event, so a replay does not
    /// post it twice), and needs nothing more.
    pub async fn reveal(&self, queued: &QueuedEvent) -> Result<Revealed, MatrixError> {
        let Some(device) = &self.e2ee else {
            return Ok(Revealed::Plain);
        };
        let revealed = device.decrypt(queued).await?;
        if let Revealed::Undecryptable = revealed {
            let notice = e2ee::undecryptable_notice(&queued.event_id);
            let txn = txn_for(&queued.event_id, "undecryptable");
            self.send_message(&queued.room_id, &txn, &notice).await?;
        }
        Ok(revealed)
    }

    /// The device to encrypt with when the bot's messages to this room must
    /// be encrypted; `None` when they go in the clear.
    async fn encrypting_for(&self, room_id: &RoomId) -> Result<Option<&e2ee::Device>, MatrixError> {
        let Some(device) = &self.e2ee else {
            return Ok(None);
        };
        let encrypted = match device.known_encryption(room_id).await? {
            Some(known) => known,
            None => self
                .state(room_id, "m.room.encryption", "")
                .await?
                .is_some_and(|c| c.get("algorithm").is_some()),
        };
        Ok(encrypted.then_some(device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::owned_event_id;

    #[test]
    fn notice_txn_ids_are_stable_per_event() {
        let a = txn_for(&owned_event_id!("$abc/def"), "undecryptable");
        assert_eq!(a, txn_for(&owned_event_id!("$abc/def"), "undecryptable"));
        assert_ne!(a, txn_for(&owned_event_id!("$abc/deg"), "undecryptable"));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'));
    }
}
