//! Compact wire form of RNS coefficients: each residue mod `q_i` in `bits(q_i)` bits, limb after
//! limb, LSB first. Decoding checks the exact length and that every residue is below its prime,
//! so a malformed ciphertext is an error, never a panic in the arithmetic behind it.

use super::params::HeContext;
use crate::error::{MpcError, Result};

/// Bytes of `count` coefficients over the first `limbs` primes.
pub fn packed_len(ctx: &HeContext, limbs: usize, count: usize) -> usize {
    let bits: usize = (0..limbs).map(|i| ctx.bits_of(i) as usize).sum();
    (count * bits).div_ceil(8)
}

/// Packs `values` (limb-major: `limbs` rows of `count`).
pub fn pack(ctx: &HeContext, limbs: usize, count: usize, values: &[u64], out: &mut Vec<u8>) {
    debug_assert_eq!(values.len(), limbs * count);
    out.reserve(packed_len(ctx, limbs, count));
    let (mut acc, mut n) = (0u128, 0u32);
    for i in 0..limbs {
        let b = ctx.bits_of(i);
        for &v in &values[i * count..(i + 1) * count] {
            acc |= (v as u128) << n;
            n += b;
            while n >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                n -= 8;
            }
        }
    }
    if n > 0 {
        out.push(acc as u8);
    }
}

/// Unpacks what [`pack`] wrote; `what` names the message in errors.
pub fn unpack(
    ctx: &HeContext,
    limbs: usize,
    count: usize,
    bytes: &[u8],
    what: &str,
) -> Result<Vec<u64>> {
    let need = packed_len(ctx, limbs, count);
    if bytes.len() != need {
        return Err(MpcError::malformed(
            what,
            format!("{} bytes of coefficients, expected {need}", bytes.len()),
        ));
    }
    let mut out = Vec::with_capacity(limbs * count);
    let (mut acc, mut n, mut pos) = (0u128, 0u32, 0usize);
    for i in 0..limbs {
        let (b, q) = (ctx.bits_of(i), ctx.moduli[i]);
        let mask = (1u128 << b) - 1;
        for j in 0..count {
            while n < b {
                acc |= (bytes[pos] as u128) << n;
                pos += 1;
                n += 8;
            }
            let v = (acc & mask) as u64;
            acc >>= b;
            n -= b;
            if v >= q {
                return Err(MpcError::malformed(
                    what,
                    format!("coefficient {j} of prime {i} is {v}, not below the prime {q}"),
                ));
            }
            out.push(v);
        }
    }
    Ok(out)
}
