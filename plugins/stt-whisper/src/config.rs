//! The `[stt.config]` table: the raw form as written, and the checked form
//! the engine uses.
//!
//! Serde parses [`RawConfig`] (unknown keys are errors, so typos surface in
//! `hearth check`) and converts it into [`Settings`] through `try_from`, so
//! every value is checked by `check_config` too, before any model is read.

use std::path::PathBuf;

use serde::{de, Deserialize, Deserializer};

/// The most threads the default picks: whisper.cpp's own default, and where
/// its speed-up on one transcription flattens out.
const MAX_DEFAULT_THREADS: usize = 4;

/// `[stt.config]` as written in `plugins.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Path of a ggml Whisper model, relative to `plugins.toml`.
    pub model: Option<String>,
    /// CPU threads per transcription; absent means as many as there are
    /// free cores at each transcription, at most one per core and 4.
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
    /// How much of the 30 s encoder window to compute: `"auto"`, `"full"`
    /// or a number of encoder frames.
    pub audio_ctx: Option<RawAudioCtx>,
}

/// `audio_ctx` as written: a name or a number (checked in `try_from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawAudioCtx {
    /// A string such as `"auto"`.
    Name(String),
    /// A whole number.
    Frames(i128),
}

impl<'de> Deserialize<'de> for RawAudioCtx {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = RawAudioCtx;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "\"auto\", \"full\" or a number of encoder frames from {MIN_AUDIO_CTX} to {FULL_AUDIO_CTX} for `audio_ctx`"
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawAudioCtx, E> {
                Ok(RawAudioCtx::Name(v.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawAudioCtx, E> {
                Ok(RawAudioCtx::Frames(v.into()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawAudioCtx, E> {
                Ok(RawAudioCtx::Frames(v.into()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Encoder frames in Whisper's full 30 s window (50 per second of audio).
pub const FULL_AUDIO_CTX: u32 = 1500;

/// The smallest fixed `audio_ctx` accepted.
pub const MIN_AUDIO_CTX: u32 = 64;

/// Frames of padding `"auto"` adds after the clip's own frames (256 frames =
/// 5.12 s). Without any, Whisper tends to drop the last word or the final
/// punctuation of a clip. With 64, the JFK clip as the browser test's
/// microphone delivers it (echo-cancelled, 11.5 s) was heard as "asked not";
/// 128 and 256 heard it right, as the full window does. 256 leaves room.
pub const AUTO_MARGIN: u32 = 256;

/// Encoder frames of `samples` samples at 16 kHz (one per 320 samples).
pub fn encoder_frames(samples: usize) -> usize {
    samples.div_ceil(320)
}

/// How much of Whisper's 30 s encoder window a transcription computes.
///
/// Whisper was trained on 30 s windows, and whisper.cpp always encodes the
/// whole window, padding a short clip with silence; the encoder's cost grows
/// with the window. A window fitted to the clip (whisper.cpp's `audio_ctx`)
/// skips the silence: about twice as fast on an 11 s clip, same text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCtx {
    /// The clip's own frames plus [`AUTO_MARGIN`]; the full window when that
    /// reaches [`FULL_AUDIO_CTX`] (clips of about 25 s and longer).
    Auto,
    /// Always the full window, as Whisper was trained.
    Full,
    /// Always this many frames (`MIN_AUDIO_CTX..=FULL_AUDIO_CTX`); speech
    /// past frames / 50 seconds of a window may be lost. For experiments.
    Fixed(u32),
}

impl AudioCtx {
    /// The `audio_ctx` to hand whisper.cpp for a clip of `samples` 16 kHz
    /// samples; 0 is whisper.cpp's own default, the full window.
    pub fn for_samples(self, samples: usize) -> u32 {
        match self {
            Self::Full => 0,
            Self::Fixed(frames) => frames,
            Self::Auto => match encoder_frames(samples) + AUTO_MARGIN as usize {
                frames if frames < FULL_AUDIO_CTX as usize => frames as u32,
                _ => 0,
            },
        }
    }
}

impl std::fmt::Display for AudioCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => write!(f, "audio_ctx auto (clip + {AUTO_MARGIN} frames)"),
            Self::Full => write!(f, "audio_ctx full ({FULL_AUDIO_CTX} frames)"),
            Self::Fixed(frames) => write!(f, "audio_ctx {frames} frames"),
        }
    }
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
    pub threads: Threads,
    /// A whisper.cpp language code, or `auto`.
    pub language: String,
    /// Token picking.
    pub strategy: Strategy,
    /// No-speech probability threshold.
    pub no_speech_threshold: f32,
    /// The encoder window.
    pub audio_ctx: AudioCtx,
}

/// How many threads a transcription uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// `threads` not set: the cores other processes leave free at each
    /// transcription ([`crate::cpu`]), at least 1 and at most this many
    /// ([`default_threads`]).
    Adaptive(u32),
    /// `threads = N`: always N.
    Fixed(u32),
}

impl Threads {
    /// The most threads a transcription may use.
    pub fn most(self) -> u32 {
        match self {
            Self::Adaptive(n) | Self::Fixed(n) => n,
        }
    }
}

impl std::fmt::Display for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Adaptive(most) => write!(f, "threads adapt to the free cores, at most {most}"),
            Self::Fixed(1) => f.write_str("1 thread"),
            Self::Fixed(n) => write!(f, "{n} threads"),
        }
    }
}

/// The model used when `model` is not set.
pub const DEFAULT_MODEL: &str = "models/whisper/ggml-tiny.en-q8_0.bin";

/// The most threads when `threads` is not set: one per core the process
/// may use (cgroup limits included), at most [`MAX_DEFAULT_THREADS`].
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
            None => Threads::Adaptive(default_threads()),
            Some(0) => return Err("`threads` must be at least 1 (leave it out to use the cores that are free at each transcription, at most 4)".into()),
            Some(n) if n > 256 => return Err(format!("`threads` = {n} is more than 256")),
            Some(n) => Threads::Fixed(n),
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
        let audio_ctx = match raw.audio_ctx {
            None => AudioCtx::Auto,
            Some(RawAudioCtx::Name(name)) => match name.trim().to_lowercase().as_str() {
                "auto" => AudioCtx::Auto,
                "full" => AudioCtx::Full,
                number if number.parse::<i128>().is_ok() => {
                    return Err(format!(
                        "`audio_ctx` = {name:?} is a string: write the number without quotes (audio_ctx = {number}), or \"auto\" or \"full\""
                    ))
                }
                _ => {
                    return Err(format!(
                        "`audio_ctx` = {name:?} is unknown: write \"auto\" (the encoder window fitted to each clip), \"full\" ({FULL_AUDIO_CTX} frames, 30 s, as Whisper was trained) or a number of frames from {MIN_AUDIO_CTX} to {FULL_AUDIO_CTX}"
                    ))
                }
            },
            Some(RawAudioCtx::Frames(n)) if (i128::from(MIN_AUDIO_CTX)..=i128::from(FULL_AUDIO_CTX)).contains(&n) => {
                AudioCtx::Fixed(n as u32)
            }
            Some(RawAudioCtx::Frames(n)) => {
                return Err(format!(
                    "`audio_ctx` = {n} is out of range: write a number of encoder frames from {MIN_AUDIO_CTX} to {FULL_AUDIO_CTX} (50 per second of audio), or \"auto\" or \"full\""
                ))
            }
        };
        Ok(Settings {
            model: PathBuf::from(model),
            threads,
            language,
            strategy,
            no_speech_threshold,
            audio_ctx,
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
        assert_eq!(s.threads, Threads::Adaptive(default_threads()));
        assert!((1..=4).contains(&s.threads.most()));
        assert_eq!(s.no_speech_threshold, 0.6);
        assert_eq!(s.audio_ctx, AudioCtx::Auto);
    }

    #[test]
    fn every_key() {
        let s = parse(
            r#"{"model":"m.bin","threads":1,"language":"DE","strategy":"beam","beam_size":3,"no_speech_threshold":0.5,"audio_ctx":"full"}"#,
        )
        .unwrap();
        assert_eq!(s.threads, Threads::Fixed(1));
        assert_eq!(s.language, "de");
        assert_eq!(s.strategy, Strategy::Beam(3));
        assert_eq!(s.audio_ctx, AudioCtx::Full);
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
            (r#"{"audio_ctx":"fitted"}"#, "write \"auto\""),
            (r#"{"audio_ctx":""}"#, "is unknown"),
            (r#"{"audio_ctx":"300"}"#, "without quotes (audio_ctx = 300)"),
            (r#"{"audio_ctx":63}"#, "from 64 to 1500"),
            (r#"{"audio_ctx":1501}"#, "out of range"),
            (r#"{"audio_ctx":-1}"#, "out of range"),
            (
                r#"{"audio_ctx":18446744073709551615}"#,
                "18446744073709551615 is out of range",
            ),
            (
                r#"{"audio_ctx":300.5}"#,
                "\"auto\", \"full\" or a number of encoder frames from 64 to 1500",
            ),
            (r#"{"audio_ctx":true}"#, "for `audio_ctx`"),
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }

    #[test]
    fn audio_ctx_forms() {
        for (json, want) in [
            (r#"{"audio_ctx":"auto"}"#, AudioCtx::Auto),
            (r#"{"audio_ctx":" Full "}"#, AudioCtx::Full),
            (r#"{"audio_ctx":64}"#, AudioCtx::Fixed(64)),
            (r#"{"audio_ctx":1500}"#, AudioCtx::Fixed(1500)),
        ] {
            assert_eq!(parse(json).unwrap().audio_ctx, want, "{json}");
        }
    }

    #[test]
    fn audio_ctx_fits_the_clip() {
        let margin = AUTO_MARGIN as usize;
        // The JFK clip: 176,000 samples, 550 frames.
        assert_eq!(encoder_frames(176_000), 550);
        assert_eq!(encoder_frames(176_001), 551);
        assert_eq!(AudioCtx::Auto.for_samples(176_000), 550 + AUTO_MARGIN);
        assert_eq!(AudioCtx::Auto.for_samples(0), AUTO_MARGIN);
        // Up to the full window, then whisper.cpp's default (0 = full).
        let last_fitted = (FULL_AUDIO_CTX as usize - margin - 1) * 320;
        assert_eq!(AudioCtx::Auto.for_samples(last_fitted), FULL_AUDIO_CTX - 1);
        assert_eq!(AudioCtx::Auto.for_samples(last_fitted + 1), 0);
        assert_eq!(AudioCtx::Auto.for_samples(30 * 16_000), 0);
        assert_eq!(AudioCtx::Auto.for_samples(120 * 16_000), 0);
        assert_eq!(AudioCtx::Full.for_samples(176_000), 0);
        assert_eq!(AudioCtx::Fixed(300).for_samples(176_000), 300);
        assert_eq!(
            AudioCtx::Auto.to_string(),
            format!("audio_ctx auto (clip + {margin} frames)")
        );
    }
}
