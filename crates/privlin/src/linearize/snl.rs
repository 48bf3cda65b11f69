//! SNL (Cho et al., ICML 2022): selective network linearization by l1-regularized masks, and
//! privlin's fixed-epoch variant of it.
//!
//! Every counted site gets a continuous mask `alpha` (pixel or channel shape) initialized to 1 and
//! used as is, `a = alpha relu(z) + (1 - alpha) z`. Weights and alphas train on
//! `CE + T^2 KL(T = 4) + lambda * ||alpha||_1`; an alpha above `threshold` (1e-2) counts as a ReLU.
//!
//! [`Schedule::Snl`] follows the authors' code (`snl_finetune_unstructured.py`,
//! `mask_train_kd_unstructured` in `utils.py` of NYU-DICE-Lab/selective_network_linearization):
//! weights and alphas share one Adam at the weights' learning rate (1e-3; here the alphas' own Adam
//! with the same hyper-parameters, which is the same update since Adam is per parameter), alphas
//! are never clamped; once per epoch the count is measured: below the lowest count so far it
//! becomes the new lowest, otherwise from epoch `warmup_epochs` (5) on lambda grows by
//! `lambda_growth` (1.1); training stops as soon as the count is at or below the budget, and the
//! alphas are binarized by the threshold (so the model keeps at most the budget). When the epoch
//! cap (`[linearize.train] epochs`; the authors' 2,000) comes first, the masks are the threshold's
//! and the point is marked "budget not reached", never filled up.
//!
//! [`Schedule::FixedEpochs`] is privlin's variant for equal-compute comparisons, not SNL: alphas by
//! their own Adam at `mask_lr`, clipped to [0, 1]; every `check_every` steps lambda grows when the
//! count has not fallen since the last check; at the budget the `budget` largest alphas are frozen
//! as binary masks; a run that ends above the budget takes the `budget` largest alphas at the end,
//! and says so (a note, `budget_outcome = "filled"` in `linearize.json`, `filled` in sweep.csv).
//!
//! [`Schedule::BudgetRamp`] (`l1-budget-ramp`) is privlin's second variant, also not SNL: the same
//! loss, clipped alphas and freeze at the budget, but lambda is steered so that the penalty itself
//! gets to the budget within the run's fixed number of steps `S`. Lambda starts at the
//! `(1 - b)`-quantile of `|dCE/dalpha|` on the first batch (`b` the budget's share of the ReLUs:
//! roughly the level at which only a share `b` of the alphas is held up by the loss); after every
//! step it grows by `lambda_growth` while the alphas' mass `sum(alpha) / n` is above a plan that
//! falls linearly from 1 to `b` by step `reach_at * S` (and, after that, while the count is above
//! the budget), and shrinks by it otherwise. The alphas' Adam runs at `max(mask_lr, 2 / (reach_at
//! * S))`, so that an alpha can travel from 1 to 0 in half the ramp. A run that still ends above
//! the budget is filled and says so, like `l1-fixed-epochs`.

use super::config::{DistillConfig, LinearizeConfig, SnlConfig};
use super::teacher::{distill_loss, Teacher};
use super::{
    entry_sizes, global_topk, live_set, mask_set, named_state, strip_prefix, trainable_ones,
    BudgetOutcome, MaskLearner, Targets,
};
use crate::data::Batch;
use crate::nn::{Granularity, MaskSet, Model};
use crate::train::optim::Optimizer;
use crate::train::{MaskProgress, Objective};
use anyhow::{Context, Result};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// Which dynamics move lambda and when the masks are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// The authors' code: per-epoch checks, stop at the budget.
    Snl,
    /// privlin's variant: a fixed number of epochs, checks every `check_every` steps.
    FixedEpochs,
    /// privlin's variant: a fixed number of epochs, lambda steered to the budget every step.
    BudgetRamp,
}

pub struct Snl {
    schedule: Schedule,
    teacher: Teacher,
    distill: DistillConfig,
    cfg: SnlConfig,
    target: i64,
    entry_size: Vec<i64>,
    alpha: Vec<Option<Tensor>>,
    opt: Optimizer,
    lambda: f64,
    last_count: Option<i64>,
    /// The lowest count so far (per-epoch schedule).
    lowest: i64,
    /// Epochs run (per-epoch schedule).
    epochs: usize,
    /// The variants only: the masks were filled by the end-of-run top-k.
    filled: bool,
    /// Counted ReLUs of the network (every alpha at 1).
    total: i64,
    /// `l1-budget-ramp`: steps by which the planned mass reaches the budget's share.
    ramp_steps: usize,
    /// Binary masks once the budget is reached.
    frozen: Option<Vec<Option<Tensor>>>,
    /// Step at which the masks were binarized.
    frozen_at: Option<usize>,
    set: MaskSet,
}

impl Snl {
    /// `weights_lr`: the learning rate of the weights' Adam, which the authors' alphas share;
    /// `total_steps`: the run's optimizer steps (the budget ramp plans over them).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        schedule: Schedule,
        model: &Model,
        teacher: Teacher,
        targets: &Targets,
        granularity: Granularity,
        distill: DistillConfig,
        cfg: SnlConfig,
        weights_lr: f64,
        total_steps: usize,
    ) -> Self {
        let alpha = trainable_ones(model, &targets.site, granularity);
        let params = alpha
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                a.as_ref()
                    .map(|a| (format!("alpha.{i}"), a.shallow_clone()))
            })
            .collect();
        let ramp_steps = ((cfg.reach_at * total_steps as f64).round() as usize).max(1);
        let lr = match schedule {
            Schedule::Snl => weights_lr,
            Schedule::FixedEpochs => cfg.mask_lr,
            Schedule::BudgetRamp => cfg.mask_lr.max(2.0 / ramp_steps as f64),
        };
        let opt = Optimizer::new(LinearizeConfig::mask_optimizer(lr), params);
        let set = live_set(&alpha);
        let entry_size = entry_sizes(model, granularity);
        let total = alpha
            .iter()
            .zip(&entry_size)
            .filter_map(|(a, e)| a.as_ref().map(|a| a.numel() as i64 * e))
            .sum();
        Snl {
            schedule,
            lowest: total,
            total,
            ramp_steps,
            epochs: 0,
            filled: false,
            teacher,
            distill,
            target: targets.total,
            entry_size,
            lambda: cfg.lambda,
            cfg,
            alpha,
            opt,
            last_count: None,
            frozen: None,
            frozen_at: None,
            set,
        }
    }

    /// `sum over sites of entry_size * sum(per_entry(alpha))`: accumulated on the alphas' device
    /// and brought to the host once (the ramp reads the count and the mass every step).
    fn relu_weighted_sum(&self, per_entry: impl Fn(&Tensor) -> Tensor) -> f64 {
        relu_weighted_sum(&self.alpha, &self.entry_size, per_entry)
    }

    /// ReLUs whose alpha is above the threshold (exact: a sum of 0/1 entries in f64).
    pub fn count(&self) -> i64 {
        self.relu_weighted_sum(|a| a.gt(self.cfg.threshold)).round() as i64
    }

    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The alphas' mass: `sum(alpha)` in ReLUs (entries weighted by the ReLUs they stand for) over
    /// the counted ReLUs; 1 at the start.
    fn mass(&self) -> f64 {
        self.relu_weighted_sum(|a| a.shallow_clone()) / self.total as f64
    }

    /// The budget's share of the counted ReLUs.
    fn share(&self) -> f64 {
        self.target as f64 / self.total as f64
    }

    /// `l1-budget-ramp`'s planned mass after `step` steps: linear from 1 to the budget's share at
    /// `ramp_steps`, then the share.
    fn planned_mass(&self, step: usize) -> f64 {
        let t = (step as f64 / self.ramp_steps as f64).min(1.0);
        1.0 - (1.0 - self.share()) * t
    }

    /// `l1-budget-ramp`'s starting lambda: the `(1 - b)`-quantile of `|dCE/dalpha|` on the batch
    /// just back-propagated (the penalty's own gradient, `lambda` at alpha = 1, taken out); the
    /// configured lambda when the gradients are all zero.
    fn ramp_start_lambda(&self) -> f64 {
        let g: Vec<Tensor> = self
            .alpha
            .iter()
            .flatten()
            .map(|a| (a.grad() - self.lambda).abs().flatten(0, -1))
            .collect();
        let all = Tensor::cat(&g, 0);
        let n = all.numel() as i64;
        let k = (((1.0 - self.share()) * n as f64).ceil() as i64).clamp(1, n);
        let (q, _) = all.kthvalue(k, 0, false);
        let q = q.double_value(&[]);
        if q > 0.0 {
            q
        } else {
            self.lambda
        }
    }

    /// One step of `l1-budget-ramp`'s controller after `steps` optimizer steps: freeze at the
    /// budget, else move lambda toward the plan.
    fn ramp_check(&mut self, steps: usize) {
        let count = self.count();
        if count <= self.target {
            self.binarize(steps);
            return;
        }
        let behind = steps >= self.ramp_steps || self.mass() > self.planned_mass(steps);
        let g = self.cfg.lambda_growth;
        self.lambda = if behind {
            self.lambda * g
        } else {
            self.lambda / g
        };
        self.last_count = Some(count);
    }

    /// privlin's variant: the `budget` largest alphas become 1.
    fn binarize(&mut self, step: usize) {
        let masks = global_topk(&self.alpha, &self.entry_size, self.target);
        self.set = mask_set(&masks);
        self.frozen = Some(masks);
        self.frozen_at = Some(step);
    }

    /// The authors' binarization (their line 11): alpha > threshold becomes 1.
    fn threshold_masks(&self) -> Vec<Option<Tensor>> {
        self.alpha
            .iter()
            .map(|a| {
                a.as_ref()
                    .map(|a| a.detach().gt(self.cfg.threshold).to_kind(Kind::Float))
            })
            .collect()
    }

    /// The per-epoch rule of the authors' loop; freezes the threshold masks at the budget.
    fn epoch_check(&mut self, epoch: usize) {
        self.epochs = epoch + 1;
        let count = self.count();
        (self.lambda, self.lowest) = epoch_rule(
            self.lambda,
            self.lowest,
            count,
            epoch,
            self.cfg.warmup_epochs,
            self.cfg.lambda_growth,
        );
        eprintln!(
            "snl epoch {}: {count} ReLUs above alpha {} (lowest {}, budget {}), lambda {:.3e}",
            self.epochs, self.cfg.threshold, self.lowest, self.target, self.lambda
        );
        if count <= self.target {
            let masks = self.threshold_masks();
            self.set = mask_set(&masks);
            self.frozen = Some(masks);
            self.frozen_at = Some(self.epochs);
        }
    }
}

/// `sum over sites of entry_size * sum(per_entry(t))` of per-site tensors (alphas or masks).
fn relu_weighted_sum(
    tensors: &[Option<Tensor>],
    entry_size: &[i64],
    per_entry: impl Fn(&Tensor) -> Tensor,
) -> f64 {
    tch::no_grad(|| {
        tensors
            .iter()
            .zip(entry_size)
            .filter_map(|(a, &e)| {
                a.as_ref()
                    .map(|a| per_entry(a).sum(Kind::Double) * e as f64)
            })
            .reduce(|acc, s| acc + s)
            .map_or(0.0, |t| t.double_value(&[]))
    })
}

/// SNL's per-epoch lambda rule (`snl_finetune_unstructured.py`): after epoch `epoch` (0-based)
/// with `count` ReLUs, a count below the lowest so far becomes the lowest; otherwise, from epoch
/// `warmup` on, lambda grows by `growth`. Returns (lambda, lowest).
pub fn epoch_rule(
    lambda: f64,
    lowest: i64,
    count: i64,
    epoch: usize,
    warmup: usize,
    growth: f64,
) -> (f64, i64) {
    if count < lowest {
        (lambda, count)
    } else if epoch >= warmup {
        (lambda * growth, lowest)
    } else {
        (lambda, lowest)
    }
}

impl Objective for Snl {
    fn loss(&mut self, model: &Model, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let t = self.teacher.logits(&batch.images);
        let s = model.forward_masked(&batch.images, true, &self.set);
        let mut loss = distill_loss(&s, &t, &batch.labels, &self.distill);
        if self.frozen.is_none() {
            for a in self.alpha.iter().flatten() {
                loss += a.abs().sum(Kind::Float) * self.lambda;
            }
        }
        Ok((loss, s))
    }

    fn after_step(&mut self, _model: &Model, step: usize) -> Result<()> {
        if self.frozen.is_some() {
            self.opt.zero_grad();
            return Ok(());
        }
        if self.schedule == Schedule::BudgetRamp && step == 0 {
            self.lambda = self.ramp_start_lambda();
        }
        let lr = self.opt.config().lr;
        self.opt.step(lr);
        self.opt.zero_grad();
        if self.schedule == Schedule::Snl {
            return Ok(());
        }
        tch::no_grad(|| {
            for a in self.alpha.iter_mut().flatten() {
                let _ = a.clamp_(0.0, 1.0);
            }
        });
        if self.schedule == Schedule::BudgetRamp {
            self.ramp_check(step + 1);
        } else if (step + 1).is_multiple_of(self.cfg.check_every) {
            let count = self.count();
            if count <= self.target {
                self.binarize(step + 1);
            } else {
                if self.last_count.is_some_and(|c| count >= c) {
                    self.lambda *= self.cfg.lambda_growth;
                }
                self.last_count = Some(count);
            }
        }
        Ok(())
    }

    fn after_epoch(&mut self, _model: &Model, epoch: usize) -> Result<()> {
        match (self.schedule, &self.frozen) {
            (Schedule::Snl, None) => self.epoch_check(epoch),
            (Schedule::BudgetRamp, None) => eprintln!(
                "l1-budget-ramp epoch {}: {} ReLUs above alpha {} (budget {}), mass {:.4}, lambda {:.3e}",
                epoch + 1,
                self.last_count.unwrap_or(self.total),
                self.cfg.threshold,
                self.target,
                self.mass(),
                self.lambda
            ),
            _ => {}
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.schedule == Schedule::Snl && self.frozen.is_some()
    }

    fn progress(&self) -> Option<MaskProgress> {
        Some(match &self.frozen {
            Some(m) => MaskProgress {
                relus: relu_weighted_sum(m, &self.entry_size, |t| t.shallow_clone()).round() as i64,
                lambda: None,
            },
            None => MaskProgress {
                relus: self.count(),
                lambda: Some(self.lambda),
            },
        })
    }

    fn eval_masks(&self) -> Option<MaskSet> {
        Some(self.current_masks())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = named_state("alpha", &self.alpha);
        out.extend(
            self.opt
                .state()
                .into_iter()
                .map(|(n, t)| (format!("opt.{n}"), t)),
        );
        out.push(("meta.lambda".into(), Tensor::from(self.lambda)));
        out.push((
            "meta.last_count".into(),
            Tensor::from(self.last_count.unwrap_or(-1)),
        ));
        out.push((
            "meta.frozen_at".into(),
            Tensor::from(self.frozen_at.map(|s| s as i64).unwrap_or(-1)),
        ));
        out.push(("meta.lowest".into(), Tensor::from(self.lowest)));
        out.push(("meta.epochs".into(), Tensor::from(self.epochs as i64)));
        out
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for (i, a) in self.alpha.iter().enumerate() {
                if let Some(a) = a {
                    let n = format!("alpha.{i}");
                    a.shallow_clone()
                        .copy_(state.get(&n).with_context(|| format!("no `{n}`"))?);
                }
            }
            Ok(())
        })?;
        let opt = strip_prefix(state, "opt");
        self.opt.load_state(&opt)?;
        let meta = |k: &str| state.get(k).with_context(|| format!("no `{k}`"));
        self.lambda = meta("meta.lambda")?.double_value(&[]);
        let lc = meta("meta.last_count")?.int64_value(&[]);
        self.last_count = (lc >= 0).then_some(lc);
        self.lowest = meta("meta.lowest")?.int64_value(&[]);
        self.epochs = meta("meta.epochs")?.int64_value(&[]) as usize;
        let fa = meta("meta.frozen_at")?.int64_value(&[]);
        if fa >= 0 {
            match self.schedule {
                Schedule::FixedEpochs | Schedule::BudgetRamp => self.binarize(fa as usize),
                // Stopped at the budget (a resumed finished run), or at a larger budget on the
                // same path (a continuation, see `run::seed_from_path`): then it goes on.
                Schedule::Snl if self.count() <= self.target => {
                    let masks = self.threshold_masks();
                    self.set = mask_set(&masks);
                    self.frozen = Some(masks);
                    self.frozen_at = Some(fa as usize);
                }
                Schedule::Snl => {}
            }
        }
        Ok(())
    }
}

impl MaskLearner for Snl {
    fn current_masks(&self) -> MaskSet {
        match (&self.frozen, self.schedule) {
            (Some(m), _) => mask_set(m),
            (None, Schedule::Snl) => mask_set(&self.threshold_masks()),
            (None, Schedule::FixedEpochs | Schedule::BudgetRamp) => {
                mask_set(&global_topk(&self.alpha, &self.entry_size, self.target))
            }
        }
    }

    fn outcome(&self) -> BudgetOutcome {
        match (self.schedule, self.frozen.is_some()) {
            (Schedule::FixedEpochs | Schedule::BudgetRamp, _) if self.filled => {
                BudgetOutcome::Filled
            }
            (Schedule::FixedEpochs | Schedule::BudgetRamp, _) => BudgetOutcome::Exact,
            (Schedule::Snl, true) => BudgetOutcome::AtMost,
            (Schedule::Snl, false) => BudgetOutcome::NotReached,
        }
    }

    fn finish(&mut self, _model: &Model) -> Result<(MaskSet, Vec<String>)> {
        let mut notes = Vec::new();
        match (self.schedule, self.frozen_at) {
            (Schedule::Snl, Some(e)) => notes.push(format!(
                "SNL reached the budget after {e} epochs (lambda {:.3e}): alphas above {} kept ({} ReLUs)",
                self.lambda,
                self.cfg.threshold,
                self.count()
            )),
            (Schedule::Snl, None) => notes.push(format!(
                "budget not reached: SNL's count was {} after the cap of {} epochs (lambda {:.3e}, budget {}); the masks are the alphas above {}, over the budget, not filled or cut",
                self.count(),
                self.epochs,
                self.lambda,
                self.target,
                self.cfg.threshold
            )),
            (Schedule::FixedEpochs, Some(s)) => notes.push(format!(
                "privlin's fixed-epoch l1 variant reached the budget at step {s} (lambda {:.3e}); binarized and frozen there",
                self.lambda
            )),
            (Schedule::BudgetRamp, Some(s)) => notes.push(format!(
                "privlin's budget-ramp l1 variant reached the budget by its penalty at step {s} of a ramp of {} (lambda {:.3e}); binarized and frozen there",
                self.ramp_steps, self.lambda
            )),
            (Schedule::FixedEpochs | Schedule::BudgetRamp, None) => {
                notes.push(format!(
                    "privlin's {} l1 variant did not reach the budget by the l1 penalty alone ({} ReLUs above alpha {} at the end, lambda {:.3e}): binarized to the {} largest alphas",
                    if self.schedule == Schedule::FixedEpochs { "fixed-epoch" } else { "budget-ramp" },
                    self.count(),
                    self.cfg.threshold,
                    self.lambda,
                    self.target
                ));
                self.binarize(0);
                self.filled = true;
            }
        }
        Ok((self.current_masks(), notes))
    }
}

#[cfg(test)]
mod tests {
    use super::epoch_rule;

    #[test]
    fn lambda_grows_only_after_warmup_and_only_when_the_count_stalls() {
        // A falling count never grows lambda, and sets the new lowest.
        assert_eq!(epoch_rule(1e-5, 100, 90, 7, 5, 1.1), (1e-5, 90));
        // A stall before the warm-up ends: no growth.
        assert_eq!(epoch_rule(1e-5, 90, 90, 4, 5, 1.1), (1e-5, 90));
        // A stall (or a rise) from epoch 5 on: x1.1, the lowest unchanged.
        let (l, low) = epoch_rule(1e-5, 90, 95, 5, 5, 1.1);
        assert!((l - 1.1e-5).abs() < 1e-18 && low == 90);
        // Compared with the lowest so far, not the previous epoch's count.
        let (l, _) = epoch_rule(2e-5, 80, 85, 9, 5, 1.1);
        assert!(l > 2e-5);
    }
}
