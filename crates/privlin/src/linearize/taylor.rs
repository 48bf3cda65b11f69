//! Progressive global pruning by Taylor importance (ReLUPruner, eqs. 5-9 and Algorithm 1).
//!
//! For every ReLU unit `k` of site `l`, with pre-activation `z`, site output `a` and gate `g`
//! (`a = g relu(z) + (1 - g) z`, eq. 2), over each batch:
//!
//! - first-order term (eq. 6): `dL/dg = dL/da * (relu(z) - z)`, averaged over the batch;
//! - second-order term (eq. 7): `H * (relu(z) - z)^2` with `H = E[(dL/da)^2]`, the squared-gradient
//!   expectation over the batch. The paper writes `dL/dz`; at `g = 1` that derivative is zero
//!   wherever `relu(z) - z` is not, so the literal product vanishes identically. We take the
//!   gradient at the site's output, which equals `dL/dz` at linearized positions and makes
//!   `H (relu(z) - z)^2` the Gauss-Newton (Fisher) curvature of `L` in `g`;
//! - unit importance: `|I_first| + 1/2 I_second` (the coefficients of the expansion, eq. 5), times
//!   the negative-activation probability averaged over a sliding window of `M` batches (eq. 8),
//!   smoothed across batches by an EMA with momentum 0.9;
//! - layer importance (eq. 9): `mean_b ||dL/da_b||_2 * sqrt(mean_b ||dL/da_b||^2 + eps)`, also
//!   smoothed by the EMA.
//!
//! `I_global = I_unit * I_layer` ranks the units of all sites together ("ranked by their
//! normalized importance scores": `normalize = "layer-mean"`, the default, divides each site's
//! unit scores by their mean first; `none` ranks the plain product; docs/results.md compares
//! them). The keep ratio stays at 1 for the warm-up, then falls to the target by `decay_end` of the steps along a cubic schedule
//! (fast early, slow near the target); masks are regenerated every `update_every` batches, and
//! `slow_factor` times less often once the ratio has reached the target.

use super::config::{DistillConfig, TaylorConfig};
use super::teacher::{distill_loss, Teacher};
use super::{entry_sizes, global_topk, mask_set, MaskLearner, Targets};
use crate::data::Batch;
use crate::importance::taylor_layer::EPS;
use crate::nn::{Granularity, MaskSet, Model};
use crate::train::{MaskProgress, Objective};
use anyhow::{Context, Result};
use std::collections::{HashMap, VecDeque};
use tch::{Kind, Tensor};

pub struct ProgressiveTaylor {
    teacher: Teacher,
    distill: DistillConfig,
    cfg: TaylorConfig,
    granularity: Granularity,
    total_steps: usize,
    target: i64,
    capacity: i64,
    entry_size: Vec<i64>,
    /// Which sites take part (counted sites).
    ranked: Vec<bool>,
    /// EMA of the unit importance per site (mask shape).
    unit: Vec<Option<Tensor>>,
    /// EMA of the layer importance per site.
    layer: Vec<f64>,
    /// Sliding window of negative-activation probability maps per site.
    window: Vec<VecDeque<Tensor>>,
    /// Current binary masks (`None`: all kept).
    masks: Vec<Option<Tensor>>,
    set: MaskSet,
    /// Taps of the last training batch: (pre-activation, gradient probe) per site.
    taps: Vec<(Tensor, Tensor)>,
    updates: usize,
    started: bool,
}

impl ProgressiveTaylor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: &Model,
        teacher: Teacher,
        targets: &Targets,
        granularity: Granularity,
        distill: DistillConfig,
        cfg: TaylorConfig,
        total_steps: usize,
    ) -> Self {
        let n = model.sites().len();
        let ranked: Vec<bool> = targets.site.iter().map(Option::is_some).collect();
        ProgressiveTaylor {
            teacher,
            distill,
            granularity,
            total_steps: total_steps.max(1),
            target: targets.total,
            capacity: model.relu_count(),
            entry_size: entry_sizes(model, granularity),
            ranked,
            unit: (0..n).map(|_| None).collect(),
            layer: vec![0.0; n],
            window: (0..n).map(|_| VecDeque::new()).collect(),
            masks: (0..n).map(|_| None).collect(),
            set: MaskSet::all_kept(n),
            taps: Vec::new(),
            updates: 0,
            started: false,
            cfg,
        }
    }

    /// Keep ratio after `step` of the run: 1 during warm-up, cubic decay to the target by
    /// `decay_end`, then the target.
    pub fn keep_ratio(&self, step: usize) -> f64 {
        let target = self.target as f64 / self.capacity as f64;
        let p = step as f64 / self.total_steps as f64;
        let (w, e) = (self.cfg.warmup, self.cfg.decay_end);
        if p < w {
            1.0
        } else if p >= e {
            target
        } else {
            let x = (p - w) / (e - w);
            target + (1.0 - target) * (1.0 - x).powi(3)
        }
    }

    /// Reduce a per-unit tensor (C, H, W) to the mask's granularity.
    fn to_entries(&self, t: Tensor) -> Tensor {
        match self.granularity {
            Granularity::Pixel => t,
            Granularity::Channel => t.sum_dim_intlist([1i64, 2].as_slice(), true, Kind::Float),
            Granularity::Layer => t.sum(Kind::Float),
        }
    }

    /// Fold the last batch's taps into the running importance (eqs. 6-9).
    fn accumulate(&mut self) {
        let taps = std::mem::take(&mut self.taps);
        let m = self.cfg.ema;
        tch::no_grad(|| {
            for (i, (z, probe)) in taps.into_iter().enumerate() {
                if !self.ranked[i] {
                    continue;
                }
                let ga = probe.grad();
                if !ga.defined() {
                    continue;
                }
                let d = z.relu() - &z;
                let first = (&ga * &d).mean_dim(0, false, Kind::Float);
                let mut unit = first.abs();
                if self.cfg.second_order {
                    let h = ga.square().mean_dim(0, false, Kind::Float);
                    unit += h * d.square().mean_dim(0, false, Kind::Float) * 0.5;
                }
                let neg = z
                    .lt(0.0)
                    .to_kind(Kind::Float)
                    .mean_dim(0, false, Kind::Float);
                let w = &mut self.window[i];
                w.push_back(neg);
                if w.len() > self.cfg.window {
                    w.pop_front();
                }
                let a_neg =
                    Tensor::stack(&w.iter().collect::<Vec<_>>(), 0).mean_dim(0, false, Kind::Float);
                let unit = self.to_entries(unit * a_neg);
                let norms = ga
                    .flatten(1, -1)
                    .norm_scalaropt_dim(2, [1i64].as_slice(), false);
                let layer = norms.mean(Kind::Float).double_value(&[])
                    * (norms.square().mean(Kind::Float).double_value(&[]) + EPS).sqrt();
                if self.started {
                    let u = self.unit[i].as_ref().expect("initialized");
                    self.unit[i] = Some(u * m + unit * (1.0 - m));
                    self.layer[i] = m * self.layer[i] + (1.0 - m) * layer;
                } else {
                    self.unit[i] = Some(unit);
                    self.layer[i] = layer;
                }
            }
        });
        self.started = true;
    }

    /// Global scores `I_unit * I_layer` per ranked site.
    fn scores(&self) -> Vec<Option<Tensor>> {
        self.unit
            .iter()
            .zip(&self.layer)
            .map(|(u, &l)| {
                u.as_ref().map(|u| {
                    let u = if self.cfg.normalize == "layer-mean" {
                        u / (u.mean(Kind::Float) + 1e-30)
                    } else {
                        u.shallow_clone()
                    };
                    if self.cfg.layer_importance {
                        u * l
                    } else {
                        u
                    }
                })
            })
            .collect()
    }

    fn regenerate(&mut self, keep: i64) {
        let scores = self.scores();
        let masks = global_topk(&scores, &self.entry_size, keep);
        self.masks = masks;
        self.set = mask_set(&self.masks);
        self.updates += 1;
    }

    fn current_count(&self) -> i64 {
        self.masks
            .iter()
            .zip(&self.ranked)
            .enumerate()
            .filter(|(_, (_, &r))| r)
            .map(|(i, (m, _))| match m {
                Some(m) => m.sum(Kind::Float).double_value(&[]).round() as i64 * self.entry_size[i],
                None => 0,
            })
            .sum()
    }
}

impl Objective for ProgressiveTaylor {
    fn loss(&mut self, model: &Model, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let t = self.teacher.logits(&batch.images);
        let mut f = model.pass(true).with_masks(&self.set).with_grad_probes();
        let s = model.forward_with(&batch.images, &mut f);
        self.taps = f
            .take_taps()
            .into_iter()
            .map(|t| (t.pre.detach(), t.probe.expect("grad probes requested")))
            .collect();
        Ok((distill_loss(&s, &t, &batch.labels, &self.distill), s))
    }

    fn after_step(&mut self, _model: &Model, step: usize) -> Result<()> {
        self.accumulate();
        let done = step + 1;
        let reached = done as f64 >= self.cfg.decay_end * self.total_steps as f64;
        let every = if reached {
            self.cfg.update_every * self.cfg.slow_factor
        } else {
            self.cfg.update_every
        };
        // The first step at or past `decay_end` always updates, so the target is reached on
        // schedule whatever the update interval.
        let first_at_target = reached && self.current_count() != self.target;
        if done.is_multiple_of(every) || first_at_target {
            let ratio = self.keep_ratio(done);
            if ratio < 1.0 {
                let keep = ((ratio * self.capacity as f64).round() as i64).max(self.target);
                self.regenerate(keep);
            }
        }
        Ok(())
    }

    fn eval_masks(&self) -> Option<MaskSet> {
        Some(self.current_masks())
    }

    /// The kept count after the epoch's last mask update: the keep-ratio schedule as run.
    fn progress(&self) -> Option<MaskProgress> {
        let relus = if self.masks.iter().any(Option::is_some) {
            self.current_count()
        } else {
            self.capacity
        };
        Some(MaskProgress {
            relus,
            lambda: None,
        })
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for i in 0..self.masks.len() {
            if let Some(m) = &self.masks[i] {
                out.push((format!("mask.{i}"), m.copy()));
            }
            if let Some(u) = &self.unit[i] {
                out.push((format!("unit.{i}"), u.copy()));
                out.push((format!("layer.{i}"), Tensor::from(self.layer[i])));
            }
            for (j, w) in self.window[i].iter().enumerate() {
                out.push((format!("window.{i}.{j}"), w.copy()));
            }
        }
        out.push(("meta.updates".into(), Tensor::from(self.updates as i64)));
        out
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let dev = self.teacher.model.device();
        for i in 0..self.masks.len() {
            self.masks[i] = state.get(&format!("mask.{i}")).map(|t| t.to_device(dev));
            self.unit[i] = state.get(&format!("unit.{i}")).map(|t| t.to_device(dev));
            if self.unit[i].is_some() {
                self.layer[i] = state
                    .get(&format!("layer.{i}"))
                    .context("no layer importance")?
                    .double_value(&[]);
            }
            self.window[i].clear();
            let mut j = 0;
            while let Some(w) = state.get(&format!("window.{i}.{j}")) {
                self.window[i].push_back(w.to_device(dev));
                j += 1;
            }
        }
        self.started = self.unit.iter().any(Option::is_some);
        self.updates = state
            .get("meta.updates")
            .map(|t| t.int64_value(&[]) as usize)
            .unwrap_or(0);
        self.set = mask_set(&self.masks);
        Ok(())
    }
}

impl MaskLearner for ProgressiveTaylor {
    fn current_masks(&self) -> MaskSet {
        self.set.clone()
    }

    fn finish(&mut self, _model: &Model) -> Result<(MaskSet, Vec<String>)> {
        let mut notes = Vec::new();
        let have_masks = self.masks.iter().any(Option::is_some);
        if !have_masks || self.current_count() != self.target {
            if !self.started {
                anyhow::bail!("progressive Taylor saw no training batch: nothing to rank by");
            }
            notes.push(format!(
                "the schedule's last mask update ({} updates) did not reach the target: masks regenerated at exactly {} ReLUs from the final scores",
                self.updates, self.target
            ));
            self.regenerate(self.target);
        }
        Ok((self.current_masks(), notes))
    }
}
