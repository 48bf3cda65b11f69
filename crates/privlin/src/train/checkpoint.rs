//! Checkpoints: `model.safetensors` (weights under PyTorch state-dict names, loadable by the
//! PyTorch twin), `spec.json` (architecture, activation, classes, input size, counting convention,
//! data normalization, masks if any), and `resume.safetensors` (weights, optimizer state and the
//! number of completed epochs in one file, so that a resumed run never mixes two epochs).
//! Every file is written atomically.

use super::optim::Optimizer;
use crate::data::Normalization;
use crate::io::{atomic_write_json, atomic_write_with, read_json};
use crate::nn::{Model, ModelSpec};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

pub const SPEC_FILE: &str = "spec.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const RESUME_FILE: &str = "resume.safetensors";
pub const METRICS_FILE: &str = "metrics.jsonl";

/// The JSON spec stored next to every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSpec {
    pub model: ModelSpec,
    /// Counting convention in words (also in `model.convention`).
    pub convention_text: String,
    pub dataset: String,
    /// The data settings the model was trained with (`privlin eval` reuses them by default).
    pub data: crate::data::DataConfig,
    pub class_names: Vec<String>,
    pub normalization: Normalization,
    /// Mask file (site name -> 0/1 tensor) relative to the checkpoint directory, if the model is
    /// partially linearized.
    pub masks: Option<String>,
}

impl CheckpointSpec {
    pub fn load(dir: &Path) -> Result<Self> {
        read_json(&dir.join(SPEC_FILE))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        atomic_write_json(&dir.join(SPEC_FILE), self)
    }
}

/// Build the model a checkpoint directory describes and load its weights.
pub fn load_model(dir: &Path, device: tch::Device) -> Result<(Model, CheckpointSpec)> {
    let spec = CheckpointSpec::load(dir)
        .with_context(|| format!("{} is not a privlin checkpoint", dir.display()))?;
    let mut model = Model::new(spec.model.clone(), device)?;
    model.load_weights(&dir.join(WEIGHTS_FILE))?;
    Ok((model, spec))
}

/// Write weights, optimizer state, the objective's own state (`extra`: masks, running scores) and
/// `epochs_done` for resuming, in one atomic file.
pub fn save_resume(
    dir: &Path,
    model: &Model,
    opt: &Optimizer,
    extra: Vec<(String, Tensor)>,
    epochs_done: usize,
) -> Result<()> {
    let mut named: Vec<(String, Tensor)> = model
        .named_tensors()
        .into_iter()
        .map(|(n, t)| {
            (
                format!("model.{n}"),
                t.detach().to_device(tch::Device::Cpu).contiguous(),
            )
        })
        .collect();
    named.extend(
        opt.state()
            .into_iter()
            .map(|(n, t)| (format!("optim.{n}"), t.contiguous())),
    );
    named.extend(extra.into_iter().map(|(n, t)| {
        (
            format!("objective.{n}"),
            t.detach().to_device(tch::Device::Cpu).contiguous(),
        )
    }));
    named.push(("meta.epochs_done".into(), Tensor::from(epochs_done as i64)));
    atomic_write_with(&dir.join(RESUME_FILE), |tmp| {
        Tensor::write_safetensors(&named, tmp).map_err(Into::into)
    })
}

/// Restore a resume file into `model` and `opt`; returns the number of completed epochs and the
/// objective's saved state.
pub fn load_resume(
    dir: &Path,
    model: &mut Model,
    opt: &mut Optimizer,
) -> Result<(usize, HashMap<String, Tensor>)> {
    let path = dir.join(RESUME_FILE);
    let all: HashMap<String, Tensor> = Tensor::read_safetensors(&path)
        .with_context(|| format!("reading {} (truncated?)", path.display()))?
        .into_iter()
        .collect();
    let mut weights = Vec::new();
    let mut optim = HashMap::new();
    let mut epochs = None;
    let mut extra = HashMap::new();
    for (k, t) in all {
        if let Some(n) = k.strip_prefix("model.") {
            weights.push((n.to_string(), t));
        } else if let Some(n) = k.strip_prefix("optim.") {
            optim.insert(n.to_string(), t);
        } else if let Some(n) = k.strip_prefix("objective.") {
            extra.insert(n.to_string(), t);
        } else if k == "meta.epochs_done" {
            epochs = Some(t.int64_value(&[]) as usize);
        }
    }
    let Some(epochs) = epochs else {
        bail!("{}: no `meta.epochs_done` entry", path.display());
    };
    let weights: HashMap<String, Tensor> = weights.into_iter().collect();
    model
        .load_named(weights, &path.display().to_string())
        .with_context(|| format!("resuming from {}", path.display()))?;
    opt.load_state(&optim)
        .with_context(|| format!("resuming from {}", path.display()))?;
    Ok((epochs, extra))
}
