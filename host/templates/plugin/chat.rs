//! {{description}}
//!
//! A starting point made by `hearth plugin new`: a working chat engine that
//! echoes the last message, word by word. Replace it with your model.

use std::sync::OnceLock;

use hearth_plugin_api::{
    export_plugin, ChatEngine, ChatMessage, ChatOutcome, Context, Description, Flow, PluginError, PluginResult,
    TokenOut, Warmable,
};
use serde::Deserialize;

/// The `[chat.config]` table in `plugins.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// What the reply starts with.
    pub prefix: String,
}

impl Default for Config {
    fn default() -> Self {
        Self { prefix: "You said:".into() }
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
            model: self.config.get().map(|_| "echo".to_owned()),
        }
    }

    fn load(&self, config: Config, ctx: &Context<'_>) -> PluginResult<()> {
        ctx.progress(1.0, "ready");
        self.config.set(config).map_err(|_| PluginError::from("loaded twice"))
    }

    fn warmup(&self, _ctx: &Context<'_>) -> PluginResult<String> {
        self.config.get().ok_or_else(|| PluginError::from("not loaded"))?;
        Ok("nothing to warm".into())
    }
}

impl ChatEngine for Engine {
    fn chat(&self, messages: &[ChatMessage], out: &mut TokenOut<'_>) -> PluginResult<ChatOutcome> {
        let config = self.config.get().ok_or_else(|| PluginError::from("not loaded"))?;
        let last = messages.last().map(|m| m.content.as_str()).unwrap_or_default();
        let reply = format!("{} {last}", config.prefix);
        let mut tokens = 0;
        for (i, word) in reply.split_whitespace().enumerate() {
            tokens += 1;
            let piece = if i == 0 { word.to_owned() } else { format!(" {word}") };
            if out.send(&piece) == Flow::Stop {
                return Ok(ChatOutcome { tokens, finish_reason: "cancelled".into() });
            }
        }
        Ok(ChatOutcome { tokens, finish_reason: "stop".into() })
    }
}

export_plugin!(chat: Engine, Engine::default);
