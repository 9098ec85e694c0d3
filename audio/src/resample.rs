//! Sample-rate conversion of mono f32 audio with `rubato`'s synchronous FFT resampler, whole
//! ([`resample`]) or as a stream ([`StreamResampler`]), without the resampler's delay: output
//! sample `k` lines up with input time `k / to`, and a stream of `n` input samples becomes
//! `ceil(n · to / from)` output samples.

use rubato::{FftFixedIn, Resampler};

use crate::{AudioError, Result};

/// Rates the resampler accepts, from telephone audio to studio rates.
pub const RESAMPLE_RATES: std::ops::RangeInclusive<u32> = 1_000..=384_000;

/// About this many input samples per resampler call: a latency/overhead trade-off.
const CHUNK: usize = 1024;

/// Resamples mono `samples` from `from` Hz to `to` Hz (rubato's FFT resampler, good quality).
/// The result has `ceil(len · to / from)` samples, aligned with the input.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    let mut resampler = StreamResampler::new(from, to)?;
    let mut out = resampler.push(samples)?;
    out.extend(resampler.finish()?);
    Ok(out)
}

/// A resampler of a mono stream: push input as it comes, take what is ready, and `finish` to
/// flush the rest. Equal rates pass samples straight through.
pub struct StreamResampler {
    from: u32,
    to: u32,
    /// `None` when `from == to`.
    inner: Option<Inner>,
    /// Input samples seen, for the output length.
    input_total: u64,
    /// Output samples returned so far.
    output_total: u64,
    finished: bool,
}

struct Inner {
    resampler: FftFixedIn<f32>,
    /// Input not yet given to the resampler (less than one chunk after each `push`).
    pending: Vec<f32>,
    /// Output samples still to drop at the start: the resampler's delay.
    delay_left: usize,
    buffer: Vec<Vec<f32>>,
}

impl StreamResampler {
    /// A resampler from `from` Hz to `to` Hz, both in [`RESAMPLE_RATES`].
    pub fn new(from: u32, to: u32) -> Result<StreamResampler> {
        for rate in [from, to] {
            if !RESAMPLE_RATES.contains(&rate) {
                return Err(AudioError::Invalid(format!(
                    "a sample rate of {rate} Hz is not supported (use {} to {} Hz)",
                    RESAMPLE_RATES.start(),
                    RESAMPLE_RATES.end()
                )));
            }
        }
        let inner = if from == to {
            None
        } else {
            // The resampler works in FFT blocks of a whole number of `unit`s of input
            // (`from / gcd` samples). With an even number of units per block its delay, half a
            // block, is a whole number of output samples and is cut exactly.
            let unit = (from / gcd(from, to)) as usize;
            let chunk = CHUNK.div_ceil(unit).next_multiple_of(2) * unit;
            let resampler = FftFixedIn::<f32>::new(from as usize, to as usize, chunk, 1, 1)
                .map_err(|e| AudioError::Encode(format!("cannot resample {from} Hz to {to} Hz: {e}")))?;
            let buffer = resampler.output_buffer_allocate(true);
            Some(Inner {
                delay_left: resampler.output_delay(),
                pending: Vec::with_capacity(chunk),
                resampler,
                buffer,
            })
        };
        Ok(StreamResampler {
            from,
            to,
            inner,
            input_total: 0,
            output_total: 0,
            finished: false,
        })
    }

    /// The input rate.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// The output rate.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Resamples `samples`, returning the output that is ready.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.push_into(samples, &mut out)?;
        Ok(out)
    }

    /// Like [`push`](Self::push), appending to `out`.
    pub fn push_into(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<()> {
        if self.finished {
            return Err(crate::finished_error());
        }
        self.input_total += samples.len() as u64;
        let Some(inner) = &mut self.inner else {
            out.extend_from_slice(samples);
            self.output_total += samples.len() as u64;
            return Ok(());
        };
        let start = out.len();
        let mut rest = samples;
        // Complete the pending chunk first, then process whole chunks straight from the input.
        let need = inner.resampler.input_frames_next();
        if !inner.pending.is_empty() {
            let take = (need - inner.pending.len()).min(rest.len());
            inner.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if inner.pending.len() == need {
                let pending = std::mem::take(&mut inner.pending);
                inner.process(Some(&pending), false, out)?;
                inner.pending = pending;
                inner.pending.clear();
            }
        }
        while rest.len() >= need {
            let (chunk, tail) = rest.split_at(need);
            inner.process(Some(chunk), false, out)?;
            rest = tail;
        }
        inner.pending.extend_from_slice(rest);
        self.output_total += (out.len() - start) as u64;
        Ok(())
    }

    /// Flushes the samples still inside the resampler; the stream is complete after this call.
    pub fn finish(&mut self) -> Result<Vec<f32>> {
        if self.finished {
            return Err(crate::finished_error());
        }
        self.finished = true;
        let expected = (self.input_total * u64::from(self.to)).div_ceil(u64::from(self.from));
        let Some(inner) = &mut self.inner else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        if self.input_total == 0 {
            return Ok(out);
        }
        if !inner.pending.is_empty() {
            let pending = std::mem::take(&mut inner.pending);
            inner.process(Some(&pending), true, &mut out)?;
        }
        // Push the samples still inside the filter out with silence.
        let missing = |out: &Vec<f32>| expected.saturating_sub(self.output_total + out.len() as u64);
        while missing(&out) > 0 {
            let before = out.len();
            inner.process(None, true, &mut out)?;
            if out.len() == before && inner.delay_left == 0 {
                break;
            }
        }
        let keep = (expected.saturating_sub(self.output_total)) as usize;
        out.truncate(keep.min(out.len()));
        self.output_total += out.len() as u64;
        Ok(out)
    }
}

impl Inner {
    /// Runs the resampler on one chunk (`partial`: shorter than a chunk, or `None` for silence)
    /// and appends its output, less what is left of the delay, to `out`.
    fn process(&mut self, input: Option<&[f32]>, partial: bool, out: &mut Vec<f32>) -> Result<()> {
        let fail = |e: &dyn std::fmt::Display| AudioError::Encode(format!("resampling failed: {e}"));
        let (_, written) = if partial {
            let wave_in = input.map(|i| [i]);
            let wave_in: Option<&[&[f32]]> = wave_in.as_ref().map(|w| &w[..]);
            self.resampler
                .process_partial_into_buffer(wave_in, &mut self.buffer, None)
                .map_err(|e| fail(&e))?
        } else {
            let input = input.unwrap_or_default();
            self.resampler
                .process_into_buffer(&[input], &mut self.buffer, None)
                .map_err(|e| fail(&e))?
        };
        let produced = &self.buffer[0][..written];
        let skip = self.delay_left.min(produced.len());
        self.delay_left -= skip;
        out.extend_from_slice(&produced[skip..]);
        Ok(())
    }
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
        for (from, to) in [
            (22_050, 24_000),
            (22_050, 48_000),
            (44_100, 16_000),
            (48_000, 16_000),
            (8_000, 16_000),
            (48_000, 22_050),
            (48_000, 11_025),
            (24_000, 22_050),
        ] {
            let got = resample(&sine(from, 1.0, 440.0), from, to).unwrap();
            let reference = sine(to, 1.0, 440.0);
            // A misalignment of a tenth of a sample would show as 0.009.
            let error = max_error(&got, &reference);
            assert!(error < 0.002, "{from} -> {to} Hz: max error {error}");
        }
    }

    #[test]
    fn streaming_in_odd_pieces_equals_whole() {
        let input = sine(22_050, 0.7, 300.0);
        let whole = resample(&input, 22_050, 24_000).unwrap();
        let mut stream = StreamResampler::new(22_050, 24_000).unwrap();
        let mut got = Vec::new();
        for piece in input.chunks(777) {
            got.extend(stream.push(piece).unwrap());
        }
        got.extend(stream.finish().unwrap());
        assert_eq!(got.len(), whole.len());
        assert!(max_error(&got, &whole) < 1e-5);
    }

    #[test]
    fn edge_cases() {
        assert!(resample(&[], 22_050, 24_000).unwrap().is_empty());
        assert_eq!(resample(&[0.25; 3], 16_000, 16_000).unwrap(), vec![0.25; 3]);
        assert_eq!(resample(&[0.1; 5], 16_000, 48_000).unwrap().len(), 15);
        assert!(matches!(resample(&[0.0], 0, 16_000), Err(AudioError::Invalid(_))));
        let mut s = StreamResampler::new(16_000, 8_000).unwrap();
        s.finish().unwrap();
        assert!(s.push(&[0.0]).is_err());
    }
}
