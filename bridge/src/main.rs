//! The `salon` command line: `generate-registration`, `run`, `doctor`,
//! `transcribe` and `summarize`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use salon::config::Config;
use salon::doctor::Check;

#[derive(Parser)]
#[command(name = "salon", version, about = "Turns Matrix rooms into call rooms")]
struct Cli {
    /// Path to the config file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "config.toml",
        env = "SALON_CONFIG"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a new appservice registration (appservice.yaml) with fresh tokens.
    GenerateRegistration {
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Run the bridge.
    Run,
    /// Check the homeserver, the tokens, the storage and the public URL.
    Doctor,
    /// Transcribe an audio file (wav, flac, ogg/opus) on this machine, one
    /// segment per line as `[start --> end] text`.
    Transcribe {
        /// A model folder (with model.bin), or a folder of models (picks base,
        /// else tiny.en). Default: $SALON_MODELS_DIR, else ./models.
        #[arg(long)]
        model: Option<PathBuf>,
        /// auto, en, fr, …
        #[arg(long, default_value = "auto")]
        language: String,
        file: PathBuf,
    },
    /// Print the minutes of a transcript (.json, .md or .vtt) as Markdown.
    Summarize { file: PathBuf },
}

/// Finds the Whisper model folder: an explicit one, or the installed ones.
fn model_dir(explicit: Option<PathBuf>) -> PathBuf {
    let root = explicit
        .or_else(|| std::env::var_os("SALON_MODELS_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("models"));
    if root.join("model.bin").exists() {
        return root;
    }
    for name in ["base", "tiny.en"] {
        if root.join(name).join("model.bin").exists() {
            return root.join(name);
        }
    }
    root
}

fn transcribe(
    model: Option<PathBuf>,
    language: &str,
    file: &std::path::Path,
) -> Result<(), String> {
    // quiet by default; SALON_LOG=salon_speech=debug shows each window's
    // no-speech probability and what the guards dropped (symphonia reports
    // a file it cannot read as an ERROR line; the command says it once)
    init_logging("warn,symphonia_core=off,symphonia=off", false);
    let dir = model_dir(model);
    let model = salon_speech::WhisperModel::load(&dir).map_err(|e| {
        format!("{e} (install the models with scripts/install-models.sh, or pass --model DIR)")
    })?;
    let audio = salon_speech::decode_audio_file(file).map_err(|e| e.to_string())?;
    let options = salon_speech::TranscribeOptions {
        language: salon_speech::Language::parse(language),
        ..Default::default()
    };
    let transcript = model
        .transcribe(&audio, &options)
        .map_err(|e| e.to_string())?;
    for segment in &transcript.segments {
        println!("{segment}");
    }
    Ok(())
}

fn summarize(file: &std::path::Path) -> Result<(), String> {
    let meeting = salon_minutes::load_transcript(file).map_err(|e| e.to_string())?;
    let minutes = salon_minutes::BuiltinSummarizer.summarize(&meeting);
    print!("{}", salon_minutes::render_markdown(&minutes, &meeting));
    Ok(())
}

fn init_logging(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SALON_LOG")
        .unwrap_or_else(|_| {
            // matrix-sdk logs every sync at info and harmless 404s at error; the
            // bridge reports the failures that matter itself (crypto.rs, matrix.rs).
            tracing_subscriber::EnvFilter::new(format!(
                "matrix_sdk=warn,matrix_sdk_base=warn,matrix_sdk_crypto=warn,matrix_sdk_crypto::backups=error,matrix_sdk::http_client=off,{level}"
            ))
        });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::GenerateRegistration { output } => {
            let config = match Config::load_without_tokens(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("salon: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let yaml = salon::config::registration::generate(&config);
            match output {
                None => print!("{yaml}"),
                Some(path) => {
                    if let Err(e) = write_private(&path, &yaml) {
                        eprintln!("salon: cannot write {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Run => {
            let config = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("salon: {e}");
                    return ExitCode::FAILURE;
                }
            };
            init_logging(&config.logging.level, config.logging.json);
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(salon::app::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("salon: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Transcribe {
            model,
            language,
            file,
        } => match transcribe(model, &language, &file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("salon: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Summarize { file } => match summarize(&file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("salon: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Doctor => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            let checks = runtime.block_on(salon::doctor::run(&cli.config));
            let mut failed = false;
            for check in &checks {
                match check {
                    Check::Ok(text) => println!("✓ {text}"),
                    Check::Warn(text) => println!("! {text}"),
                    Check::Fail(text) => {
                        failed = true;
                        println!("✗ {text}")
                    }
                }
            }
            if failed {
                println!("Salon is not ready: fix the first ✗ above and run `salon doctor` again.");
                ExitCode::FAILURE
            } else {
                println!("All checks passed.");
                ExitCode::SUCCESS
            }
        }
    }
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}
