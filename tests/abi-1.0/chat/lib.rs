//! **Test fixture.** A chat plugin compiled against the pinned copy of the
//! ABI 1.0 plugin API (`tests/abi-1.0/vendor/plugin-api`): it knows
//! nothing of what later minor versions added (per-request options,
//! capabilities). Hearth must keep loading it and chatting with it. It
//! answers `You said: <the last message>.` word by word.

use hearth_plugin_api::{
    export_plugin, ChatEngine, ChatMessage, ChatOutcome, Context, Description, Flow, PluginResult, TokenOut,
    Warmable,
};

/// The engine: no model, no settings.
#[derive(Default)]
pub struct OldEcho;

impl Warmable for OldEcho {
    type Config = ();

    fn describe(&self) -> Description {
        Description {
            name: "old-echo".into(),
            engine_version: "1.0".into(),
            model: Some("old-echo-1".into()),
        }
    }

    fn load(&self, _config: (), ctx: &Context<'_>) -> PluginResult<()> {
        ctx.progress(1.0, "ready");
        Ok(())
    }

    fn warmup(&self, _ctx: &Context<'_>) -> PluginResult<String> {
        Ok("nothing to warm".into())
    }
}

impl ChatEngine for OldEcho {
    fn chat(&self, messages: &[ChatMessage], out: &mut TokenOut<'_>) -> PluginResult<ChatOutcome> {
        let last = messages.last().map(|m| m.content.as_str()).unwrap_or_default();
        let reply = format!("You said: {}.", last.trim_end_matches('.'));
        let mut tokens = 0;
        for (i, word) in reply.split(' ').enumerate() {
            let piece = if i == 0 { word.to_owned() } else { format!(" {word}") };
            tokens += 1;
            if out.send(&piece) == Flow::Stop {
                return Ok(ChatOutcome { tokens, finish_reason: "cancelled".into() });
            }
        }
        Ok(ChatOutcome { tokens, finish_reason: "stop".into() })
    }
}

export_plugin!(chat: OldEcho, OldEcho::default);
