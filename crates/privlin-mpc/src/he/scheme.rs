//! The RLWE scheme over the plaintext ring `Z_t`, `t = 2^l` (BFV-style, Fan-Vercauteren 2012,
//! with the `round(Q m / t)` encoding), in the two roles of the offline phase:
//!
//! * the client keeps a ternary secret `s`, publishes `pk = (p0, p1) = (-p1 s + e, p1)` (`p1` from a
//!   seed) and encrypts its masks with the secret key: `c0 = Delta(m) + e - a s`, `a` from a seed,
//!   so only `c0` and a seed travel;
//! * the server multiplies by its weight polynomials ([`super::layout`]), re-randomizes with a
//!   public-key encryption of zero *at the full modulus* (so `c1` no longer reveals `w a`, and the
//!   switch's rounding is independent of the weights), subtracts `Delta(s)` for its mask `s`,
//!   floods the coefficients the client will read, switches down to `q'` and sends `c1` and those
//!   coefficients of `c0` (DELPHI's offline phase, Mishra et al. 2020, section 5; circuit privacy
//!   by noise flooding, Gentry 2009).
//!
//! The client decrypts `W v - s mod t` coefficient by coefficient.

use super::codec::{pack, packed_len, unpack};
use super::params::HeContext;
use super::sample;
use crate::error::{MpcError, Result};
use fhe_math::rq::traits::TryConvertFrom;
use fhe_math::rq::{Context, Poly, Representation};
use rand::Rng;
use rand_chacha::ChaCha12Rng;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use zeroize::Zeroize;

fn internal(e: fhe_math::Error) -> MpcError {
    MpcError::Protocol(format!("HE arithmetic: {e}"))
}

/// A power-basis polynomial from small signed coefficients.
fn small(ctx: &Arc<Context>, v: &[i64]) -> Result<Poly> {
    Poly::try_convert_from(v, ctx, false, Representation::PowerBasis).map_err(internal)
}

/// A power-basis polynomial from RNS residues (limb-major).
fn residues(ctx: &Arc<Context>, v: Vec<u64>) -> Result<Poly> {
    Poly::try_convert_from(v, ctx, false, Representation::PowerBasis).map_err(internal)
}

/// Limb-major residues of a polynomial.
fn rns(p: &Poly) -> Vec<u64> {
    p.coefficients().iter().copied().collect()
}

/// The uniform polynomial of a seed, in NTT form (uniform there too).
pub fn uniform(ctx: &Arc<Context>, seed: [u8; 32]) -> Poly {
    Poly::random_from_seed(ctx, Representation::Ntt, seed)
}

/// The seed of ciphertext `i` of a message with seed `seed`.
pub fn seed_of(seed: &[u8; 32], i: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"privlin-he-ct");
    h.update(seed);
    h.update((i as u64).to_le_bytes());
    h.finalize().into()
}

/// The client's secret key, in NTT form at both moduli. Zeroized when dropped.
pub struct SecretKey {
    full: Poly,
    kept: Poly,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.full.zeroize();
        self.kept.zeroize();
    }
}

/// The server's copy of the client's public key, in NTT form.
pub struct PublicKey {
    p0: Poly,
    p1: Poly,
}

/// Bytes of the public-key message: the seed of `p1` and `p0` at the full modulus.
pub fn public_key_len(he: &HeContext) -> usize {
    32 + packed_len(he, he.moduli.len(), he.degree())
}

impl SecretKey {
    /// A fresh key and the public-key message for the server.
    pub fn generate(he: &HeContext, rng: &mut ChaCha12Rng) -> Result<(SecretKey, Vec<u8>)> {
        let n = he.degree();
        let mut s = sample::ternary(rng, n);
        let mut full = small(&he.full, &s)?;
        let mut kept = small(&he.kept, &s)?;
        s.zeroize();
        full.change_representation(Representation::Ntt);
        kept.change_representation(Representation::Ntt);
        let sk = SecretKey { full, kept };
        let seed: [u8; 32] = rng.gen();
        let p1 = uniform(&he.full, seed);
        let e = small(&he.full, &sample::cbd(rng, n))?;
        let p0 = &e - &sk.times(&p1);
        let mut msg = seed.to_vec();
        pack(he, he.moduli.len(), n, &rns(&p0), &mut msg);
        Ok((sk, msg))
    }

    /// `a s` in power basis at the full modulus, for `a` in NTT form.
    fn times(&self, a: &Poly) -> Poly {
        let mut p = a * &self.full;
        p.change_representation(Representation::PowerBasis);
        p
    }

    /// `c0 = Delta(m) + e - a s` for the plaintext coefficients `m` (in `Z_t`), packed.
    pub fn encrypt(
        &self,
        he: &HeContext,
        m: &[u64],
        seed: [u8; 32],
        rng: &mut ChaCha12Rng,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let n = he.degree();
        let mut d = Vec::with_capacity(he.moduli.len() * n);
        for i in 0..he.moduli.len() {
            d.extend(m.iter().map(|&v| he.delta(v, i)));
        }
        let mut c0 = residues(&he.full, d)?;
        c0 += &small(&he.full, &sample::cbd(rng, n))?;
        c0 -= &self.times(&uniform(&he.full, seed));
        pack(he, he.moduli.len(), n, &rns(&c0), out);
        Ok(())
    }

    /// Decrypts the coefficients `at` of an answer: `c1` (all `N` coefficients at `q'`) and the
    /// matching `c0` coefficients, both packed as the server sent them.
    pub fn decrypt(
        &self,
        he: &HeContext,
        c1: &[u8],
        c0: &[u8],
        at: &[usize],
        what: &str,
    ) -> Result<Vec<u64>> {
        let (n, k) = (he.degree(), he.params.kept as usize);
        let mut c1 = residues(&he.kept, unpack(he, k, n, c1, what)?)?;
        let c0 = unpack(he, k, at.len(), c0, what)?;
        c1.change_representation(Representation::Ntt);
        c1 *= &self.kept;
        c1.change_representation(Representation::PowerBasis);
        let cs = c1.coefficients();
        let ops = he.kept.moduli_operators();
        let mut r = vec![0u64; k];
        Ok(at
            .iter()
            .enumerate()
            .map(|(j, &coef)| {
                for (i, ri) in r.iter_mut().enumerate() {
                    *ri = ops[i].add(c0[i * at.len() + j], cs[[i, coef]]);
                }
                he.decode(&r)
            })
            .collect())
    }
}

impl PublicKey {
    pub fn decode(he: &HeContext, msg: &[u8]) -> Result<PublicKey> {
        let what = "HE public key";
        if msg.len() != public_key_len(he) {
            return Err(MpcError::malformed(
                what,
                format!("{} bytes, expected {}", msg.len(), public_key_len(he)),
            ));
        }
        let seed: [u8; 32] = msg[..32].try_into().unwrap();
        let mut p0 = residues(
            &he.full,
            unpack(he, he.moduli.len(), he.degree(), &msg[32..], what)?,
        )?;
        p0.change_representation(Representation::Ntt);
        Ok(PublicKey {
            p0,
            p1: uniform(&he.full, seed),
        })
    }
}

/// A client ciphertext on the server: `(c0, c1)` in NTT form.
pub struct Ciphertext {
    pub c0: Poly,
    pub c1: Poly,
}

impl Ciphertext {
    /// From the packed `c0` and the ciphertext's seed.
    pub fn decode(he: &HeContext, c0: &[u8], seed: [u8; 32], what: &str) -> Result<Self> {
        let k = he.moduli.len();
        let mut c0 = residues(&he.full, unpack(he, k, he.degree(), c0, what)?)?;
        c0.change_representation(Representation::Ntt);
        Ok(Ciphertext {
            c0,
            c1: uniform(&he.full, seed),
        })
    }
}

/// A weight polynomial in NTT form from signed coefficients.
pub fn weight_poly(he: &HeContext, w: &[i64]) -> Result<Poly> {
    let mut p = small(&he.full, w)?;
    p.change_representation(Representation::Ntt);
    Ok(p)
}

/// The server's answer for one output polynomial: `sum_b ct_b w_b`, re-randomized, minus
/// `Delta(mask)` and plus a flood in `[-flood, flood]` at the coefficients `reads`, switched down;
/// packed as `c1` (all coefficients) then `c0` at `reads`.
#[allow(clippy::too_many_arguments)]
pub fn answer(
    he: &HeContext,
    pk: &PublicKey,
    cts: &[&Ciphertext],
    weights: &[&Poly],
    reads: &[usize],
    mask: &[u64],
    flood: u128,
    rng: &mut ChaCha12Rng,
    out: &mut Vec<u8>,
) -> Result<()> {
    let n = he.degree();
    let dot = |f: fn(&Ciphertext) -> &Poly| {
        fhe_math::rq::dot_product(cts.iter().map(|c| f(c)), weights.iter().copied())
            .map_err(internal)
    };
    let mut c0 = dot(|c| &c.c0)?;
    let mut c1 = dot(|c| &c.c1)?;
    let mut u = small(&he.full, &sample::ternary(rng, n))?;
    u.change_representation(Representation::Ntt);
    c0 += &(&pk.p0 * &u);
    c1 += &(&pk.p1 * &u);
    c0.change_representation(Representation::PowerBasis);
    c1.change_representation(Representation::PowerBasis);
    c0 += &small(&he.full, &sample::cbd(rng, n))?;
    c1 += &small(&he.full, &sample::cbd(rng, n))?;
    let ops = he.full.moduli_operators();
    let limbs = ops.len();
    // The flood `f = v - flood` with `v` uniform in `[0, 2 flood]`, reduced by Barrett
    // (constant time, no 128-bit division).
    let offset: Vec<u64> = ops.iter().map(|q| q.reduce_u128(flood)).collect();
    let mut fix = vec![0u64; limbs * n];
    for (&coef, &s) in reads.iter().zip(mask) {
        let v = sample::flood_offset(rng, flood);
        for (i, q) in ops.iter().enumerate() {
            let fq = q.sub(q.reduce_u128(v), offset[i]);
            fix[i * n + coef] = q.sub(fq, he.delta(s, i));
        }
    }
    c0 += &residues(&he.full, fix)?;
    switch_down(he, &mut c0)?;
    switch_down(he, &mut c1)?;
    let k = he.params.kept as usize;
    pack(he, k, n, &rns(&c1), out);
    let c0v = c0.coefficients();
    let mut sel = Vec::with_capacity(k * reads.len());
    for i in 0..k {
        sel.extend(reads.iter().map(|&coef| c0v[[i, coef]]));
    }
    pack(he, k, reads.len(), &sel, out);
    Ok(())
}

/// Switches a full-modulus power-basis polynomial down to the kept primes, one prime at a time
/// (`Poly::switch_down`; `switch_down_to` would clone and compare whole contexts on every call).
fn switch_down(he: &HeContext, p: &mut Poly) -> Result<()> {
    for _ in 0..he.params.extra {
        p.switch_down().map_err(internal)?;
    }
    debug_assert!(Arc::ptr_eq(p.ctx(), &he.kept) || **p.ctx() == *he.kept);
    Ok(())
}

/// Bytes of one answer carrying `reads` coefficients of `c0`.
pub fn answer_len(he: &HeContext, reads: usize) -> usize {
    let k = he.params.kept as usize;
    packed_len(he, k, he.degree()) + packed_len(he, k, reads)
}
