//! Contract tests of the remote engine against a local stub HTTP server that
//! plays an OpenAI-compatible `/v1/audio/transcriptions` endpoint (no real
//! GPU server can run here). They check what goes on the wire and how the
//! answers are read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use salon_speech::{
    Language, RemoteConfig, RemoteEngine, SpeechEngine, SpeechError, TranscribeOptions,
};

struct Captured {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a text field of the multipart body.
    fn field(&self, name: &str) -> Option<String> {
        let body = String::from_utf8_lossy(&self.body);
        let marker = format!("name=\"{name}\"\r\n\r\n");
        let start = body.find(&marker)? + marker.len();
        let end = body[start..].find("\r\n")?;
        Some(body[start..start + end].to_owned())
    }
}

/// Serves one request with `status` and `body`, hands back what it received.
fn stub_server(status: &'static str, answer: &'static str) -> (String, mpsc::Receiver<Captured>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("the upload has a Content-Length");
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        tx.send(Captured {
            request_line: request_line.trim_end().to_owned(),
            headers,
            body: body.clone(),
        })
        .unwrap();
    });
    (url, rx)
}

fn engine(base_url: String, timeout: Duration) -> RemoteEngine {
    RemoteEngine::new(RemoteConfig {
        base_url,
        api_key: Some("sk-test-key".into()),
        model: "whisper-1".into(),
        timeout,
    })
    .unwrap()
}

const VERBOSE_JSON: &str = r#"{"task":"transcribe","language":"french","duration":3.5,
 "text":"Bonjour à tous. On commence.",
 "segments":[{"id":0,"start":0.0,"end":1.52,"text":" Bonjour à tous.","no_speech_prob":0.01},
             {"id":1,"start":1.52,"end":3.5,"text":" On commence.","no_speech_prob":0.02}]}"#;

#[test]
fn remote_engine_contract_with_stub_server() {
    let (url, rx) = stub_server("200 OK", VERBOSE_JSON);
    let engine = engine(format!("{url}/"), Duration::from_secs(10));
    // 3.5 s of loud audio: both segments lie on voice
    let pcm = vec![0.25f32; 56_000];
    let opts = TranscribeOptions {
        language: Language::Code("fr".into()),
        ..TranscribeOptions::default()
    };
    let transcript = engine.transcribe(&pcm, &opts).unwrap();
    let request = rx.recv_timeout(Duration::from_secs(5)).unwrap();

    assert_eq!(
        request.request_line,
        "POST /v1/audio/transcriptions HTTP/1.1"
    );
    assert_eq!(request.header("authorization"), Some("Bearer sk-test-key"));
    assert!(
        request
            .header("content-type")
            .unwrap()
            .starts_with("multipart/form-data")
    );
    assert_eq!(
        request.field("response_format").as_deref(),
        Some("verbose_json")
    );
    assert_eq!(request.field("model").as_deref(), Some("whisper-1"));
    assert_eq!(request.field("language").as_deref(), Some("fr"));
    let body = &request.body;
    let riff = body
        .windows(4)
        .position(|w| w == b"RIFF")
        .expect("a wav upload");
    // 44-byte header + 3.5 seconds of 16-bit samples at 16 kHz
    let data_len = u32::from_le_bytes(body[riff + 40..riff + 44].try_into().unwrap());
    assert_eq!(data_len, 112_000);
    assert_eq!(
        u32::from_le_bytes(body[riff + 24..riff + 28].try_into().unwrap()),
        16_000
    );

    assert_eq!(transcript.language, "fr");
    assert_eq!(transcript.segments.len(), 2);
    assert_eq!(
        transcript.segments[0].to_string(),
        "[00:00.000 --> 00:01.520] Bonjour à tous."
    );
    assert_eq!(transcript.segments[1].end_ms, 3_500);
}

/// A server without our guards: it hears "Thank you." in the silence after
/// the speech, and loops on the last words.
const INVENTED_JSON: &str = r#"{"language":"en","duration":6.0,
 "text":"We agreed. Thank you. So, the first thing.",
 "segments":[{"start":0.0,"end":1.9,"text":" We agreed.","no_speech_prob":0.05,"avg_logprob":-0.25},
             {"start":2.0,"end":3.0,"text":" Thank you.","no_speech_prob":0.72,"avg_logprob":-1.3},
             {"start":4.2,"end":6.0,"text":" So, the first thing.","no_speech_prob":0.2,"avg_logprob":-0.6}]}"#;

#[test]
fn remote_engine_contract_answers_pass_the_same_guards() {
    let (url, _rx) = stub_server("200 OK", INVENTED_JSON);
    let engine = engine(url, Duration::from_secs(10));
    // 2 s of voice, then 4 s of silence
    let mut pcm: Vec<f32> = (0..32_000).map(|i| 0.3 * (i as f32 * 0.09).sin()).collect();
    pcm.extend(std::iter::repeat_n(0.0, 64_000));
    let transcript = engine
        .transcribe(&pcm, &TranscribeOptions::default())
        .unwrap();
    assert_eq!(transcript.text(), "We agreed.");
}

#[test]
fn remote_engine_contract_reports_server_errors() {
    let (url, _rx) = stub_server("401 Unauthorized", r#"{"error":{"message":"bad key"}}"#);
    let err = engine(url, Duration::from_secs(10))
        .transcribe(&[0.0; 1_600], &TranscribeOptions::default())
        .unwrap_err();
    assert!(matches!(err, SpeechError::Remote(_)), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
}

#[test]
fn remote_engine_contract_times_out_on_a_silent_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let holder = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_secs(2));
        drop(stream);
    });
    let started = std::time::Instant::now();
    let err = engine(url, Duration::from_millis(300))
        .transcribe(&[0.0; 1_600], &TranscribeOptions::default())
        .unwrap_err();
    assert!(matches!(err, SpeechError::Remote(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout was not applied"
    );
    holder.join().unwrap();
}
