//! Max-pool windows on OT: the maximum of a window as a tree of `max(a, b) = b + ReLU(a - b)`
//! steps, each round one [`super::ot_relu`] site (truncation by 0 bits) over every window's
//! pairs. The client's share of every step's output is `b_C + r'`, known offline, so every
//! round's OTs are made in the offline phase as for a ReLU site (DELPHI's invariant holds through
//! the tree); online a window of `k` values takes `ceil(log2 k)` rounds of 8 flights.
//!
//! The comparison reads the difference on `w + 1` bits (where `w < l`): for window values in the
//! circuit's range `|v| < 2^(w-1)` the difference fits, and the result is the circuit's maximum
//! ([`crate::plain`] applies `max` of the `w`-bit views) bit for bit; values outside that range
//! are counted as overflows by the plaintext reference, as for the circuit.

use super::ot_relu::{self, ClientSite, ServerSite, Shape};
use crate::error::Result;
use crate::net::Channel;
use crate::ot::silent;
use crate::ring::Ring;
use rand::Rng;

/// The rounds of `windows` windows of `k` values: one site shape per round.
pub fn shapes(ring: &Ring, digit_bits: u32, windows: usize, k: usize) -> Result<Vec<Shape>> {
    shapes_at(
        ring,
        (ring.gc_bits + 1).min(ring.bits),
        digit_bits,
        windows,
        k,
    )
}

/// [`shapes`] with the differences compared on `width` bits.
pub fn shapes_at(
    ring: &Ring,
    width: u32,
    digit_bits: u32,
    windows: usize,
    k: usize,
) -> Result<Vec<Shape>> {
    let wide = Ring {
        gc_bits: width,
        ..*ring
    };
    let mut out = Vec::new();
    let mut count = k;
    while count > 1 {
        out.push(Shape::new(&wide, 0, digit_bits, windows * (count / 2))?);
        count = count.div_ceil(2);
    }
    Ok(out)
}

/// One round on the window values `v` (`count` per window): the differences `a - b` of each
/// window's pairs, in order.
fn differences(ring: &Ring, v: &[u64], count: usize) -> Vec<u64> {
    v.chunks(count)
        .flat_map(|w| {
            w.chunks_exact(2)
                .map(|p| ring.reduce(p[0].wrapping_sub(p[1])))
        })
        .collect()
}

/// The next round's values: `b + z` for each pair (`z` the party's share of `ReLU(a - b)`), and
/// a window's odd value carried.
fn next(ring: &Ring, v: &[u64], count: usize, z: &[u64]) -> Vec<u64> {
    let pairs = count / 2;
    v.chunks(count)
        .zip(z.chunks(pairs.max(1)))
        .flat_map(|(w, zw)| {
            let mut o: Vec<u64> = w
                .chunks_exact(2)
                .zip(zw)
                .map(|(p, &r)| ring.reduce(p[1].wrapping_add(r)))
                .collect();
            if count % 2 == 1 {
                o.push(w[count - 1]);
            }
            o
        })
        .collect()
}

/// The server's offline phase of rounds of OT sites (a max-pool's tree; a ReLU site is one
/// round): one site per shape.
pub fn server_offline<R: Rng>(
    ch: &mut Channel,
    tx: &mut silent::Sender,
    rx: &mut silent::Receiver,
    rng: &mut R,
    shapes: Vec<Shape>,
) -> Result<Vec<ServerSite>> {
    shapes
        .into_iter()
        .map(|s| ot_relu::server_offline(ch, tx, rx, rng, s))
        .collect()
}

/// The client's offline phase of a max-pool on its shares `x` of the windows (`k` values each,
/// one site per round of `shapes`): its sites and its shares of the windows' maxima.
pub fn client_offline<R: Rng>(
    ch: &mut Channel,
    rx: &mut silent::Receiver,
    tx: &mut silent::Sender,
    rng: &mut R,
    shapes: Vec<Shape>,
    x: &[u64],
    k: usize,
) -> Result<(Vec<ClientSite>, Vec<u64>)> {
    let (mut v, mut count) = (x.to_vec(), k);
    let mut sites = Vec::with_capacity(shapes.len());
    for s in shapes {
        // The rounds' ring (only its width `l` is used here; `w` is the comparison's).
        let ring = s.ring;
        let d = differences(&ring, &v, count);
        let site = ot_relu::client_offline(ch, rx, tx, rng, s, &d)?;
        v = next(&ring, &v, count, &site.out);
        count = count.div_ceil(2);
        sites.push(site);
    }
    Ok((sites, v))
}

/// The server's online phase on its shares `x` of the windows: its shares of the maxima.
pub fn server_online(
    ch: &mut Channel,
    sites: Vec<ServerSite>,
    x: &[u64],
    k: usize,
    ring: &Ring,
) -> Result<Vec<u64>> {
    let (mut v, mut count) = (x.to_vec(), k);
    for site in sites {
        let d = differences(ring, &v, count);
        let z = ot_relu::server_online(ch, site, &d)?;
        v = next(ring, &v, count, &z);
        count = count.div_ceil(2);
    }
    Ok(v)
}

/// The client's online phase of rounds of OT sites (it needs no data: its shares are fixed).
pub fn client_online(ch: &mut Channel, sites: Vec<ClientSite>) -> Result<()> {
    for site in sites {
        ot_relu::client_online(ch, site)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha12Rng;

    /// Windows of 4 and of 9 values (an odd value carried every round) give the maximum of the
    /// values' `w`-bit views, bit for bit: random values, ties, the largest and smallest values
    /// of the circuit's range, zero; every digit size the plan accepts.
    #[test]
    fn ot_max_pool_equals_plaintext() {
        let ring = Ring::default();
        let top = (1i64 << (ring.gc_bits - 1)) - 1;
        let mut rng = ChaCha12Rng::seed_from_u64(4);
        for (k, m) in [(4usize, 4u32), (9, 1), (9, 6), (2, 3)] {
            let mut vals: Vec<i64> = vec![top, -top - 1, 0, 0, 5, 5, -1, top - 1, -top];
            vals.extend((0..k * 6).map(|_| rng.gen_range(-top - 1..=top)));
            vals.truncate(vals.len() / k * k);
            let windows = vals.len() / k;
            let x: Vec<u64> = vals.iter().map(|&v| ring.from_signed(v)).collect();
            let xs: Vec<u64> = x.iter().map(|_| ring.reduce(rng.gen())).collect();
            let xc: Vec<u64> = x
                .iter()
                .zip(&xs)
                .map(|(&v, &s)| ring.reduce(v.wrapping_sub(s)))
                .collect();
            let sh = shapes(&ring, m, windows, k).unwrap();
            assert_eq!(sh.len(), k.next_power_of_two().trailing_zeros() as usize);
            let sh2 = sh.clone();
            let (out_s, out_c) = crate::nonlinear::testing::two_parties(
                move |ch, tx, rx, rng| {
                    let sites = server_offline(ch, tx, rx, rng, sh2).unwrap();
                    server_online(ch, sites, &xs, k, &ring).unwrap()
                },
                |ch, rx, tx, rng| {
                    let (sites, out_c) = client_offline(ch, rx, tx, rng, sh, &xc, k).unwrap();
                    client_online(ch, sites).unwrap();
                    out_c
                },
            );
            for (wi, win) in vals.chunks(k).enumerate() {
                let want = *win.iter().max().unwrap();
                let got = ring.signed(ring.reduce(out_s[wi].wrapping_add(out_c[wi])));
                assert_eq!(got, want, "k {k} m {m}: window {win:?}");
            }
        }
    }
}
