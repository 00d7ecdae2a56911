//! Who is speaking, from RFC 6464 audio levels. A pure state machine: the
//! room feeds it levels as packets arrive and asks it, a few times a second,
//! which participants changed; no clock or I/O inside.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A level at or under this many -dBov counts as voice (0 is loudest).
pub const SPEECH_DBOV: u8 = 50;
/// How long after the last loud packet a participant still counts as speaking.
pub const HANGOVER: Duration = Duration::from_millis(600);

#[derive(Debug, Default)]
struct Voice {
    last_loud: Option<Instant>,
    /// Smoothed loudness in 0.0..=1.0 for `SpeakerInfo.level`.
    level: f32,
    speaking: bool,
}

/// A change in someone's speaking state.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeakerChange {
    /// Participant sid.
    pub sid: String,
    /// Loudness 0.0..=1.0.
    pub level: f32,
    /// Speaking now.
    pub active: bool,
}

/// Tracks the speaking state of every participant of one room.
#[derive(Debug, Default)]
pub struct SpeakerDetector {
    voices: HashMap<String, Voice>,
}

impl SpeakerDetector {
    /// Records one packet's level for participant `sid`.
    pub fn observe(&mut self, sid: &str, level_dbov: u8, now: Instant) {
        let voice = self.voices.entry(sid.to_owned()).or_default();
        let loudness = 1.0 - f32::from(level_dbov.min(127)) / 127.0;
        voice.level = voice.level * 0.8 + loudness * 0.2;
        if level_dbov <= SPEECH_DBOV {
            voice.last_loud = Some(now);
        }
    }

    /// Forgets a participant (they left). Returns a change if they were speaking.
    /// Sets a participant's smoothed loudness (0..1, as [`Self::observe`]
    /// computes it) and when they were last loud, as read from a meter the
    /// forwarding loop keeps (see [`AudioMeter`]).
    pub fn observe_meter(&mut self, sid: &str, level: f32, last_loud: Option<Instant>) {
        let voice = match self.voices.get_mut(sid) {
            Some(voice) => voice,
            None => self.voices.entry(sid.to_owned()).or_default(),
        };
        voice.level = level;
        if last_loud.is_some() {
            voice.last_loud = last_loud;
        }
    }

    pub fn remove(&mut self, sid: &str) -> Option<SpeakerChange> {
        let voice = self.voices.remove(sid)?;
        voice.speaking.then(|| SpeakerChange {
            sid: sid.to_owned(),
            level: 0.0,
            active: false,
        })
    }

    /// The participants whose speaking state changed since the last call.
    pub fn changes(&mut self, now: Instant) -> Vec<SpeakerChange> {
        let mut changes = Vec::new();
        for (sid, voice) in &mut self.voices {
            let speaking = voice
                .last_loud
                .is_some_and(|at| now.saturating_duration_since(at) <= HANGOVER);
            if speaking != voice.speaking {
                voice.speaking = speaking;
                changes.push(SpeakerChange {
                    sid: sid.clone(),
                    level: if speaking { voice.level.max(0.01) } else { 0.0 },
                    active: speaking,
                });
            }
        }
        changes.sort_by(|a, b| a.sid.cmp(&b.sid));
        changes
    }

    /// Whether `sid` is speaking as of the last [`changes`](Self::changes).
    pub fn is_speaking(&self, sid: &str) -> bool {
        self.voices.get(sid).is_some_and(|v| v.speaking)
    }
}

/// A participant's audio level as the forwarding loop measures it, packet by
/// packet, without a lock: the smoothed loudness and when the last loud
/// packet came. The speaker task reads it a few times a second into the
/// [`SpeakerDetector`].
#[derive(Debug)]
pub struct AudioMeter {
    base: Instant,
    /// `f32` bits of the smoothed loudness (0 silent .. 1 loudest).
    level: AtomicU32,
    /// Microseconds after `base` of the last loud packet, plus one (0: never).
    last_loud: AtomicU64,
    /// Whether any level arrived at all.
    heard: AtomicBool,
}

impl Default for AudioMeter {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            level: AtomicU32::new(0),
            last_loud: AtomicU64::new(0),
            heard: AtomicBool::new(false),
        }
    }
}

impl AudioMeter {
    /// One packet's RFC 6464 level (-dBov), smoothed as [`SpeakerDetector::observe`] does.
    pub fn observe(&self, level_dbov: u8, now: Instant) {
        let loudness = 1.0 - f32::from(level_dbov.min(127)) / 127.0;
        let previous = f32::from_bits(self.level.load(Ordering::Relaxed));
        self.level.store(
            (previous * 0.8 + loudness * 0.2).to_bits(),
            Ordering::Relaxed,
        );
        if level_dbov <= SPEECH_DBOV {
            let micros = now.saturating_duration_since(self.base).as_micros() as u64;
            self.last_loud.store(micros + 1, Ordering::Relaxed);
        }
        if !self.heard.load(Ordering::Relaxed) {
            self.heard.store(true, Ordering::Relaxed);
        }
    }

    /// The smoothed loudness and the last loud instant; `None` before any level.
    pub fn read(&self) -> Option<(f32, Option<Instant>)> {
        if !self.heard.load(Ordering::Relaxed) {
            return None;
        }
        let level = f32::from_bits(self.level.load(Ordering::Relaxed));
        let last = match self.last_loud.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(self.base + Duration::from_micros(micros - 1)),
        };
        Some((level, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loud_packets_start_speaking_and_silence_stops_it_after_hangover() {
        let mut detector = SpeakerDetector::default();
        let t0 = Instant::now();
        detector.observe("PA_a", 30, t0);
        detector.observe("PA_b", 127, t0);
        let changes = detector.changes(t0);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].sid, "PA_a");
        assert!(changes[0].active && changes[0].level > 0.0);
        assert!(detector.is_speaking("PA_a") && !detector.is_speaking("PA_b"));

        // Still within the hangover: no change.
        detector.observe("PA_a", 127, t0 + Duration::from_millis(100));
        assert!(detector.changes(t0 + Duration::from_millis(300)).is_empty());

        let later = t0 + HANGOVER + Duration::from_millis(1);
        let changes = detector.changes(later);
        assert_eq!(
            changes,
            vec![SpeakerChange {
                sid: "PA_a".into(),
                level: 0.0,
                active: false
            }]
        );
    }

    #[test]
    fn removing_a_speaker_reports_them_silent() {
        let mut detector = SpeakerDetector::default();
        let t0 = Instant::now();
        detector.observe("PA_a", 10, t0);
        detector.changes(t0);
        let change = detector.remove("PA_a").expect("was speaking");
        assert!(!change.active);
        assert!(detector.remove("PA_a").is_none());
    }

    #[test]
    fn a_meter_read_into_the_detector_finds_the_speaker() {
        let meter = AudioMeter::default();
        assert_eq!(meter.read(), None);
        let t0 = Instant::now();
        meter.observe(127, t0);
        let (level, last) = meter.read().expect("heard");
        assert_eq!((level, last), (0.0, None));
        meter.observe(30, t0 + Duration::from_millis(20));
        let (level, last) = meter.read().expect("heard");
        assert!(level > 0.0);
        let last = last.expect("loud");
        assert!(last.duration_since(t0) >= Duration::from_millis(19));
        let mut detector = SpeakerDetector::default();
        detector.observe_meter("PA_a", level, Some(last));
        let changes = detector.changes(t0 + Duration::from_millis(100));
        assert_eq!(changes.len(), 1);
        assert!(changes[0].active);
        assert!(
            detector
                .changes(last + HANGOVER + Duration::from_millis(1))
                .iter()
                .all(|c| !c.active)
        );
    }
}
