//! `privlin importance` and `privlin allocate`.

use crate::common::{runtime, RuntimeArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use privlin::budget::{allocate, Budget};
use privlin::data::Loader;
use privlin::importance::game::{Game, Oracle, TableOracle, UtilityTable};
use privlin::importance::players::{players, Grouping, Player};
use privlin::importance::shapley::antithetic::Antithetic;
use privlin::importance::shapley::bandit::Bandit;
use privlin::importance::shapley::exact::Exact;
use privlin::importance::shapley::kernel::{KernelShap, Sampling};
use privlin::importance::shapley::monte_carlo::MonteCarlo;
use privlin::importance::shapley::stratified::Stratified;
use privlin::importance::shapley::tree::{TreeTrimming, TrimTest};
use privlin::importance::shapley::ShapleyEstimator;
use privlin::importance::utility::{ModelOracle, UtilityKind};
use privlin::importance::{game, senet, taylor_layer, Importance, Method, PlayerSite};
use privlin::nn::Model;
use privlin::train::load_model;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct ImportanceArgs {
    /// shapley-exact, shapley-tree, shapley-mc, shapley-bandit, shapley-kernel, shapley-leverage,
    /// shapley-antithetic, shapley-stratified, senet, taylor-layer, uniform, proportional.
    #[arg(long)]
    method: String,
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
    /// Players: sites, blocks (residual blocks) or stages.
    #[arg(long, default_value = "sites")]
    players: String,
    /// Utility set: holdout (the checkpoint's held-out split; default when it has one), train (a
    /// subset of the training images) or test (only on request; the output says so).
    #[arg(long)]
    utility_split: Option<String>,
    /// Images in the utility set (stratified subset; 0: all).
    #[arg(long, default_value_t = 2000)]
    utility_size: usize,
    /// Utility of a coalition: accuracy (percent, PrivShap), ce (-cross-entropy, nats) or kl
    /// (-KL to the all-ReLU model, nats).
    #[arg(long, default_value = "accuracy")]
    utility: String,
    /// Adaptive image count: a coalition takes batches of the utility set until the standard
    /// error of its utility is at most this (0: every image).
    #[arg(long, default_value_t = 0.0)]
    utility_stderr: f64,
    /// Load utilities cached by earlier runs from this file and save the cache back to it.
    #[arg(long)]
    utility_cache: Option<PathBuf>,
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Tree-trimming threshold alpha, in utility units (accuracy percent for a model).
    #[arg(long, default_value_t = 5.0)]
    threshold: f64,
    /// Tree-trimming: test U(S) (section 3.1 text) instead of U(S u i) (Algorithm 1).
    #[arg(long)]
    trim_on_coalition: bool,
    /// Cap on the distinct coalitions any Shapley estimator asks for: sampling estimators stop
    /// before passing it, exact and tree-trimming give up with an explanation.
    #[arg(long, default_value_t = 200_000)]
    max_evaluations: usize,
    /// Exact: refuse games with more players than this.
    #[arg(long, default_value_t = 16)]
    max_exact: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Monte-Carlo: permutations at least / at most.
    #[arg(long, default_value_t = 100)]
    min_permutations: usize,
    #[arg(long, default_value_t = 2000)]
    max_permutations: usize,
    /// Monte-Carlo: stop when every standard error is at most this (utility units).
    #[arg(long, default_value_t = 0.25)]
    target_stderr: f64,
    /// Monte-Carlo: truncation tolerance relative to U(N) (0: none).
    #[arg(long, default_value_t = 0.01)]
    truncation: f64,
    /// Bandit: empirical-Bernstein half-width at which a player stops (utility units).
    #[arg(long, default_value_t = 0.5)]
    tolerance: f64,
    /// Bandit: identify the top-k players instead (Neuron Shapley).
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long, default_value_t = 2000)]
    max_samples: usize,
    /// Kernel / leverage: coalitions to draw (a pair counts two).
    #[arg(long, default_value_t = 2048)]
    samples: usize,
    /// Kernel / leverage: draw coalitions alone, not with their complements.
    #[arg(long)]
    unpaired: bool,
    /// Kernel / leverage: bootstrap resamples for the standard errors.
    #[arg(long, default_value_t = 200)]
    bootstrap: usize,
    /// Stratified: samples per (player, coalition size) stratum and round.
    #[arg(long, default_value_t = 2)]
    per_stratum: usize,
    /// Stratified: rounds at most.
    #[arg(long, default_value_t = 200)]
    max_rounds: usize,
    /// SENet: parameter density of the global magnitude pruning.
    #[arg(long, default_value_t = 0.1)]
    density: f64,
    /// taylor-layer: batches of the utility set used.
    #[arg(long, default_value_t = 8)]
    batches: usize,
    #[command(flatten)]
    rt: RuntimeArgs,
}

fn estimator(m: Method, a: &ImportanceArgs) -> Option<Box<dyn ShapleyEstimator>> {
    Some(match m {
        Method::ShapleyExact => Box::new(Exact {
            max_players: a.max_exact,
        }),
        Method::ShapleyTree => Box::new(TreeTrimming {
            threshold: a.threshold,
            test: if a.trim_on_coalition {
                TrimTest::Coalition
            } else {
                TrimTest::WithPlayer
            },
            max_evaluations: a.max_evaluations,
        }),
        Method::ShapleyMc => Box::new(MonteCarlo {
            seed: a.seed,
            min_permutations: a.min_permutations,
            max_permutations: a.max_permutations,
            target_stderr: a.target_stderr,
            truncation: a.truncation,
            ..MonteCarlo::default()
        }),
        Method::ShapleyBandit => Box::new(Bandit {
            seed: a.seed,
            tolerance: a.tolerance,
            top_k: a.top_k,
            max_samples: a.max_samples,
            ..Bandit::default()
        }),
        Method::ShapleyKernel | Method::ShapleyLeverage => Box::new(KernelShap {
            seed: a.seed,
            sampling: if m == Method::ShapleyKernel {
                Sampling::Kernel
            } else {
                Sampling::Leverage
            },
            samples: a.samples,
            paired: !a.unpaired,
            bootstrap: a.bootstrap,
            ..KernelShap::default()
        }),
        Method::ShapleyAntithetic => Box::new(Antithetic {
            seed: a.seed,
            min_pairs: a.min_permutations.div_ceil(2),
            max_pairs: a.max_permutations.div_ceil(2),
            target_stderr: a.target_stderr,
            ..Antithetic::default()
        }),
        Method::ShapleyStratified => Box::new(Stratified {
            seed: a.seed,
            per_stratum: a.per_stratum,
            max_rounds: a.max_rounds,
            target_stderr: a.target_stderr,
            ..Stratified::default()
        }),
        _ => return None,
    })
}

/// Run a Shapley estimator on a game; fills values, errors, counts and parameters.
fn run_shapley(
    est: &dyn ShapleyEstimator,
    oracle: &mut dyn Oracle,
    cache: Option<&PathBuf>,
    max_evaluations: usize,
    utility: Option<UtilityKind>,
) -> Result<Importance> {
    let mut game = Game::new(oracle);
    game.set_cap(Some(max_evaluations));
    if let Some(p) = cache.filter(|p| p.exists()) {
        let t = UtilityTable::load(p)?;
        let (have, want) = (t.utility.as_deref(), utility.map(|u| u.name()));
        if have.is_some() && have != want {
            bail!(
                "utility cache {}: its utilities measure `{}`, this run `{}`: use another cache file",
                p.display(),
                have.unwrap_or("?"),
                want.unwrap_or("a table game")
            );
        }
        game.load_cache(&t, p)?;
    }
    let t0 = Instant::now();
    let (values, stderr) = est.estimate(&mut game)?;
    let seconds = t0.elapsed().as_secs_f64();
    let n = game.n();
    // U(N) and U(0) for the report, outside the estimator's cap.
    game.set_cap(None);
    let (uf, ue) = (game.utility(game::full(n))?, game.utility(0)?);
    if let Some(p) = cache {
        let mut t = game.cache_table();
        t.utility = utility.map(|u| u.name().to_string());
        privlin::io::atomic_write_json(p, &t)?;
    }
    Ok(Importance {
        stderr,
        evaluations: game.evaluations(),
        computed: game.computed(),
        seconds,
        params: est.params(),
        utility_full: Some(uf),
        utility_empty: Some(ue),
        ..Importance::new(est.name(), game.players(), values)
    })
}

fn utility_loader(
    a: &ImportanceArgs,
    spec: &privlin::train::CheckpointSpec,
    device: tch::Device,
) -> Result<(Loader, String)> {
    let mut data = spec.data.clone();
    let split = match a.utility_split.as_deref() {
        Some(s) => s.to_string(),
        None if data.holdout > 0.0 => "holdout".into(),
        None => "train".into(),
    };
    let splits = data
        .load()
        .with_context(|| format!("loading the utility data from `{}`", data.source))?;
    let (set, what) = match split.as_str() {
        "holdout" => match &splits.holdout {
            Some(h) => (h.clone(), format!("held-out {:.0}% of the training set", 100.0 * data.holdout)),
            None => bail!("the checkpoint was trained without a held-out split (data.holdout = 0): use --utility-split train or test"),
        },
        "train" => (splits.train.clone(), "a subset of the training images (the model was trained on them)".to_string()),
        "test" => (splits.test.clone(), "the TEST set (on request)".to_string()),
        other => bail!("unknown --utility-split `{other}` (expected holdout, train or test)"),
    };
    data.holdout = 0.0;
    let set = if a.utility_size > 0 && a.utility_size < set.len() {
        let frac = a.utility_size as f64 / set.len() as f64;
        let mut subset = set.split_holdout(frac, a.seed ^ 0x7e11).1;
        subset.name = set.name.clone();
        std::sync::Arc::new(subset)
    } else {
        set
    };
    let desc = format!("{what}: {} images of {}", set.len(), set.name);
    Ok((
        Loader::eval(set, spec.normalization, a.batch_size, device),
        desc,
    ))
}

fn player_sites(model: &Model, ps: &[Player]) -> Vec<PlayerSite> {
    ps.iter()
        .enumerate()
        .flat_map(|(p, pl)| {
            pl.sites.iter().map(move |&s| PlayerSite {
                player: p,
                name: model.sites()[s].name.clone(),
                capacity: model.sites()[s].count(),
                kind: model.sites()[s].kind,
            })
        })
        .collect()
}

pub fn run_importance(a: ImportanceArgs) -> Result<()> {
    let imp = compute(&a)?;
    privlin::io::atomic_write_json(&a.out, &imp)?;
    print_importance(&imp, &a.out, a.plot.as_deref())
}

/// `privlin importance` as a function, from flags as on the command line (the pipeline's
/// `[importance]` table), e.g. `["--ckpt", "runs/x/ar", "--method", "shapley-tree"]`.
pub fn args_from(flags: &[String]) -> Result<ImportanceArgs> {
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        a: ImportanceArgs,
    }
    let argv = std::iter::once("importance".to_string()).chain(flags.iter().cloned());
    Ok(<Wrapper as clap::Parser>::try_parse_from(argv)
        .map_err(|e| anyhow::anyhow!("[importance]: {}", e.render().to_string().trim()))?
        .a)
}

/// Run the importance method `a` asks for.
pub fn compute(a: &ImportanceArgs) -> Result<Importance> {
    let method: Method = a.method.parse()?;
    let imp = if let Some(table) = &a.utility_table {
        let Some(est) = estimator(method, a) else {
            bail!(
                "--utility-table works with the Shapley methods only, not `{}`",
                method.name()
            );
        };
        let t = UtilityTable::load(table)?;
        let mut oracle = TableOracle::new(&t, &table.display().to_string())?;
        run_shapley(
            est.as_ref(),
            &mut oracle,
            a.utility_cache.as_ref(),
            a.max_evaluations,
            None,
        )?
    } else {
        let ckpt = a
            .ckpt
            .clone()
            .expect("clap requires --ckpt without --utility-table");
        let device = runtime(
            a.rt.device.as_deref().unwrap_or("auto"),
            a.rt.threads.unwrap_or(0),
        )?;
        let utility: UtilityKind = a.utility.parse()?;
        if a.utility_stderr.is_nan() || a.utility_stderr < 0.0 {
            bail!(
                "--utility-stderr {} must be 0 or positive",
                a.utility_stderr
            );
        }
        let (model, spec) = load_model(&ckpt, device)?;
        let grouping: Grouping = a.players.parse()?;
        let ps = players(&model, grouping)?;
        let t0 = Instant::now();
        let (loader, desc) = utility_loader(a, &spec, device)?;
        let chance = 100.0 / model.spec.classes as f64;
        if method == Method::ShapleyTree && a.threshold <= chance {
            eprintln!(
                "warning: --threshold {} is at or below chance accuracy ({chance:.1}% for {} classes): accuracy rarely \
                 falls below it, so tree-trimming trims little (PrivShap's 5% is for CIFAR-100); consider --threshold {:.0}",
                a.threshold,
                model.spec.classes,
                chance + 5.0
            );
        }
        let mut imp = match estimator(method, a) {
            Some(est) => {
                let mut oracle = ModelOracle::new(&model, ps.clone(), &loader)
                    .with_utility(utility)
                    .with_target_stderr(Some(a.utility_stderr));
                oracle.show_progress = true;
                let mut imp = run_shapley(
                    est.as_ref(),
                    &mut oracle,
                    a.utility_cache.as_ref(),
                    a.max_evaluations,
                    Some(utility),
                )?;
                imp.segments = Some((oracle.segments_run, oracle.segments_full));
                if let serde_json::Value::Object(m) = &mut imp.params {
                    m.insert("utility".into(), serde_json::json!(utility.name()));
                    m.insert("utility_unit".into(), serde_json::json!(utility.unit()));
                    m.insert("utility_stderr".into(), serde_json::json!(a.utility_stderr));
                    m.insert(
                        "images_run".into(),
                        serde_json::json!([oracle.images_run, oracle.images_full]),
                    );
                }
                imp
            }
            None => {
                let (values, params) = match method {
                    Method::Senet => (
                        senet::sensitivity(&model, &ps, a.density)?,
                        serde_json::json!({ "density": a.density }),
                    ),
                    Method::TaylorLayer => (
                        taylor_layer::layer_importance(&model, &ps, &loader, a.batches)?,
                        serde_json::json!({ "batches": a.batches, "batch_size": a.batch_size, "eps": taylor_layer::EPS }),
                    ),
                    Method::Uniform => (vec![1.0; ps.len()], serde_json::json!({})),
                    Method::Proportional => (
                        ps.iter()
                            .map(|p| {
                                p.sites
                                    .iter()
                                    .map(|&s| model.sites()[s].count() as f64)
                                    .sum()
                            })
                            .collect(),
                        serde_json::json!({}),
                    ),
                    _ => unreachable!("Shapley methods have an estimator"),
                };
                Importance {
                    seconds: t0.elapsed().as_secs_f64(),
                    params,
                    ..Importance::new(
                        method.name(),
                        ps.iter().map(|p| p.name.clone()).collect(),
                        values,
                    )
                }
            }
        };
        if let serde_json::Value::Object(m) = &mut imp.params {
            m.insert("players".into(), serde_json::json!(a.players));
            m.insert("seed".into(), serde_json::json!(a.seed));
        }
        imp.sites = Some(player_sites(&model, &ps));
        if matches!(method, Method::TaylorLayer) || method.is_shapley() {
            imp.utility_set = Some(desc);
        }
        imp.checkpoint = Some(ckpt.display().to_string());
        imp.convention = Some(model.spec.convention.describe());
        imp
    };
    Ok(imp)
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
        let shapley = imp.method.starts_with("shapley");
        let unit = imp
            .params
            .get("utility_unit")
            .and_then(|u| u.as_str())
            .unwrap_or("accuracy in %");
        let y_desc = match (shapley, &imp.utility_set) {
            (true, Some(_)) => format!("Shapley value (points of U = {unit})"),
            (true, None) => "Shapley value (utility units)".into(),
            (false, _) => "importance (method's units)".into(),
        };
        let title = match &imp.stderr {
            Some(_) => format!("{} importance (whiskers: 1 standard error)", imp.method),
            None => format!("{} importance", imp.method),
        };
        privlin::plot::bars(
            p,
            &title,
            &y_desc,
            &imp.players,
            &imp.values,
            imp.stderr.as_deref(),
        )?;
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
    let imp: Importance = privlin::io::read_json(importance)?;
    let budget: Budget = budget_text.parse()?;
    let alloc = allocate(&imp, budget)
        .with_context(|| format!("allocating with {}", importance.display()))?;
    privlin::io::atomic_write_json(out, &alloc)?;
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
        let labels: Vec<String> = alloc.sites.iter().map(|s| s.name.clone()).collect();
        let b: Vec<i64> = alloc.sites.iter().map(|s| s.budget).collect();
        let c: Vec<i64> = alloc.sites.iter().map(|s| s.capacity).collect();
        privlin::plot::budget_vs_capacity(
            p,
            &format!(
                "{} budget: {} ReLUs ({})",
                alloc.method, alloc.budget, budget_text
            ),
            &labels,
            &b,
            &c,
        )?;
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
