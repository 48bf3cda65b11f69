//! Initialization of a shallow branch from its main branch: the least-squares `k x k`
//! convolution (plus bias) that maps the block's input to the main branch's output, fitted on a
//! few training batches with the masks in place ("initialized from the main branch's linear map").
//!
//! With few ReLUs kept inside the block (`d < d_th`) the main branch is nearly linear, a 3x3 conv,
//! BN, a mostly-identity site, a 3x3 conv and BN, so it is close to one 5x5 convolution; the best
//! 3x3 one is what the branch can hold. The fit solves the normal equations
//! `(X^T X + eps I) W = X^T Y` over im2col patches `X` of the input (centred) and the main
//! output `Y` (centred), accumulated in double precision batch by batch. The branch's batch norm
//! is set to pass the fitted map through unchanged (running mean and variance of the conv output,
//! `gamma = sqrt(var + eps)`, `beta = mean + bias`). `R^2` (fraction of the main output's variance
//! the fit explains) is reported per block, as is the same for the random initialization.

use crate::data::Loader;
use crate::nn::{MaskSet, Model};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// How well a shallow branch reproduces its main branch, before fine-tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchFit {
    pub block: String,
    /// `R^2` of the branch as initialized by PyTorch's default.
    pub r2_random: f64,
    /// `R^2` of the least-squares branch (when fitted).
    pub r2_fit: Option<f64>,
}

struct Normal {
    xtx: Tensor,
    xty: Tensor,
    sx: Tensor,
    sy: Tensor,
    syy: Tensor,
    n: f64,
}

/// Patches of `x` for a `k x k` conv of `stride` and padding `k / 2`, as rows `(N L, C k k)` in
/// the conv weight's `(C, kh, kw)` order.
fn patches(x: &Tensor, k: i64, stride: i64) -> Tensor {
    let c = x.size()[1];
    let cols = x.im2col([k, k], [1, 1], [k / 2, k / 2], [stride, stride]);
    cols.transpose(1, 2).reshape([-1, c * k * k])
}

fn rows(y: &Tensor) -> Tensor {
    let c = y.size()[1];
    y.permute([0, 2, 3, 1]).reshape([-1, c])
}

/// `R^2` of predictions `yhat` for `y` (rows), summed over channels.
fn r2(y: &Tensor, yhat: &Tensor) -> f64 {
    let res = (y - yhat).square().sum(Kind::Double).double_value(&[]);
    let tot = (y - y.mean_dim([0i64].as_slice(), true, Kind::Float))
        .square()
        .sum(Kind::Double)
        .double_value(&[]);
    1.0 - res / tot.max(1e-30)
}

/// Runs `batches` training batches through `model` (gate 0, eval mode, `masks`) and collects the
/// gated blocks' branch inputs and main outputs.
fn taps(
    model: &Model,
    masks: &MaskSet,
    train: &Loader,
    batches: usize,
) -> Vec<Vec<crate::nn::BranchTap>> {
    let gate = model.gate();
    model.set_gate(0.0);
    let out = tch::no_grad(|| {
        train
            .epoch(0)
            .take(batches)
            .map(|b| {
                let mut f = model.pass(false).with_masks(masks).with_branch_taps();
                let _ = model.forward_with(&b.images, &mut f);
                f.take_branch_taps()
            })
            .collect()
    });
    model.set_gate(gate);
    out
}

/// Measure (and with `fit`, set) every gated block's shallow branch of `model`.
pub fn fit_branches(
    model: &Model,
    masks: &MaskSet,
    train: &Loader,
    batches: usize,
    fit: bool,
) -> Result<Vec<BranchFit>> {
    let k = model.spec.shallow_kernel;
    let vars: HashMap<String, Tensor> = model.vs.variables().into_iter().collect();
    let var = |n: &str| -> Result<&Tensor> {
        vars.get(n)
            .with_context(|| format!("the model has no tensor `{n}`"))
    };
    let collected = taps(model, masks, train, batches);
    if collected.is_empty() {
        bail!("the training split gave no batch to fit the shallow branches on");
    }
    let mut out = Vec::new();
    for (bi, block) in model.spec.gated.iter().enumerate() {
        let w = var(&format!("{block}.gb.conv.weight"))?;
        let stride = {
            let t = &collected[0][bi];
            t.input.size()[2] / t.main.size()[2]
        };
        let has_bn = vars.contains_key(&format!("{block}.gb.bn.weight"));
        // Random branch as initialized: conv (no batch norm statistics yet: standardize the conv
        // output per channel as a fresh BN in training mode would, then compare).
        let mut acc: Option<Normal> = None;
        let mut res_rand = 0.0;
        for taps in &collected {
            let t = &taps[bi];
            if t.block != *block {
                bail!(
                    "branch taps out of order: {} where {block} was expected",
                    t.block
                );
            }
            let x = patches(&t.input, k, stride).to_kind(Kind::Double);
            let y = rows(&t.main).to_kind(Kind::Double);
            let yhat = tch::no_grad(|| {
                let z = t.input.conv2d(
                    w,
                    None::<Tensor>,
                    [stride, stride],
                    [k / 2, k / 2],
                    [1, 1],
                    1,
                );
                let z = rows(&z).to_kind(Kind::Double);
                if has_bn {
                    let m = z.mean_dim([0i64].as_slice(), true, Kind::Double);
                    let s = z.std_dim([0i64].as_slice(), false, true).clamp_min(1e-12);
                    (z - m) / s
                } else {
                    z
                }
            });
            res_rand += (&y - &yhat).square().sum(Kind::Double).double_value(&[]);
            let n = y.size()[0] as f64;
            let a = acc.get_or_insert_with(|| {
                let d = x.size()[1];
                let c = y.size()[1];
                let z = |s: &[i64]| Tensor::zeros(s, (Kind::Double, x.device()));
                Normal {
                    xtx: z(&[d, d]),
                    xty: z(&[d, c]),
                    sx: z(&[d]),
                    sy: z(&[c]),
                    syy: z(&[c]),
                    n: 0.0,
                }
            });
            a.xtx += x.tr().matmul(&x);
            a.xty += x.tr().matmul(&y);
            a.sx += x.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
            a.sy += y.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
            a.syy += y
                .square()
                .sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
            a.n += n;
        }
        let a = acc.expect("at least one batch");
        // Total sum of squares about the mean, from the accumulated moments.
        let my = &a.sy / a.n;
        let tot = (&a.syy - my.square() * a.n)
            .sum(Kind::Double)
            .double_value(&[]);
        let r2_random = 1.0 - res_rand / tot.max(1e-30);
        let r2_fit = if fit {
            // Normal equations, centred when a batch norm after the conv supplies the intercept
            // (ResNet family), through the origin otherwise (WRN's branch has no bias).
            let zero = |t: &Tensor| t.zeros_like();
            let (mx, my) = if has_bn {
                (&a.sx / a.n, &a.sy / a.n)
            } else {
                (zero(&a.sx), zero(&a.sy))
            };
            let cxx = &a.xtx / a.n - mx.unsqueeze(1).matmul(&mx.unsqueeze(0));
            let cxy = &a.xty / a.n - mx.unsqueeze(1).matmul(&my.unsqueeze(0));
            let d = cxx.size()[0];
            let ridge = 1e-6
                * cxx
                    .diagonal(0, 0, 1)
                    .mean(Kind::Double)
                    .double_value(&[])
                    .max(1e-12);
            let a_reg = &cxx + Tensor::eye(d, (Kind::Double, mx.device())) * ridge;
            let wls = Tensor::linalg_solve(&a_reg, &cxy, true); // (d, c)
            let bias = &my - mx.unsqueeze(0).matmul(&wls).squeeze_dim(0);
            // Residual sum of squares at the solution: n (E[yy] - diag(cov(X, Y)^T W)).
            let cyy = &a.syy / a.n - my.square();
            let explained = cxy.tr().matmul(&wls).diagonal(0, 0, 1);
            let res = ((cyy - explained) * a.n)
                .sum(Kind::Double)
                .double_value(&[]);
            let r2 = 1.0 - res / tot.max(1e-30);
            let c = wls.size()[1];
            let cin = w.size()[1];
            let new_w = wls.tr().reshape([c, cin, k, k]).to_kind(w.kind());
            tch::no_grad(|| -> Result<()> {
                let mut wt = w.shallow_clone();
                wt.copy_(&new_w.to_device(w.device()));
                if has_bn {
                    // The conv output's mean and variance: mean = mx W, var = diag(W^T cov(X) W).
                    let zm = mx.unsqueeze(0).matmul(&wls).squeeze_dim(0);
                    let zv = wls
                        .tr()
                        .matmul(&cxx)
                        .matmul(&wls)
                        .diagonal(0, 0, 1)
                        .clamp_min(1e-8);
                    let set = |n: &str, v: &Tensor| -> Result<()> {
                        let mut t = var(&format!("{block}.gb.bn.{n}"))?.shallow_clone();
                        t.copy_(&v.to_kind(t.kind()).to_device(t.device()));
                        Ok(())
                    };
                    set("running_mean", &zm)?;
                    set("running_var", &zv)?;
                    set("weight", &(&zv + 1e-5).sqrt())?;
                    set("bias", &(&zm + &bias))?;
                }
                Ok(())
            })?;
            Some(r2)
        } else {
            None
        };
        out.push(BranchFit {
            block: block.clone(),
            r2_random,
            r2_fit,
        });
    }
    Ok(out)
}

/// `R^2` of predictions for targets, exposed for tests.
pub fn r_squared(y: &Tensor, yhat: &Tensor) -> f64 {
    r2(&rows(y), &rows(yhat))
}
