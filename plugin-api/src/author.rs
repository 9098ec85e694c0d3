//! The plain-Rust side of the contract: the traits a plugin author
//! implements, and the small wrappers they receive instead of FFI types.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use abi_stable::std_types::RStr;
use serde::de::DeserializeOwned;

use crate::abi::{
    AudioChunk, AudioSinkMut, Capabilities, ChatMessage, ChatOptions, Flow, HostRef, PcmInput, SpeechOptions,
    TokenSinkMut, VadEvent,
};

/// The error every engine method returns: a message for people, shown
/// verbatim in `/api/ready` and in the host's log. Say what failed and what
/// to do, e.g. `voice file models/x.onnx not found: run scripts/fetch-models.sh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError(pub String);

impl PluginError {
    /// Builds an error from anything printable.
    pub fn new(message: impl fmt::Display) -> Self {
        Self(message.to_string())
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PluginError {}

impl From<String> for PluginError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

/// The result type of every engine method.
pub type PluginResult<T> = Result<T, PluginError>;

/// What an engine says about itself (the Rust side of [`crate::EngineInfo`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Description {
    /// Engine name, e.g. `piper`.
    pub name: String,
    /// Version of the engine library it wraps.
    pub engine_version: String,
    /// The model in use, once known.
    pub model: Option<String>,
}

/// Handed to `load` and `warmup`: progress, cancellation, logging and the
/// directory relative paths are resolved against.
pub struct Context<'a> {
    host: HostRef<'a>,
    base_dir: PathBuf,
}

impl<'a> Context<'a> {
    /// Wraps the host's context object.
    pub fn new(host: HostRef<'a>, base_dir: &Path) -> Self {
        Self {
            host,
            base_dir: base_dir.to_path_buf(),
        }
    }

    /// Reports sub-progress of this step: `fraction` in 0.0–1.0.
    pub fn progress(&self, fraction: f32, message: &str) {
        self.host.progress(fraction.clamp(0.0, 1.0), RStr::from_str(message));
    }

    /// True once the host gave up on this step; return early when it is.
    pub fn is_cancelled(&self) -> bool {
        self.host.is_cancelled()
    }

    /// Fails with a standard message when the host gave up on this step.
    pub fn check_cancelled(&self) -> PluginResult<()> {
        if self.is_cancelled() {
            Err(PluginError::from("cancelled by the host"))
        } else {
            Ok(())
        }
    }

    /// Logs at info level in the host's log.
    pub fn info(&self, message: &str) {
        self.host.log(3, RStr::from_str(message));
    }

    /// Logs at warn level in the host's log.
    pub fn warn(&self, message: &str) {
        self.host.log(2, RStr::from_str(message));
    }

    /// The directory that holds `plugins.toml`.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Resolves a path from the config: absolute paths stay, `~/` is the
    /// home directory, anything else is relative to `plugins.toml`.
    pub fn resolve_path(&self, path: impl AsRef<Path>) -> PathBuf {
        resolve_path(&self.base_dir, path.as_ref())
    }
}

/// Resolves `path` as [`Context::resolve_path`] does.
pub fn resolve_path(base_dir: &Path, path: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// The Warmable contract, in plain Rust.
///
/// The engine is shared between threads once loaded, so every method takes
/// `&self`; keep loaded state in a `OnceLock` or behind a `Mutex`.
pub trait Warmable: Send + Sync + 'static {
    /// The service's `config` table from `plugins.toml`. Use
    /// `#[serde(deny_unknown_fields)]` so typos are reported by `hearth check`.
    type Config: DeserializeOwned;

    /// Name, engine version and (after load) the model.
    fn describe(&self) -> Description;

    /// Loads the model; report progress and honour cancellation via `ctx`.
    fn load(&self, config: Self::Config, ctx: &Context<'_>) -> PluginResult<()>;

    /// Runs the model once; returns what was warmed, for people.
    fn warmup(&self, ctx: &Context<'_>) -> PluginResult<String>;

    /// A cheap check, callable at any time.
    fn health(&self) -> PluginResult<()> {
        Ok(())
    }

    /// Releases what `load` took. Called exactly once, when the host is done
    /// with this instance: after its last request, and also when `load` or
    /// `warmup` failed (release what a failed load left behind). Not called
    /// when a `load` or `warmup` outlived its timeout: the host abandons the
    /// instance then.
    fn shutdown(&self) {}
}

/// Where a TTS engine sends its audio.
pub struct AudioOut<'a> {
    sink: AudioSinkMut<'a>,
}

impl<'a> AudioOut<'a> {
    /// Wraps the host's sink.
    pub fn new(sink: AudioSinkMut<'a>) -> Self {
        Self { sink }
    }

    /// Sends one sentence of PCM16 mono audio; `Flow::Stop` means stop now.
    pub fn send(&mut self, sample_rate: u32, samples: Vec<i16>, text: &str) -> Flow {
        self.sink.chunk(AudioChunk {
            sample_rate,
            samples: samples.into(),
            text: text.into(),
        })
    }
}

/// Where a chat engine sends its reply.
pub struct TokenOut<'a> {
    sink: TokenSinkMut<'a>,
}

impl<'a> TokenOut<'a> {
    /// Wraps the host's sink.
    pub fn new(sink: TokenSinkMut<'a>) -> Self {
        Self { sink }
    }

    /// Sends one piece of the reply; `Flow::Stop` means stop now.
    pub fn send(&mut self, text: &str) -> Flow {
        self.sink.token(RStr::from_str(text))
    }
}

/// A text-to-speech engine.
pub trait TtsEngine: Warmable {
    /// Speaks `text`, one chunk per sentence, stopping when `out` says so.
    fn synthesize(&self, text: &str, out: &mut AudioOut<'_>) -> PluginResult<()>;

    /// What the engine does beyond `synthesize`: return
    /// [`Capabilities::SPEED`] when [`TtsEngine::synthesize_with`] honours
    /// the speed. Default: nothing.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// `synthesize` with per-request options. The host sends a speed other
    /// than 1.0 only to an engine whose `capabilities` say
    /// [`Capabilities::SPEED`]. Default: `synthesize`.
    fn synthesize_with(&self, text: &str, options: &SpeechOptions, out: &mut AudioOut<'_>) -> PluginResult<()> {
        let _ = options;
        self.synthesize(text, out)
    }
}

/// A speech-to-text engine.
pub trait SttEngine: Warmable {
    /// Turns audio into text (with segments).
    fn transcribe(&self, audio: PcmInput<'_>) -> PluginResult<crate::Transcript>;
}

/// What a chat engine returns at the end of a reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatOutcome {
    /// Number of pieces sent.
    pub tokens: u32,
    /// `stop`, `length`, `cancelled`, ...
    pub finish_reason: String,
}

/// A chat engine.
pub trait ChatEngine: Warmable {
    /// Streams the reply to `messages` into `out`.
    fn chat(&self, messages: &[ChatMessage], out: &mut TokenOut<'_>) -> PluginResult<ChatOutcome>;

    /// Which [`ChatOptions`] [`ChatEngine::chat_with`] honours
    /// ([`Capabilities::MAX_TOKENS`], [`Capabilities::TEMPERATURE`],
    /// [`Capabilities::STOP`]). Default: none.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// `chat` with per-request options; options the engine does not
    /// declare in `capabilities` may be ignored. Default: `chat`.
    fn chat_with(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
        out: &mut TokenOut<'_>,
    ) -> PluginResult<ChatOutcome> {
        let _ = options;
        self.chat(messages, out)
    }
}

/// The sample rate a [`VadEngine`] receives: 16 kHz, mono.
pub const VAD_SAMPLE_RATE: u32 = 16_000;

/// A voice activity detector (ABI 1.2): audio streams in, speech starts
/// and ends come out.
///
/// The host opens one stream per microphone (a conversation), feeds it
/// [`VAD_SAMPLE_RATE`] mono audio in pieces of any length as they arrive,
/// and closes it when the conversation ends. Streams run side by side;
/// each has its own [`VadEngine::Stream`] state.
pub trait VadEngine: Warmable {
    /// What one stream remembers between pieces (a recurrent model's
    /// state, samples not yet a whole frame, whether speech is on).
    type Stream: Send + 'static;

    /// Opens a stream: no speech yet, at time zero.
    fn open(&self) -> PluginResult<Self::Stream>;

    /// Takes the stream's next samples (mono, [`VAD_SAMPLE_RATE`], in
    /// [-1, 1]) and returns the speech starts and ends they complete, in
    /// order, timed from the stream's start.
    fn push(&self, stream: &mut Self::Stream, samples: &[f32]) -> PluginResult<Vec<VadEvent>>;
}
