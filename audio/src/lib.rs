//! Audio codecs for Hearth's OpenAI-compatible endpoints: streaming encoders of 16-bit mono PCM
//! (`POST /v1/audio/speech`) and a decoder of uploaded files (`POST /v1/audio/transcriptions`).
//!
//! Encoding ([`encoder`], [`encode`]):
//!
//! | format | container and codec | crate |
//! |---|---|---|
//! | `wav` | RIFF WAVE, 16-bit PCM; streamed with unknown sizes (`0xFFFFFFFF`), as OpenAI and ffmpeg stream it | none |
//! | `pcm` | raw s16le, no header | none |
//! | `flac` | native FLAC, fixed 4096-sample blocks; STREAMINFO with unknown length and MD5 | `flacenc` |
//! | `opus` | Ogg Opus (RFC 7845), 20 ms frames, 32 kbit/s; the rate is converted to one Opus takes | `opus` (libopus), `ogg` |
//! | `mp3` | MPEG audio layer III, CBR 64 kbit/s mono, at the input rate (LAME resamples others) | `mp3lame-encoder` (LAME) |
//!
//! Every [`Encoder`] returns bytes as soon as the format allows, so a response can stream them:
//!
//! ```
//! use hearth_audio::{encoder, Format};
//!
//! let mut enc = encoder(Format::parse("opus").unwrap(), 22_050)?;
//! let first = enc.push(&vec![0i16; 22_050])?; // the headers and the packets of this second so far
//! assert!(first.starts_with(b"OggS"));
//! let last = enc.finish()?; // the rest, and the end of the stream
//! # assert!(!last.is_empty());
//! # Ok::<(), hearth_audio::AudioError>(())
//! ```
//!
//! Decoding ([`decode`]): the first bytes say what the file is (the file name and content type
//! are only hints); `symphonia` demuxes it and decodes every codec but Opus, which libopus
//! decodes; the audio is downmixed to mono and resampled with `rubato` packet by packet, so that
//! memory stays near the size of the result, and a file that decodes to more than
//! [`MAX_DECODED_SECONDS`] fails. Accepted: [`INPUT_FORMATS`] (and Opus in MP4, and ADTS AAC).
//! What symphonia leaves to its caller is done here: the Opus pre-skip, the edit list of an MP4
//! (AAC priming), and WAV sizes a recorder could not fill in. Anything else is
//! [`AudioError::Unsupported`]; a damaged file of a known format is [`AudioError::Invalid`], or
//! decodes as far as it is intact.
//!
//! Deliberately absent: ffmpeg or any other subprocess; decoding of raw `pcm` (no header to
//! recognize); the end trimming of Opus in WebM (symphonia does not expose `DiscardPadding`: up
//! to 20 ms of padding stays at the end).

use std::fmt;

mod decode;
mod flac;
mod mp3;
mod mp4;
mod opus_ogg;
mod resample;
mod wav;

pub use decode::{decode, decode_with_limit, Decoded, MAX_DECODED_SECONDS};
pub use resample::{resample, StreamResampler, RESAMPLE_RATES};

/// The formats [`decode`] accepts, as a client is told.
pub const INPUT_FORMATS: &str = "wav, mp3, flac, ogg (Vorbis or Opus), webm (Opus), m4a (AAC)";

/// The one error type of this crate. Its `Display` is a message a client can be shown.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// Not a format this crate reads (or writes), or a feature of it that it does not support.
    #[error("{0}; supported audio formats are {INPUT_FORMATS}")]
    Unsupported(String),
    /// A format this crate reads, but the data is damaged or out of range.
    #[error("invalid audio: {0}")]
    Invalid(String),
    /// An encoder failed (a bug or a resource problem rather than a client's mistake).
    #[error("cannot encode audio: {0}")]
    Encode(String),
}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, AudioError>;

/// Output formats of `POST /v1/audio/speech`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Wav,
    Pcm,
    Flac,
    Opus,
    Mp3,
}

impl Format {
    /// Every format, in the order OpenAI's documentation lists the common ones.
    pub const ALL: [Format; 5] = [Format::Wav, Format::Pcm, Format::Flac, Format::Opus, Format::Mp3];

    /// The format called `name` (`wav`, `pcm`, `flac`, `opus`, `mp3`; any case), as in OpenAI's
    /// `response_format`.
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The name `parse` takes, which is also the usual file extension.
    pub fn name(self) -> &'static str {
        match self {
            Format::Wav => "wav",
            Format::Pcm => "pcm",
            Format::Flac => "flac",
            Format::Opus => "opus",
            Format::Mp3 => "mp3",
        }
    }

    /// The `Content-Type` of a response in this format (Opus comes in an Ogg container).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Wav => "audio/wav",
            Format::Pcm => "audio/pcm",
            Format::Flac => "audio/flac",
            Format::Opus => "audio/ogg",
            Format::Mp3 => "audio/mpeg",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The sample rates an encoder accepts. Every format can carry them (Opus and MP3 by resampling).
pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;

/// A streaming encoder of 16-bit mono PCM at one sample rate. Bytes come out as soon as the format
/// allows, so an HTTP response can stream them: the first push returns the header plus what it
/// could encode.
pub trait Encoder: Send {
    /// Encodes `samples`, returning the bytes that are ready (possibly none: codecs work in
    /// frames, and keep a partial one for the next call).
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>>;
    /// Encodes what is left and ends the stream, which is complete after this call. Valid when
    /// nothing was pushed (the result is then a valid empty stream, header included). Calling
    /// `push` or `finish` again afterwards is an error.
    fn finish(&mut self) -> Result<Vec<u8>>;
}

/// A streaming encoder of `format` for mono audio at `sample_rate` Hz (one of [`SAMPLE_RATES`]).
pub fn encoder(format: Format, sample_rate: u32) -> Result<Box<dyn Encoder>> {
    check_rate(sample_rate)?;
    Ok(match format {
        Format::Wav => Box::new(wav::WavEncoder::new(sample_rate, true)),
        Format::Pcm => Box::new(wav::WavEncoder::new(sample_rate, false)),
        Format::Flac => Box::new(flac::FlacEncoder::new(sample_rate)?),
        Format::Opus => Box::new(opus_ogg::OpusEncoder::new(sample_rate)?),
        Format::Mp3 => Box::new(mp3::Mp3Encoder::new(sample_rate)?),
    })
}

/// Encodes a whole clip. Unlike a stream, the result states its length where the format has a
/// place for it: a WAV header with the real sizes, a FLAC STREAMINFO with the sample count and
/// frame sizes. The other formats are the same bytes a stream would be.
pub fn encode(format: Format, sample_rate: u32, samples: &[i16]) -> Result<Vec<u8>> {
    check_rate(sample_rate)?;
    match format {
        Format::Wav => Ok(wav::encode_whole(sample_rate, samples)),
        Format::Flac => flac::encode_whole(sample_rate, samples),
        _ => {
            let mut enc = encoder(format, sample_rate)?;
            let mut out = enc.push(samples)?;
            out.extend(enc.finish()?);
            Ok(out)
        }
    }
}

fn check_rate(sample_rate: u32) -> Result<()> {
    if SAMPLE_RATES.contains(&sample_rate) {
        Ok(())
    } else {
        Err(AudioError::Encode(format!(
            "a sample rate of {sample_rate} Hz is not supported (use {} to {} Hz)",
            SAMPLE_RATES.start(),
            SAMPLE_RATES.end()
        )))
    }
}

/// The error of a `push` or `finish` after `finish`.
fn finished_error() -> AudioError {
    AudioError::Encode("the stream was already finished".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name_in_any_case() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.name()), Some(f));
            assert_eq!(Format::parse(&f.name().to_uppercase()), Some(f));
        }
        assert_eq!(Format::parse("aac"), None);
        assert_eq!(Format::parse(""), None);
        assert_eq!(Format::Opus.content_type(), "audio/ogg");
        assert_eq!(Format::Mp3.content_type(), "audio/mpeg");
    }

    #[test]
    fn unsupported_names_the_accepted_formats() {
        let message = AudioError::Unsupported("this is a PNG image".into()).to_string();
        assert!(message.starts_with("this is a PNG image; "), "{message}");
        assert!(message.contains(INPUT_FORMATS), "{message}");
    }

    #[test]
    fn absurd_rates_are_refused() {
        for rate in [0, 7_999, 192_001, u32::MAX] {
            for f in Format::ALL {
                assert!(encoder(f, rate).is_err(), "{f} at {rate} Hz");
            }
        }
    }
}
