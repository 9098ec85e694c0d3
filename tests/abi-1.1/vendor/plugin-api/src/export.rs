//! What [`crate::export_plugin!`] expands to: adapters from the plain-Rust
//! traits to the FFI trait object, and the panic guard on every entry point.
//!
//! Nothing here is meant to be called by hand; it is public only because the
//! macro expands inside the plugin crate.

use std::{any::Any, marker::PhantomData, panic::AssertUnwindSafe, path::Path, time::Instant};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RSlice, RStr, RString},
};

use crate::{
    abi::{
        AudioSinkMut, Capabilities, ChatMessage, ChatOptions, ChatReport, Engine, EngineBox, EngineInfo, EngineKind,
        Engine_TO, HostRef, LoadRequest, PcmInput, PluginInfo, PluginMod, PluginModRef, SpeechOptions, TokenSinkMut,
        Transcript, WarmupReport,
    },
    author::{AudioOut, ChatEngine, Context, PluginError, PluginResult, SttEngine, TokenOut, TtsEngine, Warmable},
};

/// Turns a panic payload into the message the host shows.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    };
    format!("panicked: {text}")
}

/// Runs `f`, turning both an error and a panic into an error value.
pub fn guard<T>(f: impl FnOnce() -> PluginResult<T>) -> RResult<T, RString> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(PluginError(message))) => RResult::RErr(message.into()),
        Err(payload) => RResult::RErr(panic_message(&*payload).into()),
    }
}

fn wrong_kind<T>(kind: EngineKind, operation: &str) -> PluginResult<T> {
    Err(PluginError::new(format!("a {kind} engine cannot {operation}")))
}

/// Dispatches the kind-specific operations of an engine type `E`.
pub trait Kind<E: Warmable>: 'static {
    /// The kind.
    const KIND: EngineKind;
    /// What the engine declares beyond its operation.
    fn capabilities(_engine: &E) -> Capabilities {
        Capabilities::NONE
    }
    /// TTS, or an error for other kinds.
    fn synthesize(_engine: &E, _text: &str, _options: &SpeechOptions, _out: &mut AudioOut<'_>) -> PluginResult<()> {
        wrong_kind(Self::KIND, "synthesize speech")
    }
    /// STT, or an error for other kinds.
    fn transcribe(_engine: &E, _audio: PcmInput<'_>) -> PluginResult<Transcript> {
        wrong_kind(Self::KIND, "transcribe audio")
    }
    /// Chat, or an error for other kinds.
    fn chat(
        _engine: &E,
        _messages: &[ChatMessage],
        _options: &ChatOptions,
        _out: &mut TokenOut<'_>,
    ) -> PluginResult<ChatReport> {
        wrong_kind(Self::KIND, "chat")
    }
}

/// Marker for TTS engines.
pub struct Tts;
/// Marker for STT engines.
pub struct Stt;
/// Marker for chat engines.
pub struct Chat;

impl<E: TtsEngine> Kind<E> for Tts {
    const KIND: EngineKind = EngineKind::TTS;
    fn capabilities(engine: &E) -> Capabilities {
        engine.capabilities()
    }
    fn synthesize(engine: &E, text: &str, options: &SpeechOptions, out: &mut AudioOut<'_>) -> PluginResult<()> {
        engine.synthesize_with(text, options, out)
    }
}

impl<E: SttEngine> Kind<E> for Stt {
    const KIND: EngineKind = EngineKind::STT;
    fn transcribe(engine: &E, audio: PcmInput<'_>) -> PluginResult<Transcript> {
        engine.transcribe(audio)
    }
}

impl<E: ChatEngine> Kind<E> for Chat {
    const KIND: EngineKind = EngineKind::CHAT;
    fn capabilities(engine: &E) -> Capabilities {
        engine.capabilities()
    }
    fn chat(
        engine: &E,
        messages: &[ChatMessage],
        options: &ChatOptions,
        out: &mut TokenOut<'_>,
    ) -> PluginResult<ChatReport> {
        let outcome = engine.chat_with(messages, options, out)?;
        Ok(ChatReport {
            tokens: outcome.tokens,
            finish_reason: outcome.finish_reason.into(),
        })
    }
}

/// An author's engine seen through the FFI trait.
pub struct Adapter<E, K> {
    engine: E,
    kind: PhantomData<fn() -> K>,
}

impl<E: Warmable, K: Kind<E>> Engine for Adapter<E, K> {
    fn describe(&self) -> EngineInfo {
        let fallback = || EngineInfo {
            name: "unknown".into(),
            kind: K::KIND,
            engine_version: RString::new(),
            model: ROption::RNone,
        };
        match guard(|| Ok(self.engine.describe())) {
            RResult::ROk(d) => EngineInfo {
                name: d.name.into(),
                kind: K::KIND,
                engine_version: d.engine_version.into(),
                model: d.model.map(RString::from).into(),
            },
            RResult::RErr(_) => fallback(),
        }
    }

    fn load(&self, request: LoadRequest<'_>, host: HostRef<'_>) -> RResult<(), RString> {
        guard(|| {
            let config = parse_config::<E>(request.config_json.as_str())?;
            let ctx = Context::new(host, Path::new(request.base_dir.as_str()));
            self.engine.load(config, &ctx)
        })
    }

    fn warmup(&self, host: HostRef<'_>) -> RResult<WarmupReport, RString> {
        guard(|| {
            let started = Instant::now();
            let ctx = Context::new(host, Path::new(""));
            let warmed = self.engine.warmup(&ctx)?;
            Ok(WarmupReport {
                warmed: warmed.into(),
                duration_ms: started.elapsed().as_millis() as u64,
            })
        })
    }

    fn health(&self) -> RResult<(), RString> {
        guard(|| self.engine.health())
    }

    fn shutdown(&self) {
        let _ = guard(|| {
            self.engine.shutdown();
            Ok(())
        });
    }

    fn synthesize(&self, text: RStr<'_>, sink: AudioSinkMut<'_>) -> RResult<(), RString> {
        self.synthesize_with(text, SpeechOptions::default(), sink)
    }

    fn transcribe(&self, audio: PcmInput<'_>) -> RResult<Transcript, RString> {
        guard(|| K::transcribe(&self.engine, audio))
    }

    fn chat(&self, messages: RSlice<'_, ChatMessage>, sink: TokenSinkMut<'_>) -> RResult<ChatReport, RString> {
        self.chat_with(messages, ChatOptions::default(), sink)
    }

    fn capabilities(&self) -> Capabilities {
        match guard(|| Ok(K::capabilities(&self.engine))) {
            RResult::ROk(capabilities) => capabilities,
            RResult::RErr(_) => Capabilities::NONE,
        }
    }

    fn synthesize_with(&self, text: RStr<'_>, options: SpeechOptions, sink: AudioSinkMut<'_>) -> RResult<(), RString> {
        guard(|| K::synthesize(&self.engine, text.as_str(), &options, &mut AudioOut::new(sink)))
    }

    fn chat_with(
        &self,
        messages: RSlice<'_, ChatMessage>,
        options: ChatOptions,
        sink: TokenSinkMut<'_>,
    ) -> RResult<ChatReport, RString> {
        guard(|| K::chat(&self.engine, messages.as_slice(), &options, &mut TokenOut::new(sink)))
    }
}

/// Parses a `config` table (JSON text) into the engine's config type.
///
/// A missing table arrives as `{}` (or nothing). An engine without settings
/// may declare `type Config = ()`: an empty table is then accepted, and a
/// table with keys is refused with a message saying there are no settings.
pub fn parse_config<E: Warmable>(json: &str) -> PluginResult<E::Config> {
    use serde::Deserialize;
    let json = if json.trim().is_empty() { "{}" } else { json };
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| PluginError::new(format!("invalid config: {}", strip_position(&e))))?;
    let first = match E::Config::deserialize(&value) {
        Ok(config) => return Ok(config),
        Err(e) => e,
    };
    // A unit-like config (`()`) deserializes from null but not from a table.
    if let Ok(config) = E::Config::deserialize(&serde_json::Value::Null) {
        return match value.as_object() {
            Some(table) if !table.is_empty() => {
                let keys: Vec<_> = table.keys().map(|k| format!("`{k}`")).collect();
                Err(PluginError::new(format!(
                    "invalid config: unknown field {}: this plugin takes no settings; remove them",
                    keys.join(", ")
                )))
            }
            _ => Ok(config),
        };
    }
    Err(PluginError::new(format!("invalid config: {}", strip_position(&first))))
}

/// serde_json's message without its position: the position is in the JSON
/// the host made from the TOML table, so it would only mislead; the host
/// names the table's place instead.
fn strip_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    }
}

/// `PluginMod::info` for engine type `E` of kind `K`.
pub fn info<E: Warmable, K: Kind<E>>(package: &str, version: &str, description: &str) -> PluginInfo {
    PluginInfo {
        name: package.strip_prefix("hearth-").unwrap_or(package).into(),
        kind: K::KIND,
        version: version.into(),
        description: description.into(),
    }
}

/// `PluginMod::check_config` for engine type `E`.
pub extern "C" fn check_config<E: Warmable>(config_json: RStr<'_>) -> RResult<(), RString> {
    guard(|| parse_config::<E>(config_json.as_str()).map(drop))
}

/// `PluginMod::new_engine` for engine type `E` of kind `K`, made by `make`.
pub fn new_engine<E: Warmable, K: Kind<E>>(make: impl FnOnce() -> E) -> RResult<EngineBox, RString> {
    guard(|| {
        let adapter = Adapter::<E, K> {
            engine: make(),
            kind: PhantomData,
        };
        Ok(Engine_TO::from_value(adapter, TD_Opaque))
    })
}

/// Builds the root module from the three entry points.
pub fn root_module(
    info: extern "C" fn() -> PluginInfo,
    check_config: extern "C" fn(RStr<'_>) -> RResult<(), RString>,
    new_engine: extern "C" fn() -> RResult<EngineBox, RString>,
) -> PluginModRef {
    PluginMod {
        info,
        check_config,
        new_engine,
    }
    .leak_into_prefix()
}

/// The name of the static a library exports its header under, as
/// `abi_stable` 0.11 mangles it (`_as.lib_header.root module loader`).
/// A test keeps it equal to `abi_stable::library::ROOT_MODULE_LOADER_NAME`;
/// it is spelled out because an attribute needs a literal.
#[doc(hidden)]
#[macro_export]
macro_rules! __root_module_symbol {
    () => {
        "_1as_0lib_1header_0root_bmodule_bloader"
    };
}

/// Exports an engine type as a Hearth plugin. One line per plugin crate:
///
/// ```ignore
/// hearth_plugin_api::export_plugin!(tts: PiperVoice, PiperVoice::default);
/// hearth_plugin_api::export_plugin!(stt: Whisper, Whisper::new);
/// hearth_plugin_api::export_plugin!(chat: HttpChat, HttpChat::default);
/// ```
///
/// The second argument makes a fresh, unloaded engine (a retry makes another).
/// The plugin's name, version and description come from its `Cargo.toml`
/// (a leading `hearth-` is dropped from the name). The crate must be
/// `crate-type = ["cdylib", "rlib"]`; it needs no other dependency than
/// `hearth-plugin-api` (and `serde` for its config).
///
/// The macro defines `pub fn hearth_plugin_root_module() -> PluginModRef`,
/// which the crate's own tests can hand to the test kit
/// (`hearth_plugin_api::testkit`) to drive the engine exactly as the host
/// does, through the exported entry points.
#[macro_export]
macro_rules! export_plugin {
    (tts: $engine:ty, $make:expr) => {
        $crate::__export_plugin!($crate::__private::Tts, $engine, $make);
    };
    (stt: $engine:ty, $make:expr) => {
        $crate::__export_plugin!($crate::__private::Stt, $engine, $make);
    };
    (chat: $engine:ty, $make:expr) => {
        $crate::__export_plugin!($crate::__private::Chat, $engine, $make);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($kind:ty, $engine:ty, $make:expr) => {
        /// The root module of this Hearth plugin: what the host reads through
        /// the exported library header, and what the crate's tests can drive
        /// with `hearth_plugin_api::testkit`.
        pub fn hearth_plugin_root_module() -> $crate::PluginModRef {
            extern "C" fn info() -> $crate::PluginInfo {
                $crate::__private::info::<$engine, $kind>(
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                    env!("CARGO_PKG_DESCRIPTION"),
                )
            }
            extern "C" fn new_engine() -> $crate::__private::abi_stable::std_types::RResult<
                $crate::EngineBox,
                $crate::__private::abi_stable::std_types::RString,
            > {
                $crate::__private::new_engine::<$engine, $kind>($make)
            }
            static ROOT: ::std::sync::OnceLock<$crate::PluginModRef> = ::std::sync::OnceLock::new();
            *ROOT.get_or_init(|| {
                $crate::__private::root_module(info, $crate::__private::check_config::<$engine>, new_engine)
            })
        }

        // What `abi_stable`'s `#[export_root_module]` generates, written out
        // with paths through this crate so the plugin need not depend on
        // `abi_stable` itself. In an anonymous const, so nothing leaks into
        // the plugin's namespace.
        const _: () = {
            use $crate::__private::abi_stable::library::{
                __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
            };

            extern "C" fn erased_root_module() -> RootModuleResult {
                __call_root_module_loader(hearth_plugin_root_module)
            }

            /// The library header the host reads before running any code.
            #[unsafe(export_name = $crate::__root_module_symbol!())]
            pub static HEARTH_PLUGIN_HEADER: LibHeader =
                // SAFETY: `erased_root_module` returns the module made by
                // `hearth_plugin_root_module`, a `PluginModRef`, which is
                // the type named here, as `from_constructor` requires.
                unsafe {
                    LibHeader::from_constructor::<$crate::PluginModRef>(erased_root_module, CheckTypeLayout::Yes)
                };
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_symbol_is_the_one_abi_stable_looks_up() {
        assert_eq!(
            crate::__root_module_symbol!(),
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
