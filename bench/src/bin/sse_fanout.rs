//! SSE fan-out benchmark driver: opens N subscribers to a running Hearth's
//! `/api/ready/stream?follow=true`, measures the server's memory per
//! subscriber (from its `/proc/PID/status`), triggers one transition with
//! `POST /api/warmup`, and reports how long until the last subscriber had
//! the resulting event.
//!
//! Usage: `sse-fanout ADDR SERVER_PID [SUBSCRIBERS]`. Raw HTTP/1.1 over
//! tokio TCP keeps the client's own cost low and visible.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Barrier, Notify},
};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
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

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("usage: sse-fanout ADDR SERVER_PID [SUBSCRIBERS]");
    let pid: u32 = args.next().expect("server pid").parse().expect("pid");
    let n: usize = args.next().map(|s| s.parse().expect("count")).unwrap_or(10_000);

    let before = rss_kib(pid);
    let connected = Arc::new(Barrier::new(n + 1));
    let received = Arc::new(AtomicUsize::new(0));
    let all_done = Arc::new(Notify::new());
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (addr, connected, received, all_done) =
            (addr.clone(), connected.clone(), received.clone(), all_done.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = loop {
                match TcpStream::connect(&addr).await {
                    Ok(s) => break s,
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            };
            stream
                .write_all(
                    b"GET /api/ready/stream?follow=true HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n",
                )
                .await
                .expect("request");
            let mut buf = Vec::new();
            let mut seen = 0;
            // The current state arrives at once.
            read_events(&mut stream, &mut buf, &mut seen, 1)
                .await
                .expect("first event");
            connected.wait().await;
            read_events(&mut stream, &mut buf, &mut seen, 2)
                .await
                .expect("transition event");
            if received.fetch_add(1, Ordering::AcqRel) + 1 == n {
                all_done.notify_one();
            }
            // Stay connected until the measurement is over.
            let mut rest = [0u8; 1024];
            let _ = stream.read(&mut rest).await;
        }));
    }
    connected.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let per_subscriber_kib = (after.saturating_sub(before)) as f64 / n as f64;

    let notified = all_done.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let started = Instant::now();
    let mut trigger = TcpStream::connect(&addr).await.expect("trigger connect");
    trigger
        .write_all(b"POST /api/warmup HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .expect("trigger");
    tokio::time::timeout(Duration::from_secs(60), notified)
        .await
        .expect("every subscriber got the event");
    let fanout = started.elapsed();
    println!(
        "{{\"subscribers\": {n}, \"fanout_ms\": {:.1}, \"server_rss_before_kib\": {before}, \"server_rss_after_kib\": {after}, \"per_subscriber_kib\": {per_subscriber_kib:.2}}}",
        fanout.as_secs_f64() * 1e3
    );
    for t in tasks {
        t.abort();
    }
}
