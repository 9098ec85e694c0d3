//! The `wav` and `pcm` encoders: 16-bit little-endian PCM, with (WAV) or without (raw) a RIFF
//! header. A streamed WAV cannot know its length when the header goes out, so both RIFF and `data`
//! sizes are `0xFFFFFFFF`, "to the end of the stream", as OpenAI and ffmpeg stream it; ffmpeg,
//! libsndfile, Python's `wave` and symphonia all read such a file to its end.

use crate::{Encoder, Result};

/// Size of the canonical header: RIFF, `fmt ` (16 bytes of PCM format), `data`.
pub(crate) const HEADER_LEN: usize = 44;

/// The size written for a length not known yet.
const UNKNOWN: u32 = u32::MAX;

pub(crate) struct WavEncoder {
    sample_rate: u32,
    /// `false` for raw `pcm`.
    header: bool,
    started: bool,
    finished: bool,
}

impl WavEncoder {
    pub(crate) fn new(sample_rate: u32, header: bool) -> WavEncoder {
        WavEncoder {
            sample_rate,
            header,
            started: false,
            finished: false,
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            if self.header {
                out.extend_from_slice(&header(self.sample_rate, UNKNOWN));
            }
        }
    }
}

impl Encoder for WavEncoder {
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>> {
        if self.finished {
            return Err(crate::finished_error());
        }
        let mut out = Vec::with_capacity(HEADER_LEN + samples.len() * 2);
        self.start(&mut out);
        put_samples(&mut out, samples);
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if self.finished {
            return Err(crate::finished_error());
        }
        self.finished = true;
        let mut out = Vec::new();
        self.start(&mut out);
        Ok(out)
    }
}

/// A complete WAV file of `samples`, with real sizes (or the unknown size when over 4 GiB).
pub(crate) fn encode_whole(sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2)
        .ok()
        .filter(|&n| n <= u32::MAX - 36)
        .unwrap_or(UNKNOWN);
    let mut out = Vec::with_capacity(HEADER_LEN + samples.len() * 2);
    out.extend_from_slice(&header(sample_rate, data_len));
    put_samples(&mut out, samples);
    out
}

fn put_samples(out: &mut Vec<u8>, samples: &[i16]) {
    out.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
}

/// The header of a mono 16-bit WAV file with `data_len` bytes of samples ([`UNKNOWN`] for a
/// stream, which also makes the RIFF size unknown).
fn header(sample_rate: u32, data_len: u32) -> [u8; HEADER_LEN] {
    let riff_len = if data_len == UNKNOWN { UNKNOWN } else { data_len + 36 };
    let mut h = [0u8; HEADER_LEN];
    let fields: [&[u8]; 13] = [
        b"RIFF",
        &riff_len.to_le_bytes(),
        b"WAVE",
        b"fmt ",
        &16u32.to_le_bytes(),
        &1u16.to_le_bytes(), // PCM
        &1u16.to_le_bytes(), // channels
        &sample_rate.to_le_bytes(),
        &(sample_rate * 2).to_le_bytes(), // bytes per second
        &2u16.to_le_bytes(),              // bytes per frame
        &16u16.to_le_bytes(),             // bits per sample
        b"data",
        &data_len.to_le_bytes(),
    ];
    let mut at = 0;
    for f in fields {
        h[at..at + f.len()].copy_from_slice(f);
        at += f.len();
    }
    debug_assert_eq!(at, HEADER_LEN);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_header_then_samples() {
        let mut enc = WavEncoder::new(22_050, true);
        let first = enc.push(&[1, -2]).unwrap();
        assert_eq!(&first[..4], b"RIFF");
        assert_eq!(&first[4..8], &[0xFF; 4]);
        assert_eq!(&first[24..28], &22_050u32.to_le_bytes());
        assert_eq!(&first[40..44], &[0xFF; 4]);
        assert_eq!(&first[44..], &[1, 0, 0xFE, 0xFF]);
        assert_eq!(enc.push(&[3]).unwrap(), vec![3, 0]);
        assert!(enc.finish().unwrap().is_empty());
        assert!(enc.push(&[3]).is_err());
    }

    #[test]
    fn empty_stream_is_a_header() {
        assert_eq!(WavEncoder::new(16_000, true).finish().unwrap().len(), HEADER_LEN);
        assert!(WavEncoder::new(16_000, false).finish().unwrap().is_empty());
    }

    #[test]
    fn pcm_has_no_header() {
        let mut enc = WavEncoder::new(16_000, false);
        assert_eq!(enc.push(&[256, -1]).unwrap(), vec![0, 1, 0xFF, 0xFF]);
    }

    #[test]
    fn whole_file_has_sizes() {
        let file = encode_whole(16_000, &[0; 10]);
        assert_eq!(file.len(), 64);
        assert_eq!(u32::from_le_bytes(file[4..8].try_into().unwrap()), 56);
        assert_eq!(u32::from_le_bytes(file[40..44].try_into().unwrap()), 20);
    }
}
