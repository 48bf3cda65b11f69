include!("../../build-support/rpath.rs");

fn main() {
    emit_libtorch_link_args();
}
