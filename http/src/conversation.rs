//! `/ws/conversation`: a voice conversation over one WebSocket, pipelined
//! audio → STT → chat → TTS → audio. The protocol is documented in
//! `docs/conversation-protocol.md`; this module is its only implementation.
//!
//! One connection is one session with its own bounded history. A turn
//! starts from a typed message or from an utterance (start, audio frames,
//! end). While the chat engine streams tokens, a splitter hands every
//! finished sentence to a TTS worker, whose audio goes out while the model
//! keeps generating. A cancel message, a new turn (barge-in) or the client
//! going away set the turn's cancel flag, which the engines see through
//! their sinks answering [`Flow::Stop`].
//!
//! Hands-free (`"mode": "hands_free"` in `start`, with a `vad` engine
//! ready), the client streams its microphone and the server finds the
//! utterances: a [`hearth_core::hands_free::Listener`] feeds the VAD, each stretch
//! of speech is transcribed as soon as it ends (`partial_transcript`), and
//! the reply is prepared behind a gate ([`Outbox::held`]) while the end of
//! the utterance (`end_of_utterance` of silence) is awaited; then the gate
//! opens, or, when speech resumes, the prepared reply is dropped unseen.
//! Speech while a reply plays cancels it (`cancelled`).
//!
//! The session refuses to start before READY (close code 1013 with the
//! state), and when `max_conversations` are already open (1013 too).

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket},
        State,
    },
    response::Response,
    Extension,
};
use futures_util::{
    future::{BoxFuture, Shared},
    FutureExt, SinkExt, StreamExt,
};
use hearth_plugin_api::{
    client::{Audio, Message as ChatMessage, Samples},
    text::SentenceSplitter,
    Flow,
};
use serde::Deserialize;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument as _;

use hearth_core::{
    config::ServiceName,
    hands_free::{Heard, Listener},
    metrics::Refusal,
    readiness::NotReady,
};

use crate::{
    conversation_events::{Done, InputFormats, Segment, ServerEvent, Timings},
    error::echo,
    extract::Upgrade,
    server::{ConnectionSlot, Upgraded},
    AppState,
};

/// Close code: the server is shutting down.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: the server cannot take the conversation now (not ready, or
/// too many conversations). Reconnect later.
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// Close code: a text frame was not UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code: a message was larger than `max_message_bytes`.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// What a client sends as JSON text frames.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    /// An utterance begins (push-to-talk), or hands-free listening does;
    /// binary frames of audio follow.
    Start {
        #[serde(default = "pcm16")]
        format: String,
        sample_rate: u32,
        #[serde(default = "mono")]
        channels: u16,
        #[serde(default)]
        mode: Mode,
        /// Hands-free: overrides `[conversation] incremental`.
        incremental: Option<bool>,
    },
    /// The utterance ended (push-to-talk released), or hands-free
    /// listening stops.
    End,
    /// A typed message.
    Text { text: String },
    /// Stop the reply now.
    Cancel,
    /// Forget the conversation so far.
    Reset,
}

/// How the client's audio is cut into utterances.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// The client says where an utterance ends (`end`).
    #[default]
    PushToTalk,
    /// The client streams its microphone; the server's VAD finds the
    /// utterances.
    HandsFree,
}

fn pcm16() -> String {
    "pcm16".to_owned()
}

fn mono() -> u16 {
    1
}

/// `GET /ws/conversation`.
#[utoipa::path(get, path = "/ws/conversation", tag = "websocket", summary = "The voice conversation",
    description = "JSON text events and binary audio both ways; see docs/conversation-protocol.md. \
        Before READY, or with `max_conversations` open, the socket opens and is closed with code 1013.",
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket opens"),
        (status = 400, description = "Not a WebSocket upgrade (a plain GET)", body = crate::error::ErrorBody),
    ))]
pub async fn conversation_ws(
    State(state): State<AppState>,
    slot: Option<Extension<ConnectionSlot>>,
    Upgrade(upgrade): Upgrade,
) -> Response {
    let limit = state.supervisor.config().conversation.max_message_bytes;
    let upgraded = Upgraded::new(slot);
    // The WebSocket layer's own limit is a backstop; the session checks the
    // configured limit itself so it can say why before closing.
    upgrade
        .max_message_size(limit.saturating_mul(2).max(64 * 1024))
        .on_upgrade(move |socket| upgraded.run(session(socket, state)))
}

async fn close_with(mut socket: WebSocket, code: u16, reason: String) {
    let mut reason = reason;
    reason.truncate(120);
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

fn error_event(code: &'static str, message: impl Into<String>) -> Message {
    ServerEvent::error(code, message).message()
}

/// What waits to be sent to one client, bounded in bytes
/// (`[conversation] send_queue_bytes`): a sender waits while the queue is
/// full, and fails once the client is gone.
#[derive(Clone)]
struct Outbox {
    queue: mpsc::UnboundedSender<(Message, OwnedSemaphorePermit)>,
    /// One permit per byte queued; closed when the writer stops.
    room: Arc<Semaphore>,
    limit: u32,
}

/// The client is gone: nothing more can be sent to it.
#[derive(Debug)]
struct Gone;

impl Outbox {
    fn new(limit: usize) -> (Self, mpsc::UnboundedReceiver<(Message, OwnedSemaphorePermit)>) {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX).max(1);
        let (queue, receiver) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(limit as usize));
        (Self { queue, room, limit }, receiver)
    }

    /// What `message` costs in the queue: its payload's bytes, at least one
    /// and at most the whole queue (so a message larger than the queue
    /// still goes, alone).
    fn cost(&self, message: &Message) -> u32 {
        let bytes = match message {
            Message::Text(text) => text.as_str().len(),
            Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data.len(),
            Message::Close(_) => 0,
        };
        u32::try_from(bytes).unwrap_or(u32::MAX).clamp(1, self.limit)
    }

    /// Queues `message`, waiting while the queue is full.
    async fn send(&self, message: Message) -> Result<(), Gone> {
        let cost = self.cost(&message);
        let room = Arc::clone(&self.room)
            .acquire_many_owned(cost)
            .await
            .map_err(|_| Gone)?;
        self.queue.send((message, room)).map_err(|_| Gone)
    }

    /// [`Outbox::send`] from a blocking thread (the engines' callbacks).
    fn blocking_send(&self, message: Message) -> Result<(), Gone> {
        tokio::runtime::Handle::current().block_on(self.send(message))
    }

    /// Resolves when the writer has stopped.
    async fn closed(&self) {
        self.queue.closed().await;
    }

    /// An outbox whose messages wait until the returned [`Gate`] is opened
    /// (then they go to this one, in order) or shut (then they are
    /// dropped). As bounded as this one.
    fn held(&self) -> (Outbox, Gate) {
        let (held, mut queued) = Outbox::new(self.limit as usize);
        let (decide, decision) = watch::channel(None);
        let mut wait = decision.clone();
        let real = self.clone();
        tokio::spawn(
            async move {
                let open = matches!(wait.wait_for(Option::is_some).await.map(|d| *d), Ok(Some(true)));
                if !open {
                    queued.close();
                }
                while let Some((message, _room)) = queued.recv().await {
                    if open && real.send(message).await.is_err() {
                        break;
                    }
                }
            }
            .in_current_span(),
        );
        (held, Gate { decide, decision })
    }
}

/// Opens or shuts an [`Outbox::held`].
struct Gate {
    decide: watch::Sender<Option<bool>>,
    decision: watch::Receiver<Option<bool>>,
}

impl Gate {
    fn open(&self) {
        let _ = self.decide.send(Some(true));
    }

    fn shut(&self) {
        let _ = self.decide.send(Some(false));
    }
}

/// Waits until `gate` is decided; true when it opened.
async fn opened(mut gate: watch::Receiver<Option<bool>>) -> bool {
    matches!(gate.wait_for(Option::is_some).await.map(|d| *d), Ok(Some(true)))
}

/// An utterance being received.
struct Utterance {
    sample_rate: u32,
    samples: Vec<i16>,
}

/// A reply being produced.
struct Turn {
    cancel: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    /// When the audio sent so far will have played, if it started.
    played_until: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Turn {
    async fn stop(self) {
        self.cancel.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }

    /// Still producing, or its audio still playing at the client (as far
    /// as the server can tell: real time from the first chunk sent).
    fn speaking(&self) -> bool {
        let until = *self.played_until.lock().unwrap_or_else(|e| e.into_inner());
        !self.task.is_finished() || until.is_some_and(|t| t > Instant::now())
    }
}

/// The words of an utterance's stretches of speech so far, transcribed in
/// order (shared: the end of the utterance and the prepared reply both
/// wait for them).
type Words = Shared<BoxFuture<'static, Result<Vec<String>, String>>>;

/// Hands-free, incremental: speech is transcribed for good in spans of at
/// least this much (5 s); shorter stretches wait for the next. Whisper
/// hears short spans worse: alone, the JFK clip's "ask not" (1.3 s) came
/// back "AS NOT!", and in a 4.3 s span as "asked not", which the whole
/// clip and 7.5 s spans never gave.
const MIN_SPAN_MS: u64 = 5_000;

/// Hands-free listening.
struct HandsFree {
    /// Taken while a push runs on a blocking thread.
    listener: Option<Listener>,
    /// The utterance being heard.
    spoken: Option<Spoken>,
    /// Transcribe as the person speaks (else when the utterance is over).
    incremental: bool,
}

/// An utterance being heard, hands-free.
struct Spoken {
    /// Where its first stretch of speech began (stream ms).
    first_ms: u64,
    /// Where the current stretch began, while speech is on.
    open: Option<u64>,
    /// The stretches so far, as (start, end) in stream ms.
    stretches: Vec<(u64, u64)>,
    /// Incremental: the words of the stretches transcribed for good.
    committed: Option<Words>,
    /// Incremental: where the speech not yet transcribed for good begins
    /// (stretches too short to be heard well alone wait for the next).
    pending_from: Option<u64>,
    /// Incremental: all words so far (the committed ones and the pending
    /// stretches' tentative ones).
    words: Option<Words>,
    /// The number of the latest span sent to be transcribed: an older
    /// span's partial transcript, superseded, is not sent (`u64::MAX` once
    /// the final transcript went out).
    latest: Arc<AtomicU64>,
    /// When the utterance is over unless speech resumes.
    deadline: Option<tokio::time::Instant>,
    /// Incremental: the reply being prepared behind a gate.
    prepared: Option<(Turn, Gate)>,
}

impl Spoken {
    /// Where the last stretch ended (its start, before any did).
    fn last_end(&self) -> u64 {
        self.stretches.last().map_or(self.first_ms, |&(_, end)| end)
    }

    fn drop_prepared(&mut self) {
        if let Some((turn, gate)) = self.prepared.take() {
            gate.shut();
            turn.cancel.store(true, Ordering::Relaxed);
        }
    }
}

/// Where a turn's input comes from.
enum Input {
    Text(String),
    Audio(Utterance),
}

async fn session(socket: WebSocket, state: AppState) {
    let snapshot = state.readiness.current();
    if !snapshot.is_ready() {
        let reason = format!(
            "not ready: {} ({}%); retry when /api/ready is 200",
            snapshot.state.as_str(),
            snapshot.progress
        );
        return close_with(socket, CLOSE_TRY_AGAIN_LATER, reason).await;
    }
    let limits = state.supervisor.config().conversation.clone();
    let metrics = Arc::clone(state.supervisor.metrics());
    let Ok(_permit) = Arc::clone(&state.conversations).try_acquire_owned() else {
        metrics.refused(Refusal::MaxConversations);
        let reason = format!("too many conversations (max {}); retry later", limits.max_conversations);
        return close_with(socket, CLOSE_TRY_AGAIN_LATER, reason).await;
    };

    metrics.conversation_started();
    tracing::info!("conversation started");
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = Outbox::new(limits.send_queue_bytes);
    let send_timeout = limits.send_timeout;
    let room = Arc::clone(&out.room);
    let writer = tokio::spawn(
        async move {
            while let Some((message, _room)) = out_rx.recv().await {
                let closing = matches!(message, Message::Close(_));
                // A client that stops reading would otherwise block this task,
                // then the turn behind it, and hold its slot until TCP gives up.
                match tokio::time::timeout(send_timeout, sink.send(message)).await {
                    Ok(Ok(())) if !closing => {}
                    Ok(_) => break,
                    Err(_) => {
                        tracing::warn!(
                            "a conversation client took no message for {}; dropping it",
                            humantime::format_duration(send_timeout)
                        );
                        break;
                    }
                }
            }
            // Senders waiting for room learn that the client is gone.
            room.close();
        }
        .in_current_span(),
    );

    let stt_ready = state.supervisor.is_ready(ServiceName::Stt);
    let vad_ready = state.supervisor.is_ready(ServiceName::Vad);
    let _ = out
        .send(
            ServerEvent::Ready {
                stt: stt_ready,
                stt_reason: if stt_ready { None } else { stt_reason(&state) },
                hands_free: stt_ready && vad_ready,
                input: InputFormats {
                    format: "pcm16",
                    channels: 1,
                    sample_rates: &[8000, 16000, 22050, 24000, 32000, 44100, 48000],
                },
                max_utterance_ms: limits.max_utterance.as_millis() as u64,
                max_message_bytes: limits.max_message_bytes,
            }
            .message(),
        )
        .await;

    let history = Arc::new(std::sync::Mutex::new(VecDeque::<ChatMessage>::new()));
    let mut utterance: Option<Utterance> = None;
    let mut turn: Option<Turn> = None;
    let mut hands: Option<HandsFree> = None;

    let mut linger = false;
    let shutdown = state.shutdown.clone();
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    loop {
        let deadline = hands.as_ref().and_then(|h| h.spoken.as_ref()).and_then(|s| s.deadline);
        let incoming = tokio::select! {
            () = until(deadline) => {
                if let Some(h) = hands.as_mut() {
                    finish_utterance(&state, &out, &history, h, &mut turn).await;
                }
                continue;
            }
            incoming = stream.next() => {
                idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
                incoming
            }
            () = &mut idle => {
                if turn.as_ref().is_some_and(|t| !t.task.is_finished()) {
                    // A long reply is not idleness.
                    idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
                    continue;
                }
                let reason = format!("idle for {}", humantime::format_duration(limits.idle_timeout));
                let _ = out
                    .send(Message::Close(Some(CloseFrame {
                        code: CLOSE_GOING_AWAY,
                        reason: reason.into(),
                    })))
                    .await;
                break;
            }
            // The writer gave up on the client: nothing more can reach it.
            () = out.closed() => break,
            () = shutdown.cancelled() => {
                // The server is stopping: say so (1001), and stop the turn.
                let _ = out
                    .send(Message::Close(Some(CloseFrame {
                        code: CLOSE_GOING_AWAY,
                        reason: "the server is shutting down".into(),
                    })))
                    .await;
                break;
            }
        };
        let Some(incoming) = incoming else { break };
        let message = match incoming {
            Ok(message) => message,
            Err(e) => {
                // The WebSocket layer refused the frame: say why, with the
                // documented close code, instead of dropping the client.
                let what = e.to_string();
                let (code, error, reason) = if what.contains("too long") || what.contains("Space limit") {
                    (
                        CLOSE_TOO_BIG,
                        error_event(
                            "message_too_big",
                            format!("a message over the limit of {} bytes", limits.max_message_bytes),
                        ),
                        "message too big",
                    )
                } else if what.contains("UTF-8") || what.contains("utf-8") {
                    (
                        CLOSE_INVALID_PAYLOAD,
                        error_event("bad_message", "a text frame that is not UTF-8"),
                        "text frames must be UTF-8",
                    )
                } else {
                    break;
                };
                let _ = out.send(error).await;
                let _ = out
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })))
                    .await;
                linger = true;
                break;
            }
        };
        let size = match &message {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        };
        if size > limits.max_message_bytes {
            let _ = out
                .send(error_event(
                    "message_too_big",
                    format!(
                        "a message of {size} bytes is over the limit of {} bytes",
                        limits.max_message_bytes
                    ),
                ))
                .await;
            let _ = out
                .send(Message::Close(Some(CloseFrame {
                    code: CLOSE_TOO_BIG,
                    reason: "message too big".into(),
                })))
                .await;
            break;
        }
        match message {
            Message::Text(text) => {
                let parsed: Result<ClientMessage, _> = serde_json::from_str(&text);
                let command = match parsed {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = out
                            .send(error_event("bad_message", describe_parse_error(&text, &e)))
                            .await;
                        continue;
                    }
                };
                match command {
                    ClientMessage::Start {
                        format,
                        sample_rate,
                        channels,
                        mode,
                        incremental,
                    } => {
                        if let Err(message) = check_format(&format, sample_rate, channels) {
                            let _ = out.send(error_event("bad_format", message)).await;
                            continue;
                        }
                        if !state.supervisor.is_ready(ServiceName::Stt) {
                            let why = stt_reason(&state).unwrap_or_else(|| "speech to text is not ready".to_owned());
                            let _ = out
                                .send(error_event(
                                    "stt_unavailable",
                                    format!("{why}; type your message instead"),
                                ))
                                .await;
                            continue;
                        }
                        if mode == Mode::HandsFree {
                            utterance = None;
                            hands = None;
                            let Some(vad) = state.supervisor.vad() else {
                                let why = vad_reason(&state);
                                let _ = out
                                    .send(error_event("vad_unavailable", format!("{why}; use push-to-talk")))
                                    .await;
                                continue;
                            };
                            match Listener::new(vad.open(), sample_rate) {
                                Ok(listener) => {
                                    hands = Some(HandsFree {
                                        listener: Some(listener),
                                        spoken: None,
                                        incremental: incremental.unwrap_or(limits.incremental),
                                    });
                                    let _ = out.send(ServerEvent::Listening { mode: "hands_free" }.message()).await;
                                }
                                Err(e) => {
                                    let _ = out.send(error_event("bad_format", e)).await;
                                }
                            }
                            continue;
                        }
                        hands = None;
                        if let Some(t) = turn.take() {
                            t.stop().await; // Barge-in: the person speaks over the reply.
                        }
                        utterance = Some(Utterance {
                            sample_rate,
                            samples: Vec::with_capacity(sample_rate as usize * 5),
                        });
                    }
                    ClientMessage::End if hands.is_some() => {
                        // Hands-free listening stops; what was being said is
                        // answered.
                        if let Some(mut h) = hands.take() {
                            let now = h.listener.as_ref().map_or(0, Listener::now_ms);
                            if h.spoken.as_ref().is_some_and(|s| s.open.is_some()) {
                                on_heard(&state, &out, &history, &mut h, &mut turn, Heard::End(now)).await;
                            }
                            finish_utterance(&state, &out, &history, &mut h, &mut turn).await;
                        }
                        let _ = out.send(ServerEvent::ListeningStopped.message()).await;
                    }
                    ClientMessage::End => match utterance.take() {
                        None => {
                            let _ = out
                                .send(error_event(
                                    "no_utterance",
                                    "`end` without `start`: send {\"type\":\"start\",...} first",
                                ))
                                .await;
                        }
                        Some(u) if u.samples.is_empty() => {
                            let _ = out
                                .send(error_event("empty_utterance", "the utterance had no audio"))
                                .await;
                        }
                        Some(u) => {
                            turn = Some(start_turn(&state, &out, &history, Input::Audio(u), turn.take()).await);
                        }
                    },
                    ClientMessage::Text { text } => {
                        let text = text.trim().to_owned();
                        if text.is_empty() {
                            let _ = out.send(error_event("empty_text", "the message is empty")).await;
                            continue;
                        }
                        utterance = None;
                        turn = Some(start_turn(&state, &out, &history, Input::Text(text), turn.take()).await);
                    }
                    ClientMessage::Cancel => {
                        if let Some(t) = &turn {
                            t.cancel.store(true, Ordering::Relaxed);
                        }
                        utterance = None;
                        if let Some(h) = hands.as_mut() {
                            if let Some(mut spoken) = h.spoken.take() {
                                spoken.drop_prepared();
                            }
                            if let Some(listener) = h.listener.as_mut() {
                                listener.hold_from(None);
                            }
                        }
                    }
                    ClientMessage::Reset => {
                        history.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        let _ = out.send(ServerEvent::Reset.message()).await;
                    }
                }
            }
            Message::Binary(data) => {
                if hands.is_none() && utterance.is_none() {
                    let _ = out
                        .send(error_event(
                            "no_utterance",
                            "audio before `start`: send {\"type\":\"start\",\"sample_rate\":16000} first",
                        ))
                        .await;
                    continue;
                }
                if data.len() % 2 != 0 {
                    let _ = out
                        .send(error_event(
                            "bad_audio",
                            "audio frames must hold whole PCM16 samples (an even number of bytes)",
                        ))
                        .await;
                    continue;
                }
                let pcm = data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]));
                if let Some(h) = hands.as_mut() {
                    if let Err(e) = hear(&state, &out, &history, h, &mut turn, pcm.collect()).await {
                        hands = None;
                        let _ = out
                            .send(error_event("vad_failed", format!("{e}; hands-free listening stopped")))
                            .await;
                    }
                    continue;
                }
                let Some(u) = utterance.as_mut() else { continue };
                u.samples.extend(pcm);
                let max = limits.max_utterance.as_secs_f64() * f64::from(u.sample_rate);
                if u.samples.len() as f64 > max {
                    utterance = None;
                    let _ = out
                        .send(error_event(
                            "utterance_too_long",
                            format!(
                                "utterances are limited to {}; the audio so far was dropped",
                                humantime::format_duration(limits.max_utterance)
                            ),
                        ))
                        .await;
                }
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    // The client went away (or broke the rules): stop the engines' work.
    if let Some(mut spoken) = hands.take().and_then(|h| h.spoken) {
        spoken.drop_prepared();
    }
    if let Some(t) = turn.take() {
        t.stop().await;
    }
    drop(out);
    let _ = writer.await;
    if linger {
        // The client may still be sending the rest of the frame we refused.
        // Closing now, with its bytes unread, would reset the connection,
        // and a reset makes the client's system drop our close frame before
        // the client reads it. Keep the socket a moment so it can.
        tokio::time::sleep(LINGER).await;
    }
    drop(stream);
    tracing::info!("conversation ended");
}

/// How long a refused client's socket stays open after the close frame.
const LINGER: Duration = Duration::from_secs(1);

fn stt_reason(state: &AppState) -> Option<String> {
    let snapshot = state.readiness.current();
    Some(match snapshot.why_not_ready(ServiceName::Stt)? {
        NotReady::NotConfigured => return None,
        NotReady::Failed { error } => format!("speech to text failed: {error}"),
        NotReady::NotInstalled { reason } => format!("speech to text is not installed: {reason}"),
        NotReady::Starting { status, .. } => format!("speech to text is {status}"),
    })
}

fn vad_reason(state: &AppState) -> String {
    let snapshot = state.readiness.current();
    match snapshot.why_not_ready(ServiceName::Vad) {
        Some(NotReady::NotConfigured) => {
            "hands-free needs a [vad] service in plugins.toml, and there is none".to_owned()
        }
        Some(NotReady::Failed { error }) => format!("voice activity detection failed: {error}"),
        Some(NotReady::NotInstalled { reason }) => format!("voice activity detection is not installed: {reason}"),
        Some(NotReady::Starting { status, .. }) => format!("voice activity detection is {status}"),
        None => "voice activity detection is ready".to_owned(),
    }
}

/// Resolves at `deadline`, or never.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The shared chat history of one conversation.
type History = Arc<std::sync::Mutex<VecDeque<ChatMessage>>>;

/// Hands-free: feeds the client's audio to the VAD and acts on what it
/// heard. An error means listening cannot go on.
async fn hear(
    state: &AppState,
    out: &Outbox,
    history: &History,
    hands: &mut HandsFree,
    turn: &mut Option<Turn>,
    pcm: Vec<i16>,
) -> Result<(), String> {
    let Some(mut listener) = hands.listener.take() else {
        return Err("the listener was lost".to_owned());
    };
    let (listener, heard) = tokio::task::spawn_blocking(move || {
        let heard = listener.push(&pcm);
        (listener, heard)
    })
    .await
    .map_err(|e| format!("voice activity detection failed: {e}"))?;
    hands.listener = Some(listener);
    for heard in heard.map_err(|e| format!("voice activity detection failed: {e}"))? {
        on_heard(state, out, history, hands, turn, heard).await;
    }
    // The longest utterance: answer what was heard so far.
    let max = state.supervisor.config().conversation.max_utterance;
    let now = hands.listener.as_ref().map_or(0, Listener::now_ms);
    let too_long = hands
        .spoken
        .as_ref()
        .is_some_and(|s| now.saturating_sub(s.first_ms) > max.as_millis() as u64);
    if too_long {
        if hands.spoken.as_ref().is_some_and(|s| s.open.is_some()) {
            on_heard(state, out, history, hands, turn, Heard::End(now)).await;
        }
        let _ = out
            .send(error_event(
                "utterance_too_long",
                format!(
                    "utterances are limited to {}; answering what was said so far",
                    humantime::format_duration(max)
                ),
            ))
            .await;
        finish_utterance(state, out, history, hands, turn).await;
    }
    Ok(())
}

/// Hands-free: one speech start or end.
async fn on_heard(
    state: &AppState,
    out: &Outbox,
    history: &History,
    hands: &mut HandsFree,
    turn: &mut Option<Turn>,
    heard: Heard,
) {
    let Some(listener) = hands.listener.as_mut() else {
        return;
    };
    match heard {
        Heard::Start(at) => match hands.spoken.as_mut() {
            // A pause inside the utterance is over: the prepared reply was
            // premature.
            Some(spoken) => {
                spoken.open = Some(at);
                spoken.deadline = None;
                spoken.drop_prepared();
            }
            None => {
                if let Some(t) = turn.take() {
                    if t.speaking() {
                        // Barge-in: the person speaks over the reply.
                        let _ = out.send(ServerEvent::Cancelled { reason: "barge_in" }.message()).await;
                        tokio::spawn(t.stop());
                    }
                }
                listener.hold_from(Some(at));
                hands.spoken = Some(Spoken {
                    first_ms: at,
                    open: Some(at),
                    stretches: Vec::new(),
                    committed: None,
                    pending_from: None,
                    words: None,
                    latest: Arc::new(AtomicU64::new(0)),
                    deadline: None,
                    prepared: None,
                });
                let _ = out.send(ServerEvent::SpeechStarted { at_ms: at }.message()).await;
            }
        },
        Heard::End(at) => {
            let Some(spoken) = hands.spoken.as_mut() else { return };
            let Some(from) = spoken.open.take() else { return };
            spoken.stretches.push((from, at));
            let config = &state.supervisor.config().conversation;
            if hands.incremental {
                // Transcribed from where the pending speech began: a short
                // stretch ("ask not") is heard badly without the words
                // around it, so it stays pending, and is transcribed again
                // with the next one, until the span is long enough.
                let span_from = *spoken.pending_from.get_or_insert(from);
                let audio = listener.audio(span_from, at);
                let times = (span_from - spoken.first_ms, at - spoken.first_ms);
                let span = spoken.latest.fetch_add(1, Ordering::Relaxed) + 1;
                let partial = Partial {
                    out: out.clone(),
                    latest: Arc::clone(&spoken.latest),
                    span,
                    times,
                };
                let words = transcribe_stretch(state.clone(), partial, spoken.committed.clone(), audio)
                    .boxed()
                    .shared();
                if at - span_from >= MIN_SPAN_MS {
                    spoken.committed = Some(words.clone());
                    spoken.pending_from = None;
                }
                spoken.words = Some(words.clone());
                spoken.prepared = Some(prepare(state, out, history, words));
            }
            spoken.deadline = Some(tokio::time::Instant::now() + config.end_of_utterance);
        }
    }
}

/// Hands-free: transcribes a span of speech (16 kHz), and once the words
/// committed before it are known, says what was heard so far
/// (`partial_transcript`). Returns the utterance's words so far.
async fn transcribe_stretch(
    state: AppState,
    partial: Partial,
    previous: Option<Words>,
    audio: Vec<i16>,
) -> Result<Vec<String>, String> {
    let stt = state
        .supervisor
        .stt()
        .ok_or_else(|| "speech to text is not ready".to_owned())?;
    let heard = tokio::task::spawn_blocking(move || {
        stt.transcribe(&Audio {
            sample_rate: hearth_core::hands_free::RATE,
            channels: 1,
            samples: Samples::I16(audio),
        })
    })
    .await
    .map_err(|e| format!("speech to text task failed: {e}"))?
    .map_err(|e| format!("speech to text failed: {e}"))?;
    let mut words = match previous {
        Some(previous) => previous.await?,
        None => Vec::new(),
    };
    let text = heard.text.trim().to_owned();
    if !text.is_empty() {
        words.push(text.clone());
        if partial.latest.load(Ordering::Relaxed) == partial.span {
            let (start_ms, end_ms) = partial.times;
            let _ = partial
                .out
                .send(
                    ServerEvent::PartialTranscript {
                        text: words.join(" "),
                        segment: Segment {
                            start_ms,
                            end_ms,
                            text: Some(text.clone()),
                        },
                    }
                    .message(),
                )
                .await;
        }
    }
    Ok(words)
}

/// Where a span's partial transcript goes, and whether it still may.
struct Partial {
    out: Outbox,
    latest: Arc<AtomicU64>,
    span: u64,
    /// The span, in ms from the utterance's start.
    times: (u64, u64),
}

/// Hands-free, incremental: starts the reply to `words` behind a gate, so
/// it is ready when the utterance turns out to be over.
fn prepare(state: &AppState, out: &Outbox, history: &History, words: Words) -> (Turn, Gate) {
    let (held, gate) = out.held();
    let cancel = Arc::new(AtomicBool::new(false));
    let played_until = Arc::new(std::sync::Mutex::new(None));
    let (state, history, decision) = (state.clone(), Arc::clone(history), gate.decision.clone());
    let (turn_cancel, turn_played) = (Arc::clone(&cancel), Arc::clone(&played_until));
    let task = tokio::spawn(
        async move {
            let Ok(words) = words.await else { return };
            let text = words.join(" ");
            if text.trim().is_empty() {
                return;
            }
            run_turn(
                state,
                held,
                history,
                Input::Text(text),
                turn_cancel,
                turn_played,
                Some(decision),
            )
            .await;
        }
        .in_current_span(),
    );
    (
        Turn {
            cancel,
            task,
            played_until,
        },
        gate,
    )
}

/// Hands-free: the utterance is over (silence, `end`, or its length).
async fn finish_utterance(
    state: &AppState,
    out: &Outbox,
    history: &History,
    hands: &mut HandsFree,
    turn: &mut Option<Turn>,
) {
    let Some(mut spoken) = hands.spoken.take() else { return };
    let _ = out
        .send(
            ServerEvent::SpeechEnded {
                at_ms: spoken.last_end(),
            }
            .message(),
        )
        .await;
    let audio = hands
        .listener
        .as_ref()
        .map(|l| l.audio(spoken.first_ms, spoken.last_end()))
        .unwrap_or_default();
    if let Some(listener) = hands.listener.as_mut() {
        listener.hold_from(None);
    }
    if !hands.incremental {
        // Today's push-to-talk path: the whole utterance at once.
        let input = Input::Audio(Utterance {
            sample_rate: hearth_core::hands_free::RATE,
            samples: audio,
        });
        *turn = Some(start_turn(state, out, history, input, turn.take()).await);
        return;
    }
    let words = match spoken.words.take() {
        Some(words) => words.await,
        None => Ok(Vec::new()),
    };
    let text = match words {
        Ok(words) => words.join(" "),
        Err(e) => {
            spoken.drop_prepared();
            let _ = out.send(error_event("stt_failed", e.clone())).await;
            let _ = out.send(ServerEvent::failed(e).message()).await;
            return;
        }
    };
    spoken.latest.store(u64::MAX, Ordering::Relaxed);
    let segments: Vec<_> = spoken
        .stretches
        .iter()
        .map(|(from, to)| Segment {
            start_ms: from - spoken.first_ms,
            end_ms: to - spoken.first_ms,
            text: None,
        })
        .collect();
    let _ = out
        .send(
            ServerEvent::Transcript {
                text: text.clone(),
                segments,
            }
            .message(),
        )
        .await;
    match spoken.prepared.take() {
        Some((prepared, gate)) if !text.trim().is_empty() => {
            gate.open();
            *turn = Some(prepared);
        }
        other => {
            spoken.prepared = other;
            spoken.drop_prepared();
            let message = "no speech was recognised in the utterance";
            let _ = out.send(error_event("no_speech", message)).await;
            let _ = out.send(ServerEvent::failed(message).message()).await;
        }
    }
}

fn describe_parse_error(text: &str, e: &serde_json::Error) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Err(_) => format!("not JSON: {e}"),
        Ok(v) => match v.get("type").and_then(|t| t.as_str()) {
            None => "a message needs a \"type\": start, end, text, cancel or reset".to_owned(),
            Some(t) if !["start", "end", "text", "cancel", "reset"].contains(&t) => {
                format!("unknown type `{}`: expected start, end, text, cancel or reset", echo(t))
            }
            Some(t) => format!("bad `{}` message: {e}", echo(t)),
        },
    }
}

fn check_format(format: &str, sample_rate: u32, channels: u16) -> Result<(), String> {
    if format != "pcm16" {
        return Err(format!(
            "format `{}` is not supported: send \"pcm16\" (signed 16-bit little-endian)",
            echo(format)
        ));
    }
    if channels != 1 {
        return Err(format!("{channels} channels: send mono audio (channels = 1)"));
    }
    if !(8_000..=48_000).contains(&sample_rate) {
        return Err(format!(
            "sample rate {sample_rate} Hz: send 8000 to 48000 Hz (16000 or 48000 recommended)"
        ));
    }
    Ok(())
}

async fn start_turn(state: &AppState, out: &Outbox, history: &History, input: Input, previous: Option<Turn>) -> Turn {
    if let Some(previous) = previous {
        previous.stop().await;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let played_until = Arc::new(std::sync::Mutex::new(None));
    let task = tokio::spawn(
        run_turn(
            state.clone(),
            out.clone(),
            Arc::clone(history),
            input,
            Arc::clone(&cancel),
            Arc::clone(&played_until),
            None,
        )
        .in_current_span(),
    );
    Turn {
        cancel,
        task,
        played_until,
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// One turn: the words (transcribed, for audio), the reply streamed, each
/// sentence spoken. `played_until` follows the audio sent; a turn behind a
/// `gate` (prepared hands-free) adds to the history only once it opens.
async fn run_turn(
    state: AppState,
    out: Outbox,
    history: History,
    input: Input,
    cancel: Arc<AtomicBool>,
    played_until: Arc<std::sync::Mutex<Option<Instant>>>,
    gate: Option<watch::Receiver<Option<bool>>>,
) {
    let started = Instant::now();
    let mut timings = Timings::default();
    let fail = |code: &'static str, message: String| {
        let out = out.clone();
        async move {
            let _ = out.send(error_event(code, message.clone())).await;
            let _ = out.send(ServerEvent::failed(message).message()).await;
        }
    };

    // 1. The words.
    let user_text = match input {
        Input::Text(text) => text,
        Input::Audio(utterance) => {
            let Some(stt) = state.supervisor.stt() else {
                return fail("stt_unavailable", "speech to text is not ready".to_owned()).await;
            };
            let stt_started = Instant::now();
            let result = tokio::task::spawn_blocking(move || {
                stt.transcribe(&Audio {
                    sample_rate: utterance.sample_rate,
                    channels: 1,
                    samples: Samples::I16(utterance.samples),
                })
            })
            .await;
            timings.stt_ms = Some(ms(stt_started.elapsed()));
            let transcript = match result {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return fail("stt_failed", format!("speech to text failed: {e}")).await,
                Err(e) => return fail("internal", format!("speech to text task failed: {e}")).await,
            };
            let text = transcript.text.trim().to_owned();
            let segments: Vec<_> = transcript
                .segments
                .iter()
                .map(|s| Segment {
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                    text: Some(s.text.clone()),
                })
                .collect();
            let _ = out
                .send(
                    ServerEvent::Transcript {
                        text: text.clone(),
                        segments,
                    }
                    .message(),
                )
                .await;
            if text.is_empty() {
                return fail("no_speech", "no speech was recognised in the utterance".to_owned()).await;
            }
            text
        }
    };
    if cancel.load(Ordering::Relaxed) {
        let _ = out
            .send(
                ServerEvent::Done(Done {
                    ok: true,
                    cancelled: true,
                    ..Done::default()
                })
                .message(),
            )
            .await;
        return;
    }

    // 2. The reply, streamed, with each sentence spoken as soon as it ends.
    let (Some(chat), Some(tts)) = (state.supervisor.chat(), state.supervisor.tts()) else {
        let snapshot = state.readiness.current();
        return fail(
            "not_ready",
            format!("the backend is {}; try again shortly", snapshot.state.as_str()),
        )
        .await;
    };
    let config = &state.supervisor.config().conversation;
    let mut messages = vec![ChatMessage::system(config.system_prompt.as_str())];
    messages.extend(history.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned());
    messages.push(ChatMessage::user(user_text.as_str()));

    let (token_tx, mut token_rx) = mpsc::unbounded_channel::<String>();
    let chat_cancel = Arc::clone(&cancel);
    let chat_started = Instant::now();
    let chat_task = tokio::task::spawn_blocking(move || {
        chat.chat(&messages, |piece| {
            if chat_cancel.load(Ordering::Relaxed) || token_tx.send(piece.to_owned()).is_err() {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })
    });

    let (sentence_tx, sentence_rx) = std::sync::mpsc::channel::<String>();
    let first_audio_us = Arc::new(AtomicU64::new(0));
    // How long TTS took from the first sentence to its first chunk: one of
    // the parts the conversation benchmark adds up.
    let first_tts_us = Arc::new(AtomicU64::new(0));
    let tts_first_part = Arc::clone(&first_tts_us);
    let tts_cancel = Arc::clone(&cancel);
    let tts_out = out.clone();
    let tts_first = Arc::clone(&first_audio_us);
    let tts_played = Arc::clone(&played_until);
    let tts_task = tokio::task::spawn_blocking(move || -> Result<(), String> {
        for sentence in sentence_rx {
            if tts_cancel.load(Ordering::Relaxed) {
                break;
            }
            let synth_started = Instant::now();
            tts.synthesize(&sentence, |chunk| {
                let _ = tts_first_part.compare_exchange(
                    0,
                    synth_started.elapsed().as_micros().max(1) as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                if tts_cancel.load(Ordering::Relaxed) {
                    return Flow::Stop;
                }
                let header = ServerEvent::Audio {
                    format: "pcm16",
                    channels: 1,
                    sample_rate: chunk.sample_rate,
                    samples: chunk.samples.len(),
                    text: chunk.text.clone(),
                }
                .message();
                let bytes: Vec<u8> = chunk.samples.iter().flat_map(|s| s.to_le_bytes()).collect();
                {
                    let mut until = tts_played.lock().unwrap_or_else(|e| e.into_inner());
                    let from = until.filter(|t| *t > Instant::now()).unwrap_or_else(Instant::now);
                    *until = Some(from + Duration::from_secs_f64(chunk.seconds()));
                }
                let _ = tts_first.compare_exchange(
                    0,
                    started.elapsed().as_micros().max(1) as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                if tts_out.blocking_send(header).is_err()
                    || tts_out.blocking_send(Message::Binary(bytes.into())).is_err()
                {
                    return Flow::Stop;
                }
                Flow::Continue
            })?;
        }
        Ok(())
    });

    let mut splitter = SentenceSplitter::new();
    let mut reply = String::new();
    let mut first_token = None;
    let mut first_sentence = None;
    while let Some(piece) = token_rx.recv().await {
        first_token.get_or_insert_with(|| started.elapsed());
        reply.push_str(&piece);
        let _ = out
            .send(ServerEvent::ReplyDelta { text: piece.clone() }.message())
            .await;
        for sentence in splitter.push(&piece) {
            first_sentence.get_or_insert_with(|| chat_started.elapsed());
            let _ = sentence_tx.send(sentence);
        }
    }
    if let Some(rest) = splitter.finish() {
        first_sentence.get_or_insert_with(|| chat_started.elapsed());
        let _ = sentence_tx.send(rest);
    }
    drop(sentence_tx);
    let chat_result = chat_task.await;
    let tts_result = tts_task.await;
    let cancelled = cancel.load(Ordering::Relaxed);

    let chat_error = match chat_result {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("chat failed: {e}")),
        Err(e) => Some(format!("chat task failed: {e}")),
    };
    let tts_error = match tts_result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("speech synthesis failed: {e}")),
        Err(e) => Some(format!("speech synthesis task failed: {e}")),
    };
    if let Some(e) = &chat_error {
        let _ = out.send(error_event("chat_failed", e.clone())).await;
    }
    if let Some(e) = &tts_error {
        let _ = out.send(error_event("tts_failed", e.clone())).await;
    }

    let committed = match gate {
        Some(gate) => opened(gate).await,
        None => true,
    };
    if committed && !reply.trim().is_empty() {
        let mut history = history.lock().unwrap_or_else(|e| e.into_inner());
        history.push_back(ChatMessage::user(user_text));
        history.push_back(ChatMessage::assistant(reply.trim()));
        while history.len() > config.max_history {
            history.pop_front();
        }
    }

    if let Some(t) = first_token {
        timings.first_token_ms = Some(ms(t));
    }
    if let Some(t) = first_sentence {
        timings.chat_first_sentence_ms = Some(ms(t));
    }
    let first_tts = first_tts_us.load(Ordering::Relaxed);
    if first_tts > 0 {
        timings.tts_first_chunk_ms = Some(ms(Duration::from_micros(first_tts)));
    }
    let first_audio = first_audio_us.load(Ordering::Relaxed);
    if first_audio > 0 {
        state
            .supervisor
            .metrics()
            .first_audio(Duration::from_micros(first_audio));
        timings.first_audio_ms = Some(ms(Duration::from_micros(first_audio)));
    }
    timings.total_ms = Some(ms(started.elapsed()));
    let ok = chat_error.is_none() && tts_error.is_none();
    let _ = out
        .send(
            ServerEvent::Done(Done {
                ok,
                cancelled,
                reply: Some(reply.trim().to_owned()),
                timings: Some(timings),
                error: None,
            })
            .message(),
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever a client sends as text, the parser answers without
        /// panicking, and a refusal says what was wrong.
        #[test]
        fn any_client_text_is_parsed_or_explained(text in "\\PC{0,120}") {
            if let Err(e) = serde_json::from_str::<ClientMessage>(&text) {
                proptest::prop_assert!(!describe_parse_error(&text, &e).is_empty());
            }
        }

        /// JSON objects with a known or unknown type and random fields.
        #[test]
        fn any_client_object_is_parsed_or_explained(
            kind in proptest::sample::select(vec!["start", "end", "text", "cancel", "reset", "bogus", ""]),
            field in "[a-z_]{0,12}",
            value in proptest::num::i64::ANY,
        ) {
            let text = format!("{{\"type\": {kind:?}, {field:?}: {value}}}");
            if let Err(e) = serde_json::from_str::<ClientMessage>(&text) {
                proptest::prop_assert!(!describe_parse_error(&text, &e).is_empty());
            }
        }
    }

    fn binary(bytes: usize) -> Message {
        Message::Binary(vec![0u8; bytes].into())
    }

    #[tokio::test]
    async fn the_outbox_holds_at_most_its_bytes_and_fails_once_the_client_is_gone() {
        let (out, mut queued) = Outbox::new(1000);
        out.send(binary(600)).await.unwrap();
        // 600 + 600 > 1000: the second waits until the first is sent.
        let sender = out.clone();
        let second = tokio::spawn(async move { sender.send(binary(600)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the queue took more than its bytes");
        let first = queued.recv().await.unwrap();
        drop(first);
        second.await.unwrap().unwrap();
        // A message larger than the whole queue still goes, alone.
        let (message, _room) = queued.recv().await.unwrap();
        assert_eq!(out.cost(&message), 600);
        drop((message, _room));
        out.send(binary(5000)).await.unwrap();
        assert_eq!(out.room.available_permits(), 0);
        // The writer stops: a waiting sender fails instead of hanging.
        let sender = out.clone();
        let blocked = tokio::spawn(async move { sender.send(binary(10)).await });
        out.room.close();
        assert!(blocked.await.unwrap().is_err());
        drop(queued);
        assert!(out.send(binary(1)).await.is_err());
    }
}
