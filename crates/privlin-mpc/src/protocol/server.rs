//! The server: holds the fixed-point model, garbles, evaluates weight layers on its shares.

use super::argmax::{self, ArgmaxDims};
use super::linear::LinearOffline;
use super::policy::{check_wrap, Options, OutputMode, Party};
use super::{
    circuit_inputs, garbled, garbled_site, op_label, ot_rounds, Hello, SiteDims, CMD_BYE,
    CMD_INFER, CMD_PRECOMPUTE,
};
use crate::error::{MpcError, Result};
use crate::gc::FixedKeyHash;
use crate::linalg;
use crate::model::{input_shift, Op, QuantModel};
use crate::net::{Channel, Expect};
use crate::nonlinear::{ot_relu, Nonlinear};
use crate::ot::{iknp, silent};
use crate::wire::{bits_bytes, ring_vec_bytes, Block, Reader, Writer};
use rand::Rng;
use rand_chacha::ChaCha12Rng;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Offline state of one inference.
struct Offline {
    /// `s` per weight layer.
    s: HashMap<usize, Vec<u64>>,
    /// Per garbled layer (site or max-pool): zero-labels of the server's input bits and
    /// decoding bits (packed, eight to a byte: they wait in the pool).
    sites: HashMap<usize, (Vec<Block>, PackedBits)>,
    /// Class output: zero-labels of the server's logit-share bits.
    argmax: Option<Vec<Block>>,
    /// Per site or max-pool on OT ([`ot_rounds`]): one offline state per round.
    ot: HashMap<usize, Vec<ot_relu::ServerSite>>,
    /// The class output on OT: one site per round of its tree.
    ot_argmax: Option<Vec<ot_relu::ServerSite>>,
    /// Per site under faithful truncation: the truncation of its identity positions.
    ot_trunc: HashMap<usize, ot_relu::ServerSite>,
}

/// Bits kept eight to a byte.
struct PackedBits {
    bytes: Vec<u8>,
    len: usize,
}

impl PackedBits {
    fn pack(bits: &[bool]) -> Self {
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (j, &b) in bits.iter().enumerate() {
            bytes[j / 8] |= (b as u8) << (j % 8);
        }
        PackedBits {
            bytes,
            len: bits.len(),
        }
    }

    fn unpack(&self) -> Vec<bool> {
        (0..self.len)
            .map(|j| self.bytes[j / 8] >> (j % 8) & 1 == 1)
            .collect()
    }
}

/// What one request of a session did (for the service's log line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Request {
    /// An inference; `pooled`: its offline phase had been precomputed (else it ran inline,
    /// `offline_s`).
    Infer {
        pooled: bool,
        offline_s: f64,
        online_s: f64,
        bytes: u64,
    },
    /// An offline phase run ahead and added to the session's pool.
    Precompute { offline_s: f64, bytes: u64 },
}

pub struct Server {
    /// Shared by every session of a service ([`super::service`]), not copied per session.
    model: std::sync::Arc<QuantModel>,
    ch: Channel,
    rng: ChaCha12Rng,
    ot: iknp::Sender,
    /// Sites on OT: the silent OT extension's sender (to the client) and receiver (from it).
    silent: Option<(silent::Sender, silent::Receiver)>,
    nonlinear: Nonlinear,
    truncation: super::Truncation,
    linear: Box<dyn LinearOffline>,
    delta: Block,
    hash: FixedKeyHash,
    gate: u64,
    output: OutputMode,
    /// Precomputed offline phases, oldest first, and how many the session may hold.
    pool: VecDeque<Offline>,
    max_pool: usize,
}

impl Server {
    /// Sends the hello (architecture, ring, output mode, offline mode) and runs the base OTs and
    /// the offline backend's setup; weight layers' offline correlations from `opts.offline` (HE
    /// by default). Refuses a ring at which local truncation fails too often for the model
    /// ([`check_wrap`]) and HE parameters that do not hold for it before anything is sent.
    pub fn start(
        model: impl Into<std::sync::Arc<QuantModel>>,
        ch: Channel,
        opts: &Options,
    ) -> Result<Self> {
        Self::start_with(model, ch, opts, opts.offline.backend())
    }

    /// [`Server::start`] with another offline backend for the weight layers (e.g. homomorphic
    /// encryption); its label is announced in the hello, and the client must run the same one.
    pub fn start_with(
        model: impl Into<std::sync::Arc<QuantModel>>,
        mut ch: Channel,
        opts: &Options,
        mut linear: Box<dyn LinearOffline>,
    ) -> Result<Self> {
        let model: std::sync::Arc<QuantModel> = model.into();
        check_wrap(&model.arch, &model.ring, opts.max_wrap_log2)?;
        // `auto`: the family the cost model prefers for this model under the wan profile.
        let opts = &opts.with_nonlinear(crate::cost::resolve_nonlinear(
            &model.arch,
            &model.ring,
            opts,
        )?);
        if opts.truncation == super::Truncation::Faithful
            && !matches!(opts.nonlinear, Nonlinear::Ot { .. })
        {
            return Err(MpcError::Params(format!(
                "faithful truncation runs on the OT comparison (--nonlinear ot), not `{}`",
                opts.nonlinear.name()
            )));
        }
        linear.prepare_server(&model, opts)?;
        let mut rng = opts.randomness.rng(Party::Server);
        ch.phase("setup");
        let hello = Hello {
            ring: model.ring,
            offline: linear.label(),
            output: opts.output,
            nonlinear: opts.nonlinear,
            max_pool: opts.limits.max_pool.min(u32::MAX as usize) as u32,
            truncation: opts.truncation,
            arch: model.arch.clone(),
        };
        ch.send(hello.encode())?;
        let ot = iknp::Sender::setup(&mut ch, &mut rng)?;
        linear.setup_server(&mut ch)?;
        let silent = match opts.nonlinear {
            Nonlinear::Ot { .. } => Some((
                silent::Sender::setup(&mut ch, &mut rng)?,
                silent::Receiver::setup(&mut ch, &mut rng)?,
            )),
            _ => None,
        };
        let delta = rng.gen::<u128>() | 1;
        Ok(Server {
            model,
            ch,
            rng,
            ot,
            silent,
            nonlinear: opts.nonlinear,
            truncation: opts.truncation,
            linear,
            delta,
            hash: FixedKeyHash::new(0),
            gate: 0,
            output: opts.output,
            pool: VecDeque::new(),
            max_pool: opts.limits.max_pool,
        })
    }

    pub fn channel(&mut self) -> &mut Channel {
        &mut self.ch
    }

    /// Serves inferences until the client says goodbye; returns how many.
    pub fn serve(&mut self) -> Result<usize> {
        let mut n = 0;
        while let Some(r) = self.serve_request()? {
            n += matches!(r, Request::Infer { .. }) as usize;
        }
        Ok(n)
    }

    /// Serves one request; `false` when the client closed the session.
    pub fn serve_one(&mut self) -> Result<bool> {
        Ok(self.serve_request()?.is_some())
    }

    /// Precomputed offline phases this session holds.
    pub fn pooled(&self) -> usize {
        self.pool.len()
    }

    /// Serves one request (an inference, or an offline phase ahead); `None` when the client
    /// closed the session.
    pub fn serve_request(&mut self) -> Result<Option<Request>> {
        self.ch.phase("offline/command");
        let before = self.ch.meter.total("").bytes();
        let msg = self.ch.recv("command", Expect::Exact(1))?;
        let t0 = Instant::now();
        // Bytes of the request both ways, its command included.
        let bytes = |ch: &Channel| ch.meter.total("").bytes() - before;
        match msg.as_slice() {
            [CMD_INFER] => {
                let (off, pooled) = match self.pool.pop_front() {
                    Some(off) => (off, true),
                    None => (self.offline()?, false),
                };
                let offline_s = t0.elapsed().as_secs_f64();
                self.online(off)?;
                Ok(Some(Request::Infer {
                    pooled,
                    offline_s,
                    online_s: t0.elapsed().as_secs_f64() - offline_s,
                    bytes: bytes(&self.ch),
                }))
            }
            [CMD_PRECOMPUTE] => {
                if self.pool.len() >= self.max_pool {
                    return Err(MpcError::Protocol(format!(
                        "the client asked for more than {} precomputed offline phases",
                        self.max_pool
                    )));
                }
                let off = self.offline()?;
                self.pool.push_back(off);
                Ok(Some(Request::Precompute {
                    offline_s: t0.elapsed().as_secs_f64(),
                    bytes: bytes(&self.ch),
                }))
            }
            [CMD_BYE] => Ok(None),
            other => Err(MpcError::malformed(
                "command",
                format!("unknown command {other:?}"),
            )),
        }
    }

    fn offline(&mut self) -> Result<Offline> {
        let arch = self.model.arch.clone();
        let ring = self.model.ring;
        let mut off = Offline {
            s: HashMap::new(),
            sites: HashMap::new(),
            argmax: None,
            ot: HashMap::new(),
            ot_argmax: None,
            ot_trunc: HashMap::new(),
        };
        for (i, op) in arch.ops().iter().enumerate() {
            match op {
                Op::Conv { .. } | Op::Linear { .. } | Op::ChannelAffine { .. } => {
                    self.ch.phase(format!("offline/{}", op_label(&arch, i)));
                    let s = self
                        .linear
                        .server(&mut self.ch, &self.model, i, &mut self.rng)?;
                    off.s.insert(i, s);
                }
                Op::Relu { .. } | Op::MaxPool { .. } => {
                    let scales = &self.model.scales;
                    // Faithful truncation: the identity positions' site first.
                    if let Some(shape) = super::ot_truncation(
                        &arch,
                        scales,
                        &ring,
                        self.nonlinear,
                        self.truncation,
                        i,
                    )? {
                        self.ch.phase(format!("offline/{}", op_label(&arch, i)));
                        let (tx, rx) = self.silent.as_mut().expect("set up for OT sites");
                        let site =
                            ot_relu::server_offline(&mut self.ch, tx, rx, &mut self.rng, shape)?;
                        off.ot_trunc.insert(i, site);
                    }
                    if let Some(rounds) = ot_rounds(&arch, scales, &ring, self.nonlinear, i)? {
                        self.ch.phase(format!("offline/{}", op_label(&arch, i)));
                        let (tx, rx) = self.silent.as_mut().expect("set up for OT sites");
                        let sites = crate::nonlinear::ot_pool::server_offline(
                            &mut self.ch,
                            tx,
                            rx,
                            &mut self.rng,
                            rounds,
                        )?;
                        off.ot.insert(i, sites);
                        continue;
                    }
                    let Some(d) = garbled_site(&arch, scales, &ring, self.nonlinear, i) else {
                        continue;
                    };
                    self.ch.phase(format!("offline/{}", op_label(&arch, i)));
                    let zero_c = self
                        .ot
                        .extend(&mut self.ch, d.n * d.client_bits(), self.delta)?;
                    let zero_s: Vec<Block> =
                        (0..d.n * d.server_bits()).map(|_| self.rng.gen()).collect();
                    let gate0 = self.gate;
                    self.gate += (d.n * d.ands) as u64;
                    let (tables, decode) =
                        garbled::garble(&self.hash, self.delta, gate0, &d, &zero_s, &zero_c);
                    let mut w = Writer::with_capacity(tables.len() * 16 + 16);
                    w.blocks(&tables);
                    self.ch.send(w.finish())?;
                    off.sites.insert(i, (zero_s, PackedBits::pack(&decode)));
                }
                _ => {}
            }
        }
        if let Some(shapes) = super::ot_argmax(&arch, &ring, self.nonlinear, self.output)? {
            self.ch.phase("offline/argmax");
            let (tx, rx) = self.silent.as_mut().expect("set up for OT sites");
            off.ot_argmax = Some(crate::nonlinear::ot_pool::server_offline(
                &mut self.ch,
                tx,
                rx,
                &mut self.rng,
                shapes,
            )?);
        } else if self.output == OutputMode::Class {
            if let Some(d) = ArgmaxDims::new(arch.json.classes, &ring) {
                self.ch.phase("offline/argmax");
                let zero_c = self.ot.extend(&mut self.ch, d.input_bits(), self.delta)?;
                let zero_s: Vec<Block> = (0..d.input_bits()).map(|_| self.rng.gen()).collect();
                let t = argmax::garble(&self.hash, self.delta, self.gate, &d, &zero_s, &zero_c);
                self.gate += d.ands as u64;
                self.ch.send(t.encode())?;
                off.argmax = Some(zero_s);
            }
        }
        // Every offline phase starts from empty silent-OT pools (its traffic is public).
        if let Some((tx, rx)) = self.silent.as_mut() {
            tx.discard();
            rx.discard();
        }
        Ok(off)
    }

    /// Online round of garbled layer `i`: sends the labels of the server's circuit inputs `x`
    /// (its shares), receives the output permute bits and decodes its new shares.
    fn garbled_online(&mut self, i: usize, off: &mut Offline, x: &[u64]) -> Result<Vec<u64>> {
        let arch = &self.model.arch;
        let d = SiteDims::of(arch, &self.model.scales, &self.model.ring, i).expect("garbled");
        self.ch.phase(format!("online/{}", op_label(arch, i)));
        let (zero_s, decode) = off.sites.remove(&i).expect("offline ran");
        let labels = garbled::encode(&zero_s, self.delta, x, d.w);
        let mut w = Writer::with_capacity(labels.len() * 16 + 16);
        w.blocks(&labels);
        self.ch.send(w.finish())?;
        let msg = self
            .ch
            .recv("circuit outputs", Expect::Exact(bits_bytes(d.n * d.l)))?;
        let mut r = Reader::new(&msg, "circuit outputs");
        let bits = r.bits_n(d.n * d.l, "output bits")?;
        r.end()?;
        Ok(garbled::decode(&bits, &decode.unpack(), d.l))
    }

    fn online(&mut self, mut off: Offline) -> Result<()> {
        let arch = self.model.arch.clone();
        let ring = self.model.ring;
        self.ch.phase("online/input");
        let n0 = arch.numel(0);
        let msg = self
            .ch
            .recv("masked input", Expect::Exact(ring_vec_bytes(n0, ring.bits)))?;
        let mut r = Reader::new(&msg, "masked input");
        let x = r.ring_vec_n(ring.bits, n0, "input")?;
        r.end()?;
        let mut vals: Vec<Vec<u64>> = vec![x];
        for (i, op) in arch.ops().iter().enumerate() {
            let out = match op {
                Op::Conv { .. } | Op::Linear { .. } | Op::ChannelAffine { .. } => {
                    let x = &vals[op.inputs()[0]];
                    // A channel affine reads its input truncated to scale f (locally, the half
                    // unit for rounding in the server's share).
                    let shift = input_shift(&arch, &self.model.scales, &ring, i);
                    let truncated: Vec<u64>;
                    let x = if shift > 0 {
                        let half = ring.half(shift);
                        truncated = x
                            .iter()
                            .map(|&v| {
                                ring.truncate_share_server(ring.reduce(v.wrapping_add(half)), shift)
                            })
                            .collect();
                        &truncated
                    } else {
                        x
                    };
                    let y = linalg::weight_layer(&arch, &ring, i, &self.model.layers[&i], x, true);
                    let s = off.s.remove(&i).expect("offline ran");
                    y.iter()
                        .zip(&s)
                        .map(|(&a, &b)| ring.reduce(a.wrapping_add(b)))
                        .collect()
                }
                Op::MaxPool { input, kernel, .. } => {
                    let x = circuit_inputs(&arch, i, &vals[*input]);
                    match off.ot.remove(&i) {
                        Some(sites) => {
                            self.ch.phase(format!("online/{}", op_label(&arch, i)));
                            crate::nonlinear::ot_pool::server_online(
                                &mut self.ch,
                                sites,
                                &x,
                                kernel * kernel,
                                &ring,
                            )?
                        }
                        None => self.garbled_online(i, &mut off, &x)?,
                    }
                }
                Op::AvgPool {
                    input,
                    kernel,
                    stride,
                } => {
                    let s = &arch.shapes[*input];
                    linalg::sum_pool(&vals[*input], [s[0], s[1], s[2]], *kernel, *stride, &ring)
                }
                Op::Concat { inputs } => {
                    let s = self.model.scales[i + 1];
                    let parts: Vec<(&[u64], u32)> = inputs
                        .iter()
                        .map(|&v| (vals[v].as_slice(), s - self.model.scales[v]))
                        .collect();
                    linalg::concat_aligned(&parts, &ring)
                }
                Op::Add { inputs: [a, b] } => {
                    let s = self.model.scales[i + 1];
                    linalg::add_aligned(
                        &vals[*a],
                        s - self.model.scales[*a],
                        &vals[*b],
                        s - self.model.scales[*b],
                        &ring,
                    )
                }
                Op::Relu { input, .. } => {
                    // The half unit that makes every truncation round to nearest goes into the
                    // server's share (plain::forward_with does the same on the value).
                    let shift = self.model.scales[*input] - ring.frac;
                    let half = ring.half(shift);
                    let y: Vec<u64> = vals[*input]
                        .iter()
                        .map(|&v| ring.reduce(v.wrapping_add(half)))
                        .collect();
                    let mut out: Vec<u64> = y
                        .iter()
                        .map(|&v| ring.truncate_share_server(v, shift))
                        .collect();
                    let z = if off.sites.contains_key(&i) {
                        let x = circuit_inputs(&arch, i, &y);
                        Some(self.garbled_online(i, &mut off, &x)?)
                    } else if let Some(mut sites) = off.ot.remove(&i) {
                        self.ch.phase(format!("online/{}", op_label(&arch, i)));
                        let x = circuit_inputs(&arch, i, &y);
                        let bounded = (sites.len() == 2).then(|| sites.pop()).flatten();
                        let site = sites.pop().expect("one OT site per ReLU site");
                        let z = ot_relu::server_online(&mut self.ch, site, &x)?;
                        match (bounded, op.relu_cap(ring.frac)) {
                            // min(ReLU(y) >> s, c) = (ReLU(y) >> s) - (ReLU(y - c 2^s) >> s):
                            // the bound subtracted from the server's share.
                            (Some(site), Some(cap)) => {
                                let c = cap << shift;
                                let xc: Vec<u64> =
                                    x.iter().map(|&v| ring.reduce(v.wrapping_sub(c))).collect();
                                let zc = ot_relu::server_online(&mut self.ch, site, &xc)?;
                                Some(
                                    z.iter()
                                        .zip(&zc)
                                        .map(|(&a, &b)| ring.reduce(a.wrapping_sub(b)))
                                        .collect(),
                                )
                            }
                            _ => Some(z),
                        }
                    } else {
                        None
                    };
                    for (&p, v) in arch.active[&i].iter().zip(z.into_iter().flatten()) {
                        out[p as usize] = v;
                    }
                    if let Some(site) = off.ot_trunc.remove(&i) {
                        self.ch.phase(format!("online/{}", op_label(&arch, i)));
                        let ids = super::identity_positions(&arch, i);
                        let x: Vec<u64> = ids.iter().map(|&p| y[p as usize]).collect();
                        let t = ot_relu::server_online(&mut self.ch, site, &x)?;
                        for (&p, v) in ids.iter().zip(t) {
                            out[p as usize] = v;
                        }
                    }
                    out
                }
            };
            vals.push(out);
        }
        let logits = vals.last().unwrap();
        if let Some(sites) = off.ot_argmax {
            self.ch.phase("online/argmax");
            return crate::nonlinear::ot_argmax::server_online(&mut self.ch, sites, logits, &ring);
        }
        match (self.output, off.argmax) {
            (OutputMode::Class, Some(zero_s)) => {
                // The labels of the server's logit shares; the client decodes only the class.
                self.ch.phase("online/argmax");
                let labels = garbled::encode(&zero_s, self.delta, logits, ring.bits as usize);
                let mut w = Writer::with_capacity(labels.len() * 16 + 16);
                w.blocks(&labels);
                self.ch.send(w.finish())
            }
            (OutputMode::Class, None) => Ok(()), // one class: nothing to reveal
            (OutputMode::Logits, _) => {
                self.ch.phase("online/output");
                let mut w = Writer::new();
                w.ring_vec(logits, ring.bits);
                self.ch.send(w.finish())
            }
        }
    }
}
