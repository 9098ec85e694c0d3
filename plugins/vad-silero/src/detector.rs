//! From per-frame speech probabilities to speech starts and ends: the
//! knobs (threshold, minimum speech, minimum silence, padding) applied to
//! a stream, frame by frame, the way Silero's own `VADIterator` and
//! `get_speech_timestamps` apply them.
//!
//! * A frame at or above `threshold` is speech; one below `threshold -
//!   0.15` (Silero's hysteresis) is silence; one in between continues
//!   whatever was going on.
//! * Speech starts once it has lasted `min_speech_ms`: the start event is
//!   sent then, timed at the first speech frame minus `pad_ms`.
//! * Speech ends once silence has lasted `min_silence_ms`: the end event is
//!   timed at the first silent frame plus `pad_ms`.

use hearth_plugin_api::{VadEvent, VadEventKind};

/// Samples per Silero frame at 16 kHz (32 ms).
pub const FRAME: usize = 512;
/// Milliseconds per frame.
const FRAME_MS: u64 = 32;

/// The knobs, in milliseconds where they are times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knobs {
    /// Speech probability from which a frame is speech.
    pub threshold: f32,
    /// Speech shorter than this is ignored.
    pub min_speech_ms: u64,
    /// Silence shorter than this does not end speech.
    pub min_silence_ms: u64,
    /// Added before each start and after each end.
    pub pad_ms: u64,
}

/// Where a stream is.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    /// Frames seen.
    frames: u64,
    /// The first frame of speech not yet long enough to count.
    candidate: Option<u64>,
    /// Whether speech is on (its start was sent).
    speaking: bool,
    /// The first silent frame since speech was last heard, while speaking.
    silent_since: Option<u64>,
}

impl Detector {
    /// Takes the next frame's speech probability; returns the event it
    /// completes, if any.
    pub fn frame(&mut self, probability: f32, knobs: &Knobs) -> Option<VadEvent> {
        let frame = self.frames;
        self.frames += 1;
        let speech = probability >= knobs.threshold;
        let silence = probability < knobs.threshold - 0.15;
        let ms = |frame: u64| frame * FRAME_MS;
        if self.speaking {
            if speech {
                self.silent_since = None;
            } else if silence && self.silent_since.is_none() {
                self.silent_since = Some(frame);
            }
            let since = self.silent_since?;
            if ms(frame + 1 - since) < knobs.min_silence_ms {
                return None;
            }
            self.speaking = false;
            self.silent_since = None;
            return Some(VadEvent {
                kind: VadEventKind::SPEECH_END,
                at_ms: ms(since) + knobs.pad_ms,
            });
        }
        if silence {
            self.candidate = None;
            return None;
        }
        let first = match self.candidate {
            Some(first) => first,
            None if speech => *self.candidate.insert(frame),
            None => return None,
        };
        if ms(frame + 1 - first) < knobs.min_speech_ms {
            return None;
        }
        self.candidate = None;
        self.speaking = true;
        Some(VadEvent {
            kind: VadEventKind::SPEECH_START,
            at_ms: ms(first).saturating_sub(knobs.pad_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOBS: Knobs = Knobs {
        threshold: 0.5,
        min_speech_ms: 96,
        min_silence_ms: 160,
        pad_ms: 30,
    };

    fn run(probabilities: &[f32]) -> Vec<(&'static str, u64)> {
        let mut detector = Detector::default();
        probabilities
            .iter()
            .filter_map(|&p| detector.frame(p, &KNOBS))
            .map(|e| (e.kind.as_str(), e.at_ms))
            .collect()
    }

    #[test]
    fn speech_long_enough_starts_and_silence_long_enough_ends_it() {
        // 2 silent frames, 6 of speech, 6 silent.
        let p = [0.0, 0.1, 0.9, 0.8, 0.9, 0.9, 0.7, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        // Start at frame 2 (64 ms) - 30; end at frame 8 (256 ms) + 30.
        assert_eq!(run(&p), [("speech_start", 34), ("speech_end", 286)]);
    }

    #[test]
    fn a_blip_shorter_than_the_minimum_is_not_speech() {
        assert_eq!(run(&[0.0, 0.9, 0.9, 0.0, 0.0, 0.0]), []);
    }

    #[test]
    fn a_pause_shorter_than_the_minimum_does_not_end_speech() {
        let p = [0.9, 0.9, 0.9, 0.0, 0.0, 0.9, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(run(&p), [("speech_start", 0), ("speech_end", 254)]);
    }

    #[test]
    fn probabilities_between_the_thresholds_keep_what_was_going_on() {
        // 0.4 is above 0.35 (threshold - 0.15): speech goes on through it.
        let p = [0.9, 0.9, 0.9, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(run(&p), [("speech_start", 0), ("speech_end", 318)]);
        // And it starts nothing on its own.
        assert_eq!(run(&[0.4; 10]), []);
    }

    #[test]
    fn two_utterances_give_two_starts_and_two_ends() {
        let mut p = vec![0.9; 4];
        p.extend([0.0; 6]);
        p.extend([0.9; 4]);
        p.extend([0.0; 6]);
        let events = run(&p);
        let kinds: Vec<_> = events.iter().map(|e| e.0).collect();
        assert_eq!(kinds, ["speech_start", "speech_end", "speech_start", "speech_end"]);
        assert_eq!(events[2].1, 10 * 32 - 30);
    }
}
