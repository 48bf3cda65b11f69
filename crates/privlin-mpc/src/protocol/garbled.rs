//! Garbling and evaluating one layer's circuits (a site's active ReLUs or a max-pool's windows),
//! in parallel over circuits.

use super::{Gadget, SiteDims};
use crate::gc::circuit;
use crate::gc::eval::Evaluator;
use crate::gc::garble::Garbler;
use crate::gc::{lsb, FixedKeyHash};
use crate::wire::Block;
use rayon::prelude::*;

/// One circuit of kind `d.gadget` on the server's input bits `a`, the client's `b` and its mask `q`.
fn circuit<G: circuit::Gates>(
    g: &mut G,
    d: &SiteDims,
    a: &[G::Bit],
    b: &[G::Bit],
    q: &[G::Bit],
) -> Vec<G::Bit> {
    match d.gadget {
        Gadget::Relu { shift, cap } => circuit::relu_capped(g, a, b, q, shift, cap),
        Gadget::Max { .. } => circuit::max_pool(g, a, b, q, d.w),
    }
}

/// Garbles `d.n` circuits. `zero_s`: zero-labels of the server's input bits
/// ([`SiteDims::server_bits`] per circuit), `zero_c`: of the client's
/// ([`SiteDims::client_bits`] per circuit, from OT). Returns the tables and the permute
/// bits of the output zero-labels (the server's decoding information).
pub fn garble(
    hash: &FixedKeyHash,
    delta: Block,
    gate0: u64,
    d: &SiteDims,
    zero_s: &[Block],
    zero_c: &[Block],
) -> (Vec<Block>, Vec<bool>) {
    let per = 2 * d.ands;
    let mut tables = vec![0u128; d.n * per];
    let mut decode = vec![false; d.n * d.l];
    let (sb, cb) = (d.server_bits(), d.client_bits());
    tables
        .par_chunks_mut(per)
        .zip(decode.par_chunks_mut(d.l))
        .enumerate()
        .with_min_len(32)
        .for_each(|(k, (t, dec))| {
            let mut g = Garbler::new(delta, hash, gate0 + (k * d.ands) as u64, t);
            let c = &zero_c[k * cb..(k + 1) * cb];
            let out = circuit(&mut g, d, &zero_s[k * sb..(k + 1) * sb], &c[..sb], &c[sb..]);
            for (x, o) in dec.iter_mut().zip(out) {
                *x = lsb(o);
            }
        });
    (tables, decode)
}

/// Evaluates `d.n` circuits; returns the permute bits of the output labels.
pub fn evaluate(
    hash: &FixedKeyHash,
    gate0: u64,
    d: &SiteDims,
    lab_s: &[Block],
    lab_c: &[Block],
    tables: &[Block],
) -> Vec<bool> {
    let per = 2 * d.ands;
    let (sb, cb) = (d.server_bits(), d.client_bits());
    let mut bits = vec![false; d.n * d.l];
    bits.par_chunks_mut(d.l)
        .enumerate()
        .with_min_len(32)
        .for_each(|(k, out_bits)| {
            let mut e = Evaluator::new(
                hash,
                gate0 + (k * d.ands) as u64,
                &tables[k * per..(k + 1) * per],
            );
            let c = &lab_c[k * cb..(k + 1) * cb];
            let out = circuit(&mut e, d, &lab_s[k * sb..(k + 1) * sb], &c[..sb], &c[sb..]);
            for (x, o) in out_bits.iter_mut().zip(out) {
                *x = lsb(o);
            }
        });
    bits
}

/// The server's input labels for its shares: bit `i` of share `k` selects
/// `zero_s[k w + i] ^ bit * delta`.
pub fn encode(zero_s: &[Block], delta: Block, shares: &[u64], w: usize) -> Vec<Block> {
    let mut labels = Vec::with_capacity(shares.len() * w);
    for (k, &v) in shares.iter().enumerate() {
        for (bit, &z) in zero_s[k * w..(k + 1) * w].iter().enumerate() {
            labels.push(z ^ crate::gc::select(v >> bit & 1 == 1, delta));
        }
    }
    labels
}

/// The server's new shares from the client's output permute bits and its decoding bits.
pub fn decode(bits: &[bool], decode: &[bool], l: usize) -> Vec<u64> {
    bits.chunks(l)
        .zip(decode.chunks(l))
        .map(|(b, d)| {
            b.iter()
                .zip(d)
                .enumerate()
                .fold(0u64, |v, (i, (&x, &y))| v | ((x ^ y) as u64) << i)
        })
        .collect()
}
