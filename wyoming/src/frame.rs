//! Wyoming's wire format, exactly as the `wyoming` Python package (1.10)
//! reads and writes it (`wyoming/event.py`), and the one list of the
//! events Hearth reads ([`Inbound`]) and writes ([`Outbound`]).
//!
//! A frame is a JSON object on one line (`type`; optional `data`,
//! `data_length`, `payload_length`, `version`), then `data_length` bytes of
//! JSON merged over the header's `data`, then `payload_length` bytes of
//! binary payload (PCM audio). Both ways of carrying data are read: inline
//! in the header and as a separate block. Writing follows the package: the
//! data always as a separate block (omitted when empty), the payload only
//! when non-empty, and the package's version in `version`.
//!
//! Reading is bounded: the header line by [`MAX_HEADER_BYTES`] (and
//! `max_frame_bytes`), the data block and the payload by `max_frame_bytes`;
//! anything malformed is a [`WyomingError`] the connection answers with an
//! `error` event before closing.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use crate::error::WyomingError;

/// The `version` Hearth writes in every header: the `wyoming` package
/// release whose events and framing this module mirrors (the one the tests
/// use as the client). Readers ignore it, as the package does.
pub const PROTOCOL_VERSION: &str = "1.10.2";

/// The longest header line read (64 KiB), whatever `max_frame_bytes`
/// allows: the package's asyncio reader stops at the same length
/// (`StreamReader`'s default limit), so no Wyoming peer writes longer ones —
/// it sends data as a separate block instead.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// One frame as read: its type, its data (inline and block merged) and its
/// payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The event type, e.g. `audio-chunk`.
    pub kind: String,
    /// The event's data.
    pub data: Map<String, Value>,
    /// The binary payload, when `payload_length` was above zero.
    pub payload: Option<Vec<u8>>,
}

/// Reads frames from a buffered stream, within `max_frame_bytes`.
pub struct FrameReader<R> {
    inner: R,
    max_frame_bytes: usize,
    line: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> FrameReader<R> {
    /// A reader that refuses frames with a part larger than
    /// `max_frame_bytes`.
    pub fn new(inner: R, max_frame_bytes: usize) -> Self {
        Self {
            inner,
            max_frame_bytes,
            line: Vec::new(),
        }
    }

    /// The stream, for what is left after the last frame.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next frame; `Ok(None)` when the peer is gone (the stream ended or
    /// broke, between frames or inside one: there is nobody to answer).
    pub async fn next(&mut self) -> Result<Option<Frame>, WyomingError> {
        self.line.clear();
        let header_limit = MAX_HEADER_BYTES.min(self.max_frame_bytes);
        let read = (&mut self.inner)
            .take(header_limit as u64 + 1)
            .read_until(b'\n', &mut self.line)
            .await;
        match read {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("wyoming: reading a header failed: {e}");
                return Ok(None);
            }
        }
        if self.line.last() != Some(&b'\n') {
            if self.line.len() > header_limit {
                return Err(WyomingError::TooLarge(format!(
                    "a frame's header line is longer than {header_limit} bytes; send data as a separate block (data_length)"
                )));
            }
            // The stream ended inside a header line.
            return Ok(None);
        }
        let header = parse_header(&self.line)?;
        let mut data = header.data;
        if header.data_length > 0 {
            let block = self.read_exactly(header.data_length, "data_length").await?;
            let Some(block) = block else { return Ok(None) };
            match serde_json::from_slice::<Value>(&block) {
                Ok(Value::Object(more)) => data.extend(more),
                Ok(_) => return Err(malformed("its data block is not a JSON object")),
                Err(e) => return Err(malformed(&format!("its data block is not JSON ({e})"))),
            }
        }
        let payload = if header.payload_length > 0 {
            match self.read_exactly(header.payload_length, "payload_length").await? {
                Some(payload) => Some(payload),
                None => return Ok(None),
            }
        } else {
            None
        };
        Ok(Some(Frame {
            kind: header.kind,
            data,
            payload,
        }))
    }

    /// Reads `length` bytes announced by `field`; `Ok(None)` when the
    /// stream ends first.
    async fn read_exactly(&mut self, length: u64, field: &str) -> Result<Option<Vec<u8>>, WyomingError> {
        if length > self.max_frame_bytes as u64 {
            return Err(WyomingError::TooLarge(format!(
                "a frame's {field} of {length} bytes is over the limit of {} bytes ([wyoming] max_frame_bytes); \
                 send the audio in smaller chunks",
                self.max_frame_bytes
            )));
        }
        let mut buffer = vec![0; length as usize];
        match self.inner.read_exact(&mut buffer).await {
            Ok(_) => Ok(Some(buffer)),
            Err(e) => {
                tracing::debug!("wyoming: the stream ended inside a frame: {e}");
                Ok(None)
            }
        }
    }
}

fn malformed(what: &str) -> WyomingError {
    WyomingError::BadRequest(format!(
        "malformed Wyoming frame: {what}; a frame is a JSON header line with `type`, then `data_length` bytes of JSON, then `payload_length` bytes"
    ))
}

/// A header line, parsed.
struct ParsedHeader {
    kind: String,
    data: Map<String, Value>,
    data_length: u64,
    payload_length: u64,
}

fn parse_header(line: &[u8]) -> Result<ParsedHeader, WyomingError> {
    let value: Value = serde_json::from_slice(line).map_err(|e| malformed(&format!("its header is not JSON ({e})")))?;
    let Value::Object(mut header) = value else {
        return Err(malformed("its header is not a JSON object"));
    };
    let kind = match header.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(malformed("`type` is not a string")),
        None => return Err(malformed("its header has no `type`")),
    };
    let data = match header.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(data)) => data,
        Some(_) => return Err(malformed("`data` is not a JSON object")),
    };
    Ok(ParsedHeader {
        kind,
        data,
        data_length: length(&header, "data_length")?,
        payload_length: length(&header, "payload_length")?,
    })
}

/// A length field: absent, null or not above zero means none (the package
/// reads only lengths above zero).
fn length(header: &Map<String, Value>, field: &str) -> Result<u64, WyomingError> {
    match header.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(n), _) => Ok(n),
            (None, Some(_)) => Ok(0),
            _ => Err(malformed(&format!("`{field}` is not a whole number"))),
        },
        Some(_) => Err(malformed(&format!("`{field}` is not a number"))),
    }
}

// ---------------------------------------------------------------------------
// Events read.

/// An audio format as Wyoming gives it: `rate` in Hz, `width` in bytes per
/// sample, `channels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioFormat {
    /// Samples per second.
    pub rate: u32,
    /// Bytes per sample: 1 (unsigned 8-bit), 2, 3 or 4 (signed,
    /// little-endian).
    pub width: u32,
    /// Interleaved channels.
    pub channels: u32,
}

/// A voice a synthesis asks for (`voice` in `synthesize`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Voice {
    /// A voice name from `info`.
    #[serde(default)]
    pub name: Option<String>,
    /// A language from `info`.
    #[serde(default)]
    pub language: Option<String>,
    /// A speaker of the voice.
    #[serde(default)]
    pub speaker: Option<String>,
}

/// The events Hearth reads. Others (wake words, intents, `select-program`,
/// ...) are [`Inbound::Other`] and dropped, as Wyoming servers drop events
/// they do not handle.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// `describe`: asks for `info`.
    Describe,
    /// `ping`: asks for `pong` with the same text.
    Ping {
        /// Copied into the pong.
        text: Option<String>,
    },
    /// `transcribe`: a transcription of the audio that follows.
    Transcribe {
        /// The model asked for.
        name: Option<String>,
        /// The language asked for.
        language: Option<String>,
    },
    /// `audio-start`.
    AudioStart(AudioFormat),
    /// `audio-chunk` with its PCM payload.
    AudioChunk(AudioFormat, Vec<u8>),
    /// `audio-stop`.
    AudioStop,
    /// `synthesize`: speak a whole text.
    Synthesize {
        /// What to say.
        text: String,
        /// The voice asked for.
        voice: Option<Voice>,
    },
    /// `synthesize-start`: a text will stream in.
    SynthesizeStart {
        /// The voice asked for.
        voice: Option<Voice>,
    },
    /// `synthesize-chunk`: the next piece of the text.
    SynthesizeChunk {
        /// The piece.
        text: String,
    },
    /// `synthesize-stop`: the text is complete.
    SynthesizeStop,
    /// Any other type.
    Other(String),
}

#[derive(Deserialize)]
struct PingData {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct TranscribeData {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    language: Option<String>,
}

#[derive(Deserialize)]
struct SynthesizeData {
    text: String,
    #[serde(default)]
    voice: Option<Voice>,
}

#[derive(Deserialize)]
struct StartData {
    #[serde(default)]
    voice: Option<Voice>,
}

#[derive(Deserialize)]
struct ChunkData {
    text: String,
}

impl Inbound {
    /// The event a frame carries, or why its data does not fit its type.
    pub fn parse(frame: Frame) -> Result<Self, WyomingError> {
        fn data<T: serde::de::DeserializeOwned>(kind: &str, data: Map<String, Value>) -> Result<T, WyomingError> {
            serde_json::from_value(Value::Object(data)).map_err(|e| {
                WyomingError::BadRequest(format!(
                    "malformed `{kind}` event: {e}; see the Wyoming event reference"
                ))
            })
        }
        let Frame {
            kind,
            data: map,
            payload,
        } = frame;
        Ok(match kind.as_str() {
            "describe" => Self::Describe,
            "ping" => Self::Ping {
                text: data::<PingData>(&kind, map)?.text,
            },
            "transcribe" => {
                let d: TranscribeData = data(&kind, map)?;
                Self::Transcribe {
                    name: d.name,
                    language: d.language,
                }
            }
            "audio-start" => Self::AudioStart(data(&kind, map)?),
            "audio-chunk" => Self::AudioChunk(data(&kind, map)?, payload.unwrap_or_default()),
            "audio-stop" => Self::AudioStop,
            "synthesize" => {
                let d: SynthesizeData = data(&kind, map)?;
                Self::Synthesize {
                    text: d.text,
                    voice: d.voice,
                }
            }
            "synthesize-start" => Self::SynthesizeStart {
                voice: data::<StartData>(&kind, map)?.voice,
            },
            "synthesize-chunk" => Self::SynthesizeChunk {
                text: data::<ChunkData>(&kind, map)?.text,
            },
            "synthesize-stop" => Self::SynthesizeStop,
            _ => Self::Other(kind),
        })
    }
}

// ---------------------------------------------------------------------------
// Events written.

/// The events Hearth writes, with the data fields the package's classes
/// write (`wyoming/audio.py`, `asr.py`, `tts.py`, `ping.py`, `error.py`,
/// `info.py`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "kebab-case")]
pub enum Outbound {
    /// The answer to `describe`.
    Info(super::info::Info),
    /// The answer to `ping`.
    Pong {
        /// The ping's text.
        text: Option<String>,
    },
    /// Audio follows in this format.
    AudioStart {
        /// Samples per second.
        rate: u32,
        /// Bytes per sample.
        width: u32,
        /// Channels.
        channels: u32,
        /// Not used by Hearth (always null, as wyoming-piper writes it).
        timestamp: Option<u64>,
    },
    /// A piece of audio; the PCM is the frame's payload.
    AudioChunk {
        /// Samples per second.
        rate: u32,
        /// Bytes per sample.
        width: u32,
        /// Channels.
        channels: u32,
        /// Not used by Hearth (always null, as wyoming-piper writes it).
        timestamp: Option<u64>,
        /// The payload: PCM, little-endian.
        #[serde(skip)]
        audio: Bytes,
    },
    /// The audio is complete.
    AudioStop {
        /// Not used by Hearth (always null).
        timestamp: Option<u64>,
    },
    /// The transcription of the audio.
    Transcript {
        /// What was said.
        text: String,
        /// Its language, when the engine said.
        #[serde(skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
    /// A streamed transcript starts.
    TranscriptStart {
        /// Its language, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
    /// The next piece of a streamed transcript.
    TranscriptChunk {
        /// The piece; the pieces joined are the transcript.
        text: String,
    },
    /// A streamed transcript ended.
    TranscriptStop,
    /// A streamed synthesis ended: all its audio was sent.
    SynthesizeStopped,
    /// Something failed; Hearth closes the connection after it.
    Error {
        /// What failed and what to do, in words.
        text: String,
        /// Hearth's error code (as in its HTTP API): `not_ready`,
        /// `bad_request`, `too_large`, `engine_error`, `busy`, `timeout`.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
}

/// The header line's fields, in the package's order.
#[derive(Serialize)]
struct WrittenHeader<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_length: Option<usize>,
}

impl Outbound {
    /// An `error` event from a [`WyomingError`], coded as the HTTP API codes it.
    pub fn error(error: &WyomingError) -> Self {
        Self::Error {
            text: error.to_string(),
            code: Some(error.code().to_owned()),
        }
    }

    /// An `error` event with its own code.
    pub fn error_coded(code: &str, text: impl Into<String>) -> Self {
        Self::Error {
            text: text.into(),
            code: Some(code.to_owned()),
        }
    }

    /// The event as a frame: header line, data block, payload.
    pub fn encode(&self) -> Bytes {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("error");
        let data = match value.get("data") {
            Some(Value::Object(map)) if !map.is_empty() => serde_json::to_vec(map).ok(),
            _ => None,
        };
        let payload = match self {
            Self::AudioChunk { audio, .. } if !audio.is_empty() => Some(audio),
            _ => None,
        };
        let header = WrittenHeader {
            kind,
            version: PROTOCOL_VERSION,
            data_length: data.as_ref().map(Vec::len),
            payload_length: payload.map(Bytes::len),
        };
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let size = header.len() + 1 + data.as_ref().map_or(0, Vec::len) + payload.map_or(0, Bytes::len);
        let mut frame = BytesMut::with_capacity(size);
        frame.put_slice(&header);
        frame.put_u8(b'\n');
        if let Some(data) = &data {
            frame.put_slice(data);
        }
        if let Some(payload) = payload {
            frame.put_slice(payload);
        }
        frame.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(bytes: &[u8], max: usize) -> Vec<Result<Option<Frame>, String>> {
        let mut reader = FrameReader::new(tokio::io::BufReader::new(bytes), max);
        let mut out = Vec::new();
        loop {
            let next = reader.next().await.map_err(|e| e.to_string());
            let end = !matches!(next, Ok(Some(_)));
            out.push(next);
            if end {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn data_inline_and_as_a_block_are_merged() {
        let block = "{\"text\": \"block\"}";
        let input = format!(
            "{{\"type\":\"synthesize\",\"data\":{{\"text\":\"inline\",\"keep\":1}},\"data_length\":{}}}\n{block}",
            block.len()
        );
        let frames = read_all(input.as_bytes(), 1 << 20).await;
        let frame = frames[0].clone().unwrap().unwrap();
        assert_eq!(frame.kind, "synthesize");
        assert_eq!(frame.data["text"], "block");
        assert_eq!(frame.data["keep"], 1);
        assert_eq!(frames[1], Ok(None));
    }

    #[tokio::test]
    async fn payloads_are_read_exactly() {
        let input = b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":16000,\"width\":2,\"channels\":1},\"payload_length\":4}\n\x01\x02\x03\x04{\"type\":\"audio-stop\"}\n";
        let frames = read_all(input, 1 << 20).await;
        let chunk = Inbound::parse(frames[0].clone().unwrap().unwrap()).unwrap();
        assert_eq!(
            chunk,
            Inbound::AudioChunk(
                AudioFormat {
                    rate: 16000,
                    width: 2,
                    channels: 1
                },
                vec![1, 2, 3, 4]
            )
        );
        let stop = Inbound::parse(frames[1].clone().unwrap().unwrap()).unwrap();
        assert_eq!(stop, Inbound::AudioStop);
    }

    #[tokio::test]
    async fn garbage_and_oversized_frames_are_errors_not_panics() {
        for (input, expect) in [
            (&b"hello there\n"[..], "not JSON"),
            (b"[1,2]\n", "not a JSON object"),
            (b"{\"data\":{}}\n", "no `type`"),
            (b"{\"type\":3}\n", "`type` is not a string"),
            (b"{\"type\":\"x\",\"data\":5}\n", "`data` is not a JSON object"),
            (
                b"{\"type\":\"x\",\"data_length\":\"5\"}\n",
                "`data_length` is not a number",
            ),
            (
                b"{\"type\":\"x\",\"payload_length\":1.5}\n",
                "`payload_length` is not a whole number",
            ),
            (
                b"{\"type\":\"x\",\"payload_length\":99999999}\n",
                "over the limit of 4096 bytes",
            ),
            (b"{\"type\":\"x\",\"data_length\":3}\n[1]", "not a JSON object"),
            (b"{\"type\":\"x\",\"data_length\":3}\n\xff\xfe\xfd", "not JSON"),
        ] {
            let frames = read_all(input, 4096).await;
            let error = frames.last().unwrap().clone().unwrap_err();
            assert!(error.contains(expect), "{input:?}: {error}");
        }
        let long = vec![b'x'; 5000];
        let error = read_all(&long, 4096).await.pop().unwrap().unwrap_err();
        assert!(error.contains("longer than 4096 bytes"), "{error}");
    }

    #[tokio::test]
    async fn a_stream_that_ends_inside_a_frame_is_a_departure() {
        for input in [
            &b"{\"type\":\"ping\""[..],
            b"{\"type\":\"audio-chunk\",\"payload_length\":10}\n\x01",
            b"{\"type\":\"synthesize\",\"data_length\":10}\n{",
        ] {
            assert_eq!(read_all(input, 4096).await, vec![Ok(None)], "{input:?}");
        }
    }

    #[test]
    fn events_that_miss_fields_are_refused_by_name() {
        let frame = |kind: &str, data: Value| Frame {
            kind: kind.into(),
            data: data.as_object().cloned().unwrap_or_default(),
            payload: None,
        };
        let error = Inbound::parse(frame("synthesize", serde_json::json!({}))).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("malformed `synthesize` event: missing field `text`"),
            "{error}"
        );
        let error = Inbound::parse(frame("audio-chunk", serde_json::json!({"rate": 16000}))).unwrap_err();
        assert!(error.to_string().contains("missing field `width`"), "{error}");
        assert_eq!(
            Inbound::parse(frame("select-program", serde_json::json!({"name": "x"}))).unwrap(),
            Inbound::Other("select-program".into())
        );
        assert_eq!(
            Inbound::parse(frame("synthesize", serde_json::json!({"text": "Hi.", "voice": null}))).unwrap(),
            Inbound::Synthesize {
                text: "Hi.".into(),
                voice: None
            }
        );
    }

    #[test]
    fn frames_are_written_as_the_package_writes_them() {
        let chunk = Outbound::AudioChunk {
            rate: 22050,
            width: 2,
            channels: 1,
            timestamp: None,
            audio: Bytes::from_static(&[1, 0, 2, 0]),
        }
        .encode();
        let text = String::from_utf8_lossy(&chunk);
        let (header, rest) = text.split_once('\n').unwrap();
        let header: Value = serde_json::from_str(header).unwrap();
        assert_eq!(header["type"], "audio-chunk");
        assert_eq!(header["version"], PROTOCOL_VERSION);
        assert_eq!(header["payload_length"], 4);
        let data_length = header["data_length"].as_u64().unwrap() as usize;
        let data: Value = serde_json::from_str(&rest[..data_length]).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"rate": 22050, "width": 2, "channels": 1, "timestamp": null})
        );
        assert!(chunk.ends_with(&[1, 0, 2, 0]));

        // Events without data have no data block.
        let stopped = Outbound::SynthesizeStopped.encode();
        assert_eq!(
            &stopped[..],
            format!("{{\"type\":\"synthesize-stopped\",\"version\":\"{PROTOCOL_VERSION}\"}}\n").as_bytes()
        );
    }

    #[tokio::test]
    async fn what_is_written_reads_back() {
        let events = [
            Outbound::Pong {
                text: Some("hi".into()),
            },
            Outbound::Transcript {
                text: "ask not".into(),
                language: Some("en".into()),
            },
            Outbound::error_coded("busy", "too many"),
        ];
        let bytes: Vec<u8> = events.iter().flat_map(|e| e.encode().to_vec()).collect();
        let frames = read_all(&bytes, 4096).await;
        assert_eq!(frames.len(), 4);
        let first = frames[0].clone().unwrap().unwrap();
        assert_eq!((first.kind.as_str(), &first.data["text"]), ("pong", &Value::from("hi")));
        let second = frames[1].clone().unwrap().unwrap();
        assert_eq!(second.data["language"], "en");
        let third = frames[2].clone().unwrap().unwrap();
        assert_eq!(
            (third.kind.as_str(), &third.data["code"]),
            ("error", &Value::from("busy"))
        );
    }
}
