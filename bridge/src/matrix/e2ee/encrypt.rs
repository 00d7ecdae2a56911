//! Encrypting what the bot says in encrypted rooms: messages, through the
//! bot's device, and attachments, before they leave the bridge.
//!
//! Where it sits: `Matrix::send_message` and
//! `upload_file` ask [`known_encryption`] whether a room is encrypted, and
//! then send here instead of through `as_bot.rs`. State events are never
//! encrypted.
//!
//! The encrypted send goes through matrix-sdk's `Room::send_raw` on the bot's
//! device: it loads the room's members, queries their devices, claims
//! one-time keys, shares the megolm session with each device, rotates it
//! when members leave, and only then encrypts. That send uses the device
//! token, which Synapse rate-limits; the retry policy honours its 429s, and
//! the transaction id makes a retry or a replay a no-op (`docs/e2ee.md`).

use std::io::{Cursor, Read};
use std::time::{Duration, Instant};

use matrix_sdk::{Client, Room, RoomState};
use ruma::events::room::EncryptedFile;
use ruma::{OwnedEventId, OwnedMxcUri, OwnedTransactionId, RoomId};
use serde_json::{Value, json};
use tracing::debug;

use crate::matrix::retry::{MatrixError, RetryPolicy};

/// How long a send waits for the sync to show a just-joined room.
const ROOM_WAIT: Duration = Duration::from_secs(20);

/// Whether the room is encrypted, when the sync knows the room; `None`
/// when it does not (yet), and the room's state has to be asked.
pub(crate) async fn known_encryption(
    client: &Client,
    policy: &RetryPolicy,
    room_id: &RoomId,
) -> Result<Option<bool>, MatrixError> {
    const OP: &str = "read the room's encryption";
    let Some(room) = client.get_room(room_id) else {
        return Ok(None);
    };
    let state = policy
        .run(OP, || async {
            room.latest_encryption_state()
                .await
                .map_err(|e| MatrixError::from_sdk(OP, &e))
        })
        .await?;
    Ok(Some(state.is_encrypted()))
}

/// The room as the sync knows it, once the bot's join has come through.
async fn joined_room(client: &Client, room_id: &RoomId) -> Result<Room, MatrixError> {
    let deadline = Instant::now() + ROOM_WAIT;
    loop {
        if let Some(room) = client.get_room(room_id)
            && room.state() == RoomState::Joined
        {
            return Ok(room);
        }
        if Instant::now() >= deadline {
            return Err(MatrixError::Unavailable {
                op: "send an encrypted message",
                reason: "the sync has not shown the bot in the room yet".into(),
                retry_after: None,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Encrypts `content` for the room's members and sends it as the bot's
/// device, under the retry policy. The transaction id makes a replay a no-op.
pub(crate) async fn send(
    client: &Client,
    policy: &RetryPolicy,
    room_id: &RoomId,
    txn_id: &str,
    content: &Value,
) -> Result<OwnedEventId, MatrixError> {
    const OP: &str = "send an encrypted message";
    let room = joined_room(client, room_id).await?;
    let txn = OwnedTransactionId::from(txn_id);
    let (room, txn) = (&room, &txn);
    let event_id = policy
        .run(OP, || async move {
            room.send_raw("m.room.message", content.clone())
                .with_transaction_id(txn)
                .with_request_config(policy.request_config(false))
                .await
                .map(|result| result.response.event_id)
                .map_err(|e| MatrixError::from_sdk(OP, &e))
        })
        .await?;
    debug!(%event_id, "sent an encrypted message");
    Ok(event_id)
}

/// An attachment encrypted in the bridge (AES-256-CTR with a fresh key and
/// IV, SHA-256 of the ciphertext, as Element does). The keys stay in memory
/// until they go out inside the encrypted `m.file` event.
pub(crate) struct EncryptedAttachment {
    pub(crate) ciphertext: Vec<u8>,
    keys: matrix_sdk_crypto::MediaEncryptionInfo,
}

impl EncryptedAttachment {
    pub(crate) fn new(plaintext: &[u8]) -> Result<Self, MatrixError> {
        const OP: &str = "encrypt a file";
        let mut reader = Cursor::new(plaintext);
        let mut encryptor = matrix_sdk_crypto::AttachmentEncryptor::new(&mut reader);
        let mut ciphertext = Vec::with_capacity(plaintext.len());
        encryptor
            .read_to_end(&mut ciphertext)
            .map_err(|e| MatrixError::other(OP, e))?;
        Ok(Self {
            ciphertext,
            keys: encryptor.finish(),
        })
    }

    /// The content fields of the file message, once the ciphertext is at
    /// `url`: `{"file": {url, key, iv, hashes, v}}`.
    pub(crate) fn content(self, url: OwnedMxcUri) -> Result<Value, MatrixError> {
        let file = EncryptedFile::new(url, self.keys.encryption_info, self.keys.hashes);
        let file =
            serde_json::to_value(&file).map_err(|e| MatrixError::other("encrypt a file", e))?;
        Ok(json!({ "file": file }))
    }
}
