//! The readiness views: the `/api/ready` and `/api/health` JSON bodies and
//! the framed `/api/ready/stream` event, rendered from one [`Snapshot`] of
//! the core's readiness tracker.
//!
//! [`ViewCache`] renders them once per snapshot version, however many
//! requests and stream subscribers ask, so serving them costs a lock and a
//! reference count, not a serialization per request or per subscriber. This
//! module decides only how the state looks on the wire; what the state is
//! (overall state, progress, health) is decided in the core's `readiness`
//! module. `docs/http-api.md` documents these bodies field by field: change
//! them only together with it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use bytes::Bytes;
use hearth_core::{
    config::ServiceName,
    readiness::{Overall, Phase, ServiceRecord, Snapshot, Status, Timeline},
};
use serde::Serialize;

/// The views of the newest snapshot seen, rendered once per version.
#[derive(Default)]
pub struct ViewCache(Mutex<Option<Arc<Rendered>>>);

impl ViewCache {
    /// The views of `snapshot`: the cached ones when they are of its version,
    /// else rendered now (under the lock, so that a burst of readers woken by
    /// one transition renders it once) and kept when no newer one is.
    pub fn of(&self, snapshot: &Snapshot) -> Arc<Rendered> {
        let mut cached = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(views) = cached.as_ref().filter(|v| v.version == snapshot.version) {
            return Arc::clone(views);
        }
        let views = Arc::new(Input::of(snapshot).render());
        if cached.as_ref().is_none_or(|v| v.version < views.version) {
            *cached = Some(Arc::clone(&views));
        }
        views
    }
}

/// What the views are rendered from: one state of the tracker, borrowed.
pub(crate) struct Input<'a> {
    /// The snapshot's version (the SSE event's `id`).
    pub version: u64,
    /// The overall state.
    pub state: Overall,
    /// The overall progress, 0–100.
    pub progress: u8,
    /// Every service.
    pub services: &'a BTreeMap<ServiceName, ServiceRecord>,
    /// From the tracker's start to the first READY.
    pub startup_time_ms: Option<u64>,
    /// Errors in words.
    pub errors: &'a [String],
    /// Whether `/api/health` answers 200.
    pub healthy: bool,
}

/// The views of one state, serialized once.
pub struct Rendered {
    /// The snapshot's version.
    pub version: u64,
    /// The `/api/ready` body.
    pub ready_json: Bytes,
    /// The `/api/health` body.
    pub health_json: Bytes,
    /// The `/api/ready/stream` event: `id:` and `data:` lines.
    pub sse_event: Bytes,
}

impl<'a> Input<'a> {
    /// The input of one published snapshot.
    pub(crate) fn of(snapshot: &'a Snapshot) -> Self {
        Self {
            version: snapshot.version,
            state: snapshot.state,
            progress: snapshot.progress,
            services: &snapshot.services,
            startup_time_ms: snapshot.startup_time_ms,
            errors: &snapshot.errors,
            healthy: snapshot.healthy,
        }
    }
}

impl Input<'_> {
    /// Serializes every view.
    pub(crate) fn render(&self) -> Rendered {
        let ready_json = self.ready_json();
        let sse_event = sse_event(self.version, &ready_json);
        Rendered {
            version: self.version,
            ready_json: Bytes::from(ready_json),
            health_json: Bytes::from(self.health_json()),
            sse_event,
        }
    }

    fn ready_json(&self) -> Vec<u8> {
        serde_json::to_vec(&ReadyJson {
            ready: self.state == Overall::Ready,
            state: self.state,
            progress: self.progress,
            services: self.services.iter().map(|(k, r)| (*k, ServiceJson::new(r))).collect(),
            startup_time_ms: self.startup_time_ms,
            errors: self.errors,
            version: self.version,
        })
        .expect("readiness JSON serializes")
    }

    fn health_json(&self) -> Vec<u8> {
        serde_json::to_vec(&HealthJson {
            status: if self.healthy { "healthy" } else { "unhealthy" },
            ready: self.state == Overall::Ready,
            ready_state: self.state,
            services: self
                .services
                .iter()
                .map(|(k, r)| (*k, HealthServiceJson::new(r)))
                .collect(),
        })
        .expect("health JSON serializes")
    }
}

/// Frames the `/api/ready/stream` event of one snapshot.
fn sse_event(version: u64, ready_json: &[u8]) -> Bytes {
    // serde_json's compact output has no newline, so one `data:` line
    // carries the whole body.
    Bytes::from(format!(
        "id: {version}\ndata: {}\n\n",
        String::from_utf8_lossy(ready_json)
    ))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The `/api/ready` body (also each `/api/ready/stream` event's data and
/// each `/ws/ready` message).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Readiness)]
pub(crate) struct ReadyJson<'a> {
    /// True exactly when `state` is `READY`.
    ready: bool,
    #[schema(value_type = crate::schemas::Overall)]
    state: Overall,
    /// 0–100; never goes backwards within one startup.
    #[schema(maximum = 100)]
    progress: u8,
    /// Every configured service, by name.
    #[schema(value_type = BTreeMap<crate::schemas::ServiceName, ServiceJson<'static>>)]
    services: BTreeMap<ServiceName, ServiceJson<'a>>,
    /// From the start to the first READY; null before it.
    startup_time_ms: Option<u64>,
    /// Errors in words (failed services, missing plugins).
    errors: &'a [String],
    /// Grows with every change (the SSE event's `id`).
    version: u64,
}

/// One service in the `/api/ready` body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ServiceReadiness)]
pub(crate) struct ServiceJson<'a> {
    ready: bool,
    #[schema(value_type = crate::schemas::ServiceStatus)]
    status: Status,
    /// Whether READY waits for it.
    required: bool,
    /// Why it is not ready (not when failed: see `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// 0–100.
    #[schema(maximum = 100)]
    progress: u8,
    /// The plugin's sub-progress message while loading.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    plugin: Option<&'a str>,
    plugin_version: Option<&'a str>,
    engine: Option<&'a str>,
    model: Option<&'a str>,
    /// RFC 3339 with milliseconds, UTC.
    #[schema(format = DateTime)]
    loaded_at: Option<String>,
    load_time_ms: Option<u64>,
    warmup_time_ms: Option<u64>,
    /// What the last warmup did.
    warmed: Option<&'a str>,
    /// A re-warm (`POST /api/warmup`) of this service runs.
    rewarming: bool,
    /// The last periodic health probe's complaint; the service stays ready.
    health_error: Option<&'a str>,
    #[schema(value_type = crate::schemas::Timeline)]
    timeline: &'a Timeline,
    /// `process` or `in-process`, once configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, examples("process", "in-process"))]
    isolation: Option<&'static str>,
    /// Process isolation only: the worker's pid, null when none runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u32>)]
    pid: Option<Option<u32>>,
    /// Process isolation only: workers started after the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    restarts: Option<u32>,
    /// In-process isolation only: calls still running on a host thread
    /// after their timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    abandoned_calls: Option<u32>,
    /// During a reload or restart: the engine loading beside the active one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<NextJson<'a>>,
    /// Engines that have served this service (absent while none has).
    #[serde(skip_serializing_if = "is_zero")]
    generation: u64,
    /// Why the last reload or restart of this service kept the old engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    reload_error: Option<&'a str>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The engine being made beside the active one.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = NextEngine)]
pub(crate) struct NextJson<'a> {
    plugin: &'a str,
    /// `loading` or `warming`.
    #[schema(value_type = crate::schemas::ServiceStatus)]
    status: Status,
    /// 0–100.
    #[schema(maximum = 100)]
    progress: u8,
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
            progress: r.phase.percent(),
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
            isolation: r.isolation,
            pid: (r.isolation == Some("process")).then_some(r.worker_pid),
            restarts: (r.isolation == Some("process")).then(|| r.workers_started.saturating_sub(1)),
            abandoned_calls: (r.isolation == Some("in-process")).then_some(r.abandoned_calls),
            next: r.next.as_ref().map(|n| NextJson {
                plugin: &n.plugin,
                status: n.status,
                progress: (n.progress * 100.0).round().clamp(0.0, 100.0) as u8,
            }),
            generation: r.generation,
            reload_error: r.reload_error.as_deref(),
        }
    }
}

/// The `/api/health` body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Health)]
pub(crate) struct HealthJson<'a> {
    /// `unhealthy` when a required service is not installed or disabled.
    #[schema(value_type = crate::schemas::HealthStatus)]
    status: &'static str,
    ready: bool,
    #[schema(value_type = crate::schemas::Overall)]
    ready_state: Overall,
    /// Every configured service, by name.
    #[schema(value_type = BTreeMap<crate::schemas::ServiceName, HealthServiceJson<'static>>)]
    services: BTreeMap<ServiceName, HealthServiceJson<'a>>,
}

/// One service in the `/api/health` body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ServiceHealth)]
pub(crate) struct HealthServiceJson<'a> {
    /// Ready, and the last health probe did not complain.
    available: bool,
    installed: bool,
    enabled: bool,
    required: bool,
    #[schema(value_type = crate::schemas::ServiceStatus)]
    status: Status,
    /// Why it is not installed, failed, or what the health probe said.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl<'a> HealthServiceJson<'a> {
    fn new(r: &'a ServiceRecord) -> Self {
        let (installed, enabled, reason) = match &r.phase {
            Phase::NotInstalled { reason } => (false, true, Some(reason.as_str())),
            Phase::Disabled { reason } => (false, false, Some(reason.as_str())),
            Phase::Failed { error } => (true, true, Some(error.as_str())),
            _ => (true, true, r.health_error.as_deref()),
        };
        Self {
            available: r.phase == Phase::Ready && r.health_error.is_none(),
            installed,
            enabled,
            required: r.required,
            status: r.phase.status(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hearth_core::readiness::{PluginLabel, ReadinessRx, ReadinessTx};

    use super::*;

    fn label() -> PluginLabel {
        PluginLabel {
            name: "p".into(),
            version: "1".into(),
        }
    }

    fn three() -> (ReadinessTx, ReadinessRx) {
        hearth_core::readiness::channel([
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
    fn the_cache_renders_each_version_once() {
        let (tx, rx) = three();
        let cache = ViewCache::default();
        let first = cache.of(&rx.current());
        assert!(
            Arc::ptr_eq(&first, &cache.of(&rx.current())),
            "the same version is rendered once"
        );
        let old = rx.current();
        bring_up(&tx, ServiceName::Tts);
        let new = cache.of(&rx.current());
        assert!(new.version > first.version);
        // A reader still holding an older snapshot gets its own views, and the
        // cache keeps the newer ones.
        assert_eq!(cache.of(&old).version, old.version);
        assert!(Arc::ptr_eq(&new, &cache.of(&rx.current())));
    }

    #[test]
    fn required_not_installed_is_unhealthy() {
        let (tx, rx) = three();
        tx.not_installed(ServiceName::Tts, "missing".into());
        let s = rx.current();
        assert!(!s.healthy);
        assert_eq!(s.state, Overall::Error);
        let json: serde_json::Value = serde_json::from_slice(&ViewCache::default().of(&s).health_json).unwrap();
        assert_eq!(json["status"], "unhealthy");
        assert_eq!(json["services"]["tts"]["installed"], false);
    }

    #[test]
    fn ready_json_has_the_seed_fields() {
        let (tx, rx) = three();
        bring_up(&tx, ServiceName::Tts);
        let json: serde_json::Value =
            serde_json::from_slice(&ViewCache::default().of(&rx.current()).ready_json).unwrap();
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

    fn bare(name: ServiceName, required: bool, phase: Phase) -> ServiceRecord {
        ServiceRecord {
            phase,
            ..ServiceRecord::new(name, required)
        }
    }

    /// A record with every optional field set, some with characters JSON
    /// must escape.
    fn full(name: ServiceName, required: bool, phase: Phase) -> ServiceRecord {
        ServiceRecord {
            plugin: Some(PluginLabel {
                name: "tts-piper".into(),
                version: "0.3.1".into(),
            }),
            engine: Some("piper 1.2 \"q\"".into()),
            model: Some("en_US-joe-medium".into()),
            loaded_at: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123)),
            load_time_ms: Some(739),
            warmup_time_ms: Some(98),
            warmed: Some("one sentence".into()),
            rewarming: true,
            health_error: Some("slow\nline".into()),
            timeline: Timeline {
                load_start_ms: Some(1),
                load_end_ms: Some(740),
                warmup_start_ms: Some(740),
                warmup_end_ms: None,
            },
            ..bare(name, required, phase)
        }
    }

    fn render(records: Vec<ServiceRecord>, f: impl FnOnce(Input<'_>) -> Input<'_>) -> Rendered {
        let services: BTreeMap<_, _> = records.into_iter().map(|r| (r.name, r)).collect();
        let errors = vec!["chat: Ollama \"down\"".to_owned()];
        f(Input {
            version: 14,
            state: Overall::Error,
            progress: 76,
            services: &services,
            startup_time_ms: Some(1674),
            errors: &errors,
            healthy: true,
        })
        .render()
    }

    fn text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    // The expected bodies below are what the views produced before they moved
    // out of the core's `readiness`; `docs/http-api.md` documents them, clients parse them.

    const FULL_TIMELINE: &str =
        r#""timeline":{"load_start_ms":1,"load_end_ms":740,"warmup_start_ms":740,"warmup_end_ms":null}"#;
    const FULL_FIELDS: &str = concat!(
        r#""plugin":"tts-piper","plugin_version":"0.3.1","engine":"piper 1.2 \"q\"","model":"en_US-joe-medium","#,
        r#""loaded_at":"2026-11-18T11:06:40.123Z","load_time_ms":739,"warmup_time_ms":98,"#,
        r#""warmed":"one sentence","rewarming":true,"health_error":"slow\nline","#,
    );
    const BARE_FIELDS: &str = concat!(
        r#""plugin":null,"plugin_version":null,"engine":null,"model":null,"loaded_at":null,"load_time_ms":null,"#,
        r#""warmup_time_ms":null,"warmed":null,"rewarming":false,"health_error":null,"#,
        r#""timeline":{"load_start_ms":null,"load_end_ms":null,"warmup_start_ms":null,"warmup_end_ms":null}"#,
    );

    #[test]
    fn every_field_is_rendered_as_before() {
        let views = render(
            vec![
                full(
                    ServiceName::Tts,
                    true,
                    Phase::Loading {
                        progress: 0.5,
                        message: "loading voice".into(),
                    },
                ),
                full(ServiceName::Stt, false, Phase::Ready),
                full(
                    ServiceName::Chat,
                    true,
                    Phase::Failed {
                        error: "Ollama \"down\"".into(),
                    },
                ),
            ],
            |input| input,
        );
        let ready = [
            r#"{"ready":false,"state":"ERROR","progress":76,"services":{"#.to_owned(),
            format!(
                r#""tts":{{"ready":false,"status":"loading","required":true,"reason":"loading","progress":43,"message":"loading voice",{FULL_FIELDS}{FULL_TIMELINE}}},"#
            ),
            format!(r#""stt":{{"ready":true,"status":"ready","required":false,"progress":100,{FULL_FIELDS}{FULL_TIMELINE}}},"#),
            format!(
                r#""chat":{{"ready":false,"status":"failed","required":true,"error":"Ollama \"down\"","progress":100,{FULL_FIELDS}{FULL_TIMELINE}}}}},"#
            ),
            r#""startup_time_ms":1674,"errors":["chat: Ollama \"down\""],"version":14}"#.to_owned(),
        ]
        .concat();
        assert_eq!(text(&views.ready_json), ready);
        assert_eq!(text(&views.sse_event), format!("id: 14\ndata: {ready}\n\n"));
        let health = concat!(
            r#"{"status":"healthy","ready":false,"ready_state":"ERROR","services":{"#,
            r#""tts":{"available":false,"installed":true,"enabled":true,"required":true,"status":"loading","reason":"slow\nline"},"#,
            r#""stt":{"available":false,"installed":true,"enabled":true,"required":false,"status":"ready","reason":"slow\nline"},"#,
            r#""chat":{"available":false,"installed":true,"enabled":true,"required":true,"status":"failed","reason":"Ollama \"down\""}}}"#,
        );
        assert_eq!(text(&views.health_json), health);
    }

    #[test]
    fn every_phase_is_rendered_as_before() {
        let views = render(
            vec![
                bare(
                    ServiceName::Tts,
                    true,
                    Phase::NotInstalled {
                        reason: "missing".into(),
                    },
                ),
                bare(
                    ServiceName::Stt,
                    false,
                    Phase::Loading {
                        progress: 0.0,
                        message: String::new(),
                    },
                ),
                bare(ServiceName::Chat, true, Phase::Warming),
            ],
            |input| Input {
                version: 2,
                state: Overall::WarmingUp,
                progress: 3,
                startup_time_ms: None,
                errors: &[],
                healthy: false,
                ..input
            },
        );
        let ready = [
            r#"{"ready":false,"state":"WARMING_UP","progress":3,"services":{"#.to_owned(),
            format!(
                r#""tts":{{"ready":false,"status":"not_installed","required":true,"reason":"missing","progress":100,{BARE_FIELDS}}},"#
            ),
            format!(r#""stt":{{"ready":false,"status":"loading","required":false,"reason":"loading","progress":5,{BARE_FIELDS}}},"#),
            format!(
                r#""chat":{{"ready":false,"status":"warming","required":true,"reason":"warming up","progress":85,{BARE_FIELDS}}}}},"#
            ),
            r#""startup_time_ms":null,"errors":[],"version":2}"#.to_owned(),
        ]
        .concat();
        assert_eq!(text(&views.ready_json), ready);
        assert_eq!(text(&views.sse_event), format!("id: 2\ndata: {ready}\n\n"));
        let health = concat!(
            r#"{"status":"unhealthy","ready":false,"ready_state":"WARMING_UP","services":{"#,
            r#""tts":{"available":false,"installed":false,"enabled":true,"required":true,"status":"not_installed","reason":"missing"},"#,
            r#""stt":{"available":false,"installed":true,"enabled":true,"required":false,"status":"loading"},"#,
            r#""chat":{"available":false,"installed":true,"enabled":true,"required":true,"status":"warming"}}}"#,
        );
        assert_eq!(text(&views.health_json), health);

        let views = render(
            vec![
                bare(ServiceName::Tts, true, Phase::Pending),
                bare(ServiceName::Stt, false, Phase::Disabled { reason: "off".into() }),
            ],
            |input| Input {
                version: 0,
                state: Overall::Initializing,
                progress: 0,
                startup_time_ms: None,
                errors: &[],
                healthy: true,
                ..input
            },
        );
        let ready = [
            r#"{"ready":false,"state":"INITIALIZING","progress":0,"services":{"#.to_owned(),
            format!(
                r#""tts":{{"ready":false,"status":"pending","required":true,"reason":"waiting to load","progress":0,{BARE_FIELDS}}},"#
            ),
            format!(
                r#""stt":{{"ready":false,"status":"not_installed","required":false,"reason":"off","progress":100,{BARE_FIELDS}}}}},"#
            ),
            r#""startup_time_ms":null,"errors":[],"version":0}"#.to_owned(),
        ]
        .concat();
        assert_eq!(text(&views.ready_json), ready);
        let health = concat!(
            r#"{"status":"healthy","ready":false,"ready_state":"INITIALIZING","services":{"#,
            r#""tts":{"available":false,"installed":true,"enabled":true,"required":true,"status":"pending"},"#,
            r#""stt":{"available":false,"installed":false,"enabled":false,"required":false,"status":"not_installed","reason":"off"}}}"#,
        );
        assert_eq!(text(&views.health_json), health);
    }

    #[test]
    fn a_ready_service_without_complaints_is_available() {
        let mut tts = full(ServiceName::Tts, true, Phase::Ready);
        tts.health_error = None;
        let views = render(vec![tts], |input| Input {
            version: 7,
            state: Overall::Ready,
            progress: 100,
            startup_time_ms: Some(5),
            errors: &[],
            ..input
        });
        let ready = format!(
            r#"{{"ready":true,"state":"READY","progress":100,"services":{{"tts":{{"ready":true,"status":"ready","required":true,"progress":100,{}"health_error":null,{FULL_TIMELINE}}}}},"startup_time_ms":5,"errors":[],"version":7}}"#,
            FULL_FIELDS.replace(r#""health_error":"slow\nline","#, "")
        );
        assert_eq!(text(&views.ready_json), ready);
        assert_eq!(
            text(&views.health_json),
            r#"{"status":"healthy","ready":true,"ready_state":"READY","services":{"tts":{"available":true,"installed":true,"enabled":true,"required":true,"status":"ready"}}}"#
        );
    }
}
