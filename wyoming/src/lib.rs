//! The Wyoming protocol server (`[wyoming]`): Hearth's TTS and STT engines
//! on one TCP endpoint for Home Assistant's voice pipeline and any other
//! client of the `wyoming` Python package (1.10).
//!
//! * [`frame`]: the wire format and the one list of events read and
//!   written;
//! * [`session`]: one connection's requests — `describe` → `info`, `ping`
//!   → `pong`, `transcribe` + audio → `transcript` (also streamed),
//!   `synthesize` → audio, `synthesize-start`/`-chunk`/`-stop` → audio per
//!   sentence and `synthesize-stopped`;
//! * [`info`]: the `info` event from the readiness snapshot;
//! * [`audio`]: client audio in any format → 16 kHz mono, speech →
//!   `audio-chunk`s;
//! * [`zeroconf`]: the `_wyoming._tcp` mDNS advertisement.
//!
//! Unlike the Python peers (wyoming-piper, wyoming-faster-whisper), which
//! load their model on the first request, Hearth's engines are warm before
//! they are offered: until a service is ready its program is
//! `installed: false` in `info`, and a request for it is answered at once
//! with an `error` event giving its state and progress.
//!
//! Every failure is an `error` event (`text`, `code`), after which the
//! connection is closed — also for malformed frames, which never take more
//! than their connection down. Limits: `max_connections` (one more gets an
//! `error`, code `busy`), `max_frame_bytes` per header line (at most
//! 64 KiB), data block and payload, `idle_timeout` for a client to send its
//! next frame (and to take ours), `max_audio` per transcription.

pub mod audio;
pub mod error;
pub mod frame;
pub mod info;
pub mod session;
pub mod zeroconf;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::{
    io::{AsyncWriteExt, BufReader, BufWriter},
    net::{tcp::OwnedWriteHalf, TcpListener, TcpStream},
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use self::{
    frame::{FrameReader, Inbound, Outbound},
    session::{report, Outbox, Session},
};
use hearth_core::{
    config::WyomingConfig,
    error::{HostError, Result},
    readiness::ReadinessRx,
    services::Supervisor,
};

/// Frames queued for one client's socket; the engines wait for room when a
/// client reads slower than they speak.
const OUT_QUEUE: usize = 64;

/// What every connection shares.
pub struct Shared {
    /// Hands out the engines.
    pub supervisor: Supervisor,
    /// Reads readiness for `info` and refusals.
    pub readiness: ReadinessRx,
    /// `[wyoming]`.
    pub limits: WyomingConfig,
    /// Cancelled when the server stops.
    pub shutdown: CancellationToken,
}

/// Binds the Wyoming listener (before anything loads, so a taken port fails
/// `serve` at once).
pub fn bind(config: &WyomingConfig) -> Result<TcpListener> {
    let at = config.listen;
    hearth_core::net::bind(at).map_err(|e| {
        HostError::Other(format!(
            "cannot listen on {at} for Wyoming: {e}; pick another [wyoming] listen, or set [wyoming] enabled = false"
        ))
    })
}

/// Serves Wyoming on `listener` until `shutdown`, then gives open
/// connections until the end of `[host] shutdown_timeout` to finish what
/// they are doing. Advertises the listener over mDNS when
/// `[wyoming] zeroconf` is on (a failure to is logged, not fatal).
pub fn spawn(
    listener: TcpListener,
    supervisor: Supervisor,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let config = supervisor.config();
    let limits = config.wyoming.clone();
    let drain = config.host.shutdown_timeout;
    let local = listener
        .local_addr()
        .map_err(|e| HostError::Other(format!("the Wyoming listener has no address: {e}")))?;
    tracing::info!("Wyoming on tcp://{local}");
    let advertisement = if limits.zeroconf {
        match zeroconf::Advertisement::start(local) {
            Ok(advertisement) => Some(advertisement),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    } else {
        None
    };
    let shared = Arc::new(Shared {
        readiness: supervisor.subscribe(),
        supervisor,
        limits,
        shutdown,
    });
    Ok(tokio::spawn(async move {
        serve(listener, shared, drain).await;
        // Withdrawn (a goodbye packet) only now: clients were served until
        // the end.
        if let Some(advertisement) = advertisement {
            let _ = tokio::task::spawn_blocking(move || drop(advertisement)).await;
        }
    }))
}

/// The accept loop, with the connection cap.
async fn serve(listener: TcpListener, shared: Arc<Shared>, drain: Duration) {
    let max = shared.limits.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let metrics = Arc::clone(shared.supervisor.metrics());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("wyoming: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shared.shutdown.cancelled() => break,
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            metrics.refused(hearth_core::metrics::Refusal::WyomingConnections);
            tokio::spawn(refuse_busy(stream, max));
            continue;
        };
        let span = tracing::debug_span!("wyoming", %peer);
        tokio::spawn(connection(stream, Arc::clone(&shared), permit).instrument(span));
    }
    drop(listener);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, slots.acquire_many(all)).await.is_err() {
        tracing::warn!(
            "wyoming: connections still open after {}; closing them",
            humantime::format_duration(drain)
        );
    }
}

/// Answers a connection over `max_connections` with an `error` and closes it.
async fn refuse_busy(mut stream: TcpStream, max: usize) {
    let error = Outbound::error_coded(
        "busy",
        format!("{max} Wyoming connections are open ([wyoming] max_connections); retry in a second"),
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&error.encode())).await;
    let _ = stream.shutdown().await;
}

/// One connection: reads frames and hands their events to its [`Session`]
/// in order; a writer task sends what the session queues.
async fn connection(stream: TcpStream, shared: Arc<Shared>, _slot: OwnedSemaphorePermit) {
    // Audio goes out in small frames: send each at once.
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let idle = shared.limits.idle_timeout;
    let closing = CancellationToken::new();
    let (frames, queue) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(write_frames(write, queue, idle, closing.clone()).in_current_span());
    let out = Outbox::new(frames, closing.clone());
    let mut reader = FrameReader::new(BufReader::new(read), shared.limits.max_frame_bytes);
    let mut session = Session::new(Arc::clone(&shared), out.clone());
    tracing::debug!("wyoming: connected");
    loop {
        let next = tokio::select! {
            biased;
            () = closing.cancelled() => break,
            () = shared.shutdown.cancelled() => break,
            next = tokio::time::timeout(idle, reader.next()) => next,
        };
        let event = match next {
            Err(_) => {
                let text = format!(
                    "no complete event for {} ([wyoming] idle_timeout); closing the connection",
                    humantime::format_duration(idle)
                );
                out.send(Outbound::error_coded("timeout", text)).await;
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(frame))) => match Inbound::parse(frame) {
                Ok(event) => event,
                Err(e) => {
                    out.send(report(&e)).await;
                    break;
                }
            },
            Ok(Err(e)) => {
                out.send(report(&e)).await;
                break;
            }
        };
        // A request in flight finishes even when the server stops; a
        // streamed synthesis that failed ends it.
        let handled = tokio::select! {
            handled = session.handle(event) => handled,
            () = closing.cancelled() => break,
        };
        if let Err(e) = handled {
            out.send(report(&e)).await;
            break;
        }
    }
    // Whatever still speaks stops at its next chunk; the writer sends what
    // is queued (the last error, say) and closes once every sender is gone.
    closing.cancel();
    drop(session);
    drop(out);
    if tokio::time::timeout(idle, writer).await.is_err() {
        tracing::debug!("wyoming: the writer did not finish in time");
    }
    linger(reader.into_inner()).await;
    tracing::debug!("wyoming: disconnected");
}

/// How long, and for how many bytes, a closing connection still takes what
/// the client sends.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// A lingering close: takes (and drops) what the client still sends, until
/// it closes too or [`LINGER`] passes. Closing a socket with unread input
/// resets the connection, and the client would lose the `error` event
/// explaining why — after an oversized header line, say.
async fn linger(mut read: impl tokio::io::AsyncRead + Unpin) {
    use tokio::io::AsyncReadExt as _;
    let _ = tokio::time::timeout(LINGER, async {
        let mut buffer = vec![0; 16 * 1024];
        let mut taken = 0;
        while taken < LINGER_BYTES {
            match read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => taken += n,
            }
        }
    })
    .await;
}

/// Writes queued frames, several per flush when they pile up; closes the
/// connection (`closing`) when the client takes none for `timeout`.
async fn write_frames(
    write: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Bytes>,
    timeout: Duration,
    closing: CancellationToken,
) {
    let mut socket = BufWriter::new(write);
    while let Some(frame) = queue.recv().await {
        let written = tokio::time::timeout(timeout, async {
            socket.write_all(&frame).await?;
            while let Ok(more) = queue.try_recv() {
                socket.write_all(&more).await?;
            }
            socket.flush().await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::debug!("wyoming: the client stopped reading; closing");
            closing.cancel();
            return;
        }
    }
    let _ = tokio::time::timeout(timeout, socket.shutdown()).await;
}
