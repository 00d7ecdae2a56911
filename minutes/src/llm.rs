//! The optional LLM summariser: any OpenAI-compatible chat completions
//! endpoint (vLLM, Ollama, the state's Albert API…).
//!
//! The prompt gives the transcript and asks for a JSON object in the minutes
//! schema, in the meeting's language. The answer is used only if it parses
//! and every field is present with the right type; on a timeout, an HTTP
//! error or unusable output, the built-in summariser writes the minutes and a
//! warning says why. The API key is sent as a bearer token and never logged.

use std::time::Duration;

use serde_json::{Value, json};
use tracing::{Instrument, info, info_span, warn};

use crate::builtin::BuiltinSummarizer;
use crate::error::MinutesError;
use crate::language::{self, Language};
use crate::meeting::Meeting;
use crate::minutes::{Action, GeneratedBy, Minutes};
use crate::text::{split_sentences, tokens};
use crate::time;

/// Where and how to reach the LLM.
#[derive(Clone)]
pub struct LlmConfig {
    /// Base URL of the OpenAI-compatible API, e.g. `http://gpu-host:8000/v1`;
    /// requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    pub model: String,
    /// Bearer token, read by the caller from the environment variable the
    /// configuration names. `None` sends no `Authorization` header.
    pub api_key: Option<String>,
    /// Limit for the whole request, connection included.
    pub timeout: Duration,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Writes minutes with an LLM, and with the built-in summariser when the LLM fails.
#[derive(Debug, Clone)]
pub struct LlmSummarizer {
    config: LlmConfig,
    client: reqwest::Client,
}

impl LlmSummarizer {
    pub fn new(config: LlmConfig) -> Result<LlmSummarizer, MinutesError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| MinutesError::LlmRequest(e.to_string()))?;
        Ok(LlmSummarizer { config, client })
    }

    /// Summarises a meeting; never fails. A meeting without transcript gets
    /// bare minutes without asking the LLM.
    pub async fn summarize(&self, meeting: &Meeting) -> Minutes {
        if meeting.segments.is_empty() {
            return BuiltinSummarizer.summarize(meeting);
        }
        match self.ask(meeting).await {
            Ok(minutes) => minutes,
            Err(error) => {
                warn!(call_id = %meeting.call_id, %error, "LLM summary unusable; falling back to the built-in summariser");
                BuiltinSummarizer.summarize(meeting)
            }
        }
    }

    /// Asks the LLM once and validates its answer, without fallback.
    pub async fn ask(&self, meeting: &Meeting) -> Result<Minutes, MinutesError> {
        let lang = language::detect(&meeting.segments);
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let span =
            info_span!("llm_summary", call_id = %meeting.call_id, model = %self.config.model, %url);
        async {
            let body = json!({
                "model": self.config.model,
                "temperature": 0,
                "response_format": {"type": "json_object"},
                "messages": [
                    {"role": "system", "content": system_prompt(lang)},
                    {"role": "user", "content": transcript_prompt(meeting)},
                ],
            });
            let mut request = self.client.post(&url).json(&body);
            if let Some(key) = &self.config.api_key {
                request = request.bearer_auth(key);
            }
            let response = request
                .send()
                .await
                .map_err(|e| MinutesError::LlmRequest(describe(e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(MinutesError::LlmRequest(format!("HTTP status {status}")));
            }
            let reply: Value = response.json().await.map_err(|e| {
                MinutesError::LlmOutput(format!("response is not JSON: {}", describe(e)))
            })?;
            let content = reply
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .ok_or_else(|| MinutesError::LlmOutput("no choices[0].message.content".into()))?;
            let minutes = parse_minutes(content, meeting, lang)?;
            info!(
                decisions = minutes.decisions.len(),
                actions = minutes.actions.len(),
                "LLM minutes accepted"
            );
            Ok(minutes)
        }
        .instrument(span)
        .await
    }
}

/// Describes a reqwest error without its URL's query or any header.
fn describe(error: reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "cannot connect".to_string()
    } else if error.is_decode() {
        "cannot decode the body".to_string()
    } else {
        error.without_url().to_string()
    }
}

fn system_prompt(lang: Language) -> String {
    let language = match lang {
        Language::French => "French",
        Language::English => "English",
    };
    format!(
        "You write the minutes of a meeting from its transcript. Answer with one JSON object and nothing else, \
with exactly these fields:\n\
- \"summary\": array of 3 to 8 short sentences summarising the meeting;\n\
- \"decisions\": array of strings, the decisions that were explicitly taken;\n\
- \"actions\": array of objects {{\"owner\": the Matrix user id (as written in the transcript, e.g. @alice:example.org) \
of the person who committed to it, or null if nobody did, \"text\": what will be done, \"due\": the deadline as said, or null}};\n\
- \"questions\": array of strings, the questions left open.\n\
Only report what was said: no invented decisions, actions, owners or deadlines. \
Past events, hypotheses and refusals are not actions. Write every string in {language}."
    )
}

fn transcript_prompt(meeting: &Meeting) -> String {
    let mut prompt = String::new();
    if let Some(room) = &meeting.room_name {
        prompt.push_str(&format!("Meeting: {room}\n"));
    }
    prompt.push_str("Participants:\n");
    for participant in meeting.everyone() {
        prompt.push_str(&format!(
            "- {} ({})\n",
            participant.name(),
            participant.mxid
        ));
    }
    prompt.push_str("\nTranscript:\n");
    for segment in &meeting.segments {
        prompt.push_str(&format!(
            "[{}] {} ({}): {}\n",
            &time::cue(segment.start_ms)[..8],
            meeting.speaker_name(segment),
            segment.speaker,
            segment.text.trim()
        ));
    }
    prompt
}

/// Parses and validates the LLM's JSON: every field present, with its type.
fn parse_minutes(
    content: &str,
    meeting: &Meeting,
    lang: Language,
) -> Result<Minutes, MinutesError> {
    let content = content.trim();
    let content = content
        .strip_prefix("```json")
        .or_else(|| content.strip_prefix("```"))
        .and_then(|c| c.strip_suffix("```"))
        .unwrap_or(content);
    let value: Value = serde_json::from_str(content)
        .map_err(|e| MinutesError::LlmOutput(format!("content is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| MinutesError::LlmOutput("content is not a JSON object".into()))?;
    let field = |name: &str| {
        object
            .get(name)
            .ok_or_else(|| MinutesError::LlmOutput(format!("missing field `{name}`")))
    };
    let strings = |name: &str| -> Result<Vec<String>, MinutesError> {
        field(name)?
            .as_array()
            .ok_or_else(|| MinutesError::LlmOutput(format!("`{name}` is not an array")))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| MinutesError::LlmOutput(format!("`{name}` holds a non-string")))
            })
            .collect()
    };
    let summary = match field("summary")? {
        Value::String(text) => split_sentences(text, 0)
            .into_iter()
            .map(|s| s.text)
            .collect(),
        Value::Array(_) => strings("summary")?,
        _ => {
            return Err(MinutesError::LlmOutput(
                "`summary` is neither a string nor an array".into(),
            ));
        }
    };
    let decisions = strings("decisions")?;
    let questions = strings("questions")?;
    let actions = field("actions")?
        .as_array()
        .ok_or_else(|| MinutesError::LlmOutput("`actions` is not an array".into()))?
        .iter()
        .map(|a| parse_action(a, meeting))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Minutes {
        call_id: meeting.call_id.clone(),
        started_at: meeting.started_at,
        ended_at: meeting.ended_at,
        participants: meeting.everyone(),
        summary,
        decisions,
        actions,
        questions,
        moderation: Vec::new(),
        lang: lang.code().to_string(),
        generated_by: GeneratedBy::Llm,
    })
}

fn parse_action(value: &Value, meeting: &Meeting) -> Result<Action, MinutesError> {
    let object = value
        .as_object()
        .ok_or_else(|| MinutesError::LlmOutput("an action is not an object".into()))?;
    let text = object
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| MinutesError::LlmOutput("an action has no `text`".into()))?;
    let owner = match object.get("owner") {
        None => {
            return Err(MinutesError::LlmOutput(
                "an action has no `owner` field".into(),
            ));
        }
        Some(Value::Null) => None,
        Some(Value::String(owner)) if owner.trim().is_empty() => None,
        Some(Value::String(owner)) => Some(owner_id(owner.trim(), meeting)),
        Some(_) => {
            return Err(MinutesError::LlmOutput(
                "an action's `owner` is not a string".into(),
            ));
        }
    };
    let due = match object.get("due") {
        None | Some(Value::Null) => None,
        Some(Value::String(due)) if due.trim().is_empty() => None,
        Some(Value::String(due)) => Some(due.trim().to_string()),
        Some(_) => {
            return Err(MinutesError::LlmOutput(
                "an action's `due` is not a string".into(),
            ));
        }
    };
    Ok(Action {
        owner,
        text: text.trim().to_string(),
        due,
    })
}

/// Maps an owner the LLM named ("Alice", "Alice Martin") to the participant's
/// user id; keeps it as written when it names nobody unambiguously.
fn owner_id(owner: &str, meeting: &Meeting) -> String {
    let everyone = meeting.everyone();
    if everyone.iter().any(|p| p.mxid == owner) {
        return owner.to_string();
    }
    let wanted: Vec<String> = tokens(owner).into_iter().map(|t| t.word).collect();
    let matches: Vec<&str> = everyone
        .iter()
        .filter(|p| {
            let name: Vec<String> = tokens(p.name()).into_iter().map(|t| t.word).collect();
            name == wanted || (wanted.len() == 1 && name.first() == wanted.first())
        })
        .map(|p| p.mxid.as_str())
        .collect();
    match matches.as_slice() {
        [one] => one.to_string(),
        _ => owner.to_string(),
    }
}
