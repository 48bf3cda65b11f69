//! Coefficient encoding of convolutions and fully connected layers (Cheetah, Huang et al., USENIX
//! Security 2022, section 3.1 "HomConv" and "HomFC"): one polynomial product computes a whole
//! block of channels of a convolution.
//!
//! The input, zero padded to `(C, H', W')`, is cut into tiles of rows (one tile whenever the padded
//! image fits the ring) and blocks of `cb` channels; a tile-block is the polynomial
//! `x(X) = sum_{c, r, j} x[c, r, j] X^(c P + r W' + j)` with `P = rows * W'` the plane of one
//! channel. The kernels of `m` output channels and the same `cb` input channels form
//! `w(X) = sum_{o, c, u, v} w[o, c, u, v] X^(o cb P + O - c P - u W' - v)` with
//! `O = (cb - 1) P + (k - 1) W' + (k - 1)`. In `x(X) w(X)` the coefficient
//! `o cb P + O + r W' + j` is the stride-1 convolution of output channel `o` at row `r`, column
//! `j`, and nothing else lands there as long as `m cb P <= N` (no wrap-around of the negacyclic
//! product reaches a read coefficient; the proof is Cheetah's Proposition 1 with `m` copies
//! side by side). Strided layers read every `s`-th row and column. A fully connected layer is the
//! `1 x 1` convolution of a `1 x 1` image with `I` channels. A channel affine (a diagonal, i.e.
//! depthwise `1 x 1`, layer) is the same layout with `m = cb` and only the weights `w[c, c]`:
//! output group `g` needs only input block `g`, one product per answer instead of `blocks`.

use super::params::{HeContext, ETA};
use crate::error::{MpcError, Result};
use crate::model::{Arch, Op};

/// The shape of one weight layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    /// Output channel `c` reads only input channel `c` (`o = c`, `k = 1`).
    pub depthwise: bool,
}

impl Geometry {
    pub fn of(arch: &Arch, op: usize) -> Result<Self> {
        match &arch.ops()[op] {
            Op::Conv {
                input,
                weight,
                stride,
                padding,
                ..
            } => {
                let s = &arch.shapes[*input];
                let o = &arch.shapes[op + 1];
                let ws = arch.json.weight_shapes.get(weight).ok_or_else(|| {
                    MpcError::model(format!("op {op}: no shape for weight `{weight}`"))
                })?;
                let g = Geometry {
                    c: s[0],
                    h: s[1],
                    w: s[2],
                    o: o[0],
                    k: ws.get(2).copied().unwrap_or(0),
                    stride: *stride,
                    pad: *padding,
                    depthwise: false,
                };
                if ws.len() != 4
                    || ws[2] != ws[3]
                    || ws[0] != g.o
                    || ws[1] != g.c
                    || g.k == 0
                    || g.h + 2 * g.pad < g.k
                    || g.w + 2 * g.pad < g.k
                    || g.out_hw() != (o[1], o[2])
                {
                    return Err(MpcError::model(format!(
                        "op {op}: weight `{weight}` {ws:?} does not take {s:?} to {o:?}"
                    )));
                }
                Ok(g)
            }
            Op::Linear { input, .. } => Ok(Geometry {
                c: arch.numel(*input),
                h: 1,
                w: 1,
                o: arch.numel(op + 1),
                k: 1,
                stride: 1,
                pad: 0,
                depthwise: false,
            }),
            Op::ChannelAffine { input, .. } => {
                let s = &arch.shapes[*input];
                Ok(Geometry {
                    c: s[0],
                    h: s[1],
                    w: s[2],
                    o: s[0],
                    k: 1,
                    stride: 1,
                    pad: 0,
                    depthwise: true,
                })
            }
            other => Err(MpcError::model(format!(
                "op {op} is a {}, not a weight layer",
                other.kind()
            ))),
        }
    }

    /// Weights that reach one output: `c k^2`, or `k^2` for a depthwise layer.
    pub fn fan_in(&self) -> usize {
        if self.depthwise {
            self.k * self.k
        } else {
            self.c * self.k * self.k
        }
    }

    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }
}

/// Noise of one answer ciphertext, in `log2`, against what decryption tolerates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// Bound on the weight- and key-dependent noise the flood must hide.
    pub hide_log2: f64,
    /// Half-width of the uniform flooding noise.
    pub flood_log2: f64,
    /// Worst-case noise at the full modulus and after the switch.
    pub full_log2: f64,
    pub kept_log2: f64,
    /// Bits between the worst-case noise and `q / 2t` (the smaller of the two moduli).
    pub margin_bits: f64,
}

/// How one weight layer is laid out in polynomials.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub geom: Geometry,
    pub n: usize,
    /// Padded width `W'`.
    pub wp: usize,
    /// Stride-1 output rows and columns.
    pub rows1: usize,
    pub cols1: usize,
    /// Stride-1 output rows per tile, and tiles.
    pub tile_rows: usize,
    pub tiles: usize,
    /// Coefficients of one channel in a polynomial.
    pub plane: usize,
    /// Input channels per polynomial and output channels per product.
    pub cb: usize,
    pub m: usize,
    /// Input blocks and output groups.
    pub blocks: usize,
    pub groups: usize,
    pub offset: usize,
    pub noise: Noise,
    /// The weight layer whose input ciphertexts this layer multiplies instead of a query of its
    /// own ([`Layout::sharing`]): the client encrypts the tensor they both read once.
    pub host: Option<usize>,
}

/// Work units of the cost model that picks `(cb, m)`: milliseconds on one core of the reference
/// machine (`cargo run --release -p privlin-mpc --example he_speeds` on the 2-core AMD EPYC of
/// docs/results.md), and bytes priced at 300 Mbit/s (between the LAN and WAN profiles), so that a
/// layout that halves the traffic for a few percent more compute wins. Constants, not this
/// machine's calibration: both parties must derive the same layout.
const ENCRYPT_MS: f64 = 4.3;
const ANSWER_MS: f64 = 8.5;
const PRODUCT_MS: f64 = 1.5;
const MS_PER_BYTE: f64 = 2.7e-5;

impl Layout {
    /// The layout with the lowest modelled cost among those whose noise fits.
    pub fn choose(geom: Geometry, ctx: &HeContext) -> Result<Layout> {
        let n = ctx.degree();
        let wp = geom.w + 2 * geom.pad;
        let hp = geom.h + 2 * geom.pad;
        let rows1 = hp - geom.k + 1;
        if geom.k * wp > n {
            return Err(MpcError::Params(format!(
                "a {}-row band of a {wp}-wide padded input does not fit N = {n}",
                geom.k
            )));
        }
        let max_rows = n / wp - (geom.k - 1);
        let tiles = rows1.div_ceil(max_rows);
        let tile_rows = rows1.div_ceil(tiles);
        let plane = (tile_rows + geom.k - 1) * wp;
        let fit = n / plane;
        let mut best: Option<(f64, Layout)> = None;
        for cb in 1..=geom.c.min(fit) {
            let m = geom.o.min(fit / cb);
            // A depthwise layer pairs output group `g` with input block `g`: `m = cb`.
            let ms = if geom.depthwise {
                if m < cb {
                    break;
                }
                cb..=cb
            } else {
                1..=m
            };
            for m in ms.rev() {
                let l = Layout::with(geom, ctx, tiles, tile_rows, plane, cb, m);
                if !l.noise_fits() {
                    continue;
                }
                let cost = l.cost_ms(ctx);
                if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                    best = Some((cost, l));
                }
                break;
            }
        }
        best.map(|(_, l)| l).ok_or_else(|| {
            let l = Layout::with(geom, ctx, tiles, tile_rows, plane, 1, 1);
            MpcError::Params(format!(
                "HE noise does not fit for a {}x{} layer with {} inputs: worst case 2^{:.1} at \
                 margin {:.1} bits under the public weight bound 2^{} (lower the bound or use \
                 a larger modulus)",
                geom.k,
                geom.k,
                geom.c,
                l.noise.kept_log2,
                l.noise.margin_bits,
                ctx.params.weight_bits
            ))
        })
    }

    fn with(
        geom: Geometry,
        ctx: &HeContext,
        tiles: usize,
        tile_rows: usize,
        plane: usize,
        cb: usize,
        m: usize,
    ) -> Layout {
        let mut l = Layout {
            geom,
            n: ctx.degree(),
            wp: geom.w + 2 * geom.pad,
            rows1: geom.h + 2 * geom.pad - geom.k + 1,
            cols1: geom.w + 2 * geom.pad - geom.k + 1,
            tile_rows,
            tiles,
            plane,
            cb,
            m,
            blocks: geom.c.div_ceil(cb),
            groups: geom.o.div_ceil(m),
            offset: (cb - 1) * plane + (geom.k - 1) * (geom.w + 2 * geom.pad) + geom.k - 1,
            noise: Noise {
                hide_log2: 0.0,
                flood_log2: 0.0,
                full_log2: 0.0,
                kept_log2: 0.0,
                margin_bits: 0.0,
            },
            host: None,
        };
        l.noise = l.noise_bound(ctx);
        l
    }

    /// The layout of an unpadded `1 x 1` convolution `own` that reads the same tensor as the
    /// layer laid out as `host` (op `host_op`; a ResNet's projection shortcut beside its block's
    /// first convolution): its kernel sits at the centre `(p, p)` of the host's `k x k` window
    /// (the host's padding `p`), so each output reads the same input pixel as before, and its
    /// answers multiply the host's input ciphertexts: the client encrypts the tensor once
    /// (issue 37). The input encoding (tiles, plane, channels per polynomial) is the host's; the
    /// output channels per product are the most whose noise fits (the noise is bounded over
    /// the whole window, an over-estimate by `k^2` in the product term). `None` when the
    /// geometry does not embed or the noise does not fit.
    pub fn sharing(
        host: &Layout,
        host_op: usize,
        own: Geometry,
        ctx: &HeContext,
    ) -> Option<Layout> {
        let h = host.geom;
        let embeds = !own.depthwise
            && !h.depthwise
            && host.host.is_none()
            && own.k == 1
            && own.pad == 0
            && (own.c, own.h, own.w, own.stride) == (h.c, h.h, h.w, h.stride)
            && h.pad < h.k
            && own.out_hw() == h.out_hw();
        if !embeds {
            return None;
        }
        let geom = Geometry { o: own.o, ..h };
        let most = own.o.min(host.n / host.plane / host.cb);
        (1..=most).rev().find_map(|m| {
            let mut l = Layout::with(
                geom,
                ctx,
                host.tiles,
                host.tile_rows,
                host.plane,
                host.cb,
                m,
            );
            l.host = Some(host_op);
            l.noise_fits().then_some(l)
        })
    }

    /// Flat `(O, C, k, k)` weights of this layout from a layer's own `(O, C, k0, k0)` weights:
    /// the same, or for a layer laid out by [`Layout::sharing`] (`k0 = 1`) each weight at the
    /// centre `(pad, pad)` of a zero `k x k` kernel.
    pub fn embed_weights(&self, w: &[i64]) -> Vec<i64> {
        if self.host.is_none() {
            return w.to_vec();
        }
        let (k, p) = (self.geom.k, self.geom.pad);
        let mut out = vec![0i64; w.len() * k * k];
        for (oc, &v) in w.iter().enumerate() {
            out[(oc * k + p) * k + p] = v;
        }
        out
    }

    /// At least one bit of noise margin, and a flood that can be sampled as a 128-bit integer.
    fn noise_fits(&self) -> bool {
        self.noise.margin_bits >= 1.0 && self.noise.flood_log2 <= 125.0
    }

    /// Input polynomials the client sends for this layer: none when it reads a host's.
    pub fn queries(&self) -> usize {
        if self.host.is_some() {
            0
        } else {
            self.inputs()
        }
    }

    /// Worst-case noise of an answer (all bounds deterministic):
    /// the product `sum_b w_b (e_b + eps_b)` with `|e| <= ETA`, `|eps| <= 1/2` (the rounding of
    /// `Delta`) and at most `m C k^2` (depthwise: `m k^2`) weights below `2^weight_bits`; the re-randomization
    /// `e u + e_0 + e_1 s` (`u, s` ternary: `<= (2N + 1) ETA`); the mask's rounding `1/2`. The
    /// flood is `2^flood_bits * n_read` times that, so the client's view of the `n_read`
    /// coefficients it reads is `2^-flood_bits`-close to one without the weights. The switch to
    /// `q'` scales by `q' / Q` and adds the rounding `(1 + ||s||_1) / 2 <= (N + 1) / 2` (twice: one
    /// per dropped prime, the first scaled down).
    fn noise_bound(&self, ctx: &HeContext) -> Noise {
        let g = &self.geom;
        let n = self.n as f64;
        let weights = (self.m * g.fan_in()) as f64;
        let product = weights * 2f64.powi(ctx.params.weight_bits as i32) * (ETA as f64 + 0.5);
        let rerand = (2.0 * n + 1.0) * ETA as f64;
        let hide = product + rerand + 0.5;
        let read = self.read_per_answer() as f64;
        let flood = 2f64.powi(ctx.params.flood_bits as i32) * read.max(1.0) * hide;
        let full = hide + flood;
        let kept = full * 2f64.powf(ctx.log_qk - ctx.log_q) + (n + 1.0);
        let tol_full = ctx.log_q - ctx.ring.bits as f64 - 1.0;
        let tol_kept = ctx.log_qk - ctx.ring.bits as f64 - 1.0;
        Noise {
            hide_log2: hide.log2(),
            flood_log2: flood.log2(),
            full_log2: full.log2(),
            kept_log2: kept.log2(),
            margin_bits: (tol_full - full.log2()).min(tol_kept - kept.log2()),
        }
    }

    /// Coefficients the client reads of one answer (at most).
    pub fn read_per_answer(&self) -> usize {
        let s = self.geom.stride;
        self.m * self.tile_rows.div_ceil(s) * self.cols1.div_ceil(s)
    }

    fn cost_ms(&self, ctx: &HeContext) -> f64 {
        let (ins, outs) = (
            (self.tiles * self.blocks) as f64,
            (self.tiles * self.groups) as f64,
        );
        let up = ins * super::codec::packed_len(ctx, ctx.moduli.len(), self.n) as f64;
        let kept = ctx.params.kept as usize;
        let down = outs * super::codec::packed_len(ctx, kept, self.n) as f64;
        ins * ENCRYPT_MS
            + outs * ANSWER_MS
            + outs * self.products_per_answer() as f64 * PRODUCT_MS
            + (up + down) * MS_PER_BYTE
    }

    /// Input blocks an answer multiplies: all of its tile's, or only its own for a depthwise
    /// layer.
    pub fn products_per_answer(&self) -> usize {
        self.blocks_of(0).len()
    }

    /// The input blocks answer group `group` multiplies.
    pub fn blocks_of(&self, group: usize) -> std::ops::Range<usize> {
        if self.geom.depthwise {
            group..group + 1
        } else {
            0..self.blocks
        }
    }

    pub fn inputs(&self) -> usize {
        self.tiles * self.blocks
    }

    pub fn answers(&self) -> usize {
        self.tiles * self.groups
    }

    /// Coefficients of input polynomial (`tile`, `block`) from the flat `(C, H, W)` values.
    pub fn encode_input(&self, x: &[u64], tile: usize, block: usize) -> Vec<u64> {
        let g = &self.geom;
        let mut out = vec![0u64; self.n];
        let in_rows = self.tile_rows + g.k - 1;
        for ci in 0..self.cb {
            let c = block * self.cb + ci;
            if c >= g.c {
                break;
            }
            for r in 0..in_rows {
                let Some(ih) = (tile * self.tile_rows + r).checked_sub(g.pad) else {
                    continue;
                };
                if ih >= g.h {
                    continue;
                }
                let base = ci * self.plane + r * self.wp + g.pad;
                let row = &x[(c * g.h + ih) * g.w..(c * g.h + ih + 1) * g.w];
                out[base..base + g.w].copy_from_slice(row);
            }
        }
        out
    }

    /// Signed coefficients of weight polynomial (`group`, `block`) from the flat `(O, C, k, k)`
    /// signed weights (depthwise: the `(C, k, k)` weights, `w[o, c] = 0` for `o != c`).
    pub fn encode_weights(&self, w: &[i64], group: usize, block: usize) -> Vec<i64> {
        let g = &self.geom;
        let mut out = vec![0i64; self.n];
        for mi in 0..self.m {
            let o = group * self.m + mi;
            if o >= g.o {
                break;
            }
            for ci in 0..self.cb {
                let c = block * self.cb + ci;
                if c >= g.c {
                    break;
                }
                if g.depthwise && c != o {
                    continue;
                }
                for u in 0..g.k {
                    for v in 0..g.k {
                        let at = mi * self.cb * self.plane + self.offset
                            - ci * self.plane
                            - u * self.wp
                            - v;
                        let row = if g.depthwise { c } else { o * g.c + c };
                        out[at] = w[(row * g.k + u) * g.k + v];
                    }
                }
            }
        }
        out
    }

    /// `(coefficient, flat output index)` of every output answer (`tile`, `group`) carries.
    pub fn reads(&self, tile: usize, group: usize) -> Vec<(usize, usize)> {
        let g = &self.geom;
        let s = g.stride;
        let (ho, wo) = g.out_hw();
        let mut out = Vec::new();
        for mi in 0..self.m {
            let o = group * self.m + mi;
            if o >= g.o {
                break;
            }
            for r in 0..self.tile_rows {
                let row = tile * self.tile_rows + r;
                if row >= self.rows1 || !row.is_multiple_of(s) {
                    continue;
                }
                for j in (0..self.cols1).step_by(s) {
                    let coef = mi * self.cb * self.plane + self.offset + r * self.wp + j;
                    out.push((coef, (o * ho + row / s) * wo + j / s));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::Ring;

    /// The negacyclic product of the encoded input and weights, read at [`Layout::reads`], is the
    /// convolution (the plaintext identity behind HomConv), for odd shapes, strides, 1x1 kernels,
    /// several tiles and a fully connected layer.
    #[test]
    fn encoded_product_is_the_convolution() {
        use rand::{Rng, SeedableRng};
        let ctx = HeContext::new(
            super::super::params::HeParams {
                degree: 1024,
                kept: 1,
                kept_bits: 27,
                extra: 0,
                extra_bits: 27,
                weight_bits: 1,
                flood_bits: 40,
                security: 128,
            },
            &Ring::default(),
        );
        // Noise never fits at these toy sizes; test the layout arithmetic alone.
        let ctx = match ctx {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for geom in [
            Geometry {
                c: 3,
                h: 5,
                w: 6,
                o: 4,
                k: 3,
                stride: 1,
                pad: 1,
                depthwise: false,
            },
            Geometry {
                c: 5,
                h: 7,
                w: 7,
                o: 3,
                k: 3,
                stride: 2,
                pad: 1,
                depthwise: false,
            },
            Geometry {
                c: 4,
                h: 6,
                w: 6,
                o: 5,
                k: 1,
                stride: 2,
                pad: 0,
                depthwise: false,
            },
            Geometry {
                c: 2,
                h: 40,
                w: 30,
                o: 2,
                k: 3,
                stride: 1,
                pad: 1,
                depthwise: false,
            },
            Geometry {
                c: 37,
                h: 1,
                w: 1,
                o: 9,
                k: 1,
                stride: 1,
                pad: 0,
                depthwise: false,
            },
            Geometry {
                c: 7,
                h: 5,
                w: 4,
                o: 7,
                k: 1,
                stride: 1,
                pad: 0,
                depthwise: true,
            },
        ] {
            let n = ctx.degree();
            let wp = geom.w + 2 * geom.pad;
            let max_rows = n / wp - (geom.k - 1);
            let rows1 = geom.h + 2 * geom.pad - geom.k + 1;
            let tiles = rows1.div_ceil(max_rows);
            let tile_rows = rows1.div_ceil(tiles);
            let plane = (tile_rows + geom.k - 1) * wp;
            let fit = n / plane;
            let pairs = if geom.depthwise {
                let r = (fit as f64).sqrt() as usize;
                vec![(1, 1), (2, 2), (r.min(geom.c), r.min(geom.c))]
            } else {
                vec![
                    (1, 1),
                    (fit.min(geom.c), 1),
                    (1, fit.min(geom.o)),
                    (2.min(fit), (fit / 2).max(1)),
                ]
            };
            for (cb, m) in pairs {
                let l = Layout::with(geom, &ctx, tiles, tile_rows, plane, cb, m);
                let x: Vec<u64> = (0..geom.c * geom.h * geom.w)
                    .map(|_| rng.gen_range(0..50))
                    .collect();
                let w: Vec<i64> = (0..geom.o * geom.fan_in())
                    .map(|_| rng.gen_range(-9..10))
                    .collect();
                let wu: Vec<u64> = w.iter().map(|&v| v as u64).collect();
                let (ho, wo) = geom.out_hw();
                let want = if geom.depthwise {
                    let plane = geom.h * geom.w;
                    (0..x.len())
                        .map(|i| wu[i / plane].wrapping_mul(x[i]))
                        .collect()
                } else {
                    crate::linalg::conv2d(
                        &x,
                        [geom.c, geom.h, geom.w],
                        &wu,
                        [geom.o, ho, wo],
                        geom.stride,
                        geom.pad,
                    )
                };
                let mut got = vec![0u64; want.len()];
                let mut seen = vec![false; want.len()];
                for t in 0..l.tiles {
                    for gr in 0..l.groups {
                        let mut acc = vec![0i64; n];
                        for b in l.blocks_of(gr) {
                            let xi = l.encode_input(&x, t, b);
                            let wi = l.encode_weights(&w, gr, b);
                            for (i, &a) in xi.iter().enumerate() {
                                if a == 0 {
                                    continue;
                                }
                                for (j, &bv) in wi.iter().enumerate() {
                                    if bv == 0 {
                                        continue;
                                    }
                                    let p = a as i64 * bv;
                                    if i + j < n {
                                        acc[i + j] += p
                                    } else {
                                        acc[i + j - n] -= p
                                    }
                                }
                            }
                        }
                        for (coef, flat) in l.reads(t, gr) {
                            assert!(!seen[flat], "{geom:?} output {flat} read twice");
                            seen[flat] = true;
                            got[flat] = acc[coef] as u64;
                        }
                    }
                }
                assert!(
                    seen.iter().all(|&s| s),
                    "{geom:?} cb {cb} m {m}: an output is never read"
                );
                assert_eq!(got, want, "{geom:?} cb {cb} m {m}");
            }
        }
    }
}
