//! The class-only output ([`super::OutputMode::Class`]): one garbled circuit over the logits'
//! shares ([`crate::gc::circuit::argmax`]) whose only output, the class index, is decoded by the
//! client with decoding bits the server sends offline.
//!
//! Offline, the client's share of the logits is already fixed (the offline phase of the last
//! weight layer computes it), so the client obtains the labels of its `classes x l` input bits by
//! IKNP like a site's, and the server sends the tables and the index's decoding bits. Online the
//! server sends the labels of its logit shares (`16 l` bytes per class); nothing goes back, and
//! the server learns nothing of the class.

use crate::error::{MpcError, Result};
use crate::gc::circuit::{self, argmax_and_gates, index_bits};
use crate::gc::eval::Evaluator;
use crate::gc::garble::Garbler;
use crate::gc::{lsb, FixedKeyHash};
use crate::ring::Ring;
use crate::wire::{bits_bytes, blocks_bytes, Block, Reader, Writer};

/// Dimensions of the argmax circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgmaxDims {
    pub classes: usize,
    pub l: usize,
    pub ands: usize,
    pub index_bits: usize,
}

impl ArgmaxDims {
    /// `None` for a single class (nothing to compare, class 0).
    pub fn new(classes: usize, ring: &Ring) -> Option<Self> {
        (classes >= 2).then(|| {
            let l = ring.bits as usize;
            ArgmaxDims {
                classes,
                l,
                ands: argmax_and_gates(classes, l),
                index_bits: index_bits(classes),
            }
        })
    }

    /// Input bits of each party (its `l`-bit share of every logit).
    pub fn input_bits(&self) -> usize {
        self.classes * self.l
    }
}

fn split(labels: &[Block], l: usize) -> Vec<Vec<Block>> {
    labels.chunks(l).map(|c| c.to_vec()).collect()
}

/// Garbles the circuit; `zero_s` / `zero_c` are the zero-labels of the server's and the client's
/// input bits. Returns the offline message.
pub fn garble(
    hash: &FixedKeyHash,
    delta: Block,
    gate0: u64,
    d: &ArgmaxDims,
    zero_s: &[Block],
    zero_c: &[Block],
) -> Tables {
    let mut tables = vec![0u128; 2 * d.ands];
    let mut g = Garbler::new(delta, hash, gate0, &mut tables);
    let out = circuit::argmax(&mut g, &split(zero_s, d.l), &split(zero_c, d.l));
    debug_assert_eq!(g.written(), 2 * d.ands);
    let decode = out.iter().map(|o| o.map(lsb).unwrap_or(false)).collect();
    Tables { tables, decode }
}

/// Evaluates the circuit and decodes the class.
pub fn evaluate(
    hash: &FixedKeyHash,
    gate0: u64,
    d: &ArgmaxDims,
    lab_s: &[Block],
    lab_c: &[Block],
    t: &Tables,
) -> Result<usize> {
    let mut e = Evaluator::new(hash, gate0, &t.tables);
    let out = circuit::argmax(&mut e, &split(lab_s, d.l), &split(lab_c, d.l));
    let class = out
        .iter()
        .zip(&t.decode)
        .enumerate()
        .fold(0usize, |c, (i, (o, &dec))| {
            c | ((o.map(lsb).unwrap_or(false) ^ dec) as usize) << i
        });
    if class >= d.classes {
        return Err(MpcError::malformed(
            "argmax tables",
            format!("decoded class {class} of {}", d.classes),
        ));
    }
    Ok(class)
}

/// The offline message: garbled tables and the decoding bits of the class index.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub tables: Vec<Block>,
    pub decode: Vec<bool>,
}

impl Tables {
    pub fn encode(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(Self::size(self.tables.len() / 2, self.decode.len()) as usize);
        w.blocks(&self.tables).bits(&self.decode);
        w.finish()
    }

    /// Encoded size for a circuit of `ands` AND gates and `index_bits` outputs.
    pub fn size(ands: usize, index_bits: usize) -> u64 {
        blocks_bytes(2 * ands) + bits_bytes(index_bits)
    }

    pub fn decode(buf: &[u8], ands: usize, index_bits: usize) -> Result<Self> {
        let mut r = Reader::new(buf, "argmax tables");
        let tables = r.blocks_n(2 * ands, "tables")?;
        let decode = r.bits_n(index_bits, "decoding bits")?;
        r.end()?;
        Ok(Tables { tables, decode })
    }
}

#[cfg(test)]
mod tests {
    use super::super::garbled;
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Garbled argmax over random shares gives `plain::argmax` of the logits.
    #[test]
    fn garbled_argmax_is_the_class() {
        let hash = FixedKeyHash::new(0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let ring = Ring::default();
        for classes in [2, 3, 10] {
            let d = ArgmaxDims::new(classes, &ring).unwrap();
            for _ in 0..20 {
                let delta: Block = rng.gen::<u128>() | 1;
                let logits: Vec<i64> = (0..classes).map(|_| rng.gen_range(-50..50)).collect();
                let b: Vec<u64> = (0..classes).map(|_| rng.gen()).collect();
                let a: Vec<u64> = logits
                    .iter()
                    .zip(&b)
                    .map(|(&v, &y)| (v as u64).wrapping_sub(y))
                    .collect();
                let zs: Vec<Block> = (0..d.input_bits()).map(|_| rng.gen()).collect();
                let zc: Vec<Block> = (0..d.input_bits()).map(|_| rng.gen()).collect();
                let t = garble(&hash, delta, 77, &d, &zs, &zc);
                let t = Tables::decode(&t.encode(), d.ands, d.index_bits).unwrap();
                let pick = |zero: &[Block], v: &[u64]| garbled::encode(zero, delta, v, d.l);
                let class = evaluate(&hash, 77, &d, &pick(&zs, &a), &pick(&zc, &b), &t).unwrap();
                let f: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
                assert_eq!(class, crate::plain::argmax(&f), "{logits:?}");
            }
        }
        assert!(ArgmaxDims::new(1, &ring).is_none());
    }
}
