//! The private-inference stage: export a partial-ReLU checkpoint, classify test images under the
//! two-party protocol of `privlin-mpc` (DELPHI-style, Mishra et al. 2020: garbled circuits for
//! the active ReLUs only, local truncation at identity positions), check the classes against the
//! float model and the plaintext fixed-point model, and put the measured traffic and time beside
//! the cost model's predictions under each network profile, for this model and for the same
//! network with every ReLU active (what the ReLU budget bought).

use super::{export, float_classes, normalize_image, test_images};
use crate::train::data::load_with_masks;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use privlin_mpc::cost::{self, Calibration};
use privlin_mpc::he::HeParams;
use privlin_mpc::model::Arch;
use privlin_mpc::net::Profile;
use privlin_mpc::nonlinear::Nonlinear;
use privlin_mpc::protocol::{OfflineMode, Options, OutputMode};
use privlin_mpc::{bench, plain, QuantModel, Ring};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The stage's report in the export directory; written last, so its presence marks the stage done.
pub const PI_REPORT: &str = "pi.json";

/// `[pi]` of a pipeline config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiConfig {
    /// Test images classified under the protocol (0 skips the stage).
    pub images: usize,
    /// Ring bits `l` (32..=64).
    pub ring_bits: u32,
    /// Fractional bits `f`.
    pub frac: u32,
    /// Low bits of each share that enter a ReLU circuit (`w`).
    pub gc_bits: u32,
    /// Threads per party (0: half the cores, as both parties share the machine).
    pub threads: usize,
    /// Public seed of both parties' randomness (masks, labels, OT): the stage runs both parties
    /// in one process to *measure*, and repeats exactly; a seeded session is not private, and
    /// `pi.json` and the report say so.
    #[serde(alias = "seed")]
    pub insecure_seed: u64,
    /// What the client learns: `class` (garbled argmax, the default) or `logits`.
    pub output: String,
    /// The weight layers' offline phase: `he` (homomorphic encryption, the default) or `dealer`
    /// (insecure measurement mode).
    pub offline: String,
    /// Public bound on the fixed-point weights for HE: `|w| < 2^he_weight_bits`.
    pub he_weight_bits: u32,
    /// How active ReLUs are computed: `gc` (garbled circuits), `ot` (`ot:M`: the millionaires'
    /// protocol on OT) or `auto` (the default: the family of lower predicted network time under
    /// the wan profile for the model at hand). Both families are priced in `pi.json` whichever
    /// runs.
    pub nonlinear: String,
}

impl Default for PiConfig {
    fn default() -> Self {
        let r = Ring::default();
        PiConfig {
            images: 16,
            ring_bits: r.bits,
            frac: r.frac,
            gc_bits: r.gc_bits,
            threads: 0,
            insecure_seed: 0,
            output: OutputMode::Class.name().into(),
            offline: "he".into(),
            he_weight_bits: HeParams::default().weight_bits,
            nonlinear: Nonlinear::Auto.name(),
        }
    }
}

impl PiConfig {
    pub fn ring(&self) -> Result<Ring> {
        Ring::new(self.ring_bits, self.frac, self.gc_bits).context("[pi] ring")
    }

    pub fn output(&self) -> Result<OutputMode> {
        OutputMode::by_name(&self.output).context("[pi] output")
    }

    pub fn offline(&self) -> Result<OfflineMode> {
        OfflineMode::named(&self.offline, self.he_weight_bits).context("[pi] offline")
    }

    pub fn nonlinear(&self) -> Result<Nonlinear> {
        Nonlinear::by_name(&self.nonlinear).context("[pi] nonlinear")
    }

    pub fn validate(&self) -> Result<()> {
        self.ring()?;
        self.output()?;
        self.nonlinear()?;
        if let OfflineMode::He(p) = self.offline()? {
            p.validate().context("[pi] he_weight_bits")?;
        }
        Ok(())
    }

    /// The sessions' options: seeded (measurement only), with the configured output and offline
    /// mode.
    pub fn options(&self) -> Result<Options> {
        Ok(Options::insecure_seeded(self.insecure_seed)
            .with_output(self.output()?)
            .with_offline(self.offline()?)
            .with_nonlinear(self.nonlinear()?))
    }
}

/// Predicted seconds of one inference on one network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Predicted {
    pub network: String,
    pub online_s: f64,
    pub offline_s: f64,
}

/// Traffic of one inference (client's view, session set-up excluded) and predicted time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cost {
    pub active_relus: usize,
    pub online_bytes: u64,
    pub offline_bytes: u64,
    pub online_flights: u64,
    pub offline_flights: u64,
    /// Compute and hand-over only first, then each network profile.
    pub predicted: Vec<Predicted>,
}

impl Cost {
    /// The prediction on the slowest network ([`Profile::presets`] run from fastest to slowest,
    /// after the no-network row).
    pub fn slowest(&self) -> Option<&Predicted> {
        self.predicted.last()
    }
}

/// One weight layer or site of the exported model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRow {
    pub label: String,
    pub kind: String,
    pub active: usize,
    pub macs: u64,
    pub online_bytes: u64,
    pub offline_bytes: u64,
    /// Predicted seconds of homomorphic encryption in this layer's offline phase (0 for sites
    /// and under the dealer).
    #[serde(default)]
    pub he_s: f64,
    /// Each nonlinear family's predicted `[online, offline]` bytes of this layer (the run's own
    /// family is the measured `online_bytes`, `offline_bytes`).
    #[serde(default)]
    pub by_family: std::collections::BTreeMap<String, [u64; 2]>,
}

/// One nonlinear family's predicted cost of the model and of its all-ReLU network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FamilyCost {
    pub nonlinear: String,
    pub partial: Cost,
    pub all_relu: Cost,
}

/// `pi.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PiReport {
    pub checkpoint: String,
    pub export: String,
    pub machine: String,
    /// Threads of each party.
    pub threads: usize,
    /// Where the weight layers' offline correlations came from.
    pub offline_linear: String,
    /// Where both parties' randomness came from (seeded: not private).
    #[serde(default)]
    pub randomness: String,
    /// What the client learned.
    #[serde(default)]
    pub output: String,
    pub network: String,
    pub ring: Ring,
    pub images: usize,
    /// Images whose private class equals the label.
    pub correct: usize,
    /// Images whose private class equals the float model's.
    pub agree_float: usize,
    /// Images whose plaintext fixed-point class equals the float model's.
    pub agree_fixed_point: usize,
    /// Active pre-activations outside the circuit width `w`, over all images.
    pub gc_overflows: usize,
    /// The largest `|y|` at an identity position over all images (plaintext fixed point), and
    /// whether it reached `2^(w - 1)`, beyond which the wrap-failure bound does not hold.
    #[serde(default)]
    pub max_identity_abs: u64,
    #[serde(default)]
    pub identity_over_bound: bool,
    /// Mean measured seconds of one inference (the client's clock).
    pub online_s: f64,
    pub offline_s: f64,
    /// This model: bytes as measured (checked equal to the cost model's), predicted seconds.
    pub partial: Cost,
    /// The same network with every ReLU active: the cost model's prediction.
    pub all_relu: Cost,
    /// The family the sessions ran (`gc`, `ot`).
    #[serde(default)]
    pub nonlinear: String,
    /// Both families priced by the cost model (the run's own among them).
    #[serde(default)]
    pub by_family: Vec<FamilyCost>,
    pub layers: Vec<LayerRow>,
    /// Wall-clock of the stage.
    pub seconds: f64,
    pub config: PiConfig,
}

/// Traffic and predicted time of `arch` under every network, from the calibration `cal`.
fn summarize(arch: &Arch, ring: &Ring, opts: &Options, cal: &Calibration) -> Result<Cost> {
    let (on, off, on_c, off_c) = cost::totals(arch, ring, opts, cal)?;
    let mut predicted = vec![Predicted {
        network: "compute and hand-over only (no network delay)".into(),
        online_s: cost::phase_seconds(on_c, &on, None, cal),
        offline_s: cost::phase_seconds(off_c, &off, None, cal),
    }];
    for p in Profile::presets() {
        predicted.push(Predicted {
            network: p.describe(),
            online_s: cost::phase_seconds(on_c, &on, Some(&p), cal),
            offline_s: cost::phase_seconds(off_c, &off, Some(&p), cal),
        });
    }
    Ok(Cost {
        active_relus: arch.active_total(),
        online_bytes: on.bytes(),
        offline_bytes: off.bytes(),
        online_flights: on.flights,
        offline_flights: off.flights,
        predicted,
    })
}

/// The two families priced beside a run of `ran`: garbled circuits and OT (with `ran`'s digit
/// size when it is OT).
pub fn families(ran: Nonlinear) -> [Nonlinear; 2] {
    let [gc, ot] = Nonlinear::candidates();
    match ran {
        Nonlinear::Ot { .. } => [gc, ran],
        _ => [gc, ot],
    }
}

/// Per-layer rows of the run's family, with both families' predicted bytes (each family's
/// layer costs computed once; the run's family is one of them).
fn layer_rows(
    arch: &Arch,
    ring: &Ring,
    opts: &Options,
    cal: &Calibration,
) -> Result<Vec<LayerRow>> {
    let per_family = families(opts.nonlinear)
        .into_iter()
        .map(|f| {
            Ok((
                f,
                cost::layer_costs(arch, ring, &opts.with_nonlinear(f), cal)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let ran = &per_family
        .iter()
        .find(|(f, _)| *f == opts.nonlinear)
        .expect("the run's family is priced")
        .1;
    Ok(ran
        .iter()
        .enumerate()
        .map(|(k, c)| LayerRow {
            label: c.label.clone(),
            kind: c.kind.into(),
            active: c.active,
            macs: c.macs,
            online_bytes: c.online.bytes(),
            offline_bytes: c.offline.bytes(),
            he_s: c.he_compute_s,
            by_family: per_family
                .iter()
                .map(|(f, costs)| {
                    (
                        f.name(),
                        [costs[k].online.bytes(), costs[k].offline.bytes()],
                    )
                })
                .collect(),
        })
        .collect())
}

/// Runs the stage for checkpoint `ckpt` (its masks applied) and writes the export and `pi.json`
/// into `out`.
pub fn measure(ckpt: &Path, out: &Path, cfg: &PiConfig) -> Result<PiReport> {
    let t0 = Instant::now();
    let ring = cfg.ring()?;
    let opts = cfg.options()?;
    if cfg.images == 0 {
        bail!("[pi] images = 0: no image to classify");
    }
    let (model, spec, masks) = load_with_masks(ckpt, tch::Device::Cpu)?;
    let name = ckpt.display().to_string();
    let file = export(
        &model,
        masks.as_ref(),
        &spec.normalization,
        &super::export::model_name(ckpt),
    )?;
    let qm = QuantModel::new(&file, ring)
        .with_context(|| format!("{name}: encoding the weights in the ring"))?;
    let opts = opts.with_nonlinear(cost::resolve_nonlinear(&qm.arch, &ring, &opts)?);
    privlin_mpc::protocol::policy::check_wrap(&qm.arch, &ring, opts.max_wrap_log2)
        .with_context(|| format!("[pi] ring for {name}"))?;
    file.save(out)
        .with_context(|| format!("writing the export to {}", out.display()))?;
    let shape = file.arch.json.input_shape;
    let images = test_images(
        &spec.data,
        shape[1] as u32,
        spec.model.classes as usize,
        cfg.images,
    )?;
    let xs: Vec<Vec<f32>> = images
        .iter()
        .map(|(_, px)| normalize_image(px, &spec.normalization))
        .collect();
    let float = float_classes(&model, masks.as_ref(), &xs, shape);
    let enc = xs
        .iter()
        .map(|x| QuantModel::encode_input(&qm.arch, &ring, x))
        .collect::<Result<Vec<_>, _>>()?;
    let mut gc_overflows = 0;
    let mut max_identity_abs = 0u64;
    let fixed: Vec<usize> = enc
        .iter()
        .map(|x| {
            let r = plain::forward(&qm, x);
            gc_overflows += r.gc_overflows;
            max_identity_abs = max_identity_abs.max(r.max_identity_abs);
            plain::decode_logits(&qm, &r.logits).1
        })
        .collect();
    // Both parties run on this machine: half the cores each unless told otherwise.
    let threads = match cfg.threads {
        0 => bench::threads_per_party(),
        t => t,
    };
    let pb = ProgressBar::new(enc.len() as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "private inference [{bar:30}] {pos}/{len} images {elapsed_precise} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let session = bench::session_with_progress(&qm, &enc, None, threads, &opts, &mut |k| {
        pb.set_position(k as u64)
    })?;
    pb.finish_and_clear();
    // The cost model rebuilds the message sequence from the architecture: it must match the meter.
    cost::check_traffic(&session.client, &qm.arch, &ring, &opts)?;
    let cal = bench::calibrate_for(&qm, threads);
    let all_relu = export(
        &model,
        None,
        &spec.normalization,
        &super::export::model_name(ckpt),
    )?;
    // Both families priced once each; the run's own family is among them.
    let by_family: Vec<FamilyCost> = families(opts.nonlinear)
        .into_iter()
        .map(|f| {
            let o = opts.with_nonlinear(f);
            Ok(FamilyCost {
                nonlinear: f.name(),
                partial: summarize(&qm.arch, &ring, &o, &cal)?,
                all_relu: summarize(&all_relu.arch, &ring, &o, &cal)?,
            })
        })
        .collect::<Result<_>>()?;
    let ran = by_family
        .iter()
        .find(|f| f.nonlinear == opts.nonlinear.name())
        .expect("the run's family is priced")
        .clone();
    let labels: Vec<i64> = images.iter().map(|(l, _)| *l).collect();
    let infs = &session.inferences;
    let n = infs.len();
    let report = PiReport {
        checkpoint: name,
        export: out.display().to_string(),
        machine: bench::machine(),
        threads,
        offline_linear: opts.offline.label(),
        randomness: opts.randomness.label(),
        output: opts.output.label().into(),
        network: "two threads of one process over an in-memory channel, unshaped".into(),
        ring,
        images: n,
        correct: infs
            .iter()
            .zip(&labels)
            .filter(|(i, &l)| i.class as i64 == l)
            .count(),
        agree_float: infs
            .iter()
            .zip(&float)
            .filter(|(i, &f)| i.class == f)
            .count(),
        agree_fixed_point: fixed.iter().zip(&float).filter(|(a, b)| a == b).count(),
        gc_overflows,
        max_identity_abs,
        identity_over_bound: max_identity_abs >= 1u64 << (ring.gc_bits - 1),
        online_s: infs.iter().map(|i| i.online_s).sum::<f64>() / n as f64,
        offline_s: infs.iter().map(|i| i.offline_s).sum::<f64>() / n as f64,
        partial: ran.partial,
        all_relu: ran.all_relu,
        nonlinear: opts.nonlinear.name(),
        by_family,
        layers: layer_rows(&qm.arch, &ring, &opts, &cal)?,
        seconds: t0.elapsed().as_secs_f64(),
        config: cfg.clone(),
    };
    crate::io::atomic_write_json(&out.join(PI_REPORT), &report)?;
    Ok(report)
}
