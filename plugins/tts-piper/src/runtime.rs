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

use crate::graph;

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

/// A loaded Piper model, run one of two ways (see [`crate::graph`]).
///
/// * **Split** (any voice whose graph [`graph::split`] can cut): the front
///   in one session and the decoder in one session per worker, every
///   session on one thread, so `workers` inferences run at once on as many
///   cores. One inference per session at a time (`ort` runs a session
///   through `&mut`), each behind its own lock.
/// * **Whole** (other graphs): the original graph in one session with
///   `workers` intra-op threads, one inference per sentence.
pub struct Model {
    kind: Kind,
    /// Whether the model takes a speaker id (`sid`).
    takes_speaker: bool,
    /// Why the graph was not split, when it was not.
    pub whole_because: Option<String>,
}

enum Kind {
    Split {
        /// The front with a thread per worker, for a text's first sentence.
        fast_front: Mutex<Session>,
        /// The front on one thread, for later sentences (run beside the
        /// decoders); `None` with one worker, where the fast one is lean.
        lean_front: Option<Mutex<Session>>,
        decoders: Vec<Mutex<Session>>,
        latent: String,
        hop: usize,
        context: usize,
    },
    Whole(Mutex<Session>),
}

/// The front's output for one sentence: `[1, channels, frames]` floats.
pub struct Latent {
    channels: usize,
    frames: usize,
    data: Vec<f32>,
}

impl Latent {
    /// Its length in frames.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Frames `range` as a `[1, channels, range.len()]` tensor's data.
    fn slice(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.channels * range.len());
        for c in 0..self.channels {
            out.extend_from_slice(&self.data[c * self.frames + range.start..c * self.frames + range.end]);
        }
        out
    }
}

fn ort_failed(e: ort::Error) -> String {
    format!("ONNX Runtime failed to synthesize: {e}")
}

impl Model {
    /// Loads `path`: split into front and decoder when `stream` and its
    /// graph allows (with `workers` decoder sessions), else whole with
    /// `workers` intra-op threads; then checks that it has Piper's inputs.
    pub fn load(runtime: &Runtime, path: &Path, workers: usize, stream: bool, spinning: bool) -> Result<Self, String> {
        let corrupt = |e: &dyn std::fmt::Display| {
            format!(
                "voice model {} could not be loaded by ONNX Runtime ({e}): the file is damaged or \
                 not an ONNX model; delete it and run scripts/fetch-models.sh",
                path.display()
            )
        };
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read voice model {}: {e}", path.display()))?;
        // With `spinning`, a session of several threads lets them busy-wait
        // between its operations while it runs (the front is thousands of
        // small ones), and stops them when the run ends, so they never take
        // the cores the decoders or other work need afterwards.
        let session = |bytes: &[u8], threads: usize| {
            let spin = spinning && threads > 1;
            Session::builder(&runtime.env)
                .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
                .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
                .and_then(|b| b.with_intra_op_spinning(spin).map_err(Into::into))
                .and_then(|b| {
                    b.with_config_entry("session.force_spinning_stop", "1")
                        .map_err(Into::into)
                })
                .and_then(|b| b.with_inter_op_spinning(false).map_err(Into::into))
                .map_err(|e| format!("cannot configure an ONNX Runtime session: {e}"))?
                .commit_from_memory(bytes)
                .map_err(|e| corrupt(&e))
        };
        let split = if stream {
            graph::split(&bytes)
        } else {
            Err("stream = false".to_owned())
        };
        let (kind, whole_because) = match split {
            Ok(split) => {
                let workers = workers.max(1);
                // Each session parses and optimises its graph on one core:
                // built side by side, load takes about as long as the
                // slowest instead of the sum (2 + workers sessions).
                let (fast_front, lean_front, decoders) = std::thread::scope(|scope| {
                    let (session, front, decoder) = (&session, &split.front[..], &split.decoder[..]);
                    let fast = scope.spawn(move || session(front, workers));
                    let lean = (workers > 1).then(|| scope.spawn(move || session(front, 1)));
                    let decoders: Vec<_> = (0..workers).map(|_| scope.spawn(move || session(decoder, 1))).collect();
                    let join = |handle: std::thread::ScopedJoinHandle<'_, Result<Session, String>>| {
                        handle
                            .join()
                            .unwrap_or_else(|_| Err("building an ONNX Runtime session panicked".to_owned()))
                            .map(Mutex::new)
                    };
                    let fast = join(fast);
                    let lean = lean.map(join).transpose();
                    let decoders = decoders.into_iter().map(join).collect::<Result<Vec<_>, _>>();
                    Ok::<_, String>((fast?, lean?, decoders?))
                })?;
                let kind = Kind::Split {
                    fast_front,
                    lean_front,
                    decoders,
                    latent: split.latent,
                    hop: split.hop,
                    context: split.context,
                };
                (kind, None)
            }
            Err(why) => (Kind::Whole(Mutex::new(session(&bytes, workers.max(1))?)), Some(why)),
        };
        let takes_speaker = {
            let first = match &kind {
                Kind::Split { fast_front, .. } => fast_front,
                Kind::Whole(session) => session,
            };
            check_inputs(&first.lock().unwrap_or_else(|e| e.into_inner()), path)?
        };
        Ok(Self {
            kind,
            takes_speaker,
            whole_because,
        })
    }

    /// Whether the model takes a speaker id.
    pub fn takes_speaker(&self) -> bool {
        self.takes_speaker
    }

    /// How many decoder sessions (workers) a split model has; `None` when
    /// it runs whole.
    pub fn workers(&self) -> Option<usize> {
        match &self.kind {
            Kind::Split { decoders, .. } => Some(decoders.len()),
            Kind::Whole(_) => None,
        }
    }

    /// Samples per latent frame and frames of decoder context, when split.
    pub fn hop_and_context(&self) -> Option<(usize, usize)> {
        match &self.kind {
            Kind::Split { hop, context, .. } => Some((*hop, *context)),
            Kind::Whole(_) => None,
        }
    }

    fn inputs(&self, ids: &[i64], scales: [f32; 3], speaker: Option<i64>) -> Result<SessionInputs, String> {
        let n = ids.len();
        let mut inputs = ort::inputs![
            "input" => Tensor::from_array(([1, n], ids.to_vec())).map_err(ort_failed)?,
            "input_lengths" => Tensor::from_array(([1], vec![n as i64])).map_err(ort_failed)?,
            "scales" => Tensor::from_array(([3], scales.to_vec())).map_err(ort_failed)?,
        ];
        if self.takes_speaker {
            let sid = Tensor::from_array(([1], vec![speaker.unwrap_or(0)])).map_err(ort_failed)?;
            inputs.push(("sid".into(), sid.into()));
        }
        Ok(inputs)
    }

    /// Runs every decoder session once, on a few frames of the sentence
    /// `ids`: a session's first run allocates its buffers, which should not
    /// delay a request. Nothing to do on a whole model.
    pub fn warm_decoders(&self, ids: &[i64], scales: [f32; 3], speaker: Option<i64>) -> Result<(), String> {
        let Kind::Split { decoders, .. } = &self.kind else {
            return Ok(());
        };
        let latent = self.front(ids, scales, speaker, true)?;
        let frames = latent.frames().min(8);
        for worker in 0..decoders.len() {
            self.decode(worker, &latent, 0..frames)?;
        }
        Ok(())
    }

    /// A whole model: one sentence's ids to float audio.
    pub fn infer(&self, ids: &[i64], scales: [f32; 3], speaker: Option<i64>) -> Result<Vec<f32>, String> {
        let Kind::Whole(session) = &self.kind else {
            return Err("infer on a split model".into());
        };
        let inputs = self.inputs(ids, scales, speaker)?;
        let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(inputs).map_err(ort_failed)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(ort_failed)?;
        Ok(audio.to_vec())
    }

    /// A split model's front, on the fast session (a thread per worker)
    /// or the lean one: one sentence's ids to latent frames.
    pub fn front(&self, ids: &[i64], scales: [f32; 3], speaker: Option<i64>, fast: bool) -> Result<Latent, String> {
        let Kind::Split {
            fast_front, lean_front, ..
        } = &self.kind
        else {
            return Err("front of a whole model".into());
        };
        let front = match lean_front {
            Some(lean) if !fast => lean,
            _ => fast_front,
        };
        let inputs = self.inputs(ids, scales, speaker)?;
        let mut session = front.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(inputs).map_err(ort_failed)?;
        let (shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(ort_failed)?;
        let &[1, channels, frames] = &shape[..] else {
            return Err(format!(
                "the voice's latent frames have shape {shape:?}, not [1, channels, frames]"
            ));
        };
        Ok(Latent {
            channels: channels as usize,
            frames: frames as usize,
            data: data.to_vec(),
        })
    }

    /// A split model's decoder, on session `worker`: the audio of frames
    /// `range` of `latent`, exactly as decoding them all would give it
    /// (decoded with [`graph::Split::context`] frames on either side,
    /// which are cut off again).
    pub fn decode(&self, worker: usize, latent: &Latent, range: std::ops::Range<usize>) -> Result<Vec<f32>, String> {
        let Kind::Split {
            decoders,
            latent: name,
            hop,
            context,
            ..
        } = &self.kind
        else {
            return Err("decode on a whole model".into());
        };
        let padded = range.start.saturating_sub(*context)..(range.end + context).min(latent.frames);
        let input = Tensor::from_array(([1, latent.channels, padded.len()], latent.slice(padded.clone())))
            .map_err(ort_failed)?;
        let mut session = decoders[worker % decoders.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(ort::inputs![name.as_str() => input]).map_err(ort_failed)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(ort_failed)?;
        let skip = (range.start - padded.start) * hop;
        let take = range.len() * hop;
        audio
            .get(skip..skip + take)
            .map(<[f32]>::to_vec)
            .ok_or_else(|| format!("the decoder gave {} samples for {} frames", audio.len(), padded.len()))
    }
}

/// The session inputs of one sentence.
type SessionInputs = Vec<(std::borrow::Cow<'static, str>, ort::session::SessionInputValue<'static>)>;

/// Checks that `session` has Piper's inputs; answers whether it takes `sid`.
fn check_inputs(session: &Session, path: &Path) -> Result<bool, String> {
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
    Ok(names.contains(&"sid"))
}
