//! The Silero VAD model on ONNX Runtime: one 512-sample frame (plus the
//! 64 samples before it) and the recurrent state in, the speech
//! probability and the next state out.
//!
//! `ort` builds one environment per copy of the crate and opens the
//! runtime library once (see tts-piper's `runtime` module for the same
//! rule); this plugin keeps its environment in a `static`, shared by every
//! engine the host makes from it, and refuses a second, different library.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use ort::{environment::Environment, session::Session, value::Tensor};

use crate::detector::FRAME;

/// Samples of the previous frame the model sees before each frame.
pub const CONTEXT: usize = 64;
/// The size of the recurrent state: 2 × 1 × 128.
pub const STATE: usize = 2 * 128;

/// The environment and the library it came from. Never dropped.
static RUNTIME: OnceLock<(PathBuf, Environment)> = OnceLock::new();
/// Serialises first-time initialisation.
static INIT: Mutex<()> = Mutex::new(());

fn environment(path: &Path) -> Result<&'static Environment, String> {
    let canonical = std::fs::canonicalize(path).map_err(|e| {
        format!(
            "ONNX Runtime library {} not found ({e}): run scripts/fetch-models.sh (or fix runtime in [vad.config])",
            path.display()
        )
    })?;
    let _init = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((opened, env)) = RUNTIME.get() {
        return if *opened == canonical {
            Ok(env)
        } else {
            Err(format!(
                "ONNX Runtime is already loaded in this process from {}; it cannot switch to {} \
                 (restart Hearth to change runtime)",
                opened.display(),
                canonical.display()
            ))
        };
    }
    let env = ort::init_from(&canonical)
        .map_err(|e| {
            format!(
                "cannot load ONNX Runtime from {} ({e}): it must be libonnxruntime.so of onnxruntime 1.17 or \
                 later; run scripts/fetch-models.sh to fetch it",
                path.display()
            )
        })?
        .with_name("hearth-vad-silero")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("ONNX Runtime from {} failed to start: {e}", path.display()))?;
    Ok(&RUNTIME.get_or_init(|| (canonical, env)).1)
}

/// A loaded model. One inference at a time (`ort` runs a session through
/// `&mut`); a frame takes well under a millisecond.
pub struct Model {
    session: Mutex<Session>,
}

/// What one stream carries from frame to frame.
#[derive(Debug, Clone)]
pub struct Memory {
    state: Vec<f32>,
    context: Vec<f32>,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            state: vec![0.0; STATE],
            context: vec![0.0; CONTEXT],
        }
    }
}

impl Model {
    /// Loads `model` with the runtime library at `runtime`, on one thread.
    pub fn load(model: &Path, runtime: &Path) -> Result<Self, String> {
        if !model.is_file() {
            return Err(format!(
                "Silero VAD model {} not found: run scripts/fetch-models.sh (or fix model in [vad.config])",
                model.display()
            ));
        }
        let env = environment(runtime)?;
        let session = Session::builder(env)
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .and_then(|mut b| b.commit_from_file(model))
            .map_err(|e| {
                format!(
                    "ONNX Runtime cannot load {} as a Silero VAD model: {e}",
                    model.display()
                )
            })?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if names != ["input", "state", "sr"] {
            return Err(format!(
                "{} is not a Silero VAD v5/v6 model: its inputs are {names:?}, not [\"input\", \"state\", \"sr\"]",
                model.display()
            ));
        }
        Ok(Self {
            session: Mutex::new(session),
        })
    }

    /// The speech probability of one frame of [`FRAME`] 16 kHz samples.
    pub fn frame(&self, memory: &mut Memory, frame: &[f32]) -> Result<f32, String> {
        debug_assert_eq!(frame.len(), FRAME);
        let failed = |e: ort::Error| format!("Silero VAD failed: {e}");
        let mut input = Vec::with_capacity(CONTEXT + FRAME);
        input.extend_from_slice(&memory.context);
        input.extend_from_slice(frame);
        let inputs = ort::inputs![
            "input" => Tensor::from_array(([1, CONTEXT + FRAME], input)).map_err(failed)?,
            "state" => Tensor::from_array(([2, 1, 128], memory.state.clone())).map_err(failed)?,
            "sr" => Tensor::from_array(((), vec![16_000i64])).map_err(failed)?,
        ];
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(inputs).map_err(failed)?;
        let (_, probability) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        let (_, state) = outputs[1].try_extract_tensor::<f32>().map_err(failed)?;
        if state.len() != STATE || probability.is_empty() {
            return Err(format!(
                "Silero VAD returned {} probabilities and a state of {} values (expected 1 and {STATE})",
                probability.len(),
                state.len()
            ));
        }
        memory.state.copy_from_slice(state);
        memory.context.copy_from_slice(&frame[FRAME - CONTEXT..]);
        Ok(probability[0])
    }
}
