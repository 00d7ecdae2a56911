//! Shared helpers for the engine tests: where the models are, word error
//! rate, and test speech made with espeak-ng and sox.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use salon_speech::WhisperModel;

pub const JFK_REFERENCE: &str = "And so my fellow Americans, ask not what your country can do for you, \
                                 ask what you can do for your country.";

pub fn workspace_dir() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
}

/// `$SALON_MODELS_DIR/<name>` or `<workspace>/models/<name>`; fails the test
/// with the install command when the model is not there.
pub fn model_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("SALON_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("models"));
    let dir = root.join(name);
    assert!(
        dir.join("model.bin").is_file(),
        "Whisper model {name} is missing at {}: run scripts/install-models.sh",
        dir.display()
    );
    dir
}

pub fn load(name: &str) -> WhisperModel {
    WhisperModel::load(&model_dir(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

pub fn jfk_flac() -> PathBuf {
    let path = workspace_dir().join("../shared/testdata/jfk.flac");
    let path = if path.is_file() {
        path
    } else {
        workspace_dir().join("shared/testdata/jfk.flac")
    };
    assert!(
        path.is_file(),
        "jfk.flac not found next to the workspace (../shared/testdata)"
    );
    path
}

/// Words, lowercased, without punctuation.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate of `hypothesis` against `reference`.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let r = words(reference);
    let h = words(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut row = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let substitution = prev[j] + usize::from(rw != hw);
            row[j + 1] = substitution.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// Speaks `text` with espeak-ng (`voice`, e.g. `en` or `fr`) into a 16 kHz
/// mono wav made by sox, in `dir`.
pub fn espeak_wav(dir: &Path, name: &str, voice: &str, text: &str) -> PathBuf {
    let raw = dir.join(format!("{name}-raw.wav"));
    let out = dir.join(format!("{name}.wav"));
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng is not installed: apt-get install espeak-ng sox");
    assert!(status.success(), "espeak-ng failed");
    let status = Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&out)
        .status()
        .expect("sox is not installed: apt-get install espeak-ng sox");
    assert!(status.success(), "sox failed");
    out
}

/// A fresh scratch folder under the target dir.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("salon-speech-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch folder");
    dir
}

/// Words heard that were never said, as a share of the words said: the
/// insertions of the minimal word alignment (a misheard word is a
/// substitution and counts in the WER; an invented word is an insertion).
pub fn inserted_rate(reference: &str, hypothesis: &str) -> f64 {
    let r = words(reference);
    let h = words(hypothesis);
    // (cost, insertions), ties broken towards fewer insertions
    let mut prev: Vec<(usize, usize)> = (0..=h.len()).map(|j| (j, j)).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut row = vec![(i + 1, 0); h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let diagonal = (prev[j].0 + usize::from(rw != hw), prev[j].1);
            let deletion = (prev[j + 1].0 + 1, prev[j + 1].1);
            let insertion = (row[j].0 + 1, row[j].1 + 1);
            row[j + 1] = [diagonal, deletion, insertion].into_iter().min().unwrap();
        }
        prev = row;
    }
    prev[h.len()].1 as f64 / r.len().max(1) as f64
}
