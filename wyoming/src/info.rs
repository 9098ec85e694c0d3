//! The `info` event: Hearth's TTS and STT engines as Wyoming programs
//! (`wyoming/info.py`: `TtsProgram` with its `TtsVoice`, `AsrProgram` with
//! its `AsrModel`), read from the readiness snapshot at each `describe`.
//!
//! Readiness is told the way Wyoming can carry it: a program, voice or
//! model is `installed: false` until its service is ready, and its
//! `description` says why (`not ready: loading 45% (Hearth is
//! LOADING_MODELS at 38%)`, `not ready: failed: ...`). Home Assistant
//! offers only installed programs, so it does not send requests that would
//! fail. A service that is not configured or disabled is not listed.
//!
//! What the engine ABI does not say — a voice's languages and speakers, a
//! model's languages — is read from the engine's configuration: a Piper
//! voice's `.onnx.json` (`language.code`, `speaker_id_map`), the STT
//! `language` key; failing that, from the model's name (`en_US-joe-medium`
//! → `en_US`, `ggml-tiny.en` → `en`).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use hearth_core::{
    config::{Config, ServiceConfig, ServiceName},
    readiness::{NotReady, Snapshot, Status},
};

/// Who made an artifact (`Attribution`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribution {
    /// The maker.
    pub name: String,
    /// Where it is from.
    pub url: String,
}

/// A speaker of a multi-speaker voice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Speaker {
    /// Its name.
    pub name: String,
}

/// A voice (`TtsVoice`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TtsVoice {
    /// Its name, e.g. `en_US-joe-medium`.
    pub name: String,
    /// Who made it.
    pub attribution: Attribution,
    /// Whether it speaks now: its service is ready.
    pub installed: bool,
    /// In words; says why when not installed.
    pub description: Option<String>,
    /// The engine's version.
    pub version: Option<String>,
    /// Languages it speaks, e.g. `en_US`.
    pub languages: Vec<String>,
    /// Its speakers, when it has more than one.
    pub speakers: Option<Vec<Speaker>>,
}

/// The TTS program (`TtsProgram`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TtsProgram {
    /// The plugin's name, e.g. `tts-piper`.
    pub name: String,
    /// Who made it.
    pub attribution: Attribution,
    /// Whether it serves now.
    pub installed: bool,
    /// In words; says why when not installed.
    pub description: Option<String>,
    /// The plugin's version.
    pub version: Option<String>,
    /// Its one voice.
    pub voices: Vec<TtsVoice>,
    /// Always true: `synthesize-start`/`-chunk`/`-stop` are served.
    pub supports_synthesize_streaming: bool,
}

/// A speech-recognition model (`AsrModel`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsrModel {
    /// Its name, e.g. `ggml-tiny.en`.
    pub name: String,
    /// Who made it.
    pub attribution: Attribution,
    /// Whether it serves now.
    pub installed: bool,
    /// In words; says why when not installed.
    pub description: Option<String>,
    /// The engine's version.
    pub version: Option<String>,
    /// Languages it understands.
    pub languages: Vec<String>,
}

/// The STT program (`AsrProgram`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsrProgram {
    /// The plugin's name, e.g. `stt-whisper`.
    pub name: String,
    /// Who made it.
    pub attribution: Attribution,
    /// Whether it serves now.
    pub installed: bool,
    /// In words; says why when not installed.
    pub description: Option<String>,
    /// The plugin's version.
    pub version: Option<String>,
    /// Its one model.
    pub models: Vec<AsrModel>,
    /// True: a transcript is also sent as `transcript-start`,
    /// `transcript-chunk`s (the engine's segments) and `transcript-stop`.
    pub supports_transcript_streaming: bool,
    /// True: Hearth does not detect the end of speech; the client sends
    /// `audio-stop`.
    pub requires_external_vad: bool,
    /// The package's default (true).
    pub prefers_auto_gain_enabled: bool,
    /// The package's default (true).
    pub prefers_noise_reduction_enabled: bool,
}

/// The `info` event's data. Hearth serves only `asr` and `tts`; the other
/// lists are written empty, as the package writes them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Info {
    /// The STT engine, when configured.
    pub asr: Vec<AsrProgram>,
    /// The TTS engine, when configured.
    pub tts: Vec<TtsProgram>,
    /// Not served.
    pub handle: Vec<Value>,
    /// Not served.
    pub intent: Vec<Value>,
    /// Not served.
    pub wake: Vec<Value>,
    /// Not served.
    pub mic: Vec<Value>,
    /// Not served.
    pub snd: Vec<Value>,
}

/// What the configuration says about the TTS voice and the STT model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineFacts {
    /// The voice's name when the engine has not said yet (the voice file's
    /// stem).
    pub voice_name: Option<String>,
    /// The voice's languages.
    pub voice_languages: Vec<String>,
    /// The voice's speakers (more than one only).
    pub speakers: Vec<String>,
    /// The voice in words, e.g. `joe (medium)`.
    pub voice_description: Option<String>,
    /// The STT model's name when the engine has not said yet.
    pub model_name: Option<String>,
    /// The configured STT language (`language`), unless `auto`.
    pub stt_language: Option<String>,
}

/// The largest voice description file read (Piper's are a few KiB).
const MAX_VOICE_JSON_BYTES: u64 = 4 << 20;

impl EngineFacts {
    /// Reads what `config` says (the voice's `.onnx.json` among it). Reads
    /// files: call it on a blocking thread.
    pub fn read(config: &Config) -> Self {
        let mut facts = Self::default();
        if let Some(tts) = config.services.get(&ServiceName::Tts) {
            facts.read_voice(tts, &config.base_dir);
        }
        if let Some(stt) = config.services.get(&ServiceName::Stt) {
            let table = table(stt);
            facts.model_name = table
                .get("model")
                .and_then(Value::as_str)
                .and_then(|model| Path::new(model).file_stem())
                .map(|stem| stem.to_string_lossy().into_owned());
            facts.stt_language = table
                .get("language")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty() && *l != "auto")
                .map(str::to_owned);
        }
        facts
    }

    fn read_voice(&mut self, tts: &ServiceConfig, base_dir: &Path) {
        let table = table(tts);
        let Some(voice) = table.get("voice").and_then(Value::as_str) else {
            return;
        };
        let voice_path = hearth_plugin_api::resolve_path(base_dir, Path::new(voice));
        self.voice_name = voice_path.file_stem().map(|stem| stem.to_string_lossy().into_owned());
        let json_path = match table.get("voice_config").and_then(Value::as_str) {
            Some(path) => hearth_plugin_api::resolve_path(base_dir, Path::new(path)),
            None => {
                let mut path = voice_path.clone().into_os_string();
                path.push(".json");
                PathBuf::from(path)
            }
        };
        let Some(json) = read_small_json(&json_path) else {
            return;
        };
        if let Some(code) = json.pointer("/language/code").and_then(Value::as_str) {
            self.voice_languages = vec![code.to_owned()];
        }
        if let Some(map) = json.get("speaker_id_map").and_then(Value::as_object) {
            let mut speakers: Vec<(u64, String)> = map
                .iter()
                .map(|(name, id)| (id.as_u64().unwrap_or(u64::MAX), name.clone()))
                .collect();
            speakers.sort();
            if speakers.len() > 1 {
                self.speakers = speakers.into_iter().map(|(_, name)| name).collect();
            }
        }
        let dataset = json.get("dataset").and_then(Value::as_str);
        let quality = json.pointer("/audio/quality").and_then(Value::as_str);
        self.voice_description = match (dataset, quality) {
            (Some(d), Some(q)) => Some(format!("{} ({q})", d.replace('_', " "))),
            (Some(d), None) => Some(d.replace('_', " ")),
            _ => None,
        };
    }
}

fn table(service: &ServiceConfig) -> serde_json::Map<String, Value> {
    match serde_json::from_str(&service.config_json) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

fn read_small_json(path: &Path) -> Option<Value> {
    let metadata = std::fs::metadata(path).ok()?;
    if metadata.len() > MAX_VOICE_JSON_BYTES {
        return None;
    }
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The language a model's name implies: Piper's `en_US-joe-medium` →
/// `en_US`, Whisper's English-only `ggml-tiny.en` → `en`.
pub fn language_from_name(name: &str) -> Option<String> {
    if name.ends_with(".en") || name.contains(".en.") || name.contains(".en-") {
        return Some("en".to_owned());
    }
    let head = name.split('-').next()?;
    let (lang, region) = head.split_once('_').unwrap_or((head, ""));
    let lang_ok = (2..=3).contains(&lang.len()) && lang.chars().all(|c| c.is_ascii_lowercase());
    let region_ok = region.is_empty() || (region.len() == 2 && region.chars().all(|c| c.is_ascii_uppercase()));
    (lang_ok && region_ok && name.contains('-')).then(|| head.to_owned())
}

/// The languages of multilingual Whisper models (`language = "auto"`), as
/// Whisper names them.
pub const WHISPER_LANGUAGES: [&str; 99] = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id", "hi", "fi",
    "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg", "lt", "la", "mi", "ml",
    "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs",
    "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am",
    "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su",
];

/// Why `service` cannot serve, in words (`None` when it is ready): its
/// status with its progress, and Hearth's state.
pub fn not_ready_reason(snapshot: &Snapshot, service: ServiceName) -> Option<String> {
    let overall = format!("Hearth is {} at {}%", snapshot.state.as_str(), snapshot.progress);
    Some(match snapshot.why_not_ready(service)? {
        NotReady::Failed { error } => {
            format!("failed: {error} ({overall}; retry it with POST /api/services/{service}/retry)")
        }
        NotReady::NotInstalled { reason } => format!("not installed: {reason} ({overall})"),
        NotReady::Starting {
            status: Status::Loading,
            percent,
        } => format!("loading, {percent}% ({overall}); retry shortly"),
        NotReady::Starting { status, .. } => format!("{status} ({overall}); retry shortly"),
        NotReady::NotConfigured => "not configured: add its section to plugins.toml".to_owned(),
    })
}

/// The engine's name in its readiness label (`piper onnxruntime 1.32.0,
/// espeak-ng 1.51` → `piper`).
fn engine_name(label: &str) -> &str {
    label.split_once(' ').map_or(label, |(name, _)| name)
}

/// The engine's version in its readiness label (what follows the name).
fn engine_version(label: &str) -> Option<String> {
    label.split_once(' ').map(|(_, version)| version.to_owned())
}

fn attribution(maker: &str) -> Attribution {
    Attribution {
        name: maker.to_owned(),
        url: String::new(),
    }
}

/// What a program's description says: the engine, and why it does not
/// serve when it does not.
fn describe(what: String, reason: &Option<String>) -> Option<String> {
    Some(match reason {
        None => what,
        Some(reason) => format!("{what} — not ready: {reason}"),
    })
}

/// The `info` for `snapshot` and `config`.
pub fn info(snapshot: &Snapshot, config: &Config, facts: &EngineFacts) -> Info {
    let enabled = |name| config.services.get(&name).filter(|s| s.enabled);
    let mut info = Info {
        asr: Vec::new(),
        tts: Vec::new(),
        handle: Vec::new(),
        intent: Vec::new(),
        wake: Vec::new(),
        mic: Vec::new(),
        snd: Vec::new(),
    };
    if let Some(service) = enabled(ServiceName::Tts) {
        let record = snapshot.service(ServiceName::Tts);
        let reason = not_ready_reason(snapshot, ServiceName::Tts);
        let plugin = record.and_then(|r| r.plugin.clone());
        let plugin_name = plugin
            .as_ref()
            .map_or_else(|| service.plugin_spec.clone(), |p| p.name.clone());
        let engine = record.and_then(|r| r.engine.clone());
        let voice_name = record
            .and_then(|r| r.model.clone())
            .or_else(|| facts.voice_name.clone())
            .unwrap_or_else(|| plugin_name.clone());
        let languages = if facts.voice_languages.is_empty() {
            language_from_name(&voice_name).into_iter().collect()
        } else {
            facts.voice_languages.clone()
        };
        let voice_what = facts.voice_description.clone().unwrap_or_else(|| voice_name.clone());
        info.tts.push(TtsProgram {
            name: plugin_name.clone(),
            attribution: attribution(&plugin_name),
            installed: reason.is_none(),
            description: describe(
                format!("{} via Hearth", engine.clone().unwrap_or_else(|| plugin_name.clone())),
                &reason,
            ),
            version: plugin.map(|p| p.version),
            voices: vec![TtsVoice {
                name: voice_name,
                attribution: attribution(engine.as_deref().map_or(plugin_name.as_str(), engine_name)),
                installed: reason.is_none(),
                description: describe(voice_what, &reason),
                version: engine.as_deref().and_then(engine_version),
                languages,
                speakers: (!facts.speakers.is_empty()).then(|| {
                    facts
                        .speakers
                        .iter()
                        .map(|name| Speaker { name: name.clone() })
                        .collect()
                }),
            }],
            supports_synthesize_streaming: true,
        });
    }
    if let Some(service) = enabled(ServiceName::Stt) {
        let record = snapshot.service(ServiceName::Stt);
        let reason = not_ready_reason(snapshot, ServiceName::Stt);
        let plugin = record.and_then(|r| r.plugin.clone());
        let plugin_name = plugin
            .as_ref()
            .map_or_else(|| service.plugin_spec.clone(), |p| p.name.clone());
        let engine = record.and_then(|r| r.engine.clone());
        let model_name = record
            .and_then(|r| r.model.clone())
            .or_else(|| facts.model_name.clone())
            .unwrap_or_else(|| plugin_name.clone());
        let languages = match (&facts.stt_language, language_from_name(&model_name)) {
            (Some(language), _) => vec![language.clone()],
            (None, Some(language)) => vec![language],
            (None, None) => WHISPER_LANGUAGES.iter().map(|l| (*l).to_owned()).collect(),
        };
        info.asr.push(AsrProgram {
            name: plugin_name.clone(),
            attribution: attribution(&plugin_name),
            installed: reason.is_none(),
            description: describe(
                format!("{} via Hearth", engine.clone().unwrap_or_else(|| plugin_name.clone())),
                &reason,
            ),
            version: plugin.map(|p| p.version),
            models: vec![AsrModel {
                name: model_name.clone(),
                attribution: attribution(engine.as_deref().map_or(plugin_name.as_str(), engine_name)),
                installed: reason.is_none(),
                description: describe(model_name, &reason),
                version: engine.as_deref().and_then(engine_version),
                languages,
            }],
            supports_transcript_streaming: true,
            requires_external_vad: true,
            prefers_auto_gain_enabled: true,
            prefers_noise_reduction_enabled: true,
        });
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_come_from_model_names_when_nothing_else_says() {
        assert_eq!(language_from_name("en_US-joe-medium").as_deref(), Some("en_US"));
        assert_eq!(language_from_name("de_DE-thorsten-high").as_deref(), Some("de_DE"));
        assert_eq!(language_from_name("ggml-tiny.en").as_deref(), Some("en"));
        assert_eq!(language_from_name("ggml-base"), None);
        assert_eq!(language_from_name("scripted-voice"), None);
        assert_eq!(language_from_name("tts"), None);
    }

    fn config(text: &str, dir: &Path) -> Config {
        Config::parse(&dir.join("plugins.toml"), text).unwrap()
    }

    #[test]
    fn a_piper_voice_file_gives_languages_and_speakers() {
        let dir = std::env::temp_dir().join(format!("hearth-wyoming-info-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("v.onnx.json"),
            r#"{"language": {"code": "de_DE"}, "dataset": "thorsten_emotional", "audio": {"quality": "medium"},
                "speaker_id_map": {"neutral": 1, "amused": 0}}"#,
        )
        .unwrap();
        let facts = EngineFacts::read(&config(
            "[tts]\nplugin = \"tts-piper\"\n[tts.config]\nvoice = \"v.onnx\"\n[stt]\nplugin = \"s\"\n[stt.config]\nmodel = \"m/ggml-base.bin\"\nlanguage = \"auto\"\n",
            &dir,
        ));
        assert_eq!(facts.voice_name.as_deref(), Some("v"));
        assert_eq!(facts.voice_languages, vec!["de_DE".to_owned()]);
        assert_eq!(facts.speakers, vec!["amused".to_owned(), "neutral".to_owned()]);
        assert_eq!(facts.voice_description.as_deref(), Some("thorsten emotional (medium)"));
        assert_eq!(facts.model_name.as_deref(), Some("ggml-base"));
        assert_eq!(facts.stt_language, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn services_not_ready_are_listed_as_not_installed_and_say_why() {
        let dir = std::env::temp_dir();
        let config = config(
            "[tts]\nplugin = \"tts-piper\"\n[stt]\nplugin = \"stt-whisper\"\n[stt.config]\nmodel = \"ggml-tiny.en.bin\"\n\
             [chat]\nplugin = \"c\"\n",
            &dir,
        );
        let (tx, rx) = hearth_core::readiness::channel([(ServiceName::Tts, true), (ServiceName::Stt, false)]);
        tx.loading(
            ServiceName::Tts,
            hearth_core::readiness::PluginLabel {
                name: "tts-piper".into(),
                version: "0.1.0".into(),
            },
        );
        tx.load_progress(ServiceName::Tts, 0.5, "loading voice");
        tx.failed(ServiceName::Stt, "model file missing".into());
        let facts = EngineFacts::read(&config);
        let info = info(&rx.current(), &config, &facts);
        let tts = &info.tts[0];
        assert_eq!(tts.name, "tts-piper");
        assert!(!tts.installed && !tts.voices[0].installed);
        let description = tts.description.as_deref().unwrap();
        assert!(description.contains("not ready: loading, 4"), "{description}");
        assert!(description.contains("LOADING_MODELS"), "{description}");
        let asr = &info.asr[0];
        assert!(!asr.installed);
        assert!(asr
            .description
            .as_deref()
            .unwrap()
            .contains("failed: model file missing"));
        assert_eq!(asr.models[0].name, "ggml-tiny.en");
        assert_eq!(asr.models[0].languages, vec!["en".to_owned()]);
        // The JSON has the package's field names.
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["tts"][0]["supports_synthesize_streaming"], true);
        assert_eq!(json["asr"][0]["supports_transcript_streaming"], true);
        assert_eq!(json["tts"][0]["voices"][0]["speakers"], Value::Null);
        assert_eq!(json["wake"], serde_json::json!([]));
    }
}
