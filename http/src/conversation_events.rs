//! Every event the server sends on `/ws/conversation`, typed: one variant
//! per `type`, serialized as the JSON text frames the page and other
//! clients read. `docs/conversation-protocol.md` documents each one; a test
//! checks that the document and this enum name the same events.

use axum::extract::ws::Message;
use serde::Serialize;

/// One event to a conversation's client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The conversation is open: what it can do and take.
    Ready {
        /// Whether speech to text is ready (utterances can be answered).
        stt: bool,
        /// Why not, when it is not.
        stt_reason: Option<String>,
        /// Whether hands-free listening is possible (STT and VAD ready).
        hands_free: bool,
        /// The audio it takes.
        input: InputFormats,
        /// The longest utterance, in ms.
        max_utterance_ms: u64,
        /// The largest message, in bytes.
        max_message_bytes: usize,
    },
    /// Hands-free listening began.
    Listening {
        /// Always `hands_free`.
        mode: &'static str,
    },
    /// Hands-free listening stopped.
    ListeningStopped,
    /// The history was forgotten.
    Reset,
    /// The reply was cancelled (hands-free: the person spoke over it).
    Cancelled {
        /// Why: `barge_in`.
        reason: &'static str,
    },
    /// Hands-free: an utterance began, `at_ms` into the stream.
    SpeechStarted {
        /// Where, in ms of the stream.
        at_ms: u64,
    },
    /// Hands-free: what was heard of the utterance so far.
    PartialTranscript {
        /// The whole utterance so far.
        text: String,
        /// The part just transcribed.
        segment: Segment,
    },
    /// Hands-free: the utterance is over.
    SpeechEnded {
        /// Where, in ms of the stream.
        at_ms: u64,
    },
    /// What speech to text heard.
    Transcript {
        /// The words.
        text: String,
        /// Where they were heard.
        segments: Vec<Segment>,
    },
    /// The next piece of the reply.
    ReplyDelta {
        /// The piece.
        text: String,
    },
    /// The header of one chunk of speech; the next binary frame holds its
    /// samples.
    Audio {
        /// Always `pcm16`.
        format: &'static str,
        /// Always 1.
        channels: u16,
        /// Samples per second.
        sample_rate: u32,
        /// How many samples the binary frame holds.
        samples: usize,
        /// The sentence the chunk begins (empty when it continues one).
        text: String,
    },
    /// The turn is over.
    Done(Done),
    /// Something was wrong.
    Error {
        /// Stable and machine-readable (see the protocol document).
        code: &'static str,
        /// For people: what and why.
        message: String,
    },
}

impl ServerEvent {
    /// The event as a WebSocket text frame.
    pub fn message(&self) -> Message {
        Message::Text(
            serde_json::to_string(self)
                .expect("a conversation event serializes")
                .into(),
        )
    }

    /// An `error` event.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }

    /// The `done` of a turn that failed.
    pub fn failed(error: impl Into<String>) -> Self {
        Self::Done(Done {
            ok: false,
            cancelled: false,
            error: Some(error.into()),
            ..Done::default()
        })
    }
}

/// The audio a conversation takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputFormats {
    /// Always `pcm16`.
    pub format: &'static str,
    /// Always 1.
    pub channels: u16,
    /// The rates it reads.
    pub sample_rates: &'static [u32],
}

/// Where some words were heard, in ms from the utterance's start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// From.
    pub start_ms: u64,
    /// To.
    pub end_ms: u64,
    /// The words, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// How a turn ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Done {
    /// No engine failed.
    pub ok: bool,
    /// The turn was cancelled (barge-in, a new message, `cancel`).
    pub cancelled: bool,
    /// The reply, when the turn got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// How long its parts took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// What failed, with `ok: false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How long a turn's parts took, in ms (to a tenth): each present when the
/// turn got to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    /// The STT call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stt_ms: Option<f64>,
    /// From the end of the utterance (or the message) to the first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<f64>,
    /// From the chat call's start to its first complete sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_first_sentence_ms: Option<f64>,
    /// From that sentence's synthesis to its first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tts_first_chunk_ms: Option<f64>,
    /// From the end of the utterance (or the message) to the first audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_audio_ms: Option<f64>,
    /// The whole turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// One event of each kind. The match makes a new variant fail to
    /// compile until it is added here, and so to the document check.
    fn one_of_each() -> Vec<ServerEvent> {
        let segment = Segment {
            start_ms: 0,
            end_ms: 10,
            text: None,
        };
        let all = vec![
            ServerEvent::Ready {
                stt: true,
                stt_reason: None,
                hands_free: false,
                input: InputFormats {
                    format: "pcm16",
                    channels: 1,
                    sample_rates: &[16_000],
                },
                max_utterance_ms: 1,
                max_message_bytes: 1,
            },
            ServerEvent::Listening { mode: "hands_free" },
            ServerEvent::ListeningStopped,
            ServerEvent::Reset,
            ServerEvent::Cancelled { reason: "barge_in" },
            ServerEvent::SpeechStarted { at_ms: 1 },
            ServerEvent::PartialTranscript {
                text: "a".into(),
                segment: segment.clone(),
            },
            ServerEvent::SpeechEnded { at_ms: 2 },
            ServerEvent::Transcript {
                text: "a".into(),
                segments: vec![segment],
            },
            ServerEvent::ReplyDelta { text: "a".into() },
            ServerEvent::Audio {
                format: "pcm16",
                channels: 1,
                sample_rate: 22_050,
                samples: 2,
                text: String::new(),
            },
            ServerEvent::Done(Done::default()),
            ServerEvent::error("bad_message", "x"),
        ];
        for event in &all {
            match event {
                ServerEvent::Ready { .. }
                | ServerEvent::Listening { .. }
                | ServerEvent::ListeningStopped
                | ServerEvent::Reset
                | ServerEvent::Cancelled { .. }
                | ServerEvent::SpeechStarted { .. }
                | ServerEvent::PartialTranscript { .. }
                | ServerEvent::SpeechEnded { .. }
                | ServerEvent::Transcript { .. }
                | ServerEvent::ReplyDelta { .. }
                | ServerEvent::Audio { .. }
                | ServerEvent::Done(_)
                | ServerEvent::Error { .. } => {}
            }
        }
        all
    }

    fn type_of(event: &ServerEvent) -> String {
        let json = serde_json::to_value(event).unwrap();
        json["type"].as_str().unwrap().to_owned()
    }

    /// The types of `{"type": "…"}` objects in `text`, spaced or not.
    fn types_in(text: &str) -> BTreeSet<String> {
        ["{\"type\": \"", "{\"type\":\""]
            .iter()
            .flat_map(|prefix| {
                text.match_indices(prefix).map(move |(at, _)| {
                    let rest = &text[at + prefix.len()..];
                    rest[..rest.find('"').unwrap()].to_owned()
                })
            })
            .collect()
    }

    #[test]
    fn the_protocol_document_names_every_event_and_no_other() {
        let doc = include_str!("../../docs/conversation-protocol.md");
        // The server-to-client table: one row per event the server sends.
        let server_part = doc
            .split("## Server → client")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("the document has a server-to-client section");
        let rows: String = server_part
            .lines()
            .filter(|line| line.starts_with("| `{"))
            .map(|line| line.split(" | ").next().unwrap_or_default())
            .collect();
        let table = types_in(&rows);
        let sent: BTreeSet<String> = one_of_each().iter().map(type_of).collect();
        let unsent: Vec<_> = table.difference(&sent).collect();
        assert!(
            unsent.is_empty(),
            "in the server-to-client table but never sent: {unsent:?}"
        );
        // Every event sent is documented: in that table, or where the
        // document explains the message it answers.
        let anywhere = types_in(doc);
        let undocumented: Vec<_> = sent.difference(&anywhere).collect();
        assert!(undocumented.is_empty(), "sent but not documented: {undocumented:?}");
        assert!(table.len() >= 8, "the table was read: {table:?}");
    }

    #[test]
    fn events_serialize_as_the_protocol_shows_them() {
        assert_eq!(
            serde_json::to_value(ServerEvent::failed("chat failed: x")).unwrap(),
            serde_json::json!({"type": "done", "ok": false, "cancelled": false, "error": "chat failed: x"})
        );
        assert_eq!(
            serde_json::to_value(ServerEvent::Done(Done {
                ok: true,
                cancelled: true,
                ..Done::default()
            }))
            .unwrap(),
            serde_json::json!({"type": "done", "ok": true, "cancelled": true})
        );
        assert_eq!(
            serde_json::to_value(ServerEvent::Transcript {
                text: "hi".into(),
                segments: vec![Segment {
                    start_ms: 0,
                    end_ms: 5,
                    text: Some("hi".into())
                }],
            })
            .unwrap(),
            serde_json::json!({"type": "transcript", "text": "hi", "segments": [{"start_ms": 0, "end_ms": 5, "text": "hi"}]})
        );
        assert_eq!(
            serde_json::to_value(ServerEvent::error("no_speech", "none")).unwrap(),
            serde_json::json!({"type": "error", "code": "no_speech", "message": "none"})
        );
    }
}
