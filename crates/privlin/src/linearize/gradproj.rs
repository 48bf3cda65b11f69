//! Gradient-projection pruning (PrivShap section 3.2, figure 3).
//!
//! Start from the all-ReLU model with every mask entry at 1. Train the weights on CE + KL to the
//! all-ReLU teacher (Adam, lr 1e-3, section 4.1); after every optimizer step, rank the entries of
//! each site's mask `c_i` by the magnitude of `dL/dc_i` and keep the top `k_i`, `k_i` the site's
//! budget, setting the others to 0. The per-site budget therefore holds after every step. The
//! gradient of a pruned entry is still defined (`dL/dc = sum_b dL/da (relu(z) - z)`), so pruned
//! ReLUs can come back.
//!
//! Ranking: `instantaneous` is the paper's (this step's gradient); `accumulated` ranks by an
//! exponential moving average of |dL/dc|, which damps batch-to-batch churn of the masks.

use super::config::{DistillConfig, GradProjConfig};
use super::teacher::{distill_loss, Teacher};
use super::{live_set, mask_set, topk_mask, trainable_ones, MaskLearner, Targets};
use crate::data::Batch;
use crate::nn::{Granularity, MaskSet, Model};
use crate::train::Objective;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use tch::Tensor;

pub struct GradProj {
    teacher: Teacher,
    distill: DistillConfig,
    accumulated: bool,
    ema: f64,
    /// Per-site budgets in mask entries (`None`: the site keeps its nonlinearity).
    k: Vec<Option<i64>>,
    /// The masks (leaf tensors requiring gradients), 0/1 valued.
    masks: Vec<Option<Tensor>>,
    /// EMA of |dL/dc| (accumulated ranking).
    score: Vec<Option<Tensor>>,
    set: MaskSet,
}

impl GradProj {
    pub fn new(
        model: &Model,
        teacher: Teacher,
        targets: &Targets,
        granularity: Granularity,
        distill: DistillConfig,
        cfg: &GradProjConfig,
    ) -> Result<Self> {
        if !targets.per_site {
            bail!("gradient projection needs per-site budgets (a budget.json)");
        }
        let k = targets.entries(model, granularity);
        let masks = trainable_ones(model, &k, granularity);
        let score = masks
            .iter()
            .map(|m| m.as_ref().map(Tensor::zeros_like))
            .collect();
        let set = live_set(&masks);
        Ok(GradProj {
            teacher,
            distill,
            accumulated: cfg.ranking == "accumulated",
            ema: cfg.ema,
            k,
            masks,
            score,
            set,
        })
    }

    /// Project every mask onto its budget by the current ranking scores.
    fn project(&mut self) {
        tch::no_grad(|| {
            for i in 0..self.masks.len() {
                let (Some(m), Some(k)) = (&self.masks[i], self.k[i]) else {
                    continue;
                };
                let mut m = m.shallow_clone();
                let g = m.grad();
                let g = if g.defined() {
                    g.abs()
                } else {
                    Tensor::zeros_like(&m)
                };
                let rank = if self.accumulated {
                    let s = self.score[i].as_mut().expect("score per masked site");
                    let next = &*s * self.ema + g * (1.0 - self.ema);
                    s.copy_(&next);
                    s.shallow_clone()
                } else {
                    g
                };
                m.copy_(&topk_mask(&rank, k));
                m.zero_grad();
            }
        });
    }
}

impl Objective for GradProj {
    fn loss(&mut self, model: &Model, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let t = self.teacher.logits(&batch.images);
        let s = model.forward_masked(&batch.images, true, &self.set);
        Ok((distill_loss(&s, &t, &batch.labels, &self.distill), s))
    }

    fn after_step(&mut self, _model: &Model, _step: usize) -> Result<()> {
        self.project();
        Ok(())
    }

    fn eval_masks(&self) -> Option<MaskSet> {
        Some(self.current_masks())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (m, s)) in self.masks.iter().zip(&self.score).enumerate() {
            if let (Some(m), Some(s)) = (m, s) {
                out.push((format!("mask.{i}"), m.detach().copy()));
                out.push((format!("score.{i}"), s.copy()));
            }
        }
        out
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for i in 0..self.masks.len() {
                if let (Some(m), Some(s)) = (&self.masks[i], &self.score[i]) {
                    let (mut m, mut s) = (m.shallow_clone(), s.shallow_clone());
                    let get = |n: String| state.get(&n).with_context(|| format!("no `{n}`"));
                    m.copy_(get(format!("mask.{i}"))?);
                    s.copy_(get(format!("score.{i}"))?);
                }
            }
            Ok(())
        })
    }
}

impl MaskLearner for GradProj {
    fn current_masks(&self) -> MaskSet {
        mask_set(&self.masks)
    }

    fn finish(&mut self, _model: &Model) -> Result<(MaskSet, Vec<String>)> {
        Ok((self.current_masks(), Vec::new()))
    }
}
