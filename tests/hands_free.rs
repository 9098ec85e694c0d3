//! Hands-free conversation (`"mode": "hands_free"`) with the real engines
//! that hear: Silero VAD finds the utterances and Whisper transcribes them,
//! with the real Piper voice answering. The reply's words come from the
//! scripted chat engine (a test fixture), so that a reply is long and slow
//! exactly when a test needs to speak over it. Audio is streamed in 20 ms
//! frames at real-time pace, as a microphone would send it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_tests::{host_section, repo_root, scripted, TestServer};
use serde_json::{json, Value};
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

const JFK: &str =
    "and so my fellow americans ask not what your country can do for you ask what you can do for your country";

/// The real TTS, STT and VAD (default settings, absolute paths) and the
/// scripted chat with `chat` as its table.
fn config(chat: &str, vad: bool) -> String {
    let models = repo_root().join("models");
    let path = |p: &str| models.join(p).display().to_string();
    let mut text = format!(
        "{}[tts]\nplugin = \"tts-piper\"\n[tts.config]\nvoice = {:?}\nruntime = {:?}\n\
         [stt]\nplugin = \"stt-whisper\"\n[stt.config]\nmodel = {:?}\nlanguage = \"en\"\n{}",
        host_section(""),
        path("piper/en_US-joe-medium.onnx"),
        path("onnxruntime/libonnxruntime.so.1.32.0"),
        path("whisper/ggml-tiny.en-q8_0.bin"),
        scripted("chat", chat),
    );
    if vad {
        text.push_str(&format!(
            "[vad]\nplugin = \"vad-silero\"\n[vad.config]\nmodel = {:?}\nruntime = {:?}\n",
            path("vad/silero_vad.onnx"),
            path("onnxruntime/libonnxruntime.so.1.32.0"),
        ));
    }
    text
}

/// The JFK clip, 16 kHz mono PCM16.
fn jfk() -> Vec<i16> {
    let path = repo_root().join("samples/jfk.wav");
    let audio = hearth::audio::read_wav(&path).expect("samples/jfk.wav: run scripts/fetch-models.sh");
    assert_eq!((audio.sample_rate, audio.channels), (16_000, 1));
    audio.samples.iter().map(|&s| (s * 32768.0) as i16).collect()
}

/// JFK's last phrase, "ask what you can do for your country" (8.0–10.8 s).
fn last_phrase() -> Vec<i16> {
    jfk()[8 * 16_000..(10.8 * 16_000.0) as usize].to_vec()
}

fn silence(ms: usize) -> Vec<i16> {
    vec![0; ms * 16]
}

fn normalize(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == ' ' { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Connects and starts hands-free listening at 16 kHz.
async fn listen(server: &TestServer) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/conversation"))
        .await
        .unwrap();
    let hello = next_event(&mut socket).await;
    assert_eq!(hello["type"], "ready");
    assert_eq!(hello["hands_free"], true, "{hello}");
    let start = json!({"type": "start", "mode": "hands_free", "format": "pcm16", "sample_rate": 16000, "channels": 1});
    socket.send(Message::Text(start.to_string().into())).await.unwrap();
    let listening = next_event(&mut socket).await;
    assert_eq!(listening["type"], "listening", "{listening}");
    socket
}

async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a message within 20 s")
            .expect("socket open")
            .expect("no error");
        if let Message::Text(t) = message {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// What the server sent: events in order, and the audio bytes received.
#[derive(Default)]
struct Heard {
    events: Vec<Value>,
    audio_bytes: usize,
}

impl Heard {
    fn of(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == kind).collect()
    }
}

/// Streams `audio` in 20 ms frames at real-time pace while collecting
/// what comes back, then keeps collecting until `dones` turns ended (or
/// 30 s passed).
async fn stream(socket: Socket, audio: Vec<i16>, dones: usize) -> Heard {
    let (mut tx, mut rx) = socket.split();
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for frame in audio.chunks(320) {
            tick.tick().await;
            let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
            tx.send(Message::Binary(bytes.into())).await.unwrap();
        }
        tx
    });
    let mut heard = Heard::default();
    let collect = async {
        while let Some(Ok(message)) = rx.next().await {
            match message {
                Message::Text(t) => {
                    let event: Value = serde_json::from_str(&t).unwrap();
                    let done = event["type"] == "done";
                    heard.events.push(event);
                    if done && heard.of("done").len() == dones {
                        break;
                    }
                }
                Message::Binary(b) => heard.audio_bytes += b.len(),
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(60), collect).await;
    let _ = sender.await;
    heard
}

#[tokio::test]
async fn the_jfk_clip_streamed_hands_free_is_one_utterance_heard_piece_by_piece_and_answered() {
    let server = TestServer::settled(&config("reply = \"Thank you. Ask away.\"", true)).await;
    // Two lead-ins: the VAD's 32 ms frames fall differently on the speech,
    // and so do the stretches' edges ("ask not" was once heard as "asked
    // not" with one and not the other).
    for lead_ms in [1000, 500] {
        let socket = listen(&server).await;
        let audio = [silence(lead_ms), jfk(), silence(2500)].concat();
        let heard = stream(socket, audio, 1).await;
        let kinds: Vec<&str> = heard.events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(heard.of("speech_started").len(), 1, "{lead_ms} ms: {kinds:?}");
        assert_eq!(heard.of("speech_ended").len(), 1, "{lead_ms} ms: {kinds:?}");
        // JFK pauses three times: what he said before the last pause is
        // heard while he is still speaking (a partial superseded by a
        // longer one before it was ready is not sent, so how many depends
        // on the load).
        let partials = heard.of("partial_transcript");
        assert!(!partials.is_empty(), "{lead_ms} ms: {kinds:?}");
        let first_partial = kinds.iter().position(|k| *k == "partial_transcript").unwrap();
        let ended = kinds.iter().position(|k| *k == "speech_ended").unwrap();
        assert!(first_partial < ended, "{lead_ms} ms: {kinds:?}");
        // The joined words are the known text.
        let transcript = heard.of("transcript")[0];
        assert_eq!(
            normalize(transcript["text"].as_str().unwrap()),
            JFK,
            "{lead_ms} ms: {transcript}"
        );
        let done = heard.of("done")[0];
        assert_eq!(done["ok"], true, "{done}");
        assert_eq!(done["reply"], "Thank you. Ask away.");
        assert!(heard.audio_bytes > 16_000, "{} bytes of reply audio", heard.audio_bytes);
        // The speech started about 0.3 s into the clip (JFK's first word).
        let at = heard.of("speech_started")[0]["at_ms"].as_u64().unwrap();
        let lead = lead_ms as u64;
        assert!(
            (lead..=lead + 700).contains(&at),
            "{lead_ms} ms: speech started at {at} ms"
        );
    }
}

#[tokio::test]
async fn two_utterances_with_a_pause_between_are_two_turns() {
    let server = TestServer::settled(&config("reply = \"Yes.\"", true)).await;
    let socket = listen(&server).await;
    // 5 s between: the first reply (a word) has long been played when the
    // second utterance starts, so nothing is cancelled.
    let audio = [silence(500), last_phrase(), silence(5000), last_phrase(), silence(2500)].concat();
    let heard = stream(socket, audio, 2).await;
    let kinds: Vec<&str> = heard.events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(heard.of("speech_started").len(), 2, "{kinds:?}");
    let transcripts = heard.of("transcript");
    assert_eq!(transcripts.len(), 2, "{kinds:?}");
    for t in transcripts {
        assert_eq!(
            normalize(t["text"].as_str().unwrap()),
            "ask what you can do for your country",
            "{t}"
        );
    }
    assert!(heard.of("done").iter().all(|d| d["ok"] == true), "{kinds:?}");
    assert!(heard.of("cancelled").is_empty(), "{kinds:?}");
}

#[tokio::test]
async fn speech_during_the_reply_cancels_it_and_the_new_utterance_is_answered() {
    // A reply of many slow words: still going when the person speaks again.
    let reply = "One. Two. Three. Four. Five. Six. Seven. Eight. Nine. Ten. Eleven. Twelve.";
    let server = TestServer::settled(&config(&format!("reply = {reply:?}\ntoken_ms = 400"), true)).await;
    let socket = listen(&server).await;
    // The first utterance ends after ~1.5 s of silence; the reply then
    // takes over 10 s, and the second utterance comes 3 s after the first.
    let audio = [silence(500), last_phrase(), silence(3000), last_phrase(), silence(2500)].concat();
    let heard = stream(socket, audio, 2).await;
    let kinds: Vec<&str> = heard.events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let cancelled = heard.of("cancelled");
    assert_eq!(cancelled.len(), 1, "{kinds:?}");
    assert_eq!(cancelled[0]["reason"], "barge_in");
    let dones = heard.of("done");
    assert_eq!(dones[0]["cancelled"], true, "{kinds:?}");
    // The cancel came with the second speech start, before its transcript.
    let cancel_at = kinds.iter().position(|k| *k == "cancelled").unwrap();
    let second_start = kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| **k == "speech_started")
        .nth(1)
        .unwrap()
        .0;
    assert!(cancel_at < second_start, "{kinds:?}");
    assert_eq!(heard.of("transcript").len(), 2, "{kinds:?}");
    assert_eq!(dones[1]["cancelled"], false, "{kinds:?}");
}

#[tokio::test]
async fn without_a_vad_hands_free_is_refused_with_what_to_do() {
    let server = TestServer::settled(&config("", false)).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/conversation"))
        .await
        .unwrap();
    let hello = next_event(&mut socket).await;
    assert_eq!(hello["hands_free"], false, "{hello}");
    let start = json!({"type": "start", "mode": "hands_free", "sample_rate": 16000});
    socket.send(Message::Text(start.to_string().into())).await.unwrap();
    let error = next_event(&mut socket).await;
    assert_eq!(error["code"], "vad_unavailable", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("[vad]") && message.contains("push-to-talk"),
        "{message}"
    );
}
