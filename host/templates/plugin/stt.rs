//! {{description}}
//!
//! A starting point made by `hearth plugin new`: a working STT engine that
//! "hears" whether there is sound and for how long. Replace it with your
//! model.

use std::sync::OnceLock;

use hearth_plugin_api::{
    export_plugin, Context, Description, PcmInput, PcmSamples, PluginError, PluginResult, Segment, SttEngine,
    Transcript, Warmable,
};
use serde::Deserialize;

/// The `[stt.config]` table in `plugins.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Level (0–1 of full scale) above which a sample counts as sound.
    pub threshold: f32,
}

impl Default for Config {
    fn default() -> Self {
        Self { threshold: 0.01 }
    }
}

/// The engine. Loaded state lives in a `OnceLock`: the host calls every
/// method through `&self`, from several threads at once.
#[derive(Default)]
pub struct Engine {
    config: OnceLock<Config>,
}

impl Warmable for Engine {
    type Config = Config;

    fn describe(&self) -> Description {
        Description {
            name: "{{name}}".into(),
            engine_version: env!("CARGO_PKG_VERSION").into(),
            model: self.config.get().map(|c| format!("level above {}", c.threshold)),
        }
    }

    fn load(&self, config: Config, ctx: &Context<'_>) -> PluginResult<()> {
        if !(0.0..1.0).contains(&config.threshold) {
            return Err(PluginError::new(format!(
                "threshold = {} is outside 0–1; set it in [stt.config]",
                config.threshold
            )));
        }
        ctx.progress(1.0, "ready");
        self.config.set(config).map_err(|_| PluginError::from("loaded twice"))
    }

    fn warmup(&self, _ctx: &Context<'_>) -> PluginResult<String> {
        self.config.get().ok_or_else(|| PluginError::from("not loaded"))?;
        Ok("nothing to warm".into())
    }
}

impl SttEngine for Engine {
    fn transcribe(&self, audio: PcmInput<'_>) -> PluginResult<Transcript> {
        let config = self.config.get().ok_or_else(|| PluginError::from("not loaded"))?;
        let loud = match audio.samples {
            PcmSamples::I16(s) => s.iter().filter(|&&v| f32::from(v).abs() / 32768.0 > config.threshold).count(),
            PcmSamples::F32(s) => s.iter().filter(|v| v.abs() > config.threshold).count(),
        };
        let frames_per_second = u64::from(audio.sample_rate.max(1)) * u64::from(audio.channels.max(1));
        let ms = loud as u64 * 1000 / frames_per_second;
        let text = if loud == 0 { String::new() } else { format!("sound for {ms} milliseconds") };
        let segments = if text.is_empty() {
            Vec::new()
        } else {
            vec![Segment { start_ms: 0, end_ms: ms, text: text.as_str().into() }]
        };
        Ok(Transcript { text: text.into(), segments: segments.into(), language: "en".into() })
    }
}

export_plugin!(stt: Engine, Engine::default);
