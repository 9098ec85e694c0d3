//! The plugin API's conformance kit, on the plugin's exported entry points
//! with the default `[vad.config]`.

use std::path::Path;

use hearth_plugin_api::{
    client::Module,
    testkit::conformance::{self, Options},
};

#[test]
fn the_plugin_passes_the_conformance_kit_with_the_default_config() {
    let options = Options {
        base_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
        ..Options::new("{}".to_owned())
    };
    let module = Module::new(hearth_vad_silero::hearth_plugin_root_module());
    conformance::run(&module, &options, &mut |c| println!("{c}")).assert_passed();
}
