//! Times the `[stt]` engine of a `plugins.toml` the way the host runs it:
//! opens the plugin with the host's loader, loads and warms the engine, then
//! transcribes a WAV file `--runs` times. Prints one JSON object;
//! `bench/stt.sh` runs it beside whisper.cpp's C API and makes the table.
//!
//! ```sh
//! cargo run --release -p hearth-stt-whisper --example stt_bench -- -c plugins.toml --runs 3 samples/jfk.wav
//! ```

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use hearth::{
    config::{Config, ServiceName},
    plugin::{Libraries, Unobserved},
};
use hearth_plugin_api::{PcmInput, PcmSamples};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time of the whole process (all threads) so far, in ms, from
/// `/proc/self/stat` (utime + stime, in clock ticks of 10 ms); `None` where
/// there is no procfs.
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
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
    let file = file.ok_or("usage: bench [-c plugins.toml] [--runs N] FILE.wav")?;
    let audio = hearth::audio::read_wav(&file).map_err(|e| e.to_string())?;

    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    let service = config.services.get(&ServiceName::Stt).ok_or("no [stt] section")?;
    let plugin = Libraries::default()
        .open(&service.plugin_path)
        .map_err(|e| e.to_string())?;
    let engine = plugin.new_engine()?;

    let started = Instant::now();
    engine.load(&service.config_json, &config.base_dir, &Unobserved("stt"))?;
    let load = started.elapsed();
    let warm_started = Instant::now();
    let warmed = engine.warmup(&Unobserved("stt"))?;
    let warmup = warm_started.elapsed();

    let mut run_ms = Vec::new();
    let mut cpu = Vec::new();
    let mut text = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        let cpu_started = cpu_ms();
        let transcript = engine.transcribe(PcmInput {
            sample_rate: audio.sample_rate,
            channels: audio.channels,
            samples: PcmSamples::F32(audio.samples.as_slice().into()),
        })?;
        run_ms.push(ms(started.elapsed()));
        cpu.push(cpu_ms().zip(cpu_started).map(|(end, start)| end - start));
        text = transcript.text.into_string();
    }
    let info = engine.describe();
    engine.shutdown();
    let value = serde_json::json!({
        "engine": format!("hearth {} ({})", plugin.meta.name, info.engine_version.as_str()),
        "load_ms": ms(load),
        "warmup_ms": ms(warmup),
        "warmed": warmed.warmed.as_str(),
        "audio_seconds": audio.samples.len() as f64 / f64::from(audio.sample_rate) / f64::from(audio.channels.max(1)),
        "run_ms": run_ms,
        "cpu_ms": cpu,
        "text": text,
    });
    println!("{value}");
    Ok(())
}
