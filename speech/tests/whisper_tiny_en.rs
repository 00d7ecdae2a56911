//! The built-in engine with whisper tiny.en on real and synthetic English.

mod common;

use std::sync::OnceLock;

use salon_speech::{Language, SpeechError, TranscribeOptions, WhisperModel, decode_audio_file};

fn model() -> &'static WhisperModel {
    static MODEL: OnceLock<WhisperModel> = OnceLock::new();
    MODEL.get_or_init(|| common::load("tiny.en"))
}

#[test]
fn jfk_speech_is_transcribed_within_ten_percent_wer() {
    let pcm = decode_audio_file(&common::jfk_flac()).unwrap();
    let transcript = model()
        .transcribe(&pcm, &TranscribeOptions::default())
        .unwrap();
    let text = transcript.text();
    let wer = common::wer(common::JFK_REFERENCE, &text);
    assert!(wer <= 0.10, "WER {wer:.2} for {text:?}");
    assert_eq!(transcript.language, "en");
    let first = &transcript.segments[0];
    let last = transcript.segments.last().unwrap();
    assert!(first.start_ms < 1_000, "starts at {}", first.start_ms);
    assert!(
        (9_000..=11_500).contains(&last.end_ms),
        "ends at {}",
        last.end_ms
    );
    assert!(transcript.segments.iter().all(|s| s.start_ms < s.end_ms));
    assert!(first.no_speech_prob < 0.2);
}

#[test]
fn espeak_english_sentence_is_transcribed_within_ten_percent_wer() {
    let dir = common::scratch_dir("tiny-en-espeak");
    let sentence = "We should ask the design team to review the new login page before Friday.";
    let wav = common::espeak_wav(&dir, "sentence", "en", sentence);
    let pcm = decode_audio_file(&wav).unwrap();
    let text = model()
        .transcribe(&pcm, &TranscribeOptions::default())
        .unwrap()
        .text();
    let wer = common::wer(sentence, &text);
    assert!(wer <= 0.10, "WER {wer:.2} for {text:?}");
}

#[test]
fn silence_gives_no_segments() {
    let pcm = vec![0.0f32; 16_000 * 5];
    let transcript = model()
        .transcribe(&pcm, &TranscribeOptions::default())
        .unwrap();
    assert!(transcript.segments.is_empty(), "{:?}", transcript.segments);
}

#[test]
fn english_only_model_refuses_french() {
    let opts = TranscribeOptions {
        language: Language::Code("fr".into()),
        ..TranscribeOptions::default()
    };
    let err = model().transcribe(&[0.0; 16_000], &opts).unwrap_err();
    assert!(
        matches!(err, SpeechError::UnsupportedLanguage(ref l) if l == "fr"),
        "{err}"
    );
}
