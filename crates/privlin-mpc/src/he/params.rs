//! Parameters of the RLWE scheme and their checks: the HE security standard's table, the RNS
//! primes, the constants of the plaintext ring `Z_t`, `t = 2^l`.

use crate::error::{MpcError, Result};
use crate::ring::Ring;
use fhe_math::rq::Context;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Largest `log2 Q` for a uniform ternary secret and error width `sigma ~ 3.2` at 128, 192 and
/// 256 bits of classical security: Albrecht et al., "Homomorphic Encryption Security Standard"
/// (HomomorphicEncryption.org, 2018), Table 1 (the values Microsoft SEAL enforces).
pub const SECURITY_TABLE: &[(usize, [u32; 3])] = &[
    (1024, [27, 19, 14]),
    (2048, [54, 37, 29]),
    (4096, [109, 75, 58]),
    (8192, [218, 152, 118]),
    (16384, [438, 305, 237]),
    (32768, [881, 611, 476]),
];

/// The error distribution: a centered binomial with `ETA` coin pairs (variance `ETA / 2 = 10.5`,
/// `sigma = 3.24`, at least the standard's 3.2), bounded by `ETA` in magnitude.
pub const ETA: u32 = 21;

/// Scheme parameters. The ciphertext modulus is `Q = q_1 ... q_kept * p_1 ... p_extra` (NTT-friendly
/// primes, `= 1 mod 2N`); the server's answers are switched down to `q_1 ... q_kept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeParams {
    /// Ring degree `N` (power of two).
    pub degree: usize,
    /// Primes kept after the modulus switch, and their bits.
    pub kept: u32,
    pub kept_bits: u32,
    /// Primes dropped by the modulus switch, and their bits.
    pub extra: u32,
    pub extra_bits: u32,
    /// Public bound on the server's fixed-point weights: `|w| < 2^weight_bits`. It sizes the
    /// flooding noise, so it must not depend on the model (a model over it is refused).
    pub weight_bits: u32,
    /// Statistical distance between the client's view of one answer ciphertext and one that does
    /// not depend on the weights: at most `2^-flood_bits`.
    pub flood_bits: u32,
    /// Required classical security in bits (128, 192 or 256).
    pub security: u32,
}

impl Default for HeParams {
    /// `N = 8192`, `log2 Q ~ 164` (2 x 44 + 2 x 38 bits, under the standard's 218 for 128-bit
    /// security), answers at `~88` bits; weights below `2^20` (256 at `f = 12`), 40 bits of
    /// statistical slack. Measured in docs/results.md ("Weight layers under homomorphic
    /// encryption").
    fn default() -> Self {
        HeParams {
            degree: 8192,
            kept: 2,
            kept_bits: 44,
            extra: 2,
            extra_bits: 38,
            weight_bits: 20,
            flood_bits: 40,
            security: 128,
        }
    }
}

impl HeParams {
    /// One line for reports and the hello: two parties must agree on it exactly.
    pub fn label(&self) -> String {
        format!(
            "he (RLWE, N={}, Q={}x{}+{}x{} bits -> {}x{}, |w|<2^{}, flood 2^-{} per answer, {}-bit security)",
            self.degree,
            self.kept,
            self.kept_bits,
            self.extra,
            self.extra_bits,
            self.kept,
            self.kept_bits,
            self.weight_bits,
            self.flood_bits,
            self.security
        )
    }

    /// Largest `log2 Q` the security standard allows for this degree and security level.
    pub fn max_log_q(&self) -> Result<u32> {
        let col = match self.security {
            128 => 0,
            192 => 1,
            256 => 2,
            s => {
                return Err(MpcError::Params(format!(
                    "HE security level {s} is not in the HE standard's table (128, 192, 256)"
                )))
            }
        };
        SECURITY_TABLE
            .iter()
            .find(|(n, _)| *n == self.degree)
            .map(|(_, b)| b[col])
            .ok_or_else(|| {
                MpcError::Params(format!(
                    "HE degree N = {} is not in the HE standard's table (1024 .. 32768)",
                    self.degree
                ))
            })
    }

    /// Checks everything that does not need a model (in checked arithmetic: a prime count times
    /// its bits that overflows `u32` is refused, not wrapped).
    pub fn validate(&self) -> Result<()> {
        let max = self.max_log_q()?;
        for (what, bits) in [("kept", self.kept_bits), ("extra", self.extra_bits)] {
            if !(20..=62).contains(&bits) {
                return Err(MpcError::Params(format!(
                    "HE {what} prime bits {bits} must lie in 20..=62"
                )));
            }
        }
        let mul = |a: u32, b: u32| a.saturating_mul(b);
        if self.kept == 0 || mul(self.kept, self.kept_bits) > 124 {
            return Err(MpcError::Params(format!(
                "HE answers at {} x {} bits: need at least one prime and at most 124 bits",
                self.kept, self.kept_bits
            )));
        }
        let log_q = mul(self.kept, self.kept_bits).saturating_add(mul(self.extra, self.extra_bits));
        if log_q > max {
            return Err(MpcError::Params(format!(
                "HE modulus of {log_q} bits at N = {} gives less than {}-bit security: the HE \
                 standard allows at most {max} bits",
                self.degree, self.security
            )));
        }
        if self.security < 128 {
            return Err(MpcError::Params(format!(
                "HE security {} is below 128 bits",
                self.security
            )));
        }
        if !(1..=40).contains(&self.weight_bits) || self.flood_bits < 40 {
            return Err(MpcError::Params(format!(
                "HE weight bound 2^{} must lie in 2^1..2^40 and the flooding slack ({} bits) must \
                 be at least 40 bits",
                self.weight_bits, self.flood_bits
            )));
        }
        Ok(())
    }
}

/// The contexts and constants both parties derive from [`HeParams`] and the ring.
pub struct HeContext {
    pub params: HeParams,
    /// The plaintext modulus is the ring's, `t = 2^l`.
    pub ring: Ring,
    /// All primes, kept ones first.
    pub moduli: Vec<u64>,
    pub full: Arc<Context>,
    pub kept: Arc<Context>,
    /// `log2 Q` and `log2 q'` (the kept product).
    pub log_q: f64,
    pub log_qk: f64,
    /// `q'` as an integer (below `2^124`).
    pub qk: u128,
    /// `q_1^-1 mod q_2` when two primes are kept (CRT).
    qk_crt: u64,
    /// `Q mod t`.
    pub q_mod_t: u64,
    /// `t^-1 mod q_i` for every prime.
    pub t_inv: Vec<u64>,
}

fn mul_mod(a: u64, b: u64, q: u64) -> u64 {
    ((a as u128 * b as u128) % q as u128) as u64
}

fn pow_mod(mut a: u64, mut e: u64, q: u64) -> u64 {
    let mut r = 1u64;
    a %= q;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, a, q);
        }
        a = mul_mod(a, a, q);
        e >>= 1;
    }
    r
}

/// `a^-1 mod q` for a prime `q`.
pub(crate) fn inv_mod(a: u64, q: u64) -> u64 {
    pow_mod(a, q - 2, q)
}

/// `count` distinct NTT-friendly primes of `bits` bits below `below`, largest first.
fn primes(bits: u32, count: u32, two_n: u64, mut below: u64) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for _ in 0..count {
        let p =
            fhe_math::zq::primes::generate_prime(bits as usize, two_n, below).ok_or_else(|| {
                MpcError::Params(format!(
                    "no {bits}-bit prime = 1 mod {two_n} left below {below}"
                ))
            })?;
        out.push(p);
        below = p;
    }
    Ok(out)
}

impl HeContext {
    /// Validates the parameters (security table included) and builds the contexts for the ring.
    pub fn new(params: HeParams, ring: &Ring) -> Result<Self> {
        params.validate()?;
        ring.validate()?;
        let two_n = 2 * params.degree as u64;
        let mut moduli = primes(params.kept_bits, params.kept, two_n, 1 << params.kept_bits)?;
        let top = if params.extra_bits == params.kept_bits {
            *moduli.last().unwrap()
        } else {
            1 << params.extra_bits
        };
        moduli.extend(primes(params.extra_bits, params.extra, two_n, top)?);
        let he = |e: fhe_math::Error| MpcError::Params(format!("HE context: {e}"));
        let full = Context::new_arc(&moduli, params.degree).map_err(he)?;
        let kept = full.context_at_level(params.extra as usize).map_err(he)?;
        let log_q = moduli.iter().map(|&q| (q as f64).log2()).sum();
        let kept_moduli = &moduli[..params.kept as usize];
        let log_qk = kept_moduli.iter().map(|&q| (q as f64).log2()).sum();
        let qk = kept_moduli.iter().fold(1u128, |a, &q| a * q as u128);
        let qk_crt = if params.kept == 2 {
            inv_mod(moduli[0] % moduli[1], moduli[1])
        } else {
            0
        };
        if params.kept > 2 {
            return Err(MpcError::Params(
                "HE answers with more than two primes are not supported".into(),
            ));
        }
        let q_mod_t = moduli.iter().fold(1u64, |a, &q| a.wrapping_mul(q)) & ring.mask();
        let t_inv = moduli
            .iter()
            .map(|&q| inv_mod(pow_mod(2, ring.bits as u64, q), q))
            .collect();
        Ok(HeContext {
            params,
            ring: *ring,
            moduli,
            full,
            kept,
            log_q,
            log_qk,
            qk,
            qk_crt,
            q_mod_t,
            t_inv,
        })
    }

    pub fn degree(&self) -> usize {
        self.params.degree
    }

    /// `Delta(m) = round(Q m / t) mod q_i` for `m` in `Z_t` (the encoding without a
    /// `t`-dependent noise term): with `r = Q m mod t`, `round(Q m / t) = (Q m - r) / t +
    /// [r >= t/2]`, and `Q m = 0 mod q_i`.
    /// Barrett arithmetic (constant time) modulo each prime.
    pub fn delta(&self, m: u64, i: usize) -> u64 {
        let q = &self.full.moduli_operators()[i];
        let r = self.q_mod_t.wrapping_mul(m) & self.ring.mask();
        let neg = q.mul(q.reduce(r), self.t_inv[i]);
        let up = (r >> (self.ring.bits - 1)) & 1;
        q.add(q.neg(neg), up)
    }

    /// Decodes one coefficient at the kept modulus: `round(t v / q') mod t` from its residues.
    pub fn decode(&self, residues: &[u64]) -> u64 {
        let v: u128 = if self.params.kept == 2 {
            let (q0, q1) = (self.moduli[0], self.moduli[1]);
            let d = (residues[1] + q1 - residues[0] % q1) % q1;
            residues[0] as u128 + q0 as u128 * mul_mod(d, self.qk_crt, q1) as u128
        } else {
            residues[0] as u128
        };
        // Long division of v * 2^l by q' (v < q' < 2^124), as many quotient bits per step as
        // keep the shifted remainder within 128 bits (40 at the default 88-bit q').
        let chunk = self.qk.leading_zeros();
        let mut rem = v;
        let mut quo = 0u64;
        let mut left = self.ring.bits;
        while left > 0 {
            let c = chunk.min(left);
            rem <<= c;
            let d = rem / self.qk;
            rem -= d * self.qk;
            quo = if c >= 64 {
                d as u64
            } else {
                (quo << c) | d as u64
            };
            left -= c;
        }
        let round = (2 * rem >= self.qk) as u64;
        quo.wrapping_add(round) & self.ring.mask()
    }

    /// Bits of each kept / every prime on the wire.
    pub fn bits_of(&self, i: usize) -> u32 {
        64 - self.moduli[i].leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every parameter set the standard's table forbids is refused before any work.
    #[test]
    fn refusals_name_the_bound() {
        let ring = Ring::default();
        for (p, needle) in [
            (
                HeParams {
                    extra: 4,
                    extra_bits: 40,
                    ..Default::default()
                },
                "at most 218 bits",
            ),
            (
                HeParams {
                    degree: 4096,
                    ..Default::default()
                },
                "at most 109 bits",
            ),
            (
                HeParams {
                    degree: 3000,
                    ..Default::default()
                },
                "not in the HE standard",
            ),
            (
                HeParams {
                    security: 80,
                    ..Default::default()
                },
                "not in the HE standard",
            ),
            (
                HeParams {
                    flood_bits: 20,
                    ..Default::default()
                },
                "at least 40 bits",
            ),
        ] {
            let err = HeContext::new(p, &ring).err().expect("refused").to_string();
            assert!(err.contains(needle), "{err}");
        }
        let c = HeContext::new(HeParams::default(), &ring).unwrap();
        assert!(c.log_q < 218.0 && c.log_q > 160.0, "{}", c.log_q);
        assert!(c.log_qk > 86.0 && c.log_qk < 88.0, "{}", c.log_qk);
        assert!(c.moduli.iter().all(|&q| q % 16384 == 1));
    }

    /// `Delta(m)` is `round(Q m / t)` and `decode` inverts `round(q' m / t)`, both against
    /// big-integer arithmetic, for `l = 64` and an odd `l`.
    #[test]
    fn delta_and_decode_against_big_integers() {
        use num_bigint::BigUint;
        for ring in [Ring::default(), Ring::new(37, 12, 26).unwrap()] {
            let c = HeContext::new(HeParams::default(), &ring).unwrap();
            let mask = ring.mask();
            let big_q = c.moduli.iter().fold(BigUint::from(1u8), |a, &q| a * q);
            let half = BigUint::from(1u8) << (ring.bits - 1);
            for m in [
                0u64,
                1,
                2,
                mask,
                mask / 2,
                mask / 2 + 1,
                0x1234_5678_9abc & mask,
            ] {
                let delta = (&big_q * m + &half) >> ring.bits;
                for (i, &q) in c.moduli.iter().enumerate() {
                    let want = u64::try_from(&delta % q).unwrap();
                    assert_eq!(c.delta(m, i), want, "m {m} prime {i}");
                }
                let delta_k = (BigUint::from(c.qk) * m + &half) >> ring.bits;
                let residues: Vec<u64> = c.moduli[..c.params.kept as usize]
                    .iter()
                    .map(|&q| u64::try_from(&delta_k % q).unwrap())
                    .collect();
                assert_eq!(c.decode(&residues), m, "m {m}");
            }
        }
    }

    /// `decode` is `round(t v / q') mod t` for any residues, not only exact encodings: random
    /// values and the rounding boundaries, one and two kept primes, against big integers.
    #[test]
    fn decode_rounds_every_value_against_big_integers() {
        use num_bigint::BigUint;
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(5);
        let one = HeParams {
            kept: 1,
            kept_bits: 60,
            extra: 2,
            extra_bits: 50,
            ..HeParams::default()
        };
        for (params, ring) in [
            (HeParams::default(), Ring::default()),
            (HeParams::default(), Ring::new(37, 12, 26).unwrap()),
            (one, Ring::default()),
        ] {
            let c = HeContext::new(params, &ring).unwrap();
            let k = c.params.kept as usize;
            let qk = BigUint::from(c.qk);
            let t = BigUint::from(1u8) << ring.bits;
            let mut values: Vec<u128> = (0..2000).map(|_| rng.gen::<u128>() % c.qk).collect();
            // Values next to a rounding boundary: v with t v = (j + 1/2) q' +- small.
            for j in [0u64, 1, 12345, ring.mask() - 1] {
                let mid = ((BigUint::from(j) * 2u8 + 1u8) * &qk) / (BigUint::from(2u8) * &t);
                let mid = u128::try_from(mid).unwrap();
                values.extend([mid.saturating_sub(1), mid, mid + 1, mid + 2]);
            }
            values.extend([0, c.qk - 1]);
            for v in values {
                let want = ((BigUint::from(v) * &t * 2u8 + &qk) / (BigUint::from(2u8) * &qk)) % &t;
                let residues: Vec<u64> = c.moduli[..k]
                    .iter()
                    .map(|&q| (v % q as u128) as u64)
                    .collect();
                assert_eq!(
                    BigUint::from(c.decode(&residues)),
                    want,
                    "v {v} with {k} kept primes"
                );
            }
        }
    }
}
