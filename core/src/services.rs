//! The service supervisor: opens each configured plugin, loads and warms
//! its engine with timeouts, all services in parallel, and owns the
//! [`ReadinessTx`] through which every step is published.
//!
//! Each service has one slot holding its active engine behind an `Arc`.
//! Loading happens beside the slot and the finished engine replaces the
//! slot's content in one step, so a retry (and, later, a swap of engines at
//! run time) never leaves callers with a half-loaded engine: anyone holding
//! the old `Arc` finishes with the old engine.
//!
//! Plugin calls that may block for long (`load`, `warmup`) run on their own
//! OS thread, not on tokio's blocking pool: a hung plugin's thread is
//! abandoned when its timeout fires (its late result is dropped), and an
//! abandoned thread must not keep the runtime from shutting down.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use hearth_plugin_api::client::{Calls, Host};

use crate::{
    config::{Config, Isolation, ServiceConfig, ServiceName},
    engine::{ChatHandle, Engine, SttHandle, TtsHandle, VadHandle},
    error::{HostError, Result},
    metrics::Metrics,
    plugin::{Plugin, PluginMeta},
    readiness::{self, Phase, PluginLabel, ReadinessRx, ReadinessTx, Swapped},
    reload::{Action, Plan, Running},
    worker::{Limits, OpenError, Worker},
};

/// Runs and watches the engines; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced whole by a reload.
    config: RwLock<Arc<Config>>,
    libraries: crate::plugin::Libraries,
    /// Held while a reload or restart runs: they are serialized.
    reloading: Arc<tokio::sync::Mutex<()>>,
    /// What the running reload or restart is, for the refusal of another.
    running_reload: std::sync::Mutex<String>,
    /// Reloads so far.
    reloads: std::sync::atomic::AtomicU64,
    tx: ReadinessTx,
    slots: BTreeMap<ServiceName, Slot>,
    warmup_running: AtomicBool,
    /// What `/metrics` reports.
    metrics: Arc<Metrics>,
    /// The id of the reload running now, if one is (for systemd's
    /// `RELOADING=1`).
    reload_running: tokio::sync::watch::Sender<Option<u64>>,
}

struct Slot {
    /// Its section, replaced by a reload.
    config: RwLock<Option<ServiceConfig>>,
    /// The engine that serves requests. Replaced whole, never mutated.
    active: RwLock<Option<Arc<Engine>>>,
    /// A start or retry of this service is running.
    starting: AtomicBool,
    /// Calls that outlived their timeout on a host thread (in-process).
    abandoned: Abandoned,
    /// When the service was last retried or restarted (`retry_cooldown`).
    last_retry: std::sync::Mutex<Option<Instant>>,
}

impl Slot {
    /// Takes a retry or restart of the service if its cooldown has ended
    /// (a loop of retries on a failing plugin would otherwise reload it
    /// hundreds of times a second).
    fn take_retry(&self, name: ServiceName, cooldown: Duration) -> Result<()> {
        let mut last = self.last_retry.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(at) = *last {
            let next = at + cooldown;
            if now < next {
                return Err(HostError::TooSoon {
                    what: format!(
                        "{name} was retried or restarted {} ms ago (retry_cooldown)",
                        (now - at).as_millis()
                    ),
                    retry_after: next - now,
                });
            }
        }
        *last = Some(now);
        Ok(())
    }

    /// Its section, as of the latest reload.
    fn config(&self) -> Option<ServiceConfig> {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How a reload went for one service.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ServiceOutcome {
    /// Nothing to do.
    Unchanged,
    /// The new engine serves.
    Swapped,
    /// The new engine failed; the old one keeps serving.
    KeptOld {
        /// Why.
        error: String,
    },
    /// Started.
    Started,
    /// Did not start.
    Failed {
        /// Why.
        error: String,
    },
    /// Stopped.
    Stopped,
}

/// How a reload went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadOutcome {
    /// Which reload.
    pub reload: u64,
    /// Per service.
    pub services: BTreeMap<ServiceName, ServiceOutcome>,
}

impl ReloadOutcome {
    /// True when every change took effect.
    pub fn ok(&self) -> bool {
        !self
            .services
            .values()
            .any(|o| matches!(o, ServiceOutcome::KeptOld { .. } | ServiceOutcome::Failed { .. }))
    }
}

impl std::fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .services
            .iter()
            .map(|(name, outcome)| match outcome {
                ServiceOutcome::Unchanged => format!("{name} unchanged"),
                ServiceOutcome::Swapped => format!("{name} swapped"),
                ServiceOutcome::KeptOld { error } => format!("{name} kept its old engine ({error})"),
                ServiceOutcome::Started => format!("{name} started"),
                ServiceOutcome::Failed { error } => format!("{name} failed ({error})"),
                ServiceOutcome::Stopped => format!("{name} stopped"),
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// Per-service outcome of a forced re-warm.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RewarmResult {
    /// The service.
    pub service: ServiceName,
    /// Whether it warmed.
    pub ok: bool,
    /// How long it took, when it worked.
    pub warmup_time_ms: Option<u64>,
    /// Why not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct Observer {
    tx: ReadinessTx,
    service: ServiceName,
    cancel: Arc<AtomicBool>,
    loading: bool,
    /// Loading beside an active engine: progress goes to `next`.
    swap: bool,
}

impl Host for Observer {
    fn progress(&self, fraction: f32, message: &str) {
        if self.loading && self.swap {
            self.tx.swap_progress(self.service, fraction);
        } else if self.loading {
            self.tx.load_progress(self.service, fraction, message);
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn log(&self, level: u8, message: &str) {
        crate::plugin_log::log_plugin_line(self.service.as_str(), level, message);
    }
}

/// Runs `f` on a new OS thread and waits at most `timeout` for it. On
/// timeout `cancel` is set (so a cooperative plugin can stop) and the
/// thread is abandoned: whatever it returns later is dropped. `abandoned`
/// counts the service's threads in that state until they end.
async fn on_thread<T: Send + 'static>(
    label: String,
    timeout: Duration,
    cancel: Arc<AtomicBool>,
    abandoned: Option<Abandoned>,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, String> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    // (finished, given up on): whoever comes second settles the count.
    let state = Arc::new(std::sync::Mutex::new((false, false)));
    let on_thread_state = Arc::clone(&state);
    let on_thread_abandoned = abandoned.clone();
    let spawned = std::thread::Builder::new().name(label.clone()).spawn(move || {
        let _ = done_tx.send(f());
        let mut state = on_thread_state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = true;
        if state.1 {
            if let Some(abandoned) = on_thread_abandoned {
                abandoned.change(-1);
            }
        }
    });
    if let Err(e) = spawned {
        return Err(format!("cannot start a thread for {label}: {e}"));
    }
    match tokio::time::timeout(timeout, done_rx).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(format!("{label} ended without an answer (the host thread panicked)")),
        Err(_) => {
            cancel.store(true, Ordering::Relaxed);
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            state.1 = true;
            if !state.0 {
                if let Some(abandoned) = abandoned {
                    abandoned.change(1);
                }
            }
            Err(format!("timed out after {}", humantime::format_duration(timeout)))
        }
    }
}

/// The count of a service's abandoned host threads (in-process mode),
/// published as `abandoned_calls`.
#[derive(Clone)]
struct Abandoned {
    count: Arc<std::sync::atomic::AtomicU32>,
    tx: ReadinessTx,
    service: ServiceName,
}

impl Abandoned {
    fn change(&self, by: i32) {
        let now = if by > 0 {
            self.count.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.count.fetch_sub(1, Ordering::AcqRel) - 1
        };
        self.tx.abandoned_calls(self.service, now);
    }

    fn get(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }
}

/// How long a health probe (and any other quick call) may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a retry or re-warm is refused while a call hangs in the host.
fn abandoned_refusal(name: ServiceName, count: u32) -> String {
    format!(
        "{name}: {count} earlier call(s) still run inside the host process after their timeout; \
         another would pile up threads. Restart Hearth, or run {name} with isolation = \"process\" \
         (hung workers are killed)"
    )
}

/// The readiness steps of making an engine: the loading phases of a
/// (re)start, or the `next` of a swap beside a ready engine.
struct Steps<'a> {
    tx: &'a ReadinessTx,
    name: ServiceName,
    swap: bool,
}

impl Steps<'_> {
    fn loading(&self, meta: &PluginMeta) {
        if self.swap {
            self.tx.swap_started(self.name, meta.name.clone());
        } else {
            self.tx.loading(
                self.name,
                PluginLabel {
                    name: meta.name.clone(),
                    version: meta.version.clone(),
                },
            );
        }
    }

    /// Reports a failure (the service fails, or a swap keeps the old
    /// engine) and returns it.
    fn failed(&self, error: String) -> String {
        if self.swap {
            self.tx.swap_failed(self.name, error.clone());
        } else {
            self.tx.failed(self.name, error.clone());
        }
        error
    }
}

/// What went wrong making an engine: a plugin that is not installed
/// (missing, refused, wrong kind) or one that failed.
enum MakeError {
    NotInstalled(String),
    Failed(String),
}

impl Supervisor {
    /// Sets up the slots and the tracker; nothing is loaded yet.
    pub fn new(config: Config) -> (Self, ReadinessRx) {
        let (tx, rx) = readiness::channel(ServiceName::ALL.into_iter().map(|name| {
            let required = config
                .services
                .get(&name)
                .map_or(name.required_by_default(), |s| s.required);
            (name, required)
        }));
        let slots = ServiceName::ALL
            .into_iter()
            .map(|name| {
                let config = config.services.get(&name).cloned();
                if let Some(service) = &config {
                    tx.isolation(name, service.isolation.as_str());
                }
                let slot = Slot {
                    config: RwLock::new(config),
                    active: RwLock::new(None),
                    starting: AtomicBool::new(false),
                    abandoned: Abandoned {
                        count: Default::default(),
                        tx: tx.clone(),
                        service: name,
                    },
                    last_retry: Default::default(),
                };
                (name, slot)
            })
            .collect();
        let inner = Inner {
            config: RwLock::new(Arc::new(config)),
            libraries: Default::default(),
            reloading: Default::default(),
            running_reload: Default::default(),
            reloads: Default::default(),
            tx,
            slots,
            warmup_running: AtomicBool::new(false),
            metrics: Arc::new(Metrics::new()),
            reload_running: tokio::sync::watch::channel(None).0,
        };
        (Self { inner: Arc::new(inner) }, rx)
    }

    /// The metrics of this server.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The id of the reload running now (`None` between reloads).
    pub fn watch_reloads(&self) -> tokio::sync::watch::Receiver<Option<u64>> {
        self.inner.reload_running.subscribe()
    }

    /// The configuration it runs (the latest reloaded one).
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.inner.config.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A new reader of the readiness state.
    pub fn subscribe(&self) -> ReadinessRx {
        self.inner.tx.subscribe()
    }

    /// Starts every service at once and returns when all have settled
    /// (ready, failed or not installed).
    pub async fn start(&self) {
        let tasks: Vec<_> = ServiceName::ALL
            .into_iter()
            .map(|name| {
                let this = self.clone();
                tokio::spawn(async move { this.bring_up(name, false).await })
            })
            .collect();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!("a service task ended abnormally: {e}");
            }
        }
    }

    /// The engine serving `name`, when it is ready.
    fn engine(&self, name: ServiceName) -> Option<Arc<Engine>> {
        let slot = self.inner.slots.get(&name)?;
        if self.inner.tx.subscribe().current().service(name)?.phase != Phase::Ready {
            return None;
        }
        slot.active.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `name` has a ready engine.
    pub fn is_ready(&self, name: ServiceName) -> bool {
        self.engine(name).is_some()
    }

    /// The TTS engine, when it is ready.
    pub fn tts(&self) -> Option<TtsHandle> {
        self.engine(ServiceName::Tts).and_then(TtsHandle::of)
    }

    /// The STT engine, when it is ready.
    pub fn stt(&self) -> Option<SttHandle> {
        self.engine(ServiceName::Stt).and_then(SttHandle::of)
    }

    /// The chat engine, when it is ready.
    pub fn chat(&self) -> Option<ChatHandle> {
        self.engine(ServiceName::Chat).and_then(ChatHandle::of)
    }

    /// The VAD engine, when it is ready.
    pub fn vad(&self) -> Option<VadHandle> {
        self.engine(ServiceName::Vad).and_then(VadHandle::of)
    }

    /// Starts a failed (or not installed) service again, in the background.
    pub fn retry(&self, name: ServiceName) -> Result<()> {
        let snapshot = self.inner.tx.subscribe().current();
        let Some(record) = snapshot.service(name) else {
            return Err(HostError::UnknownService(name.to_string()));
        };
        let slot = &self.inner.slots[&name];
        if slot.config().is_none() {
            return Err(HostError::Conflict(format!(
                "{name} has no section in plugins.toml; add one and reload (POST /api/reload, `hearth reload` or SIGHUP)"
            )));
        }
        if !matches!(record.phase, Phase::Failed { .. } | Phase::NotInstalled { .. }) {
            return Err(HostError::Conflict(format!(
                "{name} is {}, not failed; only a failed service can be retried",
                record.phase.status()
            )));
        }
        if slot.abandoned.get() > 0 {
            return Err(HostError::Conflict(abandoned_refusal(name, slot.abandoned.get())));
        }
        if slot.starting.load(Ordering::Acquire) {
            return Err(HostError::Conflict(format!("{name} is already starting")));
        }
        slot.take_retry(name, self.config().host.retry_cooldown)
            .inspect_err(|_| {
                self.inner.metrics.refused(crate::metrics::Refusal::Cooldown);
            })?;
        self.inner.metrics.restarted(name, "retry");
        if !self.inner.tx.retrying(name) {
            return Err(HostError::Conflict(format!("{name} is already starting")));
        }
        let this = self.clone();
        tokio::spawn(async move { this.bring_up(name, false).await });
        Ok(())
    }

    /// Takes the reload lock for `what`, or says what holds it.
    fn lock_reload(&self, what: String) -> Result<tokio::sync::OwnedMutexGuard<()>> {
        match Arc::clone(&self.inner.reloading).try_lock_owned() {
            Ok(guard) => {
                *self.inner.running_reload.lock().unwrap_or_else(|e| e.into_inner()) = what;
                Ok(guard)
            }
            Err(_) => {
                let running = self
                    .inner
                    .running_reload
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                Err(HostError::Conflict(format!(
                    "{running} is running; try again when it is done (follow /api/ready/stream)"
                )))
            }
        }
    }

    /// Applies a new, validated configuration: decides a [`Plan`], refuses
    /// while another reload or a start runs, installs the new settings and
    /// starts the plan's work in the background. The handle answers with
    /// each changed service's outcome once all are done.
    pub fn reload(&self, new: Config) -> Result<(Plan, tokio::task::JoinHandle<ReloadOutcome>)> {
        let id = self.inner.reloads.load(Ordering::Acquire) + 1;
        let guard = self.lock_reload(format!("reload #{id}"))?;
        if let Some((name, _)) = self
            .inner
            .slots
            .iter()
            .find(|(_, slot)| slot.starting.load(Ordering::Acquire))
        {
            return Err(HostError::Conflict(format!(
                "{name} is starting; reload when it has settled (follow /api/ready/stream)"
            )));
        }
        self.inner.reloads.store(id, Ordering::Release);
        self.inner.reload_running.send_replace(Some(id));
        let old = self.config();
        let plan = Plan::new(id, &old, &new, |name| {
            if self.is_ready(name) {
                Running::Ready
            } else {
                Running::Down
            }
        });
        tracing::info!("{plan}");
        *self.inner.running_reload.lock().unwrap_or_else(|e| e.into_inner()) = plan.to_string();
        let tx = &self.inner.tx;
        tx.reload_started();
        let mut new = new;
        // What cannot change live stays as it is (the plan says so).
        new.host.listen = old.host.listen;
        for (name, slot) in &self.inner.slots {
            let section = new.services.get(name).cloned();
            if let Some(section) = &section {
                tx.isolation(*name, section.isolation.as_str());
            }
            *slot.config.write().unwrap_or_else(|e| e.into_inner()) = section;
        }
        *self.inner.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        for service in &plan.services {
            if let Some(required) = service.required {
                tx.required(service.service, required);
            }
        }
        let this = self.clone();
        let todo = plan.clone();
        let handle = tokio::spawn(async move {
            let tasks: Vec<_> = todo
                .services
                .iter()
                .map(|service| {
                    let this = this.clone();
                    let (name, action) = (service.service, service.action.clone());
                    tokio::spawn(async move { (name, this.apply(name, action, id).await) })
                })
                .collect();
            let mut outcome = ReloadOutcome {
                reload: id,
                services: BTreeMap::new(),
            };
            for task in tasks {
                if let Ok((name, result)) = task.await {
                    outcome.services.insert(name, result);
                }
            }
            tracing::info!("reload #{id} done: {outcome}");
            this.inner.metrics.reloaded(outcome.ok());
            this.inner.reload_running.send_replace(None);
            drop(guard);
            outcome
        });
        Ok((plan, handle))
    }

    /// One service's part of a reload.
    async fn apply(&self, name: ServiceName, action: Action, id: u64) -> ServiceOutcome {
        match action {
            Action::Unchanged => ServiceOutcome::Unchanged,
            Action::Swap { .. } => match self.bring_up(name, true).await {
                Ok(()) => ServiceOutcome::Swapped,
                Err(error) => ServiceOutcome::KeptOld { error },
            },
            Action::Start => match self.bring_up(name, false).await {
                Ok(()) => ServiceOutcome::Started,
                Err(error) => ServiceOutcome::Failed { error },
            },
            Action::Stop => {
                let slot = &self.inner.slots[&name];
                // In-flight requests hold their own `Arc`: the engine shuts
                // down when the last of them ends.
                let old = slot.active.write().unwrap_or_else(|e| e.into_inner()).take();
                self.inner
                    .tx
                    .disabled(name, format!("disabled in plugins.toml (reload #{id})"));
                drop(old);
                ServiceOutcome::Stopped
            }
        }
    }

    /// Builds a fresh engine for a service beside its running one and swaps
    /// it in (a ready but unhealthy service, or any other reason); a failed
    /// service is retried instead. Serialized with reloads.
    pub fn restart(&self, name: ServiceName) -> Result<()> {
        let snapshot = self.inner.tx.subscribe().current();
        let record = snapshot
            .service(name)
            .ok_or_else(|| HostError::UnknownService(name.to_string()))?;
        if record.phase.is_retryable() {
            return self.retry(name);
        }
        if record.phase != Phase::Ready {
            return Err(HostError::Conflict(format!(
                "{name} is {}; only a ready or failed service can be restarted",
                record.phase.status()
            )));
        }
        let slot = &self.inner.slots[&name];
        if slot.abandoned.get() > 0 {
            return Err(HostError::Conflict(abandoned_refusal(name, slot.abandoned.get())));
        }
        let guard = self.lock_reload(format!("a restart of {name}"))?;
        slot.take_retry(name, self.config().host.retry_cooldown)
            .inspect_err(|_| {
                self.inner.metrics.refused(crate::metrics::Refusal::Cooldown);
            })?;
        self.inner.metrics.restarted(name, "restart");
        let this = self.clone();
        tokio::spawn(async move {
            match this.bring_up(name, true).await {
                Ok(()) => tracing::info!(service = %name, "restarted: a fresh engine serves"),
                Err(e) => tracing::warn!(service = %name, "restart failed, the old engine keeps serving: {e}"),
            }
            drop(guard);
        });
        Ok(())
    }

    /// Makes, loads and warms a new engine for `name` and activates it.
    /// `swap`: beside a ready one, which serves until the new one is ready
    /// (and keeps serving if it fails); else as a (re)start, through the
    /// loading phases. Returns the failure, if any.
    async fn bring_up(&self, name: ServiceName, swap: bool) -> std::result::Result<(), String> {
        let slot = &self.inner.slots[&name];
        if slot.starting.swap(true, Ordering::AcqRel) {
            return Err(format!("{name} is already starting"));
        }
        let result = self.bring_up_inner(name, slot, swap).await;
        slot.starting.store(false, Ordering::Release);
        result
    }

    async fn bring_up_inner(&self, name: ServiceName, slot: &Slot, swap: bool) -> std::result::Result<(), String> {
        let tx = &self.inner.tx;
        let steps = Steps { tx, name, swap };
        let whole = self.config();
        let host = &whole.host;
        let Some(config) = slot.config() else {
            tx.disabled(name, format!("no [{name}] section in plugins.toml"));
            return Ok(());
        };
        if !config.enabled {
            tx.disabled(name, "disabled in plugins.toml (enabled = false)".to_owned());
            return Ok(());
        }
        let (engine, pid) = match self.make_engine(name, &config, &steps).await {
            // A (re)start's worker is the service's from now on; a swap's
            // becomes it when it is swapped in.
            Ok((engine, Some(pid))) if !swap => {
                tx.worker_started(name, pid);
                (engine, None)
            }
            Ok(made) => made,
            Err(MakeError::NotInstalled(reason)) if !swap => {
                tx.not_installed(name, reason.clone());
                return Err(reason);
            }
            Err(MakeError::NotInstalled(reason) | MakeError::Failed(reason)) => return Err(steps.failed(reason)),
        };

        let started = Instant::now();
        let cancel = Arc::new(AtomicBool::new(false));
        let observer = Observer {
            tx: tx.clone(),
            service: name,
            cancel: Arc::clone(&cancel),
            loading: true,
            swap,
        };
        let loading = Arc::clone(&engine);
        let base_dir = whole.base_dir.clone();
        let config_json = config.config_json.clone();
        let load = on_thread(
            format!("load-{name}"),
            self.deadline(&config, host.load_timeout),
            cancel,
            self.abandonable(slot, &config),
            move || loading.load(&config_json, &base_dir, &observer),
        )
        .await;
        match load {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(steps.failed(e)),
            Err(e) => return Err(steps.failed(format!("load {e}"))),
        }
        let load_time = started.elapsed();
        let info = engine.describe().unwrap_or_default();
        let engine_label = format!("{} {}", info.name, info.engine_version).trim().to_owned();
        if swap {
            if host.auto_warmup {
                tx.swap_warming(name);
            }
        } else {
            tx.loaded(
                name,
                engine_label.clone(),
                info.model.clone(),
                load_time,
                host.auto_warmup,
            );
        }

        let warmed = if host.auto_warmup {
            match self.warm(name, &engine).await {
                Ok(warmed) => Some(warmed),
                Err(e) => return Err(steps.failed(e)),
            }
        } else {
            None
        };
        let model = engine.describe().unwrap_or_default().model;
        let plugin = engine.plugin().clone();
        self.activate(slot, engine);
        if let Some(pid) = pid {
            tx.worker_started(name, pid);
        }
        if swap {
            tx.swapped(
                name,
                Swapped {
                    plugin: PluginLabel {
                        name: plugin.name,
                        version: plugin.version,
                    },
                    engine: engine_label,
                    model,
                    load_time,
                    warmup_time: warmed.as_ref().map(|(time, _)| *time),
                    warmed: warmed.map(|(_, what)| what),
                },
            );
        } else if let Some((time, what)) = warmed {
            tx.warmed(name, time, what, model);
        }
        Ok(())
    }

    /// Puts a loaded engine in its slot. The engine it replaces (if any)
    /// is shut down when its last user drops it (see [`crate::engine`]).
    fn activate(&self, slot: &Slot, engine: Arc<Engine>) {
        let old = slot.active.write().unwrap_or_else(|e| e.into_inner()).replace(engine);
        drop(old);
    }

    /// Opens the service's plugin and makes an unloaded engine: in this
    /// process, or in a fresh worker process.
    async fn make_engine(
        &self,
        name: ServiceName,
        config: &ServiceConfig,
        steps: &Steps<'_>,
    ) -> std::result::Result<(Arc<Engine>, Option<u32>), MakeError> {
        let loading = |meta: &PluginMeta| steps.loading(meta);
        match config.isolation {
            Isolation::InProcess => {
                let plugin = self.open(config).await.map_err(MakeError::NotInstalled)?;
                loading(&plugin.meta);
                let observed = self.inner.metrics.engine(name);
                crate::engine::InProcess::engine(&plugin)
                    .map(|e| (Arc::new(e.observed(observed)), None))
                    .map_err(|e| {
                        MakeError::Failed(format!("plugin {} could not make an engine: {e}", plugin.meta.name))
                    })
            }
            Isolation::Process => {
                let service = config.clone();
                let limits = self.limits(config);
                let spawned = tokio::task::spawn_blocking(move || {
                    if !service.plugin_path.exists() {
                        let missing = HostError::PluginMissing {
                            path: service.plugin_path.clone(),
                            hint: String::new(),
                        };
                        return Err(MakeError::NotInstalled(
                            crate::open::with_hint(missing, &service).to_string(),
                        ));
                    }
                    let (worker, meta) =
                        Worker::spawn(&service.plugin_path, service.name.as_str(), limits).map_err(|e| match e {
                            OpenError::Refused(why) => MakeError::NotInstalled(why),
                            OpenError::Died(why) => MakeError::Failed(why),
                        })?;
                    crate::open::check_kind(&service, &meta).map_err(|e| MakeError::NotInstalled(e.to_string()))?;
                    Ok((worker, meta))
                })
                .await
                .map_err(|e| MakeError::Failed(format!("starting the worker failed: {e}")))?;
                let (worker, meta) = spawned?;
                loading(&meta);
                let pid = worker.pid();
                let worker = Arc::new(worker);
                let engine = Arc::new(
                    Engine::new(meta, Arc::clone(&worker) as Arc<dyn Calls>).observed(self.inner.metrics.engine(name)),
                );
                let supervisor = Arc::downgrade(&self.inner);
                let watched = Arc::downgrade(&engine);
                worker.on_death(move |reason| {
                    let Some(inner) = supervisor.upgrade() else { return };
                    Supervisor { inner }.worker_died(name, pid, &watched, reason);
                });
                let making = Arc::clone(&worker);
                tokio::task::spawn_blocking(move || making.new_engine())
                    .await
                    .map_err(|e| MakeError::Failed(format!("making the engine failed: {e}")))?
                    .map_err(|e| MakeError::Failed(format!("plugin could not make an engine: {e}")))?;
                Ok((engine, Some(pid)))
            }
        }
    }

    /// A worker died on its own: if it ran the service's active engine, the
    /// service fails with the reason (an engine still loading fails through
    /// its load call instead).
    fn worker_died(&self, name: ServiceName, pid: u32, engine: &std::sync::Weak<Engine>, reason: String) {
        let tx = &self.inner.tx;
        tx.worker_gone(name, pid);
        self.inner.metrics.worker_crashed(name);
        let Some(slot) = self.inner.slots.get(&name) else {
            return;
        };
        let mut active = slot.active.write().unwrap_or_else(|e| e.into_inner());
        let is_active = matches!((&*active, engine.upgrade()), (Some(a), Some(e)) if Arc::ptr_eq(a, &e));
        if is_active {
            let dead = active.take();
            drop(active);
            tx.failed(name, reason);
            drop(dead);
        }
    }

    /// The worker limits of a service in process mode.
    fn limits(&self, config: &ServiceConfig) -> Limits {
        let whole = self.config();
        let host = &whole.host;
        Limits {
            memory: config.memory_limit,
            load: host.load_timeout,
            warmup: host.warmup_timeout,
            request: config.request_timeout,
            quick: HEALTH_TIMEOUT,
            shutdown: host.shutdown_timeout,
        }
    }

    /// How long the supervisor waits for a call: the limit itself in
    /// process mode the worker enforces it (and kills), so the host waits a
    /// little longer for that answer and never abandons a thread.
    fn deadline(&self, config: &ServiceConfig, limit: Duration) -> Duration {
        match config.isolation {
            Isolation::Process => limit + Duration::from_secs(10),
            Isolation::InProcess => limit,
        }
    }

    /// The abandoned-thread counter, for in-process calls.
    fn abandonable(&self, slot: &Slot, config: &ServiceConfig) -> Option<Abandoned> {
        (config.isolation == Isolation::InProcess).then(|| slot.abandoned.clone())
    }

    async fn open(&self, config: &ServiceConfig) -> std::result::Result<Arc<Plugin>, String> {
        let config = config.clone();
        let this = self.clone();
        tokio::task::spawn_blocking(move || crate::open::in_process(&this.inner.libraries, &config))
            .await
            .map_err(|e| format!("opening the plugin failed: {e}"))?
            .map_err(|e| e.to_string())
    }

    async fn warm(&self, name: ServiceName, engine: &Arc<Engine>) -> std::result::Result<(Duration, String), String> {
        let cancel = Arc::new(AtomicBool::new(false));
        let observer = Observer {
            tx: self.inner.tx.clone(),
            service: name,
            cancel: Arc::clone(&cancel),
            loading: false,
            swap: false,
        };
        let warming = Arc::clone(engine);
        let started = Instant::now();
        let slot = &self.inner.slots[&name];
        let Some(config) = slot.config() else {
            return Err(format!("{name} has no configuration"));
        };
        let timeout = self.deadline(&config, self.config().host.warmup_timeout);
        let abandoned = self.abandonable(slot, &config);
        match on_thread(format!("warmup-{name}"), timeout, cancel, abandoned, move || {
            warming.warmup(&observer)
        })
        .await
        {
            Ok(Ok(report)) => Ok((started.elapsed(), report.warmed)),
            Ok(Err(e)) => Err(format!("warmup failed: {e}")),
            Err(e) => Err(format!("warmup {e}")),
        }
    }

    /// Re-runs warmup of every ready service at once; refused while another
    /// re-warm runs.
    pub async fn rewarm(&self) -> Result<Vec<RewarmResult>> {
        if self.inner.warmup_running.swap(true, Ordering::AcqRel) {
            return Err(HostError::Conflict("a warmup is already running".to_owned()));
        }
        if let Some((name, slot)) = self.inner.slots.iter().find(|(_, slot)| slot.abandoned.get() > 0) {
            self.inner.warmup_running.store(false, Ordering::Release);
            return Err(HostError::Conflict(abandoned_refusal(*name, slot.abandoned.get())));
        }
        let ready: Vec<_> = ServiceName::ALL
            .into_iter()
            .filter_map(|name| self.engine(name).map(|e| (name, e)))
            .collect();
        let tasks: Vec<_> = ready
            .into_iter()
            .map(|(name, engine)| {
                let this = self.clone();
                tokio::spawn(async move {
                    this.inner.tx.rewarm(name, true, None);
                    let result = this.warm(name, &engine).await;
                    match result {
                        Ok((time, warmed)) => {
                            this.inner.tx.rewarm(name, false, Some((time, warmed)));
                            RewarmResult {
                                service: name,
                                ok: true,
                                warmup_time_ms: Some(time.as_millis() as u64),
                                error: None,
                            }
                        }
                        Err(error) => {
                            this.inner.tx.rewarm(name, false, None);
                            RewarmResult {
                                service: name,
                                ok: false,
                                warmup_time_ms: None,
                                error: Some(error),
                            }
                        }
                    }
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            match task.await {
                Ok(r) => results.push(r),
                Err(e) => tracing::error!("a warmup task ended abnormally: {e}"),
            }
        }
        self.inner.warmup_running.store(false, Ordering::Release);
        Ok(results)
    }

    /// Probes the health of every ready service, every `interval`, and
    /// publishes changes. Runs until the supervisor is dropped.
    pub fn spawn_health_probes(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let this = Supervisor { inner };
                for name in ServiceName::ALL {
                    let Some(engine) = this.engine(name) else { continue };
                    let slot = &this.inner.slots[&name];
                    // A probe stuck in the host process is not joined by
                    // another every interval.
                    if slot.abandoned.get() > 0 {
                        continue;
                    }
                    let Some(config) = slot.config() else { continue };
                    let probe = on_thread(
                        format!("health-{name}"),
                        this.deadline(&config, HEALTH_TIMEOUT),
                        Arc::new(AtomicBool::new(false)),
                        this.abandonable(slot, &config),
                        move || engine.health(),
                    )
                    .await;
                    this.inner.tx.health(name, probe.and_then(|r| r));
                }
            }
        })
    }

    /// Calls every engine's `shutdown`, waiting at most `timeout` in all.
    pub async fn shutdown(&self, timeout: Duration) {
        let engines: Vec<_> = self
            .inner
            .slots
            .iter()
            .filter_map(|(name, slot)| {
                let engine = slot.active.write().unwrap_or_else(|e| e.into_inner()).take()?;
                Some((*name, engine))
            })
            .collect();
        let deadline = Instant::now() + timeout;
        for (name, engine) in engines {
            let left = deadline.saturating_duration_since(Instant::now());
            let result = on_thread(
                format!("shutdown-{name}"),
                left.max(Duration::from_millis(1)),
                Arc::new(AtomicBool::new(false)),
                None,
                move || engine.shutdown(),
            )
            .await;
            match result {
                Ok(()) => tracing::info!(service = %name, "engine shut down"),
                Err(e) => tracing::warn!(service = %name, "engine shutdown {e}"),
            }
        }
    }
}
