//! The core's one error type: what can go wrong in configuration, plugins,
//! engines and the supervisor, with a stable code per kind. It knows no
//! protocol: each front (HTTP, Wyoming) maps it onto its own answers.

use std::path::PathBuf;

use crate::service::ServiceName;

/// Everything that can go wrong in the host, with messages meant for the
/// operator reading them: each says what failed and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// `plugins.toml` is unreadable or invalid. `location` is
    /// `file:line:column`.
    #[error("{location}: {message}")]
    Config {
        /// `file:line:column` (or just the file when no position applies).
        location: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// A plugin file was refused before any of its code ran, or while
    /// `abi_stable` checked it.
    #[error("plugin {name} at {path} refused: {reason}")]
    PluginRefused {
        /// The plugin's name (its file stem when it is not a Hearth plugin).
        name: String,
        /// Where it was looked for.
        path: PathBuf,
        /// Why, with both ABI versions when they are the reason.
        reason: String,
    },

    /// A plugin file does not exist.
    #[error("plugin file {path} not found{hint}")]
    PluginMissing {
        /// Where it was looked for.
        path: PathBuf,
        /// What to do, starting with `: `.
        hint: String,
    },

    /// A plugin makes another kind of engine than its service needs.
    #[error("plugin {name} at {path} is a {found} engine, but [{service}] needs a {} engine", service.kind())]
    WrongKind {
        /// The plugin's name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The kind it makes.
        found: hearth_plugin_api::EngineKind,
        /// The service that named it.
        service: ServiceName,
    },

    /// An engine call returned an error or panicked.
    #[error("{service}: {message}")]
    Engine {
        /// The service the engine serves.
        service: ServiceName,
        /// The plugin's message.
        message: String,
    },

    /// A service is not in the configuration.
    #[error("unknown service `{0}`: the services are tts, stt, chat and vad")]
    UnknownService(String),

    /// A service exists but cannot serve right now.
    #[error("{service} is not ready: {reason}")]
    NotReady {
        /// The service.
        service: ServiceName,
        /// Its state, in words.
        reason: String,
    },

    /// The request conflicts with work already running.
    #[error("{0}")]
    Conflict(String),

    /// A service cannot serve and will not by itself: it failed, or its
    /// plugin is not installed (503 without `Retry-After`).
    #[error("{service} is unavailable: {reason}")]
    Unavailable {
        /// The service.
        service: ServiceName,
        /// Why, and what the operator can do.
        reason: String,
    },

    /// The same request came again before its cooldown ended.
    #[error("{what}; try again in {} s", whole_seconds(*retry_after))]
    TooSoon {
        /// What was refused and why.
        what: String,
        /// When it may be asked again.
        retry_after: std::time::Duration,
    },

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// Anything else, with its message.
    #[error("{0}")]
    Other(String),
}

impl HostError {
    /// The process exit code for this error: 2 for configuration mistakes
    /// (as for command-line mistakes), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config { .. } => 2,
            _ => 1,
        }
    }

    /// The stable, machine-readable code of this error, the same on every
    /// front: `invalid_config`, `unknown_service`, `not_ready`,
    /// `unavailable`, `conflict`, `too_soon`, `engine_error` or `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config { .. } => "invalid_config",
            Self::UnknownService(_) => "unknown_service",
            Self::NotReady { .. } => "not_ready",
            Self::Unavailable { .. } => "unavailable",
            Self::Conflict(_) => "conflict",
            Self::TooSoon { .. } => "too_soon",
            Self::Engine { .. } => "engine_error",
            Self::PluginRefused { .. }
            | Self::PluginMissing { .. }
            | Self::WrongKind { .. }
            | Self::Io { .. }
            | Self::Other(_) => "internal",
        }
    }
}

/// Seconds, rounded up (a `Retry-After` must not invite a refusal).
pub fn whole_seconds(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// The host's result type.
pub type Result<T, E = HostError> = std::result::Result<T, E>;
