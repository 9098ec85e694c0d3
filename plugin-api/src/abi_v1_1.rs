//! The engine vtable and root module exactly as ABI 1.1 laid them out,
//! frozen, so that this host keeps loading plugins built for 1.1.
//!
//! Why the host needs the layout of every minor version it supports is
//! explained in [`crate::abi_v1_0`]. ABI 1.2 added the `vad` kind's
//! methods at the end of [`crate::abi::Engine`]; only the types that
//! changed are repeated here, under the same names, which is what the
//! layout check compares.
//!
//! Never change this file: it is what plugins built for 1.1 contain.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RSlice, RStr, RString},
    StableAbi,
};

use crate::abi::{
    AudioSinkMut, Capabilities, ChatMessage, ChatOptions, ChatReport, EngineInfo, HostRef, LoadRequest, PcmInput,
    PluginInfo, SpeechOptions, TokenSinkMut, Transcript, WarmupReport,
};

/// [`crate::abi::Engine`] as of ABI 1.1: up to `chat_with`.
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

    /// What the engine does beyond 1.0's operations.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// TTS with options.
    fn synthesize_with(&self, text: RStr<'_>, options: SpeechOptions, sink: AudioSinkMut<'_>) -> RResult<(), RString> {
        let _ = options;
        self.synthesize(text, sink)
    }

    /// Chat with options.
    fn chat_with(
        &self,
        messages: RSlice<'_, ChatMessage>,
        options: ChatOptions,
        sink: TokenSinkMut<'_>,
    ) -> RResult<ChatReport, RString> {
        let _ = options;
        self.chat(messages, sink)
    }
}

/// An owned ABI 1.1 engine instance.
pub type EngineBox = Engine_TO<'static, RBox<()>>;

/// [`crate::abi::PluginMod`] as of ABI 1.1.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// What the plugin is.
    pub info: extern "C" fn() -> PluginInfo,

    /// Validates a `config` table.
    pub check_config: extern "C" fn(config_json: RStr<'_>) -> RResult<(), RString>,

    /// Makes a new, unloaded ABI 1.1 engine.
    #[sabi(last_prefix_field)]
    pub new_engine: extern "C" fn() -> RResult<EngineBox, RString>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "hearth_plugin";
    const NAME: &'static str = "hearth_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.1.0");
}
