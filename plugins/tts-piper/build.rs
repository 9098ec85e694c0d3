//! Generates the ONNX protobuf types (`prost`) from the vendored
//! `proto/onnx.proto`, compiled by `protox` (pure Rust, so the build needs
//! no `protoc`). `graph.rs` uses them to rewrite a voice's graph at load.

fn main() {
    let proto = "proto/onnx.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = match protox::compile([proto], ["proto"]) {
        Ok(descriptors) => descriptors,
        Err(e) => panic!("cannot compile {proto}: {e}"),
    };
    if let Err(e) = prost_build::Config::new().compile_fds(descriptors) {
        panic!("cannot generate the ONNX types from {proto}: {e}");
    }
}
