//! Oblivious transfer: Chou-Orlandi base OTs ([`base`]) extended by IKNP ([`iknp`]) into
//! correlated OTs whose correlation is the garbling offset, so each client input label costs
//! 16 bytes of extension matrix and 16 bytes of correction.

pub mod base;
pub mod iknp;
pub mod silent;

/// Security parameter: base OTs and columns of the extension matrix.
pub const KAPPA: usize = 128;

/// Transposes a 128 x 128 bit matrix in place: afterwards bit `i` of `m[j]` is what bit `j` of
/// `m[i]` was (Eklundh's recursive block swap).
pub fn transpose128(m: &mut [u128; 128]) {
    let mut j = 64usize;
    let mut mask: u128 = (1u128 << 64) - 1;
    while j != 0 {
        let mut k = 0usize;
        while k < 128 {
            for r in k..k + j {
                let t = ((m[r] >> j) ^ m[r + j]) & mask;
                m[r + j] ^= t;
                m[r] ^= t << j;
            }
            k += 2 * j;
        }
        j >>= 1;
        mask ^= mask << j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn transpose_matches_definition() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let a: [u128; 128] = std::array::from_fn(|_| rng.gen());
        let mut t = a;
        transpose128(&mut t);
        for (i, row) in a.iter().enumerate() {
            for (j, col) in t.iter().enumerate() {
                assert_eq!(col >> i & 1, row >> j & 1);
            }
        }
    }
}
