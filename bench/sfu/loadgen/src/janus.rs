//! Janus's WebSocket API (subprotocol `janus-protocol`) and the VideoRoom
//! plugin's publisher and subscriber flows: create a session, attach a handle
//! per role, `join` + `publish` with our offer, `join` as subscriber to get
//! Janus's offer and `start` with our answer. Asynchronous plugin replies
//! (an `ack`, later an `event`) are matched by transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The room configured in `janus.plugin.videoroom.jcfg`.
pub const ROOM: u64 = 1234;

type Pending = Arc<std::sync::Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// One Janus session over one WebSocket.
pub struct Janus {
    out: mpsc::UnboundedSender<String>,
    pending: Pending,
    session: u64,
    next_transaction: AtomicU64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Janus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Janus {
    pub async fn connect(url: &str) -> Result<Self> {
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "janus-protocol".parse()?);
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        let pending: Pending = Arc::default();
        let writer = tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(WsMessage::Text(text.into())).await.is_err() {
                    return;
                }
            }
        });
        let reader = {
            let pending = pending.clone();
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    let WsMessage::Text(text) = frame else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    // An `ack` only says an asynchronous reply will follow.
                    if value["janus"] == "ack" {
                        continue;
                    }
                    let Some(transaction) = value["transaction"].as_str() else {
                        continue; // webrtcup, media, slowlink, hangup: not needed
                    };
                    let waiter = pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(transaction);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(value);
                    }
                }
            })
        };
        let mut janus = Self {
            out,
            pending,
            session: 0,
            next_transaction: AtomicU64::new(1),
            tasks: vec![writer, reader],
        };
        let created = janus.call(json!({"janus": "create"})).await?;
        janus.session = created["data"]["id"].as_u64().context("no session id")?;
        let out = janus.out.clone();
        let session = janus.session;
        janus.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(20));
            loop {
                tick.tick().await;
                let keepalive = json!({"janus": "keepalive", "session_id": session, "transaction": "keepalive"});
                if out.send(keepalive.to_string()).is_err() {
                    return;
                }
            }
        }));
        Ok(janus)
    }

    /// Sends `message` and waits for its (final) reply.
    async fn call(&self, mut message: Value) -> Result<Value> {
        let transaction = format!("t{}", self.next_transaction.fetch_add(1, Ordering::Relaxed));
        message["transaction"] = json!(transaction);
        if self.session != 0 {
            message["session_id"] = json!(self.session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(transaction, tx);
        self.out.send(message.to_string())?;
        let reply = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .context("Janus did not answer within 20 s")??;
        if reply["janus"] == "error" {
            bail!("Janus error: {}", reply["error"]);
        }
        if let Some(error) = reply["plugindata"]["data"].get("error") {
            bail!("VideoRoom error: {error}");
        }
        Ok(reply)
    }

    /// Attaches a VideoRoom handle.
    pub async fn attach(&self) -> Result<u64> {
        let reply = self
            .call(json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}))
            .await?;
        reply["data"]["id"].as_u64().context("no handle id")
    }

    /// Sends a VideoRoom request on `handle` (with an optional JSEP) and
    /// returns the event answering it.
    pub async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value> {
        let mut message = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        self.call(message).await
    }
}

/// Waits until Janus accepts WebSocket connections at `url`.
pub async fn wait_ready(url: &str, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if Janus::connect(url).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("Janus did not come up at {url}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
