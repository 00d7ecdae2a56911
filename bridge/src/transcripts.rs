//! Transcription in the room: consent commands, the "transcription started"
//! thread, and the transcript notices.
//!
//! Transcription starts only when a member with the configured power level
//! says `!visio transcribe on`, or when the room's setting
//! (`!visio settings transcription=auto`) says so at the start of a call. The
//! room is told when it starts and stops, and the call page shows a banner to
//! every participant (through the call info and a data packet). Each final
//! utterance is stored in sled first, then sent into the call as a LiveKit
//! caption and posted as an `m.notice` in the thread, with the structured
//! `org.salon.transcript` field.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use ruma::OwnedRoomId;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::calls::{self, Call, TranscribeOutcome};
use crate::clock::now_millis;
use crate::commands::Setting;
use crate::matrix::txn_for;
use crate::metrics::Metrics;
use crate::percall::{self, PerCall};
use crate::queues::RoomQueues;
use crate::room::{Event, HandleError};
use crate::transcription::Transcribed;
use crate::worker::Bridge;
use salon_minutes::render::html as escape_html;

/// The data-packet topic the call page listens on for the banner.
pub const TRANSCRIPTION_TOPIC: &str = "salon.transcription";
/// Captions already finalised, remembered so a late partial cannot replace them.
const FINALISED_MEMORY: usize = 4096;
/// What the room is told when Element Call encrypts the call's media.
const ENCRYPTED_MEDIA: &str = "This call's audio is end-to-end encrypted by Element Call (the room is encrypted). To transcribe it, Visio must join the call as a member and receive its keys like everyone, and this server has no encrypted device for Visio (its admin turns on `[e2ee] enabled`). Nothing is transcribed; transcription stays off.";
/// What the "transcription is on" notice adds when Visio joined an
/// encrypted call as a member to hear it.
const KEYED_MEMBER: &str = " This call is end-to-end encrypted: Visio joined it as a member (everyone in the call sees it) and receives its keys like everyone; it leaves the call and forgets the keys when transcription stops.";

/// How transcription was turned on.
enum TurnedOnBy<'a> {
    Command(&'a Event),
    RoomSetting,
}

impl Bridge {
    /// `!visio transcribe on|off`.
    pub(crate) async fn transcribe_command(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
        on: Option<bool>,
    ) -> Result<(), HandleError> {
        let Some(on) = on else {
            self.reply(
                room_id,
                event,
                "Usage: `!visio transcribe on` or `!visio transcribe off`.",
                None,
                json!({ "command": "transcribe", "outcome": "usage" }),
            )
            .await?;
            return Ok(());
        };
        let mut current = self.store.room_call(room_id)?;
        let by_power = match &current {
            Some(call) if call.is_active() => {
                self.power_levels(room_id).await?.user_level(&event.sender)
            }
            _ => 0,
        };
        let outcome = calls::set_transcription(
            current.as_mut(),
            on,
            by_power,
            self.config.transcription.enabled,
            &self.config.permissions,
        );
        let mut call = match outcome {
            Err(refusal) => return self.refuse(room_id, event, "transcribe", &refusal).await,
            Ok(_) => current.expect("set_transcription accepts only a live call"),
        };
        let encrypted = match outcome {
            Ok(TranscribeOutcome::TurnedOn) => self.media_is_encrypted(&call).await?,
            _ => false,
        };
        match outcome {
            Ok(TranscribeOutcome::TurnedOn)
                if encrypted && self.matrix.e2ee_device_id().is_none() =>
            {
                info!(call_id = %call.id, "transcription asked for, but Element Call encrypts this call's media");
                self.reply(
                    room_id,
                    event,
                    ENCRYPTED_MEDIA,
                    None,
                    json!({ "command": "transcribe", "outcome": "encrypted_media", "call_id": call.id }),
                )
                .await?;
            }
            Ok(TranscribeOutcome::TurnedOn) => {
                if let Err(e) = self.transcriber.ensure_engine().await {
                    warn!(error = %e, "transcription asked for, but the engine is unavailable");
                    let body = format!("I can't transcribe this call: {e}.");
                    self.reply(
                        room_id,
                        event,
                        &body,
                        None,
                        json!({ "command": "transcribe", "outcome": "engine_unavailable", "reason": e.to_string() }),
                    )
                    .await?;
                    return Ok(());
                }
                self.store.save_call(&call).await?;
                self.announce_on(&mut call, TurnedOnBy::Command(event), encrypted)
                    .await?;
                if encrypted {
                    self.join_call_as_member(&mut call).await?;
                }
            }
            Ok(TranscribeOutcome::TurnedOff) => {
                self.store.save_call(&call).await?;
                self.transcriber.stop(&call.id);
                self.leave_call_as_member(&mut call).await?;
                self.show_transcription(&mut call).await?;
                info!(call_id = %call.id, by = %event.sender, "transcription turned off");
                self.reply(
                    room_id,
                    event,
                    "⏹ Transcription is off. Nothing said from now on is transcribed; what was said before stays in the thread.",
                    None,
                    json!({ "command": "transcribe", "outcome": "off", "call_id": call.id }),
                )
                .await?;
            }
            Ok(TranscribeOutcome::Unchanged) if on && call.transcript_thread.is_none() => {
                // a replay after a crash between saving and announcing
                self.transcriber
                    .ensure_engine()
                    .await
                    .map_err(|e| warn!(error = %e, "speech engine unavailable"))
                    .ok();
                let encrypted = self.media_is_encrypted(&call).await?;
                self.announce_on(&mut call, TurnedOnBy::Command(event), encrypted)
                    .await?;
                if encrypted {
                    self.join_call_as_member(&mut call).await?;
                }
            }
            Ok(TranscribeOutcome::Unchanged) => {
                let body = if on {
                    "Transcription is already on for this call."
                } else {
                    "Transcription is already off."
                };
                self.reply(
                    room_id,
                    event,
                    body,
                    None,
                    json!({ "command": "transcribe", "outcome": "unchanged", "transcription": on, "call_id": call.id }),
                )
                .await?;
            }
            Err(_) => unreachable!("handled above"),
        }
        Ok(())
    }

    /// Whether Element Call encrypts the call's media end to end: it does in
    /// an encrypted room, and someone is in the call through it (a MatrixRTC
    /// membership). Salon forwards that media untouched and cannot hear it.
    async fn media_is_encrypted(&self, call: &Call) -> Result<bool, HandleError> {
        let settings = self.store.room_settings(&call.room_id)?;
        if settings.rtc_members.active(now_millis()).next().is_none() {
            return Ok(false);
        }
        Ok(self
            .matrix
            .state(&call.room_id, "m.room.encryption", "")
            .await?
            .is_some())
    }

    /// Turns transcription on at the start of a call when the room says
    /// `transcription=auto`.
    pub(crate) async fn auto_transcribe(&self, call: &mut Call) -> Result<(), HandleError> {
        if !self.config.transcription.enabled
            || !self.store.room_settings(&call.room_id)?.transcription_auto
        {
            return Ok(());
        }
        let encrypted = self.media_is_encrypted(call).await?;
        if encrypted && self.matrix.e2ee_device_id().is_none() {
            let content = json!({
                "msgtype": "m.notice",
                "body": format!("This room asks for transcription. {ENCRYPTED_MEDIA}"),
                "org.salon.transcription": { "call_id": call.id, "state": "encrypted_media" },
            });
            self.matrix
                .send_message(
                    &call.room_id,
                    &format!("salon.transcription.{}.encrypted", call.id),
                    &content,
                )
                .await?;
            return Ok(());
        }
        if let Err(e) = self.transcriber.ensure_engine().await {
            warn!(error = %e, "room asks for transcription, but the engine is unavailable");
            let content = json!({
                "msgtype": "m.notice",
                "body": format!("This room asks for transcription, but I can't transcribe: {e}."),
                "org.salon.transcription": { "call_id": call.id, "state": "unavailable", "reason": e.to_string() },
            });
            self.matrix
                .send_message(
                    &call.room_id,
                    &format!("salon.transcription.{}.unavailable", call.id),
                    &content,
                )
                .await?;
            return Ok(());
        }
        call.transcribing = true;
        call.transcription_sessions += 1;
        self.store.save_call(call).await?;
        self.announce_on(call, TurnedOnBy::RoomSetting, encrypted)
            .await?;
        if encrypted {
            self.join_call_as_member(call).await?;
        }
        Ok(())
    }

    /// Visio joins an encrypted call as a member, so that Element Call sends
    /// its device the media keys, and shows it in the call as
    /// "Visio (transcription)". Keys that come before the transcriber opened
    /// the room are dropped: this runs after [`Self::announce_on`].
    pub(crate) async fn join_call_as_member(&self, call: &mut Call) -> Result<(), HandleError> {
        let Some(device) = self.matrix.e2ee_device_id() else {
            return Ok(());
        };
        let bot = self.matrix.bot_user_id().to_owned();
        let focus_url = self.config.focus_url();
        let now = crate::clock::now_millis();
        let content = crate::rtc::membership_content(
            bot.as_str(),
            device.as_str(),
            call.room_id.as_str(),
            &focus_url,
            now,
        );
        let name = json!({
            "membership": "join",
            "displayname": format!("{} (transcription)", self.config.bot.displayname),
        });
        self.matrix
            .send_state(&call.room_id, "m.room.member", bot.as_str(), &name)
            .await?;
        self.matrix
            .send_state(
                &call.room_id,
                crate::rtc::CALL_MEMBER_EVENT,
                &crate::rtc::membership_state_key(bot.as_str(), device.as_str()),
                &content,
            )
            .await?;
        call.bot_membership = Some(device.to_string());
        call.bot_membership_at = Some(now);
        self.store.save_call_only(call).await?;
        info!(call_id = %call.id, device = %device, "Visio joined the encrypted call as a member, to receive its media keys");
        Ok(())
    }

    /// Visio leaves the call it joined as a member (transcription off, or the
    /// call ended); the transcriber has forgotten the keys by then.
    pub(crate) async fn leave_call_as_member(&self, call: &mut Call) -> Result<(), HandleError> {
        let Some(device) = call.bot_membership.clone() else {
            return Ok(());
        };
        let bot = self.matrix.bot_user_id().to_owned();
        self.matrix
            .send_state(
                &call.room_id,
                crate::rtc::CALL_MEMBER_EVENT,
                &crate::rtc::membership_state_key(bot.as_str(), &device),
                &json!({}),
            )
            .await?;
        let name = json!({ "membership": "join", "displayname": self.config.bot.displayname });
        self.matrix
            .send_state(&call.room_id, "m.room.member", bot.as_str(), &name)
            .await?;
        call.bot_membership = None;
        call.bot_membership_at = None;
        self.store.save_call_only(call).await?;
        info!(call_id = %call.id, "Visio left the encrypted call");
        Ok(())
    }

    /// Posts the thread root, shows the banner and starts the taps. `keyed`:
    /// Visio joins the (encrypted) call as a member, which the notice says.
    async fn announce_on(
        &self,
        call: &mut Call,
        by: TurnedOnBy<'_>,
        keyed: bool,
    ) -> Result<(), HandleError> {
        let why = match by {
            TurnedOnBy::Command(event) => format!("turned on by {}", event.sender),
            TurnedOnBy::RoomSetting => "this room's setting: transcription=auto".to_owned(),
        };
        let body = format!(
            "🔴 Transcription is on ({why}). What each participant says in the call is transcribed on this server, never sent elsewhere, and posted in this thread under their name. `!visio transcribe off` stops it.{}",
            if keyed { KEYED_MEMBER } else { "" }
        );
        let mut content = json!({
            "msgtype": "m.notice",
            "body": body,
            "org.salon.transcription": { "call_id": call.id, "state": "on", "member": keyed },
        });
        let txn = match by {
            TurnedOnBy::Command(event) => {
                content["m.relates_to"] =
                    json!({ "m.in_reply_to": { "event_id": event.event_id } });
                content["org.salon.reply"] =
                    json!({ "command": "transcribe", "outcome": "on", "call_id": call.id });
                txn_for(&event.event_id, "reply")
            }
            TurnedOnBy::RoomSetting => format!(
                "salon.transcription.{}.{}",
                call.id, call.transcription_sessions
            ),
        };
        let root = self
            .matrix
            .send_message(&call.room_id, &txn, &content)
            .await?;
        call.transcript_thread = Some(root);
        self.store.save_call(call).await?;
        self.show_transcription(call).await?;
        let language = self.store.room_settings(&call.room_id)?.language;
        self.transcriber.start(call, language.as_deref());
        info!(call_id = %call.id, %why, "transcription turned on");
        Ok(())
    }

    /// Tells the room state and the call page whether the call is transcribed.
    async fn show_transcription(&self, call: &mut Call) -> Result<(), HandleError> {
        let flag = json!({ "transcription": call.transcribing }).to_string();
        self.media
            .send_data(&call.media_room(), TRANSCRIPTION_TOPIC, flag.as_bytes())
            .await;
        self.show_call_change(call).await
    }

    /// `!visio settings [transcription=auto|manual] [language=fr|en|auto]`.
    pub(crate) async fn settings_command(
        &self,
        room_id: &OwnedRoomId,
        event: &Event,
        setting: Option<Setting>,
    ) -> Result<(), HandleError> {
        let describe = |s: &crate::store::RoomSettings| {
            let transcription = if s.transcription_auto {
                "auto"
            } else {
                "manual"
            };
            let language = s.language.clone().unwrap_or_else(|| "auto".into());
            (transcription, language)
        };
        let setting = match setting {
            None => {
                let (transcription, language) = describe(&self.store.room_settings(room_id)?);
                let body = format!(
                    "This room's settings: transcription={transcription}, language={language}. Change with `!visio settings transcription=auto|manual` or `!visio settings language=fr|en|auto`."
                );
                self.reply(
                    room_id,
                    event,
                    &body,
                    None,
                    json!({ "command": "settings", "outcome": "shown", "transcription": transcription, "language": language }),
                )
                .await?;
                return Ok(());
            }
            Some(Setting::Invalid(text)) => {
                let body = format!(
                    "I don't know the setting `{text}`. Known: `transcription=auto` (every call here is transcribed from its start) or `transcription=manual`, and `language=fr`, `language=en`… or `language=auto` (detected per sentence)."
                );
                self.reply(
                    room_id,
                    event,
                    &body,
                    None,
                    json!({ "command": "settings", "outcome": "unknown_setting" }),
                )
                .await?;
                return Ok(());
            }
            Some(setting) => setting,
        };
        let power = self.power_levels(room_id).await?.user_level(&event.sender);
        let required = self.config.permissions.transcribe_power_level;
        if power < required {
            let refusal = calls::Refusal::CannotTranscribe {
                required,
                actual: power,
            };
            return self.refuse(room_id, event, "settings", &refusal).await;
        }
        if setting == Setting::TranscriptionAuto(true) && !self.config.transcription.enabled {
            return self
                .refuse(
                    room_id,
                    event,
                    "settings",
                    &calls::Refusal::TranscriptionDisabled,
                )
                .await;
        }
        let saved = self
            .store
            .update_room_settings(room_id, |s| match &setting {
                Setting::TranscriptionAuto(auto) => s.transcription_auto = *auto,
                Setting::Language(language) => s.language = language.clone(),
                Setting::Invalid(_) => {}
            })
            .await?;
        let (transcription, language) = describe(&saved);
        let body = match &setting {
            Setting::TranscriptionAuto(true) => "Saved: transcription=auto. Every call started in this room will be transcribed from its start; participants see a banner, and `!visio transcribe off` stops it for a call.".to_owned(),
            Setting::TranscriptionAuto(false) => "Saved: transcription=manual. Calls here are transcribed only after `!visio transcribe on`.".to_owned(),
            Setting::Language(Some(code)) => format!("Saved: language={code}. Calls here are transcribed as {code} from the next time transcription is turned on."),
            Setting::Language(None) => "Saved: language=auto. The language is detected for each sentence from the next time transcription is turned on.".to_owned(),
            Setting::Invalid(_) => unreachable!("answered above"),
        };
        info!(by = %event.sender, transcription, %language, "room settings changed");
        self.reply(
            room_id,
            event,
            &body,
            None,
            json!({ "command": "settings", "outcome": "saved", "transcription": transcription, "language": language }),
        )
        .await?;
        Ok(())
    }

    /// Stores a final utterance and sends it into the call as a caption;
    /// returns its sequence number for the notice.
    async fn store_and_caption(&self, t: &Transcribed) -> Result<u64, HandleError> {
        let segment = salon_minutes::TranscriptSegment {
            call_id: t.call_id.clone(),
            speaker: t.speaker.clone(),
            speaker_name: Some(t.speaker_name.clone()),
            start_ms: t.start_ms,
            end_ms: t.end_ms,
            lang: t.lang.clone(),
            text: t.text.clone(),
        };
        let stored = self.store.append_segment(&segment).await;
        self.media.send_caption(t.caption(true)).await;
        Ok(stored?)
    }

    /// Posts a stored utterance in the call's thread.
    async fn post_transcript(&self, seq: u64, t: &Transcribed) -> Result<(), HandleError> {
        let thread = self
            .store
            .call(&t.call_id)?
            .and_then(|c| c.transcript_thread);
        // A guest has no Matrix account to link to.
        let is_guest = ruma::UserId::parse(t.speaker.as_str())
            .is_ok_and(|user| crate::guests::is_guest(&user));
        let who = if is_guest {
            escape_html(&t.speaker_name)
        } else {
            format!(
                "<a href=\"https://matrix.to/#/{}\">{}</a>",
                escape_html(&t.speaker),
                escape_html(&t.speaker_name)
            )
        };
        let mut content = json!({
            "msgtype": "m.notice",
            "body": format!("{}: {}", t.speaker_name, t.text),
            "format": "org.matrix.custom.html",
            "formatted_body": format!("<b>{who}</b>: {}", escape_html(&t.text)),
            "org.salon.transcript": {
                "call_id": t.call_id,
                "speaker": t.speaker,
                "start_ms": t.start_ms,
                "end_ms": t.end_ms,
                "lang": t.lang,
                "text": t.text,
            },
        });
        if let Some(root) = thread {
            content["m.relates_to"] = json!({
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": true,
                "m.in_reply_to": { "event_id": root },
            });
        }
        let event_id = self
            .matrix
            .send_message(
                &t.room_id,
                &format!("salon.transcript.{}.{seq}", t.call_id),
                &content,
            )
            .await?;
        self.store.segment_posted(&t.call_id, seq, event_id).await?;
        Metrics::inc(&self.metrics.transcript_segments);
        self.metrics
            .caption_latency
            .observe(t.speech_end_at.elapsed());
        Ok(())
    }
}

/// Takes the engine's results and hands each to its call's own task
/// ([`PerCall`]): a call whose room is slow never delays another call's
/// captions or notices.
pub async fn run_sink(
    app: Arc<Bridge>,
    rooms: RoomQueues,
    mut results: mpsc::UnboundedReceiver<Transcribed>,
) {
    let mut calls = PerCall::default();
    while let Some(t) = results.recv().await {
        let call_id = t.call_id.clone();
        let (app, rooms) = (app.clone(), rooms.clone());
        calls.send(&call_id, t, move |rx| call_sink(app, rooms, rx));
    }
}

/// One call's results in order: partials become captions; finals are
/// stored and captioned at once, then posted to the room through the room's
/// ordered worker, so a slow or rate-limiting homeserver never delays the
/// captions, and the notices of one room never wait for another room.
async fn call_sink(
    app: Arc<Bridge>,
    rooms: RoomQueues,
    mut results: mpsc::UnboundedReceiver<Transcribed>,
) {
    let mut finalised: HashSet<String> = HashSet::new();
    let mut order: VecDeque<String> = VecDeque::new();
    while let Some(t) = percall::next(&mut results, percall::IDLE).await {
        if !t.is_final {
            if !finalised.contains(&t.utterance) && !t.text.is_empty() {
                app.media.send_caption(t.caption(false)).await;
                Metrics::inc(&app.metrics.transcript_partials);
            }
            continue;
        }
        if finalised.insert(t.utterance.clone()) {
            order.push_back(t.utterance.clone());
            if order.len() > FINALISED_MEMORY
                && let Some(old) = order.pop_front()
            {
                finalised.remove(&old);
            }
        }
        if t.text.trim().is_empty() {
            continue;
        }
        match app.store_and_caption(&t).await {
            // each result holds its call's outstanding count until posted
            Ok(seq) => rooms.transcript_notice(t.room_id.clone(), seq, Box::new(t)),
            Err(e) => {
                Metrics::inc(&app.metrics.errors);
                warn!(call_id = %t.call_id, speaker = %t.speaker, error = %e, "cannot store a transcript segment");
            }
        }
    }
}

impl Bridge {
    /// The room worker's side: posts one stored utterance in its thread.
    pub(crate) async fn post_transcript_notice(&self, seq: u64, t: &Transcribed) {
        if let Err(e) = self.post_transcript(seq, t).await {
            Metrics::inc(&self.metrics.errors);
            warn!(call_id = %t.call_id, speaker = %t.speaker, error = %e, "cannot post a transcript segment; it stays in the minutes");
        }
    }
}
