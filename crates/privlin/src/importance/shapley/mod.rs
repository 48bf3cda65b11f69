//! Shapley-value estimators over a [`Game`] (PrivShap eq. 1):
//! `SV_i = 1/|N| * sum_{S in N\{i}} (U(S u i) - U(S)) / C(|N|-1, |S|)`.

pub mod bandit;
pub mod exact;
pub mod monte_carlo;
pub mod tree;

use super::game::Game;
use anyhow::Result;

/// One estimator of per-player Shapley values.
pub trait ShapleyEstimator {
    /// Method name as in `privlin importance --method`.
    fn name(&self) -> &'static str;
    /// The parameters used, for the output file.
    fn params(&self) -> serde_json::Value;
    /// Values and, where the estimator has them, standard errors.
    fn estimate(&self, game: &mut Game) -> Result<(Vec<f64>, Option<Vec<f64>>)>;
}

/// `C(n, k)` as a float (exact for the sizes used here, n <= 64).
pub fn binomial(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, j| acc * (n - j) as f64 / (j + 1) as f64)
}

/// Players of coalition `c`.
pub fn members(c: u64, n: usize) -> impl Iterator<Item = usize> {
    (0..n).filter(move |i| c >> i & 1 == 1)
}

/// Mean and standard error of running sums.
pub(crate) fn mean_stderr(sum: f64, sumsq: f64, t: usize) -> (f64, f64) {
    if t == 0 {
        return (0.0, f64::INFINITY);
    }
    let tf = t as f64;
    let mean = sum / tf;
    if t < 2 {
        return (mean, f64::INFINITY);
    }
    let var = ((sumsq - tf * mean * mean) / (tf - 1.0)).max(0.0);
    (mean, (var / tf).sqrt())
}
