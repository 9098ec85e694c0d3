//! The readiness state machine: per-service phases, the overall state, the
//! progress and the timings, published through `tokio::sync::watch`.
//!
//! Only the owner (the service supervisor) holds a [`ReadinessTx`] and
//! changes state, through named transition methods that log `old => new`.
//! Everyone else holds a [`ReadinessRx`] and reads the latest [`Snapshot`]
//! (`current`) or awaits the next one (`changed`): readers never block the
//! writer, and a slow reader only ever skips to the newest state.
//!
//! Every transition rebuilds the snapshot, including the JSON bodies of
//! `/api/ready` and `/api/health`, so serving them costs no locking and no
//! serializing per request.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::ServiceName;

/// The overall state, exactly the seed's five.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Overall {
    /// Nothing has started loading yet.
    Initializing,
    /// At least one service is loading its model.
    LoadingModels,
    /// Models are loaded; at least one is warming up.
    WarmingUp,
    /// Every required service is ready.
    Ready,
    /// A required service failed or is not installed.
    Error,
}

impl Overall {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "INITIALIZING",
            Self::LoadingModels => "LOADING_MODELS",
            Self::WarmingUp => "WARMING_UP",
            Self::Ready => "READY",
            Self::Error => "ERROR",
        }
    }

    /// READY or ERROR: a startup has settled.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Ready | Self::Error)
    }
}

/// Where one service is, with the data of that phase.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Waiting to start.
    Pending,
    /// Loading, with the plugin's sub-progress (0.0–1.0) and message.
    Loading {
        /// Sub-progress reported by the plugin.
        progress: f32,
        /// What the plugin says it is doing.
        message: String,
    },
    /// Running its warmup.
    Warming,
    /// Serving.
    Ready,
    /// Load or warmup failed, timed out or panicked.
    Failed {
        /// Why, in words.
        error: String,
    },
    /// The plugin file is missing or was refused.
    NotInstalled {
        /// Why, in words.
        reason: String,
    },
    /// Disabled or absent in `plugins.toml`.
    Disabled {
        /// Why, in words.
        reason: String,
    },
}

impl Phase {
    /// The `status` name in the API.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Loading { .. } => "loading",
            Self::Warming => "warming",
            Self::Ready => "ready",
            Self::Failed { .. } => "failed",
            Self::NotInstalled { .. } | Self::Disabled { .. } => "not_installed",
        }
    }

    /// How far along this service is, 0.0–1.0.
    fn fraction(&self) -> f32 {
        match self {
            Self::Pending => 0.0,
            Self::Loading { progress, .. } => 0.05 + 0.75 * progress.clamp(0.0, 1.0),
            Self::Warming => 0.85,
            _ => 1.0,
        }
    }

    fn is_down(&self) -> bool {
        matches!(
            self,
            Self::Failed { .. } | Self::NotInstalled { .. } | Self::Disabled { .. }
        )
    }
}

/// The plugin behind a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginLabel {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// When each step of a service happened, in ms since the tracker started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// Load started.
    pub load_start_ms: Option<u64>,
    /// Load finished (or failed).
    pub load_end_ms: Option<u64>,
    /// Warmup started.
    pub warmup_start_ms: Option<u64>,
    /// Warmup finished (or failed).
    pub warmup_end_ms: Option<u64>,
}

/// Everything known about one service.
#[derive(Debug, Clone)]
pub struct ServiceRecord {
    /// Which service.
    pub name: ServiceName,
    /// Whether READY waits for it.
    pub required: bool,
    /// Its phase.
    pub phase: Phase,
    /// The plugin, once opened.
    pub plugin: Option<PluginLabel>,
    /// Engine name and version, once made.
    pub engine: Option<String>,
    /// The model, once loaded.
    pub model: Option<String>,
    /// When it became loaded.
    pub loaded_at: Option<SystemTime>,
    /// How long loading took.
    pub load_time_ms: Option<u64>,
    /// How long the last warmup took.
    pub warmup_time_ms: Option<u64>,
    /// What the last warmup did.
    pub warmed: Option<String>,
    /// A re-warm of this (ready) service is running.
    pub rewarming: bool,
    /// The last health probe's complaint, if any.
    pub health_error: Option<String>,
    /// When each step happened.
    pub timeline: Timeline,
}

impl ServiceRecord {
    fn new(name: ServiceName, required: bool) -> Self {
        Self {
            name,
            required,
            phase: Phase::Pending,
            plugin: None,
            engine: None,
            model: None,
            loaded_at: None,
            load_time_ms: None,
            warmup_time_ms: None,
            warmed: None,
            rewarming: false,
            health_error: None,
            timeline: Timeline::default(),
        }
    }
}

/// One published state of everything.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Increases by one with every transition.
    pub version: u64,
    /// The overall state.
    pub state: Overall,
    /// 0–100; never decreases within one startup.
    pub progress: u8,
    /// Per service.
    pub services: BTreeMap<ServiceName, ServiceRecord>,
    /// From the tracker's start to the first READY.
    pub startup_time_ms: Option<u64>,
    /// Errors in words (failed services, missing plugins).
    pub errors: Vec<String>,
    /// The `/api/ready` body.
    pub ready_json: Bytes,
    /// The `/api/health` body.
    pub health_json: Bytes,
    /// The `/api/ready/stream` event for this snapshot, framed once
    /// (`id:` and `data:` lines) so that fanning it out to thousands of
    /// subscribers costs each one a reference count, not a copy.
    pub sse_event: Bytes,
    /// Whether `/api/health` answers 200.
    pub healthy: bool,
}

impl Snapshot {
    /// Every required service is ready.
    pub fn is_ready(&self) -> bool {
        self.state == Overall::Ready
    }

    /// The record of one service.
    pub fn service(&self, name: ServiceName) -> Option<&ServiceRecord> {
        self.services.get(&name)
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[derive(Serialize)]
struct ServiceJson<'a> {
    ready: bool,
    status: &'static str,
    required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    progress: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    plugin: Option<&'a str>,
    plugin_version: Option<&'a str>,
    engine: Option<&'a str>,
    model: Option<&'a str>,
    loaded_at: Option<String>,
    load_time_ms: Option<u64>,
    warmup_time_ms: Option<u64>,
    warmed: Option<&'a str>,
    rewarming: bool,
    health_error: Option<&'a str>,
    timeline: &'a Timeline,
}

impl<'a> ServiceJson<'a> {
    fn new(r: &'a ServiceRecord) -> Self {
        let (reason, error, message) = match &r.phase {
            Phase::Failed { error } => (None, Some(error.as_str()), None),
            Phase::NotInstalled { reason } | Phase::Disabled { reason } => (Some(reason.as_str()), None, None),
            Phase::Pending => (Some("waiting to load"), None, None),
            Phase::Loading { message, .. } => (Some("loading"), None, Some(message.as_str())),
            Phase::Warming => (Some("warming up"), None, None),
            Phase::Ready => (None, None, None),
        };
        Self {
            ready: r.phase == Phase::Ready,
            status: r.phase.status(),
            required: r.required,
            reason,
            error,
            progress: (r.phase.fraction() * 100.0).round() as u8,
            message: message.filter(|m| !m.is_empty()),
            plugin: r.plugin.as_ref().map(|p| p.name.as_str()),
            plugin_version: r.plugin.as_ref().map(|p| p.version.as_str()),
            engine: r.engine.as_deref(),
            model: r.model.as_deref(),
            loaded_at: r.loaded_at.map(rfc3339),
            load_time_ms: r.load_time_ms,
            warmup_time_ms: r.warmup_time_ms,
            warmed: r.warmed.as_deref(),
            rewarming: r.rewarming,
            health_error: r.health_error.as_deref(),
            timeline: &r.timeline,
        }
    }
}

#[derive(Serialize)]
struct ReadyJson<'a> {
    ready: bool,
    state: Overall,
    progress: u8,
    services: BTreeMap<ServiceName, ServiceJson<'a>>,
    startup_time_ms: Option<u64>,
    errors: &'a [String],
    version: u64,
}

#[derive(Serialize)]
struct HealthServiceJson<'a> {
    available: bool,
    installed: bool,
    enabled: bool,
    required: bool,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct HealthJson<'a> {
    status: &'static str,
    ready: bool,
    ready_state: Overall,
    services: BTreeMap<ServiceName, HealthServiceJson<'a>>,
}

/// The tracker's mutable state: one lock for all of it.
struct Tracker {
    services: BTreeMap<ServiceName, ServiceRecord>,
    started: Instant,
    state: Overall,
    progress_floor: u8,
    startup_time_ms: Option<u64>,
    version: u64,
}

impl Tracker {
    fn overall(&self) -> Overall {
        let required = || self.services.values().filter(|s| s.required);
        if required().any(|s| s.phase.is_down()) {
            Overall::Error
        } else if self
            .services
            .values()
            .all(|s| matches!(s.phase, Phase::Pending | Phase::Disabled { .. }))
        {
            Overall::Initializing
        } else if required().all(|s| s.phase == Phase::Ready) {
            Overall::Ready
        } else if self.services.values().any(|s| matches!(s.phase, Phase::Loading { .. })) {
            Overall::LoadingModels
        } else if self.services.values().any(|s| s.phase == Phase::Warming) {
            Overall::WarmingUp
        } else {
            Overall::LoadingModels
        }
    }

    fn progress(&self) -> u8 {
        let services: Vec<_> = self.services.values().collect();
        if services.is_empty() {
            return 100;
        }
        let sum: f32 = services.iter().map(|s| s.phase.fraction()).sum();
        ((sum / services.len() as f32) * 100.0).floor().min(100.0) as u8
    }

    fn errors(&self) -> Vec<String> {
        self.services
            .values()
            .filter_map(|s| match &s.phase {
                Phase::Failed { error } => Some(format!("{}: {error}", s.name)),
                Phase::NotInstalled { reason } => Some(format!("{}: {reason}", s.name)),
                _ => None,
            })
            .collect()
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn snapshot(&self) -> Snapshot {
        let errors = self.errors();
        let services_json = self.services.iter().map(|(k, r)| (*k, ServiceJson::new(r))).collect();
        let ready_json = serde_json::to_vec(&ReadyJson {
            ready: self.state == Overall::Ready,
            state: self.state,
            progress: self.progress_floor,
            services: services_json,
            startup_time_ms: self.startup_time_ms,
            errors: &errors,
            version: self.version,
        })
        .expect("readiness JSON serializes");
        let healthy = !self
            .services
            .values()
            .any(|s| s.required && matches!(s.phase, Phase::NotInstalled { .. } | Phase::Disabled { .. }));
        let health_services = self
            .services
            .iter()
            .map(|(k, r)| {
                let (installed, enabled, reason) = match &r.phase {
                    Phase::NotInstalled { reason } => (false, true, Some(reason.as_str())),
                    Phase::Disabled { reason } => (false, false, Some(reason.as_str())),
                    Phase::Failed { error } => (true, true, Some(error.as_str())),
                    _ => (true, true, r.health_error.as_deref()),
                };
                let service = HealthServiceJson {
                    available: r.phase == Phase::Ready && r.health_error.is_none(),
                    installed,
                    enabled,
                    required: r.required,
                    status: r.phase.status(),
                    reason,
                };
                (*k, service)
            })
            .collect();
        let health_json = serde_json::to_vec(&HealthJson {
            status: if healthy { "healthy" } else { "unhealthy" },
            ready: self.state == Overall::Ready,
            ready_state: self.state,
            services: health_services,
        })
        .expect("health JSON serializes");
        Snapshot {
            version: self.version,
            state: self.state,
            progress: self.progress_floor,
            services: self.services.clone(),
            startup_time_ms: self.startup_time_ms,
            errors,
            sse_event: Bytes::from(format!(
                "id: {}\ndata: {}\n\n",
                self.version,
                // serde_json's compact output has no newline, so one
                // `data:` line carries the whole body.
                String::from_utf8_lossy(&ready_json)
            )),
            ready_json: Bytes::from(ready_json),
            health_json: Bytes::from(health_json),
            healthy,
        }
    }
}

/// The writing side; held only by the service supervisor.
#[derive(Clone)]
pub struct ReadinessTx {
    shared: Arc<Shared>,
}

struct Shared {
    tracker: Mutex<Tracker>,
    tx: watch::Sender<Arc<Snapshot>>,
}

/// The reading side; cheap to clone, one per reader.
#[derive(Clone)]
pub struct ReadinessRx {
    rx: watch::Receiver<Arc<Snapshot>>,
}

/// Makes a tracker for `services` (name, required), all pending.
pub fn channel(services: impl IntoIterator<Item = (ServiceName, bool)>) -> (ReadinessTx, ReadinessRx) {
    let tracker = Tracker {
        services: services
            .into_iter()
            .map(|(name, required)| (name, ServiceRecord::new(name, required)))
            .collect(),
        started: Instant::now(),
        state: Overall::Initializing,
        progress_floor: 0,
        startup_time_ms: None,
        version: 0,
    };
    let (tx, rx) = watch::channel(Arc::new(tracker.snapshot()));
    let shared = Arc::new(Shared {
        tracker: Mutex::new(tracker),
        tx,
    });
    (ReadinessTx { shared }, ReadinessRx { rx })
}

impl ReadinessTx {
    /// A new reader.
    pub fn subscribe(&self) -> ReadinessRx {
        ReadinessRx {
            rx: self.shared.tx.subscribe(),
        }
    }

    /// Applies `change` to one service, recomputes everything, logs and
    /// publishes. `new_startup` lets the progress start again from the
    /// services' own values (a retry begins a new startup).
    fn transition(&self, name: ServiceName, new_startup: bool, change: impl FnOnce(&mut ServiceRecord, u64)) {
        let mut t = self.shared.tracker.lock().unwrap_or_else(|e| e.into_inner());
        let now = t.elapsed_ms();
        let Some(record) = t.services.get_mut(&name) else {
            tracing::warn!(service = %name, "transition for an untracked service ignored");
            return;
        };
        let old_phase = record.phase.clone();
        change(record, now);
        let new_phase = record.phase.clone();
        if old_phase.status() != new_phase.status() {
            match &new_phase {
                Phase::Failed { error } => {
                    tracing::warn!(service = %name, "{} => {}: {error}", old_phase.status(), new_phase.status())
                }
                Phase::NotInstalled { reason } | Phase::Disabled { reason } => {
                    tracing::warn!(service = %name, "{} => {}: {reason}", old_phase.status(), new_phase.status())
                }
                _ => tracing::info!(service = %name, "{} => {}", old_phase.status(), new_phase.status()),
            }
        }
        if new_startup {
            t.progress_floor = 0;
        }
        let old_state = t.state;
        t.state = t.overall();
        t.progress_floor = if t.state == Overall::Ready {
            100
        } else {
            t.progress_floor.max(t.progress())
        };
        if t.state != old_state {
            let errors = t.errors().join("; ");
            match t.state {
                Overall::Error => tracing::error!("state {} => {}: {errors}", old_state.as_str(), t.state.as_str()),
                _ => tracing::info!("state {} => {}", old_state.as_str(), t.state.as_str()),
            }
        }
        if t.state == Overall::Ready && t.startup_time_ms.is_none() {
            t.startup_time_ms = Some(now);
            tracing::info!("ready after {now} ms");
        }
        t.version += 1;
        let snapshot = Arc::new(t.snapshot());
        // Sent under the lock so that readers see transitions in order.
        self.shared.tx.send_replace(snapshot);
    }

    /// Pending → loading.
    pub fn loading(&self, name: ServiceName, plugin: PluginLabel) {
        self.transition(name, false, |r, now| {
            r.phase = Phase::Loading {
                progress: 0.0,
                message: String::new(),
            };
            r.plugin = Some(plugin);
            r.timeline = Timeline {
                load_start_ms: Some(now),
                ..Timeline::default()
            };
        });
    }

    /// A plugin's sub-progress while loading; ignored in other phases.
    pub fn load_progress(&self, name: ServiceName, progress: f32, message: &str) {
        self.transition(name, false, |r, _| {
            if let Phase::Loading {
                progress: p,
                message: m,
            } = &mut r.phase
            {
                *p = progress.clamp(0.0, 1.0).max(*p);
                if !message.is_empty() {
                    *m = message.to_owned();
                }
            }
        });
    }

    /// Loading → warming (or → ready when `warm` is false).
    pub fn loaded(&self, name: ServiceName, engine: String, model: Option<String>, load_time: Duration, warm: bool) {
        self.transition(name, false, |r, now| {
            r.phase = if warm { Phase::Warming } else { Phase::Ready };
            r.engine = Some(engine);
            r.model = model;
            r.loaded_at = Some(SystemTime::now());
            r.load_time_ms = Some(load_time.as_millis() as u64);
            r.timeline.load_end_ms = Some(now);
            if warm {
                r.timeline.warmup_start_ms = Some(now);
            }
        });
    }

    /// Warming → ready.
    pub fn warmed(&self, name: ServiceName, warmup_time: Duration, warmed: String, model: Option<String>) {
        self.transition(name, false, |r, now| {
            r.phase = Phase::Ready;
            r.warmup_time_ms = Some(warmup_time.as_millis() as u64);
            r.warmed = Some(warmed);
            if model.is_some() {
                r.model = model;
            }
            r.timeline.warmup_end_ms = Some(now);
        });
    }

    /// Any phase → failed.
    pub fn failed(&self, name: ServiceName, error: String) {
        self.transition(name, false, |r, now| {
            match r.phase {
                Phase::Loading { .. } => r.timeline.load_end_ms = Some(now),
                Phase::Warming => r.timeline.warmup_end_ms = Some(now),
                _ => {}
            }
            r.phase = Phase::Failed { error };
            r.rewarming = false;
        });
    }

    /// → not installed (missing or refused plugin).
    pub fn not_installed(&self, name: ServiceName, reason: String) {
        self.transition(name, false, |r, _| r.phase = Phase::NotInstalled { reason });
    }

    /// → disabled (absent or `enabled = false`).
    pub fn disabled(&self, name: ServiceName, reason: String) {
        self.transition(name, false, |r, _| r.phase = Phase::Disabled { reason });
    }

    /// Failed → pending, starting a new startup for the progress.
    pub fn retrying(&self, name: ServiceName) {
        self.transition(name, true, |r, _| {
            r.phase = Phase::Pending;
            r.health_error = None;
        });
    }

    /// A ready service's re-warm started (`true`) or ended (`false`), with
    /// its time when it ended well.
    pub fn rewarm(&self, name: ServiceName, running: bool, result: Option<(Duration, String)>) {
        self.transition(name, false, |r, _| {
            r.rewarming = running;
            if let Some((time, warmed)) = result {
                r.warmup_time_ms = Some(time.as_millis() as u64);
                r.warmed = Some(warmed);
            }
        });
    }

    /// The result of a periodic health probe of a ready service; publishes
    /// only when it changes.
    pub fn health(&self, name: ServiceName, result: Result<(), String>) {
        let error = result.err();
        let current = self.subscribe().current();
        if current.service(name).map(|s| &s.health_error) == Some(&error) {
            return;
        }
        if let Some(e) = &error {
            tracing::warn!(service = %name, "health probe failed: {e}");
        } else {
            tracing::info!(service = %name, "health probe passes again");
        }
        self.transition(name, false, |r, _| r.health_error = error);
    }
}

impl ReadinessRx {
    /// The latest snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.rx.borrow())
    }

    /// Waits for the next snapshot this reader has not seen; `None` when the
    /// tracker is gone.
    pub async fn changed(&mut self) -> Option<Arc<Snapshot>> {
        self.rx.changed().await.ok()?;
        Some(Arc::clone(&self.rx.borrow_and_update()))
    }

    /// Marks the current snapshot as seen, so `changed` waits for a newer one.
    pub fn mark_seen(&mut self) -> Arc<Snapshot> {
        Arc::clone(&self.rx.borrow_and_update())
    }

    /// Waits until `done` holds for a snapshot, returning it.
    pub async fn wait_for(&mut self, mut done: impl FnMut(&Snapshot) -> bool) -> Option<Arc<Snapshot>> {
        let mut snapshot = self.mark_seen();
        while !done(&snapshot) {
            snapshot = self.changed().await?;
        }
        Some(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> PluginLabel {
        PluginLabel {
            name: "p".into(),
            version: "1".into(),
        }
    }

    fn three() -> (ReadinessTx, ReadinessRx) {
        channel([
            (ServiceName::Tts, true),
            (ServiceName::Stt, false),
            (ServiceName::Chat, true),
        ])
    }

    fn bring_up(tx: &ReadinessTx, name: ServiceName) {
        tx.loading(name, label());
        tx.loaded(name, "e".into(), None, Duration::from_millis(5), true);
        tx.warmed(name, Duration::from_millis(1), "w".into(), None);
    }

    #[test]
    fn starts_initializing_then_loads_then_is_ready() {
        let (tx, rx) = three();
        assert_eq!(rx.current().state, Overall::Initializing);
        tx.loading(ServiceName::Tts, label());
        assert_eq!(rx.current().state, Overall::LoadingModels);
        tx.loaded(ServiceName::Tts, "e".into(), None, Duration::ZERO, true);
        tx.loading(ServiceName::Chat, label());
        tx.loaded(ServiceName::Chat, "e".into(), Some("m".into()), Duration::ZERO, true);
        assert_eq!(rx.current().state, Overall::WarmingUp);
        tx.warmed(ServiceName::Tts, Duration::ZERO, "w".into(), None);
        tx.warmed(ServiceName::Chat, Duration::ZERO, "w".into(), None);
        let s = rx.current();
        assert_eq!(s.state, Overall::Ready);
        assert_eq!(s.progress, 100);
        assert!(s.startup_time_ms.is_some());
        assert_eq!(s.service(ServiceName::Chat).unwrap().model.as_deref(), Some("m"));
    }

    #[test]
    fn optional_failure_does_not_block_ready_but_is_listed() {
        let (tx, rx) = three();
        bring_up(&tx, ServiceName::Tts);
        tx.loading(ServiceName::Stt, label());
        tx.failed(ServiceName::Stt, "boom".into());
        bring_up(&tx, ServiceName::Chat);
        let s = rx.current();
        assert_eq!(s.state, Overall::Ready);
        assert_eq!(s.errors, vec!["stt: boom".to_owned()]);
    }

    #[test]
    fn required_failure_is_error_and_retry_recovers() {
        let (tx, rx) = three();
        bring_up(&tx, ServiceName::Tts);
        tx.loading(ServiceName::Chat, label());
        tx.failed(ServiceName::Chat, "down".into());
        assert_eq!(rx.current().state, Overall::Error);
        tx.retrying(ServiceName::Chat);
        assert_ne!(rx.current().state, Overall::Error);
        bring_up(&tx, ServiceName::Chat);
        assert_eq!(rx.current().state, Overall::Ready);
    }

    #[test]
    fn progress_never_goes_backwards_within_a_startup() {
        let (tx, rx) = three();
        tx.loading(ServiceName::Tts, label());
        tx.load_progress(ServiceName::Tts, 0.9, "almost");
        let high = rx.current().progress;
        // A plugin that reports a lower fraction does not move the bar back.
        tx.load_progress(ServiceName::Tts, 0.1, "oops");
        assert!(rx.current().progress >= high);
        let mut last = 0;
        for p in [0.2, 0.5, 1.0] {
            tx.load_progress(ServiceName::Tts, p, "");
            assert!(rx.current().progress >= last);
            last = rx.current().progress;
        }
    }

    #[test]
    fn required_not_installed_is_unhealthy() {
        let (tx, rx) = three();
        tx.not_installed(ServiceName::Tts, "missing".into());
        let s = rx.current();
        assert!(!s.healthy);
        assert_eq!(s.state, Overall::Error);
        let json: serde_json::Value = serde_json::from_slice(&s.health_json).unwrap();
        assert_eq!(json["status"], "unhealthy");
        assert_eq!(json["services"]["tts"]["installed"], false);
    }

    #[test]
    fn ready_json_has_the_seed_fields() {
        let (tx, rx) = three();
        bring_up(&tx, ServiceName::Tts);
        let json: serde_json::Value = serde_json::from_slice(&rx.current().ready_json).unwrap();
        for key in ["ready", "state", "progress", "services", "startup_time_ms", "errors"] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        let tts = &json["services"]["tts"];
        assert_eq!(tts["ready"], true);
        assert_eq!(tts["status"], "ready");
        assert!(tts["loaded_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(tts["warmup_time_ms"], 1);
        assert_eq!(json["services"]["chat"]["status"], "pending");
        assert_eq!(json["startup_time_ms"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn readers_are_woken_by_transitions() {
        let (tx, mut rx) = three();
        let waiter = tokio::spawn(async move { rx.wait_for(|s| s.state == Overall::Ready).await.map(|s| s.state) });
        bring_up(&tx, ServiceName::Tts);
        bring_up(&tx, ServiceName::Chat);
        assert_eq!(waiter.await.unwrap(), Some(Overall::Ready));
    }
}
