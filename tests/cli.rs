//! The `hearth` binary as an operator runs it: config errors with
//! file:line:column and exit 2, `check`, `plugin inspect`, the one-shot
//! `speak` and `transcribe` commands, and `serve` with a graceful SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use hearth_tests::{hearth, hearth_bin, host_section, library, plugin, scripted, text, Scratch};

#[test]
fn help_lists_the_commands() {
    let out = hearth(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for command in ["serve", "check", "plugin", "speak", "transcribe"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn an_invalid_config_exits_2_with_file_line_column() {
    let scratch = Scratch::new("[host]\nlisten = \"127.0.0.1:0\"\nwarmup_timout = \"5s\"\n");
    let config = scratch.config_path();
    for command in ["serve", "check"] {
        let out = hearth(&[command, "--config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        let expected = format!("{}:3:1: unknown field `warmup_timout`", config.display());
        assert!(stderr.contains(&expected), "{command}: {stderr}");
        assert!(stderr.contains("`warmup_timeout`"), "known keys listed: {stderr}");
    }
}

#[test]
fn a_missing_config_file_exits_2() {
    let out = hearth(&["check", "--config", "/nonexistent/plugins.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/plugins.toml: cannot read the configuration"));
}

#[test]
fn check_passes_a_good_config() {
    let scratch = Scratch::new(&format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted("chat", "")
    ));
    let out = hearth(&["check", "-c", scratch.config_path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("tts: ok — scripted-tts"), "{stdout}");
    assert!(stdout.contains("stt: not configured (optional)"), "{stdout}");
}

#[test]
fn check_reports_every_problem_and_exits_1() {
    let config = format!(
        "{}[tts]\nplugin = \"missing-plugin\"\n{}",
        host_section(""),
        scripted("chat", "lod_ms = 3")
    );
    let scratch = Scratch::new(&config);
    let out = hearth(&["check", "-c", scratch.config_path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("tts: PROBLEM: plugin file"), "{stdout}");
    assert!(stdout.contains("libhearth_missing_plugin.so not found"), "{stdout}");
    // The plugin's own validation, placed at the [chat.config] table.
    assert!(stdout.contains("chat: PROBLEM:"), "{stdout}");
    assert!(
        stdout.contains("plugins.toml:8:1: [chat.config]: invalid config: unknown field `lod_ms`"),
        "{stdout}"
    );
    assert!(stdout.contains("2 problem(s) found"), "{stdout}");
}

#[test]
fn plugin_inspect_shows_a_plugin_or_why_it_is_refused() {
    let path = plugin("scripted-stt");
    let out = hearth(&["plugin", "inspect", path.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("name:        scripted-stt"), "{stdout}");
    assert!(stdout.contains("kind:        stt"), "{stdout}");
    assert!(
        stdout.contains(&format!("plugin ABI:  {}", hearth_plugin_api::ABI_VERSION)),
        "{stdout}"
    );

    let foreign = library("libhearth_fixture_abi_v2.so");
    let out = hearth(&["plugin", "inspect", "--json", foreign.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["compatible"], false);
    let error = json["error"].as_str().unwrap();
    let expected = format!("host ABI {}, plugin ABI 2.0.0", hearth_plugin_api::ABI_VERSION);
    assert!(error.contains(&expected), "{error}");
}

/// `hearth plugin inspect … | head -0`: a reader that is gone before the
/// first line ends the command quietly with 141 (as SIGPIPE would), never
/// with a panic.
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let path = plugin("scripted-stt");
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(hearth_bin())
        .args(["plugin", "inspect", path.to_str().unwrap()])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("hearth runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn speak_writes_the_engines_audio_to_a_wav_file() {
    let scratch = Scratch::new(&format!(
        "{}{}",
        host_section(""),
        scripted("tts", "sample_rate = 8000")
    ));
    let wav = scratch.dir.path().join("out.wav");
    let out = hearth(&[
        "speak",
        "Hi. Bye.",
        "-o",
        wav.to_str().unwrap(),
        "-c",
        scratch.config_path().to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["chunks"], 2);
    assert_eq!(json["sample_rate"], 8000);
    let bytes = std::fs::read(&wav).unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    // Two sentences of three and four characters, 60 ms per character.
    assert_eq!(json["samples"], 8000 * 60 / 1000 * 7);
}

/// The real Piper voice picks its ONNX Runtime threads from the CPUs the
/// process may run on (its affinity mask here; a cgroup quota counts the
/// same way), not from the machine's core count.
#[test]
fn the_real_voice_takes_one_thread_per_cpu_it_may_use() {
    let config = hearth_tests::repo_root().join("plugins.toml");
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let speak = |cpus: &str| {
        let out = Command::new("taskset")
            .args(["--cpu-list", cpus])
            .arg(hearth_bin())
            .args([
                "speak",
                "Hello there.",
                "-o",
                wav.to_str().unwrap(),
                "-c",
                config.to_str().unwrap(),
            ])
            .output()
            .expect("taskset (util-linux) runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let cores = std::thread::available_parallelism().unwrap().get();
    for (cpus, threads) in [("0", 1), (&format!("0-{}", cores - 1)[..], cores.min(4))] {
        let log = speak(cpus);
        assert!(
            log.contains(&format!("loaded with {threads} thread(s)")),
            "CPUs {cpus}: {log}"
        );
    }
}

#[test]
fn transcribe_prints_the_engines_text() {
    let scratch = Scratch::new(&format!(
        "{}{}",
        host_section(""),
        scripted("stt", "transcript = \"hello there\"")
    ));
    let wav = scratch.dir.path().join("in.wav");
    // A tone: the scripted recognizer hears nothing in silence.
    let tone: Vec<i16> = (0..16_000)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 8000.0) as i16)
        .collect();
    hearth::audio::write_wav(&wav, 16_000, &tone).unwrap();
    let out = hearth(&[
        "transcribe",
        wav.to_str().unwrap(),
        "-c",
        scratch.config_path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "hello there");
    let out = hearth(&[
        "transcribe",
        wav.to_str().unwrap(),
        "-c",
        scratch.config_path().to_str().unwrap(),
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["segments"][0]["end_ms"], 1000);
    // Every format `/v1/audio/transcriptions` reads, not only WAV: the same
    // tone as FLAC and as MP3 (made by ffmpeg), named without a telling
    // extension, is decoded and heard.
    for (codec, name) in [("flac", "in.audio"), ("libmp3lame", "in.bin")] {
        let encoded = scratch.dir.path().join(name);
        let made = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-nostdin",
                "-y",
                "-i",
                wav.to_str().unwrap(),
                "-c:a",
                codec,
                "-f",
            ])
            .arg(if codec == "flac" { "flac" } else { "mp3" })
            .arg(&encoded)
            .status()
            .expect("ffmpeg runs (scripts/install-deps.sh installs it)");
        assert!(made.success(), "ffmpeg made the {codec} file");
        let out = hearth(&[
            "transcribe",
            encoded.to_str().unwrap(),
            "-c",
            scratch.config_path().to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "{codec}: {}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["text"], "hello there", "{codec}");
        let seconds = json["audio_seconds"].as_f64().unwrap();
        assert!((0.95..1.1).contains(&seconds), "{codec}: {seconds} s");
    }
    // Not audio: refused with what the file is.
    let png = scratch.dir.path().join("in.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n0000").unwrap();
    let out = hearth(&[
        "transcribe",
        png.to_str().unwrap(),
        "-c",
        scratch.config_path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("PNG image"), "{}", text(&out.stderr));
}

/// The real voice's speech starts at its first sample. Whisper (through
/// whisper.cpp) heard such clips with a word in front ("Make sure I've
/// set…") until the STT plugin put a moment of silence before every clip;
/// Piper draws fresh noise each time, so two takes.
#[test]
fn the_real_voices_speech_is_heard_from_its_first_word() {
    let config = hearth_tests::repo_root().join("plugins.toml");
    let dir = tempfile::tempdir().unwrap();
    for take in 0..2 {
        let wav = dir.path().join(format!("take{take}.wav"));
        let out = hearth(&[
            "speak",
            "Sure. I've set a timer for twelve minutes.",
            "-o",
            wav.to_str().unwrap(),
            "-c",
            config.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = hearth(&[
            "transcribe",
            wav.to_str().unwrap(),
            "-c",
            config.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let heard = json["text"].as_str().unwrap().to_lowercase();
        assert!(heard.starts_with("sure"), "take {take}: {heard:?}");
        assert!(heard.contains("timer for 12 minutes"), "take {take}: {heard:?}");
        // Segment times count from the clip's start, not the silence's.
        let start = json["segments"][0]["start_ms"].as_u64().unwrap();
        assert!(start < 100, "take {take}: first segment at {start} ms");
    }
}

#[test]
fn serve_answers_probes_and_stops_on_sigterm() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let scratch = Scratch::new(&format!(
        "{}{}{}",
        host_section(&format!("listen = \"127.0.0.1:{port}\"")),
        scripted("tts", "load_ms = 200"),
        scripted("chat", "")
    ));
    let mut child = Command::new(hearth_bin())
        .args(["serve", "-c", scratch.config_path().to_str().unwrap()])
        .env("HEARTH_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("ready after")) {
        match lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => log.push(line),
            Err(_) => panic!("never became ready: {log:#?}"),
        }
    }
    let livez = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(livez.is_ok());
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    log.extend(lines_rx.try_iter());
    let log = log.join("\n");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("engine shut down"), "{log}");
}
