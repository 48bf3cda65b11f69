//! SENet ReLU sensitivity ("Making Models Shallow Again" eq. 1, after Kundu et al. 2023):
//! `eta_alpha(l) = 1 - eta_theta(l)`, where `eta_theta(l)` is the pruning sensitivity of the weight
//! layer preceding site `l`: the fraction of its weights that survive pruning the whole network to
//! parameter density `d`.
//!
//! SENet obtains the per-layer densities from sparse training at density `d`; here they come from
//! one-shot global magnitude pruning of the trained model's convolution weights (no retraining), a
//! documented approximation that keeps this stage to one pass over the weights.

use super::players::Player;
use crate::nn::Model;
use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

/// Per-site sensitivity of the sites in `players` (a player's value: the mean over its sites).
pub fn sensitivity(model: &Model, players: &[Player], density: f64) -> Result<Vec<f64>> {
    if !(density > 0.0 && density < 1.0) {
        bail!("--density must be in (0, 1), got {density}");
    }
    let vars = model.vs.variables();
    let convs: Vec<&crate::nn::LayerInfo> = model
        .layers()
        .iter()
        .filter(|l| l.kind == crate::nn::LayerKind::Conv)
        .collect();
    let weight = |name: &str| -> Result<Tensor> {
        vars.get(&format!("{name}.weight"))
            .map(|t| t.detach().abs().flatten(0, -1).to_kind(Kind::Float))
            .with_context(|| format!("no weight tensor for layer {name}"))
    };
    let all = Tensor::cat(
        &convs
            .iter()
            .map(|l| weight(&l.name))
            .collect::<Result<Vec<_>>>()?,
        0,
    );
    let total = all.size()[0];
    let keep = ((total as f64) * density).round().max(1.0) as i64;
    // The global magnitude threshold: the keep-th largest |w|.
    let threshold = all.kthvalue(total - keep + 1, 0, false).0.double_value(&[]);
    let mut site_sens = Vec::with_capacity(model.sites().len());
    for i in 0..model.sites().len() {
        let v = match model.preceding_layer(i) {
            Some(l) => {
                let w = weight(&l.name)?;
                let kept = w
                    .ge(threshold)
                    .to_kind(Kind::Float)
                    .mean(Kind::Float)
                    .double_value(&[]);
                1.0 - kept
            }
            None => 0.0,
        };
        site_sens.push(v);
    }
    Ok(players
        .iter()
        .map(|p| p.sites.iter().map(|&s| site_sens[s]).sum::<f64>() / p.sites.len() as f64)
        .collect())
}
