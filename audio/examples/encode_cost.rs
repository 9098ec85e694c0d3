//! Measures what each output format costs to encode, per second of audio, the way
//! `POST /v1/audio/speech` encodes: mono 16-bit speech pushed a sentence (about 2 s) at a time.
//! The signal is the speech sample (`$HEARTH_CACHE/samples/jfk.wav`, else
//! `~/.cache/hearth/samples/jfk.wav`), resampled to each rate, looped to the length asked for.
//!
//! ```text
//! cargo run --release -p hearth-audio --example encode_cost [-- SECONDS]   (default 60)
//! ```

use std::time::Instant;

use hearth_audio::{encoder, resample, Format};

fn main() {
    let seconds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let speech = load_speech();
    println!("{seconds} s of speech per run, pushed 2 s at a time; best of 5 runs; one thread");
    println!(
        "{:>8} {:>6} {:>14} {:>10} {:>12}",
        "rate", "format", "ms per audio s", "realtime", "kbit/s out"
    );
    for rate in [22_050u32, 16_000, 24_000] {
        let at_rate: Vec<i16> = if rate == 16_000 {
            speech.clone()
        } else {
            let f: Vec<f32> = speech.iter().map(|&s| f32::from(s) / 32768.0).collect();
            let r = resample(&f, 16_000, rate).expect("resample");
            r.iter()
                .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
                .collect()
        };
        let clip: Vec<i16> = at_rate.iter().copied().cycle().take(rate as usize * seconds).collect();
        for format in Format::ALL {
            let mut best = f64::MAX;
            let mut bytes = 0;
            for _ in 0..5 {
                let start = Instant::now();
                let mut enc = encoder(format, rate).expect("encoder");
                let mut n = 0;
                for sentence in clip.chunks(rate as usize * 2) {
                    n += enc.push(sentence).expect("push").len();
                }
                n += enc.finish().expect("finish").len();
                best = best.min(start.elapsed().as_secs_f64());
                bytes = n;
            }
            let per_second_ms = best * 1000.0 / seconds as f64;
            println!(
                "{rate:>8} {:>6} {per_second_ms:>14.3} {:>9.0}x {:>12.1}",
                format.name(),
                1000.0 / per_second_ms,
                bytes as f64 * 8.0 / seconds as f64 / 1000.0
            );
        }
    }
}

fn load_speech() -> Vec<i16> {
    let cache = std::env::var_os("HEARTH_CACHE")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/hearth"));
    let path = cache.join("samples/jfk.wav");
    let mut reader = hound::WavReader::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-models.sh --only samples", path.display()));
    assert_eq!(reader.spec().sample_rate, 16_000, "jfk.wav is 16 kHz");
    reader.samples::<i16>().map(|s| s.expect("sample")).collect()
}
