//! The `flac` encoder: native FLAC (`fLaC`, STREAMINFO, frames) made with `flacenc`, one frame per
//! 4096-sample block, written out as soon as the block is full. The STREAMINFO of a stream goes
//! out first and so says "unknown" where FLAC allows it: total samples 0, frame sizes 0, MD5 0.
//! A whole clip ([`encode_whole`]) gets the real sample count and frame sizes.

use flacenc::component::{BitRepr, Stream, StreamInfo};
use flacenc::config;
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};

use crate::{AudioError, Encoder, Result};

/// Samples per frame: the FLAC reference encoder's default, about 0.19 s at 22 050 Hz.
const BLOCK: usize = 4096;

/// Where STREAMINFO's fields start: after `fLaC` and the metadata block header.
const INFO: usize = 8;

pub(crate) struct FlacEncoder {
    config: Verified<config::Encoder>,
    info: StreamInfo,
    framebuf: FrameBuf,
    /// Samples of the block being filled.
    block: Vec<i32>,
    frame_number: usize,
    started: bool,
    finished: bool,
    /// Sizes of the frames written so far, in bytes.
    min_frame: usize,
    max_frame: usize,
    total_samples: u64,
}

fn fail(what: &str, e: impl std::fmt::Debug) -> AudioError {
    AudioError::Encode(format!("FLAC {what}: {e:?}"))
}

impl FlacEncoder {
    pub(crate) fn new(sample_rate: u32) -> Result<FlacEncoder> {
        let mut info = StreamInfo::new(sample_rate as usize, 1, 16).map_err(|e| fail("stream info", e))?;
        info.set_block_sizes(BLOCK, BLOCK).map_err(|e| fail("stream info", e))?;
        // Unknown until the end (`StreamInfo::new` leaves values that do not fit the format).
        info.set_frame_sizes(0, 0).map_err(|e| fail("stream info", e))?;
        let mut config = config::Encoder::default();
        config.block_size = BLOCK;
        Ok(FlacEncoder {
            config: config.into_verified().map_err(|(_, e)| fail("configuration", e))?,
            info,
            framebuf: FrameBuf::with_size(1, BLOCK).map_err(|e| fail("buffer", e))?,
            block: Vec::with_capacity(BLOCK),
            frame_number: 0,
            started: false,
            finished: false,
            min_frame: usize::MAX,
            max_frame: 0,
            total_samples: 0,
        })
    }

    fn start(&mut self, out: &mut Vec<u8>) -> Result<()> {
        if !self.started {
            self.started = true;
            write(&Stream::with_stream_info(self.info.clone()), out)?;
        }
        Ok(())
    }

    /// Encodes the samples in `block` (a full block, or the last one) as one frame.
    fn encode_block(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.framebuf
            .fill_interleaved(&self.block)
            .map_err(|e| fail("input", e))?;
        let frame = flacenc::encode_fixed_size_frame(&self.config, &self.framebuf, self.frame_number, &self.info)
            .map_err(|e| fail("frame", e))?;
        let before = out.len();
        write(&frame, out)?;
        let size = out.len() - before;
        self.min_frame = self.min_frame.min(size);
        self.max_frame = self.max_frame.max(size);
        self.total_samples += self.block.len() as u64;
        self.frame_number += 1;
        self.block.clear();
        Ok(())
    }
}

fn write(component: &impl BitRepr, out: &mut Vec<u8>) -> Result<()> {
    let mut sink = flacenc::bitsink::MemSink::<u8>::with_capacity(component.count_bits());
    component.write(&mut sink).map_err(|e| fail("output", e))?;
    out.extend_from_slice(sink.as_slice());
    Ok(())
}

impl Encoder for FlacEncoder {
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>> {
        if self.finished {
            return Err(crate::finished_error());
        }
        let mut out = Vec::new();
        self.start(&mut out)?;
        for &s in samples {
            self.block.push(i32::from(s));
            if self.block.len() == BLOCK {
                self.encode_block(&mut out)?;
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if self.finished {
            return Err(crate::finished_error());
        }
        self.finished = true;
        let mut out = Vec::new();
        self.start(&mut out)?;
        if !self.block.is_empty() {
            self.encode_block(&mut out)?;
        }
        Ok(out)
    }
}

/// A complete FLAC file of `samples` whose STREAMINFO has the sample count and frame sizes.
pub(crate) fn encode_whole(sample_rate: u32, samples: &[i16]) -> Result<Vec<u8>> {
    let mut enc = FlacEncoder::new(sample_rate)?;
    let mut out = enc.push(samples)?;
    out.extend(enc.finish()?);
    if enc.frame_number > 0 {
        // Frame sizes: 24 bits each at bytes 4..10 of STREAMINFO.
        let min = (enc.min_frame as u32).min(0xFF_FFFF).to_be_bytes();
        let max = (enc.max_frame as u32).min(0xFF_FFFF).to_be_bytes();
        out[INFO + 4..INFO + 7].copy_from_slice(&min[1..]);
        out[INFO + 7..INFO + 10].copy_from_slice(&max[1..]);
        // Total samples: the low 36 bits of the 64 bits at bytes 10..18 (rate, channels, bits
        // per sample, total samples).
        if enc.total_samples < 1 << 36 {
            let at = INFO + 10..INFO + 18;
            let word = u64::from_be_bytes(out[at.clone()].try_into().expect("8 bytes"));
            let word = (word & !((1u64 << 36) - 1)) | enc.total_samples;
            out[at].copy_from_slice(&word.to_be_bytes());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_starts_with_streaminfo_and_emits_whole_blocks() {
        let mut enc = FlacEncoder::new(22_050).unwrap();
        let first = enc.push(&[0; 100]).unwrap();
        assert_eq!(&first[..4], b"fLaC");
        // The last-block flag and type 0 (STREAMINFO), 34 bytes.
        assert_eq!(&first[4..8], &[0x80, 0, 0, 34]);
        assert_eq!(first.len(), 42, "only the header until a block is full");
        let second = enc.push(&[7; BLOCK]).unwrap();
        assert_eq!(&second[..2], &[0xFF, 0xF8], "a frame with a fixed block size");
        assert!(!enc.finish().unwrap().is_empty());
        assert!(enc.finish().is_err());
    }

    #[test]
    fn whole_file_states_its_length() {
        let samples: Vec<i16> = (0..10_000).map(|i| (i % 300) as i16).collect();
        let file = encode_whole(16_000, &samples).unwrap();
        let word = u64::from_be_bytes(file[INFO + 10..INFO + 18].try_into().unwrap());
        assert_eq!(word & ((1 << 36) - 1), 10_000);
        assert_eq!((word >> 44) as u32, 16_000, "the rate is untouched");
    }
}
