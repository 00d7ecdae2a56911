//! Transcribes an audio file with the built-in Whisper engine and prints one
//! `[start --> end] text` line per segment; with `--repeat N` it also times N
//! runs after one warm-up run (the Salon side of `bench/asr/run`).
//!
//! `cargo run --release -p salon-speech --example transcribe -- --model models/base [--language auto|en|fr] [--repeat 3] FILE`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use salon_speech::{Language, TranscribeOptions, WhisperModel, decode_audio_file};

fn main() -> anyhow::Result<()> {
    let mut model = None;
    let mut language = Language::Auto;
    let mut repeat = 0usize;
    let mut full_window = false;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = args.next().map(PathBuf::from),
            "--language" => language = Language::parse(&args.next().unwrap_or_default()),
            "--repeat" => repeat = args.next().unwrap_or_default().parse()?,
            "--full-window" => full_window = true,
            other if !other.starts_with("--") => file = Some(PathBuf::from(other)),
            other => bail!("unknown option {other}"),
        }
    }
    let (Some(model), Some(file)) = (model, file) else {
        bail!(
            "usage: transcribe --model DIR [--language auto|en|fr] [--repeat N] [--full-window] FILE"
        );
    };
    let started = Instant::now();
    let whisper =
        WhisperModel::load(&model).with_context(|| format!("loading {}", model.display()))?;
    let load_s = started.elapsed().as_secs_f64();
    let pcm = decode_audio_file(&file)?;
    let opts = TranscribeOptions {
        language,
        short_window: !full_window,
        ..TranscribeOptions::default()
    };
    let started = Instant::now();
    let transcript = whisper.transcribe(&pcm, &opts)?;
    let first_s = started.elapsed().as_secs_f64();
    for segment in &transcript.segments {
        println!("{segment}");
    }
    eprintln!(
        "language={} load_s={load_s:.3} first_run_s={first_s:.3}",
        transcript.language
    );
    if repeat > 0 {
        let mut times = Vec::new();
        for _ in 0..repeat {
            let started = Instant::now();
            let again = whisper.transcribe(&pcm, &opts)?;
            times.push(started.elapsed().as_secs_f64());
            if again != transcript {
                bail!("a repeated run gave a different transcript");
            }
        }
        times.sort_by(f64::total_cmp);
        println!("time_s={:.3}", times[times.len() / 2]);
    }
    Ok(())
}
