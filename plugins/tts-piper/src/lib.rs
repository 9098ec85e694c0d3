//! The `tts-piper` Hearth plugin: Piper neural voices run in-process by ONNX
//! Runtime (through `ort`), with phonemes from libespeak-ng.
//!
//! * `load` reads the voice's `.onnx.json`, starts espeak-ng with the voice's
//!   language, opens the ONNX Runtime library and loads the model, reporting
//!   sub-progress and honouring cancellation between steps. Every failure
//!   says which file is wrong and what to do.
//! * `warmup` speaks a short phrase (`warmup_text`).
//! * `synthesize` splits the text into sentences ([`text`]), phonemizes each
//!   ([`espeak`]), maps phonemes to ids ([`voice`]), runs one inference per
//!   sentence ([`runtime`]) and sends each sentence's audio as soon as it is
//!   ready: PCM16 mono at the voice's rate, with the sentence's text.
//! * `health` is cheap: the model is loaded and not shut down.
//!
//! The configuration is described in [`config`]. Process-wide state (the ONNX
//! Runtime environment, libespeak-ng) is shared by every engine instance;
//! each instance owns its model session.
#![warn(missing_docs)]

pub mod config;
pub mod espeak;
pub mod runtime;
pub mod text;
pub mod voice;

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, OnceLock,
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
    sample_rate: u32,
    espeak_voice: String,
    ids: PhonemeIds,
    /// `[noise_scale, length_scale, noise_w]`, the model's `scales` input.
    scales: [f32; 3],
    speaker: Option<i64>,
    normalize: bool,
    volume: f32,
    warmup_text: String,
    /// The session; `None` once shut down. One inference at a time.
    model: Mutex<Option<Model>>,
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
            "voice {} ({} Hz, espeak-ng voice {}) loaded with {} thread(s); {}",
            voice.name, voice.sample_rate, voice.espeak_voice, settings.threads, voice.engine_version
        ));
        self.voice
            .set(voice)
            .map_err(|_| PluginError::from("this engine instance is already loaded"))
    }

    fn warmup(&self, ctx: &Context<'_>) -> PluginResult<String> {
        let voice = self.loaded()?;
        let mut samples = 0;
        for sentence in text::sentences(&voice.warmup_text) {
            ctx.check_cancelled()?;
            if let Some(audio) = voice.speak(&sentence, voice.scales)? {
                samples += audio.len();
            }
        }
        if samples == 0 {
            return Err(format!(
                "warmup_text {:?} produced no audio: use a plain phrase",
                voice.warmup_text
            )
            .into());
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
            // Waits for a running inference, then frees the session.
            voice.model.lock().unwrap_or_else(|e| e.into_inner()).take();
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
        for sentence in text::sentences(text) {
            let Some(audio) = voice.speak(&sentence, scales)? else {
                continue;
            };
            if out.send(voice.sample_rate, audio, sentence.text) == Flow::Stop {
                break;
            }
        }
        Ok(())
    }
}

impl LoadedVoice {
    /// Speaks one sentence with `scales` (`[noise, length, noise_w]`);
    /// `None` when it has nothing speakable.
    fn speak(&self, sentence: &text::Sentence<'_>, scales: [f32; 3]) -> PluginResult<Option<Vec<i16>>> {
        let texts: Vec<&str> = sentence.clauses.iter().map(|c| c.text).collect();
        let phonemes = espeak::phonemize(&self.espeak_voice, &texts)?;
        let clauses: Vec<(String, Option<char>)> = phonemes
            .into_iter()
            .zip(sentence.clauses.iter().map(|c| c.terminator))
            .collect();
        let Some(phonemes) = voice::sentence_phonemes(&clauses) else {
            return Ok(None);
        };
        let ids = self.ids.ids(&phonemes);
        let audio = {
            let mut model = self.model.lock().unwrap_or_else(|e| e.into_inner());
            let model = model
                .as_mut()
                .ok_or_else(|| PluginError::from("the voice was shut down"))?;
            model.infer(&ids, scales, self.speaker)?
        };
        Ok(Some(to_pcm16(&audio, self.normalize, self.volume)))
    }
}

/// Converts the model's float audio to PCM16 as Piper does: scaled so the
/// loudest sample is full range (when `normalize`), times `volume`, clipped.
pub fn to_pcm16(audio: &[f32], normalize: bool, volume: f32) -> Vec<i16> {
    let peak = audio.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let gain = if !normalize {
        volume
    } else if peak < 1e-8 {
        0.0
    } else {
        volume / peak
    };
    audio
        .iter()
        .map(|s| {
            let s = if s.is_finite() { s * gain } else { 0.0 };
            (s.clamp(-1.0, 1.0) * 32767.0) as i16
        })
        .collect()
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
    let model = Model::load(runtime, model_path, settings.threads)?;
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
    Ok(LoadedVoice {
        name,
        engine_version: format!("onnxruntime {ort_version}, espeak-ng {espeak_version}"),
        sample_rate: config.audio.sample_rate,
        espeak_voice,
        ids,
        scales,
        speaker,
        normalize: settings.normalize,
        volume: settings.volume,
        warmup_text: settings.warmup_text.clone(),
        model: Mutex::new(Some(model)),
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
    use super::{resolve_speaker, to_pcm16, Speaker, VoiceConfig};

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

    #[test]
    fn pcm16_is_peak_normalised_and_clipped() {
        assert_eq!(to_pcm16(&[0.25, -0.5], true, 1.0), vec![16383, -32767]);
        assert_eq!(to_pcm16(&[0.25, -0.5], false, 1.0), vec![8191, -16383]);
        assert_eq!(to_pcm16(&[2.0, f32::NAN], false, 1.0), vec![32767, 0]);
        assert_eq!(to_pcm16(&[0.0, 0.0], true, 1.0), vec![0, 0]);
        assert_eq!(to_pcm16(&[0.5], true, 0.5), vec![16383]);
    }
}
