//! The worker process: `hearth __worker PLUGIN`, started by the host with
//! one end of a socket pair as fd 3. It opens the plugin's library with the
//! host's own loader, makes one engine, and serves the calls that arrive,
//! each on a thread of its own (so `health` answers while `synthesize`
//! runs). When the host goes away, the worker leaves at once.

use std::{
    collections::HashMap,
    io::BufReader,
    os::{fd::FromRawFd, unix::net::UnixStream},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex, OnceLock,
    },
};

use hearth_plugin_api::{
    client::{Calls, Host, Instance, Module},
    Flow,
};

use super::protocol::{read_frame, write_frame, Answer, Call, FromWorker, Opened, ToWorker, VERSION};

/// The descriptor the host hands the socket over on.
pub const CHANNEL_FD: i32 = 3;

struct Served {
    writer: Mutex<UnixStream>,
    module: Module,
    engine: OnceLock<Instance>,
    /// Calls waiting for the host's answer to a chunk or token.
    flows: Mutex<HashMap<u64, mpsc::Sender<bool>>>,
    /// Cancellation flags of running calls.
    cancels: Mutex<HashMap<u64, Arc<AtomicBool>>>,
}

impl Served {
    fn send(&self, message: &FromWorker) -> std::io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        write_frame(&mut *writer, message)
    }

    /// Sends a chunk or token and waits for the host's answer.
    fn offer(&self, id: u64, message: FromWorker) -> Flow {
        let (tx, rx) = mpsc::channel();
        self.flows.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        if self.send(&message).is_err() {
            return Flow::Stop;
        }
        match rx.recv() {
            Ok(true) => Flow::Continue,
            _ => Flow::Stop,
        }
    }

    fn engine(&self) -> Result<&Instance, String> {
        self.engine
            .get()
            .ok_or_else(|| "the worker has no engine yet".to_owned())
    }

    fn handle(&self, id: u64, call: Call) -> Result<Answer, String> {
        let host = Remote {
            served: self,
            id,
            cancelled: Arc::clone(
                self.cancels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(id)
                    .or_default(),
            ),
        };
        match call {
            Call::CheckConfig { config_json } => self.module.check_config(&config_json).map(|()| Answer::Unit),
            Call::NewEngine => {
                let engine = self.module.new_engine()?;
                self.engine
                    .set(engine)
                    .map_err(|_| "the worker already has an engine".to_owned())?;
                Ok(Answer::Unit)
            }
            Call::Describe => self.engine()?.describe().map(Answer::Description),
            Call::Load { config_json, base_dir } => self
                .engine()?
                .load(&config_json, &base_dir, &host)
                .map(|()| Answer::Unit),
            Call::Warmup => self.engine()?.warmup(&host).map(Answer::Warmed),
            Call::Health => self.engine()?.health().map(|()| Answer::Unit),
            Call::Shutdown => {
                self.engine()?.shutdown();
                Ok(Answer::Unit)
            }
            Call::Capabilities => self.engine()?.capabilities().map(Answer::Capabilities),
            Call::Synthesize { text, options } => self
                .engine()?
                .synthesize_with(&text, &options, &mut |speech| {
                    self.offer(id, FromWorker::Speech { id, speech })
                })
                .map(|()| Answer::Unit),
            Call::Transcribe { audio } => self.engine()?.transcribe(&audio).map(Answer::Transcription),
            Call::VadPush { stream, audio } => self.engine()?.vad_push(stream, &audio).map(Answer::VadEvents),
            Call::VadClose { stream } => {
                self.engine()?.vad_close(stream);
                Ok(Answer::Unit)
            }
            Call::Chat { messages, options } => self
                .engine()?
                .chat_with(&messages, &options, &mut |text| {
                    self.offer(
                        id,
                        FromWorker::Token {
                            id,
                            text: text.to_owned(),
                        },
                    )
                })
                .map(Answer::Chat),
        }
    }
}

/// The host's callbacks, carried over the socket.
struct Remote<'a> {
    served: &'a Served,
    id: u64,
    cancelled: Arc<AtomicBool>,
}

impl Host for Remote<'_> {
    fn progress(&self, fraction: f32, message: &str) {
        let _ = self.served.send(&FromWorker::Progress {
            id: self.id,
            fraction,
            message: message.to_owned(),
        });
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    fn log(&self, level: u8, message: &str) {
        let _ = self.served.send(&FromWorker::Log {
            id: self.id,
            level,
            message: message.to_owned(),
        });
    }
}

/// Leaves at once, without running destructors or atexit handlers: plugin
/// threads may still be inside native code that would not survive them.
fn leave(code: i32) -> ! {
    // SAFETY: `_exit` ends the process; nothing after it runs.
    unsafe { libc::_exit(code) }
}

/// The worker's main: returns only by leaving the process.
pub fn run(plugin: &Path) -> ! {
    // Stray prints to stdout (native libraries do that) go to stderr, which
    // the host reads and logs.
    // SAFETY: duplicating the process's own standard descriptors.
    unsafe {
        libc::dup2(2, 1);
    }
    // SAFETY: the host started this process with one end of a socket pair
    // as CHANNEL_FD, and nothing else in this process uses that descriptor.
    let socket = unsafe { UnixStream::from_raw_fd(CHANNEL_FD) };
    let writer = match socket.try_clone() {
        Ok(writer) => writer,
        Err(e) => {
            eprintln!("worker: no channel to the host on fd {CHANNEL_FD}: {e}");
            leave(2)
        }
    };
    let mut reader = BufReader::new(socket);
    match read_frame::<ToWorker>(&mut reader) {
        Ok(Some(ToWorker::Hello { version })) if version == VERSION => {}
        Ok(Some(ToWorker::Hello { version })) => {
            eprintln!("worker: the host speaks protocol {version}, this binary {VERSION}");
            leave(2)
        }
        other => {
            eprintln!("worker: expected a hello from the host, got {other:?}");
            leave(2)
        }
    }
    let opened = crate::plugin::inspect(plugin).map_err(|e| e.to_string());
    let hello = FromWorker::Hello {
        version: VERSION,
        opened: opened.as_ref().map_err(Clone::clone).map(|plugin| Opened {
            name: plugin.meta.name.clone(),
            kind: plugin.meta.kind.0,
            version: plugin.meta.version.clone(),
            description: plugin.meta.description.clone(),
            abi: plugin.meta.abi.to_string(),
        }),
    };
    let mut writer = writer;
    if write_frame(&mut writer, &hello).is_err() {
        leave(0);
    }
    let Ok(plugin) = opened else { leave(0) };
    let served = Arc::new(Served {
        writer: Mutex::new(writer),
        module: plugin.module(),
        engine: OnceLock::new(),
        flows: Mutex::default(),
        cancels: Mutex::default(),
    });
    loop {
        match read_frame::<ToWorker>(&mut reader) {
            Ok(Some(ToWorker::Call { id, call })) => {
                let on_thread = Arc::clone(&served);
                let name = call.name();
                let spawned = std::thread::Builder::new()
                    .name(format!("call-{id}-{name}"))
                    .spawn(move || {
                        let served = on_thread;
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| served.handle(id, call)))
                            .unwrap_or_else(|_| Err(format!("the worker failed inside {name}")));
                        served.cancels.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                        let _ = served.send(&FromWorker::Done { id, result });
                    });
                if let Err(e) = spawned {
                    let _ = served.send(&FromWorker::Done {
                        id,
                        result: Err(format!("the worker cannot start a thread: {e}")),
                    });
                }
            }
            Ok(Some(ToWorker::Flow { id, go_on })) => {
                if let Some(tx) = served.flows.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                    let _ = tx.send(go_on);
                }
            }
            Ok(Some(ToWorker::Cancel { id })) => {
                if let Some(flag) = served.cancels.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            Ok(Some(ToWorker::Hello { .. })) => {}
            // The host closed the channel (or died): nothing is left to serve.
            Ok(None) | Err(_) => leave(0),
        }
    }
}
