//! The encoders, checked by decoding what they stream: with this crate's decoder, with ffmpeg and
//! ffprobe (an independent, widely used implementation of every format), and for WAV with
//! Python's `wave` and `soundfile` (libsndfile). Signals: the speech sample at 16 kHz and a
//! voice-like tone at 22 050 Hz, a common rate of TTS voices.

mod common;

use common::{best_correlation, ffmpeg_decode, ffprobe, jfk, python, rms, tone, Scratch};
use hearth_audio::{decode, encode, encoder, Format};

/// Encodes `samples` as a stream, in uneven pieces as a TTS engine would hand them over.
/// Returns the whole stream and the bytes of the first push.
fn stream(format: Format, rate: u32, samples: &[i16]) -> (Vec<u8>, Vec<u8>) {
    let mut enc = encoder(format, rate).unwrap();
    let mut pieces = Vec::new();
    let mut rest = samples;
    let mut size = rate as usize / 3;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        pieces.push(enc.push(piece).unwrap());
        rest = tail;
        size = size * 7 / 5 + 13;
    }
    pieces.push(enc.finish().unwrap());
    let first = pieces[0].clone();
    (pieces.concat(), first)
}

/// What each format must look like to ffprobe: codec name and the rate it reports.
fn expected_codec(format: Format, rate: u32) -> (&'static str, u32) {
    match format {
        Format::Wav | Format::Pcm => ("pcm_s16le", rate),
        Format::Flac => ("flac", rate),
        // Opus always decodes at 48 kHz; the input rate is only information in the header.
        Format::Opus => ("opus", 48_000),
        Format::Mp3 => ("mp3", rate),
    }
}

/// LAME's encoder delay plus the MP3 decoder's delay, in samples.
const MP3_DELAY: usize = 576 + 529;

/// Samples per MPEG-1 layer III frame (MPEG-2 has half, so this bounds the padding).
const MP3_FRAME: usize = 1152;

fn lossless(format: Format) -> bool {
    matches!(format, Format::Wav | Format::Pcm | Format::Flac)
}

/// Checks decoded `got` against the `input` it was encoded from.
fn check_signal(what: &str, format: Format, rate: u32, input: &[i16], got: &[i16]) {
    if lossless(format) {
        assert!(
            got == input,
            "{what}: {} samples decoded, not the {} pushed, or different",
            got.len(),
            input.len()
        );
        return;
    }
    // Lossy: the same length, loudness within a factor, and the same waveform. An MP3 stream
    // has no gapless information (the LAME tag would go into the first frame once the stream is
    // over), so decoders keep LAME's delay (1105 samples) and the padding of the last frame.
    // (Above 48 kHz LAME encodes at 48 kHz, so the delay is longer in input samples.)
    let mp3_scale = |n: usize| n * rate.max(48_000) as usize / 48_000;
    let (min, max) = match format {
        Format::Mp3 => (input.len(), input.len() + mp3_scale(MP3_DELAY + 2 * MP3_FRAME)),
        _ => (input.len() * 97 / 100, input.len() * 103 / 100),
    };
    assert!(
        (min..=max).contains(&got.len()),
        "{what}: {} samples decoded for {} pushed",
        got.len(),
        input.len()
    );
    let ratio = rms(got) / rms(input);
    assert!((0.7..1.4).contains(&ratio), "{what}: loudness ratio {ratio:.2}");
    let (correlation, lag) = best_correlation(input, got, rate as usize, 2_400 * rate.max(48_000) as usize / 48_000);
    assert!(correlation > 0.75, "{what}: correlation {correlation:.3} at lag {lag}");
    // Opus streams state their delay, so decoders line the audio up; MP3 streams do not.
    let delay = if format == Format::Mp3 { mp3_scale(MP3_DELAY) } else { 0 };
    assert!(lag.abs_diff(delay) <= 2, "{what}: decoded audio is {lag} samples late");
    eprintln!(
        "{what}: {} -> {} samples, rms ratio {ratio:.3}, correlation {correlation:.3} at lag {lag}",
        input.len(),
        got.len()
    );
}

fn check_format(format: Format, rate: u32, input: &[i16], label: &str) {
    let what = format!("{format} of {label} at {rate} Hz");
    let (bytes, first) = stream(format, rate, input);
    let magic: &[u8] = match format {
        Format::Wav => b"RIFF",
        Format::Flac => b"fLaC",
        Format::Opus => b"OggS",
        Format::Mp3 => &[0xFF],
        Format::Pcm => &[],
    };
    assert!(
        first.starts_with(magic),
        "{what}: the first push starts with {:02X?}",
        &first[..first.len().min(4)]
    );
    assert!(
        first.len() > 100,
        "{what}: the first push returned only {} bytes",
        first.len()
    );

    let scratch = Scratch::new(&format!("{format}-{rate}"));
    let path = scratch.write(&format!("speech.{}", format.name()), &bytes);
    let raw_args = ["-f", "s16le", "-ar", &rate.to_string(), "-ac", "1"].map(String::from);
    let raw_args: Vec<&str> = raw_args.iter().map(String::as_str).collect();
    let input_args: &[&str] = if format == Format::Pcm { &raw_args } else { &[] };

    // ffprobe: codec, rate, channels, and the duration when the container states one.
    let probe = ffprobe(&path, input_args);
    assert_eq!(
        (probe.codec.as_str(), probe.sample_rate),
        expected_codec(format, rate),
        "{what}: {probe:?}"
    );
    assert_eq!(probe.channels, 1, "{what}: {probe:?}");
    let seconds = input.len() as f64 / f64::from(rate);
    if let Some(d) = probe.duration {
        assert!(
            (d - seconds).abs() <= seconds * 0.03 + 0.12,
            "{what}: ffprobe says {d} s, not {seconds:.2} s"
        );
    }

    // ffmpeg decodes it cleanly, to the same signal.
    let by_ffmpeg = ffmpeg_decode(&path, input_args, rate);
    check_signal(&format!("{what}, decoded by ffmpeg"), format, rate, input, &by_ffmpeg);

    // This crate's decoder (raw PCM has no header to recognize).
    if format != Format::Pcm {
        let decoded = decode(
            &bytes,
            Some(&format!("speech.{}", format.name())),
            Some(format.content_type()),
            rate,
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(decoded.source_channels, 1, "{what}");
        assert_eq!(decoded.sample_rate, rate);
        check_signal(
            &format!("{what}, decoded by hearth-audio ({})", decoded.codec),
            format,
            rate,
            input,
            &decoded.samples,
        );
    }

    // WAV: Python's reader and libsndfile, reading the stream's unknown sizes to the end.
    if format == Format::Wav {
        let out = python(
            "import sys, wave\nw = wave.open(sys.argv[1])\nn = 0\nwhile True:\n    b = w.readframes(4096)\n    \
             if not b: break\n    n += len(b) // 2\nprint(w.getframerate(), w.getnchannels(), n)",
            &path,
        );
        assert_eq!(out.trim(), format!("{rate} 1 {}", input.len()), "{what}: Python's wave");
        let out = python(
            "import sys, soundfile\nf = soundfile.SoundFile(sys.argv[1])\nb = bytes(f.buffer_read(dtype='int16'))\n\
             print(f.samplerate, f.channels, len(b) // 2, b == open(sys.argv[1], 'rb').read()[44:])",
            &path,
        );
        assert_eq!(
            out.trim(),
            format!("{rate} 1 {} True", input.len()),
            "{what}: soundfile"
        );
    }
}

#[test]
fn every_format_round_trips_speech_at_16_khz() {
    let speech = jfk();
    for format in Format::ALL {
        check_format(format, 16_000, &speech, "speech");
    }
}

#[test]
fn every_format_round_trips_a_tone_at_22050_hz() {
    let signal = tone(22_050, 5.0);
    for format in Format::ALL {
        check_format(format, 22_050, &signal, "a tone");
    }
}

#[test]
fn every_format_takes_the_common_rates() {
    for rate in [8_000, 11_025, 24_000, 44_100, 48_000, 96_000] {
        let signal = tone(rate, 1.0);
        for format in Format::ALL {
            let bytes = encode(format, rate, &signal).unwrap();
            if format == Format::Pcm {
                assert_eq!(bytes.len(), signal.len() * 2);
                continue;
            }
            let decoded = decode(&bytes, None, None, rate).unwrap_or_else(|e| panic!("{format} at {rate} Hz: {e}"));
            check_signal(
                &format!("{format} at {rate} Hz"),
                format,
                rate,
                &signal,
                &decoded.samples,
            );
        }
    }
}

/// A stream that ends before any audio (the engine produced nothing) is still a valid file.
#[test]
fn empty_streams_are_valid_files() {
    for format in Format::ALL {
        let mut enc = encoder(format, 22_050).unwrap();
        let bytes = enc.finish().unwrap();
        assert!(enc.finish().is_err(), "{format}: finishing twice");
        if format == Format::Pcm {
            assert!(bytes.is_empty());
            continue;
        }
        let scratch = Scratch::new("empty");
        let path = scratch.write(&format!("empty.{}", format.name()), &bytes);
        let samples = ffmpeg_decode(&path, &[], 22_050);
        assert!(
            samples.len() < 2_400,
            "{format}: {} samples from an empty stream",
            samples.len()
        );
        let decoded = decode(&bytes, None, None, 22_050).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert!(
            decoded.samples.len() < 2_400,
            "{format}: {} samples",
            decoded.samples.len()
        );
    }
}

/// `encode` of a whole clip states the length where the format has room for it.
#[test]
fn whole_clips_state_their_length() {
    let signal = tone(22_050, 2.0);
    let scratch = Scratch::new("whole");
    for format in [Format::Wav, Format::Flac] {
        let bytes = encode(format, 22_050, &signal).unwrap();
        let path = scratch.write(&format!("clip.{}", format.name()), &bytes);
        let probe = ffprobe(&path, &[]);
        let d = probe
            .duration
            .unwrap_or_else(|| panic!("{format}: no duration in {probe:?}"));
        assert!((d - 2.0).abs() < 0.001, "{format}: {d} s");
        assert_eq!(ffmpeg_decode(&path, &[], 22_050), signal, "{format}");
    }
}
