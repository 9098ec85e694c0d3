//! `chat-bench`, the driver of `bench/chat.sh`: time to first token and
//! tokens per second through a chat plugin (the built cdylib, loaded by the
//! host's loader exactly as `hearth serve` does, driven through its
//! `ChatHandle`) against a direct streaming HTTP client, both on the same
//! llama-server started here, in the same run.
//!
//! Runs alternate (direct, plugin, plugin, direct, ...) so drift in the
//! machine's load hits both sides alike, and each pair uses its own prompts
//! so the server's prompt cache helps both sides the same way.
//!
//! The direct client is this file's own: one reqwest streaming POST to
//! `/v1/chat/completions`, its `text/event-stream` body split into lines
//! and each `data:` line parsed as an OpenAI chunk. It shares no code with
//! the plugin, so the comparison measures the plugin and the host's call
//! path, not a common client.
//!
//! ```text
//! chat-bench --plugin target/release/libhearth_chat_http.so \
//!            --server models/llama/bin/llama-server \
//!            --model models/llama/SmolLM2-135M-Instruct.Q4_1.gguf [--runs 7] [--max-tokens 64]
//! ```

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::Parser;
use futures_util::StreamExt;
use hearth::{config::ServiceName, engine::ChatHandle};
use hearth_bench::{median, ratio_of_medians, Bench, Common, LlamaServer, Pair, PluginArgs, Run};
use hearth_plugin_api::{client::Message, Flow};
use serde_json::{json, Value};

/// Chat latency through a chat plugin against a direct HTTP client, on one
/// llama-server started here. The plugin's settings are the benchmark's
/// own (the server it starts); `-c` only names the plugin.
#[derive(Debug, Parser)]
#[command(name = "chat-bench")]
struct Cli {
    /// The llama-server program.
    #[arg(long, value_name = "FILE")]
    server: PathBuf,
    /// The GGUF model for llama-server.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Most tokens per reply, on both sides.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_tokens: u32,
    /// llama-server's threads (`-t`).
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: u32,
    #[command(flatten)]
    plugin: PluginArgs,
    #[command(flatten)]
    common: Common,
}

/// One streamed reply, timed.
#[derive(Debug, Clone, Copy)]
struct Reply {
    /// From sending the request to the first non-empty piece.
    ttft: Duration,
    /// Pieces after the first, per second of the time they took.
    tokens_per_s: f64,
    tokens: usize,
}

impl Reply {
    fn ttft_ms(&self) -> f64 {
        self.ttft.as_secs_f64() * 1e3
    }
}

fn reply_of(started: Instant, stamps: &[Instant]) -> Result<Reply, String> {
    let (Some(first), Some(last)) = (stamps.first(), stamps.last()) else {
        return Err("the reply had no text".into());
    };
    let span = (*last - *first).as_secs_f64();
    Ok(Reply {
        ttft: *first - started,
        tokens_per_s: if stamps.len() > 1 && span > 0.0 {
            (stamps.len() - 1) as f64 / span
        } else {
            0.0
        },
        tokens: stamps.len(),
    })
}

/// What one line of an OpenAI `text/event-stream` body says.
enum Line {
    /// A piece of the reply (OpenAI's first chunk carries only the role, so
    /// it may be empty).
    Piece(String),
    /// `data: [DONE]`.
    Done,
    /// Blank lines, comments, `event:` lines.
    Other,
}

fn parse_line(line: &str) -> Result<Line, String> {
    let Some(data) = line.strip_prefix("data:").map(str::trim) else {
        return Ok(Line::Other);
    };
    match data {
        "[DONE]" => Ok(Line::Done),
        "" => Ok(Line::Other),
        _ => {
            let value: Value = serde_json::from_str(data).map_err(|e| format!("unreadable stream line ({e})"))?;
            match &value["error"] {
                Value::Null => {}
                Value::Object(o) => return Err(o.get("message").and_then(Value::as_str).unwrap_or("error").into()),
                other => return Err(other.to_string()),
            }
            let text = value["choices"][0]["delta"]["content"].as_str().unwrap_or_default();
            Ok(Line::Piece(text.to_owned()))
        }
    }
}

/// The direct client: one reqwest streaming POST, the SSE body parsed line
/// by line.
async fn direct(client: &reqwest::Client, url: &str, prompt: &str, max_tokens: u32) -> Result<Reply, String> {
    let body = json!({
        "model": "smollm2", "stream": true, "temperature": 0.0, "seed": 1, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": prompt}],
    });
    let started = Instant::now();
    let response = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("direct: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("direct: HTTP {}", response.status()));
    }
    let mut stream = response.bytes_stream();
    let mut pending = Vec::new();
    let mut stamps = Vec::new();
    'read: while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(&chunk.map_err(|e| format!("direct: {e}"))?);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            match parse_line(line.trim_end_matches(['\n', '\r'])).map_err(|e| format!("direct: {e}"))? {
                Line::Piece(text) if !text.is_empty() => stamps.push(Instant::now()),
                Line::Done => break 'read,
                _ => {}
            }
        }
    }
    reply_of(started, &stamps)
}

/// A reply through the plugin.
fn through_plugin(chat: &ChatHandle, prompt: &str) -> Result<Reply, String> {
    let messages = [Message::user(prompt)];
    let mut stamps = Vec::new();
    let started = Instant::now();
    chat.chat(&messages, |piece| {
        if !piece.is_empty() {
            stamps.push(Instant::now());
        }
        Flow::Continue
    })
    .map_err(|e| format!("plugin: {e}"))?;
    reply_of(started, &stamps)
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
async fn openers(client: &reqwest::Client, base: &str) -> Result<Vec<&'static str>, String> {
    let mut by_length: std::collections::BTreeMap<usize, Vec<(&str, i64)>> = Default::default();
    for &word in WORDS {
        let reply: Value = client
            .post(format!("{base}/tokenize"))
            .json(&json!({"content": prompt(word)}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("tokenize: {e}"))?
            .json()
            .await
            .map_err(|e| format!("tokenize reply: {e}"))?;
        let tokens = reply["tokens"].as_array().ok_or("tokenize reply without tokens")?;
        by_length
            .entry(tokens.len())
            .or_default()
            .push((word, tokens.first().and_then(Value::as_i64).unwrap_or(-1)));
    }
    let mut best: Vec<&str> = Vec::new();
    for words in by_length.values() {
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<&str> = words.iter().filter(|(_, t)| seen.insert(*t)).map(|(w, _)| *w).collect();
        if distinct.len() > best.len() {
            best = distinct;
        }
    }
    Ok(best)
}

fn main() {
    let cli = hearth_bench::parse::<Cli>(&[("runs", "7"), ("warmup", "1")]);
    hearth_bench::exit_on_error("chat-bench", run(&cli));
}

fn run(cli: &Cli) -> Result<(), String> {
    let bench = Bench::start("chat-bench", &cli.common);
    for (name, path) in [("--server", &cli.server), ("--model", &cli.model)] {
        if !path.exists() {
            return Err(format!("{name} {} does not exist", path.display()));
        }
    }
    // Open the plugin first: a wrong path fails before a server starts.
    let opened = cli.plugin.open(ServiceName::Chat)?;
    // Bounded by its own retries (--timeout), so not a step of the watchdog.
    let server = LlamaServer::start(&cli.server, &cli.model, cli.threads, &bench)?;
    let base = server.base();

    let settings = json!({
        "api": "openai", "url": base, "model": "smollm2",
        "temperature": 0.0, "seed": 1, "max_tokens": cli.max_tokens,
    });
    let loaded = opened.load(&bench, &settings.to_string())?;
    let chat = ChatHandle::of(loaded.engine.clone()).ok_or("not a chat engine")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{base}/v1/chat/completions");

    // Every timed request opens with its own word (see `openers`), so no
    // request finds the previous one's prompt in the server's cache and both
    // sides process the same number of prompt tokens.
    let words = bench
        .step("tokenizing the openers", || runtime.block_on(openers(&client, &base)))
        .value?;
    if words.len() < 2 {
        return Err(format!("fewer than two usable openers: {words:?}"));
    }
    let opener = |n: usize| words[n % words.len()];
    // Warmup runs (one by default) send a short untimed request on each
    // side, so both have a warm connection and cache.
    let pairs: Vec<Pair<Reply, Reply>> = bench.alternate(
        "chat",
        |run: Run| {
            let (text, max_tokens) = if run.warmup {
                ("Hello.".to_owned(), 4)
            } else {
                (prompt(opener(2 * run.index)), cli.max_tokens)
            };
            runtime.block_on(direct(&client, &url, &text, max_tokens))
        },
        |run: Run| {
            let text = if run.warmup {
                "Hello.".to_owned()
            } else {
                prompt(opener(2 * run.index + 1))
            };
            through_plugin(&chat, &text)
        },
    )?;
    loaded.engine.shutdown();
    drop(server);

    let directs: Vec<Reply> = pairs.iter().map(|p| p.a.value).collect();
    let plugins: Vec<Reply> = pairs.iter().map(|p| p.b.value).collect();
    report(cli, &bench, &directs, &plugins)
}

fn report(cli: &Cli, bench: &Bench, directs: &[Reply], plugins: &[Reply]) -> Result<(), String> {
    println!(
        "runs: {} per side, alternating (direct first in even runs); max_tokens {}; llama-server -t {}",
        directs.len(),
        cli.max_tokens,
        cli.threads
    );
    println!(
        "{:<4} {:>12} {:>12} {:>10} {:>10} {:>7} {:>7}",
        "run", "ttft direct", "ttft plugin", "tok/s dir", "tok/s plg", "tokens", "tokens"
    );
    for (i, (d, p)) in directs.iter().zip(plugins).enumerate() {
        println!(
            "{:<4} {:>9.1} ms {:>9.1} ms {:>10.1} {:>10.1} {:>7} {:>7}",
            i,
            d.ttft_ms(),
            p.ttft_ms(),
            d.tokens_per_s,
            p.tokens_per_s,
            d.tokens,
            p.tokens
        );
    }
    let ttft = |side: &[Reply]| side.iter().map(Reply::ttft_ms).collect::<Vec<_>>();
    let tps = |side: &[Reply]| side.iter().map(|r| r.tokens_per_s).collect::<Vec<_>>();
    let (md_ttft, mp_ttft) = (median(ttft(directs)), median(ttft(plugins)));
    let (md_tps, mp_tps) = (median(tps(directs)), median(tps(plugins)));
    let overhead = (ratio_of_medians(ttft(plugins), ttft(directs)) - 1.0) * 100.0;
    let tps_change = (ratio_of_medians(tps(plugins), tps(directs)) - 1.0) * 100.0;
    println!();
    println!("| median              | direct HTTP | through plugin | plugin vs direct |");
    println!("|---------------------|-------------|----------------|------------------|");
    println!("| time to first token | {md_ttft:8.1} ms | {mp_ttft:11.1} ms | {overhead:+15.1}% |");
    println!("| tokens/s            | {md_tps:11.1} | {mp_tps:14.1} | {tps_change:+15.1}% |");
    let paired = median(directs.iter().zip(plugins).map(|(d, p)| p.ttft_ms() - d.ttft_ms()));
    println!();
    println!("median of paired differences in time to first token (plugin - direct): {paired:+.2} ms");
    let pass = overhead <= 5.0;
    let verdict = if pass { "PASS" } else { "FAIL" };
    println!("{verdict}: plugin overhead on time to first token {overhead:+.1}% (target <= 5%)");

    let side = |side: &[Reply]| {
        json!({
            "ttft_ms": ttft(side),
            "tokens_per_s": tps(side),
            "tokens": side.iter().map(|r| r.tokens).collect::<Vec<_>>(),
        })
    };
    bench.save(&json!({
        "max_tokens": cli.max_tokens,
        "threads": cli.threads,
        "direct": side(directs),
        "plugin": side(plugins),
        "median_ttft_ms": {"direct": md_ttft, "plugin": mp_ttft},
        "median_tokens_per_s": {"direct": md_tps, "plugin": mp_tps},
        "ttft_overhead_pct": overhead,
        "tokens_per_s_change_pct": tps_change,
        "paired_ttft_difference_ms": paired,
        "pass": pass,
    }))
}
