//! The conversation protocol without a browser: real WebSocket clients
//! against a server on loopback, driven by the scripted engine. Every bad
//! input gets an error event or a documented close code, and the host
//! stays up.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_tests::{host_section, scripted, TestServer};
use serde_json::{json, Value};
use tokio_tungstenite::{
    tungstenite::{protocol::frame::coding::CloseCode, Message},
    MaybeTlsStream, WebSocketStream,
};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn engines(extra_host: &str, tts: &str, stt: &str, chat: &str) -> String {
    format!(
        "{}{}{}{}",
        host_section(extra_host),
        scripted("tts", tts),
        scripted("stt", stt),
        scripted("chat", chat)
    )
}

async fn connect(server: &TestServer) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/conversation"))
        .await
        .unwrap();
    socket
}

/// The next message, within 10 s.
async fn next(socket: &mut Socket) -> Message {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a message within 10 s")
        .expect("socket open")
        .expect("no error")
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        match next(socket).await {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a JSON event, got {other:?}"),
        }
    }
}

async fn send(socket: &mut Socket, value: Value) {
    socket.send(Message::Text(value.to_string().into())).await.unwrap();
}

/// Everything up to and including `done`: events and audio byte counts.
async fn until_done(socket: &mut Socket) -> (Vec<Value>, Vec<usize>) {
    let mut events = Vec::new();
    let mut audio = Vec::new();
    loop {
        match next(socket).await {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                let done = v["type"] == "done";
                events.push(v);
                if done {
                    return (events, audio);
                }
            }
            Message::Binary(b) => audio.push(b.len()),
            _ => {}
        }
    }
}

async fn greeted(server: &TestServer) -> (Socket, Value) {
    let mut socket = connect(server).await;
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["type"], "ready");
    (socket, hello)
}

#[tokio::test]
async fn refused_with_1013_before_ready() {
    let server = TestServer::start(&engines("", "load_ms = 3000", "", "")).await;
    let mut socket = connect(&server).await;
    match next(&mut socket).await {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Again);
            assert!(frame.reason.contains("not ready"), "{}", frame.reason);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_typed_message_streams_text_and_one_audio_chunk_per_sentence() {
    let server = TestServer::settled(&engines(
        "",
        "sample_rate = 8000",
        "",
        "reply = \"Hello there. How are you today?\"\ntoken_ms = 10",
    ))
    .await;
    let (mut socket, hello) = greeted(&server).await;
    assert_eq!(hello["stt"], true);
    send(&mut socket, json!({"type": "text", "text": "hi"})).await;
    let (events, audio) = until_done(&mut socket).await;
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "reply_delta")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Hello there. How are you today?");
    let headers: Vec<&Value> = events.iter().filter(|e| e["type"] == "audio").collect();
    assert_eq!(headers.len(), 2, "one chunk per sentence: {events:#?}");
    assert_eq!(headers[0]["text"], "Hello there.");
    assert_eq!(headers[0]["sample_rate"], 8000);
    assert_eq!(headers[1]["text"], "How are you today?");
    assert_eq!(audio.len(), 2);
    assert_eq!(audio[0], headers[0]["samples"].as_u64().unwrap() as usize * 2);
    // The first sentence's audio went out before the reply was complete.
    let first_audio = events.iter().position(|e| e["type"] == "audio").unwrap();
    let last_delta = events.iter().rposition(|e| e["type"] == "reply_delta").unwrap();
    assert!(first_audio < last_delta, "not pipelined: {events:#?}");
    let done = events.last().unwrap();
    assert_eq!(done["ok"], true);
    assert_eq!(done["cancelled"], false);
    assert_eq!(done["reply"], "Hello there. How are you today?");
    for key in ["first_token_ms", "first_audio_ms", "total_ms"] {
        assert!(done["timings"][key].as_f64().is_some(), "{key} missing: {done}");
    }
}

#[tokio::test]
async fn an_utterance_is_transcribed_then_answered_at_16_and_48_khz() {
    let server = TestServer::settled(&engines("", "", "transcript = \"what time is it\"", "")).await;
    let (mut socket, _) = greeted(&server).await;
    for rate in [16_000u32, 48_000] {
        send(
            &mut socket,
            json!({"type": "start", "format": "pcm16", "sample_rate": rate, "channels": 1}),
        )
        .await;
        // One second of a tone (the scripted recognizer hears nothing in
        // silence).
        let second: Vec<u8> = (0..rate)
            .flat_map(|i| {
                (((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16).to_le_bytes()
            })
            .collect();
        for chunk in second.chunks(rate as usize / 5) {
            socket.send(Message::Binary(chunk.to_vec().into())).await.unwrap();
        }
        send(&mut socket, json!({"type": "end"})).await;
        let (events, _) = until_done(&mut socket).await;
        let transcript = events.iter().find(|e| e["type"] == "transcript").expect("transcript");
        assert_eq!(transcript["text"], "what time is it");
        assert_eq!(
            transcript["segments"][0]["end_ms"], 1000,
            "{rate} Hz: one second of audio"
        );
        let done = events.last().unwrap();
        assert_eq!(done["reply"], "You said: what time is it");
        assert!(done["timings"]["stt_ms"].as_f64().is_some());
    }
}

#[tokio::test]
async fn without_stt_typing_works_and_audio_gets_an_error() {
    let server = TestServer::settled(&engines("", "", "fail_load = \"no whisper model\"", "")).await;
    let (mut socket, hello) = greeted(&server).await;
    assert_eq!(hello["stt"], false);
    assert!(hello["stt_reason"].as_str().unwrap().contains("no whisper model"));
    send(&mut socket, json!({"type": "start", "sample_rate": 16000})).await;
    let error = next_json(&mut socket).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "stt_unavailable");
    assert!(error["message"].as_str().unwrap().contains("no whisper model"));
    send(&mut socket, json!({"type": "text", "text": "typed"})).await;
    let (events, _) = until_done(&mut socket).await;
    assert_eq!(events.last().unwrap()["reply"], "You said: typed");
}

#[tokio::test]
async fn every_bad_input_gets_an_error_event_and_the_session_goes_on() {
    let server = TestServer::settled(&engines("", "", "", "")).await;
    let (mut socket, _) = greeted(&server).await;
    let cases: Vec<(Message, &str, &str)> = vec![
        (Message::Text("{not json".into()), "bad_message", "not JSON"),
        (
            Message::Text(r#"{"type":"dance"}"#.into()),
            "bad_message",
            "unknown type `dance`",
        ),
        (
            Message::Text(r#"{"text":"no type"}"#.into()),
            "bad_message",
            "needs a \"type\"",
        ),
        (
            Message::Text(r#"{"type":"text"}"#.into()),
            "bad_message",
            "bad `text` message",
        ),
        (
            Message::Binary(vec![0u8; 64].into()),
            "no_utterance",
            "audio before `start`",
        ),
        (
            Message::Text(r#"{"type":"end"}"#.into()),
            "no_utterance",
            "`end` without `start`",
        ),
        (
            Message::Text(r#"{"type":"text","text":"   "}"#.into()),
            "empty_text",
            "empty",
        ),
        (
            Message::Text(r#"{"type":"start","format":"pcm8","sample_rate":16000}"#.into()),
            "bad_format",
            "format `pcm8`",
        ),
        (
            Message::Text(r#"{"type":"start","sample_rate":16000,"channels":2}"#.into()),
            "bad_format",
            "mono",
        ),
        (
            Message::Text(r#"{"type":"start","sample_rate":96000}"#.into()),
            "bad_format",
            "96000",
        ),
    ];
    for (message, code, needle) in cases {
        socket.send(message).await.unwrap();
        let error = next_json(&mut socket).await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["code"], code, "{error}");
        assert!(error["message"].as_str().unwrap().contains(needle), "{error}");
    }
    // Odd byte counts are not PCM16.
    send(&mut socket, json!({"type": "start", "sample_rate": 16000})).await;
    socket.send(Message::Binary(vec![0u8; 3].into())).await.unwrap();
    assert_eq!(next_json(&mut socket).await["code"], "bad_audio");
    // Still working.
    send(&mut socket, json!({"type": "text", "text": "still there?"})).await;
    let (events, _) = until_done(&mut socket).await;
    assert_eq!(events.last().unwrap()["ok"], true);
}

#[tokio::test]
async fn oversized_messages_and_utterances_are_refused() {
    let conversation = "[conversation]\nmax_message_bytes = 4096\nmax_utterance = \"1s\"\n";
    let server = TestServer::settled(&format!("{}{}", engines("", "", "", ""), conversation)).await;
    let (mut socket, _) = greeted(&server).await;
    // An utterance longer than max_utterance.
    send(&mut socket, json!({"type": "start", "sample_rate": 8000})).await;
    for _ in 0..5 {
        socket.send(Message::Binary(vec![0u8; 4000].into())).await.unwrap();
    }
    let error = next_json(&mut socket).await;
    assert_eq!(error["code"], "utterance_too_long");
    // A single frame over max_message_bytes closes with 1009.
    socket.send(Message::Binary(vec![0u8; 5000].into())).await.unwrap();
    let error = next_json(&mut socket).await;
    assert_eq!(error["code"], "message_too_big");
    match next(&mut socket).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    let livez = reqwest::get(server.url("/livez")).await.unwrap();
    assert_eq!(livez.status(), 200, "the host stays up");
}

#[tokio::test]
async fn cancel_stops_the_reply() {
    let words = vec!["word"; 200].join(" ");
    let server = TestServer::settled(&engines("", "", "", &format!("reply = \"{words}.\"\ntoken_ms = 20"))).await;
    let (mut socket, _) = greeted(&server).await;
    send(&mut socket, json!({"type": "text", "text": "talk a lot"})).await;
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "reply_delta");
    send(&mut socket, json!({"type": "cancel"})).await;
    let (events, _) = until_done(&mut socket).await;
    let done = events.last().unwrap();
    assert_eq!(done["cancelled"], true);
    let said = done["reply"].as_str().unwrap().split(' ').count();
    assert!(said < 100, "the engine kept going: {said} words");
}

#[tokio::test]
async fn extra_conversations_are_refused_and_a_disconnect_frees_the_engines() {
    // 400 tokens at 25 ms: a 10 s reply unless the disconnect stops it.
    let words = vec!["word"; 400].join(" ");
    let config = format!(
        "{}[conversation]\nmax_conversations = 1\n",
        engines("", "", "", &format!("reply = \"{words}.\"\ntoken_ms = 25"))
    );
    let server = TestServer::settled(&config).await;
    let (mut first, _) = greeted(&server).await;
    let mut second = connect(&server).await;
    match next(&mut second).await {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Again);
            assert!(
                frame.reason.contains("too many conversations (max 1)"),
                "{}",
                frame.reason
            );
        }
        other => panic!("expected close 1013, got {other:?}"),
    }
    send(&mut first, json!({"type": "text", "text": "go on"})).await;
    assert_eq!(next_json(&mut first).await["type"], "reply_delta");
    drop(first);
    // The session ends only once its engines stopped; well before the 10 s
    // reply would have finished, the slot is free again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut socket = connect(&server).await;
        match next(&mut socket).await {
            Message::Text(t) if t.contains("\"ready\"") => break,
            _ => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the cancelled reply still holds the slot"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_worker_crash_mid_turn_is_a_tts_failed_event_and_the_session_stays_open() {
    let server = TestServer::settled(&engines(
        "",
        "crash = \"segv\"\ncrash_in = \"operation\"",
        "",
        "reply = \"One. Two. Three.\"",
    ))
    .await;
    let (mut socket, _) = greeted(&server).await;
    send(&mut socket, json!({"type": "text", "text": "hi"})).await;
    let (events, _) = until_done(&mut socket).await;
    let failed = events
        .iter()
        .find(|e| e["type"] == "error" && e["code"] == "tts_failed")
        .unwrap_or_else(|| panic!("no tts_failed: {events:#?}"));
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("worker for tts (scripted-tts) died: signal 11 (SIGSEGV) during synthesize"),
        "{message}"
    );
    assert_eq!(events.last().unwrap()["ok"], false);
    // The session is still open: the next turn is answered (TTS is now
    // failed, so it is refused with a reason rather than hanging).
    send(&mut socket, json!({"type": "text", "text": "again"})).await;
    let (events, _) = until_done(&mut socket).await;
    assert_eq!(events.last().unwrap()["type"], "done", "{events:#?}");
}
