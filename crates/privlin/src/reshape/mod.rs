//! Depth reduction of partial-ReLU models: "Making Models Shallow Again: Jointly Learning to
//! Reduce Non-Linearity and Depth for Latency-Efficient Private Inference" (paper 003).
//!
//! A residual block whose intra-block sites keep few ReLUs (ReLU sensitivity `d < d_th`,
//! [`sensitivity`]) still runs its whole main branch. Gated branching gives it a shallow branch,
//! one conv-BN with no nonlinearity, mixed in as `gamma f_GB + (1 - gamma) f_MB` while `gamma`
//! rises to 1 ([`gate`]); then the main branch is deleted. An auxiliary classifier (AC) on an
//! earlier stage, trained by distillation from the all-ReLU teacher, can serve the model so that
//! the later stages are deleted too. The stage ([`run::reshape`]) replaces the plain fine-tuning
//! of the pipeline and writes an ordinary checkpoint whose spec records what changed.

pub mod branch_fit;
pub mod gate;
pub mod merge;
pub mod run;
pub mod sensitivity;

pub use gate::{GateSchedule, GateShape};
pub use run::{reshape, ReshapeReport, VariantRow, RESHAPE_REPORT};
pub use sensitivity::{block_sensitivity, BlockSensitivity};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// What the auxiliary classifier does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuxMode {
    /// No AC.
    #[default]
    None,
    /// Trained with AKD next to the main classifier, which serves the model.
    Train,
    /// Trained with AKD, and the model answers from it: every stage after it is deleted.
    Serve,
}

/// How many ReLUs the auxiliary classifier's one site keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuxRelus {
    /// As many as the masks kept in the stages the AC replaces (and the final BN-ReLU), so that
    /// serving from the AC never adds ReLUs: whole channels from the first, which for a freshly
    /// initialized head is no choice at all (its channels are exchangeable).
    #[default]
    Match,
    /// Every ReLU of the site.
    All,
    /// None: the head is linear after the stage it reads.
    None,
}

/// How the shallow branch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BranchInit {
    /// Least-squares fit of the branch to the main branch's output on a few training batches
    /// (the main branch's best linear map at the branch's kernel; [`branch_fit`]).
    #[default]
    Fit,
    /// PyTorch's default (Kaiming-uniform) initialization, as a freshly added layer.
    Random,
}

/// `[reshape]`: the stage's own settings; the fine-tuning loss and schedule are `[finetune]`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReshapeConfig {
    /// Blocks with ReLU sensitivity below this get a shallow branch. `None` (the default): it
    /// follows the budget, [`ReshapeConfig::d_th_for`]; the paper picks it per setting (0.1 at
    /// 15 % of the ReLUs on CIFAR-10, 0.05 at 4-9 % on CIFAR-100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d_th: Option<f64>,
    /// Rise of the gate: `linear` (the paper's default, `gamma = epoch / ramp`) or `cosine`.
    pub gate: GateShape,
    /// Epochs over which the gate rises to 1; default: the first learning-rate milestone of the
    /// fine-tuning schedule (the paper: 90 of 180), or half the epochs without milestones.
    pub ramp_epochs: Option<usize>,
    pub aux: AuxMode,
    /// The stage the AC reads; default: the one before the last (`layer3` of ResNet-18).
    pub aux_after: Option<String>,
    /// ReLUs of the AC's site.
    pub aux_relus: AuxRelus,
    /// Kernel of the shallow branch (3: a basic block's MACs halve; 1: fewer MACs, less fit).
    pub kernel: i64,
    pub init: BranchInit,
    /// Training batches the least-squares fit reads.
    pub init_batches: usize,
}

impl Default for ReshapeConfig {
    fn default() -> Self {
        ReshapeConfig {
            d_th: None,
            gate: GateShape::Linear,
            ramp_epochs: None,
            aux: AuxMode::None,
            aux_after: None,
            aux_relus: AuxRelus::Match,
            kernel: 3,
            init: BranchInit::Fit,
            init_batches: 8,
        }
    }
}

impl ReshapeConfig {
    /// The threshold for a partial-ReLU model keeping `share` of its counted ReLUs: the
    /// configured one, or `0.1 min(1, share / 0.15)`, which gives both of the paper's settings
    /// (0.1 at 15 % on CIFAR-10; 0.05 at 7.5 %, inside its 4-9 % on CIFAR-100). At 2 % it is
    /// 0.013, where a fixed 0.1 selected 6 of 8 blocks of a ResNet-18 and the reshaped model fell
    /// from 73.6 % to 28.8 % (issue 39).
    pub fn d_th_for(&self, share: f64) -> f64 {
        self.d_th
            .unwrap_or_else(|| 0.1 * (share / 0.15).clamp(0.0, 1.0))
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(d) = self.d_th.filter(|d| !(0.0..=1.0).contains(d)) {
            bail!("reshape.d_th = {d}: the ReLU sensitivity threshold must lie in [0, 1]");
        }
        if self.kernel < 1 || self.kernel % 2 == 0 || self.kernel > 7 {
            bail!(
                "reshape.kernel = {}: expected an odd kernel size from 1 to 7",
                self.kernel
            );
        }
        if self.init == BranchInit::Fit && self.init_batches == 0 {
            bail!("reshape.init_batches = 0: the least-squares fit needs at least one batch");
        }
        Ok(())
    }

    /// The gate's ramp for a fine-tuning run of `train`.
    pub fn ramp(&self, train: &crate::train::TrainConfig) -> usize {
        self.ramp_epochs.unwrap_or_else(|| {
            let s = &train.schedule;
            match (s.kind.as_str(), s.milestones.first()) {
                ("multistep", Some(&m)) => m,
                _ => train.epochs / 2,
            }
        })
    }
}
