//! {{description}}
//!
//! A starting point made by `hearth plugin new`: a working TTS engine that
//! speaks every sentence as a short tone. Replace the tone with your model.

use std::sync::OnceLock;

use hearth_plugin_api::{
    export_plugin, text::split_sentences, AudioOut, Context, Description, Flow, PluginError, PluginResult,
    TtsEngine, Warmable,
};
use serde::Deserialize;

/// The `[tts.config]` table in `plugins.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Pitch of the tone, in Hz.
    pub pitch_hz: f32,
    /// Output rate, in samples per second.
    pub sample_rate: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pitch_hz: 440.0,
            sample_rate: 16_000,
        }
    }
}

/// The engine. Loaded state lives in a `OnceLock`: the host calls every
/// method through `&self`, from several threads at once.
#[derive(Default)]
pub struct Engine {
    config: OnceLock<Config>,
}

impl Engine {
    fn config(&self) -> PluginResult<&Config> {
        self.config.get().ok_or_else(|| PluginError::from("not loaded"))
    }

    fn tone(config: &Config, text: &str) -> Vec<i16> {
        // 60 ms per character, so the length follows the text.
        let n = config.sample_rate as usize * 60 / 1000 * text.chars().count();
        let step = config.pitch_hz * std::f32::consts::TAU / config.sample_rate as f32;
        (0..n).map(|i| ((i as f32 * step).sin() * 8000.0) as i16).collect()
    }
}

impl Warmable for Engine {
    type Config = Config;

    fn describe(&self) -> Description {
        Description {
            name: "{{name}}".into(),
            engine_version: env!("CARGO_PKG_VERSION").into(),
            model: self.config.get().map(|c| format!("tone {} Hz", c.pitch_hz)),
        }
    }

    fn load(&self, config: Config, ctx: &Context<'_>) -> PluginResult<()> {
        if !(20.0..=20_000.0).contains(&config.pitch_hz) {
            return Err(PluginError::new(format!(
                "pitch_hz = {} is outside 20–20000; set it in [tts.config]",
                config.pitch_hz
            )));
        }
        ctx.progress(0.5, "checking settings");
        ctx.check_cancelled()?;
        ctx.progress(1.0, "ready");
        self.config.set(config).map_err(|_| PluginError::from("loaded twice"))
    }

    fn warmup(&self, _ctx: &Context<'_>) -> PluginResult<String> {
        let samples = Self::tone(self.config()?, "Hello.");
        Ok(format!("made {} samples of tone", samples.len()))
    }
}

impl TtsEngine for Engine {
    fn synthesize(&self, text: &str, out: &mut AudioOut<'_>) -> PluginResult<()> {
        let config = self.config()?;
        // One chunk per sentence, by the rule the host uses too.
        for sentence in split_sentences(text) {
            if out.send(config.sample_rate, Self::tone(config, sentence), sentence) == Flow::Stop {
                break;
            }
        }
        Ok(())
    }
}

export_plugin!(tts: Engine, Engine::default);
