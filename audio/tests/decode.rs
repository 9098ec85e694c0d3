//! The decoder, on files made by ffmpeg's well-known encoders (LAME, libvorbis, libopus, ffmpeg's
//! AAC and FLAC) from the speech sample at 44.1 kHz stereo, as phones and browsers record:
//! every format decodes to 16 kHz mono of the right length, loudness and waveform. Then the
//! failures: what is not audio, audio in a codec this crate lacks, and files cut short.

mod common;

use std::sync::OnceLock;

use common::{best_correlation, ffmpeg_encode, ffmpeg_encode_piped, jfk, jfk_path, rms, Scratch};
use hearth_audio::{decode, decode_with_limit, AudioError, INPUT_FORMATS};

/// A test input: a file name, its content type, and how ffmpeg made it.
struct Input {
    name: &'static str,
    mime: &'static str,
    bytes: Vec<u8>,
    /// `codec` of the result.
    codec: &'static str,
    source_rate: u32,
    lossless: bool,
}

/// The speech sample at 44.1 kHz stereo, encoded by ffmpeg in every input format (made once).
fn inputs() -> &'static [Input] {
    static INPUTS: OnceLock<Vec<Input>> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let scratch = Scratch::new("inputs");
        let source = scratch.path("source.wav");
        // Both channels the same (ffmpeg's own upmix would lower each by 3 dB).
        ffmpeg_encode(
            &jfk_path(),
            &["-af", "pan=stereo|c0=c0|c1=c0", "-ar", "44100", "-c:a", "pcm_s16le"],
            &source,
        );
        let make = |name: &'static str, args: &[&str]| ffmpeg_encode(&source, args, &scratch.path(name));
        let input = |name, mime, bytes, codec, source_rate, lossless| Input {
            name,
            mime,
            bytes,
            codec,
            source_rate,
            lossless,
        };
        vec![
            input(
                "speech.wav",
                "audio/wav",
                std::fs::read(&source).unwrap(),
                "pcm_s16le in wav",
                44_100,
                true,
            ),
            input(
                "speech.flac",
                "audio/flac",
                make("speech.flac", &["-c:a", "flac"]),
                "flac",
                44_100,
                true,
            ),
            input(
                "speech.mp3",
                "audio/mpeg",
                make("speech.mp3", &["-c:a", "libmp3lame", "-b:a", "128k"]),
                "mp3",
                44_100,
                false,
            ),
            input(
                "speech.ogg",
                "audio/ogg",
                make("speech.ogg", &["-c:a", "libvorbis", "-q:a", "4"]),
                "vorbis in ogg",
                44_100,
                false,
            ),
            input(
                "speech.opus",
                "audio/ogg",
                make("speech.opus", &["-c:a", "libopus", "-b:a", "32k"]),
                "opus in ogg",
                48_000,
                false,
            ),
            input(
                "speech.webm",
                "audio/webm",
                make("speech.webm", &["-c:a", "libopus", "-b:a", "32k"]),
                "opus in webm",
                48_000,
                false,
            ),
            // A recorder writing to a pipe (as a browser's MediaRecorder streams): no sizes, no cues.
            input(
                "recording.webm",
                "audio/webm;codecs=opus",
                ffmpeg_encode_piped(&source, &["-c:a", "libopus", "-b:a", "24k", "-f", "webm"]),
                "opus in webm",
                48_000,
                false,
            ),
            input(
                "speech.m4a",
                "audio/mp4",
                make("speech.m4a", &["-c:a", "aac", "-b:a", "96k"]),
                "aac in mp4",
                44_100,
                false,
            ),
            input(
                "opus.mp4",
                "video/mp4",
                make("opus.mp4", &["-c:a", "libopus", "-b:a", "32k"]),
                "opus in mp4",
                48_000,
                false,
            ),
            input(
                "faststart.m4a",
                "audio/x-m4a",
                make(
                    "faststart.m4a",
                    &["-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart"],
                ),
                "aac in mp4",
                44_100,
                false,
            ),
        ]
    })
}

#[test]
fn every_input_format_decodes_to_16_khz_mono() {
    let reference = jfk();
    for input in inputs() {
        let what = input.name;
        let decoded =
            decode(&input.bytes, Some(input.name), Some(input.mime), 16_000).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(decoded.codec, input.codec, "{what}");
        assert_eq!(decoded.sample_rate, 16_000, "{what}");
        assert_eq!(decoded.source_rate, input.source_rate, "{what}");
        assert_eq!(decoded.source_channels, 2, "{what}");
        let got = &decoded.samples;
        let diff = got.len().abs_diff(reference.len());
        assert!(
            diff <= reference.len() * 2 / 100,
            "{what}: {} samples, not {}",
            got.len(),
            reference.len()
        );
        let ratio = rms(got) / rms(&reference);
        assert!((0.8..1.25).contains(&ratio), "{what}: loudness ratio {ratio:.3}");
        let (correlation, lag) = best_correlation(&reference, got, 16_000, 1_600);
        let (min, max_lag) = if input.lossless { (0.999, 0) } else { (0.85, 20) };
        assert!(correlation > min, "{what}: correlation {correlation:.3} at lag {lag}");
        assert!(lag <= max_lag, "{what}: {lag} samples late");
        eprintln!(
            "{what}: {} ({} bytes) -> {} samples, rms ratio {ratio:.3}, correlation {correlation:.4} at lag {lag}",
            decoded.codec,
            input.bytes.len(),
            got.len()
        );
    }
}

#[test]
fn the_bytes_decide_not_the_name_or_type() {
    let input = inputs().iter().find(|i| i.name == "speech.webm").unwrap();
    for (name, mime) in [
        (Some("speech.mp3"), Some("audio/wav")),
        (None, None),
        (Some("blob"), Some("application/octet-stream")),
    ] {
        let decoded = decode(&input.bytes, name, mime, 16_000).unwrap();
        assert_eq!(decoded.codec, "opus in webm");
    }
}

#[test]
fn other_target_rates() {
    let input = inputs().iter().find(|i| i.name == "speech.ogg").unwrap();
    for rate in [8_000, 22_050, 24_000, 48_000] {
        let decoded = decode(&input.bytes, None, None, rate).unwrap();
        assert_eq!(decoded.sample_rate, rate);
        let expected = 11.0 * f64::from(rate);
        assert!(
            (decoded.samples.len() as f64 - expected).abs() < expected * 0.02,
            "{rate} Hz"
        );
    }
}

fn assert_unsupported(result: Result<hearth_audio::Decoded, AudioError>, what: &str) -> String {
    match result {
        Err(e @ AudioError::Unsupported(_)) => {
            let message = e.to_string();
            assert!(message.contains(INPUT_FORMATS), "{what}: {message}");
            message
        }
        other => panic!("{what}: expected Unsupported, got {other:?}"),
    }
}

#[test]
fn what_is_not_audio_is_unsupported_and_told_the_formats() {
    let mut noise = 0x1234_5678u32;
    let random: Vec<u8> = (0..100_000)
        .map(|_| {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            noise as u8
        })
        .collect();
    assert_unsupported(
        decode(&random, Some("noise.wav"), Some("audio/wav"), 16_000),
        "random bytes",
    );
    assert_unsupported(
        decode(b"Hello, this is a text file.\n", Some("a.txt"), None, 16_000),
        "text",
    );
    let m = assert_unsupported(
        decode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Some("a.png"), None, 16_000),
        "PNG",
    );
    assert!(m.starts_with("the file is a PNG image"), "{m}");
    let m = assert_unsupported(decode(b"", None, None, 16_000), "nothing");
    assert!(m.starts_with("the file is empty"), "{m}");
    let m = assert_unsupported(decode(b"RIFF\x04\0\0\0AVI LIST", None, None, 16_000), "AVI");
    assert!(m.contains("RIFF file other than WAVE"), "{m}");
}

#[test]
fn a_codec_this_crate_lacks_is_unsupported() {
    let scratch = Scratch::new("other-codecs");
    let alac = ffmpeg_encode(&jfk_path(), &["-t", "1", "-c:a", "alac"], &scratch.path("a.m4a"));
    let m = assert_unsupported(decode(&alac, Some("a.m4a"), None, 16_000), "ALAC in MP4");
    assert!(m.starts_with("ALAC audio in a mp4 file is not supported"), "{m}");
    let aiff = ffmpeg_encode(&jfk_path(), &["-t", "1"], &scratch.path("a.aiff"));
    let m = assert_unsupported(decode(&aiff, Some("a.aiff"), None, 16_000), "AIFF");
    assert!(m.contains("AIFF"), "{m}");
    // A video without sound.
    let path = scratch.path("video.webm");
    let out = common::run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=1:size=64x64:rate=5",
            "-c:v",
            "libvpx",
        ]
        .into_iter()
        .chain([path.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = assert_unsupported(decode(&std::fs::read(&path).unwrap(), None, None, 16_000), "video");
    assert!(m.starts_with("the webm file has no audio track"), "{m}");
}

#[test]
fn files_cut_short_decode_what_they_have_or_fail_cleanly() {
    for input in inputs() {
        let full = decode(&input.bytes, None, None, 16_000).unwrap().samples.len();
        for keep in [input.bytes.len() / 2, input.bytes.len() / 10, 1000, 100, 12, 4] {
            let what = format!("{} cut to {keep} of {} bytes", input.name, input.bytes.len());
            match decode(&input.bytes[..keep], None, None, 16_000) {
                Ok(d) => assert!(d.samples.len() < full, "{what}: {} samples of {full}", d.samples.len()),
                Err(AudioError::Invalid(m)) => {
                    assert!(!m.contains("decoder failed"), "{what}: a decoder panicked: {m}")
                }
                Err(AudioError::Unsupported(m)) => assert!(keep < 64, "{what}: {m}"),
                Err(e) => panic!("{what}: {e}"),
            }
        }
    }
}

/// Recorders that cannot seek back leave 0 or 0xFFFFFFFF for the sizes; uploads get cut short.
/// Like ffmpeg, the decoder reads such a WAV file to its end.
#[test]
fn wav_sizes_that_do_not_fit_the_file_are_read_to_its_end() {
    let samples: Vec<i16> = jfk()[..16_123].to_vec();
    let wav = hearth_audio::encode(hearth_audio::Format::Wav, 16_000, &samples).unwrap();
    let with = |riff: u32, data: u32| {
        let mut bytes = wav.clone();
        bytes[4..8].copy_from_slice(&riff.to_le_bytes());
        bytes[40..44].copy_from_slice(&data.to_le_bytes());
        bytes
    };
    let exact = (wav.len() - 8) as u32;
    for (riff, data) in [
        (u32::MAX, u32::MAX),
        (u32::MAX, 0),
        (0, 0),
        (exact, 0x7FFF_0000),
        (exact + 1000, 0),
    ] {
        let decoded =
            decode(&with(riff, data), None, None, 16_000).unwrap_or_else(|e| panic!("{riff:#x} {data:#x}: {e}"));
        assert_eq!(decoded.samples, samples, "RIFF size {riff:#x}, data size {data:#x}");
    }
    // A valid size shorter than the file (a chunk follows the data) is kept.
    let mut list = with(exact + 12, 20_000);
    list.extend_from_slice(b"LIST\x04\0\0\0INFO");
    assert_eq!(decode(&list, None, None, 16_000).unwrap().samples, samples[..10_000]);
}

#[test]
fn a_limit_on_the_duration() {
    let wav = &inputs()[0].bytes;
    match decode_with_limit(wav, None, None, 16_000, 5) {
        Err(AudioError::Invalid(m)) => assert_eq!(m, "the audio is longer than the limit of 5 s"),
        other => panic!("{other:?}"),
    }
    assert!(decode_with_limit(wav, None, None, 16_000, 12).is_ok());
}
