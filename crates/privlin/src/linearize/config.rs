//! `[linearize]` and `[finetune]` of a run config, with the papers' defaults.

use crate::nn::Granularity;
pub use crate::train::distill::DistillConfig;
use crate::train::optim::{OptimizerConfig, OptimizerKind};
use crate::train::schedule::ScheduleConfig;
use crate::train::TrainConfig;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// Gradient projection (PrivShap section 3.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GradProjConfig {
    /// `instantaneous` (the paper: rank by this step's |dL/dm|) or `accumulated` (rank by an
    /// exponential moving average of |dL/dm|, see docs/results.md for the comparison).
    pub ranking: String,
    /// EMA decay of the accumulated ranking.
    pub ema: f64,
}

impl Default for GradProjConfig {
    fn default() -> Self {
        GradProjConfig {
            ranking: "accumulated".into(),
            ema: 0.9,
        }
    }
}

/// Progressive Taylor pruning (ReLUPruner Algorithm 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaylorConfig {
    /// Include the second-order term (eq. 7); `false` is the first-order ablation (Table 4).
    pub second_order: bool,
    /// Multiply by the layer importance (eq. 9).
    pub layer_importance: bool,
    /// How unit scores are normalized before the global ranking: `layer-mean` (default: each
    /// site's unit scores divided by their mean, so that the layer importance sets each site's
    /// level and the unit score the order within it) or `none` (the plain product of eqs. 8 and
    /// 9, which on CIFAR-10 put two thirds of one late site's ReLUs and almost nothing elsewhere;
    /// docs/results.md).
    pub normalize: String,
    /// Batches in the sliding window of negative-activation maps.
    pub window: usize,
    /// EMA momentum of the importance scores (the paper's lambda = 0.9).
    pub ema: f64,
    /// Fraction of the steps with keep ratio 1 (warm-up).
    pub warmup: f64,
    /// Fraction of the steps by which the keep ratio reaches the target (privlin's choice, 60 %:
    /// the paper gives no schedule; the warm-up and the cubic decay are privlin's too).
    pub decay_end: f64,
    /// Masks are regenerated every this many batches while the ratio decays (privlin's choice;
    /// the paper gives no interval) ...
    pub update_every: usize,
    /// ... and every `update_every * slow_factor` batches once it has reached the target.
    pub slow_factor: usize,
}

impl TaylorConfig {
    /// The optimizer ReLUPruner's paper trains with while it prunes ("the initial learning rate
    /// was set to 0.1 with a momentum of 0.9", Parameter Setting, for 150 / 100 / 30 epochs on
    /// CIFAR-10 / CIFAR-100 / Tiny-ImageNet): SGD at lr 0.1, momentum 0.9; no weight decay or
    /// schedule is given, so none (constant rate). The `relupruner` preset uses it unless
    /// `[linearize.train]` is set; the epochs stay the config's (10 by default, scaled down for a
    /// CPU).
    pub fn paper_optimizer() -> OptimizerConfig {
        OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            ..OptimizerConfig::default()
        }
    }
}

impl Default for TaylorConfig {
    fn default() -> Self {
        TaylorConfig {
            second_order: true,
            layer_importance: true,
            normalize: "layer-mean".into(),
            window: 10,
            ema: 0.9,
            warmup: 0.1,
            decay_end: 0.6,
            update_every: 100,
            slow_factor: 4,
        }
    }
}

/// SNL and privlin's fixed-epoch variant: `CE + KL + lambda * ||alpha||_1` on continuous per-pixel
/// (or per-channel) masks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnlConfig {
    /// Initial lambda (per unit of ||alpha||_1).
    pub lambda: f64,
    /// Lambda is multiplied by this when the ReLU count has not fallen since the last check.
    pub lambda_growth: f64,
    /// An alpha above this counts as a ReLU.
    pub threshold: f64,
    /// `snl`: lambda may grow from this epoch on (the authors' 5).
    pub warmup_epochs: usize,
    /// `l1-fixed-epochs`: steps between count checks.
    pub check_every: usize,
    /// `l1-fixed-epochs`: Adam learning rate of the alphas (`snl` uses the weights' rate;
    /// `l1-budget-ramp` at least `2 / (reach_at * steps)`).
    pub mask_lr: f64,
    /// `l1-budget-ramp`: the share of the run's steps by which the planned alpha mass reaches the
    /// budget. Left out of the serialized config at its default, so that stages made before it
    /// existed keep their fingerprints.
    #[serde(skip_serializing_if = "is_default_reach_at")]
    pub reach_at: f64,
}

const DEFAULT_REACH_AT: f64 = 0.5;

fn is_default_reach_at(r: &f64) -> bool {
    *r == DEFAULT_REACH_AT
}

impl Default for SnlConfig {
    fn default() -> Self {
        SnlConfig {
            lambda: 1e-5,
            lambda_growth: 1.1,
            threshold: 1e-2,
            warmup_epochs: 5,
            check_every: 20,
            mask_lr: 2e-2,
            reach_at: DEFAULT_REACH_AT,
        }
    }
}

/// SENet stage 2: projected continuous mask scores (straight-through top-k per site).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenetConfig {
    /// Adam learning rate of the mask scores.
    pub mask_lr: f64,
}

impl Default for SenetConfig {
    fn default() -> Self {
        SenetConfig { mask_lr: 1e-2 }
    }
}

fn adam(lr: f64) -> OptimizerConfig {
    OptimizerConfig {
        kind: OptimizerKind::Adam,
        lr,
        weight_decay: 0.0,
        ..OptimizerConfig::default()
    }
}

/// `[linearize]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearizeConfig {
    /// gradproj, taylor, snl, l1-fixed-epochs, l1-budget-ramp or senet (a preset fills it in).
    pub method: Option<String>,
    pub granularity: Granularity,
    /// Train on at most this many images per class of the checkpoint's training split (`None`:
    /// all), to shorten experiments.
    pub train_per_class: Option<usize>,
    /// Weights: Adam, lr 1e-3 (PrivShap section 4.1), constant rate.
    pub train: TrainConfig,
    pub distill: DistillConfig,
    pub gradproj: GradProjConfig,
    pub taylor: TaylorConfig,
    pub snl: SnlConfig,
    pub senet: SenetConfig,
    pub deepreduce: DeepReduceConfig,
}

/// `[linearize.deepreduce]`: where the stage criticality order comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeepReduceConfig {
    /// Stages most critical first (`layer3`, `s2`, `stem`, ...); empty: measured DeepReDuce's
    /// way on the checkpoint (only one stage's ReLUs kept, `criticality_epochs` of KD each).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    pub criticality_epochs: usize,
    /// `deepreduce` (default: least critical stages culled first, thinning before the next cull)
    /// or `search` (privlin's variant: the largest count within the budget over every set of
    /// stages); [`crate::design::cull::CullRule`].
    pub cull: crate::design::cull::CullRule,
    /// How the measured criticality orders the stages: `per-relu` (default: accuracy above the
    /// all-linear network per thousand of the stage's ReLUs, so a small stage that buys as much
    /// as a large one ranks first) or `total` (the accuracy itself, DeepReDuce's criticality).
    pub rank_by: crate::design::RankBy,
}

impl Default for DeepReduceConfig {
    fn default() -> Self {
        DeepReduceConfig {
            order: Vec::new(),
            criticality_epochs: 0,
            cull: Default::default(),
            rank_by: crate::design::RankBy::PerRelu,
        }
    }
}

impl Default for LinearizeConfig {
    fn default() -> Self {
        LinearizeConfig {
            method: None,
            granularity: Granularity::Pixel,
            train_per_class: None,
            train: TrainConfig {
                epochs: 10,
                optimizer: adam(1e-3),
                schedule: ScheduleConfig {
                    kind: "constant".into(),
                    ..ScheduleConfig::default()
                },
                ..TrainConfig::default()
            },
            distill: DistillConfig::default(),
            gradproj: GradProjConfig::default(),
            taylor: TaylorConfig::default(),
            snl: SnlConfig::default(),
            senet: SenetConfig::default(),
            deepreduce: DeepReduceConfig::default(),
        }
    }
}

impl LinearizeConfig {
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        ensure!(
            matches!(
                self.gradproj.ranking.as_str(),
                "instantaneous" | "accumulated"
            ),
            "linearize.gradproj.ranking must be `instantaneous` or `accumulated`, got `{}`",
            self.gradproj.ranking
        );
        ensure!(
            (0.0..1.0).contains(&self.gradproj.ema),
            "linearize.gradproj.ema must be in [0, 1)"
        );
        let t = &self.taylor;
        ensure!(
            matches!(t.normalize.as_str(), "none" | "layer-mean"),
            "linearize.taylor.normalize must be `none` or `layer-mean`, got `{}`",
            t.normalize
        );
        ensure!(
            (0.0..1.0).contains(&t.ema),
            "linearize.taylor.ema must be in [0, 1)"
        );
        ensure!(
            0.0 <= t.warmup && t.warmup < t.decay_end && t.decay_end <= 1.0,
            "linearize.taylor needs 0 <= warmup < decay_end <= 1, got warmup {} and decay_end {}",
            t.warmup,
            t.decay_end
        );
        ensure!(
            t.window >= 1 && t.update_every >= 1 && t.slow_factor >= 1,
            "linearize.taylor.window, update_every and slow_factor must be at least 1"
        );
        ensure!(
            self.snl.lambda > 0.0 && self.snl.lambda_growth >= 1.0 && self.snl.check_every >= 1,
            "linearize.snl needs lambda > 0, lambda_growth >= 1 and check_every >= 1"
        );
        ensure!(
            self.snl.reach_at > 0.0 && self.snl.reach_at <= 1.0,
            "linearize.snl.reach_at must be in (0, 1], got {}",
            self.snl.reach_at
        );
        ensure!(
            self.snl.mask_lr > 0.0 && self.senet.mask_lr > 0.0,
            "mask learning rates must be positive"
        );
        ensure!(
            self.distill.temperature > 0.0,
            "linearize.distill.temperature must be positive"
        );
        if self.method.as_deref() == Some(super::Method::Snl.name()) {
            self.check_snl_optimizer()?;
        }
        Ok(())
    }

    /// [`LinearizeConfig::validate`] for the section as `learner` will run it (a preset or a
    /// sweep fills in the method later): the pipeline's check before any stage runs.
    pub fn validate_for(&self, learner: super::Method) -> Result<()> {
        self.validate()?;
        if learner == super::Method::Snl {
            self.check_snl_optimizer()?;
        }
        Ok(())
    }

    /// SNL trains weights and alphas with one Adam (the authors' `mask_train_kd_unstructured`);
    /// privlin gives the alphas their own Adam with the weights' hyper-parameters, the same update
    /// only while the weights' optimizer is Adam at a constant rate without weight decay and with
    /// the alphas' betas and epsilon. Anything else is refused, naming the field.
    fn check_snl_optimizer(&self) -> Result<()> {
        let o = &self.train.optimizer;
        let alphas = Self::mask_optimizer(o.lr);
        let why = "method = snl shares one Adam between weights and alphas (the SNL authors' loop)";
        ensure!(
            o.kind == OptimizerKind::Adam,
            "linearize.train.optimizer.kind must be adam for {why}, got {:?}",
            o.kind
        );
        ensure!(
            o.weight_decay == 0.0,
            "linearize.train.optimizer.weight_decay must be 0 for {why}, got {}",
            o.weight_decay
        );
        ensure!(
            (o.beta1, o.beta2, o.eps) == (alphas.beta1, alphas.beta2, alphas.eps),
            "linearize.train.optimizer beta1/beta2/eps must be Adam's defaults ({}, {}, {}) for \
             {why}, got ({}, {}, {})",
            alphas.beta1,
            alphas.beta2,
            alphas.eps,
            o.beta1,
            o.beta2,
            o.eps
        );
        ensure!(
            self.train.schedule.kind == "constant",
            "linearize.train.schedule.kind must be constant for {why}, got `{}`",
            self.train.schedule.kind
        );
        Ok(())
    }

    pub(crate) fn mask_optimizer(lr: f64) -> OptimizerConfig {
        adam(lr)
    }
}

/// `[finetune]`: frozen masks, SENet eq. 2:
/// `lambda KL(T) + (1 - lambda) CE + beta / 2 * sum_m PRAM_m`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Weights: SGD with its own schedule.
    pub train: TrainConfig,
    /// As in `[linearize]`.
    pub train_per_class: Option<usize>,
    /// `senet`: `lambda KL + (1 - lambda) CE + beta/2 PRAM` (SENet eq. 2); `snl`: `CE + KL`, 1:1,
    /// no PRAM (the SNL authors' `train_kd`; `lambda` and `beta` unused).
    pub loss: String,
    pub lambda: f64,
    pub beta: f64,
    pub temperature: f64,
    /// Multiply the KL term by `T^2` (Hinton et al.'s gradient-scale correction). SENet eq. 2
    /// does not print it, so the default follows the equation (`lambda KL + (1 - lambda) CE`,
    /// 9:1 at `lambda = 0.9`); with it the KL:CE weight is 144:1 at `T = 4`. The SNL authors'
    /// `train_kd` has it, so [`FinetuneConfig::snl`] sets it.
    pub kl_t2: bool,
}

impl FinetuneConfig {
    /// The SNL authors' fine-tuning (`snl_finetune_unstructured.py`): SGD lr 1e-3, momentum 0.9,
    /// weight decay 5e-4, cosine over 100 epochs, `CE + T^2 KL(T = 4)`, no PRAM.
    pub fn snl() -> Self {
        let mut c = FinetuneConfig::default();
        c.train.epochs = 100;
        c.train.optimizer.lr = 1e-3;
        c.loss = "snl".into();
        c.beta = 0.0;
        c.kl_t2 = true;
        c
    }
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            train: TrainConfig {
                epochs: 10,
                optimizer: OptimizerConfig {
                    kind: OptimizerKind::Sgd,
                    lr: 0.01,
                    momentum: 0.9,
                    weight_decay: 5e-4,
                    ..OptimizerConfig::default()
                },
                schedule: ScheduleConfig {
                    kind: "cosine".into(),
                    ..ScheduleConfig::default()
                },
                ..TrainConfig::default()
            },
            train_per_class: None,
            loss: "senet".into(),
            lambda: 0.9,
            beta: 1000.0,
            temperature: 4.0,
            kl_t2: false,
        }
    }
}

impl FinetuneConfig {
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        ensure!(
            matches!(self.loss.as_str(), "senet" | "snl"),
            "finetune.loss must be `senet` or `snl`, got `{}`",
            self.loss
        );
        ensure!(
            (0.0..=1.0).contains(&self.lambda),
            "finetune.lambda must be in [0, 1], got {}",
            self.lambda
        );
        ensure!(
            self.beta >= 0.0 && self.beta.is_finite(),
            "finetune.beta must be >= 0"
        );
        ensure!(
            self.temperature > 0.0,
            "finetune.temperature must be positive"
        );
        Ok(())
    }
}
