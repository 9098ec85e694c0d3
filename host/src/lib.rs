//! Hearth: the `hearth` binary's library — the command line and the
//! composition root that wires the layers together.
//!
//! The work lives in the layers below, each a crate of its own:
//!
//! * `hearth-core` ([`hearth_core`]): `plugins.toml`, plugins, engines
//!   in-process and in workers, the supervisor, reload plans, readiness,
//!   metrics, the hands-free listener. Knows no HTTP.
//! * `hearth-http` ([`hearth_http`]): every HTTP endpoint — readiness API,
//!   admin, the conversation, `/v1`, the page, `/metrics`, OpenAPI.
//! * `hearth-wyoming` ([`hearth_wyoming`]): the Wyoming protocol server.
//!
//! This crate holds what sits above them: [`server::serve`] (the one place
//! that knows every layer), [`cli`] with [`template`] for `hearth plugin new`
//! and [`wait`] for `hearth wait-ready`, [`systemd`] notification,
//! [`logging`] and [`audio`] (WAV files: `speak` writes one; benchmarks and
//! tests read them).
//!
//! The core's and the fronts' modules are re-exported under their old
//! names (`hearth::config`, `hearth::readiness`, `hearth::router`, ...), so
//! that tests and tools keep one import path.

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
pub mod logging;
pub mod server;
pub mod systemd;
pub mod template;
pub mod wait;

#[cfg(test)]
mod layers;

pub use hearth_core::{
    config, engine, error, hands_free, live, metrics, net, open, plugin, plugin_log, readiness, reload, service,
    services, worker, HostError, Result,
};
pub use hearth_http::{conversation, extract, guard, openai, openapi, page, readiness_api};
pub use hearth_wyoming as wyoming;

/// The HTTP front's root: [`hearth_http::AppState`] and the routers.
pub mod router {
    pub use hearth_http::{metrics_router, router, AppState};
}
