//! The `[tts.config]` table in two layers: [`Config`] as written (what
//! `hearth check` validates, unknown keys refused), and [`Settings`], with
//! paths resolved, defaults applied and values checked, which `load` uses.
//!
//! ```toml
//! [tts.config]
//! voice = "models/piper/en_US-joe-medium.onnx"          # required
//! runtime = "models/onnxruntime/libonnxruntime.so.1.32.0" # else $ORT_DYLIB_PATH
//! # voice_config = "<voice>.json"   # the voice's .onnx.json
//! # threads = 2                     # inferences at once (each on one core); default:
//! #                                 # one per core this process may use, at most 4
//! # spinning = true                 # a text's first front: its threads busy-wait between
//! #                                 # operations while it runs (never after it)
//! # stream = true                   # split the graph: first audio early, parts on all
//! #                                 # threads; false: one whole inference per sentence
//! # speaker = 0                     # id or name, for multi-speaker voices
//! # length_scale = 1.0              # defaults: the voice's .onnx.json
//! # noise_scale = 0.667
//! # noise_w = 0.8
//! # espeak_data = "/usr/lib/x86_64-linux-gnu/espeak-ng-data"  # else espeak-ng's own
//! # normalize = true                # scale each sentence to full range, as Piper does
//! # volume = 1.0
//! # warmup_text = "Hello world."
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The environment variable read when `runtime` is not set.
pub const RUNTIME_ENV: &str = "ORT_DYLIB_PATH";

/// A speaker of a multi-speaker voice: its id or its name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Speaker {
    /// The model's speaker id.
    Id(i64),
    /// A name from the voice's `speaker_id_map`.
    Name(String),
}

/// The most threads the default picks. A sentence gives only a few parts
/// to decode at once (see `synth.rs`), so more workers rarely find work,
/// and the host runs speech recognition and chat beside the voice.
pub const MAX_DEFAULT_THREADS: u32 = 4;

/// Threads when `threads` is not set: one per core this process may use
/// (the standard library counts the CPU affinity mask and the cgroup CPU
/// quota, so a container limited to 1.5 CPUs gets 1), at most
/// [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() as u32)
        .clamp(1, MAX_DEFAULT_THREADS)
}

/// `[tts.config]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The voice model (`.onnx`).
    pub voice: PathBuf,
    /// The voice's config; default: the model's path plus `.json`.
    #[serde(default)]
    pub voice_config: Option<PathBuf>,
    /// The ONNX Runtime shared library; default: `$ORT_DYLIB_PATH`.
    #[serde(default)]
    pub runtime: Option<PathBuf>,
    /// Inferences at once, each on one thread; default [`default_threads`].
    #[serde(default)]
    pub threads: Option<u32>,
    /// Whether the threads of a multi-threaded session spin while it runs;
    /// default true.
    #[serde(default)]
    pub spinning: Option<bool>,
    /// Split the graph into front and decoder (see `graph.rs`); default true.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Speaker id or name for multi-speaker voices.
    #[serde(default)]
    pub speaker: Option<Speaker>,
    /// Speaking rate (larger is slower); default from the voice.
    #[serde(default)]
    pub length_scale: Option<f32>,
    /// Audio variation; default from the voice.
    #[serde(default)]
    pub noise_scale: Option<f32>,
    /// Duration variation; default from the voice.
    #[serde(default)]
    pub noise_w: Option<f32>,
    /// The `espeak-ng-data` directory; default: espeak-ng's built-in path.
    #[serde(default)]
    pub espeak_data: Option<PathBuf>,
    /// Scale each sentence to full range; default true.
    #[serde(default)]
    pub normalize: Option<bool>,
    /// Output gain after normalisation; default 1.0.
    #[serde(default)]
    pub volume: Option<f32>,
    /// What warmup speaks; default "Hello world.".
    #[serde(default)]
    pub warmup_text: Option<String>,
}

/// The configuration `load` works with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The voice model, resolved.
    pub voice: PathBuf,
    /// The voice config, resolved.
    pub voice_config: PathBuf,
    /// The ONNX Runtime library, resolved.
    pub runtime: PathBuf,
    /// Inferences at once (or intra-op threads of a voice run whole), 1 to 64.
    pub threads: usize,
    /// Whether multi-threaded sessions spin while they run.
    pub spinning: bool,
    /// Whether to split the graph (when it can be split).
    pub stream: bool,
    /// Speaker, checked against the voice at load.
    pub speaker: Option<Speaker>,
    /// Overrides of the voice's scales, each finite and positive (noise
    /// scales may be zero).
    pub length_scale: Option<f32>,
    /// See `length_scale`.
    pub noise_scale: Option<f32>,
    /// See `length_scale`.
    pub noise_w: Option<f32>,
    /// espeak-ng data, resolved; `None` for espeak-ng's default.
    pub espeak_data: Option<PathBuf>,
    /// Peak-normalise each sentence.
    pub normalize: bool,
    /// Gain, finite and non-negative.
    pub volume: f32,
    /// Warmup phrase, not blank.
    pub warmup_text: String,
}

impl Settings {
    /// Applies defaults, resolves paths with `resolve` (relative to
    /// `plugins.toml`) and checks values. `env_runtime` is the value of
    /// [`RUNTIME_ENV`], passed in so that tests need not touch the process
    /// environment.
    pub fn resolve(
        config: Config,
        resolve: impl Fn(&Path) -> PathBuf,
        env_runtime: Option<String>,
    ) -> Result<Self, String> {
        let voice = resolve(&config.voice);
        let voice_config = match &config.voice_config {
            Some(p) => resolve(p),
            None => {
                let mut name = voice.clone().into_os_string();
                name.push(".json");
                PathBuf::from(name)
            }
        };
        let runtime = match (&config.runtime, env_runtime.filter(|v| !v.trim().is_empty())) {
            (Some(p), _) => resolve(p),
            (None, Some(env)) => resolve(Path::new(&env)),
            (None, None) => {
                return Err(format!(
                    "no ONNX Runtime library configured: set runtime = \
                     \"models/onnxruntime/libonnxruntime.so.1.32.0\" in [tts.config] (or the \
                     environment variable {RUNTIME_ENV}) and run scripts/fetch-models.sh"
                ))
            }
        };
        let threads = config.threads.unwrap_or_else(default_threads);
        if !(1..=64).contains(&threads) {
            return Err(format!(
                "threads = {threads}: use 1 to 64 (leave it out for one per core this process may use, at most {MAX_DEFAULT_THREADS})"
            ));
        }
        check_scale("length_scale", config.length_scale, false)?;
        check_scale("noise_scale", config.noise_scale, true)?;
        check_scale("noise_w", config.noise_w, true)?;
        let volume = config.volume.unwrap_or(1.0);
        if !volume.is_finite() || volume < 0.0 {
            return Err(format!(
                "volume = {volume}: use a number of 0 or more (1.0 is unchanged)"
            ));
        }
        let warmup_text = config.warmup_text.unwrap_or_else(|| "Hello world.".to_owned());
        if warmup_text.trim().is_empty() {
            return Err("warmup_text is blank: give a short phrase, e.g. \"Hello world.\"".to_owned());
        }
        Ok(Self {
            voice,
            voice_config,
            runtime,
            threads: threads as usize,
            speaker: config.speaker,
            length_scale: config.length_scale,
            noise_scale: config.noise_scale,
            noise_w: config.noise_w,
            espeak_data: config.espeak_data.as_deref().map(&resolve),
            normalize: config.normalize.unwrap_or(true),
            stream: config.stream.unwrap_or(true),
            spinning: config.spinning.unwrap_or(true),
            volume,
            warmup_text,
        })
    }
}

fn check_scale(name: &str, value: Option<f32>, zero_ok: bool) -> Result<(), String> {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 || (v == 0.0 && !zero_ok) => Err(format!(
            "{name} = {v}: use a positive number (leave it out for the voice's default)"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    fn settings(json: &str, env: Option<&str>) -> Result<Settings, String> {
        Settings::resolve(parse(json)?, |p| Path::new("/base").join(p), env.map(str::to_owned))
    }

    #[test]
    fn defaults_and_resolution() {
        let s = settings(r#"{"voice": "v/x.onnx", "runtime": "rt/libonnxruntime.so"}"#, None).unwrap();
        assert_eq!(s.voice, Path::new("/base/v/x.onnx"));
        assert_eq!(s.voice_config, Path::new("/base/v/x.onnx.json"));
        assert_eq!(s.runtime, Path::new("/base/rt/libonnxruntime.so"));
        assert_eq!(s.threads, default_threads() as usize);
        assert!((1..=MAX_DEFAULT_THREADS as usize).contains(&s.threads));
        assert!(s.normalize);
        assert!(s.stream);
        assert!(s.spinning);
        assert_eq!(s.volume, 1.0);
        assert_eq!(s.warmup_text, "Hello world.");
        assert_eq!(s.espeak_data, None);
    }

    #[test]
    fn runtime_falls_back_to_the_environment() {
        let s = settings(r#"{"voice": "x.onnx"}"#, Some("/opt/ort.so")).unwrap();
        assert_eq!(s.runtime, Path::new("/opt/ort.so"));
        let e = settings(r#"{"voice": "x.onnx"}"#, Some(" ")).unwrap_err();
        assert!(e.contains("ORT_DYLIB_PATH"), "{e}");
    }

    #[test]
    fn unknown_keys_and_missing_voice_are_refused() {
        assert!(parse(r#"{"voice": "x.onnx", "thread": 2}"#)
            .unwrap_err()
            .contains("unknown field `thread`"));
        assert!(parse(r#"{}"#).unwrap_err().contains("missing field `voice`"));
    }

    #[test]
    fn speakers_by_id_or_name() {
        assert_eq!(
            parse(r#"{"voice": "x", "speaker": 3}"#).unwrap().speaker,
            Some(Speaker::Id(3))
        );
        assert_eq!(
            parse(r#"{"voice": "x", "speaker": "amy"}"#).unwrap().speaker,
            Some(Speaker::Name("amy".into()))
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let base = r#""voice": "x", "runtime": "r""#;
        for (extra, word) in [
            (r#""threads": 0"#, "threads"),
            (r#""length_scale": 0"#, "length_scale"),
            (r#""noise_scale": -1"#, "noise_scale"),
            (r#""volume": -0.5"#, "volume"),
            (r#""warmup_text": " ""#, "warmup_text"),
        ] {
            let e = settings(&format!("{{{base}, {extra}}}"), None).unwrap_err();
            assert!(e.contains(word), "{extra}: {e}");
        }
        assert!(settings(&format!(r#"{{{base}, "noise_w": 0}}"#), None).is_ok());
    }
}
