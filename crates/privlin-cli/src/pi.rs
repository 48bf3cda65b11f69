//! `privlin pi export|serve|client|bench` and `privlin cost`: two-party private inference of a
//! partial-ReLU model (privlin-mpc), measured.

use crate::common::runtime;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use privlin::data::{DataConfig, Normalization};
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
    Families(crate::pi_families::FamiliesArgs),
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Exported model directory or checkpoint; repeat for one line per model.
    #[arg(long, required = true)]
    model: Vec<PathBuf>,
    /// Names of the models in the table and plot (default: the directory names).
    #[arg(long)]
    label: Vec<String>,
    /// Request rates (per second, all clients together), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.5")]
    rates: Vec<f64>,
    /// Seconds of arrivals per rate.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Requests still queued this many seconds after the arrivals end are abandoned (default:
    /// the duration).
    #[arg(long)]
    grace: Option<f64>,
    /// Concurrent client sessions.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Offline phases each client precomputes and refills between requests (0: all inline).
    #[arg(long, default_value_t = 2)]
    pool: usize,
    /// Greedy client sessions beside the measured ones, each running inline inferences back to
    /// back for the whole window (their requests are counted apart).
    #[arg(long, default_value_t = 0)]
    greedy: usize,
    /// Threads of each server session's own work pool (0: all sessions share one pool, the
    /// behaviour before per-session pools; default: the machine's cores).
    #[arg(long)]
    session_threads: Option<usize>,
    /// Image folder data set whose test images are sent (default: random inputs).
    #[arg(long)]
    data: Option<String>,
    /// Distinct inputs sent in turn.
    #[arg(long, default_value_t = 8)]
    images: usize,
    #[command(flatten)]
    ring: RingArgs,
    /// Seed of the arrival times (the parties draw their randomness from the operating system,
    /// as a deployed service does, although everything runs on loopback).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write every level's report (with per-request records) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw p50 and p95 latency against the request rate as an SVG, one line per model.
    #[arg(long)]
    plot: Option<PathBuf>,
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

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Exported model directory.
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: String,
    #[command(flatten)]
    ring: RingArgs,
    /// Network profile the in-process shaper imposes on this side's messages (lan, wan-fast, wan).
    #[arg(long)]
    profile: Option<String>,
    /// Admit this many client sessions, then exit once they end (0, the default: serve until
    /// Ctrl-C).
    #[arg(long, default_value_t = 0)]
    sessions: usize,
    /// Client sessions served at once.
    #[arg(long, default_value_t = 4)]
    max_sessions: usize,
    /// Sessions (running or waiting) one client address may hold at once.
    #[arg(long, default_value_t = 2)]
    max_per_peer: usize,
    /// Seconds a session's set-up (hello, base OTs, HE key) may take: a connection that sends
    /// nothing is dropped after it.
    #[arg(long, default_value_t = 30)]
    setup_timeout: u64,
    /// Threads of each session's own work pool, so that one busy client takes its share of the
    /// CPU and not the machine (0: all sessions share one pool; default: the machine's cores).
    #[arg(long)]
    session_threads: Option<usize>,
    /// Clients that wait for a free session slot; beyond them a client is refused with a message.
    #[arg(long, default_value_t = 4)]
    queue: usize,
    /// Seconds a silent peer (or one that takes no bytes) is waited for inside a request.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Seconds a session may wait for its next request.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Seconds a whole client session may last.
    #[arg(long, default_value_t = 3600)]
    session_deadline: u64,
    /// Offline phases a client session may precompute and keep (lowered to fit --max-memory-mb;
    /// the hello tells the client).
    #[arg(long, default_value_t = 8)]
    max_pool: usize,
    /// MB the server may hold for its sessions (HE weight cache, the model, each concurrent
    /// session's offline phase in flight and its pool), checked at start-up; 0: no budget.
    #[arg(long, default_value_t = 0)]
    max_memory_mb: u64,
}

#[derive(Args, Debug)]
pub struct ClientArgs {
    #[arg(long, default_value = "127.0.0.1:7700")]
    connect: String,
    /// Image folder data set (its test split is used); default: random inputs.
    #[arg(long)]
    data: Option<String>,
    /// Images to classify.
    #[arg(long, default_value_t = 1)]
    images: usize,
    #[arg(long)]
    profile: Option<String>,
    /// Also run the float checkpoint on each image and report whether the classes agree.
    #[arg(long)]
    check: Option<PathBuf>,
    /// Write the per-image results and traffic as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Seconds the whole session may last.
    #[arg(long, default_value_t = 3600)]
    session_deadline: u64,
    #[command(flatten)]
    offline: OfflineArgs,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Exported model directory (default: a synthetic residual CNN, see --width).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Width of the synthetic model's stem (32x32 inputs, 2 residual blocks).
    #[arg(long, default_value_t = 16)]
    width: usize,
    /// Fraction of active positions of the synthetic model.
    #[arg(long, default_value_t = 0.1)]
    keep: f64,
    #[command(flatten)]
    ring: RingArgs,
    /// ReLU circuits in the per-ReLU measurement.
    #[arg(long, default_value_t = 20000)]
    relus: usize,
    /// Network profiles for the whole-model runs (none = unshaped).
    #[arg(long, value_delimiter = ',', default_value = "none,lan,wan-fast,wan")]
    profiles: Vec<String>,
    /// Write the measurements as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// After the first whole-model run, list every layer's measured seconds (client's clock)
    /// beside the cost model's.
    #[arg(long)]
    per_layer: bool,
}

#[derive(Args, Debug)]
pub struct CostArgs {
    /// Exported model directory, or a checkpoint (exported on the fly with its masks).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    ring: RingArgs,
    /// Skip measuring this machine's speeds; print bytes and rounds only.
    #[arg(long)]
    no_calibrate: bool,
    /// Draw the predicted seconds of each layer (online filled, offline outlined) as an SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Network profile of the plot (none, lan, wan-fast, wan).
    #[arg(long, default_value = "wan")]
    plot_profile: String,
}

pub fn run(cmd: PiCommand) -> Result<()> {
    match cmd {
        PiCommand::Export(a) => export(a),
        PiCommand::Load(a) => load_cmd(a),
        PiCommand::Serve(a) => serve(a),
        PiCommand::Client(a) => client(a),
        PiCommand::Bench(a) => bench_cmd(a),
        PiCommand::Measure(a) => measure(a),
        PiCommand::Families(a) => crate::pi_families::run(a),
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

fn serve(a: ServeArgs) -> Result<()> {
    let file = load_export(&a.model)?;
    let model = QuantModel::new(&file, a.ring.ring()?)?;
    let mut opts = a.ring.options(Options::default())?;
    opts.limits.max_pool = a.max_pool;
    opts.limits.max_memory_bytes = a.max_memory_mb * 1_000_000;
    privlin_mpc::protocol::policy::check_wrap(&model.arch, &model.ring, opts.max_wrap_log2)?;
    opts.nonlinear = resolve_family(&model, &opts)?;
    let prof = profile(&a.profile)?;
    let listener = TcpListener::bind(&a.listen).with_context(|| format!("binding {}", a.listen))?;
    eprintln!(
        "serving {} ({} active ReLUs, ring l={} f={} w={}; output: {}; offline linear layers: {}) on {}; network: {}",
        a.model.display(),
        model.arch.active_total(),
        model.ring.bits,
        model.ring.frac,
        model.ring.gc_bits,
        opts.output.label(),
        opts.offline.label(),
        a.listen,
        prof.as_ref()
            .map(|p| p.describe())
            .unwrap_or_else(|| "unshaped TCP".into())
    );
    let cfg = ServeConfig {
        sessions: if a.sessions == 0 {
            usize::MAX
        } else {
            a.sessions
        },
        max_concurrent: a.max_sessions.max(1),
        queue: a.queue,
        io_timeout: Duration::from_secs(a.timeout),
        idle_timeout: Duration::from_secs(a.idle_timeout),
        session_deadline: Duration::from_secs(a.session_deadline),
        profile: prof,
        max_per_peer: a.max_per_peer.max(1),
        setup_deadline: Duration::from_secs(a.setup_timeout),
        session_threads: a
            .session_threads
            .unwrap_or(ServeConfig::default().session_threads),
    };
    // Ctrl-C: stop admitting, finish the requests in flight, close each session at its next
    // request boundary.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("second Ctrl-C: exiting without waiting");
            std::process::exit(130);
        }
        eprintln!("shutting down: finishing the requests in flight (Ctrl-C again to exit now)");
    })
    .context("installing the Ctrl-C handler")?;
    let name = a.model.display().to_string();
    service::serve_sessions(&listener, &model, &opts, &cfg, &stop, &|e| {
        eprintln!("{}", service_log_line(&name, &e))
    })?;
    Ok(())
}

/// One log line per service event.
fn service_log_line(model: &str, e: &service::Event) -> String {
    use privlin_mpc::protocol::Request;
    match e {
        service::Event::Started {
            session,
            peer,
            waited_s,
        } => format!("{peer} #{session}: session started ({waited_s:.2} s waiting for a slot), model {model}"),
        service::Event::Request {
            session,
            peer,
            request,
            pooled,
        } => match request {
            Request::Infer {
                pooled: ready,
                offline_s,
                online_s,
                bytes,
            } => format!(
                "{peer} #{session}: inference, model {model}, offline {}, online {online_s:.3} s, total {:.3} s, {:.2} MB; {pooled} precomputed left",
                if *ready {
                    "ready (precomputed)".to_string()
                } else {
                    format!("inline {offline_s:.3} s")
                },
                offline_s + online_s,
                *bytes as f64 / 1e6
            ),
            Request::Precompute { offline_s, bytes } => format!(
                "{peer} #{session}: offline phase precomputed in {offline_s:.3} s, {:.2} MB; {pooled} precomputed",
                *bytes as f64 / 1e6
            ),
        },
        service::Event::Ended {
            session,
            peer,
            result,
        } => match result {
            Ok(n) => format!("{peer} #{session}: session ended, {n} inferences served"),
            Err(e) => format!("{peer} #{session}: session failed: {e}"),
        },
        service::Event::Refused { peer, why } => format!("{peer}: refused: {why}"),
        service::Event::Ready {
            he_cache_bytes,
            he_cache_layers,
            memory,
        } => format!(
            "ready: HE weight cache {:.1} MB for {he_cache_layers} weight layers, shared by every session; {:.1} MB per offline phase, pools of {} per session: about {:.1} MB at peak with {} sessions",
            *he_cache_bytes as f64 / 1e6,
            memory.phase_bytes as f64 / 1e6,
            memory.max_pool,
            memory.peak_bytes as f64 / 1e6,
            memory.sessions
        ),
        service::Event::AcceptError { error, backoff_s } => {
            format!("accept failed ({error}); retrying in {backoff_s:.2} s")
        }
    }
}

fn load_cmd(a: LoadArgs) -> Result<()> {
    use privlin_mpc::load::{self, LoadConfig};
    if a.rates.is_empty() || a.rates.iter().any(|r| !(*r > 0.0 && r.is_finite())) {
        bail!(
            "--rates {:?}: every rate must be a positive number",
            a.rates
        );
    }
    if !a.label.is_empty() && a.label.len() != a.model.len() {
        bail!("{} --label for {} --model", a.label.len(), a.model.len());
    }
    if a.clients == 0 || a.images == 0 || a.duration.is_nan() || a.duration <= 0.0 {
        bail!("--clients, --images and --duration must be positive");
    }
    let ring = a.ring.ring()?;
    // The parties' randomness from the operating system; only the arrivals are seeded.
    let opts = a.ring.options(Options::default())?;
    let cores = bench::cores();
    println!(
        "machine: {} ({cores} threads; the server and every client share it)",
        bench::machine()
    );
    println!(
        "{}; arrivals seeded ({}); offline linear layers: {}; output: {}; {} client sessions, pool of {} precomputed offline phases each, {:.0} s of Poisson arrivals per rate",
        opts.randomness.label(),
        a.seed,
        opts.offline.label(),
        opts.output.label(),
        a.clients,
        a.pool,
        a.duration
    );
    let mut report = Vec::new();
    let mut lines = Vec::new();
    for (mi, path) in a.model.iter().enumerate() {
        let label = a.label.get(mi).cloned().unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string())
        });
        let file = load_export(path)?;
        let model = QuantModel::new(&file, ring)?;
        let imgs = inputs(&model.arch, &a.data, a.images)?;
        let norm = match &file.arch.json.normalize {
            Some(n) => pi::images::normalization(n)?,
            None => Normalization {
                mean: [0.5; 3],
                std: [0.25; 3],
            },
        };
        let mut xs = Vec::new();
        let mut classes = Vec::new();
        for (_, px) in &imgs {
            let x = pi::normalize_image(px, &norm);
            let enc = QuantModel::encode_input(&model.arch, &ring, &x)?;
            let run = privlin_mpc::plain::forward(&model, &enc);
            classes.push(privlin_mpc::plain::decode_logits(&model, &run.logits).1);
            xs.push(enc);
        }
        let cal = bench::calibrate_for(&model, cores);
        let (_, _, on_s, off_s) = cost::totals(&model.arch, &ring, &opts, &cal)?;
        let predicted = 1.0 / (on_s + off_s);
        let single = load::single_request(&model, &xs[0], &opts)?;
        println!(
            "\n## {label}: {} active ReLUs, {:.1} M MACs\none request alone: {:.3} s with its offline phase precomputed, {:.3} s with it inline; cost model: {:.3} s online + {:.3} s offline compute per inference, saturation at about {predicted:.3} requests/s",
            model.arch.active_total(),
            (0..model.arch.ops().len()).map(|i| privlin_mpc::model::macs(&model.arch, i)).sum::<u64>() as f64 / 1e6,
            single.0,
            single.1,
            on_s,
            off_s
        );
        println!("| rate /s | arrived | done | throughput /s | latency p50 / p95 / p99 s | queue p50 / p95 s | inline offline p50 / p95 s | online p50 s | precomputed |");
        println!("|---:|---:|---:|---:|---|---|---|---:|---:|");
        let mut levels = Vec::new();
        let mut departs = None;
        for &rate in &a.rates {
            let cfg = LoadConfig {
                rate,
                duration: Duration::from_secs_f64(a.duration),
                clients: a.clients,
                pool: a.pool,
                grace: Duration::from_secs_f64(a.grace.unwrap_or(a.duration)),
                seed: a.seed,
                greedy: a.greedy,
                session_threads: a
                    .session_threads
                    .unwrap_or(ServeConfig::default().session_threads),
            };
            let r = load::run(&model, &xs, &classes, &opts, &cfg)?;
            println!(
                "| {rate} | {} | {} | {:.3} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} | {:.0} % |",
                r.arrived,
                r.completed,
                r.throughput,
                r.latency.p50,
                r.latency.p95,
                r.latency.p99,
                r.queue.p50,
                r.queue.p95,
                r.inline_offline.p50,
                r.inline_offline.p95,
                r.online.p50,
                100.0 * r.pooled_share
            );
            if r.greedy > 0 {
                println!(
                    "  beside {} greedy session(s) that completed {} inline inferences in the window",
                    r.greedy, r.greedy_requests
                );
            }
            for f in &r.failures {
                println!("  session failed: {f}");
            }
            if r.wrong > 0 {
                println!(
                    "  {} requests got a class other than the plaintext model's",
                    r.wrong
                );
            }
            // Departure from the single-request figure: p50 above 1.5x it and at least 0.25 s
            // more (milliseconds of scheduling noise are not a departure for a 50 ms request).
            if departs.is_none() && r.latency.p50 > (1.5 * single.0).max(single.0 + 0.25) {
                departs = Some(rate);
            }
            levels.push(r);
        }
        match departs {
            Some(r) => println!("p50 latency first exceeds the single precomputed request's by 1.5x and 0.25 s at {r} requests/s (cost model saturation: {predicted:.3} /s)"),
            None => println!("p50 latency stays within 1.5x (or 0.25 s) of the single precomputed request at every rate tried (cost model saturation: {predicted:.3} /s)"),
        }
        let points = |q: fn(&load::Percentiles) -> f64| {
            levels
                .iter()
                .filter(|r| r.completed > 0)
                .map(|r| (r.rate, q(&r.latency)))
                .collect()
        };
        for (suffix, q) in [("p50", points(|p| p.p50)), ("p95", points(|p| p.p95))] {
            lines.push(privlin::plot::Line {
                label: format!("{label} {suffix}"),
                points: q,
            });
        }
        report.push(serde_json::json!({
            "label": label,
            "model": path,
            "active_relus": model.arch.active_total(),
            "single_request_s": {"precomputed": single.0, "inline": single.1},
            "predicted": {"online_s": on_s, "offline_s": off_s, "saturation_per_s": predicted},
            "departs_at": departs,
            "levels": levels,
        }));
    }
    if let Some(p) = &a.plot {
        privlin::plot::pareto(
            p,
            "Private inference latency under load",
            "requests per second (log)",
            "latency s",
            &lines,
        )?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.json {
        let v = serde_json::json!({
            "machine": bench::machine(),
            "threads": cores,
            "randomness": opts.randomness.label(), "arrival_seed": a.seed,
            "offline_linear": opts.offline.label(),
            "clients": a.clients,
            "pool": a.pool,
            "duration_s": a.duration,
            "models": report,
        });
        privlin::io::atomic_write_bytes(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
        println!("wrote {}", p.display());
    }
    Ok(())
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

/// Labels of the sites with active positions (their messages are the ReLUs' cost).
fn site_labels(arch: &Arch) -> Vec<String> {
    (0..arch.ops().len())
        .filter(|i| arch.active.get(i).is_some_and(|v| !v.is_empty()))
        .map(|i| privlin_mpc::protocol::op_label(arch, i))
        .collect()
}

/// Bytes under `phase` of the sites with active positions (their messages are the ReLUs' cost).
fn active_site_bytes(m: &Meter, arch: &Arch, phase: &str) -> u64 {
    let sites = site_labels(arch);
    m.entries()
        .iter()
        .filter(|e| {
            e.label
                .strip_prefix(phase)
                .is_some_and(|l| sites.iter().any(|x| x == l))
        })
        .map(|e| e.bytes())
        .sum()
}

fn print_traffic(m: &Meter, arch: &Arch) {
    let active = arch.active_total();
    println!(
        "{:<28} {:>14} {:>14} {:>6} {:>8} {:>9}",
        "label", "sent B", "received B", "msgs", "flights", "seconds"
    );
    for e in m.entries() {
        println!(
            "{:<28} {:>14} {:>14} {:>6} {:>8} {:>9.4}",
            e.label, e.bytes_sent, e.bytes_received, e.messages, e.flights, e.seconds
        );
    }
    for phase in ["offline/", "online/"] {
        let t = m.total(phase);
        let site_bytes = active_site_bytes(m, arch, phase);
        println!(
            "{phase:<9} total {:>12} B ({} flights, {:.3} s); active-ReLU sites {} B = {:.1} B per active ReLU",
            t.bytes(),
            t.flights,
            t.seconds,
            site_bytes,
            site_bytes as f64 / active.max(1) as f64
        );
    }
}

fn client(a: ClientArgs) -> Result<()> {
    let prof = profile(&a.profile)?;
    let stream =
        TcpStream::connect(&a.connect).with_context(|| format!("connecting to {}", a.connect))?;
    let t = TcpTransport::new(stream, Duration::from_secs(a.timeout))?;
    let ch = Channel::new(Box::new(t))
        .with_profile(prof.clone())
        .with_deadline(Duration::from_secs(a.session_deadline));
    let mut c = Client::connect(
        ch,
        &Options::default()
            .with_offline(a.offline.mode()?)
            .with_nonlinear(a.offline.nonlinear()?),
    )?;
    let arch = c.arch().clone();
    println!(
        "connected to {}: {} ({} active ReLUs); offline linear layers: {}; output: {}; network: {}",
        a.connect,
        arch.json.name,
        arch.active_total(),
        c.hello.offline,
        c.hello.output.label(),
        prof.as_ref()
            .map(|p| p.describe())
            .unwrap_or_else(|| "unshaped TCP".into())
    );
    let norm = match &arch.json.normalize {
        Some(n) => pi::images::normalization(n)?,
        None => Normalization {
            mean: [0.5; 3],
            std: [0.25; 3],
        },
    };
    let check = match &a.check {
        Some(p) => Some(privlin::linearize::run::load_with_masks(
            p,
            runtime("cpu", 0)?,
        )?),
        None => None,
    };
    // With --check, also the plaintext fixed-point model (what the protocol computes, up to local
    // truncation), to tell quantization from protocol effects.
    let fixed = match &check {
        Some((model, spec, masks)) => {
            let file = pi::export(model, masks.as_ref(), &spec.normalization, "check")?;
            Some(QuantModel::new(&file, c.ring())?)
        }
        None => None,
    };
    let (mut fixed_agree, mut overflows) = (0, 0);
    let mut rows = Vec::new();
    let (mut agree, mut correct, mut labelled) = (0, 0, 0);
    for (k, (label, px)) in inputs(&arch, &a.data, a.images)?.into_iter().enumerate() {
        let x = pi::normalize_image(&px, &norm);
        c.channel().meter.reset();
        let inf = c.infer(&x)?;
        c.channel().meter.stop_clock();
        let float_class = check.as_ref().map(|(model, _, masks)| {
            pi::float_classes(
                model,
                masks.as_ref(),
                std::slice::from_ref(&x),
                arch.json.input_shape,
            )[0]
        });
        agree += (float_class == Some(inf.class)) as usize;
        let fixed_class = match &fixed {
            Some(q) => {
                let enc = QuantModel::encode_input(&q.arch, &q.ring, &x)?;
                let r = privlin_mpc::plain::forward(q, &enc);
                overflows += r.gc_overflows;
                if r.identity_over_bound(&q.ring) {
                    eprintln!(
                        "warning: image {k}: |y| = 2^{:.1} at an identity position, at or above 2^{} (the magnitude the wrap-failure bound assumes); local truncation may fail more often than stated (--truncation faithful does not)",
                        (r.max_identity_abs as f64).log2(),
                        q.ring.gc_bits - 1
                    );
                }
                Some(privlin_mpc::plain::decode_logits(q, &r.logits).1)
            }
            None => None,
        };
        fixed_agree += (fixed_class.is_some() && fixed_class == float_class) as usize;
        if let Some(l) = label {
            labelled += 1;
            correct += (l as usize == inf.class) as usize;
        }
        println!(
            "image {k}: private class {}{}{}{}; offline {:.3} s, online {:.3} s",
            inf.class,
            label.map(|l| format!(", label {l}")).unwrap_or_default(),
            float_class
                .map(|f| format!(", float model {f}"))
                .unwrap_or_default(),
            fixed_class
                .map(|f| format!(", plaintext fixed point {f}"))
                .unwrap_or_default(),
            inf.offline_s,
            inf.online_s
        );
        rows.push(serde_json::json!({
            "image": k, "label": label, "private_class": inf.class, "float_class": float_class,
            "fixed_point_class": fixed_class, "logits": inf.logits, "offline_s": inf.offline_s, "online_s": inf.online_s,
            "traffic": c.channel().meter.entries(),
        }));
    }
    print_traffic(&c.channel().meter, &arch);
    let (c_offline, c_output) = (c.hello.offline.clone(), c.hello.output.label());
    if check.is_some() {
        println!(
            "private class == float model's class on {agree}/{} images",
            rows.len()
        );
        println!(
            "plaintext fixed-point class == float model's class on {fixed_agree}/{} images; {overflows} active pre-activations outside the circuit width",
            rows.len()
        );
    }
    if labelled > 0 {
        println!("private accuracy {correct}/{labelled}");
    }
    c.close()?;
    if let Some(p) = &a.json {
        let v = serde_json::json!({ "server": a.connect, "offline_linear": c_offline, "output": c_output,
            "randomness": "operating-system randomness", "network": prof, "images": rows });
        privlin_mpc::model::write_atomic(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}

fn pct(pred: f64, meas: f64) -> String {
    if meas == 0.0 {
        "-".into()
    } else {
        format!("{:+.1}%", (pred - meas) / meas * 100.0)
    }
}

fn bench_cmd(a: BenchArgs) -> Result<()> {
    let ring = a.ring.ring()?;
    let file = match &a.model {
        Some(p) => load_export(p)?,
        None => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let spec = Spec {
                input: [3, 32, 32],
                width: a.width,
                blocks: 2,
                downsample: true,
                classes: 10,
                keep: a.keep,
                ..Spec::default()
            };
            synthetic::model(&mut rng, &spec)
        }
    };
    let model = QuantModel::new(&file, ring)?;
    // Both parties are this process: seeded so that runs repeat; labelled as not private.
    let opts = a.ring.options_without_family(Options::insecure_seeded(7))?;
    let families = a
        .ring
        .offline
        .families()?
        .into_iter()
        .map(|f| resolve_family(&model, &opts.with_nonlinear(f)))
        .collect::<Result<Vec<_>>>()?;
    let opts = opts.with_nonlinear(families[0]);
    let all = bench::cores();
    println!("machine: {}", bench::machine());
    println!(
        "randomness: {}; output: {}",
        opts.randomness.label(),
        opts.output.label()
    );
    println!(
        "ring: l={} f={} w={}; offline linear layers: {}",
        ring.bits,
        ring.frac,
        ring.gc_bits,
        opts.offline.label()
    );
    println!(
        "\n## Per active ReLU ({} circuits; offline = garbling + OT extension of the client's w + l input labels, online = evaluation + the server's label selection and decoding)",
        a.relus
    );
    println!(
        "{:>7} {:>5} {:>9} {:>8} {:>11} {:>8} {:>9} {:>10} {:>12} {:>11} {:>11}",
        "threads",
        "ANDs",
        "garble us",
        "OT us",
        "offline us",
        "eval us",
        "other us",
        "online us",
        "online ReLU/s",
        "x DELPHI on",
        "x DELPHI off"
    );
    let mut micro = Vec::new();
    for t in [1, all] {
        let m = bench::relu_micro(&ring, a.relus, t);
        let (off, on) = (m.garble_us + m.ot_us, m.eval_us + m.online_overhead_us);
        println!(
            "{:>7} {:>5} {:>9.2} {:>8.2} {:>11.2} {:>8.2} {:>9.2} {:>10.2} {:>12.0} {:>10.1}x {:>10.1}x",
            t,
            m.and_gates_per_relu,
            m.garble_us,
            m.ot_us,
            off,
            m.eval_us,
            m.online_overhead_us,
            on,
            1e6 / on,
            cost::DELPHI_EVAL_US_PER_RELU / on,
            cost::DELPHI_GARBLE_US_PER_RELU / m.garble_us
        );
        micro.push(m);
        if all == 1 {
            break;
        }
    }
    let (gkwy, mmo) = bench::hash_cost(1 << 20);
    println!(
        "garbling hash, one thread: {gkwy:.1} ns (GKWY tweakable CCR, 2 AES calls) vs {mmo:.1} ns for the one-call form it replaced ({:.2}x)",
        gkwy / mmo
    );
    println!(
        "x DELPHI: its {} us evaluation and {} us garbling per ReLU per thread (paper figures, ../shared/docs/reference.md) over ours on this machine",
        cost::DELPHI_EVAL_US_PER_RELU,
        cost::DELPHI_GARBLE_US_PER_RELU
    );
    // Both families on one site, end to end, measured the same way in this run.
    let ot = match families.iter().find(|f| matches!(f, Nonlinear::Ot { .. })) {
        Some(f) => *f,
        None => Nonlinear::by_name("ot")?,
    };
    println!(
        "\n## Both families per active ReLU ({} ReLUs of one site, truncated by f, run end to end by a server and a client thread over the in-memory channel, client's clock; bytes both ways with frame headers; the shares are checked against ReLU(y) >> f)",
        a.relus
    );
    println!(
        "{:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>5}",
        "family",
        "threads",
        "offline us",
        "online us",
        "total us",
        "offline B",
        "online B",
        "total B",
        "flights",
        "OTs"
    );
    let mut site_runs = Vec::new();
    for t in [1, all] {
        for fam in [Nonlinear::Gc, ot] {
            let r = bench::site_run(&ring, a.relus, t, fam, 3)?;
            println!(
                "{:>7} {:>7} {:>10.2} {:>10.2} {:>10.2} {:>10.0} {:>10.1} {:>10.0} {:>8} {:>5}",
                r.family,
                t,
                r.offline_us,
                r.online_us,
                r.offline_us + r.online_us,
                r.offline_bytes,
                r.online_bytes,
                r.offline_bytes + r.online_bytes,
                r.online_flights,
                r.ots_per_relu
            );
            site_runs.push(r);
        }
        if all == 1 {
            break;
        }
    }
    println!("flights: online flights of the site (gc: labels, output bits; ot: one per comparison level, then two)");
    // The silent OT extension under `ot`: its rounds are in the offline columns above, its
    // session set-up (base OTs, IKNP bootstrap) is not.
    let round_s = bench::silent_round_s(1);
    let lpn = privlin_mpc::ot::silent::FERRET_B10;
    let ot_run = site_runs.iter().find(|r| r.family != "gc");
    println!(
        "silent OT (Ferret, t={} k=2^{} h={}): one round {:.1} ms on one thread per party, {} OTs, {:.1} ns/OT, {:.0} KB ({:.2} B/OT); session set-up {:.2} MB both ways ({:.0} B per ReLU if a session ran only this site)",
        lpn.t,
        lpn.log_k,
        lpn.depth,
        round_s * 1e3,
        lpn.usable(),
        round_s * 1e9 / lpn.usable() as f64,
        lpn.message_bytes(1) as f64 / 1e3,
        lpn.message_bytes(1) as f64 / lpn.usable() as f64,
        ot_run.map_or(0.0, |r| r.setup_bytes as f64 / 1e6),
        ot_run.map_or(0.0, |r| r.setup_bytes as f64 / r.relus as f64),
    );
    // The per-ReLU bytes of the first family listed, one thread (they do not depend on threads).
    let first = &site_runs[if families[0] == Nonlinear::Gc { 0 } else { 1 }];
    let (online_b, offline_b) = (first.online_bytes, first.offline_bytes);
    println!(
        "bytes per active ReLU ({}): online {online_b:.0} (DELPHI {:.0}, ratio {:.2}), offline {offline_b:.0} (DELPHI {:.0}, ratio {:.2})",
        first.family,
        cost::DELPHI_ONLINE_BYTES_PER_RELU,
        online_b / cost::DELPHI_ONLINE_BYTES_PER_RELU,
        cost::DELPHI_OFFLINE_BYTES_PER_RELU,
        offline_b / cost::DELPHI_OFFLINE_BYTES_PER_RELU
    );

    println!(
        "\n## Whole model: {} ({} ops, {} active ReLUs of {} positions), one inference, two threads of this process over the in-memory channel, threads per party",
        file.arch.json.name,
        file.arch.ops().len(),
        file.arch.active_total(),
        (0..file.arch.ops().len()).filter(|&i| matches!(file.arch.ops()[i], privlin_mpc::Op::Relu { .. })).map(|i| file.arch.numel(i + 1)).sum::<usize>()
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let x: Vec<f32> = (0..file.arch.numel(0))
        .map(|_| rand::Rng::gen_range(&mut rng, -1.0..1.0))
        .collect();
    let enc = QuantModel::encode_input(&model.arch, &ring, &x)?;
    let reference = privlin_mpc::plain::forward(&model, &enc);
    println!(
        "{:>7} {:>9} {:>8} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "family",
        "profile",
        "threads",
        "offline s",
        "pred.",
        "online s",
        "pred.",
        "offline MB",
        "online MB",
        "off err",
        "on err"
    );
    let mut whole = Vec::new();
    let mut site_bytes = None;
    for (fam, pname) in families
        .iter()
        .flat_map(|f| a.profiles.iter().map(move |p| (*f, p)))
    {
        let opts = opts.with_nonlinear(fam);
        let prof = profile(&Some(pname.clone()))?;
        let per_party = bench::threads_per_party();
        for t in if prof.is_none() && per_party > 1 {
            vec![1, per_party]
        } else {
            vec![per_party]
        } {
            let cal = bench::calibrate_for(&model, t);
            let s = bench::session(&model, std::slice::from_ref(&enc), prof.clone(), t, &opts)?;
            let inf = &s.inferences[0];
            let (on_t, off_t, on_c, off_c) = cost::totals(&model.arch, &ring, &opts, &cal)?;
            let (p_off, p_on) = (
                cost::phase_seconds(off_c, &off_t, prof.as_ref(), &cal),
                cost::phase_seconds(on_c, &on_t, prof.as_ref(), &cal),
            );
            cost::check_traffic(&s.client, &model.arch, &ring, &opts)?;
            let (mon, moff) = (s.client.total("online/"), s.client.total("offline/"));
            // Bytes of the site messages (server labels, client output bits, framing) per active ReLU.
            site_bytes = Some(
                active_site_bytes(&s.client, &model.arch, "online/") as f64
                    / model.arch.active_total().max(1) as f64,
            );
            let agree = privlin_mpc::plain::decode_logits(&model, &reference.logits).1 == inf.class;
            println!(
                "{:>7} {:>9} {:>8} {:>12.3} {:>12.3} {:>12.3} {:>12.3} {:>12.2} {:>12.2} {:>9} {:>9}",
                fam.name(),
                pname,
                t,
                inf.offline_s,
                p_off,
                inf.online_s,
                p_on,
                moff.bytes() as f64 / 1e6,
                mon.bytes() as f64 / 1e6,
                pct(p_off, inf.offline_s),
                pct(p_on, inf.online_s)
            );
            if a.per_layer && whole.is_empty() {
                print_per_layer(&model, &opts, &cal, &s.client, prof.as_ref())?;
            }
            // The weight layers' part of the offline phase (HE or the dealer), measured.
            let (lin_b, lin_s) = bench::offline_linear(&s.client, &model.arch);
            whole.push(serde_json::json!({
                "offline_linear_bytes": lin_b, "offline_linear_s": lin_s,
                "nonlinear": fam.name(), "profile": pname, "shaper": prof.as_ref().map(|p| p.describe()), "threads": t,
                "offline_s": inf.offline_s, "online_s": inf.online_s,
                "predicted_offline_s": p_off, "predicted_online_s": p_on,
                "offline_bytes": moff.bytes(), "online_bytes": mon.bytes(),
                "offline_flights": moff.flights, "online_flights": mon.flights,
                "class_matches_plaintext": agree, "calibration": cal,
            }));
        }
    }
    println!("bytes: the cost model's message sequence matched the channel's counts exactly in every run");
    if let Some(b) = site_bytes {
        println!(
            "measured online bytes at the sites per active ReLU (labels, output bits, frame headers): {b:.1} (DELPHI {:.0}, ratio {:.2})",
            cost::DELPHI_ONLINE_BYTES_PER_RELU,
            b / cost::DELPHI_ONLINE_BYTES_PER_RELU
        );
    }
    println!(
        "papers' estimate for {} ReLUs at 0.021 s per 1,000: {:.3} s online",
        file.arch.active_total(),
        file.arch.active_total() as f64 / 1000.0 * cost::PAPER_SECONDS_PER_KRELU
    );
    if let Some(p) = &a.json {
        let v = serde_json::json!({ "machine": bench::machine(), "ring": ring, "offline_linear": opts.offline.label(),
            "randomness": opts.randomness.label(), "output": opts.output.label(),
            "hash_ns": { "gkwy": gkwy, "one_call_mmo_replaced": mmo },
            "per_relu": micro, "nonlinear": first.family, "online_bytes_per_relu": online_b, "offline_bytes_per_relu": offline_b,
            "sites": site_runs, "whole_model": whole,
            "silent_ot": { "round_s": round_s, "ots_per_round": lpn.usable(), "round_bytes": lpn.message_bytes(1) } });
        privlin_mpc::model::write_atomic(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}

/// Measured seconds of every label of one inference (client's clock) beside the cost model's.
fn print_per_layer(
    model: &QuantModel,
    opts: &Options,
    cal: &Calibration,
    m: &Meter,
    prof: Option<&Profile>,
) -> Result<()> {
    println!(
        "{:<26} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}",
        "layer", "offline s", "pred.", "err", "online s", "pred.", "err"
    );
    // Labels are unique in a meter; a layer without messages in a phase took no time there (an
    // empty float sum would print as -0).
    let seconds = |label: String| -> f64 {
        m.entries()
            .iter()
            .find(|e| e.label == label)
            .map_or(0.0, |e| e.seconds)
    };
    // Online, the client waits for the server's weight layers under the next site's label: they
    // are predicted into that row.
    let mut pending = 0.0;
    // Offline seconds, bytes (the cost model's, checked equal to the meter's before this is
    // called) and predicted compute of the sites [0] and the weight layers [1].
    let mut split = [(0.0, 0u64, 0.0); 2];
    for c in cost::layer_costs(&model.arch, &model.ring, opts, cal)? {
        let (off, on) = (
            seconds(format!("offline/{}", c.label)),
            seconds(format!("online/{}", c.label)),
        );
        let part = &mut split[usize::from(c.kind == "conv" || c.kind == "linear")];
        part.0 += off;
        part.1 += c.offline.bytes();
        part.2 += c.offline_compute_s;
        let p_off = cost::phase_seconds(c.offline_compute_s, &c.offline, prof, cal);
        let mut p_on = cost::phase_seconds(c.online_compute_s, &c.online, prof, cal);
        if c.online.messages == 0 {
            pending += p_on;
            p_on = 0.0;
        } else {
            p_on += std::mem::take(&mut pending);
        }
        println!(
            "{:<26} {:>10.4} {:>10.4} {:>8} {:>10.4} {:>10.4} {:>8}",
            c.label,
            off,
            p_off,
            pct(p_off, off),
            on,
            p_on,
            pct(p_on, on)
        );
    }
    println!(
        "offline by part: weight layers ({}) {:.3} s, {:.2} MB (compute predicted {:.3} s); \
         sites and argmax (garbled circuits, OT) {:.3} s, {:.2} MB (compute predicted {:.3} s)",
        opts.offline.name(),
        split[1].0,
        split[1].1 as f64 / 1e6,
        split[1].2,
        split[0].0,
        split[0].1 as f64 / 1e6,
        split[0].2
    );
    Ok(())
}

/// Calibration for `cost` (this machine's speeds, and the model's own weight layers timed), or
/// zeros when skipped.
fn calibration(file: &ModelFile, ring: &Ring, skip: bool) -> Result<Calibration> {
    if skip {
        return Ok(Calibration::default());
    }
    Ok(bench::calibrate_for(
        &QuantModel::new(file, *ring)?,
        bench::cores(),
    ))
}

pub fn cost_cmd(a: CostArgs) -> Result<()> {
    let ring = a.ring.ring()?;
    let plot_profile = profile(&Some(a.plot_profile.clone()))?;
    if a.plot.is_some() && a.no_calibrate {
        bail!("--plot draws predicted seconds: it needs the calibration (drop --no-calibrate)");
    }
    let file = load_export(&a.model)?;
    let arch = &file.arch;
    let cal = calibration(&file, &ring, a.no_calibrate)?;
    let mut opts = a.ring.options(Options::default())?;
    opts.nonlinear = resolve_family(&QuantModel::new(&file, ring)?, &opts)?;
    let costs = cost::layer_costs(arch, &ring, &opts, &cal)?;
    println!(
        "model: {} | ring l={} f={} w={} | offline linear layers: {} | active ReLUs: {}",
        arch.json.name,
        ring.bits,
        ring.frac,
        ring.gc_bits,
        opts.offline.label(),
        opts.nonlinear.name()
    );
    if !a.no_calibrate {
        println!(
            "calibration on {}: {:.2} ns/MAC, {:.1} ns/AND garbled, {:.1} ns/AND evaluated, {:.1} ns/OT",
            bench::machine(), cal.mac_ns, cal.garble_and_ns, cal.eval_and_ns, cal.ot_ns
        );
    }
    println!(
        "{:<26} {:>6} {:>9} {:>9} {:>13} {:>13} {:>14} {:>10} {:>10}",
        "layer",
        "kind",
        "positions",
        "active",
        "MACs",
        "online B",
        "offline B",
        "online s",
        "offline s"
    );
    for c in &costs {
        println!(
            "{:<26} {:>6} {:>9} {:>9} {:>13} {:>13} {:>14} {:>10.4} {:>10.4}",
            c.label,
            c.kind,
            if c.kind == "relu" {
                c.positions.to_string()
            } else {
                "".into()
            },
            if c.kind == "relu" {
                c.active.to_string()
            } else {
                "".into()
            },
            c.macs,
            c.online.bytes(),
            c.offline.bytes(),
            c.online_compute_s,
            c.offline_compute_s
        );
    }
    if let Some((ctx, plan)) = cost::he_plan(arch, &ring, &opts.offline)? {
        println!(
            "HE layouts (log2 Q = {:.1}, answers at {:.1} bits): layer, input channels per \
             polynomial x output channels per product, polynomials up / answers down, noise margin",
            ctx.log_q, ctx.log_qk
        );
        let mut ops: Vec<_> = plan.iter().collect();
        ops.sort_by_key(|(i, _)| **i);
        for (&i, l) in ops {
            println!(
                "  {:<26} {:>4} x {:<4} {:>5} / {:<5} {:>5.1} bits",
                privlin_mpc::protocol::op_label(arch, i),
                l.cb,
                l.m,
                l.inputs(),
                l.answers(),
                l.noise.margin_bits
            );
        }
    }
    if let Some((answers, log2)) = cost::flood_per_inference(arch, &ring, &opts.offline)? {
        println!(
            "HE flooding: {answers} answers per inference, each within 2^-{} of weight-independent; per inference within 2^{log2:.1} (union bound)",
            match opts.offline {
                OfflineMode::He(p) => p.flood_bits,
                OfflineMode::Dealer => 0,
            }
        );
    }
    if let Some((ctx, plan)) = cost::he_plan(arch, &ring, &opts.offline)? {
        use privlin_mpc::protocol::homomorphic;
        let budget = opts.limits.he_cache_bytes;
        let kept = homomorphic::cached_layers(&plan, &ctx, budget);
        println!(
            "HE weight cache (server, per session): {:.1} MB for {} of {} weight layers (budget {} MB; all layers: {:.1} MB)",
            homomorphic::cache_bytes(&plan, &ctx, budget) as f64 / 1e6,
            kept.len(),
            plan.len(),
            budget >> 20,
            homomorphic::cache_bytes(&plan, &ctx, u64::MAX) as f64 / 1e6
        );
    }
    let (on, off, on_c, off_c) = cost::totals(arch, &ring, &opts, &cal)?;
    let active = arch.active_total();
    println!(
        "total: {active} active ReLUs, {} MACs; online {} B in {} flights, offline {} B in {} flights",
        costs.iter().map(|c| c.macs).sum::<u64>(), on.bytes(), on.flights, off.bytes(), off.flights
    );
    println!(
        "{:<40} {:>12} {:>12}",
        "predicted latency (one inference)", "online s", "offline s"
    );
    println!(
        "{:<50} {:>12.3} {:>12.3}",
        "compute and hand-over only (no network delay)",
        cost::phase_seconds(on_c, &on, None, &cal),
        cost::phase_seconds(off_c, &off, None, &cal)
    );
    for p in Profile::presets() {
        println!(
            "{:<50} {:>12.3} {:>12.3}",
            p.describe(),
            cost::phase_seconds(on_c, &on, Some(&p), &cal),
            cost::phase_seconds(off_c, &off, Some(&p), &cal)
        );
    }
    println!(
        "{:<50} {:>12.3}",
        "papers' figure: 0.021 s per 1,000 ReLUs",
        active as f64 / 1000.0 * cost::PAPER_SECONDS_PER_KRELU
    );
    // Both nonlinear families side by side (the weight layers' part is the same in both).
    println!("\nboth nonlinear families, one inference (online + offline s per profile)");
    let mut head = format!(
        "{:<6} {:>12} {:>12} {:>9}",
        "family", "online B", "offline B", "flights"
    );
    head += &format!(" {:>10}", "none");
    for p in Profile::presets() {
        head += &format!(" {:>10}", p.name);
    }
    println!("{head}");
    for f in Nonlinear::candidates() {
        let o = opts.with_nonlinear(f);
        let (on, off, on_c, off_c) = cost::totals(arch, &ring, &o, &cal)?;
        let mut row = format!(
            "{:<6} {:>12} {:>12} {:>4} / {:<3}",
            f.name(),
            on.bytes(),
            off.bytes(),
            on.flights,
            off.flights
        );
        for p in std::iter::once(None).chain(Profile::presets().into_iter().map(Some)) {
            let t = cost::phase_seconds(on_c, &on, p.as_ref(), &cal)
                + cost::phase_seconds(off_c, &off, p.as_ref(), &cal);
            row += &format!(" {t:>10.3}");
        }
        println!("{row}");
    }
    if a.no_calibrate {
        println!("(no calibration: seconds are the network's alone)");
    }
    if let Some(path) = &a.plot {
        let labels: Vec<String> = costs.iter().map(|c| c.label.clone()).collect();
        let per = |online: bool| -> Vec<f64> {
            costs
                .iter()
                .map(|c| {
                    let (compute, traffic) = if online {
                        (c.online_compute_s, &c.online)
                    } else {
                        (c.offline_compute_s, &c.offline)
                    };
                    cost::phase_seconds(compute, traffic, plot_profile.as_ref(), &cal)
                })
                .collect()
        };
        let (on, off) = (per(true), per(false));
        let network = plot_profile
            .as_ref()
            .map(|p| p.describe())
            .unwrap_or_else(|| "no network delay".into());
        privlin::plot::bar_chart(
            path,
            &format!("Predicted seconds per layer, {network}"),
            "seconds per inference",
            &labels,
            &[
                privlin::plot::BarSeries {
                    values: &off,
                    errors: None,
                    color: privlin::plot::palette(1),
                    filled: false,
                    label: Some("offline"),
                },
                privlin::plot::BarSeries {
                    values: &on,
                    errors: None,
                    color: privlin::plot::palette(0),
                    filled: true,
                    label: Some("online"),
                },
            ],
        )?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
