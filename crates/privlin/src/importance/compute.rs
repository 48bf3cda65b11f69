//! The importance computation behind `privlin importance` and the pipeline's importance stage:
//! one config (command-line flags and the pipeline's `[importance]` table are the same fields),
//! one function from a checkpoint or a utility table to an [`Importance`].

use super::game::{self, Game, Oracle, TableOracle, UtilityTable};
use super::players::{players, Grouping, Player};
use super::shapley::antithetic::Antithetic;
use super::shapley::bandit::Bandit;
use super::shapley::exact::Exact;
use super::shapley::kernel::{KernelShap, Sampling};
use super::shapley::monte_carlo::MonteCarlo;
use super::shapley::stratified::Stratified;
use super::shapley::tree::{TreeTrimming, TrimTest};
use super::shapley::ShapleyEstimator;
use super::utility::{ModelOracle, UtilityKind};
use super::workers::{UtilityWorkers, WorkerSpec};
use super::{senet, senet_sparse, taylor_layer, Importance, Method, PlayerSite};
use crate::data::Loader;
use crate::nn::Model;
use crate::train::{load_model, CheckpointSpec};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything an importance method needs besides the model: `privlin importance`'s flags and
/// the pipeline's `[importance]` table (same names, `-` in flags, `_` in TOML). The defaults are
/// [`ImportanceConfig::default`]'s; the CLI's flags wrap this struct (`privlin-cli`'s
/// `ImportanceArgs`), so the library does not depend on `clap` (issue 40).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportanceConfig {
    /// shapley-exact, shapley-tree, shapley-mc, shapley-bandit, shapley-kernel, shapley-leverage,
    /// shapley-antithetic, shapley-stratified, senet, senet-sparse, taylor-layer, uniform,
    /// proportional.
    pub method: String,
    /// Players: sites, blocks (residual blocks) or stages.
    pub players: String,
    /// Utility set: holdout (the checkpoint's held-out split; default when it has one), train (a
    /// subset of the training images) or test (only on request; the output says so).
    pub utility_split: Option<String>,
    /// Images in the utility set (stratified subset; 0: all).
    pub utility_size: usize,
    /// Utility of a coalition: accuracy (percent, PrivShap), ce (-cross-entropy, nats) or kl
    /// (-KL to the all-ReLU model, nats).
    pub utility: String,
    /// Adaptive image count: a coalition takes batches of the utility set until the standard
    /// error of its utility is at most this (0: every image).
    pub utility_stderr: f64,
    /// Load utilities cached by earlier runs from this file and save the cache back to it.
    pub utility_cache: Option<PathBuf>,
    /// Utility workers: processes (or Ray actors, see `privlin importance --help`) that each
    /// load the model once and evaluate a share of every batch of coalitions (1: in this process).
    pub workers: usize,
    pub batch_size: usize,
    /// Batched evaluation: coalitions stacked into one forward pass past their shared prefix
    /// (1: one at a time, fastest on a CPU; larger where a device wants larger kernels).
    #[serde(skip_serializing_if = "is_one")]
    pub coalitions_per_pass: usize,
    /// Tree-trimming threshold alpha, in utility units (default: 5 accuracy points above chance
    /// for a model, since PrivShap's 5 % is for 100 classes; 5 for a table game).
    pub threshold: Option<f64>,
    /// Tree-trimming: test U(S) (section 3.1 text) instead of U(S u i) (Algorithm 1).
    pub trim_on_coalition: bool,
    /// Cap on the distinct coalitions any Shapley estimator asks for: sampling estimators stop
    /// before passing it, exact and tree-trimming give up with an explanation.
    pub max_evaluations: usize,
    /// Exact: refuse games with more players than this.
    pub max_exact: usize,
    pub seed: u64,
    /// Monte-Carlo: permutations at least / at most.
    pub min_permutations: usize,
    pub max_permutations: usize,
    /// Monte-Carlo: stop when every standard error is at most this (utility units).
    pub target_stderr: f64,
    /// Monte-Carlo: truncation tolerance relative to U(N) (0: none).
    pub truncation: f64,
    /// Bandit: empirical-Bernstein half-width at which a player stops (utility units).
    pub tolerance: f64,
    /// Bandit: identify the top-k players instead (Neuron Shapley).
    pub top_k: Option<usize>,
    pub max_samples: usize,
    /// Kernel / leverage: coalitions to draw (a pair counts two; repeats are drawn but cost no
    /// evaluation: 4096 draws are about 2,300 distinct coalitions of a 17-player game).
    pub samples: usize,
    /// Kernel / leverage: draw coalitions alone, not with their complements.
    pub unpaired: bool,
    /// Kernel / leverage: bootstrap resamples for the standard errors.
    pub bootstrap: usize,
    /// Stratified: samples per (player, coalition size) stratum and round.
    pub per_stratum: usize,
    /// Stratified: rounds at most.
    pub max_rounds: usize,
    /// senet, senet-sparse: parameter density of the convolutions (one-shot global magnitude
    /// pruning, or the target of sparse training).
    pub density: f64,
    /// senet-sparse: epochs of sparse training (gradual magnitude pruning to `density`).
    pub sparse_epochs: usize,
    /// senet-sparse: SGD learning rate of sparse training (cosine to zero).
    pub sparse_lr: f64,
    /// senet-sparse: training batch size.
    pub sparse_batch_size: usize,
    /// taylor-layer: batches of the utility set used.
    pub batches: usize,
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Default for ImportanceConfig {
    /// The flags' defaults (one source: `privlin importance` takes its defaults from here).
    fn default() -> Self {
        ImportanceConfig {
            method: "".into(),
            players: "sites".into(),
            utility_split: None,
            utility_size: 2000,
            utility: "accuracy".into(),
            utility_stderr: 0.0,
            utility_cache: None,
            workers: 1,
            batch_size: 500,
            coalitions_per_pass: 1,
            threshold: None,
            trim_on_coalition: false,
            max_evaluations: 200_000,
            max_exact: 16,
            seed: 0,
            min_permutations: 100,
            max_permutations: 2000,
            target_stderr: 0.25,
            truncation: 0.01,
            tolerance: 0.5,
            top_k: None,
            max_samples: 2000,
            samples: 4096,
            unpaired: false,
            bootstrap: 200,
            per_stratum: 2,
            max_rounds: 200,
            density: 0.1,
            sparse_epochs: 5,
            sparse_lr: 0.01,
            sparse_batch_size: 128,
            batches: 8,
        }
    }
}

impl ImportanceConfig {
    pub fn method(&self) -> Result<Method> {
        if self.method.is_empty() {
            bail!("no importance method given (--method / [importance] method)");
        }
        self.method.parse()
    }

    /// Check names and ranges before any work.
    pub fn validate(&self) -> Result<()> {
        self.method()?;
        self.players.parse::<Grouping>()?;
        self.utility.parse::<UtilityKind>()?;
        if self.coalitions_per_pass == 0 {
            bail!("coalitions_per_pass must be at least 1 (1: one coalition per forward pass)");
        }
        if self.utility_stderr.is_nan() || self.utility_stderr < 0.0 {
            bail!(
                "utility_stderr {} must be 0 or positive",
                self.utility_stderr
            );
        }
        if let Some(s) = self.utility_split.as_deref() {
            if !matches!(s, "holdout" | "train" | "test") {
                bail!("unknown utility_split `{s}` (expected holdout, train or test)");
            }
        }
        if self.workers == 0 {
            bail!("workers = 0: use 1 to compute utilities in this process");
        }
        Ok(())
    }

    /// Tree-trimming's threshold for a game whose empty coalition sits near `chance`.
    fn threshold_for(&self, chance: Option<f64>) -> f64 {
        self.threshold
            .unwrap_or_else(|| chance.map_or(5.0, |c| c + 5.0))
    }

    fn estimator(&self, m: Method, chance: Option<f64>) -> Option<Box<dyn ShapleyEstimator>> {
        Some(match m {
            Method::ShapleyExact => Box::new(Exact {
                max_players: self.max_exact,
            }),
            Method::ShapleyTree => Box::new(TreeTrimming {
                threshold: self.threshold_for(chance),
                test: if self.trim_on_coalition {
                    TrimTest::Coalition
                } else {
                    TrimTest::WithPlayer
                },
                max_evaluations: self.max_evaluations,
            }),
            Method::ShapleyMc => Box::new(MonteCarlo {
                seed: self.seed,
                min_permutations: self.min_permutations,
                max_permutations: self.max_permutations,
                target_stderr: self.target_stderr,
                truncation: self.truncation,
                ..MonteCarlo::default()
            }),
            Method::ShapleyBandit => Box::new(Bandit {
                seed: self.seed,
                tolerance: self.tolerance,
                top_k: self.top_k,
                max_samples: self.max_samples,
                ..Bandit::default()
            }),
            Method::ShapleyKernel | Method::ShapleyLeverage => Box::new(KernelShap {
                seed: self.seed,
                sampling: if m == Method::ShapleyKernel {
                    Sampling::Kernel
                } else {
                    Sampling::Leverage
                },
                samples: self.samples,
                paired: !self.unpaired,
                bootstrap: self.bootstrap,
                ..KernelShap::default()
            }),
            Method::ShapleyAntithetic => Box::new(Antithetic {
                seed: self.seed,
                min_pairs: self.min_permutations.div_ceil(2),
                max_pairs: self.max_permutations.div_ceil(2),
                target_stderr: self.target_stderr,
                ..Antithetic::default()
            }),
            Method::ShapleyStratified => Box::new(Stratified {
                seed: self.seed,
                per_stratum: self.per_stratum,
                max_rounds: self.max_rounds,
                target_stderr: self.target_stderr,
                ..Stratified::default()
            }),
            _ => return None,
        })
    }
}

/// Run a Shapley estimator on a game; fills values, errors, counts and parameters.
fn run_shapley(
    est: &dyn ShapleyEstimator,
    oracle: &mut dyn Oracle,
    cache: Option<&Path>,
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
        crate::io::atomic_write_json(p, &t)?;
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

/// The utility set `cfg` asks for, from the checkpoint's data, and a description of it.
pub fn utility_loader(
    cfg: &ImportanceConfig,
    spec: &CheckpointSpec,
    device: tch::Device,
) -> Result<(Loader, String)> {
    let mut data = spec.data.clone();
    let split = match cfg.utility_split.as_deref() {
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
            None => bail!("the checkpoint was trained without a held-out split (data.holdout = 0): use utility_split train or test"),
        },
        "train" => (splits.train.clone(), "a subset of the training images (the model was trained on them)".to_string()),
        "test" => (splits.test.clone(), "the TEST set (on request)".to_string()),
        other => bail!("unknown utility_split `{other}` (expected holdout, train or test)"),
    };
    data.holdout = 0.0;
    let set = if cfg.utility_size > 0 && cfg.utility_size < set.len() {
        let frac = cfg.utility_size as f64 / set.len() as f64;
        let mut subset = set.split_holdout(frac, cfg.seed ^ 0x7e11).1;
        subset.name = set.name.clone();
        std::sync::Arc::new(subset)
    } else {
        set
    };
    let desc = format!("{what}: {} images of {}", set.len(), set.name);
    Ok((
        Loader::eval(set, spec.normalization, cfg.batch_size, device),
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

/// The game's model oracle for `cfg` on checkpoint `model` (what a utility worker serves too).
pub fn model_oracle<'m>(
    cfg: &ImportanceConfig,
    model: &'m Model,
    ps: Vec<Player>,
    loader: &Loader,
) -> Result<ModelOracle<'m>> {
    Ok(ModelOracle::new(model, ps, loader)
        .with_utility(cfg.utility.parse()?)
        .with_target_stderr(Some(cfg.utility_stderr))
        .with_coalitions_per_pass(cfg.coalitions_per_pass))
}

/// Shapley values of a stored game (`--utility-table`).
pub fn from_table(cfg: &ImportanceConfig, table: &Path) -> Result<Importance> {
    let method = cfg.method()?;
    let Some(est) = cfg.estimator(method, None) else {
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
        cfg.utility_cache.as_deref(),
        cfg.max_evaluations,
        None,
    )
}

/// Importance of the checkpoint `ckpt`'s players by `cfg.method`, on `device`. With
/// `cfg.workers > 1` the game's utilities are computed by the workers `spawn` describes.
pub fn compute(
    cfg: &ImportanceConfig,
    ckpt: &Path,
    device: tch::Device,
    workers: Option<&WorkerSpec>,
) -> Result<Importance> {
    cfg.validate()?;
    let method = cfg.method()?;
    let utility: UtilityKind = cfg.utility.parse()?;
    let (model, spec) = load_model(ckpt, device)?;
    let grouping: Grouping = cfg.players.parse()?;
    let ps = players(&model, grouping)?;
    let t0 = Instant::now();
    let (loader, desc) = utility_loader(cfg, &spec, device)?;
    let chance = 100.0 / model.spec.classes as f64;
    if method == Method::ShapleyTree && utility == UtilityKind::Accuracy {
        let t = cfg.threshold_for(Some(chance));
        if t <= chance {
            eprintln!(
                "warning: threshold {t} is at or below chance accuracy ({chance:.1}% for {} classes): accuracy rarely \
                 falls below it, so tree-trimming trims little (PrivShap's 5% is for CIFAR-100); consider {:.0}",
                model.spec.classes,
                chance + 5.0
            );
        }
    }
    let chance = (utility == UtilityKind::Accuracy).then_some(chance);
    let mut imp = match cfg.estimator(method, chance) {
        Some(est) => {
            let run = |oracle: &mut dyn Oracle| {
                run_shapley(
                    est.as_ref(),
                    oracle,
                    cfg.utility_cache.as_deref(),
                    cfg.max_evaluations,
                    Some(utility),
                )
            };
            let (mut imp, images, segments) = if cfg.workers > 1 {
                let Some(w) = workers else {
                    bail!(
                        "workers = {}: this caller cannot start utility workers",
                        cfg.workers
                    );
                };
                let names = ps.iter().map(|p| p.name.clone()).collect();
                let mut pool = UtilityWorkers::start(w, cfg, ckpt, names)?;
                let imp = run(&mut pool)?;
                let stats = pool.finish()?;
                (imp, stats.images, stats.segments)
            } else {
                let mut oracle = model_oracle(cfg, &model, ps.clone(), &loader)?;
                oracle.show_progress = true;
                let imp = run(&mut oracle)?;
                (
                    imp,
                    (oracle.images_run, oracle.images_full),
                    (oracle.segments_run, oracle.segments_full),
                )
            };
            imp.segments = Some(segments);
            if let serde_json::Value::Object(m) = &mut imp.params {
                m.insert("utility".into(), serde_json::json!(utility.name()));
                m.insert("utility_unit".into(), serde_json::json!(utility.unit()));
                m.insert(
                    "utility_stderr".into(),
                    serde_json::json!(cfg.utility_stderr),
                );
                m.insert("images_run".into(), serde_json::json!([images.0, images.1]));
                m.insert("workers".into(), serde_json::json!(cfg.workers));
                m.insert(
                    "coalitions_per_pass".into(),
                    serde_json::json!(cfg.coalitions_per_pass),
                );
            }
            imp
        }
        None => {
            let (values, params) = match method {
                Method::Senet => (
                    senet::sensitivity(&model, &ps, cfg.density)?,
                    serde_json::json!({ "density": cfg.density, "pruning": "one-shot global magnitude" }),
                ),
                Method::SenetSparse => {
                    let (mut trainable, _) = load_model(ckpt, device)?;
                    let splits = spec.data.load().with_context(|| {
                        format!("loading the training data from `{}`", spec.data.source)
                    })?;
                    let train = Loader::train(
                        splits.train.clone(),
                        spec.normalization,
                        cfg.sparse_batch_size,
                        cfg.seed,
                        spec.data.augment,
                        device,
                    );
                    let sparse = senet_sparse::SparseTraining {
                        density: cfg.density,
                        epochs: cfg.sparse_epochs,
                        lr: cfg.sparse_lr,
                        batch_size: cfg.sparse_batch_size,
                        seed: cfg.seed,
                    };
                    let (values, reached) =
                        senet_sparse::sensitivity(&mut trainable, &ps, &train, &sparse)?;
                    (
                        values,
                        serde_json::json!({
                            "density": cfg.density, "density_reached": reached,
                            "pruning": "sparse training: gradual magnitude pruning (Zhu & Gupta 2017)",
                            "epochs": cfg.sparse_epochs, "lr": cfg.sparse_lr,
                            "batch_size": cfg.sparse_batch_size, "train_images": splits.train.len(),
                        }),
                    )
                }
                Method::TaylorLayer => (
                    taylor_layer::layer_importance(&model, &ps, &loader, cfg.batches)?,
                    serde_json::json!({ "batches": cfg.batches, "batch_size": cfg.batch_size, "eps": taylor_layer::EPS }),
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
        m.insert("players".into(), serde_json::json!(cfg.players));
        m.insert("seed".into(), serde_json::json!(cfg.seed));
    }
    imp.sites = Some(player_sites(&model, &ps));
    if matches!(method, Method::TaylorLayer) || method.is_shapley() {
        imp.utility_set = Some(desc);
    }
    imp.checkpoint = Some(ckpt.display().to_string());
    imp.convention = Some(model.spec.convention.describe());
    Ok(imp)
}

/// Draw an importance result as a bar chart (with standard-error whiskers where it has them).
pub fn draw(imp: &Importance, path: &Path) -> Result<()> {
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
    crate::plot::bars(
        path,
        &title,
        &y_desc,
        &imp.players,
        &imp.values,
        imp.stderr.as_deref(),
    )
}
