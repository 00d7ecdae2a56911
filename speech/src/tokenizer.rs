//! Whisper's vocabulary: token ids to text, and the special tokens the decoder
//! is steered with. It reads `vocabulary.txt` (one byte-level BPE token per
//! line, line number = id) and `config.json` (language ids, suppressed ids),
//! both shipped next to `model.bin`. Salon only ever decodes ids to text, so
//! no BPE merges are needed.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::SpeechError;

/// The ids of the special tokens the decoding loop uses.
#[derive(Clone, Debug)]
pub struct SpecialTokens {
    pub eot: u32,
    pub sot: u32,
    pub transcribe: u32,
    pub translate: Option<u32>,
    pub sot_lm: Option<u32>,
    pub sot_prev: Option<u32>,
    pub no_speech: u32,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
}

/// Vocabulary plus the token lists from `config.json`.
pub struct Tokenizer {
    tokens: Vec<Vec<u8>>,
    pub special: SpecialTokens,
    /// Language code ("en", "fr", …) and its token id.
    pub languages: Vec<(String, u32)>,
    /// Tokens never sampled (non-speech symbols).
    pub suppress: Vec<u32>,
    /// Tokens not sampled as the first text token (blank, EOT).
    pub suppress_at_begin: Vec<u32>,
}

#[derive(Deserialize)]
struct ModelConfig {
    #[serde(default)]
    lang_ids: Vec<u32>,
    #[serde(default)]
    suppress_ids: Vec<u32>,
    #[serde(default)]
    suppress_ids_begin: Vec<u32>,
}

impl Tokenizer {
    pub fn load(dir: &Path) -> Result<Self, SpeechError> {
        let vocab_path = dir.join("vocabulary.txt");
        let text = read(&vocab_path)?;
        let unicode_to_byte = unicode_to_byte();
        let mut by_text = HashMap::new();
        let tokens: Vec<Vec<u8>> = text
            .lines()
            .enumerate()
            .map(|(id, line)| {
                by_text.insert(line.to_owned(), id as u32);
                if line.starts_with("<|") && line.ends_with("|>") {
                    return Vec::new();
                }
                line.chars()
                    .map(|c| unicode_to_byte.get(&c).copied().unwrap_or(b'?'))
                    .collect()
            })
            .collect();
        let id = |name: &str| by_text.get(name).copied();
        let need = |name: &str| {
            id(name).ok_or_else(|| {
                SpeechError::corrupt(&vocab_path, format!("vocabulary has no {name} token"))
            })
        };
        let no_timestamps = need("<|notimestamps|>")?;
        let special = SpecialTokens {
            eot: need("<|endoftext|>")?,
            sot: need("<|startoftranscript|>")?,
            transcribe: need("<|transcribe|>")?,
            translate: id("<|translate|>"),
            sot_lm: id("<|startoflm|>"),
            sot_prev: id("<|startofprev|>"),
            no_speech: id("<|nospeech|>")
                .or_else(|| id("<|nocaptions|>"))
                .ok_or_else(|| SpeechError::corrupt(&vocab_path, "no no-speech token"))?,
            no_timestamps,
            timestamp_begin: id("<|0.00|>").unwrap_or(no_timestamps + 1),
        };

        let config_path = dir.join("config.json");
        let config: ModelConfig = serde_json::from_str(&read(&config_path)?)
            .map_err(|e| SpeechError::corrupt(&config_path, e.to_string()))?;
        let languages = config
            .lang_ids
            .iter()
            .filter_map(|&lang_id| {
                let token = text.lines().nth(lang_id as usize)?;
                let code = token.strip_prefix("<|")?.strip_suffix("|>")?;
                Some((code.to_owned(), lang_id))
            })
            .collect();
        Ok(Tokenizer {
            tokens,
            special,
            languages,
            suppress: config.suppress_ids,
            suppress_at_begin: config.suppress_ids_begin,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The text of `ids`, skipping special and timestamp tokens.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter(|&&id| id < self.special.eot)
            .filter_map(|&id| self.tokens.get(id as usize))
            .flatten()
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.languages
            .iter()
            .find(|(c, _)| c == code)
            .map(|&(_, id)| id)
    }
}

fn read(path: &Path) -> Result<String, SpeechError> {
    std::fs::read_to_string(path).map_err(|source| SpeechError::ModelFile {
        path: path.to_owned(),
        source,
    })
}

/// GPT-2's byte-level mapping, reversed: printable bytes stand for
/// themselves, the others were shifted to U+0100 and up.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut map = HashMap::new();
    let mut shifted = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        let c = if printable {
            char::from(b)
        } else {
            shifted += 1;
            char::from_u32(255 + shifted).unwrap_or('?')
        };
        map.insert(c, b);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_mapping_covers_space_and_newline() {
        let map = unicode_to_byte();
        assert_eq!(map.len(), 256);
        assert_eq!(map[&'Ġ'], b' ');
        assert_eq!(map[&'Ċ'], b'\n');
        assert_eq!(map[&'a'], b'a');
    }
}
