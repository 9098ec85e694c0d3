//! One Wyoming connection's requests: `describe`, `ping`, transcription and
//! synthesis (whole and streamed), answered through an [`Outbox`] that a
//! writer task drains to the socket.
//!
//! Requests are handled one after another, as the Python peers handle
//! them, except streamed synthesis: its sentences are spoken by a task of
//! their own while the connection goes on reading text, so the first
//! sentence is heard before the client has sent the last.
//!
//! Each request takes its engine from the supervisor when it starts
//! (`transcribe`, the first audio, `synthesize`, `synthesize-start`) and
//! keeps it to the end: an engine swapped by a reload serves from the next
//! request on. A service that is not ready is refused at once with its
//! state and progress.

use std::sync::Arc;

use bytes::Bytes;
use hearth_plugin_api::{
    client::{Audio, Samples},
    text::SentenceSplitter,
    SpeechOptions,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    audio::{self, Incoming, STT_RATE},
    frame::{Inbound, Outbound},
    info::{self, EngineFacts},
    Shared,
};
use hearth_core::{
    config::ServiceName,
    engine::{SttHandle, TtsHandle},
    error::HostError,
};

use crate::error::WyomingError;

/// Sentences of a streamed synthesis waiting to be spoken; a client that
/// sends text faster than it is spoken waits for room.
const SENTENCE_QUEUE: usize = 32;

/// Where a connection's events go: a bounded queue the writer task drains,
/// and the connection's `closing` signal.
#[derive(Clone)]
pub struct Outbox {
    frames: mpsc::Sender<Bytes>,
    closing: CancellationToken,
}

impl Outbox {
    /// An outbox feeding `frames`, closed by `closing`.
    pub fn new(frames: mpsc::Sender<Bytes>, closing: CancellationToken) -> Self {
        Self { frames, closing }
    }

    /// Queues `event`; false when the client is gone.
    pub async fn send(&self, event: Outbound) -> bool {
        self.frames.send(event.encode()).await.is_ok()
    }

    /// Queues `event` of a reply in progress, waiting while the client is
    /// behind; false when the client is gone or the connection is closing
    /// (so the reply stops).
    async fn deliver(&self, event: Outbound) -> bool {
        if self.closing.is_cancelled() {
            return false;
        }
        tokio::select! {
            sent = self.frames.send(event.encode()) => sent.is_ok(),
            () = self.closing.cancelled() => false,
        }
    }

    /// Sends the `error` event for `error` and closes the connection.
    pub async fn fail(&self, error: &WyomingError) {
        self.send(report(error)).await;
        self.closing.cancel();
    }
}

/// The `error` event for `error`. An engine's own message goes to the log,
/// not to the client (as in the HTTP API).
pub fn report(error: &WyomingError) -> Outbound {
    match error {
        WyomingError::Core(HostError::Engine { service, message }) => {
            tracing::warn!("wyoming: {service} failed: {message}");
            Outbound::error_coded(
                "engine_error",
                format!("the {service} engine failed; the Hearth log has the details"),
            )
        }
        WyomingError::Other(message) => {
            tracing::warn!("wyoming: {message}");
            Outbound::error_coded("internal", "internal error; the Hearth log has the details")
        }
        other => {
            tracing::debug!("wyoming: refused: {other}");
            Outbound::error(other)
        }
    }
}

/// A streamed synthesis: text in, sentences out to the speaking task.
struct SpeechStream {
    splitter: SentenceSplitter,
    sentences: mpsc::Sender<String>,
    /// Ends with true when every sentence was spoken.
    task: tokio::task::JoinHandle<bool>,
}

/// An open transcription: its engine and the audio so far.
struct Listening {
    stt: SttHandle,
    audio: Incoming,
}

/// The state of one connection.
pub struct Session {
    shared: Arc<Shared>,
    out: Outbox,
    stream: Option<SpeechStream>,
    /// A `synthesize-start` came on this connection: later `synthesize`
    /// events are the copies streaming clients send for servers without
    /// streaming, and are ignored (as wyoming-piper ignores them).
    streamed: bool,
    listening: Option<Listening>,
}

impl Session {
    /// A connection with nothing open.
    pub fn new(shared: Arc<Shared>, out: Outbox) -> Self {
        Self {
            shared,
            out,
            stream: None,
            streamed: false,
            listening: None,
        }
    }

    /// Handles one event. An error is answered with an `error` event by the
    /// caller, which then closes the connection.
    pub async fn handle(&mut self, event: Inbound) -> Result<(), WyomingError> {
        match event {
            Inbound::Describe => {
                let shared = Arc::clone(&self.shared);
                let info = tokio::task::spawn_blocking(move || {
                    let config = shared.supervisor.config();
                    info::info(&shared.readiness.current(), &config, &EngineFacts::read(&config))
                })
                .await
                .map_err(|e| WyomingError::Other(format!("describing the engines failed: {e}")))?;
                self.out.send(Outbound::Info(info)).await;
            }
            Inbound::Ping { text } => {
                self.out.send(Outbound::Pong { text }).await;
            }
            Inbound::Transcribe { name, language } => {
                tracing::debug!(
                    ?name,
                    ?language,
                    "wyoming: transcribe (the engine's configured language applies)"
                );
                self.listening = Some(self.listen()?);
            }
            Inbound::AudioStart(format) => {
                Incoming::check(format)?;
                if self.listening.as_ref().is_none_or(|l| !l.audio.is_empty()) {
                    self.listening = Some(self.listen()?);
                }
            }
            Inbound::AudioChunk(format, pcm) => {
                let listening = match &mut self.listening {
                    Some(listening) => listening,
                    None => self.listening.insert(self.listen()?),
                };
                listening.audio.push(format, &pcm)?;
            }
            Inbound::AudioStop => {
                let listening = match self.listening.take() {
                    Some(listening) => listening,
                    None => self.listen()?,
                };
                self.transcribe(listening).await?;
            }
            Inbound::Synthesize { text, voice } => {
                if self.streamed {
                    tracing::debug!("wyoming: synthesize after synthesize-start ignored (a streaming client's copy)");
                    return Ok(());
                }
                tracing::debug!(?voice, "wyoming: synthesize (the loaded voice speaks)");
                self.synthesize(text).await?;
            }
            Inbound::SynthesizeStart { voice } => {
                if self.stream.is_some() {
                    return Err(WyomingError::BadRequest(
                        "synthesize-start while a streamed synthesis is open: send synthesize-stop first".into(),
                    ));
                }
                tracing::debug!(?voice, "wyoming: synthesize-start (the loaded voice speaks)");
                let tts = self.tts()?;
                self.streamed = true;
                self.stream = Some(SpeechStream::start(tts, self.out.clone()));
            }
            Inbound::SynthesizeChunk { text } => {
                let Some(stream) = &mut self.stream else {
                    tracing::debug!("wyoming: synthesize-chunk without synthesize-start ignored");
                    return Ok(());
                };
                for sentence in stream.splitter.push(&text) {
                    // A closed queue means the speaking task failed; it has
                    // said so and closes the connection.
                    let _ = stream.sentences.send(sentence).await;
                }
            }
            Inbound::SynthesizeStop => {
                if let Some(mut stream) = self.stream.take() {
                    if let Some(rest) = stream.splitter.finish() {
                        let _ = stream.sentences.send(rest).await;
                    }
                    drop(stream.sentences);
                    match stream.task.await {
                        Ok(true) => {}
                        // The task reported its failure.
                        Ok(false) => return Ok(()),
                        Err(e) => return Err(WyomingError::Other(format!("streamed synthesis failed: {e}"))),
                    }
                }
                self.out.send(Outbound::SynthesizeStopped).await;
            }
            Inbound::Other(kind) => tracing::debug!("wyoming: `{kind}` event ignored"),
        }
        Ok(())
    }

    /// A service that cannot serve: its state and progress, in words.
    fn not_ready(&self, service: ServiceName) -> WyomingError {
        let reason = info::not_ready_reason(&self.shared.readiness.current(), service)
            .unwrap_or_else(|| "it is starting; retry shortly".to_owned());
        HostError::NotReady { service, reason }.into()
    }

    fn tts(&self) -> Result<TtsHandle, WyomingError> {
        self.shared
            .supervisor
            .tts()
            .ok_or_else(|| self.not_ready(ServiceName::Tts))
    }

    /// Opens a transcription on the STT engine, if it is ready.
    fn listen(&self) -> Result<Listening, WyomingError> {
        let stt = self
            .shared
            .supervisor
            .stt()
            .ok_or_else(|| self.not_ready(ServiceName::Stt))?;
        Ok(Listening {
            stt,
            audio: Incoming::new(self.shared.limits.max_audio.as_secs()),
        })
    }

    /// Transcribes the audio of `listening` and sends the transcript: as a
    /// stream (`transcript-start`, a `transcript-chunk` per segment), the
    /// `transcript` itself, then `transcript-stop` — the order the protocol
    /// gives for streaming servers, which clients without streaming read
    /// as a plain `transcript`.
    async fn transcribe(&mut self, listening: Listening) -> Result<(), WyomingError> {
        let samples = listening.audio.finish()?;
        let (text, language, pieces) = if samples.is_empty() {
            // As wyoming-faster-whisper: no audio, an empty transcript.
            (String::new(), None, Vec::new())
        } else {
            let stt = listening.stt;
            let audio = Audio {
                sample_rate: STT_RATE,
                channels: 1,
                samples: Samples::I16(samples),
            };
            let result = stt.transcription(audio).await.map_err(|message| HostError::Engine {
                service: ServiceName::Stt,
                message,
            })?;
            let mut pieces: Vec<String> = result
                .segments
                .iter()
                .map(|s| s.text.trim())
                .filter(|t| !t.is_empty())
                .enumerate()
                .map(|(i, t)| if i == 0 { t.to_owned() } else { format!(" {t}") })
                .collect();
            let text = result.text.trim().to_owned();
            if pieces.is_empty() && !text.is_empty() {
                pieces.push(text.clone());
            }
            let language = Some(result.language).filter(|l| !l.is_empty());
            (text, language, pieces)
        };
        let out = &self.out;
        out.send(Outbound::TranscriptStart {
            language: language.clone(),
        })
        .await;
        for text in pieces {
            out.send(Outbound::TranscriptChunk { text }).await;
        }
        out.send(Outbound::Transcript { text, language }).await;
        out.send(Outbound::TranscriptStop).await;
        Ok(())
    }

    /// Speaks a whole text: one `audio-start`, its chunks sentence by
    /// sentence as they are made, one `audio-stop` (only that when there is
    /// nothing to say, as wyoming-piper answers).
    async fn synthesize(&mut self, text: String) -> Result<(), WyomingError> {
        let tts = self.tts()?;
        if text.trim().is_empty() {
            self.out.send(Outbound::AudioStop { timestamp: None }).await;
            return Ok(());
        }
        speak(&tts, text, &self.out, true).await
    }
}

impl SpeechStream {
    /// Starts the task that speaks the stream's sentences in order, each as
    /// `audio-start`, chunks, `audio-stop` (as wyoming-piper streams).
    fn start(tts: TtsHandle, out: Outbox) -> Self {
        let (sentences, mut queue) = mpsc::channel::<String>(SENTENCE_QUEUE);
        let task = tokio::spawn(async move {
            while let Some(sentence) = queue.recv().await {
                if let Err(error) = speak(&tts, sentence, &out, false).await {
                    out.fail(&error).await;
                    return false;
                }
                if out.closing.is_cancelled() {
                    return false;
                }
            }
            true
        });
        Self {
            splitter: SentenceSplitter::new(),
            sentences,
            task,
        }
    }
}

/// Speaks `text`, sending `audio-start` before the first chunk and
/// `audio-stop` after the last (also without any audio when
/// `always_stop`). Stops the engine early when the client goes or the
/// connection closes.
async fn speak(tts: &TtsHandle, text: String, out: &Outbox, always_stop: bool) -> Result<(), WyomingError> {
    let mut speech = tts.speak(text, SpeechOptions::default());
    let mut started = false;
    while let Some(chunk) = speech.next().await {
        if !started {
            started = true;
            let start = Outbound::AudioStart {
                rate: chunk.sample_rate,
                width: 2,
                channels: 1,
                timestamp: None,
            };
            if !out.deliver(start).await {
                return Ok(());
            }
        }
        for frame in audio::chunks(chunk.sample_rate, &chunk.samples) {
            if !out.deliver(frame).await {
                return Ok(());
            }
        }
    }
    speech.finish().await.map_err(|message| HostError::Engine {
        service: ServiceName::Tts,
        message,
    })?;
    if started || always_stop {
        out.deliver(Outbound::AudioStop { timestamp: None }).await;
    }
    Ok(())
}
