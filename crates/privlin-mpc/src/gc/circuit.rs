//! Boolean circuits written once for every backend: plaintext, garbler, evaluator, gate counter.

/// The gates a circuit may use. XOR and NOT are free under free-XOR; AND costs two ciphertexts.
pub trait Gates {
    type Bit: Copy;
    fn xor(&mut self, a: Self::Bit, b: Self::Bit) -> Self::Bit;
    fn and(&mut self, a: Self::Bit, b: Self::Bit) -> Self::Bit;
    fn not(&mut self, a: Self::Bit) -> Self::Bit;
}

/// Plaintext evaluation: the definition the garbled versions are tested against.
pub struct Plain;

impl Gates for Plain {
    type Bit = bool;
    fn xor(&mut self, a: bool, b: bool) -> bool {
        a ^ b
    }
    fn and(&mut self, a: bool, b: bool) -> bool {
        a & b
    }
    fn not(&mut self, a: bool) -> bool {
        !a
    }
}

/// Counts AND gates.
#[derive(Default)]
pub struct Counter {
    pub ands: usize,
}

impl Gates for Counter {
    type Bit = ();
    fn xor(&mut self, _: (), _: ()) {}
    fn and(&mut self, _: (), _: ()) {
        self.ands += 1;
    }
    fn not(&mut self, _: ()) {}
}

/// Ripple-carry addition mod `2^n` of `a` (bits LSB first, `None` = known zero) and `b`
/// (`n = b.len()`), one AND per bit but the last: `c' = c ^ ((a ^ c) & (b ^ c))`
/// (Boyar-Peralta; Kolesnikov-Sadeghi-Schneider 2009).
pub fn add<G: Gates>(g: &mut G, a: &[Option<G::Bit>], b: &[G::Bit]) -> Vec<G::Bit> {
    let n = b.len();
    let mut out = Vec::with_capacity(n);
    let mut carry: Option<G::Bit> = None;
    for (i, &bi) in b.iter().enumerate() {
        let ai = a.get(i).copied().flatten();
        let last = i + 1 == n;
        match (ai, carry) {
            (Some(x), None) => {
                out.push(g.xor(x, bi));
                if !last {
                    carry = Some(g.and(x, bi));
                }
            }
            (None, None) => out.push(bi),
            (Some(x), Some(c)) => {
                let xc = g.xor(x, c);
                out.push(g.xor(xc, bi));
                if !last {
                    let bc = g.xor(bi, c);
                    let t = g.and(xc, bc);
                    carry = Some(g.xor(c, t));
                }
            }
            (None, Some(c)) => {
                out.push(g.xor(bi, c));
                if !last {
                    carry = Some(g.and(bi, c));
                }
            }
        }
    }
    out
}

/// The active-site circuit (DELPHI section 4.2, with truncation and re-sharing inside):
/// `y = a + b mod 2^w` (the two shares' low `w` bits), `z = ReLU(y) >> shift` with `y` read as a
/// signed `w`-bit number, and output `z + q mod 2^l`, where `q = -r'` is the client's fresh mask
/// (the server's new share is `z - r'`, the client's `r'`).
pub fn relu<G: Gates>(
    g: &mut G,
    a: &[G::Bit],
    b: &[G::Bit],
    q: &[G::Bit],
    shift: usize,
) -> Vec<G::Bit> {
    let w = a.len();
    debug_assert_eq!(b.len(), w);
    let a_opt: Vec<Option<G::Bit>> = a.iter().map(|&x| Some(x)).collect();
    let y = add(g, &a_opt, b);
    let positive = g.not(y[w - 1]);
    let z: Vec<Option<G::Bit>> = (0..w - 1 - shift)
        .map(|i| Some(g.and(y[i + shift], positive)))
        .collect();
    add(g, &z, q)
}

/// AND gates of one active-site circuit.
pub fn relu_and_gates(w: usize, l: usize, shift: usize) -> usize {
    let mut c = Counter::default();
    relu(&mut c, &vec![(); w], &vec![(); w], &vec![(); l], shift);
    c.ands
}

/// The low `n` bits of `x`, least significant first.
pub fn bits(x: u64, n: usize) -> impl Iterator<Item = bool> {
    (0..n).map(move |i| x >> i & 1 == 1)
}

/// [`bits`] collected.
pub fn to_bits(x: u64, n: usize) -> Vec<bool> {
    bits(x, n).collect()
}

pub fn from_bits(b: &[bool]) -> u64 {
    b.iter()
        .enumerate()
        .fold(0, |a, (i, &x)| a | (x as u64) << i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::Ring;
    use rand::{Rng, SeedableRng};

    /// The plaintext circuit equals the ring definition `ReLU(sext_w(a + b)) >> s - r'`.
    #[test]
    fn relu_circuit_matches_definition() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for ring in [
            Ring::default(),
            Ring::new(32, 8, 24).unwrap(),
            Ring::new(48, 12, 40).unwrap(),
        ] {
            let (w, l) = (ring.gc_bits as usize, ring.bits as usize);
            for _ in 0..2000 {
                let shift = if rng.gen_bool(0.8) {
                    ring.frac
                } else {
                    2 * ring.frac
                } as usize;
                let y: i64 = rng.gen_range(-(1i64 << (w - 2))..(1i64 << (w - 2)));
                let b = ring.reduce(rng.gen());
                let a = ring.reduce((y as u64).wrapping_sub(b));
                let r = ring.reduce(rng.gen());
                let q = ring.reduce(r.wrapping_neg());
                let out = relu(
                    &mut Plain,
                    &to_bits(a, w),
                    &to_bits(b, w),
                    &to_bits(q, l),
                    shift,
                );
                let z = ring.relu_trunc(ring.reduce(a.wrapping_add(b)), shift as u32);
                assert_eq!(
                    from_bits(&out),
                    ring.reduce(z.wrapping_sub(r)),
                    "y {y} shift {shift}"
                );
                assert_eq!(z, if y < 0 { 0 } else { (y >> shift) as u64 });
            }
            assert_eq!(
                relu_and_gates(w, l, ring.frac as usize),
                (w - 1) + (w - 1 - ring.frac as usize) + (l - 1)
            );
        }
    }
}
