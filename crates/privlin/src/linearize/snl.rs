//! SNL (Cho et al., ICML 2022): selective network linearization by l1-regularized masks.
//!
//! Every counted site gets a continuous mask `alpha` (pixel or channel shape) initialized to 1 and
//! used as is, `a = alpha relu(z) + (1 - alpha) z`. Weights and alphas train on
//! `CE + KL + lambda * ||alpha||_1` (alphas by Adam, clipped to [0, 1] after each step). Every
//! `check_every` steps the ReLU count (alphas above `threshold`, 1e-2) is measured: when it has not
//! fallen since the last check, lambda grows by `lambda_growth` (1.1). When the count reaches the
//! budget, the alphas are binarized (the `budget` largest become 1, globally) and frozen; the
//! remaining steps train the weights with the binary masks. A run that ends above the budget is
//! binarized the same way at the end, and says so.

use super::config::{DistillConfig, LinearizeConfig, SnlConfig};
use super::teacher::{distill_loss, Teacher};
use super::{
    entry_sizes, global_topk, live_set, mask_set, named_state, strip_prefix, trainable_ones,
    MaskLearner, Targets,
};
use crate::data::Batch;
use crate::nn::{Granularity, MaskSet, Model};
use crate::train::optim::Optimizer;
use crate::train::Objective;
use anyhow::{Context, Result};
use std::collections::HashMap;
use tch::{Kind, Tensor};

pub struct Snl {
    teacher: Teacher,
    distill: DistillConfig,
    cfg: SnlConfig,
    target: i64,
    entry_size: Vec<i64>,
    alpha: Vec<Option<Tensor>>,
    opt: Optimizer,
    lambda: f64,
    last_count: Option<i64>,
    /// Binary masks once the budget is reached.
    frozen: Option<Vec<Option<Tensor>>>,
    /// Step at which the masks were binarized.
    frozen_at: Option<usize>,
    set: MaskSet,
}

impl Snl {
    pub fn new(
        model: &Model,
        teacher: Teacher,
        targets: &Targets,
        granularity: Granularity,
        distill: DistillConfig,
        cfg: SnlConfig,
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
        let opt = Optimizer::new(LinearizeConfig::mask_optimizer(cfg.mask_lr), params);
        let set = live_set(&alpha);
        Snl {
            teacher,
            distill,
            target: targets.total,
            entry_size: entry_sizes(model, granularity),
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

    /// ReLUs whose alpha is above the threshold.
    pub fn count(&self) -> i64 {
        self.alpha
            .iter()
            .zip(&self.entry_size)
            .filter_map(|(a, &e)| {
                a.as_ref().map(|a| {
                    a.gt(self.cfg.threshold)
                        .to_kind(Kind::Int64)
                        .sum(Kind::Int64)
                        .int64_value(&[])
                        * e
                })
            })
            .sum()
    }

    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    fn binarize(&mut self, step: usize) {
        let masks = global_topk(&self.alpha, &self.entry_size, self.target);
        self.set = mask_set(&masks);
        self.frozen = Some(masks);
        self.frozen_at = Some(step);
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
        self.opt.step(self.cfg.mask_lr);
        self.opt.zero_grad();
        tch::no_grad(|| {
            for a in self.alpha.iter_mut().flatten() {
                let _ = a.clamp_(0.0, 1.0);
            }
        });
        if (step + 1).is_multiple_of(self.cfg.check_every) {
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
        let fa = meta("meta.frozen_at")?.int64_value(&[]);
        if fa >= 0 {
            self.binarize(fa as usize);
        }
        Ok(())
    }
}

impl MaskLearner for Snl {
    fn current_masks(&self) -> MaskSet {
        match &self.frozen {
            Some(m) => mask_set(m),
            None => mask_set(&global_topk(&self.alpha, &self.entry_size, self.target)),
        }
    }

    fn finish(&mut self, _model: &Model) -> Result<(MaskSet, Vec<String>)> {
        let mut notes = Vec::new();
        match self.frozen_at {
            Some(s) => notes.push(format!(
                "SNL reached the budget at step {s} (lambda {:.3e}); binarized and frozen there",
                self.lambda
            )),
            None => {
                notes.push(format!(
                    "SNL did not reach the budget by the l1 penalty alone ({} ReLUs above alpha {} at the end, lambda {:.3e}): binarized to the {} largest alphas",
                    self.count(),
                    self.cfg.threshold,
                    self.lambda,
                    self.target
                ));
                let last = self.frozen_at.unwrap_or(0);
                self.binarize(last);
            }
        }
        Ok((self.current_masks(), notes))
    }
}
