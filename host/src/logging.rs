//! Logging: the format of the log (`HEARTH_LOG_FORMAT`: `text`, the
//! default, or `json`, one JSON object per line) and its level
//! (`HEARTH_LOG`, else `RUST_LOG`, else `info`). The span every HTTP
//! request runs in is the HTTP front's (`hearth_http::logging`).

/// The environment variable choosing the format.
pub const FORMAT_VAR: &str = "HEARTH_LOG_FORMAT";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// tracing's human format (with colours on a terminal).
    Text,
    /// One JSON object per line (tracing-subscriber's JSON formatter).
    Json,
}

impl Format {
    /// The format `HEARTH_LOG_FORMAT` asks for: unset or empty is
    /// `text`; anything but `text` or `json` is an error naming both.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(FORMAT_VAR) {
            Err(std::env::VarError::NotPresent) => Ok(Self::Text),
            Err(std::env::VarError::NotUnicode(value)) => Err(Self::unknown(&value.to_string_lossy())),
            Ok(value) => Self::parse(&value),
        }
    }

    /// Parses a value of `HEARTH_LOG_FORMAT`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(Self::unknown(value)),
        }
    }

    fn unknown(value: &str) -> String {
        format!("{FORMAT_VAR}={value:?} is not a log format; use `text` (the default) or `json`")
    }
}

/// Installs the global subscriber writing to stderr, at the level of
/// `HEARTH_LOG` (else `RUST_LOG`, else `info`). Does nothing when one is
/// installed already.
pub fn init(format: Format) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // `message` and the event's fields at the top level, where log
        // pipelines look for them; the spans (with the request id) in
        // `span` (the innermost) and `spans` (all, outermost first).
        Format::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_text_and_json_and_nothing_else() {
        assert_eq!(Format::parse(""), Ok(Format::Text));
        assert_eq!(Format::parse("text"), Ok(Format::Text));
        assert_eq!(Format::parse(" JSON "), Ok(Format::Json));
        let error = Format::parse("yaml").unwrap_err();
        assert!(error.contains("HEARTH_LOG_FORMAT=\"yaml\""), "{error}");
        assert!(error.contains("`text`") && error.contains("`json`"), "{error}");
    }
}
