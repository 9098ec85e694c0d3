//! Hands-free listening for `/ws/conversation`: the microphone's audio as
//! it streams in, resampled to 16 kHz, through the `vad` engine, with the
//! audio kept that an utterance may still need.
//!
//! The [`Listener`] is the blocking half (resampling, the VAD calls, the
//! buffer); the conversation session drives it from its loop and turns its
//! speech starts and ends into utterances, partial transcripts and turns
//! (see `docs/conversation-protocol.md`, "Hands-free").

use hearth_audio::StreamResampler;
use hearth_plugin_api::{VadEvent, VadEventKind};

use crate::engine::VadStream;

/// The rate the VAD and the utterances' audio run at.
pub const RATE: u32 = 16_000;
const PER_MS: u64 = RATE as u64 / 1000;
/// Audio kept before any speech, for the VAD's padding and its decision
/// delay (a start is known `min_speech_ms` after it happened).
const KEEP_IDLE_MS: u64 = 2_000;

/// What the VAD found, in the stream's milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Speech began at this point.
    Start(u64),
    /// Speech ended at this point.
    End(u64),
}

impl From<VadEvent> for Heard {
    fn from(event: VadEvent) -> Self {
        if event.kind == VadEventKind::SPEECH_START {
            Self::Start(event.at_ms)
        } else {
            Self::End(event.at_ms)
        }
    }
}

/// One hands-free microphone stream. All methods block except
/// [`Listener::audio`] and [`Listener::now_ms`].
pub struct Listener {
    vad: VadStream,
    resampler: Option<StreamResampler>,
    /// 16 kHz audio from stream sample `start` on.
    buffer: Vec<i16>,
    start: u64,
    /// Keep audio from this stream millisecond on (an utterance is open).
    hold_from: Option<u64>,
}

impl Listener {
    /// Listens to `client_rate` Hz mono audio through `vad`.
    pub fn new(vad: VadStream, client_rate: u32) -> Result<Self, String> {
        let resampler = if client_rate == RATE {
            None
        } else {
            Some(StreamResampler::new(client_rate, RATE).map_err(|e| e.to_string())?)
        };
        Ok(Self {
            vad,
            resampler,
            buffer: Vec::new(),
            start: 0,
            hold_from: None,
        })
    }

    /// Takes the client's next samples; returns what the VAD heard in them.
    pub fn push(&mut self, pcm: &[i16]) -> Result<Vec<Heard>, String> {
        let samples: Vec<i16> = match &mut self.resampler {
            None => pcm.to_vec(),
            Some(resampler) => {
                let input: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
                let output = resampler.push(&input).map_err(|e| e.to_string())?;
                output
                    .iter()
                    .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
                    .collect()
            }
        };
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        self.buffer.extend_from_slice(&samples);
        let heard = self.vad.push(&samples)?;
        self.trim();
        Ok(heard.into_iter().map(Heard::from).collect())
    }

    /// The stream's length so far, in milliseconds.
    pub fn now_ms(&self) -> u64 {
        (self.start + self.buffer.len() as u64) / PER_MS
    }

    /// Keeps audio from `ms` on (an utterance opened there), or only the
    /// last couple of seconds (`None`).
    pub fn hold_from(&mut self, ms: Option<u64>) {
        self.hold_from = ms;
        self.trim();
    }

    /// The audio from `from_ms` to `to_ms`, as far as it is kept.
    pub fn audio(&self, from_ms: u64, to_ms: u64) -> Vec<i16> {
        let index = |ms: u64| ((ms * PER_MS).saturating_sub(self.start) as usize).min(self.buffer.len());
        let (from, to) = (index(from_ms), index(to_ms));
        self.buffer[from..to.max(from)].to_vec()
    }

    fn trim(&mut self) {
        let end = self.start + self.buffer.len() as u64;
        let keep = match self.hold_from {
            Some(ms) => ms * PER_MS,
            None => end.saturating_sub(KEEP_IDLE_MS * PER_MS),
        };
        if keep > self.start {
            let drop = ((keep - self.start) as usize).min(self.buffer.len());
            self.buffer.drain(..drop);
            self.start += drop as u64;
        }
    }
}
