//! `privlin importance`, `privlin allocate`, `privlin shapley-score` and the hidden
//! `privlin utility-worker`: argument parsing and printing over `privlin::importance`.

use crate::common::{worker_spec, RuntimeArgs, WorkerArgs};
use anyhow::{bail, Result};
use clap::Args;
use privlin::importance::compute::{self, ImportanceConfig};
use privlin::importance::game::UtilityTable;
use privlin::importance::{Importance, Method};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ImportanceArgs {
    /// Checkpoint directory of the trained all-ReLU model.
    #[arg(long, required_unless_present = "utility_table")]
    ckpt: Option<PathBuf>,
    /// Run the estimator on a given game instead of a model: {"players": [...], "utilities": {"0110": u}}.
    #[arg(long, conflicts_with = "ckpt")]
    utility_table: Option<PathBuf>,
    #[arg(long, default_value = "importance.json")]
    out: PathBuf,
    /// Also draw the values as an SVG bar chart here.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    flags: crate::importance_flags::ImportanceFlags,
    #[command(flatten)]
    workers: WorkerArgs,
    #[command(flatten)]
    rt: RuntimeArgs,
}

pub fn run_importance(a: ImportanceArgs) -> Result<()> {
    let cfg: ImportanceConfig = a.flags.clone().into();
    if cfg.method.is_empty() {
        bail!("--method is required ({})", Method::NAMES);
    }
    let imp = match &a.utility_table {
        Some(t) => compute::from_table(&cfg, t)?,
        None => {
            let device = a.rt.device.clone().unwrap_or_else(|| "auto".into());
            let threads = a.rt.threads.unwrap_or(0);
            let dev = crate::common::runtime(&device, threads)?;
            let spec = worker_spec(&a.workers, &device, threads)?;
            let ckpt = a
                .ckpt
                .clone()
                .expect("clap requires --ckpt without --utility-table");
            compute::compute(&cfg, &ckpt, dev, Some(&spec))?
        }
    };
    privlin::io::atomic_write_json(&a.out, &imp)?;
    print_importance(&imp, &a.out, a.plot.as_deref())
}

/// `privlin utility-worker`: answer a game's utility requests on stdin / stdout (started by
/// `--workers N`, see `privlin::importance::workers`).
pub fn run_utility_worker() -> Result<()> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    privlin::importance::workers::serve(stdin.lock(), stdout.lock())
}

/// Print an importance result (and draw it, if asked).
pub fn print_importance(
    imp: &Importance,
    out: &std::path::Path,
    plot: Option<&std::path::Path>,
) -> Result<()> {
    println!("{:<24} {:>12} {:>10}", "player", "value", "stderr");
    for (i, p) in imp.players.iter().enumerate() {
        let se = imp
            .stderr
            .as_ref()
            .map(|s| format!("{:.4}", s[i]))
            .unwrap_or_else(|| "-".into());
        println!("{:<24} {:>12.4} {:>10}", p, imp.values[i], se);
    }
    println!(
        "{}: {} utility evaluations ({} computed), {:.1} s{}; written to {}",
        imp.method,
        imp.evaluations,
        imp.computed,
        imp.seconds,
        imp.segments
            .map(|(r, f)| format!(", {r} of {f} forward segments run (prefix sharing)"))
            .unwrap_or_default(),
        out.display()
    );
    if let Some(u) = &imp.utility_set {
        println!("utility set: {u}");
    }
    if let Some(p) = plot {
        compute::draw(imp, p)?;
        println!("plot: {}", p.display());
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct AllocateArgs {
    /// importance.json from `privlin importance`.
    #[arg(long)]
    importance: PathBuf,
    /// Total ReLUs to keep: a count (12900, 50k) or a share of the counted ReLUs (5%).
    #[arg(long)]
    budget: String,
    #[arg(long, default_value = "budget.json")]
    out: PathBuf,
    /// Also draw budget vs capacity per site as SVG here.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run_allocate(a: AllocateArgs) -> Result<()> {
    allocate_to(&a.importance, &a.budget, &a.out, a.plot.as_deref()).map(|_| ())
}

/// Allocate `budget` by `importance` (a file), write `out`, print the table, draw `plot`.
pub fn allocate_to(
    importance: &std::path::Path,
    budget_text: &str,
    out: &std::path::Path,
    plot: Option<&std::path::Path>,
) -> Result<privlin::budget::Allocation> {
    let alloc =
        privlin::pipeline::stages::allocate::allocate_file(importance, budget_text, out, plot)?;
    println!(
        "{:<24} {:>10} {:>10} {:>8}",
        "site", "capacity", "budget", "kept"
    );
    for s in &alloc.sites {
        println!(
            "{:<24} {:>10} {:>10} {:>7.2}%",
            s.name,
            s.capacity,
            s.budget,
            100.0 * s.budget as f64 / s.capacity as f64
        );
    }
    println!(
        "{} of {} ReLUs ({:.2}%) allocated by {}; written to {}",
        alloc.budget,
        alloc.capacity,
        100.0 * alloc.budget as f64 / alloc.capacity as f64,
        alloc.method,
        out.display()
    );
    for n in &alloc.notes {
        println!("note: {n}");
    }
    if let Some(p) = plot {
        println!("plot: {}", p.display());
    }
    Ok(alloc)
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The reference game: {"players": [...], "utilities": {"0110": u, ...}} with every coalition.
    #[arg(long)]
    utility_table: PathBuf,
    /// Sampling estimators to score, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "shapley-mc,shapley-antithetic,shapley-stratified,shapley-kernel,shapley-leverage"
    )]
    methods: Vec<String>,
    /// Evaluation caps: counts (500) or shares of the 2^n coalitions (2%), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.5%,1%,2%,5%")]
    caps: Vec<String>,
    /// Seeds per point.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Write every score as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw mean Pearson correlation against evaluations, one line per estimator, as SVG here.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run_score(a: ScoreArgs) -> Result<()> {
    let table = UtilityTable::load(&a.utility_table)?;
    let n = table.players.len();
    let total = 1usize << n;
    let caps = a
        .caps
        .iter()
        .map(|c| {
            let c = c.trim();
            let v = match c.strip_suffix('%') {
                Some(p) => p
                    .parse::<f64>()
                    .map(|p| (p / 100.0 * total as f64).round() as usize),
                None => c.parse::<f64>().map(|v| v as usize),
            };
            match v {
                Ok(v) if v >= 2 && v <= total => Ok(v),
                _ => bail!("--caps `{c}`: expected a count in 2..={total} or a share such as 2%"),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let methods = a
        .methods
        .iter()
        .map(|m| m.parse::<Method>())
        .collect::<Result<Vec<_>>>()?;
    let seeds: Vec<u64> = (0..a.seeds).collect();
    println!(
        "{} players, {} coalitions; exact values from the table; {} seeds per point",
        n,
        total,
        seeds.len()
    );
    let (_, scores) =
        privlin::importance::score::score(&table, &methods, &caps, &seeds, &mut |_| {})?;
    println!(
        "{:<20} {:>7} {:>8} {:>22} {:>22} {:>22}",
        "method",
        "cap",
        "evals",
        "Pearson mean [min,max]",
        "Spearman mean [min,max]",
        "max |err| mean [min,max]"
    );
    let stat = |v: Vec<f64>| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        (m, lo, hi)
    };
    let mut lines = Vec::new();
    for m in &methods {
        let mut pts = Vec::new();
        for &cap in &caps {
            let pick: Vec<&privlin::importance::score::Score> = scores
                .iter()
                .filter(|s| s.method == m.name() && s.cap == cap)
                .collect();
            if pick.is_empty() {
                println!(
                    "{:<20} {:>7} {:>8} (one step of this estimator needs more)",
                    m.name(),
                    cap,
                    "-"
                );
                continue;
            }
            let ev = pick.iter().map(|s| s.evaluations).max().unwrap_or(0);
            let p = stat(pick.iter().map(|s| s.pearson).collect());
            let r = stat(pick.iter().map(|s| s.spearman).collect());
            let e = stat(pick.iter().map(|s| s.max_abs_error).collect());
            println!(
                "{:<20} {:>7} {:>8} {:>8.4} [{:.4},{:.4}] {:>8.4} [{:.4},{:.4}] {:>8.4} [{:.4},{:.4}]",
                m.name(), cap, ev, p.0, p.1, p.2, r.0, r.1, r.2, e.0, e.1, e.2
            );
            pts.push((cap as f64, p.0));
        }
        lines.push(privlin::plot::Line {
            label: m.name().to_string(),
            points: pts,
        });
    }
    if let Some(p) = &a.json {
        privlin::io::atomic_write_json(p, &scores)?;
    }
    if let Some(p) = &a.plot {
        privlin::plot::pareto(
            p,
            &format!(
                "Shapley estimators vs exact ({n} players, mean of {} seeds)",
                seeds.len()
            ),
            "utility evaluations (cap, log scale)",
            "Pearson correlation with exact values",
            &lines,
        )?;
        println!("plot: {}", p.display());
    }
    Ok(())
}
