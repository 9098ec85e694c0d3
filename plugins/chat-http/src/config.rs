//! The `[chat.config]` table in two layers: [`RawConfig`] exactly as parsed
//! (unknown keys refused), and [`Config`], validated and with defaults
//! filled in, which the rest of the crate uses.
//!
//! Validation happens during deserialization (`#[serde(try_from)]`), so
//! `hearth check` reports a bad value without starting anything. Paths are
//! the one thing resolved later, in `load`, because only then is the
//! directory of `plugins.toml` known.

use std::{collections::BTreeMap, fmt, time::Duration};

use reqwest::Url;
use serde::Deserialize;

/// Which HTTP dialect the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// Ollama's native API: `/api/chat` streaming NDJSON.
    Ollama,
    /// The OpenAI API: `/v1/chat/completions` streaming SSE (llama.cpp's
    /// `llama-server`, vLLM, LM Studio, LocalAI, ...).
    Openai,
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Api::Ollama => "ollama",
            Api::Openai => "openai",
        })
    }
}

/// Ollama's `keep_alive`: seconds (`-1` keeps the model forever, `0`
/// unloads it at once) or a duration string such as `"5m"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum KeepAlive {
    /// Seconds.
    Seconds(i64),
    /// A Go duration string, passed to Ollama as written.
    Text(String),
}

impl KeepAlive {
    /// The JSON value Ollama expects.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            KeepAlive::Seconds(s) => serde_json::Value::from(*s),
            KeepAlive::Text(t) => serde_json::Value::from(t.as_str()),
        }
    }
}

impl fmt::Display for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepAlive::Seconds(s) => write!(f, "{s}s"),
            KeepAlive::Text(t) => f.write_str(t),
        }
    }
}

/// The `config` table as written in `plugins.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    api: Api,
    url: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
    api_key_env: Option<String>,
    system_prompt: Option<String>,
    keep_alive: Option<KeepAlive>,
    connect_timeout: Option<String>,
    first_token_timeout: Option<String>,
    read_timeout: Option<String>,
    request_timeout: Option<String>,
    health_timeout: Option<String>,
    temperature: Option<f64>,
    #[serde(alias = "num_predict")]
    max_tokens: Option<u32>,
    num_ctx: Option<u32>,
    stop: Option<Vec<String>>,
    seed: Option<i64>,
    launch: Option<RawLaunch>,
}

/// The `launch` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLaunch {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    health_path: Option<String>,
    ready_timeout: Option<String>,
    stop_timeout: Option<String>,
    log: Option<String>,
}

/// How long each phase of a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// From sending a request to its first piece of reply; also bounds
    /// warmup, which may include the server loading the model.
    pub first_token: Duration,
    /// Between two pieces of a streamed reply.
    pub read: Duration,
    /// A whole chat request, start to end.
    pub request: Duration,
    /// One health probe, and the other small calls made during load.
    pub health: Duration,
}

/// Generation options; `None` leaves the server's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Most tokens to generate (`max_tokens` / Ollama's `num_predict`).
    pub max_tokens: Option<u32>,
    /// Context length (Ollama only; llama-server takes `-c` at start).
    pub num_ctx: Option<u32>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Sampling seed.
    pub seed: Option<i64>,
}

/// A server the plugin starts itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The program: a bare name is looked up on `PATH`; anything with a `/`
    /// is a path, relative to `plugins.toml` unless absolute.
    pub command: String,
    /// Its arguments, as written. The child's working directory is the
    /// directory of `plugins.toml`, so relative paths in them resolve there.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Polled with GET until it answers 200, relative to the server root.
    pub health_path: String,
    /// How long the server may take to answer its health path with 200.
    pub ready_timeout: Duration,
    /// How long it may take to exit after SIGTERM before it gets SIGKILL.
    pub stop_timeout: Duration,
    /// A file its stdout and stderr are appended to, if any.
    pub log: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct Config {
    /// The dialect.
    pub api: Api,
    /// Scheme, host, port and path prefix, without a trailing slash and
    /// without OpenAI's `/v1`: where `/health` or `/api/...` live.
    pub root: Url,
    /// Where the dialect's routes hang: `root` for Ollama, `root/v1` for
    /// OpenAI (or the path given, when `url` already had one).
    pub base: String,
    /// The model asked for; for OpenAI, `None` takes the server's only one.
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer ...`.
    pub api_key: Option<String>,
    /// Put in front of conversations that do not start with a system message.
    pub system_prompt: Option<String>,
    /// Ollama only: how long the model stays loaded after a request.
    pub keep_alive: Option<KeepAlive>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Generation options.
    pub options: Options,
    /// The server to start, if any.
    pub launch: Option<Launch>,
}

/// Defaults, also quoted in the README's configuration reference.
pub mod defaults {
    use std::time::Duration;

    /// Ollama's own default address.
    pub const OLLAMA_URL: &str = "http://127.0.0.1:11434";
    /// llama-server's own default address.
    pub const OPENAI_URL: &str = "http://127.0.0.1:8080";
    /// `connect_timeout`.
    pub const CONNECT: Duration = Duration::from_secs(5);
    /// `first_token_timeout`.
    pub const FIRST_TOKEN: Duration = Duration::from_secs(120);
    /// `read_timeout`.
    pub const READ: Duration = Duration::from_secs(30);
    /// `request_timeout`.
    pub const REQUEST: Duration = Duration::from_secs(600);
    /// `health_timeout`.
    pub const HEALTH: Duration = Duration::from_secs(2);
    /// `launch.ready_timeout`.
    pub const READY: Duration = Duration::from_secs(90);
    /// `launch.stop_timeout`.
    pub const STOP: Duration = Duration::from_secs(5);
}

fn duration(value: Option<String>, key: &str, default: Duration) -> Result<Duration, String> {
    let Some(text) = value else { return Ok(default) };
    let parsed = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{key}` = {text:?} is not a duration ({e}); write e.g. \"500ms\", \"30s\" or \"2m\""))?;
    if parsed.is_zero() {
        return Err(format!("`{key}` must be longer than zero"));
    }
    Ok(parsed)
}

fn non_empty(value: Option<String>, key: &str) -> Result<Option<String>, String> {
    match value {
        Some(v) if v.trim().is_empty() => Err(format!("`{key}` is empty: remove it or give a value")),
        other => Ok(other),
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Self, String> {
        let api = raw.api;
        let written = raw.url.unwrap_or_else(|| match api {
            Api::Ollama => defaults::OLLAMA_URL.to_owned(),
            Api::Openai => defaults::OPENAI_URL.to_owned(),
        });
        let (root, base) = split_url(api, &written)?;

        let model = non_empty(raw.model, "model")?.map(|m| m.trim().to_owned());
        if api == Api::Ollama && model.is_none() {
            return Err("`model` is required with api = \"ollama\" (e.g. model = \"llama3.2\")".into());
        }

        let api_key = match (non_empty(raw.api_key, "api_key")?, non_empty(raw.api_key_env, "api_key_env")?) {
            (Some(_), Some(_)) => return Err("give either `api_key` or `api_key_env`, not both".into()),
            (Some(key), None) => Some(key),
            (None, Some(var)) => match std::env::var(&var) {
                Ok(key) if !key.trim().is_empty() => Some(key.trim().to_owned()),
                _ => {
                    return Err(format!(
                        "`api_key_env` names the environment variable {var}, which is not set: export it or remove `api_key_env`"
                    ))
                }
            },
            (None, None) => None,
        };

        if api == Api::Openai {
            if raw.keep_alive.is_some() {
                return Err("`keep_alive` applies to api = \"ollama\" only: remove it".into());
            }
            if raw.num_ctx.is_some() {
                return Err("`num_ctx` applies to api = \"ollama\" only: an OpenAI-compatible server fixes its context when it starts (llama-server: `-c` in launch.args)".into());
            }
        }
        if let Some(t) = raw.temperature {
            if !t.is_finite() || t < 0.0 {
                return Err(format!("`temperature` = {t} must be zero or more"));
            }
        }
        if raw.max_tokens == Some(0) {
            return Err("`max_tokens` must be at least 1 (leave it out for the server's default)".into());
        }
        let stop = raw.stop.unwrap_or_default();
        if stop.iter().any(|s| s.is_empty()) {
            return Err("`stop` holds an empty string, which would stop every reply at once".into());
        }

        let timeouts = Timeouts {
            connect: duration(raw.connect_timeout, "connect_timeout", defaults::CONNECT)?,
            first_token: duration(raw.first_token_timeout, "first_token_timeout", defaults::FIRST_TOKEN)?,
            read: duration(raw.read_timeout, "read_timeout", defaults::READ)?,
            request: duration(raw.request_timeout, "request_timeout", defaults::REQUEST)?,
            health: duration(raw.health_timeout, "health_timeout", defaults::HEALTH)?,
        };

        let launch = raw.launch.map(|l| launch(api, l)).transpose()?;

        Ok(Config {
            api,
            root,
            base,
            model,
            api_key,
            system_prompt: non_empty(raw.system_prompt, "system_prompt")?,
            keep_alive: raw.keep_alive,
            timeouts,
            options: Options {
                temperature: raw.temperature,
                max_tokens: raw.max_tokens,
                num_ctx: raw.num_ctx,
                stop,
                seed: raw.seed,
            },
            launch,
        })
    }
}

fn launch(api: Api, raw: RawLaunch) -> Result<Launch, String> {
    if raw.command.trim().is_empty() {
        return Err(
            "`launch.command` is empty: give the server program, e.g. \"models/llama/bin/llama-server\"".into(),
        );
    }
    let health_path = raw.health_path.unwrap_or_else(|| match api {
        Api::Ollama => "/api/version".to_owned(),
        Api::Openai => "/health".to_owned(),
    });
    if !health_path.starts_with('/') {
        return Err(format!("`launch.health_path` = {health_path:?} must start with `/`"));
    }
    Ok(Launch {
        command: raw.command,
        args: raw.args,
        env: raw.env,
        health_path,
        ready_timeout: duration(raw.ready_timeout, "launch.ready_timeout", defaults::READY)?,
        stop_timeout: duration(raw.stop_timeout, "launch.stop_timeout", defaults::STOP)?,
        log: non_empty(raw.log, "launch.log")?,
    })
}

/// Splits `url` into the server root and the base of the dialect's routes.
///
/// OpenAI clients are usually given a base that ends in `/v1`; a bare
/// `http://host:port` gets `/v1` added, so both spellings work.
fn split_url(api: Api, written: &str) -> Result<(Url, String), String> {
    let url = Url::parse(written.trim())
        .map_err(|e| format!("`url` = {written:?} is not a URL ({e}); write e.g. \"http://127.0.0.1:11434\""))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`url` = {written:?} must start with http:// or https://"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`url` = {written:?} must not have a query or fragment"));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    let origin = url.as_str()[..url.as_str().len() - url.path().len()]
        .trim_end_matches('/')
        .to_owned();
    let (root_path, base_path) = match api {
        Api::Ollama => (path.clone(), path),
        Api::Openai if path.is_empty() => (String::new(), "/v1".to_owned()),
        Api::Openai => (path.strip_suffix("/v1").unwrap_or(&path).to_owned(), path),
    };
    let root = Url::parse(&format!("{origin}{root_path}/")).map_err(|e| format!("`url` = {written:?}: {e}"))?;
    Ok((root, format!("{origin}{base_path}")))
}

impl Config {
    /// `root` joined with an absolute path such as `/health`.
    pub fn root_url(&self, path: &str) -> String {
        format!("{}{}", self.root.as_str().trim_end_matches('/'), path)
    }

    /// `base` joined with a route such as `/chat/completions`.
    pub fn api_url(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<Config, String> {
        let value: serde_json::Value = toml_to_json(toml_text);
        serde_json::from_value::<Config>(value).map_err(|e| e.to_string())
    }

    // The host hands the table over as JSON; tests write it as TOML-ish
    // key = value lines for readability and convert here.
    fn toml_to_json(text: &str) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line.split_once('=').unwrap();
            map.insert(k.trim().to_owned(), serde_json::from_str(v.trim()).unwrap());
        }
        serde_json::Value::Object(map)
    }

    #[test]
    fn openai_defaults_add_v1() {
        let c = parse(r#"api = "openai""#).unwrap();
        assert_eq!(c.base, "http://127.0.0.1:8080/v1");
        assert_eq!(c.root_url("/health"), "http://127.0.0.1:8080/health");
        assert_eq!(
            c.api_url("/chat/completions"),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(c.timeouts.connect, defaults::CONNECT);
        assert_eq!(c.model, None);
    }

    #[test]
    fn openai_url_with_v1_is_kept() {
        let c = parse(
            r#"api = "openai"
            url = "https://example.test/proxy/v1/""#,
        )
        .unwrap();
        assert_eq!(c.base, "https://example.test/proxy/v1");
        assert_eq!(c.root_url("/health"), "https://example.test/proxy/health");
    }

    #[test]
    fn ollama_needs_a_model() {
        let e = parse(r#"api = "ollama""#).unwrap_err();
        assert!(e.contains("`model` is required"), "{e}");
        let c = parse(
            r#"api = "ollama"
            model = "llama3.2"
            keep_alive = "10m""#,
        )
        .unwrap();
        assert_eq!(c.base, "http://127.0.0.1:11434");
        assert_eq!(c.api_url("/api/chat"), "http://127.0.0.1:11434/api/chat");
        assert_eq!(c.keep_alive, Some(KeepAlive::Text("10m".into())));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(parse(
            r#"api = "openai"
            temprature = 0.5"#
        )
        .unwrap_err()
        .contains("unknown field `temprature`"));
        assert!(parse(r#"api = "gemini""#).unwrap_err().contains("unknown variant"));
        assert!(parse(
            r#"api = "openai"
            read_timeout = "soon""#
        )
        .unwrap_err()
        .contains("`read_timeout`"));
        assert!(parse(
            r#"api = "openai"
            num_ctx = 4096"#
        )
        .unwrap_err()
        .contains("applies to api = \"ollama\" only"));
        assert!(parse(
            r#"api = "openai"
            url = "ftp://x""#
        )
        .unwrap_err()
        .contains("http://"));
    }

    #[test]
    fn num_predict_is_an_alias_and_launch_defaults() {
        let c = parse(
            r#"api = "ollama"
            model = "m"
            num_predict = 64
            launch = {"command": "ollama", "args": ["serve"]}"#,
        )
        .unwrap();
        assert_eq!(c.options.max_tokens, Some(64));
        let l = c.launch.unwrap();
        assert_eq!(l.health_path, "/api/version");
        assert_eq!(l.ready_timeout, defaults::READY);
    }

    #[test]
    fn api_key_env_must_be_set() {
        let e = parse(
            r#"api = "openai"
            api_key_env = "HEARTH_SURELY_UNSET_VARIABLE""#,
        )
        .unwrap_err();
        assert!(e.contains("HEARTH_SURELY_UNSET_VARIABLE, which is not set"), "{e}");
    }
}
