//! Model folders: the installed ones check out, broken ones give clean errors.

mod common;

use std::path::Path;

use salon_speech::{SpeechError, WhisperModel, check_model};

fn copy_side_files(from: &Path, to: &Path) {
    for name in ["config.json", "vocabulary.txt", "tokenizer.json"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

#[test]
fn installed_models_pass_the_doctor_check() {
    let tiny = check_model(&common::model_dir("tiny.en")).unwrap();
    assert_eq!(tiny.known_as, Some("tiny.en"));
    assert!(!tiny.multilingual);
    let base = check_model(&common::model_dir("base")).unwrap();
    assert_eq!(base.known_as, Some("base"));
    assert!(base.multilingual);
}

#[test]
fn truncated_model_bin_gives_a_clean_error() {
    let source = common::model_dir("tiny.en");
    let dir = common::scratch_dir("truncated-model");
    copy_side_files(&source, &dir);
    let bytes = std::fs::read(source.join("model.bin")).unwrap();
    std::fs::write(dir.join("model.bin"), &bytes[..bytes.len() / 2]).unwrap();

    let err = check_model(&dir).unwrap_err();
    assert!(matches!(err, SpeechError::CorruptModel { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    let err = WhisperModel::load(&dir)
        .err()
        .expect("a truncated model must not load");
    assert!(matches!(err, SpeechError::CorruptModel { .. }), "{err}");
}

#[test]
fn garbage_model_bin_gives_a_clean_error() {
    let dir = common::scratch_dir("garbage-model");
    copy_side_files(&common::model_dir("tiny.en"), &dir);
    std::fs::write(
        dir.join("model.bin"),
        b"this is not a CTranslate2 model at all",
    )
    .unwrap();
    let err = WhisperModel::load(&dir)
        .err()
        .expect("garbage must not load");
    assert!(matches!(err, SpeechError::CorruptModel { .. }), "{err}");
}

#[test]
fn missing_model_tells_how_to_install() {
    let dir = common::scratch_dir("missing-model");
    let err = check_model(&dir).unwrap_err();
    assert!(matches!(err, SpeechError::ModelFile { .. }), "{err}");
    assert!(
        err.to_string().contains("scripts/install-models.sh"),
        "{err}"
    );
}
