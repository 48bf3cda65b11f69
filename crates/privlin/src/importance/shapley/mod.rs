//! Shapley-value estimators over a [`Game`] (PrivShap eq. 1):
//! `SV_i = 1/|N| * sum_{S in N\{i}} (U(S u i) - U(S)) / C(|N|-1, |S|)`.

pub mod antithetic;
pub mod bandit;
pub mod exact;
pub mod kernel;
pub mod monte_carlo;
pub mod stratified;
pub mod tree;

use super::game::{Coalition, Game};
use anyhow::{bail, Result};
use rand::Rng;

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

/// The coalitions of every prefix of the permutation `p` (position `j`: its first `j + 1` players).
pub(crate) fn prefixes(p: &[usize]) -> Vec<Coalition> {
    p.iter()
        .scan(0, |c, &i| {
            *c |= 1 << i;
            Some(*c)
        })
        .collect()
}

/// A uniformly random coalition of `k` players drawn from `pool` (a partial Fisher-Yates shuffle).
pub(crate) fn random_subset<R: Rng>(rng: &mut R, pool: &[usize], k: usize) -> Coalition {
    let mut p = pool.to_vec();
    let mut c = 0;
    for j in 0..k {
        let r = rng.gen_range(j..p.len());
        p.swap(j, r);
        c |= 1 << p[j];
    }
    c
}

/// Solves `A x = b` for a small dense symmetric system by Gaussian elimination with partial
/// pivoting; `None` when `A` is (numerically) singular.
pub(crate) fn solve(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .zip(b)
        .map(|(row, &y)| {
            let mut r = row.clone();
            r.push(y);
            r
        })
        .collect();
    let scale = a
        .iter()
        .flatten()
        .fold(0.0f64, |s, &x| s.max(x.abs()))
        .max(f64::MIN_POSITIVE);
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[piv][col].abs() <= 1e-12 * scale {
            return None;
        }
        m.swap(col, piv);
        for r in col + 1..n {
            let (top, bottom) = m.split_at_mut(r);
            let (pivot, row) = (&top[col], &mut bottom[0]);
            let f = row[col] / pivot[col];
            if f != 0.0 {
                for (x, p) in row[col..].iter_mut().zip(&pivot[col..]) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|c| m[r][c] * x[c]).sum();
        x[r] = (m[r][n] - s) / m[r][r];
    }
    Some(x)
}

/// The Shapley kernel's weight of a coalition of size `k` among `n` players (Lundberg & Lee 2017,
/// Thm. 2): `(n - 1) / (C(n, k) k (n - k))`, for `0 < k < n`.
pub fn kernel_weight(n: usize, k: usize) -> f64 {
    (n - 1) as f64 / (binomial(n, k) * (k * (n - k)) as f64)
}

/// The constrained weighted least-squares problem of the Shapley kernel (Lundberg & Lee 2017;
/// the closed form of Covert & Lee 2021, eq. 7): with `A = sum w z z^T`, `b = sum w z (U(S) -
/// U(0))` over weighted coalitions `z`, `phi = A^-1 (b - 1 (1^T A^-1 b - (U(N) - U(0))) /
/// 1^T A^-1 1)`, so that `sum phi = U(N) - U(0)` exactly (efficiency).
pub(crate) fn constrained_wls(
    n: usize,
    rows: &[(Coalition, f64, f64)],
    u_empty: f64,
    u_full: f64,
) -> Result<Vec<f64>> {
    let mut a = vec![vec![0.0; n]; n];
    let mut b = vec![0.0; n];
    for &(c, w, u) in rows {
        let m: Vec<usize> = members(c, n).collect();
        for &i in &m {
            b[i] += w * (u - u_empty);
            for &j in &m {
                a[i][j] += w;
            }
        }
    }
    let (Some(ainv_b), Some(ainv_1)) = (solve(&a, &b), solve(&a, &vec![1.0; n])) else {
        bail!(
            "the {} sampled coalitions do not determine {n} values (the regression is singular): sample more",
            rows.len()
        );
    };
    let lambda = (ainv_b.iter().sum::<f64>() - (u_full - u_empty)) / ainv_1.iter().sum::<f64>();
    Ok(ainv_b
        .iter()
        .zip(&ainv_1)
        .map(|(x, y)| x - lambda * y)
        .collect())
}
