//! Audio in both directions: the PCM a client streams for transcription,
//! converted as it arrives to 16 kHz mono (what speech recognizers take,
//! and what wyoming-faster-whisper converts to), and the engine's speech cut
//! into `audio-chunk` events.
//!
//! Input takes what the package's `AudioChunkConverter` takes: widths 1
//! (unsigned 8-bit), 2, 3 and 4 bytes (signed little-endian), any number of
//! channels up to [`MAX_CHANNELS`] (averaged), any rate `hearth-audio`
//! resamples (1–384 kHz). Converting chunk by chunk keeps memory at the
//! size of the 16 kHz result and leaves nothing to convert after
//! `audio-stop`.

use bytes::Bytes;
use hearth_audio::{StreamResampler, RESAMPLE_RATES};

use super::frame::{AudioFormat, Outbound};
use crate::error::WyomingError;

/// The rate audio is converted to for the STT engine.
pub const STT_RATE: u32 = 16_000;

/// The most interleaved channels accepted.
pub const MAX_CHANNELS: u32 = 32;

/// Samples per `audio-chunk` Hearth sends (as wyoming-piper's default
/// `--samples-per-chunk`).
pub const SAMPLES_PER_CHUNK: usize = 1024;

/// Audio arriving for one transcription.
pub struct Incoming {
    /// The format of the chunks so far, and its resampler.
    current: Option<(AudioFormat, StreamResampler)>,
    /// Converted audio: 16 kHz mono.
    samples: Vec<i16>,
    max_samples: usize,
    max_seconds: u64,
    scratch: Vec<f32>,
    converted: Vec<f32>,
}

impl Incoming {
    /// Nothing yet; at most `max_seconds` of audio.
    pub fn new(max_seconds: u64) -> Self {
        Self {
            current: None,
            samples: Vec::new(),
            max_samples: usize::try_from(max_seconds.saturating_mul(u64::from(STT_RATE))).unwrap_or(usize::MAX),
            max_seconds,
            scratch: Vec::new(),
            converted: Vec::new(),
        }
    }

    /// Whether any audio arrived.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.current.is_none()
    }

    /// Checks a format before any audio in it arrives (`audio-start`).
    pub fn check(format: AudioFormat) -> Result<(), WyomingError> {
        if !(1..=4).contains(&format.width) {
            return Err(WyomingError::BadRequest(format!(
                "audio width {} is not supported: send 1, 2, 3 or 4 bytes per sample (2 is usual)",
                format.width
            )));
        }
        if !(1..=MAX_CHANNELS).contains(&format.channels) {
            return Err(WyomingError::BadRequest(format!(
                "{} audio channels are not supported: send 1 to {MAX_CHANNELS}",
                format.channels
            )));
        }
        if !RESAMPLE_RATES.contains(&format.rate) {
            return Err(WyomingError::BadRequest(format!(
                "a rate of {} Hz is not supported: send {} to {} Hz (16000 is usual)",
                format.rate,
                RESAMPLE_RATES.start(),
                RESAMPLE_RATES.end()
            )));
        }
        Ok(())
    }

    /// Converts and keeps one chunk.
    pub fn push(&mut self, format: AudioFormat, pcm: &[u8]) -> Result<(), WyomingError> {
        Self::check(format)?;
        let frame_bytes = (format.width * format.channels) as usize;
        if !pcm.len().is_multiple_of(frame_bytes) {
            return Err(WyomingError::BadRequest(format!(
                "an audio-chunk of {} bytes is not a whole number of frames of {frame_bytes} bytes \
                 (width {} × {} channels)",
                pcm.len(),
                format.width,
                format.channels
            )));
        }
        if self.current.as_ref().map(|(f, _)| *f) != Some(format) {
            // A new format mid-stream: flush what the old resampler holds.
            self.flush()?;
            let resampler = StreamResampler::new(format.rate, STT_RATE)
                .map_err(|e| WyomingError::BadRequest(format!("cannot convert this audio: {e}")))?;
            self.current = Some((format, resampler));
        }
        self.scratch.clear();
        let width = format.width as usize;
        for frame in pcm.chunks_exact(frame_bytes) {
            let sum: f32 = frame.chunks_exact(width).map(sample).sum();
            self.scratch.push(sum / format.channels as f32);
        }
        self.converted.clear();
        if let Some((_, resampler)) = &mut self.current {
            resampler
                .push_into(&self.scratch, &mut self.converted)
                .map_err(|e| WyomingError::Other(format!("resampling failed: {e}")))?;
        }
        self.keep()
    }

    /// Moves `converted` into the result, within the limit.
    fn keep(&mut self) -> Result<(), WyomingError> {
        if self.samples.len() + self.converted.len() > self.max_samples {
            return Err(WyomingError::TooLarge(format!(
                "the audio is longer than {} s ([wyoming] max_audio); send audio-stop sooner",
                self.max_seconds
            )));
        }
        self.samples.extend(
            self.converted
                .iter()
                .map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WyomingError> {
        if let Some((_, mut resampler)) = self.current.take() {
            self.converted = resampler
                .finish()
                .map_err(|e| WyomingError::Other(format!("resampling failed: {e}")))?;
            self.keep()?;
        }
        Ok(())
    }

    /// All the audio, 16 kHz mono.
    pub fn finish(mut self) -> Result<Vec<i16>, WyomingError> {
        self.flush()?;
        Ok(self.samples)
    }
}

/// One sample of `width` bytes, little-endian, as a float in [-1, 1).
fn sample(bytes: &[u8]) -> f32 {
    match *bytes {
        [b] => (f32::from(b) - 128.0) / 128.0,
        [a, b] => f32::from(i16::from_le_bytes([a, b])) / 32768.0,
        [a, b, c] => (i32::from_le_bytes([0, a, b, c]) >> 8) as f32 / 8_388_608.0,
        [a, b, c, d] => i32::from_le_bytes([a, b, c, d]) as f32 / 2_147_483_648.0,
        _ => 0.0,
    }
}

/// `audio-chunk` events of 16-bit mono `samples` at `rate`, at most
/// [`SAMPLES_PER_CHUNK`] samples each.
pub fn chunks(rate: u32, samples: &[i16]) -> impl Iterator<Item = Outbound> + '_ {
    samples.chunks(SAMPLES_PER_CHUNK).map(move |piece| {
        let mut audio = Vec::with_capacity(piece.len() * 2);
        for s in piece {
            audio.extend_from_slice(&s.to_le_bytes());
        }
        Outbound::AudioChunk {
            rate,
            width: 2,
            channels: 1,
            timestamp: None,
            audio: Bytes::from(audio),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(rate: u32, width: u32, channels: u32) -> AudioFormat {
        AudioFormat { rate, width, channels }
    }

    #[test]
    fn sixteen_khz_mono_passes_through_unchanged() {
        let samples: Vec<i16> = (0..5000).map(|i| ((i * 37) % 60000 - 30000) as i16).collect();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut incoming = Incoming::new(60);
        for piece in bytes.chunks(2048) {
            incoming.push(format(16_000, 2, 1), piece).unwrap();
        }
        assert_eq!(incoming.finish().unwrap(), samples);
    }

    #[test]
    fn stereo_44k_becomes_16k_mono_of_the_same_length() {
        // One second of a 440 Hz tone, the same on both channels.
        let rate = 44_100;
        let mut bytes = Vec::new();
        for i in 0..rate {
            let v = ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 16000.0) as i16;
            bytes.extend_from_slice(&v.to_le_bytes());
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let mut incoming = Incoming::new(60);
        for piece in bytes.chunks(4096) {
            incoming.push(format(rate, 2, 2), piece).unwrap();
        }
        let out = incoming.finish().unwrap();
        assert_eq!(out.len(), 16_000);
        let rms = (out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / out.len() as f64).sqrt();
        assert!((rms - 16000.0 / 2f64.sqrt()).abs() < 400.0, "{rms}");
    }

    #[test]
    fn every_width_decodes_to_the_same_scale() {
        assert_eq!(sample(&[128]), 0.0);
        assert_eq!(sample(&[0]), -1.0);
        assert_eq!(sample(&0x4000i16.to_le_bytes()), 0.5);
        assert_eq!(sample(&[0x00, 0x00, 0x40]), 0.5);
        assert_eq!(sample(&[0x00, 0x00, 0xC0]), -0.5);
        assert_eq!(sample(&0x4000_0000i32.to_le_bytes()), 0.5);
    }

    #[test]
    fn bad_formats_and_too_much_audio_are_refused() {
        let mut incoming = Incoming::new(1);
        let error = incoming.push(format(16_000, 2, 1), &[0; 3]).unwrap_err().to_string();
        assert!(error.contains("not a whole number of frames"), "{error}");
        for (f, expect) in [
            (format(16_000, 5, 1), "width 5"),
            (format(16_000, 2, 0), "0 audio channels"),
            (format(10, 2, 1), "rate of 10 Hz"),
        ] {
            let error = Incoming::check(f).unwrap_err().to_string();
            assert!(error.contains(expect), "{error}");
        }
        let second = vec![0u8; 32_000];
        incoming.push(format(16_000, 2, 1), &second).unwrap();
        let error = incoming.push(format(16_000, 2, 1), &[0, 0]).unwrap_err();
        assert!(matches!(error, WyomingError::TooLarge(_)), "{error}");
    }

    #[test]
    fn speech_is_cut_into_chunks_of_1024_samples() {
        let samples = vec![1i16; 2500];
        let events: Vec<Outbound> = chunks(22_050, &samples).collect();
        assert_eq!(events.len(), 3);
        match &events[2] {
            Outbound::AudioChunk { rate, audio, .. } => {
                assert_eq!(*rate, 22_050);
                assert_eq!(audio.len(), (2500 - 2048) * 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
