//! Contract tests of the LLM summariser against a local stub of an
//! OpenAI-compatible `/v1/chat/completions` endpoint. No real LLM can run
//! here; the stub answers what a compliant (or broken) server would, and
//! records each request so we can check what Salon sends.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use salon_minutes::{
    BuiltinSummarizer, GeneratedBy, LlmConfig, LlmSummarizer, Meeting, Summarizer, load_transcript,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KEY: &str = "sk-contract-test-3f9a";

fn fixture(name: &str) -> Meeting {
    load_transcript(format!(
        "{}/tests/fixtures/{name}",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into())
    ))
    .unwrap()
}

/// What the stub answers.
#[derive(Clone)]
enum Answer {
    /// A chat completion whose message content is this text.
    Content(String),
    /// An error status with a body.
    Status(u16),
    /// Read the request, then never answer.
    Silence,
}

#[derive(Debug, Clone)]
struct Request {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Starts the stub on a free port; gives its base URL and the requests it saw.
async fn stub(answer: Answer) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, length) = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buffer[..at]).to_string();
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        break (at + 4, length);
                    }
                };
                while buffer.len() < head_end + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buffer[..head_end - 4]).to_string();
                let mut lines = head.lines();
                let request_line = lines.next().unwrap_or_default().to_string();
                let headers = lines
                    .filter_map(|l| {
                        l.split_once(':')
                            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    })
                    .collect();
                let body = serde_json::from_slice(&buffer[head_end..head_end + length])
                    .unwrap_or(Value::Null);
                log.lock().unwrap().push(Request {
                    request_line,
                    headers,
                    body,
                });
                let (status, body) = match answer {
                    Answer::Content(content) => (
                        "200 OK".to_string(),
                        json!({
                            "id": "chatcmpl-1", "object": "chat.completion", "model": "stub",
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": content}}]
                        })
                        .to_string(),
                    ),
                    Answer::Status(code) => (
                        format!("{code} Error"),
                        r#"{"error":{"message":"overloaded"}}"#.to_string(),
                    ),
                    Answer::Silence => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (base_url, seen)
}

fn summarizer(base_url: &str, timeout: Duration) -> LlmSummarizer {
    LlmSummarizer::new(LlmConfig {
        base_url: base_url.to_string(),
        model: "mistral-small-3.2".to_string(),
        api_key: Some(KEY.to_string()),
        timeout,
    })
    .unwrap()
}

/// Collects what the summariser logs while a test runs.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

fn valid_minutes() -> String {
    json!({
        "summary": ["The team set the 2.4 release date.", "The database moves to Postgres 16.", "On-call becomes weekly."],
        "decisions": ["Ship 2.4 on March 12", "Use Postgres 16"],
        "actions": [
            {"owner": "@bob:example.org", "text": "Write the release notes", "due": null},
            {"owner": "Alice Martin", "text": "Send the updated budget", "due": "Friday"},
            {"owner": null, "text": "Ask product about legacy API customers"}
        ],
        "questions": ["What happens to legacy API customers?"]
    })
    .to_string()
}

#[tokio::test]
async fn contract_valid_json_minutes_from_the_llm_are_used() {
    let (base_url, _) = stub(Answer::Content(valid_minutes())).await;
    let meeting = fixture("meeting_en.json");
    let minutes = summarizer(&base_url, Duration::from_secs(10))
        .summarize(&meeting)
        .await;
    assert_eq!(minutes.generated_by, GeneratedBy::Llm);
    assert_eq!(minutes.call_id, meeting.call_id);
    assert_eq!(minutes.started_at, meeting.started_at);
    assert_eq!(minutes.summary.len(), 3);
    assert_eq!(
        minutes.decisions,
        vec!["Ship 2.4 on March 12", "Use Postgres 16"]
    );
    assert_eq!(
        minutes.actions[0].owner.as_deref(),
        Some("@bob:example.org")
    );
    assert_eq!(
        minutes.actions[1].owner.as_deref(),
        Some("@alice:example.org"),
        "a display name maps to its user id"
    );
    assert_eq!(minutes.actions[1].due.as_deref(), Some("Friday"));
    assert_eq!(minutes.actions[2].owner, None);
    assert_eq!(minutes.questions.len(), 1);
    assert_eq!(minutes.lang, "en");
}

#[tokio::test]
async fn contract_request_carries_model_bearer_key_json_mode_and_transcript() {
    let (base_url, seen) = stub(Answer::Content(valid_minutes())).await;
    summarizer(&base_url, Duration::from_secs(10))
        .summarize(&fixture("meeting_fr.json"))
        .await;
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert!(
        request
            .request_line
            .starts_with("POST /v1/chat/completions "),
        "{}",
        request.request_line
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(
        request
            .header("content-type")
            .unwrap_or("")
            .starts_with("application/json")
    );
    assert_eq!(request.body["model"], "mistral-small-3.2");
    assert_eq!(request.body["response_format"]["type"], "json_object");
    let system = request.body["messages"][0]["content"].as_str().unwrap();
    for field in [
        "\"summary\"",
        "\"decisions\"",
        "\"actions\"",
        "\"owner\"",
        "\"questions\"",
    ] {
        assert!(system.contains(field), "the prompt asks for {field}");
    }
    assert!(
        system.contains("French"),
        "the prompt asks for the meeting's language: {system}"
    );
    let user = request.body["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains(
            "Camille Laurent (@camille:example.org): Bonjour à tous, vous m'entendez bien ?"
        ),
        "{user}"
    );
    assert!(user.contains("Julien va envoyer le devis signé d'ici vendredi."));
}

#[tokio::test]
async fn contract_invalid_json_falls_back_to_the_builtin_summariser_and_says_so() {
    let (logs, _guard) = Logs::capture();
    let (base_url, _) = stub(Answer::Content(
        "Here are your minutes: {summary: oops".into(),
    ))
    .await;
    let meeting = fixture("meeting_en.json");
    let minutes = summarizer(&base_url, Duration::from_secs(10))
        .summarize(&meeting)
        .await;
    assert_eq!(minutes, BuiltinSummarizer.summarize(&meeting));
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("falling back to the built-in summariser"),
        "{text}"
    );
    assert!(text.contains("not JSON"), "the log says why: {text}");
    assert!(
        !text.contains(KEY),
        "the API key must never be logged: {text}"
    );
}

#[tokio::test]
async fn contract_missing_field_falls_back() {
    let (logs, _guard) = Logs::capture();
    let mut answer: Value = serde_json::from_str(&valid_minutes()).unwrap();
    answer.as_object_mut().unwrap().remove("questions");
    let (base_url, _) = stub(Answer::Content(answer.to_string())).await;
    let meeting = fixture("meeting_en.json");
    let minutes = summarizer(&base_url, Duration::from_secs(10))
        .summarize(&meeting)
        .await;
    assert_eq!(minutes.generated_by, GeneratedBy::Builtin);
    assert!(
        logs.text().contains("missing field `questions`"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn contract_action_without_owner_field_falls_back() {
    let mut answer: Value = serde_json::from_str(&valid_minutes()).unwrap();
    answer["actions"] = json!([{"text": "Write the release notes"}]);
    let (base_url, _) = stub(Answer::Content(answer.to_string())).await;
    let minutes = summarizer(&base_url, Duration::from_secs(10))
        .summarize(&fixture("meeting_en.json"))
        .await;
    assert_eq!(minutes.generated_by, GeneratedBy::Builtin);
}

#[tokio::test]
async fn contract_timeout_falls_back() {
    let (logs, _guard) = Logs::capture();
    let (base_url, seen) = stub(Answer::Silence).await;
    let meeting = fixture("meeting_fr.json");
    let minutes = summarizer(&base_url, Duration::from_millis(300))
        .summarize(&meeting)
        .await;
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the request did reach the server"
    );
    assert_eq!(minutes, BuiltinSummarizer.summarize(&meeting));
    assert!(logs.text().contains("timed out"), "{}", logs.text());
}

#[tokio::test]
async fn contract_http_error_falls_back() {
    let (base_url, _) = stub(Answer::Status(503)).await;
    let minutes = summarizer(&base_url, Duration::from_secs(10))
        .summarize(&fixture("meeting_en.json"))
        .await;
    assert_eq!(minutes.generated_by, GeneratedBy::Builtin);
}

#[tokio::test]
async fn unreachable_llm_falls_back() {
    // A port that was free a moment ago and has nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let summarizer = Summarizer::Llm(summarizer(
        &format!("http://127.0.0.1:{port}/v1"),
        Duration::from_secs(5),
    ));
    let minutes = summarizer.summarize(&fixture("meeting_en.json")).await;
    assert_eq!(minutes.generated_by, GeneratedBy::Builtin);
}

#[tokio::test]
async fn contract_a_call_without_transcript_does_not_ask_the_llm() {
    let (base_url, seen) = stub(Answer::Content(valid_minutes())).await;
    let mut meeting = fixture("meeting_en.json");
    meeting.segments.clear();
    let minutes = summarizer(&base_url, Duration::from_secs(10))
        .summarize(&meeting)
        .await;
    assert!(minutes.is_bare());
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn the_api_key_is_redacted_from_debug_output() {
    let config = LlmConfig {
        base_url: "http://x/v1".into(),
        model: "m".into(),
        api_key: Some(KEY.into()),
        timeout: Duration::from_secs(1),
    };
    assert!(!format!("{config:?}").contains(KEY));
    assert!(!format!("{:?}", LlmSummarizer::new(config).unwrap()).contains(KEY));
}
