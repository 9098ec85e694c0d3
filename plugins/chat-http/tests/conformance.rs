//! The plugin API's conformance kit, on the plugin's exported entry points
//! with the default `[chat.config]` of `plugins.toml` (a llama-server the
//! plugin starts itself), on a free port.

mod util;

use hearth_plugin_api::{
    client::Module,
    testkit::conformance::{self, Options},
};
use util::{default_config, free_port, repo_root};

#[test]
fn the_plugin_passes_the_conformance_kit_with_the_default_config() {
    let options = Options {
        base_dir: repo_root(),
        ..Options::new(default_config(free_port(), 160).to_string())
    };
    let module = Module::new(hearth_chat_http::hearth_plugin_root_module());
    conformance::run(&module, &options, &mut |c| println!("{c}")).assert_passed();
}
