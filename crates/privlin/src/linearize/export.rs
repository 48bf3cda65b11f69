//! Mask export for private-inference runtimes.
//!
//! - `masks.safetensors`: site name -> float 0/1 tensor of the site's full shape `(C, H, W)` (channel
//!   and layer masks expanded), 1 where the ReLU stays. Loadable by [`MaskSet::load`].
//! - `active.safetensors`: site name -> int64 flat indices (row-major over `(C, H, W)`) of the
//!   positions whose ReLU stays, sorted; a runtime evaluates only these.
//! - `active.json`: per site its shape, capacity, active count and whether it is counted.

use crate::nn::{MaskSet, Model, SiteMask};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{Device, Kind, Tensor};

pub const MASKS_FILE: &str = "masks.safetensors";
pub const ACTIVE_FILE: &str = "active.safetensors";
pub const ACTIVE_JSON: &str = "active.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveSite {
    pub name: String,
    pub shape: [i64; 3],
    pub capacity: i64,
    pub active: i64,
    pub counted: bool,
}

/// `active.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveIndex {
    pub convention: String,
    /// Active ReLUs over the counted sites.
    pub total_active: i64,
    pub total_capacity: i64,
    pub sites: Vec<ActiveSite>,
}

/// Each site's mask expanded to `(C, H, W)`, 0/1, on the CPU.
pub fn expanded(model: &Model, masks: &MaskSet) -> Result<Vec<(String, Tensor)>> {
    model
        .sites()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let full = match masks.get(i) {
                SiteMask::Keep => Tensor::ones(s.shape, (Kind::Float, Device::Cpu)),
                SiteMask::Identity => Tensor::zeros(s.shape, (Kind::Float, Device::Cpu)),
                SiteMask::Tensor(t) => {
                    let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Float);
                    let bin = t.gt(0.5).to_kind(Kind::Float);
                    if t.ne_tensor(&bin).any().int64_value(&[]) != 0 {
                        bail!("site `{}`: mask is not binary, cannot export", s.name);
                    }
                    bin.expand(s.shape, false).contiguous()
                }
            };
            Ok((s.name.clone(), full))
        })
        .collect()
}

/// Write `masks.safetensors`, `active.safetensors` and `active.json` into `dir`, atomically each.
pub fn export(model: &Model, masks: &MaskSet, dir: &Path) -> Result<ActiveIndex> {
    let full = expanded(model, masks)?;
    let mut active = Vec::new();
    let mut sites = Vec::new();
    for (i, ((name, m), s)) in full.iter().zip(model.sites()).enumerate() {
        let idx = m
            .flatten(0, -1)
            .nonzero()
            .flatten(0, -1)
            .to_kind(Kind::Int64);
        sites.push(ActiveSite {
            name: name.clone(),
            shape: s.shape,
            capacity: s.count(),
            active: idx.size()[0],
            counted: model.counted(i),
        });
        active.push((name.clone(), idx));
    }
    crate::io::atomic_write_with(&dir.join(MASKS_FILE), |tmp| {
        Tensor::write_safetensors(&full, tmp).map_err(Into::into)
    })?;
    crate::io::atomic_write_with(&dir.join(ACTIVE_FILE), |tmp| {
        Tensor::write_safetensors(&active, tmp).map_err(Into::into)
    })?;
    let index = ActiveIndex {
        convention: model.spec.convention.describe(),
        total_active: sites.iter().filter(|s| s.counted).map(|s| s.active).sum(),
        total_capacity: model.relu_count(),
        sites,
    };
    crate::io::atomic_write_json(&dir.join(ACTIVE_JSON), &index)?;
    Ok(index)
}
