//! Engines as the rest of the host sees them: one [`Engine`] per instance
//! for the supervisor's lifecycle calls, and typed per-kind handles
//! ([`TtsHandle`], [`SttHandle`], [`ChatHandle`], [`VadHandle`] with its
//! [`VadStream`]) for everything that uses an engine — the fronts, the CLI.
//!
//! Only plain Rust types cross these handles (from
//! [`hearth_plugin_api::client`]); no FFI type does. A handle of one kind has
//! only its kind's operation, so asking an STT engine to chat does not
//! compile. Handles are made only where the plugin's kind was checked
//! against its service ([`crate::open`]).
//!
//! Whatever runs the engine sits behind [`Calls`] (the plain-Rust contract
//! from `hearth-plugin-api`): the plugin's object in this process
//! ([`InProcess`]), or a proxy to a worker process
//! ([`crate::worker::Worker`]).
//!
//! **Shutdown** is called exactly once per engine that was made, when the
//! host is done with it: after its last user dropped it (a swapped-out or
//! retried engine finishes its requests first), whether or not its load or
//! warmup succeeded — except when a load or warmup hung past its timeout:
//! the host then abandons the call, and the engine with it.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use hearth_plugin_api::{
    client::{Audio, Calls, ChatOptions, Host, Instance, Message, Speech, Transcription, Warmed},
    Capabilities, ChatOutcome, Description, EngineKind, Flow, SpeechOptions, VadEvent,
};

use crate::{
    metrics::EngineMetrics,
    plugin::{Plugin, PluginMeta},
};

/// An engine made by a plugin library in this process.
pub struct InProcess {
    // Declared first so it drops first: the engine's vtable lives in the
    // plugin library, which `_plugin` keeps open (forever, in fact).
    instance: Instance,
    _plugin: Arc<Plugin>,
}

impl InProcess {
    /// Wraps an instance of `plugin`'s.
    pub fn new(instance: Instance, plugin: Arc<Plugin>) -> Self {
        Self {
            instance,
            _plugin: plugin,
        }
    }

    /// Makes a new, unloaded engine instance of `plugin`, run in this process.
    pub fn engine(plugin: &Arc<Plugin>) -> std::result::Result<Engine, String> {
        let instance = plugin.module().new_engine()?;
        Ok(Engine::new(
            plugin.meta.clone(),
            Arc::new(InProcess::new(instance, Arc::clone(plugin))),
        ))
    }
}

impl Calls for InProcess {
    fn describe(&self) -> Result<Description, String> {
        self.instance.describe()
    }
    fn load(&self, config_json: &str, base_dir: &Path, host: &dyn Host) -> Result<(), String> {
        self.instance.load(config_json, base_dir, host)
    }
    fn warmup(&self, host: &dyn Host) -> Result<Warmed, String> {
        self.instance.warmup(host)
    }
    fn health(&self) -> Result<(), String> {
        self.instance.health()
    }
    fn shutdown(&self) {
        self.instance.shutdown();
    }
    fn capabilities(&self) -> Result<Capabilities, String> {
        self.instance.capabilities()
    }
    fn synthesize_with(
        &self,
        text: &str,
        options: &SpeechOptions,
        sink: &mut dyn FnMut(Speech) -> Flow,
    ) -> Result<(), String> {
        self.instance.synthesize_with(text, options, sink)
    }
    fn transcribe(&self, audio: &Audio) -> Result<Transcription, String> {
        self.instance.transcribe(audio)
    }
    fn chat_with(
        &self,
        messages: &[Message],
        options: &ChatOptions,
        sink: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<ChatOutcome, String> {
        self.instance.chat_with(messages, options, sink)
    }
    fn vad_push(&self, stream: u64, audio: &Audio) -> Result<Vec<VadEvent>, String> {
        self.instance.vad_push(stream, audio)
    }
    fn vad_close(&self, stream: u64) {
        self.instance.vad_close(stream);
    }
}

/// One engine instance: its plugin's description and whatever runs it.
/// The supervisor holds it in an `Arc`; see the module doc for when
/// `shutdown` runs.
pub struct Engine {
    meta: PluginMeta,
    backend: Arc<dyn Calls>,
    shut_down: AtomicBool,
    metrics: Option<EngineMetrics>,
    capabilities: std::sync::OnceLock<Capabilities>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("plugin", &self.meta.name).finish()
    }
}

impl Engine {
    /// An engine of the plugin `meta` describes, run by `backend`.
    pub fn new(meta: PluginMeta, backend: Arc<dyn Calls>) -> Self {
        Self {
            meta,
            backend,
            shut_down: AtomicBool::new(false),
            metrics: None,
            capabilities: std::sync::OnceLock::new(),
        }
    }

    /// The same engine, timing and counting its calls in `metrics`.
    pub fn observed(mut self, metrics: EngineMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Counts `result` if it is a failure.
    fn checked<T>(&self, result: Result<T, String>) -> Result<T, String> {
        if let (Err(e), Some(m)) = (&result, &self.metrics) {
            m.failed(e);
        }
        result
    }

    /// Runs an operation, timing it whole and counting its failure.
    fn timed<T>(&self, call: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        let started = Instant::now();
        let result = self.checked(call());
        if let (Ok(_), Some(m)) = (&result, &self.metrics) {
            m.call.record(started.elapsed().as_secs_f64());
        }
        result
    }

    /// Records the first piece of a streamed answer, `after` the call began.
    fn first(&self, after: std::time::Duration) {
        if let Some(first) = self.metrics.as_ref().and_then(|m| m.first.as_ref()) {
            first.record(after.as_secs_f64());
        }
    }

    /// The plugin that made it.
    pub fn plugin(&self) -> &PluginMeta {
        &self.meta
    }

    /// Name, engine version, model.
    pub fn describe(&self) -> Result<Description, String> {
        self.backend.describe()
    }

    /// Loads the model; blocks.
    pub fn load(&self, config_json: &str, base_dir: &Path, host: &dyn Host) -> Result<(), String> {
        self.checked(self.backend.load(config_json, base_dir, host))
    }

    /// Runs the model once; blocks.
    pub fn warmup(&self, host: &dyn Host) -> Result<Warmed, String> {
        self.checked(self.backend.warmup(host))
    }

    /// What the engine does beyond its operation (asked once, then
    /// remembered: it cannot change while the engine lives). An engine
    /// that cannot say has none.
    pub fn capabilities(&self) -> Capabilities {
        *self
            .capabilities
            .get_or_init(|| self.checked(self.backend.capabilities()).unwrap_or_default())
    }

    /// The cheap health check.
    pub fn health(&self) -> Result<(), String> {
        self.checked(self.backend.health())
    }

    /// Shuts the engine down now, unless that already happened; blocks.
    /// For the end of the process; otherwise dropping the last `Arc` does
    /// it.
    pub fn shutdown(&self) {
        if !self.shut_down.swap(true, Ordering::AcqRel) {
            self.backend.shutdown();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        // The last user may be an async task; shutdown may block (a managed
        // server is given seconds to stop), so it gets its own thread.
        let backend = Arc::clone(&self.backend);
        let name = self.meta.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("shutdown-{name}"))
            .spawn(move || backend.shutdown());
        if let Err(e) = spawned {
            tracing::warn!(plugin = %name, "cannot start a thread to shut the engine down: {e}");
        }
    }
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(Arc<Engine>);

        impl $name {
            /// The handle of `engine`, or `None` when its plugin makes
            /// another kind of engine.
            pub fn of(engine: Arc<Engine>) -> Option<Self> {
                (engine.plugin().kind == $kind).then(|| Self(engine))
            }

            /// The plugin that made the engine.
            pub fn plugin(&self) -> &PluginMeta {
                self.0.plugin()
            }

            /// Name, engine version, model.
            pub fn describe(&self) -> Result<Description, String> {
                self.0.describe()
            }

            /// What the engine does beyond its operation (ABI 1.1).
            pub fn capabilities(&self) -> Capabilities {
                self.0.capabilities()
            }
        }
    };
}

handle! {
    /// A text-to-speech engine. Cheap to clone; all calls block.
    TtsHandle, EngineKind::TTS
}
handle! {
    /// A speech-to-text engine. Cheap to clone; all calls block.
    SttHandle, EngineKind::STT
}
handle! {
    /// A chat engine. Cheap to clone; all calls block.
    ChatHandle, EngineKind::CHAT
}
handle! {
    /// A voice activity detector. Cheap to clone; all calls block.
    VadHandle, EngineKind::VAD
}

impl TtsHandle {
    /// Speaks `text` into `sink`, one chunk per sentence, until the sink
    /// answers [`Flow::Stop`].
    pub fn synthesize(&self, text: &str, sink: impl FnMut(Speech) -> Flow) -> Result<(), String> {
        self.synthesize_with(text, &SpeechOptions::default(), sink)
    }

    /// [`TtsHandle::synthesize`] with options; check
    /// [`TtsHandle::capabilities`] before asking for a speed.
    pub fn synthesize_with(
        &self,
        text: &str,
        options: &SpeechOptions,
        mut sink: impl FnMut(Speech) -> Flow,
    ) -> Result<(), String> {
        let engine = &self.0;
        let started = Instant::now();
        let mut first = true;
        engine.timed(|| {
            engine.backend.synthesize_with(text, options, &mut |speech| {
                if std::mem::take(&mut first) {
                    engine.first(started.elapsed());
                }
                sink(speech)
            })
        })
    }
}

impl SttHandle {
    /// Turns audio into text.
    pub fn transcribe(&self, audio: &Audio) -> Result<Transcription, String> {
        self.0.timed(|| self.0.backend.transcribe(audio))
    }
}

impl ChatHandle {
    /// Streams the reply to `messages` into `sink` until it ends or the sink
    /// answers [`Flow::Stop`].
    pub fn chat(&self, messages: &[Message], sink: impl FnMut(&str) -> Flow) -> Result<ChatOutcome, String> {
        self.chat_with(messages, &ChatOptions::default(), sink)
    }

    /// [`ChatHandle::chat`] with per-request options (the engine honours
    /// those its [`ChatHandle::capabilities`] name).
    pub fn chat_with(
        &self,
        messages: &[Message],
        options: &ChatOptions,
        mut sink: impl FnMut(&str) -> Flow,
    ) -> Result<ChatOutcome, String> {
        let engine = &self.0;
        let started = Instant::now();
        let mut first = true;
        engine.timed(|| {
            engine.backend.chat_with(messages, options, &mut |piece| {
                if std::mem::take(&mut first) {
                    engine.first(started.elapsed());
                }
                sink(piece)
            })
        })
    }
}

impl VadHandle {
    /// Opens a stream of its own (numbered process-wide, so streams of
    /// several conversations never mix), closed when dropped.
    pub fn open(&self) -> VadStream {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        VadStream {
            engine: self.clone(),
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// One stream of a [`VadHandle`]: 16 kHz mono audio in, speech starts and
/// ends out. All calls block.
#[derive(Debug)]
pub struct VadStream {
    engine: VadHandle,
    id: u64,
}

impl VadStream {
    /// Feeds the stream's next samples (16 kHz mono PCM16); returns the
    /// speech starts and ends they complete.
    pub fn push(&self, samples: &[i16]) -> Result<Vec<VadEvent>, String> {
        let audio = Audio {
            sample_rate: 16_000,
            channels: 1,
            samples: hearth_plugin_api::client::Samples::I16(samples.to_vec()),
        };
        let engine = &self.engine.0;
        engine.timed(|| engine.backend.vad_push(self.id, &audio))
    }
}

impl Drop for VadStream {
    fn drop(&mut self) {
        // Closing may go to a worker process: not on an async task's thread.
        let backend = Arc::clone(&self.engine.0.backend);
        let id = self.id;
        let _ = std::thread::Builder::new()
            .name("vad-close".into())
            .spawn(move || backend.vad_close(id));
    }
}
