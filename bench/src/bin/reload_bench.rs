//! `reload-bench`: what a live swap costs the clients of a running Hearth.
//! Starts `hearth serve` (with the scripted fixture engines, so the swap's
//! load time is fixed), then in alternating phases of equal length —
//! steady, and swapping the TTS engine by reload after reload — polls
//! `/api/ready` as fast as one client can and runs conversation turns on a
//! second client, recording every `/api/ready` latency and status and every
//! turn's time to first audio. Reports medians and p99 per phase, the p99
//! ratio (target ≤ 1.5) and the failures (target: none).
//!
//! ```sh
//! bench/reload.sh      # builds (release) and runs this
//! ```

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hearth_bench::{http_status, median, ms, Bench, Common};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// `/api/ready` and conversation latency during swaps versus steady state.
#[derive(Debug, Parser)]
#[command(name = "reload-bench")]
struct Cli {
    /// The `hearth` binary.
    #[arg(long, value_name = "FILE")]
    hearth: PathBuf,
    /// Where the scripted plugins are.
    #[arg(long, value_name = "DIR")]
    plugin_dir: PathBuf,
    /// Length of each phase.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    phase: Duration,
    /// How long the new TTS engine takes to load in each swap.
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    load: Duration,
    #[command(flatten)]
    common: Common,
}

#[tokio::main]
async fn main() {
    let cli = hearth_bench::parse::<Cli>(&[("runs", "3")]);
    hearth_bench::exit_on_error("reload-bench", run(&cli).await);
}

fn config(cli: &Cli, port: u16, rate: u32) -> String {
    let dir = std::path::absolute(&cli.plugin_dir).unwrap_or_else(|_| cli.plugin_dir.clone());
    format!(
        "[host]\nlisten = \"127.0.0.1:{port}\"\nplugin_dir = {:?}\n\
         [tts]\nplugin = \"scripted-tts\"\n[tts.config]\nsample_rate = {rate}\nload_ms = {}\n\
         [chat]\nplugin = \"scripted-chat\"\n[chat.config]\nreply = \"One. Two.\"\n",
        dir.display().to_string(),
        cli.load.as_millis()
    )
}

/// What one phase saw.
#[derive(Default)]
struct Seen {
    ready_ms: Vec<f64>,
    not_ready: usize,
    first_audio_ms: Vec<f64>,
    failed_turns: usize,
    swaps: usize,
}

fn p99(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() as f64 * 0.99).ceil() as usize)
        .saturating_sub(1)
        .min(sorted.len() - 1)]
}

async fn phase(cli: &Cli, port: u16, path: &std::path::Path, swapping: bool) -> Result<Seen, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = Arc::clone(&stop);
        tokio::task::spawn_blocking(move || {
            let (mut latencies, mut not_ready) = (Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                if http_status(port, "/api/ready") != Some(200) {
                    not_ready += 1;
                }
                latencies.push(ms(started.elapsed()));
            }
            (latencies, not_ready)
        })
    };
    let talker = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let url = format!("ws://127.0.0.1:{port}/ws/conversation");
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| e.to_string())?;
            let _hello = socket.next().await;
            let (mut firsts, mut failed) = (Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let mut first = None;
                socket
                    .send(Message::Text(json!({"type": "text", "text": "hi"}).to_string().into()))
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
                        .await
                        .map_err(|_| "a turn took over 10 s".to_owned())?
                        .ok_or("the conversation closed")?
                        .map_err(|e| e.to_string())?;
                    match message {
                        Message::Binary(_) => {
                            first.get_or_insert_with(|| ms(started.elapsed()));
                        }
                        Message::Text(t) => {
                            let event: Value = serde_json::from_str(&t).unwrap_or_default();
                            if event["type"] == "done" {
                                if event["ok"] != true {
                                    failed += 1;
                                }
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                firsts.extend(first);
            }
            Ok::<_, String>((firsts, failed))
        })
    };
    let mut swaps = 0;
    let started = Instant::now();
    while started.elapsed() < cli.phase {
        if swapping {
            swaps += 1;
            let rate = if swaps % 2 == 0 { 16_000 } else { 8_000 };
            std::fs::write(path, config(cli, port, rate)).map_err(|e| e.to_string())?;
            let status = tokio::task::spawn_blocking(move || post_reload(port))
                .await
                .map_err(|e| e.to_string())??;
            if status != 200 {
                return Err(format!("reload answered {status}"));
            }
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (ready_ms, not_ready) = poller.await.map_err(|e| e.to_string())?;
    let (first_audio_ms, failed_turns) = talker.await.map_err(|e| e.to_string())??;
    Ok(Seen {
        ready_ms,
        not_ready,
        first_audio_ms,
        failed_turns,
        swaps,
    })
}

/// `POST /api/reload` (waits for the swap); the status.
fn post_reload(port: u16) -> Result<u16, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| e.to_string())?;
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("no status".into())
}

async fn run(cli: &Cli) -> Result<(), String> {
    let bench = Bench::start("reload-bench", &cli.common);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let dir = std::env::temp_dir().join(format!("hearth-reload-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("plugins.toml");
    std::fs::write(&path, config(cli, port, 8_000)).map_err(|e| e.to_string())?;
    let mut child = Command::new(&cli.hearth)
        .args(["serve", "-c"])
        .arg(&path)
        .env("HEARTH_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", cli.hearth.display()))?;
    let pid = child.id();
    bench.on_abort(move || {
        // SAFETY: kill(2) on the server this benchmark started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    hearth_bench::wait_until("hearth READY", cli.common.timeout, Duration::from_millis(20), || {
        http_status(port, "/readyz") == Some(200)
    })?;
    let (mut steady, mut swapping) = (Seen::default(), Seen::default());
    for run in bench.schedule() {
        // Alternate which phase comes first.
        let order = if run.index % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for swap in order {
            let _guard = bench.guard_for(
                format!("{run}, {}", if swap { "swapping" } else { "steady" }),
                cli.phase * 4,
            );
            let seen = phase(cli, port, &path, swap).await?;
            if run.warmup {
                continue;
            }
            let into = if swap { &mut swapping } else { &mut steady };
            into.ready_ms.extend(seen.ready_ms);
            into.not_ready += seen.not_ready;
            into.first_audio_ms.extend(seen.first_audio_ms);
            into.failed_turns += seen.failed_turns;
            into.swaps += seen.swaps;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let describe = |name: &str, s: &Seen| {
        println!(
            "{name:<9} /api/ready: {} polls, median {:.3} ms, p99 {:.3} ms, {} not 200 | first audio: {} turns, median {:.1} ms, p99 {:.1} ms, {} failed{}",
            s.ready_ms.len(),
            median(s.ready_ms.iter().copied()),
            p99(&s.ready_ms),
            s.not_ready,
            s.first_audio_ms.len(),
            median(s.first_audio_ms.iter().copied()),
            p99(&s.first_audio_ms),
            s.failed_turns,
            if s.swaps > 0 { format!(" | {} swaps", s.swaps) } else { String::new() }
        );
        json!({
            "ready_polls": s.ready_ms.len(), "ready_median_ms": median(s.ready_ms.iter().copied()), "ready_p99_ms": p99(&s.ready_ms),
            "not_ready": s.not_ready, "turns": s.first_audio_ms.len(), "first_audio_median_ms": median(s.first_audio_ms.iter().copied()),
            "first_audio_p99_ms": p99(&s.first_audio_ms), "failed_turns": s.failed_turns, "swaps": s.swaps,
        })
    };
    let report = json!({
        "steady": describe("steady", &steady),
        "swapping": describe("swapping", &swapping),
        "ready_p99_ratio": p99(&swapping.ready_ms) / p99(&steady.ready_ms),
    });
    println!(
        "p99 of /api/ready during swaps / steady: {:.2} (target ≤ 1.5)",
        report["ready_p99_ratio"].as_f64().unwrap_or(f64::NAN)
    );
    bench.emit(&report)
}
