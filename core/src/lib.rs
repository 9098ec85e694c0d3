//! Hearth's core: everything about running engines, and nothing about any
//! protocol a client speaks.
//!
//! It reads `plugins.toml` ([`config`]), opens plugin libraries ([`plugin`],
//! [`open`]), runs engines in this process or in worker processes
//! ([`engine`], [`worker`]) and lets async code call them ([`calls`]), and
//! supervises them ([`services`]): loads and
//! warms them in parallel, retries, probes, restarts and reloads them (with
//! [`reload`] deciding the plan, and [`live`] reloading on SIGHUP or when the
//! file changes). It publishes what it knows through one state machine
//! ([`readiness`]), counts it ([`metrics`]), and finds utterances in a
//! stream of audio for hands-free conversations ([`hands_free`]).
//!
//! **Invariant:** this crate depends on no HTTP crate (`axum`, `hyper`,
//! `tower`, `utoipa`) and on no front (`hearth-http`, `hearth-wyoming`). The
//! fronts depend on it; it speaks types, they speak wire formats. Its errors
//! ([`HostError`]) carry a protocol-neutral code that each front maps onto
//! its own answers.

pub mod calls;
pub mod config;
pub mod engine;
pub mod error;
pub mod hands_free;
pub mod live;
pub mod metrics;
pub mod net;
pub mod open;
pub mod plugin;
pub mod plugin_log;
pub mod readiness;
pub mod reload;
pub mod secret;
pub mod service;
pub mod services;
pub mod worker;

pub use error::{HostError, Result};
