//! The `mp3` encoder: LAME (through `mp3lame-encoder`), mono, constant 64 kbit/s, at the input
//! rate when MPEG audio has it (8 to 48 kHz; 22 050 Hz voices stay at 22 050 Hz, MPEG-2) and at the
//! next MPEG rate above it otherwise (LAME resamples). No Xing/LAME tag: it would have to be
//! written into the first frame once the stream is over, which a stream cannot do; decoders take
//! the length from the constant bit rate instead.

use std::num::NonZeroU32;

use mp3lame_encoder::{Bitrate, Builder, FlushGap, Mode, MonoPcm, Quality, VbrMode};

use crate::{AudioError, Encoder, Result};

/// The sample rates MPEG-1, -2 and -2.5 layer III define.
const MPEG_RATES: [u32; 9] = [8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];

/// Samples given to LAME at a time, to bound the output buffer of one call.
const CHUNK: usize = 16_384;

pub(crate) struct Mp3Encoder {
    lame: mp3lame_encoder::Encoder,
    finished: bool,
}

impl Mp3Encoder {
    pub(crate) fn new(sample_rate: u32) -> Result<Mp3Encoder> {
        let fail = |e: mp3lame_encoder::BuildError| AudioError::Encode(format!("LAME: {e}"));
        let out_rate = MPEG_RATES.into_iter().find(|&r| r >= sample_rate).unwrap_or(48_000);
        let mut builder = Builder::new().ok_or_else(|| AudioError::Encode("LAME: cannot allocate".into()))?;
        builder.set_num_channels(1).map_err(fail)?;
        builder.set_sample_rate(sample_rate).map_err(fail)?;
        builder
            .set_output_sample_rate(NonZeroU32::new(out_rate))
            .map_err(fail)?;
        builder.set_mode(Mode::Mono).map_err(fail)?;
        builder.set_vbr_mode(VbrMode::Off).map_err(fail)?;
        builder.set_brate(Bitrate::Kbps64).map_err(fail)?;
        // LAME's own default quality (-q 5): most of the quality of -q 2 at about half the time.
        builder.set_quality(Quality::Good).map_err(fail)?;
        builder.set_to_write_vbr_tag(false).map_err(fail)?;
        Ok(Mp3Encoder {
            lame: builder.build().map_err(fail)?,
            finished: false,
        })
    }
}

fn encode_error(e: mp3lame_encoder::EncodeError) -> AudioError {
    AudioError::Encode(format!("LAME: {e}"))
}

impl Encoder for Mp3Encoder {
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>> {
        if self.finished {
            return Err(crate::finished_error());
        }
        let mut out = Vec::new();
        for chunk in samples.chunks(CHUNK) {
            out.reserve(mp3lame_encoder::max_required_buffer_size(chunk.len()));
            self.lame
                .encode_to_vec(MonoPcm(chunk), &mut out)
                .map_err(encode_error)?;
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if self.finished {
            return Err(crate::finished_error());
        }
        self.finished = true;
        // `lame_encode_flush`: pads the last frame with silence and writes everything out.
        let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(0));
        self.lame.flush_to_vec::<FlushGap>(&mut out).map_err(encode_error)?;
        Ok(out)
    }
}
