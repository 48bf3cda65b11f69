//! `cargo +nightly fuzz run decode` (from crates/privlin-mpc): every message decoder on arbitrary
//! bytes must return an error or a value, never panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    privlin_mpc::fuzz::decode_everything(data);
});
