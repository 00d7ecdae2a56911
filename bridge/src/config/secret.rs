//! Secrets in the configuration: tokens and keys, held in [`Secret`] so that no
//! `Debug` of the config (or of the file as parsed) ever prints one.
//!
//! In the flow: the TOML keys that hold a secret deserialize straight into
//! [`Secret`]; the keys that point at a secret (`*_file`, `*_env`) are read here
//! while the config is validated. Nothing else in the bridge reads secrets from
//! files or the environment.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// A secret string (token, key). Its `Debug` is redacted and it has no `Display`.
/// It serializes as itself only so that `registration.rs` can write the tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Reads a secret kept alone in a file (trimmed; an empty file is refused).
pub(super) fn from_file(key: &'static str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(value))
}

/// Reads a secret from the environment variable `name`, if the config names one.
pub(super) fn from_env(
    key: &'static str,
    name: Option<&str>,
) -> Result<Option<Secret>, ConfigError> {
    let Some(name) = name else {
        return Ok(None);
    };
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(Some(Secret::new(value.trim()))),
        _ => Err(invalid(
            key,
            format!("the environment variable `{name}` is not set"),
        )),
    }
}
