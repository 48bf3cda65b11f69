//! Activation sites and masks.
//!
//! Every nonlinearity of a model is a named *site* with a fixed output shape `(C, H, W)`. A site
//! applies `m * act(x) + (1 - m) * x` (PrivShap eq. 3, SNL's channel/pixel masks): `m = 1` keeps the
//! nonlinearity, `m = 0` makes the site the identity. Masks have pixel `(C, H, W)`, channel
//! `(C, 1, 1)` or layer (scalar) granularity and may require gradients, so mask-gradient methods
//! can read `dL/dm`.

use serde::{Deserialize, Serialize};
use std::fmt;
use tch::{Kind, Tensor};

/// The nonlinearity a site applies when its mask is 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Silu,
    /// `min(max(x, 0), 6)` (MobileNet's; an imported `Clip(0, 6)`).
    Relu6,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
            Activation::Relu6 => x.clamp(0.0, 6.0),
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "relu" => Ok(Activation::Relu),
            "silu" | "swish" => Ok(Activation::Silu),
            "relu6" => Ok(Activation::Relu6),
            other => anyhow::bail!("unknown activation `{other}` (expected relu, relu6 or silu)"),
        }
    }
}

/// Where a site sits in the network; the counting convention decides which kinds count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    /// The nonlinearity right after the stem convolution.
    Stem,
    /// A nonlinearity inside a block (between convolutions).
    Block,
    /// The nonlinearity applied after a residual addition.
    PostAdd,
    /// The final BN-ReLU before global pooling (pre-activation networks such as WRN).
    Final,
}

impl fmt::Display for SiteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SiteKind::Stem => "stem",
            SiteKind::Block => "block",
            SiteKind::PostAdd => "post_add",
            SiteKind::Final => "final",
        })
    }
}

/// One activation site of a model, as declared by its forward pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    /// PyTorch-style module path, e.g. `layer2.1.act1`.
    pub name: String,
    /// Output shape `[C, H, W]` for the model's input size.
    pub shape: [i64; 3],
    pub kind: SiteKind,
}

impl SiteInfo {
    /// Number of scalar nonlinearities (pixel-granularity capacity) of the site.
    pub fn count(&self) -> i64 {
        self.shape.iter().product()
    }
}

/// Granularity of a mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One mask entry per scalar activation, shape `(C, H, W)`.
    #[default]
    Pixel,
    /// One entry per channel, shape `(C, 1, 1)`.
    Channel,
    /// One scalar for the whole site.
    Layer,
}

impl Granularity {
    pub fn mask_shape(self, site_shape: [i64; 3]) -> Vec<i64> {
        match self {
            Granularity::Pixel => site_shape.to_vec(),
            Granularity::Channel => vec![site_shape[0], 1, 1],
            Granularity::Layer => vec![],
        }
    }

    /// Granularity implied by a mask's shape for a site of `site_shape`.
    pub fn of_shape(shape: &[i64], site_shape: [i64; 3]) -> Option<Self> {
        if shape == site_shape {
            Some(Granularity::Pixel)
        } else if shape == [site_shape[0], 1, 1] {
            Some(Granularity::Channel)
        } else if shape.is_empty() || shape == [1] {
            Some(Granularity::Layer)
        } else {
            None
        }
    }

    /// How many scalar activations one mask entry controls.
    pub fn entry_size(self, site_shape: [i64; 3]) -> i64 {
        match self {
            Granularity::Pixel => 1,
            Granularity::Channel => site_shape[1] * site_shape[2],
            Granularity::Layer => site_shape.iter().product(),
        }
    }
}

/// The per-site mixing `m * act(x) + (1 - m) * x`, written as `x + m * (act(x) - x)`.
pub fn apply_mask(act: Activation, x: &Tensor, mask: &Tensor) -> Tensor {
    let a = act.apply(x);
    x + mask * (a - x)
}

/// Count of mask entries equal to one (kept nonlinearities), scaled by entry size.
pub fn active_count(mask: &Tensor, site_shape: [i64; 3]) -> anyhow::Result<i64> {
    let g = Granularity::of_shape(&mask.size(), site_shape).ok_or_else(|| {
        anyhow::anyhow!(
            "mask shape {:?} fits no granularity of site shape {:?}",
            mask.size(),
            site_shape
        )
    })?;
    let ones = mask
        .gt(0.5)
        .to_kind(Kind::Int64)
        .sum(Kind::Int64)
        .int64_value(&[]);
    Ok(ones * g.entry_size(site_shape))
}
