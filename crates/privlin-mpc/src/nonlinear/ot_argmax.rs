//! The class output on OT: the argmax of the logits' shares as the maximum of packed values
//! `v_j = logit_j 2^p + (C - 1 - j)` (`p` = bits of the class index), compared on all `l` bits
//! by the tree of [`super::ot_pool`]; the index rides in the low `p` bits, so the maximum's low
//! bits name the first largest logit (ties go to the smaller index, as in
//! [`crate::plain::argmax`]). Only those bits are revealed: the server sends its share of the
//! maximum mod `2^p`, which is uniform given the client's offline share and the index, and the
//! client adds its own. Exact for `|logit| < 2^(l - 2 - p)` (far beyond any real logit at scale
//! `2^(2f)` in a 64-bit ring). The server's offline phase is the tree's
//! ([`ot_pool::server_offline`]).

use super::ot_pool;
use super::ot_relu::{ClientSite, ServerSite, Shape};
use crate::error::{MpcError, Result};
use crate::net::{Channel, Expect};
use crate::ot::silent;
use crate::ring::Ring;
use crate::wire::{Reader, Writer};
use rand::Rng;

const REVEAL: &str = "argmax index share";

/// Bits of the class index.
pub fn index_bits(classes: usize) -> u32 {
    (usize::BITS - (classes - 1).leading_zeros()).max(1)
}

/// The rounds of the class output's tree (`classes >= 2`).
pub fn shapes(ring: &Ring, digit_bits: u32, classes: usize) -> Result<Vec<Shape>> {
    ot_pool::shapes_at(ring, ring.bits, digit_bits, 1, classes)
}

/// Payload bytes of the reveal message (the server's share of the maximum, mod `2^p`).
pub const REVEAL_BYTES: u64 = 8;

fn packed(ring: &Ring, shares: &[u64], server: bool) -> Vec<u64> {
    let (c, p) = (shares.len(), index_bits(shares.len()));
    shares
        .iter()
        .enumerate()
        .map(|(j, &s)| {
            let v = s << p;
            ring.reduce(if server {
                v.wrapping_add((c - 1 - j) as u64)
            } else {
                v
            })
        })
        .collect()
}

/// The client's offline phase on its shares of the logits: its sites and its share of the
/// packed maximum.
pub fn client_offline<R: Rng>(
    ch: &mut Channel,
    rx: &mut silent::Receiver,
    tx: &mut silent::Sender,
    rng: &mut R,
    shapes: Vec<Shape>,
    logits: &[u64],
) -> Result<(Vec<ClientSite>, u64)> {
    let ring = shapes.first().map(|s| s.ring).ok_or_else(|| {
        MpcError::Params("the class output on OT needs two classes or more".into())
    })?;
    let x = packed(&ring, logits, false);
    let (sites, out) = ot_pool::client_offline(ch, rx, tx, rng, shapes, &x, logits.len())?;
    Ok((sites, out[0]))
}

/// The server's online phase on its shares of the logits: the tree, then its share of the
/// maximum's index bits to the client.
pub fn server_online(
    ch: &mut Channel,
    sites: Vec<ServerSite>,
    logits: &[u64],
    ring: &Ring,
) -> Result<()> {
    let x = packed(ring, logits, true);
    let m = ot_pool::server_online(ch, sites, &x, logits.len(), ring)?;
    let mask = (1u64 << index_bits(logits.len())) - 1;
    let mut w = Writer::new();
    w.u64(m[0] & mask);
    ch.send(w.finish())
}

/// The client's online phase: returns the class.
pub fn client_online(
    ch: &mut Channel,
    sites: Vec<ClientSite>,
    share: u64,
    classes: usize,
) -> Result<usize> {
    ot_pool::client_online(ch, sites)?;
    let msg = ch.recv(REVEAL, Expect::Exact(REVEAL_BYTES))?;
    let mut r = Reader::new(&msg, REVEAL);
    let s = r.u64()?;
    r.end()?;
    let p = index_bits(classes);
    let low = s.wrapping_add(share) & ((1u64 << p) - 1);
    if s >> p != 0 || low as usize >= classes {
        return Err(MpcError::malformed(
            REVEAL,
            format!("index share {s} does not name one of {classes} classes"),
        ));
    }
    Ok(classes - 1 - low as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::mem;
    use rand::SeedableRng;
    use rand_chacha::ChaCha12Rng;

    /// The class from the OT tree is `plain::argmax` of the logits (first maximum on ties) for 2,
    /// 3, 10 and 16 classes, ties, negative and large logits; the client refuses an index share
    /// with bits above the index.
    #[test]
    fn ot_argmax_equals_plaintext() {
        let ring = Ring::default();
        let mut rng = ChaCha12Rng::seed_from_u64(8);
        let big = 1i64 << 40;
        let cases: Vec<Vec<i64>> = vec![
            vec![3, 3],
            vec![-5, -2, -2],
            vec![0, big, -big, big, 7, 7, 1, 2, 3, 4],
            (0..16).map(|_| rng.gen_range(-big..big)).collect(),
            (0..10).map(|_| rng.gen_range(-4..4)).collect(),
        ];
        for logits in cases {
            let c = logits.len();
            let x: Vec<u64> = logits.iter().map(|&v| ring.from_signed(v)).collect();
            let xs: Vec<u64> = x.iter().map(|_| ring.reduce(rng.gen())).collect();
            let xc: Vec<u64> = x
                .iter()
                .zip(&xs)
                .map(|(&v, &s)| ring.reduce(v.wrapping_sub(s)))
                .collect();
            let sh = shapes(&ring, 4, c).unwrap();
            let sh2 = sh.clone();
            let (_, class) = crate::nonlinear::testing::two_parties(
                move |ch, tx, rx, rng| {
                    let sites = ot_pool::server_offline(ch, tx, rx, rng, sh2).unwrap();
                    server_online(ch, sites, &xs, &ring).unwrap()
                },
                |ch, rx, tx, rng| {
                    let (sites, share) = client_offline(ch, rx, tx, rng, sh, &xc).unwrap();
                    client_online(ch, sites, share, c).unwrap()
                },
            );
            let want = crate::plain::argmax(&logits.iter().map(|&v| v as f64).collect::<Vec<_>>());
            assert_eq!(class, want, "{logits:?}");
        }
        // A forged share with bits above the index is refused.
        let (mut a, b) = mem::pair();
        let mut w = Writer::new();
        w.u64(1 << 20);
        let msg = w.finish();
        let mut f = (msg.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&0u64.to_le_bytes());
        f.extend_from_slice(&msg);
        a.send_raw(f).unwrap();
        let mut ch = Channel::new(Box::new(b));
        let err = client_online(&mut ch, Vec::new(), 0, 10).unwrap_err();
        assert!(err.to_string().contains(REVEAL), "{err}");
    }
}
