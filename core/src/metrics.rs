//! Prometheus metrics: recorded here, rendered for the HTTP front's
//! `GET /metrics`.
//!
//! One [`Metrics`] per supervisor (not the `metrics` crate's global
//! recorder, so servers in one test process do not mix their numbers). It
//! owns a Prometheus recorder from `metrics-exporter-prometheus`, which
//! renders the text exposition format (0.0.4) that Prometheus scrapes and
//! `promtool check metrics` checks.
//!
//! Two kinds of numbers:
//! - **Events**, counted or timed where they happen: engine calls (through
//!   [`EngineMetrics`], which every engine the supervisor makes carries),
//!   conversations, refused connections, reloads, worker crashes.
//! - **State**, read from the readiness snapshot at scrape time: the
//!   overall and per-service state (one-hot gauges), load and warmup
//!   times, workers started, swaps. Reading it at scrape time means it can
//!   never disagree with `/api/ready`.
//!
//! Names follow Prometheus conventions: the `hearth_` prefix, base units
//! (`_seconds`), `_total` on counters. `docs/operations.md` lists them all.

use std::{sync::Arc, time::Duration};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::{
    config::ServiceName,
    readiness::{Overall, Snapshot, Status},
};

/// Buckets for operation latencies, in seconds: from 5 ms (a first token
/// from a warm local model) to 2 min (a long transcription).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Every overall state, in the order the one-hot gauges list them.
const STATES: [Overall; 5] = [
    Overall::Initializing,
    Overall::LoadingModels,
    Overall::WarmingUp,
    Overall::Ready,
    Overall::Error,
];

/// Why a connection or request was refused (`hearth_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `[host] max_connections`.
    MaxConnections,
    /// Over `[conversation] max_conversations`.
    MaxConversations,
    /// A `Host` header Hearth does not answer to.
    Host,
    /// An `Origin` that may not drive Hearth.
    Origin,
    /// A missing or wrong admin token.
    Token,
    /// A retry or restart within `retry_cooldown`.
    Cooldown,
    /// A missing or wrong API key on `/v1`.
    ApiKey,
    /// Over `[wyoming] max_connections`.
    WyomingConnections,
}

impl Refusal {
    const ALL: [Refusal; 8] = [
        Refusal::MaxConnections,
        Refusal::MaxConversations,
        Refusal::Host,
        Refusal::Origin,
        Refusal::Token,
        Refusal::Cooldown,
        Refusal::ApiKey,
        Refusal::WyomingConnections,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxConversations => "max_conversations",
            Refusal::Host => "host",
            Refusal::Origin => "origin",
            Refusal::Token => "admin_token",
            Refusal::Cooldown => "retry_cooldown",
            Refusal::ApiKey => "api_key",
            Refusal::WyomingConnections => "wyoming_max_connections",
        }
    }
}

/// The transports of the readiness stream (`hearth_stream_subscribers`).
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    /// `GET /api/ready/stream`.
    Sse,
    /// `GET /ws/ready`.
    WebSocket,
}

/// The instruments of one service's engine calls; cheap to clone. Every
/// engine the supervisor makes carries one (see [`crate::engine::Engine`]).
#[derive(Clone)]
pub struct EngineMetrics {
    /// A whole call: synthesis, transcription or chat.
    pub call: Histogram,
    /// The first chunk of speech (tts) or the first token (chat).
    pub first: Option<Histogram>,
    /// Calls that failed.
    pub errors: Counter,
    /// Calls that failed because the plugin panicked.
    pub panics: Counter,
}

impl EngineMetrics {
    /// Counts a failed call; `error` is its message (a plugin's panic is
    /// reported as `panicked: ...`).
    pub fn failed(&self, error: &str) {
        self.errors.increment(1);
        if error.starts_with("panicked") || error.contains(": panicked") {
            self.panics.increment(1);
        }
    }
}

/// The metrics of one Hearth server.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    refused: Vec<(Refusal, Counter)>,
    subscribers_sse: Gauge,
    subscribers_ws: Gauge,
    conversations: Counter,
    first_audio: Histogram,
    reloads_ok: Counter,
    reloads_failed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set, every counter at zero.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("the latency buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let mut this = Self {
            refused: Vec::new(),
            subscribers_sse: Gauge::noop(),
            subscribers_ws: Gauge::noop(),
            conversations: Counter::noop(),
            first_audio: Histogram::noop(),
            reloads_ok: Counter::noop(),
            reloads_failed: Counter::noop(),
            recorder,
            handle,
        };
        this.describe();
        this.refused = Refusal::ALL
            .iter()
            .map(|r| (*r, this.counter("hearth_refused_total", &[("reason", r.label())])))
            .collect();
        this.subscribers_sse = this.gauge("hearth_stream_subscribers", &[("transport", "sse")]);
        this.subscribers_ws = this.gauge("hearth_stream_subscribers", &[("transport", "websocket")]);
        this.conversations = this.counter("hearth_conversations_total", &[]);
        this.first_audio = this.histogram("hearth_conversation_first_audio_seconds", &[]);
        this.reloads_ok = this.counter("hearth_reloads_total", &[("outcome", "applied")]);
        this.reloads_failed = this.counter("hearth_reloads_total", &[("outcome", "failed")]);
        // Zero, not absent, before the first event: a rate over a series
        // that appears late loses its first increase.
        for service in ServiceName::ALL {
            let _ = this.engine(service);
            this.counter("hearth_worker_crashes_total", &[("service", service.as_str())])
                .increment(0);
            for kind in ["retry", "restart"] {
                this.counter(
                    "hearth_service_restarts_total",
                    &[("service", service.as_str()), ("kind", kind)],
                )
                .increment(0);
            }
        }
        this
    }

    fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
        let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::from_static_parts(k, v)).collect();
        Key::from_parts(name, labels)
    }

    fn metadata() -> Metadata<'static> {
        static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);
        METADATA.clone()
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        self.recorder
            .register_counter(&Self::key(name, labels), &Self::metadata())
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        self.recorder
            .register_gauge(&Self::key(name, labels), &Self::metadata())
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Histogram {
        self.recorder
            .register_histogram(&Self::key(name, labels), &Self::metadata())
    }

    /// The `# HELP` lines.
    fn describe(&self) {
        let gauges: &[(&str, Option<Unit>, &str)] = &[
            (
                "hearth_ready",
                None,
                "1 when Hearth is READY (every required service ready), else 0",
            ),
            (
                "hearth_state",
                None,
                "The overall readiness state, one-hot over the label state",
            ),
            ("hearth_service_ready", None, "1 when the service is ready, else 0"),
            (
                "hearth_service_required",
                None,
                "1 when READY waits for the service (tts, chat by default), else 0",
            ),
            (
                "hearth_service_state",
                None,
                "Each service's status, one-hot over the label state",
            ),
            (
                "hearth_service_load_seconds",
                Some(Unit::Seconds),
                "How long the service's last model load took",
            ),
            (
                "hearth_service_warmup_seconds",
                Some(Unit::Seconds),
                "How long the service's last warmup took",
            ),
            (
                "hearth_startup_seconds",
                Some(Unit::Seconds),
                "From start to the first READY",
            ),
            (
                "hearth_conversations_in_flight",
                None,
                "Open voice conversations (/ws/conversation)",
            ),
            (
                "hearth_connections_open",
                None,
                "Open HTTP connections, WebSockets included",
            ),
            (
                "hearth_stream_subscribers",
                None,
                "Clients following the readiness stream, by transport",
            ),
        ];
        for (name, unit, help) in gauges {
            self.recorder
                .describe_gauge(KeyName::from(*name), *unit, SharedString::const_str(help));
        }
        let counters: &[(&str, &str)] = &[
            ("hearth_refused_total", "Connections and requests refused, by reason"),
            ("hearth_conversations_total", "Voice conversations accepted"),
            ("hearth_reloads_total", "Live reloads of plugins.toml, by outcome"),
            (
                "hearth_service_swaps_total",
                "Engines swapped in live (reload or restart), per service",
            ),
            (
                "hearth_service_workers_started_total",
                "Worker processes started, per service",
            ),
            (
                "hearth_service_restarts_total",
                "Retries of a failed service and restarts of a running one, per service and kind",
            ),
            (
                "hearth_worker_crashes_total",
                "Workers that died on their own, per service",
            ),
            ("hearth_engine_errors_total", "Engine calls that failed, per service"),
            (
                "hearth_plugin_panics_total",
                "Engine calls that failed because the plugin panicked, per service",
            ),
        ];
        for (name, help) in counters {
            self.recorder
                .describe_counter(KeyName::from(*name), None, SharedString::const_str(help));
        }
        let histograms: &[(&str, &str)] = &[
            ("hearth_tts_synthesis_seconds", "One text to speech call, start to end"),
            (
                "hearth_tts_first_chunk_seconds",
                "From a text to speech call to its first chunk of audio",
            ),
            ("hearth_stt_transcription_seconds", "One speech to text call"),
            (
                "hearth_vad_push_seconds",
                "One piece of audio through voice activity detection",
            ),
            ("hearth_chat_seconds", "One chat reply, start to end"),
            ("hearth_chat_first_token_seconds", "From a chat call to its first token"),
            (
                "hearth_conversation_first_audio_seconds",
                "From a conversation turn's input to its first reply audio",
            ),
        ];
        for (name, help) in histograms {
            self.recorder
                .describe_histogram(KeyName::from(*name), Some(Unit::Seconds), SharedString::const_str(help));
        }
    }

    /// The instruments for engine calls of `service`.
    pub fn engine(&self, service: ServiceName) -> EngineMetrics {
        let labels = [("service", service.as_str())];
        let (call, first) = match service {
            ServiceName::Tts => ("hearth_tts_synthesis_seconds", Some("hearth_tts_first_chunk_seconds")),
            ServiceName::Stt => ("hearth_stt_transcription_seconds", None),
            ServiceName::Vad => ("hearth_vad_push_seconds", None),
            ServiceName::Chat => ("hearth_chat_seconds", Some("hearth_chat_first_token_seconds")),
        };
        EngineMetrics {
            call: self.histogram(call, &labels),
            first: first.map(|name| self.histogram(name, &labels)),
            errors: self.counter("hearth_engine_errors_total", &labels),
            panics: self.counter("hearth_plugin_panics_total", &labels),
        }
    }

    /// Counts a refusal.
    pub fn refused(&self, why: Refusal) {
        if let Some((_, counter)) = self.refused.iter().find(|(r, _)| *r == why) {
            counter.increment(1);
        }
    }

    /// A retry (`kind` = `retry`) or restart (`restart`) of `service` began.
    pub fn restarted(&self, service: ServiceName, kind: &'static str) {
        self.counter(
            "hearth_service_restarts_total",
            &[("service", service.as_str()), ("kind", kind)],
        )
        .increment(1);
    }

    /// A worker of `service` died on its own.
    pub fn worker_crashed(&self, service: ServiceName) {
        self.counter("hearth_worker_crashes_total", &[("service", service.as_str())])
            .increment(1);
    }

    /// A reload finished; `applied` is false when a service kept its old
    /// engine or failed to start.
    pub fn reloaded(&self, applied: bool) {
        if applied {
            self.reloads_ok.increment(1);
        } else {
            self.reloads_failed.increment(1);
        }
    }

    /// A conversation was accepted.
    pub fn conversation_started(&self) {
        self.conversations.increment(1);
    }

    /// A conversation turn's first audio went out `after` its input.
    pub fn first_audio(&self, after: Duration) {
        self.first_audio.record(after.as_secs_f64());
    }

    /// Counts a readiness stream subscriber until the guard drops.
    pub fn subscriber(self: &Arc<Self>, transport: Transport) -> SubscriberGuard {
        let gauge = match transport {
            Transport::Sse => self.subscribers_sse.clone(),
            Transport::WebSocket => self.subscribers_ws.clone(),
        };
        gauge.increment(1.0);
        SubscriberGuard(gauge)
    }

    /// The text exposition of every metric, with the state gauges read from
    /// `snapshot`, `conversations` open conversations and `connections`
    /// open connections.
    pub fn render(&self, snapshot: &Snapshot, conversations: usize, connections: usize) -> String {
        let flag = |on: bool| if on { 1.0 } else { 0.0 };
        self.gauge("hearth_ready", &[]).set(flag(snapshot.is_ready()));
        for state in STATES {
            self.gauge("hearth_state", &[("state", state.as_str())])
                .set(flag(snapshot.state == state));
        }
        if let Some(ms) = snapshot.startup_time_ms {
            self.gauge("hearth_startup_seconds", &[]).set(ms as f64 / 1000.0);
        }
        self.gauge("hearth_conversations_in_flight", &[])
            .set(conversations as f64);
        self.gauge("hearth_connections_open", &[]).set(connections as f64);
        for (name, record) in &snapshot.services {
            let service = name.as_str();
            let status = record.phase.status();
            self.gauge("hearth_service_ready", &[("service", service)])
                .set(flag(status == Status::Ready));
            self.gauge("hearth_service_required", &[("service", service)])
                .set(flag(record.required));
            for state in Status::ALL {
                self.gauge(
                    "hearth_service_state",
                    &[("service", service), ("state", state.as_str())],
                )
                .set(flag(status == state));
            }
            if let Some(ms) = record.load_time_ms {
                self.gauge("hearth_service_load_seconds", &[("service", service)])
                    .set(ms as f64 / 1000.0);
            }
            if let Some(ms) = record.warmup_time_ms {
                self.gauge("hearth_service_warmup_seconds", &[("service", service)])
                    .set(ms as f64 / 1000.0);
            }
            self.counter("hearth_service_workers_started_total", &[("service", service)])
                .absolute(u64::from(record.workers_started));
            self.counter("hearth_service_swaps_total", &[("service", service)])
                .absolute(record.generation.saturating_sub(1));
        }
        self.handle.render()
    }
}

/// Keeps a subscriber counted while it lives.
pub struct SubscriberGuard(Gauge);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
