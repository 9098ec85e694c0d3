//! Speech to text with Whisper: whisper.cpp (through `whisper-rs`), as a
//! Hearth `stt` plugin (in a worker process by default, or in the host's).
//!
//! ```toml
//! [stt]
//! plugin = "stt-whisper"
//! [stt.config]
//! model = "models/whisper/ggml-tiny.en-q8_0.bin"  # a ggml Whisper model; relative to plugins.toml
//! threads = 2            # default: the cores free at each transcription (at most one per core, 4)
//! language = "en"        # a whisper.cpp language code, or "auto" (multilingual models)
//! strategy = "greedy"    # or "beam"
//! beam_size = 5          # only with strategy = "beam"
//! no_speech_threshold = 0.6
//! audio_ctx = "auto"     # the encoder window: "auto" (fitted to the clip), "full" (30 s), or 64..=1500 frames
//! ```
//!
//! * `load` checks the model file's whole structure ([`model::validate`])
//!   before whisper.cpp reads it, because whisper.cpp aborts the process on
//!   some malformed files; then it reads the weights and allocates one
//!   decoding state.
//! * `warmup` transcribes one second of silence through the same path as
//!   real requests.
//! * `transcribe` takes PCM16 or f32 at any common rate and channel count,
//!   averages the channels, resamples to 16 kHz ([`audio`]), runs Whisper
//!   and returns the text and its segments (times in ms of the input), with
//!   sound annotations such as `[BLANK_AUDIO]` removed ([`text`]).
//! * `audio_ctx` ([`config::AudioCtx`]): whisper.cpp encodes a whole 30 s
//!   window (1500 encoder frames) for any clip, padding it with silence.
//!   `"auto"`, the default, encodes only the clip's frames (50 per second)
//!   plus a margin of [`config::AUTO_MARGIN`] frames, and the full window
//!   for clips of about 25 s or more: twice as fast on the 11 s JFK clip,
//!   at the same word error rate on `bench/stt.sh`'s corpus. `"full"` is
//!   Whisper as trained; a number fixes the window (for experiments).
//! * Quantized models (`ggml-tiny.en-q8_0.bin`, `-q5_1.bin`, converted by
//!   `scripts/fetch-models.sh`) load like the f16 one: the type is in the
//!   file.
//!
//! * `threads`: left out, each transcription uses the cores that other
//!   processes left free over the last second, at least one and at most
//!   one per core (4 at most) ([`cpu`]): on two cores with one busy
//!   elsewhere, one thread is faster than two. whisper.cpp is built with
//!   OpenMP (whisper-rs's `openmp` feature), whose threads sleep at a
//!   barrier after a short spin instead of spinning until their time
//!   slice ends: ggml's own pool made two Whisper engines sharing two
//!   cores 14 times slower, OpenMP twice (ARCHITECTURE.md).
//!
//! Transcriptions run one at a time: they share the one decoding state (a
//! second state would double the memory for no gain, as one transcription
//! already uses every thread it is given). The state is reused with
//! whisper.cpp's `no_context` set, so nothing of one request's text
//! conditions the next one.

pub mod audio;
pub mod config;
pub mod cpu;
mod logging;
pub mod model;
pub mod text;

use std::{
    path::Path,
    sync::{Arc, Mutex, RwLock},
    time::Instant,
};

use hearth_plugin_api::{
    Context, Description, PcmInput, PluginError, PluginResult, Segment, SttEngine, Transcript, Warmable,
};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState};

pub use config::Settings;

/// Shown where a model is missing or broken.
const FETCH_HINT: &str = "run scripts/fetch-models.sh, or point `model` in [stt.config] at a ggml Whisper model";

/// Inputs shorter than this (in 16 kHz samples, 100 ms) give an empty
/// transcript; whisper.cpp itself skips them.
const MIN_SAMPLES: usize = audio::WHISPER_RATE as usize / 10;

/// Silence put before every clip, in 16 kHz samples (100 ms). whisper.cpp,
/// unlike faster-whisper on the same weights, often writes a word before
/// speech that starts at the clip's first sample: Piper's "Sure. I've set a
/// timer…" came back as "Make sure I've set…" in 8 of 8 syntheses, and as
/// "Sure, I've set…" in 8 of 8 with 10 ms of silence in front. Clips cut
/// tight around speech (TTS output, a client's own VAD) are common, and
/// 100 ms costs five encoder frames. Segment times are given without it.
const LEAD_IN: usize = audio::WHISPER_RATE as usize / 10;
const LEAD_IN_MS: u64 = LEAD_IN as u64 * 1000 / audio::WHISPER_RATE as u64;

/// The engine. Empty until `load`; `shutdown` empties it again.
#[derive(Default)]
pub struct WhisperStt {
    /// The loaded model, swapped as a whole. Readers clone the `Arc` and
    /// release the lock at once, so `health` and `describe` never wait for
    /// a transcription; a transcription in flight during `shutdown` keeps
    /// its model alive until it returns.
    loaded: RwLock<Option<Arc<Loaded>>>,
}

/// Everything `load` made.
struct Loaded {
    settings: Settings,
    /// The file name without `.bin`, e.g. `ggml-tiny.en`.
    model_name: String,
    info: model::ModelInfo,
    /// Decoding parameters, built once (whisper-rs leaks the language
    /// string each time it is set, so it is set once per load).
    params: FullParams<'static, 'static>,
    /// The one decoding state; it holds the context (the weights) alive.
    state: Mutex<WhisperState>,
    /// Measures the load elsewhere for adaptive threads (`None` with
    /// `threads` set, or where `/proc` does not tell).
    meter: Option<cpu::Meter>,
}

impl WhisperStt {
    fn loaded(&self) -> PluginResult<Arc<Loaded>> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                PluginError::from("the Whisper model is not loaded (load failed, or the engine was shut down)")
            })
    }

    /// What the loaded model file is, for tests and logs.
    pub fn model_info(&self) -> Option<model::ModelInfo> {
        self.loaded().ok().map(|l| l.info.clone())
    }
}

/// Turns a model check failure into the message the host shows.
fn model_error(path: &Path, written: &Path, checked: model::Checked) -> PluginResult<model::ModelInfo> {
    let shown = path.display();
    match checked {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(invalid)) => Err(PluginError::new(format!(
            "model file {shown} is unusable: {invalid}. Delete it and run scripts/fetch-models.sh, or point `model` in [stt.config] at a ggml Whisper model"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PluginError::new(format!(
            "model file {shown} not found (`model = {:?}`): {FETCH_HINT}",
            written.display().to_string()
        ))),
        Err(e) => Err(PluginError::new(format!("cannot read model file {shown}: {e}"))),
    }
}

/// Decoding parameters for `settings`.
fn full_params(settings: &Settings) -> PluginResult<FullParams<'static, 'static>> {
    let strategy = match settings.strategy {
        // whisper.cpp's default best_of, used only for temperature fallback.
        config::Strategy::Greedy => SamplingStrategy::Greedy { best_of: 5 },
        config::Strategy::Beam(beams) => SamplingStrategy::BeamSearch {
            beam_size: beams as i32,
            patience: -1.0,
        },
    };
    // A `'static` code from whisper.cpp's own table (checked in config).
    let language: &'static str = if settings.language == "auto" {
        "auto"
    } else {
        whisper_rs::get_lang_id(&settings.language)
            .and_then(whisper_rs::get_lang_str)
            .ok_or_else(|| PluginError::new(format!("unknown language {:?}", settings.language)))?
    };
    let mut params = FullParams::new(strategy);
    params.set_n_threads(settings.threads.most() as i32);
    params.set_language(Some(language));
    params.set_translate(false);
    // The state is reused across requests: never condition one request on
    // the text of the one before.
    params.set_no_context(true);
    params.set_no_speech_thold(settings.no_speech_threshold);
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    Ok(params)
}

impl Loaded {
    /// Threads for a transcription started now.
    fn threads(&self) -> u32 {
        let most = self.settings.threads.most();
        self.meter.as_ref().map_or(most, |meter| meter.threads(most))
    }

    /// Runs whisper.cpp on 16 kHz mono samples with an encoder window of
    /// `audio_ctx` frames (0: the full window), on `threads` threads.
    fn full(&self, state: &mut WhisperState, samples: &[f32], audio_ctx: u32, threads: u32) -> PluginResult<()> {
        logging::take();
        let mut params = self.params.clone();
        // Set on every call: whisper.cpp keeps it in the reused state.
        params.set_audio_ctx(audio_ctx as i32);
        params.set_n_threads(threads as i32);
        state.full(params, samples).map_err(|e| {
            let detail = logging::errors(&logging::take())
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            PluginError::new(format!("whisper.cpp failed to transcribe: {e}{detail}"))
        })?;
        Ok(())
    }

    /// Transcribes 16 kHz mono samples; also says on how many threads
    /// (chosen once the decoding state is ours, so a transcription queued
    /// behind another does not count the other's threads as load).
    fn run(&self, samples: &[f32]) -> PluginResult<(Transcript, u32)> {
        let mut transcript = Transcript {
            text: Default::default(),
            segments: Default::default(),
            language: self.settings.language.clone().into(),
        };
        if samples.len() < MIN_SAMPLES {
            return Ok((transcript, 0));
        }
        let clip_ms = samples.len() as u64 * 1000 / u64::from(audio::WHISPER_RATE);
        let padded: Vec<f32> = std::iter::repeat_n(0.0, LEAD_IN)
            .chain(samples.iter().copied())
            .collect();
        let samples = &padded[..];
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let threads = self.threads();
        let window = self.settings.audio_ctx.for_samples(samples.len());
        self.full(&mut state, samples, window, threads)?;
        // On silence a fitted window makes Whisper write a word ("you")
        // where the full window, as trained, lets it see there is no
        // speech. So when a fitted transcription has words that Whisper
        // itself finds probably not speech, it is done again with the full
        // window; speech (no-speech probability far under the threshold)
        // and clean silence pay nothing for it.
        if window != 0
            && self.settings.audio_ctx == config::AudioCtx::Auto
            && state.as_iter().any(|segment| {
                segment.no_speech_probability() > self.settings.no_speech_threshold
                    && segment
                        .to_str_lossy()
                        .is_ok_and(|raw| !text::strip_non_speech(&raw).is_empty())
            })
        {
            self.full(&mut state, samples, 0, threads)?;
        }
        let mut words = Vec::new();
        for segment in state.as_iter() {
            let raw = segment
                .to_str_lossy()
                .map_err(|e| PluginError::new(format!("whisper.cpp returned an unreadable segment: {e}")))?;
            let cleaned = text::strip_non_speech(&raw);
            if cleaned.is_empty() {
                continue;
            }
            // whisper.cpp counts time in centiseconds, from the lead-in's
            // start. A fitted window runs past the clip's end; Whisper
            // sometimes "hears" a repeat of the clip there ("Hello and
            // welcome. Hello and welcome."), as a segment that starts after
            // the clip ended: drop it, and end the others by the clip's end.
            let ms = |centis: i64| (centis.max(0) as u64 * 10).saturating_sub(LEAD_IN_MS).min(clip_ms);
            let start_ms = ms(segment.start_timestamp());
            if start_ms >= clip_ms && !words.is_empty() {
                continue;
            }
            transcript.segments.push(Segment {
                start_ms,
                end_ms: ms(segment.end_timestamp()),
                text: cleaned.as_str().into(),
            });
            words.push(cleaned);
        }
        transcript.text = words.join(" ").into();
        if self.settings.language == "auto" {
            let detected = whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or("");
            transcript.language = detected.into();
        }
        Ok((transcript, threads))
    }
}

impl Warmable for WhisperStt {
    type Config = Settings;

    fn describe(&self) -> Description {
        Description {
            name: "whisper".into(),
            engine_version: format!("whisper.cpp {}", whisper_rs::WHISPER_CPP_VERSION),
            model: self.loaded().ok().map(|l| l.model_name.clone()),
        }
    }

    fn load(&self, settings: Settings, ctx: &Context<'_>) -> PluginResult<()> {
        logging::install();
        let path = ctx.resolve_path(&settings.model);
        let model_name = path
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".bin").to_owned())
            .unwrap_or_else(|| path.display().to_string());

        ctx.progress(0.0, &format!("checking {model_name}"));
        if path.is_dir() {
            return Err(PluginError::new(format!(
                "model path {} is a directory: point `model` at the ggml-*.bin file in it",
                path.display()
            )));
        }
        let info = model_error(&path, &settings.model, model::validate(&path))?;
        if !info.multilingual && settings.language != "en" {
            return Err(PluginError::new(format!(
                "model {model_name} is English-only, but `language` is {:?}: set language = \"en\", or use a multilingual model (one without .en)",
                settings.language
            )));
        }
        let params = full_params(&settings)?;
        ctx.check_cancelled()?;

        ctx.progress(
            0.1,
            &format!("reading {model_name} ({:.1} MB)", info.file_size as f64 / 1e6),
        );
        let mut context_params = WhisperContextParameters::default();
        // This build has no GPU backend; flash attention was measured as fast
        // or slower on the CPU, and whisper-rs defaults it off as well.
        context_params.use_gpu(false).flash_attn(false);
        logging::take();
        let context = WhisperContext::new_with_params(&path, context_params).map_err(|e| {
            let detail = logging::errors(&logging::take()).unwrap_or_else(|| e.to_string());
            PluginError::new(format!("whisper.cpp could not load {}: {detail}", path.display()))
        })?;
        ctx.check_cancelled()?;

        ctx.progress(0.8, "allocating the decoding state");
        let state = context.create_state().map_err(|e| {
            let detail = logging::errors(&logging::take()).unwrap_or_else(|| e.to_string());
            PluginError::new(format!("whisper.cpp could not allocate its buffers: {detail}"))
        })?;
        for line in logging::take() {
            ctx.warn(&format!("whisper.cpp: {}", line.text));
        }
        ctx.info(&format!(
            "loaded {model_name}: {} {}{}, {} tensors; {}, language {}, {}, {}",
            info.size_name,
            info.weight_type,
            if info.multilingual {
                ", multilingual"
            } else {
                ", English-only"
            },
            info.tensors,
            settings.threads,
            settings.language,
            settings.strategy,
            settings.audio_ctx
        ));
        ctx.progress(1.0, &format!("{model_name} loaded"));
        let meter = match settings.threads {
            config::Threads::Adaptive(_) => cpu::Meter::start(),
            config::Threads::Fixed(_) => None,
        };
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Loaded {
            settings,
            model_name,
            info,
            params,
            state: Mutex::new(state),
            meter,
        }));
        Ok(())
    }

    fn warmup(&self, ctx: &Context<'_>) -> PluginResult<String> {
        let loaded = self.loaded()?;
        ctx.check_cancelled()?;
        ctx.progress(0.0, "transcribing 1 s of silence");
        let started = Instant::now();
        let (transcript, threads) = loaded.run(&vec![0.0; audio::WHISPER_RATE as usize])?;
        ctx.progress(1.0, "warm");
        let heard = if transcript.text.is_empty() {
            "no text, as expected".to_owned()
        } else {
            format!("heard {:?}", transcript.text.as_str())
        };
        Ok(format!(
            "transcribed 1 s of silence with {} ({}, {}) in {:.2} s: {heard}",
            loaded.model_name,
            match loaded.settings.threads {
                config::Threads::Adaptive(most) => format!("{threads} of at most {most} threads, as cores are free"),
                fixed => fixed.to_string(),
            },
            loaded.settings.audio_ctx,
            started.elapsed().as_secs_f64()
        ))
    }

    fn health(&self) -> PluginResult<()> {
        self.loaded().map(drop)
    }

    fn shutdown(&self) {
        self.loaded.write().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl SttEngine for WhisperStt {
    fn transcribe(&self, audio: PcmInput<'_>) -> PluginResult<Transcript> {
        let loaded = self.loaded()?;
        let samples = audio::to_whisper(&audio).map_err(|e| PluginError::new(format!("cannot transcribe: {e}")))?;
        loaded.run(&samples).map(|(transcript, _)| transcript)
    }
}

hearth_plugin_api::export_plugin!(stt: WhisperStt, WhisperStt::default);
