//! The readiness state machine: per-service phases, the overall state, the
//! progress and the timings, published through `tokio::sync::watch`.
//!
//! Only the owner (the service supervisor) holds a [`ReadinessTx`] and
//! changes state, through named transition methods that log `old => new`.
//! Everyone else holds a [`ReadinessRx`] and reads the latest [`Snapshot`]
//! (`current`) or awaits the next one (`changed`): readers never block the
//! writer, and a slow reader only ever skips to the newest state.
//!
//! Every transition that changes something publishes a new snapshot with a
//! new `version`; the fronts render their wire formats from it (the HTTP
//! layer once per version, however many readers ask). A transition that
//! changes nothing (a repeated health result, progress outside loading, a
//! retry of a service that cannot be retried) publishes nothing: the
//! version stays and no reader wakes.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use serde::Serialize;
use tokio::sync::watch;

use crate::service::ServiceName;

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

/// A service's status in one word: the one vocabulary the readiness JSON,
/// the OpenAPI document, the metrics' `state` label and the logs share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting to load.
    Pending,
    /// Loading its model.
    Loading,
    /// Running its warmup.
    Warming,
    /// Serving.
    Ready,
    /// Load or warmup failed.
    Failed,
    /// The plugin is missing or refused, or the service is disabled.
    NotInstalled,
}

impl Status {
    /// Every status, in the order a service passes them.
    pub const ALL: [Status; 6] = [
        Self::Pending,
        Self::Loading,
        Self::Warming,
        Self::Ready,
        Self::Failed,
        Self::NotInstalled,
    ];

    /// Its name on every front.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Loading => "loading",
            Self::Warming => "warming",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::NotInstalled => "not_installed",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Phase {
    /// This phase's status.
    pub fn status(&self) -> Status {
        match self {
            Self::Pending => Status::Pending,
            Self::Loading { .. } => Status::Loading,
            Self::Warming => Status::Warming,
            Self::Ready => Status::Ready,
            Self::Failed { .. } => Status::Failed,
            Self::NotInstalled { .. } | Self::Disabled { .. } => Status::NotInstalled,
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

    /// This service's progress in the API, 0–100.
    pub fn percent(&self) -> u8 {
        (self.fraction() * 100.0).round() as u8
    }

    /// Failed or not installed: what a retry may start again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Failed { .. } | Self::NotInstalled { .. })
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
#[derive(Debug, Clone, PartialEq)]
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
    /// `process` or `in-process`, once configured.
    pub isolation: Option<&'static str>,
    /// The pid of the worker running the engine (process mode).
    pub worker_pid: Option<u32>,
    /// Workers started for this service so far (process mode).
    pub workers_started: u32,
    /// Calls that outlived their timeout and still run on a host thread
    /// (in-process mode).
    pub abandoned_calls: u32,
    /// The engine being made beside the active one (a swap or restart).
    pub next: Option<Next>,
    /// How many engines have served this service; grows with each swap.
    pub generation: u64,
    /// Why the last reload or restart of this service kept the old engine.
    pub reload_error: Option<String>,
}

/// What a finished swap reports.
#[derive(Debug, Clone)]
pub struct Swapped {
    /// The new engine's plugin.
    pub plugin: PluginLabel,
    /// Its engine name and version.
    pub engine: String,
    /// Its model.
    pub model: Option<String>,
    /// How long its load took.
    pub load_time: Duration,
    /// How long its warmup took, if it was warmed.
    pub warmup_time: Option<Duration>,
    /// What its warmup did.
    pub warmed: Option<String>,
}

/// An engine loading and warming beside the active one.
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    /// The plugin it comes from.
    pub plugin: String,
    /// [`Status::Loading`] or [`Status::Warming`].
    pub status: Status,
    /// 0.0–1.0 of its load.
    pub progress: f32,
}

impl ServiceRecord {
    /// A service that has not started: pending, nothing known yet.
    pub fn new(name: ServiceName, required: bool) -> Self {
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
            isolation: None,
            worker_pid: None,
            workers_started: 0,
            abandoned_calls: 0,
            next: None,
            generation: 0,
            reload_error: None,
        }
    }
}

/// One published state of everything.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Increases by one with every transition that changes something.
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
    /// Whether `/api/health` answers 200.
    pub healthy: bool,
}

/// Why a service cannot serve now: one answer for every front, which
/// words it for its clients (a 503 or 404 on `/v1`, an `error` event on the
/// conversation, a `description` in Wyoming's `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady<'a> {
    /// No section configures it.
    NotConfigured,
    /// Pending, loading or warming: it will be ready by itself; ask again.
    Starting {
        /// Where it is.
        status: Status,
        /// Its progress, 0–100.
        percent: u8,
    },
    /// Its load or warmup failed: it waits for a retry.
    Failed {
        /// Why.
        error: &'a str,
    },
    /// Its plugin is missing or refused, or it is disabled.
    NotInstalled {
        /// Why.
        reason: &'a str,
    },
}

impl Snapshot {
    /// Why `service` cannot serve now, or `None` when it is ready.
    pub fn why_not_ready(&self, service: ServiceName) -> Option<NotReady<'_>> {
        let Some(record) = self.service(service) else {
            return Some(NotReady::NotConfigured);
        };
        Some(match &record.phase {
            Phase::Ready => return None,
            Phase::Failed { error } => NotReady::Failed { error },
            Phase::NotInstalled { reason } | Phase::Disabled { reason } => NotReady::NotInstalled { reason },
            phase => NotReady::Starting {
                status: phase.status(),
                percent: phase.percent(),
            },
        })
    }

    /// Every required service is ready.
    pub fn is_ready(&self) -> bool {
        self.state == Overall::Ready
    }

    /// The record of one service.
    pub fn service(&self, name: ServiceName) -> Option<&ServiceRecord> {
        self.services.get(&name)
    }
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
                _ => s.reload_error.as_ref().map(|e| format!("{}: {e}", s.name)),
            })
            .collect()
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Whether `/api/health` answers 200: no required service is missing
    /// or disabled. (A failed service is installed; it makes the state
    /// ERROR, not the health.)
    fn healthy(&self) -> bool {
        !self
            .services
            .values()
            .any(|s| s.required && matches!(s.phase, Phase::NotInstalled { .. } | Phase::Disabled { .. }))
    }

    fn snapshot(&self) -> Snapshot {
        let errors = self.errors();
        let healthy = self.healthy();
        Snapshot {
            version: self.version,
            state: self.state,
            progress: self.progress_floor,
            services: self.services.clone(),
            startup_time_ms: self.startup_time_ms,
            errors,
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
    ///
    /// A change that leaves the record as it was publishes nothing: no new
    /// version, no wake-up of readers, no SSE event. That is enough to know
    /// nothing changed: the overall state, the errors and the health are
    /// functions of the records, the progress floor only moves when a record
    /// does (or when a startup begins, which a retry that changed nothing
    /// does not), and the startup time is set only when the state changes.
    /// Applies `change` to one service's record and publishes the result;
    /// returns false (publishing nothing) when it changed nothing.
    fn transition(&self, name: ServiceName, new_startup: bool, change: impl FnOnce(&mut ServiceRecord, u64)) -> bool {
        let mut t = self.shared.tracker.lock().unwrap_or_else(|e| e.into_inner());
        let now = t.elapsed_ms();
        let Some(record) = t.services.get_mut(&name) else {
            tracing::warn!(service = %name, "transition for an untracked service ignored");
            return false;
        };
        let old = record.clone();
        change(record, now);
        if *record == old {
            return false;
        }
        let (old_phase, new_phase) = (&old.phase, &record.phase);
        if old_phase.status() != new_phase.status() {
            match new_phase {
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
        let first_ready = t.state == Overall::Ready && t.startup_time_ms.is_none();
        if first_ready {
            t.startup_time_ms = Some(now);
        }
        t.version += 1;
        let snapshot = Arc::new(t.snapshot());
        // Sent under the lock so that readers see transitions in order.
        self.shared.tx.send_replace(snapshot);
        if first_ready {
            // After publishing: whoever reads this line finds READY served.
            tracing::info!("ready after {now} ms");
        }
        true
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

    /// A plugin's sub-progress while loading; ignored in other phases. The
    /// progress never goes back, and an empty message keeps the last one.
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
            } else {
                r.generation += 1;
            }
        });
    }

    /// Warming → ready.
    pub fn warmed(&self, name: ServiceName, warmup_time: Duration, warmed: String, model: Option<String>) {
        self.transition(name, false, |r, now| {
            r.phase = Phase::Ready;
            r.generation += 1;
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

    /// Where the service's engine runs (`process` or `in-process`).
    pub fn isolation(&self, name: ServiceName, mode: &'static str) {
        self.transition(name, false, |r, _| r.isolation = Some(mode));
    }

    /// A worker process started for the service.
    pub fn worker_started(&self, name: ServiceName, pid: u32) {
        self.transition(name, false, |r, _| {
            r.worker_pid = Some(pid);
            r.workers_started += 1;
        });
    }

    /// The service's worker is gone (stopped, crashed or killed).
    pub fn worker_gone(&self, name: ServiceName, pid: u32) {
        self.transition(name, false, |r, _| {
            if r.worker_pid == Some(pid) {
                r.worker_pid = None;
            }
        });
    }

    /// How many calls of the service still run on abandoned host threads.
    pub fn abandoned_calls(&self, name: ServiceName, count: u32) {
        self.transition(name, false, |r, _| r.abandoned_calls = count);
    }

    /// A new engine started loading beside the active one.
    pub fn swap_started(&self, name: ServiceName, plugin: String) {
        self.transition(name, false, |r, _| {
            r.next = Some(Next {
                plugin,
                status: Status::Loading,
                progress: 0.0,
            });
            r.reload_error = None;
        });
    }

    /// Sub-progress of the engine loading beside the active one.
    pub fn swap_progress(&self, name: ServiceName, fraction: f32) {
        self.transition(name, false, |r, _| {
            if let Some(next) = r.next.as_mut().filter(|n| n.status == Status::Loading) {
                if fraction.is_finite() && fraction > next.progress {
                    next.progress = fraction.min(1.0);
                }
            }
        });
    }

    /// The engine beside the active one loaded and is warming up.
    pub fn swap_warming(&self, name: ServiceName) {
        self.transition(name, false, |r, _| {
            if let Some(next) = r.next.as_mut() {
                next.status = Status::Warming;
                next.progress = 1.0;
            }
        });
    }

    /// The new engine replaced the active one, in one step; the service
    /// stays ready throughout.
    pub fn swapped(&self, name: ServiceName, done: Swapped) {
        self.transition(name, false, |r, now| {
            r.next = None;
            r.reload_error = None;
            r.health_error = None;
            r.plugin = Some(done.plugin);
            r.engine = Some(done.engine);
            r.model = done.model;
            r.loaded_at = Some(SystemTime::now());
            r.load_time_ms = Some(done.load_time.as_millis() as u64);
            r.warmup_time_ms = done.warmup_time.map(|t| t.as_millis() as u64);
            r.warmed = done.warmed;
            r.generation += 1;
            r.timeline.load_end_ms = Some(now);
        });
    }

    /// The engine beside the active one failed: the active one keeps
    /// serving, and `error` is reported until the next successful reload.
    pub fn swap_failed(&self, name: ServiceName, error: String) {
        self.transition(name, false, |r, _| {
            r.next = None;
            r.reload_error = Some(error);
        });
    }

    /// Whether READY waits for the service, changed by a reload.
    pub fn required(&self, name: ServiceName, required: bool) {
        self.transition(name, false, |r, _| r.required = required);
    }

    /// A new reload began: earlier reload errors are history.
    pub fn reload_started(&self) {
        for name in ServiceName::ALL {
            self.transition(name, false, |r, _| r.reload_error = None);
        }
    }

    /// Failed or not installed → pending, starting a new startup for the
    /// progress. Ignored in other phases, which cannot be retried; returns
    /// whether it happened, so that of two racing retries only one starts.
    pub fn retrying(&self, name: ServiceName) -> bool {
        self.transition(name, true, |r, _| {
            if r.phase.is_retryable() {
                r.phase = Phase::Pending;
                r.health_error = None;
            }
        })
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
    /// (and logs) only when it differs from the last one.
    pub fn health(&self, name: ServiceName, result: Result<(), String>) {
        let error = result.err();
        self.transition(name, false, |r, _| {
            if r.health_error == error {
                return;
            }
            if let Some(e) = &error {
                tracing::warn!(service = %name, "health probe failed: {e}");
            } else {
                tracing::info!(service = %name, "health probe passes again");
            }
            r.health_error = error;
        });
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

    #[tokio::test]
    async fn readers_are_woken_by_transitions() {
        let (tx, mut rx) = three();
        let waiter = tokio::spawn(async move { rx.wait_for(|s| s.state == Overall::Ready).await.map(|s| s.state) });
        bring_up(&tx, ServiceName::Tts);
        bring_up(&tx, ServiceName::Chat);
        assert_eq!(waiter.await.unwrap(), Some(Overall::Ready));
    }

    /// Applies `change` with a fresh reader watching, and says whether it
    /// published: asserts that a new snapshot means exactly one version more,
    /// and that no new snapshot means the very same one.
    fn publishes(tx: &ReadinessTx, change: impl FnOnce(&ReadinessTx)) -> bool {
        let rx = tx.subscribe();
        let before = rx.current();
        change(tx);
        let after = rx.current();
        let changed = rx.rx.has_changed().expect("the tracker is alive");
        if changed {
            assert_eq!(after.version, before.version + 1);
        } else {
            assert_eq!(after.version, before.version);
            assert!(
                Arc::ptr_eq(&before, &after),
                "a new snapshot was sent without a wake-up"
            );
        }
        changed
    }

    #[test]
    fn load_progress_outside_loading_publishes_nothing() {
        let (tx, rx) = three();
        assert!(!publishes(&tx, |tx| tx.load_progress(ServiceName::Tts, 0.5, "pending")));
        bring_up(&tx, ServiceName::Tts);
        assert!(!publishes(&tx, |tx| tx.load_progress(ServiceName::Tts, 0.5, "ready")));
        tx.loading(ServiceName::Chat, label());
        tx.failed(ServiceName::Chat, "down".into());
        assert!(!publishes(&tx, |tx| tx.load_progress(ServiceName::Chat, 0.5, "failed")));
        assert_eq!(
            rx.current().service(ServiceName::Chat).unwrap().phase.status(),
            Status::Failed
        );
    }

    #[test]
    fn load_progress_that_moves_nothing_publishes_nothing() {
        let (tx, rx) = three();
        tx.loading(ServiceName::Tts, label());
        assert!(publishes(&tx, |tx| tx.load_progress(ServiceName::Tts, 0.5, "half")));
        // The same again; a lower fraction (the bar never goes back); no
        // message (the last one stays); a fraction clamped to where it is.
        assert!(!publishes(&tx, |tx| tx.load_progress(ServiceName::Tts, 0.5, "half")));
        assert!(!publishes(&tx, |tx| tx.load_progress(ServiceName::Tts, 0.2, "")));
        assert!(!publishes(&tx, |tx| tx.load_progress(ServiceName::Tts, 0.5, "")));
        assert!(!publishes(&tx, |tx| tx.load_progress(
            ServiceName::Tts,
            f32::NAN,
            "half"
        )));
        assert!(!publishes(&tx, |tx| tx.load_progress(ServiceName::Tts, -1.0, "half")));
        // A new message alone is news: the API shows it.
        assert!(publishes(&tx, |tx| tx.load_progress(
            ServiceName::Tts,
            0.2,
            "still half"
        )));
        assert!(publishes(&tx, |tx| tx.load_progress(ServiceName::Tts, 1.0, "")));
        assert!(!publishes(&tx, |tx| tx.load_progress(ServiceName::Tts, 7.0, "")));
        let s = rx.current();
        assert_eq!(
            s.service(ServiceName::Tts).unwrap().phase,
            Phase::Loading {
                progress: 1.0,
                message: "still half".into()
            }
        );
    }

    #[test]
    fn a_repeated_health_result_publishes_nothing() {
        let (tx, rx) = three();
        bring_up(&tx, ServiceName::Tts);
        assert!(!publishes(&tx, |tx| tx.health(ServiceName::Tts, Ok(()))));
        assert!(publishes(&tx, |tx| tx.health(ServiceName::Tts, Err("slow".into()))));
        assert!(!publishes(&tx, |tx| tx.health(ServiceName::Tts, Err("slow".into()))));
        assert!(publishes(&tx, |tx| tx.health(ServiceName::Tts, Err("slower".into()))));
        assert!(publishes(&tx, |tx| tx.health(ServiceName::Tts, Ok(()))));
        assert!(!publishes(&tx, |tx| tx.health(ServiceName::Tts, Ok(()))));
        assert_eq!(rx.current().service(ServiceName::Tts).unwrap().health_error, None);
    }

    #[test]
    fn a_retry_of_what_cannot_be_retried_publishes_nothing() {
        let (tx, rx) = three();
        assert!(!publishes(&tx, |tx| assert!(!tx.retrying(ServiceName::Tts))), "pending");
        tx.loading(ServiceName::Tts, label());
        tx.load_progress(ServiceName::Tts, 0.5, "half");
        let progress = rx.current().progress;
        assert!(!publishes(&tx, |tx| assert!(!tx.retrying(ServiceName::Tts))), "loading");
        // Neither the phase nor the progress went back to the start.
        let s = rx.current();
        assert_eq!(s.service(ServiceName::Tts).unwrap().phase.status(), Status::Loading);
        assert_eq!(s.progress, progress);
        tx.loaded(ServiceName::Tts, "e".into(), None, Duration::ZERO, true);
        assert!(!publishes(&tx, |tx| assert!(!tx.retrying(ServiceName::Tts))), "warming");
        tx.warmed(ServiceName::Tts, Duration::ZERO, "w".into(), None);
        assert!(!publishes(&tx, |tx| assert!(!tx.retrying(ServiceName::Tts))), "ready");
        tx.disabled(ServiceName::Stt, "off".into());
        assert!(
            !publishes(&tx, |tx| assert!(!tx.retrying(ServiceName::Stt))),
            "disabled"
        );
    }

    #[test]
    fn a_retry_of_a_failed_or_missing_service_publishes() {
        let (tx, rx) = three();
        tx.loading(ServiceName::Chat, label());
        tx.failed(ServiceName::Chat, "down".into());
        assert!(publishes(&tx, |tx| assert!(tx.retrying(ServiceName::Chat))));
        assert_eq!(rx.current().service(ServiceName::Chat).unwrap().phase, Phase::Pending);
        tx.not_installed(ServiceName::Tts, "missing".into());
        assert!(rx.current().progress > 0);
        assert!(publishes(&tx, |tx| assert!(tx.retrying(ServiceName::Tts))));
        // A new startup: the progress starts again from the services' own.
        assert_eq!(rx.current().progress, 0);
        assert!(
            !publishes(&tx, |tx| assert!(!tx.retrying(ServiceName::Tts))),
            "a second retry"
        );
    }

    #[test]
    fn repeating_a_settled_phase_publishes_nothing() {
        let (tx, _rx) = three();
        tx.loading(ServiceName::Chat, label());
        assert!(publishes(&tx, |tx| tx.failed(ServiceName::Chat, "down".into())));
        assert!(!publishes(&tx, |tx| tx.failed(ServiceName::Chat, "down".into())));
        assert!(publishes(&tx, |tx| tx.failed(ServiceName::Chat, "still down".into())));
        assert!(publishes(&tx, |tx| tx.not_installed(ServiceName::Tts, "missing".into())));
        assert!(!publishes(&tx, |tx| tx.not_installed(ServiceName::Tts, "missing".into())));
        assert!(publishes(&tx, |tx| tx.disabled(ServiceName::Stt, "off".into())));
        assert!(!publishes(&tx, |tx| tx.disabled(ServiceName::Stt, "off".into())));
    }

    #[test]
    fn a_rewarm_that_changes_nothing_publishes_nothing() {
        let (tx, rx) = three();
        bring_up(&tx, ServiceName::Tts);
        assert!(
            !publishes(&tx, |tx| tx.rewarm(ServiceName::Tts, false, None)),
            "not running"
        );
        assert!(publishes(&tx, |tx| tx.rewarm(ServiceName::Tts, true, None)));
        assert!(
            !publishes(&tx, |tx| tx.rewarm(ServiceName::Tts, true, None)),
            "already running"
        );
        // A failed re-warm ends it: news.
        assert!(publishes(&tx, |tx| tx.rewarm(ServiceName::Tts, false, None)));
        tx.rewarm(ServiceName::Tts, true, None);
        let result = || Some((Duration::from_millis(7), "again".to_owned()));
        assert!(publishes(&tx, |tx| tx.rewarm(ServiceName::Tts, false, result())));
        assert!(
            !publishes(&tx, |tx| tx.rewarm(ServiceName::Tts, false, result())),
            "the same result"
        );
        assert_eq!(rx.current().service(ServiceName::Tts).unwrap().warmup_time_ms, Some(7));
    }

    #[test]
    fn a_transition_of_an_untracked_service_publishes_nothing() {
        let (tx, _rx) = channel([(ServiceName::Tts, true)]);
        assert!(!publishes(&tx, |tx| tx.loading(ServiceName::Chat, label())));
        assert!(!publishes(&tx, |tx| tx.failed(ServiceName::Chat, "down".into())));
    }

    #[tokio::test]
    async fn readers_sleep_through_transitions_that_change_nothing() {
        let (tx, mut rx) = three();
        bring_up(&tx, ServiceName::Tts);
        rx.mark_seen();
        let version = rx.current().version;
        let waiter = tokio::spawn(async move { rx.changed().await.map(|s| s.version) });
        tx.health(ServiceName::Tts, Ok(()));
        tx.load_progress(ServiceName::Tts, 1.0, "late");
        tx.retrying(ServiceName::Tts);
        tx.rewarm(ServiceName::Tts, false, None);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        tx.health(ServiceName::Tts, Err("slow".into()));
        assert_eq!(waiter.await.unwrap(), Some(version + 1));
    }
}
