//! The test kit (feature `testkit`): what a plugin's own tests need to
//! drive its engine, and the conformance checks the host runs with
//! `hearth plugin test`.
//!
//! Add it as a dev-dependency of the plugin crate:
//!
//! ```toml
//! [dev-dependencies]
//! hearth-plugin-api = { version = "…", features = ["testkit"] }
//! ```
//!
//! Two ways to drive an engine in a test:
//!
//! * **Through the exported entry points**, exactly as the host does:
//!   [`crate::client::Module::new`]`(hearth_plugin_root_module())` (the
//!   function [`crate::export_plugin!`] defines) gives `check_config`,
//!   `new_engine` and an [`crate::client::Instance`] with plain-Rust
//!   `load`/`warmup`/`synthesize`/`transcribe`/`chat`. The whole contract
//!   is checked by [`conformance::run`].
//! * **Directly**, calling the author traits on the engine type with a
//!   [`RecordingHost`]'s context and the collectors here, when a test needs
//!   the engine's own types.
//!
//! Standard inputs: [`speech_clip`] (a spoken sentence shipped with the
//! kit), [`silence`], [`tone`], and [`crate::client::Message`]'s builders.
//! [`tempfile`] is re-exported for scratch files.

pub mod conformance;
mod host;
mod input;
mod sinks;

pub use host::RecordingHost;
pub use input::{rms, silence, speech_clip, tone, SPEECH_CLIP_TEXT};
pub use sinks::{chat, load, synthesize, synthesize_until, transcribe, AudioCollector, TokenCollector};
pub use tempfile;
