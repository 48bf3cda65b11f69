//! Samplers for the scheme's small polynomials, from the party's ChaCha stream (constant time in
//! the sampled values).

use super::params::ETA;
use rand::Rng;
use rand_chacha::ChaCha12Rng;

/// Uniform ternary coefficients in `{-1, 0, 1}` (the secret and the encryption randomness `u`):
/// two bits per draw, the fourth value rejected.
pub fn ternary(rng: &mut ChaCha12Rng, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut bits: u64 = rng.gen();
        for _ in 0..32 {
            let v = bits & 3;
            bits >>= 2;
            if v < 3 && out.len() < n {
                out.push(v as i64 - 1);
            }
        }
    }
    out
}

/// Centered binomial errors with [`ETA`] coin pairs: `|e| <= ETA`, variance `ETA / 2`.
pub fn cbd(rng: &mut ChaCha12Rng, n: usize) -> Vec<i64> {
    let mask = (1u64 << ETA) - 1;
    (0..n)
        .map(|_| {
            let x: u64 = rng.gen();
            (x & mask).count_ones() as i64 - ((x >> ETA) & mask).count_ones() as i64
        })
        .collect()
}

/// The flooding noise, a uniform integer in `[-bound, bound]` (`bound < 2^126`), plus `bound`:
/// uniform in `[0, 2 bound]`, by rejection (the answer reduces it modulo each prime without a
/// sign and subtracts `bound` there).
pub fn flood_offset(rng: &mut ChaCha12Rng, bound: u128) -> u128 {
    let span = 2 * bound + 1;
    let bits = 128 - span.leading_zeros();
    let mask = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    loop {
        let v = rng.gen::<u128>() & mask;
        if v < span {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn distributions_have_their_bounds_and_moments() {
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        let t = ternary(&mut rng, 30_000);
        let zeros = t.iter().filter(|&&v| v == 0).count() as f64 / 30_000.0;
        assert!(t.iter().all(|v| v.abs() <= 1) && (zeros - 1.0 / 3.0).abs() < 0.02);
        let e = cbd(&mut rng, 30_000);
        let var = e.iter().map(|&v| (v * v) as f64).sum::<f64>() / 30_000.0;
        assert!(e.iter().all(|v| v.abs() <= ETA as i64));
        assert!((var - ETA as f64 / 2.0).abs() < 0.5, "variance {var}");
        let b = (1u128 << 90) + 12345;
        let f: Vec<i128> = (0..2000)
            .map(|_| flood_offset(&mut rng, b) as i128 - b as i128)
            .collect();
        assert!(f.iter().all(|v| v.unsigned_abs() <= b));
        assert!(f.iter().any(|&v| v < -(1i128 << 88)) && f.iter().any(|&v| v > 1i128 << 88));
    }
}
