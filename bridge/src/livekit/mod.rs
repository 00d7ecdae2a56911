//! The LiveKit-cluster media backend: the second implementation of
//! `media::MediaBackend`, for `[sfu] backend = "livekit"`. Media flows
//! through LiveKit server nodes sharing a Redis; Salon keeps the Matrix side.
//!
//! In the flow: `access`/`focus` get join grants minted here for the
//! cluster's URL (the same claims as the embedded SFU's); LiveKit posts
//! webhooks to `webhook` (on the web listener), which become `MediaEvent`s
//! for `app::follow_participants`; `transcription` opens taps, fed by a hidden
//! participant per call (`listener`); captions go out from it; `room` closes
//! a call with `twirp`'s `DeleteRoom`. `token` signs the grants.

mod listener;
mod token;
pub mod twirp;
pub mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use tracing::{debug, info, warn};
use url::Url;

use crate::config::{Secret, SfuBackend, SfuSettings};
use crate::media::{AudioTap, Caption, JoinGrant, MediaBackend, MediaEvent, MediaParticipant};
use listener::{Feeds, Listener};
pub use token::TRANSCRIBER_IDENTITY;
pub use twirp::RoomService;
pub use webhook::WEBHOOK_PATH;

/// How long the transcriber's grant lasts (it reconnects with a new one).
const TRANSCRIBER_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long a caption waits for the transcriber to be connected.
const CAPTION_WAIT: Duration = Duration::from_secs(2);

/// A LiveKit cluster as the bridge's media backend.
pub struct LiveKitBackend {
    /// The signalling URL clients are given (`wss://…`, no trailing `/`).
    ws_url: String,
    api_key: String,
    api_secret: Secret,
    /// Where the transcriber's media connections bind.
    bind_ip: IpAddr,
    api: RoomService,
    events: broadcast::Sender<MediaEvent>,
    /// Who is in each call, as the webhooks said (identity → name).
    participants: Mutex<HashMap<String, BTreeMap<String, String>>>,
    feeds: Arc<Feeds>,
    listeners: Mutex<HashMap<String, Listener>>,
    /// Calls whose participants were asked of LiveKit (once per run: after a
    /// restart, the webhooks of those already in a call are long gone).
    asked: Mutex<std::collections::HashSet<String>>,
    refused_webhooks: AtomicU64,
    this: Weak<LiveKitBackend>,
}

impl LiveKitBackend {
    /// The backend for `settings` (whose backend must be LiveKit).
    pub fn new(settings: &SfuSettings) -> anyhow::Result<Arc<Self>> {
        let SfuBackend::LiveKit { url } = &settings.backend else {
            anyhow::bail!("the LiveKit backend needs [sfu] backend = \"livekit\"");
        };
        let api_secret = settings.api_secret.clone().ok_or_else(|| {
            anyhow::anyhow!("the LiveKit backend needs [sfu] api_secret_file (or api_secret)")
        })?;
        info!(url = %url, api_key = %settings.api_key, "media goes through a LiveKit cluster");
        Ok(Arc::new_cyclic(|this| LiveKitBackend {
            ws_url: url.as_str().trim_end_matches('/').to_owned(),
            api: RoomService::new(url, &settings.api_key, api_secret.expose()),
            api_key: settings.api_key.clone(),
            api_secret,
            bind_ip: settings.bind_ip,
            events: broadcast::channel(1024).0,
            participants: Mutex::default(),
            feeds: Arc::default(),
            listeners: Mutex::default(),
            asked: Mutex::default(),
            refused_webhooks: AtomicU64::new(0),
            this: this.clone(),
        }))
    }

    /// The cluster's server API (moderation: mute, remove).
    pub fn room_service(&self) -> &RoomService {
        &self.api
    }

    /// Webhooks refused since start (bad or missing signature).
    pub fn refused_webhooks(&self) -> u64 {
        self.refused_webhooks.load(Ordering::Relaxed)
    }

    fn credentials(&self) -> (&str, &str) {
        (&self.api_key, self.api_secret.expose())
    }

    fn count_refused_webhook(&self) {
        self.refused_webhooks.fetch_add(1, Ordering::Relaxed);
    }

    fn transcriber_token(&self, call_id: &str) -> String {
        token::transcriber(
            &self.api_key,
            self.api_secret.expose(),
            call_id,
            TRANSCRIBER_TTL,
        )
    }

    fn participants_of(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<String, String>>> {
        self.participants.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn listeners(&self) -> std::sync::MutexGuard<'_, HashMap<String, Listener>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A verified webhook: joins and leaves become `MediaEvent`s, once each.
    fn webhook_event(&self, event: webhook::WebhookEvent) {
        use webhook::WebhookEvent;
        match event {
            WebhookEvent::ParticipantJoined {
                room,
                identity,
                name,
            } => {
                if identity == TRANSCRIBER_IDENTITY {
                    return;
                }
                let new = self
                    .participants_of()
                    .entry(room.clone())
                    .or_default()
                    .insert(identity.clone(), name.clone())
                    .is_none();
                if new {
                    let _ = self.events.send(MediaEvent::Joined {
                        call_id: room,
                        identity,
                        name,
                    });
                }
            }
            WebhookEvent::ParticipantLeft { room, identity } => {
                if identity == TRANSCRIBER_IDENTITY {
                    return;
                }
                let was_there = {
                    let mut all = self.participants_of();
                    let was = all
                        .get_mut(&room)
                        .is_some_and(|p| p.remove(&identity).is_some());
                    if all.get(&room).is_some_and(BTreeMap::is_empty) {
                        all.remove(&room);
                    }
                    was
                };
                self.feeds.end(&room, &identity);
                if was_there {
                    let _ = self.events.send(MediaEvent::Left {
                        call_id: room,
                        identity,
                    });
                }
            }
            WebhookEvent::RoomFinished { room } => {
                let gone = self.participants_of().remove(&room).unwrap_or_default();
                self.listeners().remove(&room);
                self.feeds.end_call(&room);
                for identity in gone.into_keys() {
                    let _ = self.events.send(MediaEvent::Left {
                        call_id: room.clone(),
                        identity,
                    });
                }
            }
            WebhookEvent::Other(_) => {}
        }
    }

    /// The first time this run asks about `call_id`: asks LiveKit who is in
    /// it, and reports those the webhooks have not (as joins), so that a
    /// restarted bridge knows a running call's members again.
    fn ask_once(&self, call_id: &str) {
        if !self
            .asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(call_id.to_owned())
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (this, call_id) = (self.this.clone(), call_id.to_owned());
        runtime.spawn(async move {
            let Some(backend) = this.upgrade() else {
                return;
            };
            match backend.api.list_participants(&call_id).await {
                Ok(people) => {
                    for (identity, name) in people {
                        backend.webhook_event(webhook::WebhookEvent::ParticipantJoined {
                            room: call_id.clone(),
                            identity,
                            name,
                        });
                    }
                }
                Err(twirp::TwirpError::Failed { status: 404, .. }) => {}
                Err(error) => warn!(%call_id, %error, "cannot ask LiveKit who is in the call"),
            }
        });
    }

    /// Starts the call's hidden participant unless it runs.
    fn ensure_listener(&self, call_id: &str) {
        let mut listeners = self.listeners();
        if listeners.get(call_id).is_some_and(Listener::alive) {
            return;
        }
        listeners.insert(
            call_id.to_owned(),
            Listener::start(self.this.clone(), call_id),
        );
    }
}

#[async_trait]
impl MediaBackend for LiveKitBackend {
    fn join_grant(&self, call_id: &str, identity: &str, name: &str, ttl: Duration) -> JoinGrant {
        JoinGrant {
            url: self.ws_url.clone(),
            token: salon_sfu::token::mint(
                &self.api_key,
                self.api_secret.expose(),
                call_id,
                identity,
                name,
                ttl,
            ),
        }
    }

    fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.events.subscribe()
    }

    fn participants(&self, call_id: &str) -> Vec<MediaParticipant> {
        self.ask_once(call_id);
        self.participants_of()
            .get(call_id)
            .map(|all| {
                all.iter()
                    .map(|(identity, name)| MediaParticipant {
                        identity: identity.clone(),
                        name: name.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn subscribe_audio(&self, call_id: &str, identity: &str) -> Option<AudioTap> {
        if identity == TRANSCRIBER_IDENTITY {
            return None;
        }
        self.ask_once(call_id);
        let tap = self.feeds.tap(call_id, identity);
        self.ensure_listener(call_id);
        Some(tap)
    }

    async fn send_caption(&self, caption: Caption<'_>) {
        let listener = self
            .listeners()
            .get(caption.call_id)
            .map(|l| l.client.clone());
        let Some(mut client) = listener else {
            debug!(
                call_id = caption.call_id,
                "no transcriber in the call: caption not sent"
            );
            return;
        };
        let connected = client.wait_for(Option::is_some);
        let client = match tokio::time::timeout(CAPTION_WAIT, connected).await {
            Ok(Ok(found)) => found.clone(),
            _ => None,
        };
        let Some(client) = client else {
            debug!(
                call_id = caption.call_id,
                "the transcriber is not connected: caption not sent"
            );
            return;
        };
        let track = self.feeds.track_sid(caption.call_id, caption.speaker);
        let packet = listener::transcription_packet(caption.speaker, track, &caption);
        if let Err(error) = client.send_packet(&packet).await {
            warn!(call_id = caption.call_id, %error, "cannot send a caption into the LiveKit room");
        }
    }

    async fn send_data(&self, call_id: &str, topic: &str, payload: &[u8]) {
        if let Err(error) = self.api.send_data(call_id, topic, payload).await {
            warn!(%call_id, %error, "cannot send data into the LiveKit room");
        }
    }

    async fn mute(&self, call_id: &str, identity: &str, what: crate::media::MuteWhat) -> usize {
        let tracks = match self.api.tracks_of(call_id, identity).await {
            Ok(tracks) => tracks,
            Err(error) => {
                warn!(%call_id, identity, %error, "cannot list the tracks to mute");
                return 0;
            }
        };
        let mut muted = 0;
        for (sid, audio, source) in tracks {
            let kind = if audio {
                salon_sfu::TrackKind::Audio
            } else {
                salon_sfu::TrackKind::Video
            };
            if !what.covers(kind, source) {
                continue;
            }
            match self
                .api
                .mute_published_track(call_id, identity, &sid, true)
                .await
            {
                Ok(()) => muted += 1,
                Err(error) => warn!(%call_id, identity, track_sid = %sid, %error, "cannot mute"),
            }
        }
        muted
    }

    async fn remove(&self, call_id: &str, identity: &str) -> bool {
        // LiveKit keeps no list of the removed: Salon refuses them new
        // tokens, and the tokens it gave last five minutes.
        match self.api.remove_participant(call_id, identity).await {
            Ok(()) => true,
            Err(twirp::TwirpError::Failed { status: 404, .. }) => false,
            Err(error) => {
                warn!(%call_id, identity, %error, "cannot remove from the LiveKit room");
                false
            }
        }
    }

    async fn close_call(&self, call_id: &str) {
        match self.api.delete_room(call_id).await {
            Ok(()) => info!(%call_id, "closed the LiveKit room"),
            Err(twirp::TwirpError::Failed { status: 404, .. }) => {
                debug!(%call_id, "no LiveKit room to close")
            }
            Err(error) => warn!(%call_id, %error, "cannot close the LiveKit room"),
        }
        self.listeners().remove(call_id);
        self.feeds.end_call(call_id);
    }

    fn router(&self) -> Option<axum::Router> {
        let this = self.this.upgrade()?;
        Some(
            axum::Router::new()
                .route(WEBHOOK_PATH, axum::routing::post(webhook::handle))
                .with_state(this),
        )
    }

    async fn shutdown(&self) {
        self.listeners().clear();
    }
}

/// What `salon doctor` checks of a LiveKit cluster: the URL answers, the
/// key and secret are accepted, and Salon's webhook URL reaches a Salon.
pub async fn doctor_checks(
    url: &Url,
    api_key: &str,
    api_secret: &str,
    webhook_url: &str,
) -> Vec<crate::doctor::Check> {
    use crate::doctor::Check;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a plain HTTP client builds");
    let base = twirp::api_base(url);
    let mut checks = Vec::new();
    match http.get(&base).send().await {
        Ok(r) if r.status().is_success() => {
            checks.push(Check::Ok(format!("LiveKit answers at {base}")))
        }
        Ok(r) => {
            checks.push(Check::Fail(format!(
                "{base} answered {} where LiveKit server answers 200: is [sfu] url a LiveKit server?",
                r.status()
            )));
            return checks;
        }
        Err(e) => {
            checks.push(Check::Fail(format!(
                "cannot reach LiveKit at {base}: {e}. Check [sfu] url and that the cluster is up."
            )));
            return checks;
        }
    }
    let api = RoomService::new(url, api_key, api_secret);
    match api.list_rooms().await {
        Ok(rooms) => checks.push(Check::Ok(format!(
            "LiveKit accepts the API key `{api_key}` and its secret ({} rooms open)",
            rooms.len()
        ))),
        Err(twirp::TwirpError::Unauthorized { .. }) => {
            checks.push(Check::Fail(format!(
                "LiveKit refused the API key `{api_key}` or its secret: the pair must be listed under \
                 `keys:` in the cluster's livekit.yaml, and [sfu] api_secret_file must hold that secret"
            )));
            return checks;
        }
        Err(e) => {
            checks.push(Check::Fail(format!("LiveKit's server API failed: {e}")));
            return checks;
        }
    }
    // An unsigned post must be refused (401) by a running Salon: that says
    // the URL LiveKit is given reaches Salon and that Salon checks signatures.
    let hint = format!(
        "in livekit.yaml set webhook: {{api_key: {api_key}, urls: [{webhook_url}]}} so that Salon learns joins and leaves"
    );
    match http.post(webhook_url).body("{}").send().await {
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => checks.push(Check::Ok(format!(
            "Salon's webhook answers at {webhook_url}; {hint}"
        ))),
        Ok(r) => checks.push(Check::Warn(format!(
            "{webhook_url} answered {} (Salon answers 401 to an unsigned post): is it Salon? {hint}",
            r.status()
        ))),
        Err(_) => checks.push(Check::Warn(format!(
            "nothing answers at {webhook_url} (is Salon running?); {hint}"
        ))),
    }
    checks
}
