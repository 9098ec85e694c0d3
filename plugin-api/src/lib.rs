//! The stable ABI between the Hearth host and its engine plugins.
//!
//! This crate declares everything that crosses the plugin boundary, and nothing
//! else does: no type of the host's and no type of an engine library's (`ort`,
//! `whisper-rs`, `reqwest`, ...) ever appears in a signature here.
//!
//! # What a plugin is
//!
//! A plugin is a `cdylib` that exports one root module, [`PluginMod`], through
//! [`export_plugin!`]. The root module tells the host what the plugin is
//! ([`PluginMod::info`]), lets it validate a configuration without loading a
//! model ([`PluginMod::check_config`]) and makes engine instances
//! ([`PluginMod::new_engine`]). Every engine implements the *Warmable* contract
//! ([`Engine`]): `describe`, `load`, `warmup`, `health`, `shutdown`, plus the
//! operation of its kind (`synthesize`, `transcribe`, `chat` or, since ABI
//! 1.2, `vad_push`).
//!
//! Plugin authors do not touch the FFI types. They write a normal Rust type that
//! implements [`Warmable`] and one of [`TtsEngine`], [`SttEngine`],
//! [`ChatEngine`] or [`VadEngine`], and export it with one line:
//!
//! ```ignore
//! hearth_plugin_api::export_plugin!(tts: MyVoice, MyVoice::default);
//! ```
//!
//! The macro wraps every entry point in `catch_unwind`, so **no panic crosses
//! the boundary**: a panicking plugin returns an error value whose message
//! starts with `panicked:` and the host marks that service failed.
//!
//! # How the host loads a plugin
//!
//! 1. It checks that the file exists and is an ELF shared object.
//! 2. It opens it with `abi_stable` (which uses `libloading`) and reads the
//!    library header *without* running any plugin code.
//! 3. It compares the plugin's ABI version with its own by [`check_compatible`].
//! 4. `abi_stable` checks the layout of every type reachable from the root
//!    module against the host's copy of this crate — the copy of the minor
//!    version the plugin was built for (see below).
//! 5. Only then does it call into the plugin.
//!
//! Libraries are never unloaded: the engines they create, the strings they
//! return and the vtables of their trait objects all point into the library's
//! code and data, and `abi_stable` keeps process-wide state per library. A
//! retry or a swap creates a new engine from the already loaded library.
//!
//! # Versioning
//!
//! The ABI has one semver version, [`ABI_VERSION`], independent of Hearth's
//! release version. The rule, implemented once in [`check_compatible`]:
//!
//! > A plugin built for ABI `M.m` loads in a host with ABI `M'.m'` when
//! > `M' == M` and `m' >= m`.
//!
//! So a plugin built for one host version keeps loading in every later host of
//! the same major version, and a plugin that needs a newer host is refused
//! with a message naming both versions.
//!
//! Bump rules:
//!
//! * **Patch** (`1.0.x`): documentation and host-side fixes; no type changes.
//! * **Minor** (`1.x.0`): additions that old plugins cannot notice:
//!   - a method added at the *end* of [`Engine`] (after the
//!     `#[sabi(last_prefix_field)]` one), **with a default body** that does
//!     what an older plugin would, and a [`Capabilities`] bit when the host
//!     must know whether a plugin does more — as ABI 1.1 added
//!     [`Engine::capabilities`], [`Engine::synthesize_with`] and
//!     [`Engine::chat_with`], and 1.2 [`Engine::vad_push`] and
//!     [`Engine::vad_close`];
//!   - a field added at the *end* of [`PluginMod`] (a prefix type);
//!   - and for either, a frozen copy of the previous layout (as
//!     [`abi_v1_0`] keeps 1.0's and [`abi_v1_1`] 1.1's). `abi_stable`'s
//!     layout check lets a loader open a library whose prefix types have
//!     *more* fields than the loader's, not fewer, so the host opens each
//!     plugin against the
//!     layout of the minor version its header declares, and
//!     [`client::Module`] answers for an older plugin what the default
//!     bodies say. `tests/abi-1.0` and `tests/abi-1.1` hold plugins built
//!     from the 1.0 and 1.1 sources that the test suite loads and chats
//!     with;
//!   - a new constant of [`EngineKind`] or [`ChatRole`], as 1.2 added
//!     [`EngineKind::VAD`] (they are integers with named constants, not
//!     Rust enums, precisely so that this is compatible);
//!   - new types and new free functions.
//! * **Major** (`x.0.0`): anything else: removing or reordering fields or
//!   methods, changing a signature, adding a field to a plain `#[repr(C)]`
//!   struct such as [`AudioChunk`] (plain structs are frozen; new data goes in
//!   new types reached through new methods), renaming anything.
//!
//! Each bump adds one named constant below ([`ABI_V1_0`], ...) with a line
//! saying what changed, and moves [`ABI_VERSION`] to it. The
//! `#[sabi(last_prefix_field)]` markers stay where they are until the next
//! major version.
#![allow(non_local_definitions)] // abi_stable 0.11's derive macros trigger it.
#![warn(missing_docs)]

mod abi;
pub mod abi_v1_0;
pub mod abi_v1_1;
mod author;
pub mod client;
mod export;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text;
mod version;

pub use abi::*;
pub use author::*;
pub use version::*;

/// `abi_stable`, re-exported so a plugin crate depends on
/// `hearth-plugin-api` alone (the export macro reaches it through here).
pub use abi_stable;

/// The Rust examples of the docs (`docs/plugins.md`, the plugin authors'
/// guide), compiled as doc tests so they stay true. Every docs file with a
/// Rust code block is included here.
#[cfg(doctest)]
#[doc = include_str!("../../docs/plugins.md")]
#[doc = include_str!("../../docs/plugin-authors.md")]
pub struct DocumentedExamples;

/// What [`export_plugin!`] expands to; not for direct use.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::*;
    pub use abi_stable;
    pub use serde_json;
}
