//! The live path's pure parts on real audio and the real base model, with no
//! sockets: espeak speech between silences is encoded to 48 kHz Opus as a
//! browser sends it, decoded by [`OpusTrackDecoder`], cut into utterances by
//! the [`UtteranceSegmenter`] and transcribed utterance by utterance, as the
//! bridge does. What comes out must hold the first words and no words that
//! were never said, like a looping fake microphone in the browser journey.

mod common;

use std::sync::OnceLock;

use salon_speech::live::{OpusTrackDecoder, SegmenterConfig, UtteranceSegmenter};
use salon_speech::{Language, TranscribeOptions, WhisperModel, decode_audio_file};

fn model() -> &'static WhisperModel {
    static MODEL: OnceLock<WhisperModel> = OnceLock::new();
    MODEL.get_or_init(|| common::load("base"))
}

const BRIEFING: &str = "Good morning everyone. We agreed to publish the budget report on Friday. \
                        Alice will send the final figures to the minister.";

/// `ms` of digital silence at 16 kHz.
fn silence(ms: usize) -> Vec<f32> {
    vec![0.0; ms * 16]
}

/// 16 kHz audio through 48 kHz Opus (20 ms packets) and back, then through
/// the segmenter; returns each utterance's times and text.
fn live_transcripts(pcm16k: &[f32], language: &str) -> Vec<(u64, u64, String)> {
    let up: Vec<f32> = pcm16k.iter().flat_map(|&s| [s, s, s]).collect();
    let mut encoder =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    let mut decoder = OpusTrackDecoder::new(1).unwrap();
    let mut segmenter = UtteranceSegmenter::new(SegmenterConfig::default());
    let mut utterances = Vec::new();
    let mut position_ms = 0u64;
    for frame in up.chunks(960) {
        let mut frame = frame.to_vec();
        frame.resize(960, 0.0);
        let packet = encoder.encode_vec_float(&frame, 4000).unwrap();
        let pcm = decoder.decode_packet(&packet).unwrap();
        utterances.extend(segmenter.push(position_ms, &pcm));
        position_ms += pcm.len() as u64 / 16;
    }
    utterances.extend(segmenter.finish());
    let opts = TranscribeOptions {
        language: Language::parse(language),
        ..TranscribeOptions::default()
    };
    utterances
        .into_iter()
        .map(|u| {
            let text = model().transcribe(&u.pcm, &opts).unwrap().text();
            eprintln!("utterance {}..{} ms: {text}", u.start_ms, u.end_ms);
            (u.start_ms, u.end_ms, text)
        })
        .collect()
}

fn espeak(name: &str, voice: &str, text: &str) -> Vec<f32> {
    let dir = common::scratch_dir(&format!("live-{name}"));
    decode_audio_file(&common::espeak_wav(&dir, name, voice, text)).unwrap()
}

#[test]
fn a_looping_microphone_is_transcribed_without_invented_words() {
    let speech = espeak("briefing", "en", BRIEFING);
    // 1 s of silence, the briefing, 3 s of silence, three times over
    let mut pcm = Vec::new();
    for _ in 0..3 {
        pcm.extend(silence(1000));
        pcm.extend_from_slice(&speech);
        pcm.extend(silence(3000));
    }
    let utterances = live_transcripts(&pcm, "en");
    assert_eq!(
        utterances.len(),
        3,
        "one utterance per loop: {utterances:?}"
    );
    let said = [BRIEFING; 3].join(" ");
    let heard: Vec<&str> = utterances.iter().map(|(_, _, t)| t.as_str()).collect();
    let heard = heard.join(" ");
    let inserted = common::inserted_rate(&said, &heard);
    let wer = common::wer(&said, &heard);
    eprintln!("looped: wer {wer:.3} inserted {inserted:.3}");
    assert!(
        inserted < 0.05,
        "{inserted:.3} of the words were never said: {heard:?}"
    );
    assert!(wer <= 0.15, "WER {wer:.3}: {heard:?}");
    for (_, _, text) in &utterances {
        let words = common::words(text);
        assert_eq!(
            words.first().map(String::as_str),
            Some("good"),
            "the first words are lost: {text:?}"
        );
    }
}

#[test]
fn a_sentence_said_twice_live_is_heard_twice() {
    let sentence = "We will publish the report on Friday.";
    let speech = espeak("twice", "en", sentence);
    let mut pcm = silence(500);
    pcm.extend_from_slice(&speech);
    pcm.extend(silence(3000));
    pcm.extend_from_slice(&speech);
    pcm.extend(silence(1000));
    let utterances = live_transcripts(&pcm, "en");
    let heard: String = utterances
        .iter()
        .map(|(_, _, t)| t.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let times = common::words(&heard)
        .iter()
        .filter(|w| *w == "friday")
        .count();
    assert_eq!(times, 2, "{heard:?}");
}
