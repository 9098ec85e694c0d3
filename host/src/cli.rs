//! The command line (clap) and what each command does.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use hearth_plugin_api::{
    client::{Audio, Library, Samples},
    testkit::conformance,
    Flow, ABI_VERSION,
};

use crate::{
    config::{Config, ServiceName, DEFAULT_CONFIG_FILE},
    engine::{Engine, InProcess, SttHandle, TtsHandle},
    error::{HostError, Result},
    plugin::{Libraries, PluginMeta},
    plugin_log::LogHost,
    worker::{Limits, WorkerLibrary},
};

/// Runs local voice engines (text to speech, speech to text, chat) as
/// plugins, and serves their readiness and a voice conversation over HTTP.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Where to read the configuration.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(long, short = 'c', env = "HEARTH_CONFIG", default_value = DEFAULT_CONFIG_FILE, value_name = "FILE")]
    pub config: PathBuf,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the engines named in the configuration, warm them up and serve
    /// the API until Ctrl-C or SIGTERM.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Serve on this address instead of `[host] listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Validate the configuration and open every plugin to check its ABI and
    /// its `config` table, without loading any model. Exits 2 when the file
    /// is invalid, 1 when a plugin has a problem, 0 when all is well.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Ask the running server (at the configuration's `listen`) to read
    /// `plugins.toml` again and apply it: changed engines are swapped
    /// without downtime, others are untouched. The file is validated here
    /// first (exit 2 when invalid); exits 1 when a change did not take
    /// effect (the old engine keeps serving) or the server cannot be reached.
    ///
    /// Sends the admin token when one is configured: from --token-file,
    /// else `HEARTH_ADMIN_TOKEN`, else the configuration's
    /// `[host] admin_token_file` (the same sources the server reads).
    Reload {
        #[command(flatten)]
        config: ConfigArg,
        /// The server's address instead of `[host] listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// A file holding the admin token, instead of `HEARTH_ADMIN_TOKEN`
        /// or `[host] admin_token_file`.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Work with plugin files.
    Plugin {
        /// What to do.
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Run the configured TTS engine once and write the speech to a WAV file.
    Speak {
        /// The text to speak.
        text: String,
        /// Where to write the WAV file.
        #[arg(long, short = 'o', default_value = "out.wav", value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
        /// Print timings as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Internal: serve one plugin's engine to the host over fd 3 (the host
    /// starts this; see `isolation = "process"`).
    #[command(name = "__worker", hide = true)]
    Worker {
        /// The plugin's library.
        plugin: PathBuf,
    },
    /// Wait until a running server is READY, following its readiness
    /// stream and showing the progress.
    ///
    /// Follows `GET /api/ready/stream` of the server at `--url` (or at the
    /// `[host] listen` of `--config`) and shows each service's progress on
    /// stderr: one updating line on a terminal, one line per change
    /// otherwise. While nothing listens there yet, it keeps trying until the
    /// timeout, so it can start before the server does. A dropped stream is
    /// reopened. No admin token is needed; the server's Host check applies
    /// (a name other than localhost or an IP must be in the server's
    /// `[host] allowed_hosts`).
    #[command(after_help = WAIT_READY_EXIT_CODES, after_long_help = WAIT_READY_AFTER_HELP)]
    WaitReady {
        /// The server's address.
        #[arg(long, value_name = "URL", value_parser = crate::wait::parse_url, conflicts_with = "config")]
        url: Option<reqwest::Url>,
        /// Take the address from this configuration's `[host] listen`
        /// (an unspecified address, 0.0.0.0 or [::], means this machine).
        /// Default: --url http://127.0.0.1:8000.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Give up (exit 1) after this long, e.g. `90s`, `10m`.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration, value_name = "DURATION")]
        timeout: Duration,
        /// Also wait for this optional service (tts, stt, chat or vad) to be
        /// ready; its failure is then an error. Repeat or separate with
        /// commas.
        #[arg(long, value_name = "SERVICE", value_parser = parse_service, value_delimiter = ',')]
        require: Vec<ServiceName>,
        /// Print nothing; only the exit code tells.
        #[arg(long, short = 'q', conflicts_with = "json")]
        quiet: bool,
        /// Print the last readiness JSON (the `/api/ready` body) on stdout
        /// at the end; progress still goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Run the configured STT engine once on a recording and print the text.
    Transcribe {
        /// A recording in any format `/v1/audio/transcriptions` reads: WAV,
        /// FLAC, MP3, Ogg (Vorbis, Opus), WebM, MP4/M4A (AAC), ADTS AAC.
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
        /// Print the text, segments and timings as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hearth plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's name, kind and versions, or why this host would
    /// refuse it. Exits 1 when it would be refused.
    Inspect {
        /// The plugin's `.so` file.
        path: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the conformance kit: load the plugin through the host's loader
    /// and check the engine contract (describe, check_config, load progress,
    /// warmup, health while idle and busy, the kind's operation on standard
    /// input, stop, two operations at once, a second instance, shutdown).
    /// Prints one line per check; exits 1 when any check fails or the plugin
    /// is refused.
    Test {
        /// The plugin's `.so` file.
        path: PathBuf,
        /// The plugin's settings: a `plugins.toml` (the `config` table of
        /// the service of the plugin's kind is used), or a TOML file holding
        /// just the settings. Relative paths in them are relative to the
        /// file. Default: no settings.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The longest load and warmup may each take.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration, value_name = "DURATION")]
        timeout: Duration,
        /// Run the engines in worker processes (as `hearth serve` does by
        /// default) or in this process.
        #[arg(long, value_enum, default_value = "process")]
        isolation: IsolationArg,
    },
    /// Write a new plugin crate (Cargo.toml, a working trivial engine with a
    /// typed config, a test running the conformance kit, a README), ready to
    /// `cargo build` and `hearth plugin test`.
    New {
        /// The plugin's name, e.g. `my-voice` (crate `hearth-my-voice`,
        /// library `libhearth_my_voice.so`).
        name: String,
        /// The kind of engine.
        #[arg(long, value_enum)]
        kind: crate::template::Kind,
        /// The directory to create the crate in (default: `./NAME`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// How the crate depends on hearth-plugin-api: a path to Hearth's
        /// `plugin-api` directory. Default: the one this binary was built
        /// from when it still exists, else the crates.io version.
        #[arg(long, value_name = "DIR")]
        api_path: Option<PathBuf>,
    },
}

/// The exit codes of `hearth wait-ready`, at the end of its help.
macro_rules! wait_ready_exit_codes {
    () => {
        "\
Exit codes:
  0  READY, and every --require service ready
  1  ERROR (the errors are printed), a --require service failed or is not
     installed, the timeout passed (what was still not ready is printed),
     or the server refused the request (e.g. its Host check)
  2  bad arguments, or an invalid --config file"
    };
}

/// The end of `hearth wait-ready -h`.
const WAIT_READY_EXIT_CODES: &str = wait_ready_exit_codes!();

/// The end of `hearth wait-ready --help`.
const WAIT_READY_AFTER_HELP: &str = concat!(
    wait_ready_exit_codes!(),
    "

Examples:
  # A CI step: start the server, wait until it is ready, then test it.
  hearth serve --config plugins.toml &
  hearth wait-ready --config plugins.toml --timeout 10m && ./run-tests.sh

  # Also wait for speech recognition, and keep the final state for the log.
  hearth wait-ready --require stt --json > readiness.json

  # A Kubernetes init container of a pod that talks to Hearth (the server
  # needs `allowed_hosts = [\"hearth\"]` to answer to that name):
  initContainers:
    - name: wait-for-hearth
      image: hearth
      command: [\"hearth\", \"wait-ready\", \"--url\", \"http://hearth:8000\", \"--timeout\", \"15m\"]"
);

fn parse_service(name: &str) -> std::result::Result<ServiceName, String> {
    ServiceName::parse(name).ok_or_else(|| format!("`{name}` is not a service; use tts, stt, chat or vad"))
}

/// `--isolation` of `hearth plugin test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IsolationArg {
    /// Each engine in a worker process.
    Process,
    /// In this process.
    InProcess,
}

/// Writes one line to stdout (the `outln!` macro); a closed stdout ends the
/// process with status 141 (128 + SIGPIPE), as `head` and friends expect.
pub fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        panic!("failed printing to stdout: {e}");
    }
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    // A worker's log is read line by line by its host and logged again
    // there, in the host's format: the worker always writes text.
    let format = match (&cli.command, crate::logging::Format::from_env()) {
        (Command::Worker { .. }, _) => crate::logging::Format::Text,
        (_, Ok(format)) => format,
        (_, Err(e)) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    crate::logging::init(format);
    let result = match cli.command {
        Command::Serve { config, listen } => serve(&config.config, listen),
        Command::Check { config } => check(&config.config),
        Command::Reload {
            config,
            listen,
            token_file,
        } => reload(&config.config, listen, token_file.as_deref()),
        Command::Plugin {
            command: PluginCommand::Inspect { path, json },
        } => inspect(&path, json),
        Command::Plugin {
            command:
                PluginCommand::Test {
                    path,
                    config,
                    json,
                    timeout,
                    isolation,
                },
        } => plugin_test(&path, config.as_deref(), json, timeout, isolation),
        Command::Plugin {
            command:
                PluginCommand::New {
                    name,
                    kind,
                    dir,
                    api_path,
                },
        } => crate::template::new_plugin(&name, kind, dir.as_deref(), api_path.as_deref()),
        Command::Speak {
            text,
            output,
            config,
            json,
        } => speak(&config.config, &text, &output, json),
        Command::Transcribe { file, config, json } => transcribe(&config.config, &file, json),
        Command::Worker { plugin } => crate::worker::serve::run(&plugin),
        Command::WaitReady {
            url,
            config,
            timeout,
            require,
            quiet,
            json,
        } => wait_ready(url, config.as_deref(), timeout, require, quiet, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// `hearth wait-ready`: the server's URL from the arguments, then
/// [`crate::wait::run`].
fn wait_ready(
    url: Option<reqwest::Url>,
    config: Option<&Path>,
    timeout: Duration,
    require: Vec<ServiceName>,
    quiet: bool,
    json: bool,
) -> Result<i32> {
    let url = match (url, config) {
        (Some(url), _) => url,
        (None, Some(path)) => crate::wait::url_of(Config::load(path)?.host.listen),
        (None, None) => crate::wait::url_of(std::net::SocketAddr::from(([127, 0, 0, 1], 8000))),
    };
    let output = match (quiet, json) {
        (true, _) => crate::wait::Output::Quiet,
        (false, true) => crate::wait::Output::Json,
        (false, false) => crate::wait::Output::Human,
    };
    crate::wait::run(&crate::wait::Options {
        url,
        timeout,
        require,
        output,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| HostError::Other(format!("cannot start the async runtime: {e}")))
}

fn serve(path: &Path, listen: Option<std::net::SocketAddr>) -> Result<i32> {
    let mut config = Config::load(path)?;
    if let Some(listen) = listen {
        config.host.listen = listen;
    }
    tracing::info!(config = %config.path.display(), plugin_dir = %config.host.plugin_dir.display(), "starting");
    let runtime = runtime()?;
    let served = runtime.block_on(crate::server::serve(config));
    // Blocking tasks still inside a plugin call must not hold the exit up:
    // the engines were told to stop within shutdown_timeout already.
    runtime.shutdown_timeout(Duration::from_millis(100));
    served?;
    Ok(0)
}

/// How long `hearth reload` waits for the server to apply the change: the
/// longest a swap takes is a load and a warmup.
const RELOAD_WAIT: Duration = Duration::from_secs(600);

fn reload(path: &Path, listen: Option<std::net::SocketAddr>, token_file: Option<&Path>) -> Result<i32> {
    let config = Config::load(path)?;
    let token = match token_file {
        Some(file) => Some(hearth_core::secret::read_file(file, "admin token")?.trim().to_owned()),
        None => hearth_core::secret::admin_token(&config.host)?,
    };
    let mut url = crate::wait::url_of(listen.unwrap_or(config.host.listen));
    url.set_path("/api/reload");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HostError::Other(format!("cannot start the async runtime: {e}")))?;
    let answer = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(RELOAD_WAIT)
            .user_agent(concat!("hearth-reload/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut request = client.post(url.clone());
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok::<_, reqwest::Error>((status, body))
    });
    let (status, body) = answer.map_err(|e| {
        HostError::Other(format!(
            "cannot reach Hearth at {url}: {}; is `hearth serve` running with this configuration (or give --listen)?",
            crate::wait::error_chain(&e)
        ))
    })?;
    let json: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
    if status != 200 {
        let message = json["error"]["message"].as_str().unwrap_or(body.trim());
        outln!("reload refused ({status}): {message}");
        if status == 401 && token.is_none() {
            outln!("the server wants the admin token: give --token-file, set HEARTH_ADMIN_TOKEN, or set [host] admin_token_file");
        }
        return Ok(if status == 400 { 2 } else { 1 });
    }
    outln!("{}", json["summary"].as_str().unwrap_or_default());
    let mut ok = true;
    if let Some(services) = json["outcome"]["services"].as_object() {
        for (name, outcome) in services {
            let what = outcome["outcome"].as_str().unwrap_or("?");
            match outcome["error"].as_str() {
                Some(error) => {
                    ok = false;
                    outln!("  {name}: {what}: {error}");
                }
                None => outln!("  {name}: {what}"),
            }
        }
    }
    Ok(i32::from(!ok))
}

fn check(path: &Path) -> Result<i32> {
    let config = Config::load(path)?;
    outln!("{}: valid", config.path.display());
    let mut problems = 0;
    for name in ServiceName::ALL {
        let Some(service) = config.services.get(&name) else {
            if name.required_by_default() {
                problems += 1;
                outln!("  {name}: PROBLEM: no [{name}] section, and {name} is required");
            } else {
                outln!("  {name}: not configured (optional)");
            }
            continue;
        };
        if !service.enabled {
            let note = if service.required {
                " — but it is required, so Hearth will never be ready"
            } else {
                ""
            };
            problems += usize::from(service.required);
            outln!("  {name}: disabled{note}");
            continue;
        }
        // In a throwaway worker, whatever the service's isolation: `check`
        // must survive a library whose constructor crashes.
        let verdict = crate::open::in_worker(service, Limits::default()).and_then(|library| {
            library
                .check_config(&service.config_json)
                .map_err(|e| HostError::Config {
                    location: service.config_location.clone(),
                    message: format!("[{name}.config]: {e}"),
                })?;
            Ok(library.meta().clone())
        });
        match verdict {
            Ok(meta) => outln!(
                "  {name}: ok — {} {} ({} engine, ABI {}) at {}, {}{}",
                meta.name,
                meta.version,
                meta.kind,
                meta.abi,
                meta.path.display(),
                service.isolation.as_str(),
                if service.required { "" } else { ", optional" }
            ),
            Err(e) => {
                problems += 1;
                outln!("  {name}: PROBLEM: {e}");
            }
        }
    }
    if problems == 0 {
        outln!("all plugins open and accept their configuration");
        Ok(0)
    } else {
        outln!("{problems} problem(s) found");
        Ok(1)
    }
}

fn inspect(path: &Path, json: bool) -> Result<i32> {
    // In a throwaway worker: a library whose constructor crashes is reported.
    match WorkerLibrary::open(path, "", Limits::default()) {
        Ok(library) => {
            let m = library.meta();
            if json {
                let mut value = serde_json::to_value(m).map_err(|e| HostError::Other(e.to_string()))?;
                value["host_abi"] = ABI_VERSION.to_string().into();
                value["compatible"] = true.into();
                outln!("{value}");
            } else {
                outln!("name:        {}", m.name);
                outln!("kind:        {}", m.kind);
                outln!("version:     {}", m.version);
                outln!("description: {}", m.description);
                outln!("plugin ABI:  {}", m.abi);
                outln!("host ABI:    {ABI_VERSION} (compatible)");
                outln!("path:        {}", m.path.display());
            }
            Ok(0)
        }
        Err(e) => {
            if json {
                let value = serde_json::json!({
                    "path": path.display().to_string(),
                    "host_abi": ABI_VERSION.to_string(),
                    "compatible": false,
                    "error": e.to_string(),
                });
                outln!("{value}");
            } else {
                outln!("refused: {e}");
            }
            Ok(1)
        }
    }
}

/// Opens and loads the engine of one service, outside the server.
fn load_one(config: &Config, name: ServiceName) -> Result<(Arc<Engine>, Duration)> {
    let service = config.services.get(&name).ok_or_else(|| HostError::Config {
        location: config.path.display().to_string(),
        message: format!("no [{name}] section: add one naming a {name} plugin"),
    })?;
    let plugin = crate::open::in_process(&Libraries::default(), service)?;
    let engine = InProcess::engine(&plugin).map_err(|message| HostError::Engine { service: name, message })?;
    let started = Instant::now();
    engine
        .load(&service.config_json, &config.base_dir, &LogHost(name.as_str()))
        .map_err(|message| HostError::Engine { service: name, message })?;
    Ok((Arc::new(engine), started.elapsed()))
}

/// The settings `hearth plugin test --config FILE` hands the plugin, and
/// the directory its relative paths are relative to.
fn test_settings(file: Option<&Path>, meta: &PluginMeta) -> Result<(String, PathBuf)> {
    let Some(file) = file else {
        let here = std::env::current_dir().map_err(|source| HostError::Io {
            path: PathBuf::from("."),
            source,
        })?;
        return Ok(("{}".to_owned(), here));
    };
    let text = std::fs::read_to_string(file).map_err(|source| HostError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let value: toml::Table = toml::from_str(&text).map_err(|e| {
        let (line, column) = crate::config::line_column(&text, e.span().map_or(0, |s| s.start));
        HostError::Config {
            location: format!("{}:{line}:{column}", file.display()),
            message: e.message().trim_end().to_owned(),
        }
    })?;
    let is_hearth_config = ["host", "tts", "stt", "chat", "conversation"]
        .iter()
        .any(|key| value.get(*key).is_some_and(toml::Value::is_table));
    if !is_hearth_config {
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let json = serde_json::to_string(&value).map_err(|e| HostError::Other(e.to_string()))?;
        return Ok((json, base));
    }
    let config = Config::load(file)?;
    let service = ServiceName::ALL
        .into_iter()
        .find(|name| name.kind() == meta.kind)
        .and_then(|name| config.services.get(&name))
        .ok_or_else(|| HostError::Config {
            location: config.path.display().to_string(),
            message: format!("no [{}] section to take the plugin's settings from", meta.kind),
        })?;
    Ok((service.config_json.clone(), config.base_dir.clone()))
}

fn plugin_test(
    path: &Path,
    config: Option<&Path>,
    json: bool,
    timeout: Duration,
    isolation: IsolationArg,
) -> Result<i32> {
    let limits = Limits {
        load: timeout,
        warmup: timeout,
        ..Limits::default()
    };
    let opened: std::result::Result<(Box<dyn Library>, PluginMeta), String> = match isolation {
        IsolationArg::Process => WorkerLibrary::open(path, "", limits)
            .map(|library| {
                let meta = library.meta().clone();
                (Box::new(library) as Box<dyn Library>, meta)
            })
            .map_err(|e| e.to_string()),
        IsolationArg::InProcess => crate::plugin::inspect(path)
            .map(|plugin| (Box::new(plugin.module()) as Box<dyn Library>, plugin.meta.clone()))
            .map_err(|e| e.to_string()),
    };
    let (library, meta) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            if json {
                outln!(
                    "{}",
                    serde_json::json!({"path": path.display().to_string(), "passed": false, "error": e})
                );
            } else {
                outln!("refused: {e}");
            }
            return Ok(1);
        }
    };
    let (config_json, base_dir) = test_settings(config, &meta)?;
    let mut options = conformance::Options::new(config_json);
    options.base_dir = base_dir;
    options.load_timeout = timeout;
    options.warmup_timeout = timeout;
    if !json {
        let m = &meta;
        let mode = match isolation {
            IsolationArg::Process => "in worker processes",
            IsolationArg::InProcess => "in process",
        };
        outln!(
            "testing {} {} ({} engine, ABI {}) at {}, {mode}",
            m.name,
            m.version,
            m.kind,
            m.abi,
            m.path.display()
        );
    }
    let mut print = |check: &conformance::Check| {
        if !json {
            outln!("  {check}");
        }
    };
    let report = conformance::run(&*library, &options, &mut print);
    let failed = report.failures().count();
    if json {
        let mut value = serde_json::to_value(&report).map_err(|e| HostError::Other(e.to_string()))?;
        value["passed"] = report.passed().into();
        outln!("{value}");
    } else if failed == 0 {
        outln!("all {} checks passed or skipped", report.checks.len());
    } else {
        outln!("{failed} of {} checks failed", report.checks.len());
    }
    Ok(i32::from(failed > 0))
}

fn speak(path: &Path, text: &str, output: &Path, json: bool) -> Result<i32> {
    let config = Config::load(path)?;
    let (engine, load_time) = load_one(&config, ServiceName::Tts)?;
    let tts = TtsHandle::of(Arc::clone(&engine)).ok_or_else(|| HostError::Other("not a TTS engine".into()))?;
    let started = Instant::now();
    let mut first_chunk = None;
    let mut samples: Vec<i16> = Vec::new();
    let mut rate = 0;
    let mut chunks = 0;
    tts.synthesize(text, |chunk| {
        first_chunk.get_or_insert_with(|| started.elapsed());
        if rate == 0 {
            rate = chunk.sample_rate;
        }
        chunks += 1;
        samples.extend_from_slice(&chunk.samples);
        Flow::Continue
    })
    .map_err(|message| HostError::Engine {
        service: ServiceName::Tts,
        message,
    })?;
    let synth_time = started.elapsed();
    engine.shutdown();
    if rate == 0 {
        return Err(HostError::Other(
            "the engine produced no audio (was the text empty?)".to_owned(),
        ));
    }
    crate::audio::write_wav(output, rate, &samples)?;
    let audio_secs = samples.len() as f64 / f64::from(rate);
    if json {
        let value = serde_json::json!({
            "output": output.display().to_string(),
            "sample_rate": rate,
            "samples": samples.len(),
            "chunks": chunks,
            "audio_seconds": audio_secs,
            "load_ms": load_time.as_secs_f64() * 1e3,
            "synthesis_ms": synth_time.as_secs_f64() * 1e3,
            "first_chunk_ms": first_chunk.map(|d| d.as_secs_f64() * 1e3),
            "rtf": synth_time.as_secs_f64() / audio_secs.max(1e-9),
        });
        outln!("{value}");
    } else {
        outln!(
            "wrote {}: {audio_secs:.2} s of audio at {rate} Hz in {chunks} chunk(s); load {:.2} s, synthesis {:.2} s (RTF {:.2})",
            output.display(),
            load_time.as_secs_f64(),
            synth_time.as_secs_f64(),
            synth_time.as_secs_f64() / audio_secs.max(1e-9)
        );
    }
    Ok(0)
}

/// The rate `hearth transcribe` decodes to: Whisper's, as `/v1` does.
const TRANSCRIBE_RATE: u32 = 16_000;

fn transcribe(path: &Path, file: &Path, json: bool) -> Result<i32> {
    let config = Config::load(path)?;
    let bytes = std::fs::read(file).map_err(|source| HostError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let name = file.file_name().and_then(|n| n.to_str());
    let decoded = hearth_audio::decode(&bytes, name, None, TRANSCRIBE_RATE)
        .map_err(|e| HostError::Other(format!("{}: {e}", file.display())))?;
    if decoded.samples.is_empty() {
        return Err(HostError::Other(format!(
            "{}: the recording ({}) holds no audio",
            file.display(),
            decoded.codec
        )));
    }
    let (engine, load_time) = load_one(&config, ServiceName::Stt)?;
    let stt = SttHandle::of(Arc::clone(&engine)).ok_or_else(|| HostError::Other("not an STT engine".into()))?;
    let started = Instant::now();
    let audio_secs = decoded.seconds();
    let transcript = stt
        .transcribe(&Audio {
            sample_rate: TRANSCRIBE_RATE,
            channels: 1,
            samples: Samples::I16(decoded.samples),
        })
        .map_err(|message| HostError::Engine {
            service: ServiceName::Stt,
            message,
        })?;
    let elapsed = started.elapsed();
    engine.shutdown();
    if json {
        let segments: Vec<_> = transcript
            .segments
            .iter()
            .map(|s| serde_json::json!({"start_ms": s.start_ms, "end_ms": s.end_ms, "text": s.text}))
            .collect();
        let value = serde_json::json!({
            "text": transcript.text,
            "language": transcript.language,
            "segments": segments,
            "audio_seconds": audio_secs,
            "load_ms": load_time.as_secs_f64() * 1e3,
            "transcribe_ms": elapsed.as_secs_f64() * 1e3,
        });
        outln!("{value}");
    } else {
        outln!("{}", transcript.text.trim());
    }
    Ok(0)
}
