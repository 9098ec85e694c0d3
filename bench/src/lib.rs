//! What Hearth's benchmark drivers (`src/bin/*`, run by the scripts in
//! `bench/`) share: one command line for the options every benchmark takes
//! ([`Common`], and [`PluginArgs`] for those that load an engine), one way
//! to load an engine through the host's own loader ([`PluginArgs::load`]),
//! and one measuring helper ([`Bench`]): timed repeated runs, A/B runs in
//! alternating order, medians and ratios, and bounded run time.
//!
//! Every benchmark ends by itself: each step (a load, a warmup, one run, one
//! wait for a server) runs under [`Common::timeout`] and the whole benchmark
//! under [`Common::time_limit`]. A step past its time cannot be cancelled
//! (engine calls block inside a plugin), so the watchdog reports it, runs
//! the clean-ups registered with [`Bench::on_abort`] (e.g. killing a server
//! the benchmark started) and exits the process with status
//! [`TIMED_OUT`]. Waiting for something to come up is a bounded number of
//! attempts ([`Retry`], [`wait_until`]).

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use clap::Parser;
use hearth::{
    config::{Config, ServiceName, DEFAULT_CONFIG_FILE},
    engine::{Engine, InProcess},
    plugin::{Libraries, Plugin, PluginMeta},
    plugin_log::LogHost,
};
use hearth_plugin_api::client::Warmed;

/// The exit status of a benchmark that ran out of time (as `timeout(1)`'s).
pub const TIMED_OUT: i32 = 124;

/// Options every benchmark driver takes; flattened into each one's command
/// line (`#[command(flatten)] common: Common`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Measuring")]
pub struct Common {
    /// Timed runs (per side, for A/B benchmarks).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub runs: usize,
    /// Untimed runs before the timed ones.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub warmup: usize,
    /// Also append the results, as one line of JSON, to FILE.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Longest any one step (load, warmup, one run, one wait) may take
    /// before the benchmark gives up, e.g. `90s`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Longest the whole benchmark may take.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub time_limit: Duration,
}

/// Parses the command line of a driver, with its own defaults for options
/// of [`Common`] (or any other), by argument id: `parse::<Cli>(&[("runs",
/// "7")])`. The defaults show in `--help`.
pub fn parse<C: Parser>(defaults: &[(&str, &'static str)]) -> C {
    let mut command = C::command();
    for (id, value) in defaults {
        let value: &'static str = value;
        command = command.mut_arg(*id, |arg| arg.default_value(value).required(false));
    }
    let matches = command.clone().get_matches();
    C::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit())
}

/// Runs a driver's `run` and exits with its error, prefixed by `name`.
pub fn exit_on_error(name: &str, result: Result<(), String>) {
    if let Err(e) = result {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// Measuring.

/// Milliseconds, as the drivers report every time.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median of the values that are numbers (NaN is skipped); NaN when
/// there are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `median(a) / median(b)`: above 1 when A is slower (for times).
pub fn ratio_of_medians(a: impl IntoIterator<Item = f64>, b: impl IntoIterator<Item = f64>) -> f64 {
    median(a) / median(b)
}

/// CPU time of the whole process (all threads) so far, in ms, from
/// `/proc/self/stat` (utime + stime, in clock ticks of 10 ms); `None` where
/// there is no procfs.
pub fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

/// What a step returned, and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Timed<T> {
    /// What it returned.
    pub value: T,
    /// Wall time of the step.
    pub elapsed: Duration,
}

impl<T> Timed<T> {
    /// [`Timed::elapsed`] in ms.
    pub fn ms(&self) -> f64 {
        ms(self.elapsed)
    }
}

/// One run of a schedule: untimed warmup runs come first, each counted from
/// 0, then the timed runs, counted from 0 again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Position among the runs of its kind.
    pub index: usize,
    /// An untimed run, whose result is dropped.
    pub warmup: bool,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.warmup {
            write!(f, "warmup run {}", self.index + 1)
        } else {
            write!(f, "run {}", self.index + 1)
        }
    }
}

/// One timed run of each side of an A/B benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Pair<A, B> {
    /// Side A's run.
    pub a: Timed<A>,
    /// Side B's run.
    pub b: Timed<B>,
    /// Whether A ran first (in even runs it does).
    pub a_first: bool,
}

/// The measuring helper: runs steps under the per-step timeout, repeats
/// runs, alternates A/B runs, and writes results. One per process; made
/// first, so the time limit covers the whole benchmark.
pub struct Bench {
    common: Common,
    watchdog: Arc<Watchdog>,
}

impl Bench {
    /// Starts the clock of the whole benchmark; `name` prefixes the
    /// watchdog's message.
    pub fn start(name: &str, common: &Common) -> Self {
        let watchdog = Arc::new(Watchdog {
            name: name.to_owned(),
            state: Mutex::new(WatchState {
                steps: BTreeMap::new(),
                next_id: 1,
                cleanups: Vec::new(),
            }),
            wake: Condvar::new(),
        });
        let bench = Self {
            common: common.clone(),
            watchdog: Arc::clone(&watchdog),
        };
        // The whole benchmark is step 0, never disarmed.
        watchdog.lock().steps.insert(
            0,
            Deadline {
                what: "the benchmark".into(),
                option: "--time-limit",
                limit: common.time_limit,
                at: Instant::now() + common.time_limit,
            },
        );
        let spawned = std::thread::Builder::new()
            .name("bench-watchdog".into())
            .spawn(move || watchdog.watch());
        if let Err(e) = spawned {
            eprintln!("{name}: cannot start the watchdog thread ({e}); runs are not bounded");
        }
        bench
    }

    /// The options it was started with.
    pub fn common(&self) -> &Common {
        &self.common
    }

    /// The runs to make: [`Common::warmup`] untimed ones, then
    /// [`Common::runs`] timed ones.
    pub fn schedule(&self) -> impl Iterator<Item = Run> {
        let warmup = (0..self.common.warmup).map(|index| Run { index, warmup: true });
        warmup.chain((0..self.common.runs).map(|index| Run { index, warmup: false }))
    }

    /// Arms the per-step timeout for `what` until the guard drops. For
    /// async code, where [`Bench::step`] does not fit.
    pub fn guard(&self, what: impl Into<String>) -> StepGuard {
        self.guard_for(what, self.common.timeout)
    }

    /// Like [`Bench::guard`], with a limit of its own.
    pub fn guard_for(&self, what: impl Into<String>, limit: Duration) -> StepGuard {
        let mut state = self.watchdog.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.steps.insert(
            id,
            Deadline {
                what: what.into(),
                option: "--timeout",
                limit,
                at: Instant::now() + limit,
            },
        );
        drop(state);
        self.watchdog.wake.notify_one();
        StepGuard {
            watchdog: Arc::clone(&self.watchdog),
            id,
        }
    }

    /// Runs `f` once under the per-step timeout, timed.
    pub fn step<T>(&self, what: impl Into<String>, f: impl FnOnce() -> T) -> Timed<T> {
        let _guard = self.guard(what);
        let started = Instant::now();
        let value = f();
        Timed {
            value,
            elapsed: started.elapsed(),
        }
    }

    /// Runs `f` for every run of the [schedule](Bench::schedule), each
    /// under the per-step timeout, and returns the timed runs. The first
    /// error ends it.
    pub fn repeat<T, E>(&self, what: &str, mut f: impl FnMut(Run) -> Result<T, E>) -> Result<Vec<Timed<T>>, E> {
        let mut timed = Vec::with_capacity(self.common.runs);
        for run in self.schedule() {
            let result = self.step(format!("{what}, {run}"), || f(run));
            let value = result.value?;
            if !run.warmup {
                timed.push(Timed {
                    value,
                    elapsed: result.elapsed,
                });
            }
        }
        Ok(timed)
    }

    /// An A/B benchmark: every run of the schedule runs both sides, A first
    /// in even runs and B first in odd ones, so drift in the machine's load
    /// hits both alike. Returns the timed pairs.
    pub fn alternate<A, B, E>(
        &self,
        what: &str,
        mut a: impl FnMut(Run) -> Result<A, E>,
        mut b: impl FnMut(Run) -> Result<B, E>,
    ) -> Result<Vec<Pair<A, B>>, E> {
        let mut pairs = Vec::with_capacity(self.common.runs);
        for run in self.schedule() {
            let a_first = run.index % 2 == 0;
            let (ta, tb);
            if a_first {
                ta = self.step(format!("{what}, {run}, side A"), || a(run));
                tb = self.step(format!("{what}, {run}, side B"), || b(run));
            } else {
                tb = self.step(format!("{what}, {run}, side B"), || b(run));
                ta = self.step(format!("{what}, {run}, side A"), || a(run));
            }
            let (va, vb) = (ta.value?, tb.value?);
            if !run.warmup {
                pairs.push(Pair {
                    a: Timed {
                        value: va,
                        elapsed: ta.elapsed,
                    },
                    b: Timed {
                        value: vb,
                        elapsed: tb.elapsed,
                    },
                    a_first,
                });
            }
        }
        Ok(pairs)
    }

    /// Registers something to do before the watchdog exits the process
    /// (the process exits without unwinding, so `Drop` does not run).
    pub fn on_abort(&self, cleanup: impl FnOnce() + Send + 'static) {
        self.watchdog.lock().cleanups.push(Box::new(cleanup));
    }

    /// Prints `value` as one line of JSON and appends it to
    /// [`Common::output`], if given.
    pub fn emit(&self, value: &serde_json::Value) -> Result<(), String> {
        println!("{value}");
        self.save(value)
    }

    /// Appends `value` as one line of JSON to [`Common::output`], if given.
    pub fn save(&self, value: &serde_json::Value) -> Result<(), String> {
        let Some(path) = &self.common.output else {
            return Ok(());
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(file, "{value}").map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Keeps a step's timeout armed; dropping it disarms it.
#[must_use = "the timeout is disarmed when the guard drops"]
pub struct StepGuard {
    watchdog: Arc<Watchdog>,
    id: u64,
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        self.watchdog.lock().steps.remove(&self.id);
        self.watchdog.wake.notify_one();
    }
}

struct Deadline {
    what: String,
    option: &'static str,
    limit: Duration,
    at: Instant,
}

struct WatchState {
    /// Armed deadlines by id; 0 is the whole benchmark's.
    steps: BTreeMap<u64, Deadline>,
    next_id: u64,
    cleanups: Vec<Box<dyn FnOnce() + Send>>,
}

struct Watchdog {
    name: String,
    state: Mutex<WatchState>,
    wake: Condvar,
}

impl Watchdog {
    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until the earliest deadline, then ends the process if that
    /// deadline is still armed. Runs on its own thread for the life of the
    /// process.
    fn watch(&self) {
        let mut state = self.lock();
        loop {
            let Some((_, next)) = state.steps.iter().min_by_key(|(_, d)| d.at) else {
                state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let now = Instant::now();
            if now < next.at {
                let wait = next.at - now;
                state = self.wake.wait_timeout(state, wait).unwrap_or_else(|e| e.into_inner()).0;
                continue;
            }
            eprintln!(
                "{}: {} did not finish within {} ({}); giving up",
                self.name,
                next.what,
                humantime::format_duration(next.limit),
                next.option
            );
            let cleanups = std::mem::take(&mut state.cleanups);
            drop(state);
            for cleanup in cleanups {
                cleanup();
            }
            // `_exit`, not `exit`: the step that hung is still running on
            // another thread, often inside a plugin's native code, and
            // `exit` would run the process's exit handlers and static
            // destructors (ONNX Runtime's, whisper.cpp's) under its feet.
            // SAFETY: `_exit` ends the process at once and is safe to call
            // from any thread; nothing after it runs.
            unsafe { libc::_exit(TIMED_OUT) }
        }
    }
}

/// A bounded number of attempts at something that comes up later (a
/// server, a port): iterating it yields the pause before each next attempt,
/// and ends when none are left.
#[derive(Debug, Clone)]
pub struct Retry {
    left: u64,
    pause: Duration,
}

impl Retry {
    /// Attempts `pause` apart for about `total`.
    pub fn within(total: Duration, pause: Duration) -> Self {
        let pause = pause.max(Duration::from_millis(1));
        Self {
            left: (total.as_nanos() / pause.as_nanos()).max(1) as u64,
            pause,
        }
    }
}

impl Iterator for Retry {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        self.left = self.left.checked_sub(1)?;
        Some(self.pause)
    }
}

/// Polls `ready` every `pause` until it answers true, for at most about
/// `total`; the error names `what`.
pub fn wait_until(what: &str, total: Duration, pause: Duration, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let mut retry = Retry::within(total, pause);
    loop {
        if ready() {
            return Ok(());
        }
        match retry.next() {
            Some(pause) => std::thread::sleep(pause),
            None => return Err(format!("{what} within {}", humantime::format_duration(total))),
        }
    }
}

// ---------------------------------------------------------------------------
// Loading an engine as the host does.

/// Which plugin an engine benchmark loads, and with what settings;
/// flattened into the command line of `tts-bench`, `stt-bench` and
/// `chat-bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Plugin")]
pub struct PluginArgs {
    /// Hearth configuration: the plugin and its settings come from its
    /// section for the benchmark's service (default `plugins.toml`, unless
    /// `--plugin` is given).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Plugin library to load instead of the one the configuration names
    /// (without `-c`: with empty settings, or the benchmark's own).
    #[arg(long, value_name = "FILE")]
    pub plugin: Option<PathBuf>,
}

/// A plugin opened for a service, with the settings to load it with.
pub struct Opened {
    /// The plugin library.
    pub plugin: Arc<Plugin>,
    /// The `[service.config]` table as JSON.
    pub settings: String,
    /// What relative paths in the settings are relative to.
    pub base_dir: PathBuf,
    service: ServiceName,
}

/// An engine loaded and warmed, with how long that took.
pub struct Loaded {
    /// The engine; make the typed handle with `TtsHandle::of(...)`.
    pub engine: Arc<Engine>,
    /// The plugin that made it.
    pub plugin: PluginMeta,
    /// Time of `load`.
    pub load: Duration,
    /// Time of `warmup`.
    pub warmup: Duration,
    /// What the warmup did.
    pub warmed: Warmed,
}

impl PluginArgs {
    /// Opens the plugin for `service` with the host's loader
    /// ([`hearth::open::in_process`] when a configuration names it, which
    /// also checks its kind).
    pub fn open(&self, service: ServiceName) -> Result<Opened, String> {
        let config_path = match (&self.config, &self.plugin) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(PathBuf::from(DEFAULT_CONFIG_FILE)),
        };
        let libraries = Libraries::default();
        let Some(config_path) = config_path else {
            let path = self.plugin.as_deref().unwrap_or(Path::new(""));
            let plugin = libraries.open(path).map_err(|e| e.to_string())?;
            if plugin.meta.kind != service.kind() {
                return Err(format!(
                    "{} ({}) makes {} engines, not {service}",
                    plugin.meta.name,
                    path.display(),
                    plugin.meta.kind
                ));
            }
            let base_dir = std::env::current_dir().map_err(|e| e.to_string())?;
            return Ok(Opened {
                plugin,
                settings: "{}".into(),
                base_dir,
                service,
            });
        };
        let config = Config::load(&config_path).map_err(|e| e.to_string())?;
        let mut section = config
            .services
            .get(&service)
            .cloned()
            .ok_or_else(|| format!("{}: no [{service}] section", config_path.display()))?;
        if let Some(path) = &self.plugin {
            section.plugin_path = path.clone();
        }
        let plugin = hearth::open::in_process(&libraries, &section).map_err(|e| e.to_string())?;
        Ok(Opened {
            plugin,
            settings: section.config_json,
            base_dir: config.base_dir,
            service,
        })
    }

    /// [`PluginArgs::open`], then [`Opened::load`] with its settings.
    pub fn load(&self, bench: &Bench, service: ServiceName) -> Result<Loaded, String> {
        let opened = self.open(service)?;
        let settings = opened.settings.clone();
        opened.load(bench, &settings)
    }
}

impl Opened {
    /// Makes an engine and loads and warms it with `settings` (JSON), each
    /// step timed and under the per-step timeout.
    pub fn load(&self, bench: &Bench, settings: &str) -> Result<Loaded, String> {
        let engine = Arc::new(InProcess::engine(&self.plugin)?);
        let host = LogHost(self.service.as_str());
        let load = bench.step("load", || engine.load(settings, &self.base_dir, &host));
        load.value?;
        let warmup = bench.step("warmup", || engine.warmup(&host));
        Ok(Loaded {
            warmed: warmup.value?,
            engine,
            plugin: self.plugin.meta.clone(),
            load: load.elapsed,
            warmup: warmup.elapsed,
        })
    }
}

// ---------------------------------------------------------------------------
// A llama-server of the benchmark's own.

/// The llama-server this benchmark started; killed when dropped, and by
/// the watchdog when the benchmark runs out of time.
pub struct LlamaServer {
    child: Arc<Mutex<Child>>,
    port: u16,
}

impl LlamaServer {
    /// Starts `program` serving `model` (alias `smollm2`) on a free
    /// loopback port with `threads` threads, and waits for `/health` 200
    /// within the benchmark's `--timeout`.
    pub fn start(program: &Path, model: &Path, threads: u32, bench: &Bench) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(program)
            .args([
                "-m",
                &model.display().to_string(),
                "--alias",
                "smollm2",
                "--host",
                "127.0.0.1",
            ])
            .args(["--port", &port.to_string(), "-c", "2048", "-t", &threads.to_string()])
            .env("LD_LIBRARY_PATH", program.parent().unwrap_or(Path::new(".")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let server = Self {
            child: Arc::new(Mutex::new(child)),
            port,
        };
        let child = Arc::clone(&server.child);
        bench.on_abort(move || kill(&child));

        let timeout = bench.common().timeout;
        let mut retry = Retry::within(timeout, Duration::from_millis(50));
        loop {
            if health_ok(port) {
                return Ok(server);
            }
            let exited = server.child.lock().map_err(|e| e.to_string())?.try_wait();
            if let Ok(Some(status)) = exited {
                return Err(format!("llama-server exited ({status}) before answering /health"));
            }
            match retry.next() {
                Some(pause) => std::thread::sleep(pause),
                None => {
                    return Err(format!(
                        "llama-server did not answer /health with 200 within {} (--timeout)",
                        humantime::format_duration(timeout)
                    ))
                }
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn kill(child: &Mutex<Child>) {
    let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        kill(&self.child);
    }
}

/// Whether `/health` answers 200.
fn health_ok(port: u16) -> bool {
    http_status(port, "/health") == Some(200)
}

/// The status of a GET of `path` on loopback `port` (a raw request, to keep
/// the timing code alone in using an HTTP client), or `None`.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        plugin: PluginArgs,
    }

    #[test]
    fn medians_skip_nan() {
        assert!(median([]).is_nan());
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
        assert_eq!(ratio_of_medians([2.0, 4.0, 6.0], [2.0]), 2.0);
    }

    #[test]
    fn retries_are_bounded() {
        assert_eq!(
            Retry::within(Duration::from_millis(50), Duration::from_millis(10)).count(),
            5
        );
        assert_eq!(Retry::within(Duration::ZERO, Duration::from_millis(10)).count(), 1);
        let mut polls = 0;
        let waited = wait_until("never", Duration::from_millis(3), Duration::from_millis(1), || {
            polls += 1;
            false
        });
        assert!(waited.is_err());
        assert_eq!(polls, 4);
    }

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["x", "--runs", "2", "--timeout", "90s", "--plugin", "p.so"]);
        assert_eq!(cli.common.runs, 2);
        assert_eq!(cli.common.timeout, Duration::from_secs(90));
        assert_eq!(cli.plugin.plugin.as_deref(), Some(Path::new("p.so")));
    }

    #[test]
    fn alternating_runs_swap_order_and_drop_warmups() {
        let common = Cli::parse_from(["x", "--runs", "3", "--warmup", "1"]).common;
        let bench = Bench::start("test", &common);
        let order = std::cell::RefCell::new(Vec::new());
        let pairs = bench
            .alternate(
                "ab",
                |run| {
                    order.borrow_mut().push(('a', run));
                    Ok::<_, ()>(run.index)
                },
                |run| {
                    order.borrow_mut().push(('b', run));
                    Ok(run.index)
                },
            )
            .unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs.iter().map(|p| p.a_first).collect::<Vec<_>>(), [true, false, true]);
        let sides: String = order.borrow().iter().map(|(side, _)| *side).collect();
        assert_eq!(
            sides,
            "ab" /* warmup */
                .to_owned()
                + "ab"
                + "ba"
                + "ab"
        );
    }
}
