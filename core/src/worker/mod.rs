//! Worker processes: an engine in a process of its own, so that a plugin's
//! native crash (abort, segfault, `exit`, stack overflow, out of memory) or
//! hang takes down only its worker, never the host.
//!
//! The worker is the `hearth` binary itself (`hearth __worker PLUGIN`,
//! [`serve`]); it speaks the [`protocol`] over a Unix socket pair on fd 3.
//! On the host side a [`Worker`] implements the same plain-Rust contract
//! ([`Calls`]) as an in-process engine, so nothing above the supervisor
//! knows the difference.
//!
//! Invariants:
//! - Every worker is forked by one long-lived keeper thread with
//!   `PR_SET_PDEATHSIG = SIGKILL` (the signal follows the forking *thread*),
//!   in a process group of its own: it dies with the host even when the host
//!   is SIGKILLed, and killing the group takes what it started with it.
//! - Every call has a deadline. A call that outlives it kills the worker
//!   (SIGKILL to its group); the reader thread reaps it and fails every call
//!   in flight with the reason at once. No host thread waits forever and no
//!   zombie is left.
//! - A worker that dies on its own (not shut down by the host) is reported
//!   once through [`Worker::on_death`], with the signal or exit code, the
//!   call it was in and the last lines of its stderr.

pub mod protocol;
pub mod serve;

use std::{
    collections::{HashMap, VecDeque},
    io::{BufRead, BufReader},
    os::{
        fd::AsRawFd,
        unix::{net::UnixStream, process::CommandExt, process::ExitStatusExt},
    },
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc, Mutex, OnceLock,
    },
    time::{Duration, Instant},
};

use hearth_plugin_api::{
    client::{Audio, Calls, ChatOptions, Host, Info, Library, Message, Speech, Transcription, Warmed},
    AbiVersion, Capabilities, ChatOutcome, Description, EngineKind, Flow, SpeechOptions, VadEvent,
};

use self::protocol::{read_frame, write_frame, Answer, Call, FromWorker, Opened, ToWorker, VERSION};
use crate::plugin::PluginMeta;

/// How long a worker may take, per kind of call, and what it may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The address-space limit (`RLIMIT_AS`) of the worker and what it
    /// starts, in bytes.
    pub memory: Option<u64>,
    /// `load`.
    pub load: Duration,
    /// `warmup`.
    pub warmup: Duration,
    /// `synthesize`, `transcribe`, `chat`.
    pub request: Duration,
    /// `health`, `describe`, `check_config`, `new_engine`, opening the
    /// library.
    pub quick: Duration,
    /// `shutdown`.
    pub shutdown: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: None,
            load: Duration::from_secs(120),
            warmup: Duration::from_secs(60),
            request: Duration::from_secs(300),
            quick: Duration::from_secs(10),
            shutdown: Duration::from_secs(10),
        }
    }
}

/// Why a worker could not open a library.
#[derive(Debug, Clone)]
pub enum OpenError {
    /// The library is not a usable plugin (not found, refused by the
    /// loader): the worker said so and left.
    Refused(String),
    /// The worker could not be started, or died or hung while opening the
    /// library (its constructor crashed, say).
    Died(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) | Self::Died(why) => f.write_str(why),
        }
    }
}

/// Lines of a worker's stderr kept for the report of its death (enough to
/// see past a backtrace).
const STDERR_TAIL: usize = 200;

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Forks `command` on the keeper thread (see the module doc).
fn spawn_on_keeper(command: Command) -> std::io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        let spawned = std::thread::Builder::new().name("worker-keeper".into()).spawn(move || {
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start the worker keeper thread: {e}");
        }
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    keeper
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply_tx))
        .map_err(|_| std::io::Error::other("the worker keeper thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("the worker keeper thread is gone"))?
}

/// Told the reason once when a worker dies on its own.
type DeathNotice = Box<dyn FnOnce(String) + Send>;

enum Event {
    Message(FromWorker),
    Dead(String),
}

struct Shared {
    /// The plugin's file stem, until the library names itself.
    file_stem: String,
    /// The plugin's name, once the library said it.
    plugin_name: OnceLock<String>,
    service: String,
    pid: u32,
    limits: Limits,
    writer: Mutex<UnixStream>,
    /// Calls in flight: where their events go, and their names.
    calls: Mutex<HashMap<u64, (mpsc::Sender<Event>, &'static str)>>,
    next_id: AtomicU64,
    /// Why the worker is gone, once it is.
    dead: OnceLock<String>,
    /// Why the host killed it, when it did.
    killed_for: OnceLock<String>,
    /// Shut down (or dropped) by the host: its end is no news.
    stopping: AtomicBool,
    /// The library is being opened (its constructors run).
    opening: AtomicBool,
    /// The channel ended: the process is gone or going, and the reader
    /// reaps it; its pid must not be signalled any more (it may be reused).
    closed: AtomicBool,
    on_death: Mutex<Option<DeathNotice>>,
}

/// The host's side of one worker process.
pub struct Worker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("label", &self.shared.label())
            .field("pid", &self.shared.pid)
            .finish()
    }
}

impl Shared {
    /// `worker for tts (tts-piper)`, or `worker of tts-piper` outside a
    /// service.
    fn label(&self) -> String {
        let plugin = self.plugin_name.get().unwrap_or(&self.file_stem);
        if self.service.is_empty() {
            format!("worker of {plugin}")
        } else {
            format!("worker for {} ({plugin})", self.service)
        }
    }
}

/// Whether a stderr line is part of a backtrace rather than a message.
fn is_backtrace(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("at ")
        || line == "stack backtrace:"
        || line.starts_with("note: Some details are omitted")
        || line.starts_with("note: run with `RUST_BACKTRACE")
        || line
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// The program workers run: `$HEARTH_WORKER` if set, else this binary when
/// it is `hearth`, else a `hearth` beside it or one directory up (where
/// cargo puts it for tests and benchmarks built in the same workspace).
pub fn worker_program() -> Result<std::path::PathBuf, String> {
    if let Some(path) = std::env::var_os("HEARTH_WORKER") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the running binary: {e}"))?;
    if exe.file_stem().is_some_and(|stem| stem == "hearth") {
        return Ok(exe);
    }
    let beside = exe.parent().map(|dir| dir.join("hearth"));
    let above = exe.parent().and_then(Path::parent).map(|dir| dir.join("hearth"));
    [beside, above]
        .into_iter()
        .flatten()
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "cannot find the hearth binary to run worker processes (this is {}); set HEARTH_WORKER to its path",
                exe.display()
            )
        })
}

/// `signal 11 (SIGSEGV)`, `exit code 3`, ...
fn describe_status(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let name = match signal {
            libc::SIGABRT => "SIGABRT",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGKILL => "SIGKILL",
            libc::SIGBUS => "SIGBUS",
            libc::SIGILL => "SIGILL",
            libc::SIGFPE => "SIGFPE",
            libc::SIGTERM => "SIGTERM",
            libc::SIGTRAP => "SIGTRAP",
            _ => "",
        };
        if name.is_empty() {
            format!("signal {signal}")
        } else {
            format!("signal {signal} ({name})")
        }
    } else {
        match status.code() {
            Some(code) => format!("exit code {code}"),
            None => status.to_string(),
        }
    }
}

impl Worker {
    /// Starts a worker for `plugin` serving `service`, and opens the library
    /// in it. Returns the worker and what the library says about itself, or
    /// why it could not be opened (a refusal, or the worker's death).
    pub fn spawn(plugin: &Path, service: &str, limits: Limits) -> Result<(Self, PluginMeta), OpenError> {
        let (host_end, worker_end) =
            UnixStream::pair().map_err(|e| OpenError::Died(format!("cannot make a channel for a worker: {e}")))?;
        let command = Self::command(plugin, &worker_end, &limits)?;
        let mut child = spawn_on_keeper(command)
            .map_err(|e| OpenError::Died(format!("cannot start a worker for {service}: {e}")))?;
        drop(worker_end);
        let pid = child.id();
        let file_stem = plugin
            .file_stem()
            .map(|s| s.to_string_lossy().trim_start_matches("lib").to_owned())
            .unwrap_or_default();
        let (tail, stderr_thread) = Self::forward_stderr(&mut child, service, pid);
        let shared = Arc::new(Shared {
            file_stem,
            plugin_name: OnceLock::new(),
            service: service.to_owned(),
            pid,
            limits,
            writer: Mutex::new(
                host_end
                    .try_clone()
                    .map_err(|e| OpenError::Died(format!("cannot use the worker channel: {e}")))?,
            ),
            calls: Mutex::default(),
            next_id: AtomicU64::new(1),
            dead: OnceLock::new(),
            killed_for: OnceLock::new(),
            stopping: AtomicBool::new(false),
            opening: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            on_death: Mutex::new(None),
        });
        let worker = Self {
            shared: Arc::clone(&shared),
        };
        let mut reader = BufReader::new(host_end);
        let opened = Self::handshake(&shared, &mut reader, &limits);
        shared.opening.store(opened.is_none(), Ordering::Release);
        let started = Self::start_reader(Arc::clone(&shared), reader, child, tail, stderr_thread);
        let opened = match opened {
            Some(opened) => opened,
            None => {
                if !started {
                    worker.kill("it did not answer".into());
                }
                // The reader saw the end: wait for its report.
                return Err(OpenError::Died(
                    worker.wait_dead(Duration::from_secs(5), "while opening the library"),
                ));
            }
        };
        let opened = opened.map_err(OpenError::Refused)?;
        let meta = meta_of(&opened, plugin).map_err(OpenError::Refused)?;
        let _ = shared.plugin_name.set(meta.name.clone());
        Ok((worker, meta))
    }

    /// The worker's command: this program's `__worker` entry point for
    /// `plugin`, with `worker_end` as its channel (fd 3), in a process group
    /// of its own (so its grandchildren die with it), killed when the host
    /// dies, and under the service's memory limit.
    fn command(plugin: &Path, worker_end: &UnixStream, limits: &Limits) -> Result<Command, OpenError> {
        let exe = worker_program().map_err(OpenError::Died)?;
        let mut command = Command::new(exe);
        command
            .arg("__worker")
            .arg(plugin)
            .env("HEARTH_HOST_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let fd = worker_end.as_raw_fd();
        let parent = std::process::id();
        let memory = limits.memory;
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe calls (dup2, fcntl, setpgid, prctl,
        // getppid, setrlimit, _exit) on values copied into it.
        unsafe {
            command.pre_exec(move || {
                if fd == serve::CHANNEL_FD {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, serve::CHANNEL_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setpgid(0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The host may have died between fork and prctl.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                if let Some(bytes) = memory {
                    let limit = libc::rlimit {
                        rlim_cur: bytes as libc::rlim_t,
                        rlim_max: bytes as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &limit) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        Ok(command)
    }

    /// Forwards the worker's stderr to the log, line by line, keeping the
    /// last [`STDERR_TAIL`] lines for the report of its death.
    #[allow(clippy::type_complexity)]
    fn forward_stderr(
        child: &mut Child,
        service: &str,
        pid: u32,
    ) -> (Arc<Mutex<VecDeque<String>>>, Option<std::thread::JoinHandle<()>>) {
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_thread = child.stderr.take().map(|stderr| {
            let tail = Arc::clone(&tail);
            let service = service.to_owned();
            std::thread::Builder::new()
                .name(format!("worker-{pid}-stderr"))
                .spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        tracing::info!(target: "worker", service, pid, "{line}");
                        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                        if tail.len() == STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                })
        });
        let stderr_thread = match stderr_thread {
            Some(Ok(handle)) => Some(handle),
            _ => None,
        };
        (tail, stderr_thread)
    }

    /// The handshake, with a deadline (`limits.quick`): the library's
    /// constructors run now. What the worker says of the library, or `None`
    /// when it did not answer in time or spoke another protocol version.
    fn handshake(
        shared: &Shared,
        reader: &mut BufReader<UnixStream>,
        limits: &Limits,
    ) -> Option<Result<Opened, String>> {
        let hello: Option<FromWorker> = (|| {
            reader.get_ref().set_read_timeout(Some(limits.quick)).ok()?;
            write_frame(
                &mut *shared.writer.lock().unwrap_or_else(|e| e.into_inner()),
                &ToWorker::Hello { version: VERSION },
            )
            .ok()?;
            let hello = read_frame::<FromWorker>(reader).ok()??;
            reader.get_ref().set_read_timeout(None).ok()?;
            Some(hello)
        })();
        match hello {
            Some(FromWorker::Hello { version, opened }) if version == VERSION => Some(opened),
            _ => None,
        }
    }

    /// Starts the thread that reads the worker's messages and reports its
    /// end; false if it could not be started (the worker is then killed).
    fn start_reader(
        shared: Arc<Shared>,
        mut reader: BufReader<UnixStream>,
        mut child: Child,
        tail: Arc<Mutex<VecDeque<String>>>,
        stderr_thread: Option<std::thread::JoinHandle<()>>,
    ) -> bool {
        let pid = shared.pid;
        let spawned = std::thread::Builder::new()
            .name(format!("worker-{pid}"))
            .spawn(move || {
                while let Ok(Some(message)) = read_frame::<FromWorker>(&mut reader) {
                    let id = match &message {
                        FromWorker::Progress { id, .. }
                        | FromWorker::Log { id, .. }
                        | FromWorker::Speech { id, .. }
                        | FromWorker::Token { id, .. }
                        | FromWorker::Done { id, .. } => *id,
                        FromWorker::Hello { .. } => continue,
                    };
                    let mut calls = shared.calls.lock().unwrap_or_else(|e| e.into_inner());
                    let done = matches!(message, FromWorker::Done { .. });
                    if let Some((tx, _)) = calls.get(&id) {
                        let _ = tx.send(Event::Message(message));
                    }
                    if done {
                        calls.remove(&id);
                    }
                }
                // The channel ended: the worker exited, crashed or was killed.
                // Make sure it is gone, reap it, and collect its last words.
                shared.closed.store(true, Ordering::Release);
                let status = match child.try_wait() {
                    Ok(Some(status)) => Some(status),
                    _ => {
                        let deadline = Instant::now() + Duration::from_secs(2);
                        loop {
                            match child.try_wait() {
                                Ok(Some(status)) => break Some(status),
                                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                                _ => {
                                    kill_group(pid);
                                    break child.wait().ok();
                                }
                            }
                        }
                    }
                };
                if let Some(handle) = stderr_thread {
                    let _ = handle.join();
                }
                let during = {
                    let calls = shared.calls.lock().unwrap_or_else(|e| e.into_inner());
                    let mut names: Vec<_> = calls.values().map(|(_, name)| *name).collect();
                    // A health probe beside an operation is not news.
                    if names.iter().any(|n| *n != "health") {
                        names.retain(|n| *n != "health");
                    }
                    names.sort_unstable();
                    names.dedup();
                    if shared.opening.load(Ordering::Acquire) {
                        "while opening the library".to_owned()
                    } else if names.is_empty() {
                        "while idle".to_owned()
                    } else {
                        format!("during {}", names.join(" and "))
                    }
                };
                let reason = match shared.killed_for.get() {
                    Some(why) => format!("{} killed: {why}", shared.label()),
                    None => {
                        let status = status.map_or_else(|| "an unknown status".to_owned(), describe_status);
                        let lines: Vec<String> =
                            tail.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
                        let out_of_memory = lines.iter().any(|l| l.contains("memory allocation of"));
                        let mut reason = format!("{} died: {status} {during}", shared.label());
                        if out_of_memory {
                            match shared.limits.memory {
                                Some(bytes) => reason.push_str(&format!(
                                    " (out of memory: it exceeded its memory_limit of {} MiB)",
                                    bytes >> 20
                                )),
                                None => reason.push_str(" (out of memory)"),
                            }
                        }
                        let words: Vec<&String> = lines.iter().filter(|l| !is_backtrace(l)).collect();
                        let last: Vec<&str> = words.iter().rev().take(3).rev().map(|l| l.trim()).collect();
                        if !last.is_empty() {
                            reason.push_str(&format!("; last stderr: {}", last.join(" / ")));
                        }
                        reason
                    }
                };
                let _ = shared.dead.set(reason.clone());
                let calls: Vec<_> = shared.calls.lock().unwrap_or_else(|e| e.into_inner()).drain().collect();
                for (_, (tx, _)) in calls {
                    let _ = tx.send(Event::Dead(reason.clone()));
                }
                if !shared.stopping.load(Ordering::Acquire) {
                    tracing::error!(service = %shared.service, pid, "{reason}");
                    let notify = shared.on_death.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(notify) = notify {
                        notify(reason);
                    }
                }
            });
        spawned.is_ok()
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// Why the worker is gone, if it is.
    pub fn death(&self) -> Option<String> {
        self.shared.dead.get().cloned()
    }

    /// Calls `notify` with the reason when the worker dies on its own
    /// (not when the host shuts it down); at once if it already did.
    pub fn on_death(&self, notify: impl FnOnce(String) + Send + 'static) {
        let mut slot = self.shared.on_death.lock().unwrap_or_else(|e| e.into_inner());
        match self.shared.dead.get() {
            Some(reason) if !self.shared.stopping.load(Ordering::Acquire) => {
                let reason = reason.clone();
                drop(slot);
                notify(reason);
            }
            Some(_) => {}
            None => *slot = Some(Box::new(notify)),
        }
    }

    /// Kills the worker and what it started (SIGKILL to its process
    /// group); `why` becomes the reason every waiting call fails with.
    pub fn kill(&self, why: String) {
        if self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        let _ = self.shared.killed_for.set(why);
        kill_group(self.shared.pid);
    }

    fn wait_dead(&self, limit: Duration, during: &str) -> String {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(reason) = self.shared.dead.get() {
                return reason.clone();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        format!("{} did not answer {during}", self.shared.label())
    }

    /// Runs one call: sends it, relays progress, log lines, chunks and
    /// tokens, and returns its answer — or fails at its deadline (killing
    /// the worker), or at once when the worker dies.
    fn call(
        &self,
        call: Call,
        limit: Duration,
        host: Option<&dyn Host>,
        mut sink: Option<&mut dyn FnMut(Piece<'_>) -> Flow>,
    ) -> Result<Answer, String> {
        if let Some(reason) = self.shared.dead.get() {
            return Err(reason.clone());
        }
        let name = call.name();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.shared
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (tx, name));
        if self.send(&ToWorker::Call { id, call }).is_err() {
            return Err(self.wait_dead(Duration::from_secs(5), &format!("to {name}")));
        }
        let deadline = Instant::now() + limit;
        let mut cancel_sent = false;
        let mut killed_at = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Event::Message(message)) => match message {
                    FromWorker::Progress { fraction, message, .. } => {
                        if let Some(host) = host {
                            host.progress(fraction, &message);
                        }
                    }
                    FromWorker::Log { level, message, .. } => match host {
                        Some(host) => host.log(level, &message),
                        None => crate::plugin_log::log_plugin_line(&self.shared.service, level, &message),
                    },
                    FromWorker::Speech { speech, .. } => {
                        let flow = sink.as_mut().map_or(Flow::Stop, |sink| sink(Piece::Speech(speech)));
                        let _ = self.send(&ToWorker::Flow {
                            id,
                            go_on: flow == Flow::Continue,
                        });
                    }
                    FromWorker::Token { text, .. } => {
                        let flow = sink.as_mut().map_or(Flow::Stop, |sink| sink(Piece::Token(&text)));
                        let _ = self.send(&ToWorker::Flow {
                            id,
                            go_on: flow == Flow::Continue,
                        });
                    }
                    FromWorker::Done { result, .. } => return result,
                    FromWorker::Hello { .. } => {}
                },
                Ok(Event::Dead(reason)) => return Err(reason),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.wait_dead(Duration::from_secs(5), &format!("to {name}")))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(reason) = self.shared.dead.get() {
                        return Err(reason.clone());
                    }
                    if !cancel_sent && host.is_some_and(|h| h.is_cancelled()) {
                        cancel_sent = true;
                        let _ = self.send(&ToWorker::Cancel { id });
                    }
                    let now = Instant::now();
                    match killed_at {
                        None if now >= deadline => {
                            killed_at = Some(now);
                            self.kill(format!("{name} timed out after {}", humantime::format_duration(limit)));
                        }
                        Some(at) if now.duration_since(at) > Duration::from_secs(5) => {
                            self.shared.calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                            return Err(format!(
                                "{} did not end after being killed ({name} timed out)",
                                self.shared.label()
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn send(&self, message: &ToWorker) -> std::io::Result<()> {
        let mut writer = self.shared.writer.lock().unwrap_or_else(|e| e.into_inner());
        write_frame(&mut *writer, message)
    }

    /// Makes the worker's engine.
    pub fn new_engine(&self) -> Result<(), String> {
        self.call(Call::NewEngine, self.shared.limits.quick, None, None)
            .map(drop)
    }

    /// Validates a `config` table in the worker.
    pub fn check_config(&self, config_json: &str) -> Result<(), String> {
        self.call(
            Call::CheckConfig {
                config_json: config_json.to_owned(),
            },
            self.shared.limits.quick,
            None,
            None,
        )
        .map(drop)
    }

    /// Ends the worker: its engine's `shutdown` (bounded), then the channel
    /// closes and the worker leaves; killed if it does not.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        if self.shared.dead.get().is_some() {
            return;
        }
        if let Ok(writer) = self.shared.writer.lock() {
            let _ = writer.shutdown(std::net::Shutdown::Both);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.shared.dead.get().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.shared.dead.get().is_none() {
            self.kill("it did not leave when asked".into());
        }
    }
}

fn kill_group(pid: u32) {
    // SAFETY: plain kill(2) calls; the worker leads its own process group
    // (setpgid in the child), so `-pid` names exactly it and what it
    // started. Callers check `closed` first: the pid is not reaped (and so
    // cannot be reused) before the channel closed.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

fn meta_of(opened: &Opened, plugin: &Path) -> Result<PluginMeta, String> {
    Ok(PluginMeta {
        name: opened.name.clone(),
        kind: EngineKind(opened.kind),
        version: opened.version.clone(),
        description: opened.description.clone(),
        abi: AbiVersion::parse(&opened.abi)?,
        path: plugin.to_path_buf(),
    })
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.shared.dead.get().is_none() {
            self.shared.stopping.store(true, Ordering::Release);
            self.kill("the host let it go".into());
        }
    }
}

/// What a worker streams back during an operation.
enum Piece<'a> {
    Speech(Speech),
    Token(&'a str),
}

fn unexpected(answer: Answer, what: &str) -> String {
    format!("the worker answered {what} with {answer:?}")
}

impl Calls for Worker {
    fn describe(&self) -> Result<Description, String> {
        match self.call(Call::Describe, self.shared.limits.quick, None, None)? {
            Answer::Description(d) => Ok(d),
            other => Err(unexpected(other, "describe")),
        }
    }

    fn load(&self, config_json: &str, base_dir: &Path, host: &dyn Host) -> Result<(), String> {
        let call = Call::Load {
            config_json: config_json.to_owned(),
            base_dir: base_dir.to_path_buf(),
        };
        self.call(call, self.shared.limits.load, Some(host), None).map(drop)
    }

    fn warmup(&self, host: &dyn Host) -> Result<Warmed, String> {
        match self.call(Call::Warmup, self.shared.limits.warmup, Some(host), None)? {
            Answer::Warmed(w) => Ok(w),
            other => Err(unexpected(other, "warmup")),
        }
    }

    fn health(&self) -> Result<(), String> {
        self.call(Call::Health, self.shared.limits.quick, None, None).map(drop)
    }

    fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Err(e) = self.call(Call::Shutdown, self.shared.limits.shutdown, None, None) {
            tracing::warn!(service = %self.shared.service, "engine shutdown in its worker: {e}");
        }
        self.stop();
    }

    fn capabilities(&self) -> Result<Capabilities, String> {
        match self.call(Call::Capabilities, self.shared.limits.quick, None, None)? {
            Answer::Capabilities(c) => Ok(c),
            other => Err(unexpected(other, "capabilities")),
        }
    }

    fn synthesize_with(
        &self,
        text: &str,
        options: &SpeechOptions,
        sink: &mut dyn FnMut(Speech) -> Flow,
    ) -> Result<(), String> {
        let mut relay = |piece: Piece<'_>| match piece {
            Piece::Speech(speech) => sink(speech),
            Piece::Token(_) => Flow::Stop,
        };
        self.call(
            Call::Synthesize {
                text: text.to_owned(),
                options: *options,
            },
            self.shared.limits.request,
            None,
            Some(&mut relay),
        )
        .map(drop)
    }

    fn transcribe(&self, audio: &Audio) -> Result<Transcription, String> {
        match self.call(
            Call::Transcribe { audio: audio.clone() },
            self.shared.limits.request,
            None,
            None,
        )? {
            Answer::Transcription(t) => Ok(t),
            other => Err(unexpected(other, "transcribe")),
        }
    }

    fn chat_with(
        &self,
        messages: &[Message],
        options: &ChatOptions,
        sink: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<ChatOutcome, String> {
        let mut relay = |piece: Piece<'_>| match piece {
            Piece::Token(text) => sink(text),
            Piece::Speech(_) => Flow::Stop,
        };
        match self.call(
            Call::Chat {
                messages: messages.to_vec(),
                options: options.clone(),
            },
            self.shared.limits.request,
            None,
            Some(&mut relay),
        )? {
            Answer::Chat(outcome) => Ok(outcome),
            other => Err(unexpected(other, "chat")),
        }
    }

    fn vad_push(&self, stream: u64, audio: &Audio) -> Result<Vec<VadEvent>, String> {
        let call = Call::VadPush {
            stream,
            audio: audio.clone(),
        };
        match self.call(call, self.shared.limits.request, None, None)? {
            Answer::VadEvents(events) => Ok(events),
            other => Err(unexpected(other, "vad_push")),
        }
    }

    fn vad_close(&self, stream: u64) {
        if let Err(e) = self.call(Call::VadClose { stream }, self.shared.limits.quick, None, None) {
            tracing::debug!(service = %self.shared.service, "closing VAD stream {stream}: {e}");
        }
    }
}

/// A plugin library held by a throwaway worker: what `hearth check`,
/// `hearth plugin inspect` and `hearth plugin test` use, so a library whose
/// constructor crashes is reported, not fatal. Each engine it makes runs in
/// a fresh worker of its own.
pub struct WorkerLibrary {
    path: std::path::PathBuf,
    service: String,
    limits: Limits,
    meta: PluginMeta,
    probe: Worker,
}

impl WorkerLibrary {
    /// Opens `path` in a new worker.
    pub fn open(path: &Path, service: &str, limits: Limits) -> Result<Self, OpenError> {
        let (probe, meta) = Worker::spawn(path, service, limits)?;
        Ok(Self {
            path: path.to_path_buf(),
            service: service.to_owned(),
            limits,
            meta,
            probe,
        })
    }

    /// What the library says about itself.
    pub fn meta(&self) -> &PluginMeta {
        &self.meta
    }
}

impl Library for WorkerLibrary {
    fn info(&self) -> Info {
        Info {
            name: self.meta.name.clone(),
            kind: self.meta.kind.to_string(),
            version: self.meta.version.clone(),
            description: self.meta.description.clone(),
        }
    }

    fn kind(&self) -> EngineKind {
        self.meta.kind
    }

    fn check_config(&self, config_json: &str) -> Result<(), String> {
        self.probe.check_config(config_json)
    }

    fn new_engine(&self) -> Result<Box<dyn Calls>, String> {
        let (worker, _) = Worker::spawn(&self.path, &self.service, self.limits).map_err(|e| e.to_string())?;
        worker.new_engine()?;
        Ok(Box::new(worker))
    }
}
