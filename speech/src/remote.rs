//! The remote engine, for sites with a GPU server: any OpenAI-compatible
//! `POST {base_url}/v1/audio/transcriptions` (faster-whisper-server, WhisperX
//! deployments, the Albert API). Audio goes up as a 16-bit wav in a multipart
//! form with `response_format=verbose_json`, so segments come back with
//! their times. The client is blocking, like the built-in engine: call it
//! from a blocking worker.

use std::time::Duration;

use serde::Deserialize;
use tracing::{debug, info_span};

use crate::SpeechEngine;
use crate::error::SpeechError;
use crate::guard;
use crate::mel::SAMPLE_RATE;
use crate::transcript::{Language, Segment, TranscribeOptions, Transcript};

/// Where the server is and how to talk to it.
#[derive(Clone)]
pub struct RemoteConfig {
    /// e.g. `http://gpu-box:8000` (`/v1/audio/transcriptions` is appended).
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// The `model` form field, e.g. `whisper-1` or `Systran/faster-whisper-large-v3`.
    pub model: String,
    /// Whole-request timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Client for an OpenAI-compatible transcription server.
pub struct RemoteEngine {
    config: RemoteConfig,
    client: reqwest::blocking::Client,
}

#[derive(Deserialize)]
struct VerboseJson {
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    segments: Option<Vec<RemoteSegment>>,
}

#[derive(Deserialize)]
struct RemoteSegment {
    start: f64,
    end: f64,
    text: String,
    #[serde(default)]
    no_speech_prob: f32,
    #[serde(default)]
    avg_logprob: f32,
}

impl RemoteEngine {
    pub fn new(config: RemoteConfig) -> Result<Self, SpeechError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| SpeechError::Remote(e.to_string()))?;
        Ok(RemoteEngine { config, client })
    }

    fn url(&self) -> String {
        format!(
            "{}/v1/audio/transcriptions",
            self.config.base_url.trim_end_matches('/')
        )
    }
}

impl SpeechEngine for RemoteEngine {
    fn transcribe(&self, pcm: &[f32], opts: &TranscribeOptions) -> Result<Transcript, SpeechError> {
        let _span =
            info_span!("remote_transcribe", url = %self.url(), samples = pcm.len()).entered();
        let file = reqwest::blocking::multipart::Part::bytes(wav_bytes(pcm))
            .file_name("audio.wav")
            .mime_str("audio/wav")
            .map_err(|e| SpeechError::Remote(e.to_string()))?;
        let mut form = reqwest::blocking::multipart::Form::new()
            .part("file", file)
            .text("model", self.config.model.clone())
            .text("response_format", "verbose_json")
            .text("temperature", "0");
        if let Language::Code(code) = &opts.language {
            form = form.text("language", code.clone());
        }
        let mut request = self.client.post(self.url()).multipart(form);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .map_err(|e| SpeechError::Remote(format!("request failed: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(SpeechError::Remote(format!(
                "server answered {status}: {body}"
            )));
        }
        let body: VerboseJson = response
            .json()
            .map_err(|e| SpeechError::Remote(format!("unreadable verbose_json answer: {e}")))?;
        let language = body
            .language
            .map(|l| normalise_language(&l))
            .or_else(|| match &opts.language {
                Language::Code(code) => Some(code.clone()),
                Language::Auto => None,
            })
            .unwrap_or_default();
        let segments = match body.segments {
            Some(segments) => segments
                .into_iter()
                .map(|s| Segment {
                    start_ms: (s.start.max(0.0) * 1000.0).round() as u64,
                    end_ms: (s.end.max(0.0) * 1000.0).round() as u64,
                    text: s.text.trim().to_owned(),
                    no_speech_prob: s.no_speech_prob,
                    avg_logprob: s.avg_logprob,
                })
                .filter(|s| !s.text.is_empty())
                .collect(),
            None if !body.text.trim().is_empty() => vec![Segment {
                start_ms: 0,
                end_ms: body
                    .duration
                    .map(|d| (d * 1000.0).round() as u64)
                    .unwrap_or((pcm.len() * 1000 / SAMPLE_RATE) as u64),
                text: body.text.trim().to_owned(),
                no_speech_prob: 0.0,
                avg_logprob: 0.0,
            }],
            None => Vec::new(),
        };
        debug!(segments = segments.len(), %language, "remote transcript received");
        // the server's own guards vary; ours apply to its answer as to ours
        Ok(guard::apply(Transcript { language, segments }, pcm, opts).0)
    }
}

/// OpenAI answers `"english"`; others answer `"en"`.
fn normalise_language(language: &str) -> String {
    let l = language.trim().to_ascii_lowercase();
    match l.as_str() {
        "english" => "en".into(),
        "french" => "fr".into(),
        "german" => "de".into(),
        "spanish" => "es".into(),
        "italian" => "it".into(),
        "dutch" => "nl".into(),
        "portuguese" => "pt".into(),
        _ => l,
    }
}

/// 16 kHz mono 16-bit PCM wav.
pub(crate) fn wav_bytes(pcm: &[f32]) -> Vec<u8> {
    let data_len = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&(SAMPLE_RATE as u32).to_le_bytes());
    out.extend_from_slice(&(SAMPLE_RATE as u32 * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &s in pcm {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}
