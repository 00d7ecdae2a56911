//! Unmodified LiveKit clients: two participants of the `livekit` Python SDK
//! (1.2.1, `single_peer_connection=False`) each send a tone and must hear only
//! the other's, then receive a caption as a Transcription packet; and a
//! moderator's mute and removal, as the SDK sees them.
//!
//! Needs a virtualenv with the SDK, named by `SALON_PY_VENV`:
//! `python3 -m venv $V && $V/bin/pip install livekit==1.2.1`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

fn python() -> PathBuf {
    let venv = std::env::var("SALON_PY_VENV").unwrap_or_else(|_| {
        panic!(
            "SALON_PY_VENV is not set: create a venv with `python3 -m venv DIR && DIR/bin/pip install livekit==1.2.1` and export SALON_PY_VENV=DIR"
        )
    });
    let python = PathBuf::from(&venv).join("bin").join("python");
    assert!(
        python.exists(),
        "{} does not exist: SALON_PY_VENV must be a virtualenv with `pip install livekit==1.2.1`",
        python.display()
    );
    python
}

/// Runs `tests/python/{script}` with the SFU's URL and alice's and bob's
/// tokens for `room`, its stdin, stdout and stderr piped.
fn run_script(script: &str, ws: &str, room: &str) -> tokio::process::Child {
    let script = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/python")
    .join(script);
    tokio::process::Command::new(python())
        .arg(script)
        .arg(ws)
        .arg(common::token(room, "alice"))
        .arg(common::token(room, "bob"))
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_participants_hear_only_each_other_and_get_captions() {
    let server = common::start().await;
    let mut child = run_script("two_tones.py", &server.ws, "py");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });

    let sfu = server.sfu.clone();
    let mut captions: Option<tokio::task::JoinHandle<()>> = None;
    let mut result_line = None;
    let reading = tokio::time::timeout(Duration::from_secs(90), async {
        while let Ok(Some(line)) = stdout.next_line().await {
            if line.trim() == "READY" && captions.is_none() {
                let sfu = sfu.clone();
                captions = Some(tokio::spawn(async move {
                    for n in 0..40 {
                        sfu.send_transcription(
                            "py",
                            "alice",
                            &format!("seg-{n}"),
                            "caption check",
                            0,
                            1000,
                            true,
                        )
                        .await;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }));
            } else if line.starts_with('{') {
                result_line = Some(line);
            }
        }
    })
    .await;
    if let Some(task) = captions {
        task.abort();
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .ok()
        .and_then(|s| s.ok());
    let stderr_text = stderr_task.await.unwrap_or_default();
    assert!(
        reading.is_ok(),
        "python test timed out; stderr:\n{stderr_text}"
    );
    let line =
        result_line.unwrap_or_else(|| panic!("no result from python; stderr:\n{stderr_text}"));
    let result: serde_json::Value = serde_json::from_str(&line).expect("json result");
    println!("python result: {result}");
    assert_eq!(
        result["ok"], true,
        "python SDK check failed: {result}\nstderr:\n{stderr_text}"
    );
    assert_eq!(result["alice"]["heard_from"], serde_json::json!(["bob"]));
    assert_eq!(result["bob"]["heard_from"], serde_json::json!(["alice"]));
    assert!(
        status.is_some_and(|s| s.success()),
        "python exited with {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_clients_obey_a_moderators_mute_and_removal() {
    use tokio::io::AsyncWriteExt;
    let server = common::start().await;
    let mut child = run_script("moderated.py", &server.ws, "mod");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let sfu = server.sfu.clone();
    let mut result_line = None;
    let reading = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = stdout.next_line().await {
            match line.trim() {
                "READY" => {
                    let muted = sfu.mute("mod", "bob", salon_sfu::MuteWhat::Microphone);
                    assert_eq!(muted.len(), 1, "bob's microphone track");
                    stdin.write_all(b"go\n").await.unwrap();
                }
                "MUTED" => {
                    assert!(sfu.remove("mod", "alice").await, "alice was in the room");
                    stdin.write_all(b"go\n").await.unwrap();
                }
                l if l.starts_with('{') => result_line = Some(line),
                _ => {}
            }
        }
    })
    .await;
    let stderr_text = stderr_task.await.unwrap_or_default();
    assert!(
        reading.is_ok(),
        "python test timed out; stderr:\n{stderr_text}"
    );
    let line =
        result_line.unwrap_or_else(|| panic!("no result from python; stderr:\n{stderr_text}"));
    let result: serde_json::Value = serde_json::from_str(&line).expect("json result");
    println!("python result: {result}");
    assert_eq!(
        result["ok"], true,
        "the Python SDK did not see the moderation as it should: {result}\nstderr:\n{stderr_text}"
    );
    assert_eq!(result["bob_sees_own_track_muted"], true, "{result}");
}
