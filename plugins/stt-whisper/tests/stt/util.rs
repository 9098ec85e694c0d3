//! Shared helpers: where the model and the JFK clip are, the shared engine,
//! model files for load failures, and text comparison. Host contexts,
//! temporary directories and transcription as plain Rust come from the
//! plugin API's test kit.
//!
//! Missing assets fail the test with what to run; nothing is skipped.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use hearth_plugin_api::{
    client::{Audio, Module, Samples, Transcription},
    testkit::{self, tempfile::TempDir},
};
use hearth_stt_whisper::WhisperStt;

/// What the JFK clip says (tiny.en gets it exactly), normalised.
pub const JFK: &str =
    "and so my fellow americans ask not what your country can do for you ask what you can do for your country";

/// The repository root (the directory of the default `plugins.toml`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn asset(relative: &str) -> PathBuf {
    let path = root().join(relative);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-models.sh (it fetches and converts the Whisper model and the JFK clip)",
        path.display()
    );
    path
}

/// The default model, relative to [`root`] as in `plugins.toml`.
pub const MODEL: &str = "models/whisper/ggml-tiny.en.bin";

/// The absolute path of the default model; fails if it is missing.
pub fn model_path() -> PathBuf {
    asset(MODEL)
}

/// A quantized copy of the default model (`"q8_0"` or `"q5_1"`), as
/// `scripts/fetch-models.sh` converts it; fails if it is missing.
pub fn quantized_model_path(kind: &str) -> PathBuf {
    asset(&format!("models/whisper/ggml-tiny.en-{kind}.bin"))
}

/// The plugin's root module, as the host reads it from the library.
pub fn module() -> Module {
    Module::new(hearth_stt_whisper::hearth_plugin_root_module())
}

/// The JFK clip's samples: 16 kHz mono, as f32 in [-1, 1].
pub fn jfk() -> &'static [f32] {
    static SAMPLES: OnceLock<Vec<f32>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let mut reader = hound::WavReader::open(asset("samples/jfk.wav")).expect("readable jfk.wav");
        let spec = reader.spec();
        assert_eq!(
            (
                spec.sample_rate,
                spec.channels,
                spec.bits_per_sample,
                spec.sample_format
            ),
            (16_000, 1, 16, hound::SampleFormat::Int),
            "jfk.wav should be 16 kHz mono PCM16"
        );
        reader
            .samples::<i16>()
            .map(|s| f32::from(s.expect("jfk.wav sample")) / 32768.0)
            .collect()
    })
}

/// Interleaved f32 `samples` as audio to transcribe.
pub fn f32_audio(sample_rate: u32, channels: u16, samples: &[f32]) -> Audio {
    Audio {
        sample_rate,
        channels,
        samples: Samples::F32(samples.to_vec()),
    }
}

/// Lower case, letters, digits and single spaces only.
pub fn normalize(text: &str) -> String {
    text.chars()
        .filter(|&c| c != '\'')
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Loads a fresh engine with `config_json`; returns the load result.
pub fn load(config_json: &str) -> (WhisperStt, Result<(), String>) {
    let engine = WhisperStt::default();
    let (result, _host) = testkit::load(&engine, config_json, &root());
    (engine, result.map_err(|e| e.0))
}

/// One engine with the default configuration, shared by the tests of a
/// binary (transcriptions take turns on it anyway).
pub fn engine() -> &'static WhisperStt {
    static ENGINE: OnceLock<WhisperStt> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let (engine, result) = load("{}");
        result.expect("the default model loads");
        engine
    })
}

/// Transcribes f32 samples.
pub fn transcribe_f32(engine: &WhisperStt, rate: u32, channels: u16, samples: &[f32]) -> Transcription {
    testkit::transcribe(engine, &f32_audio(rate, channels, samples)).unwrap_or_else(|e| panic!("transcribe: {e}"))
}

/// A model file in a temporary directory of its own, removed on drop.
pub struct ModelFile {
    _dir: TempDir,
    /// `{"model": "<its absolute path>"}`.
    pub config: String,
}

impl ModelFile {
    /// Writes `bytes` as `name`.
    pub fn new(name: &str, bytes: &[u8]) -> Self {
        let dir = testkit::tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write the model file");
        let config = serde_json::json!({ "model": path }).to_string();
        Self { _dir: dir, config }
    }
}

/// The first `len` bytes of the default model.
pub fn truncated_model(len: u64) -> ModelFile {
    let bytes = std::fs::read(model_path()).expect("read model");
    ModelFile::new("truncated.bin", &bytes[..len as usize])
}
