//! IKNP OT extension (Ishai-Kilian-Nissim-Petrank 2003) in its correlated form (Asharov-Lindell-
//! Schneider-Zohner 2013): `m` OTs from [`KAPPA`] base OTs with the roles swapped. The receiver
//! sends the `KAPPA x m` matrix `u^i = G(k_i^0) ^ G(k_i^1) ^ r`; the sender's rows are
//! `q_j = t_j ^ r_j s`. The sender's messages are `(H(j, q_j), H(j, q_j) ^ delta)` for a global
//! `delta` (the garbling offset), so it sends one 16-byte correction per OT. Column PRGs are
//! ChaCha12 keyed by the base-OT keys; the matrix is expanded, transposed and hashed in chunks of
//! [`CHUNK`] OTs, in parallel.

use super::base::{self, Key};
use super::{transpose128, KAPPA};
use crate::error::{MpcError, Result};
use crate::gc::select;
use crate::gc::FixedKeyHash;
use crate::net::{Channel, Expect};
use crate::wire::{blocks_bytes, bytes_bytes, Block, Reader, Writer};
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rayon::prelude::*;

/// Domain of the OT hash, distinct from garbling.
const OT_DOMAIN: u8 = 1;

/// OTs per task: the 128 column stripes of a chunk (`CHUNK / 8` bytes each, 64 KiB together)
/// stay in cache while they are expanded, transposed and hashed, and chunks run in parallel.
/// The matrix message is laid out chunk by chunk (all 128 stripes of a chunk, then the next).
const CHUNK: usize = 4096;

/// Fills `out` with column PRG output starting `word` 32-bit words into the stream of `key`
/// (ChaCha12 seeks in constant time, so every chunk expands its stripes independently).
fn expand(key: &Key, word: u128, out: &mut [u8]) {
    let mut g = ChaCha12Rng::from_seed(*key);
    g.set_word_pos(word);
    g.fill_bytes(out);
}

/// The rows of one chunk from its 128 column stripes (`stripes[i * cb..]`, `cb` bytes each),
/// `n` rows written to `out`.
fn transpose_chunk(stripes: &[u8], cb: usize, out: &mut [Block]) {
    for (b, rows) in out.chunks_mut(128).enumerate() {
        let mut t: [u128; 128] = std::array::from_fn(|i| {
            let at = i * cb + b * 16;
            u128::from_le_bytes(stripes[at..at + 16].try_into().unwrap())
        });
        transpose128(&mut t);
        rows.copy_from_slice(&t[..rows.len()]);
    }
}

/// The index of the first OT of chunk `c` of an extension that starts at OT `base`: the hash
/// tweak of that OT, and (one bit per OT in every column stream) 32 times the word position
/// where the chunk's stripes start.
fn chunk_start(base: u64, c: usize) -> u128 {
    base as u128 + (c * CHUNK) as u128
}

/// `m` rounded up to a multiple of 128 (extensions transpose 128 x 128 bit blocks).
fn padded(m: usize) -> usize {
    m.div_ceil(128) * 128
}

/// The sender's (server's) state: its base choices `s` and the PRG key of each column.
pub struct Sender {
    s: u128,
    keys: Vec<Key>,
    /// OTs extended so far (padded): the hash tweak of the next OT and, divided by 32, the word
    /// position of the next chunk in every column stream.
    next: u64,
    hash: FixedKeyHash,
}

/// The receiver's (client's) state: both PRG keys of each column.
pub struct Receiver {
    keys0: Vec<Key>,
    keys1: Vec<Key>,
    next: u64,
    hash: FixedKeyHash,
}

impl Sender {
    /// Runs the base OTs (as their receiver).
    pub fn setup<R: RngCore + CryptoRng>(ch: &mut Channel, rng: &mut R) -> Result<Self> {
        let s: u128 = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
        let choices: Vec<bool> = (0..KAPPA).map(|i| s >> i & 1 == 1).collect();
        let keys = base::receive(ch, &choices, rng)?;
        Ok(Sender {
            s,
            keys,
            next: 0,
            hash: FixedKeyHash::new(OT_DOMAIN),
        })
    }

    /// `m` correlated OTs: returns the zero-labels `H(j, q_j)`; the receiver gets
    /// `H(j, q_j) ^ r_j delta`.
    pub fn extend(&mut self, ch: &mut Channel, m: usize, delta: Block) -> Result<Vec<Block>> {
        let (zero, one) = self.rows(ch, m, true)?;
        let corr: Vec<Block> = zero
            .par_iter()
            .zip(&one)
            .map(|(&h0, &h1)| h0 ^ h1 ^ delta)
            .collect();
        let mut w = Writer::with_capacity(16 * m + 16);
        w.blocks(&corr);
        ch.send(w.finish())?;
        Ok(zero)
    }

    /// `m` random OTs with the receiver's chosen choices (Asharov-Lindell-Schneider-Zohner 2013,
    /// section 5.3, random-message OT): returns both messages `(H(j, q_j), H(j, q_j ^ s))` of
    /// every OT; the receiver gets the one its choice selects. No correction is sent, so each OT
    /// costs the receiver's 16-byte matrix column alone.
    pub fn random(&mut self, ch: &mut Channel, m: usize) -> Result<Vec<[Block; 2]>> {
        let (zero, one) = self.rows(ch, m, true)?;
        Ok(zero.into_iter().zip(one).map(|(a, b)| [a, b]).collect())
    }

    /// `m` correlated OTs left unhashed, with the global correlation `s` (the base-OT choices):
    /// returns `(q_j, s)`; the receiver holds `t_j = q_j ^ r_j s`. The random COTs that seed a
    /// silent extension ([`super::silent`]), as Ferret's bootstrap takes them from IKNP.
    pub fn correlated_raw(&mut self, ch: &mut Channel, m: usize) -> Result<(Vec<Block>, Block)> {
        let (q, _) = self.rows(ch, m, false)?;
        Ok((q, self.s))
    }

    /// Receives the matrix of `m` OTs and returns the rows hashed, `H(j, q_j)` and
    /// `H(j, q_j ^ s)`, or (`hashed` false) the raw rows `q_j` and nothing.
    fn rows(
        &mut self,
        ch: &mut Channel,
        m: usize,
        hashed: bool,
    ) -> Result<(Vec<Block>, Vec<Block>)> {
        let mp = padded(m);
        let msg = ch.recv(
            "OT extension: matrix",
            Expect::Exact(bytes_bytes(KAPPA * mp / 8)),
        )?;
        let mut r = Reader::new(&msg, "OT extension: matrix");
        let u = r.bytes()?;
        r.end()?;
        if u.len() != KAPPA * mp / 8 {
            return Err(MpcError::malformed(
                "OT extension: matrix",
                format!("{} bytes, expected {}", u.len(), KAPPA * mp / 8),
            ));
        }
        let (s, base) = (self.s, self.next);
        self.next += mp as u64;
        let (keys, hash) = (&self.keys, &self.hash);
        let mut zero = vec![0u128; m];
        let mut one = vec![0u128; m];
        zero.par_chunks_mut(CHUNK)
            .zip(one.par_chunks_mut(CHUNK))
            .zip(u.par_chunks(KAPPA * CHUNK / 8))
            .enumerate()
            .for_each(|(c, ((zero, one), u))| {
                let cb = u.len() / KAPPA;
                let word = chunk_start(base, c) / 32;
                let mut q = vec![0u8; KAPPA * cb];
                for (i, col) in q.chunks_mut(cb).enumerate() {
                    expand(&keys[i], word, col);
                    // q_i = G(k_i) ^ s_i u_i, without a branch on the secret bit s_i.
                    let m = 0u8.wrapping_sub((s >> i & 1) as u8);
                    for (x, y) in col.iter_mut().zip(&u[i * cb..(i + 1) * cb]) {
                        *x ^= y & m;
                    }
                }
                transpose_chunk(&q, cb, zero);
                if !hashed {
                    return;
                }
                let tweak = chunk_start(base, c);
                for (o, &z) in one.iter_mut().zip(zero.iter()) {
                    *o = z ^ s;
                }
                hash.hash_slice(zero, tweak);
                hash.hash_slice(one, tweak);
            });
        Ok((zero, one))
    }
}

impl Receiver {
    /// Runs the base OTs (as their sender).
    pub fn setup<R: RngCore + CryptoRng>(ch: &mut Channel, rng: &mut R) -> Result<Self> {
        let keys = base::send(ch, KAPPA, rng)?;
        Ok(Receiver {
            keys0: keys.iter().map(|k| k.0).collect(),
            keys1: keys.iter().map(|k| k.1).collect(),
            next: 0,
            hash: FixedKeyHash::new(OT_DOMAIN),
        })
    }

    /// `m` correlated OTs with `choices`: returns `H(j, q_j) ^ r_j delta`.
    pub fn extend(&mut self, ch: &mut Channel, choices: &[bool]) -> Result<Vec<Block>> {
        let m = choices.len();
        let rows = self.rows(ch, choices, true)?;
        let reply = ch.recv("OT extension: corrections", Expect::Exact(blocks_bytes(m)))?;
        let mut rd = Reader::new(&reply, "OT extension: corrections");
        let corr = rd.blocks_n(m, "corrections")?;
        rd.end()?;
        Ok(rows
            .iter()
            .zip(&corr)
            .zip(choices)
            .map(|((&h, &c), &b)| h ^ select(b, c))
            .collect())
    }

    /// Random OTs with `choices` ([`Sender::random`]): returns `H(j, t_j)`, the sender's message
    /// that each choice selects. One message (the matrix), nothing received.
    pub fn random(&mut self, ch: &mut Channel, choices: &[bool]) -> Result<Vec<Block>> {
        self.rows(ch, choices, true)
    }

    /// Correlated OTs with `choices`, unhashed ([`Sender::correlated_raw`]): returns
    /// `t_j = q_j ^ r_j s`.
    pub fn correlated_raw(&mut self, ch: &mut Channel, choices: &[bool]) -> Result<Vec<Block>> {
        self.rows(ch, choices, false)
    }

    /// Sends the matrix for `choices` and returns the rows `t_j`, hashed `H(j, t_j)` when
    /// `hashed`.
    fn rows(&mut self, ch: &mut Channel, choices: &[bool], hashed: bool) -> Result<Vec<Block>> {
        let m = choices.len();
        let mp = padded(m);
        let mut r = vec![0u8; mp / 8];
        for (j, &c) in choices.iter().enumerate() {
            r[j / 8] |= (c as u8) << (j % 8);
        }
        let base = self.next;
        self.next += mp as u64;
        let (keys0, keys1, hash) = (&self.keys0, &self.keys1, &self.hash);
        // The message: a length prefix, then u chunk by chunk; `t` rows hashed as they are made.
        let mut msg = Writer::with_capacity(KAPPA * mp / 8 + 8);
        msg.u64((KAPPA * mp / 8) as u64);
        let mut msg = msg.finish();
        let head = msg.len();
        msg.resize(head + KAPPA * mp / 8, 0);
        let mut rows = vec![0u128; m];
        rows.par_chunks_mut(CHUNK)
            .zip(msg[head..].par_chunks_mut(KAPPA * CHUNK / 8))
            .enumerate()
            .for_each(|(c, (rows, u))| {
                let cb = u.len() / KAPPA;
                let word = chunk_start(base, c) / 32;
                let bits = &r[c * CHUNK / 8..c * CHUNK / 8 + cb];
                let mut t = vec![0u8; KAPPA * cb];
                for (i, (tc, uc)) in t.chunks_mut(cb).zip(u.chunks_mut(cb)).enumerate() {
                    expand(&keys0[i], word, tc);
                    expand(&keys1[i], word, uc);
                    for ((x, y), z) in uc.iter_mut().zip(tc.iter()).zip(bits) {
                        *x ^= y ^ z;
                    }
                }
                transpose_chunk(&t, cb, rows);
                if hashed {
                    hash.hash_slice(rows, chunk_start(base, c));
                }
            });
        ch.send(msg)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{mem, Channel};
    use rand::Rng;

    /// The receiver gets exactly `H(j, q_j) ^ r_j delta` for every OT, across two extensions.
    #[test]
    fn correlated_ots_match_definition() {
        let (a, b) = mem::pair();
        let delta: Block = rand_chacha::ChaCha8Rng::seed_from_u64(1).gen::<u128>() | 1;
        let server = std::thread::spawn(move || {
            let mut ch = Channel::new(Box::new(a));
            let mut rng = ChaCha12Rng::seed_from_u64(11);
            let mut s = Sender::setup(&mut ch, &mut rng).unwrap();
            let x = s.extend(&mut ch, 1000, delta).unwrap();
            let y = s.extend(&mut ch, 77, delta).unwrap();
            (x, y)
        });
        let mut ch = Channel::new(Box::new(b));
        let mut rng = ChaCha12Rng::seed_from_u64(12);
        let mut r = Receiver::setup(&mut ch, &mut rng).unwrap();
        let c1: Vec<bool> = (0..1000).map(|_| rng.gen()).collect();
        let c2: Vec<bool> = (0..77).map(|_| rng.gen()).collect();
        let l1 = r.extend(&mut ch, &c1).unwrap();
        let l2 = r.extend(&mut ch, &c2).unwrap();
        let (z1, z2) = server.join().unwrap();
        for (l, z, c) in [(l1, z1, c1), (l2, z2, c2)] {
            for j in 0..c.len() {
                assert_eq!(l[j], if c[j] { z[j] ^ delta } else { z[j] }, "OT {j}");
            }
            // Zero-labels are distinct (the hash is keyed by the index).
            assert_ne!(z[0], z[1]);
        }
    }

    /// Random OTs: the receiver gets exactly the message its choice selects, the other one is
    /// different, and the two messages of an OT are not related by a fixed offset.
    #[test]
    fn random_ots_match_definition() {
        let (a, b) = mem::pair();
        let server = std::thread::spawn(move || {
            let mut ch = Channel::new(Box::new(a));
            let mut rng = ChaCha12Rng::seed_from_u64(21);
            let mut s = Sender::setup(&mut ch, &mut rng).unwrap();
            let x = s.random(&mut ch, 300).unwrap();
            // Random and correlated extensions share the session's counters.
            let y = s.extend(&mut ch, 5, 3).unwrap();
            (x, y, ch.meter.total("").bytes())
        });
        let mut ch = Channel::new(Box::new(b));
        let mut rng = ChaCha12Rng::seed_from_u64(22);
        let mut r = Receiver::setup(&mut ch, &mut rng).unwrap();
        let c: Vec<bool> = (0..300).map(|_| rng.gen()).collect();
        let got = r.random(&mut ch, &c).unwrap();
        let c2 = vec![true; 5];
        let l2 = r.extend(&mut ch, &c2).unwrap();
        let (x, y, _) = server.join().unwrap();
        for j in 0..300 {
            assert_eq!(got[j], x[j][c[j] as usize], "OT {j}");
            assert_ne!(got[j], x[j][!c[j] as usize], "OT {j}");
        }
        assert_ne!(x[0][0] ^ x[0][1], x[1][0] ^ x[1][1]);
        for j in 0..5 {
            assert_eq!(l2[j], y[j] ^ 3);
        }
    }
}
