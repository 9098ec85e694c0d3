//! `plugins.toml` in two layers: [`RawConfig`] is the file as parsed, with
//! spans on every value; [`Config`] is the resolved, validated form the rest
//! of the host uses. Every error names `file:line:column`.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{HostError, Result};
pub use crate::service::ServiceName;

/// The file name looked for when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "plugins.toml";

/// The largest configuration file read, in bytes (1 MiB): a catalog of
/// engines is a few kilobytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

// ---------------------------------------------------------------------------
// Layer 1: the file as written.

/// `plugins.toml` as parsed, before any validation beyond its shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[host]`.
    #[serde(default)]
    pub host: RawHost,
    /// `[tts]`.
    pub tts: Option<Spanned<RawService>>,
    /// `[stt]`.
    pub stt: Option<Spanned<RawService>>,
    /// `[chat]`.
    pub chat: Option<Spanned<RawService>>,
    /// `[vad]`.
    pub vad: Option<Spanned<RawService>>,
    /// `[conversation]`.
    #[serde(default)]
    pub conversation: RawConversation,
    /// `[wyoming]`.
    #[serde(default)]
    pub wyoming: RawWyoming,
}

/// `[host]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// Address and port to serve on.
    pub listen: Option<Spanned<String>>,
    /// Where plugin names are resolved.
    pub plugin_dir: Option<Spanned<String>>,
    /// Warm up right after loading.
    pub auto_warmup: Option<bool>,
    /// Longest time a plugin may take to load.
    pub load_timeout: Option<Spanned<String>>,
    /// Longest time a plugin may take to warm up.
    pub warmup_timeout: Option<Spanned<String>>,
    /// Longest time shutdown waits for connections and engines.
    pub shutdown_timeout: Option<Spanned<String>>,
    /// Reload when the file changes on disk.
    pub watch: Option<bool>,
    /// Shortest time between two retries (or restarts) of one service.
    pub retry_cooldown: Option<Spanned<String>>,
    /// Other origins whose pages may drive Hearth (and read it, by CORS).
    pub allowed_origins: Option<Vec<String>>,
    /// Other names this server is reached by.
    pub allowed_hosts: Option<Vec<String>>,
    /// A file holding the admin token.
    pub admin_token_file: Option<Spanned<String>>,
    /// A file holding the API key `/v1` requires.
    pub api_key_file: Option<Spanned<String>>,
    /// Serve the admin endpoints beyond loopback without a token.
    pub allow_open_admin: Option<bool>,
    /// Connections served at once.
    pub max_connections: Option<Spanned<i64>>,
    /// Longest a client may take to send a request's headers.
    pub header_read_timeout: Option<Spanned<String>>,
    /// Serve `GET /metrics`.
    pub metrics: Option<bool>,
    /// Serve `/metrics` on this address instead of the main one.
    pub metrics_listen: Option<Spanned<String>>,
}

/// `[tts]`, `[stt]` or `[chat]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// A plugin name or a path.
    pub plugin: Spanned<String>,
    /// Whether READY waits for it.
    pub required: Option<bool>,
    /// Whether to load it at all.
    pub enabled: Option<bool>,
    /// `"process"` (default) or `"in-process"`.
    pub isolation: Option<Spanned<String>>,
    /// Longest one request may take before a worker is killed.
    pub request_timeout: Option<Spanned<String>>,
    /// The worker's address-space limit, e.g. `"2GiB"`.
    pub memory_limit: Option<Spanned<String>>,
    /// Handed to the plugin as JSON.
    pub config: Option<Spanned<toml::Table>>,
}

/// `[conversation]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConversation {
    /// The system prompt of every conversation.
    pub system_prompt: Option<String>,
    /// Messages of history kept per connection.
    pub max_history: Option<Spanned<i64>>,
    /// Conversations served at once.
    pub max_conversations: Option<Spanned<i64>>,
    /// Longest utterance accepted.
    pub max_utterance: Option<Spanned<String>>,
    /// Largest WebSocket message accepted, in bytes.
    pub max_message_bytes: Option<Spanned<i64>>,
    /// A conversation with neither a message nor a turn for this long is
    /// closed.
    pub idle_timeout: Option<Spanned<String>>,
    /// A client that does not take a message for this long is dropped.
    pub send_timeout: Option<Spanned<String>>,
    /// Bytes waiting for one client before the turn waits for it.
    pub send_queue_bytes: Option<Spanned<i64>>,
    /// Hands-free: how long after speech ends the utterance is over.
    pub end_of_utterance: Option<Spanned<String>>,
    /// Hands-free: transcribe each stretch of speech as it ends (and
    /// prepare the reply while waiting for the end of the utterance).
    pub incremental: Option<bool>,
}

/// `[wyoming]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWyoming {
    /// Serve the Wyoming protocol at all.
    pub enabled: Option<bool>,
    /// Address and port of the Wyoming listener.
    pub listen: Option<Spanned<String>>,
    /// Advertise `_wyoming._tcp` over mDNS.
    pub zeroconf: Option<bool>,
    /// Wyoming connections served at once.
    pub max_connections: Option<Spanned<i64>>,
    /// The largest header line, data block or payload of one frame.
    pub max_frame_bytes: Option<Spanned<i64>>,
    /// A connection that sends no complete frame for this long is closed.
    pub idle_timeout: Option<Spanned<String>>,
    /// The longest audio one transcription accepts.
    pub max_audio: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------
// Layer 2: resolved and validated.

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// The file's directory; relative paths are resolved against it.
    pub base_dir: PathBuf,
    /// `[host]`.
    pub host: HostConfig,
    /// The configured services, keyed by name. A service without a section
    /// is absent.
    pub services: BTreeMap<ServiceName, ServiceConfig>,
    /// `[conversation]`.
    pub conversation: ConversationConfig,
    /// `[wyoming]`.
    pub wyoming: WyomingConfig,
}

/// `[host]`, with defaults applied.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Default `127.0.0.1:8000`.
    pub listen: SocketAddr,
    /// Default: the directory of the `hearth` executable.
    pub plugin_dir: PathBuf,
    /// Default true.
    pub auto_warmup: bool,
    /// Default 120 s.
    pub load_timeout: Duration,
    /// Default 60 s.
    pub warmup_timeout: Duration,
    /// Default 10 s.
    pub shutdown_timeout: Duration,
    /// Default false: reload when `plugins.toml` changes on disk.
    pub watch: bool,
    /// Default 5 s: a service is retried or restarted at most once per
    /// this long; earlier requests get 429 with `Retry-After`.
    pub retry_cooldown: Duration,
    /// Default none: origins besides the page's own that may drive Hearth.
    pub allowed_origins: Vec<String>,
    /// Default none: names besides localhost and the listen address.
    pub allowed_hosts: Vec<String>,
    /// Default none: the admin token's file (`HEARTH_ADMIN_TOKEN` wins).
    pub admin_token_file: Option<PathBuf>,
    /// Default none: a file holding the API key the `/v1` endpoints require
    /// as `Authorization: Bearer <key>` (`HEARTH_API_KEY` wins); without
    /// one, `/v1` is as open as the rest of the API.
    pub api_key_file: Option<PathBuf>,
    /// Default false: serve admin endpoints beyond loopback without a token.
    pub allow_open_admin: bool,
    /// Default 10,240: connections served at once; more are answered 503
    /// with `Retry-After` and closed.
    pub max_connections: usize,
    /// Default 10 s: a client that has not sent a request's headers by then
    /// is disconnected.
    pub header_read_timeout: Duration,
    /// Default true: serve Prometheus metrics at `GET /metrics`.
    pub metrics: bool,
    /// Default none: serve `/metrics` (and the probes) on this address of
    /// its own instead of the main listener, e.g. a port only the cluster
    /// reaches.
    pub metrics_listen: Option<SocketAddr>,
}

/// One service's section, resolved.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Which service.
    pub name: ServiceName,
    /// The `plugin` value as written.
    pub plugin_spec: String,
    /// The file it resolves to.
    pub plugin_path: PathBuf,
    /// Whether READY waits for it.
    pub required: bool,
    /// Whether it is loaded at all.
    pub enabled: bool,
    /// The `config` table as JSON text.
    pub config_json: String,
    /// `file:line:column` of the `config` table (or of the section), for
    /// messages about it.
    pub config_location: String,
    /// Where the engine runs.
    pub isolation: Isolation,
    /// Default 5 min: a synthesize, transcribe or chat that takes longer
    /// fails; in process mode its worker is killed.
    pub request_timeout: Duration,
    /// The worker's address-space limit in bytes (process mode only).
    pub memory_limit: Option<u64>,
}

/// Where a service's engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// In a worker process of its own: a crash or hang takes only the
    /// worker down. The default.
    Process,
    /// In the host process: no worker overhead, but a native crash takes
    /// the host down and a hung call leaves a thread behind.
    InProcess,
}

impl Isolation {
    /// The name used in `plugins.toml` and `/api/ready`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::InProcess => "in-process",
        }
    }
}

/// `[conversation]`, with defaults applied.
#[derive(Debug, Clone)]
pub struct ConversationConfig {
    /// Default: a short instruction to answer briefly, in speakable text.
    pub system_prompt: String,
    /// Default 20 messages.
    pub max_history: usize,
    /// Default 4.
    pub max_conversations: usize,
    /// Default 30 s.
    pub max_utterance: Duration,
    /// Default 1 MiB.
    pub max_message_bytes: usize,
    /// Default 5 min: closed (1001) after this long without a message or a
    /// turn, so idle clients do not hold the `max_conversations` slots.
    pub idle_timeout: Duration,
    /// Default 10 s: a client that does not read one message for this long
    /// is dropped, its turn cancelled and its slot freed.
    pub send_timeout: Duration,
    /// Default 4 MiB: the most bytes of events and audio queued for one
    /// client. A turn that gets this far ahead of its client waits (and,
    /// after `send_timeout` with nothing taken, the client is dropped), so
    /// a client that stops reading costs the server at most this much.
    pub send_queue_bytes: usize,
    /// Default 1.2 s: hands-free, the utterance is over when the VAD has
    /// heard no speech for this long after speech ended (which the VAD
    /// itself decides after its `min_silence_ms`). Longer than the pauses
    /// people make mid-sentence (up to about 1 s in the JFK clip).
    pub end_of_utterance: Duration,
    /// Default true: hands-free, each stretch of speech is transcribed as
    /// it ends (`partial_transcript`), and the reply is prepared while the
    /// end of the utterance is awaited; false: the whole utterance is
    /// transcribed when it is over.
    pub incremental: bool,
}

/// `[wyoming]`, with defaults applied: the Wyoming protocol server (Home
/// Assistant's voice pipeline; see [`crate::wyoming`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WyomingConfig {
    /// Default false: serve the Wyoming protocol.
    pub enabled: bool,
    /// Default `127.0.0.1:10200` (wyoming-piper's port).
    pub listen: SocketAddr,
    /// Default false: advertise `_wyoming._tcp` over mDNS on the
    /// interfaces `listen` is reachable on.
    pub zeroconf: bool,
    /// Default 64: Wyoming connections at once; one more gets an `error`
    /// event (`busy`) and is closed.
    pub max_connections: usize,
    /// Default 4 MiB: the largest header line, data block or payload of one
    /// incoming frame; a larger one gets an `error` event and the
    /// connection is closed.
    pub max_frame_bytes: usize,
    /// Default 60 s: a client that sends no complete frame for this long is
    /// sent an `error` event and disconnected.
    pub idle_timeout: Duration,
    /// Default 5 min: the longest audio one transcription accepts.
    pub max_audio: Duration,
}

/// The Wyoming listener when `[wyoming] listen` is not set: wyoming-piper's
/// port, on loopback.
pub const DEFAULT_WYOMING_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 10200);

/// The system prompt used when `[conversation] system_prompt` is not set.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful voice assistant. Answer in one to three short sentences of plain text, without lists, markup or emoji.";

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let refuse = |message: String| HostError::Config {
            location: path.display().to_string(),
            message,
        };
        // Only a regular file of a sane size: a FIFO would hang the read and
        // a device (`/dev/zero`) would never end it.
        let meta = std::fs::metadata(path).map_err(|e| refuse(format!("cannot read the configuration: {e}")))?;
        if !meta.is_file() {
            return Err(refuse(
                "the configuration is not a regular file; give the path of a plugins.toml".to_owned(),
            ));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(refuse(format!(
                "the configuration has {} bytes, more than {MAX_CONFIG_BYTES}; is this the right file?",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| refuse(format!("cannot read the configuration: {e}")))?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let file = Located { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            file.error(span, e.message().trim_end())
        })?;
        let base_dir = path
            .parent()
            .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
        let host = resolve_host(&file, &base_dir, raw.host)?;
        let mut services = BTreeMap::new();
        for (name, section) in [
            (ServiceName::Tts, raw.tts),
            (ServiceName::Stt, raw.stt),
            (ServiceName::Chat, raw.chat),
            (ServiceName::Vad, raw.vad),
        ] {
            if let Some(section) = section {
                let service = resolve_service(&file, &base_dir, &host.plugin_dir, name, section)?;
                services.insert(name, service);
            }
        }
        let conversation = resolve_conversation(&file, raw.conversation)?;
        let wyoming = resolve_wyoming(&file, &host, raw.wyoming)?;
        Ok(Self {
            path: path.to_path_buf(),
            base_dir,
            host,
            services,
            conversation,
            wyoming,
        })
    }
}

/// The file being validated, for turning spans into `file:line:column`.
struct Located<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Located<'_> {
    fn location(&self, span: Range<usize>) -> String {
        let (line, column) = line_column(self.text, span.start);
        format!("{}:{line}:{column}", self.path.display())
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> HostError {
        HostError::Config {
            location: self.location(span),
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn duration(file: &Located<'_>, value: Option<Spanned<String>>, key: &str, default: Duration) -> Result<Duration> {
    let Some(value) = value else { return Ok(default) };
    let parsed = humantime::parse_duration(value.get_ref().trim()).map_err(|e| {
        file.error(
            value.span(),
            format!(
                "`{key}` = {:?} is not a duration ({e}); write it like \"60s\", \"2m\" or \"1m 30s\"",
                value.get_ref()
            ),
        )
    })?;
    if parsed.is_zero() {
        return Err(file.error(value.span(), format!("`{key}` must be longer than zero")));
    }
    // Far beyond any sane setting, and far from where arithmetic on
    // deadlines (`Instant + Duration`) could overflow.
    if parsed > MAX_DURATION {
        return Err(file.error(
            value.span(),
            format!("`{key}` = {:?} is too long: at most 1 day", value.get_ref()),
        ));
    }
    Ok(parsed)
}

/// The longest duration any setting accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

fn positive(file: &Located<'_>, value: Option<Spanned<i64>>, key: &str, default: usize, max: usize) -> Result<usize> {
    let Some(value) = value else { return Ok(default) };
    match usize::try_from(*value.get_ref()) {
        Ok(n) if n > 0 && n <= max => Ok(n),
        _ => Err(file.error(value.span(), format!("`{key}` must be a whole number from 1 to {max}"))),
    }
}

/// The directory of the running executable, where plugins are looked for by
/// default (cargo puts the `hearth` binary and the plugin libraries side by
/// side in `target/<profile>/`).
pub fn executable_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// An address and port, or an error at its place naming `key`.
fn address(file: &Located<'_>, value: &Spanned<String>, key: &str) -> Result<SocketAddr> {
    value.get_ref().trim().parse().map_err(|_| {
        file.error(
            value.span(),
            format!(
                "`{key}` = {:?} is not an address and port, e.g. \"127.0.0.1:8000\" or \"0.0.0.0:8000\"",
                value.get_ref()
            ),
        )
    })
}

fn resolve_host(file: &Located<'_>, base_dir: &Path, raw: RawHost) -> Result<HostConfig> {
    let listen = match &raw.listen {
        None => SocketAddr::from(([127, 0, 0, 1], 8000)),
        Some(value) => address(file, value, "listen")?,
    };
    let metrics_listen = match &raw.metrics_listen {
        None => None,
        Some(value) => {
            let at = address(file, value, "metrics_listen")?;
            if at == listen {
                return Err(file.error(
                    value.span(),
                    "`metrics_listen` is the same address as `listen`: leave it out to serve /metrics there",
                ));
            }
            Some(at)
        }
    };
    let plugin_dir = match raw.plugin_dir {
        None => executable_dir(),
        Some(dir) => hearth_plugin_api::resolve_path(base_dir, Path::new(dir.get_ref())),
    };
    Ok(HostConfig {
        listen,
        plugin_dir,
        auto_warmup: raw.auto_warmup.unwrap_or(true),
        load_timeout: duration(file, raw.load_timeout, "load_timeout", Duration::from_secs(120))?,
        warmup_timeout: duration(file, raw.warmup_timeout, "warmup_timeout", Duration::from_secs(60))?,
        shutdown_timeout: duration(file, raw.shutdown_timeout, "shutdown_timeout", Duration::from_secs(10))?,
        watch: raw.watch.unwrap_or(false),
        retry_cooldown: duration(file, raw.retry_cooldown, "retry_cooldown", Duration::from_secs(5))?,
        allowed_origins: raw.allowed_origins.unwrap_or_default(),
        allowed_hosts: raw.allowed_hosts.unwrap_or_default(),
        admin_token_file: raw
            .admin_token_file
            .map(|f| hearth_plugin_api::resolve_path(base_dir, Path::new(f.get_ref()))),
        api_key_file: raw
            .api_key_file
            .map(|f| hearth_plugin_api::resolve_path(base_dir, Path::new(f.get_ref()))),
        allow_open_admin: raw.allow_open_admin.unwrap_or(false),
        max_connections: positive(file, raw.max_connections, "max_connections", 10_240, 1_000_000)?,
        header_read_timeout: duration(
            file,
            raw.header_read_timeout,
            "header_read_timeout",
            Duration::from_secs(10),
        )?,
        metrics: raw.metrics.unwrap_or(true),
        metrics_listen,
    })
}

/// The file a plugin name resolves to: `libhearth_<name>.so` in the plugin
/// directory, with `-` turned into `_` as cargo does.
pub fn plugin_file_name(name: &str) -> String {
    format!("libhearth_{}.so", name.replace('-', "_"))
}

/// Resolves a `plugin` value: a value with a `/` or ending in `.so` is a
/// path (relative to `plugins.toml`), anything else a name looked up in
/// `plugin_dir`.
pub fn resolve_plugin(spec: &str, base_dir: &Path, plugin_dir: &Path) -> PathBuf {
    if spec.contains('/') || spec.ends_with(".so") {
        hearth_plugin_api::resolve_path(base_dir, Path::new(spec))
    } else {
        plugin_dir.join(plugin_file_name(spec))
    }
}

fn resolve_service(
    file: &Located<'_>,
    base_dir: &Path,
    plugin_dir: &Path,
    name: ServiceName,
    section: Spanned<RawService>,
) -> Result<ServiceConfig> {
    let section_span = section.span();
    let raw = section.into_inner();
    let spec = raw.plugin.get_ref().trim().to_owned();
    if spec.is_empty() {
        return Err(file.error(
            raw.plugin.span(),
            "`plugin` is empty: give a plugin name (e.g. \"tts-piper\") or a path to a .so file",
        ));
    }
    let (config_json, config_location) = match raw.config {
        None => ("{}".to_owned(), file.location(section_span)),
        Some(table) => {
            let location = file.location(table.span());
            let json = serde_json::to_string(table.get_ref())
                .map_err(|e| file.error(table.span(), format!("`config` cannot be handed to the plugin: {e}")))?;
            (json, location)
        }
    };
    let isolation = match raw.isolation {
        None => Isolation::Process,
        Some(value) => match value.get_ref().as_str() {
            "process" => Isolation::Process,
            "in-process" => Isolation::InProcess,
            other => {
                return Err(file.error(
                    value.span(),
                    format!("`isolation` = {other:?} is not known: write \"process\" (the default) or \"in-process\""),
                ))
            }
        },
    };
    let request_timeout = duration(file, raw.request_timeout, "request_timeout", Duration::from_secs(300))?;
    let memory_limit = match raw.memory_limit {
        None => None,
        Some(value) => {
            let bytes = parse_bytes(value.get_ref()).map_err(|e| file.error(value.span(), e))?;
            if isolation == Isolation::InProcess {
                return Err(file.error(
                    value.span(),
                    "`memory_limit` needs `isolation = \"process\"`: the host cannot limit one engine in its own process",
                ));
            }
            Some(bytes)
        }
    };
    Ok(ServiceConfig {
        name,
        plugin_path: resolve_plugin(&spec, base_dir, plugin_dir),
        plugin_spec: spec,
        required: raw.required.unwrap_or(name.required_by_default()),
        enabled: raw.enabled.unwrap_or(true),
        config_json,
        config_location,
        isolation,
        request_timeout,
        memory_limit,
    })
}

/// Parses a size such as `"2GiB"`, `"512MiB"`, `"1.5G"` or `"100000000"`
/// (bytes); at least 64 MiB, since a worker needs that much to start.
pub fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write it like \"2GiB\" or \"512MiB\""))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" => 1000,
        "KiB" => 1 << 10,
        "M" | "MB" => 1000 * 1000,
        "MiB" => 1 << 20,
        "G" | "GB" => 1000 * 1000 * 1000,
        "GiB" => 1 << 30,
        "T" | "TB" => 1000 * 1000 * 1000 * 1000,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use B, KiB, MiB, GiB or TiB"
            ))
        }
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < (64 << 20) as f64 || bytes > (1u64 << 50) as f64 {
        return Err(format!("{text:?} is out of range: give between 64MiB and 1PiB"));
    }
    Ok(bytes as u64)
}

fn resolve_conversation(file: &Located<'_>, raw: RawConversation) -> Result<ConversationConfig> {
    Ok(ConversationConfig {
        system_prompt: raw.system_prompt.unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_owned()),
        max_history: positive(file, raw.max_history, "max_history", 20, 10_000)?,
        max_conversations: positive(file, raw.max_conversations, "max_conversations", 4, 10_000)?,
        max_utterance: duration(file, raw.max_utterance, "max_utterance", Duration::from_secs(30))?,
        max_message_bytes: positive(file, raw.max_message_bytes, "max_message_bytes", 1 << 20, 256 << 20)?,
        idle_timeout: duration(file, raw.idle_timeout, "idle_timeout", Duration::from_secs(300))?,
        send_timeout: duration(file, raw.send_timeout, "send_timeout", Duration::from_secs(10))?,
        send_queue_bytes: positive(file, raw.send_queue_bytes, "send_queue_bytes", 4 << 20, 1 << 30)?,
        end_of_utterance: duration(
            file,
            raw.end_of_utterance,
            "end_of_utterance",
            Duration::from_millis(1200),
        )?,
        incremental: raw.incremental.unwrap_or(true),
    })
}

fn resolve_wyoming(file: &Located<'_>, host: &HostConfig, raw: RawWyoming) -> Result<WyomingConfig> {
    let listen = match &raw.listen {
        None => SocketAddr::from(DEFAULT_WYOMING_LISTEN),
        Some(value) => {
            let at = address(file, value, "listen")?;
            let taken = if at == host.listen {
                Some("[host] listen")
            } else if Some(at) == host.metrics_listen {
                Some("[host] metrics_listen")
            } else {
                None
            };
            if let Some(other) = taken {
                return Err(file.error(
                    value.span(),
                    format!("[wyoming] `listen` is the same address as {other}: give Wyoming a port of its own, e.g. \"127.0.0.1:10200\""),
                ));
            }
            at
        }
    };
    let max_frame_bytes = match raw.max_frame_bytes {
        None => 4 << 20,
        Some(value) => match usize::try_from(*value.get_ref()) {
            Ok(n) if (MIN_WYOMING_FRAME_BYTES..=MAX_WYOMING_FRAME_BYTES).contains(&n) => n,
            _ => {
                return Err(file.error(
                    value.span(),
                    format!(
                        "`max_frame_bytes` must be a whole number from {MIN_WYOMING_FRAME_BYTES} to {MAX_WYOMING_FRAME_BYTES} (bytes)"
                    ),
                ))
            }
        },
    };
    Ok(WyomingConfig {
        enabled: raw.enabled.unwrap_or(false),
        listen,
        zeroconf: raw.zeroconf.unwrap_or(false),
        max_connections: positive(file, raw.max_connections, "max_connections", 64, 100_000)?,
        max_frame_bytes,
        idle_timeout: duration(file, raw.idle_timeout, "idle_timeout", Duration::from_secs(60))?,
        max_audio: duration(file, raw.max_audio, "max_audio", Duration::from_secs(300))?,
    })
}

/// The smallest `[wyoming] max_frame_bytes`: room for any header line a
/// client writes.
pub const MIN_WYOMING_FRAME_BYTES: usize = 1024;
/// The largest `[wyoming] max_frame_bytes`.
pub const MAX_WYOMING_FRAME_BYTES: usize = 256 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("/etc/hearth/plugins.toml"), text)
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_follow_the_seed() {
        let config = parse("[tts]\nplugin = \"a\"\n[stt]\nplugin = \"b\"\n[chat]\nplugin = \"c\"\n").unwrap();
        assert_eq!(config.host.listen.to_string(), "127.0.0.1:8000");
        assert!(config.host.auto_warmup);
        assert_eq!(config.host.warmup_timeout, Duration::from_secs(60));
        assert!(config.services[&ServiceName::Tts].required);
        assert!(!config.services[&ServiceName::Stt].required);
        assert!(config.services[&ServiceName::Chat].required);
        assert_eq!(config.services[&ServiceName::Tts].config_json, "{}");
    }

    #[test]
    fn names_resolve_in_the_plugin_dir_and_paths_against_the_file() {
        let config =
            parse("[host]\nplugin_dir = \"lib\"\n[tts]\nplugin = \"tts-piper\"\n[chat]\nplugin = \"./x/my.so\"\n")
                .unwrap();
        assert_eq!(
            config.services[&ServiceName::Tts].plugin_path,
            Path::new("/etc/hearth/lib/libhearth_tts_piper.so")
        );
        assert_eq!(
            config.services[&ServiceName::Chat].plugin_path,
            Path::new("/etc/hearth/./x/my.so")
        );
    }

    #[test]
    fn unknown_keys_name_the_place_and_the_known_keys() {
        let message = error_of("[host]\nlisten = \"127.0.0.1:1\"\nwarmup_timout = \"5s\"\n");
        assert!(
            message.starts_with("/etc/hearth/plugins.toml:3:1: unknown field `warmup_timout`"),
            "{message}"
        );
        assert!(message.contains("`warmup_timeout`"), "{message}");
    }

    #[test]
    fn unknown_sections_are_rejected() {
        let message = error_of("[tss]\nplugin = \"x\"\n");
        assert!(message.contains("plugins.toml:1:2: unknown field `tss`"), "{message}");
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let message = error_of("[host]\nwarmup_timeout = \"sixty\"\n");
        assert!(
            message.starts_with("/etc/hearth/plugins.toml:2:18: `warmup_timeout`"),
            "{message}"
        );
        let message = error_of("[host]\nlisten = \"localhost\"\n");
        assert!(message.starts_with("/etc/hearth/plugins.toml:2:10:"), "{message}");
        let message = error_of("[tts]\nplugin = 3\n");
        assert!(message.starts_with("/etc/hearth/plugins.toml:2:10:"), "{message}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let message = error_of("[tts\nplugin = \"x\"\n");
        assert!(message.starts_with("/etc/hearth/plugins.toml:1:"), "{message}");
    }

    #[test]
    fn the_config_table_becomes_json() {
        let config = parse("[tts]\nplugin = \"a\"\n[tts.config]\nvoice = \"v.onnx\"\nthreads = 1\n").unwrap();
        let json: serde_json::Value = serde_json::from_str(&config.services[&ServiceName::Tts].config_json).unwrap();
        assert_eq!(json, serde_json::json!({"voice": "v.onnx", "threads": 1}));
        assert_eq!(
            config.services[&ServiceName::Tts].config_location,
            "/etc/hearth/plugins.toml:3:1"
        );
    }

    #[test]
    fn isolation_defaults_to_process_and_is_validated() {
        let config = parse("[tts]\nplugin = \"a\"\n[stt]\nplugin = \"b\"\nisolation = \"in-process\"\n").unwrap();
        assert_eq!(config.services[&ServiceName::Tts].isolation, Isolation::Process);
        assert_eq!(config.services[&ServiceName::Stt].isolation, Isolation::InProcess);
        let message = error_of("[tts]\nplugin = \"a\"\nisolation = \"thread\"\n");
        assert!(
            message.starts_with("/etc/hearth/plugins.toml:3:13: `isolation`"),
            "{message}"
        );
        let message = error_of("[tts]\nplugin = \"a\"\nisolation = \"in-process\"\nmemory_limit = \"1GiB\"\n");
        assert!(
            message.contains(":4:16:") && message.contains("needs `isolation"),
            "{message}"
        );
    }

    #[test]
    fn memory_limits_are_sizes() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
        assert!(parse_bytes("1KiB").unwrap_err().contains("out of range"));
        assert!(parse_bytes("lots").unwrap_err().contains("not a size"));
        assert!(parse_bytes("2 parsecs").unwrap_err().contains("unknown unit"));
        let message = error_of("[tts]\nplugin = \"a\"\nmemory_limit = \"2X\"\n");
        assert!(message.starts_with("/etc/hearth/plugins.toml:3:16:"), "{message}");
    }

    #[test]
    fn durations_and_counts_have_bounds() {
        let message = error_of("[host]\nshutdown_timeout = \"300000000000years\"\n");
        assert!(
            message.starts_with("/etc/hearth/plugins.toml:2:20: `shutdown_timeout`"),
            "{message}"
        );
        assert!(message.contains("at most 1 day"), "{message}");
        let message = error_of("[conversation]\nmax_conversations = 9223372036854775807\n");
        assert!(message.starts_with("/etc/hearth/plugins.toml:2:21:"), "{message}");
        assert!(message.contains("from 1 to 10000"), "{message}");
        assert!(parse("[host]\nload_timeout = \"24h\"\n").is_ok());
    }

    proptest::proptest! {
        /// Any text: parsing never panics, and every error is located.
        #[test]
        fn any_text_parses_or_is_located(text in "\\PC{0,200}") {
            if let Err(e) = parse(&text) {
                proptest::prop_assert!(e.to_string().starts_with("/etc/hearth/plugins.toml"), "{}", e);
            }
        }

        /// Plausible files with random values: never a panic, errors at a
        /// line and column.
        #[test]
        fn random_values_are_checked_not_trusted(
            key in proptest::sample::select(vec!["load_timeout", "shutdown_timeout", "warmup_timeout", "retry_cooldown"]),
            value in "[0-9a-z .-]{0,24}",
            count in proptest::num::i64::ANY,
        ) {
            let text = format!("[host]\n{key} = {value:?}\n[conversation]\nmax_conversations = {count}\n");
            if let Err(e) = parse(&text) {
                let message = e.to_string();
                proptest::prop_assert!(message.starts_with("/etc/hearth/plugins.toml:2:") || message.starts_with("/etc/hearth/plugins.toml:4:"), "{}", message);
            }
        }
    }

    #[test]
    fn wyoming_is_off_by_default_with_documented_limits() {
        let config = parse("[tts]\nplugin = \"a\"\n").unwrap();
        assert_eq!(
            config.wyoming,
            WyomingConfig {
                enabled: false,
                listen: "127.0.0.1:10200".parse().unwrap(),
                zeroconf: false,
                max_connections: 64,
                max_frame_bytes: 4 << 20,
                idle_timeout: Duration::from_secs(60),
                max_audio: Duration::from_secs(300),
            }
        );
        let config = parse(
            "[wyoming]\nenabled = true\nlisten = \"0.0.0.0:10300\"\nzeroconf = true\nmax_connections = 2\n\
             max_frame_bytes = 65536\nidle_timeout = \"5s\"\nmax_audio = \"30s\"\n",
        )
        .unwrap();
        assert!(config.wyoming.enabled && config.wyoming.zeroconf);
        assert_eq!(config.wyoming.listen.to_string(), "0.0.0.0:10300");
        assert_eq!(config.wyoming.max_connections, 2);
        assert_eq!(config.wyoming.max_frame_bytes, 65536);
        assert_eq!(config.wyoming.idle_timeout, Duration::from_secs(5));
        assert_eq!(config.wyoming.max_audio, Duration::from_secs(30));
    }

    #[test]
    fn wyoming_mistakes_are_located() {
        let message = error_of("[wyoming]\nenabled = true\nlsten = \"x\"\n");
        assert!(
            message.starts_with("/etc/hearth/plugins.toml:3:1: unknown field `lsten`"),
            "{message}"
        );
        assert!(message.contains("`max_frame_bytes`"), "{message}");
        let message = error_of("[wyoming]\nlisten = \"10200\"\n");
        assert!(
            message.starts_with("/etc/hearth/plugins.toml:2:10: `listen`"),
            "{message}"
        );
        let message = error_of("[host]\nlisten = \"127.0.0.1:9000\"\n[wyoming]\nlisten = \"127.0.0.1:9000\"\n");
        assert!(
            message.starts_with("/etc/hearth/plugins.toml:4:10:") && message.contains("same address as [host] listen"),
            "{message}"
        );
        let message = error_of("[wyoming]\nmax_frame_bytes = 10\n");
        assert!(
            message.starts_with("/etc/hearth/plugins.toml:2:19: `max_frame_bytes`"),
            "{message}"
        );
        let message = error_of("[wyoming]\nidle_timeout = \"0s\"\n");
        assert!(
            message.starts_with("/etc/hearth/plugins.toml:2:16: `idle_timeout`"),
            "{message}"
        );
        let message = error_of("[wyoming]\nmax_connections = 0\n");
        assert!(message.starts_with("/etc/hearth/plugins.toml:2:19:"), "{message}");
        let message = error_of("[wyoming]\nenabled = \"yes\"\n");
        assert!(message.starts_with("/etc/hearth/plugins.toml:2:11:"), "{message}");
    }

    proptest::proptest! {
        /// Random `[wyoming]` values: never a panic, errors at their line.
        #[test]
        fn random_wyoming_values_are_checked_not_trusted(
            key in proptest::sample::select(vec!["listen", "idle_timeout", "max_audio"]),
            value in "[0-9a-z .:-]{0,24}",
            count_key in proptest::sample::select(vec!["max_connections", "max_frame_bytes"]),
            count in proptest::num::i64::ANY,
        ) {
            let text = format!("[wyoming]\nenabled = true\n{key} = {value:?}\n{count_key} = {count}\n");
            if let Err(e) = parse(&text) {
                let message = e.to_string();
                proptest::prop_assert!(
                    message.starts_with("/etc/hearth/plugins.toml:3:") || message.starts_with("/etc/hearth/plugins.toml:4:"),
                    "{}", message
                );
            }
        }
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_column("é = 1\nab", 8), (2, 2));
    }
}
