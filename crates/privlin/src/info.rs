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
    /// Removed from the architecture by DeepReDuce culling or thinning.
    pub removed: bool,
    /// The stage the site belongs to (`stem`, `layer1`, ..., `final`).
    pub stage: String,
}

/// ReLUs and MACs of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub stage: String,
    /// Counted ReLUs that remain.
    pub relus: i64,
    /// ReLUs removed by culling or thinning.
    pub removed: i64,
    pub macs: i64,
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
    pub stages: Vec<StageRow>,
    pub layers: Vec<LayerInfo>,
    /// DeepReDuce operations applied, in words (empty if none).
    pub reshaping: String,
    /// Weight layers on the longest path of the served model, and the paper's layer depth
    /// (convolutions inside residual blocks on that path; "Making Models Shallow Again").
    pub depth: Option<usize>,
    pub layer_depth: Option<usize>,
    /// Gated branching and auxiliary classifier, in words (empty if none).
    pub shallow: String,
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
                removed: model.removed(i),
                stage: crate::nn::removal::stage_of(s),
            })
            .collect::<Vec<_>>();
        let stages = stage_rows(model, &sites);
        let mut ops = Vec::new();
        if !spec.cull.is_empty() {
            ops.push(format!("culled {}", spec.cull.join(", ")));
        }
        if let Some(t) = spec.thin {
            let which = match t {
                crate::nn::Thin::Second => "second",
                crate::nn::Thin::First => "first",
            };
            ops.push(format!(
                "thinned (every {which} ReLU layer of each remaining stage removed)"
            ));
        }
        if spec.stem_stride != 1 {
            ops.push(format!("stem stride {}", spec.stem_stride));
        }
        if let Some(b) = &spec.blocks {
            ops.push(format!("blocks per stage {b:?}"));
        }
        let mut shallow = Vec::new();
        if !spec.shallow.is_empty() {
            shallow.push(format!(
                "shallow blocks {} ({}x{} conv-BN, no ReLU)",
                spec.shallow.join(", "),
                spec.shallow_kernel,
                spec.shallow_kernel
            ));
        }
        if !spec.gated.is_empty() {
            shallow.push(format!(
                "gated blocks {} (main and shallow branch)",
                spec.gated.join(", ")
            ));
        }
        if let Some(a) = &spec.aux {
            shallow.push(format!(
                "auxiliary classifier after {}{}",
                a.after,
                if a.serve {
                    " serves the model (later stages removed)"
                } else {
                    " (trained, not served: not counted)"
                }
            ));
        }
        let depth = model.depth();
        ModelInfo {
            depth: depth
                .map(|d| d.0)
                .or_else(|| model.spec.graph.as_ref().map(|g| g.weight_depth())),
            layer_depth: depth.map(|d| d.1),
            shallow: shallow.join("; "),
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
            stages,
            layers: model.layers().to_vec(),
            reshaping: ops.join("; "),
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
        if !self.reshaping.is_empty() {
            let _ = writeln!(s, "DeepReDuce operations: {}", self.reshaping);
        }
        if !self.shallow.is_empty() {
            let _ = writeln!(s, "Depth reduction: {}", self.shallow);
        }
        let _ = writeln!(
            s,
            "{:>3}  {:<24} {:<8} {:>14} {:>10} {:>7}",
            "#", "site", "kind", "shape (C,H,W)", "ReLUs", "share"
        );
        for (i, r) in self.sites.iter().enumerate() {
            let share = if r.removed {
                "removed".into()
            } else if r.counted {
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
        match (self.depth, self.layer_depth) {
            (Some(d), Some(b)) => {
                let _ = writeln!(
                    s,
                    "Depth: {d} weight layers on the longest path; layer depth {b} (convolutions inside residual blocks)"
                );
            }
            (Some(d), None) => {
                let _ = writeln!(s, "Depth: {d} weight layers on the longest path");
            }
            _ => {}
        }
        let _ = writeln!(
            s,
            "\n{:<10} {:>12} {:>12} {:>16}",
            "stage", "ReLUs", "removed", "MACs"
        );
        for r in &self.stages {
            let _ = writeln!(
                s,
                "{:<10} {:>12} {:>12} {:>16}",
                r.stage, r.relus, r.removed, r.macs
            );
        }
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

/// Per stage: counted ReLUs left, ReLUs removed, and the MACs of the weight layers whose module
/// path starts with the stage (the stem convolution and the classifier under `stem` / `head`).
fn stage_rows(model: &Model, sites: &[SiteRow]) -> Vec<StageRow> {
    fn row(rows: &mut Vec<StageRow>, name: &str) -> usize {
        match rows.iter().position(|r| r.stage == name) {
            Some(i) => i,
            None => {
                rows.push(StageRow {
                    stage: name.to_string(),
                    relus: 0,
                    removed: 0,
                    macs: 0,
                });
                rows.len() - 1
            }
        }
    }
    let mut rows: Vec<StageRow> = Vec::new();
    for r in sites {
        let i = row(&mut rows, &r.stage);
        if r.removed {
            rows[i].removed += r.count;
        } else if r.counted {
            rows[i].relus += r.count;
        }
    }
    let body: Vec<String> = rows
        .iter()
        .map(|r| r.stage.clone())
        .filter(|s| s != "stem" && s != "final")
        .collect();
    for l in model.layers() {
        let first = l.name.split('.').next().unwrap_or("");
        let stage = if body.iter().any(|b| b == first) {
            first.to_string()
        } else if first == "aux" {
            if model.serves_layer(&l.name) {
                "aux".to_string()
            } else {
                "aux (not served)".to_string()
            }
        } else if l.kind == crate::nn::LayerKind::Linear {
            "head".to_string()
        } else {
            "stem".to_string()
        };
        let i = row(&mut rows, &stage);
        rows[i].macs += l.macs;
    }
    rows
}
