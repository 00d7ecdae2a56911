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

#[test]
fn audio_longer_than_one_window_is_transcribed_in_order() {
    // jfk, two espeak sentences, jfk again: about 34 s, two windows
    let dir = common::scratch_dir("tiny-en-long");
    let first = "We should ask the design team to review the new login page before Friday.";
    let second = "The meeting is over, thank you all for coming, and see you next week.";
    let jfk = decode_audio_file(&common::jfk_flac()).unwrap();
    let a = decode_audio_file(&common::espeak_wav(&dir, "a", "en", first)).unwrap();
    let b = decode_audio_file(&common::espeak_wav(&dir, "b", "en", second)).unwrap();
    let gap = vec![0.0f32; 16_000];
    let pcm: Vec<f32> = [&jfk, &gap, &a, &gap, &b, &gap, &jfk]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let seconds = pcm.len() as u64 / 16;
    let transcript = model()
        .transcribe(&pcm, &TranscribeOptions::default())
        .unwrap();
    let reference = [common::JFK_REFERENCE, first, second, common::JFK_REFERENCE].join(" ");
    let wer = common::wer(&reference, &transcript.text());
    assert!(wer <= 0.10, "WER {wer:.2} for {:?}", transcript.text());
    let ends: Vec<u64> = transcript.segments.iter().map(|s| s.end_ms).collect();
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{ends:?}");
    // the last segment ends with the audio, past the first 30 s window
    assert!(
        (seconds - 2_000..=seconds).contains(ends.last().unwrap()),
        "{ends:?} for {seconds} ms"
    );
}
