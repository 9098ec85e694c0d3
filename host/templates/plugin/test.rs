//! The engine checked by Hearth's conformance kit, through the entry
//! points the plugin exports (as `hearth plugin test` does with the built
//! library).

use hearth_plugin_api::{client::Module, testkit::conformance};

#[test]
fn passes_the_conformance_kit() {
    let module = Module::new({{lib}}::hearth_plugin_root_module());
    let options = conformance::Options::new("{}");
    let report = conformance::run(&module, &options, &mut |check| println!("{check}"));
    report.assert_passed();
}

#[test]
fn refuses_a_misspelt_setting() {
    let module = Module::new({{lib}}::hearth_plugin_root_module());
    let error = module.check_config(r#"{"no_such_setting": 1}"#).unwrap_err();
    assert!(error.contains("no_such_setting"), "{error}");
}
