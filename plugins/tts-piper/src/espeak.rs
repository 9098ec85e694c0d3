//! Text to IPA phonemes with libespeak-ng, one clause at a time.
//!
//! libespeak-ng keeps all its state in globals (the data path, the current
//! voice, the translator's buffers) and is not thread-safe. Every call into it
//! therefore happens under the one [`ESPEAK`] lock, which also remembers what
//! was initialised and which voice is selected, so engines with different
//! voices can share the library. It is initialised once per process and never
//! terminated: another engine instance (a retry, a swap) may still use it.
//!
//! Only this module declares or calls libespeak-ng's functions. The few
//! declarations are written by hand from `espeak-ng/speak_lib.h` (1.51)
//! rather than taken from a `-sys` crate, which would need bindgen and
//! libclang at build time for four functions.

use std::{
    ffi::{c_void, CStr, CString},
    path::{Path, PathBuf},
    sync::Mutex,
};

mod ffi {
    use std::ffi::{c_char, c_int, c_void};

    /// `AUDIO_OUTPUT_SYNCHRONOUS`: no audio device is opened.
    pub const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
    /// `espeakINITIALIZE_DONT_EXIT`: report a bad data path instead of
    /// calling `exit()`, which would take the whole host down.
    pub const INITIALIZE_DONT_EXIT: c_int = 0x8000;
    /// `espeakCHARS_UTF8`.
    pub const CHARS_UTF8: c_int = 1;
    /// `espeakPHONEMES_IPA`, with no separator between phonemes.
    pub const PHONEMES_IPA: c_int = 0x02;
    /// `EE_OK`.
    pub const EE_OK: c_int = 0;

    #[link(name = "espeak-ng")]
    extern "C" {
        /// Returns the sample rate, or a negative `espeak_ERROR`.
        pub fn espeak_Initialize(output: c_int, buflength: c_int, path: *const c_char, options: c_int) -> c_int;
        /// Returns an `espeak_ERROR`.
        pub fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
        /// Translates the clause at `*textptr` and advances `*textptr` (to
        /// null at the end of the text). The result lives in a static buffer
        /// that the next call overwrites.
        pub fn espeak_TextToPhonemes(textptr: *mut *const c_void, textmode: c_int, phonememode: c_int)
            -> *const c_char;
        /// The version string; stores the data path in `*path_data` when
        /// it is not null.
        pub fn espeak_Info(path_data: *mut *const c_char) -> *const c_char;
    }
}

/// What the lock guards: the library's global state, as far as we set it.
struct State {
    /// Set once initialisation succeeded.
    initialised: Option<Initialised>,
    /// The voice selected last.
    voice: Option<String>,
}

/// What the one successful initialisation used.
struct Initialised {
    /// The data directory the library actually uses, canonicalised when
    /// possible.
    data_dir: PathBuf,
    /// The library's version, e.g. `1.51`.
    version: String,
}

static ESPEAK: Mutex<State> = Mutex::new(State {
    initialised: None,
    voice: None,
});

fn lock() -> std::sync::MutexGuard<'static, State> {
    match ESPEAK.lock() {
        Ok(state) => state,
        Err(poisoned) => {
            // A panic under the lock (a bug of ours, never the library's, which
            // does not unwind) leaves libespeak-ng usable; forget the voice so
            // the next call selects it again.
            ESPEAK.clear_poison();
            let mut state = poisoned.into_inner();
            state.voice = None;
            state
        }
    }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Initialises libespeak-ng (once per process) and checks that `voice`
/// exists. Returns espeak-ng's version.
///
/// `data` is the `espeak-ng-data` directory; `None` uses the library's
/// built-in path (or `ESPEAK_DATA_PATH`), or whatever an earlier engine
/// chose. A later engine asking for another directory is refused: the
/// library has one global data path.
pub fn init(data: Option<&Path>, voice: &str) -> Result<String, String> {
    if let Some(dir) = data {
        if !dir.join("phontab").is_file() {
            return Err(format!(
                "espeak-ng data not found at {} (no phontab file there): install the Debian \
                 package espeak-ng-data (scripts/install-deps.sh) or fix espeak_data",
                dir.display()
            ));
        }
    }
    let mut state = lock();
    let version = match &state.initialised {
        Some(done) => {
            if let Some(dir) = data {
                if canonical(dir) != done.data_dir {
                    return Err(format!(
                        "espeak-ng is already initialised in this process with data from {}; every \
                         voice must use the same espeak_data (restart Hearth to change it)",
                        done.data_dir.display()
                    ));
                }
            }
            done.version.clone()
        }
        None => {
            let done = initialise(data)?;
            let version = done.version.clone();
            state.initialised = Some(done);
            version
        }
    };
    select_voice(&mut state, voice)?;
    Ok(version)
}

/// Calls `espeak_Initialize`. The caller holds the lock.
fn initialise(data: Option<&Path>) -> Result<Initialised, String> {
    let c_path = match data {
        Some(dir) => Some(
            CString::new(dir.as_os_str().as_encoded_bytes())
                .map_err(|_| format!("espeak_data {} contains a NUL byte", dir.display()))?,
        ),
        None => None,
    };
    let path_ptr = c_path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
    // SAFETY: the caller holds the ESPEAK lock, so no other thread is inside
    // libespeak-ng; `path_ptr` is null or a NUL-terminated string that
    // outlives the call (the library copies it).
    let rate = unsafe { ffi::espeak_Initialize(ffi::AUDIO_OUTPUT_SYNCHRONOUS, 0, path_ptr, ffi::INITIALIZE_DONT_EXIT) };
    if rate < 0 {
        let from = data.map_or("its built-in path".to_owned(), |p| p.display().to_string());
        return Err(format!(
            "espeak-ng could not start with data from {from}: install the Debian packages \
             espeak-ng and espeak-ng-data (scripts/install-deps.sh) or set espeak_data"
        ));
    }
    let mut data_dir: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: the lock is held; `data_dir` is a valid place for the library
    // to store a pointer to its (static, NUL-terminated) data path, and the
    // returned version is a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(ffi::espeak_Info(&mut data_dir)) };
    let version = version.to_string_lossy().into_owned();
    let data_dir = if data_dir.is_null() {
        data.map(Path::to_path_buf).unwrap_or_default()
    } else {
        // SAFETY: non-null, it points to the library's static path buffer.
        let dir = unsafe { CStr::from_ptr(data_dir) };
        PathBuf::from(dir.to_string_lossy().into_owned())
    };
    Ok(Initialised {
        data_dir: canonical(&data_dir),
        version,
    })
}

fn select_voice(state: &mut State, voice: &str) -> Result<(), String> {
    if state.voice.as_deref() == Some(voice) {
        return Ok(());
    }
    let name = CString::new(voice).map_err(|_| format!("espeak voice {voice:?} contains a NUL byte"))?;
    // SAFETY: the caller holds the ESPEAK lock; `name` is NUL-terminated and
    // lives across the call.
    let status = unsafe { ffi::espeak_SetVoiceByName(name.as_ptr()) };
    if status != ffi::EE_OK {
        state.voice = None;
        return Err(format!(
            "espeak-ng has no voice {voice:?} (named in the voice's .onnx.json): install the \
             Debian package espeak-ng-data, or use a voice for a language espeak-ng knows"
        ));
    }
    state.voice = Some(voice.to_owned());
    Ok(())
}

/// Translates each clause to IPA with `voice`, under one hold of the lock.
///
/// espeak-ng may split a clause further on its own; the parts are joined
/// with a space. Language-switch marks such as `(fr)` are removed.
pub fn phonemize(voice: &str, clauses: &[&str]) -> Result<Vec<String>, String> {
    let mut state = lock();
    if state.initialised.is_none() {
        return Err("espeak-ng is not initialised".to_owned());
    }
    select_voice(&mut state, voice)?;
    clauses
        .iter()
        .map(|clause| {
            // A NUL would end the C string early; it is not speakable anyway.
            let text = CString::new(clause.replace('\0', " ")).expect("NULs were replaced");
            let mut parts = Vec::new();
            let mut cursor: *const c_void = text.as_ptr().cast();
            while !cursor.is_null() {
                // SAFETY: the lock is held; `cursor` points into `text`,
                // which is NUL-terminated and outlives the loop, and the
                // library only advances it within that buffer or sets it to
                // null at the end.
                let phonemes = unsafe { ffi::espeak_TextToPhonemes(&mut cursor, ffi::CHARS_UTF8, ffi::PHONEMES_IPA) };
                if phonemes.is_null() {
                    break;
                }
                // SAFETY: a non-null result is a NUL-terminated string in the
                // library's static buffer, valid until the next call; we copy
                // it before making one.
                let part = unsafe { CStr::from_ptr(phonemes) }.to_string_lossy();
                let part = strip_language_marks(part.trim());
                if !part.is_empty() {
                    parts.push(part);
                }
            }
            Ok(parts.join(" "))
        })
        .collect()
}

/// Removes espeak-ng's `(lang)` marks around words of another language.
fn strip_language_marks(phonemes: &str) -> String {
    let mut out = String::with_capacity(phonemes.len());
    let mut rest = phonemes;
    while let Some(open) = rest.find('(') {
        match rest[open..].find(')') {
            Some(close) if close > 1 => {
                out.push_str(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            _ => break,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::strip_language_marks;

    #[test]
    fn language_marks_are_removed() {
        assert_eq!(strip_language_marks("(fr)kafe(en) ɪz"), "kafe ɪz");
        assert_eq!(strip_language_marks("no marks"), "no marks");
        assert_eq!(strip_language_marks("broken (mark"), "broken (mark");
    }
}
