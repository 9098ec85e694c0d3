//! Keeps whisper.cpp and ggml quiet, and keeps what they had to say.
//!
//! Left alone, whisper.cpp prints dozens of lines to stderr on every load and
//! transcription, interleaved with the host's log. [`install`] replaces its
//! log callback (which also covers ggml's) with one that drops info and debug
//! lines and keeps the last few warnings and errors in memory. `load` and
//! `transcribe` [`take`] them afterwards: errors become part of the message
//! the host shows, warnings go to the host's log through the context.
//!
//! The callback is global to this copy of whisper.cpp, which the plugin links
//! statically (no ggml symbol is exported), so it does not touch other
//! plugins. Two engines of this plugin working at once share the buffer, so
//! a line may land with the other engine; that costs a log line, nothing more.

use std::{
    ffi::{c_char, c_uint, c_void, CStr},
    sync::{Mutex, Once},
};

use whisper_rs::GGMLLogLevel;

/// Lines kept at most; older ones are dropped.
const KEEP: usize = 32;

/// How bad a kept line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `WHISPER_LOG_ERROR` / `GGML_LOG_ERROR`.
    Error,
    /// `WHISPER_LOG_WARN` / `GGML_LOG_WARN`.
    Warn,
}

/// One kept line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its level.
    pub level: Level,
    /// Its text, trimmed.
    pub text: String,
}

static LINES: Mutex<Vec<Line>> = Mutex::new(Vec::new());

/// Routes whisper.cpp's and ggml's logging into this module. Idempotent.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `callback` is an `extern "C"` function that never unwinds
        // (its body runs under `catch_unwind`) and needs no user data, so a
        // null pointer is fine. whisper.cpp stores the pointer in a global
        // and also hands it to ggml; the function lives as long as the
        // library, which is never unloaded.
        unsafe { whisper_rs::set_log_callback(Some(callback), std::ptr::null_mut()) };
    });
}

/// Removes and returns the lines kept so far.
pub fn take() -> Vec<Line> {
    std::mem::take(&mut *LINES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The error lines of `lines`, joined for a message, or `None`.
pub fn errors(lines: &[Line]) -> Option<String> {
    let errors: Vec<&str> = lines
        .iter()
        .filter(|l| l.level == Level::Error)
        .map(|l| l.text.as_str())
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

// `level` is ggml's `enum ggml_log_level`, an unsigned int as bindgen
// declares it here; a mismatch with `whisper_rs::WhisperLogCallback` would
// not compile.
unsafe extern "C" fn callback(level: c_uint, text: *const c_char, _user: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        let level = match GGMLLogLevel::from(level) {
            GGMLLogLevel::Error => Level::Error,
            GGMLLogLevel::Warn => Level::Warn,
            _ => return,
        };
        if text.is_null() {
            return;
        }
        // SAFETY: whisper.cpp and ggml pass a NUL-terminated string that
        // stays valid for the duration of the call; it is copied here.
        let text = unsafe { CStr::from_ptr(text) }.to_string_lossy().trim().to_owned();
        if text.is_empty() {
            return;
        }
        let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == KEEP {
            lines.remove(0);
        }
        lines.push(Line { level, text });
    });
}
