//! `stt-bench`: times an STT plugin the way the host runs it. Opens the
//! plugin with the host's loader (`hearth::plugin::Libraries`), loads and
//! warms the engine, then transcribes a WAV file `--runs` times through its
//! `SttHandle`. Prints one JSON object; `bench/stt.sh` runs it beside
//! whisper.cpp's C API and makes the table.
//!
//! ```sh
//! cargo build --release -p hearth-bench -p hearth-stt-whisper
//! target/release/stt-bench -c plugins.toml --runs 3 samples/jfk.wav
//! ```

use std::path::PathBuf;

use clap::Parser;
use hearth::{config::ServiceName, engine::SttHandle};
use hearth_bench::{ms, process_cpu_ms, Bench, Common, PluginArgs};
use hearth_plugin_api::client::{Audio, Samples};

/// Times an STT plugin loaded by the host's loader: load, warmup, then one
/// WAV file, `--runs` times.
#[derive(Debug, Parser)]
#[command(name = "stt-bench")]
struct Cli {
    /// The WAV file to transcribe.
    wav: PathBuf,
    #[command(flatten)]
    plugin: PluginArgs,
    #[command(flatten)]
    common: Common,
}

/// One transcription.
struct Transcribed {
    text: String,
    /// CPU time of the whole process during it, in ms.
    cpu_ms: Option<f64>,
}

fn main() {
    let cli = hearth_bench::parse::<Cli>(&[]);
    hearth_bench::exit_on_error("stt-bench", run(&cli));
}

fn run(cli: &Cli) -> Result<(), String> {
    let bench = Bench::start("stt-bench", &cli.common);
    let wav = hearth::audio::read_wav(&cli.wav).map_err(|e| e.to_string())?;
    let audio = Audio {
        sample_rate: wav.sample_rate,
        channels: wav.channels,
        samples: Samples::F32(wav.samples),
    };

    let loaded = cli.plugin.load(&bench, ServiceName::Stt)?;
    let stt = SttHandle::of(loaded.engine.clone()).ok_or("not an STT engine")?;

    let runs = bench.repeat("transcription", |_| {
        let cpu_started = process_cpu_ms();
        let transcript = stt.transcribe(&audio)?;
        Ok::<_, String>(Transcribed {
            text: transcript.text,
            cpu_ms: process_cpu_ms().zip(cpu_started).map(|(end, start)| end - start),
        })
    })?;

    let info = stt.describe().unwrap_or_default();
    loaded.engine.shutdown();
    let value = serde_json::json!({
        "engine": format!("hearth {} ({})", loaded.plugin.name, info.engine_version),
        "load_ms": ms(loaded.load),
        "warmup_ms": ms(loaded.warmup),
        "warmed": loaded.warmed.warmed,
        "audio_seconds": audio.seconds(),
        "run_ms": runs.iter().map(|r| r.ms()).collect::<Vec<_>>(),
        "cpu_ms": runs.iter().map(|r| r.value.cpu_ms).collect::<Vec<_>>(),
        "text": runs.last().map_or("", |r| r.value.text.as_str()),
    });
    bench.emit(&value)
}
