//! The command line (clap) and what each command does.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use hearth_plugin_api::{Flow, PcmInput, PcmSamples, ABI_VERSION};

use crate::{
    config::{Config, ServiceName, DEFAULT_CONFIG_FILE},
    error::{HostError, Result},
    plugin::{Engine, Libraries, LoadObserver},
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
    /// Run the configured STT engine once on a WAV file and print the text.
    Transcribe {
        /// A WAV file (any rate, any channel count, integer or float PCM).
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
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve { config, listen } => serve(&config.config, listen),
        Command::Check { config } => check(&config.config),
        Command::Plugin {
            command: PluginCommand::Inspect { path, json },
        } => inspect(&path, json),
        Command::Speak {
            text,
            output,
            config,
            json,
        } => speak(&config.config, &text, &output, json),
        Command::Transcribe { file, config, json } => transcribe(&config.config, &file, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
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
    runtime()?.block_on(crate::server::serve(config))?;
    Ok(0)
}

fn check(path: &Path) -> Result<i32> {
    let config = Config::load(path)?;
    println!("{}: valid", config.path.display());
    let libraries = Libraries::default();
    let mut problems = 0;
    for name in ServiceName::ALL {
        let Some(service) = config.services.get(&name) else {
            if name.required_by_default() {
                problems += 1;
                println!("  {name}: PROBLEM: no [{name}] section, and {name} is required");
            } else {
                println!("  {name}: not configured (optional)");
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
            println!("  {name}: disabled{note}");
            continue;
        }
        let verdict = libraries.open(&service.plugin_path).and_then(|plugin| {
            if plugin.meta.kind != name.kind() {
                return Err(HostError::Other(format!(
                    "plugin {} is a {} engine, but [{name}] needs a {} engine",
                    plugin.meta.name,
                    plugin.meta.kind,
                    name.kind()
                )));
            }
            plugin
                .check_config(&service.config_json)
                .map_err(|e| HostError::Config {
                    location: service.config_location.clone(),
                    message: format!("[{name}.config]: {e}"),
                })?;
            Ok(plugin)
        });
        match verdict {
            Ok(plugin) => println!(
                "  {name}: ok — {} {} ({} engine, ABI {}) at {}{}",
                plugin.meta.name,
                plugin.meta.version,
                plugin.meta.kind,
                plugin.meta.abi,
                plugin.meta.path.display(),
                if service.required { "" } else { ", optional" }
            ),
            Err(e) => {
                problems += 1;
                let e = match e {
                    HostError::PluginMissing { path, .. } => format!(
                        "plugin file {} not found (`plugin = {:?}` at {}); build it with `cargo build --release` or fix the path",
                        path.display(),
                        service.plugin_spec,
                        service.config_location
                    ),
                    other => other.to_string(),
                };
                println!("  {name}: PROBLEM: {e}");
            }
        }
    }
    if problems == 0 {
        println!("all plugins open and accept their configuration");
        Ok(0)
    } else {
        println!("{problems} problem(s) found");
        Ok(1)
    }
}

fn inspect(path: &Path, json: bool) -> Result<i32> {
    match crate::plugin::inspect(path) {
        Ok(plugin) => {
            let m = &plugin.meta;
            if json {
                let mut value = serde_json::to_value(m).map_err(|e| HostError::Other(e.to_string()))?;
                value["host_abi"] = ABI_VERSION.to_string().into();
                value["compatible"] = true.into();
                println!("{value}");
            } else {
                println!("name:        {}", m.name);
                println!("kind:        {}", m.kind);
                println!("version:     {}", m.version);
                println!("description: {}", m.description);
                println!("plugin ABI:  {}", m.abi);
                println!("host ABI:    {ABI_VERSION} (compatible)");
                println!("path:        {}", m.path.display());
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
                println!("{value}");
            } else {
                println!("refused: {e}");
            }
            Ok(1)
        }
    }
}

/// Prints a plugin's progress on stderr for the one-shot commands.
struct StderrProgress(ServiceName);

impl LoadObserver for StderrProgress {
    fn progress(&self, fraction: f32, message: &str) {
        tracing::debug!(service = %self.0, "{:.0}% {message}", fraction * 100.0);
    }
    fn is_cancelled(&self) -> bool {
        false
    }
    fn service(&self) -> &str {
        self.0.as_str()
    }
}

/// Opens and loads the engine of one service, outside the server.
fn load_one(config: &Config, name: ServiceName) -> Result<(Arc<Engine>, Duration)> {
    let service = config.services.get(&name).ok_or_else(|| HostError::Config {
        location: config.path.display().to_string(),
        message: format!("no [{name}] section: add one naming a {name} plugin"),
    })?;
    let plugin = Libraries::default().open(&service.plugin_path)?;
    if plugin.meta.kind != name.kind() {
        return Err(HostError::Other(format!(
            "plugin {} is a {} engine, but [{name}] needs a {} engine",
            plugin.meta.name,
            plugin.meta.kind,
            name.kind()
        )));
    }
    let engine = plugin
        .new_engine()
        .map_err(|message| HostError::Engine { service: name, message })?;
    let started = Instant::now();
    engine
        .load(&service.config_json, &config.base_dir, &StderrProgress(name))
        .map_err(|message| HostError::Engine { service: name, message })?;
    Ok((Arc::new(engine), started.elapsed()))
}

fn speak(path: &Path, text: &str, output: &Path, json: bool) -> Result<i32> {
    let config = Config::load(path)?;
    let (engine, load_time) = load_one(&config, ServiceName::Tts)?;
    let started = Instant::now();
    let mut first_chunk = None;
    let mut samples: Vec<i16> = Vec::new();
    let mut rate = 0;
    let mut chunks = 0;
    engine
        .synthesize(text, |chunk| {
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
        println!("{value}");
    } else {
        println!(
            "wrote {}: {audio_secs:.2} s of audio at {rate} Hz in {chunks} chunk(s); load {:.2} s, synthesis {:.2} s (RTF {:.2})",
            output.display(),
            load_time.as_secs_f64(),
            synth_time.as_secs_f64(),
            synth_time.as_secs_f64() / audio_secs.max(1e-9)
        );
    }
    Ok(0)
}

fn transcribe(path: &Path, file: &Path, json: bool) -> Result<i32> {
    let config = Config::load(path)?;
    let audio = crate::audio::read_wav(file)?;
    let (engine, load_time) = load_one(&config, ServiceName::Stt)?;
    let started = Instant::now();
    let transcript = engine
        .transcribe(PcmInput {
            sample_rate: audio.sample_rate,
            channels: audio.channels,
            samples: PcmSamples::F32(audio.samples.as_slice().into()),
        })
        .map_err(|message| HostError::Engine {
            service: ServiceName::Stt,
            message,
        })?;
    let elapsed = started.elapsed();
    engine.shutdown();
    let audio_secs = audio.samples.len() as f64 / f64::from(audio.sample_rate) / f64::from(audio.channels.max(1));
    if json {
        let segments: Vec<_> = transcript
            .segments
            .iter()
            .map(|s| serde_json::json!({"start_ms": s.start_ms, "end_ms": s.end_ms, "text": s.text.as_str()}))
            .collect();
        let value = serde_json::json!({
            "text": transcript.text.as_str(),
            "language": transcript.language.as_str(),
            "segments": segments,
            "audio_seconds": audio_secs,
            "load_ms": load_time.as_secs_f64() * 1e3,
            "transcribe_ms": elapsed.as_secs_f64() * 1e3,
        });
        println!("{value}");
    } else {
        println!("{}", transcript.text.as_str().trim());
    }
    Ok(0)
}
