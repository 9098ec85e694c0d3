//! Hands-free latency benchmark driver: streams a WAV file (with silence
//! before and after) into a running Hearth's `/ws/conversation` in
//! hands-free mode, in 20 ms frames at real-time pace, and measures the
//! time from the end of the clip to the reply's first audio, two ways in
//! alternation on the same server: **incremental** (stretches transcribed
//! as they end, the reply prepared while the end of the utterance is
//! awaited) and **at end** (`"incremental": false`: the whole utterance
//! transcribed when it is over — the push-to-talk path). Target:
//! incremental / at end ≤ 0.6. Also reports the VAD's real-time factor,
//! from the server's `hearth_vad_push_seconds` over the audio streamed.
//!
//! Usage: `hands-free-latency ws://127.0.0.1:PORT/ws/conversation FILE.wav [--runs N]`

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hearth_bench::{median, Bench, Common};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Hands-free time to first audio, incremental against at the end.
#[derive(Debug, Parser)]
#[command(name = "hands-free-latency")]
struct Cli {
    /// The conversation WebSocket, e.g. ws://127.0.0.1:8000/ws/conversation.
    url: String,
    /// The utterance: a 16 kHz mono PCM16 WAV file.
    wav: PathBuf,
    /// Silence streamed before the clip, in ms.
    #[arg(long, default_value_t = 500)]
    before_ms: usize,
    /// Silence streamed after the clip, in ms (must exceed the end of the
    /// utterance and the reply's first audio).
    #[arg(long, default_value_t = 6000)]
    after_ms: usize,
    #[command(flatten)]
    common: Common,
}

#[tokio::main]
async fn main() {
    let cli = hearth_bench::parse::<Cli>(&[("runs", "5")]);
    hearth_bench::exit_on_error("hands-free-latency", run(&cli).await);
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One utterance: the time from the clip's last sample sent to the first
/// reply audio received, and what was heard.
struct Measured {
    first_audio_ms: f64,
    transcript: String,
    partials: usize,
}

async fn run(cli: &Cli) -> Result<(), String> {
    let bench = Bench::start("hands-free-latency", &cli.common);
    let wav = cli.wav.display();
    let mut reader = hound::WavReader::open(&cli.wav).map_err(|e| format!("{wav}: {e}"))?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.bits_per_sample != 16 || spec.sample_rate != 16_000 {
        return Err(format!("{wav}: a 16 kHz mono PCM16 WAV file expected"));
    }
    let clip: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{wav}: {e}"))?;
    let audio = [
        vec![0i16; cli.before_ms * 16],
        clip.clone(),
        vec![0i16; cli.after_ms * 16],
    ]
    .concat();
    let clip_end = cli.before_ms * 16 + clip.len();

    let mut socket = {
        let _guard = bench.guard("connecting");
        let (mut socket, _) = tokio_tungstenite::connect_async(&cli.url)
            .await
            .map_err(|e| format!("connect to {} (is Hearth READY?): {e}", cli.url))?;
        let hello = next_event(&mut socket).await?;
        if hello["hands_free"] != true {
            return Err(format!("hands-free needs STT and VAD ready: {hello}"));
        }
        socket
    };

    let mut results: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut transcripts = Vec::new();
    let mut streamed_s = 0.0;
    println!("run  mode         first_audio_after_speech_ms  partials  transcript");
    for run in bench.schedule() {
        // Alternate which goes first.
        let order = if run.index % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for incremental in order {
            let _guard = bench.guard(format!("{}: hands-free, incremental {incremental}", run.index + 1));
            let (back, measured) = utterance(socket, &audio, clip_end, incremental).await?;
            socket = back;
            streamed_s += audio.len() as f64 / 16_000.0;
            if run.warmup {
                continue;
            }
            let mode = if incremental { "incremental" } else { "at end" };
            println!(
                "{:>3}  {mode:<11}  {:>27.1}  {:>8}  {:?}",
                run.index + 1,
                measured.first_audio_ms,
                measured.partials,
                measured.transcript
            );
            results[usize::from(!incremental)].push(measured.first_audio_ms);
            transcripts.push(json!({"incremental": incremental, "text": measured.transcript}));
        }
    }
    let incremental = median(results[0].iter().copied());
    let at_end = median(results[1].iter().copied());
    let ratio = incremental / at_end;
    println!(
        "median first audio after the end of speech: incremental {incremental:.1} ms, at end {at_end:.1} ms → ratio {ratio:.3} (target ≤ 0.6)"
    );
    let vad = vad_rtf(&cli.url, streamed_s).await;
    match vad {
        Some(rtf) => println!(
            "VAD: {streamed_s:.0} s of audio streamed, real-time factor {rtf:.5} (calls as the server timed them)"
        ),
        None => println!("VAD: the server's /metrics had no hearth_vad_push_seconds"),
    }
    bench.save(&json!({
        "incremental_ms": results[0], "at_end_ms": results[1],
        "median": {"incremental_ms": incremental, "at_end_ms": at_end, "ratio": ratio},
        "vad_rtf": vad, "transcripts": transcripts,
    }))
}

async fn next_event(socket: &mut Socket) -> Result<Value, String> {
    loop {
        match socket.next().await.ok_or("the server closed the conversation")? {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).map_err(|e| format!("event: {e}")),
            Ok(_) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Streams `audio` hands-free and waits for the reply's `done`.
async fn utterance(
    mut socket: Socket,
    audio: &[i16],
    clip_end: usize,
    incremental: bool,
) -> Result<(Socket, Measured), String> {
    let text = |v: Value| Message::Text(v.to_string().into());
    socket
        .send(text(json!({"type": "reset"})))
        .await
        .map_err(|e| e.to_string())?;
    let start = json!({"type": "start", "mode": "hands_free", "sample_rate": 16000, "incremental": incremental});
    socket.send(text(start)).await.map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = socket.split();
    let frames: Vec<Vec<u8>> = audio
        .chunks(320)
        .map(|f| f.iter().flat_map(|s| s.to_le_bytes()).collect())
        .collect();
    let end_frame = clip_end.div_ceil(320);
    let (end_tx, end_rx) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut end_tx = Some(end_tx);
        for (i, frame) in frames.into_iter().enumerate() {
            tick.tick().await;
            if tx.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
            if i + 1 == end_frame {
                if let Some(end) = end_tx.take() {
                    let _ = end.send(Instant::now());
                }
            }
        }
        let _ = tx.send(Message::Text(json!({"type": "end"}).to_string().into())).await;
        tx
    });
    let mut first_audio = None;
    let mut transcript = String::new();
    let mut partials = 0;
    let (mut stopped, mut done) = (false, false);
    while let Some(message) = rx.next().await {
        match message.map_err(|e| e.to_string())? {
            Message::Binary(_) => {
                first_audio.get_or_insert_with(Instant::now);
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).map_err(|e| format!("event: {e}"))?;
                match v["type"].as_str() {
                    Some("partial_transcript") => partials += 1,
                    Some("transcript") => transcript = v["text"].as_str().unwrap_or_default().to_owned(),
                    Some("error") => eprintln!("error event: {v}"),
                    Some("listening_stopped") => stopped = true,
                    Some("done") => done = true,
                    _ => {}
                }
            }
            _ => {}
        }
        // The reply is over and so is the stream: nothing of this
        // utterance can reach the next one.
        if stopped && done {
            break;
        }
    }
    let tx = sender.await.map_err(|e| e.to_string())?;
    let socket = tx.reunite(rx).map_err(|e| e.to_string())?;
    let speech_end = end_rx.await.map_err(|_| "the clip was not streamed")?;
    let first_audio = first_audio.ok_or("no reply audio before listening stopped: raise --after-ms")?;
    let first_audio_ms = first_audio
        .checked_duration_since(speech_end)
        .ok_or("reply audio came before the end of the clip")?
        .as_secs_f64()
        * 1000.0;
    Ok((
        socket,
        Measured {
            first_audio_ms,
            transcript,
            partials,
        },
    ))
}

/// The VAD's time per second of audio, from the server's metrics.
async fn vad_rtf(ws_url: &str, streamed_s: f64) -> Option<f64> {
    let base = ws_url.replacen("ws://", "http://", 1);
    let base = base.split("/ws/").next()?;
    let text = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
    let sum: f64 = text
        .lines()
        .find(|l| l.starts_with("hearth_vad_push_seconds_sum"))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()?;
    Some(sum / streamed_s)
}
