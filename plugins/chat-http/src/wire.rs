//! What goes over the wire, without any I/O: request bodies for both
//! dialects, the line splitter for streamed bodies, and the parsers of one
//! streamed line (OpenAI's SSE `data:` lines, Ollama's NDJSON objects) and
//! of error bodies.

use hearth_plugin_api::{ChatMessage, ChatRole};
use serde_json::{json, Map, Value};

use crate::config::{Config, Options};

/// Cuts a byte stream into lines, whatever the chunk boundaries.
///
/// Splitting happens on bytes, so a UTF-8 character or a JSON object cut in
/// two by the network is put back together before anything parses it.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds a chunk and returns the lines it completed, without their
    /// `\n` or `\r\n`.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let line = &self.pending[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            lines.push(String::from_utf8_lossy(line).into_owned());
            start = end + 1;
        }
        self.pending.drain(..start);
        lines
    }

    /// What is left after the stream ended: a last line without a newline.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let text = String::from_utf8_lossy(&rest).trim().to_owned();
        (!text.is_empty()).then_some(text)
    }
}

/// One step of a streamed reply, in either dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A piece of the reply (may be empty, e.g. OpenAI's first `role` chunk),
    /// and the finish reason if this piece ends the reply.
    Piece {
        /// Text to pass on.
        text: String,
        /// `stop`, `length`, ... when generation ended with this piece.
        finish: Option<String>,
    },
    /// The end of the stream (OpenAI's `data: [DONE]`; Ollama's `done:true`
    /// line is reported as a `Piece` with `finish`).
    Done,
    /// The server reported an error inside the stream.
    Error(String),
    /// Nothing to act on: blank lines, SSE comments, `event:` or `id:` lines.
    Ignore,
}

/// Parses one line of an OpenAI `text/event-stream` body.
pub fn parse_sse_line(line: &str) -> Event {
    let Some(data) = line.strip_prefix("data:") else {
        return Event::Ignore;
    };
    let data = data.trim();
    if data == "[DONE]" {
        return Event::Done;
    }
    if data.is_empty() {
        return Event::Ignore;
    }
    let value: Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => return Event::Error(format!("unreadable stream line ({e}): {}", clip(data, 200))),
    };
    if let Some(message) = error_in(&value) {
        return Event::Error(message);
    }
    let choice = &value["choices"][0];
    Event::Piece {
        text: choice["delta"]["content"].as_str().unwrap_or_default().to_owned(),
        finish: choice["finish_reason"].as_str().map(str::to_owned),
    }
}

/// Parses one line of an Ollama NDJSON body.
pub fn parse_ndjson_line(line: &str) -> Event {
    let line = line.trim();
    if line.is_empty() {
        return Event::Ignore;
    }
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return Event::Error(format!("unreadable stream line ({e}): {}", clip(line, 200))),
    };
    if let Some(message) = error_in(&value) {
        return Event::Error(message);
    }
    let done = value["done"].as_bool().unwrap_or(false);
    Event::Piece {
        text: value["message"]["content"].as_str().unwrap_or_default().to_owned(),
        finish: done.then(|| value["done_reason"].as_str().unwrap_or("stop").to_owned()),
    }
}

/// The message of an error object in either dialect:
/// `{"error":"..."}` (Ollama) or `{"error":{"message":"...",...}}` (OpenAI).
pub fn error_in(value: &Value) -> Option<String> {
    match &value["error"] {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => Some(
            o.get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| Value::Object(o.clone()).to_string()),
        ),
        _ => None,
    }
}

/// The message of an error response body, or the body itself, clipped.
pub fn error_body(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| error_in(&v))
        .unwrap_or_else(|| clip(body.trim(), 300).to_owned())
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The conversation as JSON messages, with the configured system prompt in
/// front unless the conversation already starts with a system message.
pub fn messages(system_prompt: Option<&str>, conversation: &[ChatMessage]) -> Vec<Value> {
    let starts_with_system = conversation.first().is_some_and(|m| m.role == ChatRole::SYSTEM);
    let prompt = system_prompt.filter(|_| !starts_with_system);
    prompt
        .map(|p| json!({"role": "system", "content": p}))
        .into_iter()
        .chain(
            conversation
                .iter()
                .map(|m| json!({"role": m.role.as_str(), "content": m.content.as_str()})),
        )
        .collect()
}

/// The body of a streamed OpenAI `/chat/completions` request, with
/// `options` (the configured ones with a request's over them).
pub fn openai_chat(model: &str, messages: Vec<Value>, options: &Options) -> Value {
    let mut body = json!({"model": model, "messages": messages, "stream": true});
    put_openai_options(body.as_object_mut().expect("object"), options);
    body
}

/// The body of the one-token completion that warms an OpenAI server.
pub fn openai_warmup(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 1,
        "stream": false,
    })
}

fn put_openai_options(body: &mut Map<String, Value>, o: &Options) {
    if let Some(t) = o.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(n) = o.max_tokens {
        body.insert("max_tokens".into(), json!(n));
    }
    if !o.stop.is_empty() {
        body.insert("stop".into(), json!(o.stop));
    }
    if let Some(s) = o.seed {
        body.insert("seed".into(), json!(s));
    }
}

/// The body of a streamed Ollama `/api/chat` request, with `options`.
pub fn ollama_chat(config: &Config, model: &str, messages: Vec<Value>, options: &Options) -> Value {
    let mut body = json!({"model": model, "messages": messages, "stream": true});
    let o = options;
    let mut options = Map::new();
    if let Some(t) = o.temperature {
        options.insert("temperature".into(), json!(t));
    }
    if let Some(n) = o.max_tokens {
        options.insert("num_predict".into(), json!(n));
    }
    if let Some(n) = o.num_ctx {
        options.insert("num_ctx".into(), json!(n));
    }
    if !o.stop.is_empty() {
        options.insert("stop".into(), json!(o.stop));
    }
    if let Some(s) = o.seed {
        options.insert("seed".into(), json!(s));
    }
    let map = body.as_object_mut().expect("object");
    if !options.is_empty() {
        map.insert("options".into(), Value::Object(options));
    }
    if let Some(k) = &config.keep_alive {
        map.insert("keep_alive".into(), k.to_json());
    }
    body
}

/// The body of Ollama's preload: `/api/generate` with a model and no prompt.
pub fn ollama_preload(config: &Config, model: &str) -> Value {
    let mut body = json!({"model": model});
    if let Some(k) = &config.keep_alive {
        body["keep_alive"] = k.to_json();
    }
    if let Some(n) = config.options.num_ctx {
        body["options"] = json!({"num_ctx": n});
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_survive_any_chunking() {
        let text = "{\"a\":\"é\"}\r\n{\"b\":2}\n\n{\"c\":3}";
        for cut in 1..text.len() {
            let bytes = text.as_bytes();
            let mut s = LineSplitter::default();
            let mut lines = s.push(&bytes[..cut]);
            lines.extend(s.push(&bytes[cut..]));
            lines.extend(s.finish());
            assert_eq!(lines, ["{\"a\":\"é\"}", "{\"b\":2}", "", "{\"c\":3}"], "cut at {cut}");
        }
    }

    #[test]
    fn sse_lines() {
        assert_eq!(
            parse_sse_line(r#"data: {"choices":[{"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#),
            Event::Piece {
                text: String::new(),
                finish: None
            }
        );
        assert_eq!(
            parse_sse_line(r#"data: {"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}"#),
            Event::Piece {
                text: "Hi".into(),
                finish: None
            }
        );
        assert_eq!(
            parse_sse_line(r#"data: {"choices":[{"delta":{},"finish_reason":"length"}]}"#),
            Event::Piece {
                text: String::new(),
                finish: Some("length".into())
            }
        );
        assert_eq!(parse_sse_line("data: [DONE]"), Event::Done);
        assert_eq!(parse_sse_line(": keep-alive"), Event::Ignore);
        assert_eq!(parse_sse_line("event: message"), Event::Ignore);
        assert_eq!(
            parse_sse_line(r#"data: {"error":{"code":500,"message":"boom","type":"server_error"}}"#),
            Event::Error("boom".into())
        );
    }

    #[test]
    fn ndjson_lines() {
        assert_eq!(
            parse_ndjson_line(r#"{"model":"m","message":{"role":"assistant","content":"He"},"done":false}"#),
            Event::Piece {
                text: "He".into(),
                finish: None
            }
        );
        assert_eq!(
            parse_ndjson_line(
                r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","eval_count":3}"#
            ),
            Event::Piece {
                text: String::new(),
                finish: Some("length".into())
            }
        );
        assert_eq!(
            parse_ndjson_line(r#"{"error":"out of memory"}"#),
            Event::Error("out of memory".into())
        );
    }

    #[test]
    fn system_prompt_is_not_duplicated() {
        let user = ChatMessage {
            role: ChatRole::USER,
            content: "hi".into(),
        };
        let system = ChatMessage {
            role: ChatRole::SYSTEM,
            content: "be brief".into(),
        };
        let m = messages(Some("be kind"), std::slice::from_ref(&user));
        assert_eq!(m.len(), 2);
        assert_eq!(m[0]["content"], "be kind");
        let m = messages(Some("be kind"), &[system, user]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0]["content"], "be brief");
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_body(r#"{"error":"model \"x\" not found, try pulling it first"}"#),
            "model \"x\" not found, try pulling it first"
        );
        assert_eq!(
            error_body(r#"{"error":{"code":404,"message":"Model not found","type":"not_found_error"}}"#),
            "Model not found"
        );
        assert_eq!(error_body("plain text"), "plain text");
    }
}
