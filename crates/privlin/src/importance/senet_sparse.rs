//! SENet ReLU sensitivity from sparse training ("Making Models Shallow Again" eq. 1 after Kundu
//! et al. 2023): `eta_alpha(l) = 1 - eta_theta(l)`, where `eta_theta(l)` is the fraction of
//! non-zero weights of the layer preceding site `l` after the network is *trained* to parameter
//! density `d` (the recipe the papers describe; [`super::senet`] is the one-shot approximation).
//!
//! The papers cite sparse learning for this step without fixing the algorithm, and SENet's code
//! is not public; privlin trains by gradual magnitude pruning (Zhu & Gupta 2017): starting from
//! the trained all-ReLU weights, every convolution weight is multiplied by a global magnitude mask
//! after every step, and the mask is recomputed after every epoch at the density
//! `d_e = d + (1 - d) (1 - e / E)^3` (e = 1..E, so the last epoch trains at exactly `d`), with
//! cross-entropy and SGD. The per-layer kept fractions of the final mask are the sensitivities.
//! This is a documented choice, not a copy of the authors' training; the result says which
//! method made it (`senet-sparse`).

use super::players::Player;
use crate::data::{Batch, Loader};
use crate::nn::{LayerKind, Model};
use crate::train::losses::cross_entropy;
use crate::train::optim::{OptimizerConfig, OptimizerKind};
use crate::train::schedule::ScheduleConfig;
use crate::train::{fit, FitOptions, Objective, TrainConfig};
use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

/// Sparse training's settings.
#[derive(Debug, Clone)]
pub struct SparseTraining {
    /// Target parameter density of the convolutions.
    pub density: f64,
    pub epochs: usize,
    /// SGD learning rate (cosine to zero over the epochs).
    pub lr: f64,
    pub batch_size: usize,
    pub seed: u64,
}

/// The density after epoch `e` of `epochs` (1-based), cubic from 1 to `d`.
pub fn density_at(d: f64, e: usize, epochs: usize) -> f64 {
    let left = 1.0 - e as f64 / epochs as f64;
    d + (1.0 - d) * left.powi(3)
}

/// Gradual magnitude pruning of the convolution weights as an [`Objective`] of the one loop.
struct GradualPruning {
    /// Convolution weights (shallow clones of the model's variables).
    weights: Vec<Tensor>,
    masks: Vec<Tensor>,
    cfg: SparseTraining,
}

impl GradualPruning {
    fn new(model: &Model, cfg: SparseTraining) -> Result<Self> {
        let vars = model.vs.variables();
        let weights = model
            .layers()
            .iter()
            .filter(|l| l.kind == LayerKind::Conv)
            .map(|l| {
                vars.get(&format!("{}.weight", l.name))
                    .map(|t| t.shallow_clone())
                    .with_context(|| format!("no weight tensor for layer {}", l.name))
            })
            .collect::<Result<Vec<_>>>()?;
        let masks = weights.iter().map(|w| w.ones_like()).collect();
        Ok(GradualPruning {
            weights,
            masks,
            cfg,
        })
    }

    /// Global magnitude mask at `density` over all convolution weights (ties kept).
    fn prune_to(&mut self, density: f64) {
        tch::no_grad(|| {
            let all = Tensor::cat(
                &self
                    .weights
                    .iter()
                    .map(|w| w.abs().flatten(0, -1).to_kind(Kind::Float))
                    .collect::<Vec<_>>(),
                0,
            );
            let total = all.size()[0];
            let keep = ((total as f64) * density).round().clamp(1.0, total as f64) as i64;
            let threshold = all.kthvalue(total - keep + 1, 0, false).0.double_value(&[]);
            for (w, m) in self.weights.iter_mut().zip(self.masks.iter_mut()) {
                *m = w.abs().ge(threshold).to_kind(w.kind());
                let _ = w.g_mul_(&*m);
            }
        });
    }

    /// Kept fraction of each convolution, in layer order.
    fn kept(&self) -> Vec<f64> {
        self.masks
            .iter()
            .map(|m| m.to_kind(Kind::Float).mean(Kind::Float).double_value(&[]))
            .collect()
    }
}

impl Objective for GradualPruning {
    fn loss(&mut self, model: &Model, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let logits = model.forward(&batch.images, true);
        Ok((cross_entropy(&logits, &batch.labels, 0.0), logits))
    }

    fn after_step(&mut self, _model: &Model, _step: usize) -> Result<()> {
        tch::no_grad(|| {
            for (w, m) in self.weights.iter_mut().zip(&self.masks) {
                let _ = w.g_mul_(m);
            }
        });
        Ok(())
    }

    fn after_epoch(&mut self, _model: &Model, epoch: usize) -> Result<()> {
        self.prune_to(density_at(self.cfg.density, epoch + 1, self.cfg.epochs));
        Ok(())
    }
}

/// Sensitivities of `players` from sparse training of `model` (a trainable copy of the all-ReLU
/// model) on `train`; also returns the density reached over all convolutions.
pub fn sensitivity(
    model: &mut Model,
    players: &[Player],
    train: &Loader,
    cfg: &SparseTraining,
) -> Result<(Vec<f64>, f64)> {
    if !(cfg.density > 0.0 && cfg.density < 1.0) {
        bail!("density must be in (0, 1), got {}", cfg.density);
    }
    if cfg.epochs == 0 {
        bail!("sparse training needs at least one epoch");
    }
    let mut obj = GradualPruning::new(model, cfg.clone())?;
    let train_cfg = TrainConfig {
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        seed: cfg.seed,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: cfg.lr,
            momentum: 0.9,
            weight_decay: 5e-4,
            ..OptimizerConfig::default()
        },
        schedule: ScheduleConfig {
            kind: "cosine".into(),
            ..ScheduleConfig::default()
        },
        ..TrainConfig::default()
    };
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "privlin-sparse-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = fit(
        model,
        train,
        &mut obj,
        FitOptions {
            cfg: &train_cfg,
            out: &scratch,
            resume: false,
            eval: None,
            eval_masks: None,
            label: "senet-sparse",
            verbose: false,
        },
    );
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    let kept = obj.kept();
    let sizes: Vec<f64> = obj.weights.iter().map(|w| w.numel() as f64).collect();
    let reached =
        kept.iter().zip(&sizes).map(|(k, n)| k * n).sum::<f64>() / sizes.iter().sum::<f64>();
    let conv_names: Vec<&str> = model
        .layers()
        .iter()
        .filter(|l| l.kind == LayerKind::Conv)
        .map(|l| l.name.as_str())
        .collect();
    let mut site_sens = Vec::with_capacity(model.sites().len());
    for i in 0..model.sites().len() {
        let v = match model.preceding_layer(i) {
            Some(l) => {
                let k = conv_names
                    .iter()
                    .position(|n| *n == l.name)
                    .with_context(|| {
                        format!("layer {} before site {i} is not a convolution", l.name)
                    })?;
                1.0 - kept[k]
            }
            None => 0.0,
        };
        site_sens.push(v);
    }
    Ok((
        players
            .iter()
            .map(|p| p.sites.iter().map(|&s| site_sens[s]).sum::<f64>() / p.sites.len() as f64)
            .collect(),
        reached,
    ))
}

#[cfg(test)]
mod tests {
    use super::density_at;

    #[test]
    fn the_density_falls_cubically_to_the_target_at_the_last_epoch() {
        assert!((density_at(0.1, 5, 5) - 0.1).abs() < 1e-12);
        assert!((density_at(0.1, 0, 5) - 1.0).abs() < 1e-12);
        let mut last = 1.0;
        for e in 1..=5 {
            let d = density_at(0.1, e, 5);
            assert!(d < last && d >= 0.1);
            last = d;
        }
    }
}
