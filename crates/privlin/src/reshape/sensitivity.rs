//! ReLU sensitivity of a residual block ("Making Models Shallow Again", Sec. 4 and footnote 1):
//! `d = kept / capacity` of the sites inside its main branch, the ones a shallow block loses
//! (`act1` of a basic block, `act1`/`act2` of a bottleneck, `relu2` of a pre-activation WRN
//! block). The stem site and the sites after residual additions are never candidates.

use crate::nn::{MaskSet, Model};
use anyhow::Result;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockSensitivity {
    pub block: String,
    /// The block's intra-block sites.
    pub sites: Vec<String>,
    /// ReLUs kept there by the masks, and their capacity (counted sites only).
    pub kept: i64,
    pub capacity: i64,
    /// `kept / capacity` (0 when no site of the block counts).
    pub d: f64,
    /// Whether `d < d_th` selected the block for gated branching.
    pub selected: bool,
}

/// Whether site `name` lies inside the main branch of `block`.
fn intra_block(block: &str, name: &str, wrn: bool) -> bool {
    let Some(rest) = name.strip_prefix(block).and_then(|r| r.strip_prefix('.')) else {
        return false;
    };
    if wrn {
        rest == "relu2"
    } else {
        rest.starts_with("act") && !rest.contains('.')
    }
}

/// Every residual block's sensitivity under `masks`, selected where `d < d_th`.
pub fn block_sensitivity(
    model: &Model,
    masks: &MaskSet,
    d_th: f64,
) -> Result<Vec<BlockSensitivity>> {
    let wrn = matches!(model.spec.arch, crate::nn::Arch::Wrn { .. });
    let counts = masks.counts(model.sites())?;
    let mut out = Vec::new();
    for block in model.spec.block_names() {
        let idx: Vec<usize> = (0..model.sites().len())
            .filter(|&i| intra_block(&block, &model.sites()[i].name, wrn))
            .collect();
        // A basic block's sites are act1, act2: every one but the last lies inside its main branch.
        let inner: Vec<usize> = if wrn {
            idx
        } else {
            idx[..idx.len().saturating_sub(1)].to_vec()
        };
        let (mut kept, mut capacity) = (0, 0);
        for &i in &inner {
            if model.counted(i) {
                kept += counts[i];
                capacity += model.sites()[i].count();
            }
        }
        let d = if capacity > 0 {
            kept as f64 / capacity as f64
        } else {
            0.0
        };
        out.push(BlockSensitivity {
            block,
            sites: inner
                .iter()
                .map(|&i| model.sites()[i].name.clone())
                .collect(),
            kept,
            capacity,
            d,
            selected: d < d_th,
        });
    }
    Ok(out)
}
