//! Per-stage ReLUs and MACs of a ResNet-family model (basic blocks) by formula.
//!
//! Stage `s` (0-based) of a basic-block ResNet has `n_s` blocks of two 3x3 convolutions at
//! `C_s` channels on an `H_s x H_s` map, `H_s = (input / stem stride) / 2^s`; each block has two
//! ReLUs (`act1` in the block, `act2` after the addition), so the stage holds `2 n_s C_s H_s^2`
//! ReLUs. MACs: `9 C_in C_s H_s^2 + 9 C_s^2 H_s^2` for the first block plus its 1x1 shortcut
//! `C_in C_s H_s^2` where the shape changes, `18 C_s^2 H_s^2` for each other block. The stem is a
//! 3x3 convolution from 3 channels with one ReLU layer; the head a linear layer. These are the
//! numbers `privlin info` traces from a built model (tested), without allocating weights that a
//! wide candidate would need.

use crate::nn::{Arch, ModelSpec};
use anyhow::{bail, Result};
use serde::Serialize;

/// ReLUs (all four body stages' sites, convention `all`) and MACs of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StageCost {
    pub channels: i64,
    pub side: i64,
    pub relus: i64,
    pub macs: i64,
}

/// Stem, the four stages, head: `(stem, [stage; 4], head MACs)`.
pub fn stage_costs(spec: &ModelSpec) -> Result<(StageCost, [StageCost; 4], i64)> {
    if !matches!(
        spec.arch,
        Arch::Resnet18 | Arch::Resnet34 | Arch::Hrn { .. }
    ) {
        bail!(
            "stage costs by formula cover basic-block ResNets (resnet18, resnet34, hrn-*), not {}",
            spec.arch
        );
    }
    spec.validate()?;
    let blocks = spec.stage_blocks().expect("ResNet family");
    let mults = spec.arch.stage_multipliers().expect("ResNet family");
    let m = spec.ch(64);
    let h0 = spec.input_size / spec.stem_stride;
    let stem = StageCost {
        channels: m,
        side: h0,
        relus: m * h0 * h0,
        macs: 27 * m * h0 * h0,
    };
    let mut cin = m;
    let mut out = [stem; 4];
    for s in 0..4 {
        let c = match spec.arch {
            Arch::Hrn { .. } => m * mults[s],
            _ => spec.ch(64 * mults[s]),
        };
        let h = h0 >> s;
        let hw = h * h;
        let n = blocks[s];
        let mut macs = 9 * cin * c * hw + 9 * c * c * hw + 18 * c * c * hw * (n - 1);
        if s > 0 || cin != c {
            macs += cin * c * hw;
        }
        out[s] = StageCost {
            channels: c,
            side: h,
            relus: 2 * n * c * hw,
            macs,
        };
        cin = c;
    }
    Ok((stem, out, cin * spec.classes))
}
