//! Turns the host's audio (any rate, any channel count, PCM16 or f32,
//! interleaved) into what Whisper takes: 16 kHz mono f32.
//!
//! Channels are averaged; the rate is converted with `rubato`'s synchronous
//! FFT resampler, whose delay is removed so that segment times stay aligned
//! with the input.

use hearth_plugin_api::{PcmInput, PcmSamples};
use rubato::{FftFixedIn, Resampler};

/// Whisper's sample rate.
pub const WHISPER_RATE: u32 = 16_000;

/// Input rates accepted: telephone audio to studio rates.
pub const RATES: std::ops::RangeInclusive<u32> = 4_000..=384_000;

/// About this many input frames per resampler call; a latency/overhead
/// trade-off that does not matter for whole buffers.
const CHUNK: usize = 1024;

/// Converts `audio` to 16 kHz mono f32. Fails with a reason for shapes that
/// make no sense (no channels, a partial frame, an unsupported rate).
pub fn to_whisper(audio: &PcmInput<'_>) -> Result<Vec<f32>, String> {
    let channels = usize::from(audio.channels);
    if channels == 0 {
        return Err("the audio has 0 channels".into());
    }
    let len = match audio.samples {
        PcmSamples::I16(s) => s.len(),
        PcmSamples::F32(s) => s.len(),
    };
    if len % channels != 0 {
        return Err(format!(
            "the audio has {len} samples, which is not a whole number of frames of {channels} channels"
        ));
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    if !RATES.contains(&audio.sample_rate) {
        return Err(format!(
            "a sample rate of {} Hz is not supported: use {} to {} Hz",
            audio.sample_rate,
            RATES.start(),
            RATES.end()
        ));
    }
    let mono = match audio.samples {
        PcmSamples::I16(s) => downmix(s.as_slice(), channels, |v| f32::from(v) / 32768.0),
        // NaN or infinity would poison the whole mel spectrogram.
        PcmSamples::F32(s) => downmix(s.as_slice(), channels, |v| if v.is_finite() { v } else { 0.0 }),
    };
    if audio.sample_rate == WHISPER_RATE {
        Ok(mono)
    } else {
        resample(&mono, audio.sample_rate, WHISPER_RATE)
    }
}

/// Averages each frame of `channels` interleaved samples.
fn downmix<T: Copy>(samples: &[T], channels: usize, to_f32: impl Fn(T) -> f32) -> Vec<f32> {
    if channels == 1 {
        return samples.iter().map(|&v| to_f32(v)).collect();
    }
    let scale = 1.0 / channels as f32;
    samples
        .chunks_exact(channels)
        .map(|frame| frame.iter().map(|&v| to_f32(v)).sum::<f32>() * scale)
        .collect()
}

/// Resamples mono `input` from `from` Hz to `to` Hz; the output has
/// `ceil(len · to / from)` samples, aligned with the input.
pub fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot resample {from} Hz to {to} Hz: {e}");
    if input.is_empty() {
        return Ok(Vec::new());
    }
    // The resampler works in FFT blocks of a whole number of `unit`s of input
    // (`from / gcd` frames). With an even number of units per block, its
    // delay, half a block, is a whole number of output samples and can be
    // cut exactly; an odd number leaves the output a fraction of a sample
    // late.
    let unit = (from / gcd(from, to)) as usize;
    let chunk = CHUNK.div_ceil(unit).next_multiple_of(2) * unit;
    let mut resampler = FftFixedIn::<f32>::new(from as usize, to as usize, chunk, 1, 1).map_err(|e| fail(&e))?;
    let expected = (input.len() as u64 * u64::from(to)).div_ceil(u64::from(from)) as usize;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(expected + delay + resampler.output_frames_max());
    let mut buffer = resampler.output_buffer_allocate(true);
    let mut rest = input;
    while rest.len() >= resampler.input_frames_next() {
        let (chunk, tail) = rest.split_at(resampler.input_frames_next());
        let (_, written) = resampler
            .process_into_buffer(&[chunk], &mut buffer, None)
            .map_err(|e| fail(&e))?;
        out.extend_from_slice(&buffer[0][..written]);
        rest = tail;
    }
    if !rest.is_empty() {
        let (_, written) = resampler
            .process_partial_into_buffer(Some(&[rest]), &mut buffer, None)
            .map_err(|e| fail(&e))?;
        out.extend_from_slice(&buffer[0][..written]);
    }
    // Push the samples still inside the filter out with silence.
    while out.len() < delay + expected {
        let (_, written) = resampler
            .process_partial_into_buffer(None::<&[&[f32]]>, &mut buffer, None)
            .map_err(|e| fail(&e))?;
        if written == 0 {
            break;
        }
        out.extend_from_slice(&buffer[0][..written]);
    }
    out.drain(..delay.min(out.len()));
    out.truncate(expected);
    Ok(out)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, seconds: f32, hz: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| 0.5 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    fn pcm(rate: u32, channels: u16, samples: &[f32]) -> PcmInput<'_> {
        PcmInput {
            sample_rate: rate,
            channels,
            samples: PcmSamples::F32(samples.into()),
        }
    }

    /// The largest difference to `reference` away from the edges.
    fn max_error(got: &[f32], reference: &[f32]) -> f32 {
        assert_eq!(got.len(), reference.len());
        let margin = got.len() / 20;
        got[margin..got.len() - margin]
            .iter()
            .zip(&reference[margin..reference.len() - margin])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn resampling_keeps_length_pitch_and_alignment() {
        for from in [8_000, 11_025, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000] {
            let got = resample(&sine(from, 1.0, 440.0), from, WHISPER_RATE).unwrap();
            let reference = sine(WHISPER_RATE, 1.0, 440.0);
            // A misalignment of a tenth of a sample would show as 0.009.
            let error = max_error(&got, &reference);
            assert!(error < 0.002, "{from} Hz: max error {error}");
        }
    }

    #[test]
    fn stereo_is_averaged_and_i16_scaled() {
        let interleaved: Vec<i16> = [16384i16, -16384, 8192, 8192].to_vec();
        let audio = PcmInput {
            sample_rate: WHISPER_RATE,
            channels: 2,
            samples: PcmSamples::I16(interleaved.as_slice().into()),
        };
        assert_eq!(to_whisper(&audio).unwrap(), vec![0.0, 0.25]);
    }

    #[test]
    fn non_finite_samples_become_silence() {
        let samples = [f32::NAN, f32::INFINITY, 0.5];
        assert_eq!(
            to_whisper(&pcm(WHISPER_RATE, 1, &samples)).unwrap(),
            vec![0.0, 0.0, 0.5]
        );
    }

    #[test]
    fn nonsense_shapes_are_refused() {
        let samples = [0.0f32; 3];
        assert!(to_whisper(&pcm(16_000, 0, &samples))
            .unwrap_err()
            .contains("0 channels"));
        assert!(to_whisper(&pcm(16_000, 2, &samples))
            .unwrap_err()
            .contains("whole number of frames"));
        assert!(to_whisper(&pcm(100, 1, &samples))
            .unwrap_err()
            .contains("100 Hz is not supported"));
        assert!(to_whisper(&pcm(16_000, 1, &[])).unwrap().is_empty());
    }
}
