//! The weight layers' offline phase under homomorphic encryption (DELPHI, Mishra et al. 2020,
//! section 5, with Cheetah's coefficient encoding): per weight layer the client sends its mask
//! share `v_C` encrypted under its own key, the server answers `Enc(W v_C - s)` and keeps `s`.
//! Nothing the server receives depends on `v_C` or the secret key other than through RLWE
//! ciphertexts and a public key (`crates/privlin-mpc/tests/homomorphic.rs` inspects the channel).
//!
//! The scheme, the encoding and the parameter checks are in [`crate::he`]; this file runs the
//! messages. Randomness for the scheme comes from its own stream
//! ([`super::policy::Randomness::rng_for`]), so the masks `s` and the client's shares are those
//! the [`super::linear::Dealer`] would use for the same seeds, and both modes give the same outputs.

use super::linear::{draw_masks, LinearOffline};
use super::op_label;
use super::policy::{Options, Party};
use crate::error::{MpcError, Result};
use crate::he::scheme::{self, Ciphertext, PublicKey, SecretKey};
use crate::he::{codec, Geometry, HeContext, HeParams, Layout};
use crate::model::{Arch, Op, QuantModel};
use crate::net::{Channel, Expect};
use crate::ring::Ring;
use crate::wire::{Reader, Writer};
use fhe_math::rq::Poly;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rayon::prelude::*;
use std::collections::HashMap;

/// The HE backend of [`LinearOffline`].
pub struct HeOffline {
    params: HeParams,
    ctx: Option<HeContext>,
    layouts: HashMap<usize, Layout>,
    rng: Option<ChaCha12Rng>,
    sk: Option<SecretKey>,
    pk: Option<PublicKey>,
    /// The server's weight polynomials in NTT form: made at the session's set-up, or one
    /// [`WeightCache`] of the served model shared by every session ([`HeOffline::with_cache`]).
    cache: std::sync::Arc<WeightCache>,
    /// The cache came from outside (the service's), not built by this session.
    shared: bool,
    /// Server: how many later layers read each host layer's input ciphertexts, and those
    /// ciphertexts until the last of them has answered (within one offline phase).
    readers: HashMap<usize, usize>,
    held: HashMap<usize, (usize, std::sync::Arc<Vec<Ciphertext>>)>,
    /// Client: the fingerprint of the share each host layer encrypted, so that a layer reading
    /// its ciphertexts is given the same share (or refused).
    sent: HashMap<usize, u64>,
}

/// One model's weight polynomials in NTT form per `(op, group, block)` for the layers of
/// [`cached_layers`], with the fingerprint of each layer's weights. Immutable once built, so
/// the service builds it once per served model and every session reads it (`Arc`); it depends
/// on the model alone, never on a client's input.
#[derive(Default)]
pub struct WeightCache {
    polys: HashMap<(usize, usize, usize), Poly>,
    of: HashMap<usize, u64>,
    bytes: u64,
    /// The HE parameters it was built for.
    params: Option<HeParams>,
}

impl WeightCache {
    /// The cache of `model` under `params` within `budget` bytes; refuses, as a server's set-up
    /// does, a layer whose layout or noise cannot hold and a weight over the public bound (so the
    /// service runs these checks once at start-up by building it).
    pub fn build(model: &QuantModel, params: &HeParams, budget: u64) -> Result<Self> {
        let ctx = HeContext::new(*params, &model.ring)?;
        let layouts: HashMap<usize, Layout> = plan(&model.arch, &ctx)?.into_iter().collect();
        check_weight_bound(model, params, layouts.keys().copied())?;
        let keep = cached_layers(&layouts, &ctx, budget);
        let jobs: Vec<(usize, usize, usize)> = keep
            .iter()
            .flat_map(|&op| {
                let l = layouts[&op];
                (0..l.groups).flat_map(move |g| l.blocks_of(g).map(move |b| (op, g, b)))
            })
            .collect();
        let signed: HashMap<usize, Vec<i64>> = keep
            .iter()
            .map(|&op| (op, layer_weights(model, op, &layouts[&op])))
            .collect();
        let polys = jobs
            .into_par_iter()
            .map(|(op, g, b)| {
                let w = layouts[&op].encode_weights(&signed[&op], g, b);
                Ok(((op, g, b), scheme::weight_poly(&ctx, &w)?))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(WeightCache {
            bytes: polys.len() as u64 * weight_poly_bytes(&ctx),
            polys,
            of: keep
                .iter()
                .map(|&op| (op, fingerprint(&model.layers[&op].weight)))
                .collect(),
            params: Some(*params),
        })
    }

    /// Bytes of the polynomials it holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Weight layers it holds.
    pub fn layers(&self) -> usize {
        self.of.len()
    }

    /// Refuses `model` when a cached layer's weights differ from those its polynomials were made
    /// from (the cache belongs to one model).
    pub fn check(&self, model: &QuantModel) -> Result<()> {
        for (&op, &f) in &self.of {
            let same = model
                .layers
                .get(&op)
                .is_some_and(|l| fingerprint(&l.weight) == f);
            if !same {
                return Err(MpcError::Protocol(format!(
                    "weight layer `{}` differs from the weights its cached HE polynomials were \
                     made from: a cache serves the model it was built for",
                    op_label(&model.arch, op)
                )));
            }
        }
        Ok(())
    }
}

/// A fast fingerprint of a layer's weights (not cryptographic: it tells the cache that the
/// model it serves is not the one it was made from).
fn fingerprint(w: &[u64]) -> u64 {
    w.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &x| {
        (h ^ x).wrapping_mul(0x0100_0000_01b3).rotate_left(29)
    })
}

/// Bytes of one weight polynomial in NTT form (every prime of the full modulus, 8 bytes each).
pub fn weight_poly_bytes(ctx: &HeContext) -> u64 {
    (ctx.degree() * ctx.moduli.len() * 8) as u64
}

/// Weight polynomials of a layer: one per output group and input block (every spatial tile
/// multiplies the same ones).
pub fn layer_weight_polys(l: &Layout) -> usize {
    (0..l.groups).map(|g| l.blocks_of(g).len()).sum()
}

/// The weight layers whose weight polynomials the server encodes and transforms once per
/// session instead of at every inference (DELPHI and Cheetah precompute the server's plaintexts
/// per model): layers in order while their polynomials fit `budget` bytes. The cost model and
/// the backend both call this, so predictions and runs agree on which layers are cached.
pub fn cached_layers(
    plan: &HashMap<usize, Layout>,
    ctx: &HeContext,
    budget: u64,
) -> std::collections::BTreeSet<usize> {
    let mut ops: Vec<usize> = plan.keys().copied().collect();
    ops.sort_unstable();
    let mut used = 0u64;
    let mut out = std::collections::BTreeSet::new();
    for op in ops {
        let b = layer_weight_polys(&plan[&op]) as u64 * weight_poly_bytes(ctx);
        if used + b > budget {
            break;
        }
        used += b;
        out.insert(op);
    }
    out
}

/// Bytes the cache of [`cached_layers`] holds.
pub fn cache_bytes(plan: &HashMap<usize, Layout>, ctx: &HeContext, budget: u64) -> u64 {
    cached_layers(plan, ctx, budget)
        .iter()
        .map(|op| layer_weight_polys(&plan[op]) as u64 * weight_poly_bytes(ctx))
        .sum()
}

/// Layouts (and with them the noise bounds) of every weight layer of `arch`, refusing the first
/// whose noise cannot hold.
/// A convolution whose input tensor an earlier convolution of the plan also reads reuses that
/// layer's input ciphertexts where its geometry embeds ([`Layout::sharing`]).
pub fn plan(arch: &Arch, ctx: &HeContext) -> Result<Vec<(usize, Layout)>> {
    let mut out: Vec<(usize, Layout)> = Vec::new();
    for (i, op) in arch.ops().iter().enumerate() {
        if op.is_weight_layer() {
            let named = |e| match e {
                MpcError::Params(m) => {
                    MpcError::Params(format!("weight layer `{}`: {m}", op_label(arch, i)))
                }
                other => other,
            };
            let geom = Geometry::of(arch, i).map_err(named)?;
            let shared = match op {
                Op::Conv { input, .. } => {
                    out.iter().find_map(|&(h, ref hl)| match &arch.ops()[h] {
                        Op::Conv { input: hi, .. } if hi == input => {
                            Layout::sharing(hl, h, geom, ctx)
                        }
                        _ => None,
                    })
                }
                _ => None,
            };
            let l = match shared {
                Some(l) => l,
                None => Layout::choose(geom, ctx).map_err(named)?,
            };
            out.push((i, l));
        }
    }
    Ok(out)
}

/// The layers whose input ciphertexts a later layer reads, with how many read them.
fn hosts(layouts: &HashMap<usize, Layout>) -> HashMap<usize, usize> {
    let mut out = HashMap::new();
    for l in layouts.values() {
        if let Some(h) = l.host {
            *out.entry(h).or_insert(0) += 1;
        }
    }
    out
}

/// A layer's signed fixed-point weights in its layout's kernel ([`Layout::embed_weights`]).
fn layer_weights(model: &QuantModel, op: usize, l: &Layout) -> Vec<i64> {
    let ring = model.ring;
    let w: Vec<i64> = model.layers[&op]
        .weight
        .iter()
        .map(|&v| ring.signed(v))
        .collect();
    l.embed_weights(&w)
}

/// Refuses a model with a fixed-point weight at or above the public HE bound `2^weight_bits` in
/// any of the weight layers `ops` (the bound sizes the flooding noise).
pub fn check_weight_bound(
    model: &QuantModel,
    params: &HeParams,
    ops: impl Iterator<Item = usize>,
) -> Result<()> {
    let bound = 1u64 << params.weight_bits;
    for op in ops {
        let w = &model.layers[&op].weight;
        if let Some(big) = w
            .iter()
            .map(|&v| model.ring.signed(v))
            .find(|v| v.unsigned_abs() >= bound)
        {
            return Err(MpcError::Params(format!(
                "weight layer `{}` has a fixed-point weight {big}, not below the public HE \
                 weight bound 2^{} (raise the bound, e.g. --he-weight-bits)",
                op_label(&model.arch, op),
                params.weight_bits
            )));
        }
    }
    Ok(())
}

fn not_ready() -> MpcError {
    MpcError::Protocol("the HE backend ran before its session setup".into())
}

impl HeOffline {
    pub fn new(params: HeParams) -> Self {
        HeOffline {
            params,
            ctx: None,
            layouts: HashMap::new(),
            rng: None,
            sk: None,
            pk: None,
            cache: Default::default(),
            shared: false,
            readers: HashMap::new(),
            held: HashMap::new(),
            sent: HashMap::new(),
        }
    }

    /// A server backend that reads `cache` (built once for the served model, shared by every
    /// session) instead of building its own at set-up.
    pub fn with_cache(params: HeParams, cache: std::sync::Arc<WeightCache>) -> Self {
        HeOffline {
            cache,
            shared: true,
            ..Self::new(params)
        }
    }

    /// Refuses `model` when a cached layer's weights differ from those the cache was made from.
    pub fn check_cache(&self, model: &QuantModel) -> Result<()> {
        self.cache.check(model)
    }

    /// Bytes of weight polynomials this (server) backend reads from its cache.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.bytes()
    }

    fn prepare(&mut self, arch: &Arch, ring: &Ring, opts: &Options, party: Party) -> Result<()> {
        let ctx = HeContext::new(self.params, ring)?;
        self.layouts = plan(arch, &ctx)?.into_iter().collect();
        self.readers = hosts(&self.layouts);
        self.held.clear();
        self.sent.clear();
        self.ctx = Some(ctx);
        self.rng = Some(opts.randomness.rng_for(party, b"he"));
        Ok(())
    }

    fn parts(&mut self, op: usize) -> Result<(&HeContext, Layout, &mut ChaCha12Rng)> {
        let l = *self
            .layouts
            .get(&op)
            .ok_or_else(|| MpcError::Protocol(format!("op {op} has no HE layout")))?;
        match (&self.ctx, &mut self.rng) {
            (Some(c), Some(r)) => Ok((c, l, r)),
            _ => Err(not_ready()),
        }
    }
}

/// Bytes of the client's message for a layer: a seed and `c0` of every input polynomial.
fn query_len(ctx: &HeContext, l: &Layout) -> u64 {
    (8 + 32 + 8 + l.inputs() * codec::packed_len(ctx, ctx.moduli.len(), ctx.degree())) as u64
}

/// Payload bytes of a layer's messages: the client's query (none for a layer that reads its
/// host's ciphertexts) and the server's answers.
pub fn message_sizes(ctx: &HeContext, l: &Layout) -> (Option<u64>, u64) {
    let query = l.host.is_none().then(|| query_len(ctx, l));
    (query, 8 + answer_reads(ctx, l).1 as u64)
}

/// The coefficients each answer carries, and the answers' total bytes.
fn answer_reads(ctx: &HeContext, l: &Layout) -> (Vec<Vec<(usize, usize)>>, usize) {
    let reads: Vec<_> = (0..l.answers())
        .map(|i| l.reads(i / l.groups, i % l.groups))
        .collect();
    let total = reads.iter().map(|r| scheme::answer_len(ctx, r.len())).sum();
    (reads, total)
}

impl LinearOffline for HeOffline {
    fn label(&self) -> String {
        self.params.label()
    }

    fn prepare_server(&mut self, model: &QuantModel, opts: &Options) -> Result<()> {
        self.prepare(&model.arch, &model.ring, opts, Party::Server)?;
        check_weight_bound(model, &self.params, self.layouts.keys().copied())?;
        if self.shared {
            // The service's cache: it must be this model's, under these parameters.
            if self.cache.params != Some(self.params) {
                return Err(MpcError::Params(
                    "the shared HE weight cache was built under other HE parameters".into(),
                ));
            }
            self.cache.check(model)?;
        } else {
            // The weight polynomials of the layers that fit the budget, in NTT form, once.
            self.cache = std::sync::Arc::new(WeightCache::build(
                model,
                &self.params,
                opts.limits.he_cache_bytes,
            )?);
        }
        Ok(())
    }

    fn prepare_client(&mut self, arch: &Arch, ring: &Ring, opts: &Options) -> Result<()> {
        self.prepare(arch, ring, opts, Party::Client)
    }

    fn setup_client(&mut self, ch: &mut Channel) -> Result<()> {
        let (Some(ctx), Some(rng)) = (&self.ctx, &mut self.rng) else {
            return Err(not_ready());
        };
        let (sk, msg) = SecretKey::generate(ctx, rng)?;
        ch.send(msg)?;
        self.sk = Some(sk);
        Ok(())
    }

    fn setup_server(&mut self, ch: &mut Channel) -> Result<()> {
        let ctx = self.ctx.as_ref().ok_or_else(not_ready)?;
        let msg = ch.recv(
            "HE public key",
            Expect::Exact(scheme::public_key_len(ctx) as u64),
        )?;
        self.pk = Some(PublicKey::decode(ctx, &msg)?);
        Ok(())
    }

    fn client(
        &mut self,
        ch: &mut Channel,
        arch: &Arch,
        _ring: &Ring,
        op: usize,
        v_c: &[u64],
    ) -> Result<Vec<u64>> {
        let host = self.layouts.get(&op).and_then(|l| l.host);
        match host {
            Some(h) if self.sent.get(&h) != Some(&fingerprint(v_c)) => {
                return Err(MpcError::Protocol(format!(
                    "weight layer `{}` multiplies the ciphertexts of `{}` but was given another \
                     input share",
                    op_label(arch, op),
                    op_label(arch, h)
                )))
            }
            Some(_) => {}
            None if self.readers.contains_key(&op) => {
                self.sent.insert(op, fingerprint(v_c));
            }
            None => {}
        }
        let sk = self.sk.take().ok_or_else(not_ready)?;
        let res = (|| {
            let (ctx, l, rng) = self.parts(op)?;
            // A layer laid out on its host's input encoding sends nothing: the server multiplies
            // the ciphertexts of the host's query (the same tensor, the same share).
            if l.host.is_none() {
                let seed: [u8; 32] = rng.gen();
                let seeds: Vec<[u8; 32]> = (0..l.inputs()).map(|_| rng.gen()).collect();
                let cts = (0..l.inputs())
                    .into_par_iter()
                    .map(|i| {
                        let m = l.encode_input(v_c, i / l.blocks, i % l.blocks);
                        let mut r = ChaCha12Rng::from_seed(seeds[i]);
                        let mut out = Vec::new();
                        sk.encrypt(ctx, &m, scheme::seed_of(&seed, i), &mut r, &mut out)?;
                        Ok(out)
                    })
                    .collect::<Result<Vec<Vec<u8>>>>()?;
                let mut w = Writer::with_capacity(query_len(ctx, &l) as usize);
                w.bytes(&seed).bytes(&cts.concat());
                ch.send(w.finish())?;
            }

            let what = "HE answers";
            let (reads, total) = answer_reads(ctx, &l);
            let msg = ch.recv(what, Expect::Exact(8 + total as u64))?;
            let mut r = Reader::new(&msg, what);
            let blob = r.bytes()?;
            r.end()?;
            let c1 = codec::packed_len(ctx, ctx.params.kept as usize, ctx.degree());
            let mut at = 0;
            let mut spans = Vec::with_capacity(reads.len());
            for rd in &reads {
                let len = scheme::answer_len(ctx, rd.len());
                spans.push((at, at + c1, at + len));
                at += len;
            }
            let parts = reads
                .par_iter()
                .zip(&spans)
                .map(|(rd, &(a, b, c))| {
                    let coefs: Vec<usize> = rd.iter().map(|p| p.0).collect();
                    sk.decrypt(ctx, &blob[a..b], &blob[b..c], &coefs, what)
                })
                .collect::<Result<Vec<_>>>()?;
            let mut out = vec![0u64; arch.numel(op + 1)];
            for (rd, vals) in reads.iter().zip(parts) {
                for (&(_, flat), v) in rd.iter().zip(vals) {
                    out[flat] = v;
                }
            }
            Ok(out)
        })();
        self.sk = Some(sk);
        res
    }

    fn server(
        &mut self,
        ch: &mut Channel,
        model: &QuantModel,
        op: usize,
        rng: &mut ChaCha12Rng,
    ) -> Result<Vec<u64>> {
        if let Some(&f) = self.cache.of.get(&op) {
            if fingerprint(&model.layers[&op].weight) != f {
                self.cache.check(model)?;
            }
        }
        let s = draw_masks(model, op, rng);
        let pk = self.pk.take().ok_or_else(not_ready)?;
        let cache = self.cache.clone();
        let readers = self.readers.get(&op).copied().unwrap_or(0);
        let host = self.layouts.get(&op).and_then(|l| l.host);
        // The host's ciphertexts, released with their last reader.
        let hosted = match host {
            Some(h) => {
                let Some((left, cts)) = self.held.remove(&h) else {
                    self.pk = Some(pk);
                    return Err(MpcError::Protocol(format!(
                        "weight layer `{}` reads the input ciphertexts of `{}`, which this \
                         offline phase has not received",
                        op_label(&model.arch, op),
                        op_label(&model.arch, h)
                    )));
                };
                if left > 1 {
                    self.held.insert(h, (left - 1, cts.clone()));
                }
                Some(cts)
            }
            None => None,
        };
        let res: Result<std::sync::Arc<Vec<Ciphertext>>> = (|| {
            let (ctx, l, he_rng) = self.parts(op)?;
            let cts = match hosted {
                Some(cts) => cts,
                None => std::sync::Arc::new(receive_query(ch, ctx, &l)?),
            };
            let weights = layer_weights(model, op, &l);
            let flood = 2f64.powf(l.noise.flood_log2).ceil() as u128;
            let seeds: Vec<[u8; 32]> = (0..l.answers()).map(|_| he_rng.gen()).collect();
            let answers = (0..l.answers())
                .into_par_iter()
                .map(|i| {
                    let (t, g) = (i / l.groups, i % l.groups);
                    let blocks = l.blocks_of(g);
                    // Cached at set-up, or encoded and transformed now.
                    let owned: Vec<Poly> = if cache.polys.contains_key(&(op, g, blocks.start)) {
                        Vec::new()
                    } else {
                        blocks
                            .clone()
                            .map(|b| scheme::weight_poly(ctx, &l.encode_weights(&weights, g, b)))
                            .collect::<Result<Vec<_>>>()?
                    };
                    let ws: Vec<&Poly> = if owned.is_empty() {
                        blocks.clone().map(|b| &cache.polys[&(op, g, b)]).collect()
                    } else {
                        owned.iter().collect()
                    };
                    let cts_t: Vec<&Ciphertext> = blocks.map(|b| &cts[t * l.blocks + b]).collect();
                    let reads = l.reads(t, g);
                    let coefs: Vec<usize> = reads.iter().map(|p| p.0).collect();
                    let mask: Vec<u64> = reads.iter().map(|p| s[p.1]).collect();
                    let mut rng_t = ChaCha12Rng::from_seed(seeds[i]);
                    let mut out = Vec::with_capacity(scheme::answer_len(ctx, coefs.len()));
                    scheme::answer(
                        ctx, &pk, &cts_t, &ws, &coefs, &mask, flood, &mut rng_t, &mut out,
                    )?;
                    Ok(out)
                })
                .collect::<Result<Vec<_>>>()?;
            let mut w = Writer::new();
            w.bytes(&answers.concat());
            ch.send(w.finish())?;
            Ok(cts)
        })();
        self.pk = Some(pk);
        let cts = res?;
        if readers > 0 {
            self.held.insert(op, (readers, cts));
        }
        Ok(s)
    }
}

/// The server's side of a layer's query: the seed and `c0` of every input polynomial, each
/// checked and decoded into a ciphertext in NTT form.
fn receive_query(ch: &mut Channel, ctx: &HeContext, l: &Layout) -> Result<Vec<Ciphertext>> {
    let what = "HE ciphertexts";
    let msg = ch.recv(what, Expect::Exact(query_len(ctx, l)))?;
    let mut r = Reader::new(&msg, what);
    let seed: [u8; 32] = r
        .bytes()?
        .try_into()
        .map_err(|_| MpcError::malformed(what, "the seed is not 32 bytes"))?;
    let blob = r.bytes()?;
    r.end()?;
    let len = codec::packed_len(ctx, ctx.moduli.len(), ctx.degree());
    if blob.len() != l.inputs() * len {
        return Err(MpcError::malformed(
            what,
            format!(
                "{} bytes of ciphertexts, expected {}",
                blob.len(),
                l.inputs() * len
            ),
        ));
    }
    (0..l.inputs())
        .into_par_iter()
        .map(|i| {
            let c0 = &blob[i * len..(i + 1) * len];
            Ciphertext::decode(ctx, c0, scheme::seed_of(&seed, i), what)
        })
        .collect()
}
