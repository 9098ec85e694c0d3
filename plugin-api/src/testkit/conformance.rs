//! The conformance kit: the Warmable contract, checked against a plugin's
//! root module the way the host relies on it.
//!
//! `hearth plugin test PATH` runs it on a library opened by the host's real
//! loader; a plugin's own test can run it on `hearth_plugin_root_module()`:
//!
//! ```ignore
//! use hearth_plugin_api::{client::Module, testkit::conformance};
//! let module = Module::new(my_plugin::hearth_plugin_root_module());
//! let report = conformance::run(&module, &conformance::Options::new("{}"), &mut |_| {});
//! report.assert_passed();
//! ```
//!
//! Every check runs with a time limit. A check that does not return in time
//! fails, and the checks that would need the stuck engine are skipped: the
//! kit cannot stop a plugin's thread, so the process running it should exit
//! soon after (the command does).

use std::{
    fmt,
    path::PathBuf,
    sync::{mpsc, Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    abi::{EngineKind, Flow},
    client::{Calls, Library, Message},
    testkit::{silence, speech_clip, AudioCollector, RecordingHost, TokenCollector},
};

/// What to run the checks with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `config` table handed to the plugin, as JSON text.
    pub config_json: String,
    /// The directory relative paths in the config are resolved against.
    pub base_dir: PathBuf,
    /// The longest a load may take (the host's default is 120 s).
    pub load_timeout: Duration,
    /// The longest a warmup may take (the host's default is 60 s).
    pub warmup_timeout: Duration,
    /// The longest one operation or shutdown may take.
    pub operation_timeout: Duration,
    /// How fast `health` must answer.
    pub health_limit: Duration,
}

impl Options {
    /// The host's default limits, `config_json` as the config and the
    /// current directory as the base.
    pub fn new(config_json: impl Into<String>) -> Self {
        Self {
            config_json: config_json.into(),
            base_dir: std::env::current_dir().unwrap_or_default(),
            load_timeout: Duration::from_secs(120),
            warmup_timeout: Duration::from_secs(60),
            operation_timeout: Duration::from_secs(60),
            health_limit: Duration::from_millis(100),
        }
    }
}

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It holds.
    Pass,
    /// It does not; `detail` says why.
    Fail,
    /// Not run or not applicable; `detail` says why.
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, e.g. `health answers within 100 ms while idle`.
    pub check: String,
    /// How it went.
    pub outcome: Outcome,
    /// What was seen, or why it failed or was skipped.
    pub detail: String,
    /// How long it took, in ms.
    pub ms: u64,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        };
        write!(f, "{label}  {} ({} ms)", self.check, self.ms)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// All results, in the order they ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The plugin's name, kind and version.
    pub plugin: String,
    /// One entry per check.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Fail)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    /// Panics listing every failed check: for a plugin's own tests.
    pub fn assert_passed(&self) {
        if !self.passed() {
            let lines: Vec<_> = self.failures().map(ToString::to_string).collect();
            panic!("{} failed the conformance kit:\n{}", self.plugin, lines.join("\n"));
        }
    }
}

/// The text the TTS checks speak: two sentences, so two chunks or more (a
/// sentence may continue in further chunks whose text is empty).
pub const TWO_SENTENCES: &str = "Hello there. This is a test of the voice.";
/// The text the TTS stop check speaks: three sentences.
pub const THREE_SENTENCES: &str = "One sentence here. Another one follows. And a third one ends it.";
/// A key no plugin has, to see unknown keys refused.
pub const UNKNOWN_KEY: &str = "hearth_conformance_unknown_key";

/// A short chat every chat engine should answer.
pub fn standard_chat() -> Vec<Message> {
    vec![Message::user("Say hello in one short sentence.")]
}

enum Timed<T> {
    Done(T),
    TimedOut,
}

/// Runs `f` on its own thread and waits at most `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> (Timed<T>, Duration) {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let spawned = thread::Builder::new().name("conformance".into()).spawn(move || {
        let _ = tx.send(f());
    });
    if spawned.is_err() {
        return (Timed::TimedOut, started.elapsed());
    }
    match rx.recv_timeout(limit) {
        Ok(value) => (Timed::Done(value), started.elapsed()),
        // Timed out, or the thread panicked (the kit's own closures do not).
        Err(_) => (Timed::TimedOut, started.elapsed()),
    }
}

struct Kit<'a> {
    report: Report,
    on_check: &'a mut dyn FnMut(&Check),
    /// Set once an engine call hung: later checks are skipped.
    stuck: Option<String>,
}

impl Kit<'_> {
    fn record(&mut self, check: &str, outcome: Outcome, detail: impl Into<String>, took: Duration) {
        let check = Check {
            check: check.to_owned(),
            outcome,
            detail: detail.into(),
            ms: took.as_millis() as u64,
        };
        (self.on_check)(&check);
        self.report.checks.push(check);
    }

    fn verdict(&mut self, check: &str, result: Result<String, String>, took: Duration) -> bool {
        match result {
            Ok(detail) => {
                self.record(check, Outcome::Pass, detail, took);
                true
            }
            Err(detail) => {
                self.record(check, Outcome::Fail, detail, took);
                false
            }
        }
    }

    fn skip(&mut self, check: &str, why: impl Into<String>) {
        self.record(check, Outcome::Skip, why, Duration::ZERO);
    }

    /// Runs `f` within `limit` as check `check`; a hang fails it and marks
    /// the kit stuck.
    fn timed<T: Send + 'static>(
        &mut self,
        check: &str,
        limit: Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<(T, Duration)> {
        if let Some(why) = &self.stuck {
            let why = why.clone();
            self.skip(check, why);
            return None;
        }
        match within(limit, f) {
            (Timed::Done(value), took) => Some((value, took)),
            (Timed::TimedOut, took) => {
                let why = format!("did not return within {} ms", limit.as_millis());
                self.record(check, Outcome::Fail, why.clone(), took);
                self.stuck = Some(format!("an earlier call hung ({check})"));
                None
            }
        }
    }
}

/// Runs every check against `module` and returns the report; `on_check` sees
/// each result as soon as it is known.
pub fn run(module: &dyn Library, options: &Options, on_check: &mut dyn FnMut(&Check)) -> Report {
    let info = module.info();
    let mut kit = Kit {
        report: Report {
            plugin: format!("{} {} ({})", info.name, info.version, info.kind),
            checks: Vec::new(),
        },
        on_check,
        stuck: None,
    };
    let kind = module.kind();
    let known = [EngineKind::TTS, EngineKind::STT, EngineKind::CHAT, EngineKind::VAD].contains(&kind);
    let detail = format!("{} {}, a {} engine", info.name, info.version, info.kind);
    kit.verdict(
        "the plugin names itself and a known kind",
        if info.name.is_empty() {
            Err("the plugin's name is empty".into())
        } else if !known {
            Err(format!("{detail}, which this host cannot use"))
        } else {
            Ok(detail)
        },
        Duration::ZERO,
    );
    if !known {
        return kit.report;
    }
    check_config(&mut kit, module, options);

    let started = Instant::now();
    let first = match module.new_engine() {
        Ok(engine) => Arc::<dyn Calls>::from(engine),
        Err(e) => {
            kit.verdict("new_engine makes an engine", Err(e), started.elapsed());
            return kit.report;
        }
    };
    lifecycle(&mut kit, &first, options, "");
    if kit.stuck.is_none() {
        operations(&mut kit, kind, &first, options);
    }
    shutdown(&mut kit, &first, options, "");
    if kit.stuck.is_none() {
        second_instance(&mut kit, kind, module, options);
    }
    kit.report
}

fn check_config(kit: &mut Kit<'_>, module: &dyn Library, options: &Options) {
    let started = Instant::now();
    let result = module.check_config(&options.config_json);
    kit.verdict(
        "check_config accepts the given config",
        result.map(|()| String::new()),
        started.elapsed(),
    );

    let check = "check_config refuses an unknown key";
    let mut table = match serde_json::from_str::<serde_json::Value>(&options.config_json) {
        Ok(serde_json::Value::Object(table)) => table,
        _ if options.config_json.trim().is_empty() => Default::default(),
        _ => return kit.skip(check, "the given config is not a table"),
    };
    table.insert(UNKNOWN_KEY.into(), true.into());
    let started = Instant::now();
    match module.check_config(&serde_json::Value::Object(table).to_string()) {
        Err(e) if e.contains(UNKNOWN_KEY) => {
            // The list of known keys that usually follows is noise here.
            let said = e.split(", expected").next().unwrap_or(&e).to_owned();
            kit.verdict(check, Ok(said), started.elapsed());
        }
        Err(e) => {
            kit.verdict(
                check,
                Err(format!("refused, but the message does not name the key: {e}")),
                started.elapsed(),
            );
        }
        Ok(()) => kit.skip(
            check,
            "the plugin accepts unknown keys; declare #[serde(deny_unknown_fields)] on its config so typos are reported",
        ),
    };
}

/// describe, load (progress, time), warmup, health while idle.
fn lifecycle(kit: &mut Kit<'_>, engine: &Arc<dyn Calls>, options: &Options, label: &str) {
    let e = Arc::clone(engine);
    if let Some((description, took)) = kit.timed(
        &format!("describe answers before load{label}"),
        options.operation_timeout,
        move || e.describe(),
    ) {
        kit.verdict(
            &format!("describe answers before load{label}"),
            description.and_then(|d| {
                if d.name.is_empty() {
                    Err("the engine's name is empty".into())
                } else {
                    Ok(format!("{} {}", d.name, d.engine_version))
                }
            }),
            took,
        );
    }

    let host = Arc::new(RecordingHost::new());
    let (e, h, config, base) = (
        Arc::clone(engine),
        Arc::clone(&host),
        options.config_json.clone(),
        options.base_dir.clone(),
    );
    let check = format!("load finishes within {} s{label}", options.load_timeout.as_secs());
    let Some((loaded, took)) = kit.timed(&check, options.load_timeout, move || e.load(&config, &base, &*h)) else {
        host.cancel();
        return;
    };
    if !kit.verdict(&check, loaded.map(|()| String::new()), took) {
        kit.stuck = Some("the engine did not load".into());
        return;
    }
    let progress = host.progress();
    let check = format!("load progress stays within 0–1 and never goes backwards{label}");
    if progress.is_empty() {
        kit.skip(
            &check,
            "no progress reported (a load longer than a second should report some)",
        );
    } else {
        let outside = progress.iter().find(|(f, _)| !(0.0..=1.0).contains(f));
        let backwards = progress.windows(2).find(|w| w[1].0 < w[0].0);
        let result = match (outside, backwards) {
            (Some((f, m)), _) => Err(format!("reported {f} ({m})")),
            (_, Some(w)) => Err(format!(
                "went from {} ({}) back to {} ({})",
                w[0].0, w[0].1, w[1].0, w[1].1
            )),
            _ => Ok(format!("{} reports", progress.len())),
        };
        kit.verdict(&check, result, Duration::ZERO);
    }

    let e = Arc::clone(engine);
    let check = format!("warmup says what it warmed{label}");
    let host = Arc::new(RecordingHost::new());
    if let Some((warmed, took)) = kit.timed(&check, options.warmup_timeout, move || e.warmup(&*host)) {
        let result = warmed.and_then(|w| {
            if w.warmed.trim().is_empty() {
                Err("warmup returned an empty description".into())
            } else {
                Ok(w.warmed)
            }
        });
        if !kit.verdict(&check, result, took) {
            kit.stuck = Some("the engine did not warm up".into());
            return;
        }
    }
    health(
        kit,
        engine,
        options,
        &format!(
            "health answers within {} ms while idle{label}",
            options.health_limit.as_millis()
        ),
    );
}

fn health(kit: &mut Kit<'_>, engine: &Arc<dyn Calls>, options: &Options, check: &str) {
    let e = Arc::clone(engine);
    if let Some((result, took)) = kit.timed(check, options.operation_timeout, move || e.health()) {
        let result = match result {
            Err(e) => Err(format!("health says: {e}")),
            Ok(()) if took > options.health_limit => Err(format!("answered after {} ms", took.as_millis())),
            Ok(()) => Ok(String::new()),
        };
        kit.verdict(check, result, took);
    }
}

/// The kind's operation on standard input, stop, health during an
/// operation, two operations at once.
fn operations(kit: &mut Kit<'_>, kind: EngineKind, engine: &Arc<dyn Calls>, options: &Options) {
    let limit = options.operation_timeout;
    match kind {
        EngineKind::TTS => {
            let e = Arc::clone(engine);
            let check = "synthesize speaks two sentences, each in its own chunks of audio";
            if let Some((result, took)) = kit.timed(check, limit, move || speak(&*e, TWO_SENTENCES, None)) {
                kit.verdict(check, result.and_then(|c| two_sentences(&c)), took);
            }
            let e = Arc::clone(engine);
            let check = "a sink that answers stop after the first chunk gets no more";
            if let Some((result, took)) = kit.timed(check, limit, move || speak(&*e, THREE_SENTENCES, Some(1))) {
                kit.verdict(
                    check,
                    result.and_then(|c| match c.chunks.len() {
                        1 => Ok(String::new()),
                        n => Err(format!("{n} chunks arrived ({} after stop)", c.after_stop)),
                    }),
                    took,
                );
            }
        }
        EngineKind::STT => {
            let e = Arc::clone(engine);
            let check = "transcribe returns words for a spoken sentence";
            if let Some((result, took)) = kit.timed(check, limit, move || e.transcribe(&speech_clip())) {
                kit.verdict(
                    check,
                    result.and_then(|t| {
                        if t.text.chars().any(char::is_alphanumeric) {
                            Ok(format!("{:?}", t.text.trim()))
                        } else {
                            Err(format!("no words: {:?}", t.text))
                        }
                    }),
                    took,
                );
            }
            let e = Arc::clone(engine);
            let check = "transcribe returns empty text for silence";
            if let Some((result, took)) = kit.timed(check, limit, move || e.transcribe(&silence(16_000, 2.0))) {
                kit.verdict(
                    check,
                    result.and_then(|t| {
                        if t.text.trim().is_empty() {
                            Ok(String::new())
                        } else {
                            Err(format!("heard {:?} in silence", t.text))
                        }
                    }),
                    took,
                );
            }
        }
        EngineKind::VAD => {
            let e = Arc::clone(engine);
            let check = "vad_push finds speech in a spoken sentence between silences, start then end";
            if let Some((result, took)) = kit.timed(check, limit, move || detect(&*e, 1, true)) {
                kit.verdict(check, result.and_then(|events| starts_then_ends(&events)), took);
            }
            let e = Arc::clone(engine);
            let check = "vad_push finds no speech in silence";
            if let Some((result, took)) = kit.timed(check, limit, move || detect(&*e, 2, false)) {
                kit.verdict(
                    check,
                    result.and_then(|events| match events.len() {
                        0 => Ok(String::new()),
                        n => Err(format!("{n} events in silence: {events:?}")),
                    }),
                    took,
                );
            }
        }
        _ => {
            let e = Arc::clone(engine);
            let check = "chat streams a reply to a short message";
            if let Some((result, took)) = kit.timed(check, limit, move || talk(&*e, None)) {
                kit.verdict(
                    check,
                    result.and_then(|c| {
                        if c.text().trim().is_empty() {
                            Err(format!("no text in {} pieces", c.pieces.len()))
                        } else {
                            Ok(format!("{} pieces: {:?}", c.pieces.len(), c.text().trim()))
                        }
                    }),
                    took,
                );
            }
            let e = Arc::clone(engine);
            let check = "a sink that answers stop gets no more pieces (within one)";
            if let Some((result, took)) = kit.timed(check, limit, move || talk(&*e, Some(1))) {
                kit.verdict(
                    check,
                    result.and_then(|c| match c.after_stop {
                        0 | 1 => Ok(format!("{} after stop", c.after_stop)),
                        n => Err(format!("{n} pieces arrived after stop")),
                    }),
                    took,
                );
            }
        }
    }
    health_during_operation(kit, kind, engine, options);
    two_at_once(kit, kind, engine, options);
}

fn speak(engine: &dyn Calls, text: &str, stop_after: Option<usize>) -> Result<AudioCollector, String> {
    let mut collector = stop_after.map_or_else(AudioCollector::new, AudioCollector::stop_after);
    engine.synthesize(text, &mut |chunk| collector.take(chunk))?;
    Ok(collector)
}

/// Checks the chunks of [`TWO_SENTENCES`]: each has audio, the first
/// begins the first sentence, and the texts that are not empty (a chunk
/// that continues a sentence has none) are the two sentences in order.
fn two_sentences(collector: &AudioCollector) -> Result<String, String> {
    let chunks = &collector.chunks;
    if let Some(bad) = chunks.iter().find(|c| c.sample_rate == 0 || c.samples.is_empty()) {
        return Err(format!(
            "a chunk with rate {} and {} samples",
            bad.sample_rate,
            bad.samples.len()
        ));
    }
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.trim()).collect();
    let named: Vec<&str> = texts.iter().copied().filter(|t| !t.is_empty()).collect();
    let wanted: Vec<&str> = crate::text::split_sentences(TWO_SENTENCES);
    if texts.first().is_some_and(|t| !t.is_empty()) && named == wanted {
        Ok(format!(
            "{:.2} s at {} Hz in {} chunks",
            collector.seconds(),
            chunks[0].sample_rate,
            chunks.len()
        ))
    } else {
        Err(format!(
            "chunks for two sentences with the texts {texts:?}; want {wanted:?}, each begun by its first chunk"
        ))
    }
}

fn talk(engine: &dyn Calls, stop_after: Option<usize>) -> Result<TokenCollector, String> {
    let mut collector = stop_after.map_or_else(TokenCollector::new, TokenCollector::stop_after);
    engine.chat(&standard_chat(), &mut |piece| collector.take(piece))?;
    Ok(collector)
}

/// A gate the operation's sink waits at until the health check is done, so
/// the two surely overlap.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, bool)>, // (operation started, health done)
    changed: Condvar,
}

impl Gate {
    fn started(&self, limit: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = true;
        self.changed.notify_all();
        let deadline = Instant::now() + limit;
        while !state.1 && Instant::now() < deadline {
            state = self
                .changed
                .wait_timeout(state, deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn wait_started(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !state.0 && Instant::now() < deadline {
            state = self
                .changed
                .wait_timeout(state, deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.0
    }

    fn release(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.changed.notify_all();
    }
}

fn health_during_operation(kit: &mut Kit<'_>, kind: EngineKind, engine: &Arc<dyn Calls>, options: &Options) {
    let check = format!(
        "health answers within {} ms while an operation runs on another thread",
        options.health_limit.as_millis()
    );
    if let Some(why) = kit.stuck.clone() {
        return kit.skip(&check, why);
    }
    let gate = Arc::new(Gate::default());
    let limit = options.operation_timeout;
    let (e, g) = (Arc::clone(engine), Arc::clone(&gate));
    // The operation holds its first chunk or piece until health answered;
    // STT has no sink, so a long input keeps it busy instead.
    let operation = thread::spawn(move || -> Result<(), String> {
        match kind {
            EngineKind::TTS => e.synthesize(THREE_SENTENCES, &mut |_| {
                g.started(limit);
                Flow::Continue
            }),
            EngineKind::STT => {
                g.started(Duration::ZERO);
                let clip = speech_clip();
                let mut long = clip.clone();
                if let crate::client::Samples::I16(samples) = &mut long.samples {
                    let once = samples.clone();
                    for _ in 0..3 {
                        samples.extend_from_slice(&once);
                    }
                }
                e.transcribe(&long).map(drop)
            }
            EngineKind::VAD => {
                g.started(Duration::ZERO);
                (0..4).try_for_each(|i| detect(&*e, 100 + i, true).map(drop))
            }
            _ => e
                .chat(&standard_chat(), &mut |_| {
                    g.started(limit);
                    Flow::Continue
                })
                .map(drop),
        }
    });
    if !gate.wait_started(limit) {
        gate.release();
        kit.record(&check, Outcome::Fail, "the operation produced nothing in time", limit);
        kit.stuck = Some("an operation hung".into());
        return;
    }
    if kind == EngineKind::STT || kind == EngineKind::VAD {
        thread::sleep(Duration::from_millis(20));
    }
    health(kit, engine, options, &check);
    gate.release();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(operation.join());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => kit.record(
            "the operation beside the health check succeeds",
            Outcome::Fail,
            e,
            Duration::ZERO,
        ),
        _ => {
            kit.record(
                "the operation beside the health check ends",
                Outcome::Fail,
                "it hung",
                limit,
            );
            kit.stuck = Some("an operation hung".into());
        }
    }
}

fn two_at_once(kit: &mut Kit<'_>, kind: EngineKind, engine: &Arc<dyn Calls>, options: &Options) {
    let check = "two operations at once both succeed and agree";
    let run = move |e: Arc<dyn Calls>| -> Result<String, String> {
        match kind {
            EngineKind::TTS => speak(&*e, TWO_SENTENCES, None)
                .and_then(|c| two_sentences(&c))
                .map(|_| "2 sentences".to_owned()),
            EngineKind::STT => e.transcribe(&speech_clip()).map(|t| t.text),
            EngineKind::VAD => {
                // Each side its own stream: the two must not disturb
                // each other.
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(200);
                let stream = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                detect(&*e, stream, true).map(|events| format!("{events:?}"))
            }
            _ => talk(&*e, None).and_then(|c| {
                if c.text().trim().is_empty() {
                    Err("an empty reply".into())
                } else {
                    Ok("a reply".to_owned())
                }
            }),
        }
    };
    let (a, b) = (Arc::clone(engine), Arc::clone(engine));
    let outcome = kit.timed(check, options.operation_timeout * 2, move || {
        let first = thread::spawn(move || run(a));
        let second = run(b);
        let first = first
            .join()
            .unwrap_or_else(|_| Err("the operation's thread panicked".into()));
        (first, second)
    });
    if let Some(((first, second), took)) = outcome {
        let result = match (first, second) {
            (Ok(a), Ok(b)) if kind == EngineKind::STT && a != b => {
                Err(format!("different transcripts: {a:?} and {b:?}"))
            }
            (Ok(a), Ok(b)) if kind == EngineKind::VAD && a != b => Err(format!(
                "two streams of the same audio gave different events: {a} and {b}"
            )),
            (Ok(a), Ok(_)) => Ok(if kind == EngineKind::STT || kind == EngineKind::VAD {
                format!("{:?} twice", a.trim())
            } else {
                format!("{a} each")
            }),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        kit.verdict(check, result, took);
    }
}

fn shutdown(kit: &mut Kit<'_>, engine: &Arc<dyn Calls>, options: &Options, label: &str) {
    let check = format!("shutdown returns{label}");
    let e = Arc::clone(engine);
    if let Some(((), took)) = kit.timed(&check, options.operation_timeout, move || e.shutdown()) {
        kit.verdict(&check, Ok(String::new()), took);
    }
}

/// What a retry does: a fresh engine from the same library, after the first
/// one shut down, loads and works.
fn second_instance(kit: &mut Kit<'_>, kind: EngineKind, module: &dyn Library, options: &Options) {
    let label = " (second instance)";
    let engine = match module.new_engine() {
        Ok(engine) => Arc::<dyn Calls>::from(engine),
        Err(e) => {
            kit.verdict(&format!("new_engine makes an engine{label}"), Err(e), Duration::ZERO);
            return;
        }
    };
    lifecycle(kit, &engine, options, label);
    let check = format!("the operation works{label}");
    let e = Arc::clone(&engine);
    if let Some((result, took)) = kit.timed(&check, options.operation_timeout, move || match kind {
        EngineKind::TTS => speak(&*e, TWO_SENTENCES, None).and_then(|c| two_sentences(&c)),
        EngineKind::STT => e.transcribe(&speech_clip()).map(|t| format!("{:?}", t.text.trim())),
        EngineKind::VAD => detect(&*e, 300, true).and_then(|events| starts_then_ends(&events)),
        _ => talk(&*e, None).map(|c| format!("{:?}", c.text().trim())),
    }) {
        kit.verdict(&check, result, took);
    }
    shutdown(kit, &engine, options, label);
}

/// Streams the standard spoken sentence (`speech`) or as long a silence,
/// with a second of silence before and after, in 20 ms pieces on stream
/// `stream`, then closes the stream.
fn detect(engine: &dyn Calls, stream: u64, speech: bool) -> Result<Vec<crate::VadEvent>, String> {
    let clip = match speech_clip().samples {
        crate::client::Samples::I16(samples) => samples,
        crate::client::Samples::F32(_) => unreachable!("the standard clip is PCM16"),
    };
    let quiet = vec![0i16; 16_000];
    let middle = if speech { clip } else { vec![0; clip.len()] };
    let audio = [&quiet[..], &middle[..], &quiet[..]].concat();
    let mut events = Vec::new();
    for piece in audio.chunks(320) {
        let piece = crate::client::Audio {
            sample_rate: 16_000,
            channels: 1,
            samples: crate::client::Samples::I16(piece.to_vec()),
        };
        match engine.vad_push(stream, &piece) {
            Ok(found) => events.extend(found),
            Err(e) => {
                engine.vad_close(stream);
                return Err(e);
            }
        }
    }
    engine.vad_close(stream);
    Ok(events)
}

/// Events that start with a start, alternate, end with an end, and lie
/// within the audio [`detect`] streamed.
fn starts_then_ends(events: &[crate::VadEvent]) -> Result<String, String> {
    use crate::VadEventKind;
    if events.is_empty() {
        return Err("no speech found".into());
    }
    for (i, event) in events.iter().enumerate() {
        let want = if i % 2 == 0 {
            VadEventKind::SPEECH_START
        } else {
            VadEventKind::SPEECH_END
        };
        if event.kind != want {
            return Err(format!("event {i} is {:?}, expected {want:?}: {events:?}", event.kind));
        }
    }
    if events.len() % 2 == 1 {
        return Err(format!("speech never ended: {events:?}"));
    }
    if events.windows(2).any(|w| w[1].at_ms < w[0].at_ms) {
        return Err(format!("events out of order: {events:?}"));
    }
    Ok(format!(
        "{} stretch(es) of speech, from {} ms",
        events.len() / 2,
        events[0].at_ms
    ))
}
