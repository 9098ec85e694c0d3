//! Integration tests of the Whisper plugin, on the real model and the JFK
//! clip (fetched by `scripts/fetch-models.sh`; a missing asset fails the
//! test with that instruction).
//!
//! * [`transcribe`]: what comes out for speech, silence and odd inputs.
//! * [`model_files`]: missing, truncated and wrong model files fail `load`
//!   with a reason, and the process lives on.
//! * [`entry_points`]: the plugin driven through its exported entry points,
//!   as the host drives the library.
//! * [`conformance`]: the plugin API's conformance kit.

mod conformance;
mod entry_points;
mod model_files;
mod transcribe;
mod util;
