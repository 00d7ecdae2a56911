//! The bot's encrypted device: kept with its crypto store, replaced when the
//! store is lost, and cross-signed.
//!
//! Where it sits: `Matrix::connect` (`matrix/mod.rs`) calls [`open`] at
//! start-up when E2EE is on (instead of `session::open_plain`), and
//! `e2ee/mod.rs` calls [`cross_sign`] after the first sync.
//!
//! The device's id and access token live in `<storage>/e2ee/device.json`
//! (mode 0600), right next to matrix-sdk's SQLite stores
//! (`matrix-sdk-crypto.sqlite3` and friends) in the same folder: the keys and
//! the device they belong to are kept, backed up and lost together. A device
//! is never reused with a fresh store. If the store is gone (or does not
//! match), the bot logs in a new device and deletes the old one, so that
//! other members stop encrypting for keys nobody holds.

use std::path::{Path, PathBuf};

use matrix_sdk::Client;
use tracing::{info, warn};

use crate::config::Config;
use crate::matrix::as_bot::AsBot;
use crate::matrix::client::BotClient;
use crate::matrix::retry::{MatrixError, RetryPolicy};
use crate::matrix::session::{self, Appservice, BOT_SESSION_KEY, BotSession};
use crate::store::Store;

/// The folder under the storage path that holds the device and its stores.
const E2EE_DIR: &str = "e2ee";
/// The device's id and token, next to the stores.
const DEVICE_FILE: &str = "device.json";
/// matrix-sdk's crypto store; without it the device's keys are lost.
const CRYPTO_DB: &str = "matrix-sdk-crypto.sqlite3";
/// The sled `meta` key of the recovery key that unlocks the bot's identity.
const RECOVERY_KEY: &str = "e2ee_recovery_key";

/// The folder of the bot's device and crypto store.
fn e2ee_dir(config: &Config) -> PathBuf {
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
    const OP: &str = "save the bot's device";
    let tmp = dir.join(format!("{DEVICE_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(session).map_err(|e| MatrixError::other(OP, e))?;
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| MatrixError::other(OP, e))?;
        file.write_all(&text)
            .and_then(|_| file.sync_all())
            .map_err(|e| MatrixError::other(OP, e))?;
    }
    std::fs::rename(&tmp, dir.join(DEVICE_FILE)).map_err(|e| MatrixError::other(OP, e))
}

/// Opens the bot's device with its crypto store, or makes a new device when
/// the store is missing or belongs to another device. Returns the client.
pub(crate) async fn open(
    config: &Config,
    store: &Store,
    appservice: &Appservice,
    as_bot: &AsBot,
    policy: RetryPolicy,
) -> Result<Client, MatrixError> {
    let dir = e2ee_dir(config);
    std::fs::create_dir_all(&dir).map_err(|e| MatrixError::other("create the e2ee folder", e))?;
    let kept = read_device(&dir).filter(|s| &s.user_id == as_bot.user_id());
    let has_keys = dir.join(CRYPTO_DB).exists();
    // The device this bridge used last, to delete it if it cannot be kept.
    let mut previous: Option<BotSession> = store
        .meta(BOT_SESSION_KEY)
        .map_err(|e| MatrixError::other("load bot session", e))?;
    match (kept, has_keys) {
        (Some(session), true) => {
            let client = session::build_client(config, Some(&dir)).await?;
            match session::restore(&client, &session).await {
                Ok(()) => match BotClient::new(client.clone(), policy).whoami().await {
                    Ok(_) => {
                        info!(device_id = %session.device_id, "reusing the bot's encrypted device");
                        return Ok(client);
                    }
                    Err(e) if e.errcode() == Some("M_UNKNOWN_TOKEN") => {
                        warn!(device_id = %session.device_id, "the bot's device was logged out; making a new one");
                    }
                    Err(e) => return Err(e),
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
    new_device(config, store, appservice, as_bot, &dir, previous).await
}

async fn new_device(
    config: &Config,
    store: &Store,
    appservice: &Appservice,
    as_bot: &AsBot,
    dir: &Path,
    previous: Option<BotSession>,
) -> Result<Client, MatrixError> {
    // Whatever is left belongs to no device we will use: start clean.
    std::fs::remove_dir_all(dir).map_err(|e| MatrixError::other("clear the e2ee folder", e))?;
    std::fs::create_dir_all(dir).map_err(|e| MatrixError::other("create the e2ee folder", e))?;
    let session = appservice.login_bot().await?;
    let client = session::build_client(config, Some(dir)).await?;
    session::restore(&client, &session).await?;
    write_device(dir, &session)?;
    store
        .set_meta(BOT_SESSION_KEY, &session)
        .await
        .map_err(|e| MatrixError::other("save bot session", e))?;
    info!(device_id = %session.device_id, "the bot logged in with a new encrypted device");
    if let Some(old) = previous.filter(|old| old.device_id != session.device_id) {
        match as_bot.delete_device(&old.device_id).await {
            Ok(()) => info!(device_id = %old.device_id, "deleted the bot's previous device"),
            Err(e) => {
                warn!(device_id = %old.device_id, error = %e, "cannot delete the bot's previous device")
            }
        }
    }
    Ok(client)
}

/// Cross-signs the bot's device, so that clients sharing keys only with
/// verified identities include it. The first device creates the identity
/// (no interactive auth is needed for a first upload) and puts its private
/// keys in server-side secret storage, under a recovery key kept in the sled
/// store, outside `e2ee/`. A device made after the crypto store was lost gets
/// them back with that key and signs itself.
///
/// These are matrix-sdk's multi-request operations, not single calls, so
/// they are not retried: a failure is logged, and the next start tries again.
pub(crate) async fn cross_sign(client: &Client, store: &Store) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{owned_device_id, owned_user_id};

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
}
