//! One participant's audio, from the SFU's packets to queued utterances.
//!
//! The [`Transcriber`](super::Transcriber) spawns one [`TrackTranscription`]
//! task per tapped participant. It decodes the Opus packets to 16 kHz
//! ([`OpusTrackDecoder`]), places them in call time ([`TrackClock`]), fills
//! gaps with silence and cuts utterances on silence ([`UtteranceSegmenter`]).
//! An end-to-end encrypted track (Element Call in an encrypted room) is
//! decrypted first, with the keys the bot received as a call member
//! ([`FrameDecryptor`]); a frame that cannot be decrypted is skipped.
//! Each finished utterance is pushed as a final to the [`JobQueue`]; while
//! someone speaks, the open utterance is pushed as a partial now and then,
//! but only when a worker is idle. Media never waits for the engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use salon_speech::live::{OpusTrackDecoder, SegmenterConfig, Utterance, UtteranceSegmenter};
use tracing::{debug, warn};

use super::queue::{Job, JobQueue};
use super::session::{Pending, Session};
use crate::clock::now_millis;
use crate::media::AudioTap;
use crate::media_e2ee::FrameDecryptor;

/// A participant silent this long while an utterance is open closes it (a
/// muted microphone stops the packets; DTX keeps sending one every 400 ms,
/// and those close it through the RTP gap). Packets that merely arrive late
/// (a sender or this process starved of CPU) must not cut a sentence in
/// two, so this is well above the jitter a busy machine shows.
const SILENCE_TIMEOUT: Duration = Duration::from_millis(1_500);
/// The longest gap in a track filled with silence; beyond it the track's
/// clock jumps.
const MAX_GAP_MS: u64 = 3_000;
/// A partial caption needs this much open speech, and this long since the last.
const PARTIAL_MIN_AUDIO_MS: u64 = 1_000;
/// Past this, a partial costs too much; the final follows soon (the
/// utterance is cut at `max_utterance_seconds`).
const PARTIAL_MAX_AUDIO_MS: u64 = 8_000;
const PARTIAL_EVERY: Duration = Duration::from_millis(1_200);

/// Names one utterance of one speaker in a call; a partial and its final
/// share it. Becomes [`Transcribed::utterance`](super::Transcribed::utterance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UtteranceId(String);

impl UtteranceId {
    /// The `n`th utterance of `speaker` in the call.
    fn new(call_id: &str, speaker: &str, n: u64) -> Self {
        // the speaker's id is part of it so captions of two speakers never clash
        let speaker: String = speaker
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(24)
            .collect();
        UtteranceId(format!("{call_id}-{speaker}-{n}"))
    }

    #[cfg(test)]
    pub(super) fn from_raw(id: &str) -> Self {
        UtteranceId(id.to_owned())
    }

    #[cfg(test)]
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    pub(super) fn into_string(self) -> String {
        self.0
    }
}

/// One participant's audio, from packets to queued utterances.
pub(super) struct TrackTranscription {
    /// A running tap counts as outstanding: it may still queue an utterance.
    _alive: Pending,
    session: Arc<Session>,
    queue: Arc<JobQueue>,
    identity: String,
    speaker: String,
    speaker_name: String,
    max_utterance: Duration,
    partials: bool,
    /// Plain packets pass; encrypted ones are decrypted with the speaker's keys.
    decryptor: FrameDecryptor,
}

/// Maps RTP timestamps to milliseconds from the start of the call.
struct TrackClock {
    first_rtp: u32,
    first_ms: u64,
    last_rtp: u32,
}

impl TrackClock {
    /// The packet's time, or `None` for a late (reordered) packet.
    fn at(&mut self, rtp: u32) -> Option<u64> {
        let step = rtp.wrapping_sub(self.last_rtp) as i32;
        if step < 0 {
            return None;
        }
        self.last_rtp = rtp;
        let since_first = rtp.wrapping_sub(self.first_rtp) as u64;
        Some(self.first_ms + since_first / 48)
    }
}

/// Whether a chunk sounds like someone speaking right now (above -40 dBFS):
/// a partial is not worth it when the utterance is about to end.
fn is_loud(pcm: &[f32]) -> bool {
    !pcm.is_empty() && pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len() as f32 > 1e-4
}

impl TrackTranscription {
    /// The track of `identity`, spoken by `speaker` (a Matrix user id, shown
    /// as `name`, or as the user id when it has none) in the session's call;
    /// it counts as outstanding until it ends.
    pub(super) fn new(
        session: &Arc<Session>,
        queue: Arc<JobQueue>,
        identity: &str,
        (speaker, name): (&str, &str),
        max_utterance: Duration,
        partials: bool,
        decryptor: FrameDecryptor,
    ) -> Self {
        TrackTranscription {
            _alive: Pending::new(session),
            session: session.clone(),
            queue,
            identity: identity.to_owned(),
            speaker: speaker.to_owned(),
            speaker_name: if name.is_empty() { speaker } else { name }.to_owned(),
            max_utterance,
            partials,
            decryptor,
        }
    }

    pub(super) async fn run(mut self, mut tap: AudioTap) {
        let mut decoder = match OpusTrackDecoder::new(1) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot decode this track");
                return;
            }
        };
        let mut segmenter = UtteranceSegmenter::new(SegmenterConfig {
            max_utterance_ms: self.max_utterance.as_millis() as u64,
            ..SegmenterConfig::default()
        });
        let end_silence = Duration::from_millis(segmenter.config().end_silence_ms);
        let mut stop = self.session.stop.subscribe();
        let mut clock: Option<TrackClock> = None;
        // track time of the next sample given to the segmenter
        let mut position_ms = 0u64;
        let mut utterances = 0u64;
        let mut last_partial = Instant::now();
        debug!("tapping audio");
        loop {
            let packet = tokio::select! {
                // packets first: after this task was starved both branches
                // are ready, and the waiting packets say it was not silence
                biased;
                packet = tap.recv() => packet,
                _ = tokio::time::sleep(SILENCE_TIMEOUT), if segmenter.in_speech() => {
                    // the packets stopped mid-utterance (DTX, mute): it is silence
                    let zeros = vec![0.0; (end_silence.as_millis() as usize + 100) * 16];
                    for u in segmenter.push(position_ms, &zeros) {
                        self.queue_final(&mut utterances, u, Instant::now() - SILENCE_TIMEOUT);
                    }
                    position_ms += end_silence.as_millis() as u64 + 100;
                    continue;
                }
                _ = stop.wait_for(|stopped| *stopped) => None,
            };
            let Some(packet) = packet else { break };
            let clock = clock.get_or_insert_with(|| TrackClock {
                first_rtp: packet.rtp_timestamp,
                first_ms: now_millis().saturating_sub(self.session.call_started_at),
                last_rtp: packet.rtp_timestamp,
            });
            let Some(at_ms) = clock.at(packet.rtp_timestamp) else {
                continue;
            };
            if position_ms == 0 {
                position_ms = at_ms;
            }
            if at_ms > position_ms + 60 {
                // a gap (DTX or loss): silence, so utterances end on time
                let gap = (at_ms - position_ms).min(MAX_GAP_MS);
                if gap >= 200 {
                    debug!(
                        gap_ms = gap,
                        at_ms,
                        rtp = packet.rtp_timestamp,
                        "a gap in the track is silence"
                    );
                }
                let zeros = vec![0.0; gap as usize * 16];
                for u in segmenter.push(position_ms, &zeros) {
                    self.queue_final(&mut utterances, u, packet.received_at - end_silence);
                }
                position_ms = at_ms;
            }
            let Some(opus) = self
                .decryptor
                .opus(packet.encryption.into(), &packet.payload)
            else {
                debug!(
                    at_ms,
                    len = packet.payload.len(),
                    rtp = packet.rtp_timestamp,
                    "a frame that could not be decrypted"
                );
                continue;
            };
            let pcm = match decoder.decode_packet(&opus) {
                Ok(pcm) => pcm,
                Err(e) => {
                    debug!(error = %e, "undecodable packet");
                    continue;
                }
            };
            for u in segmenter.push(position_ms, &pcm) {
                self.queue_final(&mut utterances, u, packet.received_at - end_silence);
            }
            position_ms += pcm.len() as u64 / 16;
            if self.partials
                && is_loud(&pcm)
                && last_partial.elapsed() >= PARTIAL_EVERY
                && let Some((start_ms, audio)) = segmenter.open_audio()
                && (PARTIAL_MIN_AUDIO_MS..=PARTIAL_MAX_AUDIO_MS)
                    .contains(&(audio.len() as u64 / 16))
                && self.queue.idle()
            {
                last_partial = Instant::now();
                self.queue.push(Job {
                    session: self.session.clone(),
                    pending: Pending::none(),
                    identity: self.identity.clone(),
                    speaker: self.speaker.clone(),
                    speaker_name: self.speaker_name.clone(),
                    utterance: self.utterance_id(utterances),
                    start_ms,
                    end_ms: start_ms + audio.len() as u64 / 16,
                    pcm: audio.to_vec(),
                    is_final: false,
                    speech_end_at: Instant::now(),
                });
            }
        }
        if let Some(u) = segmenter.finish() {
            self.queue_final(&mut utterances, u, Instant::now());
        }
        if tap.skipped() > 0 {
            warn!(
                skipped = tap.skipped(),
                "the audio tap fell behind and skipped packets"
            );
        }
        let e2ee = self.decryptor.stats();
        if e2ee.failed > 0 {
            warn!(
                decrypted = e2ee.decrypted,
                undecryptable = e2ee.failed,
                last_reason = e2ee.last_failure.unwrap_or_default(),
                "encrypted audio frames skipped: no key or a wrong one"
            );
        }
        debug!(utterances, "audio tap ended");
    }

    fn utterance_id(&self, n: u64) -> UtteranceId {
        // by identity: one user on two devices speaks in two tracks
        UtteranceId::new(&self.session.call_id, &self.identity, n)
    }

    fn queue_final(&self, utterances: &mut u64, u: Utterance, speech_end_at: Instant) {
        let id = self.utterance_id(*utterances);
        debug!(start_ms = u.start_ms, end_ms = u.end_ms, utterance = %id.0, "utterance");
        *utterances += 1;
        self.queue.push(Job {
            session: self.session.clone(),
            pending: Pending::new(&self.session),
            identity: self.identity.clone(),
            speaker: self.speaker.clone(),
            speaker_name: self.speaker_name.clone(),
            utterance: id,
            start_ms: u.start_ms,
            end_ms: u.end_ms,
            pcm: u.pcm,
            is_final: true,
            speech_end_at,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_track_clock_follows_rtp_time_and_skips_late_packets() {
        let mut clock = TrackClock {
            first_rtp: u32::MAX - 959,
            first_ms: 5_000,
            last_rtp: u32::MAX - 959,
        };
        assert_eq!(clock.at(u32::MAX - 959), Some(5_000));
        // across the wrap of the 32-bit timestamp
        assert_eq!(clock.at(0), Some(5_020));
        assert_eq!(clock.at(960 * 2), Some(5_060));
        assert_eq!(clock.at(960), None, "late packet");
    }
}
