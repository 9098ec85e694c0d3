//! Conversation latency benchmark driver: speaks a WAV file into a running
//! Hearth's `/ws/conversation` RUNS times and reports the time to first
//! audio after the end of the utterance, next to its parts as the server
//! measured them around each engine call (STT, chat to its first sentence,
//! TTS of that sentence to its first chunk). The difference is the host's
//! own overhead; the target is first audio ≤ 1.1 × the sum of the parts.
//!
//! Usage: `conversation-latency ws://127.0.0.1:PORT/ws/conversation FILE.wav [RUNS]`

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: conversation-latency WS_URL FILE.wav [RUNS]");
    let wav = args.next().expect("a WAV file");
    let runs: usize = args.next().map(|s| s.parse().expect("runs")).unwrap_or(5);

    let mut reader = hound::WavReader::open(&wav).expect("readable WAV");
    let spec = reader.spec();
    assert_eq!(spec.channels, 1, "mono WAV expected");
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.expect("sample")).collect();
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();

    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect (is Hearth READY?)");
    let hello = socket.next().await.expect("greeting").expect("ok");
    let hello: Value = serde_json::from_str(hello.to_text().expect("text")).expect("json");
    assert_eq!(hello["stt"], true, "speech to text must be ready: {hello}");

    let keys = [
        "first_audio_ms",
        "stt_ms",
        "chat_first_sentence_ms",
        "tts_first_chunk_ms",
    ];
    let mut columns: Vec<Vec<f64>> = vec![Vec::new(); keys.len() + 2];
    println!("run  first_audio  stt  chat_1st_sentence  tts_1st_chunk  sum_of_parts  ratio  transcript");
    for run in 1..=runs {
        socket
            .send(Message::Text(json!({"type": "reset"}).to_string().into()))
            .await
            .unwrap();
        let start = json!({"type": "start", "format": "pcm16", "sample_rate": spec.sample_rate, "channels": 1});
        socket.send(Message::Text(start.to_string().into())).await.unwrap();
        for frame in bytes.chunks(spec.sample_rate as usize / 5) {
            socket.send(Message::Binary(frame.to_vec().into())).await.unwrap();
        }
        socket
            .send(Message::Text(json!({"type": "end"}).to_string().into()))
            .await
            .unwrap();
        let mut transcript = String::new();
        let done = loop {
            let message = tokio::time::timeout(Duration::from_secs(120), socket.next())
                .await
                .expect("an answer within 120 s")
                .expect("open")
                .expect("ok");
            let Message::Text(text) = message else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            match v["type"].as_str() {
                Some("transcript") => transcript = v["text"].as_str().unwrap_or_default().to_owned(),
                Some("done") => break v,
                Some("error") => eprintln!("error event: {v}"),
                _ => {}
            }
        };
        let t = &done["timings"];
        let values: Vec<f64> = keys.iter().map(|k| t[*k].as_f64().unwrap_or(f64::NAN)).collect();
        let parts = values[1] + values[2] + values[3];
        let ratio = values[0] / parts;
        println!(
            "{run:>3}  {:>11.1}  {:>5.1}  {:>17.1}  {:>13.1}  {:>12.1}  {ratio:>5.3}  {transcript:?}",
            values[0], values[1], values[2], values[3], parts
        );
        for (i, v) in values.iter().enumerate() {
            columns[i].push(*v);
        }
        columns[keys.len()].push(parts);
        columns[keys.len() + 1].push(ratio);
    }
    let m: Vec<f64> = columns.into_iter().map(median).collect();
    println!(
        "median first_audio {:.1} ms = stt {:.1} + chat first sentence {:.1} + tts first chunk {:.1} (sum {:.1}) → ratio {:.3} (target ≤ 1.1)",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
}
