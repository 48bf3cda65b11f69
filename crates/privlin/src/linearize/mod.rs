//! Fine-grained linearization: learn which ReLUs of each activation site stay, within a budget.
//!
//! Every learner is a [`MaskLearner`]: an [`Objective`] of the one training loop
//! ([`crate::train::fit`]) that trains the weights of the partial-ReLU (PR) student against the
//! all-ReLU (AR) teacher and moves its masks after every optimizer step. Any budget source (the
//! per-site `budget.json` of `privlin allocate`, or a total for the global learners) combines with
//! any learner:
//!
//! - [`gradproj`]: PrivShap section 3.2, gradient projection (top-k of mask gradients per site).
//! - [`taylor`]: ReLUPruner eqs. 5-9 and Algorithm 1, progressive global pruning by second-order
//!   Taylor importance.
//! - [`snl`]: SNL as its authors' code runs it (l1-regularized continuous masks, per-epoch lambda
//!   schedule, stop at the budget), and privlin's fixed-epoch variants `l1-fixed-epochs` and
//!   `l1-budget-ramp`.
//! - [`senet`]: SENet stage 2, masks learned within per-site budgets (projected continuous scores).
//! - [`deepreduce`]: DeepReDuce, whole stages culled and thinned to the budget, trained with KD.

pub mod config;
pub mod deepreduce;
pub mod export;
pub mod finetune;
pub mod gradproj;
pub mod report;
pub mod run;
pub mod senet;
pub mod snl;
pub mod targets;
pub mod taylor;
pub mod teacher;

pub use config::{DistillConfig, FinetuneConfig, LinearizeConfig};
pub use targets::Targets;
pub use teacher::Teacher;

use crate::nn::{MaskSet, Model};
use crate::train::Objective;
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// The learners of `privlin linearize --method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    GradProj,
    Taylor,
    Snl,
    /// privlin's fixed-epoch l1-mask variant for equal-compute comparisons (not SNL).
    L1FixedEpochs,
    /// privlin's fixed-epoch l1-mask variant whose lambda is steered to the budget (not SNL).
    L1BudgetRamp,
    Senet,
    /// DeepReDuce's culling and thinning (layer granularity) to a total, trained with KD.
    DeepReduce,
}

impl Method {
    pub const NAMES: &'static str =
        "gradproj, taylor, snl, l1-fixed-epochs, l1-budget-ramp, senet, deepreduce";

    pub fn name(self) -> &'static str {
        match self {
            Method::GradProj => "gradproj",
            Method::Taylor => "taylor",
            Method::Snl => "snl",
            Method::L1FixedEpochs => "l1-fixed-epochs",
            Method::L1BudgetRamp => "l1-budget-ramp",
            Method::Senet => "senet",
            Method::DeepReduce => "deepreduce",
        }
    }

    /// Learners that rank ReLUs across all sites against one total (no per-site budgets).
    pub fn is_global(self) -> bool {
        matches!(
            self,
            Method::Taylor
                | Method::Snl
                | Method::L1FixedEpochs
                | Method::L1BudgetRamp
                | Method::DeepReduce
        )
    }
}

impl std::str::FromStr for Method {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "gradproj" | "gradient-projection" | "privshap" => Method::GradProj,
            "taylor" | "progressive-taylor" | "relupruner" => Method::Taylor,
            "snl" => Method::Snl,
            "l1-fixed-epochs" => Method::L1FixedEpochs,
            "l1-budget-ramp" => Method::L1BudgetRamp,
            "senet" => Method::Senet,
            "deepreduce" => Method::DeepReduce,
            other => bail!(
                "unknown linearization method `{other}`; known: {}",
                Method::NAMES
            ),
        })
    }
}

/// How a learner's final masks relate to its budget (`budget_outcome` in `linearize.json`:
/// `exact`, `at_most`, `filled` or `not_reached`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetOutcome {
    /// Exactly the budget (per site or in total; within one entry below it for channel masks).
    Exact,
    /// At most the budget (SNL stops when its count falls to or below it).
    AtMost,
    /// Exactly the budget, but by a top-k taken at the end because the learner's own rule did not
    /// get there in its epochs (the l1 variants).
    Filled,
    /// Over the budget: the learner's own stopping rule was not met before its epoch cap, and
    /// the result says so instead of being filled or cut.
    NotReached,
}

impl BudgetOutcome {
    /// Whether the masks hold the budget (filled ones included).
    pub fn reached(self) -> bool {
        self != BudgetOutcome::NotReached
    }

    /// The `budget_reached` column of sweep.csv: `yes`, `filled` or `no`.
    pub fn csv_label(self) -> &'static str {
        match self {
            BudgetOutcome::Exact | BudgetOutcome::AtMost => "yes",
            BudgetOutcome::Filled => "filled",
            BudgetOutcome::NotReached => "no",
        }
    }

    /// `budget_outcome` as recorded, or the `budget_reached` flag of the reports written
    /// between SNL's stopping rule and this field: `false` is a point over its budget (never to
    /// be compared as if it held it); `true` does not say whether the budget was met exactly, at
    /// most or by a fill, so it reads as unknown (`None`), like a report with neither.
    pub fn deserialize_recorded<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<BudgetOutcome>, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Recorded {
            Outcome(BudgetOutcome),
            Reached(bool),
        }
        use serde::Deserialize;
        Ok(match Option::<Recorded>::deserialize(d)? {
            Some(Recorded::Outcome(o)) => Some(o),
            Some(Recorded::Reached(false)) => Some(BudgetOutcome::NotReached),
            Some(Recorded::Reached(true)) | None => None,
        })
    }
}

/// A mask learner: trains with the loop of [`crate::train::fit`] and ends with binary masks that
/// hold its budget.
pub trait MaskLearner: Objective {
    /// How the masks of [`MaskLearner::finish`] hold the budget.
    fn outcome(&self) -> BudgetOutcome {
        BudgetOutcome::Exact
    }

    /// Binary masks the model would be evaluated with now.
    fn current_masks(&self) -> MaskSet;

    /// Binary masks after the last step, holding the budget exactly (per site or in total), and
    /// notes on anything the method had to decide at the end.
    fn finish(&mut self, model: &Model) -> Result<(MaskSet, Vec<String>)>;
}

/// A 0/1 tensor of `scores`' shape with ones at the `k` largest scores (ties broken by position,
/// so the result is deterministic).
pub fn topk_mask(scores: &Tensor, k: i64) -> Tensor {
    let flat = scores.detach().flatten(0, -1).to_kind(Kind::Float);
    let n = flat.size()[0];
    let k = k.clamp(0, n);
    let mut out = Tensor::zeros([n], (Kind::Float, scores.device()));
    if k > 0 {
        let (_, idx) = flat.sort_stable(true, 0, true);
        let keep = idx.narrow(0, 0, k);
        out = out.index_fill(0, &keep, 1.0);
    }
    out.view(scores.size().as_slice())
}

/// Global top-`n` over several sites: ones at the entries with the largest scores across all of
/// `scores`, where one entry of site `i` stands for `entry_size[i]` ReLUs. Entries are taken in
/// score order while they fit the budget, so the total is exact at pixel granularity and within
/// one entry below it otherwise. `None` scores belong to sites outside the ranking.
pub fn global_topk(scores: &[Option<Tensor>], entry_size: &[i64], n: i64) -> Vec<Option<Tensor>> {
    let flats: Vec<Option<Tensor>> = scores
        .iter()
        .map(|s| {
            s.as_ref()
                .map(|t| t.detach().flatten(0, -1).to_kind(Kind::Float))
        })
        .collect();
    let parts: Vec<&Tensor> = flats.iter().flatten().collect();
    if parts.is_empty() {
        return scores.iter().map(|_| None).collect();
    }
    let all = Tensor::cat(&parts, 0).to_device(tch::Device::Cpu);
    let mut sizes = Vec::with_capacity(all.size()[0] as usize);
    for (f, &e) in flats.iter().zip(entry_size) {
        if let Some(f) = f {
            sizes.extend(std::iter::repeat_n(e, f.size()[0] as usize));
        }
    }
    let (_, order) = all.sort_stable(true, 0, true);
    let order: Vec<i64> = Vec::<i64>::try_from(&order).expect("int64 indices");
    let mut keep = vec![0f32; sizes.len()];
    let mut left = n;
    for i in order {
        let s = sizes[i as usize];
        if s <= left {
            keep[i as usize] = 1.0;
            left -= s;
            if left == 0 {
                break;
            }
        }
    }
    let keep = Tensor::from_slice(&keep);
    let mut offset = 0;
    scores
        .iter()
        .zip(&flats)
        .map(|(s, f)| {
            s.as_ref().zip(f.as_ref()).map(|(s, f)| {
                let len = f.size()[0];
                let part = keep.narrow(0, offset, len).to_device(s.device());
                offset += len;
                part.view(s.size().as_slice())
            })
        })
        .collect()
}

/// A mask set with the given per-site tensors (cloned, without gradients) and `Keep` elsewhere.
pub fn mask_set(masks: &[Option<Tensor>]) -> MaskSet {
    let mut set = MaskSet::all_kept(masks.len());
    for (i, m) in masks.iter().enumerate() {
        if let Some(m) = m {
            set.set(i, crate::nn::SiteMask::Tensor(m.detach().copy()));
        }
    }
    set
}

/// Trainable masks: a tensor of ones at `granularity` (requiring gradients) for every site with a
/// budget, `None` for the others.
pub fn trainable_ones(
    model: &Model,
    budgets: &[Option<i64>],
    granularity: crate::nn::Granularity,
) -> Vec<Option<Tensor>> {
    let dev = model.device();
    model
        .sites()
        .iter()
        .zip(budgets)
        .map(|(s, b)| {
            b.map(|_| {
                Tensor::ones(granularity.mask_shape(s.shape), (Kind::Float, dev))
                    .set_requires_grad(true)
            })
        })
        .collect()
}

/// A mask set that shares `masks`' tensors (so the forward pass sees their updates and their
/// gradients), `Keep` elsewhere.
pub fn live_set(masks: &[Option<Tensor>]) -> MaskSet {
    let mut set = MaskSet::all_kept(masks.len());
    for (i, m) in masks.iter().enumerate() {
        if let Some(m) = m {
            set.set(i, crate::nn::SiteMask::Tensor(m.shallow_clone()));
        }
    }
    set
}

/// Per-site tensors as named state entries `prefix.i` (detached copies).
pub fn named_state(prefix: &str, tensors: &[Option<Tensor>]) -> Vec<(String, Tensor)> {
    tensors
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            t.as_ref()
                .map(|t| (format!("{prefix}.{i}"), t.detach().copy()))
        })
        .collect()
}

/// The entries of `state` under `prefix.`, with the prefix removed (an optimizer's saved state).
pub fn strip_prefix(
    state: &std::collections::HashMap<String, Tensor>,
    prefix: &str,
) -> std::collections::HashMap<String, Tensor> {
    let p = format!("{prefix}.");
    state
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&p).map(|n| (n.to_string(), v.copy())))
        .collect()
}

/// ReLUs per mask entry of every site at `granularity` (1 for pixel masks).
pub fn entry_sizes(model: &Model, granularity: crate::nn::Granularity) -> Vec<i64> {
    model
        .sites()
        .iter()
        .map(|s| granularity.entry_size(s.shape))
        .collect()
}
