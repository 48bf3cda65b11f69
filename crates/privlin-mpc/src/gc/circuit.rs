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

/// `a + b mod 2^n` of two shares given bit by bit (`n = b.len()`): the value they share.
pub fn add_shares<G: Gates>(g: &mut G, a: &[G::Bit], b: &[G::Bit]) -> Vec<G::Bit> {
    let a: Vec<Option<G::Bit>> = a.iter().map(|&x| Some(x)).collect();
    add(g, &a, b)
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
    relu_capped(g, a, b, q, shift, None)
}

/// [`relu`] with an upper bound: `min(ReLU(y) >> shift, cap)` (ReLU6 with `cap = 6 2^f`), the
/// bound by an unsigned comparison with the constant and a multiplexer to it: one AND per bit of
/// `z` for each (`2 (w - 1 - shift)` more than [`relu`]).
pub fn relu_capped<G: Gates>(
    g: &mut G,
    a: &[G::Bit],
    b: &[G::Bit],
    q: &[G::Bit],
    shift: usize,
    cap: Option<u64>,
) -> Vec<G::Bit> {
    let w = a.len();
    debug_assert_eq!(b.len(), w);
    let y = add_shares(g, a, b);
    let positive = g.not(y[w - 1]);
    let mut z: Vec<G::Bit> = (0..w - 1 - shift)
        .map(|i| g.and(y[i + shift], positive))
        .collect();
    if let Some(cap) = cap {
        // z > cap for the unsigned z, from the least significant bit up: with the constant's
        // bit 0, gt = z_i | gt (one AND through De Morgan), with 1, gt = z_i & gt.
        let n = z.len();
        if n >= 64 || cap >> n == 0 {
            let mut gt: Option<G::Bit> = None; // None: the constant false
            for (i, &zi) in z.iter().enumerate() {
                gt = if cap >> i & 1 == 0 {
                    Some(match gt {
                        None => zi,
                        Some(t) => {
                            let (nz, nt) = (g.not(zi), g.not(t));
                            let both = g.and(nz, nt);
                            g.not(both)
                        }
                    })
                } else {
                    gt.map(|t| g.and(zi, t))
                };
            }
            // z = gt ? cap : z, bit by bit: z_i | gt where the cap has a 1, z_i & !gt where 0.
            if let Some(gt) = gt {
                let ngt = g.not(gt);
                for (i, zi) in z.iter_mut().enumerate() {
                    *zi = if cap >> i & 1 == 1 {
                        let (nz, n_gt) = (g.not(*zi), ngt);
                        let both = g.and(nz, n_gt);
                        g.not(both)
                    } else {
                        g.and(*zi, ngt)
                    };
                }
            }
        }
    }
    let z: Vec<Option<G::Bit>> = z.into_iter().map(Some).collect();
    add(g, &z, q)
}

/// The max-pool circuit: the window's values `y_k = a_k + b_k mod 2^w` (the shares' low `w`
/// bits; `a`, `b` hold the window's `k` shares back to back), their signed maximum by a running
/// comparison (DELPHI's ReLU circuit extended as in MiniONN/Gazelle's max-pool), sign-extended to
/// `l` bits, plus the client's fresh mask `q = -r'`: outputs `max_k y_k + q mod 2^l`.
/// `k (w - 1)` ANDs for the additions, `2 w` per comparison and multiplexer, `l - 1` for the mask.
pub fn max_pool<G: Gates>(
    g: &mut G,
    a: &[G::Bit],
    b: &[G::Bit],
    q: &[G::Bit],
    w: usize,
) -> Vec<G::Bit> {
    debug_assert_eq!(a.len(), b.len());
    debug_assert!(w >= 2 && a.len().is_multiple_of(w) && q.len() >= w);
    let mut best: Vec<G::Bit> = Vec::new();
    for (ak, bk) in a.chunks(w).zip(b.chunks(w)) {
        let v = add_shares(g, ak, bk);
        best = if best.is_empty() {
            v
        } else {
            let gt = signed_gt(g, &v, &best);
            mux(g, gt, &v, &best)
        };
    }
    let sign = best[w - 1];
    let ext: Vec<Option<G::Bit>> = (0..q.len())
        .map(|i| Some(if i < w { best[i] } else { sign }))
        .collect();
    add(g, &ext, q)
}

/// AND gates of one max-pool circuit over a window of `window` values.
pub fn max_pool_and_gates(window: usize, w: usize, l: usize) -> usize {
    let mut c = Counter::default();
    max_pool(
        &mut c,
        &vec![(); window * w],
        &vec![(); window * w],
        &vec![(); l],
        w,
    );
    c.ands
}

/// `x > y` for `l`-bit two's-complement numbers (LSB first): with the sign bits flipped (free),
/// unsigned `x' > y'` is the absence of a carry out of `y' + !x' + 1`; `l` ANDs (the carry chain
/// `c' = c ^ ((a ^ c) & (b ^ c))`, whose first step with the constant carry 1 is `a | b`).
pub fn signed_gt<G: Gates>(g: &mut G, x: &[G::Bit], y: &[G::Bit]) -> G::Bit {
    let l = x.len();
    debug_assert_eq!(y.len(), l);
    let mut carry: Option<G::Bit> = None; // None: the constant 1
    for i in 0..l {
        let (mut a, mut b) = (y[i], g.not(x[i]));
        if i + 1 == l {
            a = g.not(a);
            b = g.not(b);
        }
        carry = Some(match carry {
            None => {
                // a | b = !(!a & !b)
                let (na, nb) = (g.not(a), g.not(b));
                let t = g.and(na, nb);
                g.not(t)
            }
            Some(c) => {
                let (ac, bc) = (g.xor(a, c), g.xor(b, c));
                let t = g.and(ac, bc);
                g.xor(c, t)
            }
        });
    }
    let c = carry.expect("l >= 1");
    g.not(c)
}

/// `if s { x } else { y }` bit by bit: `y ^ (s & (x ^ y))`, one AND per bit.
pub fn mux<G: Gates>(g: &mut G, s: G::Bit, x: &[G::Bit], y: &[G::Bit]) -> Vec<G::Bit> {
    x.iter()
        .zip(y)
        .map(|(&a, &b)| {
            let d = g.xor(a, b);
            let t = g.and(s, d);
            g.xor(b, t)
        })
        .collect()
}

/// Bits of a class index (LSB first) for `classes` classes.
pub fn index_bits(classes: usize) -> usize {
    (usize::BITS - (classes.max(2) - 1).leading_zeros()) as usize
}

/// The class-only output (section "Output modes" of docs/private-inference.md): the logits are
/// `v_k = a_k + b_k mod 2^l` (the server's and the client's shares, `l` bits each), and the circuit
/// outputs only `argmax_k v_k` (signed; the first maximum on ties, as `plain::argmax`), as
/// [`index_bits`] bits, LSB first (`None`: constant zero). A running maximum: per class `l - 1`
/// ANDs for the addition, `l` for the comparison, `l` for the maximum's multiplexer and one per
/// index bit.
pub fn argmax<G: Gates>(g: &mut G, a: &[Vec<G::Bit>], b: &[Vec<G::Bit>]) -> Vec<Option<G::Bit>> {
    let classes = a.len();
    let nb = index_bits(classes);
    let mut idx: Vec<Option<G::Bit>> = vec![None; nb];
    let mut best: Vec<G::Bit> = Vec::new();
    for k in 0..classes {
        let v = add_shares(g, &a[k], &b[k]);
        if k == 0 {
            best = v;
            continue;
        }
        let gt = signed_gt(g, &v, &best);
        if k + 1 < classes {
            best = mux(g, gt, &v, &best);
        }
        for (i, bit) in idx.iter_mut().enumerate() {
            let one = k >> i & 1 == 1;
            *bit = match (*bit, one) {
                (None, false) => None,
                (None, true) => Some(gt),
                (Some(x), false) => {
                    let t = g.and(gt, x);
                    Some(g.xor(x, t))
                }
                (Some(x), true) => {
                    let nx = g.not(x);
                    let t = g.and(gt, nx);
                    Some(g.xor(x, t))
                }
            };
        }
    }
    idx
}

/// AND gates of the argmax circuit over `classes` logits of `l` bits.
pub fn argmax_and_gates(classes: usize, l: usize) -> usize {
    let mut c = Counter::default();
    let v = vec![vec![(); l]; classes];
    argmax(&mut c, &v, &v);
    c.ands
}

/// AND gates of one active-site circuit.
pub fn relu_and_gates(w: usize, l: usize, shift: usize) -> usize {
    relu_capped_and_gates(w, l, shift, None)
}

/// AND gates of one [`relu_capped`] circuit.
pub fn relu_capped_and_gates(w: usize, l: usize, shift: usize, cap: Option<u64>) -> usize {
    let mut c = Counter::default();
    relu_capped(&mut c, &vec![(); w], &vec![(); w], &vec![(); l], shift, cap);
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

    /// The bounded site (ReLU6): `min(ReLU(y) >> s, cap) - r'` for values around the cap (below,
    /// at, above, far above, negative) and caps of every bit pattern, including ones the
    /// truncated value cannot reach.
    #[test]
    fn capped_relu_circuit_matches_definition() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        for ring in [Ring::default(), Ring::new(32, 8, 24).unwrap()] {
            let (w, l, f) = (ring.gc_bits as usize, ring.bits as usize, ring.frac);
            let n = w - 1 - f as usize;
            for cap in [6u64 << f, 1, (1 << n) - 1, 1 << n, 0b1010_0110 << (f / 2)] {
                for _ in 0..500 {
                    let c = (cap as i64) << f;
                    let y: i64 = match rng.gen_range(0..4) {
                        0 => rng.gen_range(c - 3..c + 3),
                        1 => rng.gen_range(-(1i64 << (w - 2))..(1i64 << (w - 2))),
                        2 => rng.gen_range(0..c.max(1) * 2).min((1i64 << (w - 1)) - 1),
                        _ => -rng.gen_range(0..1i64 << (w - 2)),
                    }
                    .clamp(-(1i64 << (w - 1)), (1i64 << (w - 1)) - 1);
                    let b = ring.reduce(rng.gen());
                    let a = ring.reduce((y as u64).wrapping_sub(b));
                    let r = ring.reduce(rng.gen());
                    let q = ring.reduce(r.wrapping_neg());
                    let out = relu_capped(
                        &mut Plain,
                        &to_bits(a, w),
                        &to_bits(b, w),
                        &to_bits(q, l),
                        f as usize,
                        Some(cap),
                    );
                    let z = ring.relu_trunc_capped(ring.reduce(a.wrapping_add(b)), f, Some(cap));
                    assert_eq!(
                        from_bits(&out),
                        ring.reduce(z.wrapping_sub(r)),
                        "y {y} cap {cap}"
                    );
                    let want = if y < 0 { 0 } else { ((y >> f) as u64).min(cap) };
                    assert_eq!(z, want);
                }
            }
            // Two ANDs per bit of the truncated value (comparison and multiplexer), at most.
            let base = relu_and_gates(w, l, f as usize);
            assert!(relu_capped_and_gates(w, l, f as usize, Some(6 << f)) <= base + 2 * n);
        }
    }

    /// The plaintext max-pool circuit equals `max_k sext_w(a_k + b_k) - r'` in the ring, for
    /// windows of 1, 4 and 9 values, ties and values at the edge of the `w`-bit range included.
    #[test]
    fn max_pool_circuit_matches_definition() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for ring in [Ring::default(), Ring::new(41, 8, 24).unwrap()] {
            let (w, l) = (ring.gc_bits as usize, ring.bits as usize);
            let lim = 1i64 << (w - 1);
            for window in [1usize, 4, 9] {
                for t in 0..400 {
                    let y: Vec<i64> = (0..window)
                        .map(|_| match t % 3 {
                            0 => rng.gen_range(-3..3),
                            1 => rng.gen_range(-lim..lim),
                            _ => *[-lim, lim - 1, 0, -1].get(rng.gen_range(0..4)).unwrap(),
                        })
                        .collect();
                    let b: Vec<u64> = (0..window).map(|_| ring.reduce(rng.gen())).collect();
                    let a: Vec<u64> = y
                        .iter()
                        .zip(&b)
                        .map(|(&v, &s)| ring.reduce(ring.from_signed(v).wrapping_sub(s)))
                        .collect();
                    let r = ring.reduce(rng.gen());
                    let q = ring.reduce(r.wrapping_neg());
                    let bits_of = |v: &[u64]| v.iter().flat_map(|&x| to_bits(x, w)).collect();
                    let a_bits: Vec<bool> = bits_of(&a);
                    let b_bits: Vec<bool> = bits_of(&b);
                    let out = max_pool(&mut Plain, &a_bits, &b_bits, &to_bits(q, l), w);
                    let max = *y.iter().max().unwrap();
                    assert_eq!(
                        from_bits(&out),
                        ring.reduce(ring.from_signed(max).wrapping_sub(r)),
                        "{y:?}"
                    );
                }
                assert_eq!(
                    max_pool_and_gates(window, w, l),
                    window * (w - 1) + (window - 1) * 2 * w + (l - 1)
                );
            }
        }
    }

    /// The plaintext argmax circuit equals `plain::argmax` of the decoded shares, ties and
    /// extreme values included.
    #[test]
    fn argmax_circuit_matches_definition() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        for (classes, l) in [(2usize, 32usize), (5, 41), (10, 64), (17, 64), (3, 33)] {
            let ring = Ring::new(l as u32, 8, 24.min(l as u32)).unwrap();
            for t in 0..300 {
                let v: Vec<i64> = (0..classes)
                    .map(|_| match t % 3 {
                        0 => rng.gen_range(-4..4), // many ties
                        1 => ring.signed(ring.reduce(rng.gen())),
                        _ => rng.gen_range(-(1i64 << 20)..(1i64 << 20)),
                    })
                    .collect();
                let b: Vec<u64> = (0..classes).map(|_| ring.reduce(rng.gen())).collect();
                let a: Vec<u64> = v
                    .iter()
                    .zip(&b)
                    .map(|(&x, &y)| ring.reduce(ring.from_signed(x).wrapping_sub(y)))
                    .collect();
                let bits_a: Vec<Vec<bool>> = a.iter().map(|&x| to_bits(x, l)).collect();
                let bits_b: Vec<Vec<bool>> = b.iter().map(|&x| to_bits(x, l)).collect();
                let idx = argmax(&mut Plain, &bits_a, &bits_b);
                let got = from_bits(&idx.iter().map(|x| x.unwrap_or(false)).collect::<Vec<_>>());
                let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
                assert_eq!(got as usize, crate::plain::argmax(&f), "{v:?}");
            }
            assert_eq!(
                argmax_and_gates(classes, l),
                classes * (l - 1)
                    + (classes - 1) * l
                    + (classes - 2) * l
                    + (1..classes)
                        .map(|k| (0..index_bits(classes)).filter(|&i| k > 1 << i).count())
                        .sum::<usize>()
            );
        }
    }
}
