//! {{description}}
//!
//! A starting point made by `hearth plugin new`: a working VAD engine that
//! calls a 32 ms frame speech when it is loud enough, and applies the
//! usual minimum speech and minimum silence. Replace the loudness test with
//! your model; keep one `Stream` per microphone.

use std::sync::OnceLock;

use hearth_plugin_api::{
    export_plugin, Context, Description, PluginError, PluginResult, VadEngine, VadEvent, VadEventKind, Warmable,
};
use serde::Deserialize;

/// Samples per frame: 32 ms at 16 kHz, the rate a VAD engine receives.
const FRAME: usize = 512;
const FRAME_MS: u64 = 32;

/// The `[vad.config]` table in `plugins.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// RMS level (0–1 of full scale) above which a frame is speech.
    pub threshold: f32,
    /// Speech shorter than this is ignored.
    pub min_speech_ms: u64,
    /// A pause shorter than this does not end speech.
    pub min_silence_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threshold: 0.02,
            min_speech_ms: 128,
            min_silence_ms: 320,
        }
    }
}

/// The engine. Loaded state lives in a `OnceLock`: the host calls every
/// method through `&self`, from several threads at once.
#[derive(Default)]
pub struct Engine {
    config: OnceLock<Config>,
}

/// What one stream remembers between pieces of audio.
#[derive(Default)]
pub struct Stream {
    pending: Vec<f32>,
    frames: u64,
    /// First loud frame of speech not yet long enough to count.
    candidate: Option<u64>,
    speaking: bool,
    /// First quiet frame while speaking.
    quiet_since: Option<u64>,
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
                "threshold = {} is outside 0–1; set it in [vad.config]",
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

impl VadEngine for Engine {
    type Stream = Stream;

    fn open(&self) -> PluginResult<Stream> {
        Ok(Stream::default())
    }

    fn push(&self, stream: &mut Stream, samples: &[f32]) -> PluginResult<Vec<VadEvent>> {
        let config = self.config.get().ok_or_else(|| PluginError::from("not loaded"))?;
        let mut events = Vec::new();
        for &sample in samples {
            stream.pending.push(sample);
            if stream.pending.len() < FRAME {
                continue;
            }
            let rms = (stream.pending.iter().map(|s| s * s).sum::<f32>() / FRAME as f32).sqrt();
            stream.pending.clear();
            let frame = stream.frames;
            stream.frames += 1;
            let loud = rms > config.threshold;
            if stream.speaking {
                match (loud, stream.quiet_since) {
                    (true, _) => stream.quiet_since = None,
                    (false, None) => stream.quiet_since = Some(frame),
                    (false, Some(since)) if (frame + 1 - since) * FRAME_MS >= config.min_silence_ms => {
                        stream.speaking = false;
                        stream.quiet_since = None;
                        events.push(VadEvent { kind: VadEventKind::SPEECH_END, at_ms: since * FRAME_MS });
                    }
                    (false, Some(_)) => {}
                }
            } else if !loud {
                stream.candidate = None;
            } else {
                let first = *stream.candidate.get_or_insert(frame);
                if (frame + 1 - first) * FRAME_MS >= config.min_speech_ms {
                    stream.candidate = None;
                    stream.speaking = true;
                    events.push(VadEvent { kind: VadEventKind::SPEECH_START, at_ms: first * FRAME_MS });
                }
            }
        }
        Ok(events)
    }
}

export_plugin!(vad: Engine, Engine::default);
