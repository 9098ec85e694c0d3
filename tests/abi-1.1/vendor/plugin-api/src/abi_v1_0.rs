//! The engine vtable and root module exactly as ABI 1.0 laid them out,
//! frozen, so that this host keeps loading plugins built for 1.0.
//!
//! `abi_stable` checks a library's layout against the loader's and accepts
//! a library whose prefix types have *at least* the loader's fields: it
//! lets an old loader open a newer library, not a new loader an older one.
//! Hearth promises the second (a plugin built for 1.0 loads in every later
//! 1.x host), so the host keeps the layout of each minor version it
//! supports and opens a plugin against the one its header declares
//! ([`crate::client::Module::v1_0`]). Types that did not change (the
//! records, sinks and the host context) are shared with [`crate::abi`]; only
//! what 1.1 extended is repeated here, under the same names, which is what
//! the layout check compares.
//!
//! Never change this file: it is what plugins built for 1.0 contain.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RSlice, RStr, RString},
    StableAbi,
};

use crate::abi::{
    AudioSinkMut, ChatMessage, ChatReport, EngineInfo, HostRef, LoadRequest, PcmInput, PluginInfo, TokenSinkMut,
    Transcript, WarmupReport,
};

/// [`crate::abi::Engine`] as of ABI 1.0: up to `chat`.
#[sabi_trait]
pub trait Engine: Send + Sync {
    /// Name, kind, engine version and, after `load`, the model.
    fn describe(&self) -> EngineInfo;

    /// Loads the model.
    fn load(&self, request: LoadRequest<'_>, host: HostRef<'_>) -> RResult<(), RString>;

    /// Runs the model once.
    fn warmup(&self, host: HostRef<'_>) -> RResult<WarmupReport, RString>;

    /// The cheap check.
    fn health(&self) -> RResult<(), RString>;

    /// Releases the model.
    fn shutdown(&self);

    /// TTS.
    fn synthesize(&self, text: RStr<'_>, sink: AudioSinkMut<'_>) -> RResult<(), RString>;

    /// STT.
    fn transcribe(&self, audio: PcmInput<'_>) -> RResult<Transcript, RString>;

    /// Chat.
    #[sabi(last_prefix_field)]
    fn chat(&self, messages: RSlice<'_, ChatMessage>, sink: TokenSinkMut<'_>) -> RResult<ChatReport, RString>;
}

/// An owned ABI 1.0 engine instance.
pub type EngineBox = Engine_TO<'static, RBox<()>>;

/// [`crate::abi::PluginMod`] as of ABI 1.0.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// What the plugin is.
    pub info: extern "C" fn() -> PluginInfo,

    /// Validates a `config` table.
    pub check_config: extern "C" fn(config_json: RStr<'_>) -> RResult<(), RString>,

    /// Makes a new, unloaded ABI 1.0 engine.
    #[sabi(last_prefix_field)]
    pub new_engine: extern "C" fn() -> RResult<EngineBox, RString>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "hearth_plugin";
    const NAME: &'static str = "hearth_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.0.0");
}
