//! `hearth plugin new`: writes an out-of-tree plugin crate from the
//! templates in `host/templates/plugin/` (embedded in the binary).

use std::path::{Path, PathBuf};

use crate::error::{HostError, Result};

/// The kind of engine a new plugin makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Text to speech.
    Tts,
    /// Speech to text.
    Stt,
    /// Chat.
    Chat,
    /// Voice activity detection.
    Vad,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tts => "tts",
            Self::Stt => "stt",
            Self::Chat => "chat",
            Self::Vad => "vad",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Self::Tts => include_str!("../templates/plugin/tts.rs"),
            Self::Stt => include_str!("../templates/plugin/stt.rs"),
            Self::Chat => include_str!("../templates/plugin/chat.rs"),
            Self::Vad => include_str!("../templates/plugin/vad.rs"),
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Tts => "A text-to-speech engine for Hearth",
            Self::Stt => "A speech-to-text engine for Hearth",
            Self::Chat => "A chat engine for Hearth",
            Self::Vad => "A voice activity detector for Hearth",
        }
    }
}

/// The `plugin-api` crate this binary was built from, if it is still there.
fn built_from_api() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api");
    dir.join("Cargo.toml")
        .is_file()
        .then(|| dir.canonicalize().ok())
        .flatten()
}

/// Checks a plugin name: lower-case letters, digits and dashes, starting
/// with a letter (it becomes a crate and a library name).
fn check_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(HostError::Other(format!(
            "`{name}` is not a plugin name: use lower-case letters, digits and dashes, starting with a letter (e.g. `my-voice`)"
        )))
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| HostError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the crate; returns the exit code.
pub fn new_plugin(name: &str, kind: Kind, dir: Option<&Path>, api_path: Option<&Path>) -> Result<i32> {
    let name = name.strip_prefix("hearth-").unwrap_or(name);
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(HostError::Other(format!(
            "{} already exists and is not empty; choose another --dir",
            dir.display()
        )));
    }
    let api = match api_path {
        Some(path) => Some(std::path::absolute(path).map_err(|source| HostError::Io {
            path: path.to_path_buf(),
            source,
        })?),
        None => built_from_api(),
    };
    if let Some(api) = &api {
        if !api.join("Cargo.toml").is_file() {
            return Err(HostError::Other(format!(
                "{} is not the plugin-api crate (no Cargo.toml); pass Hearth's plugin-api directory with --api-path",
                api.display()
            )));
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    let (api_dep, api_dep_testkit) = match &api {
        Some(api) => {
            let path = toml_string(&api.display().to_string());
            (
                format!("hearth-plugin-api = {{ path = {path} }}"),
                format!("hearth-plugin-api = {{ path = {path}, features = [\"testkit\"] }}"),
            )
        }
        None => (
            format!("hearth-plugin-api = \"{version}\""),
            format!("hearth-plugin-api = {{ version = \"{version}\", features = [\"testkit\"] }}"),
        ),
    };
    let lib = format!("hearth_{}", name.replace('-', "_"));
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{lib}}", &lib)
            .replace("{{kind}}", kind.as_str())
            .replace("{{description}}", kind.description())
            .replace("{{api_dep}}", &api_dep)
            .replace("{{api_dep_testkit}}", &api_dep_testkit)
    };
    for sub in ["src", "tests"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).map_err(|source| HostError::Io { path, source })?;
    }
    write(
        &dir.join("Cargo.toml"),
        &fill(include_str!("../templates/plugin/Cargo.toml.in")),
    )?;
    write(&dir.join("src/lib.rs"), &fill(kind.source()))?;
    write(
        &dir.join("tests/conformance.rs"),
        &fill(include_str!("../templates/plugin/test.rs")),
    )?;
    write(
        &dir.join("README.md"),
        &fill(include_str!("../templates/plugin/README.md")),
    )?;
    write(&dir.join(".gitignore"), "/target\n")?;
    outln!("wrote {} ({} plugin hearth-{name})", dir.display(), kind.as_str());
    outln!("next: cd {} && cargo test && cargo build --release", dir.display());
    outln!("then: hearth plugin test {}/target/release/lib{lib}.so", dir.display());
    Ok(0)
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_crate_friendly() {
        check_name("my-voice2").unwrap();
        for bad in ["", "My", "2x", "a_b", "a-", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
