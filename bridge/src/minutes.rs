//! Minutes posted to the room when a call ends, exactly once.
//!
//! Ending a call marks its minutes as owed in the same sled write that ends
//! it. A task of that call's own then waits for its last utterances to be
//! transcribed, builds the meeting (times, participants by display name, the
//! stored transcript), summarises it, uploads the transcript as WebVTT and
//! Markdown, posts both as `m.file`, and posts the minutes notice with the
//! structured `org.salon.minutes` field and links to the files. Each step's
//! result is recorded in sled and every post has a transaction id derived from
//! the call, so a restart at any point resumes without uploading or posting
//! twice; owed minutes are picked up at start-up. A homeserver that is down
//! is waited for; transcript files it refuses (too large, say) are left out
//! and the minutes say so; a refused notice is retried a bounded number of
//! times and then reported in the room.

use std::sync::Arc;
use std::time::Duration;

use ruma::{OwnedEventId, RoomId};
use salon_minutes::{Meeting, Participant, Summarizer, TranscriptLinks};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::{Instrument, error, info, info_span, warn};

use crate::calls::Call;
use crate::config::{MinutesConfig, SummaryEngineConfig};
use crate::metrics::Metrics;
use crate::room::HandleError;
use crate::store::MinutesProgress;
use crate::worker::Bridge;

/// How long the minutes wait for the call's last utterances.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);
/// Attempts at posting, after refusals, before the failure is reported in the room.
const ATTEMPTS: u32 = 3;
/// Attempts while the homeserver is unreachable (about an hour and a half).
const UNAVAILABLE_ATTEMPTS: u32 = 24;

/// The summariser the configuration asks for.
pub fn summarizer(config: &MinutesConfig) -> anyhow::Result<Summarizer> {
    Ok(match &config.engine {
        SummaryEngineConfig::Builtin => Summarizer::default(),
        SummaryEngineConfig::Llm {
            url,
            model,
            api_key,
            timeout,
        } => Summarizer::Llm(salon_minutes::LlmSummarizer::new(
            salon_minutes::LlmConfig {
                base_url: url.as_str().trim_end_matches('/').to_owned(),
                model: model.clone(),
                api_key: api_key.as_ref().map(|k| k.expose().to_owned()),
                timeout: *timeout,
            },
        )?),
    })
}

/// Posts owed minutes, each call on its own task: a call whose room is
/// slow, or whose summary takes long, never delays another call's minutes.
pub async fn run_worker(app: Arc<Bridge>, mut owed: mpsc::UnboundedReceiver<String>) {
    while let Some(call_id) = owed.recv().await {
        let span = info_span!(parent: None, "minutes", %call_id);
        tokio::spawn(post_owed(app.clone(), call_id).instrument(span));
    }
}

/// Waits for the call's last utterances, then posts its minutes, retrying
/// while the homeserver is down.
async fn post_owed(app: Arc<Bridge>, call_id: String) {
    let delay = app.config.minutes.post_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    app.transcriber.drain(&call_id, DRAIN_LIMIT).await;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match app.post_minutes(&call_id, None).await {
            Ok(Some(event_id)) => {
                Metrics::inc(&app.metrics.minutes_posted);
                info!(%event_id, "minutes posted");
                break;
            }
            Ok(None) => break,
            // The homeserver is down: keep trying, then leave them
            // owed for the next start rather than drop them.
            Err(e) if e.is_transient() => {
                if attempt >= UNAVAILABLE_ATTEMPTS {
                    Metrics::inc(&app.metrics.minutes_failed);
                    error!(error = %e, "homeserver unavailable; the minutes stay owed until the next start");
                    break;
                }
                let wait = Duration::from_secs((5u64 << attempt.min(6)).min(300));
                warn!(error = %e, attempt, wait_s = wait.as_secs(), "cannot post the minutes yet; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) if attempt < ATTEMPTS => {
                let wait = Duration::from_secs(5 * u64::from(attempt));
                warn!(error = %e, attempt, wait_s = wait.as_secs(), "the homeserver refused the minutes; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                Metrics::inc(&app.metrics.minutes_failed);
                error!(error = %e, attempts = attempt, "giving up on the minutes");
                app.report_minutes_failure(&call_id, &e).await;
                break;
            }
        }
    }
    app.minutes.done(&call_id);
}

impl Bridge {
    /// Builds the meeting of an ended call from the store and the room.
    async fn meeting(&self, call: &Call) -> Result<Meeting, HandleError> {
        let room_name = self
            .matrix
            .state(&call.room_id, "m.room.name", "")
            .await?
            .and_then(|c| c["name"].as_str().map(str::to_owned))
            .filter(|n| !n.trim().is_empty());
        let segments: Vec<_> = self
            .store
            .segments(&call.id)?
            .into_iter()
            .map(|r| r.segment)
            .collect();
        let mut people: Vec<String> = call.attendees.iter().map(|u| u.to_string()).collect();
        for segment in &segments {
            if !people.contains(&segment.speaker) {
                people.push(segment.speaker.clone());
            }
        }
        let mut participants = Vec::new();
        for mxid in people {
            let display_name = match ruma::UserId::parse(mxid.as_str()) {
                // A guest has no membership: the name they were admitted under.
                Ok(user) if crate::guests::is_guest(&user) => self
                    .store
                    .identity(user.as_str())?
                    .map(|who| who.name)
                    .filter(|name| !name.is_empty()),
                Ok(user) => self
                    .matrix
                    .state(&call.room_id, "m.room.member", user.as_str())
                    .await
                    .ok()
                    .flatten()
                    .and_then(|c| c["displayname"].as_str().map(str::to_owned)),
                Err(_) => None,
            };
            participants.push(Participant { mxid, display_name });
        }
        Ok(Meeting {
            call_id: call.id.clone(),
            room_name,
            started_at: call.started_at,
            ended_at: call.ended_at.unwrap_or(call.started_at),
            participants,
            segments,
        })
    }

    /// Uploads and posts one transcript file, recording each step.
    #[allow(clippy::too_many_arguments)]
    async fn post_transcript_file(
        &self,
        call: &Call,
        progress: &mut MinutesProgress,
        kind: &str,
        text: String,
        mime: &str,
        filename: &str,
    ) -> Result<OwnedEventId, HandleError> {
        let (upload, posted) = match kind {
            "webvtt" => (&mut progress.webvtt, &mut progress.webvtt_event),
            _ => (&mut progress.markdown, &mut progress.markdown_event),
        };
        if let Some(event_id) = posted {
            return Ok(event_id.clone());
        }
        let size = text.len();
        let file = match upload {
            Some(file) => file.clone(),
            None => {
                let file = self
                    .matrix
                    .upload_file(&call.room_id, text.into_bytes(), mime, filename)
                    .await?;
                *upload = Some(file.clone());
                file
            }
        };
        self.store
            .set_minutes_progress(&call.id, &without_keys(progress))
            .await?;
        let mut content = json!({
            "msgtype": "m.file",
            "body": filename,
            "filename": filename,
            "info": { "mimetype": mime, "size": size },
            "org.salon.transcript_file": { "call_id": call.id, "format": kind },
        });
        if let (Some(target), Value::Object(fields)) = (content.as_object_mut(), file) {
            target.extend(fields);
        }
        let event_id = self
            .matrix
            .send_message(
                &call.room_id,
                &format!("salon.minutes.{}.{kind}", call.id),
                &content,
            )
            .await?;
        match kind {
            "webvtt" => progress.webvtt_event = Some(event_id.clone()),
            _ => progress.markdown_event = Some(event_id.clone()),
        }
        self.store
            .set_minutes_progress(&call.id, &without_keys(progress))
            .await?;
        Ok(event_id)
    }

    /// Uploads and posts the WebVTT and Markdown transcripts; returns the two
    /// `m.file` events.
    async fn post_transcript_files(
        &self,
        call: &Call,
        meeting: &Meeting,
        progress: &mut MinutesProgress,
    ) -> Result<(OwnedEventId, OwnedEventId), HandleError> {
        let day = crate::room::format_time(call.started_at);
        let stem = format!("transcript-{}", day.get(..10).unwrap_or("call"));
        let vtt = self
            .post_transcript_file(
                call,
                progress,
                "webvtt",
                salon_minutes::transcript_webvtt(meeting),
                "text/vtt",
                &format!("{stem}.vtt"),
            )
            .await?;
        let md = self
            .post_transcript_file(
                call,
                progress,
                "markdown",
                salon_minutes::transcript_markdown(meeting),
                "text/markdown",
                &format!("{stem}.md"),
            )
            .await?;
        Ok((vtt, md))
    }

    /// Posts the minutes of an ended call. `repost_for` is the `!visio
    /// minutes` command asking again (a new event); otherwise this is the
    /// one-time posting, and `None` comes back when nothing is owed.
    pub(crate) async fn post_minutes(
        &self,
        call_id: &str,
        repost_for: Option<&OwnedEventId>,
    ) -> Result<Option<OwnedEventId>, HandleError> {
        let Some(call) = self.store.call(call_id)? else {
            return Ok(None);
        };
        if call.is_active() || (repost_for.is_none() && !call.minutes_owed) {
            return Ok(None);
        }
        let meeting = self.meeting(&call).await?;
        let mut minutes = self.summarizer.summarize(&meeting).await;
        minutes.moderation = call
            .moderation
            .iter()
            .map(|act| format!("{} — {}", crate::room::format_time(act.at), act.sentence()))
            .collect();
        let mut progress = self.store.minutes_progress(&call.id)?;
        let mut links = TranscriptLinks::default();
        let mut files = json!({});
        let mut files_failed = None;
        if !meeting.segments.is_empty() {
            match self
                .post_transcript_files(&call, &meeting, &mut progress)
                .await
            {
                Ok((vtt, md)) => {
                    links.webvtt = Some(permalink(&call.room_id, &vtt));
                    links.markdown = Some(permalink(&call.room_id, &md));
                    files = json!({
                        "webvtt": { "event_id": vtt, "file": progress.webvtt },
                        "markdown": { "event_id": md, "file": progress.markdown },
                    });
                }
                // Refused (too large, forbidden…): asking again will not help,
                // and the minutes themselves must not be lost for it.
                Err(HandleError::Matrix(e)) if !e.is_transient() => {
                    warn!(error = %e, "the homeserver refused the transcript files; posting the minutes without them");
                    files = json!({ "error": e.to_string() });
                    files_failed = Some(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        let mut body = salon_minutes::render_plain_with(&minutes, &meeting, &links);
        let mut html = salon_minutes::render_html_with(&minutes, &meeting, &links);
        if let Some(reason) = &files_failed {
            let note = format!("The transcript files could not be uploaded: {reason}");
            body.push_str(&format!("\n\n⚠ {note}"));
            html.push_str(&format!("<p>⚠ {}</p>", salon_minutes::render::html(&note)));
        }
        let mut content = json!({
            "msgtype": "m.notice",
            "body": body,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
            "org.salon.minutes": minutes,
            "org.salon.transcript_files": files,
        });
        if let Some(command) = repost_for {
            content["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": command } });
        }
        let txn = match repost_for {
            Some(command) => crate::matrix::txn_for(command, "minutes"),
            None => format!("salon.minutes.{}", call.id),
        };
        let event_id = self
            .matrix
            .send_message(&call.room_id, &txn, &content)
            .await?;
        if repost_for.is_none() {
            let mut call = self.store.call(call_id)?.unwrap_or(call);
            call.minutes_owed = false;
            call.minutes_event_id = Some(event_id.clone());
            self.store.save_call_only(&call).await?;
            // show the link in the room state, unless a newer call owns it
            if self
                .store
                .room_settings(&call.room_id)?
                .current_call
                .as_deref()
                == Some(call.id.as_str())
            {
                self.show_call_change(&mut call).await?;
            }
        }
        Ok(Some(event_id))
    }

    /// Tells the room the minutes could not be posted, and stops owing them
    /// (`!visio minutes` tries again).
    async fn report_minutes_failure(&self, call_id: &str, failure: &HandleError) {
        let Ok(Some(mut call)) = self.store.call(call_id) else {
            return;
        };
        call.minutes_owed = false;
        if let Err(e) = self.store.save_call_only(&call).await {
            error!(error = %e, "cannot record the failed minutes");
        }
        let content = json!({
            "msgtype": "m.notice",
            "body": format!(
                "I could not post the minutes of the call that ended at {} ({failure}). Type `!visio minutes` to try again.",
                crate::room::format_time(call.ended_at.unwrap_or(call.started_at))
            ),
            "org.salon.minutes_failed": { "call_id": call.id, "reason": failure.to_string() },
        });
        if let Err(e) = self
            .matrix
            .send_message(
                &call.room_id,
                &format!("salon.minutes.{}.failed", call.id),
                &content,
            )
            .await
        {
            error!(error = %e, "cannot report the failed minutes either");
        }
    }

    /// `!visio minutes`: the last call's minutes again.
    pub(crate) async fn minutes_command(
        &self,
        room_id: &ruma::OwnedRoomId,
        event: &crate::room::Event,
    ) -> Result<(), HandleError> {
        let call = self.store.room_call(room_id)?;
        let refusal = match &call {
            None => Some(("no_call", "There has been no call in this room yet.")),
            Some(c) if c.is_active() => Some((
                "call_live",
                "The call is still live: its minutes are posted when it ends.",
            )),
            Some(c) if c.minutes_owed => Some((
                "pending",
                "The minutes of the last call are being written; they will be posted shortly.",
            )),
            Some(_) => None,
        };
        if let Some((outcome, body)) = refusal {
            self.reply(
                room_id,
                event,
                body,
                None,
                json!({ "command": "minutes", "outcome": outcome }),
            )
            .await?;
            return Ok(());
        }
        let call = call.expect("checked above");
        self.post_minutes(&call.id, Some(&event.event_id)).await?;
        Ok(())
    }
}

/// A matrix.to link to an event, which every client opens.
/// What of the progress may go to disk: an encrypted room's upload (`file`)
/// carries its media key, which never reaches disk unencrypted. Without
/// it, a restart between the upload and its `m.file` event uploads again
/// (one orphaned encrypted blob), and minutes posted after a restart link the
/// `m.file` events, which carry the keys inside the encrypted room.
fn without_keys(progress: &MinutesProgress) -> MinutesProgress {
    let mut kept = progress.clone();
    for upload in [&mut kept.webvtt, &mut kept.markdown] {
        if upload.as_ref().is_some_and(|f| f.get("file").is_some()) {
            *upload = None;
        }
    }
    kept
}

fn permalink(room_id: &RoomId, event_id: &OwnedEventId) -> String {
    let link = format!("https://matrix.to/#/{room_id}/{event_id}");
    match room_id.server_name() {
        Some(server) => format!("{link}?via={server}"),
        None => link,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_keys_never_go_to_disk() {
        let progress = MinutesProgress {
            webvtt: Some(json!({ "file": { "url": "mxc://x/1", "key": { "k": "secret" } } })),
            markdown: Some(json!({ "url": "mxc://x/2" })),
            ..MinutesProgress::default()
        };
        let stored = without_keys(&progress);
        assert_eq!(stored.webvtt, None);
        assert_eq!(stored.markdown, progress.markdown);
        assert!(!serde_json::to_string(&stored).unwrap().contains("secret"));
    }
}
