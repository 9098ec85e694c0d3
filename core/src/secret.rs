//! Secrets from the environment or a file: the admin token and the API key.
//! The server checks requests against them; `hearth reload` sends the admin
//! token. Both read them here, the same way.

use std::{io::Read, path::Path};

use crate::{
    config::HostConfig,
    error::{HostError, Result},
};

/// The largest secret file read, in bytes: a token is a line, and a path
/// that names something else (a device, a log) must not be read whole.
pub const MAX_FILE: u64 = 64 << 10;

/// The admin token: `HEARTH_ADMIN_TOKEN`, else `[host] admin_token_file`.
pub fn admin_token(host: &HostConfig) -> Result<Option<String>> {
    read("HEARTH_ADMIN_TOKEN", host.admin_token_file.as_deref(), "admin token")
}

/// The `/v1` API key: `HEARTH_API_KEY`, else `[host] api_key_file`.
pub fn api_key(host: &HostConfig) -> Result<Option<String>> {
    read("HEARTH_API_KEY", host.api_key_file.as_deref(), "API key")
}

/// Reads a secret file: a regular file (not a FIFO or a device, which could
/// block or never end) of at most [`MAX_FILE`] bytes.
pub fn read_file(path: &Path, what: &str) -> Result<String> {
    let io = |source| HostError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(HostError::Other(format!(
            "{}: the {what} file is not a regular file; point it at a file holding the {what}",
            path.display()
        )));
    }
    if meta.len() > MAX_FILE {
        return Err(HostError::Other(format!(
            "{}: the {what} file has {} bytes, more than a secret needs ({MAX_FILE} at most); point it at a file holding only the {what}",
            path.display(),
            meta.len()
        )));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE).read_to_string(&mut text))
        .map_err(io)?;
    Ok(text)
}

/// The shortest secret accepted (admin token or API key), from either source.
pub const MIN_LEN: usize = 16;

/// Reads a secret (`what`: the admin token, the API key): from the
/// environment variable `var`, else from `file`. Either way it must be at
/// least [`MIN_LEN`] characters.
pub fn read(var: &str, file: Option<&Path>, what: &str) -> Result<Option<String>> {
    if let Ok(token) = std::env::var(var) {
        let token = token.trim().to_owned();
        if !token.is_empty() && token.len() < MIN_LEN {
            return Err(HostError::Other(format!(
                "{var} is shorter than {MIN_LEN} characters; use a long random {what}, e.g. `openssl rand -hex 32`"
            )));
        }
        return Ok((!token.is_empty()).then_some(token));
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let text = read_file(path, what)?;
    let token = text.trim().to_owned();
    if token.len() < MIN_LEN {
        return Err(HostError::Other(format!(
            "the {what} in {} is shorter than {MIN_LEN} characters; write a long random one, e.g. `openssl rand -hex 32 > {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(Some(token))
}
