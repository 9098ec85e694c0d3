//! The `#[repr(C)]` types, the root module and the trait objects that cross
//! the plugin boundary. Everything here derives `StableAbi`, so `abi_stable`
//! checks its layout when a plugin is loaded.

use std::fmt;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::{RMut, RRef, VersionStrings},
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The kind of engine a plugin provides.
///
/// An integer with named constants rather than a Rust enum, so that a later
/// minor version of the ABI can add a kind without breaking the layout check
/// of plugins built before it.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EngineKind(pub u8);

impl EngineKind {
    /// Text to speech.
    pub const TTS: Self = Self(1);
    /// Speech to text.
    pub const STT: Self = Self(2);
    /// Chat completion with a language model.
    pub const CHAT: Self = Self(3);
    /// Voice activity detection (ABI 1.2).
    pub const VAD: Self = Self(4);

    /// The lower-case name used in `plugins.toml` and in the HTTP API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TTS => "tts",
            Self::STT => "stt",
            Self::CHAT => "chat",
            Self::VAD => "vad",
            _ => "unknown",
        }
    }

    /// Parses the lower-case name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "tts" => Some(Self::TTS),
            "stt" => Some(Self::STT),
            "chat" => Some(Self::CHAT),
            "vad" => Some(Self::VAD),
            _ => None,
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            "unknown" => write!(f, "unknown kind {}", self.0),
            name => f.write_str(name),
        }
    }
}

impl fmt::Debug for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a plugin says about itself before any engine exists.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginInfo {
    /// Short name, e.g. `tts-piper`.
    pub name: RString,
    /// The kind of engine it makes.
    pub kind: EngineKind,
    /// The plugin's own version (its crate version), not the ABI version.
    pub version: RString,
    /// One line for `hearth plugin inspect`.
    pub description: RString,
}

/// What an engine instance says about itself; `model` is known after `load`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct EngineInfo {
    /// Engine name, e.g. `piper`.
    pub name: RString,
    /// The kind of engine.
    pub kind: EngineKind,
    /// Version of the engine library it wraps, e.g. `onnxruntime 1.32.0`.
    pub engine_version: RString,
    /// The model in use, where known (shown as `model` in `/api/ready`).
    pub model: ROption<RString>,
}

/// The configuration handed to [`Engine::load`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct LoadRequest<'a> {
    /// The service's `config` table from `plugins.toml`, as JSON text.
    pub config_json: RStr<'a>,
    /// The directory that holds `plugins.toml`; relative paths in the config
    /// are relative to it.
    pub base_dir: RStr<'a>,
}

/// What a warmup did, returned by [`Engine::warmup`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct WarmupReport {
    /// What was warmed, e.g. `synthesized "Hello world." (0.9 s of audio)`.
    pub warmed: RString,
    /// How long the warmup took inside the plugin, in milliseconds.
    pub duration_ms: u64,
}

/// One piece of synthesized audio: PCM16 mono at `sample_rate`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct AudioChunk {
    /// Samples per second.
    pub sample_rate: u32,
    /// Signed 16-bit mono samples.
    pub samples: RVec<i16>,
    /// The text this chunk speaks (one sentence).
    pub text: RString,
}

/// Whether a sink wants more.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep producing.
    Continue = 0,
    /// Stop as soon as possible (the client went away or cancelled).
    Stop = 1,
}

/// The samples of [`PcmInput`].
#[repr(C, u8)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub enum PcmSamples<'a> {
    /// Signed 16-bit samples.
    I16(RSlice<'a, i16>),
    /// 32-bit float samples in [-1, 1].
    F32(RSlice<'a, f32>),
}

/// Audio handed to [`Engine::transcribe`]: interleaved PCM at any rate.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct PcmInput<'a> {
    /// Samples per second of one channel.
    pub sample_rate: u32,
    /// Number of interleaved channels.
    pub channels: u16,
    /// The samples.
    pub samples: PcmSamples<'a>,
}

/// One timed piece of a transcript.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Segment {
    /// Start, in milliseconds from the start of the audio.
    pub start_ms: u64,
    /// End, in milliseconds from the start of the audio.
    pub end_ms: u64,
    /// The words.
    pub text: RString,
}

/// The result of [`Engine::transcribe`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Transcript {
    /// The whole text.
    pub text: RString,
    /// The text in timed segments.
    pub segments: RVec<Segment>,
    /// Language code, empty when unknown.
    pub language: RString,
}

/// Who said a chat message.
///
/// An integer with named constants, like [`EngineKind`], so that a role can
/// be added in a minor version.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChatRole(pub u8);

impl ChatRole {
    /// Instructions for the model.
    pub const SYSTEM: Self = Self(1);
    /// The person.
    pub const USER: Self = Self(2);
    /// The model.
    pub const ASSISTANT: Self = Self(3);

    /// The name used by the OpenAI and Ollama APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SYSTEM => "system",
            Self::USER => "user",
            Self::ASSISTANT => "assistant",
            _ => "user",
        }
    }
}

impl fmt::Debug for ChatRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message of a conversation handed to [`Engine::chat`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ChatMessage {
    /// Who said it.
    pub role: ChatRole,
    /// What was said.
    pub content: RString,
}

/// The end of a chat reply.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ChatReport {
    /// Number of tokens (stream pieces) produced.
    pub tokens: u32,
    /// Why generation ended: `stop`, `length`, `cancelled`, ...
    pub finish_reason: RString,
}

/// What an engine does beyond the operations every engine has (ABI 1.1).
///
/// A set of bits rather than fields, so that later minor versions add
/// bits without changing the layout. An engine built for ABI 1.0 has no
/// [`Engine::capabilities`] and answers [`Capabilities::NONE`].
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// Nothing beyond ABI 1.0.
    pub const NONE: Self = Self(0);
    /// TTS: `synthesize_with` speaks at [`SpeechOptions::speed`].
    pub const SPEED: Self = Self(1);
    /// Chat: `chat_with` stops after [`ChatOptions::max_tokens`].
    pub const MAX_TOKENS: Self = Self(1 << 1);
    /// Chat: `chat_with` samples at [`ChatOptions::temperature`].
    pub const TEMPERATURE: Self = Self(1 << 2);
    /// Chat: `chat_with` stops at [`ChatOptions::stop`] sequences.
    pub const STOP: Self = Self(1 << 3);

    /// Every bit of `other` is set here.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// Per-request options of [`Engine::synthesize_with`] (ABI 1.1).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpeechOptions {
    /// How fast to speak: 1.0 is the voice's own pace, 2.0 twice as fast.
    /// Honoured by engines with [`Capabilities::SPEED`]; the host never
    /// sends another value to an engine without it.
    pub speed: f32,
}

impl Default for SpeechOptions {
    fn default() -> Self {
        Self { speed: 1.0 }
    }
}

/// Per-request options of [`Engine::chat_with`] (ABI 1.1). Each is
/// honoured by engines with the matching [`Capabilities`] bit and ignored
/// by others.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default, PartialEq)]
pub struct ChatOptions {
    /// The most tokens to generate.
    pub max_tokens: ROption<u32>,
    /// Sampling temperature (0 = greedy).
    pub temperature: ROption<f32>,
    /// Stop before any of these.
    pub stop: RVec<RString>,
}

/// What a [`VadEvent`] says (ABI 1.2). An integer with named constants,
/// like [`EngineKind`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct VadEventKind(pub u8);

impl VadEventKind {
    /// Speech began.
    pub const SPEECH_START: Self = Self(1);
    /// Speech ended: the silence after it lasted the engine's minimum.
    pub const SPEECH_END: Self = Self(2);

    /// `speech_start`, `speech_end` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SPEECH_START => "speech_start",
            Self::SPEECH_END => "speech_end",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for VadEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A speech start or end found by [`Engine::vad_push`] (ABI 1.2).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VadEvent {
    /// Start or end.
    pub kind: VadEventKind,
    /// Where, in milliseconds from the start of the stream, padding
    /// included: a start is that much before the first speech frame, an
    /// end that much after the last.
    pub at_ms: u64,
}

/// What the host offers a plugin during `load` and `warmup`.
///
/// Implemented by the host; plugins only call it.
#[sabi_trait]
pub trait HostContext: Sync {
    /// Reports sub-progress of the current step: `fraction` in 0.0–1.0 and a
    /// short message for people (e.g. `reading model`).
    fn progress(&self, fraction: f32, message: RStr<'_>);

    /// True once the host has given up on this step (timeout, shutdown).
    /// Long loads should check it and return early.
    fn is_cancelled(&self) -> bool;

    /// Writes a line to the host's log. `level`: 1 error, 2 warn, 3 info,
    /// 4 debug, 5 trace.
    #[sabi(last_prefix_field)]
    fn log(&self, level: u8, message: RStr<'_>);
}

/// Receives synthesized audio, one chunk per sentence. Implemented by the host.
#[sabi_trait]
pub trait AudioSink {
    /// Takes one chunk; answers [`Flow::Stop`] when no more is wanted.
    #[sabi(last_prefix_field)]
    fn chunk(&mut self, chunk: AudioChunk) -> Flow;
}

/// Receives a chat reply as it streams. Implemented by the host.
#[sabi_trait]
pub trait TokenSink {
    /// Takes one piece of text; answers [`Flow::Stop`] when no more is wanted.
    #[sabi(last_prefix_field)]
    fn token(&mut self, text: RStr<'_>) -> Flow;
}

/// A borrowed [`HostContext`] as it crosses the boundary.
pub type HostRef<'a> = HostContext_TO<'a, RRef<'a, ()>>;
/// A borrowed [`AudioSink`] as it crosses the boundary.
pub type AudioSinkMut<'a> = AudioSink_TO<'a, RMut<'a, ()>>;
/// A borrowed [`TokenSink`] as it crosses the boundary.
pub type TokenSinkMut<'a> = TokenSink_TO<'a, RMut<'a, ()>>;

/// The Warmable contract every engine instance implements across the
/// boundary, plus the operations of each kind.
///
/// Plugin authors implement [`crate::Warmable`] and one of the kind traits
/// instead; [`crate::export_plugin!`] builds this object from them. An
/// engine is called from several threads at once (`health` during `chat`,
/// say), hence `Send + Sync`. Errors are human-readable strings: they end up
/// verbatim in `/api/ready`.
#[sabi_trait]
pub trait Engine: Send + Sync {
    /// Name, kind, engine version and, after `load`, the model.
    fn describe(&self) -> EngineInfo;

    /// Loads the model. May take long; reports progress and checks
    /// cancellation through `host`.
    fn load(&self, request: LoadRequest<'_>, host: HostRef<'_>) -> RResult<(), RString>;

    /// Runs the model once so the first real request is fast.
    fn warmup(&self, host: HostRef<'_>) -> RResult<WarmupReport, RString>;

    /// A cheap check, callable at any time: `Err` says what is wrong
    /// (e.g. `Ollama not responding at http://127.0.0.1:11434`).
    fn health(&self) -> RResult<(), RString>;

    /// Releases the model and anything the engine started. Called exactly
    /// once, after the instance's last request (also when `load` or `warmup`
    /// failed), before the host drops it; not when a call outlived its
    /// timeout and the instance was abandoned.
    fn shutdown(&self);

    /// TTS: speaks `text`, one [`AudioChunk`] per sentence, until the sink
    /// says stop.
    fn synthesize(&self, text: RStr<'_>, sink: AudioSinkMut<'_>) -> RResult<(), RString>;

    /// STT: turns audio into text.
    fn transcribe(&self, audio: PcmInput<'_>) -> RResult<Transcript, RString>;

    /// Chat: streams the reply to `messages` into the sink until it ends or
    /// the sink says stop. The last method of ABI 1.0: later ones are
    /// added below it, each with a default body, which is what runs when
    /// the plugin was built before the method existed.
    #[sabi(last_prefix_field)]
    fn chat(&self, messages: RSlice<'_, ChatMessage>, sink: TokenSinkMut<'_>) -> RResult<ChatReport, RString>;

    /// ABI 1.1: what this engine does beyond 1.0's operations. Default
    /// (and for plugins built for 1.0): nothing.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// ABI 1.1: [`Engine::synthesize`] with per-request options. Default
    /// (and for plugins built for 1.0): `synthesize`, options ignored; the
    /// host checks [`Engine::capabilities`] before sending any.
    fn synthesize_with(&self, text: RStr<'_>, options: SpeechOptions, sink: AudioSinkMut<'_>) -> RResult<(), RString> {
        let _ = options;
        self.synthesize(text, sink)
    }

    /// ABI 1.1: [`Engine::chat`] with per-request options. Default (and for
    /// plugins built for 1.0): `chat`, options ignored.
    fn chat_with(
        &self,
        messages: RSlice<'_, ChatMessage>,
        options: ChatOptions,
        sink: TokenSinkMut<'_>,
    ) -> RResult<ChatReport, RString> {
        let _ = options;
        self.chat(messages, sink)
    }

    /// ABI 1.2: VAD: takes the next audio of stream `stream` (16 kHz mono;
    /// the host numbers streams, and a number not seen before opens a new
    /// one) and returns the speech starts and ends it completed, in order.
    /// Default (and for plugins built before 1.2): an error, since only a
    /// `vad` engine detects voice activity.
    fn vad_push(&self, stream: u64, audio: PcmInput<'_>) -> RResult<RVec<VadEvent>, RString> {
        let _ = (stream, audio);
        RResult::RErr(RString::from("this engine does not detect voice activity"))
    }

    /// ABI 1.2: VAD: forgets stream `stream`. Default: nothing to forget.
    fn vad_close(&self, stream: u64) {
        let _ = stream;
    }
}

/// An owned engine instance as it crosses the boundary.
pub type EngineBox = Engine_TO<'static, RBox<()>>;

/// The root module every plugin exports (through [`crate::export_plugin!`]).
///
/// A prefix type: fields may be added at the end in minor versions.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// What the plugin is; cheap, loads nothing.
    pub info: extern "C" fn() -> PluginInfo,

    /// Validates a `config` table (JSON text) without loading anything, so
    /// `hearth check` can report mistakes before a long startup.
    pub check_config: extern "C" fn(config_json: RStr<'_>) -> RResult<(), RString>,

    /// Makes a new, unloaded engine instance. The last field of ABI 1.0:
    /// fields added in later minor versions go below it.
    #[sabi(last_prefix_field)]
    pub new_engine: extern "C" fn() -> RResult<EngineBox, RString>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "hearth_plugin";
    const NAME: &'static str = "hearth_plugin";
    // abi_stable itself only compares the major version; the host applies
    // the full rule of `check_compatible` before abi_stable sees the library.
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(crate::version::ABI_VERSION_STR);
}
