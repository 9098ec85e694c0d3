//! The Wyoming front's one error type: what a client sent that the protocol
//! refuses (a malformed frame, too much audio or text), or what the core
//! refused. Every one becomes an `error` event with a code, the same codes
//! the HTTP API uses.

use hearth_core::error::HostError;

/// What a Wyoming connection can answer with an `error` event.
#[derive(Debug, thiserror::Error)]
pub enum WyomingError {
    /// The core refused or failed (a service not ready, an engine error, ...).
    #[error(transparent)]
    Core(#[from] HostError),

    /// A malformed frame or event, or audio in a format that cannot be used.
    #[error("{0}")]
    BadRequest(String),

    /// A frame, an audio stream or a text longer than this server accepts.
    #[error("{0}")]
    TooLarge(String),

    /// Anything else, with its message.
    #[error("{0}")]
    Other(String),
}

impl WyomingError {
    /// The stable code of the `error` event: the core's codes, plus
    /// `bad_request`, `too_large` and `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Core(core) => core.code(),
            Self::BadRequest(_) => "bad_request",
            Self::TooLarge(_) => "too_large",
            Self::Other(_) => "internal",
        }
    }
}

/// The Wyoming front's result type.
pub type Result<T, E = WyomingError> = std::result::Result<T, E>;
