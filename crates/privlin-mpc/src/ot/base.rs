//! Chou-Orlandi "simplest OT" (Latincrypt 2015) over the Ristretto group of `curve25519-dalek`,
//! semi-honest: the sender publishes `A = aG`; for choice `c` the receiver sends
//! `B = bG + cA`; keys are `H(aB)`, `H(a(B - A))` for the sender and `H(bA)` for the receiver.

use crate::error::{MpcError, Result};
use crate::net::{Channel, Expect};
use crate::wire::{bytes_bytes, Reader, Writer};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable};

pub type Key = [u8; 32];

fn kdf(i: usize, a: &RistrettoPoint, b: &RistrettoPoint, shared: &RistrettoPoint) -> Key {
    let mut h = Sha256::new();
    h.update(b"privlin-base-ot");
    h.update((i as u64).to_le_bytes());
    h.update(a.compress().as_bytes());
    h.update(b.compress().as_bytes());
    h.update(shared.compress().as_bytes());
    h.finalize().into()
}

fn point(bytes: &[u8], what: &'static str) -> Result<RistrettoPoint> {
    let c = CompressedRistretto::from_slice(bytes)
        .map_err(|_| MpcError::malformed(what, "point is not 32 bytes"))?;
    c.decompress()
        .ok_or_else(|| MpcError::malformed(what, "not a valid Ristretto point"))
}

fn random_scalar<R: RngCore + CryptoRng>(rng: &mut R) -> Scalar {
    let mut b = [0u8; 64];
    rng.fill_bytes(&mut b);
    Scalar::from_bytes_mod_order_wide(&b)
}

/// Sender of `n` base OTs: returns the key pairs `(k0, k1)`.
pub fn send<R: RngCore + CryptoRng>(
    ch: &mut Channel,
    n: usize,
    rng: &mut R,
) -> Result<Vec<(Key, Key)>> {
    let a = random_scalar(rng);
    let big_a = &a * RISTRETTO_BASEPOINT_TABLE;
    let mut w = Writer::new();
    w.bytes(big_a.compress().as_bytes());
    ch.send(w.finish())?;
    let msg = ch.recv(
        "base OT: receiver points",
        Expect::Exact(bytes_bytes(32 * n)),
    )?;
    let mut r = Reader::new(&msg, "base OT: receiver points");
    let raw = r.bytes()?;
    r.end()?;
    if raw.len() != 32 * n {
        return Err(MpcError::malformed(
            "base OT: receiver points",
            format!("{} bytes, expected {}", raw.len(), 32 * n),
        ));
    }
    raw.chunks_exact(32)
        .enumerate()
        .map(|(i, c)| {
            let b = point(c, "base OT: receiver point")?;
            Ok((
                kdf(i, &big_a, &b, &(a * b)),
                kdf(i, &big_a, &b, &(a * (b - big_a))),
            ))
        })
        .collect()
}

/// Receiver of `n` base OTs with `choices`: returns the chosen keys.
pub fn receive<R: RngCore + CryptoRng>(
    ch: &mut Channel,
    choices: &[bool],
    rng: &mut R,
) -> Result<Vec<Key>> {
    let msg = ch.recv("base OT: sender point", Expect::Exact(bytes_bytes(32)))?;
    let mut r = Reader::new(&msg, "base OT: sender point");
    let big_a = point(r.bytes()?, "base OT: sender point")?;
    r.end()?;
    let mut out = Vec::with_capacity(choices.len());
    let mut pts = Vec::with_capacity(32 * choices.len());
    for (i, &c) in choices.iter().enumerate() {
        let b = random_scalar(rng);
        // The choice is a secret of the receiver (in IKNP, the server's `s`): select without a
        // branch, both candidates computed.
        let bg = &b * RISTRETTO_BASEPOINT_TABLE;
        let big_b = RistrettoPoint::conditional_select(&bg, &(bg + big_a), Choice::from(c as u8));
        pts.extend_from_slice(big_b.compress().as_bytes());
        out.push(kdf(i, &big_a, &big_b, &(b * big_a)));
    }
    let mut w = Writer::new();
    w.bytes(&pts);
    ch.send(w.finish())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{mem, Channel};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha12Rng;

    /// The definition of 1-out-of-2 OT: the receiver's key is the sender's key of its choice, and
    /// differs from the other one; keys differ across instances.
    #[test]
    fn receiver_gets_the_chosen_key() {
        let (a, b) = mem::pair();
        let sender = std::thread::spawn(move || {
            let mut ch = Channel::new(Box::new(a));
            send(&mut ch, 64, &mut ChaCha12Rng::seed_from_u64(1)).unwrap()
        });
        let mut rng = ChaCha12Rng::seed_from_u64(2);
        let choices: Vec<bool> = (0..64).map(|_| rng.gen()).collect();
        let mut ch = Channel::new(Box::new(b));
        let got = receive(&mut ch, &choices, &mut rng).unwrap();
        let pairs = sender.join().unwrap();
        for (i, ((k0, k1), (k, &c))) in pairs.iter().zip(got.iter().zip(&choices)).enumerate() {
            assert_eq!(k, if c { k1 } else { k0 }, "OT {i}");
            assert_ne!(k0, k1, "OT {i}");
        }
        assert_ne!(pairs[0].0, pairs[1].0);
    }

    /// A receiver that sends the wrong number of points, or bytes that are not a point, is refused.
    #[test]
    fn bad_receiver_points_are_refused() {
        for payload in [vec![0u8; 32 * 4 - 1], vec![0xffu8; 32 * 4]] {
            let (a, b) = mem::pair();
            let sender = std::thread::spawn(move || {
                let mut ch = Channel::new(Box::new(a));
                send(&mut ch, 4, &mut ChaCha12Rng::seed_from_u64(1))
            });
            let mut ch = Channel::new(Box::new(b));
            ch.recv("sender point", Expect::Exact(40)).unwrap();
            let mut w = Writer::new();
            w.bytes(&payload);
            ch.send(w.finish()).unwrap();
            let err = sender.join().unwrap().unwrap_err();
            assert!(matches!(err, MpcError::Malformed { .. }), "{err}");
        }
    }
}
