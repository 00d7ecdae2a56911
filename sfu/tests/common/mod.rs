//! Shared set-up for the integration tests: an SFU served on a free
//! 127.0.0.1 port, and tokens for it.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use salon_sfu::{Sfu, SfuConfig, token};

pub const KEY: &str = "APItestkey";
pub const SECRET: &str = "test-secret-of-sufficient-length";

pub struct Server {
    pub sfu: Arc<Sfu>,
    pub ws: String,
    pub http: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start() -> Server {
    start_with(SfuConfig::local(KEY, SECRET)).await
}

pub async fn start_with(config: SfuConfig) -> Server {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "salon_sfu=info".into()),
        )
        .with_test_writer()
        .try_init();
    let sfu = Sfu::new(config).expect("valid config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = sfu.router();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        sfu,
        ws: format!("ws://{addr}"),
        http: format!("http://{addr}"),
        task,
    }
}

pub fn token(room: &str, identity: &str) -> String {
    token::mint(
        KEY,
        SECRET,
        room,
        identity,
        &format!("Name of {identity}"),
        Duration::from_secs(300),
    )
}
