//! Hearth's host: loads TTS, STT and chat engines as plugins named in
//! `plugins.toml`, warms them, tracks readiness and serves it.
//!
//! The `hearth` binary is glue around these modules:
//!
//! * [`config`]: `plugins.toml`, raw and resolved.
//! * [`plugin`]: opening and checking plugin libraries.
//! * [`engine`]: engines as the host uses them — the lifecycle [`engine::Engine`]
//!   and the typed handles ([`engine::TtsHandle`], ...), whatever runs them.
//! * [`readiness`]: the state machine and its `watch` channel, with
//!   `readiness_view` rendering each state's JSON bodies and SSE event.
//! * [`services`]: the supervisor that loads, warms, retries, probes,
//!   reloads (with [`reload`] deciding the plan) and restarts.
//! * [`worker`]: engines in worker processes, and the worker's side.
//! * [`router`]: every HTTP endpoint, and [`readiness_api`] their handlers;
//!   [`guard`] decides who may call them.
//! * [`conversation`]: the voice conversation WebSocket, with
//!   [`hearth_plugin_api::text::SentenceSplitter`] splitting the streamed
//!   reply.
//! * [`page`]: the web page, embedded.
//! * [`openapi`]: the OpenAPI 3.1 document of every endpoint; [`extract`]
//!   makes axum's refusals JSON errors like the rest.
//! * [`server`]: binding, startup and graceful shutdown.
//! * [`cli`]: the command line and what each command does, with
//!   [`template`] for `hearth plugin new` and [`wait`] for `hearth wait-ready`.
//! * [`logging`]: the log format (`HEARTH_LOG_FORMAT`) and the request span
//!   every HTTP request runs in.
//! * [`audio`]: WAV files in and out for `speak` and `transcribe`.

/// `println!` for what a command prints on stdout: when the reader goes away
/// early (`hearth check | head -1`), the process ends quietly with status
/// 141, as one killed by SIGPIPE would, instead of panicking. SIGPIPE itself
/// stays ignored (Rust's default), because a write to a dead worker's socket
/// must be an error the host reports, not a signal that kills it.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::print_line(format_args!($($arg)*)) };
}

pub mod audio;
pub mod cli;
pub mod config;
pub mod conversation;
pub mod engine;
pub mod error;
pub mod extract;
pub mod guard;
pub mod hands_free;
pub mod logging;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod page;
pub mod plugin;
pub mod readiness;
pub mod readiness_api;
mod readiness_view;
pub mod reload;
pub mod router;
pub mod server;
pub mod services;
pub mod systemd;
pub mod template;
pub mod wait;
pub mod worker;
pub mod wyoming;

pub use error::{HostError, Result};
