//! `privlin pi export|serve|client|bench|measure|load|families` and `privlin cost`: two-party
//! private inference of a partial-ReLU model (privlin-mpc), measured. One file per subcommand;
//! the argument groups they share and the helpers they call are here.

mod benchmark;
mod client;
mod cost_table;
pub(crate) mod families;
mod load;
mod serve;

pub use benchmark::BenchArgs;
pub use client::ClientArgs;
pub use cost_table::{cost_cmd, CostArgs};
pub use load::LoadArgs;
pub use serve::ServeArgs;

use crate::common::runtime;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use privlin::data::DataConfig;
use privlin::pi;
use privlin_mpc::bench;
use privlin_mpc::cost::{self, Calibration};
use privlin_mpc::model::Arch;
use privlin_mpc::net::tcp::TcpTransport;
use privlin_mpc::net::{Channel, Meter, Profile};
use privlin_mpc::nonlinear::Nonlinear;
use privlin_mpc::protocol::service::{self, ServeConfig};
use privlin_mpc::protocol::{Client, OfflineMode, Options, OutputMode};
use privlin_mpc::synthetic::{self, Spec};
use privlin_mpc::{ModelFile, QuantModel, Ring};
use rand::SeedableRng;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Subcommand)]
pub enum PiCommand {
    /// Export a checkpoint (with its masks) to the private-inference format (model.json +
    /// weights.safetensors, batch norm folded, active positions per site).
    Export(ExportArgs),
    /// Serve private inference of an exported model over TCP (the server holds the model).
    Serve(ServeArgs),
    /// Private inference of images against a server (the client holds the images).
    Client(ClientArgs),
    /// Per-ReLU and whole-model measurements, checked against the cost model.
    Bench(BenchArgs),
    /// The pipeline's private-inference stage on a checkpoint: export, classify test images of its
    /// own data under the protocol (two threads, in-memory channel), write `pi.json`.
    Measure(MeasureArgs),
    /// Load test of the service on this machine: client sessions over loopback TCP send requests
    /// at Poisson rates; latency percentiles split into queueing, inline offline and online, for
    /// one or more models, against the cost model's saturation rate.
    Load(LoadArgs),
    /// Both nonlinear families (garbled circuits, OT comparisons) priced side by side for one or
    /// more exported models: bytes, flights, predicted seconds under a profile, and a plot.
    Families(families::FamiliesArgs),
}

#[derive(Args, Debug)]
pub struct MeasureArgs {
    /// Checkpoint directory (a partial-ReLU checkpoint is measured with its own masks).
    #[arg(long)]
    ckpt: PathBuf,
    /// Export directory (model.json, weights.safetensors, pi.json).
    #[arg(long)]
    out: PathBuf,
    /// Test images of the checkpoint's data set.
    #[arg(long, default_value_t = 16)]
    images: usize,
    #[command(flatten)]
    ring: RingArgs,
    /// Threads per party (0: half the cores, as both parties share the machine).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Public seed of both parties' randomness: reproducible, NOT private (the stage measures).
    #[arg(long, default_value_t = 0)]
    insecure_seed: u64,
}

#[derive(Args, Debug, Clone)]
pub struct RingArgs {
    /// Ring bits l (32..=64).
    #[arg(long, default_value_t = 64)]
    ring_bits: u32,
    /// Fractional bits f.
    #[arg(long, default_value_t = 12)]
    frac: u32,
    /// Low bits of each share entering a ReLU circuit (w).
    #[arg(long, default_value_t = 32)]
    gc_bits: u32,
    /// What the client learns: `class` (garbled argmax) or `logits` (leaks low bits of
    /// pre-activations over repeated queries; measurement mode).
    #[arg(long, default_value = "class")]
    output: String,
    #[command(flatten)]
    offline: OfflineArgs,
}

/// How the weight layers' offline correlations are produced.
#[derive(Args, Debug, Clone)]
pub struct OfflineArgs {
    /// `he` (homomorphic encryption: the client's masks stay encrypted; the default) or `dealer`
    /// (insecure measurement mode: the server sees the client's masks).
    #[arg(long, default_value = "he")]
    offline: String,
    /// Public bound on the fixed-point weights that sizes the HE flooding noise: |w| < 2^bits.
    /// A model over it is refused; both parties must use the same value.
    #[arg(long, default_value_t = privlin_mpc::he::HeParams::default().weight_bits)]
    he_weight_bits: u32,
    /// How active ReLUs are computed: `gc` (garbled circuits, DELPHI), `ot` (the millionaires'
    /// protocol on OT, CrypTFlow2; `ot:M` for M-bit digits, 1..=6) or `auto` (a server takes the
    /// family of lower predicted network time under the wan profile for the model at hand, a
    /// client follows the server). `pi bench` takes a list (`gc,ot`) and runs the whole model
    /// under each.
    #[arg(long, default_value = "auto")]
    nonlinear: String,
    /// MiB of weight polynomials in NTT form a server keeps per session under `--offline he`
    /// (layers in order while they fit, the rest encoded at every inference; 0: none).
    #[arg(long, default_value_t = privlin_mpc::protocol::Limits::default().he_cache_bytes >> 20)]
    he_cache_mb: u64,
    /// How identity positions are truncated: `local` (each party its share, free, SecureML) or
    /// `faithful` (exact, on the OT comparison: one comparison per identity position; needs
    /// `--nonlinear ot` or `auto`). A server's choice; a client follows its hello.
    #[arg(long, default_value = "local")]
    truncation: String,
}

impl OfflineArgs {
    fn mode(&self) -> Result<OfflineMode> {
        Ok(OfflineMode::named(&self.offline, self.he_weight_bits)?)
    }

    /// The families of a list (`gc,ot`).
    fn families(&self) -> Result<Vec<Nonlinear>> {
        self.nonlinear
            .split(',')
            .map(|n| Ok(Nonlinear::by_name(n.trim())?))
            .collect()
    }

    /// The one family of a session.
    fn nonlinear(&self) -> Result<Nonlinear> {
        match self.families()?.as_slice() {
            [one] => Ok(*one),
            _ => bail!(
                "--nonlinear {}: one family per session (only pi bench takes a list)",
                self.nonlinear
            ),
        }
    }
}

impl RingArgs {
    /// `base` with this output and offline mode.
    fn options(&self, base: Options) -> Result<Options> {
        Ok(self
            .options_without_family(base)?
            .with_nonlinear(self.offline.nonlinear()?))
    }

    /// `base` with this output, offline mode and HE cache, the nonlinear family left as it is.
    pub(crate) fn options_without_family(&self, base: Options) -> Result<Options> {
        let mut o = base
            .with_output(self.output()?)
            .with_offline(self.offline.mode()?);
        o.limits.he_cache_bytes = self.offline.he_cache_mb << 20;
        o.truncation = privlin_mpc::protocol::Truncation::by_name(&self.offline.truncation)?;
        Ok(o)
    }

    pub(crate) fn ring(&self) -> Result<Ring> {
        Ok(Ring::new(self.ring_bits, self.frac, self.gc_bits)?)
    }

    fn output(&self) -> Result<OutputMode> {
        Ok(OutputMode::by_name(&self.output)?)
    }
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Checkpoint directory (a partial-ReLU checkpoint is exported with its own masks).
    #[arg(long)]
    ckpt: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: PiCommand) -> Result<()> {
    match cmd {
        PiCommand::Export(a) => export(a),
        PiCommand::Load(a) => load::load_cmd(a),
        PiCommand::Serve(a) => serve::serve(a),
        PiCommand::Client(a) => client::client(a),
        PiCommand::Bench(a) => benchmark::bench_cmd(a),
        PiCommand::Measure(a) => measure(a),
        PiCommand::Families(a) => families::run(a),
    }
}

fn measure(a: MeasureArgs) -> Result<()> {
    let cfg = pi::PiConfig {
        images: a.images,
        ring_bits: a.ring.ring_bits,
        frac: a.ring.frac,
        gc_bits: a.ring.gc_bits,
        threads: a.threads,
        insecure_seed: a.insecure_seed,
        output: a.ring.output()?.name().into(),
        offline: a.ring.offline.offline.clone(),
        he_weight_bits: a.ring.offline.he_weight_bits,
        nonlinear: a.ring.offline.nonlinear()?.name(),
    };
    let r = pi::measure(&a.ckpt, &a.out, &cfg)?;
    let mut md = String::new();
    privlin::linearize::report::private_inference(&mut md, &r);
    println!("{md}");
    println!("wrote {}", a.out.join(pi::PI_REPORT).display());
    Ok(())
}

fn export(a: ExportArgs) -> Result<()> {
    let device = runtime("cpu", 0)?;
    let (model, spec, masks) = privlin::linearize::run::load_with_masks(&a.ckpt, device)?;
    let file = pi::export(
        &model,
        masks.as_ref(),
        &spec.normalization,
        &pi::export::model_name(&a.ckpt),
    )?;
    file.save(&a.out)?;
    println!(
        "exported {} to {}: {} ops, {} active ReLUs of {} positions",
        a.ckpt.display(),
        a.out.display(),
        file.arch.ops().len(),
        file.arch.active_total(),
        model.sites().iter().map(|s| s.count()).sum::<i64>()
    );
    Ok(())
}

/// An exported directory, or a checkpoint exported in memory.
pub(crate) fn load_export(path: &Path) -> Result<ModelFile> {
    if path.join(privlin_mpc::model::MODEL_JSON).is_file() {
        return Ok(ModelFile::load(path)?);
    }
    let (model, spec, masks) = privlin::linearize::run::load_with_masks(path, tch::Device::Cpu)
        .with_context(|| {
            format!(
                "{} is neither an export (model.json) nor a checkpoint",
                path.display()
            )
        })?;
    pi::export(
        &model,
        masks.as_ref(),
        &spec.normalization,
        &pi::export::model_name(path),
    )
}

pub(crate) fn profile(name: &Option<String>) -> Result<Option<Profile>> {
    match name.as_deref() {
        None | Some("none") => Ok(None),
        Some(n) => Profile::by_name(n)
            .map(Some)
            .with_context(|| format!("unknown network profile `{n}` (none, lan, wan-fast, wan)")),
    }
}

/// `opts.nonlinear` with `auto` resolved for `model`, the choice and both families' predicted
/// wan network time printed.
fn resolve_family(model: &QuantModel, opts: &Options) -> Result<Nonlinear> {
    if opts.nonlinear != Nonlinear::Auto {
        return Ok(opts.nonlinear);
    }
    let wan = Profile::by_name("wan").expect("wan preset");
    let c = cost::choose_nonlinear(&model.arch, &model.ring, opts, &wan)?;
    let chosen = cost::resolve_nonlinear(&model.arch, &model.ring, opts)?;
    eprintln!(
        "nonlinear family: {} (auto: predicted online + offline network time under {}: {})",
        chosen.name(),
        wan.describe(),
        c.iter()
            .map(|(f, t)| format!("{} {t:.3} s", f.name()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(chosen)
}

fn inputs(arch: &Arch, data: &Option<String>, n: usize) -> Result<Vec<(Option<i64>, Vec<u8>)>> {
    let [c, h, w] = arch.json.input_shape;
    match data {
        None => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            Ok((0..n)
                .map(|_| {
                    let px: Vec<u8> = (0..c * h * w).map(|_| rand::Rng::gen(&mut rng)).collect();
                    (None, px)
                })
                .collect())
        }
        Some(src) => {
            let cfg = DataConfig {
                source: src.clone(),
                ..Default::default()
            };
            Ok(pi::test_images(&cfg, h as u32, arch.json.classes, n)?
                .into_iter()
                .map(|(l, px)| (Some(l), px))
                .collect())
        }
    }
}
