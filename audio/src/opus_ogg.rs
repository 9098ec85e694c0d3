//! The `opus` encoder: Ogg Opus as RFC 7845 lays it out. An `OpusHead` page (mono, the encoder's
//! lookahead as pre-skip, the input rate for information), an `OpusTags` page, then pages of
//! 20 ms packets whose granule positions count 48 kHz samples; the last page has the end-of-stream
//! flag and a granule position that trims the padding of the last packet.
//!
//! libopus takes 8, 12, 16, 24 or 48 kHz: another input rate is resampled (`rubato`) to the next of
//! these above it, e.g. a 22 050 Hz voice to 24 kHz. Each `push` ends a page, so what was encoded
//! goes out at once; a long push is cut into pages of at most half a second.

use std::sync::atomic::{AtomicU32, Ordering};

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use crate::resample::StreamResampler;
use crate::{AudioError, Encoder, Result};

/// The rates libopus encodes at.
pub(crate) const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// The bit rate: transparent enough for synthesized speech, and an eighth of 16-bit PCM at 16 kHz.
const BITRATE: i32 = 32_000;

/// The largest packet libopus makes (RFC 6716, 3.2.1): an output buffer of this size never fails.
const MAX_PACKET: usize = 1275;

/// Packets per page at most: 0.5 s, and at most 150 of the 255 lacing values a page has.
const PACKETS_PER_PAGE: usize = 25;

/// Ogg Opus positions are in 48 kHz samples, whatever the rate the encoder ran at.
const GRANULE_RATE: u64 = 48_000;

pub(crate) struct OpusEncoder {
    opus: opus::Encoder,
    /// The caller's rate.
    input_rate: u32,
    /// The rate libopus runs at.
    rate: u32,
    resampler: StreamResampler,
    /// Samples of the frame being filled, at `rate`.
    frame: Vec<f32>,
    /// Samples per 20 ms frame at `rate`.
    frame_len: usize,
    /// Samples given to `push`, at `input_rate`.
    input_total: u64,
    /// The granule position after the last packet encoded.
    granule: u64,
    /// The encoder's delay, in 48 kHz samples.
    pre_skip: u16,
    pages: PacketWriter<'static, Vec<u8>>,
    serial: u32,
    started: bool,
    finished: bool,
}

fn fail(e: opus::Error) -> AudioError {
    AudioError::Encode(format!("libopus: {e}"))
}

impl OpusEncoder {
    pub(crate) fn new(input_rate: u32) -> Result<OpusEncoder> {
        let rate = OPUS_RATES.into_iter().find(|&r| r >= input_rate).unwrap_or(48_000);
        let mut opus = opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Audio).map_err(fail)?;
        opus.set_bitrate(opus::Bitrate::Bits(BITRATE)).map_err(fail)?;
        opus.set_signal(opus::Signal::Voice).map_err(fail)?;
        let lookahead = u64::try_from(opus.get_lookahead().map_err(fail)?).unwrap_or(0);
        let pre_skip = u16::try_from(lookahead * GRANULE_RATE / u64::from(rate))
            .map_err(|_| AudioError::Encode(format!("libopus reports a lookahead of {lookahead} samples")))?;
        let frame_len = rate as usize / 50;
        Ok(OpusEncoder {
            opus,
            input_rate,
            rate,
            resampler: StreamResampler::new(input_rate, rate)?,
            frame: Vec::with_capacity(frame_len),
            frame_len,
            input_total: 0,
            granule: 0,
            pre_skip,
            pages: PacketWriter::new(Vec::new()),
            serial: serial_number(),
            started: false,
            finished: false,
        })
    }

    /// Writes the two header pages, once.
    fn start(&mut self) -> Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(1); // channels
        head.extend_from_slice(&self.pre_skip.to_le_bytes());
        head.extend_from_slice(&self.input_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // channel mapping family 0: mono or stereo, no table
        let vendor = format!("hearth-audio {} ({})", env!("CARGO_PKG_VERSION"), opus::version());
        let mut tags = Vec::with_capacity(16 + vendor.len());
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor.as_bytes());
        tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments
        self.write(head, PacketWriteEndInfo::EndPage, 0)?;
        self.write(tags, PacketWriteEndInfo::EndPage, 0)
    }

    fn write(&mut self, packet: Vec<u8>, end: PacketWriteEndInfo, granule: u64) -> Result<()> {
        self.pages
            .write_packet(packet, self.serial, end, granule)
            .map_err(|e| AudioError::Encode(format!("Ogg: {e}")))
    }

    /// Appends resampled `samples` to the frame, encoding each frame that fills up.
    fn encode_samples(&mut self, mut samples: &[f32], packets: &mut Vec<Vec<u8>>) -> Result<()> {
        while !samples.is_empty() {
            let take = (self.frame_len - self.frame.len()).min(samples.len());
            self.frame.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.frame.len() == self.frame_len {
                packets.push(self.opus.encode_vec_float(&self.frame, MAX_PACKET).map_err(fail)?);
                self.frame.clear();
            }
        }
        Ok(())
    }

    /// Writes `packets` as pages, the last page ending with the last packet (and the stream when
    /// `last_granule` is given: the granule position that trims the stream to its real length).
    fn write_pages(&mut self, packets: Vec<Vec<u8>>, last_granule: Option<u64>) -> Result<Vec<u8>> {
        let step = GRANULE_RATE * self.frame_len as u64 / u64::from(self.rate);
        let count = packets.len();
        for (i, packet) in packets.into_iter().enumerate() {
            self.granule += step;
            let last = i + 1 == count;
            let (end, granule) = match (last, last_granule) {
                (true, Some(g)) => (PacketWriteEndInfo::EndStream, g),
                (true, None) => (PacketWriteEndInfo::EndPage, self.granule),
                _ if (i + 1) % PACKETS_PER_PAGE == 0 => (PacketWriteEndInfo::EndPage, self.granule),
                _ => (PacketWriteEndInfo::NormalPacket, self.granule),
            };
            self.write(packet, end, granule)?;
        }
        Ok(std::mem::take(self.pages.inner_mut()))
    }
}

impl Encoder for OpusEncoder {
    fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>> {
        if self.finished {
            return Err(crate::finished_error());
        }
        self.start()?;
        self.input_total += samples.len() as u64;
        let input: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
        let resampled = self.resampler.push(&input)?;
        let mut packets = Vec::new();
        self.encode_samples(&resampled, &mut packets)?;
        self.write_pages(packets, None)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if self.finished {
            return Err(crate::finished_error());
        }
        self.finished = true;
        self.start()?;
        let rest = self.resampler.finish()?;
        let mut packets = Vec::new();
        self.encode_samples(&rest, &mut packets)?;
        // Encode silence until the decoder, which drops the first `pre_skip` samples, has all
        // the input; then the last granule position cuts the stream to the input's length.
        let end = u64::from(self.pre_skip) + (self.input_total * GRANULE_RATE).div_ceil(u64::from(self.input_rate));
        let step = GRANULE_RATE * self.frame_len as u64 / u64::from(self.rate);
        while self.granule + step * (packets.len() as u64) < end || !self.frame.is_empty() || packets.is_empty() {
            let silence = vec![0.0; self.frame_len - self.frame.len()];
            self.encode_samples(&silence, &mut packets)?;
        }
        self.write_pages(packets, Some(end))
    }
}

/// A serial number for a new logical stream: distinct between the streams of a process, and
/// unlikely to repeat across processes, should a client chain two responses.
fn serial_number() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ COUNTER.fetch_add(0x9E37_79B9, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages of an Ogg stream: (header type, granule position, serial, payload segments).
    fn pages(mut bytes: &[u8]) -> Vec<(u8, u64, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(&bytes[..4], b"OggS");
            let kind = bytes[5];
            let granule = u64::from_le_bytes(bytes[6..14].try_into().unwrap());
            let serial = u32::from_le_bytes(bytes[14..18].try_into().unwrap());
            let segments = bytes[26] as usize;
            let body: usize = bytes[27..27 + segments].iter().map(|&n| n as usize).sum();
            out.push((
                kind,
                granule,
                serial,
                bytes[27 + segments..27 + segments + body].to_vec(),
            ));
            bytes = &bytes[27 + segments + body..];
        }
        out
    }

    #[test]
    fn headers_granules_and_end_of_stream() {
        let mut enc = OpusEncoder::new(22_050).unwrap();
        assert_eq!(enc.rate, 24_000);
        let mut bytes = enc.push(&vec![1000; 22_050]).unwrap();
        bytes.extend(enc.finish().unwrap());
        let pages = pages(&bytes);
        assert_eq!(&pages[0].3[..8], b"OpusHead");
        assert_eq!(pages[0].0, 2, "beginning of stream");
        assert_eq!(pages[0].1, 0);
        assert_eq!(u32::from_le_bytes(pages[0].3[12..16].try_into().unwrap()), 22_050);
        let pre_skip = u64::from(u16::from_le_bytes(pages[0].3[10..12].try_into().unwrap()));
        assert!(pre_skip > 0);
        assert_eq!(&pages[1].3[..8], b"OpusTags");
        let last = pages.last().unwrap();
        assert_eq!(last.0 & 4, 4, "end of stream");
        assert_eq!(last.1, pre_skip + 48_000, "one second after the pre-skip");
        assert!(pages.iter().all(|p| p.2 == pages[0].2), "one serial number");
        let granules: Vec<u64> = pages.iter().map(|p| p.1).collect();
        assert!(granules.windows(2).all(|w| w[0] <= w[1]), "{granules:?}");
    }

    #[test]
    fn an_empty_stream_is_valid() {
        let mut enc = OpusEncoder::new(16_000).unwrap();
        let pages = pages(&enc.finish().unwrap());
        assert_eq!(pages.len(), 3, "head, tags, one packet of silence");
        let pre_skip = u64::from(u16::from_le_bytes(pages[0].3[10..12].try_into().unwrap()));
        assert_eq!(pages[2].1, pre_skip, "nothing to play after the pre-skip");
        assert_eq!(pages[2].0 & 4, 4);
    }
}
