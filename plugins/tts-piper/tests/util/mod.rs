//! Shared helpers of the integration tests: where the models are, engines
//! made and loaded through the plugin's exported entry points (as the host
//! does), and what this voice's audio must look like.
//!
//! The tests use the real voice and runtime that `scripts/fetch-models.sh`
//! puts under `models/`; when they are missing the tests fail (never skip)
//! and say to run it.
#![allow(dead_code)] // Each test binary uses a different part.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use hearth_plugin_api::{
    client::{Calls, Instance, Module, Speech},
    testkit::{rms, AudioCollector, RecordingHost},
};
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

/// The plugin's root module, as the host reads it from the library.
pub fn module() -> Module {
    Module::new(hearth_tts_piper::hearth_plugin_root_module())
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

/// Makes a new engine and loads it with `config_json`.
pub fn load(config_json: &str) -> Result<Instance, String> {
    load_observed(config_json, &RecordingHost::new())
}

/// Like [`load`], reporting to `host`.
pub fn load_observed(config_json: &str, host: &RecordingHost) -> Result<Instance, String> {
    let engine = module().new_engine()?;
    engine.load(config_json, &repo_root(), host)?;
    Ok(engine)
}

/// One engine with the default config, loaded and warmed once per test
/// process, for tests that only synthesize.
pub fn shared_engine() -> &'static Instance {
    static ENGINE: OnceLock<Instance> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = load(&config(json!({}))).unwrap_or_else(|e| panic!("the voice did not load: {e}"));
        engine
            .warmup(&RecordingHost::new())
            .unwrap_or_else(|e| panic!("warmup failed: {e}"));
        engine
    })
}

/// Synthesizes `text`, taking every chunk.
pub fn speak(engine: &Instance, text: &str) -> Result<Vec<Speech>, String> {
    collect(engine, text, AudioCollector::new())
}

/// Synthesizes `text`, answering stop once `limit` chunks arrived.
pub fn speak_until(engine: &Instance, text: &str, limit: usize) -> Result<Vec<Speech>, String> {
    collect(engine, text, AudioCollector::stop_after(limit))
}

fn collect(engine: &Instance, text: &str, mut collector: AudioCollector) -> Result<Vec<Speech>, String> {
    engine.synthesize(text, &mut |chunk| collector.take(chunk))?;
    Ok(collector.chunks)
}

/// The chunks joined per sentence: a chunk with empty text continues the
/// sentence before it.
pub fn sentences(chunks: &[Speech]) -> Vec<Speech> {
    let mut out: Vec<Speech> = Vec::new();
    for chunk in chunks {
        match out.last_mut() {
            Some(last) if chunk.text.is_empty() => {
                assert_eq!(last.sample_rate, chunk.sample_rate);
                last.samples.extend_from_slice(&chunk.samples);
            }
            _ => {
                assert!(!chunk.text.is_empty(), "the first chunk has no text");
                out.push(chunk.clone());
            }
        }
    }
    out
}

/// Total seconds of audio.
pub fn seconds(chunks: &[Speech]) -> f64 {
    chunks.iter().map(Speech::seconds).sum()
}

/// Asserts that speech for `text` has a plausible length: English is read
/// at about 10 to 20 characters a second, so allow 4 to 40.
pub fn assert_plausible_length(text: &str, chunks: &[Speech]) {
    let chars = text.chars().filter(|c| c.is_alphanumeric()).count() as f64;
    let secs = seconds(chunks);
    assert!(
        secs > chars / 40.0 && secs < chars / 4.0 + 1.0,
        "{secs:.2} s of audio for {chars} letters of {text:?}"
    );
}

/// Asserts that a chunk is at the voice's rate and clearly not silent.
pub fn assert_audible(chunk: &Speech) {
    assert_eq!(chunk.sample_rate, 22_050, "the voice's rate");
    assert!(!chunk.samples.is_empty(), "empty chunk for {:?}", chunk.text);
    // Piper normalises each sentence to full scale; speech then has an RMS
    // of several thousand. Silence or noise-floor output would be far below.
    let rms = rms(&chunk.samples);
    assert!(rms > 1_000.0, "RMS {rms:.0} for {:?}: silent?", chunk.text);
}
