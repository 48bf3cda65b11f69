//! The cost model: the exact message sequence of the protocol (so predicted bytes, messages and
//! flights can be compared with a [`Meter`] label by label), plus compute time from a calibration
//! measured on this machine, plus a network profile.

use crate::error::Result;
use crate::he::{HeContext, Layout};
use crate::model::{macs, Arch, Op};
use crate::net::{Meter, Profile, Traffic, HEADER};
use crate::nonlinear::Nonlinear;
use crate::ot::KAPPA;
use crate::protocol::argmax::{ArgmaxDims, Tables};
use crate::protocol::homomorphic;
use crate::protocol::{
    garbled_site, op_label, ot_rounds, ot_truncation, OfflineMode, Options, OutputMode,
};
use crate::ring::Ring;
use crate::wire::{bits_bytes, blocks_bytes, bytes_bytes, ring_vec_bytes};
use serde::{Deserialize, Serialize};

/// Per-operation compute speeds measured on this machine ([`crate::bench::calibrate`]); the
/// default is all zeros (bytes and flights only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Calibration {
    /// Ring multiply-accumulates of a weight layer, ns each (all threads).
    pub mac_ns: f64,
    /// Garbling, ns per AND gate (all threads).
    pub garble_and_ns: f64,
    /// Evaluation, ns per AND gate (all threads).
    pub eval_and_ns: f64,
    /// IKNP correlated OT, ns per OT, both parties together.
    pub ot_ns: f64,
    /// Online work per active ReLU outside the circuit (label selection, decoding, packing).
    pub relu_online_ns: f64,
    /// Element-wise work per output position of a layer (bias, masks, reduction, truncation).
    pub elem_ns: f64,
    /// Hand-over of one flight between the parties beyond the wire (wake-up, copies), measured as
    /// half a ping-pong of small messages on the in-memory channel.
    pub flight_ns: f64,
    /// Hand-over cost per byte (framing, copies, decoding into vectors), measured with large
    /// messages on the in-memory channel.
    pub byte_ns: f64,
    /// Measured seconds of each weight layer of the model at hand (op index -> s), which
    /// replaces `MACs * mac_ns` (small feature maps cost more per MAC than the calibration conv).
    pub layer_s: std::collections::BTreeMap<usize, f64>,
    /// Single-thread seconds of the HE offline phase's units ([`crate::he::speed`]).
    #[serde(default)]
    pub he: Option<crate::he::speed::HeSpeeds>,
    /// ReLUs on OT ([`crate::nonlinear::ot_relu`]): compute per active ReLU of the offline
    /// phase (random OTs, masks) and of the online phase (tables, selection), both parties
    /// together, ns, with the channel's hand-over of its flights and bytes taken out (charged
    /// again by [`phase_seconds`]). Zero when not measured.
    #[serde(default)]
    pub ot_relu_offline_ns: f64,
    #[serde(default)]
    pub ot_relu_online_ns: f64,
    /// One round of the silent OT extension ([`crate::ot::silent`]), both parties together,
    /// ns (a round runs when a call needs more OTs than the pool holds). Zero when not measured.
    #[serde(default)]
    pub ot_round_ns: f64,
    pub threads: usize,
}

/// Predicted cost of one layer (weight layer or site) for one inference.
#[derive(Debug, Clone, Serialize)]
pub struct LayerCost {
    pub label: String,
    pub kind: &'static str,
    pub positions: usize,
    pub active: usize,
    pub macs: u64,
    pub and_gates: u64,
    pub online: Traffic,
    pub offline: Traffic,
    pub online_compute_s: f64,
    pub offline_compute_s: f64,
    /// The part of `offline_compute_s` spent on homomorphic encryption (weight layers under
    /// `he`), both parties together.
    pub he_compute_s: f64,
}

/// The HE context and the layout of every weight layer (by op index).
pub type HePlan = (HeContext, std::collections::HashMap<usize, Layout>);

/// The flooding's statistical distance per inference under `he`: the answers of one inference
/// (each flooded to `2^-flood_bits`, [`crate::he::HeParams::flood_bits`]) and `log2` of their
/// union bound, `log2(answers) - flood_bits`. `None` for the dealer.
pub fn flood_per_inference(
    arch: &Arch,
    ring: &Ring,
    offline: &OfflineMode,
) -> Result<Option<(usize, f64)>> {
    let OfflineMode::He(p) = offline else {
        return Ok(None);
    };
    let Some((_, plan)) = he_plan(arch, ring, offline)? else {
        return Ok(None);
    };
    let answers: usize = plan.values().map(|l| l.answers()).sum();
    Ok(Some((
        answers,
        (answers.max(1) as f64).log2() - p.flood_bits as f64,
    )))
}

/// The HE layouts of every weight layer, when the offline mode is `he`.
pub fn he_plan(arch: &Arch, ring: &Ring, offline: &OfflineMode) -> Result<Option<HePlan>> {
    match offline {
        OfflineMode::Dealer => Ok(None),
        OfflineMode::He(p) => {
            let ctx = HeContext::new(*p, ring)?;
            let plan = homomorphic::plan(arch, &ctx)?.into_iter().collect();
            Ok(Some((ctx, plan)))
        }
    }
}

struct Seq {
    meter: Meter,
}

impl Seq {
    /// A message of `payload` bytes; `client` sends it when true.
    fn msg(&mut self, label: &str, client: bool, payload: u64) {
        self.meter.set_label(label.to_string());
        if client {
            self.meter.sent(payload + HEADER);
        } else {
            self.meter.received(payload + HEADER);
        }
    }
}

fn ring_vec(n: usize, ring: &Ring) -> u64 {
    ring_vec_bytes(n, ring.bits)
}

/// The IKNP messages of `m` correlated OTs: the receiver's matrix up, the corrections down.
fn ot_messages(s: &mut Seq, label: &str, m: usize) {
    let mp = m.div_ceil(128) * 128;
    s.msg(label, true, bytes_bytes(KAPPA * mp / 8));
    s.msg(label, false, blocks_bytes(m));
}

/// The client's view of one inference's messages (excluding session setup), label by label.
pub fn predicted_traffic(arch: &Arch, ring: &Ring, opts: &Options) -> Result<Meter> {
    let he = he_plan(arch, ring, &opts.offline)?;
    let nonlinear = resolve_nonlinear(arch, ring, opts)?;
    traffic(
        arch,
        ring,
        opts.output,
        nonlinear,
        opts.truncation,
        he.as_ref(),
    )
}

/// Each concrete family's predicted network time of one inference (online + offline: bytes over
/// the bandwidth and half a round trip per flight) under `profile`, for `auto`'s choice. Compute
/// is left out: it would need this machine's calibration (seconds to measure) at every server
/// start, and under the `wan` profile the network time is most of the difference (garbled
/// circuits send 5.4x the bytes, OT comparisons 3.5x the online flights per site).
pub fn choose_nonlinear(
    arch: &Arch,
    ring: &Ring,
    opts: &Options,
    profile: &Profile,
) -> Result<Vec<(Nonlinear, f64)>> {
    Nonlinear::candidates()
        .into_iter()
        // Faithful truncation runs on the OT comparison only.
        .filter(|f| {
            opts.truncation == crate::protocol::Truncation::Local
                || matches!(f, Nonlinear::Ot { .. })
        })
        .map(|f| {
            let m = predicted_traffic(arch, ring, &opts.with_nonlinear(f))?;
            let t = |t: &Traffic| {
                t.bytes() as f64 / profile.bandwidth + t.flights as f64 * profile.rtt / 2.0
            };
            Ok((f, t(&m.total("online/")) + t(&m.total("offline/"))))
        })
        .collect()
}

/// `opts.nonlinear`, with `auto` resolved to the family of lower predicted network time under
/// the `wan` profile ([`choose_nonlinear`]).
pub fn resolve_nonlinear(arch: &Arch, ring: &Ring, opts: &Options) -> Result<Nonlinear> {
    match opts.nonlinear {
        // Faithful truncation runs on the OT comparison only.
        Nonlinear::Auto if opts.truncation == crate::protocol::Truncation::Faithful => {
            Ok(Nonlinear::Ot {
                digit_bits: crate::nonlinear::millionaire::DEFAULT_DIGIT_BITS,
            })
        }
        Nonlinear::Auto => {
            let wan = Profile::by_name("wan").expect("the wan preset");
            let c = choose_nonlinear(arch, ring, opts, &wan)?;
            Ok(c.into_iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("two candidates")
                .0)
        }
        f => Ok(f),
    }
}

/// [`predicted_traffic`] with the HE plan already made (`None`: the dealer).
fn traffic(
    arch: &Arch,
    ring: &Ring,
    output: OutputMode,
    nonlinear: Nonlinear,
    truncation: crate::protocol::Truncation,
    he: Option<&HePlan>,
) -> Result<Meter> {
    let scales = crate::model::value_scales(arch, ring)?;
    let mut s = Seq {
        meter: Meter::default(),
    };
    // The session's silent-OT pools, empty at the start of every offline phase.
    let mut pools = crate::nonlinear::ot_relu::Pools::default();
    s.msg("offline/command", true, 1);
    for (i, op) in arch.ops().iter().enumerate() {
        let label = format!("offline/{}", op_label(arch, i));
        match op {
            Op::Conv { input, .. } | Op::Linear { input, .. } | Op::ChannelAffine { input, .. } => {
                match he {
                    Some((ctx, plan)) => {
                        let (up, down) = homomorphic::message_sizes(ctx, &plan[&i]);
                        if let Some(up) = up {
                            s.msg(&label, true, up);
                        }
                        s.msg(&label, false, down);
                    }
                    None => {
                        s.msg(&label, true, ring_vec(arch.numel(*input), ring));
                        s.msg(&label, false, ring_vec(arch.numel(i + 1), ring));
                    }
                }
            }
            _ => {
                // Faithful truncation: the identity positions' site first.
                if let Some(t) = ot_truncation(arch, &scales, ring, nonlinear, truncation, i)? {
                    for (client, bytes) in t.offline_messages(&mut pools).0 {
                        s.msg(&label, client, bytes);
                    }
                }
                if let Some(rounds) = ot_rounds(arch, &scales, ring, nonlinear, i)? {
                    for r in &rounds {
                        for (client, bytes) in r.offline_messages(&mut pools).0 {
                            s.msg(&label, client, bytes);
                        }
                    }
                } else if let Some(d) = garbled_site(arch, &scales, ring, nonlinear, i) {
                    ot_messages(&mut s, &label, d.n * d.client_bits());
                    s.msg(&label, false, blocks_bytes(2 * d.n * d.ands));
                }
            }
        }
    }
    let ot_argmax = crate::protocol::ot_argmax(arch, ring, nonlinear, output)?;
    let argmax = match output {
        OutputMode::Class if ot_argmax.is_none() => ArgmaxDims::new(arch.json.classes, ring),
        _ => None,
    };
    for r in ot_argmax.iter().flatten() {
        for (client, bytes) in r.offline_messages(&mut pools).0 {
            s.msg("offline/argmax", client, bytes);
        }
    }
    if let Some(d) = &argmax {
        ot_messages(&mut s, "offline/argmax", d.input_bits());
        s.msg("offline/argmax", false, Tables::size(d.ands, d.index_bits));
    }
    s.msg("online/input", true, ring_vec(arch.numel(0), ring));
    for i in 0..arch.ops().len() {
        let label = format!("online/{}", op_label(arch, i));
        if let Some(rounds) = ot_rounds(arch, &scales, ring, nonlinear, i)? {
            for (client, bytes) in rounds.iter().flat_map(|r| r.online_messages()) {
                s.msg(&label, client, bytes);
            }
        } else if let Some(d) = garbled_site(arch, &scales, ring, nonlinear, i) {
            s.msg(&label, false, blocks_bytes(d.n * d.server_bits()));
            s.msg(&label, true, bits_bytes(d.n * d.l));
        }
        if let Some(t) = ot_truncation(arch, &scales, ring, nonlinear, truncation, i)? {
            for (client, bytes) in t.online_messages() {
                s.msg(&label, client, bytes);
            }
        }
    }
    if let Some(rounds) = &ot_argmax {
        for (client, bytes) in rounds.iter().flat_map(|r| r.online_messages()) {
            s.msg("online/argmax", client, bytes);
        }
        s.msg(
            "online/argmax",
            false,
            crate::nonlinear::ot_argmax::REVEAL_BYTES,
        );
        return Ok(s.meter);
    }
    match (output, &argmax) {
        (OutputMode::Class, Some(d)) => s.msg("online/argmax", false, blocks_bytes(d.input_bits())),
        (OutputMode::Class, None) => {}
        (OutputMode::Logits, _) => s.msg("online/output", false, ring_vec(arch.json.classes, ring)),
    }
    Ok(s.meter)
}

/// Checks the client's meter of one inference against [`predicted_traffic`], label by label
/// (bytes each way, messages, flights): where it passes, the cost model's bytes are the measured
/// ones.
pub fn check_traffic(measured: &Meter, arch: &Arch, ring: &Ring, opts: &Options) -> Result<()> {
    let predicted = predicted_traffic(arch, ring, opts)?;
    if measured.counts() == predicted.counts() {
        return Ok(());
    }
    Err(crate::error::MpcError::Protocol(format!(
        "the traffic counted on the channel differs from the cost model's message sequence \
         (online {} vs {} bytes, offline {} vs {} bytes)",
        measured.total("online/").bytes(),
        predicted.total("online/").bytes(),
        measured.total("offline/").bytes(),
        predicted.total("offline/").bytes()
    )))
}

/// Compute of `ots` correlated OTs, ns: the OT calibration already includes moving its 32 bytes
/// per OT, which [`phase_seconds`] charges again with the traffic.
fn ot_compute_ns(ots: f64, cal: &Calibration) -> f64 {
    ots * (cal.ot_ns - 32.0 * cal.byte_ns).max(0.0)
}

/// Per-layer predictions (the argmax circuit of the class output last, labelled `argmax`).
pub fn layer_costs(
    arch: &Arch,
    ring: &Ring,
    opts: &Options,
    cal: &Calibration,
) -> Result<Vec<LayerCost>> {
    let output = opts.output;
    let opts = &opts.with_nonlinear(resolve_nonlinear(arch, ring, opts)?);
    let scales = crate::model::value_scales(arch, ring)?;
    let he = he_plan(arch, ring, &opts.offline)?;
    let meter = traffic(
        arch,
        ring,
        output,
        opts.nonlinear,
        opts.truncation,
        he.as_ref(),
    )?;
    let find = |label: &str| {
        meter
            .entries()
            .iter()
            .find(|e| e.label == label)
            .cloned()
            .unwrap_or(Traffic {
                label: label.into(),
                ..Default::default()
            })
    };
    // The layers whose weight polynomials the server keeps (priced without their encoding).
    let cached = he.as_ref().map_or_else(Default::default, |(ctx, plan)| {
        homomorphic::cached_layers(plan, ctx, opts.limits.he_cache_bytes)
    });
    let mut out = Vec::new();
    // Silent-OT rounds run by each op on OT, followed through the inference as `traffic` does.
    let mut pools = crate::nonlinear::ot_relu::Pools::default();
    let mut ot_rounds_run = |shapes: &[crate::nonlinear::ot_relu::Shape]| -> f64 {
        shapes
            .iter()
            .map(|r| r.offline_messages(&mut pools).1)
            .sum::<usize>() as f64
    };
    for (i, op) in arch.ops().iter().enumerate() {
        let name = op_label(arch, i);
        let kind = match op {
            Op::Conv { .. } => "conv",
            Op::Linear { .. } => "linear",
            Op::ChannelAffine { .. } => "affine",
            Op::Relu { .. } => "relu",
            Op::MaxPool { .. } => "max_pool",
            _ => continue,
        };
        let dims = garbled_site(arch, &scales, ring, opts.nonlinear, i);
        // ReLUs on OT: a site's active ones, or a max-pool's comparisons over all its rounds.
        // The faithful truncation's site first (as the protocol runs them), then the active ones.
        let mut shapes: Vec<_> =
            ot_truncation(arch, &scales, ring, opts.nonlinear, opts.truncation, i)?
                .into_iter()
                .collect();
        let truncated: usize = shapes.iter().map(|s| s.n).sum();
        shapes.extend(ot_rounds(arch, &scales, ring, opts.nonlinear, i)?.unwrap_or_default());
        let ot_relus: usize = shapes.iter().map(|s| s.n).sum();
        let extension_ns = ot_rounds_run(&shapes) * cal.ot_round_ns;
        let circuits = dims.map_or(0, |d| d.n);
        let active = if kind == "relu" {
            circuits + ot_relus - truncated
        } else {
            0
        };
        let ands = dims.map_or(0, |d| (d.n * d.ands) as u64);
        // Values whose labels the server selects and sends online (one per active ReLU, a
        // window per max-pool output).
        let gc_values = dims.map_or(0, |d| d.n * d.window());
        let mac = macs(arch, i);
        let layer_ns = match cal.layer_s.get(&i) {
            Some(&t) => t * 1e9,
            None => mac as f64 * cal.mac_ns,
        };
        let ots = dims.map_or(0.0, |d| (d.n * d.client_bits()) as f64);
        // Offline work of a weight layer: the dealer's `W v_C`, or the HE query and answers.
        let he_s = match (&he, &cal.he) {
            (Some((_, plan)), Some(sp)) => plan
                .get(&i)
                .map_or(0.0, |l| sp.layer_s(l, cal.threads, cached.contains(&i))),
            _ => 0.0,
        };
        let linear_offline_ns = match (op.is_weight_layer(), &he) {
            (false, _) => 0.0,
            (true, Some(_)) => he_s * 1e9,
            (true, None) => layer_ns,
        };
        out.push(LayerCost {
            label: name.clone(),
            kind,
            positions: arch.numel(i + 1),
            active,
            macs: mac,
            and_gates: ands,
            online: find(&format!("online/{name}")),
            offline: find(&format!("offline/{name}")),
            // Online: the server's layer on its share, the client's evaluation.
            online_compute_s: (layer_ns
                + ands as f64 * cal.eval_and_ns
                + gc_values as f64 * cal.relu_online_ns
                + ot_relus as f64 * cal.ot_relu_online_ns
                + arch.numel(i + 1) as f64 * cal.elem_ns)
                * 1e-9,
            // Offline: the weight layer's correlation, OT extension, garbling (or the OT
            // ReLUs' random OTs).
            offline_compute_s: (linear_offline_ns
                + ot_compute_ns(ots, cal)
                + ands as f64 * cal.garble_and_ns
                + ot_relus as f64 * cal.ot_relu_offline_ns
                + extension_ns)
                * 1e-9,
            he_compute_s: he_s,
        });
    }
    if let Some(rounds) = crate::protocol::ot_argmax(arch, ring, opts.nonlinear, output)? {
        // The class output on OT: its comparisons priced like the OT ReLUs.
        let cmps: usize = rounds.iter().map(|r| r.n).sum();
        let extension_ns = ot_rounds_run(&rounds) * cal.ot_round_ns;
        out.push(LayerCost {
            label: "argmax".into(),
            kind: "argmax",
            positions: arch.json.classes,
            active: 0,
            macs: 0,
            and_gates: 0,
            online: find("online/argmax"),
            offline: find("offline/argmax"),
            online_compute_s: cmps as f64 * cal.ot_relu_online_ns * 1e-9,
            offline_compute_s: (cmps as f64 * cal.ot_relu_offline_ns + extension_ns) * 1e-9,
            he_compute_s: 0.0,
        });
    } else if let (OutputMode::Class, Some(d)) = (output, ArgmaxDims::new(arch.json.classes, ring))
    {
        let ands = d.ands as u64;
        out.push(LayerCost {
            label: "argmax".into(),
            kind: "argmax",
            positions: d.classes,
            active: 0,
            macs: 0,
            and_gates: ands,
            online: find("online/argmax"),
            offline: find("offline/argmax"),
            online_compute_s: (ands as f64 * cal.eval_and_ns
                + (d.input_bits() as f64 / ring.gc_bits as f64) * cal.relu_online_ns)
                * 1e-9,
            offline_compute_s: (ot_compute_ns(d.input_bits() as f64, cal)
                + ands as f64 * cal.garble_and_ns)
                * 1e-9,
            he_compute_s: 0.0,
        });
    }
    Ok(out)
}

/// Predicted wall time of a phase: compute and the hand-over of each flight, plus transmission
/// and one half round trip per flight under `profile`.
pub fn phase_seconds(
    compute_s: f64,
    traffic: &Traffic,
    profile: Option<&Profile>,
    cal: &Calibration,
) -> f64 {
    let base = compute_s
        + (traffic.flights as f64 * cal.flight_ns + traffic.bytes() as f64 * cal.byte_ns) * 1e-9;
    match profile {
        None => base,
        Some(p) => {
            base + traffic.bytes() as f64 / p.bandwidth + traffic.flights as f64 * p.rtt / 2.0
        }
    }
}

/// Totals for one inference: `(online traffic, offline traffic, online compute s, offline compute s)`.
pub fn totals(
    arch: &Arch,
    ring: &Ring,
    opts: &Options,
    cal: &Calibration,
) -> Result<(Traffic, Traffic, f64, f64)> {
    let meter = predicted_traffic(arch, ring, opts)?;
    let costs = layer_costs(arch, ring, opts, cal)?;
    Ok((
        meter.total("online/"),
        meter.total("offline/"),
        costs.iter().map(|c| c.online_compute_s).sum(),
        costs.iter().map(|c| c.offline_compute_s).sum(),
    ))
}

/// PrivShap's latency model (from DELPHI): 0.021 s per 1,000 ReLUs online. A paper's figure,
/// printed for reference only.
pub const PAPER_SECONDS_PER_KRELU: f64 = 0.021;
/// DELPHI on ResNet-18 / CIFAR-10 (paper figures, reference only): bytes per ReLU online and
/// offline, microseconds per ReLU per thread for evaluation and garbling.
pub const DELPHI_ONLINE_BYTES_PER_RELU: f64 = 1.2e3;
pub const DELPHI_OFFLINE_BYTES_PER_RELU: f64 = 18.5e3;
pub const DELPHI_EVAL_US_PER_RELU: f64 = 50.0;
pub const DELPHI_GARBLE_US_PER_RELU: f64 = 100.0;
