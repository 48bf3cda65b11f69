//! Scoring Shapley estimators against exact values on a stored game (a utility table): Pearson
//! and Spearman correlation and the largest absolute error, as a function of the number of
//! distinct coalitions the estimator may ask for, over several seeds (issue: "Layer-wise Shapley
//! values for every site").

use super::game::{Game, TableOracle, UtilityTable};
use super::shapley::antithetic::Antithetic;
use super::shapley::exact::Exact;
use super::shapley::kernel::{KernelShap, Sampling};
use super::shapley::monte_carlo::MonteCarlo;
use super::shapley::stratified::Stratified;
use super::shapley::ShapleyEstimator;
use super::Method;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Pearson correlation (0 when either side is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        return 0.0;
    }
    sab / (saa * sbb).sqrt()
}

/// Ranks with ties averaged (1-based).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation (Pearson of the tie-averaged ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

pub fn max_abs_error(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// A sampling estimator configured to run until the evaluation cap (no convergence stop), for
/// scoring at a given number of evaluations; `None` for methods that are not cap-driven. Rounds
/// are bounded by the cap too, so that a game whose coalitions are all known (a cap at or above
/// `2^n`) still ends.
pub fn estimator_to_cap(
    method: Method,
    seed: u64,
    cap: usize,
) -> Option<Box<dyn ShapleyEstimator>> {
    Some(match method {
        Method::ShapleyMc => Box::new(MonteCarlo {
            seed,
            min_permutations: cap,
            max_permutations: cap,
            target_stderr: 0.0,
            truncation: 0.0,
            round: 1,
        }),
        Method::ShapleyAntithetic => Box::new(Antithetic {
            seed,
            min_pairs: cap.div_ceil(2),
            max_pairs: cap.div_ceil(2),
            target_stderr: 0.0,
            round: 1,
        }),
        Method::ShapleyStratified => Box::new(Stratified {
            seed,
            per_stratum: 2,
            min_rounds: cap,
            max_rounds: cap,
            target_stderr: 0.0,
        }),
        Method::ShapleyKernel | Method::ShapleyLeverage => Box::new(KernelShap {
            seed,
            sampling: if method == Method::ShapleyKernel {
                Sampling::Kernel
            } else {
                Sampling::Leverage
            },
            // Draws repeat coalitions (the kernel favours the smallest and largest sizes): draw
            // until the cap on distinct coalitions stops the sampler.
            samples: cap.saturating_mul(20),
            paired: true,
            bootstrap: 0,
            round: 64,
        }),
        _ => return None,
    })
}

/// One estimator run at one cap and seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Score {
    pub method: String,
    pub cap: usize,
    pub seed: u64,
    /// Distinct coalitions asked for.
    pub evaluations: usize,
    pub pearson: f64,
    pub spearman: f64,
    pub max_abs_error: f64,
    pub seconds: f64,
}

/// Exact values of the table's game (every coalition must be in it).
pub fn exact_values(table: &UtilityTable) -> Result<Vec<f64>> {
    let mut oracle = TableOracle::new(table, "reference table")?;
    let mut game = Game::new(&mut oracle);
    Ok(Exact { max_players: 24 }.estimate(&mut game)?.0)
}

/// Scores `methods` on `table` at every cap and seed (a cap below an estimator's smallest step,
/// e.g. one round of stratified sampling, gives no score).
pub fn score(
    table: &UtilityTable,
    methods: &[Method],
    caps: &[usize],
    seeds: &[u64],
    progress: &mut dyn FnMut(&Score),
) -> Result<(Vec<f64>, Vec<Score>)> {
    let exact = exact_values(table)?;
    let mut out = Vec::new();
    for &m in methods {
        if estimator_to_cap(m, 0, 1).is_none() {
            bail!(
                "`{}` is not scored against an evaluation cap (sampling estimators: shapley-mc, \
                 shapley-antithetic, shapley-stratified, shapley-kernel, shapley-leverage)",
                m.name()
            );
        }
        for &cap in caps {
            for &seed in seeds {
                let est = estimator_to_cap(m, seed, cap).expect("checked");
                let mut oracle = TableOracle::new(table, "reference table")?;
                let mut game = Game::new(&mut oracle);
                game.set_cap(Some(cap));
                let t0 = std::time::Instant::now();
                // An estimator whose smallest step does not fit the cap has no point there.
                let Ok((v, _)) = est.estimate(&mut game) else {
                    continue;
                };
                let s = Score {
                    method: m.name().into(),
                    cap,
                    seed,
                    evaluations: game.evaluations(),
                    pearson: pearson(&v, &exact),
                    spearman: spearman(&v, &exact),
                    max_abs_error: max_abs_error(&v, &exact),
                    seconds: t0.elapsed().as_secs_f64(),
                };
                progress(&s);
                out.push(s);
            }
        }
    }
    Ok((exact, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlations_match_definitions() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[1.0, 10.0, 100.0, 1000.0]) - 1.0).abs() < 1e-12);
        assert_eq!(ranks(&[3.0, 1.0, 3.0]), vec![2.5, 1.0, 2.5]);
        assert_eq!(max_abs_error(&a, &[1.0, 2.5, 3.0, 3.0]), 1.0);
        assert_eq!(pearson(&a, &[1.0; 4]), 0.0);
    }
}
