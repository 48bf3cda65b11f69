//! Structural summary of a model: per-site ReLU counts under the counting convention, MACs.

use crate::nn::{LayerInfo, Model, SiteKind};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct SiteRow {
    pub name: String,
    pub shape: [i64; 3],
    pub count: i64,
    pub kind: SiteKind,
    /// Whether the site counts (and may be linearized) under the convention.
    pub counted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub arch: String,
    pub width: f64,
    pub activation: String,
    pub input_size: i64,
    pub classes: i64,
    pub convention: crate::nn::Convention,
    pub convention_text: String,
    /// ReLUs under the convention.
    pub relu_total: i64,
    /// Every nonlinearity, whatever the convention.
    pub relu_all: i64,
    pub macs_total: i64,
    pub params: i64,
    pub sites: Vec<SiteRow>,
    pub layers: Vec<LayerInfo>,
}

impl ModelInfo {
    pub fn of(model: &Model) -> Self {
        let spec = &model.spec;
        let sites = model
            .sites()
            .iter()
            .enumerate()
            .map(|(i, s)| SiteRow {
                name: s.name.clone(),
                shape: s.shape,
                count: s.count(),
                kind: s.kind,
                counted: model.counted(i),
            })
            .collect();
        ModelInfo {
            arch: spec.arch.to_string(),
            width: spec.width,
            activation: format!("{:?}", spec.activation).to_lowercase(),
            input_size: spec.input_size,
            classes: spec.classes,
            convention: spec.convention,
            convention_text: spec.convention.describe(),
            relu_total: model.relu_count(),
            relu_all: model.sites().iter().map(|s| s.count()).sum(),
            macs_total: model.macs_total(),
            params: model.num_parameters(),
            sites,
            layers: model.layers().to_vec(),
        }
    }

    /// The per-site ReLU table (and, with `layers`, the per-layer MAC table).
    pub fn table(&self, layers: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} (width x{}, {}, {}x{} input, {} classes): {} params",
            self.arch,
            self.width,
            self.activation,
            self.input_size,
            self.input_size,
            self.classes,
            self.params
        );
        let _ = writeln!(s, "{}", self.convention_text);
        let _ = writeln!(
            s,
            "{:>3}  {:<24} {:<8} {:>14} {:>10} {:>7}",
            "#", "site", "kind", "shape (C,H,W)", "ReLUs", "share"
        );
        for (i, r) in self.sites.iter().enumerate() {
            let share = if r.counted {
                format!(
                    "{:.2}%",
                    100.0 * r.count as f64 / self.relu_total.max(1) as f64
                )
            } else {
                "uncounted".into()
            };
            let shape = format!("{}x{}x{}", r.shape[0], r.shape[1], r.shape[2]);
            let _ = writeln!(
                s,
                "{:>3}  {:<24} {:<8} {:>14} {:>10} {:>7}",
                i,
                r.name,
                r.kind.to_string(),
                shape,
                r.count,
                share
            );
        }
        let _ = writeln!(
            s,
            "ReLUs: {} counted ({} in all sites); MACs per image: {} ({:.1} M)",
            self.relu_total,
            self.relu_all,
            self.macs_total,
            self.macs_total as f64 / 1e6
        );
        if layers {
            let _ = writeln!(
                s,
                "\n{:<28} {:<6} {:>16} {:>14}",
                "layer", "kind", "output", "MACs"
            );
            for l in &self.layers {
                let shape = l
                    .out_shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("x");
                let _ = writeln!(
                    s,
                    "{:<28} {:<6} {:>16} {:>14}",
                    l.name,
                    format!("{:?}", l.kind).to_lowercase(),
                    shape,
                    l.macs
                );
            }
        }
        s
    }
}
