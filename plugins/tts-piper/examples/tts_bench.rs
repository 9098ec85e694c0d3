//! Times the `[tts]` engine of a `plugins.toml` the way the host runs it:
//! opens the plugin with the host's loader, loads and warms the engine, then
//! synthesizes every line of a text file `--runs` times. Prints one JSON
//! object; `bench/tts.sh` runs it beside piper-tts and makes the table.
//!
//! ```sh
//! cargo run --release -p hearth-tts-piper --example tts_bench -- -c plugins.toml --runs 3 bench/tts-sentences.txt
//! ```

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use hearth::{
    config::{Config, ServiceName},
    plugin::{Libraries, Unobserved},
};
use hearth_plugin_api::Flow;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut config_path = PathBuf::from("plugins.toml");
    let mut runs = 3usize;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" | "--config" => config_path = args.next().ok_or("-c needs a file")?.into(),
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--runs needs a number")?
            }
            _ => file = Some(PathBuf::from(arg)),
        }
    }
    let file = file.ok_or("usage: bench [-c plugins.toml] [--runs N] SENTENCES_FILE")?;
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();

    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    let service = config.services.get(&ServiceName::Tts).ok_or("no [tts] section")?;
    let plugin = Libraries::default()
        .open(&service.plugin_path)
        .map_err(|e| e.to_string())?;
    let engine = plugin.new_engine()?;

    let started = Instant::now();
    engine.load(&service.config_json, &config.base_dir, &Unobserved("tts"))?;
    let load = started.elapsed();
    let warm_started = Instant::now();
    engine.warmup(&Unobserved("tts"))?;
    let warmup = warm_started.elapsed();

    let mut run_ms = Vec::new();
    let mut first_chunk_ms = Vec::new();
    let mut audio_seconds = 0.0;
    let mut chunks = 0;
    for _ in 0..runs {
        let mut samples = 0usize;
        let mut rate = 0;
        chunks = 0;
        let started = Instant::now();
        for line in &lines {
            let line_started = Instant::now();
            let mut first = None;
            engine.synthesize(line, |chunk| {
                first.get_or_insert_with(|| line_started.elapsed());
                rate = chunk.sample_rate;
                samples += chunk.samples.len();
                chunks += 1;
                Flow::Continue
            })?;
            first_chunk_ms.extend(first.map(ms));
        }
        run_ms.push(ms(started.elapsed()));
        audio_seconds = samples as f64 / f64::from(rate.max(1));
    }
    let info = engine.describe();
    engine.shutdown();
    let value = serde_json::json!({
        "engine": format!("hearth {} ({})", plugin.meta.name, info.engine_version.as_str()),
        "load_ms": ms(load),
        "warmup_ms": ms(warmup),
        "load_to_warm_ms": ms(load + warmup),
        "run_ms": run_ms,
        "first_chunk_ms": first_chunk_ms,
        "audio_seconds": audio_seconds,
        "sentences": chunks,
    });
    println!("{value}");
    Ok(())
}
