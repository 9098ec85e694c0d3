//! `tts-bench`: times a TTS plugin the way the host runs it. Opens the
//! plugin with the host's loader (`hearth::plugin::Libraries`), loads and
//! warms the engine, then synthesizes every line of a text file `--runs`
//! times through its `TtsHandle`. Prints one JSON object; `bench/tts.sh`
//! runs it beside piper-tts and makes the table.
//!
//! ```sh
//! cargo build --release -p hearth-bench -p hearth-tts-piper
//! target/release/tts-bench -c plugins.toml --runs 3 bench/tts-sentences.txt
//! ```

use std::{path::PathBuf, time::Instant};

use clap::Parser;
use hearth::{config::ServiceName, engine::TtsHandle};
use hearth_bench::{ms, Bench, Common, PluginArgs};
use hearth_plugin_api::Flow;

/// Times a TTS plugin loaded by the host's loader: load, warmup, then
/// every sentence of a file, `--runs` times.
#[derive(Debug, Parser)]
#[command(name = "tts-bench")]
struct Cli {
    /// Sentences to speak, one per line (blank lines and `#` comments are
    /// skipped).
    sentences: PathBuf,
    #[command(flatten)]
    plugin: PluginArgs,
    #[command(flatten)]
    common: Common,
}

/// One pass over the sentences.
struct Pass {
    samples: usize,
    sample_rate: u32,
    chunks: usize,
    /// Per sentence, from the call to its first chunk, in ms.
    first_chunk_ms: Vec<f64>,
}

fn main() {
    let cli = hearth_bench::parse::<Cli>(&[]);
    hearth_bench::exit_on_error("tts-bench", run(&cli));
}

fn run(cli: &Cli) -> Result<(), String> {
    let bench = Bench::start("tts-bench", &cli.common);
    let text = std::fs::read_to_string(&cli.sentences).map_err(|e| format!("{}: {e}", cli.sentences.display()))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();

    let loaded = cli.plugin.load(&bench, ServiceName::Tts)?;
    let tts = TtsHandle::of(loaded.engine.clone()).ok_or("not a TTS engine")?;

    let passes = bench.repeat("synthesis", |_| {
        let mut pass = Pass {
            samples: 0,
            sample_rate: 0,
            chunks: 0,
            first_chunk_ms: Vec::with_capacity(lines.len()),
        };
        for line in &lines {
            let started = Instant::now();
            let mut first = None;
            tts.synthesize(line, |chunk| {
                first.get_or_insert_with(|| started.elapsed());
                pass.sample_rate = chunk.sample_rate;
                pass.samples += chunk.samples.len();
                pass.chunks += 1;
                Flow::Continue
            })?;
            pass.first_chunk_ms.extend(first.map(ms));
        }
        Ok::<_, String>(pass)
    })?;

    let info = tts.describe().unwrap_or_default();
    loaded.engine.shutdown();
    let last = passes.last().map(|p| &p.value);
    let value = serde_json::json!({
        "engine": format!("hearth {} ({})", loaded.plugin.name, info.engine_version),
        "load_ms": ms(loaded.load),
        "warmup_ms": ms(loaded.warmup),
        "load_to_warm_ms": ms(loaded.load + loaded.warmup),
        "run_ms": passes.iter().map(|p| p.ms()).collect::<Vec<_>>(),
        "first_chunk_ms": passes.iter().flat_map(|p| p.value.first_chunk_ms.iter().copied()).collect::<Vec<_>>(),
        "audio_seconds": last.map_or(0.0, |p| p.samples as f64 / f64::from(p.sample_rate.max(1))),
        "sentences": last.map_or(0, |p| p.chunks),
    });
    bench.emit(&value)
}
