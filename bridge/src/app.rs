//! The running bridge: start-up, the per-room workers, timers and shutdown.
//!
//! Start-up order matters. The store opens first (so nothing owed is lost),
//! then the homeserver connection (retried while the homeserver is down), then
//! the events left in the inbox by a previous run are replayed, and only then
//! do the HTTP servers listen, so the homeserver's queued transactions land on
//! a bridge that is ready for them.

use std::sync::Arc;
use std::time::Duration;

use ruma::UserId;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::access;
use crate::appservice::{self, AppserviceState};
use crate::clock::now_millis;
use crate::config::{Config, Secret};
use crate::matrix::{Matrix, MatrixError};
use crate::media::{EmbeddedSfu, MediaBackend, MediaEvent};
use crate::metrics::Metrics;
use crate::owed::MinutesQueue;
use crate::queues::RoomQueues;
use crate::store::Store;
use crate::transcription::Transcriber;
use crate::worker::Bridge;
use crate::{minutes, transcripts, web};

/// How long handled event ids are remembered.
const HANDLED_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// How long the shutdown waits for transcription, then for the rooms.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);
/// How often live calls are checked for timeouts.
const TIMEOUT_TICK: Duration = Duration::from_secs(5);

/// Connects to the homeserver, waiting while it is down; refusals are fatal.
async fn connect_matrix(config: &Config, store: &Store) -> anyhow::Result<Matrix> {
    let mut wait = Duration::from_secs(1);
    loop {
        match Matrix::connect(config, store).await {
            Ok(matrix) => return Ok(matrix),
            Err(e @ MatrixError::Unavailable { .. }) => {
                warn!(homeserver = %config.homeserver.url, error = %e, wait_s = wait.as_secs(), "homeserver unreachable; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e @ MatrixError::Refused { .. }) => {
                anyhow::bail!(
                    "the homeserver refused the appservice's credentials ({e}). \
                     Is appservice.yaml listed in Synapse's app_service_config_files, \
                     with the same tokens, and was Synapse restarted?"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    info!("shutting down");
}

/// `salon run`: serves until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let tokens = config.tokens()?.clone();
    let store = Store::open(&config.storage.path)?;
    // who the SFU's identities were: tokens live an hour, keep a day
    match store.prune_identities(crate::clock::now_millis().saturating_sub(86_400_000)) {
        Ok(0) => {}
        Ok(n) => info!(
            pruned = n,
            "let go of media identities of long-expired tokens"
        ),
        Err(e) => warn!(error = %e, "cannot prune old media identities"),
    }
    let metrics = Arc::new(Metrics::default());
    let matrix = connect_matrix(&config, &store).await?;
    if let Err(e) = matrix.set_displayname(&config.bot.displayname).await {
        warn!(error = %e, "cannot set the bot's display name");
    }
    let sender_user_id = UserId::parse(format!(
        "@{}:{}",
        tokens.sender_localpart, config.homeserver.server_name
    ))?;
    let media: Arc<dyn MediaBackend> = match &config.sfu.backend {
        crate::config::SfuBackend::Embedded => {
            let sfu_secret = sfu_secret(&config, &store).await?;
            EmbeddedSfu::start(sfu_config(&config, &sfu_secret), config.sfu_ws_url())?
        }
        crate::config::SfuBackend::LiveKit { .. } => {
            crate::livekit::LiveKitBackend::new(&config.sfu)?
        }
    };
    let (transcriber, transcribed) = Transcriber::new(
        config.transcription.clone(),
        media.clone(),
        store.clone(),
        metrics.clone(),
    );
    if let Some(keys) = matrix.media_keys() {
        transcriber.use_media_keys(keys);
    }
    let (minutes_queue, owed_minutes) = MinutesQueue::new(metrics.clone());
    let rooms = RoomQueues::default();
    let app = Arc::new(Bridge {
        config: config.clone(),
        store: store.clone(),
        matrix: matrix.clone(),
        metrics: metrics.clone(),
        sender_user_id,
        media: media.clone(),
        transcriber: transcriber.clone(),
        minutes: minutes_queue.clone(),
        summarizer: minutes::summarizer(&config.minutes)?,
        rooms: rooms.clone(),
    });
    app.refresh_live_calls();
    rooms.start(app.clone());
    // Before anything posts: the device's keys are up and its rooms known.
    let e2ee_sync = crate::matrix::start_sync(&matrix, &store, &rooms).await;
    let sink = tokio::spawn(transcripts::run_sink(
        app.clone(),
        rooms.clone(),
        transcribed,
    ));
    let minutes_worker = tokio::spawn(minutes::run_worker(app.clone(), owed_minutes));
    resume_after_restart(&app).await?;

    // Replay what a previous run accepted but did not finish.
    let owed = store.inbox()?;
    if !owed.is_empty() {
        info!(
            events = owed.len(),
            "replaying events left from the previous run"
        );
    }
    for (seq, event) in owed {
        rooms.dispatch_event(seq, event);
    }

    let as_state = AppserviceState::new(
        tokens.hs_token.clone(),
        config.bot_user_id(),
        store.clone(),
        metrics.clone(),
        rooms.clone(),
    );
    let as_router = appservice::router(as_state);
    let web_router = web::router(web::WebState {
        config: config.clone(),
        store: store.clone(),
    })
    .merge(access::router(
        access::AccessState::new(config.clone(), store.clone(), matrix.clone(), media.clone())
            .with_rooms(rooms.clone()),
    ))
    .merge(crate::lobby::router(access::AccessState::new(
        config.clone(),
        store.clone(),
        matrix.clone(),
        media.clone(),
    )))
    .merge(crate::focus::router(
        &config.web.focus_path,
        access::AccessState::new(config.clone(), store.clone(), matrix.clone(), media.clone()),
    ))
    .merge(media.router().unwrap_or_default());
    let participants = follow_participants(&media, &store, &rooms, &transcriber);

    let (shutdown_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut servers = Vec::new();
    if config.appservice.bind == config.web.bind {
        let listener = bind(config.appservice.bind, "appservice and web").await?;
        servers.push(serve(
            listener,
            as_router.merge(web_router),
            shutdown_tx.subscribe(),
        ));
    } else {
        let as_listener = bind(config.appservice.bind, "appservice").await?;
        let web_listener = bind(config.web.bind, "web").await?;
        servers.push(serve(as_listener, as_router, shutdown_tx.subscribe()));
        servers.push(serve(web_listener, web_router, shutdown_tx.subscribe()));
    }
    info!(
        appservice = %config.appservice.bind,
        web = %config.web.bind,
        bot = %config.bot_user_id(),
        "Salon is ready"
    );

    // Timers: timeouts of live calls, pruning of old handled ids.
    let ticker = {
        let store = store.clone();
        let rooms = rooms.clone();
        let mut shutdown = shutdown_tx.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TIMEOUT_TICK);
            let mut ticks: u64 = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.recv() => break,
                }
                ticks += 1;
                match store.active_calls() {
                    Ok(calls) => {
                        for call in calls {
                            rooms.check_timeout(call.room_id);
                        }
                    }
                    Err(e) => warn!(error = %e, "cannot list live calls"),
                }
                if ticks % 720 == 1 {
                    let before = now_millis().saturating_sub(HANDLED_RETENTION.as_millis() as u64);
                    match store.prune_handled(before) {
                        Ok(n) if n > 0 => info!(pruned = n, "forgot old handled event ids"),
                        Ok(_) => {}
                        Err(e) => warn!(error = %e, "cannot prune handled event ids"),
                    }
                }
            }
        })
    };

    shutdown_signal().await;
    // Stop accepting: the HTTP servers finish their requests and close
    // (events the homeserver sends meanwhile are resent to the next run).
    let _ = shutdown_tx.send(());
    for server in servers {
        if let Err(e) = server.await {
            error!(error = %e, "server task failed");
        }
    }
    let _ = ticker.await;
    participants.abort();
    // What was said is transcribed and handed to the rooms, then the rooms
    // post what they have; both bounded, so a dead homeserver cannot hold
    // the shutdown (unfinished events stay in the inbox for the next run).
    transcriber.shutdown(SHUTDOWN_DRAIN).await;
    let busy = rooms.shutdown(SHUTDOWN_DRAIN).await;
    if busy > 0 {
        warn!(
            rooms = busy,
            "rooms still busy at shutdown; their events are replayed at the next start"
        );
    }
    if let Some(sync) = e2ee_sync {
        sync.abort();
    }
    media.shutdown().await;
    sink.abort();
    minutes_worker.abort();
    if let Err(e) = store.flush_now().await {
        error!(error = %e, "cannot flush the store at shutdown");
    }
    info!("stopped");
    Ok(())
}

/// Picks up what a previous run left: calls being transcribed listen again
/// (their participants rejoin the new SFU), and owed minutes are posted.
/// In an encrypted call the media keys died with the previous run, and
/// members send their current key only to a member who joins: Visio leaves
/// the call and joins it again, so that they send it.
async fn resume_after_restart(app: &Arc<Bridge>) -> anyhow::Result<()> {
    for mut call in app.store.active_calls()? {
        if call.transcribing {
            let language = app.store.room_settings(&call.room_id)?.language;
            match app.transcriber.ensure_engine().await {
                Ok(()) => app.transcriber.start(&call, language.as_deref()),
                Err(e) => warn!(call_id = %call.id, error = %e, "cannot resume transcription"),
            }
        }
        if call.bot_membership.is_some() {
            let app = app.clone();
            tokio::spawn(async move {
                let rejoined = match app.leave_call_as_member(&mut call).await {
                    Ok(()) => app.join_call_as_member(&mut call).await,
                    Err(e) => Err(e),
                };
                match rejoined {
                    Ok(()) => {
                        info!(call_id = %call.id, "Visio joined the encrypted call again, for its keys")
                    }
                    Err(e) => {
                        warn!(call_id = %call.id, error = %e, "cannot rejoin the encrypted call; its audio stays unheard until the next key rotation")
                    }
                }
            });
        }
    }
    if app.config.minutes.enabled {
        let owed = app.store.calls_owing_minutes()?;
        if !owed.is_empty() {
            info!(
                calls = owed.len(),
                "posting minutes owed from the previous run"
            );
        }
        for call in owed {
            app.minutes.owe(&call.id);
        }
    }
    Ok(())
}

/// The SFU's API secret: from the config, else made once and kept in the store.
async fn sfu_secret(config: &Config, store: &Store) -> anyhow::Result<Secret> {
    if let Some(secret) = &config.sfu.api_secret {
        return Ok(secret.clone());
    }
    if let Some(secret) = store.meta::<String>("sfu_api_secret")? {
        return Ok(Secret::new(secret));
    }
    let secret = crate::config::registration::random_token(48);
    store.set_meta("sfu_api_secret", &secret).await?;
    Ok(Secret::new(secret))
}

fn sfu_config(config: &Config, secret: &Secret) -> salon_sfu::SfuConfig {
    let s = &config.sfu;
    salon_sfu::SfuConfig {
        bind_ip: s.bind_ip,
        udp_port_min: s.udp_port_min,
        udp_port_max: s.udp_port_max,
        public_ip: s.public_ip,
        ice_servers: s
            .turn
            .iter()
            .map(|t| salon_sfu::IceServer {
                urls: t.urls.clone(),
                username: t.username.clone(),
                credential: t.credential.expose().to_owned(),
            })
            .collect(),
        api_key: s.api_key.clone(),
        api_secret: secret.expose().to_owned(),
        max_participants: s.max_participants,
        max_bitrate_bps: s.max_bitrate_bps,
        ws_url: Some(config.sfu_ws_url()),
    }
}

/// Turns the media backend's join and leave events into jobs on the call's
/// room queue.
fn follow_participants(
    media: &Arc<dyn MediaBackend>,
    store: &Store,
    rooms: &RoomQueues,
    transcriber: &Arc<Transcriber>,
) -> tokio::task::JoinHandle<()> {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = media.events();
    let (store, rooms, transcriber) = (store.clone(), rooms.clone(), transcriber.clone());
    tokio::spawn(async move {
        loop {
            let (call_id, identity, joined) = match events.recv().await {
                Ok(MediaEvent::Joined {
                    call_id, identity, ..
                }) => {
                    transcriber.participant_joined(&call_id, &identity);
                    (call_id, identity, true)
                }
                Ok(MediaEvent::Left { call_id, identity }) => (call_id, identity, false),
                Err(RecvError::Lagged(n)) => {
                    warn!(missed = n, "missed media events");
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            // `call_id` names the LiveKit room: the Matrix room's (rtc.rs).
            match store.media_room(&call_id) {
                Ok(Some(room_id)) => rooms.participant(room_id, identity, joined),
                Ok(None) => {
                    warn!(media_room = %call_id, "media event for a room Salon did not name")
                }
                Err(e) => warn!(error = %e, "cannot read the room of a media event"),
            }
        }
    })
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the {what} API: {e}"))
}

fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut shutdown: tokio::sync::broadcast::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let result = axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                let _ = shutdown.recv().await;
            })
            .await;
        if let Err(e) = result {
            error!(error = %e, "HTTP server stopped");
        }
    })
}
