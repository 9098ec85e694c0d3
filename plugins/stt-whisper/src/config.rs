//! The `[stt.config]` table: the raw form as written, and the checked form
//! the engine uses.
//!
//! Serde parses [`RawConfig`] (unknown keys are errors, so typos surface in
//! `hearth check`) and converts it into [`Settings`] through `try_from`, so
//! every value is checked by `check_config` too, before any model is read.

use std::path::PathBuf;

use serde::Deserialize;

/// The most threads the default picks: whisper.cpp's own default, and where
/// its speed-up on one transcription flattens out.
const MAX_DEFAULT_THREADS: usize = 4;

/// `[stt.config]` as written in `plugins.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Path of a ggml Whisper model, relative to `plugins.toml`.
    pub model: Option<String>,
    /// CPU threads per transcription; absent means one per core, at most 4.
    pub threads: Option<u32>,
    /// Spoken language code (`en`, `de`, ...), or `auto` to detect it.
    pub language: Option<String>,
    /// `greedy` or `beam`.
    pub strategy: Option<String>,
    /// Beams for `strategy = "beam"`.
    pub beam_size: Option<u32>,
    /// Above this no-speech probability (and with a low average log
    /// probability) a 30 s window counts as silence.
    pub no_speech_threshold: Option<f32>,
}

/// How tokens are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The most likely token each step (whisper.cpp's `best_of` 5 applies
    /// only when a window is retried at a higher temperature).
    Greedy,
    /// Beam search with this many beams.
    Beam(u32),
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Greedy => f.write_str("greedy"),
            Self::Beam(beams) => write!(f, "beam search ({beams} beams)"),
        }
    }
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct Settings {
    /// The model path as written (resolved against `plugins.toml` at load).
    pub model: PathBuf,
    /// Threads per transcription.
    pub threads: u32,
    /// A whisper.cpp language code, or `auto`.
    pub language: String,
    /// Token picking.
    pub strategy: Strategy,
    /// No-speech probability threshold.
    pub no_speech_threshold: f32,
}

/// The model used when `model` is not set.
pub const DEFAULT_MODEL: &str = "models/whisper/ggml-tiny.en.bin";

/// Threads when `threads` is not set: one per core the process may use
/// (cgroup limits included), at most [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_DEFAULT_THREADS) as u32
}

impl TryFrom<RawConfig> for Settings {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Self, String> {
        let model = raw.model.unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(
                "`model` is empty: give the path of a ggml Whisper model, e.g. \"models/whisper/ggml-tiny.en.bin\""
                    .into(),
            );
        }
        let threads = match raw.threads {
            None => default_threads(),
            Some(0) => return Err("`threads` must be at least 1 (leave it out for one per core, at most 4)".into()),
            Some(n) if n > 256 => return Err(format!("`threads` = {n} is more than 256")),
            Some(n) => n,
        };
        let language = raw.language.unwrap_or_else(|| "en".to_owned()).trim().to_lowercase();
        if language != "auto" && !language_known(&language) {
            return Err(format!(
                "`language` = {language:?} is not a language whisper.cpp knows: use a code such as \"en\", \"de\", \"fr\", or \"auto\" to detect it"
            ));
        }
        let strategy = match (raw.strategy.as_deref().unwrap_or("greedy"), raw.beam_size) {
            ("greedy", None) => Strategy::Greedy,
            ("greedy", Some(_)) => {
                return Err("`beam_size` applies only to `strategy = \"beam\"`: remove it or set the strategy".into())
            }
            ("beam", size) => match size.unwrap_or(5) {
                size @ 1..=16 => Strategy::Beam(size),
                size => return Err(format!("`beam_size` = {size} is out of range 1 to 16")),
            },
            (other, _) => return Err(format!("`strategy` = {other:?} is unknown: use \"greedy\" or \"beam\"")),
        };
        let no_speech_threshold = raw.no_speech_threshold.unwrap_or(0.6);
        if !(0.0..=1.0).contains(&no_speech_threshold) {
            return Err(format!(
                "`no_speech_threshold` = {no_speech_threshold} must be between 0 and 1"
            ));
        }
        Ok(Settings {
            model: PathBuf::from(model),
            threads,
            language,
            strategy,
            no_speech_threshold,
        })
    }
}

/// True when whisper.cpp has a language id for `code`.
fn language_known(code: &str) -> bool {
    // whisper.cpp's table is static; only the lookup of an unknown code logs
    // an error line, which the installed hook catches.
    crate::logging::install();
    !code.contains('\0') && whisper_rs::get_lang_id(code).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Settings, String> {
        serde_json::from_str::<Settings>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let s = parse("{}").unwrap();
        assert_eq!(s.model, PathBuf::from(DEFAULT_MODEL));
        assert_eq!(s.language, "en");
        assert_eq!(s.strategy, Strategy::Greedy);
        assert_eq!(s.threads, default_threads());
        assert!((1..=4).contains(&s.threads));
        assert_eq!(s.no_speech_threshold, 0.6);
    }

    #[test]
    fn every_key() {
        let s = parse(r#"{"model":"m.bin","threads":1,"language":"DE","strategy":"beam","beam_size":3,"no_speech_threshold":0.5}"#)
            .unwrap();
        assert_eq!(s.threads, 1);
        assert_eq!(s.language, "de");
        assert_eq!(s.strategy, Strategy::Beam(3));
        assert_eq!(parse(r#"{"strategy":"beam"}"#).unwrap().strategy, Strategy::Beam(5));
        assert_eq!(parse(r#"{"language":"auto"}"#).unwrap().language, "auto");
    }

    #[test]
    fn mistakes_are_explained() {
        for (json, needle) in [
            (r#"{"modle":"x"}"#, "unknown field `modle`"),
            (r#"{"threads":0}"#, "at least 1"),
            (r#"{"language":"klingon"}"#, "not a language"),
            (r#"{"strategy":"sampling"}"#, "\"greedy\" or \"beam\""),
            (r#"{"beam_size":4}"#, "applies only to"),
            (r#"{"strategy":"beam","beam_size":0}"#, "out of range"),
            (r#"{"no_speech_threshold":1.5}"#, "between 0 and 1"),
            (r#"{"model":" "}"#, "`model` is empty"),
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
