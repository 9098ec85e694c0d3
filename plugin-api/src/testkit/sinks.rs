//! Collecting sinks for audio and tokens (that can answer stop after N
//! pieces), and one-call helpers that drive the author traits directly.

use std::{path::Path, time::Instant};

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr};

use crate::{
    abi::{AudioChunk, AudioSink, AudioSink_TO, Flow, TokenSink, TokenSink_TO},
    author::{AudioOut, ChatEngine, ChatOutcome, PluginResult, SttEngine, TokenOut, TtsEngine, Warmable},
    client::{self, Audio, Message, Speech, Transcription},
    testkit::RecordingHost,
};

/// Collects synthesized audio; answers [`Flow::Stop`] once `stop_after`
/// chunks arrived, and counts chunks that still came after that.
#[derive(Debug, Default)]
pub struct AudioCollector {
    /// Every chunk, in order.
    pub chunks: Vec<Speech>,
    /// Chunks received after the collector answered stop.
    pub after_stop: usize,
    /// When the first chunk arrived.
    pub first_at: Option<Instant>,
    stop_after: Option<usize>,
}

impl AudioCollector {
    /// Takes every chunk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers stop once `n` chunks arrived.
    pub fn stop_after(n: usize) -> Self {
        Self {
            stop_after: Some(n),
            ..Self::default()
        }
    }

    /// Takes one chunk and says whether to go on: the sink for
    /// [`client::Instance::synthesize`] is `&mut |c| collector.take(c)`.
    pub fn take(&mut self, chunk: Speech) -> Flow {
        self.first_at.get_or_insert_with(Instant::now);
        let stopped = matches!(self.stop_after, Some(n) if self.chunks.len() >= n);
        if stopped {
            self.after_stop += 1;
        }
        self.chunks.push(chunk);
        match self.stop_after {
            Some(n) if self.chunks.len() >= n => Flow::Stop,
            _ => Flow::Continue,
        }
    }

    /// An [`AudioOut`] feeding this collector, for calling
    /// [`TtsEngine::synthesize`] directly.
    pub fn out(&mut self) -> AudioOut<'_> {
        AudioOut::new(AudioSink_TO::from_ptr(self, TD_Opaque))
    }

    /// Seconds of audio received.
    pub fn seconds(&self) -> f64 {
        self.chunks.iter().map(Speech::seconds).sum()
    }

    /// All samples, concatenated.
    pub fn samples(&self) -> Vec<i16> {
        self.chunks.iter().flat_map(|c| c.samples.iter().copied()).collect()
    }
}

impl AudioSink for AudioCollector {
    fn chunk(&mut self, chunk: AudioChunk) -> Flow {
        self.take(Speech {
            sample_rate: chunk.sample_rate,
            samples: chunk.samples.into_vec(),
            text: chunk.text.into_string(),
        })
    }
}

/// Collects a streamed chat reply; answers [`Flow::Stop`] once
/// `stop_after` pieces arrived, and counts pieces that still came.
#[derive(Debug, Default)]
pub struct TokenCollector {
    /// Every piece, in order.
    pub pieces: Vec<String>,
    /// Pieces received after the collector answered stop.
    pub after_stop: usize,
    /// When the first piece arrived.
    pub first_at: Option<Instant>,
    stop_after: Option<usize>,
}

impl TokenCollector {
    /// Takes every piece.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers stop once `n` pieces arrived.
    pub fn stop_after(n: usize) -> Self {
        Self {
            stop_after: Some(n),
            ..Self::default()
        }
    }

    /// Takes one piece and says whether to go on: the sink for
    /// [`client::Instance::chat`] is `&mut |t| collector.take(t)`.
    pub fn take(&mut self, piece: &str) -> Flow {
        self.first_at.get_or_insert_with(Instant::now);
        if matches!(self.stop_after, Some(n) if self.pieces.len() >= n) {
            self.after_stop += 1;
        }
        self.pieces.push(piece.to_owned());
        match self.stop_after {
            Some(n) if self.pieces.len() >= n => Flow::Stop,
            _ => Flow::Continue,
        }
    }

    /// A [`TokenOut`] feeding this collector, for calling
    /// [`ChatEngine::chat`] directly.
    pub fn out(&mut self) -> TokenOut<'_> {
        TokenOut::new(TokenSink_TO::from_ptr(self, TD_Opaque))
    }

    /// The reply so far.
    pub fn text(&self) -> String {
        self.pieces.concat()
    }
}

impl TokenSink for TokenCollector {
    fn token(&mut self, text: RStr<'_>) -> Flow {
        self.take(text.as_str())
    }
}

/// Parses `config_json` as the host would and loads `engine` with it,
/// relative paths against `base_dir`. Returns the result and the host with
/// what the engine reported.
pub fn load<E: Warmable>(engine: &E, config_json: &str, base_dir: &Path) -> (PluginResult<()>, RecordingHost) {
    let host = RecordingHost::new();
    let result =
        crate::export::parse_config::<E>(config_json).and_then(|config| engine.load(config, &host.context(base_dir)));
    (result, host)
}

/// Speaks `text` with `engine`, taking every chunk.
pub fn synthesize<E: TtsEngine>(engine: &E, text: &str) -> PluginResult<Vec<Speech>> {
    let mut collector = AudioCollector::new();
    engine.synthesize(text, &mut collector.out())?;
    Ok(collector.chunks)
}

/// Speaks `text` with `engine`, answering stop after `n` chunks; returns the
/// collector (with `after_stop`).
pub fn synthesize_until<E: TtsEngine>(engine: &E, text: &str, n: usize) -> PluginResult<AudioCollector> {
    let mut collector = AudioCollector::stop_after(n);
    engine.synthesize(text, &mut collector.out())?;
    Ok(collector)
}

/// Transcribes `audio` with `engine`, as plain Rust.
pub fn transcribe<E: SttEngine>(engine: &E, audio: &Audio) -> PluginResult<Transcription> {
    engine.transcribe(audio.as_input()).map(client::from_abi_transcript)
}

/// Chats with `engine` into `collector` (make it with
/// [`TokenCollector::stop_after`] to test stopping).
pub fn chat<E: ChatEngine>(
    engine: &E,
    messages: &[Message],
    collector: &mut TokenCollector,
) -> PluginResult<ChatOutcome> {
    let messages = client::to_abi_messages(messages);
    engine.chat(&messages, &mut collector.out())
}
