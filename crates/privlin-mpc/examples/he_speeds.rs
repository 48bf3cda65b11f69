//! Prints the HE offline phase's unit costs on this machine (one thread): `cargo run --release
//! -p privlin-mpc --example he_speeds`.
fn main() {
    let s = privlin_mpc::he::speed::HeSpeeds::measure(Default::default(), &Default::default())
        .expect("default parameters");
    println!(
        "query {:.2} ms, product {:.2} ms ({:.2} ms cached), answer {:.2} ms + {:.1} ns per \
         coefficient read, per polynomial (one thread)",
        s.query_s * 1e3,
        s.product_s * 1e3,
        s.product_cached_s * 1e3,
        s.answer_s * 1e3,
        s.answer_per_read_s * 1e9
    );
}
