//! Prints the built-in minutes of a transcript file as Markdown, as
//! `salon summarize` does: `cargo run -p salon-minutes --example summarize -- FILE.{json,md,vtt}`.

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: summarize TRANSCRIPT.{{json,md,vtt}}"))?;
    let meeting = salon_minutes::load_transcript(&path)?;
    let minutes = salon_minutes::BuiltinSummarizer.summarize(&meeting);
    print!("{}", salon_minutes::render_markdown(&minutes, &meeting));
    Ok(())
}
