//! The public plan of one active ReLU's comparison on OT: the millionaires' protocol of
//! CrypTFlow2 (Rathee et al., CCS 2020, section 3.1, Algorithm 1) over the low `w - 1` bits of
//! the two shares, split into `m`-bit digits, and its combination tree, laid out as levels of
//! OT *nodes*.
//!
//! A node is a 1-out-of-`2^k` OT whose receiver selects with its XOR shares of the node's `k`
//! input bits and whose sender offers, for every possible receiver share `u`, the node's outputs
//! on the true inputs, masked by the sender's fresh output shares. The receiver's selected entry
//! is its output share; the sender's masks are its own. A *digit* node is CrypTFlow2's leaf: the
//! receiver selects with its digit `c_j` of the comparison, the sender offers `([x_j < u],
//! [x_j = u])` for every `u`.
//!
//! Levels alternate their sender, server at level 0 (its digits `x_j` are online values), then
//! client, server, ...: a receiver selects with shares it drew itself as the previous level's
//! sender, so every OT's choice is known in the offline phase (the client's digits are its share
//! of the pre-activation, fixed offline as in DELPHI). Each level is one flight online. A node
//! whose input is not ready at the level it is needed at is carried up by a copy node.
//!
//! The comparison is split into a low segment (the `shift` bits that truncation drops) and a
//! high one, so that the tree yields the carry out of the low segment (SIRNN, Rathee et al.
//! S&P 2021: exact truncation needs it) beside the carry of all `w - 1` bits (the comparison
//! DReLU needs), at the cost of at most one more digit.

use crate::error::{MpcError, Result};

/// Largest digit size: `2^m` entries of 2 bits must fit one 128-bit OT key.
pub const MAX_DIGIT_BITS: u32 = 6;
/// The digit size the protocol uses unless told otherwise (CrypTFlow2's choice, section 3.1.2).
pub const DEFAULT_DIGIT_BITS: u32 = 4;

/// What a node computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// A leaf on bits `lo..lo + len` of the comparison operands: outputs `([x < c], [x = c])` of
    /// the sender's digit `x` and the receiver's digit `c` (its choice); `[x < c]` alone for the
    /// lowest digit (`eq: false`), whose equality no step reads.
    Digit { lo: u32, len: u32, eq: bool },
    /// `(lt_hi, eq_hi, lt_lo, eq_lo) -> (lt_hi ^ eq_hi lt_lo, eq_hi eq_lo)`: CrypTFlow2's
    /// combination step (Algorithm 1, lines 10-11; the two terms of the XOR exclude each other).
    Combine,
    /// `(lt_hi, eq_hi, lt_lo) -> lt_hi ^ eq_hi lt_lo`: a step over the lowest digit, whose
    /// equality no later step reads.
    CombineLt,
    /// `(lt_hi, eq_hi, lt_lo) -> (lt_hi ^ eq_hi lt_lo, lt_lo)`: the whole comparison from the
    /// high and low segments, and the low segment's carry passed on.
    Top,
    /// The identity on `n` bits: re-shares them one level up.
    Copy(u8),
}

/// One OT node: its gate and its inputs (wire indices of the previous level; none for a digit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub gate: Gate,
    pub inputs: Vec<u16>,
}

impl Node {
    /// Choice bits (OTs) of the node.
    pub fn k(&self) -> usize {
        match self.gate {
            Gate::Digit { len, .. } => len as usize,
            _ => self.inputs.len(),
        }
    }

    /// Output bits.
    pub fn outputs(&self) -> usize {
        match self.gate {
            Gate::Copy(n) => n as usize,
            Gate::Digit { eq: false, .. } | Gate::CombineLt => 1,
            _ => 2,
        }
    }

    /// Bits of the node's table: `2^k` entries of [`Node::outputs`] bits.
    pub fn table_bits(&self) -> usize {
        (1usize << self.k()) * self.outputs()
    }

    /// The outputs (bit `i` = output `i`) on the true inputs `v` (bit `i` = input `i`; for a
    /// digit node, the receiver's digit) and, for a digit node, the sender's digit `x`.
    #[inline]
    pub fn eval(&self, v: u32, x: u32) -> u32 {
        match self.gate {
            Gate::Digit { .. } => (x < v) as u32 | ((x == v) as u32) << 1,
            Gate::Combine => {
                let (lt_hi, eq_hi, lt_lo, eq_lo) = (v & 1, v >> 1 & 1, v >> 2 & 1, v >> 3 & 1);
                (lt_hi ^ (eq_hi & lt_lo)) | (eq_hi & eq_lo) << 1
            }
            Gate::Top => {
                let (lt_hi, eq_hi, lt_lo) = (v & 1, v >> 1 & 1, v >> 2 & 1);
                (lt_hi ^ (eq_hi & lt_lo)) | lt_lo << 1
            }
            Gate::CombineLt => {
                let (lt_hi, eq_hi, lt_lo) = (v & 1, v >> 1 & 1, v >> 2 & 1);
                lt_hi ^ (eq_hi & lt_lo)
            }
            Gate::Copy(_) => v,
        }
    }
}

/// Which party sends (offers the table) at a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Server,
    Client,
}

/// The levels of one ReLU's comparison for circuit width `w`, truncation `shift` and digits of
/// `m` bits; the same for every active ReLU of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub w: u32,
    pub shift: u32,
    pub m: u32,
    pub levels: Vec<Vec<Node>>,
    /// The wire of the last level holding the carry of the low `w - 1` bits.
    pub carry: u16,
    /// The wire of the last level holding the carry of the low `shift` bits (none when
    /// `shift = 0`).
    pub clow: Option<u16>,
}

impl Plan {
    pub fn new(w: u32, shift: u32, m: u32) -> Result<Self> {
        if !(1..=MAX_DIGIT_BITS).contains(&m) {
            return Err(MpcError::Params(format!(
                "digit size m = {m} must lie in 1..={MAX_DIGIT_BITS} (2^m entries of 2 bits per 128-bit OT key)"
            )));
        }
        if !(2..=64).contains(&w) || shift + 1 > w - 1 {
            return Err(MpcError::Params(format!(
                "comparison width w = {w} with truncation by {shift}: need 2 <= w <= 64 and shift < w - 1"
            )));
        }
        let mut leaves = Vec::new();
        let segment = |lo: u32, hi: u32, out: &mut Vec<Node>| {
            let mut at = lo;
            while at < hi {
                let len = m.min(hi - at);
                out.push(Node {
                    gate: Gate::Digit {
                        lo: at,
                        len,
                        // The lowest digit of the whole comparison: no step reads its equality.
                        eq: at != 0,
                    },
                    inputs: vec![],
                });
                at += len;
            }
        };
        segment(0, shift, &mut leaves);
        let n_low = leaves.len();
        segment(shift, w - 1, &mut leaves);
        // A segment's partial results: the wire of `lt` and, unless it holds the lowest digit,
        // of `eq`, at the current level.
        type Part = (u16, Option<u16>);
        let mut wire = 0u16;
        let mut parts: Vec<Part> = leaves
            .iter()
            .map(|n| {
                let p = (wire, (n.outputs() == 2).then_some(wire + 1));
                wire += n.outputs() as u16;
                p
            })
            .collect();
        let mut high: Vec<Part> = parts.split_off(n_low);
        let mut low: Vec<Part> = parts;
        let mut levels = vec![leaves];
        while low.len() > 1 || high.len() > 1 {
            let mut nodes = Vec::new();
            let mut wire = 0u16;
            let mut step = |seg: &[Part]| -> Vec<Part> {
                seg.chunks(2)
                    .map(|c| {
                        let node = match c {
                            [lo, hi] => {
                                let eq_hi = hi.1.expect("only the lowest digit lacks eq");
                                match lo.1 {
                                    Some(eq_lo) => Node {
                                        gate: Gate::Combine,
                                        inputs: vec![hi.0, eq_hi, lo.0, eq_lo],
                                    },
                                    None => Node {
                                        gate: Gate::CombineLt,
                                        inputs: vec![hi.0, eq_hi, lo.0],
                                    },
                                }
                            }
                            [one] => {
                                let inputs: Vec<u16> =
                                    std::iter::once(one.0).chain(one.1).collect();
                                Node {
                                    gate: Gate::Copy(inputs.len() as u8),
                                    inputs,
                                }
                            }
                            _ => unreachable!(),
                        };
                        let o = node.outputs() as u16;
                        nodes.push(node);
                        wire += o;
                        (wire - o, (o == 2).then_some(wire - 1))
                    })
                    .collect()
            };
            low = step(&low);
            high = step(&high);
            levels.push(nodes);
        }
        let (hi_lt, hi_eq) = high[0];
        let (mut carry, mut clow) = match low.first() {
            None => (hi_lt, None),
            Some(&(lo_lt, _)) => {
                let hi_eq = hi_eq.expect("the high segment holds no lowest digit here");
                levels.push(vec![Node {
                    gate: Gate::Top,
                    inputs: vec![hi_lt, hi_eq, lo_lt],
                }]);
                (0, Some(1))
            }
        };
        // The last level's sender must be the client (odd level), so that the client's shares of
        // the carries are its own masks, known offline (the final OTs select with them).
        if (levels.len() - 1).is_multiple_of(2) {
            let inputs: Vec<u16> = std::iter::once(carry).chain(clow).collect();
            levels.push(vec![Node {
                gate: Gate::Copy(inputs.len() as u8),
                inputs,
            }]);
            carry = 0;
            clow = clow.map(|_| 1);
        }
        Ok(Plan {
            w,
            shift,
            m,
            levels,
            carry,
            clow,
        })
    }

    /// The sender of level `t`: the server at level 0 and every even level, the client at odd.
    pub fn sender(t: usize) -> Sender {
        if t.is_multiple_of(2) {
            Sender::Server
        } else {
            Sender::Client
        }
    }

    /// Output wires of level `t`.
    pub fn wires(&self, t: usize) -> usize {
        self.levels[t].iter().map(Node::outputs).sum()
    }

    /// OTs of level `t` per ReLU (its receiver's choice bits).
    pub fn choices(&self, t: usize) -> usize {
        self.levels[t].iter().map(Node::k).sum()
    }

    /// Table bits of level `t` per ReLU.
    pub fn table_bits(&self, t: usize) -> usize {
        self.levels[t].iter().map(Node::table_bits).sum()
    }

    /// Choice bits of the final OT that the client selects in: its share of the carry XOR its
    /// sign bit, and its share of the low carry.
    pub fn final_choices(&self) -> usize {
        1 + self.clow.is_some() as usize
    }

    /// OTs per ReLU in which the client receives (digits, even levels, the final OT).
    pub fn client_receives(&self) -> usize {
        (0..self.levels.len())
            .filter(|&t| Self::sender(t) == Sender::Server)
            .map(|t| self.choices(t))
            .sum::<usize>()
            + self.final_choices()
    }

    /// OTs per ReLU in which the server receives (odd levels, and the two of the multiplexer by
    /// the client's integer part).
    pub fn server_receives(&self) -> usize {
        (0..self.levels.len())
            .filter(|&t| Self::sender(t) == Sender::Client)
            .map(|t| self.choices(t))
            .sum::<usize>()
            + 2
    }

    /// Evaluates the plan on the two operands in the clear: `(carry of all w - 1 bits, carry of
    /// the low shift bits)` of `x + c` in the form `[x' < c]` with `x' = 2^(w-1) - 1 - x`. The
    /// reference the OT protocol is tested against, and the proof that the tree is right.
    pub fn eval_plain(&self, x: u64, c: u64) -> (bool, bool) {
        let mut wires: Vec<u32> = Vec::new();
        for (t, level) in self.levels.iter().enumerate() {
            let mut next = Vec::new();
            for node in level {
                let out = match node.gate {
                    Gate::Digit { lo, len, .. } => {
                        let mask = (1u64 << len) - 1;
                        node.eval((c >> lo & mask) as u32, (x >> lo & mask) as u32)
                    }
                    _ => {
                        let v = node
                            .inputs
                            .iter()
                            .enumerate()
                            .fold(0u32, |v, (i, &wi)| v | wires[wi as usize] << i);
                        node.eval(v, 0)
                    }
                };
                for o in 0..node.outputs() {
                    next.push(out >> o & 1);
                }
            }
            debug_assert_eq!(next.len(), self.wires(t));
            wires = next;
        }
        (
            wires[self.carry as usize] == 1,
            self.clow.is_some_and(|w| wires[w as usize] == 1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The tree computes `[x < c]` over `w - 1` bits and over the low `shift` bits, for every
    /// digit size, with the last level's sender the client; exhaustive on small widths, random
    /// and edge values on the default one.
    #[test]
    fn plan_compares_like_integers() {
        for m in 1..=MAX_DIGIT_BITS {
            for (w, shift) in [(6u32, 2u32), (7, 0), (5, 3), (9, 4)] {
                let p = Plan::new(w, shift, m).unwrap();
                assert_eq!(Plan::sender(p.levels.len() - 1), Sender::Client);
                let top = 1u64 << (w - 1);
                for x in 0..top {
                    for c in 0..top {
                        let lo = (1u64 << shift) - 1;
                        let want = (x < c, shift > 0 && (x & lo) < (c & lo));
                        assert_eq!(
                            p.eval_plain(x, c),
                            want,
                            "w {w} shift {shift} m {m}: {x} vs {c}"
                        );
                    }
                }
            }
            let p = Plan::new(32, 12, m).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(m as u64);
            let top = (1u64 << 31) - 1;
            let mut cases: Vec<(u64, u64)> = (0..2000)
                .map(|_| (rng.gen::<u64>() & top, rng.gen::<u64>() & top))
                .collect();
            cases.extend([(0, 0), (top, top), (0, top), (top, 0), (top - 1, top)]);
            for (x, c) in cases {
                let lo = (1u64 << 12) - 1;
                assert_eq!(
                    p.eval_plain(x, c),
                    (x < c, (x & lo) < (c & lo)),
                    "{x} vs {c}"
                );
            }
        }
        assert!(Plan::new(32, 12, 0).is_err());
        assert!(Plan::new(32, 12, 7).is_err());
        assert!(Plan::new(8, 7, 4).is_err());
    }

    /// Every table fits the OT keys it is masked with.
    #[test]
    fn tables_fit_one_key() {
        for m in 1..=MAX_DIGIT_BITS {
            let p = Plan::new(64, 20, m).unwrap();
            for level in &p.levels {
                for n in level {
                    assert!(n.table_bits() <= 128, "{n:?}");
                }
            }
        }
    }
}
