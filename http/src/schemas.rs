//! OpenAPI schemas that no handler's own types carry: the core types the
//! HTTP layer sends as they are, and the few JSON answers a handler builds
//! with `json!` (mirrored with `additionalProperties: false`, so a checker
//! against a live server notices when they change). The handlers' doc
//! attributes and `openapi.rs` both take them from here, a leaf.
//!
//! The core serializes its types (serde) but knows no OpenAPI, so each
//! core schema here describes one core type's serde shape under the core
//! type's name. `tests/openapi.rs` and `scripts/check-openapi.sh` (schemathesis
//! against a live server) check real answers against them, so a core type
//! that changes shape without its schema fails there.

#![allow(dead_code)] // The fields exist for their schemas only.

use utoipa::{
    openapi::{
        schema::{ObjectBuilder, Schema, Type},
        RefOr,
    },
    ToSchema,
};

/// One of the services Hearth runs (core: `ServiceName`).
#[derive(ToSchema)]
#[schema(as = ServiceName)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    Tts,
    Stt,
    Chat,
    Vad,
}

/// The overall readiness state (core: `readiness::Overall`).
#[derive(ToSchema)]
#[schema(as = Overall)]
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

/// When each step of a service happened, in ms since the tracker started
/// (core: `readiness::Timeline`).
#[derive(ToSchema)]
#[schema(as = Timeline)]
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

/// What a reload does to one service (core: `reload::Action`).
#[derive(ToSchema)]
#[schema(as = Action)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Nothing about its engine changed.
    Unchanged,
    /// A new engine loads and warms beside the running one and replaces it
    /// when ready; the old one keeps serving if the new one fails.
    Swap {
        /// What changed, for people (`config changed`).
        why: String,
    },
    /// It was not running (absent, disabled, failed): it starts.
    Start,
    /// It was disabled or removed: it stops after its in-flight requests.
    Stop,
}

/// One service's part of a reload plan (core: `reload::ServicePlan`).
#[derive(ToSchema)]
#[schema(as = ServicePlan)]
pub struct ServicePlan {
    /// The service.
    pub service: ServiceName,
    /// What happens to its engine.
    #[serde(flatten)]
    pub action: Action,
    /// The plugin before, as written.
    pub from: Option<String>,
    /// The plugin after, as written.
    pub to: Option<String>,
    /// `Some(required)` when `required` changed (applies at once).
    pub required: Option<bool>,
}

/// A reload, decided (core: `reload::Plan`).
#[derive(ToSchema)]
#[schema(as = Plan)]
pub struct Plan {
    /// Counts reloads since startup.
    pub reload: u64,
    /// Per service.
    pub services: Vec<ServicePlan>,
    /// Settings that changed but only take effect after a restart.
    pub needs_restart: Vec<String>,
}

/// How a reload went for one service (core: `services::ServiceOutcome`).
#[derive(ToSchema)]
#[schema(as = ServiceOutcome)]
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

/// How a reload went (core: `services::ReloadOutcome`).
#[derive(ToSchema)]
#[schema(as = ReloadOutcome)]
pub struct ReloadOutcome {
    /// Which reload.
    pub reload: u64,
    /// Per service.
    pub services: std::collections::BTreeMap<String, ServiceOutcome>,
}

/// Per-service outcome of a forced re-warm (core: `services::RewarmResult`).
#[derive(ToSchema)]
#[schema(as = RewarmResult)]
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

/// A service's `status` in the readiness and health bodies (and a next
/// engine's, which is `loading` or `warming`): the core's
/// `readiness::Status`, its values taken from `Status::ALL`, so the
/// document names exactly what the bodies and the metrics do.
pub struct ServiceStatus;

impl utoipa::PartialSchema for ServiceStatus {
    fn schema() -> RefOr<Schema> {
        let values = hearth_core::readiness::Status::ALL.map(|s| s.as_str());
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values))
            .into()
    }
}

impl ToSchema for ServiceStatus {}

/// `/api/health`'s `status`.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Every required service is installed and enabled.
    Healthy,
    /// A required service is not installed or disabled.
    Unhealthy,
}

/// One `/api/ready/stream` event, as Server-Sent Events parsers see it:
/// `id` is the snapshot's `version`, `data` the `/api/ready` body (a
/// `Readiness`) as JSON on one line. (`: keep-alive` comments are not
/// events.)
pub struct ReadinessEvent;

impl utoipa::PartialSchema for ReadinessEvent {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let mut data = string()
            .description(Some("The readiness JSON (schema `Readiness`)"))
            .content_media_type("application/json")
            .build();
        // JSON Schema 2020-12's `contentSchema`, which utoipa has no field for.
        data.extensions.get_or_insert_with(Default::default).insert(
            "contentSchema".to_owned(),
            serde_json::json!({ "$ref": "#/components/schemas/Readiness" }),
        );
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "id",
                string()
                    .description(Some("The snapshot's `version`"))
                    .pattern(Some("^[0-9]+$")),
            )
            .property("event", string().description(Some("Always the default, `message`")))
            .property("data", data)
            .required("id")
            .required("data")
            .into()
    }
}

impl ToSchema for ReadinessEvent {}

/// `POST /api/warmup`'s answer.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WarmupResult)]
pub struct Warmup {
    /// Every service warmed.
    pub ok: bool,
    /// Per ready service.
    pub services: Vec<RewarmResult>,
}

/// The 202 of `POST /api/services/{name}/retry` and `/restart`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// Always true.
    pub accepted: bool,
    /// The service.
    pub service: ServiceName,
    /// What happens next, in words.
    pub message: String,
}

/// `POST /api/reload`'s 200: the plan and how it went.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reloaded {
    /// Every change took effect.
    pub ok: bool,
    /// What was decided.
    pub plan: Plan,
    /// The plan in words.
    pub summary: String,
    /// How each service's change went.
    pub outcome: ReloadOutcome,
}

/// `POST /api/reload?wait=false`'s 202: the plan, applied in the background.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadPlanned {
    /// What was decided.
    pub plan: Plan,
    /// The plan in words.
    pub summary: String,
}
