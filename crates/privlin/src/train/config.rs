//! Run configuration (TOML), overridden by command-line flags.

use super::optim::OptimizerConfig;
use super::schedule::ScheduleConfig;
use crate::data::DataConfig;
use crate::nn::{Activation, Arch, Convention, ModelSpec};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[model]`: input size and classes default to the data's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: String,
    pub width: f64,
    pub activation: Activation,
    pub convention: String,
    /// Residual blocks per stage (ResNet family, HybReNets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<i64>>,
    /// Stem stride (resolution reshaping).
    #[serde(skip_serializing_if = "crate::nn::spec::is_one")]
    pub stem_stride: i64,
    /// Stages whose ReLUs are culled (`stem` for no stem ReLU).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cull: Vec<String>,
    /// Thinning: `second` (DeepReDuce) or `first`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thin: Option<String>,
    /// Start from this checkpoint (an ONNX model brought in by `privlin import`, or any privlin
    /// checkpoint): its architecture, weights and input normalization; `arch`, `width`,
    /// `activation`, `blocks`, `stem_stride`, `cull` and `thin` are then the checkpoint's and
    /// only `convention` applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: "resnet18".into(),
            width: 0.25,
            activation: Activation::Relu,
            convention: "all".into(),
            blocks: None,
            stem_stride: 1,
            cull: Vec::new(),
            thin: None,
            from: None,
        }
    }
}

impl ModelConfig {
    pub fn spec(&self, input_size: i64, classes: i64) -> Result<ModelSpec> {
        if let Some(dir) = &self.from {
            let ckpt = super::CheckpointSpec::load(dir).with_context(|| {
                format!("model.from = {}: not a privlin checkpoint", dir.display())
            })?;
            let mut spec = ckpt.model;
            if spec.input_size != input_size || spec.classes != classes {
                bail!(
                    "model.from = {}: the model reads {}x{} images into {} classes, the data has {}x{} images and {} classes (import with --input-size, or resize the data with data.size)",
                    dir.display(),
                    spec.input_size,
                    spec.input_size,
                    spec.classes,
                    input_size,
                    input_size,
                    classes
                );
            }
            spec.convention = self.convention.parse().context("model.convention")?;
            spec.validate()?;
            return Ok(spec);
        }
        let arch: Arch = self.arch.parse().context("model.arch")?;
        let convention: Convention = self.convention.parse().context("model.convention")?;
        let thin = match &self.thin {
            Some(t) => Some(t.parse().context("model.thin")?),
            None => None,
        };
        let spec = ModelSpec {
            arch,
            width: self.width,
            activation: self.activation,
            input_size,
            classes,
            convention,
            blocks: self.blocks.clone(),
            stem_stride: self.stem_stride,
            cull: self.cull.clone(),
            thin,
            gated: Vec::new(),
            shallow: Vec::new(),
            shallow_kernel: 3,
            aux: None,
            graph: None,
        };
        if arch == Arch::Graph {
            bail!("model.arch = \"graph\": an imported graph is not built from a config; import it with `privlin import MODEL.onnx --out DIR` and start from that checkpoint");
        }
        spec.validate()?;
        Ok(spec)
    }
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub label_smoothing: f64,
    pub seed: u64,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    /// Channels-last memory format (faster convolutions on some CPUs and GPUs) for the model, its
    /// teacher and the batches of the stage whose `train` table this is (`[train]`,
    /// `[linearize.train]`, `[finetune.train]`); a layout, not another computation: the numbers
    /// agree with the contiguous layout to float rounding, not bit for bit.
    pub channels_last: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 128,
            eval_batch_size: 500,
            label_smoothing: 0.0,
            seed: 0,
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
            channels_last: false,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.epochs >= 1, "train.epochs must be at least 1");
        anyhow::ensure!(self.batch_size >= 1, "train.batch_size must be at least 1");
        anyhow::ensure!(
            self.eval_batch_size >= 1,
            "train.eval_batch_size must be at least 1"
        );
        anyhow::ensure!(
            self.optimizer.lr > 0.0 && self.optimizer.lr.is_finite(),
            "train.optimizer.lr must be positive, got {}",
            self.optimizer.lr
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.label_smoothing),
            "train.label_smoothing must be in [0, 1)"
        );
        self.schedule.validate()
    }
}

/// A whole run: `privlin train --config run.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub out: PathBuf,
    pub device: String,
    /// libtorch intra-op threads (0: all cores).
    pub threads: usize,
    pub model: ModelConfig,
    pub data: DataConfig,
    pub train: TrainConfig,
    /// Train with knowledge distillation from this checkpoint (DeepReDuce trains its culled,
    /// thinned or reshaped networks with the all-ReLU model as teacher): `CE + T^2 KL`, T = 4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher: Option<PathBuf>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            out: PathBuf::from("runs/demo/ar"),
            device: "auto".into(),
            threads: 0,
            model: ModelConfig::default(),
            data: DataConfig::default(),
            train: TrainConfig::default(),
            teacher: None,
        }
    }
}

impl RunConfig {
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config {}", path.display()))
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}
