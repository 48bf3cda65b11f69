//! Garbled circuits: free-XOR (Kolesnikov-Schneider 2008), point-and-permute, half-gates
//! (Zahur-Rosulek-Evans 2015: two ciphertexts per AND, none per XOR/NOT), hashing with fixed-key
//! AES (Guo-Katz-Wang-Yu 2020, the tweakable circular correlation-robust hash
//! `H(x, i) = pi(sigma(x) ^ i) ^ sigma(x) ^ i` with the orthomorphism
//! `sigma(x_L || x_R) = (x_L ^ x_R) || x_L`).
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

/// Fixed-key AES as a random permutation, and the hash built on it.
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

    #[inline]
    fn sigma(x: Block) -> Block {
        let hi = x >> 64;
        let lo = x & 0xffff_ffff_ffff_ffff;
        ((hi ^ lo) << 64) | hi
    }

    /// `H(x_k, t_k)` for `N` inputs in one pipelined AES call.
    #[inline]
    pub fn hash<const N: usize>(&self, x: [Block; N], t: [Block; N]) -> [Block; N] {
        let mut pre = [0u128; N];
        let mut blocks = [GenericArray::from([0u8; 16]); N];
        for k in 0..N {
            pre[k] = Self::sigma(x[k]) ^ t[k];
            blocks[k] = GenericArray::from(pre[k].to_le_bytes());
        }
        self.aes.encrypt_blocks(&mut blocks);
        let mut out = [0u128; N];
        for k in 0..N {
            out[k] = u128::from_le_bytes(blocks[k].into()) ^ pre[k];
        }
        out
    }

    /// Hashes a slice in place with tweaks `base + k` (OT key derivation).
    pub fn hash_slice(&self, xs: &mut [Block], base: u128) {
        for (c, chunk) in xs.chunks_mut(8).enumerate() {
            let mut pre = [0u128; 8];
            let mut blocks = [GenericArray::from([0u8; 16]); 8];
            for (k, x) in chunk.iter().enumerate() {
                pre[k] = Self::sigma(*x) ^ (base + (c * 8 + k) as u128);
                blocks[k] = GenericArray::from(pre[k].to_le_bytes());
            }
            self.aes.encrypt_blocks(&mut blocks[..chunk.len()]);
            for (k, x) in chunk.iter_mut().enumerate() {
                *x = u128::from_le_bytes(blocks[k].into()) ^ pre[k];
            }
        }
    }
}

#[inline]
pub(crate) fn lsb(x: Block) -> bool {
    x & 1 == 1
}

/// `x` if `bit`, else zero, without a branch.
#[inline]
pub(crate) fn select(bit: bool, x: Block) -> Block {
    x & (0u128.wrapping_sub(bit as u128))
}
