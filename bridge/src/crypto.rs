//! End-to-end encryption for the bot: its device, its crypto store, the sync
//! that feeds it keys, and decrypting and encrypting room events.
//!
//! The bot is a member of encrypted rooms like any Element user. It has one
//! device, logged in with `m.login.application_service`, whose id and access
//! token live in `<storage>/e2ee/device.json`, right next to matrix-sdk's
//! SQLite stores (`matrix-sdk-crypto.sqlite3` and friends) in the same folder:
//! the keys and the device they belong to are kept, backed up and lost
//! together. A device is never reused with a fresh store. If the store is
//! gone (or does not match), the bot logs in a new device and deletes the old
//! one, so that other members stop encrypting for keys nobody holds.
//!
//! matrix-sdk's `sync` runs in the background ([`start`]): it uploads the
//! device's keys, receives room keys over to-device messages, tracks the
//! members' devices, and the bot cross-signs its own device
//! (`bootstrap_cross_signing_if_needed`) so that clients which only share keys
//! with verified identities include it.
//!
//! Encrypted commands reach the room queue in either of two ways, and are
//! handled once whichever comes first, because the inbox deduplicates by
//! event id: the appservice transaction carries the `m.room.encrypted` event,
//! which the room's worker decrypts with [`Matrix::reveal`] (waiting a little
//! for a late room key); and the sync hands decrypted `m.room.message` events
//! to the inbox directly. An event still undecryptable after the wait gets one
//! `m.notice` asking the sender to re-send.
//!
//! Sending: [`Matrix::send_message`] encrypts when the room is encrypted, so
//! every message the bot posts (replies, notices, minutes) inherits it. The
//! encrypted send goes through matrix-sdk's `Room::send_raw`, which shares the
//! room key with every member device first; see `docs/e2ee.md` for why that
//! send uses the device token. State events stay in the clear.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::deserialized_responses::EncryptionInfo;
use matrix_sdk::encryption::EncryptionSettings;
use matrix_sdk::event_handler::RawEvent;
use matrix_sdk::{Client, Room, RoomState};
use ruma::api::client::filter::{FilterDefinition, RoomEventFilter, RoomFilter};
use ruma::api::client::sync::sync_events::v3::Filter;
use ruma::events::room::encrypted::OriginalSyncRoomEncryptedEvent;
use ruma::events::room::message::OriginalSyncRoomMessageEvent;
use ruma::serde::Raw;
use ruma::{OwnedEventId, RoomId, UInt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::Config;
use crate::matrix::{BOT_SESSION_KEY, BotSession, Matrix, MatrixError};
use crate::queues::RoomQueues;
use crate::store::{QueuedEvent, Store};

/// The folder under the storage path that holds the device and its stores.
pub const E2EE_DIR: &str = "e2ee";
/// The device's id and token, next to the stores.
const DEVICE_FILE: &str = "device.json";
/// matrix-sdk's crypto store; without it the device's keys are lost.
const CRYPTO_DB: &str = "matrix-sdk-crypto.sqlite3";
/// How long a worker waits for the room key of an encrypted event.
const KEY_WAIT: Duration = Duration::from_secs(10);
/// How long a send waits for the sync to show a just-joined room.
const ROOM_WAIT: Duration = Duration::from_secs(20);
/// Events older than this that the sync decrypts are history, not commands.
const SYNC_FRESHNESS: Duration = Duration::from_secs(3600);
/// The long-poll of the background sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// The sled `meta` key of the recovery key that unlocks the bot's identity.
const RECOVERY_KEY: &str = "e2ee_recovery_key";

/// The text of the notice for an event the bot cannot decrypt.
pub const UNDECRYPTABLE_NOTICE: &str =
    "I could not decrypt your message. Please re-send once I have joined";

fn other(op: &'static str, reason: impl std::fmt::Display) -> MatrixError {
    MatrixError::Other {
        op,
        reason: reason.to_string(),
    }
}

/// A matrix-sdk error as ours: HTTP failures keep their meaning (refused or
/// worth retrying); crypto and store failures are reported as they are.
fn from_sdk(op: &'static str, err: &matrix_sdk::Error) -> MatrixError {
    match err {
        matrix_sdk::Error::Http(http) => crate::matrix::to_matrix_error(op, http),
        other_err => other(op, other_err),
    }
}

/// The folder of the bot's device and crypto store.
pub fn e2ee_dir(config: &Config) -> PathBuf {
    config.storage.path.join(E2EE_DIR)
}

fn read_device(dir: &Path) -> Option<BotSession> {
    let text = std::fs::read_to_string(dir.join(DEVICE_FILE)).ok()?;
    match serde_json::from_str(&text) {
        Ok(session) => Some(session),
        Err(e) => {
            warn!(error = %e, "the bot's device file is unreadable; starting a new device");
            None
        }
    }
}

fn write_device(dir: &Path, session: &BotSession) -> Result<(), MatrixError> {
    let tmp = dir.join(format!("{DEVICE_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(session).map_err(|e| other("save the bot's device", e))?;
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .map_err(|e| other("save the bot's device", e))?;
        file.write_all(&text)
            .and_then(|_| file.sync_all())
            .map_err(|e| other("save the bot's device", e))?;
    }
    std::fs::rename(&tmp, dir.join(DEVICE_FILE)).map_err(|e| other("save the bot's device", e))
}

async fn build_client(config: &Config, dir: &Path) -> Result<Client, MatrixError> {
    Client::builder()
        .homeserver_url(config.homeserver.url.as_str())
        .server_versions([ruma::api::MatrixVersion::V1_11])
        .request_config(RequestConfig::new().disable_retry())
        .sqlite_store(dir, None)
        .with_encryption_settings(EncryptionSettings {
            auto_enable_cross_signing: false,
            auto_enable_backups: false,
            ..Default::default()
        })
        .build()
        .await
        .map_err(|e| other("open the crypto store", e))
}

/// Opens the bot's device with its crypto store, or makes a new device when
/// the store is missing or belongs to another device. Returns the client.
pub(crate) async fn open_device(
    config: &Config,
    matrix: &Matrix,
    store: &Store,
) -> Result<Client, MatrixError> {
    let dir = e2ee_dir(config);
    std::fs::create_dir_all(&dir).map_err(|e| other("create the e2ee folder", e))?;
    let kept = read_device(&dir).filter(|s| s.user_id == matrix.bot_user_id);
    let has_keys = dir.join(CRYPTO_DB).exists();
    // The device this bridge used last, to delete it if it cannot be kept.
    let mut previous: Option<BotSession> = store
        .meta(BOT_SESSION_KEY)
        .map_err(|e| other("load bot session", e))?;
    match (kept, has_keys) {
        (Some(session), true) => {
            let client = build_client(config, &dir).await?;
            match crate::matrix::restore(
                &client,
                session.user_id.clone(),
                session.device_id.clone(),
                &session.access_token,
            )
            .await
            {
                Ok(()) => match client.whoami().await {
                    Ok(_) => {
                        info!(device_id = %session.device_id, "reusing the bot's encrypted device");
                        return Ok(client);
                    }
                    Err(e)
                        if matches!(
                            e.client_api_error_kind(),
                            Some(ruma::api::error::ErrorKind::UnknownToken(_))
                        ) =>
                    {
                        warn!(device_id = %session.device_id, "the bot's device was logged out; making a new one");
                    }
                    Err(e) => return Err(crate::matrix::to_matrix_error("whoami", &e)),
                },
                Err(e) => {
                    warn!(device_id = %session.device_id, error = %e, "the crypto store does not match the bot's device; making a new one");
                }
            }
            drop(client);
            previous = Some(session);
        }
        (Some(session), false) => {
            warn!(device_id = %session.device_id, "the bot's crypto store is gone; making a new device and deleting the old one");
            previous = Some(session);
        }
        (None, _) => {}
    }
    new_device(config, matrix, store, &dir, previous).await
}

async fn new_device(
    config: &Config,
    matrix: &Matrix,
    store: &Store,
    dir: &Path,
    previous: Option<BotSession>,
) -> Result<Client, MatrixError> {
    // Whatever is left belongs to no device we will use: start clean.
    std::fs::remove_dir_all(dir).map_err(|e| other("clear the e2ee folder", e))?;
    std::fs::create_dir_all(dir).map_err(|e| other("create the e2ee folder", e))?;
    let session = matrix.login_bot().await?;
    let client = build_client(config, dir).await?;
    crate::matrix::restore(
        &client,
        session.user_id.clone(),
        session.device_id.clone(),
        &session.access_token,
    )
    .await?;
    write_device(dir, &session)?;
    store
        .set_meta(BOT_SESSION_KEY, &session)
        .await
        .map_err(|e| other("save bot session", e))?;
    info!(device_id = %session.device_id, "the bot logged in with a new encrypted device");
    if let Some(old) = previous.filter(|old| old.device_id != session.device_id) {
        match matrix.delete_device(&old.device_id).await {
            Ok(()) => info!(device_id = %old.device_id, "deleted the bot's previous device"),
            Err(e) => {
                warn!(device_id = %old.device_id, error = %e, "cannot delete the bot's previous device")
            }
        }
    }
    Ok(client)
}

/// What the worker should handle instead of an event from the inbox.
#[derive(Debug)]
pub enum Revealed {
    /// Not encrypted: handle the event as it is.
    Plain,
    /// The decrypted event, with the same event id and room.
    Decrypted(QueuedEvent),
    /// It could not be decrypted; the sender was told. Nothing else to do.
    Undecryptable,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    sender: ruma::OwnedUserId,
}

/// A sync event (no `room_id`) as the inbox keeps events.
fn as_queued(
    room_id: &RoomId,
    raw: &serde_json::value::RawValue,
) -> Result<QueuedEvent, serde_json::Error> {
    let mut event: serde_json::Map<String, Value> = serde_json::from_str(raw.get())?;
    event.insert("room_id".into(), json!(room_id));
    let event_id: OwnedEventId =
        serde_json::from_value(event.get("event_id").cloned().unwrap_or(Value::Null))?;
    Ok(QueuedEvent {
        room_id: room_id.to_owned(),
        event_id,
        json: serde_json::to_string(&event)?,
    })
}

fn txn_hex(event_id: &OwnedEventId, what: &str) -> String {
    let hex: String = event_id
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("salon.{what}.{hex}")
}

impl Matrix {
    /// Whether the bot keeps an encrypted device.
    pub fn e2ee_enabled(&self) -> bool {
        self.e2ee
    }

    /// Decrypts an `m.room.encrypted` event from the inbox. Other events are
    /// [`Revealed::Plain`]. A missing room key is waited for a little (it may
    /// still be on its way through the sync); after that the sender gets one
    /// notice, and the event counts as handled.
    pub async fn reveal(&self, queued: &QueuedEvent) -> Result<Revealed, MatrixError> {
        let Ok(head) = serde_json::from_str::<Head>(&queued.json) else {
            return Ok(Revealed::Plain);
        };
        if head.kind != "m.room.encrypted" || !self.e2ee || head.sender == self.bot_user_id {
            return Ok(Revealed::Plain);
        }
        let raw: Raw<OriginalSyncRoomEncryptedEvent> =
            Raw::from_json_string(queued.json.clone())
                .map_err(|e| other("read an encrypted event", e))?;
        let deadline = Instant::now() + KEY_WAIT;
        let mut why = String::from("the room is not synced yet");
        loop {
            if let Some(room) = self.bot.get_room(&queued.room_id) {
                match room.decrypt_event(&raw, None).await {
                    Ok(event) if !event.kind.is_utd() => {
                        let decrypted = as_queued(&queued.room_id, event.raw().json())
                            .map_err(|e| other("read a decrypted event", e))?;
                        debug!(event_id = %queued.event_id, "decrypted an event");
                        return Ok(Revealed::Decrypted(decrypted));
                    }
                    Ok(event) => {
                        why = match &event.kind {
                            matrix_sdk::deserialized_responses::TimelineEventKind::UnableToDecrypt {
                                utd_info,
                                ..
                            } => format!("{:?}", utd_info.reason),
                            _ => "unable to decrypt".to_owned(),
                        };
                    }
                    Err(e) => why = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        warn!(event_id = %queued.event_id, sender = %head.sender, reason = %why, "cannot decrypt an event; telling the sender");
        let content = json!({
            "msgtype": "m.notice",
            "body": UNDECRYPTABLE_NOTICE,
            "m.relates_to": { "m.in_reply_to": { "event_id": queued.event_id } },
            "org.salon.reply": { "command": "undecryptable", "outcome": "undecryptable" },
        });
        self.send_message(
            &queued.room_id,
            &txn_hex(&queued.event_id, "undecryptable"),
            &content,
        )
        .await?;
        Ok(Revealed::Undecryptable)
    }

    /// Whether the bot's messages to this room must be encrypted.
    pub(crate) async fn room_is_encrypted(&self, room_id: &RoomId) -> Result<bool, MatrixError> {
        if !self.e2ee {
            return Ok(false);
        }
        if let Some(room) = self.bot.get_room(room_id) {
            return room
                .latest_encryption_state()
                .await
                .map(|s| s.is_encrypted())
                .map_err(|e| from_sdk("read the room's encryption", &e));
        }
        Ok(self
            .state(room_id, "m.room.encryption", "")
            .await?
            .is_some_and(|c| c.get("algorithm").is_some()))
    }

    /// The room as the sync knows it, once the bot's join has come through.
    async fn joined_room(&self, room_id: &RoomId) -> Result<Room, MatrixError> {
        let deadline = Instant::now() + ROOM_WAIT;
        loop {
            if let Some(room) = self.bot.get_room(room_id)
                && room.state() == RoomState::Joined
            {
                return Ok(room);
            }
            if Instant::now() >= deadline {
                return Err(MatrixError::Unavailable {
                    op: "send an encrypted message",
                    reason: "the sync has not shown the bot in the room yet".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Encrypts `content` for the room's members and sends it as the bot's
    /// device, with bounded retries. The transaction id makes a replay a no-op.
    pub(crate) async fn send_encrypted(
        &self,
        room_id: &RoomId,
        txn_id: &str,
        content: &Value,
    ) -> Result<OwnedEventId, MatrixError> {
        const OP: &str = "send an encrypted message";
        let room = self.joined_room(room_id).await?;
        let txn = ruma::OwnedTransactionId::from(txn_id);
        let mut backoff = crate::matrix::Backoff::new(self.retry);
        loop {
            let cfg = RequestConfig::new()
                .disable_retry()
                .timeout(self.retry.request_timeout);
            let err = match room
                .send_raw("m.room.message", content.clone())
                .with_transaction_id(&txn)
                .with_request_config(cfg)
                .await
            {
                Ok(result) => {
                    debug!(event_id = %result.response.event_id, "sent an encrypted message");
                    return Ok(result.response.event_id);
                }
                Err(e) => e,
            };
            let server_wait = match &err {
                matrix_sdk::Error::Http(http) => match crate::matrix::judge(http) {
                    crate::matrix::Verdict::GiveUp => return Err(from_sdk(OP, &err)),
                    crate::matrix::Verdict::RetryAfter(wait) => Some(wait),
                    crate::matrix::Verdict::Backoff => None,
                },
                _ => return Err(from_sdk(OP, &err)),
            };
            let Some(wait) = backoff.next(server_wait) else {
                error!(op = OP, error = %err, "giving up on the homeserver");
                return Err(from_sdk(OP, &err));
            };
            warn!(op = OP, error = %err, wait_ms = wait.as_millis() as u64, "homeserver call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Uploads a file for a message in `room_id` and returns the content
    /// fields that point at it, to merge into an `m.file` event: in an
    /// encrypted room `{"file": {url, key, iv, hashes, v}}` (AES-256-CTR with a
    /// fresh key, encrypted before it leaves the bridge, as Element does), else
    /// `{"url": "mxc://…"}`. Either way the upload goes through the appservice
    /// token. The caller adds `msgtype`, `body`, `filename` and `info` and sends
    /// the event with [`Matrix::send_message`], which encrypts it.
    pub async fn upload_file(
        &self,
        room_id: &RoomId,
        bytes: Vec<u8>,
        mime: &str,
        filename: &str,
    ) -> Result<Value, MatrixError> {
        if !self.room_is_encrypted(room_id).await? {
            return self.upload_plain(bytes, mime, filename).await;
        }
        const OP: &str = "encrypt a file";
        let mut plaintext = Cursor::new(bytes.as_slice());
        let mut encryptor = matrix_sdk_crypto::AttachmentEncryptor::new(&mut plaintext);
        let mut ciphertext = Vec::with_capacity(bytes.len());
        encryptor
            .read_to_end(&mut ciphertext)
            .map_err(|e| other(OP, e))?;
        let keys = encryptor.finish();
        // The name and type would leak through the media repository: neither
        // goes with the ciphertext (they travel inside the encrypted event).
        let uploaded = self
            .upload_plain(ciphertext, "application/octet-stream", "")
            .await?;
        let url: ruma::OwnedMxcUri =
            serde_json::from_value(uploaded["url"].clone()).map_err(|e| other(OP, e))?;
        let file = ruma::events::room::EncryptedFile::new(url, keys.encryption_info, keys.hashes);
        info!(%room_id, filename, size = bytes.len(), "uploaded an encrypted attachment");
        Ok(json!({ "file": serde_json::to_value(&file).map_err(|e| other(OP, e))? }))
    }

    /// Deletes one of the bot's devices, as the appservice (no interactive
    /// auth needed for a user the appservice owns).
    pub(crate) async fn delete_device(
        &self,
        device_id: &ruma::DeviceId,
    ) -> Result<(), MatrixError> {
        const OP: &str = "delete a device";
        let mut url = self.homeserver.clone();
        url.path_segments_mut()
            .map_err(|_| other(OP, "the homeserver URL cannot take a path"))?
            .pop_if_empty()
            .extend(["_matrix", "client", "v3", "devices", device_id.as_str()]);
        url.query_pairs_mut()
            .append_pair("user_id", self.bot_user_id.as_str());
        let response = self
            .http
            .delete(url)
            .bearer_auth(self.as_token.expose())
            .timeout(self.retry.request_timeout)
            .json(&json!({}))
            .send()
            .await
            .map_err(|e| MatrixError::Unavailable {
                op: OP,
                reason: e.without_url().to_string(),
            })?;
        let status = response.status();
        if status.is_success() || status.as_u16() == 404 {
            return Ok(());
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Err(MatrixError::Refused {
            op: OP,
            status: status.as_u16(),
            errcode: body["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned(),
            message: body["error"].as_str().unwrap_or("").to_owned(),
        })
    }
}

/// Starts end-to-end encryption: one sync so the device's keys are up and
/// the rooms known, cross-signing, then the background sync that routes
/// decrypted commands into the room queues. `None` when E2EE is off.
pub async fn start(matrix: &Matrix, store: &Store, rooms: &RoomQueues) -> Option<JoinHandle<()>> {
    if !matrix.e2ee {
        return None;
    }
    let client = matrix.bot.clone();
    let bot = matrix.bot_user_id.clone();
    let (inbox, rooms) = (store.clone(), rooms.clone());
    client.add_event_handler(
        move |event: OriginalSyncRoomMessageEvent,
              room: Room,
              encryption: Option<EncryptionInfo>,
              raw: RawEvent| {
            let (store, rooms, bot) = (inbox.clone(), rooms.clone(), bot.clone());
            async move {
                // Plain messages come through the appservice; only decrypted
                // ones need this path.
                if encryption.is_none() || event.sender == bot {
                    return;
                }
                let age = ruma::MilliSecondsSinceUnixEpoch::now()
                    .get()
                    .saturating_sub(event.origin_server_ts.get());
                if age > UInt::try_from(SYNC_FRESHNESS.as_millis() as u64).unwrap_or(UInt::MAX) {
                    debug!(event_id = %event.event_id, "ignoring an old decrypted message");
                    return;
                }
                route_decrypted(&store, &rooms, room.room_id(), &raw).await;
            }
        },
    );

    let filter = {
        let mut timeline = RoomEventFilter::default();
        timeline.limit = Some(UInt::from(20u32));
        let mut room = RoomFilter::default();
        room.timeline = timeline;
        let mut definition = FilterDefinition::default();
        definition.room = room;
        Filter::FilterDefinition(definition)
    };
    let settings = SyncSettings::default().filter(filter);
    let started = Instant::now();
    match client
        .sync_once(settings.clone().timeout(Duration::ZERO))
        .await
    {
        Ok(_) => info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "first sync done; the bot's device keys are up"
        ),
        Err(e) => warn!(error = %e, "the first sync failed; the background sync will retry"),
    }
    cross_sign(&client, store).await;
    let span = info_span!(parent: None, "e2ee_sync");
    Some(tokio::spawn(
        async move {
            let mut wait = Duration::from_secs(1);
            loop {
                match client
                    .sync_once(settings.clone().timeout(SYNC_TIMEOUT))
                    .await
                {
                    Ok(_) => wait = Duration::from_secs(1),
                    Err(e) => {
                        warn!(error = %e, wait_s = wait.as_secs(), "sync failed; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
        .instrument(span),
    ))
}

/// Cross-signs the bot's device, so that clients sharing keys only with
/// verified identities include it. The first device creates the identity
/// (no interactive auth is needed for a first upload) and puts its private
/// keys in server-side secret storage, under a recovery key kept in the sled
/// store, outside `e2ee/`. A device made after the crypto store was lost gets
/// them back with that key and signs itself.
async fn cross_sign(client: &Client, store: &Store) {
    let encryption = client.encryption();
    if let Err(e) = encryption.bootstrap_cross_signing_if_needed(None).await {
        warn!(error = %e, "cannot set up cross-signing for the bot");
        return;
    }
    let complete = encryption
        .cross_signing_status()
        .await
        .is_some_and(|s| s.is_complete());
    let recovery_key: Option<String> = match store.meta(RECOVERY_KEY) {
        Ok(key) => key,
        Err(e) => {
            warn!(error = %e, "cannot read the bot's recovery key");
            None
        }
    };
    match (complete, recovery_key) {
        (true, Some(_)) => info!("the bot's device is cross-signed"),
        (true, None) => match encryption.recovery().enable().await {
            Ok(key) => match store.set_meta(RECOVERY_KEY, &key).await {
                Ok(()) => info!("the bot's device is cross-signed; its identity is recoverable"),
                Err(e) => warn!(error = %e, "cannot keep the bot's recovery key"),
            },
            Err(e) => {
                warn!(error = %e, "the bot's device is cross-signed, but its identity cannot be kept in secret storage")
            }
        },
        (false, Some(key)) => match encryption.recovery().recover(&key).await {
            Ok(()) => info!("recovered the bot's identity; the new device is cross-signed"),
            Err(e) => {
                warn!(error = %e, "cannot recover the bot's identity; its device stays unsigned")
            }
        },
        (false, None) => warn!(
            "the bot has a cross-signing identity whose keys this store lacks and no \
             recovery key; its device stays unsigned (see docs/e2ee.md)"
        ),
    }
}

/// Puts a message the sync decrypted into the inbox and its room's queue,
/// unless the appservice already brought it (same event id).
async fn route_decrypted(
    store: &Store,
    rooms: &RoomQueues,
    room_id: &RoomId,
    raw: &serde_json::value::RawValue,
) {
    let event = match as_queued(room_id, raw) {
        Ok(event) => event,
        Err(e) => {
            warn!(error = %e, "cannot read a decrypted event");
            return;
        }
    };
    let event_id = event.event_id.clone();
    match store.enqueue(vec![event]).await {
        Ok(queued) => {
            for (seq, event) in queued {
                debug!(%event_id, "queued a message decrypted by the sync");
                rooms.dispatch_event(seq, event);
            }
        }
        Err(e) => error!(error = %e, %event_id, "cannot queue a decrypted message"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{owned_device_id, owned_event_id, owned_user_id, room_id};

    #[test]
    fn a_synced_event_enters_the_inbox_with_its_room_and_id() {
        let raw = serde_json::value::RawValue::from_string(
            r#"{"type":"m.room.message","sender":"@a:x","event_id":"$e1","origin_server_ts":1,"content":{"msgtype":"m.text","body":"!visio start"}}"#.to_owned(),
        )
        .unwrap();
        let queued = as_queued(room_id!("!r:x"), &raw).unwrap();
        assert_eq!(queued.event_id, owned_event_id!("$e1"));
        assert_eq!(queued.room_id.as_str(), "!r:x");
        let event: Value = serde_json::from_str(&queued.json).unwrap();
        assert_eq!(event["room_id"], "!r:x");
        assert_eq!(event["content"]["body"], "!visio start");

        let no_id =
            serde_json::value::RawValue::from_string(r#"{"type":"m.room.message"}"#.to_owned())
                .unwrap();
        assert!(as_queued(room_id!("!r:x"), &no_id).is_err());
    }

    #[test]
    fn the_device_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_device(dir.path()).is_none());
        let session = BotSession {
            user_id: owned_user_id!("@visio:x"),
            device_id: owned_device_id!("DEVICE"),
            access_token: "secret".into(),
        };
        write_device(dir.path(), &session).unwrap();
        let back = read_device(dir.path()).unwrap();
        assert_eq!(back.device_id, session.device_id);
        assert_eq!(back.access_token, "secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(DEVICE_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        }
        std::fs::write(dir.path().join(DEVICE_FILE), "not json").unwrap();
        assert!(
            read_device(dir.path()).is_none(),
            "a broken file means a new device"
        );
    }

    #[test]
    fn notice_txn_ids_are_stable_per_event() {
        let a = txn_hex(&owned_event_id!("$abc/def"), "undecryptable");
        assert_eq!(a, txn_hex(&owned_event_id!("$abc/def"), "undecryptable"));
        assert_ne!(a, txn_hex(&owned_event_id!("$abc/deg"), "undecryptable"));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'));
    }
}
