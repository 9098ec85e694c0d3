//! **Test fixture, not an engine.** A scripted engine whose behaviour comes
//! entirely from its `config` table: load and warmup delays, sub-progress
//! steps, failures, panics, hangs, slow or failing health, and canned
//! output (a tone per sentence for TTS, a fixed transcript for STT, a fixed
//! reply streamed word by word for chat).
//!
//! It exists to exercise the host's failure paths and the loading screen
//! with real cdylibs loaded from disk. It is exported three times, once per
//! kind, by the `scripted-tts`, `scripted-stt` and `scripted-chat` plugin
//! crates. Never use it to claim that speech works.
//!
//! ```toml
//! [tts]
//! plugin = "scripted-tts"
//! [tts.config]
//! load_ms = 1000        # time load takes
//! load_steps = 4        # sub-progress reports during load
//! warmup_ms = 200       # time warmup takes
//! fail_load = "disk on fire"   # load fails with this message
//! fail_loads = 1        # the first N loads of this `name` under one host fail, later ones work
//! panic_load = "boom"   # load panics with this message
//! hang_load = true      # load never returns and ignores cancellation
//! fail_warmup = "..."   # likewise for warmup
//! panic_warmup = "..."
//! hang_warmup = true
//! unhealthy = "..."     # health reports this
//! health_ms = 0         # health takes this long
//! model = "scripted-1"  # the model name reported
//! reply = "Hello there. How can I help?"  # chat reply
//! token_ms = 20         # delay between chat tokens
//! transcript = "hello"  # STT result for audio that is not silent (silence gives "")
//! sample_rate = 16000   # TTS output rate
//! speed = false         # TTS declares the speed capability and honours it
//!                       # (chat always honours max_tokens)
//! shutdown_file = "/tmp/x"  # each shutdown appends a line `shutdown <name>` here
//! crash = "abort"       # kill the process natively (no panic, no error value):
//!                       # "abort" (SIGABRT), "segv" (invalid write, SIGSEGV),
//!                       # "exit" (exit code 3), "stack_overflow" (SIGSEGV or
//!                       # SIGABRT), "oom" (allocates and touches memory without
//!                       # bound: aborts once an address-space limit is hit),
//!                       # "hang" (sleeps forever, ignoring cancellation)
//! crash_in = "load"     # where `crash` happens: "load" (the default; after the
//!                       # progress steps), "warmup", "health", "operation"
//!                       # (synthesize, transcribe or chat; TTS and chat first
//!                       # stream one chunk or token) or "shutdown"
//! crash_after = 0       # calls at `crash_in` that pass first, counted per engine
//!                       # instance: only call N+1 crashes
//! ```
//!
//! Crashes before any plugin code runs: when the environment variable
//! `HEARTH_SCRIPTED_CONSTRUCTOR_CRASH` holds one of the `crash` values as
//! the library is loaded, its constructor (an `.init_array` entry, see
//! [`install_constructor_crash!`]) crashes that way inside `dlopen`.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex, OnceLock,
    },
    thread::sleep,
    time::Duration,
};

use hearth_plugin_api::{
    AudioOut, Capabilities, ChatEngine, ChatMessage, ChatOptions, ChatOutcome, Context, Description, Flow, PcmInput,
    PcmSamples, PluginError, PluginResult, Segment, SpeechOptions, SttEngine, TokenOut, Transcript, TtsEngine,
    Warmable,
};
use serde::Deserialize;

/// The script.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Script {
    /// A label; also the key for `fail_loads`.
    pub name: Option<String>,
    /// Load time in ms.
    pub load_ms: u64,
    /// Sub-progress reports during load.
    pub load_steps: u32,
    /// Warmup time in ms.
    pub warmup_ms: u64,
    /// Load fails with this message.
    pub fail_load: Option<String>,
    /// The first N loads (per `name`, per process) fail.
    pub fail_loads: u32,
    /// Load panics with this message.
    pub panic_load: Option<String>,
    /// Load never returns.
    pub hang_load: bool,
    /// Warmup fails with this message.
    pub fail_warmup: Option<String>,
    /// Warmup panics with this message.
    pub panic_warmup: Option<String>,
    /// Warmup never returns.
    pub hang_warmup: bool,
    /// Health reports this problem.
    pub unhealthy: Option<String>,
    /// Health takes this long, in ms.
    pub health_ms: u64,
    /// Model name to report.
    pub model: Option<String>,
    /// The chat reply.
    pub reply: Option<String>,
    /// Delay between chat tokens, in ms.
    pub token_ms: u64,
    /// The STT result.
    pub transcript: Option<String>,
    /// TTS output rate.
    pub sample_rate: Option<u32>,
    /// TTS declares `Capabilities::SPEED` and honours it.
    pub speed: bool,
    /// Each `shutdown` appends a line to this file (for tests of when the
    /// host shuts engines down).
    pub shutdown_file: Option<std::path::PathBuf>,
    /// Kill the process this way at `crash_in`.
    pub crash: Option<Crash>,
    /// Where `crash` happens.
    pub crash_in: CrashPoint,
    /// Calls at `crash_in` that pass before one crashes (per instance).
    pub crash_after: u32,
}

/// A way for native code to kill its process: the values of `crash` and of
/// `HEARTH_SCRIPTED_CONSTRUCTOR_CRASH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crash {
    /// `std::process::abort()`: SIGABRT.
    Abort,
    /// A write to an unmapped address: SIGSEGV.
    Segv,
    /// `std::process::exit(3)`.
    Exit,
    /// Unbounded recursion into the guard page: SIGSEGV, or SIGABRT after
    /// Rust's "has overflowed its stack" message.
    StackOverflow,
    /// Allocates and touches memory without bound: SIGABRT when an
    /// allocation fails (under an address-space limit), else the kernel's
    /// OOM killer.
    Oom,
    /// Sleeps forever, ignoring cancellation.
    Hang,
}

impl Crash {
    /// Every crash, for tests.
    pub const ALL: [Crash; 6] = [
        Crash::Abort,
        Crash::Segv,
        Crash::Exit,
        Crash::StackOverflow,
        Crash::Oom,
        Crash::Hang,
    ];

    /// The name used in the config and the environment variable.
    pub fn name(self) -> &'static str {
        match self {
            Crash::Abort => "abort",
            Crash::Segv => "segv",
            Crash::Exit => "exit",
            Crash::StackOverflow => "stack_overflow",
            Crash::Oom => "oom",
            Crash::Hang => "hang",
        }
    }

    /// The crash called `name`, if any.
    pub fn from_name(name: &str) -> Option<Crash> {
        Crash::ALL.into_iter().find(|crash| crash.name() == name)
    }

    /// Kills the process now (or, for `Hang`, never returns); `place` is
    /// named in a line on stderr first.
    pub fn now(self, place: &str) -> ! {
        eprintln!("hearth-scripted: crash = \"{}\" in {place}", self.name());
        match self {
            Crash::Abort => std::process::abort(),
            Crash::Segv => {
                // `black_box` hides the address from the optimizer; the
                // write is volatile, so it is emitted as written.
                let address = std::hint::black_box(std::ptr::without_provenance_mut::<u64>(16));
                // SAFETY: none: this is deliberately undefined behaviour.
                // Address 16 is in the never-mapped first page, so the write
                // raises SIGSEGV, and killing the process natively is the
                // whole point of this fixture.
                unsafe { std::ptr::write_volatile(address, 1) };
                // Only reached if page 0 is mapped (vm.mmap_min_addr = 0
                // and something mapped it): still die.
                std::process::abort()
            }
            Crash::Exit => std::process::exit(3),
            Crash::StackOverflow => {
                overflow_stack(0);
                unreachable!("unbounded recursion returned")
            }
            Crash::Oom => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // A nonzero fill writes every byte, so every page is
                    // really committed; `black_box` keeps the allocation.
                    hoard.push(std::hint::black_box(vec![0xa5u8; 64 << 20]));
                }
            }
            Crash::Hang => hang(place),
        }
    }
}

/// Recurses until the stack runs out. Each frame keeps 1 KiB the optimizer
/// must assume is read after the recursive call returns, so this can be
/// neither a loop nor a tail call.
#[inline(never)]
#[allow(unconditional_recursion)]
fn overflow_stack(depth: usize) -> usize {
    let mut frame = [0u8; 1024];
    frame[depth % frame.len()] = depth as u8;
    std::hint::black_box(&mut frame);
    overflow_stack(depth.wrapping_add(1)).wrapping_add(usize::from(frame[depth % frame.len()]))
}

/// Where `crash` happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    /// In `load`, after the progress steps.
    #[default]
    Load,
    /// In `warmup`.
    Warmup,
    /// In `health`.
    Health,
    /// In `synthesize` (after the first chunk), `transcribe` or `chat`
    /// (after the first token).
    Operation,
    /// In `shutdown`.
    Shutdown,
}

impl CrashPoint {
    fn name(self) -> &'static str {
        match self {
            CrashPoint::Load => "load",
            CrashPoint::Warmup => "warmup",
            CrashPoint::Health => "health",
            CrashPoint::Operation => "operation",
            CrashPoint::Shutdown => "shutdown",
        }
    }
}

/// The environment variable read by [`constructor_crash`].
pub const CONSTRUCTOR_CRASH_VAR: &str = "HEARTH_SCRIPTED_CONSTRUCTOR_CRASH";

/// The library constructor: crashes as [`CONSTRUCTOR_CRASH_VAR`] says, if
/// it is set. Placed in `.init_array` by [`install_constructor_crash!`], so
/// it runs inside `dlopen`, before the host can call any plugin code.
pub extern "C" fn constructor_crash() {
    let Some(value) = std::env::var_os(CONSTRUCTOR_CRASH_VAR) else {
        return;
    };
    let value = value.to_string_lossy();
    match Crash::from_name(&value) {
        Some(crash) => crash.now("the library constructor"),
        None if value.is_empty() => {}
        None => eprintln!("hearth-scripted: ignoring {CONSTRUCTOR_CRASH_VAR}={value:?}: not a crash name"),
    }
}

/// Puts [`constructor_crash`] in the `.init_array` of the crate it is
/// invoked in. Each `scripted-*` plugin invokes it once: a static in this
/// rlib would only reach a cdylib if the linker kept its object file, a
/// static in the cdylib's own crate always does.
#[macro_export]
macro_rules! install_constructor_crash {
    () => {
        #[cfg(target_os = "linux")]
        #[used]
        #[unsafe(link_section = ".init_array")]
        static HEARTH_SCRIPTED_CONSTRUCTOR_CRASH: extern "C" fn() = $crate::constructor_crash;
    };
}

/// Counts one more load of `name` under this host and returns the count.
///
/// The count must outlive engine instances and, when the host runs each
/// engine in a worker process of its own, those processes too: it lives in
/// a file named after the host's pid (`HEARTH_HOST_PID`, which the host
/// gives its workers; this process's pid when in-process), under a lock.
fn count_load(name: &str) -> u32 {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let host = std::env::var("HEARTH_HOST_PID").unwrap_or_else(|_| std::process::id().to_string());
    let file = std::env::temp_dir().join(format!("hearth-scripted-{host}-{name}.loads"));
    let seen = std::fs::read_to_string(&file)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    let _ = std::fs::write(&file, seen.to_string());
    seen
}

/// The scripted engine.
#[derive(Default)]
pub struct Scripted {
    script: OnceLock<Script>,
    /// The script of the last load, even a failed one (for `shutdown`).
    attempted: OnceLock<Script>,
    /// Calls so far at the script's `crash_in`.
    crash_calls: AtomicU32,
}

impl Scripted {
    fn script(&self) -> PluginResult<&Script> {
        self.script.get().ok_or_else(|| PluginError::from("not loaded"))
    }

    /// Counts a call at `point` and crashes if the script says this one
    /// does.
    fn crash_point(&self, script: &Script, point: CrashPoint) {
        let Some(crash) = script.crash else { return };
        if script.crash_in != point {
            return;
        }
        if self.crash_calls.fetch_add(1, Ordering::SeqCst) == script.crash_after {
            crash.now(point.name());
        }
    }
}

fn hang(ctx_label: &str) -> ! {
    // Deliberately ignores cancellation: this is the plugin the host must
    // abandon.
    loop {
        sleep(Duration::from_secs(3600));
        let _ = ctx_label;
    }
}

impl Warmable for Scripted {
    type Config = Script;

    fn describe(&self) -> Description {
        Description {
            name: "scripted".into(),
            engine_version: "test fixture".into(),
            model: self.script.get().and_then(|s| s.model.clone()),
        }
    }

    fn load(&self, script: Script, ctx: &Context<'_>) -> PluginResult<()> {
        let _ = self.attempted.set(script.clone());
        let steps = script.load_steps.max(1);
        for step in 1..=steps {
            sleep(Duration::from_millis(script.load_ms / u64::from(steps)));
            ctx.check_cancelled()?;
            ctx.progress(step as f32 / steps as f32, &format!("step {step} of {steps}"));
        }
        self.crash_point(&script, CrashPoint::Load);
        if let Some(message) = &script.panic_load {
            panic!("{message}");
        }
        if script.hang_load {
            hang("load");
        }
        if let Some(message) = &script.fail_load {
            return Err(message.as_str().into());
        }
        if script.fail_loads > 0 {
            let seen = count_load(script.name.as_deref().unwrap_or_default());
            if seen <= script.fail_loads {
                return Err(format!("scripted failure {} of {}", seen, script.fail_loads).into());
            }
        }
        ctx.info("scripted engine loaded");
        self.script.set(script).map_err(|_| PluginError::from("loaded twice"))
    }

    fn warmup(&self, _ctx: &Context<'_>) -> PluginResult<String> {
        let script = self.script()?;
        sleep(Duration::from_millis(script.warmup_ms));
        self.crash_point(script, CrashPoint::Warmup);
        if let Some(message) = &script.panic_warmup {
            panic!("{message}");
        }
        if script.hang_warmup {
            hang("warmup");
        }
        if let Some(message) = &script.fail_warmup {
            return Err(message.as_str().into());
        }
        Ok(format!("slept {} ms", script.warmup_ms))
    }

    fn health(&self) -> PluginResult<()> {
        let script = self.script()?;
        sleep(Duration::from_millis(script.health_ms));
        self.crash_point(script, CrashPoint::Health);
        match &script.unhealthy {
            Some(problem) => Err(problem.as_str().into()),
            None => Ok(()),
        }
    }

    fn shutdown(&self) {
        // `attempted`, not `script`: a failed load is shut down too.
        let Some(script) = self.attempted.get() else { return };
        self.crash_point(script, CrashPoint::Shutdown);
        if let Some(path) = &script.shutdown_file {
            use std::io::Write;
            let name = script.name.clone().unwrap_or_default();
            if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(file, "shutdown {name}");
            }
        }
    }
}

impl TtsEngine for Scripted {
    fn synthesize(&self, text: &str, out: &mut AudioOut<'_>) -> PluginResult<()> {
        self.synthesize_with(text, &SpeechOptions::default(), out)
    }

    fn capabilities(&self) -> Capabilities {
        if self.script().is_ok_and(|s| s.speed) {
            Capabilities::SPEED
        } else {
            Capabilities::NONE
        }
    }

    fn synthesize_with(&self, text: &str, options: &SpeechOptions, out: &mut AudioOut<'_>) -> PluginResult<()> {
        let script = self.script()?;
        let rate = script.sample_rate.unwrap_or(16_000);
        let speed = if script.speed { f64::from(options.speed) } else { 1.0 };
        // One chunk per sentence, cut by the rule every engine shares.
        let mut sent = false;
        for sentence in hearth_plugin_api::text::split_sentences(text) {
            // 60 ms of a 440 Hz tone per character (divided by the speed):
            // audible, and its length follows the text, which is all a
            // fixture needs.
            let per_char = (f64::from(rate) * 0.060 / speed) as usize;
            let n = per_char * sentence.chars().count();
            let samples = (0..n)
                .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16)
                .collect();
            let flow = out.send(rate, samples, sentence);
            if !sent {
                sent = true;
                self.crash_point(script, CrashPoint::Operation);
            }
            if flow == Flow::Stop {
                break;
            }
        }
        if !sent {
            self.crash_point(script, CrashPoint::Operation);
        }
        Ok(())
    }
}

impl SttEngine for Scripted {
    fn transcribe(&self, audio: PcmInput<'_>) -> PluginResult<Transcript> {
        let script = self.script()?;
        self.crash_point(script, CrashPoint::Operation);
        let (frames, loud) = match audio.samples {
            PcmSamples::I16(s) => (s.len(), s.iter().any(|&v| v.unsigned_abs() > 327)),
            PcmSamples::F32(s) => (s.len(), s.iter().any(|&v| v.abs() > 0.01)),
        };
        let frames = frames / usize::from(audio.channels.max(1));
        let end_ms = frames as u64 * 1000 / u64::from(audio.sample_rate.max(1));
        // Silence (nothing above 1 % of full scale) is heard as nothing, as
        // a real recognizer would.
        let text = if loud {
            script.transcript.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let segments = if text.is_empty() {
            Vec::new()
        } else {
            vec![Segment {
                start_ms: 0,
                end_ms,
                text: text.clone().into(),
            }]
        };
        Ok(Transcript {
            text: text.into(),
            segments: segments.into(),
            language: "en".into(),
        })
    }
}

impl ChatEngine for Scripted {
    fn chat(&self, messages: &[ChatMessage], out: &mut TokenOut<'_>) -> PluginResult<ChatOutcome> {
        self.chat_with(messages, &ChatOptions::default(), out)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::MAX_TOKENS
    }

    fn chat_with(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
        out: &mut TokenOut<'_>,
    ) -> PluginResult<ChatOutcome> {
        let script = self.script()?;
        let limit = options.max_tokens.into_option().unwrap_or(u32::MAX);
        let reply = match &script.reply {
            Some(reply) => reply.clone(),
            None => format!(
                "You said: {}",
                messages.last().map(|m| m.content.as_str()).unwrap_or_default()
            ),
        };
        let mut tokens = 0;
        for (i, word) in reply.split(' ').enumerate() {
            if tokens >= limit {
                return Ok(ChatOutcome {
                    tokens,
                    finish_reason: "length".into(),
                });
            }
            sleep(Duration::from_millis(script.token_ms));
            let piece = if i == 0 { word.to_owned() } else { format!(" {word}") };
            tokens += 1;
            let flow = out.send(&piece);
            if i == 0 {
                self.crash_point(script, CrashPoint::Operation);
            }
            if flow == Flow::Stop {
                return Ok(ChatOutcome {
                    tokens,
                    finish_reason: "cancelled".into(),
                });
            }
        }
        Ok(ChatOutcome {
            tokens,
            finish_reason: "stop".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Read,
        os::unix::process::ExitStatusExt,
        path::Path,
        process::{Command, ExitStatus, Stdio},
        thread::sleep,
        time::{Duration, Instant},
    };

    use hearth_plugin_api::{
        abi_stable::{sabi_trait::TD_Opaque, std_types::RStr},
        testkit,
        text::split_sentences,
        AudioChunk, AudioOut, AudioSink, AudioSink_TO, ChatEngine, Flow, TokenOut, TokenSink, TokenSink_TO, TtsEngine,
        Warmable,
    };

    use super::{Crash, CrashPoint, Script, Scripted, CONSTRUCTOR_CRASH_VAR};

    // This test binary gets the constructor too, so `constructor_*` tests
    // can load it with the variable set.
    crate::install_constructor_crash!();

    /// Selects what [`child`] does when this binary is re-run by a test.
    const CHILD_VAR: &str = "HEARTH_SCRIPTED_TEST_CHILD";
    const SIGABRT: i32 = 6;
    const SIGSEGV: i32 = 11;

    #[test]
    fn splits_sentences_by_the_shared_rule() {
        assert_eq!(
            split_sentences("Hi. It is 3.5 degrees, e.g. warm? Fine"),
            vec!["Hi.", "It is 3.5 degrees, e.g. warm?", "Fine"]
        );
        assert!(split_sentences("  ").is_empty());
    }

    #[test]
    fn crash_keys_parse() {
        let engine = Scripted::default();
        let config = r#"{"crash": "stack_overflow", "crash_in": "health", "crash_after": 2}"#;
        testkit::load(&engine, config, Path::new(".")).0.unwrap();
        let script = engine.script().unwrap();
        assert_eq!(script.crash, Some(Crash::StackOverflow));
        assert_eq!(script.crash_in, CrashPoint::Health);
        assert_eq!(script.crash_after, 2);
        let script = Script::default();
        assert_eq!(
            (script.crash, script.crash_in, script.crash_after),
            (None, CrashPoint::Load, 0)
        );
        for crash in Crash::ALL {
            assert_eq!(Crash::from_name(crash.name()), Some(crash));
        }
        for bad in [
            r#"{"crash": "meltdown"}"#,
            r#"{"crash_in": "describe"}"#,
            r#"{"crash_after": -1}"#,
        ] {
            assert!(
                testkit::load(&Scripted::default(), bad, Path::new(".")).0.is_err(),
                "{bad}"
            );
        }
    }

    /// Prints each chunk before taking it, so the parent sees what was
    /// streamed before the crash.
    struct PrintingAudio;

    impl AudioSink for PrintingAudio {
        fn chunk(&mut self, chunk: AudioChunk) -> Flow {
            println!("chunk {}", chunk.text);
            Flow::Continue
        }
    }

    struct PrintingTokens;

    impl TokenSink for PrintingTokens {
        fn token(&mut self, text: RStr<'_>) -> Flow {
            println!("token {}", text.as_str().trim());
            Flow::Continue
        }
    }

    fn loaded(config: &str) -> Scripted {
        let engine = Scripted::default();
        let (result, _host) = testkit::load(&engine, config, Path::new("."));
        result.unwrap();
        println!("loaded");
        engine
    }

    /// Not a test of its own: what a re-run of this binary does, chosen by
    /// `CHILD_VAR`. Does nothing in a normal run.
    #[test]
    fn child() {
        let Ok(scenario) = std::env::var(CHILD_VAR) else { return };
        if let Some(name) = scenario.strip_prefix("crash:") {
            Crash::from_name(name).expect("crash name").now("a test child");
        }
        match scenario.as_str() {
            "load" => {
                let _ = loaded(r#"{"crash": "exit", "load_steps": 2}"#);
            }
            "warmup" => {
                let engine = loaded(r#"{"crash": "segv", "crash_in": "warmup"}"#);
                let host = testkit::RecordingHost::new();
                let _ = engine.warmup(&host.context(Path::new(".")));
            }
            "health" => {
                // Two instances, so the count is seen to be per instance.
                let config = r#"{"crash": "abort", "crash_in": "health", "crash_after": 2}"#;
                let (a, b) = (loaded(config), loaded(config));
                for round in 1..=3 {
                    for (name, engine) in [("a", &a), ("b", &b)] {
                        engine.health().unwrap();
                        println!("health {name} {round}");
                    }
                }
            }
            "tts" => {
                let engine = loaded(r#"{"crash": "abort", "crash_in": "operation"}"#);
                let mut sink = PrintingAudio;
                let _ = engine.synthesize(
                    "One. Two. Three.",
                    &mut AudioOut::new(AudioSink_TO::from_ptr(&mut sink, TD_Opaque)),
                );
            }
            "stt" => {
                let engine = loaded(r#"{"crash": "exit", "crash_in": "operation", "transcript": "hi"}"#);
                let _ = testkit::transcribe(&engine, &testkit::tone(16_000, 440.0, 0.5));
            }
            "chat" => {
                let engine = loaded(r#"{"crash": "segv", "crash_in": "operation", "reply": "alpha beta gamma"}"#);
                let mut sink = PrintingTokens;
                let _ = engine.chat(&[], &mut TokenOut::new(TokenSink_TO::from_ptr(&mut sink, TD_Opaque)));
            }
            "nothing" => {}
            other => panic!("unknown child scenario {other}"),
        }
        println!("survived");
    }

    /// How a child ended, and its output.
    struct Ended {
        status: ExitStatus,
        stdout: String,
        stderr: String,
    }

    impl Ended {
        fn signal(&self) -> Option<i32> {
            self.status.signal()
        }
    }

    /// Re-runs this binary's `child` test with `env`, the address space
    /// limited to `limit_mib` if given. Kills it after `timeout_ms`; `None`
    /// when that happened.
    fn run_child(env: &[(&str, &str)], limit_mib: Option<u64>, timeout_ms: u64) -> Option<Ended> {
        let exe = std::env::current_exe().unwrap();
        let args = ["--exact", "tests::child", "--nocapture", "--test-threads=1"];
        let mut command = match limit_mib {
            Some(mib) => {
                // `ulimit -v` is RLIMIT_AS in KiB; exec keeps the limit and
                // the exit status.
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -v {} && exec \"$0\" \"$@\"", mib * 1024))
                    .arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        command
            .args(args)
            .env_remove(CHILD_VAR)
            .env_remove(CONSTRUCTOR_CRASH_VAR)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                break None;
            }
            sleep(Duration::from_millis(10));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let ended = status.map(|status| Ended { status, stdout, stderr });
        if let Some(e) = &ended {
            eprintln!(
                "child {env:?}: {:?}\n--- stdout\n{}--- stderr\n{}",
                e.status, e.stdout, e.stderr
            );
        }
        ended
    }

    fn crash_child(scenario: &str) -> Ended {
        run_child(&[(CHILD_VAR, scenario)], None, 10_000).expect("child did not die within 10 s")
    }

    #[test]
    fn abort_raises_sigabrt() {
        let ended = crash_child("crash:abort");
        assert_eq!(ended.signal(), Some(SIGABRT));
        assert!(ended.stderr.contains(r#"crash = "abort" in a test child"#));
    }

    #[test]
    fn segv_raises_sigsegv() {
        assert_eq!(crash_child("crash:segv").signal(), Some(SIGSEGV));
    }

    #[test]
    fn exit_exits_with_code_3() {
        let ended = crash_child("crash:exit");
        assert_eq!((ended.status.code(), ended.signal()), (Some(3), None));
    }

    #[test]
    fn stack_overflow_kills_by_signal() {
        let signal = crash_child("crash:stack_overflow").signal();
        assert!(matches!(signal, Some(SIGABRT | SIGSEGV)), "{signal:?}");
    }

    #[test]
    fn oom_aborts_under_an_address_space_limit() {
        let ended = run_child(&[(CHILD_VAR, "crash:oom")], Some(512), 10_000).expect("child did not die within 10 s");
        assert_eq!(ended.signal(), Some(SIGABRT));
        assert!(ended.stderr.contains("memory allocation of 67108864 bytes failed"));
    }

    #[test]
    fn hang_never_returns() {
        assert!(run_child(&[(CHILD_VAR, "crash:hang")], None, 500).is_none());
    }

    #[test]
    fn crash_in_load_after_the_progress_steps() {
        let ended = crash_child("load");
        assert_eq!(ended.status.code(), Some(3));
        assert!(!ended.stdout.contains("loaded"));
        assert!(ended.stderr.contains(r#"crash = "exit" in load"#));
    }

    #[test]
    fn crash_in_warmup() {
        let ended = crash_child("warmup");
        assert_eq!(ended.signal(), Some(SIGSEGV));
        assert!(ended.stdout.contains("loaded"));
    }

    #[test]
    fn crash_in_health_after_two_calls_per_instance() {
        let ended = crash_child("health");
        assert_eq!(ended.signal(), Some(SIGABRT));
        let passed: Vec<&str> = ended.stdout.lines().filter(|l| l.starts_with("health ")).collect();
        assert_eq!(passed, ["health a 1", "health b 1", "health a 2", "health b 2"]);
    }

    #[test]
    fn tts_crashes_after_the_first_chunk() {
        let ended = crash_child("tts");
        assert_eq!(ended.signal(), Some(SIGABRT));
        let chunks: Vec<&str> = ended.stdout.lines().filter(|l| l.starts_with("chunk ")).collect();
        assert_eq!(chunks, ["chunk One."]);
    }

    #[test]
    fn stt_crashes_in_transcribe() {
        let ended = crash_child("stt");
        assert_eq!(ended.status.code(), Some(3));
        assert!(ended.stderr.contains("in operation"));
    }

    #[test]
    fn chat_crashes_after_the_first_token() {
        let ended = crash_child("chat");
        assert_eq!(ended.signal(), Some(SIGSEGV));
        let tokens: Vec<&str> = ended.stdout.lines().filter(|l| l.starts_with("token ")).collect();
        assert_eq!(tokens, ["token alpha"]);
    }

    #[test]
    fn no_crash_configured_survives() {
        let ended = crash_child("nothing");
        assert!(ended.status.success());
        assert!(ended.stdout.contains("survived"));
    }

    #[test]
    fn constructor_crashes_before_main() {
        let ended = run_child(&[(CONSTRUCTOR_CRASH_VAR, "abort")], None, 10_000).unwrap();
        assert_eq!(ended.signal(), Some(SIGABRT));
        // libtest never started.
        assert!(!ended.stdout.contains("running"));
        assert!(ended.stderr.contains("in the library constructor"));
        let ended = run_child(&[(CONSTRUCTOR_CRASH_VAR, "exit")], None, 10_000).unwrap();
        assert_eq!(ended.status.code(), Some(3));
    }

    #[test]
    fn constructor_ignores_unknown_and_empty_values() {
        let ended = run_child(&[(CONSTRUCTOR_CRASH_VAR, "meltdown")], None, 10_000).unwrap();
        assert!(ended.status.success());
        assert!(ended.stderr.contains("not a crash name"));
        assert!(run_child(&[(CONSTRUCTOR_CRASH_VAR, "")], None, 10_000)
            .unwrap()
            .status
            .success());
    }
}
