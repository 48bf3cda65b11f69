//! The client: holds the input, evaluates the garbled circuits, learns the logits.

use super::argmax::{self, ArgmaxDims, Tables};
use super::linear::LinearOffline;
use super::policy::{check_wrap, Footprint, Options, OutputMode, Party, MAX_HELLO_BYTES};
use super::{
    circuit_inputs, garbled, garbled_site, op_label, ot_rounds, Hello, SiteDims, CMD_BYE,
    CMD_INFER, CMD_PRECOMPUTE,
};
use crate::error::{MpcError, Result};
use crate::gc::circuit::bits;
use crate::gc::FixedKeyHash;
use crate::linalg;
use crate::model::{input_shift, value_scales, Arch, Op, QuantModel};
use crate::net::{Channel, Expect};
use crate::nonlinear::ot_relu;
use crate::ot::{iknp, silent};
use crate::ring::Ring;
use crate::wire::{blocks_bytes, ring_vec_bytes, Block, Reader, Writer};
use rand::Rng;
use rand_chacha::ChaCha12Rng;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The result of one private inference, as the client sees it.
#[derive(Debug, Clone)]
pub struct Inference {
    /// Logits in the ring, at the output scale ([`OutputMode::Logits`] only).
    pub raw: Option<Vec<u64>>,
    /// Decoded logits ([`OutputMode::Logits`] only).
    pub logits: Option<Vec<f64>>,
    pub class: usize,
    /// Seconds of the offline phase run inline (0 when it came from the pool).
    pub offline_s: f64,
    pub online_s: f64,
    /// The offline phase had been precomputed ([`Client::precompute`]).
    pub pooled: bool,
    /// The client's pre-activation share at every site and its input share at every truncating
    /// channel affine (kept when [`Client::record_shares`] is on, for tests that replay local
    /// truncation).
    pub site_shares: HashMap<usize, Vec<u64>>,
}

struct Offline {
    /// Client share of the input (`r_0`).
    r0: Vec<u64>,
    /// Client shares of the logits.
    out: Vec<u64>,
    /// Per garbled layer (site or max-pool): client input labels, tables, first gate.
    sites: HashMap<usize, (Vec<Block>, Vec<Block>, u64)>,
    /// Class output: the client's input labels, the tables and decoding bits, first gate.
    argmax: Option<(Vec<Block>, Tables, u64)>,
    /// Per site or max-pool on OT ([`ot_rounds`]): one offline state per round.
    ot: HashMap<usize, Vec<ot_relu::ClientSite>>,
    /// The class output on OT: its rounds and the client's share of the packed maximum.
    ot_argmax: Option<(Vec<ot_relu::ClientSite>, u64)>,
    /// Per site under faithful truncation: the truncation of its identity positions.
    ot_trunc: HashMap<usize, ot_relu::ClientSite>,
}

pub struct Client {
    pub hello: Hello,
    ch: Channel,
    rng: ChaCha12Rng,
    ot: iknp::Receiver,
    /// Sites on OT: the silent OT extension's receiver (from the server) and sender (to it).
    silent: Option<(silent::Receiver, silent::Sender)>,
    linear: Box<dyn LinearOffline>,
    hash: FixedKeyHash,
    gate: u64,
    scales: Vec<u32>,
    record: bool,
    /// Precomputed offline phases (with their recorded shares), oldest first.
    pool: VecDeque<(Offline, HashMap<usize, Vec<u64>>)>,
    max_pool: usize,
}

impl Client {
    /// Reads and validates the server's hello and runs the base OTs and the offline backend's
    /// setup; weight layers' offline correlations from `opts.offline` (HE by default), which must
    /// be what the server announces.
    pub fn connect(ch: Channel, opts: &Options) -> Result<Self> {
        Self::connect_with(ch, opts, opts.offline.backend())
    }

    /// [`Client::connect`] with another offline backend for the weight layers; it must be the
    /// one the server announces. The hello is read with a bound ([`MAX_HELLO_BYTES`]), and the
    /// architecture it announces is checked against `opts.limits` (elements, active ReLUs,
    /// offline material, MACs) and the wrap-failure bound before anything is sized from it.
    pub fn connect_with(
        mut ch: Channel,
        opts: &Options,
        mut linear: Box<dyn LinearOffline>,
    ) -> Result<Self> {
        let mut rng = opts.randomness.rng(Party::Client);
        ch.phase("setup");
        let hello = Hello::decode(&ch.recv("hello", Expect::AtMost(MAX_HELLO_BYTES))?)?;
        if hello.offline != linear.label() {
            return Err(MpcError::Protocol(format!(
                "the server computes weight layers' offline correlations with `{}`, this client with `{}`",
                hello.offline,
                linear.label()
            )));
        }
        // A client with `auto` follows the server's family.
        if opts.nonlinear != crate::nonlinear::Nonlinear::Auto && hello.nonlinear != opts.nonlinear
        {
            return Err(MpcError::Protocol(format!(
                "the server computes ReLUs with `{}`, this client with `{}`",
                hello.nonlinear.name(),
                opts.nonlinear.name()
            )));
        }
        let scales = value_scales(&hello.arch, &hello.ring)
            .map_err(|e| MpcError::malformed("hello", e.to_string()))?;
        Footprint::of(&hello.arch, &hello.ring)?.check(&opts.limits)?;
        check_wrap(&hello.arch, &hello.ring, opts.max_wrap_log2)?;
        // What the server's offline phase will send per inference, HE answers included, bounded
        // like the offline material (the cost model's exact message sizes).
        let session = Options {
            nonlinear: hello.nonlinear,
            output: hello.output,
            truncation: hello.truncation,
            ..*opts
        };
        let received = crate::cost::predicted_traffic(&hello.arch, &hello.ring, &session)?
            .total("offline/")
            .bytes_received;
        if received > opts.limits.max_offline_bytes {
            return Err(MpcError::Params(format!(
                "the model's offline phase sends this client {:.1} MB per inference (HE answers, \
                 OT and circuit material), above its limit of {:.1} MB",
                received as f64 / 1e6,
                opts.limits.max_offline_bytes as f64 / 1e6
            )));
        }
        linear.prepare_client(&hello.arch, &hello.ring, opts)?;
        let ot = iknp::Receiver::setup(&mut ch, &mut rng)?;
        linear.setup_client(&mut ch)?;
        let silent = match hello.nonlinear {
            crate::nonlinear::Nonlinear::Ot { .. } => Some((
                silent::Receiver::setup(&mut ch, &mut rng)?,
                silent::Sender::setup(&mut ch, &mut rng)?,
            )),
            _ => None,
        };
        let max_pool = hello.max_pool as usize;
        Ok(Client {
            hello,
            ch,
            rng,
            ot,
            silent,
            linear,
            hash: FixedKeyHash::new(0),
            gate: 0,
            scales,
            record: false,
            pool: VecDeque::new(),
            // This client's limit, and never more than the server keeps.
            max_pool: opts.limits.max_pool.min(max_pool),
        })
    }

    pub fn arch(&self) -> &Arch {
        &self.hello.arch
    }

    pub fn ring(&self) -> Ring {
        self.hello.ring
    }

    pub fn channel(&mut self) -> &mut Channel {
        &mut self.ch
    }

    /// Keep each site's client share in [`Inference::site_shares`].
    pub fn record_shares(&mut self, on: bool) {
        self.record = on;
    }

    /// Private inference of one normalized input `(C, H, W)`.
    pub fn infer(&mut self, x: &[f32]) -> Result<Inference> {
        let ring = self.ring();
        let enc = QuantModel::encode_input(&self.hello.arch, &ring, x)?;
        self.infer_encoded(&enc)
    }

    /// Private inference of an input already encoded at scale `f`.
    pub fn infer_encoded(&mut self, x: &[u64]) -> Result<Inference> {
        let ring = self.ring();
        if x.len() != self.hello.arch.numel(0) {
            return Err(MpcError::Params(format!(
                "input has {} values, expected {}",
                x.len(),
                self.hello.arch.numel(0)
            )));
        }
        let t0 = Instant::now();
        self.ch.phase("offline/command");
        self.ch.send(vec![CMD_INFER])?;
        // The server takes from its pool exactly when this client does.
        let (off, pooled) = match self.pool.pop_front() {
            Some(off) => (off, true),
            None => (self.offline()?, false),
        };
        let t1 = Instant::now();
        let (raw, class) = self.online(x, off.0)?;
        let online_s = t1.elapsed().as_secs_f64();
        let scale = *self.scales.last().unwrap();
        let logits: Option<Vec<f64>> = raw
            .as_ref()
            .map(|r| r.iter().map(|&v| ring.decode(v, scale)).collect());
        let class = match (&logits, class) {
            (Some(l), _) => crate::plain::argmax(l),
            (None, Some(c)) => c,
            (None, None) => 0, // a single class
        };
        Ok(Inference {
            raw,
            logits,
            class,
            offline_s: (t1 - t0).as_secs_f64(),
            online_s,
            pooled,
            site_shares: off.1,
        })
    }

    /// Runs one offline phase ahead (both parties keep it); the next inference uses the oldest
    /// one instead of running its own. Returns its seconds. At most `limits.max_pool` are held
    /// (the server enforces its own bound too).
    pub fn precompute(&mut self) -> Result<f64> {
        if self.pool.len() >= self.max_pool {
            return Err(MpcError::Params(format!(
                "{} precomputed offline phases already held (the limit: this client's and the \
                 server's, {} announced in its hello)",
                self.max_pool, self.hello.max_pool
            )));
        }
        let t0 = Instant::now();
        self.ch.phase("offline/command");
        self.ch.send(vec![CMD_PRECOMPUTE])?;
        let off = self.offline()?;
        self.pool.push_back(off);
        Ok(t0.elapsed().as_secs_f64())
    }

    /// Precomputed offline phases this session holds.
    pub fn pooled(&self) -> usize {
        self.pool.len()
    }

    /// Ends the session.
    pub fn close(mut self) -> Result<Channel> {
        self.ch.phase("close");
        self.ch.send(vec![CMD_BYE])?;
        Ok(self.ch)
    }

    /// Offline part of garbled layer `i` for the client's circuit inputs `x` (its shares): draws
    /// a fresh mask `r'` per circuit (the client's share of the output), obtains the labels of
    /// its input bits by OT and receives the tables. Returns the masks; `None` when the layer has
    /// no circuits.
    fn garbled_offline(
        &mut self,
        i: usize,
        x: &[u64],
        sites: &mut HashMap<usize, (Vec<Block>, Vec<Block>, u64)>,
    ) -> Result<Option<Vec<u64>>> {
        let arch = &self.hello.arch;
        let ring = self.hello.ring;
        let Some(d) = garbled_site(arch, &self.scales, &ring, self.hello.nonlinear, i) else {
            return Ok(None);
        };
        self.ch.phase(format!("offline/{}", op_label(arch, i)));
        let mut choices = Vec::with_capacity(d.n * d.client_bits());
        let mut masks = Vec::with_capacity(d.n);
        for window in x.chunks(d.window()) {
            let r: u64 = ring.reduce(self.rng.gen());
            for &v in window {
                choices.extend(bits(v, d.w));
            }
            choices.extend(bits(ring.reduce(r.wrapping_neg()), d.l));
            masks.push(r);
        }
        let labels = self.ot.extend(&mut self.ch, &choices)?;
        let msg = self.ch.recv(
            "garbled tables",
            Expect::Exact(blocks_bytes(d.n * 2 * d.ands)),
        )?;
        let mut rd = Reader::new(&msg, "garbled tables");
        let tables = rd.blocks_n(d.n * 2 * d.ands, "tables")?;
        rd.end()?;
        sites.insert(i, (labels, tables, self.gate));
        self.gate += (d.n * d.ands) as u64;
        Ok(Some(masks))
    }

    /// The client's offline phase of one OT site of op `i` (active ReLUs, or the identity
    /// positions under faithful truncation) on its shares `x`.
    fn ot_site_offline(
        &mut self,
        arch: &crate::model::Arch,
        i: usize,
        shape: ot_relu::Shape,
        x: &[u64],
    ) -> Result<ot_relu::ClientSite> {
        self.ch.phase(format!("offline/{}", op_label(arch, i)));
        let (rx, tx) = self.silent.as_mut().expect("set up for OT sites");
        ot_relu::client_offline(&mut self.ch, rx, tx, &mut self.rng, shape, x)
    }

    fn offline(&mut self) -> Result<(Offline, HashMap<usize, Vec<u64>>)> {
        let arch = self.hello.arch.clone();
        let ring = self.ring();
        let rng = &mut self.rng;
        let r0: Vec<u64> = (0..arch.numel(0)).map(|_| ring.reduce(rng.gen())).collect();
        let mut cs: Vec<Vec<u64>> = vec![r0.clone()];
        let mut sites = HashMap::new();
        let mut ot = HashMap::new();
        let mut ot_trunc = HashMap::new();
        let mut shares = HashMap::new();
        for (i, op) in arch.ops().iter().enumerate() {
            let out = match op {
                Op::Conv { .. } | Op::Linear { .. } | Op::ChannelAffine { .. } => {
                    self.ch.phase(format!("offline/{}", op_label(&arch, i)));
                    let x = &cs[op.inputs()[0]];
                    // A channel affine reads its input truncated to scale f, locally.
                    let shift = input_shift(&arch, &self.scales, &ring, i);
                    let truncated: Vec<u64>;
                    let x = if shift > 0 {
                        if self.record {
                            shares.insert(i, x.clone());
                        }
                        truncated = x
                            .iter()
                            .map(|&v| ring.truncate_share_client(v, shift))
                            .collect();
                        &truncated
                    } else {
                        x
                    };
                    self.linear.client(&mut self.ch, &arch, &ring, i, x)?
                }
                Op::MaxPool { input, kernel, .. } => {
                    let x = circuit_inputs(&arch, i, &cs[*input]);
                    match ot_rounds(&arch, &self.scales, &ring, self.hello.nonlinear, i)? {
                        Some(shapes) => {
                            self.ch.phase(format!("offline/{}", op_label(&arch, i)));
                            let (rx, tx) = self.silent.as_mut().expect("set up for OT sites");
                            let (pool, out) = crate::nonlinear::ot_pool::client_offline(
                                &mut self.ch,
                                rx,
                                tx,
                                &mut self.rng,
                                shapes,
                                &x,
                                kernel * kernel,
                            )?;
                            ot.insert(i, pool);
                            out
                        }
                        None => self
                            .garbled_offline(i, &x, &mut sites)?
                            .expect("a max-pool has circuits"),
                    }
                }
                Op::AvgPool {
                    input,
                    kernel,
                    stride,
                } => {
                    let s = &arch.shapes[*input];
                    linalg::sum_pool(&cs[*input], [s[0], s[1], s[2]], *kernel, *stride, &ring)
                }
                Op::Concat { inputs } => {
                    let s = self.scales[i + 1];
                    let parts: Vec<(&[u64], u32)> = inputs
                        .iter()
                        .map(|&v| (cs[v].as_slice(), s - self.scales[v]))
                        .collect();
                    linalg::concat_aligned(&parts, &ring)
                }
                Op::Add { inputs: [a, b] } => {
                    let s = self.scales[i + 1];
                    linalg::add_aligned(
                        &cs[*a],
                        s - self.scales[*a],
                        &cs[*b],
                        s - self.scales[*b],
                        &ring,
                    )
                }
                Op::Relu { input, .. } => {
                    let shift = self.scales[*input] - ring.frac;
                    let y = &cs[*input];
                    let mut out: Vec<u64> = y
                        .iter()
                        .map(|&v| ring.truncate_share_client(v, shift))
                        .collect();
                    let nl = self.hello.nonlinear;
                    // Faithful truncation: the identity positions' site first (as the server).
                    let tr = self.hello.truncation;
                    if let Some(shape) =
                        super::ot_truncation(&arch, &self.scales, &ring, nl, tr, i)?
                    {
                        let ids = super::identity_positions(&arch, i);
                        let xi: Vec<u64> = ids.iter().map(|&p| y[p as usize]).collect();
                        let site = self.ot_site_offline(&arch, i, shape, &xi)?;
                        for (&p, &v) in ids.iter().zip(&site.out) {
                            out[p as usize] = v;
                        }
                        ot_trunc.insert(i, site);
                    }
                    let x = circuit_inputs(&arch, i, y);
                    let rounds = ot_rounds(&arch, &self.scales, &ring, nl, i)?;
                    let masks = if let Some(shapes) = rounds {
                        // One OT site, or two for a bounded site (the second on the values
                        // less the bound: the client's shares are the same).
                        let mut done = Vec::new();
                        for shape in shapes {
                            done.push(self.ot_site_offline(&arch, i, shape, &x)?);
                        }
                        let r: Vec<u64> = match &done[..] {
                            [a, b] => a
                                .out
                                .iter()
                                .zip(&b.out)
                                .map(|(&u, &v)| ring.reduce(u.wrapping_sub(v)))
                                .collect(),
                            _ => done[0].out.clone(),
                        };
                        ot.insert(i, done);
                        Some(r)
                    } else {
                        self.garbled_offline(i, &x, &mut sites)?
                    };
                    if let Some(r) = masks {
                        for (&p, v) in arch.active[&i].iter().zip(r) {
                            out[p as usize] = v;
                        }
                    }
                    if self.record {
                        shares.insert(i, y.clone());
                    }
                    out
                }
            };
            cs.push(out);
        }
        let out = cs.pop().unwrap();
        let mut argmax = None;
        let mut ot_argmax = None;
        let nl = self.hello.nonlinear;
        if let Some(shapes) = super::ot_argmax(&arch, &ring, nl, self.hello.output)? {
            self.ch.phase("offline/argmax");
            let (rx, tx) = self.silent.as_mut().expect("set up for OT sites");
            ot_argmax = Some(crate::nonlinear::ot_argmax::client_offline(
                &mut self.ch,
                rx,
                tx,
                &mut self.rng,
                shapes,
                &out,
            )?);
        } else if self.hello.output == OutputMode::Class {
            if let Some(d) = ArgmaxDims::new(arch.json.classes, &ring) {
                self.ch.phase("offline/argmax");
                let choices: Vec<bool> = out.iter().flat_map(|&v| bits(v, d.l)).collect();
                let labels = self.ot.extend(&mut self.ch, &choices)?;
                let msg = self.ch.recv(
                    "argmax tables",
                    Expect::Exact(Tables::size(d.ands, d.index_bits)),
                )?;
                let t = Tables::decode(&msg, d.ands, d.index_bits)?;
                argmax = Some((labels, t, self.gate));
                self.gate += d.ands as u64;
            }
        }
        // Every offline phase starts from empty silent-OT pools (its traffic is public).
        if let Some((rx, tx)) = self.silent.as_mut() {
            rx.discard();
            tx.discard();
        }
        Ok((
            Offline {
                r0,
                out,
                sites,
                argmax,
                ot,
                ot_argmax,
                ot_trunc,
            },
            shares,
        ))
    }

    /// Returns the logits ([`OutputMode::Logits`]) or the class ([`OutputMode::Class`]).
    fn online(&mut self, x: &[u64], mut off: Offline) -> Result<(Option<Vec<u64>>, Option<usize>)> {
        let arch = self.hello.arch.clone();
        let ring = self.ring();
        self.ch.phase("online/input");
        let masked: Vec<u64> = x
            .iter()
            .zip(&off.r0)
            .map(|(&a, &b)| ring.reduce(a.wrapping_sub(b)))
            .collect();
        let mut w = Writer::new();
        w.ring_vec(&masked, ring.bits);
        self.ch.send(w.finish())?;
        for i in 0..arch.ops().len() {
            if let Some(rounds) = off.ot.remove(&i) {
                self.ch.phase(format!("online/{}", op_label(&arch, i)));
                crate::nonlinear::ot_pool::client_online(&mut self.ch, rounds)?;
            }
            if let Some(site) = off.ot_trunc.remove(&i) {
                self.ch.phase(format!("online/{}", op_label(&arch, i)));
                ot_relu::client_online(&mut self.ch, site)?;
                continue;
            }
            let Some((lab_c, tables, gate0)) = off.sites.remove(&i) else {
                continue;
            };
            let d = SiteDims::of(&arch, &self.scales, &ring, i).expect("garbled layer");
            self.ch.phase(format!("online/{}", op_label(&arch, i)));
            let msg = self.ch.recv(
                "server labels",
                Expect::Exact(blocks_bytes(d.n * d.server_bits())),
            )?;
            let mut r = Reader::new(&msg, "server labels");
            let lab_s = r.blocks_n(d.n * d.server_bits(), "labels")?;
            r.end()?;
            let bits = garbled::evaluate(&self.hash, gate0, &d, &lab_s, &lab_c, &tables);
            let mut w = Writer::with_capacity(bits.len() / 8 + 16);
            w.bits(&bits);
            self.ch.send(w.finish())?;
        }
        if let Some((sites, share)) = off.ot_argmax {
            self.ch.phase("online/argmax");
            let class = crate::nonlinear::ot_argmax::client_online(
                &mut self.ch,
                sites,
                share,
                arch.json.classes,
            )?;
            return Ok((None, Some(class)));
        }
        if self.hello.output == OutputMode::Class {
            let Some((lab_c, tables, gate0)) = off.argmax else {
                return Ok((None, None));
            };
            let d = ArgmaxDims::new(arch.json.classes, &ring).expect("two or more classes");
            self.ch.phase("online/argmax");
            let msg = self
                .ch
                .recv("argmax labels", Expect::Exact(blocks_bytes(d.input_bits())))?;
            let mut r = Reader::new(&msg, "argmax labels");
            let lab_s = r.blocks_n(d.input_bits(), "labels")?;
            r.end()?;
            let class = argmax::evaluate(&self.hash, gate0, &d, &lab_s, &lab_c, &tables)?;
            return Ok((None, Some(class)));
        }
        self.ch.phase("online/output");
        let n = off.out.len();
        let msg = self
            .ch
            .recv("output share", Expect::Exact(ring_vec_bytes(n, ring.bits)))?;
        let mut r = Reader::new(&msg, "output share");
        let s = r.ring_vec_n(ring.bits, n, "logits")?;
        r.end()?;
        let raw = s
            .iter()
            .zip(&off.out)
            .map(|(&a, &b)| ring.reduce(a.wrapping_add(b)))
            .collect();
        Ok((Some(raw), None))
    }
}
