//! The garbler's side of half-gates.

use super::circuit::Gates;
use super::{lsb, select, FixedKeyHash};
use crate::wire::Block;

/// Garbles gates into `tables` (two ciphertexts per AND); wires carry their zero-label.
pub struct Garbler<'a> {
    pub delta: Block,
    hash: &'a FixedKeyHash,
    gate: u64,
    tables: &'a mut [Block],
    pos: usize,
}

impl<'a> Garbler<'a> {
    /// `delta` must have its lowest bit set (point-and-permute); `gate` is the first gate index,
    /// unique across the session so that every hash tweak is used once.
    pub fn new(delta: Block, hash: &'a FixedKeyHash, gate: u64, tables: &'a mut [Block]) -> Self {
        debug_assert!(lsb(delta));
        Garbler {
            delta,
            hash,
            gate,
            tables,
            pos: 0,
        }
    }

    pub fn written(&self) -> usize {
        self.pos
    }
}

impl Gates for Garbler<'_> {
    type Bit = Block;

    #[inline]
    fn xor(&mut self, a: Block, b: Block) -> Block {
        a ^ b
    }

    #[inline]
    fn not(&mut self, a: Block) -> Block {
        a ^ self.delta
    }

    /// Zahur-Rosulek-Evans 2015, Fig. 2: generator half-gate `T_G` and evaluator half-gate `T_E`.
    #[inline]
    fn and(&mut self, a0: Block, b0: Block) -> Block {
        let (pa, pb) = (lsb(a0), lsb(b0));
        let j = (self.gate as u128) << 1;
        self.gate += 1;
        let d = self.delta;
        let [ha0, ha1, hb0, hb1] = self
            .hash
            .hash([a0, a0 ^ d, b0, b0 ^ d], [j, j, j | 1, j | 1]);
        let tg = ha0 ^ ha1 ^ select(pb, d);
        let wg = ha0 ^ select(pa, tg);
        let te = hb0 ^ hb1 ^ a0;
        let we = hb0 ^ select(pb, te ^ a0);
        self.tables[self.pos] = tg;
        self.tables[self.pos + 1] = te;
        self.pos += 2;
        wg ^ we
    }
}
