//! WAV files in and out (with `hound`): `hearth speak` writes one; the
//! benchmarks and tests read them. (`hearth transcribe` decodes every upload
//! format through `hearth-audio`, as `/v1` does.)

use std::path::Path;

use crate::error::{HostError, Result};

/// PCM audio read from a file: interleaved samples as f32 in [-1, 1].
#[derive(Debug, Clone)]
pub struct Audio {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// The samples.
    pub samples: Vec<f32>,
}

fn wav_error(path: &Path, e: hound::Error) -> HostError {
    HostError::Other(format!("{}: not a readable WAV file: {e}", path.display()))
}

/// Reads a WAV file of integer or float PCM.
pub fn read_wav(path: &Path) -> Result<Audio> {
    let mut reader = hound::WavReader::open(path).map_err(|e| wav_error(path, e))?;
    let spec = reader.spec();
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
        }
    }
    .map_err(|e| wav_error(path, e))?;
    Ok(Audio {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        samples,
    })
}

/// Writes PCM16 mono samples as a WAV file.
pub fn write_wav(path: &Path, sample_rate: u32, samples: &[i16]) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let io = |e: hound::Error| HostError::Other(format!("{}: cannot write WAV: {e}", path.display()));
    let mut writer = hound::WavWriter::create(path, spec).map_err(io)?;
    for s in samples {
        writer.write_sample(*s).map_err(io)?;
    }
    writer.finalize().map_err(io)
}
