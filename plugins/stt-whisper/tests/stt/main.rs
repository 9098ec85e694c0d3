//! Integration tests of the Whisper plugin, on the real model and the JFK
//! clip (fetched by `scripts/fetch-models.sh`; a missing asset fails the
//! test with that instruction).
//!
//! * [`transcribe`]: what comes out for speech, silence and odd inputs.
//! * [`model_files`]: missing, truncated and wrong model files fail `load`
//!   with a reason, and the process lives on.
//! * [`through_host`]: the built cdylib, opened and driven by the host's
//!   own plugin loader.

mod model_files;
mod through_host;
mod transcribe;
mod util;
