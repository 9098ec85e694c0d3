//! Standard inputs: a spoken sentence, silence and a tone.

use crate::client::{Audio, Samples};

/// What [`speech_clip`] says.
pub const SPEECH_CLIP_TEXT: &str = "The quick brown fox jumps over the lazy dog.";

/// The clip's samples: espeak-ng reading [`SPEECH_CLIP_TEXT`] at 150 words a
/// minute, 16 kHz mono PCM16 little-endian, 3.3 s.
static SPEECH_CLIP: &[u8] = include_bytes!("speech-16k-mono-s16le.raw");

/// A spoken sentence ([`SPEECH_CLIP_TEXT`]), 16 kHz mono PCM16: a speech
/// recognizer should return words for it.
pub fn speech_clip() -> Audio {
    let samples = SPEECH_CLIP
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    Audio {
        sample_rate: 16_000,
        channels: 1,
        samples: Samples::I16(samples),
    }
}

/// `seconds` of digital silence, mono PCM16 at `sample_rate`.
pub fn silence(sample_rate: u32, seconds: f32) -> Audio {
    let n = (sample_rate as f32 * seconds) as usize;
    Audio {
        sample_rate,
        channels: 1,
        samples: Samples::I16(vec![0; n]),
    }
}

/// `seconds` of a sine tone at `hz`, half of full scale, mono PCM16.
pub fn tone(sample_rate: u32, hz: f32, seconds: f32) -> Audio {
    let n = (sample_rate as f32 * seconds) as usize;
    let samples = (0..n)
        .map(|i| ((i as f32 * hz * std::f32::consts::TAU / sample_rate as f32).sin() * 16_000.0) as i16)
        .collect();
    Audio {
        sample_rate,
        channels: 1,
        samples: Samples::I16(samples),
    }
}

/// Root mean square of PCM16 samples, on the i16 scale (full scale 32767).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clip_is_speech_length_and_audible() {
        let clip = speech_clip();
        assert!((3.0..4.0).contains(&clip.seconds()), "{}", clip.seconds());
        let Samples::I16(samples) = &clip.samples else {
            unreachable!()
        };
        assert!(rms(samples) > 500.0);
        let Samples::I16(quiet) = silence(16_000, 1.0).samples else {
            unreachable!()
        };
        assert_eq!(rms(&quiet), 0.0);
    }
}
