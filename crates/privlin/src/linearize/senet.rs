//! SENet stage 2 (Kundu et al., ICLR 2023; "Making Models Shallow Again" section 3): learn a binary
//! mask `M^l` for every non-linearity layer within its per-layer ReLU count from stage 1.
//!
//! Each counted site has continuous scores `s` of the mask's shape. The forward pass uses the
//! binary projection `M = top-k(s)` (k: the site's budget) with a straight-through gradient
//! (`M + s - stop_grad(s)`), so the scores learn from `dL/dM` while the budget holds exactly at
//! every step. Scores start at the batch mean of `|relu(z) - z|` of the all-ReLU model on the first
//! batch (how much each ReLU changes its input), so the first projection keeps the ReLUs that do
//! most; weights and scores train on `CE + KL` to the all-ReLU teacher.

use super::config::{DistillConfig, LinearizeConfig, SenetConfig};
use super::teacher::{distill_loss, Teacher};
use super::{mask_set, named_state, strip_prefix, topk_mask, MaskLearner, Targets};
use crate::data::Batch;
use crate::nn::{Granularity, MaskSet, Model, SiteMask};
use crate::train::optim::Optimizer;
use crate::train::Objective;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use tch::{Kind, Tensor};

pub struct SenetMasks {
    teacher: Teacher,
    distill: DistillConfig,
    cfg: SenetConfig,
    granularity: Granularity,
    k: Vec<Option<i64>>,
    scores: Vec<Option<Tensor>>,
    opt: Option<Optimizer>,
}

impl SenetMasks {
    pub fn new(
        model: &Model,
        teacher: Teacher,
        targets: &Targets,
        granularity: Granularity,
        distill: DistillConfig,
        cfg: SenetConfig,
    ) -> Result<Self> {
        if !targets.per_site {
            bail!("SENet mask learning needs per-site budgets (a budget.json)");
        }
        Ok(SenetMasks {
            teacher,
            distill,
            cfg,
            granularity,
            k: targets.entries(model, granularity),
            scores: model.sites().iter().map(|_| None).collect(),
            opt: None,
        })
    }

    /// Scores from the all-ReLU teacher's first batch: `E_b |relu(z) - z|` per mask entry.
    fn init_scores(&mut self, x: &Tensor) {
        let taps = tch::no_grad(|| {
            let mut f = self.teacher.model.pass(false).with_taps();
            let _ = self.teacher.model.forward_with(x, &mut f);
            f.take_taps()
        });
        let mut params = Vec::new();
        for (i, tap) in taps.iter().enumerate() {
            if self.k[i].is_none() {
                continue;
            }
            let d = (tap.pre.relu() - &tap.pre)
                .abs()
                .mean_dim(0, false, Kind::Float);
            let d = match self.granularity {
                Granularity::Pixel => d,
                Granularity::Channel => d.mean_dim([1i64, 2].as_slice(), true, Kind::Float),
                Granularity::Layer => d.mean(Kind::Float),
            };
            // Scale to mean 1 so that the mask learning rate means the same at every site.
            let d = &d / (d.mean(Kind::Float) + 1e-12);
            let s = d.detach().copy().set_requires_grad(true);
            params.push((format!("score.{i}"), s.shallow_clone()));
            self.scores[i] = Some(s);
        }
        self.opt = Some(Optimizer::new(
            LinearizeConfig::mask_optimizer(self.cfg.mask_lr),
            params,
        ));
    }

    fn hard(&self) -> Vec<Option<Tensor>> {
        self.scores
            .iter()
            .zip(&self.k)
            .map(|(s, k)| s.as_ref().zip(*k).map(|(s, k)| topk_mask(s, k)))
            .collect()
    }
}

impl Objective for SenetMasks {
    fn loss(&mut self, model: &Model, batch: &Batch) -> Result<(Tensor, Tensor)> {
        if self.opt.is_none() {
            self.init_scores(&batch.images);
        }
        let mut set = MaskSet::all_kept(self.scores.len());
        for (i, s) in self.scores.iter().enumerate() {
            if let (Some(s), Some(k)) = (s, self.k[i]) {
                let hard = topk_mask(s, k);
                set.set(i, SiteMask::Tensor(hard + s - s.detach()));
            }
        }
        let t = self.teacher.logits(&batch.images);
        let out = model.forward_masked(&batch.images, true, &set);
        Ok((distill_loss(&out, &t, &batch.labels, &self.distill), out))
    }

    fn after_step(&mut self, _model: &Model, _step: usize) -> Result<()> {
        if let Some(opt) = self.opt.as_mut() {
            opt.step(self.cfg.mask_lr);
            opt.zero_grad();
        }
        Ok(())
    }

    fn eval_masks(&self) -> Option<MaskSet> {
        Some(self.current_masks())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = named_state("score", &self.scores);
        if let Some(opt) = &self.opt {
            out.extend(
                opt.state()
                    .into_iter()
                    .map(|(n, t)| (format!("opt.{n}"), t)),
            );
        }
        out
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        if !state.keys().any(|k| k.starts_with("score.")) {
            return Ok(());
        }
        let dev = self.teacher.model.device();
        let mut params = Vec::new();
        for i in 0..self.scores.len() {
            if self.k[i].is_none() {
                continue;
            }
            let n = format!("score.{i}");
            let s = state
                .get(&n)
                .with_context(|| format!("no `{n}`"))?
                .to_device(dev)
                .copy()
                .set_requires_grad(true);
            params.push((n, s.shallow_clone()));
            self.scores[i] = Some(s);
        }
        let mut opt = Optimizer::new(LinearizeConfig::mask_optimizer(self.cfg.mask_lr), params);
        let o = strip_prefix(state, "opt");
        opt.load_state(&o)?;
        self.opt = Some(opt);
        Ok(())
    }
}

impl MaskLearner for SenetMasks {
    fn current_masks(&self) -> MaskSet {
        mask_set(&self.hard())
    }

    fn finish(&mut self, _model: &Model) -> Result<(MaskSet, Vec<String>)> {
        if self.opt.is_none() {
            bail!("SENet mask learning saw no training batch");
        }
        Ok((self.current_masks(), Vec::new()))
    }
}
