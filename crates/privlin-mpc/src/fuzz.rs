//! The fuzz harness: every decoder of peer input run on arbitrary bytes (the `cargo fuzz` target
//! `fuzz/fuzz_targets/decode.rs` and `tests/malformed.rs` call [`decode_everything`]). It sits
//! above the codec, the protocol, the model and HE, so that none of them imports the others for
//! its sake.

use crate::wire::Reader;

/// Runs every decoder of peer input on `data` (the fuzz target and the randomized test call this):
/// the hello and architecture, a frame through the channel, and each vector decoder.
pub fn decode_everything(data: &[u8]) {
    let _ = crate::protocol::Hello::decode(data);
    let _ = crate::model::Arch::from_bytes(data);
    use crate::net::Expect;
    for expect in [
        Expect::AtMost(1 << 16),
        Expect::Exact(data.len().saturating_sub(12) as u64),
    ] {
        let (mut a, b) = crate::net::mem::pair();
        if a.send_raw(data.to_vec()).is_ok() {
            let mut ch = crate::net::Channel::new(Box::new(b))
                .with_max_frame(1 << 16)
                .with_profile(crate::net::Profile::by_name("lan"));
            let _ = ch.recv("fuzz frame", expect);
        }
    }
    let n = data.first().copied().unwrap_or(0) as usize;
    for bits in [32, 41, 64] {
        let mut r = Reader::new(data, "fuzz");
        let _ = r.ring_vec(bits);
        let _ = r.blocks();
        let _ = r.bits();
        let _ = r.bytes();
        let _ = r.end();
        let mut r = Reader::new(data, "fuzz");
        let _ = r.ring_vec_n(bits, n, "ring");
        let _ = r.blocks_n(n, "blocks");
        let _ = r.bits_n(8 * n, "bits");
    }
    let _ = crate::protocol::argmax::Tables::decode(data, n, 3);
    decode_ot_relu(data, n);
    decode_silent_ot(data, n);
    decode_he(data, n);
}

/// The silent OT extension's decoders: a message of rounds (small parameters, so that a fuzz
/// input can have the right size) and the choice corrections.
fn decode_silent_ot(data: &[u8], n: usize) {
    use crate::ot::silent;
    let params = silent::LpnParams {
        t: n % 4 + 1,
        log_k: 4,
        depth: 2,
    };
    let _ = silent::decode_rounds(data, &params, n % 3);
    let _ = silent::decode_rounds(data, &silent::FERRET_B10, 1);
    let _ = silent::decode_corrections(data, 8 * n);
}

/// The OT ReLU decoders for a site of `n % 16 + 1` ReLUs ([`crate::nonlinear::ot_relu`]).
fn decode_ot_relu(data: &[u8], n: usize) {
    use crate::nonlinear::ot_relu;
    let Ok(shape) = ot_relu::Shape::new(&crate::Ring::default(), 12, 1 + n as u32 % 6, n % 16 + 1)
    else {
        return;
    };
    for t in 0..shape.plan.levels.len() {
        let _ = ot_relu::decode_tables(data, &shape, t);
    }
    let _ = ot_relu::decode_final(data, &shape);
    let _ = ot_relu::decode_mux(data, &shape);
}

/// The HE decoders: public key, ciphertext, packed coefficients, an answer at the client.
fn decode_he(data: &[u8], n: usize) {
    use crate::he::{codec, scheme, HeContext, HeParams};
    use rand::SeedableRng;
    static HE: std::sync::OnceLock<Option<(HeContext, scheme::SecretKey)>> =
        std::sync::OnceLock::new();
    let Some((ctx, sk)) = HE.get_or_init(|| {
        let ctx = HeContext::new(HeParams::default(), &crate::Ring::default()).ok()?;
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(1);
        let (sk, _) = scheme::SecretKey::generate(&ctx, &mut rng).ok()?;
        Some((ctx, sk))
    }) else {
        return;
    };
    let _ = scheme::PublicKey::decode(ctx, data);
    let _ = scheme::Ciphertext::decode(ctx, data, [0; 32], "fuzz");
    let _ = codec::unpack(ctx, 2, n, data, "fuzz");
    let c1 = codec::packed_len(ctx, ctx.params.kept as usize, ctx.degree());
    let at: Vec<usize> = (0..n).map(|i| i * 31 % ctx.degree()).collect();
    let (a, b) = data.split_at(c1.min(data.len()));
    let _ = sk.decrypt(ctx, a, b, &at, "fuzz");
}
