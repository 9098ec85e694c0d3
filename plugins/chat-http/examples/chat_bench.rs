//! The driver of `bench/chat.sh`: time to first token and tokens per
//! second through the plugin (the built cdylib, loaded by the host's loader
//! exactly as `hearth serve` does) against a direct streaming HTTP client,
//! both on the same llama-server started here, in the same run.
//!
//! Runs alternate (direct, plugin, direct, plugin, ...) so drift in the
//! machine's load hits both sides alike, and each pair uses its own prompt
//! so the server's prompt cache helps both sides the same way.
//!
//! ```text
//! chat-bench --plugin target/release/libhearth_chat_http.so \
//!            --server models/llama/bin/llama-server \
//!            --model models/llama/SmolLM2-135M-Instruct.Q4_1.gguf [--runs 7] [--max-tokens 64]
//! ```

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use hearth::plugin::{Libraries, Unobserved};
use hearth_chat_http::wire::{parse_sse_line, Event, LineSplitter};
use hearth_plugin_api::{ChatMessage, ChatRole, Flow};
use serde_json::json;

struct Args {
    plugin: PathBuf,
    server: PathBuf,
    model: PathBuf,
    runs: usize,
    max_tokens: u32,
    threads: u32,
}

fn args() -> Args {
    let mut a = Args {
        plugin: PathBuf::new(),
        server: PathBuf::new(),
        model: PathBuf::new(),
        runs: 7,
        max_tokens: 64,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--plugin" => a.plugin = value.into(),
            "--server" => a.server = value.into(),
            "--model" => a.model = value.into(),
            "--runs" => a.runs = value.parse().expect("--runs N"),
            "--max-tokens" => a.max_tokens = value.parse().expect("--max-tokens N"),
            "--threads" => a.threads = value.parse().expect("--threads N"),
            other => panic!("unknown flag {other}"),
        }
    }
    for (name, path) in [("--plugin", &a.plugin), ("--server", &a.server), ("--model", &a.model)] {
        assert!(path.exists(), "{name} {} does not exist", path.display());
    }
    a
}

/// One streamed reply, timed.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// From sending the request to the first non-empty piece.
    ttft: Duration,
    /// Pieces after the first, per second of the time they took.
    tokens_per_s: f64,
    tokens: usize,
}

fn run_of(started: Instant, stamps: &[Instant]) -> Run {
    let first = stamps[0];
    let last = *stamps.last().unwrap();
    let span = (last - first).as_secs_f64();
    Run {
        ttft: first - started,
        tokens_per_s: if stamps.len() > 1 && span > 0.0 {
            (stamps.len() - 1) as f64 / span
        } else {
            0.0
        },
        tokens: stamps.len(),
    }
}

/// The direct client: one reqwest streaming POST, SSE parsed line by line.
async fn direct(client: &reqwest::Client, url: &str, prompt: &str, max_tokens: u32) -> Run {
    let body = json!({
        "model": "smollm2", "stream": true, "temperature": 0.0, "seed": 1, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": prompt}],
    });
    let started = Instant::now();
    let response = client.post(url).json(&body).send().await.expect("direct request");
    assert!(response.status().is_success(), "direct: HTTP {}", response.status());
    let mut stream = response.bytes_stream();
    let mut lines = LineSplitter::default();
    let mut stamps = Vec::new();
    'read: while let Some(chunk) = stream.next().await {
        for line in lines.push(&chunk.expect("direct chunk")) {
            match parse_sse_line(&line) {
                Event::Piece { text, .. } if !text.is_empty() => stamps.push(Instant::now()),
                Event::Done => break 'read,
                Event::Error(e) => panic!("direct: {e}"),
                _ => {}
            }
        }
    }
    run_of(started, &stamps)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(a: &Args, port: u16) -> Child {
    let mut child = Command::new(&a.server)
        .args([
            "-m",
            &a.model.display().to_string(),
            "--alias",
            "smollm2",
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &port.to_string(), "-c", "2048", "-t", &a.threads.to_string()])
        .env("LD_LIBRARY_PATH", a.server.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama-server");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if health_ok(port) {
            return child;
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("llama-server did not answer /health with 200 within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `/health` answers 200 (a raw GET, to keep the timing code alone
/// in using reqwest).
fn health_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

/// Candidate request openers; [`openers`] keeps those that give prompts of
/// equal token length with pairwise different first tokens.
const WORDS: &[&str] = &[
    "Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliet", "Kilo", "Lima",
    "Mike", "November", "Oscar", "Papa", "Quebec", "Romeo", "Sierra", "Tango", "Uniform", "Victor", "Whiskey", "Xray",
    "Yankee", "Zulu", "Apple", "Bread", "Chair", "Door", "Eagle", "Fish", "Garden", "House", "Island", "Jacket",
    "King", "Lemon", "Mountain", "Night", "Orange", "Paper", "Queen", "River", "Stone", "Table", "Umbrella", "Valley",
    "Window", "Yellow", "Zebra",
];

/// The prompt of one request.
fn prompt(opener: &str) -> String {
    format!("{opener}: write a short paragraph about the sea.")
}

/// Openers whose prompts have the same number of tokens and pairwise
/// different first tokens, so every request misses the server's prompt
/// cache right after the chat template and processes as many prompt tokens
/// as every other. Asks the server's own tokenizer (`/tokenize`).
async fn openers(client: &reqwest::Client, base: &str) -> Vec<&'static str> {
    let mut by_length: std::collections::BTreeMap<usize, Vec<(&str, i64)>> = Default::default();
    for &word in WORDS {
        let reply: serde_json::Value = client
            .post(format!("{base}/tokenize"))
            .json(&json!({"content": prompt(word)}))
            .send()
            .await
            .expect("tokenize")
            .json()
            .await
            .expect("tokenize reply");
        let tokens = reply["tokens"].as_array().expect("tokens");
        by_length
            .entry(tokens.len())
            .or_default()
            .push((word, tokens[0].as_i64().unwrap_or(-1)));
    }
    let mut best: Vec<&str> = Vec::new();
    for words in by_length.values() {
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<&str> = words.iter().filter(|(_, t)| seen.insert(*t)).map(|(w, _)| *w).collect();
        if distinct.len() > best.len() {
            best = distinct;
        }
    }
    best
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let a = args();
    let port = free_port();
    let mut server = start_server(&a, port);
    let base = format!("http://127.0.0.1:{port}");

    let libraries = Libraries::default();
    let plugin = libraries.open(&a.plugin).expect("open plugin");
    let engine = Arc::clone(&plugin).new_engine().expect("engine");
    let config = json!({
        "api": "openai", "url": base, "model": "smollm2",
        "temperature": 0.0, "seed": 1, "max_tokens": a.max_tokens,
    });
    engine
        .load(&config.to_string(), std::path::Path::new("."), &Unobserved("chat"))
        .expect("load");
    engine.warmup(&Unobserved("chat")).expect("warmup");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder().tcp_nodelay(true).no_proxy().build().unwrap();
    let url = format!("{base}/v1/chat/completions");
    // One untimed round of each, so both have a warm connection and cache.
    runtime.block_on(direct(&client, &url, "Hello.", 4));

    let mut directs = Vec::new();
    let mut plugins = Vec::new();
    // Every request opens with its own word (see `openers`), so no request
    // finds the previous one's prompt in the server's cache and both sides
    // process the same number of prompt tokens.
    let words = runtime.block_on(openers(&client, &base));
    assert!(words.len() >= 2, "fewer than two usable openers: {words:?}");
    let opener = |n: usize| words[n % words.len()];
    for i in 0..a.runs {
        let plugin_run = || {
            let text = prompt(opener(2 * i + 1));
            let messages = [ChatMessage {
                role: ChatRole::USER,
                content: text.as_str().into(),
            }];
            let mut stamps = Vec::new();
            let started = Instant::now();
            engine
                .chat(&messages, |piece| {
                    if !piece.is_empty() {
                        stamps.push(Instant::now());
                    }
                    Flow::Continue
                })
                .expect("plugin chat");
            run_of(started, &stamps)
        };
        let direct_prompt = prompt(opener(2 * i));
        let direct_run = || runtime.block_on(direct(&client, &url, &direct_prompt, a.max_tokens));
        // Alternate which side goes first, so neither always follows the other.
        if i % 2 == 0 {
            directs.push(direct_run());
            plugins.push(plugin_run());
        } else {
            plugins.push(plugin_run());
            directs.push(direct_run());
        }
    }
    engine.shutdown();
    let _ = server.kill();
    let _ = server.wait();

    println!(
        "runs: {} per side, alternating (direct first in even runs); max_tokens {}; llama-server -t {}",
        a.runs, a.max_tokens, a.threads
    );
    println!(
        "{:<4} {:>12} {:>12} {:>10} {:>10} {:>7} {:>7}",
        "run", "ttft direct", "ttft plugin", "tok/s dir", "tok/s plg", "tokens", "tokens"
    );
    for (i, (d, p)) in directs.iter().zip(&plugins).enumerate() {
        println!(
            "{:<4} {:>9.1} ms {:>9.1} ms {:>10.1} {:>10.1} {:>7} {:>7}",
            i,
            d.ttft.as_secs_f64() * 1e3,
            p.ttft.as_secs_f64() * 1e3,
            d.tokens_per_s,
            p.tokens_per_s,
            d.tokens,
            p.tokens
        );
    }
    let md_ttft = median(directs.iter().map(|r| r.ttft.as_secs_f64() * 1e3).collect());
    let mp_ttft = median(plugins.iter().map(|r| r.ttft.as_secs_f64() * 1e3).collect());
    let md_tps = median(directs.iter().map(|r| r.tokens_per_s).collect());
    let mp_tps = median(plugins.iter().map(|r| r.tokens_per_s).collect());
    let overhead = (mp_ttft - md_ttft) / md_ttft * 100.0;
    println!();
    let tps_change = (mp_tps - md_tps) / md_tps * 100.0;
    println!("| median              | direct HTTP | through plugin | plugin vs direct |");
    println!("|---------------------|-------------|----------------|------------------|");
    println!("| time to first token | {md_ttft:8.1} ms | {mp_ttft:11.1} ms | {overhead:+15.1}% |");
    println!("| tokens/s            | {md_tps:11.1} | {mp_tps:14.1} | {tps_change:+15.1}% |");
    let paired = median(
        directs
            .iter()
            .zip(&plugins)
            .map(|(d, p)| (p.ttft.as_secs_f64() - d.ttft.as_secs_f64()) * 1e3)
            .collect(),
    );
    println!();
    println!("median of paired differences in time to first token (plugin - direct): {paired:+.2} ms");
    let verdict = if overhead <= 5.0 { "PASS" } else { "FAIL" };
    println!("{verdict}: plugin overhead on time to first token {overhead:+.1}% (target <= 5%)");
}
