//! **Test fixture.** A chat plugin compiled against the pinned copy of the
//! ABI 1.1 plugin API (`tests/abi-1.1/vendor/plugin-api`): it has 1.1's
//! per-request options and capabilities, and knows nothing of what later
//! minor versions added (the `vad` kind). Hearth must keep loading it and
//! honouring its options. It answers `You said: <the last message>.` word
//! by word, and stops after `max_tokens` words.

use hearth_plugin_api::{
    export_plugin, Capabilities, ChatEngine, ChatMessage, ChatOptions, ChatOutcome, Context, Description, Flow,
    PluginResult, TokenOut, Warmable,
};

/// The engine: no model, no settings.
#[derive(Default)]
pub struct Echo11;

impl Warmable for Echo11 {
    type Config = ();

    fn describe(&self) -> Description {
        Description {
            name: "echo-1.1".into(),
            engine_version: "1.1".into(),
            model: Some("echo-1.1".into()),
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

impl ChatEngine for Echo11 {
    fn chat(&self, messages: &[ChatMessage], out: &mut TokenOut<'_>) -> PluginResult<ChatOutcome> {
        self.chat_with(messages, &ChatOptions::default(), out)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::MAX_TOKENS
    }

    fn chat_with(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
        out: &mut TokenOut<'_>,
    ) -> PluginResult<ChatOutcome> {
        let last = messages.last().map(|m| m.content.as_str()).unwrap_or_default();
        let reply = format!("You said: {}.", last.trim_end_matches('.'));
        let limit = options.max_tokens.into_option().unwrap_or(u32::MAX);
        let mut tokens = 0;
        for (i, word) in reply.split(' ').enumerate() {
            if tokens == limit {
                return Ok(ChatOutcome { tokens, finish_reason: "length".into() });
            }
            let piece = if i == 0 { word.to_owned() } else { format!(" {word}") };
            tokens += 1;
            if out.send(&piece) == Flow::Stop {
                return Ok(ChatOutcome { tokens, finish_reason: "cancelled".into() });
            }
        }
        Ok(ChatOutcome { tokens, finish_reason: "stop".into() })
    }
}

export_plugin!(chat: Echo11, Echo11::default);
