//! Conversation latency benchmark driver: speaks a WAV file into a running
//! Hearth's `/ws/conversation` `--runs` times and reports the time to first
//! audio after the end of the utterance, next to its parts as the server
//! measured them around each engine call (STT, chat to its first sentence,
//! TTS of that sentence to its first chunk). The difference is the host's
//! own overhead; the target is first audio ≤ 1.1 × the sum of the parts.
//!
//! Usage: `conversation-latency ws://127.0.0.1:PORT/ws/conversation FILE.wav [--runs N]`

use std::path::PathBuf;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hearth_bench::{median, Bench, Common};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Time to first audio of a running Hearth's conversation, against the
/// sum of its parts.
#[derive(Debug, Parser)]
#[command(name = "conversation-latency")]
struct Cli {
    /// The conversation WebSocket, e.g. ws://127.0.0.1:8000/ws/conversation.
    url: String,
    /// The utterance: a mono PCM16 WAV file.
    wav: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// The timings of a turn's `done` event, in the order of the columns.
const KEYS: [&str; 4] = [
    "first_audio_ms",
    "stt_ms",
    "chat_first_sentence_ms",
    "tts_first_chunk_ms",
];

#[tokio::main]
async fn main() {
    let cli = hearth_bench::parse::<Cli>(&[("runs", "5")]);
    hearth_bench::exit_on_error("conversation-latency", run(&cli).await);
}

async fn run(cli: &Cli) -> Result<(), String> {
    let bench = Bench::start("conversation-latency", &cli.common);
    let wav = cli.wav.display();
    let mut reader = hound::WavReader::open(&cli.wav).map_err(|e| format!("{wav}: {e}"))?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.bits_per_sample != 16 {
        return Err(format!("{wav}: a mono PCM16 WAV file expected"));
    }
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{wav}: {e}"))?;
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();

    let (mut socket, hello) = {
        let _guard = bench.guard("connecting");
        let (mut socket, _) = tokio_tungstenite::connect_async(&cli.url)
            .await
            .map_err(|e| format!("connect to {} (is Hearth READY?): {e}", cli.url))?;
        let hello = socket
            .next()
            .await
            .ok_or("closed before its greeting")?
            .map_err(|e| e.to_string())?;
        (socket, hello)
    };
    let hello: Value =
        serde_json::from_str(hello.to_text().map_err(|e| e.to_string())?).map_err(|e| format!("greeting: {e}"))?;
    if hello["stt"] != true {
        return Err(format!("speech to text must be ready: {hello}"));
    }

    let send = |message: Value| Message::Text(message.to_string().into());
    let mut columns: Vec<Vec<f64>> = vec![Vec::new(); KEYS.len() + 2];
    let mut transcripts = Vec::new();
    println!("run  first_audio  stt  chat_1st_sentence  tts_1st_chunk  sum_of_parts  ratio  transcript");
    for run in bench.schedule() {
        let _guard = bench.guard(format!("{run}: an answer"));
        socket
            .send(send(json!({"type": "reset"})))
            .await
            .map_err(|e| e.to_string())?;
        let start = json!({"type": "start", "format": "pcm16", "sample_rate": spec.sample_rate, "channels": 1});
        socket.send(send(start)).await.map_err(|e| e.to_string())?;
        for frame in bytes.chunks(spec.sample_rate as usize / 5) {
            socket
                .send(Message::Binary(frame.to_vec().into()))
                .await
                .map_err(|e| e.to_string())?;
        }
        socket
            .send(send(json!({"type": "end"})))
            .await
            .map_err(|e| e.to_string())?;
        let mut transcript = String::new();
        let done = loop {
            let message = socket
                .next()
                .await
                .ok_or("the server closed the conversation")?
                .map_err(|e| e.to_string())?;
            let Message::Text(text) = message else { continue };
            let v: Value = serde_json::from_str(&text).map_err(|e| format!("event: {e}"))?;
            match v["type"].as_str() {
                Some("transcript") => transcript = v["text"].as_str().unwrap_or_default().to_owned(),
                Some("done") => break v,
                Some("error") => eprintln!("error event: {v}"),
                _ => {}
            }
        };
        if run.warmup {
            continue;
        }
        let t = &done["timings"];
        let values: Vec<f64> = KEYS.iter().map(|k| t[*k].as_f64().unwrap_or(f64::NAN)).collect();
        let parts = values[1] + values[2] + values[3];
        let ratio = values[0] / parts;
        println!(
            "{:>3}  {:>11.1}  {:>5.1}  {:>17.1}  {:>13.1}  {:>12.1}  {ratio:>5.3}  {transcript:?}",
            run.index + 1,
            values[0],
            values[1],
            values[2],
            values[3],
            parts
        );
        for (i, v) in values.iter().enumerate() {
            columns[i].push(*v);
        }
        columns[KEYS.len()].push(parts);
        columns[KEYS.len() + 1].push(ratio);
        transcripts.push(transcript);
    }
    let m: Vec<f64> = columns.iter().map(|c| median(c.iter().copied())).collect();
    println!(
        "median first_audio {:.1} ms = stt {:.1} + chat first sentence {:.1} + tts first chunk {:.1} (sum {:.1}) → ratio {:.3} (target ≤ 1.1)",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
    let mut value =
        json!({"transcripts": transcripts, "sum_of_parts_ms": columns[KEYS.len()], "ratio": columns[KEYS.len() + 1]});
    for (i, key) in KEYS.iter().enumerate() {
        value[*key] = json!(columns[i]);
    }
    value["median"] = json!({
        "first_audio_ms": m[0], "stt_ms": m[1], "chat_first_sentence_ms": m[2], "tts_first_chunk_ms": m[3],
        "sum_of_parts_ms": m[4], "ratio": m[5],
    });
    bench.save(&value)
}
