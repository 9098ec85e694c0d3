//! **Test fixture.** The scripted engine of `hearth-scripted`, exported as
//! a tts plugin, for tests and demos of the loading screen.

hearth_plugin_api::export_plugin!(tts: hearth_scripted::Scripted, hearth_scripted::Scripted::default);

// Crashes inside `dlopen` when HEARTH_SCRIPTED_CONSTRUCTOR_CRASH is set.
hearth_scripted::install_constructor_crash!();
