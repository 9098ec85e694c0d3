//! Hostile input: random bytes, random bytes behind every container's magic number, and real
//! files of every input format with bytes changed at random. `decode` must return (an error or
//! some audio), never panic; and no decoder may panic inside it either (a caught panic shows as
//! an `Invalid` error saying the decoder failed).

mod common;

use std::sync::OnceLock;

use common::{ffmpeg_encode, jfk_path, Scratch};
use hearth_audio::{decode, AudioError};
use proptest::prelude::*;

/// Half a second of speech in every input format, made by ffmpeg (once).
fn small_files() -> &'static [(String, Vec<u8>)] {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let scratch = Scratch::new("small");
        let cut = ["-ss", "2", "-t", "0.5", "-ac", "2"];
        let formats: [(&str, &[&str]); 8] = [
            ("a.wav", &["-ar", "44100"]),
            ("a.flac", &["-ar", "44100", "-c:a", "flac"]),
            ("a.mp3", &["-ar", "44100", "-c:a", "libmp3lame", "-b:a", "64k"]),
            ("a.ogg", &["-ar", "44100", "-c:a", "libvorbis"]),
            ("a.opus", &["-c:a", "libopus", "-b:a", "24k"]),
            ("a.webm", &["-c:a", "libopus", "-b:a", "24k"]),
            ("a.m4a", &["-ar", "44100", "-c:a", "aac", "-b:a", "48k"]),
            ("b.mp4", &["-c:a", "libopus", "-b:a", "24k"]),
        ];
        formats
            .iter()
            .map(|(name, args)| {
                let all: Vec<&str> = cut.iter().chain(args.iter()).copied().collect();
                (name.to_string(), ffmpeg_encode(&jfk_path(), &all, &scratch.path(name)))
            })
            .collect()
    })
}

/// Decodes `bytes`, failing the test if a decoder panicked.
fn decode_without_panic(bytes: &[u8], what: &str) {
    if let Err(AudioError::Invalid(m)) = decode(bytes, None, None, 16_000) {
        assert!(!m.contains("decoder failed"), "{what}: a decoder panicked: {m}");
    }
}

#[test]
fn the_small_files_decode() {
    for (name, bytes) in small_files() {
        let decoded = decode(bytes, Some(name), None, 16_000).unwrap_or_else(|e| panic!("{name}: {e}"));
        let seconds = decoded.seconds();
        assert!(
            (0.45..0.56).contains(&seconds),
            "{name}: {seconds} s ({})",
            decoded.codec
        );
    }
}

/// 800 KB of ID3v2 tag headers, each announcing an empty tag, so that each is followed by
/// another: the upload that once overflowed the stack of the thread that sniffed it, aborting
/// the host. It is refused as "not audio", on a thread with a small stack.
#[test]
fn nested_id3_tags_are_refused_not_a_stack_overflow() {
    let bytes = b"ID3\x04\0\0\0\0\0\0".repeat(80_000);
    let result = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || decode(&bytes, Some("a.mp3"), None, 16_000))
        .expect("a thread")
        .join()
        .expect("decode returned");
    match result {
        Err(AudioError::Unsupported(m)) => assert!(m.contains("ID3 tags"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A few tags before damaged MPEG frames still reach the MP3 decoder, which fails cleanly.
    let few = [
        &b"ID3\x04\0\0\0\0\0\0".repeat(3)[..],
        &[0xFF, 0xFB, 0x90, 0x64],
        &[0u8; 4096],
    ]
    .concat();
    decode_without_panic(&few, "three tags and zeroed frames");
}

const MAGIC: [&[u8]; 9] = [
    b"RIFF\x24\x08\0\0WAVEfmt ",
    b"fLaC",
    b"OggS\0\x02",
    b"\x1A\x45\xDF\xA3",
    b"\0\0\0\x18ftypM4A ",
    b"ID3\x04\0\0\0\0\0\0",
    b"\xFF\xFB\x90\x64",
    b"\xFF\xF1\x50\x80",
    b"",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(magic in 0..MAGIC.len(), tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let bytes = [MAGIC[magic], &tail].concat();
        decode_without_panic(&bytes, &format!("{:02X?}", &bytes[..bytes.len().min(24)]));
    }

    #[test]
    fn damaged_files_never_panic(
        file in 0..8usize,
        changes in proptest::collection::vec((0.0..1.0f64, any::<u8>()), 1..12),
        cut in 0.2..1.0f64,
    ) {
        let (name, original) = &small_files()[file];
        let mut bytes = original.clone();
        // Headers matter most: half of the changes fall in the first 256 bytes.
        for (i, (at, value)) in changes.iter().enumerate() {
            let span = if i % 2 == 0 { bytes.len().min(256) } else { bytes.len() };
            let at = ((at * span as f64) as usize).min(bytes.len() - 1);
            bytes[at] = *value;
        }
        if cut < 0.6 {
            bytes.truncate((bytes.len() as f64 * cut / 0.6) as usize);
        }
        decode_without_panic(&bytes, &format!("{name} with {changes:?}, cut {cut:.2}"));
    }
}
