//! Shared helpers of the integration tests: where the models and the built
//! plugin are, loading engines through the host's loader, and measuring the
//! audio they send.
//!
//! The tests use the real voice and runtime that `scripts/fetch-models.sh`
//! puts under `models/`; when they are missing the tests fail (never skip)
//! and say to run it.
#![allow(dead_code)] // Each test binary uses a different part.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use hearth::plugin::{Engine, Libraries, LoadObserver, Plugin};
use hearth_plugin_api::Flow;
use serde_json::{json, Value};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model files the tests need.
pub struct Models {
    /// `models/piper/en_US-joe-medium.onnx` (its `.json` beside it).
    pub voice: PathBuf,
    /// `models/onnxruntime/libonnxruntime.so.1.32.0`.
    pub runtime: PathBuf,
}

/// The voice and runtime, or a failure saying how to fetch them.
pub fn models() -> Models {
    let root = repo_root();
    let models = Models {
        voice: root.join("models/piper/en_US-joe-medium.onnx"),
        runtime: root.join("models/onnxruntime/libonnxruntime.so.1.32.0"),
    };
    let json = PathBuf::from(format!("{}.json", models.voice.display()));
    for file in [&models.voice, &json, &models.runtime] {
        assert!(
            file.is_file(),
            "{} is missing: run scripts/fetch-models.sh (or scripts/fetch-models.sh --only tts) first",
            file.display()
        );
    }
    models
}

/// The built cdylib. `cargo test` builds the library with both its crate
/// types into `deps/` beside the test executable, so that copy matches the
/// code under test; failing that, `$CARGO_TARGET_DIR/<profile>/` or the
/// workspace's `target/<profile>/` (what `cargo build` leaves).
pub fn plugin_path() -> PathBuf {
    const FILE: &str = "libhearth_tts_piper.so";
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let mut candidates = Vec::new();
    if let Some(deps) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        candidates.push(deps.join(FILE));
        if let Some(profile_dir) = deps.parent() {
            candidates.push(profile_dir.join(FILE));
        }
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join(profile).join(FILE));
    }
    candidates.push(repo_root().join("target").join(profile).join(FILE));
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "the plugin library is not built; looked at {}: run `cargo build -p hearth-tts-piper` \
             (with the same CARGO_TARGET_DIR as the tests)",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The plugin, opened once per test process through the host's loader.
pub fn plugin() -> Arc<Plugin> {
    static LIBRARIES: OnceLock<Libraries> = OnceLock::new();
    LIBRARIES
        .get_or_init(Libraries::default)
        .open(&plugin_path())
        .unwrap_or_else(|e| panic!("the host refused the plugin: {e}"))
}

/// A config with absolute paths to the real models, plus `extra` keys
/// (a `null` value removes a key).
pub fn config(extra: Value) -> String {
    let models = models();
    let mut config = json!({
        "voice": models.voice,
        "runtime": models.runtime,
    });
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        if value.is_null() {
            config.as_object_mut().unwrap().remove(&key);
        } else {
            config[key] = value;
        }
    }
    config.to_string()
}

/// Records what a plugin reports during `load` and `warmup`.
#[derive(Default)]
pub struct Recorder {
    /// Every `(fraction, message)` reported.
    pub progress: Mutex<Vec<(f32, String)>>,
}

impl LoadObserver for Recorder {
    fn progress(&self, fraction: f32, message: &str) {
        self.progress.lock().unwrap().push((fraction, message.to_owned()));
    }
    fn is_cancelled(&self) -> bool {
        false
    }
    fn service(&self) -> &str {
        "tts"
    }
}

/// Makes a new engine and loads it with `config_json`.
pub fn load(config_json: &str) -> Result<Engine, String> {
    load_observed(config_json, &Recorder::default())
}

/// Like [`load`], reporting to `observer`.
pub fn load_observed(config_json: &str, observer: &Recorder) -> Result<Engine, String> {
    let engine = plugin().new_engine()?;
    engine.load(config_json, &repo_root(), observer)?;
    Ok(engine)
}

/// One engine with the default config, loaded and warmed once per test
/// process, for tests that only synthesize.
pub fn shared_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = load(&config(json!({}))).unwrap_or_else(|e| panic!("the voice did not load: {e}"));
        engine
            .warmup(&Recorder::default())
            .unwrap_or_else(|e| panic!("warmup failed: {e}"));
        engine
    })
}

/// One chunk as received.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub sample_rate: u32,
    pub samples: Vec<i16>,
    pub text: String,
}

impl Chunk {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }

    /// Root mean square on the i16 scale (full scale is 32767).
    pub fn rms(&self) -> f64 {
        rms(&self.samples)
    }
}

/// Root mean square of PCM16 samples.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Synthesizes `text`, taking every chunk.
pub fn speak(engine: &Engine, text: &str) -> Result<Vec<Chunk>, String> {
    speak_until(engine, text, usize::MAX)
}

/// Synthesizes `text`, answering `Flow::Stop` once `limit` chunks arrived.
pub fn speak_until(engine: &Engine, text: &str, limit: usize) -> Result<Vec<Chunk>, String> {
    let mut chunks = Vec::new();
    engine.synthesize(text, |chunk| {
        chunks.push(Chunk {
            sample_rate: chunk.sample_rate,
            samples: chunk.samples.to_vec(),
            text: chunk.text.to_string(),
        });
        if chunks.len() >= limit {
            Flow::Stop
        } else {
            Flow::Continue
        }
    })?;
    Ok(chunks)
}

/// Total seconds of audio.
pub fn seconds(chunks: &[Chunk]) -> f64 {
    chunks.iter().map(Chunk::seconds).sum()
}

/// Asserts that speech for `text` has a plausible length: English is read
/// at about 10 to 20 characters a second, so allow 4 to 40.
pub fn assert_plausible_length(text: &str, chunks: &[Chunk]) {
    let chars = text.chars().filter(|c| c.is_alphanumeric()).count() as f64;
    let secs = seconds(chunks);
    assert!(
        secs > chars / 40.0 && secs < chars / 4.0 + 1.0,
        "{secs:.2} s of audio for {chars} letters of {text:?}"
    );
}

/// Asserts that a chunk is at the voice's rate and clearly not silent.
pub fn assert_audible(chunk: &Chunk) {
    assert_eq!(chunk.sample_rate, 22_050, "the voice's rate");
    assert!(!chunk.samples.is_empty(), "empty chunk for {:?}", chunk.text);
    // Piper normalises each sentence to full scale; speech then has an RMS
    // of several thousand. Silence or noise-floor output would be far below.
    assert!(
        chunk.rms() > 1_000.0,
        "RMS {:.0} for {:?}: silent?",
        chunk.rms(),
        chunk.text
    );
}

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Makes one named after the test.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hearth-tts-piper-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
