//! **Test fixture.** The scripted engine of `hearth-scripted`, exported as
//! a tts plugin, for tests and demos of the loading screen.

hearth_plugin_api::export_plugin!(tts: hearth_scripted::Scripted, hearth_scripted::Scripted::default);
