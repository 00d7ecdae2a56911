//! The room worker: what one room's ordered task runs for each job (an
//! event from the inbox, a participant change, a transcript notice, a timeout
//! check), and the shared handles it runs them with. `app` builds one
//! [`Bridge`] and hands it to the room queues; the handlers live beside the
//! part of the product they serve (`room` for commands and calls,
//! `transcripts` for transcription, `minutes` for the minutes).

use std::sync::Arc;
use std::time::Duration;

use ruma::{OwnedRoomId, OwnedUserId};
use tracing::{Instrument, error, info_span, warn};

use crate::clock::now_millis;
use crate::config::Config;
use crate::matrix::Matrix;
use crate::media::MediaBackend;
use crate::metrics::Metrics;
use crate::owed::MinutesQueue;
use crate::queues::{RoomJob, RoomQueues, RoomWorker};
use crate::store::Store;
use crate::transcription::Transcriber;

/// How long an event waits in the inbox when the homeserver stayed down
/// through the retry policy.
const REQUEUE_AFTER: Duration = Duration::from_secs(60);

/// What the room workers decide with and act through: the store, the way
/// out to the homeserver, the media backend, transcription and minutes.
pub struct Bridge {
    pub config: Arc<Config>,
    pub store: Store,
    pub matrix: Matrix,
    pub metrics: Arc<Metrics>,
    pub sender_user_id: OwnedUserId,
    pub media: Arc<dyn MediaBackend>,
    pub transcriber: Arc<Transcriber>,
    pub minutes: MinutesQueue,
    pub summarizer: salon_minutes::Summarizer,
    /// The room queues, to hand an event back when the homeserver is down.
    pub rooms: RoomQueues,
}

impl Bridge {
    /// Sets the live-calls gauge from the store.
    pub fn refresh_live_calls(&self) {
        match self.store.active_calls() {
            Ok(calls) => Metrics::set(&self.metrics.live_calls, calls.len() as u64),
            Err(e) => warn!(error = %e, "cannot count live calls"),
        }
    }
}

impl RoomWorker for Bridge {
    async fn run(&self, room_id: OwnedRoomId, job: RoomJob) {
        match job {
            RoomJob::Event(seq, event) => {
                let span = info_span!("event", event_id = %event.event_id);
                async {
                    // Every call out to the homeserver already retried under
                    // matrix::retry (8 attempts within 90 s, 429 honoured);
                    // retrying the whole event again would nest retries.
                    match self.handle_event(&event).await {
                        Ok(()) => {}
                        // The homeserver is still down after the policy gave
                        // up: the event stays in the inbox (nothing is lost)
                        // and comes back to this room's queue a minute later.
                        Err(e) if e.is_transient() => {
                            warn!(error = %e, wait_s = REQUEUE_AFTER.as_secs(), "homeserver unavailable; the event stays in the inbox and is handled again later");
                            let rooms = self.rooms.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(REQUEUE_AFTER).await;
                                rooms.dispatch_event(seq, event);
                            });
                            return;
                        }
                        Err(e) => {
                            Metrics::inc(&self.metrics.errors);
                            error!(error = %e, "giving up on this event");
                        }
                    }
                    if let Err(e) = self
                        .store
                        .complete(seq, &event.event_id, now_millis())
                        .await
                    {
                        Metrics::inc(&self.metrics.errors);
                        error!(error = %e, "cannot mark the event handled");
                    }
                    Metrics::inc(&self.metrics.events_handled);
                }
                .instrument(span)
                .await
            }
            RoomJob::Participant { identity, joined } => {
                if let Err(e) = self.on_participant(&room_id, &identity, joined).await {
                    Metrics::inc(&self.metrics.errors);
                    warn!(error = %e, %identity, "cannot record a participant change");
                }
            }
            RoomJob::TranscriptNotice(seq, t) => self.post_transcript_notice(seq, &t).await,
            RoomJob::PageAct { by, act, answer } => {
                let outcome = self.page_act(&room_id, &by, act).await;
                let _ = answer.send(outcome);
            }
            RoomJob::CheckTimeout => {
                if let Err(e) = self.check_timeout(&room_id).await {
                    Metrics::inc(&self.metrics.errors);
                    warn!(error = %e, "timeout check failed; will try again");
                }
            }
        }
    }
}
