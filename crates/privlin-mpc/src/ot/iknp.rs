//! IKNP OT extension (Ishai-Kilian-Nissim-Petrank 2003) in its correlated form (Asharov-Lindell-
//! Schneider-Zohner 2013): `m` OTs from [`KAPPA`] base OTs with the roles swapped. The receiver
//! sends the `KAPPA x m` matrix `u^i = G(k_i^0) ^ G(k_i^1) ^ r`; the sender's rows are
//! `q_j = t_j ^ r_j s`. The sender's messages are `(H(j, q_j), H(j, q_j) ^ delta)` for a global
//! `delta` (the garbling offset), so it sends one 16-byte correction per OT.

use super::base::{self, Key};
use super::{transpose128, KAPPA};
use crate::error::{MpcError, Result};
use crate::gc::FixedKeyHash;
use crate::net::Channel;
use crate::wire::{Block, Reader, Writer};
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rayon::prelude::*;

/// Domain of the OT hash, distinct from garbling.
const OT_DOMAIN: u8 = 1;

fn prgs(keys: impl Iterator<Item = Key>) -> Vec<ChaCha12Rng> {
    keys.map(ChaCha12Rng::from_seed).collect()
}

/// Rows `j` of a `KAPPA x m` bit matrix given by its columns (each `m / 8` bytes).
fn rows(cols: &[Vec<u8>], m: usize) -> Vec<Block> {
    let mut out = vec![0u128; m];
    out.par_chunks_mut(128).enumerate().for_each(|(b, chunk)| {
        let mut t: [u128; 128] = std::array::from_fn(|i| {
            u128::from_le_bytes(cols[i][b * 16..b * 16 + 16].try_into().unwrap())
        });
        transpose128(&mut t);
        chunk.copy_from_slice(&t[..chunk.len()]);
    });
    out
}

/// The sender's (server's) state: its base choices `s` and one PRG per column.
pub struct Sender {
    s: u128,
    prg: Vec<ChaCha12Rng>,
    next: u64,
    hash: FixedKeyHash,
}

/// The receiver's (client's) state: both PRGs per column.
pub struct Receiver {
    prg0: Vec<ChaCha12Rng>,
    prg1: Vec<ChaCha12Rng>,
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
            prg: prgs(keys.into_iter()),
            next: 0,
            hash: FixedKeyHash::new(OT_DOMAIN),
        })
    }

    /// `m` correlated OTs: returns the zero-labels `H(j, q_j)`; the receiver gets
    /// `H(j, q_j) ^ r_j delta`.
    pub fn extend(&mut self, ch: &mut Channel, m: usize, delta: Block) -> Result<Vec<Block>> {
        let mp = m.div_ceil(128) * 128;
        let msg = ch.recv("OT extension: matrix")?;
        let mut r = Reader::new(&msg, "OT extension: matrix");
        let u = r.bytes()?;
        r.end()?;
        if u.len() != KAPPA * mp / 8 {
            return Err(MpcError::malformed(
                "OT extension: matrix",
                format!("{} bytes, expected {}", u.len(), KAPPA * mp / 8),
            ));
        }
        let s = self.s;
        let cols: Vec<Vec<u8>> = self
            .prg
            .par_iter_mut()
            .enumerate()
            .map(|(i, g)| {
                let mut q = vec![0u8; mp / 8];
                g.fill_bytes(&mut q);
                if s >> i & 1 == 1 {
                    for (x, y) in q.iter_mut().zip(&u[i * mp / 8..(i + 1) * mp / 8]) {
                        *x ^= y;
                    }
                }
                q
            })
            .collect();
        let q = rows(&cols, m);
        let base = self.next as u128;
        self.next += mp as u64;
        let mut h0 = q.clone();
        let mut h1: Vec<Block> = q.iter().map(|&x| x ^ s).collect();
        h0.par_chunks_mut(4096)
            .enumerate()
            .for_each(|(c, ch)| self.hash.hash_slice(ch, base + (c * 4096) as u128));
        h1.par_chunks_mut(4096)
            .enumerate()
            .for_each(|(c, ch)| self.hash.hash_slice(ch, base + (c * 4096) as u128));
        let corr: Vec<Block> = h0.iter().zip(&h1).map(|(a, b)| a ^ b ^ delta).collect();
        let mut w = Writer::with_capacity(16 * m + 16);
        w.blocks(&corr);
        ch.send(&w.finish())?;
        Ok(h0)
    }
}

impl Receiver {
    /// Runs the base OTs (as their sender).
    pub fn setup<R: RngCore + CryptoRng>(ch: &mut Channel, rng: &mut R) -> Result<Self> {
        let keys = base::send(ch, KAPPA, rng)?;
        Ok(Receiver {
            prg0: prgs(keys.iter().map(|k| k.0)),
            prg1: prgs(keys.iter().map(|k| k.1)),
            next: 0,
            hash: FixedKeyHash::new(OT_DOMAIN),
        })
    }

    /// `m` correlated OTs with `choices`: returns `H(j, q_j) ^ r_j delta`.
    pub fn extend(&mut self, ch: &mut Channel, choices: &[bool]) -> Result<Vec<Block>> {
        let m = choices.len();
        let mp = m.div_ceil(128) * 128;
        let mut r = vec![0u8; mp / 8];
        for (j, &c) in choices.iter().enumerate() {
            r[j / 8] |= (c as u8) << (j % 8);
        }
        let (t, u): (Vec<Vec<u8>>, Vec<Vec<u8>>) = self
            .prg0
            .par_iter_mut()
            .zip(self.prg1.par_iter_mut())
            .map(|(g0, g1)| {
                let mut t = vec![0u8; mp / 8];
                let mut u = vec![0u8; mp / 8];
                g0.fill_bytes(&mut t);
                g1.fill_bytes(&mut u);
                for ((x, y), z) in u.iter_mut().zip(&t).zip(&r) {
                    *x ^= y ^ z;
                }
                (t, u)
            })
            .unzip();
        let mut w = Writer::with_capacity(KAPPA * mp / 8 + 8);
        w.bytes(&u.concat());
        ch.send(&w.finish())?;
        let mut rows_t = rows(&t, m);
        let base = self.next as u128;
        self.next += mp as u64;
        rows_t
            .par_chunks_mut(4096)
            .enumerate()
            .for_each(|(c, ch)| self.hash.hash_slice(ch, base + (c * 4096) as u128));
        let msg = ch.recv("OT extension: corrections")?;
        let mut rd = Reader::new(&msg, "OT extension: corrections");
        let corr = rd.blocks()?;
        rd.end()?;
        rd.expect_len(&corr, m, "corrections")?;
        Ok(rows_t
            .iter()
            .zip(&corr)
            .zip(choices)
            .map(|((&h, &c), &b)| if b { h ^ c } else { h })
            .collect())
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
}
