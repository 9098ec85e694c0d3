//! Helpers shared by the integration tests: the speech sample and a synthetic tone, signal
//! measures, scratch directories, and the independent tools the tests check against (ffmpeg,
//! ffprobe, Python's `wave` and `soundfile`). A missing tool fails the test with the command that
//! installs it, never a skip.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Hearth's cache of fetched assets: `$HEARTH_CACHE`, else `~/.cache/hearth`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("HEARTH_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/hearth"),
    }
}

/// The speech sample: 11 s of 16 kHz mono 16-bit speech.
pub fn jfk() -> Vec<i16> {
    let path = jfk_path();
    let mut reader = hound::WavReader::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-models.sh --only samples", path.display()));
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (16_000, 1, 16),
        "jfk.wav format"
    );
    reader.samples::<i16>().map(|s| s.expect("jfk.wav sample")).collect()
}

pub fn jfk_path() -> PathBuf {
    cache_dir().join("samples/jfk.wav")
}

/// A voice-like test signal: a buzz with harmonics whose pitch glides between 100 and 180 Hz
/// like intonation, its loudness rising and falling 3 times a second, with a little noise, at
/// about -14 dBFS. Not periodic, so that a waveform lines up with its decoding at one lag only.
pub fn tone(rate: u32, seconds: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    let mut phase = 0.0f64;
    let mut noise = 0x2545_F491u32;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let pitch = 140.0 + 40.0 * (std::f64::consts::TAU * 0.7 * t).sin();
            phase += std::f64::consts::TAU * pitch / f64::from(rate);
            let buzz: f64 = (1..=6).map(|k| (k as f64 * phase).sin() / k as f64).sum();
            let envelope = 0.55 + 0.45 * (std::f64::consts::TAU * 3.0 * t).sin();
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let hiss = f64::from(noise) / f64::from(u32::MAX) - 0.5;
            ((buzz * envelope * 0.14 + hiss * 0.01) * 32767.0) as i16
        })
        .collect()
}

pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// The best normalized correlation of `got` with `reference` for a lag of `got` behind
/// `reference` in `0..=max_lag` samples, over one second from the middle of `reference`
/// (`rate` samples): (correlation, lag).
pub fn best_correlation(reference: &[i16], got: &[i16], rate: usize, max_lag: usize) -> (f64, usize) {
    let len = rate.min(reference.len() / 2);
    let start = (reference.len() - len) / 2;
    let a: Vec<f64> = reference[start..start + len].iter().map(|&s| f64::from(s)).collect();
    let a_norm = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut best = (f64::MIN, 0);
    for lag in 0..=max_lag {
        let Some(b) = got.get(start + lag..start + lag + len) else {
            break;
        };
        let mut dot = 0.0;
        let mut b_energy = 0.0;
        for (x, &y) in a.iter().zip(b) {
            let y = f64::from(y);
            dot += x * y;
            b_energy += y * y;
        }
        let c = dot / (a_norm * b_energy.sqrt()).max(1e-9);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

/// A scratch directory, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hearth-audio-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    pub fn write(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(file);
        std::fs::write(&path, bytes).expect("scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `program` with `args`, failing the test with an install hint if it is missing.
pub fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {program} ({e}): install it with scripts/install-deps.sh (Debian's {})",
            package_of(program)
        )
    })
}

fn package_of(program: &str) -> &'static str {
    match program {
        "ffmpeg" | "ffprobe" => "ffmpeg package",
        "/usr/bin/python3" => "python3 and python3-soundfile packages",
        _ => "packages",
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What ffprobe says of the first audio stream of a file.
#[derive(Debug, Default)]
pub struct Probe {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    /// The container's or the stream's duration, when ffprobe knows one.
    pub duration: Option<f64>,
}

/// ffprobe's view of `path`; `input_args` go before `-i` (for raw PCM: its format).
pub fn ffprobe(path: &Path, input_args: &[&str]) -> Probe {
    let path = path.to_str().expect("UTF-8 path");
    let mut args = vec!["-v", "error"];
    args.extend_from_slice(input_args);
    args.extend_from_slice(&[
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=codec_name,sample_rate,channels,duration:format=duration",
        "-of",
        "default=noprint_wrappers=1",
        "-i",
        path,
    ]);
    let out = run("ffprobe", &args);
    assert!(out.status.success(), "ffprobe {path} failed: {}", text(&out.stderr));
    assert!(
        out.stderr.is_empty(),
        "ffprobe {path} complained: {}",
        text(&out.stderr)
    );
    let mut probe = Probe::default();
    for line in text(&out.stdout).lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "codec_name" => probe.codec = value.to_string(),
            "sample_rate" => probe.sample_rate = value.parse().unwrap_or(0),
            "channels" => probe.channels = value.parse().unwrap_or(0),
            "duration" => {
                if let Ok(d) = value.parse::<f64>() {
                    probe.duration.get_or_insert(d);
                }
            }
            _ => {}
        }
    }
    probe
}

/// Decodes `path` with ffmpeg to mono s16le at `rate` (no resampling when it is the file's own
/// rate), failing on any error ffmpeg prints. (Not on warnings: ffmpeg warns about every streamed
/// WAV, its own included, that its sizes are unknown and its last packet short.)
pub fn ffmpeg_decode(path: &Path, input_args: &[&str], rate: u32) -> Vec<i16> {
    let path = path.to_str().expect("UTF-8 path");
    let rate = rate.to_string();
    let mut args = vec!["-v", "error", "-nostdin"];
    args.extend_from_slice(input_args);
    args.extend_from_slice(&["-i", path, "-f", "s16le", "-ac", "1", "-ar", &rate, "-"]);
    let out = run("ffmpeg", &args);
    assert!(
        out.status.success(),
        "ffmpeg could not decode {path}: {}",
        text(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffmpeg complained decoding {path}: {}",
        text(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Encodes `input` with ffmpeg: `args` go between the input and the output file, `output` names
/// the file (its extension picks the container unless `args` has `-f`).
pub fn ffmpeg_encode(input: &Path, args: &[&str], output: &Path) -> Vec<u8> {
    let mut all = vec![
        "-v",
        "error",
        "-nostdin",
        "-y",
        "-i",
        input.to_str().expect("UTF-8 path"),
    ];
    all.extend_from_slice(args);
    all.push(output.to_str().expect("UTF-8 path"));
    let out = run("ffmpeg", &all);
    assert!(out.status.success(), "ffmpeg {all:?} failed: {}", text(&out.stderr));
    std::fs::read(output).expect("ffmpeg output")
}

/// Like [`ffmpeg_encode`], but ffmpeg writes to a pipe (`-f format -`), as a live recorder does:
/// it cannot seek back to fill in sizes, durations or indexes.
pub fn ffmpeg_encode_piped(input: &Path, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["-v", "error", "-nostdin", "-i", input.to_str().expect("UTF-8 path")];
    all.extend_from_slice(args);
    all.push("-");
    let out = run("ffmpeg", &all);
    assert!(out.status.success(), "ffmpeg {all:?} failed: {}", text(&out.stderr));
    out.stdout
}

/// Runs a Python snippet with Debian's interpreter (which has Debian's `soundfile`), giving it
/// `path` as `sys.argv[1]`; returns its standard output.
pub fn python(code: &str, path: &Path) -> String {
    let out = run("/usr/bin/python3", &["-c", code, path.to_str().expect("UTF-8 path")]);
    assert!(
        out.status.success(),
        "python failed (scripts/install-deps.sh installs python3-soundfile): {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}
