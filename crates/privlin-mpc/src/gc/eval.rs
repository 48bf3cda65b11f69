//! The evaluator's side of half-gates.

use super::circuit::Gates;
use super::{lsb, select, FixedKeyHash};
use crate::wire::Block;

/// Evaluates gates from `tables`; wires carry the one label the evaluator holds.
pub struct Evaluator<'a> {
    hash: &'a FixedKeyHash,
    gate: u64,
    tables: &'a [Block],
    pos: usize,
}

impl<'a> Evaluator<'a> {
    /// `gate` must equal the garbler's first gate index for the same circuit.
    pub fn new(hash: &'a FixedKeyHash, gate: u64, tables: &'a [Block]) -> Self {
        Evaluator {
            hash,
            gate,
            tables,
            pos: 0,
        }
    }
}

impl Gates for Evaluator<'_> {
    type Bit = Block;

    #[inline]
    fn xor(&mut self, a: Block, b: Block) -> Block {
        a ^ b
    }

    #[inline]
    fn not(&mut self, a: Block) -> Block {
        a
    }

    #[inline]
    fn and(&mut self, a: Block, b: Block) -> Block {
        let j = (self.gate as u128) << 1;
        self.gate += 1;
        let [ha, hb] = self.hash.hash([a, b], [j, j | 1]);
        let tg = self.tables[self.pos];
        let te = self.tables[self.pos + 1];
        self.pos += 2;
        (ha ^ select(lsb(a), tg)) ^ (hb ^ select(lsb(b), te ^ a))
    }
}

#[cfg(test)]
mod tests {
    use super::super::circuit::{self, Gates, Plain};
    use super::super::garble::Garbler;
    use super::super::{lsb, FixedKeyHash};
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every gate against its truth table, for every input combination, and the garbled ReLU
    /// circuit against the plaintext one.
    #[test]
    fn garbled_gates_match_truth_tables() {
        let hash = FixedKeyHash::new(0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for trial in 0..200u64 {
            let delta: Block = rng.gen::<u128>() | 1;
            let (a0, b0): (Block, Block) = (rng.gen(), rng.gen());
            let mut tables = vec![0u128; 2];
            let mut g = Garbler::new(delta, &hash, trial, &mut tables);
            let and0 = g.and(a0, b0);
            let xor0 = g.xor(a0, b0);
            let not0 = g.not(a0);
            for (x, y) in [(false, false), (false, true), (true, false), (true, true)] {
                let la = a0 ^ if x { delta } else { 0 };
                let lb = b0 ^ if y { delta } else { 0 };
                let mut e = Evaluator::new(&hash, trial, &tables);
                let decode = |l: Block, zero: Block| {
                    assert!(l == zero || l == zero ^ delta, "label is neither 0 nor 1");
                    l != zero
                };
                assert_eq!(decode(e.and(la, lb), and0), x & y);
                assert_eq!(decode(e.xor(la, lb), xor0), x ^ y);
                assert_eq!(decode(e.not(la), not0), !x);
            }
        }
    }

    #[test]
    fn garbled_relu_matches_plaintext() {
        let hash = FixedKeyHash::new(0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
        let (w, l, shift) = (24usize, 40usize, 8usize);
        let ands = circuit::relu_and_gates(w, l, shift);
        for trial in 0..100u64 {
            let delta: Block = rng.gen::<u128>() | 1;
            let zero: Vec<Block> = (0..2 * w + l).map(|_| rng.gen()).collect();
            let mut tables = vec![0u128; 2 * ands];
            let mut g = Garbler::new(delta, &hash, trial * 1000, &mut tables);
            let out0 = circuit::relu(&mut g, &zero[..w], &zero[w..2 * w], &zero[2 * w..], shift);
            assert_eq!(g.written(), 2 * ands);
            let bits: Vec<bool> = (0..2 * w + l).map(|_| rng.gen()).collect();
            let labels: Vec<Block> = zero
                .iter()
                .zip(&bits)
                .map(|(&z, &b)| if b { z ^ delta } else { z })
                .collect();
            let mut e = Evaluator::new(&hash, trial * 1000, &tables);
            let out = circuit::relu(
                &mut e,
                &labels[..w],
                &labels[w..2 * w],
                &labels[2 * w..],
                shift,
            );
            let want = circuit::relu(
                &mut Plain,
                &bits[..w],
                &bits[w..2 * w],
                &bits[2 * w..],
                shift,
            );
            // The evaluator decodes with the garbler's permute bits only.
            let got: Vec<bool> = out
                .iter()
                .zip(&out0)
                .map(|(&o, &z)| lsb(o) ^ lsb(z))
                .collect();
            assert_eq!(got, want);
        }
    }
}
