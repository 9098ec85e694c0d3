//! The messages between the host and a worker process, and their framing.
//!
//! Frames are a little-endian `u32` length followed by that many bytes of
//! postcard (serde) encoding. The host speaks first with [`ToWorker::Hello`]
//! carrying [`VERSION`]; the worker answers [`FromWorker::Hello`] with the
//! same version and what opening the library gave. Every call carries an id
//! chosen by the host; everything the worker sends about a call carries its
//! id, so `health` can pass a running `synthesize`. Audio chunks and chat
//! tokens wait for the host's [`ToWorker::Flow`] answer, so a sink's
//! `Flow::Stop` reaches the plugin on the very chunk it answers.

use std::{
    io::{Read, Write},
    path::PathBuf,
};

use hearth_plugin_api::{
    client::{Audio, ChatOptions, Message, Speech, Transcription, Warmed},
    Capabilities, ChatOutcome, Description, SpeechOptions, VadEvent,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The protocol version; both sides must agree (they are the same binary
/// unless someone replaced it mid-run).
pub const VERSION: u32 = 2;

/// The largest frame either side accepts: 256 MiB (an utterance of several
/// minutes as f32 fits many times).
pub const MAX_FRAME: usize = 256 << 20;

/// Host → worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    /// The first message.
    Hello {
        /// [`VERSION`].
        version: u32,
    },
    /// Start a call.
    Call {
        /// Chosen by the host, unique per worker.
        id: u64,
        /// What to do.
        call: Call,
    },
    /// The answer to a [`FromWorker::Speech`] or [`FromWorker::Token`].
    Flow {
        /// The call.
        id: u64,
        /// False: the sink said stop.
        go_on: bool,
    },
    /// The host gave up on a `load` or `warmup`: the plugin's
    /// `is_cancelled` answers true from now on.
    Cancel {
        /// The call.
        id: u64,
    },
}

/// A call of the engine contract.
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    /// Validate a `config` table.
    CheckConfig {
        /// JSON text.
        config_json: String,
    },
    /// Make the worker's engine (one per worker).
    NewEngine,
    /// `describe`.
    Describe,
    /// `load`.
    Load {
        /// JSON text.
        config_json: String,
        /// Where relative paths start.
        base_dir: PathBuf,
    },
    /// `warmup`.
    Warmup,
    /// `health`.
    Health,
    /// `shutdown`.
    Shutdown,
    /// `capabilities`.
    Capabilities,
    /// TTS.
    Synthesize {
        /// The text.
        text: String,
        /// Per-request options.
        options: SpeechOptions,
    },
    /// STT.
    Transcribe {
        /// The audio.
        audio: Audio,
    },
    /// Chat.
    Chat {
        /// The conversation.
        messages: Vec<Message>,
        /// Per-request options.
        options: ChatOptions,
    },
    /// VAD: the next audio of a stream.
    VadPush {
        /// The stream's number.
        stream: u64,
        /// 16 kHz mono.
        audio: Audio,
    },
    /// VAD: forget a stream.
    VadClose {
        /// The stream's number.
        stream: u64,
    },
}

impl Call {
    /// The contract's name for it, for messages (`died during synthesize`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::CheckConfig { .. } => "check_config",
            Self::NewEngine => "new_engine",
            Self::Describe => "describe",
            Self::Load { .. } => "load",
            Self::Warmup => "warmup",
            Self::Health => "health",
            Self::Shutdown => "shutdown",
            Self::Capabilities => "capabilities",
            Self::Synthesize { .. } => "synthesize",
            Self::Transcribe { .. } => "transcribe",
            Self::Chat { .. } => "chat",
            Self::VadPush { .. } => "vad_push",
            Self::VadClose { .. } => "vad_close",
        }
    }
}

/// What the worker's library said about itself, or why it was refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Opened {
    /// The plugin's name.
    pub name: String,
    /// Its kind, as the ABI's integer.
    pub kind: u8,
    /// Its version.
    pub version: String,
    /// One line about it.
    pub description: String,
    /// The ABI version it was built for.
    pub abi: String,
}

/// Worker → host.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// The answer to [`ToWorker::Hello`].
    Hello {
        /// [`VERSION`].
        version: u32,
        /// The library, or why it cannot be used.
        opened: Result<Opened, String>,
    },
    /// Sub-progress of a `load`.
    Progress {
        /// The call.
        id: u64,
        /// 0.0–1.0.
        fraction: f32,
        /// For people.
        message: String,
    },
    /// A log line from the plugin.
    Log {
        /// The call.
        id: u64,
        /// 1 error … 5 trace.
        level: u8,
        /// The line.
        message: String,
    },
    /// One chunk of speech; wait for [`ToWorker::Flow`].
    Speech {
        /// The call.
        id: u64,
        /// The chunk.
        speech: Speech,
    },
    /// One piece of a chat reply; wait for [`ToWorker::Flow`].
    Token {
        /// The call.
        id: u64,
        /// The text.
        text: String,
    },
    /// The call ended.
    Done {
        /// The call.
        id: u64,
        /// Its result.
        result: Result<Answer, String>,
    },
}

/// What a call returns.
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    /// Nothing (check_config, new_engine, load, health, shutdown,
    /// synthesize).
    Unit,
    /// `describe`.
    Description(Description),
    /// `warmup`.
    Warmed(Warmed),
    /// `transcribe`.
    Transcription(Transcription),
    /// `chat`.
    Chat(ChatOutcome),
    /// `capabilities`.
    Capabilities(Capabilities),
    /// `vad_push`.
    VadEvents(Vec<VadEvent>),
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(out: &mut impl Write, message: &T) -> std::io::Result<()> {
    let bytes = postcard::to_stdvec(message).map_err(|e| std::io::Error::other(e.to_string()))?;
    if bytes.len() > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "a message of {} bytes is larger than the protocol allows ({MAX_FRAME})",
            bytes.len()
        )));
    }
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    frame.extend_from_slice(&bytes);
    out.write_all(&frame)?;
    out.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of the stream.
pub fn read_frame<T: DeserializeOwned>(input: &mut impl Read) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "a frame of {len} bytes is larger than the protocol allows"
        )));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    postcard::from_bytes(&bytes)
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("unreadable message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_plugin_api::client::Samples;

    #[test]
    fn frames_round_trip() {
        let mut buffer = Vec::new();
        let call = ToWorker::Call {
            id: 7,
            call: Call::Transcribe {
                audio: Audio {
                    sample_rate: 16_000,
                    channels: 1,
                    samples: Samples::I16(vec![1, -2, 3]),
                },
            },
        };
        write_frame(&mut buffer, &call).unwrap();
        write_frame(&mut buffer, &ToWorker::Flow { id: 7, go_on: false }).unwrap();
        let mut input = buffer.as_slice();
        match read_frame::<ToWorker>(&mut input).unwrap() {
            Some(ToWorker::Call {
                id: 7,
                call: Call::Transcribe { audio },
            }) => assert_eq!(audio.samples, Samples::I16(vec![1, -2, 3])),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_frame::<ToWorker>(&mut input).unwrap(),
            Some(ToWorker::Flow { id: 7, go_on: false })
        ));
        assert!(read_frame::<ToWorker>(&mut input).unwrap().is_none());
    }

    #[test]
    fn oversized_and_garbled_frames_are_errors() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(read_frame::<ToWorker>(&mut input).is_err());
        let mut input: &[u8] = &[2, 0, 0, 0, 0xff, 0xff];
        assert!(read_frame::<ToWorker>(&mut input).is_err());
    }
}
