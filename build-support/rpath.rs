// Shared by the build scripts of every crate that links libtorch (included with `include!`).
//
// torch-sys (crate `links = "tch"`) exports the libtorch library directory as
// `DEP_TCH_LIBTORCH_LIB`. Binaries built from this crate get
//  * an RPATH to that directory (so nothing has to be exported by hand), plus a fallback RPATH to
//    the system PyTorch of the GPU machines (`/opt/torch/.venv`), and
//  * `libtorch` linked with `--no-as-needed`: otherwise the linker drops `libtorch.so` (and with it
//    `libtorch_cuda.so`), because no Rust symbol references it directly, and CUDA never loads.
fn emit_libtorch_link_args() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    for extra in [
        "/opt/torch/.venv/lib/python3.12/site-packages/torch/lib",
        "/opt/torch/.venv/lib/python3.11/site-packages/torch/lib",
    ] {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{extra}");
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
}
