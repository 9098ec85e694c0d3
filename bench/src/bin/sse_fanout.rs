//! SSE fan-out benchmark driver: opens N subscribers to a running Hearth's
//! `/api/ready/stream?follow=true`, measures the server's memory per
//! subscriber (from its `/proc/PID/status`), triggers one transition with
//! `POST /api/warmup`, and reports how long until the last subscriber had
//! the resulting event.
//!
//! Usage: `sse-fanout ADDR SERVER_PID [SUBSCRIBERS] [--runs N]`. With more
//! than one run the cycle repeats on the same server (subscribers closed in
//! between) and the figures are medians; `bench/readiness.sh` instead runs
//! it once per fresh server. Raw HTTP/1.1 over tokio TCP keeps the client's
//! own cost low and visible.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use clap::Parser;
use hearth_bench::{median, Bench, Common, Retry, Run};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{mpsc, Barrier, Notify},
};

/// Time until every SSE subscriber of a running Hearth has one transition,
/// and the server's memory per subscriber.
#[derive(Debug, Parser)]
#[command(name = "sse-fanout")]
struct Cli {
    /// The server's address, e.g. 127.0.0.1:8000.
    addr: String,
    /// The server's process id, for its memory.
    server_pid: u32,
    /// Subscribers to open.
    #[arg(default_value_t = 10_000)]
    subscribers: usize,
    #[command(flatten)]
    common: Common,
}

/// One cycle's figures.
#[derive(Debug, Clone, Copy)]
struct Sample {
    fanout_ms: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    per_subscriber_kib: f64,
}

fn rss_kib(pid: u32) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("server process {pid}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// Reads until `count` SSE events (blank-line separated `data:` blocks).
async fn read_events(stream: &mut TcpStream, buf: &mut Vec<u8>, seen: &mut usize, count: usize) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    while *seen < count {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(pos) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..pos + 2).collect();
            if block.starts_with(b"data:") || block.windows(6).any(|w| w == b"\ndata:") {
                *seen += 1;
            }
        }
    }
    Ok(())
}

/// Connects, retrying a bounded number of times (10,000 connections at
/// once can overflow the listen backlog).
async fn connect(addr: &str, within: Duration) -> Result<TcpStream, String> {
    let mut retry = Retry::within(within, Duration::from_millis(5));
    loop {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => match retry.next() {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(format!("cannot connect to {addr}: {e}")),
            },
        }
    }
}

/// One subscriber: connects, reads the current state, waits at the barrier
/// with the others, then reads the transition.
async fn subscriber(
    addr: String,
    within: Duration,
    connected: Arc<Barrier>,
    received: Arc<AtomicUsize>,
    all_done: Arc<Notify>,
    n: usize,
) -> Result<(), String> {
    let mut stream = connect(&addr, within).await?;
    // The address as Host: Hearth serves only requests that name it.
    let request =
        format!("GET /api/ready/stream?follow=true HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("request: {e}"))?;
    let mut buf = Vec::new();
    let mut seen = 0;
    // The current state arrives at once.
    read_events(&mut stream, &mut buf, &mut seen, 1)
        .await
        .map_err(|e| format!("first event: {e}"))?;
    connected.wait().await;
    read_events(&mut stream, &mut buf, &mut seen, 2)
        .await
        .map_err(|e| format!("transition event: {e}"))?;
    if received.fetch_add(1, Ordering::AcqRel) + 1 == n {
        all_done.notify_one();
    }
    // Stay connected until the measurement is over.
    let mut rest = [0u8; 1024];
    let _ = stream.read(&mut rest).await;
    Ok(())
}

async fn cycle(cli: &Cli, bench: &Bench, run: Run) -> Result<Sample, String> {
    let (addr, n, pid) = (&cli.addr, cli.subscribers, cli.server_pid);
    let timeout = bench.common().timeout;
    let before = rss_kib(pid)?;
    let connected = Arc::new(Barrier::new(n + 1));
    let received = Arc::new(AtomicUsize::new(0));
    let all_done = Arc::new(Notify::new());
    let (failed_tx, mut failed) = mpsc::channel::<String>(1);
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let task = subscriber(
            addr.clone(),
            timeout,
            connected.clone(),
            received.clone(),
            all_done.clone(),
            n,
        );
        let failed_tx = failed_tx.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = task.await {
                let _ = failed_tx.try_send(e);
            }
        }));
    }
    let result = async {
        {
            let _guard = bench.guard(format!("{run}: connecting {n} subscribers"));
            tokio::select! {
                _ = connected.wait() => {}
                Some(e) = failed.recv() => return Err(format!("a subscriber failed: {e}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(pid)?;

        let notified = all_done.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let _guard = bench.guard(format!("{run}: fan-out to {n} subscribers"));
        let started = Instant::now();
        let mut trigger = TcpStream::connect(addr).await.map_err(|e| format!("trigger: {e}"))?;
        let request =
            format!("POST /api/warmup HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        trigger
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("trigger: {e}"))?;
        tokio::select! {
            _ = notified => {}
            Some(e) = failed.recv() => return Err(format!("a subscriber failed: {e}")),
        }
        let fanout = started.elapsed();
        Ok(Sample {
            fanout_ms: hearth_bench::ms(fanout),
            rss_before_kib: before,
            rss_after_kib: after,
            per_subscriber_kib: after.saturating_sub(before) as f64 / n as f64,
        })
    }
    .await;
    for t in tasks {
        t.abort();
    }
    result
}

/// Rounded to `places` decimals, for a short line of JSON.
fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

#[tokio::main]
async fn main() {
    let cli = hearth_bench::parse::<Cli>(&[("runs", "1")]);
    hearth_bench::exit_on_error("sse-fanout", run(&cli).await);
}

async fn run(cli: &Cli) -> Result<(), String> {
    let bench = Bench::start("sse-fanout", &cli.common);
    let mut samples = Vec::new();
    for (i, run) in bench.schedule().enumerate() {
        if i > 0 {
            // Let the server drop the previous cycle's subscribers.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let sample = cycle(cli, &bench, run).await?;
        if !run.warmup {
            samples.push(sample);
        }
    }
    let first = samples.first().ok_or("no runs (--runs 0)")?;
    let mut value = json!({
        "subscribers": cli.subscribers,
        "fanout_ms": round(median(samples.iter().map(|s| s.fanout_ms)), 1),
        "server_rss_before_kib": first.rss_before_kib,
        "server_rss_after_kib": first.rss_after_kib,
        "per_subscriber_kib": round(median(samples.iter().map(|s| s.per_subscriber_kib)), 2),
    });
    if samples.len() > 1 {
        value["runs"] = samples
            .iter()
            .map(|s| json!({"fanout_ms": round(s.fanout_ms, 1), "per_subscriber_kib": round(s.per_subscriber_kib, 2)}))
            .collect();
    }
    bench.emit(&value)
}
