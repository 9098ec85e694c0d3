//! ONNX Runtime: the process-wide environment, and a Piper model session.
//!
//! `ort` 2.0.0-rc.15 lets a process build one environment per copy of the
//! crate, and opens the runtime library once. This plugin is one copy, and
//! the host makes new engine instances from it for retries and swaps, so the
//! environment lives in a `static` and is shared by every instance; it is
//! never dropped (dropping it would leave `ort` unable to build another).
//! The runtime library therefore cannot change without a restart; an engine
//! that asks for another one is refused with a message that says so.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use ort::{
    environment::Environment,
    session::Session,
    value::{Tensor, TensorElementType, ValueType},
};

/// The loaded runtime: where it came from, its version and the environment.
pub struct Runtime {
    /// The library, canonicalised.
    pub path: PathBuf,
    /// ONNX Runtime's version, e.g. `1.32.0`, when it reports one.
    pub version: String,
    env: Environment,
}

/// The environment, once built. Never dropped: see the module doc.
static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// The library `ort` opened, once it did (set even if building the
/// environment then failed, because `ort` keeps the library).
static OPENED: OnceLock<PathBuf> = OnceLock::new();
/// Serialises first-time initialisation; a failed attempt can be retried.
static INIT: Mutex<()> = Mutex::new(());

/// Opens the runtime library at `path` and builds the environment, or
/// returns the one already built from the same library.
pub fn runtime(path: &Path) -> Result<&'static Runtime, String> {
    if !path.is_file() {
        return Err(format!(
            "ONNX Runtime library {} not found: run scripts/fetch-models.sh (or fix runtime in [tts.config])",
            path.display()
        ));
    }
    let canonical = std::fs::canonicalize(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let _init = INIT.lock().unwrap_or_else(|e| e.into_inner());
    let same_library = |opened: &Path| -> Result<(), String> {
        if opened == canonical {
            Ok(())
        } else {
            Err(format!(
                "ONNX Runtime is already loaded in this process from {}; it cannot switch to {} \
                 (restart Hearth to change runtime)",
                opened.display(),
                canonical.display()
            ))
        }
    };
    if let Some(runtime) = RUNTIME.get() {
        same_library(&runtime.path)?;
        return Ok(runtime);
    }
    if let Some(opened) = OPENED.get() {
        same_library(opened)?;
    }
    let builder = ort::init_from(&canonical).map_err(|e| {
        // libloading keeps dlerror()'s text in the error's source.
        let detail = match &e {
            ort::LoadDynamicError::Dlopen { error, .. } => {
                std::error::Error::source(error).map_or_else(|| error.to_string(), |s| s.to_string())
            }
            other => other.to_string(),
        };
        format!(
            "cannot load ONNX Runtime from {} ({detail}): it must be libonnxruntime.so of onnxruntime 1.17 or later \
             (1.32.0 is the tested one); run scripts/fetch-models.sh to fetch it",
            path.display()
        )
    })?;
    let _ = OPENED.set(canonical.clone());
    let env = builder
        .with_name("hearth-tts-piper")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("ONNX Runtime from {} failed to start: {e}", path.display()))?;
    let version = version_of(&canonical).unwrap_or_default();
    Ok(RUNTIME.get_or_init(|| Runtime {
        path: canonical,
        version,
        env,
    }))
}

/// Asks the ONNX Runtime library at `path` (already opened by `ort`) for
/// its version, through `OrtGetApiBase()->GetVersionString()`.
fn version_of(path: &Path) -> Option<String> {
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: `ort` has already opened this very library and run its
    // initialisers, so opening it again only takes another reference to the
    // same handle and runs no new code.
    let library = unsafe { libloading::Library::new(path) }.ok()?;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime
    // release (it is the entry point of the stable C API).
    let get_api_base = unsafe { library.get::<GetApiBase>(b"OrtGetApiBase") }.ok()?;
    // SAFETY: it takes no arguments and returns a pointer to a static struct.
    let base = unsafe { get_api_base() };
    if base.is_null() {
        return None;
    }
    // SAFETY: `base` is non-null and points to the library's static
    // `OrtApiBase`; `GetVersionString` returns a static NUL-terminated
    // string, copied here before `library` (one reference) is dropped.
    let version = unsafe { std::ffi::CStr::from_ptr(((*base).GetVersionString)()) };
    Some(version.to_string_lossy().into_owned())
}

/// A Piper model: a session plus what its inputs need.
pub struct Model {
    session: Session,
    /// Whether the model takes a speaker id (`sid`).
    takes_speaker: bool,
}

impl Model {
    /// Loads `path` into a session with `threads` intra-op threads and
    /// checks that it has Piper's inputs.
    pub fn load(runtime: &Runtime, path: &Path, threads: usize) -> Result<Self, String> {
        let corrupt = |e: &dyn std::fmt::Display| {
            format!(
                "voice model {} could not be loaded by ONNX Runtime ({e}): the file is damaged or \
                 not an ONNX model; delete it and run scripts/fetch-models.sh",
                path.display()
            )
        };
        let session = Session::builder(&runtime.env)
            .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .map_err(|e| format!("cannot configure an ONNX Runtime session: {e}"))?
            .commit_from_file(path)
            .map_err(|e| corrupt(&e))?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for (name, dtype) in [
            ("input", TensorElementType::Int64),
            ("input_lengths", TensorElementType::Int64),
            ("scales", TensorElementType::Float32),
        ] {
            let found = session.inputs().iter().find(|i| i.name() == name);
            match found.map(|i| i.dtype()) {
                Some(ValueType::Tensor { ty, .. }) if *ty == dtype => {}
                _ => {
                    return Err(format!(
                        "{} is not a Piper voice: it needs an input {name:?} of {dtype:?} (its inputs: {})",
                        path.display(),
                        names.join(", ")
                    ))
                }
            }
        }
        if session.outputs().is_empty() {
            return Err(format!("{} is not a Piper voice: it has no output", path.display()));
        }
        let takes_speaker = names.contains(&"sid");
        Ok(Self { session, takes_speaker })
    }

    /// Whether the model takes a speaker id.
    pub fn takes_speaker(&self) -> bool {
        self.takes_speaker
    }

    /// Runs the model on one sentence's ids; returns float audio.
    pub fn infer(&mut self, ids: &[i64], scales: [f32; 3], speaker: Option<i64>) -> Result<Vec<f32>, String> {
        let failed = |e: ort::Error| format!("ONNX Runtime failed to synthesize: {e}");
        let n = ids.len();
        let mut inputs = ort::inputs![
            "input" => Tensor::from_array(([1, n], ids.to_vec())).map_err(failed)?,
            "input_lengths" => Tensor::from_array(([1], vec![n as i64])).map_err(failed)?,
            "scales" => Tensor::from_array(([3], scales.to_vec())).map_err(failed)?,
        ];
        if self.takes_speaker {
            let sid = Tensor::from_array(([1], vec![speaker.unwrap_or(0)])).map_err(failed)?;
            inputs.push(("sid".into(), sid.into()));
        }
        let outputs = self.session.run(inputs).map_err(failed)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        Ok(audio.to_vec())
    }
}
