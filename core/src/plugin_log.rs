//! Where a plugin's log lines and progress go when no supervisor watches:
//! the host's log, tagged with the plugin's service. A leaf, shared by the
//! engines in this process and the proxies of workers.

use hearth_plugin_api::client::Host;

/// A [`Host`] for engine calls outside the supervisor (the one-shot CLI
/// commands, benchmarks): progress goes to the debug log, log lines to the
/// log, and it never cancels.
pub struct LogHost(pub &'static str);

impl Host for LogHost {
    fn progress(&self, fraction: f32, message: &str) {
        tracing::debug!(service = self.0, "{:.0}% {message}", fraction * 100.0);
    }
    fn is_cancelled(&self) -> bool {
        false
    }
    fn log(&self, level: u8, message: &str) {
        log_plugin_line(self.0, level, message);
    }
}

/// Writes a plugin's log line to the host's log, tagged with its service.
pub fn log_plugin_line(service: &str, level: u8, message: &str) {
    match level {
        0 | 1 => tracing::error!(target: "plugin", service, "{message}"),
        2 => tracing::warn!(target: "plugin", service, "{message}"),
        3 => tracing::info!(target: "plugin", service, "{message}"),
        4 => tracing::debug!(target: "plugin", service, "{message}"),
        _ => tracing::trace!(target: "plugin", service, "{message}"),
    }
}
