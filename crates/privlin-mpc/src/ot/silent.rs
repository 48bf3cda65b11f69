//! Silent OT extension: Ferret (Yang, Weng, Lan, Zhang, Wang, "Ferret: Fast Extension for
//! coRRElated oT with small communication", CCS 2020), semi-honest, over the session's counted
//! channel.
//!
//! Correlated OTs (COTs) with a global correlation `delta` held by the sender: the sender holds
//! `q_i`, the receiver a choice bit `b_i` and `t_i = q_i ^ b_i delta`. One *round* turns
//! `M = k + t h` COTs into `n = t 2^h` new ones (Ferret, section 5, figure 7 without the
//! malicious consistency check):
//!
//! 1. **Single-point COT on `t` GGM trees** (Ferret figure 5; Boyle-Couteau-Gilboa-Ishai-Kohl-
//!    Scholl CCS 2019 for the punctured PRF). The sender expands a random root by the
//!    length-doubling PRG `G(s) = (pi_0(s) ^ s, pi_1(s) ^ s)` (fixed-key AES, [`Ggm`]) into
//!    `2^h` leaves `v` and sums each level's left and right children, `K_0^l, K_1^l`. Per level
//!    one COT of the round's bases serves as a random OT of those two sums: the sender sends
//!    `K_0^l ^ H(q_l)` and `K_1^l ^ H(q_l ^ delta)`, the receiver unmasks `K_{b_l}^l` with
//!    `H(t_l)`. The punctured leaf is `alpha = (not b_1, ..., not b_h)`: the receiver's random
//!    choice bits pick it, so no choice is sent (Ferret's optimisation). From the sums it
//!    rebuilds every leaf but `v_alpha`; the sender adds `phi = delta ^ XOR_j v_j`, from which
//!    the receiver gets `w_alpha = v_alpha ^ delta` (and `w_j = v_j` elsewhere): a COT whose
//!    choice vector `e` is the unit vector at `alpha`.
//! 2. **Primal LPN with regular noise.** With the first `k` bases as the secret (sender `v`,
//!    receiver `(u, w)`) and a public random matrix `A` of `d = 10` entries per row (from the
//!    round's seed), the sender outputs `A v ^ leaves` and the receiver `A u ^ e` as choices and
//!    `A w ^ leaves'` as messages; `A u ^ e` is pseudorandom under regular-noise LPN.
//! 3. **Bootstrapping.** The first `M` outputs are the next round's bases; `n - M` are new.
//!    The first round's bases are IKNP COTs without the hash ([`iknp::Sender::correlated_raw`];
//!    `delta` is IKNP's base-OT choice vector), made once per session.
//!
//! **Parameters** ([`FERRET_B10`]): `t = 850`, `k = 2^16`, `h = 10` (`n = 870,400`), `d = 10`:
//! the smallest of the four primal regular-LPN parameter sets that emp-ot (the Ferret authors'
//! library, v1.0.0-alpha.1, `emp-ot/tuning.h`, `ferret_b10`) lists as selected for about
//! 128-bit security against the published regular-LPN attacks (Gauss, SD-ISD, BJMM, the hybrid
//! attack that binds, and the newer AGB/Esser estimates) with the LPN estimator; each set's `t`
//! is the largest its `(k, h)` admits at that floor. Not chosen or tuned here.
//!
//! **Random OT with a chosen choice** (Beaver's derandomisation): the receiver sends
//! `c_i ^ b_i`, one bit per OT, and the sender's messages are `H(q_i ^ (c_i ^ b_i) delta)` and
//! `H(q_i ^ (1 ^ c_i ^ b_i) delta)`, of which the receiver knows the `c_i`-th, `H(t_i)`. So a
//! random OT costs one bit at use plus `round bytes / (n - M)`: `t (2 h + 1) + 1` blocks per
//! round, 0.35 bytes per OT. The hash is the GKWY tweakable CCR hash of [`crate::gc`], keyed
//! apart from garbling and IKNP.
//!
//! Rounds run when a call needs more OTs than the pool holds ([`LpnParams::rounds_for`]); both
//! parties and the cost model follow the same rule, so message sizes are public.
//! [`Sender::discard`] / [`Receiver::discard`] empty the pool (kept bases stay): the protocol
//! does it at the end of every inference's offline phase, so each inference's traffic is the
//! same whatever ran before it.

use super::iknp;
use crate::error::{MpcError, Result};
use crate::gc::{select, FixedKeyHash};
use crate::net::{Channel, Expect};
use crate::wire::{bits_bytes, blocks_bytes, Block, Reader, Writer};
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use rand::{CryptoRng, Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rayon::prelude::*;

/// Nonzero entries per row of the LPN matrix (Ferret's `d`; emp-ot `tuning::lpn_d`).
pub const LPN_D: usize = 10;

/// Domains of the fixed-key hash: the trees' level OTs and the random OTs handed out (garbling
/// 0, IKNP 1, the OT ReLUs' table keys 3).
const SPCOT_DOMAIN: u8 = 4;
const OT_DOMAIN: u8 = 5;

/// A primal regular-LPN parameter set: `t` trees (noise weight) of depth `depth`, secret
/// length `2^log_k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LpnParams {
    pub t: usize,
    pub log_k: u32,
    pub depth: u32,
}

/// emp-ot's `ferret_b10` (see the module documentation): about 128-bit security.
pub const FERRET_B10: LpnParams = LpnParams {
    t: 850,
    log_k: 16,
    depth: 10,
};

impl LpnParams {
    /// Outputs of a round: `t 2^h`.
    pub const fn n(&self) -> usize {
        self.t << self.depth
    }

    /// LPN secret length.
    pub const fn k(&self) -> usize {
        1 << self.log_k
    }

    /// COTs a round consumes: the secret and one per tree level.
    pub const fn bases(&self) -> usize {
        self.k() + self.t * self.depth as usize
    }

    /// New COTs a round leaves after keeping the next round's bases.
    pub const fn usable(&self) -> usize {
        self.n() - self.bases()
    }

    /// Blocks of a round's message: the LPN matrix seed, then per tree two level sums per level
    /// and `phi`.
    pub const fn round_blocks(&self) -> usize {
        1 + self.t * (2 * self.depth as usize + 1)
    }

    /// Rounds that a call for `m` OTs runs when the pool holds `available`, and what the pool
    /// holds after the call.
    pub fn rounds_for(&self, available: usize, m: usize) -> (usize, usize) {
        let rounds = m.saturating_sub(available).div_ceil(self.usable());
        (rounds, available + rounds * self.usable() - m)
    }

    /// Payload bytes of the message that carries `rounds` rounds.
    pub fn message_bytes(&self, rounds: usize) -> u64 {
        blocks_bytes(rounds * self.round_blocks())
    }

    fn validate(&self) -> Result<()> {
        if self.log_k == 0 || self.log_k > 16 || self.depth == 0 || self.depth > 20 {
            return Err(MpcError::Params(format!(
                "LPN parameters {self:?}: need 1 <= log_k <= 16 and 1 <= depth <= 20"
            )));
        }
        if self.bases() >= self.n() {
            return Err(MpcError::Params(format!(
                "LPN parameters {self:?}: a round must make more COTs than it consumes"
            )));
        }
        Ok(())
    }
}

/// The pool of a party's direction, as the cost model tracks it: OTs available.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    pub available: usize,
}

impl PoolState {
    /// The messages of one random-OT call of `m` OTs in the order they are sent, as
    /// `(receiver sends, payload bytes)`, and the rounds it runs; advances the pool.
    pub fn call(&mut self, params: &LpnParams, m: usize) -> (Vec<(bool, u64)>, usize) {
        if m == 0 {
            return (Vec::new(), 0);
        }
        let (rounds, left) = params.rounds_for(self.available, m);
        self.available = left;
        let mut msgs = Vec::with_capacity(2);
        if rounds > 0 {
            msgs.push((false, params.message_bytes(rounds)));
        }
        msgs.push((true, bits_bytes(m)));
        (msgs, rounds)
    }
}

/// Decodes the message of `rounds` rounds: their blocks, the count checked.
pub fn decode_rounds(msg: &[u8], params: &LpnParams, rounds: usize) -> Result<Vec<Block>> {
    let mut r = Reader::new(msg, "silent OT: rounds");
    let blocks = r.blocks_n(rounds * params.round_blocks(), "tree sums")?;
    r.end()?;
    Ok(blocks)
}

/// Decodes the receiver's `m` choice corrections.
pub fn decode_corrections(msg: &[u8], m: usize) -> Result<Vec<bool>> {
    let mut r = Reader::new(msg, "silent OT: choice corrections");
    let d = r.bits_n(m, "corrections")?;
    r.end()?;
    Ok(d)
}

/// The GGM tree's length-doubling PRG: `G(s) = (pi_0(s) ^ s, pi_1(s) ^ s)` with two fixed-key
/// AES permutations (Davies-Meyer in the ideal-cipher model, as emp-ot's tree expansion).
struct Ggm {
    left: Aes128,
    right: Aes128,
}

impl Ggm {
    fn new() -> Self {
        Ggm {
            left: Aes128::new(&GenericArray::from(*b"privlin-ggm-left")),
            right: Aes128::new(&GenericArray::from(*b"privlin-ggm-rght")),
        }
    }

    /// The children of `parents`, left then right of each, into `children`.
    fn expand(&self, parents: &[Block], children: &mut [Block]) {
        for (ps, cs) in parents.chunks(8).zip(children.chunks_mut(16)) {
            let mut l = [GenericArray::from([0u8; 16]); 8];
            for (b, p) in l.iter_mut().zip(ps) {
                *b = GenericArray::from(p.to_le_bytes());
            }
            let mut r = l;
            self.left.encrypt_blocks(&mut l[..ps.len()]);
            self.right.encrypt_blocks(&mut r[..ps.len()]);
            for (j, p) in ps.iter().enumerate() {
                cs[2 * j] = u128::from_le_bytes(l[j].into()) ^ p;
                cs[2 * j + 1] = u128::from_le_bytes(r[j].into()) ^ p;
            }
        }
    }

    /// The sender's tree from `root`: its leaves into `leaves` (`2^depth`), and per level the
    /// sums of left and right children.
    fn sender_tree(&self, root: Block, leaves: &mut [Block]) -> Vec<[Block; 2]> {
        let mut cur = vec![root];
        let mut sums = Vec::new();
        while cur.len() < leaves.len() {
            let mut next = vec![0; 2 * cur.len()];
            self.expand(&cur, &mut next);
            let mut s = [0; 2];
            for pair in next.chunks(2) {
                s[0] ^= pair[0];
                s[1] ^= pair[1];
            }
            sums.push(s);
            cur = next;
        }
        leaves.copy_from_slice(&cur);
        sums
    }

    /// The receiver's tree: `known[l]` is the sum of level `l`'s children on the side of bit
    /// `side[l]`, which is off its path (the path goes to `!side[l]`). Writes every leaf but the
    /// punctured one (left zero) and returns the punctured leaf's index.
    fn receiver_tree(&self, side: &[bool], known: &[Block], leaves: &mut [Block]) -> usize {
        let mut cur = vec![0u128];
        let mut a = 0usize;
        for (&sib, &k) in side.iter().zip(known) {
            let mut next = vec![0; 2 * cur.len()];
            self.expand(&cur, &mut next);
            next[2 * a] = 0;
            next[2 * a + 1] = 0;
            let s = sib as usize;
            let mut acc = k;
            for v in next.iter().skip(s).step_by(2) {
                acc ^= v;
            }
            next[2 * a + s] = acc;
            a = 2 * a + 1 - s;
            cur = next;
        }
        leaves.copy_from_slice(&cur);
        a
    }
}

/// The public LPN matrix of a round: AES under the round's seed in counter mode, five blocks per
/// four rows (`5 g .. 5 g + 4` for rows `4 g .. 4 g + 3`); row `4 g + r` takes the eight 16-bit
/// words of block `5 g + r` and words `2 r, 2 r + 1` of block `5 g + 4`, each modulo `k`.
struct LpnMatrix {
    aes: Aes128,
    mask: u32,
}

impl LpnMatrix {
    fn new(seed: Block, params: &LpnParams) -> Self {
        LpnMatrix {
            aes: Aes128::new(&GenericArray::from(seed.to_le_bytes())),
            mask: params.k() as u32 - 1,
        }
    }

    /// Column indices of rows `first..first + rows.len()` (`first` a multiple of 4).
    fn rows(&self, first: usize, rows: &mut [[u32; LPN_D]]) {
        debug_assert_eq!(first % 4, 0);
        for (c, chunk) in rows.chunks_mut(4).enumerate() {
            let g = (first / 4 + c) as u128;
            let mut b = [GenericArray::from([0u8; 16]); 5];
            for (j, blk) in b.iter_mut().enumerate() {
                *blk = GenericArray::from((5 * g + j as u128).to_le_bytes());
            }
            self.aes.encrypt_blocks(&mut b);
            let extra = u128::from_le_bytes(b[4].into());
            for (r, row) in chunk.iter_mut().enumerate() {
                let x = u128::from_le_bytes(b[r].into());
                for (d, v) in row[..8].iter_mut().enumerate() {
                    *v = (x >> (16 * d)) as u32 & self.mask;
                }
                row[8] = (extra >> (32 * r)) as u32 & self.mask;
                row[9] = (extra >> (32 * r + 16)) as u32 & self.mask;
            }
        }
    }
}

/// Rows per parallel task of the LPN encoding.
const LPN_CHUNK: usize = 2048;

/// `out[i] ^= XOR_j secret[A_ij]` (and the same on bits when given).
fn lpn_encode(
    a: &LpnMatrix,
    secret: &[Block],
    secret_bits: Option<&[bool]>,
    out: &mut [Block],
    out_bits: Option<&mut [bool]>,
) {
    let apply = |c: usize, o: &mut [Block], ob: Option<&mut [bool]>| {
        let mut rows = vec![[0u32; LPN_D]; o.len()];
        a.rows(c * LPN_CHUNK, &mut rows);
        for (x, r) in o.iter_mut().zip(&rows) {
            for &j in r {
                *x ^= secret[j as usize];
            }
        }
        if let (Some(ob), Some(sb)) = (ob, secret_bits) {
            for (x, r) in ob.iter_mut().zip(&rows) {
                for &j in r {
                    *x ^= sb[j as usize];
                }
            }
        }
    };
    match out_bits {
        Some(ob) => out
            .par_chunks_mut(LPN_CHUNK)
            .zip(ob.par_chunks_mut(LPN_CHUNK))
            .enumerate()
            .for_each(|(c, (o, b))| apply(c, o, Some(b))),
        None => out
            .par_chunks_mut(LPN_CHUNK)
            .enumerate()
            .for_each(|(c, o)| apply(c, o, None)),
    }
}

/// What both ends of a direction hold alike: the parameters, the tree PRG, the hashes and
/// their tweak counters (equal on both sides at every step).
struct Common {
    params: LpnParams,
    ggm: Ggm,
    spcot_hash: FixedKeyHash,
    ot_hash: FixedKeyHash,
    spcot_tweak: u128,
    ot_tweak: u128,
}

impl Common {
    fn new(params: LpnParams) -> Self {
        Common {
            params,
            ggm: Ggm::new(),
            spcot_hash: FixedKeyHash::new(SPCOT_DOMAIN),
            ot_hash: FixedKeyHash::new(OT_DOMAIN),
            spcot_tweak: 0,
            ot_tweak: 0,
        }
    }
}

/// The sender of a direction (holds `delta`).
pub struct Sender {
    c: Common,
    delta: Block,
    bases: Vec<Block>,
    pool: Vec<Block>,
    next: usize,
    rng: ChaCha12Rng,
}

/// The receiver of a direction.
pub struct Receiver {
    c: Common,
    bases: Vec<Block>,
    base_bits: Vec<bool>,
    pool: Vec<Block>,
    pool_bits: Vec<bool>,
    next: usize,
}

impl Sender {
    /// Base OTs (as their receiver) and the first round's bases by IKNP.
    pub fn setup<R: RngCore + CryptoRng>(ch: &mut Channel, rng: &mut R) -> Result<Self> {
        Self::setup_with(ch, rng, FERRET_B10)
    }

    pub(crate) fn setup_with<R: RngCore + CryptoRng>(
        ch: &mut Channel,
        rng: &mut R,
        params: LpnParams,
    ) -> Result<Self> {
        params.validate()?;
        let mut ext = iknp::Sender::setup(ch, rng)?;
        let (bases, delta) = ext.correlated_raw(ch, params.bases())?;
        Ok(Sender {
            c: Common::new(params),
            delta,
            bases,
            pool: Vec::new(),
            next: 0,
            rng: ChaCha12Rng::from_seed(rng.gen()),
        })
    }

    pub fn params(&self) -> LpnParams {
        self.c.params
    }

    /// OTs in the pool.
    pub fn available(&self) -> usize {
        self.pool.len() - self.next
    }

    /// Empties the pool (the next call runs fresh rounds).
    pub fn discard(&mut self) {
        self.pool.clear();
        self.next = 0;
    }

    /// Makes sure the pool holds `m` OTs: runs the rounds they need ([`LpnParams::rounds_for`])
    /// and sends their messages in one (nothing when the pool suffices).
    pub fn reserve(&mut self, ch: &mut Channel, m: usize) -> Result<()> {
        let (rounds, _) = self.c.params.rounds_for(self.available(), m);
        if rounds == 0 {
            return Ok(());
        }
        self.pool.drain(..self.next);
        self.next = 0;
        let mut msg = Vec::with_capacity(rounds * self.c.params.round_blocks());
        for _ in 0..rounds {
            self.round(&mut msg);
        }
        let mut w = Writer::with_capacity(16 * msg.len() + 8);
        w.blocks(&msg);
        ch.send(w.finish())
    }

    /// One round: appends its message to `msg` and its new COTs to the pool.
    fn round(&mut self, msg: &mut Vec<Block>) {
        let p = self.c.params;
        let h = p.depth as usize;
        let seed: Block = self.rng.gen();
        let roots: Vec<Block> = (0..p.t).map(|_| self.rng.gen()).collect();
        let (secret, tree_bases) = self.bases.split_at(p.k());
        let mut leaves = vec![0u128; p.n()];
        let mut trees = vec![0u128; p.t * (2 * h + 1)];
        let (ggm, hash, delta, tw0) = (
            &self.c.ggm,
            &self.c.spcot_hash,
            self.delta,
            self.c.spcot_tweak,
        );
        leaves
            .par_chunks_mut(1 << h)
            .zip(trees.par_chunks_mut(2 * h + 1))
            .enumerate()
            .for_each(|(tau, (lv, m))| {
                let sums = ggm.sender_tree(roots[tau], lv);
                for (l, s) in sums.iter().enumerate() {
                    let q = tree_bases[tau * h + l];
                    let tw = tw0 + (tau * h + l) as u128;
                    let [h0, h1] = hash.hash([q, q ^ delta], [tw, tw]);
                    m[2 * l] = s[0] ^ h0;
                    m[2 * l + 1] = s[1] ^ h1;
                }
                m[2 * h] = lv.iter().fold(delta, |a, &v| a ^ v);
            });
        self.c.spcot_tweak += (p.t * h) as u128;
        lpn_encode(&LpnMatrix::new(seed, &p), secret, None, &mut leaves, None);
        msg.push(seed);
        msg.extend_from_slice(&trees);
        self.pool.extend_from_slice(&leaves[p.bases()..]);
        leaves.truncate(p.bases());
        self.bases = leaves;
    }

    /// `m` random OTs whose choices the receiver picks ([`Receiver::random`]): both messages of
    /// each, the receiver's choice bits selecting one.
    pub fn random(&mut self, ch: &mut Channel, m: usize) -> Result<Vec<[Block; 2]>> {
        if m == 0 {
            return Ok(Vec::new());
        }
        self.reserve(ch, m)?;
        let msg = ch.recv(
            "silent OT: choice corrections",
            Expect::Exact(bits_bytes(m)),
        )?;
        let d = decode_corrections(&msg, m)?;
        let q = &self.pool[self.next..self.next + m];
        self.next += m;
        let (delta, hash, tw0) = (self.delta, &self.c.ot_hash, self.c.ot_tweak);
        self.c.ot_tweak += m as u128;
        let mut out = vec![[0u128; 2]; m];
        out.par_chunks_mut(1024)
            .zip(q.par_chunks(1024).zip(d.par_chunks(1024)))
            .enumerate()
            .for_each(|(c, (o, (q, d)))| {
                let mut zero: Vec<Block> = q
                    .iter()
                    .zip(d)
                    .map(|(&q, &d)| q ^ select(d, delta))
                    .collect();
                let mut one: Vec<Block> = zero.iter().map(|&z| z ^ delta).collect();
                let tw = tw0 + (c * 1024) as u128;
                hash.hash_slice(&mut zero, tw);
                hash.hash_slice(&mut one, tw);
                for ((o, z), w) in o.iter_mut().zip(zero).zip(one) {
                    *o = [z, w];
                }
            });
        Ok(out)
    }

    /// The pool's raw COTs `q_i` and `delta` (tests of the correlation).
    #[cfg(test)]
    fn take_raw(&mut self, ch: &mut Channel, m: usize) -> Result<(Vec<Block>, Block)> {
        self.reserve(ch, m)?;
        let q = self.pool[self.next..self.next + m].to_vec();
        self.next += m;
        Ok((q, self.delta))
    }
}

impl Receiver {
    /// Base OTs (as their sender) and the first round's bases by IKNP, with random choices.
    pub fn setup<R: RngCore + CryptoRng>(ch: &mut Channel, rng: &mut R) -> Result<Self> {
        Self::setup_with(ch, rng, FERRET_B10)
    }

    pub(crate) fn setup_with<R: RngCore + CryptoRng>(
        ch: &mut Channel,
        rng: &mut R,
        params: LpnParams,
    ) -> Result<Self> {
        params.validate()?;
        let mut ext = iknp::Receiver::setup(ch, rng)?;
        let base_bits: Vec<bool> = (0..params.bases()).map(|_| rng.gen()).collect();
        let bases = ext.correlated_raw(ch, &base_bits)?;
        Ok(Receiver {
            c: Common::new(params),
            bases,
            base_bits,
            pool: Vec::new(),
            pool_bits: Vec::new(),
            next: 0,
        })
    }

    pub fn params(&self) -> LpnParams {
        self.c.params
    }

    /// OTs in the pool.
    pub fn available(&self) -> usize {
        self.pool.len() - self.next
    }

    /// Empties the pool ([`Sender::discard`]).
    pub fn discard(&mut self) {
        self.pool.clear();
        self.pool_bits.clear();
        self.next = 0;
    }

    /// The receiver's side of [`Sender::reserve`]: receives and runs the rounds.
    pub fn reserve(&mut self, ch: &mut Channel, m: usize) -> Result<()> {
        let (rounds, _) = self.c.params.rounds_for(self.available(), m);
        if rounds == 0 {
            return Ok(());
        }
        let rb = self.c.params.round_blocks();
        let msg = ch.recv(
            "silent OT: rounds",
            Expect::Exact(self.c.params.message_bytes(rounds)),
        )?;
        let blocks = decode_rounds(&msg, &self.c.params, rounds)?;
        self.pool.drain(..self.next);
        self.pool_bits.drain(..self.next);
        self.next = 0;
        for round in blocks.chunks(rb) {
            self.round(round);
        }
        Ok(())
    }

    /// One round from its message.
    fn round(&mut self, msg: &[Block]) {
        let p = self.c.params;
        let h = p.depth as usize;
        let (seed, trees) = (msg[0], &msg[1..]);
        let (secret, tree_bases) = self.bases.split_at(p.k());
        let (secret_bits, tree_bits) = self.base_bits.split_at(p.k());
        let mut leaves = vec![0u128; p.n()];
        let mut noise = vec![false; p.n()];
        let (ggm, hash, tw0) = (&self.c.ggm, &self.c.spcot_hash, self.c.spcot_tweak);
        leaves
            .par_chunks_mut(1 << h)
            .zip(noise.par_chunks_mut(1 << h))
            .zip(trees.par_chunks(2 * h + 1))
            .enumerate()
            .for_each(|(tau, ((lv, e), m))| {
                let side = &tree_bits[tau * h..(tau + 1) * h];
                let known: Vec<Block> = (0..h)
                    .map(|l| {
                        let tw = tw0 + (tau * h + l) as u128;
                        let key = hash.hash([tree_bases[tau * h + l]], [tw])[0];
                        // The sum on side b_l, chosen without a branch on the bit.
                        let b = side[l];
                        select(b, m[2 * l + 1]) ^ select(!b, m[2 * l]) ^ key
                    })
                    .collect();
                let a = ggm.receiver_tree(side, &known, lv);
                lv[a] = lv.iter().fold(m[2 * h], |acc, &v| acc ^ v);
                e[a] = true;
            });
        self.c.spcot_tweak += (p.t * h) as u128;
        lpn_encode(
            &LpnMatrix::new(seed, &p),
            secret,
            Some(secret_bits),
            &mut leaves,
            Some(&mut noise),
        );
        self.pool.extend_from_slice(&leaves[p.bases()..]);
        self.pool_bits.extend_from_slice(&noise[p.bases()..]);
        leaves.truncate(p.bases());
        noise.truncate(p.bases());
        self.bases = leaves;
        self.base_bits = noise;
    }

    /// Random OTs with `choices`: returns `H(t_i)`, the sender's message that each choice
    /// selects ([`Sender::random`]); sends one bit per OT.
    pub fn random(&mut self, ch: &mut Channel, choices: &[bool]) -> Result<Vec<Block>> {
        let m = choices.len();
        if m == 0 {
            return Ok(Vec::new());
        }
        self.reserve(ch, m)?;
        let (t, b) = (
            &self.pool[self.next..self.next + m],
            &self.pool_bits[self.next..self.next + m],
        );
        let d: Vec<bool> = choices.iter().zip(b).map(|(&c, &b)| c ^ b).collect();
        let mut w = Writer::with_capacity(m / 8 + 16);
        w.bits(&d);
        ch.send(w.finish())?;
        let mut out = t.to_vec();
        self.next += m;
        let (hash, tw0) = (&self.c.ot_hash, self.c.ot_tweak);
        self.c.ot_tweak += m as u128;
        out.par_chunks_mut(1024)
            .enumerate()
            .for_each(|(c, o)| hash.hash_slice(o, tw0 + (c * 1024) as u128));
        Ok(out)
    }

    /// The pool's raw COTs `(b_i, t_i)` (tests of the correlation).
    #[cfg(test)]
    fn take_raw(&mut self, ch: &mut Channel, m: usize) -> Result<(Vec<bool>, Vec<Block>)> {
        self.reserve(ch, m)?;
        let r = (
            self.pool_bits[self.next..self.next + m].to_vec(),
            self.pool[self.next..self.next + m].to_vec(),
        );
        self.next += m;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::mem;

    /// Small, insecure parameters for fast tests of the mechanics.
    const SMALL: LpnParams = LpnParams {
        t: 24,
        log_k: 8,
        depth: 5,
    };

    fn pair<S: Send + 'static, C>(
        params: LpnParams,
        server: impl FnOnce(&mut Channel, &mut Sender) -> S + Send + 'static,
        client: impl FnOnce(&mut Channel, &mut Receiver) -> C,
    ) -> (S, C, Channel) {
        let (a, b) = mem::pair();
        let s = std::thread::spawn(move || {
            let mut ch = Channel::new(Box::new(a));
            let mut rng = ChaCha12Rng::seed_from_u64(31);
            let mut tx = Sender::setup_with(&mut ch, &mut rng, params).unwrap();
            server(&mut ch, &mut tx)
        });
        let mut ch = Channel::new(Box::new(b));
        let mut rng = ChaCha12Rng::seed_from_u64(32);
        let mut rx = Receiver::setup_with(&mut ch, &mut rng, params).unwrap();
        ch.meter.reset();
        let c = client(&mut ch, &mut rx);
        (s.join().unwrap(), c, ch)
    }

    /// Every COT of several rounds satisfies `t_i = q_i ^ b_i delta`, the choice bits are
    /// balanced (they are LPN samples, not the sparse noise), and each tree's noise is one point.
    #[test]
    fn silent_cots_satisfy_the_correlation() {
        for params in [SMALL, FERRET_B10] {
            let m = params.usable() * 2 + 17;
            let ((q, delta), (b, t), _) = pair(
                params,
                move |ch, s| s.take_raw(ch, m).unwrap(),
                move |ch, r| r.take_raw(ch, m).unwrap(),
            );
            for i in 0..m {
                assert_eq!(t[i], q[i] ^ select(b[i], delta), "COT {i} of {params:?}");
            }
            let ones = b.iter().filter(|&&x| x).count() as f64 / m as f64;
            assert!((ones - 0.5).abs() < 0.02, "choice bits {ones} ones");
            assert_ne!(q[0], q[1]);
        }
    }

    /// The receiver's tree leaves: all but one equal the sender's, the punctured one is
    /// `v_alpha ^ delta`, and alpha is the complement of the level choices.
    #[test]
    fn punctured_tree_matches_the_senders() {
        let ggm = Ggm::new();
        let mut rng = ChaCha12Rng::seed_from_u64(3);
        for depth in 1..8 {
            let mut v = vec![0u128; 1 << depth];
            let sums = ggm.sender_tree(rng.gen(), &mut v);
            let side: Vec<bool> = (0..depth).map(|_| rng.gen()).collect();
            let known: Vec<Block> = sums
                .iter()
                .zip(&side)
                .map(|(s, &b)| s[b as usize])
                .collect();
            let mut w = vec![0u128; 1 << depth];
            let a = ggm.receiver_tree(&side, &known, &mut w);
            let want = side.iter().fold(0, |acc, &b| 2 * acc + (!b) as usize);
            assert_eq!(a, want);
            for j in 0..v.len() {
                if j != a {
                    assert_eq!(w[j], v[j], "leaf {j}");
                }
            }
            assert_eq!(w[a], 0);
        }
    }

    /// Random OTs with chosen choices: the receiver gets the chosen message, not the other;
    /// the messages sent are the ones the pool state predicts (rounds, then one bit per OT).
    #[test]
    fn random_ots_with_chosen_choices() {
        let calls = [5usize, 700, 3, 1500];
        let choices: Vec<Vec<bool>> = {
            let mut rng = ChaCha12Rng::seed_from_u64(4);
            calls
                .iter()
                .map(|&m| (0..m).map(|_| rng.gen()).collect())
                .collect()
        };
        let cs = choices.clone();
        let (sent, got, ch) = pair(
            SMALL,
            move |ch, s| {
                let mut all = Vec::new();
                for (k, &m) in calls.iter().enumerate() {
                    all.push(s.random(ch, m).unwrap());
                    if k == 1 {
                        s.discard();
                    }
                }
                all
            },
            move |ch, r| {
                let mut all = Vec::new();
                for (k, c) in cs.iter().enumerate() {
                    all.push(r.random(ch, c).unwrap());
                    if k == 1 {
                        r.discard();
                    }
                }
                all
            },
        );
        for ((s, g), c) in sent.iter().zip(&got).zip(&choices) {
            for j in 0..c.len() {
                assert_eq!(g[j], s[j][c[j] as usize]);
                assert_ne!(g[j], s[j][!c[j] as usize]);
            }
        }
        let mut pool = PoolState::default();
        let mut want_sent = 0;
        let mut want_recv = 0;
        for (k, &m) in calls.iter().enumerate() {
            for (recv_sends, b) in pool.call(&SMALL, m).0 {
                if recv_sends {
                    want_sent += b + crate::net::HEADER;
                } else {
                    want_recv += b + crate::net::HEADER;
                }
            }
            if k == 1 {
                pool = PoolState::default();
            }
        }
        let t = ch.meter.total("");
        assert_eq!((t.bytes_sent, t.bytes_received), (want_sent, want_recv));
    }

    /// A well-formed message of rounds decodes to the blocks it was written from.
    #[test]
    fn round_messages_decode_to_what_was_sent() {
        let blocks: Vec<Block> = (0..2 * SMALL.round_blocks() as u128)
            .map(|i| i * 77)
            .collect();
        let mut w = Writer::new();
        w.blocks(&blocks);
        let msg = w.finish();
        assert_eq!(msg.len() as u64, SMALL.message_bytes(2));
        assert_eq!(decode_rounds(&msg, &SMALL, 2).unwrap(), blocks);
        assert!(decode_rounds(&msg, &SMALL, 1).is_err());
        let bits: Vec<bool> = (0..13).map(|i| i % 3 == 0).collect();
        let mut w = Writer::new();
        w.bits(&bits);
        assert_eq!(decode_corrections(&w.finish(), 13).unwrap(), bits);
    }

    /// A truncated or oversized round message is refused with an error, not a panic.
    #[test]
    fn malformed_round_messages_are_refused() {
        for delta_len in [-16i64, 16] {
            let (a, b) = mem::pair();
            let s = std::thread::spawn(move || {
                let mut ch = Channel::new(Box::new(a));
                let mut rng = ChaCha12Rng::seed_from_u64(1);
                let _tx = Sender::setup_with(&mut ch, &mut rng, SMALL).unwrap();
                let n = SMALL.round_blocks() as i64 * 16 + delta_len;
                let mut w = Writer::new();
                w.u64((n / 16) as u64);
                let mut msg = w.finish();
                msg.resize(8 + n as usize, 0);
                ch.send(msg).unwrap();
            });
            let mut ch = Channel::new(Box::new(b));
            let mut rng = ChaCha12Rng::seed_from_u64(2);
            let mut rx = Receiver::setup_with(&mut ch, &mut rng, SMALL).unwrap();
            let err = rx.random(&mut ch, &[true; 10]);
            assert!(err.is_err());
            s.join().unwrap();
        }
    }
}
