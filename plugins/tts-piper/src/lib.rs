//! The `tts-piper` Hearth plugin: Piper neural voices run in-process by ONNX
//! Runtime (through `ort`), with phonemes from libespeak-ng.
//!
//! * `load` reads the voice's `.onnx.json`, starts espeak-ng with the voice's
//!   language, opens the ONNX Runtime library and loads the model, reporting
//!   sub-progress and honouring cancellation between steps. Every failure
//!   says which file is wrong and what to do.
//! * `warmup` speaks a short phrase (`warmup_text`).
//! * `synthesize` splits the text into sentences and clauses ([`text`]),
//!   phonemizes each clause ([`espeak`]) and maps the phonemes to ids
//!   ([`voice`]). A voice whose graph [`graph`] can split runs each sentence
//!   as a *front* (ids → latent frames) and a *decoder* (frames → audio)
//!   cut by time into parts, decoded on several workers at once
//!   ([`synth`]): the first part of the text's first sentence (about 0.4 s)
//!   goes out as soon as it is decoded, then the rest of that sentence, then
//!   one chunk per sentence. The parts join into exactly the audio of the
//!   whole sentence, so prosody is Piper's own. Other voices run one
//!   inference per sentence ([`runtime`]). Audio is PCM16 mono at the
//!   voice's rate ([`level`]); a chunk carries the text of the sentence it
//!   begins, or none when it continues one.
//! * `health` is cheap: the model is loaded and not shut down.
//!
//! The configuration is described in [`config`]. Process-wide state (the ONNX
//! Runtime environment, libespeak-ng) is shared by every engine instance;
//! each instance owns its model session.
#![warn(missing_docs)]

pub mod config;
pub mod espeak;
pub mod graph;
pub mod level;
pub mod runtime;
pub mod synth;
pub mod text;
pub mod voice;

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock, RwLock,
    },
};

use hearth_plugin_api::{
    AudioOut, Capabilities, Context, Description, Flow, PluginError, PluginResult, SpeechOptions, TtsEngine, Warmable,
};

use crate::{
    config::{Config, Settings, Speaker, RUNTIME_ENV},
    runtime::Model,
    voice::{PhonemeIds, VoiceConfig},
};

/// The engine: empty until `load`, then a loaded voice.
#[derive(Default)]
pub struct PiperTts {
    voice: OnceLock<LoadedVoice>,
}

/// Everything `load` produced. Immutable but for the session, which
/// `ort` runs through `&mut` and `shutdown` releases.
struct LoadedVoice {
    /// The voice's name: the model's file name without `.onnx`.
    name: String,
    /// ONNX Runtime and espeak-ng versions, for `describe`.
    engine_version: String,
    /// How the model runs, for the load log: split or whole, and why.
    layout: String,
    sample_rate: u32,
    espeak_voice: String,
    ids: PhonemeIds,
    /// `[noise_scale, length_scale, noise_w]`, the model's `scales` input.
    scales: [f32; 3],
    speaker: Option<i64>,
    normalize: bool,
    volume: f32,
    warmup_text: String,
    /// The model; `None` once shut down (requests still running keep
    /// their `Arc` until they end).
    model: RwLock<Option<Arc<Model>>>,
    /// Set by `shutdown`, read by `health` without waiting for the model.
    shut_down: AtomicBool,
}

impl PiperTts {
    fn loaded(&self) -> PluginResult<&LoadedVoice> {
        let voice = self
            .voice
            .get()
            .ok_or_else(|| PluginError::from("the voice is not loaded"))?;
        if voice.shut_down.load(Ordering::Acquire) {
            return Err("the voice was shut down".into());
        }
        Ok(voice)
    }
}

impl Warmable for PiperTts {
    type Config = Config;

    fn describe(&self) -> Description {
        match self.voice.get() {
            Some(voice) => Description {
                name: "piper".into(),
                engine_version: voice.engine_version.clone(),
                model: Some(voice.name.clone()),
            },
            None => Description {
                name: "piper".into(),
                engine_version: "onnxruntime (not loaded yet)".into(),
                model: None,
            },
        }
    }

    fn load(&self, config: Config, ctx: &Context<'_>) -> PluginResult<()> {
        if self.voice.get().is_some() {
            return Err("this engine instance is already loaded".into());
        }
        let settings = Settings::resolve(config, |p| ctx.resolve_path(p), std::env::var(RUNTIME_ENV).ok())?;
        let voice = load_voice(&settings, ctx)?;
        ctx.info(&format!(
            "voice {} ({} Hz, espeak-ng voice {}) loaded with {} thread(s), {}; {}",
            voice.name, voice.sample_rate, voice.espeak_voice, settings.threads, voice.layout, voice.engine_version
        ));
        self.voice
            .set(voice)
            .map_err(|_| PluginError::from("this engine instance is already loaded"))
    }

    fn warmup(&self, ctx: &Context<'_>) -> PluginResult<String> {
        let voice = self.loaded()?;
        let mut samples = 0;
        voice.speak(&voice.warmup_text, voice.scales, &mut |chunk, _| {
            samples += chunk.len();
            if ctx.is_cancelled() {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })?;
        ctx.check_cancelled()?;
        if samples == 0 {
            return Err(format!(
                "warmup_text {:?} produced no audio: use a plain phrase",
                voice.warmup_text
            )
            .into());
        }
        // Every decoder session's first run allocates; do it now.
        if let Some(ids) = text::sentences(&voice.warmup_text)
            .iter()
            .find_map(|s| voice.ids(s).transpose())
        {
            voice.model()?.warm_decoders(&ids?, voice.scales, voice.speaker)?;
        }
        Ok(format!(
            "spoke {:?} ({:.2} s of audio at {} Hz)",
            voice.warmup_text,
            samples as f64 / f64::from(voice.sample_rate),
            voice.sample_rate
        ))
    }

    fn health(&self) -> PluginResult<()> {
        self.loaded().map(drop)
    }

    fn shutdown(&self) {
        if let Some(voice) = self.voice.get() {
            voice.shut_down.store(true, Ordering::Release);
            // The sessions are freed when the last running request ends.
            voice.model.write().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

impl TtsEngine for PiperTts {
    fn synthesize(&self, text: &str, out: &mut AudioOut<'_>) -> PluginResult<()> {
        self.synthesize_with(text, &SpeechOptions::default(), out)
    }

    /// Speed divides Piper's length scale. Piper rounds each phoneme to
    /// whole frames, so 2.0 gives about 0.64 of the duration, not half.
    fn capabilities(&self) -> Capabilities {
        Capabilities::SPEED
    }

    fn synthesize_with(&self, text: &str, options: &SpeechOptions, out: &mut AudioOut<'_>) -> PluginResult<()> {
        let voice = self.loaded()?;
        if !(options.speed.is_finite() && options.speed > 0.0) {
            return Err(format!("speed {} is not a positive number", options.speed).into());
        }
        let mut scales = voice.scales;
        scales[1] /= options.speed;
        let rate = voice.sample_rate;
        voice.speak(text, scales, &mut |pcm, text| out.send(rate, pcm, text))
    }
}

impl LoadedVoice {
    /// Speaks `text` with `scales`, handing each chunk of PCM16 audio and
    /// its text (the sentence it begins; empty when it continues one) to
    /// `out` until it answers stop. On a split model the chunks come from
    /// [`synth::speak`]; on a whole one, one inference per sentence.
    fn speak(&self, text: &str, scales: [f32; 3], out: &mut dyn FnMut(Vec<i16>, &str) -> Flow) -> PluginResult<()> {
        let model = self.model()?;
        let sentences = text::sentences(text);
        if model.workers().is_none() {
            for sentence in &sentences {
                let Some(ids) = self.ids(sentence)? else {
                    continue;
                };
                let audio = model.infer(&ids, scales, self.speaker)?;
                let pcm = level::to_pcm16(&audio, level::gain(&audio, self.normalize, self.volume));
                if out(pcm, sentence.text) == Flow::Stop {
                    break;
                }
            }
            return Ok(());
        }
        let ids = |k: usize| self.ids(&sentences[k]);
        let mut first_gain = 0.0;
        synth::speak(&model, sentences.len(), &ids, scales, self.speaker, &mut |chunk| {
            if chunk.continues {
                let pcm = level::continuation(&chunk.audio, first_gain, self.normalize, self.volume, self.sample_rate);
                out(pcm, "")
            } else {
                first_gain = level::gain(&chunk.audio, self.normalize, self.volume);
                out(
                    level::to_pcm16(&chunk.audio, first_gain),
                    sentences[chunk.sentence].text,
                )
            }
        })
        .map_err(PluginError::from)
    }

    /// The model, unless shut down.
    fn model(&self) -> PluginResult<Arc<Model>> {
        self.model
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PluginError::from("the voice was shut down"))
    }

    /// One sentence's model ids; `None` when it has nothing speakable.
    fn ids(&self, sentence: &text::Sentence<'_>) -> Result<Option<Vec<i64>>, String> {
        let texts: Vec<&str> = sentence.clauses.iter().map(|c| c.text).collect();
        let phonemes = espeak::phonemize(&self.espeak_voice, &texts)?;
        let clauses: Vec<(String, Option<char>)> = phonemes
            .into_iter()
            .zip(sentence.clauses.iter().map(|c| c.terminator))
            .collect();
        Ok(voice::sentence_phonemes(&clauses).map(|p| self.ids.ids(&p)))
    }
}

/// The steps of `load`, each reporting progress and checking cancellation.
fn load_voice(settings: &Settings, ctx: &Context<'_>) -> PluginResult<LoadedVoice> {
    let model_path = &settings.voice;
    let name = model_path
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".onnx").to_owned())
        .unwrap_or_default();

    ctx.progress(0.0, "reading the voice's config");
    check_file(model_path, "voice model")?;
    let config = read_voice_config(&settings.voice_config)?;
    if config.phoneme_type != "espeak" {
        return Err(format!(
            "voice {name} uses phoneme_type {:?}; this engine supports only \"espeak\" voices",
            config.phoneme_type
        )
        .into());
    }
    let espeak_voice = config
        .espeak
        .as_ref()
        .map(|e| e.voice.clone())
        .ok_or_else(|| format!("{} has no espeak.voice entry", settings.voice_config.display()))?;
    let ids = PhonemeIds::new(&config.phoneme_id_map).map_err(|e| {
        format!(
            "{} is not a usable Piper voice config: {e}",
            settings.voice_config.display()
        )
    })?;
    if config.audio.sample_rate == 0 {
        return Err(format!("{} gives a sample rate of 0", settings.voice_config.display()).into());
    }
    let speaker = resolve_speaker(&config, settings.speaker.as_ref(), &name)?;
    let scales = [
        settings.noise_scale.unwrap_or(config.inference.noise_scale),
        settings.length_scale.unwrap_or(config.inference.length_scale),
        settings.noise_w.unwrap_or(config.inference.noise_w),
    ];
    ctx.check_cancelled()?;

    ctx.progress(0.1, &format!("starting espeak-ng (voice {espeak_voice})"));
    let espeak_version = espeak::init(settings.espeak_data.as_deref(), &espeak_voice)?;
    ctx.check_cancelled()?;

    ctx.progress(0.2, "opening ONNX Runtime");
    let runtime = runtime::runtime(&settings.runtime)?;
    ctx.check_cancelled()?;

    let megabytes = std::fs::metadata(model_path).map(|m| m.len() / 1_000_000).unwrap_or(0);
    ctx.progress(0.3, &format!("loading voice model {name} ({megabytes} MB)"));
    let model = Model::load(
        runtime,
        model_path,
        settings.threads,
        settings.stream,
        settings.spinning,
    )?;
    if speaker.is_some() && !model.takes_speaker() {
        return Err(
            format!("voice {name} has one speaker, but its config lists several: the files do not match").into(),
        );
    }
    ctx.check_cancelled()?;
    ctx.progress(1.0, &format!("voice {name} loaded"));

    let ort_version = if runtime.version.is_empty() {
        "(version unknown)"
    } else {
        &runtime.version
    };
    let layout = match (model.workers(), &model.whole_because) {
        (Some(workers), _) => {
            let (hop, context) = model.hop_and_context().unwrap_or_default();
            format!(
                "streamed: front and decoder apart, {workers} decoder worker(s), {hop} samples a frame, {context} frames of context"
            )
        }
        (None, why) => format!(
            "whole: one inference per sentence (the graph was not split: {})",
            why.as_deref().unwrap_or("unknown")
        ),
    };
    Ok(LoadedVoice {
        name,
        layout,
        engine_version: format!("onnxruntime {ort_version}, espeak-ng {espeak_version}"),
        sample_rate: config.audio.sample_rate,
        espeak_voice,
        ids,
        scales,
        speaker,
        normalize: settings.normalize,
        volume: settings.volume,
        warmup_text: settings.warmup_text.clone(),
        model: RwLock::new(Some(Arc::new(model))),
        shut_down: AtomicBool::new(false),
    })
}

fn check_file(path: &Path, what: &str) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() > 0 => Ok(()),
        Ok(m) if m.is_file() => Err(format!(
            "{what} {} is empty: delete it and run scripts/fetch-models.sh",
            path.display()
        )),
        Ok(_) => Err(format!("{what} {} is not a file", path.display())),
        Err(_) => Err(format!(
            "{what} {} not found: run scripts/fetch-models.sh (or fix the path in [tts.config])",
            path.display()
        )),
    }
}

fn read_voice_config(path: &Path) -> Result<VoiceConfig, String> {
    check_file(path, "voice config")?;
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read voice config {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "voice config {} is not a valid Piper voice config ({e}): delete it and run scripts/fetch-models.sh",
            path.display()
        )
    })
}

fn resolve_speaker(config: &VoiceConfig, speaker: Option<&Speaker>, name: &str) -> Result<Option<i64>, String> {
    let count = i64::from(config.num_speakers);
    match speaker {
        None if count > 1 => Ok(Some(0)),
        None => Ok(None),
        Some(_) if count <= 1 => Err(format!(
            "voice {name} has a single speaker: remove speaker from [tts.config]"
        )),
        Some(Speaker::Id(id)) if (0..count).contains(id) => Ok(Some(*id)),
        Some(Speaker::Id(id)) => Err(format!("speaker {id}: voice {name} has speakers 0 to {}", count - 1)),
        Some(Speaker::Name(wanted)) => config.speaker_id_map.get(wanted).copied().map(Some).ok_or_else(|| {
            let mut names: Vec<&str> = config.speaker_id_map.keys().map(String::as_str).collect();
            names.sort_unstable();
            format!(
                "speaker {wanted:?} is not in voice {name}; its speakers: {}",
                names.join(", ")
            )
        }),
    }
}

hearth_plugin_api::export_plugin!(tts: PiperTts, PiperTts::default);

#[cfg(test)]
mod tests {
    use super::{resolve_speaker, Speaker, VoiceConfig};

    fn voice(speakers: u32) -> VoiceConfig {
        serde_json::from_value(serde_json::json!({
            "audio": {"sample_rate": 22050},
            "phoneme_id_map": {"_": [0], "^": [1], "$": [2]},
            "num_speakers": speakers,
            "speaker_id_map": {"amy": 0, "bob": 1},
        }))
        .unwrap()
    }

    #[test]
    fn speakers_resolve_by_id_or_name() {
        assert_eq!(resolve_speaker(&voice(1), None, "v"), Ok(None));
        assert_eq!(resolve_speaker(&voice(2), None, "v"), Ok(Some(0)));
        assert_eq!(resolve_speaker(&voice(2), Some(&Speaker::Id(1)), "v"), Ok(Some(1)));
        assert_eq!(
            resolve_speaker(&voice(2), Some(&Speaker::Name("bob".into())), "v"),
            Ok(Some(1))
        );
        assert!(resolve_speaker(&voice(2), Some(&Speaker::Id(2)), "v")
            .unwrap_err()
            .contains("0 to 1"));
        let e = resolve_speaker(&voice(2), Some(&Speaker::Name("eve".into())), "v").unwrap_err();
        assert!(e.contains("amy, bob"), "{e}");
        assert!(resolve_speaker(&voice(1), Some(&Speaker::Id(0)), "v")
            .unwrap_err()
            .contains("single speaker"));
    }
}
