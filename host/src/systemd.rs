//! systemd's `Type=notify` protocol, through the `sd-notify` crate.
//!
//! When systemd starts Hearth with `NOTIFY_SOCKET` set (see
//! `deploy/systemd/hearth.service`), this module tells it:
//! - `STATUS=` on every readiness transition, as a person would read it
//!   (`LOADING_MODELS 42% — tts: loading (voice), stt: ready, chat: pending`),
//!   shown by `systemctl status`;
//! - `EXTEND_TIMEOUT_USEC=` every few seconds while the first startup
//!   loads, so a slow model never trips `TimeoutStartSec` (each load is
//!   still bounded by `load_timeout`);
//! - `READY=1` when Hearth is READY. A startup that ends in ERROR sends no
//!   `READY=1`: the start times out and the unit fails, so `Restart=`
//!   applies;
//! - `RELOADING=1` (with `MONOTONIC_USEC=`) when a reload of
//!   `plugins.toml` starts and `READY=1` when it is done;
//! - `STOPPING=1` when shutdown begins;
//! - `WATCHDOG=1` every half `WatchdogSec`, from a task of the event loop
//!   that also checks the readiness tracker answers, so a wedged loop stops
//!   the pings and systemd restarts the service.
//!
//! Without `NOTIFY_SOCKET` nothing here runs.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::{
    readiness::{Overall, Phase, Snapshot},
    services::Supervisor,
};

/// How often the startup timeout is extended, and by how much.
const EXTEND_EVERY: Duration = Duration::from_secs(5);
const EXTEND_BY: Duration = Duration::from_secs(20);

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!("systemd notification failed: {e}");
    }
}

/// The `STATUS=` line for a snapshot.
pub fn status_line(snapshot: &Snapshot) -> String {
    let services: Vec<String> = snapshot
        .services
        .iter()
        .map(|(name, record)| {
            let detail = match &record.phase {
                Phase::Loading { message, .. } if !message.is_empty() => format!(" ({message})"),
                Phase::Failed { error } => format!(" ({error})"),
                _ => String::new(),
            };
            format!("{name}: {}{detail}", record.phase.status())
        })
        .collect();
    let mut line = format!(
        "{} {}% — {}",
        snapshot.state.as_str(),
        snapshot.progress,
        services.join(", ")
    );
    // systemd shows one line; keep it short.
    if line.len() > 400 {
        let mut end = 400;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

/// Starts telling systemd, if it is listening. Runs until `shutdown`, then
/// sends `STOPPING=1`.
pub fn spawn(supervisor: Supervisor, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    std::env::var_os("NOTIFY_SOCKET")?;
    let mut watchdog_usec = 0;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec).then(|| Duration::from_micros(watchdog_usec));
    if let Some(every) = watchdog {
        tokio::spawn(ping_watchdog(supervisor.clone(), every / 2, shutdown.clone()));
    }
    Some(tokio::spawn(follow(supervisor, shutdown)))
}

async fn follow(supervisor: Supervisor, shutdown: CancellationToken) {
    let mut readiness = supervisor.subscribe();
    let mut reloads = supervisor.watch_reloads();
    let mut ready_sent = false;
    let mut extend = tokio::time::interval(EXTEND_EVERY);
    let mut snapshot = readiness.current();
    notify(&[NotifyState::Status(&status_line(&snapshot))]);
    loop {
        let loading = !ready_sent && !matches!(snapshot.state, Overall::Ready | Overall::Error);
        tokio::select! {
            next = readiness.changed() => {
                let Some(next) = next else { break };
                snapshot = next;
                let status = status_line(&snapshot);
                if snapshot.is_ready() && !ready_sent && reloads.borrow().is_none() {
                    ready_sent = true;
                    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
                } else {
                    notify(&[NotifyState::Status(&status)]);
                }
            }
            changed = reloads.changed() => {
                if changed.is_err() {
                    break;
                }
                let running = *reloads.borrow_and_update();
                match running {
                    Some(id) => {
                        let status = format!("reload #{id} of plugins.toml running");
                        match NotifyState::monotonic_usec_now() {
                            Ok(now) => notify(&[NotifyState::Reloading, now, NotifyState::Status(&status)]),
                            Err(_) => notify(&[NotifyState::Reloading, NotifyState::Status(&status)]),
                        }
                    }
                    None => {
                        let snapshot = readiness.current();
                        ready_sent |= snapshot.is_ready();
                        notify(&[NotifyState::Ready, NotifyState::Status(&status_line(&snapshot))]);
                    }
                }
            }
            _ = extend.tick(), if loading => {
                let usec = u32::try_from(EXTEND_BY.as_micros()).unwrap_or(u32::MAX);
                notify(&[NotifyState::ExtendTimeoutUsec(usec)]);
            }
            () = shutdown.cancelled() => break,
        }
    }
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Sends `WATCHDOG=1` every `every` while the event loop runs and the
/// readiness tracker answers within the period.
async fn ping_watchdog(supervisor: Supervisor, every: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(50)));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => return,
        }
        // The tracker's lock is what every transition and request takes:
        // if a blocking thread cannot read it in time, something is wedged.
        let probe = supervisor.clone();
        let answered = tokio::time::timeout(every, tokio::task::spawn_blocking(move || probe.subscribe().current()));
        if matches!(answered.await, Ok(Ok(_))) {
            notify(&[NotifyState::Watchdog]);
        } else {
            tracing::warn!("the readiness tracker did not answer within {every:?}; not pinging the systemd watchdog");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_the_state_progress_and_each_service() {
        let (supervisor, rx) =
            Supervisor::new(crate::config::Config::parse(std::path::Path::new("/x/plugins.toml"), "").unwrap());
        drop(supervisor);
        let line = status_line(&rx.current());
        assert!(line.starts_with("INITIALIZING 0% — "), "{line}");
        for name in ["tts", "stt", "chat"] {
            assert!(line.contains(&format!("{name}: ")), "{line}");
        }
    }
}
