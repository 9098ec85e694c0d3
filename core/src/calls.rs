//! Engine calls from async code, the one bridge every front uses.
//!
//! Engines block: a call runs until the engine is done, and a streamed one
//! hands its pieces to a sink that answers [`Flow`]. [`Streamed::spawn`]
//! runs such a call on the blocking pool and turns its pieces into a
//! bounded stream: the engine waits while the reader is behind, and when
//! the reader drops the stream (a client that went away, a cancelled turn)
//! or its deadline passes, the engine's next piece is answered
//! [`Flow::Stop`], so it stops within a piece. [`blocking`] is the same for
//! a call without pieces. The typed handles offer the usual calls on top:
//! [`TtsHandle::speak`], [`ChatHandle::reply`], [`SttHandle::transcription`].

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use hearth_plugin_api::{
    client::{Audio, ChatOptions, Message, Speech, Transcription},
    ChatOutcome, Flow, SpeechOptions,
};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

use crate::engine::{ChatHandle, SttHandle, TtsHandle};

/// Where a call running on the blocking pool puts its pieces.
pub struct Emitter<T> {
    tx: mpsc::Sender<T>,
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    expired: Arc<AtomicBool>,
}

impl<T> Emitter<T> {
    /// Hands `item` to the reader, waiting while it is behind: `Continue`,
    /// or `Stop` when the reader is gone, stopped the call or its deadline
    /// passed (the item is then dropped).
    pub fn send(&self, item: T) -> Flow {
        if self.stopped() {
            return Flow::Stop;
        }
        match self.tx.blocking_send(item) {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }

    /// Whether the call should stop: the reader is gone or asked, or the
    /// deadline passed.
    pub fn stopped(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.expired.store(true, Ordering::Relaxed);
            return true;
        }
        self.stop.load(Ordering::Relaxed) || self.tx.is_closed()
    }
}

/// The pieces of a call running on the blocking pool, and its result.
/// Dropping it stops the call at its next piece.
pub struct Streamed<T, R> {
    rx: mpsc::Receiver<T>,
    done: Option<JoinHandle<Result<R, String>>>,
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    expired: Arc<AtomicBool>,
}

impl<T: Send + 'static, R: Send + 'static> Streamed<T, R> {
    /// Runs `call` on the blocking pool; it sends its pieces through the
    /// emitter, at most `capacity` of them waiting for the reader.
    pub fn spawn(capacity: usize, call: impl FnOnce(&Emitter<T>) -> Result<R, String> + Send + 'static) -> Self {
        Self::spawn_until(capacity, None, call)
    }

    /// [`Streamed::spawn`] with a deadline: past it the call is stopped at
    /// its next piece and [`Streamed::finish`] says it timed out.
    pub fn spawn_until(
        capacity: usize,
        deadline: Option<Instant>,
        call: impl FnOnce(&Emitter<T>) -> Result<R, String> + Send + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let expired = Arc::new(AtomicBool::new(false));
        let emitter = Emitter {
            tx,
            stop: Arc::clone(&stop),
            deadline,
            expired: Arc::clone(&expired),
        };
        let done = tokio::task::spawn_blocking(move || call(&emitter));
        Self {
            rx,
            done: Some(done),
            stop,
            deadline,
            expired,
        }
    }

    /// The next piece; `None` when the call ended (or passed its deadline).
    pub async fn next(&mut self) -> Option<T> {
        match self.deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(item) => item,
                Err(_) => {
                    self.expired.store(true, Ordering::Relaxed);
                    self.stop();
                    None
                }
            },
            None => self.rx.recv().await,
        }
    }

    /// Asks the call to stop at its next piece; the pieces already made can
    /// still be read.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the call's result, dropping pieces not read yet (which
    /// stops a call that was still making them).
    pub async fn finish(mut self) -> Result<R, String> {
        self.rx.close();
        while self.rx.recv().await.is_some() {}
        let done = self.done.take().expect("finish is called once");
        match done.await {
            Ok(_) if self.expired.load(Ordering::Relaxed) => Err("the call passed its deadline".to_owned()),
            Ok(result) => result,
            Err(e) => Err(format!("the engine call failed: {e}")),
        }
    }
}

impl<T, R> Drop for Streamed<T, R> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs a call without pieces (an engine's, or other work that blocks,
/// such as decoding an upload) on the blocking pool: its value, or why the
/// task failed (it panicked).
pub fn blocking<R: Send + 'static>(
    call: impl FnOnce() -> R + Send + 'static,
) -> impl Future<Output = Result<R, String>> {
    let done = tokio::task::spawn_blocking(call);
    async move { done.await.map_err(|e| format!("the blocking call failed: {e}")) }
}

/// How many chunks of speech or pieces of a reply wait for a slow reader.
const QUEUE: usize = 64;

impl TtsHandle {
    /// Speaks `text`: its chunks as they are made.
    pub fn speak(&self, text: String, options: SpeechOptions) -> Streamed<Speech, ()> {
        let tts = self.clone();
        Streamed::spawn(QUEUE, move |out| {
            tts.synthesize_with(&text, &options, |speech| out.send(speech))
        })
    }
}

impl ChatHandle {
    /// The reply to `messages`: its pieces as the model makes them, then
    /// how it ended.
    pub fn reply(&self, messages: Vec<Message>, options: ChatOptions) -> Streamed<String, ChatOutcome> {
        let chat = self.clone();
        Streamed::spawn(QUEUE, move |out| {
            chat.chat_with(&messages, &options, |piece| out.send(piece.to_owned()))
        })
    }
}

impl SttHandle {
    /// The transcription of `audio`.
    pub fn transcription(&self, audio: Audio) -> impl Future<Output = Result<Transcription, String>> {
        let stt = self.clone();
        let done = blocking(move || stt.transcribe(&audio));
        async move { done.await? }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A call that counts up until it is told to stop, saying how far it got.
    fn counter(until: u32, pause: Duration) -> (Streamed<u32, u32>, std::sync::mpsc::Receiver<u32>) {
        let (told, stopped_at) = std::sync::mpsc::channel();
        let streamed = Streamed::spawn(2, move |out| {
            let mut n = 0;
            while n < until {
                std::thread::sleep(pause);
                if out.send(n) == Flow::Stop {
                    break;
                }
                n += 1;
            }
            let _ = told.send(n);
            Ok(n)
        });
        (streamed, stopped_at)
    }

    #[tokio::test]
    async fn pieces_come_in_order_then_the_result() {
        let (mut streamed, _) = counter(5, Duration::ZERO);
        let mut seen = Vec::new();
        while let Some(n) = streamed.next().await {
            seen.push(n);
        }
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        assert_eq!(streamed.finish().await, Ok(5));
    }

    #[tokio::test]
    async fn dropping_the_stream_stops_the_call_at_its_next_piece() {
        let (mut streamed, stopped_at) = counter(u32::MAX, Duration::from_millis(1));
        assert_eq!(streamed.next().await, Some(0));
        drop(streamed);
        let at = tokio::task::spawn_blocking(move || stopped_at.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .expect("the call stopped");
        // The queue holds 2, and one piece may be in flight when the stop comes.
        assert!(at <= 5, "it made {at} pieces");
    }

    #[tokio::test]
    async fn a_passed_deadline_ends_the_stream_and_says_so() {
        let (told, _stopped_at) = std::sync::mpsc::channel();
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut streamed = Streamed::spawn_until(2, Some(deadline), move |out| {
            let mut n = 0u32;
            while out.send(n) == Flow::Continue {
                std::thread::sleep(Duration::from_millis(50));
                n += 1;
            }
            let _ = told.send(n);
            Ok(n)
        });
        let mut count = 0;
        while streamed.next().await.is_some() {
            count += 1;
            assert!(count < 100, "the stream did not end at its deadline");
        }
        assert_eq!(streamed.finish().await, Err("the call passed its deadline".to_owned()));
    }

    #[tokio::test]
    async fn finishing_early_drops_what_was_not_read() {
        let (streamed, stopped_at) = counter(u32::MAX, Duration::ZERO);
        let result = streamed.finish().await;
        assert!(result.is_ok());
        assert!(stopped_at.try_recv().is_ok(), "the call ended before finish returned");
    }

    #[tokio::test]
    async fn a_call_without_pieces_returns_its_result() {
        assert_eq!(blocking(|| 7).await, Ok(7));
        let failed = blocking(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert!(failed.contains("panic"), "{failed}");
    }
}
