//! The two media backends a journey can run on: Salon's embedded SFU, and a
//! LiveKit cluster (Redis plus two LiveKit server nodes on loopback, the
//! binary `scripts/setup-livekit-server.sh` builds) with the bridge's
//! `[sfu] backend = "livekit"`. Journeys that must not depend on the backend
//! are written once and run on both (see `backend_tests!`).

use std::path::{Path, PathBuf};

use salon_lkclient::server::{Cluster, ClusterConfig};

use super::Env;

pub const KEY: &str = "salon-cluster";
pub const SECRET: &str = "a-cluster-secret-long-enough-for-livekit-0123";

/// Where a journey's media runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    LiveKit,
}

/// The LiveKit server binary, or `None` (said loudly) when there is none and
/// `SALON_REQUIRE_LIVEKIT` is unset; with it set (scripts/test.sh), a missing
/// binary fails the test.
pub fn livekit_binary() -> Option<PathBuf> {
    match salon_lkclient::server::binary() {
        Some(binary) => Some(binary),
        None if std::env::var_os("SALON_REQUIRE_LIVEKIT").is_some() => panic!(
            "SALON_REQUIRE_LIVEKIT is set but there is no LiveKit server binary: \
             run scripts/setup-livekit-server.sh (or set SALON_LIVEKIT_BIN)"
        ),
        None => {
            eprintln!(
                "\n*** SKIPPED: no LiveKit server binary. Run \
                 scripts/setup-livekit-server.sh (scripts/setup.sh does), or set \
                 SALON_LIVEKIT_BIN. ***\n"
            );
            None
        }
    }
}

/// A fresh Synapse, a two-node LiveKit cluster posting webhooks to the
/// bridge, and the bridge configured for it (not started).
pub async fn cluster_env(binary: &Path, edit_config: impl FnOnce(&mut String)) -> (Env, Cluster) {
    let env = Env::start_with(edit_config).await;
    let cluster = attach_cluster(&env, binary);
    (env, cluster)
}

/// Starts a two-node LiveKit cluster posting webhooks to `env`'s bridge, and
/// points the bridge's config at it (before the bridge starts).
pub fn attach_cluster(env: &Env, binary: &Path) -> Cluster {
    let webhook = format!(
        "http://127.0.0.1:{}{}",
        env.web_port,
        salon::livekit::WEBHOOK_PATH
    );
    let cluster = Cluster::start(
        binary,
        &env.dir.path().join("livekit"),
        &ClusterConfig {
            nodes: 2,
            api_key: KEY.into(),
            api_secret: SECRET.into(),
            webhook_urls: vec![webhook],
            empty_timeout_s: 60,
        },
    );
    std::fs::write(env.dir.path().join("livekit_secret"), SECRET).unwrap();
    let mut config = std::fs::read_to_string(&env.config_path).unwrap();
    config.push_str(&format!(
        "\n[sfu]\nbackend = \"livekit\"\nurl = \"{}\"\napi_key = \"{KEY}\"\napi_secret_file = \"livekit_secret\"\n",
        cluster.nodes[0].ws_url()
    ));
    std::fs::write(&env.config_path, config).unwrap();
    cluster
}

/// For a journey that builds its own `Env`: on `Backend::LiveKit`, a cluster
/// attached to it (before its bridge starts); `None` when the LiveKit binary
/// is missing and not required (skip the journey).
pub fn cluster_for(backend: Backend, env: &Env) -> Option<Option<Cluster>> {
    match backend {
        Backend::Embedded => Some(None),
        Backend::LiveKit => Some(Some(attach_cluster(env, &livekit_binary()?))),
    }
}

/// A started bridge on `backend` (its cluster kept alive with it), or `None`
/// when the LiveKit binary is missing and not required.
pub async fn bridge_on(
    backend: Backend,
    edit_config: impl FnOnce(&mut String),
) -> Option<(Env, Option<Cluster>)> {
    let (mut env, cluster) = match backend {
        Backend::Embedded => (Env::start_with(edit_config).await, None),
        Backend::LiveKit => {
            let binary = livekit_binary()?;
            let (env, cluster) = cluster_env(&binary, edit_config).await;
            (env, Some(cluster))
        }
    };
    env.start_bridge().await;
    Some((env, cluster))
}

/// Held by each run of a two-backend journey: the two runs of one journey
/// (and of the others in the same test binary) take turns, so that two
/// Whisper or Chromium journeys never share the two cores.
pub static ONE_BACKEND_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One journey, two tests: `$name::on_the_embedded_sfu` and
/// `$name::on_a_livekit_cluster`, each calling `$journey(Backend)`, one
/// after the other.
#[macro_export]
macro_rules! backend_tests {
    ($name:ident, $journey:ident) => {
        mod $name {
            use super::support::backends::Backend;

            #[tokio::test(flavor = "multi_thread")]
            async fn on_the_embedded_sfu() {
                let _turn = super::support::backends::ONE_BACKEND_AT_A_TIME.lock().await;
                super::$journey(Backend::Embedded).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn on_a_livekit_cluster() {
                let _turn = super::support::backends::ONE_BACKEND_AT_A_TIME.lock().await;
                super::$journey(Backend::LiveKit).await;
            }
        }
    };
}
