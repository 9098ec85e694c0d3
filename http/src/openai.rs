//! The OpenAI-compatible endpoints under `/v1`: speech, transcription,
//! chat completions and the model list, so that clients written for
//! OpenAI's API (the `openai` SDKs, Open WebUI, Home Assistant's OpenAI
//! integrations) use Hearth's engines unchanged.
//!
//! Readiness-aware where the peers are not: a request that needs a service
//! that is not ready is answered 503 with `Retry-After` at once (never a
//! hang, never a 200 that fails later), and `/v1/models` answers 503 until
//! Hearth is READY, because clients probe it to decide whether the server
//! is up. Errors have OpenAI's shape (`{"error": {"message", "type",
//! "code"}}`), which is Hearth's one error shape ([`ApiError`]).
//!
//! Speech streams as it is synthesized: one engine chunk (a sentence) is
//! encoded and sent as soon as it exists, in the requested container, or
//! as `speech.audio.delta` Server-Sent Events. Audio formats are encoded
//! and decoded by `hearth-audio`.

use hearth_core::error::HostError;
use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use bytes::Bytes;
use hearth_audio::{AudioError, Format};
use hearth_plugin_api::{
    client::{Audio, ChatOptions, Message, Role, Samples, Transcription},
    Capabilities, Flow, SpeechOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use hearth_core::{
    calls::{Emitter, Streamed},
    config::ServiceName,
    engine::TtsHandle,
    readiness::{NotReady, Phase, Snapshot, Status},
};

use crate::{
    error::{echo, ApiError},
    extract::{Json, Multipart},
    AppState,
};

/// The longest `input` of a speech request, in characters (as OpenAI).
pub const MAX_SPEECH_INPUT: usize = 4096;
/// The largest upload to the transcription endpoint, in bytes (as OpenAI).
pub const MAX_UPLOAD_BYTES: usize = 25 * 1000 * 1000;
/// What the whole multipart body may add to the file.
pub const MAX_TRANSCRIPTION_BODY: usize = MAX_UPLOAD_BYTES + 64 * 1024;
/// OpenAI's voice names: each speaks with the loaded voice.
pub const OPENAI_VOICES: [&str; 13] = [
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage", "shimmer", "verse",
];
/// Model names OpenAI clients send, taken as the loaded engine of a kind.
const TTS_ALIASES: [&str; 3] = ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"];
const STT_ALIASES: [&str; 3] = ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"];
/// Engine chunks waiting to be sent to one client.
const STREAM_QUEUE: usize = 16;

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The model id of a service: its engine's model name, else its plugin's
/// name, else the service's.
fn model_id(snapshot: &Snapshot, service: ServiceName) -> String {
    let record = snapshot.service(service);
    record
        .and_then(|r| r.model.clone())
        .or_else(|| record.and_then(|r| r.plugin.as_ref().map(|p| p.name.clone())))
        .unwrap_or_else(|| service.as_str().to_owned())
}

/// Why `service` cannot serve now: still starting (503 with
/// `Retry-After`: ask again), failed or not installed (503 without: an
/// operator must act), or not configured at all (404: no such model).
fn not_ready(state: &AppState, snapshot: &Snapshot, service: ServiceName) -> ApiError {
    let configured = state
        .supervisor
        .config()
        .services
        .get(&service)
        .is_some_and(|c| c.enabled);
    if !configured {
        return ApiError::UnknownModel(format!(
            "no {service} engine is configured here: add a [{service}] section to plugins.toml and reload"
        ));
    }
    match snapshot.why_not_ready(service) {
        Some(NotReady::Failed { error }) => ApiError::Core(HostError::Unavailable {
            service,
            reason: format!("it failed ({error}); retry it with POST /api/services/{service}/retry"),
        }),
        Some(NotReady::NotInstalled { reason }) => ApiError::Core(HostError::Unavailable {
            service,
            reason: format!("it is not installed: {reason}"),
        }),
        why => ApiError::Core(HostError::NotReady {
            service,
            reason: format!(
                "it is {} (Hearth is {} at {}%); retry shortly",
                match why {
                    Some(NotReady::Starting { status, .. }) => status,
                    _ => Status::Pending,
                },
                snapshot.state.as_str(),
                snapshot.progress
            ),
        }),
    }
}

/// Checks that `model` names `service`'s engine (or one of `aliases`).
fn check_model(
    snapshot: &Snapshot,
    service: ServiceName,
    model: Option<&str>,
    aliases: &[&str],
) -> crate::error::Result<()> {
    let Some(model) = model.filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    let id = model_id(snapshot, service);
    if model == id || aliases.contains(&model) {
        return Ok(());
    }
    let mut names = vec![id];
    names.extend(aliases.iter().map(|a| (*a).to_owned()));
    Err(ApiError::UnknownModel(format!(
        "the model `{}` is not served here; for {service} use one of: {} (GET /v1/models lists them)",
        echo(model),
        names.join(", ")
    )))
}

// ---------------------------------------------------------------------------
// GET /v1/models

/// One entry of `GET /v1/models`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelEntry {
    /// The model's name: what a request's `model` names.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// When it was loaded (Unix seconds; 0 before).
    pub created: u64,
    /// The plugin that serves it.
    pub owned_by: String,
    /// Hearth's service: `tts`, `stt` or `chat`.
    pub service: &'static str,
    /// Whether it serves requests now.
    pub ready: bool,
    /// The service's status, as in `/api/ready`.
    #[schema(value_type = crate::schemas::ServiceStatus)]
    pub status: Status,
}

/// The body of `GET /v1/models`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// One entry per configured engine.
    pub data: Vec<ModelEntry>,
}

fn model_list(snapshot: &Snapshot, config: &hearth_core::config::Config) -> ModelList {
    let data = ServiceName::ALL
        .into_iter()
        // VAD serves the conversation, not an OpenAI endpoint.
        .filter(|s| *s != ServiceName::Vad)
        .filter(|s| config.services.get(s).is_some_and(|c| c.enabled))
        .filter_map(|service| {
            let record = snapshot.service(service)?;
            Some(ModelEntry {
                id: model_id(snapshot, service),
                object: "model",
                created: record
                    .loaded_at
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs()),
                owned_by: record
                    .plugin
                    .as_ref()
                    .map_or_else(|| "hearth".to_owned(), |p| p.name.clone()),
                service: service.as_str(),
                ready: matches!(record.phase, Phase::Ready),
                status: record.phase.status(),
            })
        })
        .collect();
    ModelList { object: "list", data }
}

/// `GET /v1/models`.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    summary = "The engines, as OpenAI's model list",
    description = "One entry per configured engine, with Hearth's `service`, `ready` and `status`. \
        503 with `Retry-After` until Hearth is READY: clients probe this endpoint to decide whether \
        the server is up, and a 200 while models load would send them requests that fail.",
    responses(
        (status = 200, description = "READY: the engines", body = ModelList),
        (status = 503, description = "Not READY yet", body = crate::error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn models(State(state): State<AppState>) -> Result<axum::Json<ModelList>, ApiError> {
    let snapshot = state.readiness.current();
    if !snapshot.is_ready() {
        return Err(ApiError::Starting(format!(
            "Hearth is {} ({}%): the models are not all loaded; retry shortly (GET /api/ready says more)",
            snapshot.state.as_str(),
            snapshot.progress
        )));
    }
    Ok(axum::Json(model_list(&snapshot, &state.supervisor.config())))
}

/// `GET /v1/models/{id}`.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "openai",
    params(("id" = String, Path, description = "A model id from `/v1/models`")),
    summary = "One engine, as OpenAI's model object",
    responses(
        (status = 200, description = "READY: the engine", body = ModelEntry),
        (status = 404, description = "No engine has this id", body = crate::error::ErrorBody),
        (status = 503, description = "Not READY yet", body = crate::error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn model(
    State(state): State<AppState>,
    crate::extract::Path(id): crate::extract::Path<String>,
) -> Result<axum::Json<ModelEntry>, ApiError> {
    let axum::Json(list) = models(State(state)).await?;
    let ids: Vec<String> = list.data.iter().map(|m| m.id.clone()).collect();
    list.data
        .into_iter()
        .find(|m| m.id == id)
        .map(axum::Json)
        .ok_or_else(|| {
            ApiError::UnknownModel(format!(
                "the model `{}` is not served here; the models are: {}",
                echo(&id),
                ids.join(", ")
            ))
        })
}

// ---------------------------------------------------------------------------
// POST /v1/audio/speech

/// The body of `POST /v1/audio/speech`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SpeechRequest {
    /// A TTS model from `/v1/models`, or `tts-1`, `tts-1-hd`.
    pub model: Option<String>,
    /// The text, 1 to 4096 characters.
    pub input: String,
    /// The loaded voice's name, or an OpenAI voice name (`alloy`, `echo`,
    /// ...), which speaks with the loaded voice; a string or `{"id": ...}`.
    pub voice: Option<Voice>,
    /// `mp3` (the default), `wav`, `pcm`, `flac` or `opus` (in Ogg).
    pub response_format: Option<String>,
    /// 0.25 to 4.0; 1.0 is the voice's pace.
    pub speed: Option<f32>,
    /// `audio` (the default): the file's bytes as they are made; `sse`:
    /// `speech.audio.delta` events.
    pub stream_format: Option<String>,
    /// Accepted and not used (OpenAI's `gpt-4o-mini-tts` option).
    pub instructions: Option<String>,
}

/// A speech request's voice: a name, or OpenAI's object form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Voice {
    /// A voice name.
    Name(String),
    /// `{"id": "..."}`.
    Object {
        /// The voice's name.
        id: String,
    },
}

impl Voice {
    fn name(&self) -> &str {
        match self {
            Self::Name(name) | Self::Object { id: name } => name,
        }
    }
}

/// What the synthesis thread sends the response.
enum Piece {
    /// The encoder's bytes.
    Bytes(Bytes, u32),
    /// It failed.
    Failed(String),
    /// The engine found nothing to speak in the text.
    Nothing,
}

/// `POST /v1/audio/speech`.
#[utoipa::path(post, path = "/v1/audio/speech", tag = "openai", request_body = SpeechRequest,
    summary = "Text to speech, streamed",
    description = "Speaks `input` with the TTS engine. The audio streams as it is synthesized (chunked), \
        the first sentence before the last is spoken; `stream_format: sse` sends `speech.audio.delta` \
        events (base64) and `speech.audio.done`. `pcm` is 16-bit mono at the voice's rate, given in \
        `X-Sample-Rate`.",
    responses(
        (status = 200, description = "The audio", content_type = "audio/mpeg"),
        (status = 400, description = "Bad input, format, voice or speed", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown model", body = crate::error::ErrorBody),
        (status = 502, description = "The engine failed before any audio", body = crate::error::ErrorBody),
        (status = 503, description = "TTS is not ready", body = crate::error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn speech(State(state): State<AppState>, Json(request): Json<SpeechRequest>) -> Result<Response, ApiError> {
    let (tts, asked) = speech_request(&state, &request)?;
    let mut pieces = encoded_speech(tts, asked.text, asked.options, asked.format);
    let (first, rate) = first_piece(&mut pieces).await?;
    Ok(speech_response(first, rate, pieces, asked.format, asked.sse))
}

/// What a valid speech request asks for.
struct SpeechAsked {
    text: String,
    options: SpeechOptions,
    format: Format,
    sse: bool,
}

/// Checks a speech request against the engine that would speak it: ready,
/// the model and voice it serves, a format, stream format, input and speed
/// it can honour. Refusals say what to send instead.
fn speech_request(state: &AppState, request: &SpeechRequest) -> Result<(TtsHandle, SpeechAsked), ApiError> {
    // Readiness first: while loading, a model's name is not known yet.
    let Some(tts) = state.supervisor.tts() else {
        return Err(not_ready(state, &state.readiness.current(), ServiceName::Tts));
    };
    let snapshot = state.readiness.current();
    check_model(&snapshot, ServiceName::Tts, request.model.as_deref(), &TTS_ALIASES)?;
    let format_name = request.response_format.as_deref().unwrap_or("mp3");
    let format = Format::parse(format_name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "response_format `{}` is not supported; use one of: {}",
            echo(format_name),
            Format::ALL.map(Format::name).join(", ")
        ))
    })?;
    let sse = match request.stream_format.as_deref().unwrap_or("audio") {
        "audio" => false,
        "sse" => true,
        other => {
            return Err(ApiError::BadRequest(format!(
                "stream_format `{}` is not supported; use `audio` or `sse`",
                echo(other)
            )))
        }
    };
    let text = request.input.trim().to_owned();
    if text.is_empty() {
        return Err(ApiError::BadRequest("`input` is empty: give the text to speak".into()));
    }
    let chars = request.input.chars().count();
    if chars > MAX_SPEECH_INPUT {
        return Err(ApiError::BadRequest(format!(
            "`input` has {chars} characters; the limit is {MAX_SPEECH_INPUT}: split the text"
        )));
    }
    let speed = request.speed.unwrap_or(1.0);
    if !(0.25..=4.0).contains(&speed) {
        return Err(ApiError::BadRequest(format!(
            "speed {speed} is out of range: give 0.25 to 4.0"
        )));
    }
    let voice_name = model_id(&snapshot, ServiceName::Tts);
    if let Some(voice) = request.voice.as_ref().map(Voice::name).filter(|v| !v.is_empty()) {
        if voice != voice_name && !OPENAI_VOICES.contains(&voice) {
            return Err(ApiError::BadRequest(format!(
                "voice `{}` is not loaded; use `{voice_name}` or an OpenAI voice name ({}), which speak with it",
                echo(voice),
                OPENAI_VOICES.join(", ")
            )));
        }
    }
    if (speed - 1.0).abs() > f32::EPSILON && !tts.capabilities().contains(Capabilities::SPEED) {
        return Err(ApiError::BadRequest(format!(
            "the TTS engine ({}) cannot change its speed; leave `speed` out or at 1.0",
            tts.plugin().name
        )));
    }
    let asked = SpeechAsked {
        text,
        options: SpeechOptions { speed },
        format,
        sse,
    };
    Ok((tts, asked))
}

/// Speaks `text` and encodes it as `format` on the blocking pool, beside
/// the engine (Opus and MP3 take milliseconds per second of audio, too long
/// for an async thread): the encoder's pieces, then a last one that says
/// how it ended. Dropping the stream stops the engine.
fn encoded_speech(tts: TtsHandle, text: String, options: SpeechOptions, format: Format) -> Streamed<Piece, ()> {
    Streamed::spawn(STREAM_QUEUE, move |out: &Emitter<Piece>| {
        let mut encoder: Option<(Box<dyn hearth_audio::Encoder>, u32)> = None;
        let result = tts.synthesize_with(&text, &options, |chunk| {
            let rate = chunk.sample_rate;
            let (encoder, at) = match &mut encoder {
                Some(open) => open,
                None => match hearth_audio::encoder(format, rate) {
                    Ok(new) => encoder.insert((new, rate)),
                    Err(e) => {
                        let _ = out.send(Piece::Failed(e.to_string()));
                        return Flow::Stop;
                    }
                },
            };
            if *at != rate {
                let changed = format!("the engine changed its sample rate from {at} to {rate} Hz mid-stream");
                let _ = out.send(Piece::Failed(changed));
                return Flow::Stop;
            }
            // In slices of a tenth of a second: the first bytes of a long
            // sentence leave once its first slice is encoded, not the whole
            // sentence (Opus and MP3 take milliseconds per second of audio).
            for slice in chunk.samples.chunks((rate as usize / 10).max(1)) {
                let piece = match encoder.push(slice) {
                    Ok(bytes) => Piece::Bytes(bytes.into(), rate),
                    Err(e) => Piece::Failed(e.to_string()),
                };
                let failed = matches!(piece, Piece::Failed(_));
                // A client that went away drops the stream: stop speaking.
                if out.send(piece) == Flow::Stop || failed {
                    return Flow::Stop;
                }
            }
            Flow::Continue
        });
        let last = match (result, encoder) {
            (Err(e), _) => Piece::Failed(e),
            (Ok(()), Some((mut encoder, rate))) => match encoder.finish() {
                Ok(bytes) => Piece::Bytes(bytes.into(), rate),
                Err(e) => Piece::Failed(e.to_string()),
            },
            (Ok(()), None) => Piece::Nothing,
        };
        let _ = out.send(last);
        Ok(())
    })
}

/// The first piece of the speech, and its sample rate. It decides the
/// status: an engine that fails before any audio is an error answer, not a
/// 200 with an empty body.
async fn first_piece(rx: &mut Streamed<Piece, ()>) -> Result<(Bytes, u32), ApiError> {
    match rx.next().await {
        Some(Piece::Bytes(bytes, rate)) => Ok((bytes, rate)),
        Some(Piece::Failed(e)) => Err(ApiError::Core(HostError::Engine {
            service: ServiceName::Tts,
            message: e,
        })),
        Some(Piece::Nothing) => Err(ApiError::BadRequest(
            "`input` has nothing the voice can speak (no words); send text".into(),
        )),
        None => Err(ApiError::Core(HostError::Engine {
            service: ServiceName::Tts,
            message: "speech synthesis ended without audio".into(),
        })),
    }
}

/// The answer: `first`, then the rest of the pieces as they come, as audio
/// of `format` or as `speech.audio.delta` events; `X-Sample-Rate` says the
/// rate.
fn speech_response(first: Bytes, rate: u32, rx: Streamed<Piece, ()>, format: Format, sse: bool) -> Response {
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.next().await? {
            Piece::Bytes(bytes, _) => Some((Ok(bytes), rx)),
            // Only ever the first piece.
            Piece::Nothing => None,
            Piece::Failed(e) => {
                // Headers are gone: all that is left is to cut the stream,
                // so the client sees a broken download, not a short file.
                tracing::warn!("speech failed mid-stream: {e}");
                Some((Err(std::io::Error::other(e)), rx))
            }
        }
    });
    // An encoder may have nothing to add for a piece (a codec holds a
    // partial frame): send nothing rather than an empty chunk or event.
    let audio = futures_util::StreamExt::filter(
        futures_util::StreamExt::chain(futures_util::stream::once(async move { Ok(first) }), rest),
        |piece: &std::io::Result<Bytes>| std::future::ready(piece.as_ref().map_or(true, |b| !b.is_empty())),
    );
    let mut response = if sse {
        let events = futures_util::StreamExt::map(audio, |piece: std::io::Result<Bytes>| {
            piece.map(|bytes| {
                let delta = json!({
                    "type": "speech.audio.delta",
                    "audio": base64::engine::general_purpose::STANDARD.encode(&bytes),
                });
                Bytes::from(format!("data: {delta}\n\n"))
            })
        });
        let done = futures_util::stream::once(async {
            let done = json!({"type": "speech.audio.done", "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}});
            Ok::<_, std::io::Error>(Bytes::from(format!("data: {done}\n\n")))
        });
        let mut response = Body::from_stream(futures_util::StreamExt::chain(events, done)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        response
    } else {
        let mut response = Body::from_stream(audio).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&rate.to_string()) {
        headers.insert("x-sample-rate", value);
    }
    response
}

// ---------------------------------------------------------------------------
// POST /v1/audio/transcriptions

/// The multipart fields of `POST /v1/audio/transcriptions`, for the
/// OpenAPI document.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TranscriptionForm {
    /// The audio: wav, mp3, flac, ogg (Vorbis or Opus), webm (Opus) or m4a
    /// (AAC), at most 25 MB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// An STT model from `/v1/models`, or `whisper-1`.
    model: Option<String>,
    /// `json` (default), `text`, `srt`, `vtt` or `verbose_json`.
    response_format: Option<String>,
    /// `true`: `transcript.text.delta` events, then `transcript.text.done`.
    stream: Option<bool>,
    /// Accepted; the engine uses its configured language.
    language: Option<String>,
    /// Accepted; not passed to the engine.
    prompt: Option<String>,
    /// Accepted; not passed to the engine.
    temperature: Option<f32>,
}

/// What a transcription request asked for.
#[derive(Default)]
struct TranscriptionRequest {
    file: Option<(Bytes, Option<String>, Option<String>)>,
    model: Option<String>,
    response_format: Option<String>,
    stream: bool,
    words: bool,
}

async fn read_form(mut form: axum::extract::Multipart) -> crate::error::Result<TranscriptionRequest> {
    let mut request = TranscriptionRequest::default();
    let too_large = || {
        ApiError::TooLarge(format!(
            "the upload is larger than {} MB; send a shorter or more compressed recording",
            MAX_UPLOAD_BYTES / 1_000_000
        ))
    };
    let broken = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::BadRequest(format!("the multipart body is malformed: {}", e.body_text()))
        }
    };
    while let Some(field) = form.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let file_name = field.file_name().map(str::to_owned);
                let kind = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(broken)?;
                if bytes.len() > MAX_UPLOAD_BYTES {
                    return Err(too_large());
                }
                request.file = Some((bytes, file_name, kind));
            }
            _ => {
                let value = field.text().await.map_err(broken)?;
                match name.as_str() {
                    "model" => request.model = Some(value),
                    "response_format" => request.response_format = Some(value),
                    "stream" => request.stream = value.trim().eq_ignore_ascii_case("true"),
                    "timestamp_granularities[]" | "timestamp_granularities" => {
                        request.words |= value.trim() == "word";
                    }
                    // Accepted and not used: the ABI has no per-request STT
                    // options (the engine's configured language applies).
                    _ => {}
                }
            }
        }
    }
    Ok(request)
}

/// `HH:MM:SS,mmm` (SubRip) or `HH:MM:SS.mmm` (WebVTT).
fn timestamp(ms: u64, separator: char) -> String {
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{separator}{milli:03}")
}

fn subtitles(t: &Transcription, vtt: bool) -> String {
    let mut out = String::new();
    if vtt {
        out.push_str("WEBVTT\n\n");
    }
    for (i, s) in t.segments.iter().enumerate() {
        let separator = if vtt { '.' } else { ',' };
        if !vtt {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(s.start_ms, separator),
            timestamp(s.end_ms, separator),
            s.text.trim()
        ));
    }
    out
}

fn text_response(kind: &'static str, body: String) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    response
}

/// `POST /v1/audio/transcriptions`.
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    request_body(content = TranscriptionForm, content_type = "multipart/form-data"),
    summary = "Speech to text",
    description = "Transcribes an uploaded recording (decoded and resampled in Rust). `response_format` \
        `json`, `text`, `srt`, `vtt` or `verbose_json` (segments with start and end; the engines give no \
        word timestamps, so `words` is absent); `stream=true` sends `transcript.text.delta` events and \
        `transcript.text.done`.",
    responses(
        (status = 200, description = "The transcript", content_type = "application/json"),
        (status = 400, description = "A malformed form or damaged audio", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown model", body = crate::error::ErrorBody),
        (status = 413, description = "Over 25 MB", body = crate::error::ErrorBody),
        (status = 415, description = "Not a supported audio format", body = crate::error::ErrorBody),
        (status = 502, description = "The engine failed", body = crate::error::ErrorBody),
        (status = 503, description = "STT is not ready", body = crate::error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn transcriptions(State(state): State<AppState>, Multipart(form): Multipart) -> Result<Response, ApiError> {
    let request = read_form(form).await?;
    let Some(stt) = state.supervisor.stt() else {
        return Err(not_ready(&state, &state.readiness.current(), ServiceName::Stt));
    };
    let snapshot = state.readiness.current();
    check_model(&snapshot, ServiceName::Stt, request.model.as_deref(), &STT_ALIASES)?;
    let response_format = request.response_format.as_deref().unwrap_or("json").to_owned();
    if !["json", "text", "srt", "vtt", "verbose_json"].contains(&response_format.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "response_format `{}` is not supported; use json, text, srt, vtt or verbose_json",
            echo(&response_format)
        )));
    }
    let Some((bytes, file_name, kind)) = request.file else {
        return Err(ApiError::BadRequest(
            "no `file` field: upload the recording as multipart field `file`".into(),
        ));
    };
    // Client bytes are decoded on the blocking pool, beside the engines.
    let decoded = hearth_core::calls::blocking(move || {
        hearth_audio::decode(&bytes, file_name.as_deref(), kind.as_deref(), 16_000)
    })
    .await
    .map_err(ApiError::other)?
    .map_err(|e| match e {
        AudioError::Unsupported(_) => ApiError::UnsupportedMedia(e.to_string()),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    if decoded.samples.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "the recording ({}) holds no audio",
            decoded.codec
        )));
    }
    let seconds = decoded.samples.len() as f64 / 16_000.0;
    let audio = Audio {
        sample_rate: 16_000,
        channels: 1,
        samples: Samples::I16(decoded.samples),
    };
    let transcript = stt.transcription(audio).await.map_err(|message| {
        ApiError::Core(HostError::Engine {
            service: ServiceName::Stt,
            message,
        })
    })?;
    let text = transcript.text.trim().to_owned();

    if request.stream {
        let mut events: Vec<Bytes> = transcript
            .segments
            .iter()
            .filter(|s| !s.text.trim().is_empty())
            .enumerate()
            .map(|(i, s)| {
                let piece = if i == 0 {
                    s.text.trim().to_owned()
                } else {
                    format!(" {}", s.text.trim())
                };
                let delta = json!({"type": "transcript.text.delta", "delta": piece});
                Bytes::from(format!("data: {delta}\n\n"))
            })
            .collect();
        let done = json!({"type": "transcript.text.done", "text": text});
        events.push(Bytes::from(format!("data: {done}\n\n")));
        let stream = futures_util::stream::iter(events.into_iter().map(Ok::<_, std::io::Error>));
        let mut response = Body::from_stream(stream).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        return Ok(response);
    }
    Ok(match response_format.as_str() {
        "text" => text_response("text/plain; charset=utf-8", format!("{text}\n")),
        "srt" => text_response("application/x-subrip; charset=utf-8", subtitles(&transcript, false)),
        "vtt" => text_response("text/vtt; charset=utf-8", subtitles(&transcript, true)),
        "verbose_json" => {
            // The fields OpenAI's clients require; the engines report no
            // log probabilities or tokens, so those are zero and empty.
            let segments: Vec<_> = transcript
                .segments
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    json!({
                        "id": i, "seek": 0, "start": s.start_ms as f64 / 1000.0, "end": s.end_ms as f64 / 1000.0,
                        "text": s.text, "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
                        "compression_ratio": 0.0, "no_speech_prob": 0.0,
                    })
                })
                .collect();
            let _ = request.words;
            axum::Json(json!({
                "task": "transcribe",
                "language": transcript.language,
                "duration": seconds,
                "text": text,
                "segments": segments,
            }))
            .into_response()
        }
        _ => axum::Json(json!({ "text": text })).into_response(),
    })
}

// ---------------------------------------------------------------------------
// POST /v1/chat/completions

/// A message's content: a string, or OpenAI's array of parts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts; the `text` ones are joined.
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ContentPart {
    /// `text` (others are refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: Option<String>,
}

/// One message of a chat request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatMessageIn {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub content: Option<Content>,
}

/// `stop`: one sequence or several.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Stop {
    /// One.
    One(String),
    /// Several (at most 4, as OpenAI).
    Many(Vec<String>),
}

/// The body of `POST /v1/chat/completions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatRequest {
    /// The chat model from `/v1/models` (other names are refused).
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<ChatMessageIn>,
    /// Stream `chat.completion.chunk` events ending with `[DONE]`.
    pub stream: Option<bool>,
    /// The most tokens to generate.
    pub max_tokens: Option<u32>,
    /// The same, OpenAI's newer name.
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    pub temperature: Option<f32>,
    /// Stop before any of these.
    pub stop: Option<Stop>,
    /// Only 1.
    pub n: Option<u32>,
}

fn to_messages(request: &ChatRequest) -> crate::error::Result<Vec<Message>> {
    if request.messages.is_empty() {
        return Err(ApiError::BadRequest("`messages` is empty: send at least one".into()));
    }
    request
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "messages[{i}].role `{}` is not supported; use system, developer, user or assistant",
                        echo(other)
                    )))
                }
            };
            let content = match &m.content {
                None => String::new(),
                Some(Content::Text(text)) => text.clone(),
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for part in parts {
                        if part.kind != "text" {
                            return Err(ApiError::BadRequest(format!(
                                "messages[{i}] has a `{}` part; only text is supported",
                                echo(&part.kind)
                            )));
                        }
                        text.push_str(part.text.as_deref().unwrap_or_default());
                    }
                    text
                }
            };
            Ok(Message { role, content })
        })
        .collect()
}

/// What the chat thread sends the response.
enum Token {
    Piece(String),
    Done { finish_reason: String, tokens: u32 },
    Failed(String),
}

/// Runs the chat on the blocking pool, streaming its pieces; enforces
/// `max_tokens` and `stop` itself for engines that do not declare them.
fn start_chat(
    chat: hearth_core::engine::ChatHandle,
    messages: Vec<Message>,
    options: ChatOptions,
) -> Streamed<Token, ()> {
    Streamed::spawn(64, move |out: &Emitter<Token>| {
        let capabilities = chat.capabilities();
        let limit = options
            .max_tokens
            .filter(|_| !capabilities.contains(Capabilities::MAX_TOKENS));
        let stops = if capabilities.contains(Capabilities::STOP) {
            Vec::new()
        } else {
            options.stop.clone()
        };
        let mut sent = 0u32;
        let mut text = String::new();
        let mut cut: Option<&'static str> = None;
        let result = chat.chat_with(&messages, &options, |piece| {
            text.push_str(piece);
            let mut piece = piece.to_owned();
            if let Some(at) = stops.iter().filter_map(|s| text.find(s.as_str())).min() {
                // Send what comes before the stop sequence, nothing after.
                let before = text.len() - piece.len();
                piece.truncate(at.saturating_sub(before));
                cut = Some("stop");
            }
            sent += 1;
            if !piece.is_empty() && out.send(Token::Piece(piece)) == Flow::Stop {
                return Flow::Stop;
            }
            if limit.is_some_and(|n| sent >= n) {
                cut.get_or_insert("length");
            }
            if cut.is_some() {
                Flow::Stop
            } else {
                Flow::Continue
            }
        });
        let last = match result {
            Ok(outcome) => Token::Done {
                finish_reason: match (cut, outcome.finish_reason.as_str()) {
                    (Some(reason), _) => reason.to_owned(),
                    (None, "length") => "length".to_owned(),
                    _ => "stop".to_owned(),
                },
                tokens: outcome.tokens,
            },
            Err(e) => Token::Failed(e),
        };
        let _ = out.send(last);
        Ok(())
    })
}

/// `POST /v1/chat/completions`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatRequest,
    summary = "Chat completion, optionally streamed",
    description = "Chats with the chat engine. `stream: true` sends `chat.completion.chunk` events and \
        `data: [DONE]`. `max_tokens` (or `max_completion_tokens`), `temperature` and `stop` reach engines \
        that declare them; for others Hearth enforces `max_tokens` and `stop` itself.",
    responses(
        (status = 200, description = "The reply (JSON, or text/event-stream when streaming)", content_type = "application/json"),
        (status = 400, description = "Bad messages or options", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown model", body = crate::error::ErrorBody),
        (status = 502, description = "The engine failed", body = crate::error::ErrorBody),
        (status = 503, description = "Chat is not ready", body = crate::error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn chat_completions(
    State(state): State<AppState>,
    Json(request): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    let Some(chat) = state.supervisor.chat() else {
        return Err(not_ready(&state, &state.readiness.current(), ServiceName::Chat));
    };
    let snapshot = state.readiness.current();
    check_model(&snapshot, ServiceName::Chat, request.model.as_deref(), &[])?;
    if request.n.is_some_and(|n| n != 1) {
        return Err(ApiError::BadRequest("only n = 1 is supported".into()));
    }
    if let Some(t) = request.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::BadRequest(format!(
                "temperature {t} is out of range: give 0 to 2"
            )));
        }
    }
    let stop = match &request.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) if v.len() <= 4 => v.clone(),
        Some(Stop::Many(_)) => return Err(ApiError::BadRequest("at most 4 `stop` sequences".into())),
    };
    let options = ChatOptions {
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        temperature: request.temperature,
        stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
    };
    if options.max_tokens == Some(0) {
        return Err(ApiError::BadRequest("max_tokens must be at least 1".into()));
    }
    let messages = to_messages(&request)?;
    let model = model_id(&snapshot, ServiceName::Chat);
    let id = format!("chatcmpl-{:x}", now_nanos());
    let created = now_unix();
    let mut rx = start_chat(chat, messages, options);

    if request.stream != Some(true) {
        let mut reply = String::new();
        let (finish_reason, tokens) = loop {
            match rx.next().await {
                Some(Token::Piece(piece)) => reply.push_str(&piece),
                Some(Token::Done { finish_reason, tokens }) => break (finish_reason, tokens),
                Some(Token::Failed(message)) => {
                    return Err(ApiError::Core(HostError::Engine {
                        service: ServiceName::Chat,
                        message,
                    }))
                }
                None => {
                    return Err(ApiError::Core(HostError::Engine {
                        service: ServiceName::Chat,
                        message: "the chat ended without an answer".into(),
                    }))
                }
            }
        };
        return Ok(axum::Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 0, "completion_tokens": tokens, "total_tokens": tokens},
        }))
        .into_response());
    }

    // Streaming: the first event says the role; then one per piece; then
    // the finish reason; then [DONE].
    let chunk = move |delta: serde_json::Value, finish: Option<&str>| {
        let event = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        Bytes::from(format!("data: {event}\n\n"))
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), None);
    let chunk = Arc::new(chunk);
    let events = futures_util::stream::unfold((rx, false), move |(mut rx, ended)| {
        let chunk = Arc::clone(&chunk);
        async move {
            if ended {
                return None;
            }
            Some(match rx.next().await {
                Some(Token::Piece(piece)) => (Ok(chunk(json!({"content": piece}), None)), (rx, false)),
                Some(Token::Done { finish_reason, .. }) => {
                    let mut last = chunk(json!({}), Some(&finish_reason)).to_vec();
                    last.extend_from_slice(b"data: [DONE]\n\n");
                    (Ok(Bytes::from(last)), (rx, true))
                }
                Some(Token::Failed(message)) => {
                    tracing::warn!("chat failed mid-stream: {message}");
                    let error = json!({"error": {"message": message, "type": "server_error", "code": "engine_error"}});
                    (Ok(Bytes::from(format!("data: {error}\n\n"))), (rx, true))
                }
                None => (Ok(Bytes::from_static(b"data: [DONE]\n\n")), (rx, true)),
            })
        }
    });
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }),
        events,
    );
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
