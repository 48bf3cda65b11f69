//! Mask sets: one mask per activation site, saved as safetensors (site name -> tensor).

use super::site::{active_count, Granularity, SiteInfo};
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// The mask of one site.
#[derive(Debug)]
pub enum SiteMask {
    /// The nonlinearity is kept everywhere (mask of ones, no arithmetic).
    Keep,
    /// The site is the identity (mask of zeros, no arithmetic).
    Identity,
    /// A pixel `(C,H,W)`, channel `(C,1,1)` or scalar mask, possibly requiring gradients.
    Tensor(Tensor),
}

impl SiteMask {
    fn shallow_clone(&self) -> Self {
        match self {
            SiteMask::Keep => SiteMask::Keep,
            SiteMask::Identity => SiteMask::Identity,
            SiteMask::Tensor(t) => SiteMask::Tensor(t.shallow_clone()),
        }
    }
}

/// One mask per site, in the model's site order.
#[derive(Debug)]
pub struct MaskSet {
    masks: Vec<SiteMask>,
}

impl Clone for MaskSet {
    fn clone(&self) -> Self {
        MaskSet {
            masks: self.masks.iter().map(SiteMask::shallow_clone).collect(),
        }
    }
}

impl MaskSet {
    /// Every site keeps its nonlinearity (the all-ReLU model).
    pub fn all_kept(n_sites: usize) -> Self {
        MaskSet {
            masks: (0..n_sites).map(|_| SiteMask::Keep).collect(),
        }
    }

    /// A coalition of whole sites: `keep[i]` keeps site i, the others are the identity.
    pub fn coalition(keep: &[bool]) -> Self {
        MaskSet {
            masks: keep
                .iter()
                .map(|&k| {
                    if k {
                        SiteMask::Keep
                    } else {
                        SiteMask::Identity
                    }
                })
                .collect(),
        }
    }

    /// Tensor masks of ones at `granularity` for every site, optionally requiring gradients.
    pub fn ones(
        sites: &[SiteInfo],
        granularity: Granularity,
        requires_grad: bool,
        device: Device,
    ) -> Self {
        MaskSet {
            masks: sites
                .iter()
                .map(|s| {
                    let t = Tensor::ones(granularity.mask_shape(s.shape), (Kind::Float, device));
                    SiteMask::Tensor(t.set_requires_grad(requires_grad))
                })
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.masks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// The mask of site `idx`; a site past the end keeps its nonlinearity.
    pub fn get(&self, idx: usize) -> &SiteMask {
        self.masks.get(idx).unwrap_or(&SiteMask::Keep)
    }

    pub fn set(&mut self, idx: usize, mask: SiteMask) {
        self.masks[idx] = mask;
    }

    /// The masks of `from`'s sites carried over by name to the sites `to` of another model (one
    /// that gained or lost sites); a site `from` does not have keeps its nonlinearity.
    pub fn by_name(&self, from: &[SiteInfo], to: &[SiteInfo]) -> Self {
        MaskSet {
            masks: to
                .iter()
                .map(|t| match from.iter().position(|f| f.name == t.name) {
                    Some(i) => self.get(i).shallow_clone(),
                    None => SiteMask::Keep,
                })
                .collect(),
        }
    }

    /// Number of kept nonlinearities per site.
    pub fn counts(&self, sites: &[SiteInfo]) -> Result<Vec<i64>> {
        sites
            .iter()
            .enumerate()
            .map(|(i, s)| match self.get(i) {
                SiteMask::Keep => Ok(s.count()),
                SiteMask::Identity => Ok(0),
                SiteMask::Tensor(t) => {
                    active_count(t, s.shape).with_context(|| format!("site {}", s.name))
                }
            })
            .collect()
    }

    /// Masks as `(site name, float tensor)` pairs, with Keep/Identity written as scalars 1/0.
    pub fn named_tensors(&self, sites: &[SiteInfo]) -> Vec<(String, Tensor)> {
        sites
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let t = match self.get(i) {
                    SiteMask::Keep => Tensor::from(1f32),
                    SiteMask::Identity => Tensor::from(0f32),
                    SiteMask::Tensor(t) => t.detach().to_kind(Kind::Float).to_device(Device::Cpu),
                };
                (s.name.clone(), t)
            })
            .collect()
    }

    /// Save as safetensors (site name -> mask), atomically.
    pub fn save(&self, sites: &[SiteInfo], path: &Path) -> Result<()> {
        let named = self.named_tensors(sites);
        crate::io::atomic_write_with(path, |tmp| {
            Tensor::write_safetensors(&named, tmp).map_err(anyhow::Error::from)
        })
    }

    /// Load masks saved by [`MaskSet::save`]; every site must be present with a valid shape.
    pub fn load(sites: &[SiteInfo], path: &Path, device: Device) -> Result<Self> {
        let named = Tensor::read_safetensors(path)
            .with_context(|| format!("reading masks {}", path.display()))?;
        let mut by_name: std::collections::HashMap<String, Tensor> = named.into_iter().collect();
        let mut masks = Vec::with_capacity(sites.len());
        for s in sites {
            let t = by_name
                .remove(&s.name)
                .with_context(|| format!("{}: no mask for site `{}`", path.display(), s.name))?;
            if Granularity::of_shape(&t.size(), s.shape).is_none() {
                bail!(
                    "{}: mask of site `{}` has shape {:?}, site shape is {:?}",
                    path.display(),
                    s.name,
                    t.size(),
                    s.shape
                );
            }
            masks.push(SiteMask::Tensor(t.to_kind(Kind::Float).to_device(device)));
        }
        if let Some(extra) = by_name.keys().next() {
            bail!("{}: mask for unknown site `{extra}`", path.display());
        }
        Ok(MaskSet { masks })
    }
}
