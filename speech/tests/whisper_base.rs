//! The built-in engine with whisper base (multilingual): English and French.

mod common;

use std::sync::OnceLock;

use salon_speech::{Language, TranscribeOptions, WhisperModel, decode_audio_file};

fn model() -> &'static WhisperModel {
    static MODEL: OnceLock<WhisperModel> = OnceLock::new();
    MODEL.get_or_init(|| common::load("base"))
}

#[test]
fn jfk_speech_is_transcribed_within_ten_percent_wer_and_detected_english() {
    let pcm = decode_audio_file(&common::jfk_flac()).unwrap();
    let transcript = model()
        .transcribe(&pcm, &TranscribeOptions::default())
        .unwrap();
    let text = transcript.text();
    let wer = common::wer(common::JFK_REFERENCE, &text);
    assert!(wer <= 0.10, "WER {wer:.2} for {text:?}");
    assert_eq!(transcript.language, "en");
    let last = transcript.segments.last().unwrap();
    assert!(
        (9_000..=11_500).contains(&last.end_ms),
        "ends at {}",
        last.end_ms
    );
}

#[test]
fn espeak_english_sentence_is_transcribed_within_ten_percent_wer() {
    let dir = common::scratch_dir("base-espeak-en");
    let sentence = "We should ask the design team to review the new login page before Friday.";
    let wav = common::espeak_wav(&dir, "sentence", "en", sentence);
    let pcm = decode_audio_file(&wav).unwrap();
    let opts = TranscribeOptions {
        language: Language::Code("en".into()),
        ..TranscribeOptions::default()
    };
    let transcript = model().transcribe(&pcm, &opts).unwrap();
    let wer = common::wer(sentence, &transcript.text());
    assert!(wer <= 0.10, "WER {wer:.2} for {:?}", transcript.text());
    assert_eq!(transcript.language, "en");
}

#[test]
fn french_speech_is_detected_as_french() {
    let dir = common::scratch_dir("base-espeak-fr");
    let sentence = "Bonjour à tous, la réunion commence maintenant et nous allons parler du budget de l'année prochaine.";
    let wav = common::espeak_wav(&dir, "phrase", "fr", sentence);
    let pcm = decode_audio_file(&wav).unwrap();
    let transcript = model()
        .transcribe(&pcm, &TranscribeOptions::default())
        .unwrap();
    assert_eq!(transcript.language, "fr", "text: {:?}", transcript.text());
    assert!(!transcript.segments.is_empty());
}
