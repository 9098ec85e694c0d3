//! Hearth's chat engine over HTTP: talks to Ollama (native API) or to any
//! OpenAI-compatible server (llama.cpp's `llama-server`, vLLM, LM Studio,
//! LocalAI), and can start that server itself as a child process.
//!
//! ```toml
//! [chat]
//! plugin = "chat-http"
//! [chat.config]
//! api = "openai"                      # or "ollama"
//! url = "http://127.0.0.1:8089"       # OpenAI: "/v1" is added when no path is given
//! model = "smollm2"                   # OpenAI: optional when the server has one model
//! # api_key = "..." or api_key_env = "OPENAI_API_KEY"
//! # system_prompt = "You are a helpful assistant."
//! # temperature = 0.7, max_tokens = 256 (alias num_predict), stop = ["\n\n"], seed = 42
//! # num_ctx = 4096, keep_alive = "5m"          (Ollama only)
//! # connect_timeout = "5s", first_token_timeout = "120s", read_timeout = "30s",
//! # request_timeout = "10m", health_timeout = "2s"
//! [chat.config.launch]                # optional: start the server ourselves
//! command = "models/llama/bin/llama-server"   # with a "/": relative to plugins.toml
//! args = ["-m", "models/llama/SmolLM2-135M-Instruct.Q4_1.gguf", "--alias", "smollm2",
//!         "--host", "127.0.0.1", "--port", "8089", "-c", "2048", "-t", "1"]
//! # env = { ... }, health_path = "/health", ready_timeout = "90s",
//! # stop_timeout = "5s", log = "logs/llama-server.log"
//! ```
//!
//! What each Warmable step does:
//!
//! * `load`: starts the `launch` server (if any) and polls its health path
//!   until it answers 200, reporting progress; then checks that the server
//!   answers and has the model (Ollama: `/api/version`, `/api/show`;
//!   OpenAI: `/v1/models`), failing with what to do when not.
//! * `warmup`: makes the model resident (Ollama: preload through
//!   `/api/generate` with `keep_alive`; OpenAI: a one-token completion).
//! * `health`: a managed server that exited is reported with its exit status
//!   and last output; otherwise one cheap GET under `health_timeout`.
//! * `chat`: streams the reply (OpenAI SSE, Ollama NDJSON) into the host's
//!   sink; when the sink says stop, the response is dropped, which closes
//!   the connection and makes the server stop generating.
//!
//! Deliberately absent: restarting a server that died (the host owns retry
//! and restart policy; `health` and `chat` say what happened), pulling
//! Ollama models (a multi-gigabyte download is the operator's decision:
//! the error says which `ollama pull` to run), and any retry of a failed
//! chat request (a half-streamed reply cannot be retried transparently).

pub mod config;
pub mod http;
pub mod launch;
pub mod wire;

use std::{
    path::PathBuf,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use hearth_plugin_api::{
    Capabilities, ChatEngine, ChatMessage, ChatOptions, ChatOutcome, Context, Description, Flow, PluginError,
    PluginResult, TokenOut, Warmable,
};
use reqwest::StatusCode;

use crate::{
    config::{Api, Config},
    http::{End, Failure, Http, Next},
    launch::{ManagedServer, Spec},
    wire::Event,
};

/// The engine. Empty until `load`; shared across the host's threads after.
#[derive(Default)]
pub struct HttpChat {
    loaded: OnceLock<Loaded>,
}

/// Everything `load` established.
struct Loaded {
    config: Config,
    /// The model name sent with every request and reported by `describe`.
    model: String,
    /// What the server says it is, e.g. `ollama 0.5.7`.
    server: String,
    http: Http,
    /// The server started by `launch`; `None` when not managed or once
    /// `shutdown` stopped it. One lock for the one thing it guards.
    managed: Mutex<Option<ManagedServer>>,
}

impl Loaded {
    /// If the managed server has exited after it was ready, what happened
    /// to it. Only its last two lines: after startup they are mostly request
    /// logs, but a crash's own message is the last line.
    fn death_notice(&self, when: &str) -> Option<String> {
        let managed = self.managed.lock().unwrap_or_else(|e| e.into_inner());
        managed.as_ref().and_then(|s| s.death_notice(when, 2))
    }

    /// After a failed request: the death notice if the managed server has
    /// died. A dying server closes its socket before the kernel lets us reap
    /// it (tearing down a loaded model takes a moment), so give it a little
    /// time to show up as exited before blaming the network.
    fn death_after_failure(&self, when: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            let managed = self.managed.lock().unwrap_or_else(|e| e.into_inner());
            let server = managed.as_ref()?;
            if let Some(notice) = server.death_notice(when, 2) {
                return Some(notice);
            }
            drop(managed);
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What `health` probes: the launch health path when the plugin runs the
    /// server, else the dialect's cheapest GET.
    fn probe_url(&self) -> String {
        match (&self.config.launch, self.config.api) {
            (Some(launch), _) => self.config.root_url(&launch.health_path),
            (None, Api::Ollama) => self.config.api_url("/api/version"),
            (None, Api::Openai) => self.config.api_url("/models"),
        }
    }

    fn server_label(&self) -> &'static str {
        match self.config.api {
            Api::Ollama => "Ollama",
            Api::Openai => "OpenAI-compatible server",
        }
    }
}

impl HttpChat {
    /// The process id of the server this engine started, while it runs
    /// (for diagnostics and tests; not part of the plugin ABI).
    pub fn managed_pid(&self) -> Option<u32> {
        let loaded = self.loaded.get()?;
        let managed = loaded.managed.lock().unwrap_or_else(|e| e.into_inner());
        managed
            .as_ref()
            .filter(|s| s.exited().is_none())
            .map(ManagedServer::pid)
    }

    fn loaded(&self) -> PluginResult<&Loaded> {
        self.loaded
            .get()
            .ok_or_else(|| PluginError::from("the chat engine is not loaded"))
    }
}

impl Warmable for HttpChat {
    type Config = Config;

    fn describe(&self) -> Description {
        let loaded = self.loaded.get();
        Description {
            name: "chat-http".into(),
            engine_version: match loaded {
                Some(l) => l.server.clone(),
                None => "ollama or OpenAI-compatible, over HTTP".into(),
            },
            model: loaded.map(|l| l.model.clone()),
        }
    }

    fn load(&self, config: Config, ctx: &Context<'_>) -> PluginResult<()> {
        if self.loaded.get().is_some() {
            return Err("the chat engine is already loaded".into());
        }
        let http = Http::new(&config)?;
        let managed = match &config.launch {
            Some(_) => Some(start_server(&config, &http, ctx)?),
            None => None,
        };
        ctx.progress(0.9, "checking the model");
        let found = match config.api {
            Api::Ollama => ollama_reach(&config, &http, ctx),
            Api::Openai => openai_reach(&config, &http, ctx),
        };
        let (model, server) = match found {
            Ok(found) => found,
            Err(e) => {
                // Dropping `managed` stops the server, so a retry starts clean.
                let notice = managed.as_ref().and_then(|s| s.death_notice("while loading", 6));
                return Err(notice.map(PluginError::from).unwrap_or(e));
            }
        };
        ctx.progress(1.0, &format!("{model} at {}", config.base));
        ctx.info(&format!("chat-http: {model} on {server} at {}", config.base));
        let loaded = Loaded {
            config,
            model,
            server,
            http,
            managed: Mutex::new(managed),
        };
        self.loaded
            .set(loaded)
            .map_err(|_| PluginError::from("the chat engine was loaded twice at once"))
    }

    fn warmup(&self, ctx: &Context<'_>) -> PluginResult<String> {
        let l = self.loaded()?;
        let started = Instant::now();
        let limit = l.http.timeouts().first_token;
        let warmed = match l.config.api {
            Api::Ollama => {
                let url = l.config.api_url("/api/generate");
                let body = wire::ollama_preload(&l.config, &l.model);
                let reply = l
                    .http
                    .block_on(cancellable(ctx, l.http.post(&url, &body, limit)))
                    .map_err(|f| explain(l, &url, f))?;
                if reply.status == StatusCode::NOT_FOUND {
                    return Err(not_pulled(&l.model).into());
                }
                if !reply.status.is_success() {
                    return Err(Failure::Status(reply.status, reply.error()).describe(&url).into());
                }
                let keep = l
                    .config
                    .keep_alive
                    .as_ref()
                    .map_or("Ollama's default".into(), |k| k.to_string());
                format!("loaded {} into Ollama's memory (keep_alive {keep})", l.model)
            }
            Api::Openai => {
                let url = l.config.api_url("/chat/completions");
                let body = wire::openai_warmup(&l.model);
                let reply = l
                    .http
                    .block_on(cancellable(ctx, l.http.post(&url, &body, limit)))
                    .map_err(|f| explain(l, &url, f))?;
                if !reply.status.is_success() {
                    return Err(Failure::Status(reply.status, reply.error()).describe(&url).into());
                }
                format!("1-token completion from {}", l.model)
            }
        };
        Ok(format!("{warmed} in {} ms", started.elapsed().as_millis()))
    }

    fn health(&self) -> PluginResult<()> {
        let l = self.loaded()?;
        if let Some(notice) = l.death_notice("after it was ready") {
            return Err(format!("{notice}; chat is unavailable until Hearth is restarted").into());
        }
        let url = l.probe_url();
        let reply = l
            .http
            .block_on(l.http.get(&url, l.http.timeouts().health))
            .map_err(|f| match l.death_after_failure("after it was ready") {
                Some(notice) => format!("{notice}; chat is unavailable until Hearth is restarted"),
                None => format!("{} not responding: {}", l.server_label(), f.describe(&url)),
            })?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "{} unhealthy: {}",
                l.server_label(),
                Failure::Status(reply.status, reply.error()).describe(&url)
            )
            .into())
        }
    }

    fn shutdown(&self) {
        if let Some(l) = self.loaded.get() {
            let server = l.managed.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut server) = server {
                server.stop();
            }
        }
    }
}

impl ChatEngine for HttpChat {
    fn chat(&self, messages: &[ChatMessage], out: &mut TokenOut<'_>) -> PluginResult<ChatOutcome> {
        self.chat_with(messages, &ChatOptions::default(), out)
    }

    /// Both server APIs take all three per request.
    fn capabilities(&self) -> Capabilities {
        Capabilities::MAX_TOKENS | Capabilities::TEMPERATURE | Capabilities::STOP
    }

    fn chat_with(
        &self,
        messages: &[ChatMessage],
        request: &ChatOptions,
        out: &mut TokenOut<'_>,
    ) -> PluginResult<ChatOutcome> {
        let l = self.loaded()?;
        if let Some(notice) = l.death_notice("after it was ready") {
            return Err(format!("cannot chat: {notice}").into());
        }
        // The request's options win over the configured ones.
        let mut options = l.config.options.clone();
        if let Some(n) = request.max_tokens.into_option() {
            options.max_tokens = Some(n);
        }
        if let Some(t) = request.temperature.into_option() {
            options.temperature = Some(f64::from(t));
        }
        if !request.stop.is_empty() {
            options.stop = request.stop.iter().map(|s| s.to_string()).collect();
        }
        let conversation = wire::messages(l.config.system_prompt.as_deref(), messages);
        let (url, body, parse): (String, _, fn(&str) -> Event) = match l.config.api {
            Api::Ollama => (
                l.config.api_url("/api/chat"),
                wire::ollama_chat(&l.config, &l.model, conversation, &options),
                wire::parse_ndjson_line,
            ),
            Api::Openai => (
                l.config.api_url("/chat/completions"),
                wire::openai_chat(&l.model, conversation, &options),
                wire::parse_sse_line,
            ),
        };

        let mut tokens = 0u32;
        let mut finish: Option<String> = None;
        let mut done = false;
        let mut stream_error: Option<String> = None;
        let ended = l.http.block_on(l.http.stream_lines(&url, &body, |line| {
            let (text, finish_now) = match parse(line) {
                Event::Ignore => return if tokens > 0 { Next::Flowing } else { Next::Waiting },
                Event::Done => {
                    done = true;
                    return Next::Stop;
                }
                Event::Error(message) => {
                    stream_error = Some(message);
                    return Next::Stop;
                }
                Event::Piece { text, finish } => (text, finish),
            };
            if !text.is_empty() {
                tokens += 1;
                if out.send(&text) == Flow::Stop {
                    finish = Some("cancelled".into());
                    return Next::Stop;
                }
            }
            if let Some(reason) = finish_now {
                finish = Some(reason);
                if l.config.api == Api::Ollama {
                    // Ollama's `done:true` line is its last.
                    done = true;
                    return Next::Stop;
                }
            }
            if tokens > 0 {
                Next::Flowing
            } else {
                Next::Waiting
            }
        }));

        match ended {
            Err(failure) => {
                let mut message = explain(l, &url, failure);
                if tokens > 0 {
                    message.push_str(&format!(" (after {tokens} tokens)"));
                }
                Err(message.into())
            }
            Ok(_) if stream_error.is_some() => Err(format!(
                "{} reported an error after {tokens} tokens: {}",
                l.server_label(),
                stream_error.unwrap_or_default()
            )
            .into()),
            Ok(End::Stopped) | Ok(End::Closed) if done || finish.is_some() => Ok(ChatOutcome {
                tokens,
                finish_reason: finish.unwrap_or_else(|| "stop".into()),
            }),
            Ok(_) => {
                let why = l
                    .death_after_failure("during the reply")
                    .unwrap_or_else(|| format!("{} closed the reply stream before it finished", l.server_label()));
                Err(format!("{why} (after {tokens} tokens)").into())
            }
        }
    }
}

/// A request failure as a sentence, preferring the managed server's death
/// notice when the server is gone.
fn explain(l: &Loaded, url: &str, failure: Failure) -> String {
    if !matches!(failure, Failure::Status(..)) {
        if let Some(notice) = l.death_after_failure("after it was ready") {
            return notice;
        }
    }
    match (&failure, l.config.api) {
        (Failure::Unreachable(_), Api::Ollama) => {
            format!(
                "Ollama not responding: {} — is `ollama serve` running?",
                failure.describe(url)
            )
        }
        (Failure::Unreachable(_), Api::Openai) => {
            format!("OpenAI-compatible server not responding: {}", failure.describe(url))
        }
        (Failure::Status(StatusCode::NOT_FOUND, _), Api::Ollama) => {
            format!("{} — {}", not_pulled(&l.model), failure.describe(url))
        }
        _ => failure.describe(url),
    }
}

fn not_pulled(model: &str) -> String {
    format!("model {model} not pulled — run `ollama pull {model}`")
}

/// Runs `future`, giving up when the host cancels the step.
async fn cancellable<T>(
    ctx: &Context<'_>,
    future: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::pin!(future);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            result = &mut future => return result,
            _ = tick.tick() => {
                if ctx.is_cancelled() {
                    return Err(Failure::Other("cancelled by the host".into()));
                }
            }
        }
    }
}

/// Starts the `launch` server and waits until its health path answers 200.
fn start_server(config: &Config, http: &Http, ctx: &Context<'_>) -> PluginResult<ManagedServer> {
    let launch = config.launch.as_ref().expect("called with a launch table");
    let program = if launch.command.contains('/') {
        let path = ctx.resolve_path(&launch.command);
        if !path.is_file() {
            return Err(format!(
                "launch.command {} not found (looked at {}; relative paths are relative to plugins.toml): run scripts/fetch-models.sh or fix the path",
                launch.command,
                path.display()
            )
            .into());
        }
        path
    } else {
        PathBuf::from(&launch.command)
    };
    let health_url = config.root_url(&launch.health_path);
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| launch.command.clone());

    // A server already answering there would pass our health check while
    // ours failed to bind: refuse instead of silently talking to it.
    if let Ok(reply) = http.block_on(http.get(&health_url, http.timeouts().health)) {
        return Err(format!(
            "something already answers at {health_url} (HTTP {}), so {name} cannot start there: stop the other server (an earlier {name}?) or change the port in both `url` and launch.args",
            reply.status.as_u16()
        )
        .into());
    }

    ctx.progress(0.02, &format!("starting {name}"));
    let server = ManagedServer::start(Spec {
        program,
        args: launch.args.clone(),
        env: launch.env.clone(),
        cwd: ctx.base_dir().to_path_buf(),
        log: launch.log.as_ref().map(|p| ctx.resolve_path(p)),
        stop_timeout: launch.stop_timeout,
    })?;
    ctx.info(&format!(
        "started {name} (pid {}): {}",
        server.pid(),
        launch.args.join(" ")
    ));

    let started = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        if ctx.is_cancelled() {
            return Err(format!("cancelled by the host while {name} was starting").into());
        }
        if let Some(notice) = server.death_notice("while loading", 6) {
            return Err(notice.into());
        }
        let elapsed = started.elapsed();
        if elapsed >= launch.ready_timeout {
            let tail = server.last_lines(4, Duration::ZERO);
            return Err(format!(
                "{name} did not answer {health_url} with 200 within {} (last: {last}); check that the port in `url` and launch.args agree; its last output: {tail}",
                humantime::format_duration(launch.ready_timeout)
            )
            .into());
        }
        match http.block_on(http.get(&health_url, http.timeouts().health)) {
            Ok(reply) if reply.status.is_success() => break,
            Ok(reply) => last = format!("HTTP {}: {}", reply.status.as_u16(), reply.error()),
            Err(failure) => last = failure.describe(&health_url),
        }
        let fraction = 0.05 + 0.8 * (elapsed.as_secs_f32() / launch.ready_timeout.as_secs_f32());
        ctx.progress(
            fraction,
            &format!(
                "waiting for {name} to load the model ({:.1} s: {last})",
                elapsed.as_secs_f32()
            ),
        );
        std::thread::sleep(if elapsed < Duration::from_secs(2) {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(250)
        });
    }
    ctx.progress(
        0.85,
        &format!("{name} is ready after {:.1} s", started.elapsed().as_secs_f32()),
    );
    Ok(server)
}

/// Checks that Ollama answers and has the model; returns (model, server).
fn ollama_reach(config: &Config, http: &Http, ctx: &Context<'_>) -> PluginResult<(String, String)> {
    let model = config.model.clone().expect("validated: ollama has a model");
    let limit = http.timeouts().health.max(Duration::from_secs(5));
    let url = config.api_url("/api/version");
    let reply = http.block_on(cancellable(ctx, http.get(&url, limit))).map_err(|f| {
        format!(
            "Ollama not responding at {}: {} — start it with `ollama serve` or fix `url`",
            config.base,
            f.describe(&url)
        )
    })?;
    let version = reply.json()["version"].as_str().map(str::to_owned);
    let Some(version) = version.filter(|_| reply.status.is_success()) else {
        return Err(format!(
            "{url} answered HTTP {} without an Ollama version: is this an Ollama server? (for an OpenAI-compatible server set api = \"openai\")",
            reply.status.as_u16()
        )
        .into());
    };

    let url = config.api_url("/api/show");
    let reply = http
        .block_on(cancellable(
            ctx,
            http.post(&url, &serde_json::json!({"model": model}), limit),
        ))
        .map_err(|f| f.describe(&url))?;
    if reply.status == StatusCode::NOT_FOUND {
        let tags_url = config.api_url("/api/tags");
        let pulled: Vec<String> = http
            .block_on(http.get(&tags_url, limit))
            .map(|r| {
                r.json()["models"]
                    .as_array()
                    .map(|ms| {
                        ms.iter()
                            .filter_map(|m| m["name"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let pulled = if pulled.is_empty() {
            "none".to_owned()
        } else {
            pulled.join(", ")
        };
        return Err(format!("{} (pulled models: {pulled})", not_pulled(&model)).into());
    }
    if !reply.status.is_success() {
        return Err(Failure::Status(reply.status, reply.error()).describe(&url).into());
    }
    Ok((model, format!("ollama {version}")))
}

/// Checks that the OpenAI-compatible server answers and serves the model;
/// returns (model, server).
fn openai_reach(config: &Config, http: &Http, ctx: &Context<'_>) -> PluginResult<(String, String)> {
    let limit = http.timeouts().health.max(Duration::from_secs(5));
    let url = config.api_url("/models");
    let reply = http.block_on(cancellable(ctx, http.get(&url, limit))).map_err(|f| {
        format!(
            "no OpenAI-compatible server responding at {}: {}",
            config.base,
            f.describe(&url)
        )
    })?;
    match reply.status {
        s if s.is_success() => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(format!(
                "{url} refused the request (HTTP {}: {}): set `api_key` or `api_key_env`",
                reply.status.as_u16(),
                reply.error()
            )
            .into())
        }
        StatusCode::NOT_FOUND => {
            // Some servers have no model list; trust the configured name.
            let Some(model) = config.model.clone() else {
                return Err(format!("{url} answered 404, so the model cannot be discovered: set `model`").into());
            };
            ctx.warn(&format!("{url} answered 404; trusting model = {model:?}"));
            return Ok((model, "openai-compatible".into()));
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            return Err(format!(
                "the server at {} is still loading its model ({}): retry in a moment",
                config.base,
                reply.error()
            )
            .into())
        }
        s => return Err(Failure::Status(s, reply.error()).describe(&url).into()),
    }
    let listing = reply.json();
    let served: Vec<(String, String)> = listing["data"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| {
                    let id = m["id"].as_str()?.to_owned();
                    Some((id, m["owned_by"].as_str().unwrap_or("").to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let names = || served.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", ");
    let (model, owner) = match &config.model {
        Some(wanted) => match served.iter().find(|(id, _)| id == wanted) {
            Some(found) => found.clone(),
            None if served.is_empty() => {
                return Err(format!("{url} lists no models, so {wanted} is not served there").into())
            }
            None => {
                return Err(format!(
                    "model {wanted} is not served by {} (it serves: {}) — fix `model` in plugins.toml (llama-server names its model with --alias)",
                    config.base,
                    names()
                )
                .into())
            }
        },
        None => match served.as_slice() {
            [only] => only.clone(),
            [] => return Err(format!("{url} lists no models: load one on the server, or set `model`").into()),
            _ => return Err(format!("the server at {} serves several models ({}): set `model` to one of them", config.base, names()).into()),
        },
    };
    let server = if owner.is_empty() {
        "openai-compatible".to_owned()
    } else {
        format!("openai-compatible ({owner})")
    };
    Ok((model, server))
}

hearth_plugin_api::export_plugin!(chat: HttpChat, HttpChat::default);
