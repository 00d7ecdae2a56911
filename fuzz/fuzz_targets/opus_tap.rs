//! Fuzz target: Opus packets on the transcription tap, decoded and cut into
//! utterances as `bridge/src/transcription/track.rs` does. The input is a
//! run of packets, each a length byte then that many bytes.
#![no_main]
use salon_speech::live::{OpusTrackDecoder, SegmenterConfig, UtteranceSegmenter};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut decoder = OpusTrackDecoder::new(1).expect("an Opus decoder");
    let mut segmenter = UtteranceSegmenter::new(SegmenterConfig::default());
    let mut rest = data;
    let mut at_ms = 0;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        rest = tail;
        if let Ok(pcm) = decoder.decode_packet(packet) {
            let _ = segmenter.push(at_ms, &pcm);
            at_ms += pcm.len() as u64 / 16;
        }
    }
    let _ = segmenter.finish();
});
