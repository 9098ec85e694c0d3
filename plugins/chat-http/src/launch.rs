//! The managed server: a child process the plugin starts in `load` and
//! stops in `shutdown`, with the last lines of its output kept for error
//! messages.
//!
//! # Why a keeper thread
//!
//! The child is spawned with `PR_SET_PDEATHSIG = SIGKILL`, so it dies with
//! the host even when the host is killed without running any shutdown. The
//! kernel sends that signal when the *thread* that forked the child exits,
//! not the process. The host calls `load` on a pooled blocking thread that
//! may exit long before the host does, which would kill the server in the
//! middle of its work. So every server gets a keeper thread that forks it,
//! then sleeps until it is told to stop the child (or until the
//! [`ManagedServer`] is dropped), and only then ends.
//!
//! The child also gets a process group of its own, so a Ctrl-C in the
//! host's terminal reaches only the host, which then stops the server in
//! its orderly shutdown instead of losing it in the middle of a reply.

use std::{
    collections::{BTreeMap, VecDeque},
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read, Write},
    os::unix::process::{CommandExt, ExitStatusExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

/// How many lines of the child's output are kept.
const TAIL_LINES: usize = 40;
/// Longest kept line, in bytes.
const LINE_BYTES: usize = 400;

/// What the plugin needs to start a server, with paths already resolved.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The program (an absolute path, or a bare name looked up on `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Its working directory.
    pub cwd: PathBuf,
    /// Where to append its output, if anywhere.
    pub log: Option<PathBuf>,
    /// Grace period between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
}

/// The last lines the child printed (stdout and stderr interleaved), and how
/// many of its two pipes have reached their end.
#[derive(Default)]
struct Output {
    lines: VecDeque<String>,
    closed_pipes: u8,
}

/// A running (or exited) child server.
pub struct ManagedServer {
    /// Short name for messages: the program's file name.
    name: String,
    pid: u32,
    child: Arc<Mutex<Child>>,
    output: Arc<Mutex<Output>>,
    /// Dropping or sending on it tells the keeper thread to stop the child.
    stop: Option<mpsc::Sender<()>>,
    keeper: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ManagedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedServer")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .finish()
    }
}

impl ManagedServer {
    /// Starts the server. Returns once it was spawned (not once it is ready).
    pub fn start(spec: Spec) -> Result<Self, String> {
        let name = spec
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.program.display().to_string());
        let log = match &spec.log {
            Some(path) => Some(open_log(path)?),
            None => None,
        };
        let output = Arc::new(Mutex::new(Output::default()));
        let (started_tx, started_rx) = mpsc::channel::<Result<Arc<Mutex<Child>>, String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let keeper_output = Arc::clone(&output);
        let keeper_name = name.clone();
        let keeper = thread::Builder::new()
            .name(format!("keep-{name}"))
            .spawn(move || keeper(spec, keeper_name, log, keeper_output, started_tx, stop_rx))
            .map_err(|e| format!("cannot start a thread to run {name}: {e}"))?;
        let child = started_rx
            .recv()
            .map_err(|_| format!("the thread starting {name} ended without a word"))??;
        let pid = lock(&child).id();
        Ok(Self {
            name,
            pid,
            child,
            output,
            stop: Some(stop_tx),
            keeper: Some(keeper),
        })
    }

    /// The program's file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(status)` once the child has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        lock(&self.child).try_wait().ok().flatten()
    }

    /// The last `n` non-empty lines of its output, joined with ` | `,
    /// after giving the pipes up to `wait` to drain (useful right after the
    /// child died, when its last words may still be in flight).
    pub fn last_lines(&self, n: usize, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        while lock(&self.output).closed_pipes < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let output = lock(&self.output);
        let lines: Vec<&str> = output
            .lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }

    /// "llama-server (pid N) exited with signal 4 (SIGILL) {when}" plus its
    /// last `lines` lines of output, if it has exited.
    pub fn death_notice(&self, when: &str, lines: usize) -> Option<String> {
        let status = self.exited()?;
        let tail = self.last_lines(lines, Duration::from_millis(500));
        let mut message = format!("{} (pid {}) {} {when}", self.name, self.pid, describe_exit(status));
        if tail.is_empty() {
            message.push_str("; it printed nothing");
        } else {
            message.push_str(&format!("; its last output: {tail}"));
        }
        if status.signal() == Some(libc::SIGILL) {
            message.push_str(
                ". SIGILL means it was built for a newer CPU than this one: build a portable server with scripts/build-llama-server.sh",
            );
        }
        Some(message)
    }

    /// Stops the child (SIGTERM, then SIGKILL after the grace period) and
    /// waits for it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

impl Drop for ManagedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_log(path: &Path) -> Result<File, String> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open launch.log {}: {e}", path.display()))
}

/// The keeper thread: forks the child, reports it, waits for the word to
/// stop, stops it. See the module docs for why this must be one thread.
fn keeper(
    spec: Spec,
    name: String,
    log: Option<File>,
    output: Arc<Mutex<Output>>,
    started: mpsc::Sender<Result<Arc<Mutex<Child>>, String>>,
    stop: mpsc::Receiver<()>,
) {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(&spec.env)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child between fork and exec,
    // where only async-signal-safe calls are allowed. It calls prctl(2) and
    // getppid(2), which are, and builds io::Errors from raw OS codes, which
    // neither allocates nor takes locks.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The host may have died between fork and prctl; then nobody
            // would ever send the signal.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = started.send(Err(format!("cannot start {} ({}): {e}", name, spec.program.display())));
            return;
        }
    };
    let log = log.map(|f| Arc::new(Mutex::new(f)));
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for (i, pipe) in pipes.into_iter().enumerate() {
        let reader_output = Arc::clone(&output);
        let log = log.clone();
        let spawned = pipe.map(|pipe| {
            thread::Builder::new()
                .name(format!("{name}-out{i}"))
                .spawn(move || drain(pipe, reader_output, log))
        });
        if !matches!(spawned, Some(Ok(_))) {
            // Without a reader, count the pipe as closed so nothing waits on it.
            lock(&output).closed_pipes += 1;
        }
    }
    let child = Arc::new(Mutex::new(child));
    if started.send(Ok(Arc::clone(&child))).is_err() {
        terminate(&child, spec.stop_timeout);
        return;
    }
    // Either an explicit stop or the ManagedServer being dropped.
    let _ = stop.recv();
    terminate(&child, spec.stop_timeout);
}

/// Reads one pipe to its end, keeping the last lines and copying to the log.
fn drain(pipe: Box<dyn Read + Send>, output: Arc<Mutex<Output>>, log: Option<Arc<Mutex<File>>>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Some(log) = &log {
                    let _ = lock(log).write_all(&buf);
                }
                let line = String::from_utf8_lossy(&buf);
                let line = crate::wire::clip(line.trim_end(), LINE_BYTES).to_owned();
                let mut out = lock(&output);
                if out.lines.len() == TAIL_LINES {
                    out.lines.pop_front();
                }
                out.lines.push_back(line);
            }
        }
    }
    lock(&output).closed_pipes += 1;
}

/// SIGTERM, wait up to `grace`, SIGKILL, reap.
fn terminate(child: &Mutex<Child>, grace: Duration) {
    let mut child = lock(child);
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let pid = libc::pid_t::try_from(child.id()).ok();
    // The child leads its own process group (see `keeper`), so signalling
    // the group also reaches helpers it started, such as Ollama's runners.
    let signal_group = |signal: libc::c_int| {
        if let Some(pid) = pid {
            // SAFETY: kill(2) has no memory-safety preconditions. `-pid` is
            // the process group our own unreaped child leads, so the id
            // cannot have been reused by an unrelated group.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    };
    signal_group(libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    signal_group(libc::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}

/// "exited with status 1", "exited with signal 4 (SIGILL)".
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => format!("exited with signal {signal} ({})", signal_name(signal)),
        None => format!("exited ({status})"),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "unknown signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Spec {
        Spec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: BTreeMap::new(),
            cwd: std::env::temp_dir(),
            log: None,
            stop_timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn a_crash_is_described_with_its_signal_and_last_words() {
        let server = ManagedServer::start(sh("echo loading model >&2; kill -ILL $$")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.exited().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let notice = server.death_notice("while loading", 6).unwrap();
        assert!(notice.starts_with("sh (pid "), "{notice}");
        assert!(
            notice.contains("exited with signal 4 (SIGILL) while loading"),
            "{notice}"
        );
        assert!(notice.contains("its last output: loading model"), "{notice}");
        assert!(notice.contains("scripts/build-llama-server.sh"), "{notice}");
    }

    #[test]
    fn stop_ends_a_server_that_ignores_sigterm() {
        let mut server = ManagedServer::start(sh("trap '' TERM; echo trapped; while :; do sleep 0.05; done")).unwrap();
        // SIGTERM must arrive after the trap is set, or it ends the shell.
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.last_lines(1, Duration::ZERO) != "trapped" && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(server.exited().is_none());
        let started = Instant::now();
        server.stop();
        assert!(started.elapsed() < Duration::from_secs(3));
        let status = lock(&server.child).try_wait().unwrap().expect("reaped");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_missing_program_is_named() {
        let mut spec = sh("");
        spec.program = "/nonexistent/llama-server".into();
        let e = ManagedServer::start(spec).unwrap_err();
        assert!(
            e.starts_with("cannot start llama-server (/nonexistent/llama-server)"),
            "{e}"
        );
    }
}
