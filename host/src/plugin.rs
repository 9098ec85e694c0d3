//! Opening plugin libraries and calling the engines they make.
//!
//! A file is validated before any of its code runs: it must exist, be an ELF
//! shared object and export `abi_stable`'s root-module symbol. Then its ABI
//! version is compared by the one rule of
//! [`hearth_plugin_api::check_compatible`], and only then does `abi_stable`
//! check the layout of every type and run the plugin's module constructor.
//!
//! Libraries are never unloaded (see [`Libraries`]).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use abi_stable::{
    library::{lib_header_from_path, LibraryError, ROOT_MODULE_LOADER_NAME},
    sabi_trait::TD_Opaque,
    std_types::{RResult, RSlice, RStr},
};
use hearth_plugin_api::{
    AbiVersion, AudioChunk, AudioSink, AudioSink_TO, ChatMessage, ChatReport, EngineBox, EngineInfo, EngineKind, Flow,
    HostContext_TO, HostRef, LoadRequest, PcmInput, PluginModRef, TokenSink, TokenSink_TO, Transcript, WarmupReport,
    ABI_VERSION,
};
use object::{Object, ObjectSymbol};

use crate::error::{HostError, Result};

/// What a plugin library says about itself, in host types.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginMeta {
    /// The plugin's name.
    pub name: String,
    /// The kind of engine it makes.
    #[serde(serialize_with = "kind_name")]
    pub kind: EngineKind,
    /// The plugin's own version.
    pub version: String,
    /// One line about it.
    pub description: String,
    /// The ABI version it was built against.
    #[serde(serialize_with = "display")]
    pub abi: AbiVersion,
    /// The file it was loaded from.
    pub path: PathBuf,
}

fn kind_name<S: serde::Serializer>(kind: &EngineKind, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

fn display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// An opened, checked plugin library.
pub struct Plugin {
    /// What it says about itself.
    pub meta: PluginMeta,
    module: PluginModRef,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("meta", &self.meta).finish()
    }
}

impl Plugin {
    /// Validates a `config` table (JSON) without loading anything.
    pub fn check_config(&self, config_json: &str) -> std::result::Result<(), String> {
        match (self.module.check_config())(RStr::from_str(config_json)) {
            RResult::ROk(()) => Ok(()),
            RResult::RErr(e) => Err(e.into_string()),
        }
    }

    /// Makes a new, unloaded engine instance.
    pub fn new_engine(self: &Arc<Self>) -> std::result::Result<Engine, String> {
        match (self.module.new_engine())() {
            RResult::ROk(engine) => Ok(Engine {
                engine,
                plugin: Arc::clone(self),
            }),
            RResult::RErr(e) => Err(e.into_string()),
        }
    }
}

/// The opened plugin libraries, by canonical path.
///
/// Libraries are never unloaded: engines, their vtables and the strings they
/// return point into the library's code, and `abi_stable` keeps per-library
/// state for the life of the process (`lib_header_from_path` leaks the
/// handle on purpose). Opening the same file twice returns the same
/// [`Plugin`], so a retry or a second service on the same plugin reuses it.
#[derive(Default)]
pub struct Libraries {
    opened: Mutex<HashMap<PathBuf, Arc<Plugin>>>,
}

impl Libraries {
    /// Opens `path` (or returns it if already open), refusing it with a
    /// reason when it is not a compatible Hearth plugin.
    pub fn open(&self, path: &Path) -> Result<Arc<Plugin>> {
        let canonical = std::fs::canonicalize(path).map_err(|_| HostError::PluginMissing {
            path: path.to_path_buf(),
            hint: String::new(),
        })?;
        // One lock for the whole open, so two services opening the same file
        // at once do not race inside the dynamic loader.
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plugin) = opened.get(&canonical) {
            return Ok(Arc::clone(plugin));
        }
        let plugin = Arc::new(open_plugin(path, &canonical)?);
        opened.insert(canonical, Arc::clone(&plugin));
        Ok(plugin)
    }
}

fn refused(path: &Path, name: &str, reason: impl Into<String>) -> HostError {
    HostError::PluginRefused {
        name: name.to_owned(),
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Checks, without running any of its code, that `path` is an ELF shared
/// object exporting `abi_stable`'s root module symbol.
fn validate_file(path: &Path, stem: &str) -> Result<()> {
    let data = std::fs::read(path).map_err(|source| HostError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !data.starts_with(b"\x7fELF") {
        return Err(refused(
            path,
            stem,
            "not a Hearth plugin: the file is not an ELF shared library",
        ));
    }
    let file = object::File::parse(&*data)
        .map_err(|e| refused(path, stem, format!("not a Hearth plugin: unreadable ELF file ({e})")))?;
    if file.kind() != object::ObjectKind::Dynamic {
        return Err(refused(
            path,
            stem,
            "not a Hearth plugin: the file is not a shared library",
        ));
    }
    let exported = file
        .dynamic_symbols()
        .any(|s| s.is_definition() && s.name() == Ok(ROOT_MODULE_LOADER_NAME));
    if !exported {
        return Err(refused(
            path,
            stem,
            "not a Hearth plugin: it exports no abi_stable root module (was it built with hearth_plugin_api::export_plugin!, or with another abi_stable version than 0.11?)",
        ));
    }
    Ok(())
}

fn open_plugin(path: &Path, canonical: &Path) -> Result<Plugin> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().trim_start_matches("lib").to_owned())
        .unwrap_or_default();
    validate_file(canonical, &stem)?;
    let header = lib_header_from_path(canonical).map_err(|e| refused(path, &stem, library_error(e)))?;
    let plugin_abi = AbiVersion::parse(header.version_strings().version.as_str())
        .map_err(|e| refused(path, &stem, format!("unreadable ABI version: {e}")))?;
    if let Err(why) = hearth_plugin_api::check_compatible(ABI_VERSION, plugin_abi) {
        return Err(refused(
            path,
            &stem,
            format!("host ABI {ABI_VERSION}, plugin ABI {plugin_abi}: {why}"),
        ));
    }
    let module = header.init_root_module::<PluginModRef>().map_err(|e| {
        refused(
            path,
            &stem,
            format!("host ABI {ABI_VERSION}, plugin ABI {plugin_abi}: {}", library_error(e)),
        )
    })?;
    let info = (module.info())();
    Ok(Plugin {
        meta: PluginMeta {
            name: info.name.into_string(),
            kind: info.kind,
            version: info.version.into_string(),
            description: info.description.into_string(),
            abi: plugin_abi,
            path: path.to_path_buf(),
        },
        module,
    })
}

fn library_error(e: LibraryError) -> String {
    match e {
        LibraryError::AbiInstability(details) => {
            let details = details.to_string();
            let first = details.lines().take(6).collect::<Vec<_>>().join(" / ");
            format!("layout mismatch: the plugin's types differ from this host's hearth-plugin-api ({first}); rebuild the plugin against this host's hearth-plugin-api")
        }
        LibraryError::OpenError { err, .. } => format!("cannot open the library: {err}"),
        LibraryError::GetSymbolError { err, .. } => format!("not a Hearth plugin: {err}"),
        LibraryError::InvalidAbiHeader(_) => {
            "built with an incompatible abi_stable version; rebuild it with abi_stable 0.11".to_owned()
        }
        other => other.to_string(),
    }
}

/// What a plugin's `load` and `warmup` may call back into: progress,
/// cancellation and logging. The host implements it per call.
pub trait LoadObserver: Sync {
    /// Sub-progress of the current step.
    fn progress(&self, fraction: f32, message: &str);
    /// True once the host gave up on the step.
    fn is_cancelled(&self) -> bool;
    /// Log name of the service, for plugin log lines.
    fn service(&self) -> &str;
}

/// A [`LoadObserver`] that ignores progress and never cancels, for driving
/// an engine outside the supervisor: benchmarks and tests. The string is the
/// service name plugin log lines are tagged with.
pub struct Unobserved(pub &'static str);

impl LoadObserver for Unobserved {
    fn progress(&self, _fraction: f32, _message: &str) {}

    fn is_cancelled(&self) -> bool {
        false
    }

    fn service(&self) -> &str {
        self.0
    }
}

struct HostCallbacks<'a>(&'a dyn LoadObserver);

impl hearth_plugin_api::HostContext for HostCallbacks<'_> {
    fn progress(&self, fraction: f32, message: RStr<'_>) {
        self.0.progress(fraction, message.as_str());
    }

    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    fn log(&self, level: u8, message: RStr<'_>) {
        let service = self.0.service();
        let message = message.as_str();
        match level {
            0 | 1 => tracing::error!(target: "plugin", service, "{message}"),
            2 => tracing::warn!(target: "plugin", service, "{message}"),
            3 => tracing::info!(target: "plugin", service, "{message}"),
            4 => tracing::debug!(target: "plugin", service, "{message}"),
            _ => tracing::trace!(target: "plugin", service, "{message}"),
        }
    }
}

struct FnAudioSink<F>(F);

impl<F: FnMut(AudioChunk) -> Flow> AudioSink for FnAudioSink<F> {
    fn chunk(&mut self, chunk: AudioChunk) -> Flow {
        (self.0)(chunk)
    }
}

struct FnTokenSink<F>(F);

impl<F: FnMut(&str) -> Flow> TokenSink for FnTokenSink<F> {
    fn token(&mut self, text: RStr<'_>) -> Flow {
        (self.0)(text.as_str())
    }
}

/// One engine instance made by a plugin, with host-friendly methods.
///
/// All methods block; call them from a blocking thread.
pub struct Engine {
    // Declared first so it drops first: the engine's vtable lives in the
    // plugin library, which `plugin` keeps open (forever, in fact).
    engine: EngineBox,
    plugin: Arc<Plugin>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("plugin", &self.plugin.meta.name)
            .finish()
    }
}

fn into_result<T>(r: RResult<T, abi_stable::std_types::RString>) -> std::result::Result<T, String> {
    match r {
        RResult::ROk(v) => Ok(v),
        RResult::RErr(e) => Err(e.into_string()),
    }
}

impl Engine {
    /// The plugin that made it.
    pub fn plugin(&self) -> &PluginMeta {
        &self.plugin.meta
    }

    /// Name, kind, engine version, model.
    pub fn describe(&self) -> EngineInfo {
        self.engine.describe()
    }

    /// Loads the model.
    pub fn load(
        &self,
        config_json: &str,
        base_dir: &Path,
        observer: &dyn LoadObserver,
    ) -> std::result::Result<(), String> {
        let base_dir = base_dir.to_string_lossy();
        let request = LoadRequest {
            config_json: RStr::from_str(config_json),
            base_dir: RStr::from_str(&base_dir),
        };
        let callbacks = HostCallbacks(observer);
        let host: HostRef<'_> = HostContext_TO::from_ptr(&callbacks, TD_Opaque);
        into_result(self.engine.load(request, host))
    }

    /// Runs the model once.
    pub fn warmup(&self, observer: &dyn LoadObserver) -> std::result::Result<WarmupReport, String> {
        let callbacks = HostCallbacks(observer);
        let host: HostRef<'_> = HostContext_TO::from_ptr(&callbacks, TD_Opaque);
        into_result(self.engine.warmup(host))
    }

    /// Cheap health check.
    pub fn health(&self) -> std::result::Result<(), String> {
        into_result(self.engine.health())
    }

    /// Releases the model.
    pub fn shutdown(&self) {
        self.engine.shutdown();
    }

    /// Speaks `text`, one chunk per sentence, into `sink`.
    pub fn synthesize(&self, text: &str, sink: impl FnMut(AudioChunk) -> Flow) -> std::result::Result<(), String> {
        let mut sink = FnAudioSink(sink);
        into_result(
            self.engine
                .synthesize(RStr::from_str(text), AudioSink_TO::from_ptr(&mut sink, TD_Opaque)),
        )
    }

    /// Transcribes audio.
    pub fn transcribe(&self, audio: PcmInput<'_>) -> std::result::Result<Transcript, String> {
        into_result(self.engine.transcribe(audio))
    }

    /// Streams a chat reply into `sink`.
    pub fn chat(
        &self,
        messages: &[ChatMessage],
        sink: impl FnMut(&str) -> Flow,
    ) -> std::result::Result<ChatReport, String> {
        let mut sink = FnTokenSink(sink);
        into_result(self.engine.chat(
            RSlice::from_slice(messages),
            TokenSink_TO::from_ptr(&mut sink, TD_Opaque),
        ))
    }
}

/// Opens a plugin on its own, for `hearth plugin inspect` and `hearth check`.
pub fn inspect(path: &Path) -> Result<Arc<Plugin>> {
    Libraries::default().open(path)
}
