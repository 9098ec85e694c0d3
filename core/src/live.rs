//! Live reconfiguration from disk: `plugins.toml` read again and applied
//! per service, on SIGHUP, when the file changes (`[host] watch`), or when a
//! front asks (`POST /api/reload`). An invalid file changes nothing.

use std::time::Duration;

use crate::{
    config::Config,
    error::{HostError, Result},
    reload::Plan,
    services::{ReloadOutcome, Supervisor},
};

/// Reads the configuration file again (off the async threads) and starts
/// applying it: the plan at once, and the outcome to await. An invalid file
/// is refused with its `file:line:column` error and changes nothing.
pub async fn reload_from_disk(supervisor: &Supervisor) -> Result<(Plan, tokio::task::JoinHandle<ReloadOutcome>)> {
    let path = supervisor.config().path.clone();
    let new = tokio::task::spawn_blocking(move || Config::load(&path))
        .await
        .map_err(|e| HostError::Other(format!("reading the configuration failed: {e}")))??;
    supervisor.reload(new)
}

/// Reloads from disk and waits for the outcome; the plan and its outcome
/// are logged by the supervisor, a refusal here.
async fn reload_and_log(supervisor: &Supervisor) {
    match reload_from_disk(supervisor).await {
        Ok((_, outcome)) => {
            let _ = outcome.await;
        }
        Err(e) => tracing::warn!("reload refused, nothing changed: {e}"),
    }
}

/// With `[host] watch = true`: reloads when `plugins.toml` changes on disk.
/// Watches the file's directory, not the file, so that editors that save
/// by writing a new file and renaming it over the old one are seen; a burst
/// of events becomes one reload 300 ms after the last of them. Returns the
/// watcher, which stops when dropped.
pub fn watch_config(supervisor: Supervisor) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let path = supervisor.config().path.clone();
    let path = std::path::absolute(&path).unwrap_or(path);
    let (dir, name) = (path.parent()?.to_path_buf(), path.file_name()?.to_owned());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if event.paths.iter().any(|p| p.file_name() == Some(name.as_os_str())) && !event.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })
    .inspect_err(|e| tracing::warn!("cannot watch {}: {e}; reload with SIGHUP instead", path.display()))
    .ok()?;
    if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!("cannot watch {}: {e}; reload with SIGHUP instead", dir.display());
        return None;
    }
    tracing::info!(config = %path.display(), "watching the configuration for changes");
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until the file has been quiet for 300 ms.
            while let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {}
            tracing::info!("the configuration changed on disk, reloading");
            reload_and_log(&supervisor).await;
        }
    });
    Some(watcher)
}

/// Reloads `plugins.toml` on every SIGHUP (like `POST /api/reload`),
/// logging the plan and its outcome; an invalid file changes nothing.
pub async fn reload_on_sighup(supervisor: Supervisor) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /api/reload instead");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received, reloading");
        reload_and_log(&supervisor).await;
    }
}
