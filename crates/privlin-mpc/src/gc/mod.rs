//! Garbled circuits: free-XOR (Kolesnikov-Schneider 2008), point-and-permute, half-gates
//! (Zahur-Rosulek-Evans 2015: two ciphertexts per AND, none per XOR/NOT), hashing with fixed-key
//! AES as the tweakable circular correlation-robust hash of Guo-Katz-Wang-Yu (S&P 2020, section
//! 7.3), `H(x, i) = pi(pi(x) ^ i) ^ pi(x)`: two AES calls per hash. (The one-call form
//! `pi(sigma(x) ^ i) ^ sigma(x) ^ i` that an earlier version used is correlation robust for a
//! fixed tweak only: it has the related-input collisions `H(x, i) = H(x ^ sigma^-1(i ^ i'), i')`,
//! which is what GKWY show breaks half-gates with public tweaks.)
//!
//! A circuit is written once against [`circuit::Gates`] and runs as plaintext booleans (the
//! reference), as a [`garble::Garbler`] and as an [`eval::Evaluator`].

pub mod circuit;
pub mod eval;
pub mod garble;

use crate::wire::Block;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;

/// Fixed-key AES as a random permutation `pi`, and the hash built on it.
pub struct FixedKeyHash {
    aes: Aes128,
}

impl FixedKeyHash {
    /// A public fixed key; `domain` separates uses (garbling, OT).
    pub fn new(domain: u8) -> Self {
        let mut key = *b"privlin-fixedkey";
        key[15] ^= domain;
        FixedKeyHash {
            aes: Aes128::new(&GenericArray::from(key)),
        }
    }

    /// `pi` on `N` blocks in one pipelined AES call.
    #[inline]
    fn permute<const N: usize>(&self, x: [Block; N]) -> [Block; N] {
        let mut blocks: [_; N] = std::array::from_fn(|k| GenericArray::from(x[k].to_le_bytes()));
        self.aes.encrypt_blocks(&mut blocks);
        std::array::from_fn(|k| u128::from_le_bytes(blocks[k].into()))
    }

    /// `H(x_k, t_k) = pi(pi(x_k) ^ t_k) ^ pi(x_k)` for `N` inputs (two pipelined AES calls).
    #[inline]
    pub fn hash<const N: usize>(&self, x: [Block; N], t: [Block; N]) -> [Block; N] {
        let p = self.permute(x);
        let q: [Block; N] = self.permute(std::array::from_fn(|k| p[k] ^ t[k]));
        std::array::from_fn(|k| q[k] ^ p[k])
    }

    /// The one-call form `pi(sigma(x) ^ i) ^ sigma(x) ^ i` (orthomorphism
    /// `sigma(x_L || x_R) = (x_L ^ x_R) || x_L`) that this crate used before the security review:
    /// not a tweakable CCR hash. Kept only so that the review's collision is tested and
    /// [`crate::bench::hash_cost`] prices the fix; the protocol never calls it.
    pub(crate) fn one_call_mmo<const N: usize>(&self, x: [Block; N], t: [Block; N]) -> [Block; N] {
        let sigma = |x: Block| {
            let (hi, lo) = (x >> 64, x & 0xffff_ffff_ffff_ffff);
            ((hi ^ lo) << 64) | hi
        };
        let pre: [Block; N] = std::array::from_fn(|k| sigma(x[k]) ^ t[k]);
        let p = self.permute(pre);
        std::array::from_fn(|k| p[k] ^ pre[k])
    }

    /// Hashes a slice in place with tweaks `base + k` (OT key derivation).
    pub fn hash_slice(&self, xs: &mut [Block], base: u128) {
        for (c, chunk) in xs.chunks_mut(8).enumerate() {
            let mut x = [0u128; 8];
            x[..chunk.len()].copy_from_slice(chunk);
            let t: [Block; 8] = std::array::from_fn(|k| base + (c * 8 + k) as u128);
            let h = self.hash(x, t);
            chunk.copy_from_slice(&h[..chunk.len()]);
        }
    }
}

#[inline]
pub(crate) fn lsb(x: Block) -> bool {
    x & 1 == 1
}

/// `x` if `bit`, else zero, without a branch (the bit passes `subtle`'s optimization barrier, so
/// the compiler cannot turn the mask back into a branch).
#[inline]
pub(crate) fn select(bit: bool, x: Block) -> Block {
    let b = subtle::Choice::from(bit as u8).unwrap_u8();
    x & (0u128.wrapping_sub(b as u128))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn old_form(h: &FixedKeyHash, x: Block, i: Block) -> Block {
        h.one_call_mmo([x], [i])[0]
    }

    /// `sigma^-1(y_L || y_R) = y_R || (y_L ^ y_R)`.
    fn sigma_inv(y: Block) -> Block {
        let (hi, lo) = (y >> 64, y & 0xffff_ffff_ffff_ffff);
        (lo << 64) | (hi ^ lo)
    }

    /// Tweak separation: the related inputs `(x, i)` and `(x ^ sigma^-1(i ^ i'), i')` collide
    /// under the old one-call form (the review's finding, checked here so the test can fail) and
    /// do not under the GKWY form; the hash is the definition, batched or not.
    #[test]
    fn tweaks_separate_related_inputs() {
        let h = FixedKeyHash::new(0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for _ in 0..200 {
            let (x, i, j): (Block, Block, Block) = (
                rng.gen(),
                rng.gen::<u64>() as u128,
                rng.gen::<u64>() as u128,
            );
            let x2 = x ^ sigma_inv(i ^ j);
            assert_eq!(old_form(&h, x, i), old_form(&h, x2, j));
            let [a, b] = h.hash([x, x2], [i, j]);
            assert_ne!(a, b);
            let p = h.permute([x])[0];
            assert_eq!(a, h.permute([p ^ i])[0] ^ p);
            let mut s = [x, x2];
            h.hash_slice(&mut s, 5);
            assert_eq!(s, h.hash([x, x2], [5, 6]));
        }
    }
}
