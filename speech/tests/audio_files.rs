//! Audio files of every supported kind decode to 16 kHz mono.

mod common;

use std::fs::File;
use std::process::Command;

use salon_speech::{SpeechError, decode_audio_file};

#[test]
fn flac_decodes_to_sixteen_khz_mono() {
    let pcm = decode_audio_file(&common::jfk_flac()).unwrap();
    // jfk.flac is 11.0 s long
    assert!(
        (175_000..=177_000).contains(&pcm.len()),
        "{} samples",
        pcm.len()
    );
    let peak = pcm.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.1 && peak <= 1.0, "peak {peak}");
}

#[test]
fn wav_at_another_rate_is_resampled() {
    let dir = common::scratch_dir("wav-22k");
    let raw = dir.join("hello.wav");
    let status = Command::new("espeak-ng")
        .args(["-w"])
        .arg(&raw)
        .arg("hello there")
        .status()
        .expect("espeak-ng is not installed: apt-get install espeak-ng sox");
    assert!(status.success());
    // espeak-ng writes 22050 Hz; sox tells the duration
    let out = Command::new("soxi")
        .arg("-D")
        .arg(&raw)
        .output()
        .expect("sox is not installed: apt-get install espeak-ng sox");
    let seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let pcm = decode_audio_file(&raw).unwrap();
    let expected = seconds * 16_000.0;
    assert!(
        (pcm.len() as f64 - expected).abs() < 16.0,
        "{} vs {expected}",
        pcm.len()
    );
}

#[test]
fn ogg_opus_decodes_to_sixteen_khz_mono() {
    // Encode two seconds of a 440 Hz tone at 48 kHz as Ogg/Opus (RFC 7845).
    let dir = common::scratch_dir("ogg-opus");
    let path = dir.join("tone.opus");
    let mut encoder =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).unwrap();
    let pre_skip = encoder.get_lookahead().unwrap() as u16;
    let mut writer = ogg::PacketWriter::new(File::create(&path).unwrap());
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(1);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0u16.to_le_bytes());
    head.push(0);
    writer
        .write_packet(head, 1, ogg::PacketWriteEndInfo::EndPage, 0)
        .unwrap();
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&5u32.to_le_bytes());
    tags.extend_from_slice(b"salon");
    tags.extend_from_slice(&0u32.to_le_bytes());
    writer
        .write_packet(tags, 1, ogg::PacketWriteEndInfo::EndPage, 0)
        .unwrap();
    let samples: Vec<f32> = (0..96_000)
        .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin() * 0.5)
        .collect();
    let frames: Vec<&[f32]> = samples.chunks(960).collect();
    for (i, frame) in frames.iter().enumerate() {
        let packet = encoder.encode_vec_float(frame, 4000).unwrap();
        let last = i + 1 == frames.len();
        let granule = (i as u64 + 1) * 960 + pre_skip as u64;
        let end = if last {
            ogg::PacketWriteEndInfo::EndStream
        } else {
            ogg::PacketWriteEndInfo::NormalPacket
        };
        writer.write_packet(packet, 1, end, granule).unwrap();
    }
    drop(writer);

    let pcm = decode_audio_file(&path).unwrap();
    // this minimal encoder never flushes its lookahead, so the stream ends
    // `pre_skip` samples (312 at 48 kHz, 104 at 16 kHz) short of 2 s
    let expected = 32_000 - pre_skip as i64 / 3;
    assert!(
        (pcm.len() as i64 - expected).abs() < 16,
        "{} samples",
        pcm.len()
    );
    let crossings = pcm[1_600..30_400]
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    // 1.8 s of 440 Hz: 1584 zero crossings
    assert!(
        (1_560..=1_610).contains(&crossings),
        "{crossings} crossings"
    );
}

#[test]
fn a_text_file_is_a_clean_audio_error() {
    let dir = common::scratch_dir("not-audio");
    let path = dir.join("notes.wav");
    std::fs::write(&path, "these are not samples").unwrap();
    let err = decode_audio_file(&path).unwrap_err();
    assert!(matches!(err, SpeechError::Audio { .. }), "{err}");
}
