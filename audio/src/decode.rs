//! The decoder of uploaded files: sniff the container from the first bytes, demux and decode it
//! with `symphonia` (Opus packets with libopus), downmix to mono and resample to the target rate
//! packet by packet, so that the only large buffer is the result.
//!
//! Errors: bytes that are no container this crate reads are [`AudioError::Unsupported`], and so
//! is a known container whose audio is in a codec it cannot decode (AMR in 3GP, ALAC in M4A, ...).
//! A known container that cannot be read is [`AudioError::Invalid`]. A file cut short decodes as
//! far as it goes; a damaged packet is skipped, unless no packet decodes at all (then
//! `Invalid`). A panic inside a decoder becomes `Invalid` too.

use std::panic::{catch_unwind, AssertUnwindSafe};

use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;

use crate::mp4;
use crate::opus_ogg::OPUS_RATES;
use crate::resample::{StreamResampler, RESAMPLE_RATES};
use crate::{AudioError, Result};

/// The longest audio [`decode`] returns: two hours (230 MB of 16 kHz samples). A longer file
/// fails rather than filling memory: a small file can decode to hours (FLAC of silence, a long
/// low-rate Opus), whatever its header claims.
pub const MAX_DECODED_SECONDS: u32 = 2 * 60 * 60;

/// Damaged packets tolerated, beyond one in ten of those read, before a file counts as broken.
const TOLERATED_BAD_PACKETS: u64 = 8;

/// Decoded audio: mono 16-bit samples at the requested rate, and what the file was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The samples, mono.
    pub samples: Vec<i16>,
    /// Their rate: the `target_rate` asked for.
    pub sample_rate: u32,
    /// The file's sample rate.
    pub source_rate: u32,
    /// The file's channel count (before the downmix).
    pub source_channels: u16,
    /// The codec and container, e.g. `opus in webm`, `aac in mp4`, `mp3`, `pcm_s16le in wav`.
    pub codec: String,
}

impl Decoded {
    /// The duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Decodes an uploaded file (`POST /v1/audio/transcriptions`) to mono 16-bit PCM at
/// `target_rate` (16 kHz for Whisper), up to [`MAX_DECODED_SECONDS`] long. `name_hint` and
/// `mime_hint` are the multipart file name and content type; they may be missing or wrong: the
/// bytes decide.
pub fn decode(bytes: &[u8], name_hint: Option<&str>, mime_hint: Option<&str>, target_rate: u32) -> Result<Decoded> {
    decode_with_limit(bytes, name_hint, mime_hint, target_rate, MAX_DECODED_SECONDS)
}

/// [`decode`] with another limit on the duration, in seconds.
pub fn decode_with_limit(
    bytes: &[u8],
    name_hint: Option<&str>,
    mime_hint: Option<&str>,
    target_rate: u32,
    max_seconds: u32,
) -> Result<Decoded> {
    if !RESAMPLE_RATES.contains(&target_rate) {
        return Err(AudioError::Invalid(format!("cannot decode to {target_rate} Hz")));
    }
    let container = sniff(bytes).ok_or_else(|| AudioError::Unsupported(not_audio(bytes, name_hint, mime_hint)))?;
    let limit = u64::from(max_seconds) * u64::from(target_rate);
    catch_unwind(AssertUnwindSafe(|| {
        decode_container(bytes, container, name_hint, mime_hint, target_rate, limit, max_seconds)
    }))
    .unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(AudioError::Invalid(format!(
            "the {} decoder failed on this file ({reason})",
            container.name()
        )))
    })
}

/// The uploaded bytes as symphonia reads them: with or without telling their length, and with a
/// corrected copy of their first bytes over the original where one is given.
struct Bytes<'a> {
    bytes: &'a [u8],
    head: Option<Vec<u8>>,
    pos: usize,
    length_known: bool,
}

impl std::io::Read for Bytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let from = match &self.head {
            Some(head) if self.pos < head.len() => &head[self.pos..],
            _ => self.bytes.get(self.pos..).unwrap_or_default(),
        };
        let n = from.len().min(buf.len());
        buf[..n].copy_from_slice(&from[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl std::io::Seek for Bytes<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let (base, offset) = match to {
            std::io::SeekFrom::Start(n) => (0, i64::try_from(n).unwrap_or(i64::MAX)),
            std::io::SeekFrom::End(n) => (self.bytes.len(), n),
            std::io::SeekFrom::Current(n) => (self.pos, n),
        };
        let pos = i64::try_from(base)
            .ok()
            .and_then(|b| b.checked_add(offset))
            .and_then(|p| usize::try_from(p).ok());
        let pos = pos.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = pos;
        Ok(pos as u64)
    }
}

impl symphonia::core::io::MediaSource for Bytes<'_> {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        self.length_known.then_some(self.bytes.len() as u64)
    }
}

/// A WAV file's header up to its samples, with sizes that fit the file, if its own do not: a
/// recorder that could not seek back writes 0 or 0xFFFFFFFF, and an upload cut short has less
/// than its header says. (ffmpeg reads such files to their end; symphonia would refuse them or
/// read nothing.)
fn wav_header_fix(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut at = 12;
    loop {
        let header = bytes.get(at..at + 8)?;
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[..4] == b"data" {
            let start = at + 8;
            let available = bytes.len() - start;
            let data_len = if len == 0 || len > available { available } else { len };
            let (data_len, riff_len) = (u32::try_from(data_len).ok()?, u32::try_from(bytes.len() - 8).ok()?);
            let old_riff = u32::from_le_bytes(bytes[4..8].try_into().ok()?);
            if data_len as usize == len && old_riff == riff_len {
                return None;
            }
            let mut head = bytes[..start].to_vec();
            head[4..8].copy_from_slice(&riff_len.to_le_bytes());
            head[at + 4..at + 8].copy_from_slice(&data_len.to_le_bytes());
            return Some(head);
        }
        // Chunks are padded to an even length.
        at = at.checked_add(8 + len + (len & 1))?;
    }
}

/// The containers recognized by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Wav,
    Flac,
    Ogg,
    Matroska { webm: bool },
    Mp4,
    Mp3,
    Adts,
}

impl Container {
    fn name(self) -> &'static str {
        match self {
            Container::Wav => "wav",
            Container::Flac => "flac",
            Container::Ogg => "ogg",
            Container::Matroska { webm: true } => "webm",
            Container::Matroska { webm: false } => "matroska",
            Container::Mp4 => "mp4",
            Container::Mp3 => "mp3",
            Container::Adts => "aac",
        }
    }
}

/// How many ID3v2 tags in a row `sniff` skips before it gives up on the file. Real files carry
/// one, rarely two (a tag appended by a second tool); a crafted upload can carry tens of
/// thousands, and each one costs a step, so the count is bounded.
const MAX_ID3_TAGS: usize = 8;

/// The container `bytes` start with, if it is one this crate reads.
///
/// ID3v2 tags in front are skipped in a loop, at most [`MAX_ID3_TAGS`] of them: a recursion
/// per tag once let 800 KB of nested tag headers overflow the stack of the thread that read
/// them, which aborts the whole process.
fn sniff(bytes: &[u8]) -> Option<Container> {
    let mut rest = bytes;
    for _ in 0..MAX_ID3_TAGS {
        match id3_tag_len(rest) {
            // A tag, then something else or nothing: treat it as a (damaged) MP3.
            Some(len) => match rest.get(len..) {
                Some(after) if !after.is_empty() => rest = after,
                _ => return Some(Container::Mp3),
            },
            None if rest.len() < bytes.len() => return sniff_one(rest).or(Some(Container::Mp3)),
            None => return sniff_one(rest),
        }
    }
    None
}

/// The length of the ID3v2 tag `bytes` start with: 10 bytes of header, a "syncsafe" size of
/// 4 × 7 bits, and a footer of 10 bytes when flag 0x10 is set. `None` when there is none, or
/// when its header is cut short.
fn id3_tag_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(0..10).filter(|h| h.starts_with(b"ID3"))?;
    let size = header[6..10]
        .iter()
        .fold(0usize, |n, &b| (n << 7) | usize::from(b & 0x7F));
    let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

/// The container `bytes` start with, tags already skipped.
fn sniff_one(bytes: &[u8]) -> Option<Container> {
    let at = |range: std::ops::Range<usize>| bytes.get(range).unwrap_or_default();
    if at(0..4) == b"RIFF" && at(8..12) == b"WAVE" {
        return Some(Container::Wav);
    }
    if at(0..4) == b"fLaC" {
        return Some(Container::Flac);
    }
    if at(0..4) == b"OggS" {
        return Some(Container::Ogg);
    }
    if at(0..4) == [0x1A, 0x45, 0xDF, 0xA3] {
        // The EBML header, with its DocType, comes first and is short.
        let head = &bytes[..bytes.len().min(64)];
        let webm = head.windows(4).any(|w| w == b"webm");
        return Some(Container::Matroska { webm });
    }
    if matches!(at(4..8), b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide" | b"skip") {
        return Some(Container::Mp4);
    }
    match *at(0..4) {
        // An MPEG audio frame header: 11 sync bits, then version (01 is reserved), layer (00 is
        // ADTS AAC's), a bit rate index other than 15 and a rate index other than 3.
        [0xFF, b1, b2, _] if b1 & 0xE0 == 0xE0 => {
            let version = (b1 >> 3) & 3;
            let layer = (b1 >> 1) & 3;
            let bitrate = b2 >> 4;
            let rate = (b2 >> 2) & 3;
            if b1 & 0xF6 == 0xF0 && rate != 3 {
                // 12 sync bits and layer 00: ADTS.
                Some(Container::Adts)
            } else if version != 1 && layer == 1 && bitrate != 15 && rate != 3 {
                Some(Container::Mp3)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The message for bytes that are not a container this crate reads.
fn not_audio(bytes: &[u8], name: Option<&str>, mime: Option<&str>) -> String {
    if bytes.is_empty() {
        return "the file is empty".into();
    }
    let known = [
        (&b"RIFF"[..], "a RIFF file other than WAVE"),
        (b"RF64", "an RF64 (64-bit WAV) file"),
        (b"FORM", "an AIFF or other IFF file"),
        (b"caff", "a Core Audio (CAF) file"),
        (b"#!AMR", "an AMR file"),
        (b"MAC ", "a Monkey's Audio file"),
        (b"wvpk", "a WavPack file"),
        (b"\x30\x26\xB2\x75", "an ASF (WMA) file"),
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"PK\x03\x04", "a ZIP archive"),
        (
            b"ID3",
            "ID3 tags with no audio this server decodes after them (it reads at most 8 tags in a row)",
        ),
    ];
    let what = known
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, what)| format!("the file is {what}, not audio this server decodes"))
        .unwrap_or_else(|| "the file is not audio in a format this server decodes".into());
    match (name, mime) {
        (Some(name), Some(mime)) => format!("{what} (named {name:?}, sent as {mime:?})"),
        (Some(name), None) => format!("{what} (named {name:?})"),
        (None, Some(mime)) => format!("{what} (sent as {mime:?})"),
        (None, None) => what,
    }
}

fn decode_container(
    bytes: &[u8],
    container: Container,
    name_hint: Option<&str>,
    mime_hint: Option<&str>,
    target_rate: u32,
    limit: u64,
    max_seconds: u32,
) -> Result<Decoded> {
    let invalid = |what: &str, e: &SymphoniaError| AudioError::Invalid(format!("{what} {}: {e}", container.name()));
    let mut hint = Hint::new();
    if let Some(ext) = name_hint.and_then(|n| n.rsplit_once('.')).map(|(_, ext)| ext) {
        hint.with_extension(ext);
    }
    if let Some(mime) = mime_hint {
        hint.mime_type(mime);
    }
    if container == Container::Wav {
        check_wav_format(bytes)?;
    }
    if container == Container::Flac {
        if let Some((rate, channels)) = flac_without_frames(bytes) {
            // Symphonia wants a first frame; an empty stream is still a valid file.
            return Ok(Decoded {
                samples: Vec::new(),
                sample_rate: target_rate,
                source_rate: rate,
                source_channels: channels,
                codec: "flac".into(),
            });
        }
    }
    let head = if container == Container::Wav {
        wav_header_fix(bytes)
    } else {
        None
    };
    let open = |length_known: bool| {
        let bytes = Bytes {
            bytes,
            head: head.clone(),
            pos: 0,
            length_known,
        };
        let source = MediaSourceStream::new(Box::new(bytes), MediaSourceStreamOptions::default());
        symphonia::default::get_probe().probe(&hint, source, FormatOptions::default(), MetadataOptions::default())
    };
    // Symphonia's Matroska reader drops a Segment that claims more bytes than the file has, so
    // a recording cut short would not open. Not knowing the length, it reads to the end.
    let opened = match open(true) {
        Err(_) if matches!(container, Container::Matroska { .. }) => open(false),
        opened => opened,
    };
    let mut reader = opened.map_err(|e| match e {
        // The first bytes said what the file is, so no reader taking it, or a part missing,
        // means it is damaged or cut short.
        SymphoniaError::Unsupported(what) if what.starts_with("core (probe)") => {
            AudioError::Invalid(format!("the {} file is damaged or cut short", container.name()))
        }
        SymphoniaError::Unsupported(what) if what.contains("missing") || what.contains("not marked as first") => {
            AudioError::Invalid(format!(
                "the {} file is damaged or cut short ({what})",
                container.name()
            ))
        }
        SymphoniaError::Unsupported(what) => AudioError::Unsupported(format!(
            "this {} file uses a feature not supported ({what})",
            container.name()
        )),
        e => invalid("cannot read the", &e),
    })?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Unsupported(format!("the {} file has no audio track", container.name())))?;
    let track_id = track.id;
    let time_base = track.time_base;
    let delay = track.delay;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .cloned()
        .ok_or_else(|| AudioError::Unsupported(format!("the {} file has no audio track", container.name())))?;
    let channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);

    let mut sink = Sink::new(target_rate, limit, max_seconds);
    let edit = if container == Container::Mp4 && delay.is_none() {
        mp4::audio_edit(bytes)
    } else {
        None
    };
    if let Some(edit) = edit {
        sink.trim = Trim::from_edit(edit);
    }
    let mut source = if params.codec == CODEC_ID_OPUS {
        let mut opus = OpusSource::new(&params, container, time_base, target_rate)?;
        if edit.is_some() {
            // The edit list drops the pre-skip (as the mapping of Opus into MP4 prescribes).
            opus.skip = 0;
        }
        Source::Opus(opus)
    } else {
        // Gapless (the default): decoders drop encoder delay and padding the container states.
        let options = AudioDecoderOptions::default();
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &options)
            .map_err(|e| match e {
                SymphoniaError::Unsupported(_) => AudioError::Unsupported(format!(
                    "{} audio in a {} file is not supported",
                    codec_name(&params),
                    container.name()
                )),
                e => invalid("cannot decode the audio of this", &e),
            })?;
        Source::Symphonia {
            decoder,
            planes: Vec::new(),
        }
    };
    let codec = match (source.codec_name(), container) {
        ("mp3", Container::Mp3) | ("flac", Container::Flac) | ("aac", Container::Adts) => container.name().to_string(),
        (codec, _) => format!("{codec} in {}", container.name()),
    };

    let mut packets = 0u64;
    let mut bad = 0u64;
    let mut first_error = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(SymphoniaError::ResetRequired) => break,
            // The file ends, maybe early (an upload cut short, a stream without sizes): keep
            // what was decoded.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // The file turns to garbage: keep what was decoded, if anything.
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        packets += 1;
        match source.decode(&packet, &mut sink) {
            Ok(()) => {}
            Err(Bad::Packet(e)) => {
                bad += 1;
                first_error.get_or_insert(e);
                if bad > TOLERATED_BAD_PACKETS + packets / 10 {
                    return Err(AudioError::Invalid(format!(
                        "the {codec} audio is damaged: {bad} of {packets} packets failed to decode ({})",
                        first_error.unwrap_or_default()
                    )));
                }
            }
            Err(Bad::Fatal(e)) => return Err(e),
        }
    }
    let samples = sink.finish()?;
    if samples.is_empty() {
        if let Some(e) = first_error {
            return Err(AudioError::Invalid(format!(
                "no audio could be decoded from the {codec} file: {e}"
            )));
        }
    }
    Ok(Decoded {
        samples,
        sample_rate: target_rate,
        source_rate: sink.source_rate.or(params.sample_rate).unwrap_or(0),
        source_channels: u16::try_from(sink.source_channels.unwrap_or(channels)).unwrap_or(u16::MAX),
        codec,
    })
}

/// Refuses a WAV `fmt ` chunk with a channel count or sample size no real file has, before
/// symphonia, whose arithmetic on them can overflow, sees it.
fn check_wav_format(bytes: &[u8]) -> Result<()> {
    let mut at = 12;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[..4] == b"fmt " {
            let Some(fmt) = bytes.get(at + 8..at + 8 + 16) else {
                break;
            };
            let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
            let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
            if !(1..=32).contains(&channels) || bits > 64 {
                return Err(AudioError::Invalid(format!(
                    "the wav file says it has {channels} channels of {bits}-bit samples"
                )));
            }
            break;
        }
        // Chunks are padded to an even length.
        at = at.saturating_add(8).saturating_add(len).saturating_add(len & 1);
    }
    Ok(())
}

/// The rate and channel count of a FLAC file that ends right after its metadata blocks (an
/// empty stream), or `None`.
fn flac_without_frames(bytes: &[u8]) -> Option<(u32, u16)> {
    let info = bytes.get(8..8 + 34)?;
    let rate = u32::from_be_bytes([0, info[10], info[11], info[12]]) >> 4;
    let channels = u16::from((info[12] >> 1) & 7) + 1;
    let mut at = 4;
    loop {
        let header = bytes.get(at..at + 4)?;
        let len = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        at += 4 + len;
        if header[0] & 0x80 != 0 {
            return (at == bytes.len()).then_some((rate, channels));
        }
    }
}

/// A short name of the codec of `params`, for messages.
fn codec_name(params: &AudioCodecParameters) -> String {
    use symphonia::core::codecs::audio::well_known::*;
    let known = [
        (CODEC_ID_ALAC, "ALAC"),
        (CODEC_ID_AC3, "AC-3"),
        (CODEC_ID_EAC3, "E-AC-3"),
        (CODEC_ID_WMA, "WMA"),
        (CODEC_ID_SPEEX, "Speex"),
        (CODEC_ID_MP1, "MPEG layer I"),
        (CODEC_ID_MP2, "MPEG layer II"),
        (CODEC_ID_WAVPACK, "WavPack"),
        (CODEC_ID_DCA, "DTS"),
    ];
    known
        .iter()
        .find(|(id, _)| *id == params.codec)
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| format!("codec {}", params.codec))
}

/// Why a packet did not decode.
enum Bad {
    /// This packet is damaged; the next may be fine.
    Packet(String),
    /// The file cannot be decoded (or is too long).
    Fatal(AudioError),
}

enum Source {
    Symphonia {
        decoder: Box<dyn AudioDecoder>,
        planes: Vec<Vec<f32>>,
    },
    Opus(OpusSource),
}

impl Source {
    fn codec_name(&self) -> &'static str {
        match self {
            Source::Symphonia { decoder, .. } => decoder.codec_info().short_name,
            Source::Opus(_) => "opus",
        }
    }

    fn decode(&mut self, packet: &Packet, sink: &mut Sink) -> std::result::Result<(), Bad> {
        match self {
            Source::Symphonia { decoder, planes } => {
                let audio = match decoder.decode(packet) {
                    Ok(audio) => audio,
                    Err(e @ (SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_))) => {
                        return Err(Bad::Packet(e.to_string()))
                    }
                    Err(e) => return Err(Bad::Fatal(AudioError::Invalid(format!("cannot decode: {e}")))),
                };
                let rate = audio.spec().rate();
                let channels = audio.spec().channels().count();
                audio.copy_to_vecs_planar::<f32>(planes);
                sink.source_channels.get_or_insert(channels);
                sink.push_planes(rate, planes).map_err(Bad::Fatal)
            }
            Source::Opus(opus) => opus.decode(packet, sink),
        }
    }
}

/// Opus packets (from Ogg or Matroska) through libopus.
struct OpusSource {
    decoder: opus::Decoder,
    channels: usize,
    /// The rate libopus decodes at: the target rate if libopus has it, else 48 kHz.
    rate: u32,
    /// Interleaved output of one packet (120 ms at most).
    buf: Vec<f32>,
    mono: Vec<f32>,
    /// Samples still to drop at the start: the pre-skip. (Symphonia's Ogg reader leaves it to
    /// the decoder; its Matroska reader ignores CodecDelay, which says the same.)
    skip: usize,
    /// Ogg: packets carry the end trimming of the last granule position, in 48 kHz units.
    packet_trims: bool,
}

impl OpusSource {
    fn new(
        params: &AudioCodecParameters,
        container: Container,
        time_base: Option<symphonia::core::units::TimeBase>,
        target_rate: u32,
    ) -> Result<OpusSource> {
        // OpusHead (RFC 7845, 5.1): "OpusHead", version, channels, pre-skip (LE u16), input
        // rate (LE u32), output gain (LE i16, Q7.8 dB), mapping family.
        let head = params.extra_data.as_deref().unwrap_or_default();
        if head.len() < 19 || &head[..8] != b"OpusHead" {
            return Err(AudioError::Invalid(format!(
                "the Opus track of this {} file has no OpusHead",
                container.name()
            )));
        }
        let channels = usize::from(head[9]);
        // Version 0 is MP4's `dOps` box behind the magic symphonia puts in front: big-endian.
        let (pre_skip, gain) = if head[8] == 0 {
            (
                u16::from_be_bytes([head[10], head[11]]),
                i16::from_be_bytes([head[16], head[17]]),
            )
        } else {
            (
                u16::from_le_bytes([head[10], head[11]]),
                i16::from_le_bytes([head[16], head[17]]),
            )
        };
        let pre_skip = usize::from(pre_skip);
        let family = head[18];
        let layout = match (channels, family) {
            (1, _) => opus::Channels::Mono,
            (2, _) => opus::Channels::Stereo,
            _ => {
                return Err(AudioError::Unsupported(format!(
                    "Opus with {channels} channels (mapping family {family}) is not supported"
                )))
            }
        };
        if family > 1 {
            return Err(AudioError::Unsupported(format!(
                "Opus channel mapping family {family} is not supported"
            )));
        }
        let rate = if OPUS_RATES.contains(&target_rate) {
            target_rate
        } else {
            48_000
        };
        let mut decoder = opus::Decoder::new(rate, layout)
            .map_err(|e| AudioError::Invalid(format!("cannot start the Opus decoder: {e}")))?;
        decoder
            .set_gain(i32::from(gain))
            .map_err(|e| AudioError::Invalid(format!("Opus output gain: {e}")))?;
        // The Ogg reader gives trims in its time base, 1/48000 s for Opus.
        let packet_trims =
            container == Container::Ogg && time_base.is_none_or(|tb| tb.numer.get() == 1 && tb.denom.get() == 48_000);
        Ok(OpusSource {
            decoder,
            channels,
            rate,
            buf: vec![0.0; 5760 * channels],
            mono: Vec::new(),
            skip: pre_skip * rate as usize / 48_000,
            packet_trims,
        })
    }

    fn decode(&mut self, packet: &Packet, sink: &mut Sink) -> std::result::Result<(), Bad> {
        if packet.data.is_empty() {
            return Ok(());
        }
        let frames = self
            .decoder
            .decode_float(&packet.data, &mut self.buf, false)
            .map_err(|e| Bad::Packet(format!("Opus: {e}")))?;
        let scale = |n: u64| (n * u64::from(self.rate) / 48_000) as usize;
        // The pre-skip, unless the container trims the start itself.
        let start = if self.packet_trims && !packet.trim_start.is_zero() {
            self.skip = 0;
            scale(packet.trim_start.get()).min(frames)
        } else {
            let start = self.skip.min(frames);
            self.skip -= start;
            start
        };
        let end = if self.packet_trims {
            frames.saturating_sub(scale(packet.trim_end.get()))
        } else {
            frames
        };
        let end = end.max(start);
        let interleaved = &self.buf[start * self.channels..end * self.channels];
        self.mono.clear();
        if self.channels == 1 {
            self.mono.extend_from_slice(interleaved);
        } else {
            self.mono
                .extend(interleaved.chunks_exact(2).map(|f| (f[0] + f[1]) * 0.5));
        }
        sink.source_channels.get_or_insert(self.channels);
        sink.source_rate.get_or_insert(48_000);
        sink.push_mono(self.rate, &self.mono).map_err(Bad::Fatal)
    }
}

/// Collects mono samples at the target rate.
struct Sink {
    target_rate: u32,
    /// The most samples to return.
    limit: u64,
    max_seconds: u32,
    out: Vec<i16>,
    resampler: Option<StreamResampler>,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    source_rate: Option<u32>,
    source_channels: Option<usize>,
    trim: Trim,
}

/// What a container says to keep of the decoded audio, in its time units, and what is left of it
/// in samples once the rate is known.
#[derive(Default)]
struct Trim {
    /// Samples to drop at the start: (ticks, ticks per second).
    skip: (u64, u32),
    /// Samples to keep after that: (ticks, ticks per second), or all.
    keep: Option<(u64, u32)>,
    /// In samples at the rate of the first audio: (to skip, to keep).
    left: Option<(u64, Option<u64>)>,
}

impl Trim {
    fn from_edit(edit: mp4::Edit) -> Trim {
        Trim {
            skip: (edit.skip, edit.media_timescale),
            keep: edit.duration.map(|d| (d, edit.movie_timescale)),
            left: None,
        }
    }

    /// The part of `samples` (at `rate`) to keep.
    fn apply<'a>(&mut self, rate: u32, samples: &'a [f32]) -> &'a [f32] {
        let at_rate = |(ticks, per_second): (u64, u32)| {
            (u128::from(ticks) * u128::from(rate) / u128::from(per_second.max(1))).min(u128::from(u64::MAX)) as u64
        };
        let (skip, keep) = self
            .left
            .get_or_insert_with(|| (at_rate(self.skip), self.keep.map(at_rate)));
        let dropped = (*skip).min(samples.len() as u64) as usize;
        *skip -= dropped as u64;
        let samples = &samples[dropped..];
        match keep {
            Some(keep) => {
                let kept = (*keep).min(samples.len() as u64) as usize;
                *keep -= kept as u64;
                &samples[..kept]
            }
            None => samples,
        }
    }
}

impl Sink {
    fn new(target_rate: u32, limit: u64, max_seconds: u32) -> Sink {
        Sink {
            target_rate,
            limit,
            max_seconds,
            out: Vec::new(),
            resampler: None,
            mono: Vec::new(),
            resampled: Vec::new(),
            source_rate: None,
            source_channels: None,
            trim: Trim::default(),
        }
    }

    /// Adds planar audio at `rate`, averaging the channels.
    fn push_planes(&mut self, rate: u32, planes: &[Vec<f32>]) -> Result<()> {
        let mut mono = std::mem::take(&mut self.mono);
        mono.clear();
        match planes {
            [] => {}
            [one] => mono.extend_from_slice(one),
            [first, rest @ ..] => {
                mono.extend_from_slice(first);
                for plane in rest {
                    for (m, s) in mono.iter_mut().zip(plane) {
                        *m += s;
                    }
                }
                let scale = 1.0 / planes.len() as f32;
                mono.iter_mut().for_each(|m| *m *= scale);
            }
        }
        let result = self.push_mono(rate, &mono);
        self.mono = mono;
        result
    }

    /// Adds mono audio at `rate` (which may change between calls: a chained or odd stream).
    fn push_mono(&mut self, rate: u32, mono: &[f32]) -> Result<()> {
        let mono = self.trim.apply(rate, mono);
        if mono.is_empty() {
            return Ok(());
        }
        self.source_rate.get_or_insert(rate);
        if self.resampler.as_ref().is_none_or(|r| r.from_rate() != rate) {
            self.flush()?;
            self.resampler = Some(StreamResampler::new(rate, self.target_rate)?);
        }
        let resampler = self.resampler.as_mut().expect("just made");
        self.resampled.clear();
        resampler.push_into(mono, &mut self.resampled)?;
        self.append()
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(mut resampler) = self.resampler.take() {
            self.resampled = resampler.finish()?;
            self.append()?;
        }
        Ok(())
    }

    fn append(&mut self) -> Result<()> {
        if (self.out.len() + self.resampled.len()) as u64 > self.limit {
            return Err(AudioError::Invalid(format!(
                "the audio is longer than the limit of {}",
                duration_text(self.max_seconds)
            )));
        }
        self.out.extend(self.resampled.iter().map(|&s| to_i16(s)));
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<i16>> {
        self.flush()?;
        Ok(std::mem::take(&mut self.out))
    }
}

/// A float sample as 16 bits (the inverse of symphonia's `s / 32768`, so 16-bit input is kept
/// exactly).
fn to_i16(s: f32) -> i16 {
    let s = if s.is_finite() { s } else { 0.0 };
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

fn duration_text(seconds: u32) -> String {
    match seconds {
        s if s % 3600 == 0 && s > 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_containers_by_their_first_bytes() {
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Some(Container::Wav));
        assert_eq!(sniff(b"RIFF\0\0\0\0AVI LIST"), None);
        assert_eq!(sniff(b"fLaC\0\0\0\x22"), Some(Container::Flac));
        assert_eq!(sniff(b"OggS\0\x02"), Some(Container::Ogg));
        assert_eq!(sniff(b"\0\0\0\x20ftypM4A "), Some(Container::Mp4));
        assert_eq!(
            sniff(b"\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01\x42\x82\x84webm"),
            Some(Container::Matroska { webm: true })
        );
        assert_eq!(
            sniff(&[0xFF, 0xFB, 0x90, 0x64]),
            Some(Container::Mp3),
            "MPEG-1 layer III"
        );
        assert_eq!(
            sniff(&[0xFF, 0xF3, 0x54, 0xC4]),
            Some(Container::Mp3),
            "MPEG-2 layer III"
        );
        assert_eq!(sniff(&[0xFF, 0xF1, 0x50, 0x80]), Some(Container::Adts));
        assert_eq!(sniff(&[0xFF, 0xFD, 0x90, 0x64]), None, "layer II");
        assert_eq!(sniff(b"ID3\x04\0\0\0\0\0\x02\0\0fLaC"), Some(Container::Flac));
        assert_eq!(sniff(b"ID3\x04\0\0\0\0\0\x00\xFF\xFB\x90\x64"), Some(Container::Mp3));
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(sniff(b""), None);
        let tag = b"ID3\x04\0\0\0\0\0\0";
        assert_eq!(sniff(&[&tag.repeat(2)[..], b"fLaC"].concat()), Some(Container::Flac));
        assert_eq!(
            sniff(&tag.repeat(MAX_ID3_TAGS)),
            Some(Container::Mp3),
            "tags, then nothing"
        );
        assert_eq!(sniff(&tag.repeat(MAX_ID3_TAGS + 1)), None, "more tags than a file has");
    }

    #[test]
    fn messages_say_what_the_file_is() {
        let m = not_audio(b"\x89PNG\r\n", Some("a.png"), Some("image/png"));
        assert_eq!(
            m,
            "the file is a PNG image, not audio this server decodes (named \"a.png\", sent as \"image/png\")"
        );
        assert_eq!(not_audio(b"", None, None), "the file is empty");
    }

    #[test]
    fn float_to_16_bits_is_exact_for_16_bit_input() {
        for s in [i16::MIN, -1, 0, 1, 12345, i16::MAX] {
            assert_eq!(to_i16(f32::from(s) / 32768.0), s);
        }
        assert_eq!(to_i16(2.0), i16::MAX);
        assert_eq!(to_i16(f32::NAN), 0);
    }
}
