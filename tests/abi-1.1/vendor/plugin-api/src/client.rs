//! The calling side of the ABI, in plain Rust: how a host drives a plugin's
//! root module and engines without touching an FFI type.
//!
//! The Hearth host uses it for in-process engines (and its worker processes
//! for theirs), and the test kit uses it to drive a plugin exactly as the host
//! does. The types here ([`Speech`], [`Audio`], [`Transcription`],
//! [`Message`], ...) are plain owned Rust values that also serialize, so they
//! can travel further than the FFI boundary (to a worker process, as JSON).
//!
//! All engine methods block; call them from a thread that may block.

use std::{
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RSlice, RStr, RString},
};
use serde::{Deserialize, Serialize};

use crate::{
    abi::{
        AudioChunk, AudioSink, AudioSink_TO, Capabilities, ChatMessage, ChatRole, EngineBox, EngineKind, Flow,
        HostContext, HostContext_TO, HostRef, LoadRequest, PcmInput, PcmSamples, PluginModRef, SpeechOptions,
        TokenSink, TokenSink_TO, Transcript,
    },
    author::{ChatOutcome, Description},
};

fn into_result<T>(r: RResult<T, RString>) -> Result<T, String> {
    match r {
        RResult::ROk(v) => Ok(v),
        RResult::RErr(e) => Err(e.into_string()),
    }
}

/// What a plugin says about itself (the plain side of [`crate::PluginInfo`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Short name, e.g. `tts-piper`.
    pub name: String,
    /// `tts`, `stt`, `chat`, or `unknown kind N` for a kind this copy of the
    /// crate does not know.
    pub kind: String,
    /// The plugin's own version.
    pub version: String,
    /// One line about it.
    pub description: String,
}

/// A plugin's root module, however it was obtained: from a library the
/// host opened, or from `hearth_plugin_root_module()` in the plugin's own
/// tests.
#[derive(Clone, Copy)]
pub struct Module {
    module: Root,
}

/// A root module of one of the layouts this crate knows.
#[derive(Clone, Copy)]
enum Root {
    /// A plugin built for ABI 1.0.
    V1_0(crate::abi_v1_0::PluginModRef),
    /// A plugin built for this crate's ABI.
    Current(PluginModRef),
}

/// The same field of whichever root module `$root` is.
macro_rules! root_field {
    ($root:expr, $field:ident) => {
        match $root {
            Root::V1_0(m) => m.$field(),
            Root::Current(m) => m.$field(),
        }
    };
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("info", &self.info()).finish()
    }
}

impl Module {
    /// Wraps a root module of this crate's ABI.
    pub fn new(module: PluginModRef) -> Self {
        Self {
            module: Root::Current(module),
        }
    }

    /// Wraps the root module of a plugin built for ABI 1.0 (see
    /// [`crate::abi_v1_0`]).
    pub fn v1_0(module: crate::abi_v1_0::PluginModRef) -> Self {
        Self {
            module: Root::V1_0(module),
        }
    }

    /// The kind of engine it makes.
    pub fn kind(&self) -> EngineKind {
        (root_field!(self.module, info))().kind
    }

    /// What the plugin says about itself.
    pub fn info(&self) -> Info {
        let info = (root_field!(self.module, info))();
        Info {
            name: info.name.into_string(),
            kind: info.kind.to_string(),
            version: info.version.into_string(),
            description: info.description.into_string(),
        }
    }

    /// Validates a `config` table (JSON text) without loading anything.
    pub fn check_config(&self, config_json: &str) -> Result<(), String> {
        into_result((root_field!(self.module, check_config))(RStr::from_str(config_json)))
    }

    /// Makes a new, unloaded engine instance.
    pub fn new_engine(&self) -> Result<Instance, String> {
        let engine = match self.module {
            Root::V1_0(m) => into_result((m.new_engine())()).map(Engine::V1_0),
            Root::Current(m) => into_result((m.new_engine())()).map(Engine::Current),
        };
        engine.map(|engine| Instance { engine })
    }
}

/// An engine as a host drives it, in plain Rust, whatever runs it: an
/// [`Instance`] in this process, or a proxy to one in a worker process.
/// All calls block.
pub trait Calls: Send + Sync + 'static {
    /// Name, engine version and (after load) model.
    fn describe(&self) -> Result<Description, String>;
    /// Loads the model with a `config` table (JSON text), relative paths
    /// against `base_dir`.
    fn load(&self, config_json: &str, base_dir: &Path, host: &dyn Host) -> Result<(), String>;
    /// Runs the model once.
    fn warmup(&self, host: &dyn Host) -> Result<Warmed, String>;
    /// The cheap health check.
    fn health(&self) -> Result<(), String>;
    /// Releases the model and what the engine started.
    fn shutdown(&self);
    /// What the engine does beyond its operation (ABI 1.1; an engine built
    /// for 1.0 answers [`Capabilities::NONE`]).
    fn capabilities(&self) -> Result<Capabilities, String>;
    /// TTS: speaks `text` into `sink`, one [`Speech`] per sentence, with
    /// per-request options (send a speed other than 1.0 only to an engine
    /// with [`Capabilities::SPEED`]).
    fn synthesize_with(
        &self,
        text: &str,
        options: &SpeechOptions,
        sink: &mut dyn FnMut(Speech) -> Flow,
    ) -> Result<(), String>;
    /// TTS at the voice's own pace.
    fn synthesize(&self, text: &str, sink: &mut dyn FnMut(Speech) -> Flow) -> Result<(), String> {
        self.synthesize_with(text, &SpeechOptions::default(), sink)
    }
    /// STT: turns `audio` into text.
    fn transcribe(&self, audio: &Audio) -> Result<Transcription, String>;
    /// Chat: streams the reply to `messages` into `sink`, with per-request
    /// options (an engine honours those its capabilities name).
    fn chat_with(
        &self,
        messages: &[Message],
        options: &ChatOptions,
        sink: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<ChatOutcome, String>;
    /// Chat with the engine's own settings.
    fn chat(&self, messages: &[Message], sink: &mut dyn FnMut(&str) -> Flow) -> Result<ChatOutcome, String> {
        self.chat_with(messages, &ChatOptions::default(), sink)
    }
}

/// Per-request chat options in plain Rust (the plain side of
/// [`crate::ChatOptions`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatOptions {
    /// The most tokens to generate.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Stop before any of these.
    pub stop: Vec<String>,
}

impl ChatOptions {
    /// As the ABI carries them.
    pub fn to_abi(&self) -> crate::abi::ChatOptions {
        crate::abi::ChatOptions {
            max_tokens: self.max_tokens.into(),
            temperature: self.temperature.into(),
            stop: self.stop.iter().map(|s| RString::from(s.as_str())).collect(),
        }
    }
}

/// A plugin library as a host uses it, whatever opened it: a [`Module`] in
/// this process, or a worker process that holds the library.
pub trait Library: Send + Sync {
    /// What the plugin says about itself.
    fn info(&self) -> Info;
    /// The kind of engine it makes.
    fn kind(&self) -> EngineKind;
    /// Validates a `config` table (JSON text) without loading anything.
    fn check_config(&self, config_json: &str) -> Result<(), String>;
    /// Makes a new, unloaded engine.
    fn new_engine(&self) -> Result<Box<dyn Calls>, String>;
}

impl Library for Module {
    fn info(&self) -> Info {
        Module::info(self)
    }
    fn kind(&self) -> EngineKind {
        Module::kind(self)
    }
    fn check_config(&self, config_json: &str) -> Result<(), String> {
        Module::check_config(self, config_json)
    }
    fn new_engine(&self) -> Result<Box<dyn Calls>, String> {
        Module::new_engine(self).map(|engine| Box::new(engine) as Box<dyn Calls>)
    }
}

/// What a host offers an engine during `load` and `warmup`, in plain Rust.
pub trait Host: Sync {
    /// Sub-progress of the current step, `fraction` in 0.0–1.0.
    fn progress(&self, fraction: f32, message: &str);
    /// True once the host gave up on the step.
    fn is_cancelled(&self) -> bool;
    /// A log line; `level` 1 error, 2 warn, 3 info, 4 debug, 5 trace.
    fn log(&self, level: u8, message: &str);
}

/// A [`Host`] that ignores progress and logs, and cancels when its flag is
/// set.
#[derive(Debug, Default)]
pub struct QuietHost {
    /// Set to cancel.
    pub cancelled: AtomicBool,
}

impl Host for QuietHost {
    fn progress(&self, _fraction: f32, _message: &str) {}
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
    fn log(&self, _level: u8, _message: &str) {}
}

struct HostAdapter<'a>(&'a dyn Host);

impl HostContext for HostAdapter<'_> {
    fn progress(&self, fraction: f32, message: RStr<'_>) {
        self.0.progress(fraction, message.as_str());
    }
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    fn log(&self, level: u8, message: RStr<'_>) {
        self.0.log(level, message.as_str());
    }
}

struct AudioAdapter<'a>(&'a mut dyn FnMut(Speech) -> Flow);

impl AudioSink for AudioAdapter<'_> {
    fn chunk(&mut self, chunk: AudioChunk) -> Flow {
        (self.0)(Speech {
            sample_rate: chunk.sample_rate,
            samples: chunk.samples.into_vec(),
            text: chunk.text.into_string(),
        })
    }
}

struct TokenAdapter<'a>(&'a mut dyn FnMut(&str) -> Flow);

impl TokenSink for TokenAdapter<'_> {
    fn token(&mut self, text: RStr<'_>) -> Flow {
        (self.0)(text.as_str())
    }
}

/// One piece of synthesized speech: PCM16 mono at `sample_rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speech {
    /// Samples per second.
    pub sample_rate: u32,
    /// Signed 16-bit mono samples.
    pub samples: Vec<i16>,
    /// The sentence it speaks.
    pub text: String,
}

impl Speech {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Samples of [`Audio`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Samples {
    /// Signed 16-bit samples.
    I16(Vec<i16>),
    /// Float samples in [-1, 1].
    F32(Vec<f32>),
}

/// Audio to transcribe: interleaved PCM at any rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audio {
    /// Samples per second of one channel.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// The samples.
    pub samples: Samples,
}

impl Audio {
    /// Borrows it as the ABI's [`PcmInput`].
    pub fn as_input(&self) -> PcmInput<'_> {
        PcmInput {
            sample_rate: self.sample_rate,
            channels: self.channels,
            samples: match &self.samples {
                Samples::I16(s) => PcmSamples::I16(RSlice::from_slice(s)),
                Samples::F32(s) => PcmSamples::F32(RSlice::from_slice(s)),
            },
        }
    }

    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        let n = match &self.samples {
            Samples::I16(s) => s.len(),
            Samples::F32(s) => s.len(),
        };
        n as f64 / f64::from(self.sample_rate.max(1)) / f64::from(self.channels.max(1))
    }
}

/// One timed piece of a [`Transcription`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedText {
    /// Start, in ms from the start of the audio.
    pub start_ms: u64,
    /// End, in ms from the start of the audio.
    pub end_ms: u64,
    /// The words.
    pub text: String,
}

/// What an STT engine heard.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Transcription {
    /// The whole text.
    pub text: String,
    /// The text in timed segments.
    pub segments: Vec<TimedText>,
    /// Language code, empty when unknown.
    pub language: String,
}

/// Who said a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
}

impl Role {
    fn to_abi(self) -> ChatRole {
        match self {
            Self::System => ChatRole::SYSTEM,
            Self::User => ChatRole::USER,
            Self::Assistant => ChatRole::ASSISTANT,
        }
    }
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// What a warmup did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warmed {
    /// For people, e.g. `synthesized "Hello world." (0.9 s of audio)`.
    pub warmed: String,
    /// Time inside the plugin, in ms.
    pub duration_ms: u64,
}

/// One engine instance made by a plugin. Dropping it drops the plugin's
/// object; call [`Instance::shutdown`] first when it was loaded.
pub struct Instance {
    engine: Engine,
}

/// An engine of one of the layouts this crate knows.
enum Engine {
    /// Built for ABI 1.0: no capabilities, no options.
    V1_0(crate::abi_v1_0::EngineBox),
    /// Built for this crate's ABI.
    Current(EngineBox),
}

/// The same call on whichever engine `$engine` is, for the methods every
/// version has.
macro_rules! on_engine {
    ($engine:expr, $e:ident => $call:expr) => {
        match &$engine {
            Engine::V1_0($e) => $call,
            Engine::Current($e) => $call,
        }
    };
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").finish_non_exhaustive()
    }
}

impl Calls for Instance {
    /// Name, engine version and (after load) model.
    fn describe(&self) -> Result<Description, String> {
        let info = on_engine!(self.engine, e => e.describe());
        Ok(Description {
            name: info.name.into_string(),
            engine_version: info.engine_version.into_string(),
            model: info.model.into_option().map(RString::into_string),
        })
    }

    /// Loads the model with a `config` table (JSON text); relative paths in
    /// it are relative to `base_dir`.
    fn load(&self, config_json: &str, base_dir: &Path, host: &dyn Host) -> Result<(), String> {
        let base_dir = base_dir.to_string_lossy();
        let request = LoadRequest {
            config_json: RStr::from_str(config_json),
            base_dir: RStr::from_str(&base_dir),
        };
        let adapter = HostAdapter(host);
        let host: HostRef<'_> = HostContext_TO::from_ptr(&adapter, TD_Opaque);
        into_result(on_engine!(self.engine, e => e.load(request, host)))
    }

    /// Runs the model once.
    fn warmup(&self, host: &dyn Host) -> Result<Warmed, String> {
        let adapter = HostAdapter(host);
        let host: HostRef<'_> = HostContext_TO::from_ptr(&adapter, TD_Opaque);
        into_result(on_engine!(self.engine, e => e.warmup(host))).map(|report| Warmed {
            warmed: report.warmed.into_string(),
            duration_ms: report.duration_ms,
        })
    }

    /// The cheap health check.
    fn health(&self) -> Result<(), String> {
        into_result(on_engine!(self.engine, e => e.health()))
    }

    /// Releases the model and what the engine started.
    fn shutdown(&self) {
        on_engine!(self.engine, e => e.shutdown());
    }

    fn capabilities(&self) -> Result<Capabilities, String> {
        Ok(match &self.engine {
            Engine::V1_0(_) => Capabilities::NONE,
            Engine::Current(e) => e.capabilities(),
        })
    }

    /// TTS: speaks `text` into `sink`, one [`Speech`] per sentence.
    fn synthesize_with(
        &self,
        text: &str,
        options: &SpeechOptions,
        sink: &mut dyn FnMut(Speech) -> Flow,
    ) -> Result<(), String> {
        let mut adapter = AudioAdapter(sink);
        let sink = AudioSink_TO::from_ptr(&mut adapter, TD_Opaque);
        into_result(match &self.engine {
            // A 1.0 engine speaks at its own pace (the host asks it for no
            // other: it has no `SPEED`).
            Engine::V1_0(e) => e.synthesize(RStr::from_str(text), sink),
            Engine::Current(e) => e.synthesize_with(RStr::from_str(text), *options, sink),
        })
    }

    /// STT: turns `audio` into text.
    fn transcribe(&self, audio: &Audio) -> Result<Transcription, String> {
        into_result(on_engine!(self.engine, e => e.transcribe(audio.as_input()))).map(from_abi_transcript)
    }

    /// Chat: streams the reply to `messages` into `sink`.
    fn chat_with(
        &self,
        messages: &[Message],
        options: &ChatOptions,
        sink: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<ChatOutcome, String> {
        let messages = to_abi_messages(messages);
        let mut adapter = TokenAdapter(sink);
        let messages = RSlice::from_slice(&messages);
        let sink = TokenSink_TO::from_ptr(&mut adapter, TD_Opaque);
        into_result(match &self.engine {
            // A 1.0 engine has no options: it chats with its own settings.
            Engine::V1_0(e) => e.chat(messages, sink),
            Engine::Current(e) => e.chat_with(messages, options.to_abi(), sink),
        })
        .map(|report| ChatOutcome {
            tokens: report.tokens,
            finish_reason: report.finish_reason.into_string(),
        })
    }
}

/// Messages as the ABI carries them.
pub(crate) fn to_abi_messages(messages: &[Message]) -> Vec<ChatMessage> {
    messages
        .iter()
        .map(|m| ChatMessage {
            role: m.role.to_abi(),
            content: m.content.as_str().into(),
        })
        .collect()
}

/// A transcript as plain Rust.
pub(crate) fn from_abi_transcript(t: Transcript) -> Transcription {
    Transcription {
        text: t.text.into_string(),
        segments: t
            .segments
            .into_iter()
            .map(|s| TimedText {
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                text: s.text.into_string(),
            })
            .collect(),
        language: t.language.into_string(),
    }
}
