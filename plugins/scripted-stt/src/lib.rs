//! **Test fixture.** The scripted engine of `hearth-scripted`, exported as
//! a stt plugin, for tests and demos of the loading screen.

hearth_plugin_api::export_plugin!(stt: hearth_scripted::Scripted, hearth_scripted::Scripted::default);
