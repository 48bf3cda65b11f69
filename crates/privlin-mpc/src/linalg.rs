//! Linear operations on ring elements (plain values or additive shares alike): convolution, fully
//! connected layers, sum pooling, scale alignment. Arithmetic wraps mod `2^64`, then reduces mod
//! `2^l`, which is exact in `Z_2^l`.

use crate::model::{Arch, Op, QuantLayer};
use crate::ring::Ring;
use rayon::prelude::*;

/// `y = W x (+ b)` for weight layer `i` (convolution, fully connected, channel affine), reduced
/// mod `2^l`.
pub fn weight_layer(
    arch: &Arch,
    ring: &Ring,
    i: usize,
    layer: &QuantLayer,
    x: &[u64],
    bias: bool,
) -> Vec<u64> {
    let op = &arch.ops()[i];
    let mut y = match op {
        Op::Conv {
            input,
            stride,
            padding,
            ..
        } => {
            let s = &arch.shapes[*input];
            let o = &arch.shapes[i + 1];
            conv2d(
                x,
                [s[0], s[1], s[2]],
                &layer.weight,
                [o[0], o[1], o[2]],
                *stride,
                *padding,
            )
        }
        Op::Linear { .. } => {
            let n = x.len();
            layer
                .weight
                .par_chunks(n)
                .map(|row| {
                    row.iter()
                        .zip(x)
                        .fold(0u64, |a, (&w, &v)| a.wrapping_add(w.wrapping_mul(v)))
                })
                .collect()
        }
        Op::ChannelAffine { .. } => {
            let per = x.len() / layer.weight.len();
            x.chunks(per)
                .zip(&layer.weight)
                .flat_map(|(plane, &w)| plane.iter().map(move |&v| w.wrapping_mul(v)))
                .collect()
        }
        other => unreachable!("weight_layer on {}", other.kind()),
    };
    if bias {
        let per = y.len() / layer.bias.len();
        for (c, chunk) in y.chunks_mut(per).enumerate() {
            for v in chunk {
                *v = v.wrapping_add(layer.bias[c]);
            }
        }
    }
    for v in &mut y {
        *v = ring.reduce(*v);
    }
    y
}

/// Direct convolution of a `(C, H, W)` input with `(O, C, k, k)` weights, one output channel per
/// task.
pub fn conv2d(
    x: &[u64],
    [c, h, w]: [usize; 3],
    wt: &[u64],
    [o, ho, wo]: [usize; 3],
    stride: usize,
    pad: usize,
) -> Vec<u64> {
    let k2 = wt.len() / (o * c);
    let k = (k2 as f64).sqrt() as usize;
    let mut out = vec![0u64; o * ho * wo];
    out.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(oc, acc)| {
            for ic in 0..c {
                let plane = &x[ic * h * w..(ic + 1) * h * w];
                for kh in 0..k {
                    for kw in 0..k {
                        // No shortcut for zero weights: the layer's time must not depend on
                        // how many of the server's fixed-point weights are zero.
                        let wv = wt[((oc * c + ic) * k + kh) * k + kw];
                        for oh in 0..ho {
                            let ih = (oh * stride + kh) as isize - pad as isize;
                            if ih < 0 || ih >= h as isize {
                                continue;
                            }
                            let row = &plane[ih as usize * w..(ih as usize + 1) * w];
                            let arow = &mut acc[oh * wo..(oh + 1) * wo];
                            // Output columns whose input column lies inside the image.
                            let lo = pad.saturating_sub(kw).div_ceil(stride);
                            let hi = ((w + pad).saturating_sub(kw)).div_ceil(stride).min(wo);
                            if stride == 1 {
                                let base = lo + kw - pad;
                                for (a, &v) in
                                    arow[lo..hi].iter_mut().zip(&row[base..base + (hi - lo)])
                                {
                                    *a = a.wrapping_add(wv.wrapping_mul(v));
                                }
                            } else {
                                for (ow, a) in arow.iter_mut().enumerate().take(hi).skip(lo) {
                                    let iw = ow * stride + kw - pad;
                                    *a = a.wrapping_add(wv.wrapping_mul(row[iw]));
                                }
                            }
                        }
                    }
                }
            }
        });
    out
}

/// Sum pooling (average pooling without its divisor, which is folded into the next layer).
pub fn sum_pool(
    x: &[u64],
    [c, h, w]: [usize; 3],
    kernel: usize,
    stride: usize,
    ring: &Ring,
) -> Vec<u64> {
    let ho = (h - kernel) / stride + 1;
    let wo = (w - kernel) / stride + 1;
    let mut out = vec![0u64; c * ho * wo];
    for ch in 0..c {
        for oh in 0..ho {
            for ow in 0..wo {
                let mut s = 0u64;
                for kh in 0..kernel {
                    for kw in 0..kernel {
                        s = s.wrapping_add(x[(ch * h + oh * stride + kh) * w + ow * stride + kw]);
                    }
                }
                out[(ch * ho + oh) * wo + ow] = ring.reduce(s);
            }
        }
    }
    out
}

/// The values of every max-pool window, window by window (output position order `(C, H', W')`,
/// inside a window row-major): the inputs of the max-pool circuits.
pub fn pool_windows(
    x: &[u64],
    [c, h, w]: [usize; 3],
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Vec<u64> {
    let ho = (h + 2 * padding - kernel) / stride + 1;
    let wo = (w + 2 * padding - kernel) / stride + 1;
    // A cell outside the map repeats the nearest cell inside it (same window when
    // 2 padding <= kernel): the window's maximum is unchanged.
    let clamp = |i: usize, n: usize| i.saturating_sub(padding).min(n - 1);
    let mut out = Vec::with_capacity(c * ho * wo * kernel * kernel);
    for ch in 0..c {
        for oh in 0..ho {
            for ow in 0..wo {
                for kh in 0..kernel {
                    let r = clamp(oh * stride + kh, h);
                    if padding == 0 {
                        let row = (ch * h + r) * w + ow * stride;
                        out.extend_from_slice(&x[row..row + kernel]);
                    } else {
                        for kw in 0..kernel {
                            out.push(x[(ch * h + r) * w + clamp(ow * stride + kw, w)]);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Values `parts` (each with the bits `d` that bring it to the output's scale) concatenated
/// along channels.
pub fn concat_aligned(parts: &[(&[u64], u32)], ring: &Ring) -> Vec<u64> {
    parts
        .iter()
        .flat_map(|(v, d)| v.iter().map(move |&x| ring.reduce(x << d)))
        .collect()
}

/// `a * 2^da + b * 2^db`: a residual addition aligned to the larger scale.
pub fn add_aligned(a: &[u64], da: u32, b: &[u64], db: u32, ring: &Ring) -> Vec<u64> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ring.reduce((x << da).wrapping_add(y << db)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A padded max-pool's windows have the maximum of the window's cells inside the map (the
    /// definition with -inf padding, PyTorch's), for every padding up to half the kernel.
    #[test]
    fn padded_pool_windows_keep_the_maximum() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for &(c, h, w, k, s, p) in &[
            (2, 7, 5, 3, 2, 1),
            (1, 4, 4, 2, 2, 1),
            (3, 6, 6, 5, 1, 2),
            (1, 3, 3, 3, 1, 1),
        ] {
            let x: Vec<u64> = (0..c * h * w).map(|_| rng.gen_range(0..1000)).collect();
            let got = pool_windows(&x, [c, h, w], k, s, p);
            let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            assert_eq!(got.len(), c * ho * wo * k * k);
            for ch in 0..c {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let mut want = None::<u64>;
                        for kh in 0..k {
                            for kw in 0..k {
                                let (r, q) = (
                                    (oh * s + kh) as i64 - p as i64,
                                    (ow * s + kw) as i64 - p as i64,
                                );
                                if r >= 0 && q >= 0 && (r as usize) < h && (q as usize) < w {
                                    let v = x[(ch * h + r as usize) * w + q as usize];
                                    want = Some(want.map_or(v, |m: u64| m.max(v)));
                                }
                            }
                        }
                        let win = &got[((ch * ho + oh) * wo + ow) * k * k..][..k * k];
                        assert_eq!(win.iter().max().copied(), want, "{c} {h} {w} {k} {s} {p}");
                    }
                }
            }
        }
    }

    /// The direct convolution against a naive definition, with padding and stride.
    #[test]
    fn conv_matches_definition() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for &(c, h, o, k, s, p) in &[
            (2, 5, 3, 3, 1, 1),
            (3, 6, 2, 3, 2, 1),
            (1, 4, 2, 1, 2, 0),
            (2, 7, 1, 3, 1, 0),
        ] {
            let x: Vec<u64> = (0..c * h * h).map(|_| rng.gen_range(0..100)).collect();
            let wt: Vec<u64> = (0..o * c * k * k).map(|_| rng.gen_range(0..7)).collect();
            let ho = (h + 2 * p - k) / s + 1;
            let got = conv2d(&x, [c, h, h], &wt, [o, ho, ho], s, p);
            for oc in 0..o {
                for oh in 0..ho {
                    for ow in 0..ho {
                        let mut acc = 0u64;
                        for ic in 0..c {
                            for kh in 0..k {
                                for kw in 0..k {
                                    let ih = (oh * s + kh) as isize - p as isize;
                                    let iw = (ow * s + kw) as isize - p as isize;
                                    if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < h
                                    {
                                        acc += wt[((oc * c + ic) * k + kh) * k + kw]
                                            * x[(ic * h + ih as usize) * h + iw as usize];
                                    }
                                }
                            }
                        }
                        assert_eq!(
                            got[(oc * ho + oh) * ho + ow],
                            acc,
                            "case {:?}",
                            (c, h, o, k, s, p)
                        );
                    }
                }
            }
        }
    }
}
