//! `isolation-bench`: what running engines in worker processes costs, in
//! one run. The same real engines are loaded twice — in this process and in
//! a worker, as `hearth serve` does for `isolation = "in-process"` and
//! `"process"` — and timed alternately: TTS synthesis of a paragraph, STT
//! transcription of a clip, chat time to first token (both chat engines
//! talk to one llama-server started here). Then `hearth serve` with three
//! no-op scripted plugins is timed from exec to `/readyz` 200 in both modes,
//! and the memory of idle workers is read from `/proc`.
//!
//! ```sh
//! bench/isolation.sh        # builds (release) and runs this
//! ```

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use hearth::{
    config::{Config, ServiceConfig, ServiceName},
    engine::{ChatHandle, Engine, InProcess, SttHandle, TtsHandle},
    plugin::Libraries,
    plugin_log::LogHost,
    worker::{Limits, Worker},
};
use hearth_bench::{http_status, median, ms, ratio_of_medians, Bench, Common, LlamaServer, Pair};
use hearth_plugin_api::{
    client::{Audio, Calls, Message, Samples},
    Flow,
};
use serde_json::json;

/// Times the real engines in process and in a worker, alternately, and
/// `hearth serve`'s exec → READY in both modes.
#[derive(Debug, Parser)]
#[command(name = "isolation-bench")]
struct Cli {
    /// The configuration whose [tts] and [stt] sections are used.
    #[arg(short = 'c', long, default_value = "plugins.toml", value_name = "FILE")]
    config: PathBuf,
    /// The clip to transcribe.
    #[arg(long, default_value = "samples/jfk.wav", value_name = "FILE")]
    wav: PathBuf,
    /// llama-server, for the chat engines.
    #[arg(long, value_name = "FILE")]
    server: PathBuf,
    /// Its GGUF model.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// The `hearth` binary (for the startup runs and as the worker).
    #[arg(long, value_name = "FILE")]
    hearth: PathBuf,
    /// Where the scripted plugins are (`plugin_dir` of the startup runs).
    #[arg(long, value_name = "DIR")]
    plugin_dir: PathBuf,
    /// Startup runs per mode.
    #[arg(long, default_value = "9")]
    startup_runs: usize,
    #[command(flatten)]
    common: Common,
}

/// Three sentences, about 9 s of speech.
const TEXT: &str = "The sea was calm that morning, and the boats went out early. \
    By noon the wind had turned, and the sky grew dark over the harbour. \
    Everyone was back before the first drops of rain.";

fn main() {
    let cli = hearth_bench::parse::<Cli>(&[("runs", "7"), ("warmup", "1")]);
    // Workers run the hearth binary given, not this one.
    let hearth = std::path::absolute(&cli.hearth).unwrap_or_else(|_| cli.hearth.clone());
    std::env::set_var("HEARTH_WORKER", hearth);
    hearth_bench::exit_on_error("isolation-bench", run(&cli));
}

/// The same engine twice: in this process and in a worker.
struct Twins {
    in_process: Arc<Engine>,
    in_worker: Arc<Engine>,
    worker_pid: u32,
}

fn load_twins(bench: &Bench, section: &ServiceConfig, settings: &str, base: &Path) -> Result<Twins, String> {
    let host = LogHost(section.name.as_str());
    let plugin = hearth::open::in_process(&Libraries::default(), section).map_err(|e| e.to_string())?;
    let in_process = Arc::new(InProcess::engine(&plugin)?);
    let (worker, meta) =
        Worker::spawn(&section.plugin_path, section.name.as_str(), Limits::default()).map_err(|e| e.to_string())?;
    worker.new_engine()?;
    let worker_pid = worker.pid();
    let in_worker = Arc::new(Engine::new(meta, Arc::new(worker) as Arc<dyn Calls>));
    for engine in [&in_process, &in_worker] {
        bench
            .step(format!("{} load", section.name), || engine.load(settings, base, &host))
            .value?;
        bench
            .step(format!("{} warmup", section.name), || engine.warmup(&host))
            .value?;
    }
    Ok(Twins {
        in_process,
        in_worker,
        worker_pid,
    })
}

fn summary(name: &str, pairs: &[Pair<f64, f64>]) -> serde_json::Value {
    let a: Vec<f64> = pairs.iter().map(|p| p.a.value).collect();
    let b: Vec<f64> = pairs.iter().map(|p| p.b.value).collect();
    let ratio = ratio_of_medians(b.iter().copied(), a.iter().copied());
    println!(
        "{name:<34} in-process {:>8.1} ms   worker {:>8.1} ms   ratio {ratio:.3}",
        median(a.iter().copied()),
        median(b.iter().copied())
    );
    json!({"in_process_ms": a, "worker_ms": b, "median_in_process_ms": median(a), "median_worker_ms": median(b), "ratio": ratio})
}

/// Resident memory of `pid`, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn run(cli: &Cli) -> Result<(), String> {
    let bench = Bench::start("isolation-bench", &cli.common);
    let config = Config::load(&cli.config).map_err(|e| e.to_string())?;
    let section = |name| {
        config
            .services
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("{}: no [{name}] section", cli.config.display()))
    };
    let mut report = serde_json::Map::new();

    // TTS.
    let tts_section = section(ServiceName::Tts)?;
    let tts = load_twins(&bench, &tts_section, &tts_section.config_json, &config.base_dir)?;
    let (a, b) = (
        TtsHandle::of(Arc::clone(&tts.in_process)).ok_or("not a TTS engine")?,
        TtsHandle::of(Arc::clone(&tts.in_worker)).ok_or("not a TTS engine")?,
    );
    let speak = |tts: &TtsHandle| -> Result<f64, String> {
        let started = Instant::now();
        tts.synthesize(TEXT, |_| Flow::Continue)?;
        Ok(ms(started.elapsed()))
    };
    let pairs = bench.alternate("tts", |_| speak(&a), |_| speak(&b))?;
    report.insert("tts_synthesis".into(), summary("TTS synthesis (3 sentences)", &pairs));
    let tts_worker_rss = rss_mib(tts.worker_pid);

    // STT.
    let stt_section = section(ServiceName::Stt)?;
    let stt = load_twins(&bench, &stt_section, &stt_section.config_json, &config.base_dir)?;
    let (a, b) = (
        SttHandle::of(Arc::clone(&stt.in_process)).ok_or("not an STT engine")?,
        SttHandle::of(Arc::clone(&stt.in_worker)).ok_or("not an STT engine")?,
    );
    let wav = hearth::audio::read_wav(&cli.wav).map_err(|e| e.to_string())?;
    let clip = Audio {
        sample_rate: wav.sample_rate,
        channels: wav.channels,
        samples: Samples::F32(wav.samples),
    };
    let hear = |stt: &SttHandle| -> Result<f64, String> {
        let started = Instant::now();
        stt.transcribe(&clip)?;
        Ok(ms(started.elapsed()))
    };
    let pairs = bench.alternate("stt", |_| hear(&a), |_| hear(&b))?;
    report.insert(
        "stt_transcription".into(),
        summary("STT transcription (JFK, 11 s)", &pairs),
    );
    let stt_worker_rss = rss_mib(stt.worker_pid);
    drop((tts, stt));

    // Chat: both engines talk to one server of our own.
    let server = LlamaServer::start(&cli.server, &cli.model, 1, &bench)?;
    let mut chat_section = section(ServiceName::Chat)?;
    let settings =
        json!({"api": "openai", "url": server.base(), "model": "smollm2", "max_tokens": 8, "temperature": 0.0})
            .to_string();
    chat_section.config_json = settings.clone();
    let chat = load_twins(&bench, &chat_section, &settings, &config.base_dir)?;
    let (a, b) = (
        ChatHandle::of(Arc::clone(&chat.in_process)).ok_or("not a chat engine")?,
        ChatHandle::of(Arc::clone(&chat.in_worker)).ok_or("not a chat engine")?,
    );
    let asked = std::cell::Cell::new(0);
    let first_token = |chat: &ChatHandle| -> Result<f64, String> {
        // A different opener each time, so no request reuses the server's
        // prompt cache more than another.
        asked.set(asked.get() + 1);
        let messages = [Message::user(format!("Request {}: name a colour.", asked.get()))];
        let started = Instant::now();
        let mut first = None;
        chat.chat(&messages, |_| {
            first.get_or_insert_with(|| started.elapsed());
            Flow::Continue
        })?;
        first.map(ms).ok_or_else(|| "no token".to_owned())
    };
    let pairs = bench.alternate("chat", |_| first_token(&a), |_| first_token(&b))?;
    report.insert("chat_first_token".into(), summary("chat time to first token", &pairs));
    drop(chat);
    drop(server);

    // Exec → READY of `hearth serve` with three no-op plugins.
    let startup = startup(cli, &bench)?;
    report.insert("startup".into(), startup);

    // An idle worker with a no-op engine.
    let scripted = ServiceConfig {
        plugin_path: cli.plugin_dir.join("libhearth_scripted_tts.so"),
        ..tts_section.clone()
    };
    let (worker, _) = Worker::spawn(&scripted.plugin_path, "tts", Limits::default()).map_err(|e| e.to_string())?;
    worker.new_engine()?;
    worker.load("{}", &config.base_dir, &LogHost("tts"))?;
    std::thread::sleep(Duration::from_millis(200));
    let idle = rss_mib(worker.pid());
    worker.shutdown();
    println!(
        "idle worker RSS: {:.1} MiB (no-op engine); {:.1} MiB with the Piper voice; {:.1} MiB with Whisper tiny.en",
        idle.unwrap_or(f64::NAN),
        tts_worker_rss.unwrap_or(f64::NAN),
        stt_worker_rss.unwrap_or(f64::NAN)
    );
    report.insert(
        "worker_rss_mib".into(),
        json!({"no_op": idle, "tts_piper": tts_worker_rss, "stt_whisper": stt_worker_rss}),
    );
    bench.emit(&serde_json::Value::Object(report))
}

/// Median exec → `/readyz` 200 of `hearth serve` in each mode, alternating.
fn startup(cli: &Cli, bench: &Bench) -> Result<serde_json::Value, String> {
    let dir = std::env::temp_dir().join(format!("hearth-isolation-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let plugin_dir = std::path::absolute(&cli.plugin_dir).map_err(|e| e.to_string())?;
    let write = |isolation: &str| -> Result<PathBuf, String> {
        let mut text = format!("[host]\nplugin_dir = {:?}\n", plugin_dir.display().to_string());
        for service in ["tts", "stt", "chat"] {
            text.push_str(&format!(
                "[{service}]\nplugin = \"scripted-{service}\"\nisolation = \"{isolation}\"\n[{service}.config]\ntranscript = \"x\"\n"
            ));
        }
        let path = dir.join(format!("{isolation}.toml"));
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        Ok(path)
    };
    let (process, in_process) = (write("process")?, write("in-process")?);
    let once = |config: &Path| -> Result<f64, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let started = Instant::now();
        let mut child = Command::new(&cli.hearth)
            .args(["serve", "-c"])
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("HEARTH_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = started + Duration::from_secs(10);
        let result = loop {
            if http_status(port, "/readyz") == Some(200) {
                break Ok(ms(started.elapsed()));
            }
            if Instant::now() > deadline {
                break Err("hearth serve did not get ready within 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let _ = child.kill();
        let _ = child.wait();
        result
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for run in 0..cli.startup_runs {
        let step = bench.step(format!("startup run {run}"), || -> Result<(f64, f64), String> {
            if run % 2 == 0 {
                let x = once(&in_process)?;
                Ok((x, once(&process)?))
            } else {
                let y = once(&process)?;
                Ok((once(&in_process)?, y))
            }
        });
        let (x, y) = step.value?;
        a.push(x);
        b.push(y);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{:<34} in-process {:>8.1} ms   worker {:>8.1} ms",
        "exec → READY (3 no-op plugins)",
        median(a.iter().copied()),
        median(b.iter().copied())
    );
    Ok(
        json!({"in_process_ms": a, "process_ms": b, "median_in_process_ms": median(a.iter().copied()), "median_process_ms": median(b.iter().copied())}),
    )
}
