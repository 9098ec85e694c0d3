//! Bounded work: this test binary counts every allocation, and checks that decoding needs memory
//! near the size of its result, whatever a file claims: a large upload, a tiny file that expands
//! to hours, and headers claiming absurd sizes.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::{ffmpeg_encode, jfk, run, Scratch};
use hearth_audio::{decode, decode_with_limit, encode, AudioError, Format};

/// The system allocator, keeping the bytes allocated now and their peak.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on unchanged to `System`, which upholds `GlobalAlloc`'s contract;
// the counters only observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's `layout` is valid for `alloc`, as `GlobalAlloc::alloc` requires.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr`, `layout` and `new_size` meet `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            NOW.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

fn grew(size: usize) {
    let now = NOW.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measurement at a time: the counters are global.
static MEASURING: Mutex<()> = Mutex::new(());

/// Runs `f`, returning its result and the most memory it had allocated at once.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let base = NOW.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let result = f();
    (result, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

const MB: usize = 1 << 20;

/// A 25 MB upload (the OpenAI limit): 13 minutes of 16 kHz WAV. Decoding it needs about the
/// result (25 MB) twice over at most, the growth of one vector, plus small buffers.
#[test]
fn a_25_mb_upload_needs_memory_near_its_result() {
    let speech = jfk();
    let long: Vec<i16> = speech.iter().copied().cycle().take(speech.len() * 71).collect();
    let wav = encode(Format::Wav, 16_000, &long).unwrap();
    assert!(wav.len() > 24_900_000, "{} bytes", wav.len());
    let (decoded, peak) = peak_of(|| decode(&wav, None, None, 16_000).unwrap());
    let result = decoded.samples.len() * 2;
    assert_eq!(decoded.samples.len(), long.len());
    eprintln!("25 MB WAV: result {} MB, peak {} MB", result / MB, peak / MB);
    assert!(
        peak < 2 * result + 8 * MB,
        "peak {} MB for a result of {} MB",
        peak / MB,
        result / MB
    );
}

/// Opus, resampled 48 → 16 kHz, packet by packet: three minutes of speech.
#[test]
fn a_long_opus_recording_needs_memory_near_its_result() {
    let scratch = Scratch::new("long-opus");
    let speech = jfk();
    let long: Vec<i16> = speech.iter().copied().cycle().take(speech.len() * 16).collect();
    let wav = scratch.write("long.wav", &encode(Format::Wav, 16_000, &long).unwrap());
    let webm = ffmpeg_encode(&wav, &["-c:a", "libopus", "-b:a", "24k"], &scratch.path("long.webm"));
    let (decoded, peak) = peak_of(|| decode(&webm, None, None, 16_000).unwrap());
    let result = decoded.samples.len() * 2;
    eprintln!(
        "{} s of Opus in WebM: result {} MB, peak {} MB",
        long.len() / 16_000,
        result / MB,
        peak / MB
    );
    assert!(
        peak < 2 * result + 8 * MB,
        "peak {} MB for a result of {} MB",
        peak / MB,
        result / MB
    );
}

/// A small file that expands to hours (FLAC of silence: a few bytes a frame) stops at the limit.
#[test]
fn a_file_longer_than_the_limit_stops_there() {
    let scratch = Scratch::new("silence");
    let path = scratch.path("silence.flac");
    let out = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=16000:cl=mono",
            "-t",
            "1800",
            "-c:a",
            "flac",
        ]
        .into_iter()
        .chain([path.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let flac = std::fs::read(&path).unwrap();
    let (result, peak) = peak_of(|| decode_with_limit(&flac, None, None, 16_000, 60));
    match result {
        Err(AudioError::Invalid(m)) => assert_eq!(m, "the audio is longer than the limit of 1 min"),
        other => panic!("{other:?}"),
    }
    eprintln!(
        "30 min of silence in {} kB of FLAC, limit 60 s: peak {} MB",
        flac.len() / 1000,
        peak / MB
    );
    // 60 s at 16 kHz is 1.9 MB.
    assert!(peak < 8 * MB, "peak {} MB", peak / MB);
}

/// Headers that claim gigabytes: each fails or decodes what is there, in little memory.
#[test]
fn absurd_sizes_in_headers_allocate_nothing_of_the_kind() {
    let scratch = Scratch::new("absurd");
    let speech = jfk();
    let second = &speech[16_000..32_000];
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();

    // WAV: data chunk of 4 GB; fmt chunk of 2 GB; an unknown chunk of 4 GB before the data.
    let wav = encode(Format::Wav, 16_000, second).unwrap();
    let mut huge_data = wav.clone();
    huge_data[40..44].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    cases.push(("wav with a 4 GB data chunk".into(), huge_data));
    let mut huge_fmt = wav.clone();
    huge_fmt[16..20].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    cases.push(("wav with a 2 GB fmt chunk".into(), huge_fmt));
    let junk = [&wav[..36], b"junk", &0xFFFF_FFF0u32.to_le_bytes(), &wav[36..]].concat();
    cases.push(("wav with a 4 GB junk chunk".into(), junk));

    // FLAC: STREAMINFO claiming the largest blocks and frames, and 2^36 samples.
    let mut flac = encode(Format::Flac, 16_000, second).unwrap();
    flac[8..18].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    flac[21] |= 0x0F;
    flac[22..26].copy_from_slice(&[0xFF; 4]);
    cases.push(("flac claiming huge blocks and length".into(), flac));

    // MP4: the sample tables claim 2^28 entries (table sizes of a gigabyte).
    let wav_path = scratch.write("second.wav", &wav);
    let m4a = ffmpeg_encode(&wav_path, &["-c:a", "aac", "-b:a", "48k"], &scratch.path("a.m4a"));
    for table in [&b"stsz"[..], b"stco", b"stts", b"stsc"] {
        let mut bytes = m4a.clone();
        if let Some(at) = bytes.windows(4).position(|w| w == table) {
            // stsz: version/flags, sample size, count; the others: version/flags, count.
            let count_at = at + 4 + if table == b"stsz" { 8 } else { 4 };
            bytes[count_at..count_at + 4].copy_from_slice(&0x1000_0000u32.to_be_bytes());
            cases.push((
                format!("m4a whose {} claims 2^28 entries", String::from_utf8_lossy(table)),
                bytes,
            ));
        }
    }
    // Matroska: the first element inside the Segment claims 2^40 bytes.
    let webm = ffmpeg_encode(&wav_path, &["-c:a", "libopus", "-b:a", "24k"], &scratch.path("a.webm"));
    if let Some(at) = webm.windows(4).position(|w| w == [0x18, 0x53, 0x80, 0x67]) {
        // Segment ID, then its size (8 bytes, 0x01 marker), then the first child's ID (4 bytes)
        // and size: write an 8-byte size of 2^40.
        let child = at + 4 + 8;
        let size_at = child + 4;
        let mut bytes = webm.clone();
        bytes.splice(size_at..size_at + 1, [0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]);
        cases.push(("webm with an element of 2^40 bytes".into(), bytes));
    }
    // Ogg: a page claiming the most segments, each of 255 bytes, that are not there.
    let mut ogg = encode(Format::Opus, 16_000, second).unwrap();
    let page3 = ogg
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"OggS")
        .nth(2)
        .map(|(i, _)| i)
        .unwrap();
    ogg.truncate(page3 + 27);
    ogg.push(255);
    ogg.extend([255u8; 255]);
    cases.push(("ogg page claiming 64 kB it does not have".into(), ogg));

    assert!(cases.len() >= 10, "{} cases", cases.len());
    for (what, bytes) in &cases {
        let (result, peak) = peak_of(|| decode(bytes, None, None, 16_000));
        let outcome = match &result {
            Ok(d) => format!("{:.2} s of audio", d.seconds()),
            Err(e) => e.to_string(),
        };
        eprintln!("{what}: {outcome}; peak {} kB", peak / 1024);
        if let Err(AudioError::Invalid(m)) = &result {
            assert!(!m.contains("decoder failed"), "{what}: a decoder panicked: {m}");
        }
        assert!(peak < 16 * MB, "{what}: peak {} MB", peak / MB);
    }
}
