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

use hearth_plugin_api::{
    abi_stable::library::{lib_header_from_path, LibraryError, ROOT_MODULE_LOADER_NAME},
    client::Module,
    AbiVersion, EngineKind, PluginModRef, ABI_VERSION,
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
    module: Module,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("meta", &self.meta).finish()
    }
}

impl Plugin {
    /// Validates a `config` table (JSON) without loading anything.
    pub fn check_config(&self, config_json: &str) -> std::result::Result<(), String> {
        self.module.check_config(config_json)
    }

    /// The root module, for the conformance kit.
    pub fn module(&self) -> Module {
        self.module
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

/// The largest file accepted as a plugin library (1 GiB: the real ones are
/// a few MiB to some tens).
pub const MAX_PLUGIN_BYTES: u64 = 1 << 30;

/// Checks, without running any of its code, that `path` is an ELF shared
/// object exporting `abi_stable`'s root module symbol.
fn validate_file(path: &Path, stem: &str) -> Result<()> {
    // Before reading anything: a FIFO would block the read and a device such
    // as /dev/zero would never end.
    let metadata = std::fs::metadata(path).map_err(|source| HostError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(refused(path, stem, "not a Hearth plugin: not a regular file"));
    }
    if metadata.len() > MAX_PLUGIN_BYTES {
        return Err(refused(
            path,
            stem,
            format!(
                "not a Hearth plugin: {} MiB is larger than any plugin library ({} MiB at most)",
                metadata.len() >> 20,
                MAX_PLUGIN_BYTES >> 20
            ),
        ));
    }
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
    // Each minor version's layout is checked as that version laid it out
    // (see `hearth_plugin_api::abi_v1_0`).
    let module = if plugin_abi < hearth_plugin_api::ABI_V1_1 {
        header
            .init_root_module::<hearth_plugin_api::abi_v1_0::PluginModRef>()
            .map(Module::v1_0)
    } else if plugin_abi < hearth_plugin_api::ABI_V1_2 {
        header
            .init_root_module::<hearth_plugin_api::abi_v1_1::PluginModRef>()
            .map(Module::v1_1)
    } else {
        header.init_root_module::<PluginModRef>().map(Module::new)
    };
    let module = module.map_err(|e| {
        refused(
            path,
            &stem,
            format!("host ABI {ABI_VERSION}, plugin ABI {plugin_abi}: {}", library_error(e)),
        )
    })?;
    let info = module.info();
    Ok(Plugin {
        meta: PluginMeta {
            name: info.name,
            kind: module.kind(),
            version: info.version,
            description: info.description,
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
            tracing::debug!("layout mismatch in full: {details}");
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

/// Opens a plugin on its own, in this process: for the worker (which opens
/// its one plugin) and `hearth plugin test --isolation in-process`.
pub fn inspect(path: &Path) -> Result<Arc<Plugin>> {
    Libraries::default().open(path)
}
