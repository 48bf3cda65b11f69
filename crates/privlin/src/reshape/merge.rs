//! Merging the linear layers a dropped ReLU leaves back to back ("Making Models Shallow Again",
//! Sec. 4: "replace the CONV-BN pairs located immediately before and after the dropped ReLU layer
//! with a single CONV-BN unit"; DepthShrinker, Fu et al. 2022).
//!
//! Exact in two cases only, and only those are folded: a batch norm (inference statistics) into
//! the convolution before it, and a convolution followed by a 1x1 stride-1 convolution (the
//! bottleneck's `conv2 -> act2 -> conv3` with `act2` fully linearized). Two 3x3 convolutions
//! compose to a 5x5 one only away from the border: the zero padding of the intermediate map (and
//! the batch norm's shift inside it) differs from padding the input, so that case is not merged
//! here; gated branching learns its replacement instead.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// A convolution with bias: weight `(out, in, k, k)`, bias `(out)`, stride and padding.
#[derive(Debug)]
pub struct AffineConv {
    pub weight: Tensor,
    pub bias: Tensor,
    pub stride: i64,
    pub padding: i64,
}

impl AffineConv {
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            Some(&self.bias),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
}

/// Batch norm with inference statistics folded into the preceding bias-free convolution:
/// `w' = w * gamma / sqrt(var + eps)`, `b' = beta - mean * gamma / sqrt(var + eps)`.
#[allow(clippy::too_many_arguments)]
pub fn fold_bn(
    weight: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
    stride: i64,
    padding: i64,
) -> AffineConv {
    let scale = gamma / (var + eps).sqrt();
    AffineConv {
        weight: weight * scale.view([-1, 1, 1, 1]),
        bias: beta - mean * &scale,
        stride,
        padding,
    }
}

/// `second(first(x))` as one convolution, exactly: `second` must be 1x1 with stride 1 and no
/// padding (it then commutes with the first convolution's padding and stride).
pub fn compose(first: &AffineConv, second: &AffineConv) -> Result<AffineConv> {
    let s = second.weight.size();
    if s[2] != 1 || s[3] != 1 || second.stride != 1 || second.padding != 0 {
        bail!(
            "only a 1x1 stride-1 convolution composes exactly with the one before it (got {}x{}, stride {}, padding {})",
            s[2],
            s[3],
            second.stride,
            second.padding
        );
    }
    let w2 = second.weight.flatten(1, -1).to_kind(Kind::Double); // (o, m)
    let w1 = first.weight.to_kind(Kind::Double); // (m, i, k, k)
    let sz = w1.size();
    let w = w2
        .matmul(&w1.flatten(1, -1))
        .reshape([s[0], sz[1], sz[2], sz[3]]);
    let b = w2.matmul(&first.bias.to_kind(Kind::Double)) + second.bias.to_kind(Kind::Double);
    Ok(AffineConv {
        weight: w.to_kind(first.weight.kind()),
        bias: b.to_kind(first.weight.kind()),
        stride: first.stride,
        padding: first.padding,
    })
}
