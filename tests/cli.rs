//! The command line on its own: `salon transcribe` on real recorded speech
//! with the installed Whisper weights, and `salon summarize` on a meeting
//! transcript.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
    )
    .parent()
    .unwrap()
    .to_owned()
}

fn models() -> PathBuf {
    let dir = std::env::var_os("SALON_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"));
    assert!(
        dir.join("tiny.en/model.bin").exists(),
        "no Whisper models in {}: run scripts/install-models.sh",
        dir.display()
    );
    dir
}

fn salon(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_salon"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn transcribe_prints_timed_segments_of_recorded_speech() {
    let jfk = root().join("../shared/testdata/jfk.flac");
    assert!(jfk.exists(), "jfk.flac is in ../shared/testdata");
    let model = models().join("tiny.en");
    let (ok, out, err) = salon(&[
        "transcribe",
        "--model",
        model.to_str().unwrap(),
        "--language",
        "en",
        jfk.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let first = out.lines().next().expect("at least one segment");
    assert!(first.starts_with("[00:00"), "{first}");
    assert!(first.contains(" --> "), "{first}");
    let text = out.to_lowercase();
    for words in [
        "ask not what your country can do for you",
        "what you can do for your country",
    ] {
        assert!(text.contains(words), "missing {words:?} in:\n{out}");
    }
}

#[test]
fn transcribe_explains_a_missing_model_and_a_bad_file() {
    let empty = tempfile::tempdir().unwrap();
    let jfk = root().join("../shared/testdata/jfk.flac");
    let (ok, _, err) = salon(&[
        "transcribe",
        "--model",
        empty.path().to_str().unwrap(),
        jfk.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("install-models.sh"), "{err}");
    let not_audio = empty.path().join("notes.wav");
    std::fs::write(&not_audio, "this is not audio").unwrap();
    let model = models().join("tiny.en");
    let (ok, _, err) = salon(&[
        "transcribe",
        "--model",
        model.to_str().unwrap(),
        not_audio.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.starts_with("salon: "), "{err}");
}

#[test]
fn summarize_prints_minutes_with_decisions_and_owned_actions() {
    let fixture = root().join("minutes/tests/fixtures/meeting_en.json");
    let (ok, out, err) = salon(&["summarize", fixture.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.starts_with('#'), "Markdown with a title:\n{out}");
    let lower = out.to_lowercase();
    assert!(lower.contains("decision"), "{out}");
    assert!(lower.contains("action"), "{out}");
    // Owners as said in the meeting ("Alice will send the budget by Friday").
    assert!(
        out.contains("**Alice Martin** — Send the updated budget by Friday"),
        "{out}"
    );
    assert!(
        out.contains("**Bob Chen** — Write the release notes"),
        "{out}"
    );
}
