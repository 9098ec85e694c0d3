//! The plugin API's conformance kit, on the plugin's exported entry points
//! with the default `[tts.config]` of `plugins.toml`.

mod util;

use hearth_plugin_api::{
    client::Module,
    testkit::conformance::{self, Options},
};
use serde_json::json;

#[test]
fn the_plugin_passes_the_conformance_kit_with_the_default_config() {
    util::models();
    // As in plugins.toml, relative to the repository root.
    let config = json!({
        "voice": "models/piper/en_US-joe-medium.onnx",
        "runtime": "models/onnxruntime/libonnxruntime.so.1.32.0",
    });
    let options = Options {
        base_dir: util::repo_root(),
        ..Options::new(config.to_string())
    };
    let module = Module::new(hearth_tts_piper::hearth_plugin_root_module());
    conformance::run(&module, &options, &mut |c| println!("{c}")).assert_passed();
}
