//! `openai-bench`: what the OpenAI-compatible endpoints add to the engines,
//! in one run. Starts `hearth serve` with a configuration's `[tts]` and
//! `[stt]` sections and loads the same two engines a second time in this
//! process the way the server runs them (in a worker process, or in process
//! when the section says `isolation = "in-process"`), then times, in
//! alternating order within every run:
//!
//! - the TTS engine alone speaking a text (time to its first chunk, and to
//!   its end), and `POST /v1/audio/speech` of the same text in each format
//!   (time to the first byte of the body, and to its end);
//! - the STT engine alone transcribing a WAV clip, and `POST
//!   /v1/audio/transcriptions` of the same file (multipart, `whisper-1`).
//!
//! Ratios are of medians over the timed runs; encoding cost per audio
//! second is the median over runs of (format total − pcm total) / audio
//! seconds. Prints a table and one JSON object.
//!
//! ```sh
//! bench/openai.sh           # builds (release) and runs this
//! ```

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Parser;
use hearth::{
    config::{Config, Isolation, ServiceConfig, ServiceName},
    engine::{Engine, InProcess, SttHandle, TtsHandle},
    plugin::Libraries,
    plugin_log::LogHost,
    worker::{Limits, Worker},
};
use hearth_bench::{median, ms, Bench, Common, Retry};
use hearth_plugin_api::{
    client::{Audio, Calls, Samples},
    Flow, SpeechOptions,
};
use serde_json::json;

/// Times /v1/audio/speech and /v1/audio/transcriptions against their
/// engines called directly, alternately, in one run.
#[derive(Debug, Parser)]
#[command(name = "openai-bench")]
struct Cli {
    /// The configuration whose [tts] and [stt] sections are served and
    /// loaded (its other services should be off: see bench/openai.sh).
    #[arg(short = 'c', long, default_value = "plugins.toml", value_name = "FILE")]
    config: PathBuf,
    /// The `hearth` binary: the server, and the workers of the engines
    /// loaded here.
    #[arg(long, value_name = "FILE")]
    hearth: PathBuf,
    /// The clip to transcribe (a WAV file).
    #[arg(long, default_value = "samples/jfk.wav", value_name = "FILE")]
    wav: PathBuf,
    /// What to speak.
    #[arg(long, default_value = TEXT)]
    text: String,
    /// Speech formats to time against the engine (pcm is always timed: the
    /// encoding costs are relative to it).
    #[arg(long, value_delimiter = ',', default_value = "pcm,wav,mp3,opus,flac")]
    formats: Vec<String>,
    #[command(flatten)]
    common: Common,
}

/// Three sentences, about 9 s of speech (the text of bench/isolation.sh).
const TEXT: &str = "The sea was calm that morning, and the boats went out early. \
    By noon the wind had turned, and the sky grew dark over the harbour. \
    Everyone was back before the first drops of rain.";

fn main() {
    let cli = hearth_bench::parse::<Cli>(&[
        ("runs", "11"),
        ("warmup", "1"),
        ("timeout", "60s"),
        ("time_limit", "20m"),
    ]);
    // The engines' workers run the hearth binary given, as the server's do.
    let hearth = std::path::absolute(&cli.hearth).unwrap_or_else(|_| cli.hearth.clone());
    std::env::set_var("HEARTH_WORKER", hearth);
    hearth_bench::exit_on_error("openai-bench", run(&cli));
}

/// `hearth serve` of our own; killed when dropped and by the watchdog.
struct Server {
    child: Arc<Mutex<Child>>,
    pid: u32,
    base: String,
}

impl Server {
    fn start(cli: &Cli, bench: &Bench) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(&cli.hearth)
            .args(["serve", "-c"])
            .arg(&cli.config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("HEARTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", cli.hearth.display()))?;
        let pid = child.id();
        let child = Arc::new(Mutex::new(child));
        let killer = Arc::clone(&child);
        bench.on_abort(move || kill(&killer));
        Ok(Self {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
        })
    }
}

fn kill(child: &Mutex<Child>) {
    let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
    // SIGTERM first: the server stops its workers and drains.
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signals our own child, which is not reaped yet (we hold
        // it and wait below), so the pid is still its.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    for _ in Retry::within(Duration::from_secs(10), Duration::from_millis(50)) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Server {
    fn drop(&mut self) {
        kill(&self.child);
    }
}

/// An engine loaded and warmed as `hearth serve` runs it.
fn load_engine(bench: &Bench, section: &ServiceConfig, base: &Path) -> Result<Arc<Engine>, String> {
    let host = LogHost(section.name.as_str());
    let engine = match section.isolation {
        Isolation::InProcess => {
            let plugin = hearth::open::in_process(&Libraries::default(), section).map_err(|e| e.to_string())?;
            Arc::new(InProcess::engine(&plugin)?)
        }
        Isolation::Process => {
            let (worker, meta) = Worker::spawn(&section.plugin_path, section.name.as_str(), Limits::default())
                .map_err(|e| e.to_string())?;
            worker.new_engine()?;
            Arc::new(Engine::new(meta, Arc::new(worker) as Arc<dyn Calls>))
        }
    };
    bench
        .step(format!("{} load", section.name), || {
            engine.load(&section.config_json, base, &host)
        })
        .value?;
    bench
        .step(format!("{} warmup", section.name), || engine.warmup(&host))
        .value?;
    Ok(engine)
}

/// One timed synthesis or request: time to the first audio, to the end,
/// and how much audio.
#[derive(Debug, Clone, Copy, Default)]
struct Spoken {
    first_ms: f64,
    total_ms: f64,
    /// Audio seconds (engine: samples; pcm: bytes); 0 when not known.
    audio_s: f64,
    bytes: usize,
    /// CPU time the server process (not its workers) spent meanwhile.
    server_cpu_ms: f64,
}

/// CPU time of process `pid`'s threads so far, in ms: the scheduler's
/// own count in ns (`/proc/PID/task/*/schedstat`), which, unlike
/// `/proc/PID/stat`'s clock ticks, resolves a few ms. A thread that ends
/// between two readings takes its time with it; the server's threads live
/// longer than a request (tokio keeps idle blocking threads for 10 s), and
/// a difference that comes out negative (one did end) is dropped.
fn cpu_ms(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return f64::NAN;
    };
    let mut ns = 0.0;
    for task in tasks.flatten() {
        if let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) {
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    ns / 1e6
}

/// CPU ms of `pid` since `before` (a [`cpu_ms`] reading); NaN when a
/// thread ended meanwhile and took its time with it.
fn cpu_since(pid: u32, before: f64) -> f64 {
    let spent = cpu_ms(pid) - before;
    if spent >= 0.0 {
        spent
    } else {
        f64::NAN
    }
}

async fn speech(client: &reqwest::Client, base: &str, text: &str, format: &str) -> Result<Spoken, String> {
    let body = json!({"model": "tts-1", "voice": "alloy", "input": text, "response_format": format});
    let started = Instant::now();
    let mut response = client
        .post(format!("{base}/v1/audio/speech"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("speech ({format}): {}", chain(&e)))?;
    if !response.status().is_success() {
        let status = response.status();
        return Err(format!(
            "speech ({format}): {status}: {}",
            response.text().await.unwrap_or_default()
        ));
    }
    let rate: Option<f64> = response
        .headers()
        .get("x-sample-rate")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut first = None;
    let mut bytes = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("speech ({format}): {}", chain(&e)))?
    {
        if !chunk.is_empty() {
            first.get_or_insert_with(|| started.elapsed());
        }
        bytes += chunk.len();
    }
    let total = started.elapsed();
    Ok(Spoken {
        first_ms: first.map_or(f64::NAN, ms),
        total_ms: ms(total),
        audio_s: match (format, rate) {
            ("pcm", Some(rate)) => bytes as f64 / 2.0 / rate,
            _ => 0.0,
        },
        bytes,
        server_cpu_ms: f64::NAN,
    })
}

/// An error with its causes (reqwest's own message names only the URL).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The multipart body OpenAI's SDKs send for a transcription.
fn multipart(file_name: &str, wav: &[u8]) -> (String, Vec<u8>) {
    let boundary = "hearth-openai-bench-7MA4YWxkTrZu0gW";
    let mut body = Vec::with_capacity(wav.len() + 512);
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n").as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(wav);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn run(cli: &Cli) -> Result<(), String> {
    let bench = Bench::start("openai-bench", &cli.common);
    let config = Config::load(&cli.config).map_err(|e| e.to_string())?;
    let section = |name| {
        config
            .services
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("{}: no [{name}] section", cli.config.display()))
    };
    let (tts_section, stt_section) = (section(ServiceName::Tts)?, section(ServiceName::Stt)?);
    let mut formats = vec!["pcm".to_owned()];
    formats.extend(cli.formats.iter().filter(|f| *f != "pcm").cloned());
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    // The server first: it loads its engines while we load ours.
    let server = Server::start(cli, &bench)?;
    let tts = TtsHandle::of(load_engine(&bench, &tts_section, &config.base_dir)?).ok_or("[tts] is not a TTS engine")?;
    let stt =
        SttHandle::of(load_engine(&bench, &stt_section, &config.base_dir)?).ok_or("[stt] is not an STT engine")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // A new connection for every request (on loopback it costs ~0.1 ms):
    // the server does not set TCP_NODELAY, so on a kept-alive connection
    // the small last write of a streamed answer can wait for the client's
    // delayed ACK (~40 ms), which would blur the encoders' cost; a fresh
    // connection is still in quick-ACK mode. (Kept-alive connections also
    // close after [host] header_read_timeout when idle.)
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(cli.common.timeout)
        .build()
        .map_err(|e| e.to_string())?;
    {
        let _guard = bench.guard_for("waiting for the server's tts and stt", Duration::from_secs(180));
        let ready_url = format!("{}/api/ready", server.base);
        let mut retry = Retry::within(Duration::from_secs(180), Duration::from_millis(100));
        loop {
            let ready = runtime.block_on(async {
                let body: serde_json::Value = client.get(&ready_url).send().await.ok()?.json().await.ok()?;
                let services = &body["services"];
                Some(services["tts"]["ready"] == true && services["stt"]["ready"] == true)
            });
            if ready == Some(true) {
                break;
            }
            if matches!(server.child.lock().map(|mut c| c.try_wait()), Ok(Ok(Some(_)))) {
                return Err("hearth serve exited before its tts and stt were ready".into());
            }
            match retry.next() {
                Some(pause) => std::thread::sleep(pause),
                None => return Err("the server's tts and stt were not ready within 180 s".into()),
            }
        }
    }

    // TTS: the engine alone and each format, in an order that rotates
    // every run.
    let options = SpeechOptions { speed: 1.0 };
    let sides: Vec<String> = std::iter::once("engine".to_owned())
        .chain(formats.iter().cloned())
        .collect();
    let mut spoken: Vec<Vec<Spoken>> = vec![Vec::new(); sides.len()];
    for run in bench.schedule() {
        for k in 0..sides.len() {
            let i = (k + run.index) % sides.len();
            let what = format!("speech, {run}, {}", sides[i]);
            let result = bench.step(what, || -> Result<Spoken, String> {
                if i == 0 {
                    let started = Instant::now();
                    let mut first = None;
                    let (mut samples, mut rate) = (0usize, 1u32);
                    tts.synthesize_with(&cli.text, &options, |speech| {
                        first.get_or_insert_with(|| started.elapsed());
                        samples += speech.samples.len();
                        rate = speech.sample_rate.max(1);
                        Flow::Continue
                    })?;
                    Ok(Spoken {
                        first_ms: first.map_or(f64::NAN, ms),
                        total_ms: ms(started.elapsed()),
                        audio_s: samples as f64 / f64::from(rate),
                        bytes: samples * 2,
                        server_cpu_ms: f64::NAN,
                    })
                } else {
                    let cpu = cpu_ms(server.pid);
                    let mut spoken = runtime.block_on(speech(&client, &server.base, &cli.text, &sides[i]))?;
                    spoken.server_cpu_ms = cpu_since(server.pid, cpu);
                    Ok(spoken)
                }
            });
            let value = result.value?;
            if !run.warmup {
                spoken[i].push(value);
            }
        }
    }

    // STT: the engine alone and the endpoint, alternating.
    let wav_bytes = std::fs::read(&cli.wav).map_err(|e| format!("{}: {e}", cli.wav.display()))?;
    let wav = hearth::audio::read_wav(&cli.wav).map_err(|e| e.to_string())?;
    // What the endpoint hands the engine: 16-bit samples (the clip is
    // 16 kHz mono 16-bit, so nothing is resampled).
    let clip = Audio {
        sample_rate: wav.sample_rate,
        channels: wav.channels,
        samples: Samples::I16(
            wav.samples
                .iter()
                .map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
                .collect(),
        ),
    };
    let file_name = cli
        .wav
        .file_name()
        .map_or("clip.wav".into(), |n| n.to_string_lossy().into_owned());
    let (content_type, form) = multipart(&file_name, &wav_bytes);
    let texts = Mutex::new((String::new(), String::new()));
    let stt_cpu = Mutex::new(Vec::new());
    let pairs = bench.alternate(
        "transcription",
        |_| -> Result<(), String> {
            let text = stt.transcribe(&clip)?.text;
            texts.lock().unwrap_or_else(|e| e.into_inner()).0 = text;
            Ok(())
        },
        |run| -> Result<(), String> {
            let cpu = cpu_ms(server.pid);
            let text = runtime.block_on(async {
                let response = client
                    .post(format!("{}/v1/audio/transcriptions", server.base))
                    .header("content-type", &content_type)
                    .body(form.clone())
                    .send()
                    .await
                    .map_err(|e| format!("transcription: {}", chain(&e)))?;
                let status = response.status();
                let body: serde_json::Value = response
                    .json()
                    .await
                    .map_err(|e| format!("transcription: {}", chain(&e)))?;
                if !status.is_success() {
                    return Err(format!("transcription: {status}: {body}"));
                }
                Ok::<_, String>(body["text"].as_str().unwrap_or_default().to_owned())
            })?;
            texts.lock().unwrap_or_else(|e| e.into_inner()).1 = text;
            if !run.warmup {
                stt_cpu
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(cpu_since(server.pid, cpu));
            }
            Ok(())
        },
    )?;
    drop(server);
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    // ---- the table -------------------------------------------------------------------------
    let med = |i: usize, f: fn(&Spoken) -> f64| median(spoken[i].iter().map(f));
    let engine_first = med(0, |s| s.first_ms);
    let engine_total = med(0, |s| s.total_ms);
    let runs = spoken[0].len();
    let pcm = 1; // sides[1] is pcm
    let audio_s = median(spoken[pcm].iter().map(|s| s.audio_s));
    println!();
    println!(
        "speech: {:?} ({:.1} s of audio), {runs} runs, sides in rotating order",
        truncate(&cli.text, 48),
        audio_s
    );
    println!(
        "{:<28} {:>12} {:>10} {:>14} {:>12} {:>15}",
        "", "1st byte ms", "total ms", "1st / engine", "total / pcm", "server CPU ms"
    );
    println!(
        "{:<28} {:>12.1} {:>10.1} {:>14} {:>12} {:>15}",
        format!("{} alone (1st chunk)", tts.plugin().name),
        engine_first,
        engine_total,
        "1.000",
        "-",
        "-"
    );
    let pcm_total = med(pcm, |s| s.total_ms);
    // The server process's CPU per request: the HTTP side and the encoder
    // (the synthesis runs in its worker).
    let pcm_cpu = median(spoken[pcm].iter().map(|s| s.server_cpu_ms));
    let mut speech_report = serde_json::Map::new();
    speech_report.insert(
        "engine".into(),
        json!({"first_chunk_ms": spoken[0].iter().map(|s| s.first_ms).collect::<Vec<_>>(),
               "total_ms": spoken[0].iter().map(|s| s.total_ms).collect::<Vec<_>>(),
               "median_first_chunk_ms": engine_first, "median_total_ms": engine_total}),
    );
    for (i, format) in sides.iter().enumerate().skip(1) {
        let first = med(i, |s| s.first_ms);
        let total = med(i, |s| s.total_ms);
        // Encoding cost: per run, this format's total minus pcm's (the
        // same run, so the same machine noise), per second of audio.
        let cost = median(
            spoken[i]
                .iter()
                .zip(&spoken[pcm])
                .map(|(s, p)| (s.total_ms - p.total_ms) / p.audio_s.max(1e-9)),
        );
        let cpu = median(spoken[i].iter().map(|s| s.server_cpu_ms));
        let cpu_cost = (cpu - pcm_cpu) / audio_s;
        println!(
            "{:<28} {:>12.1} {:>10.1} {:>14.3} {:>12.3} {:>15.1}",
            format!("/v1/audio/speech {format}"),
            first,
            total,
            first / engine_first,
            total / pcm_total,
            cpu
        );
        speech_report.insert(
            format.clone(),
            json!({"first_byte_ms": spoken[i].iter().map(|s| s.first_ms).collect::<Vec<_>>(),
                   "total_ms": spoken[i].iter().map(|s| s.total_ms).collect::<Vec<_>>(),
                   "bytes": spoken[i].last().map_or(0, |s| s.bytes),
                   "median_first_byte_ms": first, "median_total_ms": total,
                   "ratio_first_byte_to_engine_first_chunk": first / engine_first,
                   "ratio_total_to_engine_total": total / engine_total,
                   "ratio_total_to_pcm": total / pcm_total,
                   "extra_ms_per_audio_second_vs_pcm": cost,
                   "server_cpu_ms": spoken[i].iter().map(|s| s.server_cpu_ms).collect::<Vec<_>>(),
                   "median_server_cpu_ms": cpu,
                   "extra_server_cpu_ms_per_audio_second_vs_pcm": cpu_cost}),
        );
    }
    println!();
    for format in sides.iter().skip(1).filter(|f| *f != "pcm") {
        let report = &speech_report[format.as_str()];
        let cost = report["extra_ms_per_audio_second_vs_pcm"].as_f64().unwrap_or(f64::NAN);
        let cpu_cost = report["extra_server_cpu_ms_per_audio_second_vs_pcm"]
            .as_f64()
            .unwrap_or(f64::NAN);
        println!(
            "{format:<5} encoding cost per audio second: {cost:>6.2} ms wall (total − pcm total, median over runs), \
             {cpu_cost:>6.2} ms server CPU (median − pcm median)"
        );
    }

    let engine_stt: Vec<f64> = pairs.iter().map(|p| p.a.ms()).collect();
    let http_stt: Vec<f64> = pairs.iter().map(|p| p.b.ms()).collect();
    let (e, h) = (median(engine_stt.iter().copied()), median(http_stt.iter().copied()));
    let (engine_text, http_text) = texts.into_inner().unwrap_or_else(|e| e.into_inner());
    println!();
    println!(
        "transcription of {} ({:.1} s), {} runs, alternating",
        cli.wav.display(),
        clip.seconds(),
        pairs.len()
    );
    println!("{:<44} {:>10.1} ms", format!("{} alone", stt.plugin().name), e);
    println!("{:<44} {:>10.1} ms", "/v1/audio/transcriptions (multipart upload)", h);
    let stt_cpu = stt_cpu.into_inner().unwrap_or_else(|e| e.into_inner());
    let stt_server_cpu = median(stt_cpu.iter().copied());
    println!(
        "{:<44} {:>10.1} ms (median; upload, decoding, the engine's call)",
        "  of which server process CPU", stt_server_cpu
    );
    println!(
        "ratio /v1/audio/transcriptions / engine alone: {:.3}  (goal <= 1.05)",
        h / e
    );
    let tts_ratio = med(pcm, |s| s.first_ms) / engine_first;
    println!("ratio /v1/audio/speech (pcm) first byte / engine first chunk: {tts_ratio:.3}  (goal <= 1.05)");
    println!(
        "load average before: {}  after: {}",
        load_before.trim(),
        load_after.trim()
    );
    if engine_text.trim() != http_text.trim() {
        println!("note: the texts differ: engine {engine_text:?}, endpoint {http_text:?}");
    }

    let value = json!({
        "text": cli.text,
        "audio_seconds": audio_s,
        "runs": runs,
        "tts_isolation": tts_section.isolation.as_str(),
        "stt_isolation": stt_section.isolation.as_str(),
        "speech": speech_report,
        "transcription": {"engine_ms": engine_stt, "endpoint_ms": http_stt,
                          "median_engine_ms": e, "median_endpoint_ms": h, "ratio": h / e,
                          "server_cpu_ms": stt_cpu, "median_server_cpu_ms": stt_server_cpu,
                          "engine_text": engine_text, "endpoint_text": http_text},
        "loadavg_before": load_before.trim(),
        "loadavg_after": load_after.trim(),
    });
    bench.save(&value)?;
    Ok(())
}

fn truncate(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(n).collect::<String>())
    }
}
