//! Shared helpers: where the model, the clip and the built plugin are, a
//! host context for calling the engine directly, and text comparison.
//!
//! Missing assets fail the test with what to run; nothing is skipped.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr};
use hearth_plugin_api::{Context, HostContext, HostContext_TO, PcmInput, PcmSamples, Transcript};
use hearth_stt_whisper::{Settings, WhisperStt};

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

/// The JFK clip: 16 kHz mono, as f32 in [-1, 1].
pub fn jfk() -> &'static hearth::audio::Audio {
    static AUDIO: OnceLock<hearth::audio::Audio> = OnceLock::new();
    AUDIO.get_or_init(|| {
        let audio = hearth::audio::read_wav(&asset("samples/jfk.wav")).expect("readable jfk.wav");
        assert_eq!(
            (audio.sample_rate, audio.channels),
            (16_000, 1),
            "jfk.wav should be 16 kHz mono"
        );
        audio
    })
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

/// A host context that records progress and log lines.
#[derive(Default)]
pub struct Host {
    pub events: Mutex<Vec<String>>,
}

impl HostContext for Host {
    fn progress(&self, fraction: f32, message: RStr<'_>) {
        self.events
            .lock()
            .unwrap()
            .push(format!("progress {fraction:.2} {message}"));
    }
    fn is_cancelled(&self) -> bool {
        false
    }
    fn log(&self, level: u8, message: RStr<'_>) {
        self.events.lock().unwrap().push(format!("log {level} {message}"));
    }
}

impl Host {
    /// Runs `f` with a [`Context`] on this host, paths relative to [`root`].
    pub fn with<T>(&self, f: impl FnOnce(&Context<'_>) -> T) -> T {
        let ctx = Context::new(HostContext_TO::from_ptr(self, TD_Opaque), &root());
        f(&ctx)
    }
}

/// Parses a `[stt.config]` table given as JSON.
pub fn settings(json: &str) -> Settings {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("config {json}: {e}"))
}

/// Loads a fresh engine with `config_json`; returns the load result.
pub fn load(config_json: &str) -> (WhisperStt, Result<(), String>) {
    let engine = WhisperStt::default();
    let result = Host::default().with(|ctx| hearth_plugin_api::Warmable::load(&engine, settings(config_json), ctx));
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
pub fn transcribe_f32(engine: &WhisperStt, rate: u32, channels: u16, samples: &[f32]) -> Transcript {
    hearth_plugin_api::SttEngine::transcribe(
        engine,
        PcmInput {
            sample_rate: rate,
            channels,
            samples: PcmSamples::F32(samples.into()),
        },
    )
    .unwrap_or_else(|e| panic!("transcribe: {e}"))
}

/// Copies the first `len` bytes of the default model to a temporary file.
pub fn truncated_model(len: u64) -> TempFile {
    let bytes = std::fs::read(model_path()).expect("read model");
    TempFile::new("truncated.bin", &bytes[..len as usize])
}

/// A file in a per-test temporary directory, removed on drop.
pub struct TempFile {
    dir: PathBuf,
    pub path: PathBuf,
}

impl TempFile {
    pub fn new(name: &str, bytes: &[u8]) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hearth-stt-whisper-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        Self { dir, path }
    }

    /// The path as a JSON string literal, for a config.
    pub fn json(&self) -> String {
        serde_json::to_string(&self.path.display().to_string()).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The plugin library cargo built next to this test binary
/// (`<target>/<profile>/libhearth_stt_whisper.so`).
pub fn plugin_library() -> PathBuf {
    let name = "libhearth_stt_whisper.so";
    let exe = std::env::current_exe().expect("test binary path");
    // The test binary is <target>/<profile>/deps/stt-<hash>.
    let mut candidates: Vec<PathBuf> = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join(name))
        .into_iter()
        .collect();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("debug").join(name));
    }
    candidates.push(root().join("target/debug").join(name));
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "the plugin library is not built (looked at {:?}): run `cargo build -p hearth-stt-whisper`",
            candidates
        )
    })
}
