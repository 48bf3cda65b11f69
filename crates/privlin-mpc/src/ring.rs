//! Fixed-point numbers in the ring `Z_2^l` (DELPHI section 4; SecureML section 3).
//!
//! A real `x` is stored as `round(x * 2^s) mod 2^l` where the scale `s` is a multiple of the
//! fractional bits `f`: products of two values at scale `f` are at `2f` until truncated.
//! Elements are kept in a `u64` reduced mod `2^l` (`32 <= l <= 64`).

use crate::error::{MpcError, Result};
use serde::{Deserialize, Serialize};

/// The ring `Z_2^bits` with `frac` fractional bits, and the width of the garbled ReLU circuits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    /// `l`: bits of a share.
    pub bits: u32,
    /// `f`: fractional bits of activations and weights.
    pub frac: u32,
    /// `w`: low bits of each share that enter a ReLU circuit. Exact whenever the pre-activation
    /// satisfies `|y| < 2^(w-1)` at its scale; the plaintext reference applies the same rule
    /// (sign-extension from `w` bits), so two-party and plaintext results agree for every input.
    pub gc_bits: u32,
}

impl Default for Ring {
    /// `l = 64` (local truncation of identity positions fails with probability about
    /// `2^(w - l)` per position, SecureML Thm. 1), `f = 12`, `w = 32` (pre-activations up to
    /// `2^(w - 1 - 2f) = 128` in magnitude; measured on CIFAR-10, see docs/results.md).
    fn default() -> Self {
        Ring {
            bits: 64,
            frac: 12,
            gc_bits: 32,
        }
    }
}

impl Ring {
    pub fn new(bits: u32, frac: u32, gc_bits: u32) -> Result<Self> {
        let r = Ring {
            bits,
            frac,
            gc_bits,
        };
        r.validate()?;
        Ok(r)
    }

    pub fn validate(&self) -> Result<()> {
        if !(32..=64).contains(&self.bits) {
            return Err(MpcError::Params(format!(
                "ring bits l = {} must lie in 32..=64",
                self.bits
            )));
        }
        if self.frac == 0 || self.frac.saturating_mul(3) >= self.bits {
            return Err(MpcError::Params(format!(
                "fractional bits f = {} must satisfy 0 < 3f < l = {}",
                self.frac, self.bits
            )));
        }
        if self.gc_bits < self.frac.saturating_mul(2).saturating_add(2) || self.gc_bits > self.bits
        {
            return Err(MpcError::Params(format!(
                "circuit width w = {} must satisfy 2f + 2 = {} <= w <= l = {}",
                self.gc_bits,
                2 * self.frac + 2,
                self.bits
            )));
        }
        Ok(())
    }

    #[inline]
    pub fn mask(&self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    #[inline]
    pub fn reduce(&self, x: u64) -> u64 {
        x & self.mask()
    }

    /// The element as a signed integer in `[-2^(l-1), 2^(l-1))`.
    #[inline]
    pub fn signed(&self, x: u64) -> i64 {
        let sh = 64 - self.bits;
        ((x << sh) as i64) >> sh
    }

    #[inline]
    pub fn from_signed(&self, v: i64) -> u64 {
        self.reduce(v as u64)
    }

    /// `round(x * 2^scale)`, or an error naming `what` when it does not fit in `l - 1` bits.
    pub fn encode(&self, x: f64, scale: u32, what: &str) -> Result<u64> {
        let v = (x * f64::powi(2.0, scale as i32)).round();
        let lim = f64::powi(2.0, self.bits as i32 - 1);
        if !v.is_finite() || v.abs() >= lim {
            return Err(MpcError::model(format!(
                "{what}: value {x} does not fit in the ring (l = {}, scale 2^{scale})",
                self.bits
            )));
        }
        Ok(self.from_signed(v as i64))
    }

    pub fn decode(&self, x: u64, scale: u32) -> f64 {
        self.signed(x) as f64 / f64::powi(2.0, scale as i32)
    }

    /// Exact truncation by `shift` bits: `floor(y / 2^shift)` of the signed value.
    #[inline]
    pub fn truncate(&self, y: u64, shift: u32) -> u64 {
        self.from_signed(self.signed(y) >> shift)
    }

    /// `2^(shift - 1)`: added to a value (by the server, to its share: free) before a floor
    /// truncation by `shift`, it makes the truncation round to nearest (half up), which removes
    /// floor's bias of half a unit in the last place per layer. Zero for `shift = 0` (a site on a
    /// value already at scale `f`, e.g. the input: nothing is truncated).
    #[inline]
    pub fn half(&self, shift: u32) -> u64 {
        match shift {
            0 => 0,
            s => 1u64 << (s - 1),
        }
    }

    /// The garbled circuit's view of `y`: its low `w` bits, sign-extended.
    #[inline]
    pub fn sext_gc(&self, y: u64) -> i64 {
        let sh = 64 - self.gc_bits;
        ((y << sh) as i64) >> sh
    }

    /// What an active site with an upper bound computes: `min(ReLU(y) >> shift, cap)`.
    #[inline]
    pub fn relu_trunc_capped(&self, y: u64, shift: u32, cap: Option<u64>) -> u64 {
        let z = self.relu_trunc(y, shift);
        cap.map_or(z, |c| z.min(c))
    }

    /// What an active site computes: `ReLU(y) >> shift` on the circuit's `w`-bit view of `y`.
    #[inline]
    pub fn relu_trunc(&self, y: u64, shift: u32) -> u64 {
        let v = self.sext_gc(y);
        if v < 0 {
            0
        } else {
            (v >> shift) as u64
        }
    }

    /// Local truncation of the server's share (SecureML Thm. 1, party 0): `floor(a / 2^shift)`.
    #[inline]
    pub fn truncate_share_server(&self, a: u64, shift: u32) -> u64 {
        a >> shift
    }

    /// Local truncation of the client's share (SecureML Thm. 1, party 1):
    /// `2^l - floor((2^l - b) / 2^shift)`. With the server's half, the sum is `floor(y / 2^shift)`
    /// or one more, except with probability about `2^(k + 1 - l)` for `|y| < 2^k`.
    #[inline]
    pub fn truncate_share_client(&self, b: u64, shift: u32) -> u64 {
        let neg = self.reduce(b.wrapping_neg());
        self.reduce((neg >> shift).wrapping_neg())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_and_truncate() {
        let r = Ring::default();
        let x = r.encode(-3.25, 12, "x").unwrap();
        assert_eq!(r.decode(x, 12), -3.25);
        let y = r.encode(-3.25 * 1.5, 24, "y").unwrap();
        assert_eq!(r.decode(r.truncate(y, 12), 12), -4.875);
        assert!(r.encode(1e30, 10, "big").is_err());
        let r32 = Ring::new(32, 8, 24).unwrap();
        assert_eq!(r32.signed(r32.from_signed(-5)), -5);
        assert_eq!(r32.relu_trunc(r32.from_signed(-5), 2), 0);
        assert_eq!(r32.relu_trunc(r32.from_signed(21), 2), 5);
        assert!(Ring::new(16, 4, 12).is_err());
        assert!(Ring::new(64, 10, 20).is_err());
    }

    /// Shift 0 (a site on a value at scale `f`) truncates nothing and adds no half, on values
    /// and on shares alike.
    #[test]
    fn shift_zero_is_the_identity() {
        let r = Ring::default();
        assert_eq!(r.half(0), 0);
        assert_eq!(r.half(12), 1 << 11);
        for (y, b) in [(5i64, 77u64), (-3, u64::MAX - 4), (0, 1 << 63)] {
            let y = r.from_signed(y);
            let a = r.reduce(y.wrapping_sub(b));
            let t = r.reduce(
                r.truncate_share_server(a, 0)
                    .wrapping_add(r.truncate_share_client(b, 0)),
            );
            assert_eq!(t, y);
            assert_eq!(r.truncate(y, 0), y);
        }
    }

    #[test]
    fn local_truncation_is_off_by_at_most_one() {
        use rand::{Rng, SeedableRng};
        let r = Ring::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..10_000 {
            let y: i64 = rng.gen_range(-(1 << 30)..(1 << 30));
            let b: u64 = rng.gen();
            let a = r.reduce((y as u64).wrapping_sub(b));
            let t = r.reduce(
                r.truncate_share_server(a, 10)
                    .wrapping_add(r.truncate_share_client(b, 10)),
            );
            let d = r.signed(t) - (y >> 10);
            assert!(d == 0 || d == 1, "y {y} b {b} diff {d}");
        }
    }
}
