//! The flags of `privlin importance`: the library's [`ImportanceConfig`] as command-line arguments
//! (issue 40: the library does not depend on `clap`; the CLI wraps its config structs).

use clap::Args;
use privlin::importance::compute::ImportanceConfig;
use std::path::PathBuf;

/// `privlin importance`'s flags: [`ImportanceConfig`] field for field, its defaults taken from
/// [`ImportanceConfig::default`] (the library holds the config; the CLI parses it).
#[derive(Args, Debug, Clone)]
pub struct ImportanceFlags {
    /// shapley-exact, shapley-tree, shapley-mc, shapley-bandit, shapley-kernel, shapley-leverage,
    /// shapley-antithetic, shapley-stratified, senet, senet-sparse, taylor-layer, uniform,
    /// proportional.
    #[arg(long, default_value_t = ImportanceConfig::default().method)]
    pub method: String,
    /// Players: sites, blocks (residual blocks) or stages.
    #[arg(long, default_value_t = ImportanceConfig::default().players)]
    pub players: String,
    /// Utility set: holdout (the checkpoint's held-out split; default when it has one), train (a
    /// subset of the training images) or test (only on request; the output says so).
    #[arg(long)]
    pub utility_split: Option<String>,
    /// Images in the utility set (stratified subset; 0: all).
    #[arg(long, default_value_t = ImportanceConfig::default().utility_size)]
    pub utility_size: usize,
    /// Utility of a coalition: accuracy (percent, PrivShap), ce (-cross-entropy, nats) or kl
    /// (-KL to the all-ReLU model, nats).
    #[arg(long, default_value_t = ImportanceConfig::default().utility)]
    pub utility: String,
    /// Adaptive image count: a coalition takes batches of the utility set until the standard
    /// error of its utility is at most this (0: every image).
    #[arg(long, default_value_t = ImportanceConfig::default().utility_stderr)]
    pub utility_stderr: f64,
    /// Load utilities cached by earlier runs from this file and save the cache back to it.
    #[arg(long)]
    pub utility_cache: Option<PathBuf>,
    /// Utility workers: processes (or Ray actors, see `privlin importance --help`) that each
    /// load the model once and evaluate a share of every batch of coalitions (1: in this process).
    #[arg(long, default_value_t = ImportanceConfig::default().workers)]
    pub workers: usize,
    #[arg(long, default_value_t = ImportanceConfig::default().batch_size)]
    pub batch_size: usize,
    /// Batched evaluation: coalitions stacked into one forward pass past their shared prefix
    /// (1: one at a time, fastest on a CPU; larger where a device wants larger kernels).
    #[arg(long, default_value_t = ImportanceConfig::default().coalitions_per_pass)]
    pub coalitions_per_pass: usize,
    /// Tree-trimming threshold alpha, in utility units (default: 5 accuracy points above chance
    /// for a model, since PrivShap's 5 % is for 100 classes; 5 for a table game).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Tree-trimming: test U(S) (section 3.1 text) instead of U(S u i) (Algorithm 1).
    #[arg(long)]
    pub trim_on_coalition: bool,
    /// Cap on the distinct coalitions any Shapley estimator asks for: sampling estimators stop
    /// before passing it, exact and tree-trimming give up with an explanation.
    #[arg(long, default_value_t = ImportanceConfig::default().max_evaluations)]
    pub max_evaluations: usize,
    /// Exact: refuse games with more players than this.
    #[arg(long, default_value_t = ImportanceConfig::default().max_exact)]
    pub max_exact: usize,
    #[arg(long, default_value_t = ImportanceConfig::default().seed)]
    pub seed: u64,
    /// Monte-Carlo: permutations at least / at most.
    #[arg(long, default_value_t = ImportanceConfig::default().min_permutations)]
    pub min_permutations: usize,
    #[arg(long, default_value_t = ImportanceConfig::default().max_permutations)]
    pub max_permutations: usize,
    /// Monte-Carlo: stop when every standard error is at most this (utility units).
    #[arg(long, default_value_t = ImportanceConfig::default().target_stderr)]
    pub target_stderr: f64,
    /// Monte-Carlo: truncation tolerance relative to U(N) (0: none).
    #[arg(long, default_value_t = ImportanceConfig::default().truncation)]
    pub truncation: f64,
    /// Bandit: empirical-Bernstein half-width at which a player stops (utility units).
    #[arg(long, default_value_t = ImportanceConfig::default().tolerance)]
    pub tolerance: f64,
    /// Bandit: identify the top-k players instead (Neuron Shapley).
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long, default_value_t = ImportanceConfig::default().max_samples)]
    pub max_samples: usize,
    /// Kernel / leverage: coalitions to draw (a pair counts two; repeats are drawn but cost no
    /// evaluation: 4096 draws are about 2,300 distinct coalitions of a 17-player game).
    #[arg(long, default_value_t = ImportanceConfig::default().samples)]
    pub samples: usize,
    /// Kernel / leverage: draw coalitions alone, not with their complements.
    #[arg(long)]
    pub unpaired: bool,
    /// Kernel / leverage: bootstrap resamples for the standard errors.
    #[arg(long, default_value_t = ImportanceConfig::default().bootstrap)]
    pub bootstrap: usize,
    /// Stratified: samples per (player, coalition size) stratum and round.
    #[arg(long, default_value_t = ImportanceConfig::default().per_stratum)]
    pub per_stratum: usize,
    /// Stratified: rounds at most.
    #[arg(long, default_value_t = ImportanceConfig::default().max_rounds)]
    pub max_rounds: usize,
    /// senet, senet-sparse: parameter density of the convolutions (one-shot global magnitude
    /// pruning, or the target of sparse training).
    #[arg(long, default_value_t = ImportanceConfig::default().density)]
    pub density: f64,
    /// senet-sparse: epochs of sparse training (gradual magnitude pruning to `density`).
    #[arg(long, default_value_t = ImportanceConfig::default().sparse_epochs)]
    pub sparse_epochs: usize,
    /// senet-sparse: SGD learning rate of sparse training (cosine to zero).
    #[arg(long, default_value_t = ImportanceConfig::default().sparse_lr)]
    pub sparse_lr: f64,
    /// senet-sparse: training batch size.
    #[arg(long, default_value_t = ImportanceConfig::default().sparse_batch_size)]
    pub sparse_batch_size: usize,
    /// taylor-layer: batches of the utility set used.
    #[arg(long, default_value_t = ImportanceConfig::default().batches)]
    pub batches: usize,
}

impl From<ImportanceFlags> for ImportanceConfig {
    fn from(a: ImportanceFlags) -> Self {
        ImportanceConfig {
            method: a.method,
            players: a.players,
            utility_split: a.utility_split,
            utility_size: a.utility_size,
            utility: a.utility,
            utility_stderr: a.utility_stderr,
            utility_cache: a.utility_cache,
            workers: a.workers,
            batch_size: a.batch_size,
            coalitions_per_pass: a.coalitions_per_pass,
            threshold: a.threshold,
            trim_on_coalition: a.trim_on_coalition,
            max_evaluations: a.max_evaluations,
            max_exact: a.max_exact,
            seed: a.seed,
            min_permutations: a.min_permutations,
            max_permutations: a.max_permutations,
            target_stderr: a.target_stderr,
            truncation: a.truncation,
            tolerance: a.tolerance,
            top_k: a.top_k,
            max_samples: a.max_samples,
            samples: a.samples,
            unpaired: a.unpaired,
            bootstrap: a.bootstrap,
            per_stratum: a.per_stratum,
            max_rounds: a.max_rounds,
            density: a.density,
            sparse_epochs: a.sparse_epochs,
            sparse_lr: a.sparse_lr,
            sparse_batch_size: a.sparse_batch_size,
            batches: a.batches,
        }
    }
}
