//! Compiles the official `onnx.proto` (ONNX 1.23, copied unchanged from the `onnx` wheel; Apache-2.0)
//! into Rust types with prost, through protox so that no `protoc` binary is needed.

fn main() {
    let proto = "proto/onnx.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"]).expect("compiling proto/onnx.proto");
    prost_build::Config::new()
        .compile_fds(fds)
        .expect("generating the ONNX types");
}
