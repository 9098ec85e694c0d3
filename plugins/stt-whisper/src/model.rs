//! Checks a ggml Whisper model file from end to end before whisper.cpp sees it.
//!
//! whisper.cpp trusts its input: a garbage header makes it allocate whatever
//! sizes it reads (an uncaught `std::bad_alloc` aborts the process), a tensor
//! header with more than four dimensions overruns a stack array, an unknown
//! tensor type indexes past a table, and a file cut off after its vocabulary
//! loads "successfully" as an empty model. Any of these would take the whole
//! host down, or serve nonsense. So [`validate`] walks the file's structure
//! (header, mel filters, vocabulary, every tensor header and the size of its
//! data) with bounds on every number, and only a file that passes is handed
//! to whisper.cpp, which then checks tensor names and shapes itself and fails
//! cleanly on a mismatch.
//!
//! The layout is the one whisper.cpp's `convert-pt-to-ggml.py` writes, all
//! little-endian:
//!
//! ```text
//! u32 magic 0x67676d6c ("lmgg" on disk)
//! i32 n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer
//!     n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype
//! i32 n_mel, i32 n_fft, f32 × n_mel·n_fft             (mel filters)
//! i32 count, then count × (u32 len, len bytes)         (vocabulary)
//! per tensor: i32 n_dims, i32 name_len, i32 type, i32 × n_dims, name, data
//! ```
//!
//! The file may change between this check and whisper.cpp's read; that race
//! is accepted (the model directory belongs to the operator, not to clients).

use std::{
    fs::File,
    io::{self, BufReader, Read, Seek},
    path::Path,
};

/// The ggml file magic, as whisper.cpp's `GGML_FILE_MAGIC`.
pub const GGML_MAGIC: u32 = 0x6767_6d6c;

/// What a valid model file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// `tiny`, `base`, `small`, `medium`, `large` (by encoder depth).
    pub size_name: &'static str,
    /// True for multilingual models; English-only (`.en`) models are false.
    pub multilingual: bool,
    /// The weight type, e.g. `f16` or `q5_1`.
    pub weight_type: &'static str,
    /// Number of tensors.
    pub tensors: usize,
    /// File size in bytes.
    pub file_size: u64,
}

/// Why a file is not a usable model. The text says what is wrong; the
/// caller adds the path and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result of the check: `Err(io)` when the file cannot be read at all,
/// `Ok(Err(invalid))` when it can but is not a model.
pub type Checked = io::Result<Result<ModelInfo, Invalid>>;

macro_rules! invalid {
    ($($arg:tt)*) => { return Ok(Err(Invalid(format!($($arg)*)))) };
}

/// Reads little-endian numbers and tracks the offset, turning an early end
/// of file into a "truncated" verdict instead of an I/O error.
struct Cursor<R> {
    inner: R,
    offset: u64,
    len: u64,
}

/// A read stopped by the end of the file (`what` was being read).
struct Truncated {
    what: String,
    offset: u64,
}

impl<R: Read + Seek> Cursor<R> {
    fn bytes<const N: usize>(&mut self, what: &dyn Fn() -> String) -> io::Result<Result<[u8; N], Truncated>> {
        let mut buf = [0u8; N];
        if self.offset + N as u64 > self.len {
            return Ok(Err(Truncated {
                what: what(),
                offset: self.offset,
            }));
        }
        self.inner.read_exact(&mut buf)?;
        self.offset += N as u64;
        Ok(Ok(buf))
    }

    fn four(&mut self, what: &dyn Fn() -> String) -> io::Result<Result<[u8; 4], Truncated>> {
        self.bytes::<4>(what)
    }

    fn i32(&mut self, what: &dyn Fn() -> String) -> io::Result<Result<i32, Truncated>> {
        Ok(self.bytes::<4>(what)?.map(i32::from_le_bytes))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> io::Result<Result<u32, Truncated>> {
        Ok(self.bytes::<4>(what)?.map(u32::from_le_bytes))
    }

    fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> io::Result<Result<(), Truncated>> {
        if self.offset + n > self.len {
            return Ok(Err(Truncated {
                what: what(),
                offset: self.offset,
            }));
        }
        self.inner.seek_relative(n as i64)?;
        self.offset += n;
        Ok(Ok(()))
    }

    fn read_vec(&mut self, n: usize, what: &dyn Fn() -> String) -> io::Result<Result<Vec<u8>, Truncated>> {
        if self.offset + n as u64 > self.len {
            return Ok(Err(Truncated {
                what: what(),
                offset: self.offset,
            }));
        }
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf)?;
        self.offset += n as u64;
        Ok(Ok(buf))
    }
}

/// Unwraps a cursor read, turning a short file into the "truncated" verdict.
macro_rules! read {
    ($cursor:expr, $call:ident($($arg:expr),*), $($what:tt)*) => {
        match $cursor.$call($($arg,)* &|| format!($($what)*))? {
            Ok(value) => value,
            Err(t) => invalid!(
                "the file is truncated: it ends at byte {} while reading {} at byte {} (the download or conversion was interrupted)",
                $cursor.len, t.what, t.offset
            ),
        }
    };
}

/// Bytes per block and elements per block of the ggml tensor types a Whisper
/// model file can hold (from ggml's `block_*` structs).
fn tensor_type(ttype: i32) -> Option<(&'static str, u64, u64)> {
    Some(match ttype {
        0 => ("f32", 4, 1),
        1 => ("f16", 2, 1),
        2 => ("q4_0", 18, 32),
        3 => ("q4_1", 20, 32),
        6 => ("q5_0", 22, 32),
        7 => ("q5_1", 24, 32),
        8 => ("q8_0", 34, 32),
        10 => ("q2_k", 84, 256),
        11 => ("q3_k", 110, 256),
        12 => ("q4_k", 144, 256),
        13 => ("q5_k", 176, 256),
        14 => ("q6_k", 210, 256),
        _ => return None,
    })
}

/// The weight type named by the header's `ftype` (ggml's `GGML_FTYPE_*`,
/// after whisper.cpp strips the quantization version).
fn file_type(ftype: i32) -> Option<&'static str> {
    Some(match ftype {
        0 => "f32",
        1 => "f16",
        2 => "q4_0",
        3 | 4 => "q4_1",
        7 => "q8_0",
        8 => "q5_0",
        9 => "q5_1",
        10 => "q2_k",
        11 => "q3_k",
        12 => "q4_k",
        13 => "q5_k",
        14 => "q6_k",
        _ => return None,
    })
}

/// The number of tensors whisper.cpp creates for a model of this depth
/// (`whisper_model_load`): 7 + 15 per encoder layer, 4 + 24 per decoder layer.
pub fn expected_tensors(n_audio_layer: i32, n_text_layer: i32) -> usize {
    11 + 15 * n_audio_layer as usize + 24 * n_text_layer as usize
}

/// Checks `path`; see the module doc.
pub fn validate(path: &Path) -> Checked {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut c = Cursor {
        inner: BufReader::with_capacity(64 * 1024, file),
        offset: 0,
        len,
    };
    if len == 0 {
        invalid!("the file is empty (0 bytes)");
    }
    if len < 4 {
        invalid!("the file is truncated: only {len} bytes");
    }
    let head = read!(c, four(), "the magic number");
    let magic = u32::from_le_bytes(head);
    if magic != GGML_MAGIC {
        let what = match &head {
            b"GGUF" => "a GGUF file (whisper.cpp reads the older ggml format, ggml-*.bin)".to_owned(),
            [b'P', b'K', 3, 4] => "a zip archive (a PyTorch checkpoint? convert it to ggml first)".to_owned(),
            _ if head.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) => {
                format!("a text file (it starts with {:?})", String::from_utf8_lossy(&head))
            }
            _ => format!(
                "it starts with bytes {:02x} {:02x} {:02x} {:02x}",
                head[0], head[1], head[2], head[3]
            ),
        };
        invalid!("not a ggml Whisper model: no ggml magic 0x{GGML_MAGIC:08x} at the start; {what}");
    }

    let names = [
        "n_vocab",
        "n_audio_ctx",
        "n_audio_state",
        "n_audio_head",
        "n_audio_layer",
        "n_text_ctx",
        "n_text_state",
        "n_text_head",
        "n_text_layer",
        "n_mels",
        "ftype",
    ];
    let mut h = [0i32; 11];
    for (value, name) in h.iter_mut().zip(names) {
        *value = read!(c, i32(), "the header field {name}");
    }
    let [n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype] =
        h;
    // Every Whisper model (tiny to large-v3, distil and fine-tunes) has these
    // context sizes and vocabularies; anything else is another ggml model or
    // a corrupt header, and whisper.cpp would size its buffers from it.
    if n_audio_ctx != 1500 || n_text_ctx != 448 {
        invalid!(
            "not a Whisper model: n_audio_ctx = {n_audio_ctx}, n_text_ctx = {n_text_ctx} (Whisper has 1500 and 448)"
        );
    }
    if !(51864..=51866).contains(&n_vocab) {
        invalid!("not a Whisper model: n_vocab = {n_vocab} (Whisper has 51864 to 51866)");
    }
    if n_mels != 80 && n_mels != 128 {
        invalid!("not a Whisper model: n_mels = {n_mels} (Whisper has 80 or 128)");
    }
    for (layers, state, heads, side) in [
        (n_audio_layer, n_audio_state, n_audio_head, "audio"),
        (n_text_layer, n_text_state, n_text_head, "text"),
    ] {
        if !(1..=64).contains(&layers)
            || !(1..=8192).contains(&state)
            || !(1..=64).contains(&heads)
            || state % heads != 0
        {
            invalid!(
                "not a Whisper model: implausible {side} dimensions (layers {layers}, state {state}, heads {heads})"
            );
        }
    }
    if n_audio_state != n_text_state {
        invalid!("not a Whisper model: n_audio_state {n_audio_state} differs from n_text_state {n_text_state}");
    }
    let Some(weight_type) = file_type(ftype % 1000) else {
        invalid!("unsupported weight type: ftype = {ftype}");
    };

    let n_mel = read!(c, i32(), "the mel filter size");
    let n_fft = read!(c, i32(), "the mel filter size");
    if n_mel != n_mels || !(1..=4096).contains(&n_fft) {
        invalid!("corrupt mel filters: {n_mel} × {n_fft} (expected {n_mels} × 201)");
    }
    read!(c, skip(4 * n_mel as u64 * n_fft as u64), "the mel filters");

    let n_words = read!(c, i32(), "the vocabulary size");
    if !(0..=n_vocab).contains(&n_words) {
        invalid!("corrupt vocabulary: {n_words} entries (the header says {n_vocab})");
    }
    for i in 0..n_words {
        let word_len = read!(c, u32(), "the length of vocabulary entry {i}");
        if word_len > 1024 {
            invalid!("corrupt vocabulary: entry {i} claims {word_len} bytes");
        }
        read!(c, skip(u64::from(word_len)), "vocabulary entry {i}");
    }

    let expected = expected_tensors(n_audio_layer, n_text_layer);
    let mut tensors = 0usize;
    let mut seen = std::collections::HashSet::new();
    while c.offset < c.len {
        let n_dims = read!(c, i32(), "the header of tensor {tensors}");
        let name_len = read!(c, i32(), "the header of tensor {tensors}");
        let ttype = read!(c, i32(), "the header of tensor {tensors}");
        if !(1..=4).contains(&n_dims) || !(1..=255).contains(&name_len) {
            invalid!(
                "corrupt tensor header #{tensors} at byte {}: {n_dims} dimensions, name of {name_len} bytes",
                c.offset - 12
            );
        }
        let mut elements: u64 = 1;
        let mut first_dim = 0;
        for d in 0..n_dims {
            let dim = read!(c, i32(), "the shape of tensor {tensors}");
            if !(1..=1 << 24).contains(&dim) {
                invalid!("corrupt tensor header #{tensors}: dimension {d} is {dim}");
            }
            if d == 0 {
                first_dim = dim;
            }
            elements *= dim as u64;
        }
        // whisper.cpp counts elements in an i32.
        if elements > i32::MAX as u64 {
            invalid!("corrupt tensor header #{tensors}: {elements} elements");
        }
        let name = read!(c, read_vec(name_len as usize), "the name of tensor {tensors}");
        let name = String::from_utf8_lossy(&name).into_owned();
        let Some((type_name, block_bytes, block_elems)) = tensor_type(ttype) else {
            invalid!("tensor '{name}' has unsupported type {ttype}");
        };
        if !(first_dim as u64).is_multiple_of(block_elems) {
            invalid!(
                "tensor '{name}' ({type_name}) has a row of {first_dim} elements, not a multiple of {block_elems}"
            );
        }
        let data = elements / block_elems * block_bytes;
        read!(c, skip(data), "the data of tensor '{name}' ({data} bytes)");
        if !seen.insert(name.clone()) {
            invalid!("tensor '{name}' appears twice");
        }
        tensors += 1;
        if tensors > expected {
            invalid!("{tensors} tensors or more, but a Whisper model of this size has {expected}");
        }
    }
    if tensors != expected {
        invalid!(
            "the file is truncated: it holds {tensors} of the {expected} tensors a Whisper model of this size has (the download or conversion was interrupted)"
        );
    }
    let size_name = match n_audio_layer {
        4 => "tiny",
        6 => "base",
        12 => "small",
        24 => "medium",
        32 => "large",
        _ => "custom",
    };
    Ok(Ok(ModelInfo {
        size_name,
        multilingual: n_vocab >= 51865,
        weight_type,
        tensors,
        file_size: len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_counts_match_whisper_cpp() {
        // tiny: 4 + 4 layers; large: 32 + 32.
        assert_eq!(expected_tensors(4, 4), 167);
        assert_eq!(expected_tensors(32, 32), 11 + 15 * 32 + 24 * 32);
    }

    fn write(bytes: &[u8]) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with(bytes)
    }

    #[test]
    fn empty_text_and_gguf_files_are_refused() {
        let empty = write(b"");
        assert!(validate(empty.path()).unwrap().unwrap_err().0.contains("empty"));
        let text = write(b"<!DOCTYPE html><html>Not Found</html>");
        let why = validate(text.path()).unwrap().unwrap_err().0;
        assert!(
            why.contains("not a ggml Whisper model") && why.contains("text file"),
            "{why}"
        );
        let gguf = write(b"GGUF\x03\x00\x00\x00");
        assert!(validate(gguf.path()).unwrap().unwrap_err().0.contains("GGUF"));
    }

    #[test]
    fn a_header_with_absurd_sizes_is_refused_before_allocation() {
        let mut bytes = GGML_MAGIC.to_le_bytes().to_vec();
        for v in [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1, 80, 201] {
            bytes.extend_from_slice(&i32::to_le_bytes(v));
        }
        bytes.extend(std::iter::repeat_n(0u8, 4 * 80 * 201));
        bytes.extend_from_slice(&i32::to_le_bytes(1));
        bytes.extend_from_slice(&u32::to_le_bytes(u32::MAX));
        let file = write(&bytes);
        let why = validate(file.path()).unwrap().unwrap_err().0;
        assert!(why.contains("vocabulary"), "{why}");
    }

    /// A named temporary file, removed on drop (no extra dependency for one
    /// helper).
    mod tempfile_path {
        use std::path::{Path, PathBuf};

        pub struct TempPath(PathBuf);

        impl TempPath {
            pub fn with(bytes: &[u8]) -> Self {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let path = std::env::temp_dir().join(format!(
                    "hearth-stt-whisper-unit-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&path, bytes).unwrap();
                Self(path)
            }

            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }
}
