//! A LiveKit server cluster on loopback for tests (feature `testing`): a
//! `redis-server` and one or more `livekit-server` nodes sharing it, each on
//! its own ports, media on one UDP port at 127.0.0.1, webhooks posted where
//! the test says. The binary is the one `scripts/setup-livekit-server.sh`
//! builds; [`binary`] finds it.
//!
//! In the flow: tests/cluster.rs starts a cluster here, points Salon at it
//! (`[sfu] backend = "livekit"`), and joins calls with [`crate::Client`].

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the LiveKit server binary is: `$SALON_LIVEKIT_BIN`, else the link
/// `scripts/setup-livekit-server.sh` makes in its cache, else `livekit-server`
/// on the `PATH`. `None` when none of them exists.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SALON_LIVEKIT_BIN") {
        return Some(PathBuf::from(path)).filter(|p| p.exists());
    }
    let cache = std::env::var_os("SALON_LIVEKIT_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("salon")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/salon")));
    if let Some(linked) = cache.map(|c| c.join("livekit-server"))
        && linked.exists()
    {
        return Some(linked);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("livekit-server"))
        .find(|p| p.exists())
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port on 127.0.0.1")
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port on 127.0.0.1")
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not listen on 127.0.0.1:{port} within 30 s:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a test cluster is made of.
pub struct ClusterConfig {
    /// LiveKit nodes (two share the Redis, as a production cluster does).
    pub nodes: usize,
    pub api_key: String,
    pub api_secret: String,
    /// Where every node posts its webhooks (none when empty).
    pub webhook_urls: Vec<String>,
    /// Seconds an empty room is kept (LiveKit's `room.empty_timeout`).
    pub empty_timeout_s: u32,
}

/// One LiveKit node of a running [`Cluster`].
pub struct Node {
    /// The HTTP port: `ws://127.0.0.1:{port}` for clients, the server API.
    pub port: u16,
    pub log: PathBuf,
    process: Process,
}

impl Node {
    /// The signalling URL clients are given.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The server API's base URL (Twirp `RoomService`).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the node is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.process.0.try_wait(), Ok(None))
    }
}

/// Redis plus LiveKit nodes on loopback, stopped on drop.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub redis_port: u16,
    _redis: Process,
    _dir: PathBuf,
}

impl Cluster {
    /// Starts `redis-server` and the nodes in `dir` (configs and logs), and
    /// waits until each listens.
    pub fn start(binary: &Path, dir: &Path, config: &ClusterConfig) -> Cluster {
        std::fs::create_dir_all(dir).expect("the cluster's folder");
        let redis_port = free_tcp_port();
        let redis_log = dir.join("redis.log");
        let redis = Process(
            Command::new("redis-server")
                .args(["--port", &redis_port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(std::fs::File::create(&redis_log).expect("redis log"))
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed (scripts/setup-livekit-server.sh)"),
        );
        wait_for_port(redis_port, "redis-server", &redis_log);
        let nodes = (0..config.nodes)
            .map(|i| start_node(binary, dir, i, redis_port, config))
            .collect();
        Cluster {
            nodes,
            redis_port,
            _redis: redis,
            _dir: dir.to_owned(),
        }
    }
}

fn start_node(
    binary: &Path,
    dir: &Path,
    index: usize,
    redis_port: u16,
    config: &ClusterConfig,
) -> Node {
    let port = free_tcp_port();
    let tcp_port = free_tcp_port();
    let udp_port = free_udp_port();
    let webhook = if config.webhook_urls.is_empty() {
        String::new()
    } else {
        let urls: Vec<String> = config
            .webhook_urls
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect();
        format!(
            "webhook:\n  api_key: {}\n  urls: [{}]\n",
            config.api_key,
            urls.join(", ")
        )
    };
    let yaml = format!(
        "port: {port}\n\
         bind_addresses: [\"127.0.0.1\"]\n\
         keys:\n  {key}: {secret}\n\
         rtc:\n  tcp_port: {tcp_port}\n  udp_port: {udp_port}\n  use_external_ip: false\n  \
         node_ip: 127.0.0.1\n  enable_loopback_candidate: true\n\
         redis:\n  address: 127.0.0.1:{redis_port}\n\
         room:\n  empty_timeout: {empty}\n  departure_timeout: 1\n\
         logging:\n  level: {level}\n\
         {webhook}",
        key = config.api_key,
        secret = config.api_secret,
        empty = config.empty_timeout_s,
        level = std::env::var("SALON_LIVEKIT_LOG").unwrap_or_else(|_| "info".into()),
    );
    let config_path = dir.join(format!("livekit-{index}.yaml"));
    std::fs::write(&config_path, yaml).expect("the node's config");
    let log = dir.join(format!("livekit-{index}.log"));
    let out = std::fs::File::create(&log).expect("the node's log");
    let process = Process(
        Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("start livekit-server"),
    );
    wait_for_port(port, "livekit-server", &log);
    Node { port, log, process }
}
