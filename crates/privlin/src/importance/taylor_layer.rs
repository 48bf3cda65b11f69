//! ReLUPruner layer importance (eq. 9):
//! `I(l) = (1/B sum_b ||grad a_b(l)||_2) * sqrt(1/B sum_b ||grad a_b(l)||_2^2 + eps)`,
//! the mean per-sample gradient norm at the site's output times the RMS of those norms (the paper
//! reads the second factor as the square root of the Fisher trace, "the RMS of gradient norms").
//! Per-sample gradients come from the summed cross-entropy in evaluation mode (BN uses running
//! statistics, so samples do not interact).

use super::players::Player;
use crate::data::Loader;
use crate::nn::Model;
use anyhow::{bail, Result};
use tch::{Kind, Reduction, Tensor};

pub const EPS: f64 = 1e-12;

/// Per-site importance over at most `max_batches` batches of `loader`; a player's value is the sum
/// over its sites.
pub fn layer_importance(
    model: &Model,
    players: &[Player],
    loader: &Loader,
    max_batches: usize,
) -> Result<Vec<f64>> {
    let n_sites = model.sites().len();
    let mut sum_norm = vec![0.0; n_sites];
    let mut sum_sq = vec![0.0; n_sites];
    let mut samples = 0usize;
    for batch in loader.epoch(0).take(max_batches.max(1)) {
        let mut f = model.pass(false).with_taps();
        let logits = model.forward_with(&batch.images, &mut f);
        let taps = f.take_taps();
        let loss =
            logits.cross_entropy_loss::<Tensor>(&batch.labels, None, Reduction::Sum, -100, 0.0);
        let posts: Vec<&Tensor> = taps.iter().map(|t| &t.post).collect();
        let grads = Tensor::run_backward(&[&loss], &posts, false, false);
        for (i, g) in grads.iter().enumerate() {
            let norms = g
                .flatten(1, -1)
                .norm_scalaropt_dim(2, [1i64].as_slice(), false);
            sum_norm[i] += norms.sum(Kind::Float).double_value(&[]);
            sum_sq[i] += norms.square().sum(Kind::Float).double_value(&[]);
        }
        samples += batch.len() as usize;
    }
    if samples == 0 {
        bail!("no data for the layer importance");
    }
    let b = samples as f64;
    let site: Vec<f64> = (0..n_sites)
        .map(|i| (sum_norm[i] / b) * (sum_sq[i] / b + EPS).sqrt())
        .collect();
    Ok(players
        .iter()
        .map(|p| p.sites.iter().map(|&s| site[s]).sum())
        .collect())
}
