//! **Test fixture, not an engine.** A scripted engine whose behaviour comes
//! entirely from its `config` table: load and warmup delays, sub-progress
//! steps, failures, panics, hangs, slow or failing health, and canned
//! output (a tone per sentence for TTS, a fixed transcript for STT, a fixed
//! reply streamed word by word for chat).
//!
//! It exists to exercise the host's failure paths and the loading screen
//! with real cdylibs loaded from disk. It is exported three times, once per
//! kind, by the `scripted-tts`, `scripted-stt` and `scripted-chat` plugin
//! crates. Never use it to claim that speech works.
//!
//! ```toml
//! [tts]
//! plugin = "scripted-tts"
//! [tts.config]
//! load_ms = 1000        # time load takes
//! load_steps = 4        # sub-progress reports during load
//! warmup_ms = 200       # time warmup takes
//! fail_load = "disk on fire"   # load fails with this message
//! fail_loads = 1        # the first N loads of this `name` fail, later ones work
//! panic_load = "boom"   # load panics with this message
//! hang_load = true      # load never returns and ignores cancellation
//! fail_warmup = "..."   # likewise for warmup
//! panic_warmup = "..."
//! hang_warmup = true
//! unhealthy = "..."     # health reports this
//! health_ms = 0         # health takes this long
//! model = "scripted-1"  # the model name reported
//! reply = "Hello there. How can I help?"  # chat reply
//! token_ms = 20         # delay between chat tokens
//! transcript = "hello"  # STT result for audio that is not silent (silence gives "")
//! sample_rate = 16000   # TTS output rate
//! shutdown_file = "/tmp/x"  # each shutdown appends a line `shutdown <name>` here
//! ```

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
    thread::sleep,
    time::Duration,
};

use hearth_plugin_api::{
    AudioOut, ChatEngine, ChatMessage, ChatOutcome, Context, Description, Flow, PcmInput, PcmSamples, PluginError,
    PluginResult, Segment, SttEngine, TokenOut, Transcript, TtsEngine, Warmable,
};
use serde::Deserialize;

/// The script.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Script {
    /// A label; also the key for `fail_loads`.
    pub name: Option<String>,
    /// Load time in ms.
    pub load_ms: u64,
    /// Sub-progress reports during load.
    pub load_steps: u32,
    /// Warmup time in ms.
    pub warmup_ms: u64,
    /// Load fails with this message.
    pub fail_load: Option<String>,
    /// The first N loads (per `name`, per process) fail.
    pub fail_loads: u32,
    /// Load panics with this message.
    pub panic_load: Option<String>,
    /// Load never returns.
    pub hang_load: bool,
    /// Warmup fails with this message.
    pub fail_warmup: Option<String>,
    /// Warmup panics with this message.
    pub panic_warmup: Option<String>,
    /// Warmup never returns.
    pub hang_warmup: bool,
    /// Health reports this problem.
    pub unhealthy: Option<String>,
    /// Health takes this long, in ms.
    pub health_ms: u64,
    /// Model name to report.
    pub model: Option<String>,
    /// The chat reply.
    pub reply: Option<String>,
    /// Delay between chat tokens, in ms.
    pub token_ms: u64,
    /// The STT result.
    pub transcript: Option<String>,
    /// TTS output rate.
    pub sample_rate: Option<u32>,
    /// Each `shutdown` appends a line to this file (for tests of when the
    /// host shuts engines down).
    pub shutdown_file: Option<std::path::PathBuf>,
}

/// Loads per `name` so far in this process (the library is never unloaded,
/// so this outlives engine instances, which is what `fail_loads` needs).
fn load_counts() -> &'static Mutex<HashMap<String, u32>> {
    static COUNTS: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    COUNTS.get_or_init(Default::default)
}

/// The scripted engine.
#[derive(Default)]
pub struct Scripted {
    script: OnceLock<Script>,
    /// The script of the last load, even a failed one (for `shutdown`).
    attempted: OnceLock<Script>,
}

impl Scripted {
    fn script(&self) -> PluginResult<&Script> {
        self.script.get().ok_or_else(|| PluginError::from("not loaded"))
    }
}

fn hang(ctx_label: &str) -> ! {
    // Deliberately ignores cancellation: this is the plugin the host must
    // abandon.
    loop {
        sleep(Duration::from_secs(3600));
        let _ = ctx_label;
    }
}

impl Warmable for Scripted {
    type Config = Script;

    fn describe(&self) -> Description {
        Description {
            name: "scripted".into(),
            engine_version: "test fixture".into(),
            model: self.script.get().and_then(|s| s.model.clone()),
        }
    }

    fn load(&self, script: Script, ctx: &Context<'_>) -> PluginResult<()> {
        let _ = self.attempted.set(script.clone());
        let steps = script.load_steps.max(1);
        for step in 1..=steps {
            sleep(Duration::from_millis(script.load_ms / u64::from(steps)));
            ctx.check_cancelled()?;
            ctx.progress(step as f32 / steps as f32, &format!("step {step} of {steps}"));
        }
        if let Some(message) = &script.panic_load {
            panic!("{message}");
        }
        if script.hang_load {
            hang("load");
        }
        if let Some(message) = &script.fail_load {
            return Err(message.as_str().into());
        }
        if script.fail_loads > 0 {
            let key = script.name.clone().unwrap_or_default();
            let mut counts = load_counts().lock().unwrap_or_else(|e| e.into_inner());
            let seen = counts.entry(key).or_default();
            *seen += 1;
            if *seen <= script.fail_loads {
                return Err(format!("scripted failure {} of {}", seen, script.fail_loads).into());
            }
        }
        ctx.info("scripted engine loaded");
        self.script.set(script).map_err(|_| PluginError::from("loaded twice"))
    }

    fn warmup(&self, _ctx: &Context<'_>) -> PluginResult<String> {
        let script = self.script()?;
        sleep(Duration::from_millis(script.warmup_ms));
        if let Some(message) = &script.panic_warmup {
            panic!("{message}");
        }
        if script.hang_warmup {
            hang("warmup");
        }
        if let Some(message) = &script.fail_warmup {
            return Err(message.as_str().into());
        }
        Ok(format!("slept {} ms", script.warmup_ms))
    }

    fn health(&self) -> PluginResult<()> {
        let script = self.script()?;
        sleep(Duration::from_millis(script.health_ms));
        match &script.unhealthy {
            Some(problem) => Err(problem.as_str().into()),
            None => Ok(()),
        }
    }

    fn shutdown(&self) {
        // `attempted`, not `script`: a failed load is shut down too.
        let Some(script) = self.attempted.get() else { return };
        if let Some(path) = &script.shutdown_file {
            use std::io::Write;
            let name = script.name.clone().unwrap_or_default();
            if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(file, "shutdown {name}");
            }
        }
    }
}

impl TtsEngine for Scripted {
    fn synthesize(&self, text: &str, out: &mut AudioOut<'_>) -> PluginResult<()> {
        let script = self.script()?;
        let rate = script.sample_rate.unwrap_or(16_000);
        // One chunk per sentence, cut by the rule every engine shares.
        for sentence in hearth_plugin_api::text::split_sentences(text) {
            // 60 ms of a 440 Hz tone per character: audible, and its length
            // follows the text, which is all a fixture needs.
            let n = (rate as usize * 60 / 1000) * sentence.chars().count();
            let samples = (0..n)
                .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16)
                .collect();
            if out.send(rate, samples, sentence) == Flow::Stop {
                break;
            }
        }
        Ok(())
    }
}

impl SttEngine for Scripted {
    fn transcribe(&self, audio: PcmInput<'_>) -> PluginResult<Transcript> {
        let script = self.script()?;
        let (frames, loud) = match audio.samples {
            PcmSamples::I16(s) => (s.len(), s.iter().any(|&v| v.unsigned_abs() > 327)),
            PcmSamples::F32(s) => (s.len(), s.iter().any(|&v| v.abs() > 0.01)),
        };
        let frames = frames / usize::from(audio.channels.max(1));
        let end_ms = frames as u64 * 1000 / u64::from(audio.sample_rate.max(1));
        // Silence (nothing above 1 % of full scale) is heard as nothing, as
        // a real recognizer would.
        let text = if loud {
            script.transcript.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let segments = if text.is_empty() {
            Vec::new()
        } else {
            vec![Segment {
                start_ms: 0,
                end_ms,
                text: text.clone().into(),
            }]
        };
        Ok(Transcript {
            text: text.into(),
            segments: segments.into(),
            language: "en".into(),
        })
    }
}

impl ChatEngine for Scripted {
    fn chat(&self, messages: &[ChatMessage], out: &mut TokenOut<'_>) -> PluginResult<ChatOutcome> {
        let script = self.script()?;
        let reply = match &script.reply {
            Some(reply) => reply.clone(),
            None => format!(
                "You said: {}",
                messages.last().map(|m| m.content.as_str()).unwrap_or_default()
            ),
        };
        let mut tokens = 0;
        for (i, word) in reply.split(' ').enumerate() {
            sleep(Duration::from_millis(script.token_ms));
            let piece = if i == 0 { word.to_owned() } else { format!(" {word}") };
            tokens += 1;
            if out.send(&piece) == Flow::Stop {
                return Ok(ChatOutcome {
                    tokens,
                    finish_reason: "cancelled".into(),
                });
            }
        }
        Ok(ChatOutcome {
            tokens,
            finish_reason: "stop".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use hearth_plugin_api::text::split_sentences;

    #[test]
    fn splits_sentences_by_the_shared_rule() {
        assert_eq!(
            split_sentences("Hi. It is 3.5 degrees, e.g. warm? Fine"),
            vec!["Hi.", "It is 3.5 degrees, e.g. warm?", "Fine"]
        );
        assert!(split_sentences("  ").is_empty());
    }
}
