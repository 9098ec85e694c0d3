//! The plugin API's conformance kit, on the plugin's exported entry points
//! with the default `[stt.config]` of `plugins.toml`.

use hearth_plugin_api::testkit::conformance::{self, Options};
use serde_json::json;

use crate::util::{self, module, MODEL};

#[test]
fn the_plugin_passes_the_conformance_kit_with_the_default_config() {
    util::model_path();
    let options = Options {
        base_dir: util::root(),
        ..Options::new(json!({"model": MODEL, "language": "en"}).to_string())
    };
    conformance::run(&module(), &options, &mut |c| println!("{c}")).assert_passed();
}
