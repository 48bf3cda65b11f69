//! Active ReLUs on oblivious transfer instead of garbled circuits: DReLU by the millionaires'
//! protocol (CrypTFlow2, Rathee et al. CCS 2020, section 3.1) on the low `w` bits of the two
//! shares, the exact truncation's carry from the same tree (SIRNN, Rathee et al. S&P 2021,
//! section 4), and the multiplexer as two 1-out-of-N OTs with arithmetic entries (CrypTFlow2
//! section 3.3, its OT form of `F_MUX`), in DELPHI's split: every OT's correlation is made in
//! the offline phase, the online phase sends only tables.
//!
//! What a site computes is what the garbled circuit computes ([`crate::ring::Ring::relu_trunc`]):
//! `ReLU(sext_w(y)) >> shift`, bit for bit, re-shared so that the client's share of every output
//! is a mask `r'` it drew offline (DELPHI's invariant: the next weight layer's offline
//! correlation is `W r' - s`). The same tree also serves faithful truncation of identity
//! positions ([`SiteGadget::Truncate`], `sext_w(y) >> shift` exactly, SIRNN section 4 with the
//! sign from the comparison): one 1-out-of-8 final table over the client's
//! `(carry_C ^ msb_C, clow_C, msb_C)` and the reshare, no multiplexer.
//!
//! With `y_S`, `y_C` the parties' shares, `msb` their bit `w - 1`, `h = (y mod 2^w) >> shift`,
//! `carry` the carry into bit `w - 1` and `clow` the carry into bit `shift` of `y_S + y_C`:
//! `b = 1 ^ msb_S ^ msb_C ^ carry` (DReLU), `wrap = maj(msb_S, msb_C, carry)`, and
//! `ReLU(y) >> shift = b (h_S + h_C + clow - wrap 2^(w - shift))`; where `b = 1`,
//! `carry = msb_S ^ msb_C` and so `wrap = msb_S or msb_C`. The comparison tree
//! ([`super::millionaire::Plan`]) leaves the client's shares of `carry`, `clow` offline-known;
//! the server then offers, in one 1-out-of-4 OT the client selects in with
//! `(carry_C ^ msb_C, clow_C)`, the term `b (h_S + clow - msb_S 2^(w - shift)) - r_S` for every
//! choice; the client offers in the other direction `b (h_C - [msb_C and not msb_S]
//! 2^(w - shift)) - r_C` for each of the server's `(msb_S, carry_S)` (an online choice: the
//! server sends it masked by a random OT's choice, Beaver's derandomization), and returns its
//! sum masked by `r'`.
//!
//! Flights per site online: one per comparison level, then two; all alternate direction.
//! The OTs are random OTs from the session's silent OT extension ([`crate::ot::silent`],
//! Ferret) in both directions: one bit each offline (the choice correction) plus the extension
//! rounds' share, about a third of a byte per OT.

use super::millionaire::{Node, Plan, Sender};
use crate::error::{MpcError, Result};
use crate::gc::FixedKeyHash;
use crate::net::{Channel, Expect};
use crate::ot::silent;
use crate::ring::Ring;
use crate::wire::{bits_bytes, bytes_bytes, ring_vec_bytes, Block, Reader, Writer};
use rand::Rng;
use rayon::prelude::*;

/// The pools of a session's two silent-OT directions ([`silent::PoolState`]), as the cost model
/// follows them through an inference's offline phase (empty at its start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pools {
    pub client_receives: silent::PoolState,
    pub server_receives: silent::PoolState,
}

/// Hash domain of the arithmetic entries' keys (garbling 0, IKNP 1, silent OT 4 and 5).
const KEY_DOMAIN: u8 = 3;
/// Entries of the client's multiplexer table (the server's two choice bits).
const MUX_ENTRIES: usize = 4;
/// The server's OTs of the multiplexer, per ReLU.
const MUX_OTS: usize = 2;

/// The public shape of one site's ReLUs.
#[derive(Debug, Clone)]
pub struct Shape {
    pub plan: Plan,
    pub ring: Ring,
    /// Active ReLUs of the site.
    pub n: usize,
    /// Offset of each level's OTs in the per-ReLU block of its receiver.
    offsets: Vec<usize>,
    /// Per-ReLU OTs the client receives in (digits, even levels, final), and the server.
    pub client_ots: usize,
    pub server_ots: usize,
    /// What the site computes: `ReLU(y) >> shift` ([`Shape::new`]) or, at identity positions
    /// under faithful truncation, `y >> shift` ([`Shape::truncation`]).
    pub gadget: SiteGadget,
}

/// The function of an OT site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteGadget {
    /// `ReLU(sext_w(y)) >> shift`: the final table and the client's multiplexer.
    Relu,
    /// `sext_w(y) >> shift` (faithful truncation, SIRNN's: the wrap and sign from the same
    /// comparison): the final table alone, over the client's sign bit too, then the reshare.
    Truncate,
}

impl Shape {
    pub fn new(ring: &Ring, shift: u32, m: u32, n: usize) -> Result<Self> {
        let plan = Plan::new(ring.gc_bits, shift, m)?;
        let (mut c, mut s) = (0, 0);
        let offsets = (0..plan.levels.len())
            .map(|t| {
                let at = match Plan::sender(t) {
                    Sender::Server => &mut c,
                    Sender::Client => &mut s,
                };
                let off = *at;
                *at += plan.choices(t);
                off
            })
            .collect();
        debug_assert_eq!(c + plan.final_choices(), plan.client_receives());
        Ok(Shape {
            client_ots: plan.client_receives(),
            server_ots: plan.server_receives(),
            plan,
            ring: *ring,
            n,
            offsets,
            gadget: SiteGadget::Relu,
        })
    }

    /// A faithful truncation by `shift > 0` of `n` values: the same comparison tree, one more
    /// final OT (the client's sign bit), no multiplexer OTs.
    pub fn truncation(ring: &Ring, shift: u32, m: u32, n: usize) -> Result<Self> {
        if shift == 0 {
            return Err(MpcError::Params(
                "a faithful truncation needs a shift of at least one bit".into(),
            ));
        }
        let mut s = Self::new(ring, shift, m, n)?;
        s.gadget = SiteGadget::Truncate;
        s.client_ots += 1;
        s.server_ots -= MUX_OTS;
        Ok(s)
    }

    /// Choice bits of the final OT: the plan's, and the client's sign bit when truncating.
    fn final_choices(&self) -> usize {
        self.plan.final_choices() + (self.gadget == SiteGadget::Truncate) as usize
    }

    fn levels(&self) -> usize {
        self.plan.levels.len()
    }

    /// Bytes of level `t`'s table message.
    pub fn table_bytes(&self, t: usize) -> u64 {
        bytes_bytes((self.n * self.plan.table_bits(t)).div_ceil(8))
    }

    /// Entries of the server's final table per ReLU.
    fn final_entries(&self) -> usize {
        1 << self.final_choices()
    }

    /// Multiplexer entries per ReLU in the client's last message (none when truncating).
    fn mux_entries(&self) -> usize {
        match self.gadget {
            SiteGadget::Relu => MUX_ENTRIES,
            SiteGadget::Truncate => 0,
        }
    }

    /// Bytes of the server's final message (its table, and for a ReLU its masked choices).
    pub fn final_bytes(&self) -> u64 {
        ring_vec_bytes(self.n * self.final_entries(), self.ring.bits)
            + match self.gadget {
                SiteGadget::Relu => bits_bytes(2 * self.n),
                SiteGadget::Truncate => 0,
            }
    }

    /// Bytes of the client's last message (its multiplexer table, if any, and its re-shared
    /// output).
    pub fn mux_bytes(&self) -> u64 {
        let back = ring_vec_bytes(self.n, self.ring.bits);
        match self.gadget {
            SiteGadget::Relu => ring_vec_bytes(self.n * self.mux_entries(), self.ring.bits) + back,
            SiteGadget::Truncate => back,
        }
    }

    /// Bytes of the server's offline state of the site ([`ServerSite`]): its output masks at
    /// the levels it sends, both messages of the client's OTs, its own OT messages, the
    /// multiplexer choices and its share of the final value.
    pub fn server_state_bytes(&self) -> u64 {
        let sends = (0..self.plan.levels.len())
            .filter(|&t| Plan::sender(t) == Sender::Server)
            .count();
        self.n as u64
            * (16 * sends as u64
                + 32 * self.client_ots as u64
                + 16 * self.server_ots as u64
                + 1
                + 8)
    }

    /// The offline messages as `(client sends, payload bytes)` from the session's silent-OT
    /// pools before the site (advanced past it): in each direction (the client receives first)
    /// the extension rounds the pool lacks, then the receiver's choice corrections; and how
    /// many rounds ran.
    pub fn offline_messages(&self, pools: &mut Pools) -> (Vec<(bool, u64)>, usize) {
        let p = silent::FERRET_B10;
        let (to_client, a) = pools.client_receives.call(&p, self.n * self.client_ots);
        let (to_server, b) = pools.server_receives.call(&p, self.n * self.server_ots);
        let msgs = to_client
            .into_iter()
            .chain(to_server.into_iter().map(|(r, x)| (!r, x)))
            .collect();
        (msgs, a + b)
    }

    /// The online messages in order, as `(client sends, payload bytes)`.
    pub fn online_messages(&self) -> Vec<(bool, u64)> {
        let mut v: Vec<(bool, u64)> = (0..self.levels())
            .map(|t| (Plan::sender(t) == Sender::Client, self.table_bytes(t)))
            .collect();
        v.push((false, self.final_bytes()));
        v.push((true, self.mux_bytes()));
        v
    }
}

/// `x 2^s` mod `2^64` (zero for `s >= 64`: the wrap term of a comparison on all 64 bits).
#[inline]
fn shl(x: u64, s: u32) -> u64 {
    x.checked_shl(s).unwrap_or(0)
}

/// Low `o` bits.
#[inline]
fn low(x: u128, o: usize) -> u128 {
    if o >= 128 {
        x
    } else {
        x & ((1u128 << o) - 1)
    }
}

/// The key of entry `u` of a node table: Naor-Pinkas' 1-out-of-N from `k` 1-out-of-2 OTs
/// (STOC 1999, section 4) with the PRF `F_h(u)` = bits `u o..(u + 1) o` of the random-OT
/// message `h` (a hash output: disjoint bit ranges are independent). `key(i, b)`: message `b`
/// of OT `i`.
#[inline]
fn bool_key(k: usize, o: usize, u: usize, key: impl Fn(usize, usize) -> Block) -> u128 {
    (0..k).fold(0, |acc, i| acc ^ low(key(i, u >> i & 1) >> (u * o), o))
}

/// The key of arithmetic entry `u` (`l` bits): `XOR_i H(h_{i, u_i}, u)`.
#[inline]
fn ring_key(
    hash: &FixedKeyHash,
    ring: &Ring,
    k: usize,
    u: usize,
    key: impl Fn(usize, usize) -> Block,
) -> u64 {
    (0..k).fold(0u64, |acc, i| {
        acc ^ hash.hash([key(i, u >> i & 1)], [u as u128])[0] as u64
    }) & ring.mask()
}

/// Writes `o` bits of `v` at bit `at` of `buf` (LSB first).
#[inline]
fn put_bits(buf: &mut [u8], at: usize, o: usize, v: u128) {
    for j in 0..o {
        let b = at + j;
        buf[b / 8] |= ((v >> j & 1) as u8) << (b % 8);
    }
}

#[inline]
fn get_bits(buf: &[u8], at: usize, o: usize) -> u128 {
    (0..o).fold(0u128, |v, j| {
        let b = at + j;
        v | ((buf[b / 8] >> (b % 8) & 1) as u128) << j
    })
}

/// The bits of `v` at `wires`, packed (bit `i` = wire `inputs[i]`).
#[inline]
fn gather(v: u128, inputs: &[u16]) -> usize {
    inputs
        .iter()
        .enumerate()
        .fold(0usize, |a, (i, &w)| a | ((v >> w & 1) as usize) << i)
}

/// The parts of a party's share of a pre-activation that the protocol reads.
#[derive(Debug, Clone, Copy)]
struct Parts {
    /// Bit `w - 1`.
    msb: u32,
    /// `(y mod 2^w) >> shift`.
    high: u64,
    /// Low `w - 1` bits (the client's comparison operand; the server's is their complement).
    low: u64,
}

fn parts(y: u64, w: u32, shift: u32) -> Parts {
    let wmask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let yw = y & wmask;
    Parts {
        msb: (yw >> (w - 1) & 1) as u32,
        high: yw >> shift,
        low: yw & ((1u64 << (w - 1)) - 1),
    }
}

/// Builds one level's table message: `bits` bits per ReLU, eight ReLUs per byte-aligned group
/// (parallel over groups). `row(p, buf, at)` writes ReLU `p`'s bits at bit `at`.
fn tables(n: usize, bits: usize, row: impl Fn(usize, &mut [u8], usize) + Sync) -> Vec<u8> {
    let mut buf = vec![0u8; (n * bits).div_ceil(8)];
    if bits == 0 {
        return buf;
    }
    buf.par_chunks_mut(bits) // `bits` bytes = eight rows
        .enumerate()
        .for_each(|(g, chunk)| {
            for r in 0..8 {
                let p = 8 * g + r;
                if p < n {
                    row(p, chunk, r * bits);
                }
            }
        });
    buf
}

/// The sender's side of level `t` for ReLU `p`: its input shares `mine` (previous level), its
/// output masks `mask`, its OT messages from `keys` (the receiver's per-ReLU block of `per`),
/// and for digit nodes its operand `x`.
#[allow(clippy::too_many_arguments)]
fn send_row(
    level: &[Node],
    off: usize,
    per: usize,
    keys: &[[Block; 2]],
    p: usize,
    mine: u128,
    mask: u128,
    x: u64,
    buf: &mut [u8],
    mut at: usize,
) {
    let mut slot = p * per + off;
    let mut wire = 0usize;
    for node in level {
        let (k, o) = (node.k(), node.outputs());
        let r = low(mask >> wire, o) as u32;
        let (sv, xd) = match node.gate {
            super::millionaire::Gate::Digit { lo, len, .. } => {
                (0, (x >> lo & ((1 << len) - 1)) as u32)
            }
            _ => (gather(mine, &node.inputs), 0),
        };
        for u in 0..1usize << k {
            let v = match node.gate {
                super::millionaire::Gate::Digit { .. } => node.eval(u as u32, xd),
                _ => node.eval((sv ^ u) as u32, 0),
            };
            let key = bool_key(k, o, u, |i, b| keys[slot + i][b]);
            put_bits(buf, at, o, (v ^ r) as u128 ^ key);
            at += o;
        }
        slot += k;
        wire += o;
    }
}

/// The receiver's side of level `t` for ReLU `p`: its choices from its own previous masks
/// `mine` (or, for digits, its operand `c`), its keys; returns its output shares.
#[allow(clippy::too_many_arguments)]
fn receive_row(
    level: &[Node],
    off: usize,
    per: usize,
    keys: &[Block],
    p: usize,
    mine: u128,
    c: u64,
    buf: &[u8],
    mut at: usize,
) -> u128 {
    let mut slot = p * per + off;
    let (mut wire, mut out) = (0usize, 0u128);
    for node in level {
        let (k, o) = (node.k(), node.outputs());
        let g = match node.gate {
            super::millionaire::Gate::Digit { lo, len, .. } => {
                (c >> lo & ((1 << len) - 1)) as usize
            }
            _ => gather(mine, &node.inputs),
        };
        let key = bool_key(k, o, g, |i, _| keys[slot + i]);
        out |= (get_bits(buf, at + g * o, o) ^ key) << wire;
        at += (1 << k) * o;
        slot += k;
        wire += o;
    }
    out
}

/// The receiver's choice bits of level `t` for one ReLU.
fn choices_row(level: &[Node], mine: u128, c: u64, out: &mut Vec<bool>) {
    for node in level {
        match node.gate {
            super::millionaire::Gate::Digit { lo, len, .. } => {
                out.extend((0..len).map(|i| c >> (lo + i) & 1 == 1))
            }
            _ => out.extend(node.inputs.iter().map(|&w| mine >> w & 1 == 1)),
        }
    }
}

fn random_masks<R: Rng>(rng: &mut R, n: usize, wires: usize) -> Vec<u128> {
    (0..n).map(|_| low(rng.gen::<u128>(), wires)).collect()
}

/// The server's offline state of one site.
pub struct ServerSite {
    shape: Shape,
    /// Its output masks at the levels it sends (empty elsewhere).
    masks: Vec<Vec<u128>>,
    /// Both messages of the OTs the client receives in (`client_ots` per ReLU).
    send: Vec<[Block; 2]>,
    /// Its messages of the OTs it receives in (`server_ots` per ReLU).
    recv: Vec<Block>,
    /// The random choices of its two multiplexer OTs, per ReLU.
    rho: Vec<u8>,
    /// Its share of the final table's value, per ReLU.
    r_s: Vec<u64>,
}

/// The client's offline state of one site.
pub struct ClientSite {
    shape: Shape,
    masks: Vec<Vec<u128>>,
    send: Vec<[Block; 2]>,
    recv: Vec<Block>,
    /// Its shares of the ReLUs' inputs (fixed offline).
    y: Vec<u64>,
    r_c: Vec<u64>,
    /// Its shares of the outputs: `r'`.
    pub out: Vec<u64>,
}

/// The server's offline phase of a site.
///
/// `tx` is the session's silent-OT sender (the client receives), `rx` the reverse direction's
/// receiver (the server receives); both give random OTs here.
pub fn server_offline<R: Rng>(
    ch: &mut Channel,
    tx: &mut silent::Sender,
    rx: &mut silent::Receiver,
    rng: &mut R,
    shape: Shape,
) -> Result<ServerSite> {
    let (n, p) = (shape.n, &shape.plan);
    let masks: Vec<Vec<u128>> = (0..p.levels.len())
        .map(|t| match Plan::sender(t) {
            Sender::Server => random_masks(rng, n, p.wires(t)),
            Sender::Client => Vec::new(),
        })
        .collect();
    let rho: Vec<u8> = (0..n).map(|_| rng.gen::<u8>() & 3).collect();
    let r_s: Vec<u64> = (0..n).map(|_| shape.ring.reduce(rng.gen())).collect();
    let send = tx.random(ch, n * shape.client_ots)?;
    let mut choices = Vec::with_capacity(n * shape.server_ots);
    for q in 0..n {
        for t in (1..p.levels.len()).step_by(2) {
            choices_row(&p.levels[t], masks[t - 1][q], 0, &mut choices);
        }
        if shape.gadget == SiteGadget::Relu {
            choices.extend([rho[q] & 1 == 1, rho[q] >> 1 == 1]);
        }
    }
    let recv = rx.random(ch, &choices)?;
    Ok(ServerSite {
        shape,
        masks,
        send,
        recv,
        rho,
        r_s,
    })
}

/// The client's offline phase of a site, for its shares `y` of the ReLUs' inputs.
pub fn client_offline<R: Rng>(
    ch: &mut Channel,
    rx: &mut silent::Receiver,
    tx: &mut silent::Sender,
    rng: &mut R,
    shape: Shape,
    y: &[u64],
) -> Result<ClientSite> {
    let (n, p, ring) = (shape.n, &shape.plan, shape.ring);
    if y.len() != n {
        return Err(MpcError::Params(format!(
            "{} shares for a site of {n} active ReLUs",
            y.len()
        )));
    }
    let masks: Vec<Vec<u128>> = (0..p.levels.len())
        .map(|t| match Plan::sender(t) {
            Sender::Client => random_masks(rng, n, p.wires(t)),
            Sender::Server => Vec::new(),
        })
        .collect();
    let r_c: Vec<u64> = (0..n).map(|_| ring.reduce(rng.gen())).collect();
    let out: Vec<u64> = (0..n).map(|_| ring.reduce(rng.gen())).collect();
    let last = p.levels.len() - 1;
    let mut choices = Vec::with_capacity(n * shape.client_ots);
    for (q, &yc) in y.iter().enumerate() {
        let c = parts(yc, p.w, p.shift);
        for t in (0..p.levels.len()).step_by(2) {
            let mine = if t == 0 { 0 } else { masks[t - 1][q] };
            choices_row(&p.levels[t], mine, c.low, &mut choices);
        }
        let m = masks[last][q];
        choices.push((m >> p.carry & 1 == 1) ^ (c.msb == 1));
        if let Some(w) = p.clow {
            choices.push(m >> w & 1 == 1);
        }
        if shape.gadget == SiteGadget::Truncate {
            choices.push(c.msb == 1);
        }
    }
    let recv = rx.random(ch, &choices)?;
    let send = tx.random(ch, n * shape.server_ots)?;
    Ok(ClientSite {
        shape,
        masks,
        send,
        recv,
        y: y.to_vec(),
        r_c,
        out,
    })
}

fn send_tables(ch: &mut Channel, buf: Vec<u8>) -> Result<()> {
    let mut w = Writer::with_capacity(buf.len() + 8);
    w.bytes(&buf);
    ch.send(w.finish())
}

const TABLES: &str = "OT ReLU tables";
const FINAL: &str = "OT ReLU final tables";
const MUX: &str = "OT ReLU multiplexer";

/// Decodes level `t`'s table message: exactly the bytes the shape implies.
pub fn decode_tables(msg: &[u8], shape: &Shape, t: usize) -> Result<Vec<u8>> {
    let mut r = Reader::new(msg, TABLES);
    let b = r.bytes()?.to_vec();
    r.end()?;
    if b.len() as u64 + 8 != shape.table_bytes(t) {
        return Err(MpcError::malformed(
            TABLES,
            format!(
                "{} bytes of tables, level {t} has {}",
                b.len(),
                shape.table_bytes(t) - 8
            ),
        ));
    }
    Ok(b)
}

/// Decodes the server's final message: its table entries and masked choices.
pub fn decode_final(msg: &[u8], shape: &Shape) -> Result<(Vec<u64>, Vec<bool>)> {
    let mut r = Reader::new(msg, FINAL);
    let entries = r.ring_vec_n(shape.ring.bits, shape.n * shape.final_entries(), "tables")?;
    let e = match shape.gadget {
        SiteGadget::Relu => r.bits_n(2 * shape.n, "masked choices")?,
        SiteGadget::Truncate => Vec::new(),
    };
    r.end()?;
    Ok((entries, e))
}

/// Decodes the client's last message: its multiplexer entries and re-shared outputs.
pub fn decode_mux(msg: &[u8], shape: &Shape) -> Result<(Vec<u64>, Vec<u64>)> {
    let mut r = Reader::new(msg, MUX);
    let mux = match shape.gadget {
        SiteGadget::Relu => r.ring_vec_n(shape.ring.bits, shape.n * MUX_ENTRIES, "tables")?,
        SiteGadget::Truncate => Vec::new(),
    };
    let back = r.ring_vec_n(shape.ring.bits, shape.n, "outputs")?;
    r.end()?;
    Ok((mux, back))
}

fn recv_tables(ch: &mut Channel, shape: &Shape, t: usize) -> Result<Vec<u8>> {
    let msg = ch.recv(TABLES, Expect::Exact(shape.table_bytes(t)))?;
    decode_tables(&msg, shape, t)
}

/// The server's online phase of a site on its shares `y` of the ReLUs' inputs: returns its
/// shares of the outputs (`ReLU(y) >> shift - r'`).
pub fn server_online(ch: &mut Channel, site: ServerSite, y: &[u64]) -> Result<Vec<u64>> {
    let shape = &site.shape;
    let (n, p, ring) = (shape.n, &shape.plan, shape.ring);
    if y.len() != n {
        return Err(MpcError::Params(format!(
            "{} shares for a site of {n} active ReLUs",
            y.len()
        )));
    }
    let sp: Vec<Parts> = y.iter().map(|&v| parts(v, p.w, p.shift)).collect();
    // The comparison operand: the complement of the low w - 1 bits.
    let xs: Vec<u64> = sp
        .iter()
        .map(|s| !s.low & ((1u64 << (p.w - 1)) - 1))
        .collect();
    let (cper, sper) = (shape.client_ots, shape.server_ots);
    // Server's shares per level: its masks where it sends, what it receives elsewhere.
    let mut shares: Vec<Vec<u128>> = Vec::with_capacity(p.levels.len());
    for t in 0..p.levels.len() {
        let level = &p.levels[t];
        match Plan::sender(t) {
            Sender::Server => {
                let prev: &[u128] = if t == 0 { &[] } else { &shares[t - 1] };
                let buf = tables(n, p.table_bits(t), |q, b, at| {
                    let mine = if t == 0 { 0 } else { prev[q] };
                    send_row(
                        level,
                        shape.offsets[t],
                        cper,
                        &site.send,
                        q,
                        mine,
                        site.masks[t][q],
                        xs[q],
                        b,
                        at,
                    )
                });
                send_tables(ch, buf)?;
                shares.push(site.masks[t].clone());
            }
            Sender::Client => {
                let buf = recv_tables(ch, shape, t)?;
                let bits = p.table_bits(t);
                let got: Vec<u128> = (0..n)
                    .into_par_iter()
                    .map(|q| {
                        receive_row(
                            level,
                            shape.offsets[t],
                            sper,
                            &site.recv,
                            q,
                            site.masks[t - 1][q],
                            0,
                            &buf,
                            q * bits,
                        )
                    })
                    .collect();
                shares.push(got);
            }
        }
    }
    let last = &shares[p.levels.len() - 1];
    if shape.gadget == SiteGadget::Truncate {
        return server_truncate(ch, &site, &sp, last);
    }
    let hash = FixedKeyHash::new(KEY_DOMAIN);
    let ka = p.final_choices();
    // The final OT's messages are the last of the client's per-ReLU block.
    let foff = cper - ka;
    let ws = p.w - p.shift;
    // The final table: for each client choice (u_C = carry_C ^ msb_C, clow_C), the term
    // b (h_S + clow - msb_S 2^(w - shift)) - r_S, masked (b = 1 ^ msb_S ^ carry_S ^ u_C).
    let entries: Vec<u64> = (0..n)
        .into_par_iter()
        .flat_map_iter(|q| {
            let (s, m) = (sp[q], last[q]);
            let (cs, ls) = (
                (m >> p.carry & 1) as u32,
                p.clow.map_or(0, |w| (m >> w & 1) as u32),
            );
            let hash = &hash;
            let send = &site.send;
            let r_s = site.r_s[q];
            (0..1usize << ka).map(move |u| {
                let b = 1 ^ s.msb ^ cs ^ (u & 1) as u32;
                let clow = if ka == 2 { ls ^ (u >> 1 & 1) as u32 } else { 0 };
                let v = if b == 1 {
                    s.high
                        .wrapping_add(clow as u64)
                        .wrapping_sub(shl(s.msb as u64, ws))
                } else {
                    0
                };
                let key = ring_key(hash, &ring, ka, u, |i, bit| send[q * cper + foff + i][bit]);
                ring.reduce(v.wrapping_sub(r_s)) ^ key
            })
        })
        .collect();
    let e: Vec<bool> = (0..n)
        .flat_map(|q| {
            let d = (sp[q].msb as u8 | ((last[q] >> p.carry & 1) as u8) << 1) ^ site.rho[q];
            [d & 1 == 1, d >> 1 == 1]
        })
        .collect();
    let mut w = Writer::with_capacity(entries.len() * 8 + n + 32);
    w.ring_vec(&entries, ring.bits).bits(&e);
    ch.send(w.finish())?;
    let msg = ch.recv(MUX, Expect::Exact(shape.mux_bytes()))?;
    let (mux, back) = decode_mux(&msg, shape)?;
    let moff = sper - 2;
    Ok((0..n)
        .into_par_iter()
        .map(|q| {
            let rho = site.rho[q] as usize;
            let key = ring_key(&hash, &ring, 2, rho, |i, _| site.recv[q * sper + moff + i]);
            let b_s = mux[q * MUX_ENTRIES + rho] ^ key;
            ring.reduce(site.r_s[q].wrapping_add(b_s).wrapping_add(back[q]))
        })
        .collect())
}

/// The server's last two steps of a faithful truncation: `y >> shift = h_S + h_C + clow -
/// (wrap + msb) 2^(w - shift)` with `wrap` the carry out of bit `w - 1` and `msb` the sign of
/// `y mod 2^w`; `wrap + msb = (msb_S or msb_C) + carry (1 ^ msb_S ^ msb_C)` (`carry` into bit
/// `w - 1`). Per value, the table over the client's choices `(carry_C ^ msb_C, clow_C, msb_C)`
/// holds `clow - (wrap + msb) 2^(w - shift) - r_S`; the server keeps `h_S + r_S` and adds the
/// client's reshare `h_C + (...) - r'`.
fn server_truncate(
    ch: &mut Channel,
    site: &ServerSite,
    sp: &[Parts],
    last: &[u128],
) -> Result<Vec<u64>> {
    let shape = &site.shape;
    let (n, p, ring) = (shape.n, &shape.plan, shape.ring);
    let (ka, kt) = (p.final_choices(), shape.final_choices());
    let (cper, ws) = (shape.client_ots, p.w - p.shift);
    // The final OT's messages are the last of the client's per-ReLU block.
    let foff = cper - kt;
    let hash = FixedKeyHash::new(KEY_DOMAIN);
    let entries: Vec<u64> = (0..n)
        .into_par_iter()
        .flat_map_iter(|q| {
            let (s, m) = (sp[q], last[q]);
            let (cs, ls) = (
                (m >> p.carry & 1) as u32,
                p.clow.map_or(0, |w| (m >> w & 1) as u32),
            );
            let (hash, send, r_s) = (&hash, &site.send, site.r_s[q]);
            (0..1usize << kt).map(move |u| {
                let msb_c = (u >> ka & 1) as u32;
                let carry = cs ^ (u & 1) as u32 ^ msb_c;
                let clow = if ka == 2 { ls ^ (u >> 1 & 1) as u32 } else { 0 };
                let wrap_msb = (s.msb | msb_c) as u64 + (carry & (1 ^ s.msb ^ msb_c)) as u64;
                let v = (clow as u64).wrapping_sub(shl(wrap_msb, ws));
                let key = ring_key(hash, &ring, kt, u, |i, bit| send[q * cper + foff + i][bit]);
                ring.reduce(v.wrapping_sub(r_s)) ^ key
            })
        })
        .collect();
    let mut w = Writer::with_capacity(entries.len() * 8 + 16);
    w.ring_vec(&entries, ring.bits);
    ch.send(w.finish())?;
    let msg = ch.recv(MUX, Expect::Exact(shape.mux_bytes()))?;
    let (_, back) = decode_mux(&msg, shape)?;
    Ok((0..n)
        .map(|q| ring.reduce(sp[q].high.wrapping_add(site.r_s[q]).wrapping_add(back[q])))
        .collect())
}

/// The client's online phase of a site; its output shares are `site.out` (fixed offline).
pub fn client_online(ch: &mut Channel, site: ClientSite) -> Result<()> {
    let shape = &site.shape;
    let (n, p, ring) = (shape.n, &shape.plan, shape.ring);
    let cp: Vec<Parts> = site.y.iter().map(|&v| parts(v, p.w, p.shift)).collect();
    let (cper, sper) = (shape.client_ots, shape.server_ots);
    let mut shares: Vec<Vec<u128>> = Vec::with_capacity(p.levels.len());
    for t in 0..p.levels.len() {
        let level = &p.levels[t];
        match Plan::sender(t) {
            Sender::Client => {
                let prev = &shares[t - 1];
                let buf = tables(n, p.table_bits(t), |q, b, at| {
                    send_row(
                        level,
                        shape.offsets[t],
                        sper,
                        &site.send,
                        q,
                        prev[q],
                        site.masks[t][q],
                        0,
                        b,
                        at,
                    )
                });
                send_tables(ch, buf)?;
                shares.push(site.masks[t].clone());
            }
            Sender::Server => {
                let buf = recv_tables(ch, shape, t)?;
                let bits = p.table_bits(t);
                let got: Vec<u128> = (0..n)
                    .into_par_iter()
                    .map(|q| {
                        let mine = if t == 0 { 0 } else { site.masks[t - 1][q] };
                        receive_row(
                            level,
                            shape.offsets[t],
                            cper,
                            &site.recv,
                            q,
                            mine,
                            cp[q].low,
                            &buf,
                            q * bits,
                        )
                    })
                    .collect();
                shares.push(got);
            }
        }
    }
    let last = &site.masks[p.levels.len() - 1];
    let ka = p.final_choices();
    let ws = p.w - p.shift;
    let msg = ch.recv(FINAL, Expect::Exact(shape.final_bytes()))?;
    let (entries, e) = decode_final(&msg, shape)?;
    let hash = FixedKeyHash::new(KEY_DOMAIN);
    let foff = cper - shape.final_choices();
    if shape.gadget == SiteGadget::Truncate {
        // The client's choice: (carry_C ^ msb_C, clow_C, msb_C); it re-shares `h_C` plus what
        // it selected, less its offline share `r'`.
        let kt = shape.final_choices();
        let back: Vec<u64> = (0..n)
            .into_par_iter()
            .map(|q| {
                let (c, m) = (cp[q], last[q]);
                let cc = (m >> p.carry & 1) as u32;
                let g = (cc ^ c.msb) as usize
                    | p.clow.map_or(0, |w| ((m >> w & 1) as usize) << 1)
                    | (c.msb as usize) << ka;
                let key = ring_key(&hash, &ring, kt, g, |i, _| site.recv[q * cper + foff + i]);
                let a_c = entries[q * (1 << kt) + g] ^ key;
                ring.reduce(c.high.wrapping_add(a_c).wrapping_sub(site.out[q]))
            })
            .collect();
        let mut w = Writer::with_capacity(back.len() * 8 + 16);
        w.ring_vec(&back, ring.bits);
        return ch.send(w.finish());
    }
    let mut mux = vec![0u64; n * MUX_ENTRIES];
    let back: Vec<u64> = mux
        .par_chunks_mut(MUX_ENTRIES)
        .enumerate()
        .map(|(q, row)| {
            let (c, m) = (cp[q], last[q]);
            let cc = (m >> p.carry & 1) as u32;
            let g = (cc ^ c.msb) as usize | p.clow.map_or(0, |w| ((m >> w & 1) as usize) << 1);
            let key = ring_key(&hash, &ring, ka, g, |i, _| site.recv[q * cper + foff + i]);
            let a_c = entries[q * (1 << ka) + g] ^ key;
            let eq = e[2 * q] as usize | (e[2 * q + 1] as usize) << 1;
            for (v, x) in row.iter_mut().enumerate() {
                let d = v ^ eq;
                let (msb_s, carry) = ((d & 1) as u32, (d >> 1 & 1) as u32 ^ cc);
                let b = 1 ^ msb_s ^ c.msb ^ carry;
                // b (h_C - [msb_C and not msb_S] 2^(w - shift)): with the server's term, the
                // wrap b (msb_S or msb_C) 2^(w - shift) (where b = 1 the carry out of bit w - 1
                // is msb_S or msb_C).
                let t = if b == 1 {
                    c.high.wrapping_sub(shl((c.msb & (1 ^ msb_s)) as u64, ws))
                } else {
                    0
                };
                let key = ring_key(&hash, &ring, 2, v, |i, bit| {
                    site.send[q * sper + sper - 2 + i][bit]
                });
                *x = ring.reduce(t.wrapping_sub(site.r_c[q])) ^ key;
            }
            ring.reduce(a_c.wrapping_add(site.r_c[q]).wrapping_sub(site.out[q]))
        })
        .collect();
    let mut w = Writer::with_capacity(mux.len() * 8 + back.len() * 8 + 32);
    w.ring_vec(&mux, ring.bits).ring_vec(&back, ring.bits);
    ch.send(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::mem;
    use rand::SeedableRng;
    use rand_chacha::ChaCha12Rng;

    /// Runs one site over the in-memory channel: the server's output shares plus the client's
    /// masks, and the bytes the client's channel counted (offline, online).
    pub(crate) fn run_site(ring: Ring, shift: u32, m: u32, ys: Vec<u64>, yc: Vec<u64>) -> Vec<u64> {
        let shape = Shape::new(&ring, shift, m, ys.len()).unwrap();
        run_shape(shape, ys, yc)
    }

    /// [`run_site`] for any shape (a ReLU or a faithful truncation).
    fn run_shape(shape: Shape, ys: Vec<u64>, yc: Vec<u64>) -> Vec<u64> {
        let ring = shape.ring;
        let sh = shape.clone();
        let sh3 = shape.clone();
        let (zs, (out, meter)) = crate::nonlinear::testing::two_parties(
            move |ch, tx, rx, rng| {
                let site = server_offline(ch, tx, rx, rng, sh).unwrap();
                server_online(ch, site, &ys).unwrap()
            },
            move |ch, rx, tx, rng| {
                ch.meter.reset();
                ch.phase("offline");
                let site = client_offline(ch, rx, tx, rng, sh3, &yc).unwrap();
                let out = site.out.clone();
                ch.phase("online");
                client_online(ch, site).unwrap();
                (out, ch.meter.clone())
            },
        );
        // The channel's counts are the shape's message sequence.
        let (off, _) = shape.offline_messages(&mut Pools::default());
        let on = shape.online_messages();
        let bytes = |v: &[(bool, u64)]| v.iter().map(|&(_, b)| b + crate::net::HEADER).sum::<u64>();
        assert_eq!(meter.total("offline").bytes(), bytes(&off));
        assert_eq!(meter.total("online").bytes(), bytes(&on));
        assert_eq!(meter.total("online").messages as usize, on.len());
        // Every online message turns the direction (the first continues the offline phase's
        // last, the server's matrix, in this test; in a session the client's input comes first).
        assert!(on.windows(2).all(|p| p[0].0 != p[1].0));
        assert_eq!(meter.total("online").flights as usize, on.len() - 1);
        zs.iter()
            .zip(&out)
            .map(|(&s, &c)| ring.reduce(s.wrapping_add(c)))
            .collect()
    }

    /// Random shares `(y_S, y_C)` of `vals`, the first three with a zero side and at the ring's
    /// edges.
    fn edge_shares(ring: &Ring, vals: &[u64], rng: &mut ChaCha12Rng) -> (Vec<u64>, Vec<u64>) {
        let mut ys: Vec<u64> = vals.iter().map(|_| ring.reduce(rng.gen())).collect();
        ys[0] = 0;
        ys[1] = ring.mask();
        ys[2] = ring.from_signed(i64::MIN >> (64 - ring.bits));
        let yc = vals
            .iter()
            .zip(&ys)
            .map(|(&v, &s)| ring.reduce(v.wrapping_sub(s)))
            .collect();
        (ys, yc)
    }

    /// Two-party ReLU-and-truncate equals `Ring::relu_trunc` bit for bit: random values, zero,
    /// the largest and smallest w-bit values, values beyond the w-bit range (where both this and
    /// the circuit read the low w bits), truncation boundaries, shares that wrap the ring, for
    /// every digit size and with and without truncation.
    #[test]
    fn ot_relu_equals_plaintext() {
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        for (ring, shifts) in [
            (Ring::default(), vec![12u32, 0]),
            (Ring::new(40, 8, 20).unwrap(), vec![8]),
            (Ring::new(64, 16, 64).unwrap(), vec![16]),
        ] {
            let w = ring.gc_bits;
            let half = 1i64 << (w.min(63) - 1);
            for shift in shifts {
                for m in 1..=crate::nonlinear::millionaire::MAX_DIGIT_BITS {
                    let mut vals: Vec<u64> = vec![
                        0,
                        1,
                        ring.from_signed(-1),
                        ring.from_signed(half - 1),
                        ring.from_signed(-half),
                        ring.from_signed(half),
                        ring.from_signed(-half - 1),
                        ring.from_signed((1 << shift) - 1),
                        ring.from_signed(1 << shift),
                        ring.from_signed(-(1 << shift)),
                        ring.from_signed(i64::MAX >> (64 - ring.bits)),
                        ring.from_signed(i64::MIN >> (64 - ring.bits)),
                    ];
                    vals.extend((0..40).map(|_| ring.from_signed(rng.gen_range(-half..half))));
                    vals.extend((0..8).map(|_| ring.reduce(rng.gen())));
                    let (ys, yc) = edge_shares(&ring, &vals, &mut rng);
                    let got = run_site(ring, shift, m, ys.clone(), yc.clone());
                    for (k, (&v, &g)) in vals.iter().zip(&got).enumerate() {
                        let y = ring.reduce(ys[k].wrapping_add(yc[k]));
                        assert_eq!(y, v);
                        assert_eq!(
                            g,
                            ring.relu_trunc(v, shift),
                            "l {} w {w} shift {shift} m {m}: value {}",
                            ring.bits,
                            ring.signed(v)
                        );
                    }
                }
            }
        }
    }

    /// Faithful truncation equals `sext_w(y) >> shift` bit for bit (`Ring::truncate` on the
    /// circuit's w-bit view): random values, zero, -1, the w-bit range's ends, values just
    /// below and above multiples of `2^shift` (where local truncation's carry errs), shares at
    /// the ring's edges, every digit size.
    #[test]
    fn faithful_truncation_equals_plaintext() {
        let mut rng = ChaCha12Rng::seed_from_u64(2);
        for (ring, shift) in [
            (Ring::default(), 12u32),
            (Ring::default(), 24),
            (Ring::new(40, 8, 20).unwrap(), 8),
        ] {
            let w = ring.gc_bits;
            let half = 1i64 << (w - 1);
            for m in 1..=crate::nonlinear::millionaire::MAX_DIGIT_BITS {
                let mut vals: Vec<i64> = vec![
                    0,
                    1,
                    -1,
                    half - 1,
                    -half,
                    (1 << shift) - 1,
                    1 << shift,
                    -(1 << shift),
                    -(1 << shift) - 1,
                    -(1 << shift) + 1,
                    3 << shift,
                ];
                vals.extend((0..40).map(|_| rng.gen_range(-half..half)));
                let vals: Vec<u64> = vals.iter().map(|&v| ring.from_signed(v)).collect();
                let (ys, yc) = edge_shares(&ring, &vals, &mut rng);
                let shape = Shape::truncation(&ring, shift, m, vals.len()).unwrap();
                let got = run_shape(shape, ys, yc);
                for (&v, &g) in vals.iter().zip(&got) {
                    assert_eq!(
                        g,
                        ring.from_signed(ring.sext_gc(v) >> shift),
                        "l {} w {w} shift {shift} m {m}: value {}",
                        ring.bits,
                        ring.signed(v)
                    );
                }
            }
        }
        assert!(Shape::truncation(&Ring::default(), 0, 4, 3).is_err());
    }

    /// A peer's table message of the wrong size is refused from its frame header, one of the
    /// right size with a wrong length prefix by its decoder; the final and multiplexer messages
    /// likewise. Errors name the message, nothing panics.
    #[test]
    fn malformed_ot_messages_are_refused() {
        let ring = Ring::default();
        let shape = Shape::new(&ring, 12, 4, 5).unwrap();
        let (mut a, b) = mem::pair();
        let want = shape.table_bytes(0);
        let mut f = ((want + 1) as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&0u64.to_le_bytes());
        a.send_raw(f).unwrap();
        let mut ch = Channel::new(Box::new(b));
        let err = recv_tables(&mut ch, &shape, 0).unwrap_err();
        assert!(
            err.to_string().contains(TABLES) && err.to_string().contains("exactly"),
            "{err}"
        );
        // Right size, inflated prefix.
        let mut w = Writer::new();
        w.u64(1 << 40).buf.resize(want as usize, 0);
        let err = decode_tables(&w.finish(), &shape, 0).unwrap_err();
        assert!(err.to_string().contains(TABLES), "{err}");
        // A valid table message of another level.
        let other = (1..shape.levels())
            .find(|&t| shape.table_bytes(t) != want)
            .unwrap();
        let mut w = Writer::new();
        w.bytes(&vec![0u8; shape.table_bytes(other) as usize - 8]);
        assert!(decode_tables(&w.finish(), &shape, 0).is_err());
        // Final and multiplexer messages: every truncation refused.
        let mut w = Writer::new();
        w.ring_vec(&vec![1; shape.n * shape.final_entries()], ring.bits)
            .bits(&vec![true; 2 * shape.n]);
        let msg = w.finish();
        assert_eq!(msg.len() as u64, shape.final_bytes());
        decode_final(&msg, &shape).unwrap();
        for cut in 0..msg.len() {
            assert!(decode_final(&msg[..cut], &shape).is_err());
        }
        let mut w = Writer::new();
        w.ring_vec(&vec![1; shape.n * MUX_ENTRIES], ring.bits)
            .ring_vec(&vec![2; shape.n], ring.bits);
        let msg = w.finish();
        assert_eq!(msg.len() as u64, shape.mux_bytes());
        decode_mux(&msg, &shape).unwrap();
        for cut in 0..msg.len() {
            assert!(decode_mux(&msg[..cut], &shape).is_err());
        }
        assert!(decode_mux(&[msg.clone(), vec![0]].concat(), &shape).is_err());
    }
}
