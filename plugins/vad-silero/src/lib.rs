//! Hearth's `vad` engine: Silero VAD (v5/v6 ONNX, from the `silero-vad`
//! package on PyPI) run by ONNX Runtime, streaming: audio in pieces of any
//! length, speech starts and ends out.
//!
//! ```toml
//! [vad]
//! plugin = "vad-silero"
//! [vad.config]
//! model = "models/vad/silero_vad.onnx"                           # the default
//! runtime = "models/onnxruntime/libonnxruntime.so.1.32.0"        # the default
//! threshold = 0.5        # speech probability from which a frame is speech
//! min_speech_ms = 250    # shorter speech is ignored
//! min_silence_ms = 300   # a shorter pause does not end speech
//! pad_ms = 100           # added before each start and after each end
//! ```
//!
//! Each stream keeps the model's recurrent state, the last 64 samples and
//! samples short of a whole 32 ms frame; see [`detector`] for how the
//! knobs turn probabilities into events.

pub mod detector;
pub mod model;

use std::sync::OnceLock;

use hearth_plugin_api::{
    export_plugin, Context, Description, PluginError, PluginResult, VadEngine, VadEvent, Warmable,
};
use serde::Deserialize;

use detector::{Detector, Knobs, FRAME};
use model::{Memory, Model};

/// The `[vad.config]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Silero VAD model, relative to `plugins.toml`.
    #[serde(default = "default_model")]
    pub model: String,
    /// The ONNX Runtime library, relative to `plugins.toml`.
    #[serde(default = "default_runtime")]
    pub runtime: String,
    /// Speech probability from which a frame is speech (0–1).
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Speech shorter than this is ignored.
    #[serde(default = "default_min_speech")]
    pub min_speech_ms: u64,
    /// A pause shorter than this does not end speech.
    #[serde(default = "default_min_silence")]
    pub min_silence_ms: u64,
    /// Added before each start and after each end.
    #[serde(default = "default_pad")]
    pub pad_ms: u64,
}

fn default_model() -> String {
    "models/vad/silero_vad.onnx".into()
}
fn default_runtime() -> String {
    "models/onnxruntime/libonnxruntime.so.1.32.0".into()
}
fn default_threshold() -> f32 {
    0.5
}
fn default_min_speech() -> u64 {
    250
}
fn default_min_silence() -> u64 {
    300
}
fn default_pad() -> u64 {
    100
}

impl Settings {
    fn knobs(&self) -> PluginResult<Knobs> {
        if !(0.15..1.0).contains(&self.threshold) {
            return Err(PluginError::new(format!(
                "`threshold` = {} is out of range: use a speech probability from 0.15 to 1 (default 0.5)",
                self.threshold
            )));
        }
        for (key, value) in [
            ("min_speech_ms", self.min_speech_ms),
            ("min_silence_ms", self.min_silence_ms),
            ("pad_ms", self.pad_ms),
        ] {
            if value > 10_000 {
                return Err(PluginError::new(format!("`{key}` = {value} is more than 10000 ms")));
            }
        }
        Ok(Knobs {
            threshold: self.threshold,
            min_speech_ms: self.min_speech_ms,
            min_silence_ms: self.min_silence_ms,
            pad_ms: self.pad_ms,
        })
    }
}

struct Loaded {
    model: Model,
    knobs: Knobs,
    name: String,
}

/// The engine. Empty until `load`.
#[derive(Default)]
pub struct SileroVad {
    loaded: OnceLock<Loaded>,
}

/// One stream: the model's memory, the detector and samples short of a
/// frame.
pub struct Stream {
    memory: Memory,
    detector: Detector,
    pending: Vec<f32>,
}

impl SileroVad {
    fn loaded(&self) -> PluginResult<&Loaded> {
        self.loaded
            .get()
            .ok_or_else(|| PluginError::new("the Silero VAD model is not loaded"))
    }
}

impl Warmable for SileroVad {
    type Config = Settings;

    fn describe(&self) -> Description {
        Description {
            name: "silero-vad".into(),
            engine_version: "onnxruntime (ort 2.0.0-rc.15)".into(),
            model: self.loaded.get().map(|l| l.name.clone()),
        }
    }

    fn load(&self, settings: Settings, ctx: &Context<'_>) -> PluginResult<()> {
        let knobs = settings.knobs()?;
        let path = ctx.resolve_path(&settings.model);
        ctx.progress(0.0, "loading the Silero VAD model");
        let model = Model::load(&path, &ctx.resolve_path(&settings.runtime))?;
        let name = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.loaded
            .set(Loaded { model, knobs, name })
            .map_err(|_| PluginError::new("already loaded"))?;
        ctx.progress(1.0, "loaded");
        Ok(())
    }

    fn warmup(&self, _ctx: &Context<'_>) -> PluginResult<String> {
        let loaded = self.loaded()?;
        let mut memory = Memory::default();
        for _ in 0..4 {
            loaded.model.frame(&mut memory, &[0.0; FRAME])?;
        }
        Ok("ran 4 frames of silence".into())
    }

    fn health(&self) -> PluginResult<()> {
        self.loaded().map(drop)
    }
}

impl VadEngine for SileroVad {
    type Stream = Stream;

    fn open(&self) -> PluginResult<Stream> {
        self.loaded()?;
        Ok(Stream {
            memory: Memory::default(),
            detector: Detector::default(),
            pending: Vec::with_capacity(FRAME),
        })
    }

    fn push(&self, stream: &mut Stream, samples: &[f32]) -> PluginResult<Vec<VadEvent>> {
        let loaded = self.loaded()?;
        let mut events = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME - stream.pending.len()).min(rest.len());
            stream.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if stream.pending.len() < FRAME {
                break;
            }
            let probability = loaded.model.frame(&mut stream.memory, &stream.pending)?;
            stream.pending.clear();
            events.extend(stream.detector.frame(probability, &loaded.knobs));
        }
        Ok(events)
    }
}

export_plugin!(vad: SileroVad, SileroVad::default);
