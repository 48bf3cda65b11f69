//! Calibration of the HE offline phase for the cost model: single-thread seconds of its three
//! units, measured with the scheme itself on this machine.

use super::layout::Layout;
use super::params::{HeContext, HeParams};
use super::scheme::{self, Ciphertext, SecretKey};
use crate::error::Result;
use crate::ring::Ring;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Seconds on one thread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeSpeeds {
    /// One input polynomial: the client's encryption and the server's decoding and NTT.
    pub query_s: f64,
    /// One weight polynomial: encoding, NTT and the two products.
    pub product_s: f64,
    /// One answer: re-randomization, modulus switch, packing of `c1`, the client's decryption of
    /// `c1 s`; with [`HeSpeeds::answer_per_read_s`] for each coefficient the client reads.
    pub answer_s: f64,
    /// Each coefficient an answer carries: its flood and mask, its packed `c0`, its decoding.
    /// Zero when not measured (older calibrations, whose `answer_s` was taken at `N / 4`).
    #[serde(default)]
    pub answer_per_read_s: f64,
    /// One weight polynomial already in NTT form (the server's cache): the two products alone.
    /// Zero when not measured (older calibrations): then every layer is priced uncached.
    #[serde(default)]
    pub product_cached_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

impl HeSpeeds {
    /// Measures each unit five times and keeps the median.
    pub fn measure(params: HeParams, ring: &Ring) -> Result<HeSpeeds> {
        let ctx = HeContext::new(params, ring)?;
        let n = ctx.degree();
        let mut rng = ChaCha12Rng::seed_from_u64(11);
        let (sk, pk_msg) = SecretKey::generate(&ctx, &mut rng)?;
        let pk = scheme::PublicKey::decode(&ctx, &pk_msg)?;
        let m: Vec<u64> = (0..n).map(|_| ring.reduce(rng.gen())).collect();
        let w: Vec<i64> = (0..n).map(|_| rng.gen_range(-4096..4096)).collect();
        // Answers at two read counts: the cost of one answer is affine in what it carries.
        let few: Vec<usize> = (0..n).step_by(16).collect();
        let all: Vec<usize> = (0..n).collect();
        let mask: Vec<u64> = all.iter().map(|_| ring.reduce(rng.gen())).collect();
        let (mut q, mut p, mut a, mut pc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut a_all = Vec::new();
        let mut ct = None;
        for i in 0..5 {
            let t = Instant::now();
            let mut buf = Vec::new();
            let seed = [i as u8; 32];
            sk.encrypt(&ctx, &m, seed, &mut rng, &mut buf)?;
            ct = Some(Ciphertext::decode(&ctx, &buf, seed, "calibration")?);
            q.push(t.elapsed().as_secs_f64());
            // Eight weight polynomials against eight ciphertexts, as an answer accumulates them.
            let c = ct.as_ref().unwrap();
            let t = Instant::now();
            let ws = (0..8)
                .map(|_| scheme::weight_poly(&ctx, &w))
                .collect::<Result<Vec<_>>>()?;
            let cs = vec![&c.c0; 8];
            let ds = vec![&c.c1; 8];
            std::hint::black_box(fhe_math::rq::dot_product(cs.into_iter(), ws.iter()).ok());
            std::hint::black_box(fhe_math::rq::dot_product(ds.into_iter(), ws.iter()).ok());
            p.push(t.elapsed().as_secs_f64() / 8.0);
            // The same products with the weights already in NTT form.
            let t = Instant::now();
            let cs = vec![&c.c0; 8];
            let ds = vec![&c.c1; 8];
            std::hint::black_box(fhe_math::rq::dot_product(cs.into_iter(), ws.iter()).ok());
            std::hint::black_box(fhe_math::rq::dot_product(ds.into_iter(), ws.iter()).ok());
            pc.push(t.elapsed().as_secs_f64() / 8.0);
            let wp = ws.into_iter().next().unwrap();
            for (reads, into) in [(&few, &mut a), (&all, &mut a_all)] {
                let t = Instant::now();
                let mut out = Vec::new();
                scheme::answer(
                    &ctx,
                    &pk,
                    &[c],
                    &[&wp],
                    reads,
                    &mask[..reads.len()],
                    1 << 80,
                    &mut rng,
                    &mut out,
                )?;
                let c1 = super::codec::packed_len(&ctx, ctx.params.kept as usize, n);
                std::hint::black_box(sk.decrypt(
                    &ctx,
                    &out[..c1],
                    &out[c1..],
                    reads,
                    "calibration",
                )?);
                into.push(t.elapsed().as_secs_f64());
            }
        }
        drop(ct);
        let (a_few, a_all) = (median(a), median(a_all));
        let per_read = ((a_all - a_few) / (n - few.len()) as f64).max(0.0);
        Ok(HeSpeeds {
            query_s: median(q),
            product_s: median(p),
            answer_s: (a_few - per_read * few.len() as f64).max(0.0),
            answer_per_read_s: per_read,
            product_cached_s: median(pc),
        })
    }

    /// Predicted seconds of one layer's offline phase with `threads` per party: each unit runs in
    /// parallel over its ciphertexts.
    /// `cached`: the layer's weight polynomials are kept in NTT form by the server
    /// ([`crate::protocol::homomorphic::cached_layers`]).
    pub fn layer_s(&self, l: &Layout, threads: usize, cached: bool) -> f64 {
        let par = |count: usize| count.div_ceil(threads.max(1)) as f64;
        let product = if cached && self.product_cached_s > 0.0 {
            self.product_cached_s
        } else {
            self.product_s
        };
        // The coefficients an answer carries, on average over the layer's answers.
        let (ho, wo) = l.geom.out_hw();
        let reads = (l.geom.o * ho * wo) as f64 / l.answers().max(1) as f64;
        par(l.queries()) * self.query_s
            + par(l.answers())
                * (self.answer_s
                    + reads * self.answer_per_read_s
                    + l.products_per_answer() as f64 * product)
    }
}
