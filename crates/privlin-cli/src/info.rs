use crate::common::RuntimeArgs;
use anyhow::Result;
use clap::Args;
use privlin::info::ModelInfo;
use privlin::nn::{Activation, Arch, Convention, Model, ModelSpec, Thin};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Architecture: resnet9, resnet18, resnet34, resnet50, vgg11, vgg16, wrn-D-K, hrn-AxBxCx.
    #[arg(long, default_value = "resnet18")]
    arch: String,
    /// Width multiplier (0.25 gives ResNet-18 a base width of 16).
    #[arg(long, default_value_t = 1.0)]
    width: f64,
    #[arg(long, default_value_t = 32)]
    input_size: i64,
    #[arg(long, default_value_t = 10)]
    classes: i64,
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Counting convention: all, snl (no stem, no final ReLU) or relupruner (no stem).
    #[arg(long, default_value = "all")]
    convention: String,
    /// Residual blocks per stage, e.g. 2,2,2,2 (ResNet family, HybReNets).
    #[arg(long, value_delimiter = ',')]
    blocks: Option<Vec<i64>>,
    /// Stem stride (DeepReDuce's resolution reshaping: 2 halves every feature map).
    #[arg(long, default_value_t = 1)]
    stem_stride: i64,
    /// Cull (remove every ReLU of) these stages, e.g. stem,layer1 or s1,s4 (DeepReDuce).
    #[arg(long, value_delimiter = ',')]
    cull: Vec<String>,
    /// Thin the remaining stages: drop every second ReLU layer (`second`, DeepReDuce's choice:
    /// the post-addition ReLU of basic blocks) or every first (`first`).
    #[arg(long, num_args = 0..=1, default_missing_value = "second")]
    thin: Option<String>,
    /// Describe a checkpoint directory instead.
    #[arg(long)]
    ckpt: Option<PathBuf>,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also list weight layers with their MACs.
    #[arg(long)]
    layers: bool,
    #[command(flatten)]
    rt: RuntimeArgs,
}

pub fn run(a: InfoArgs) -> Result<()> {
    let spec = match &a.ckpt {
        Some(dir) => privlin::train::CheckpointSpec::load(dir)?.model,
        None => ModelSpec {
            arch: a.arch.parse::<Arch>()?,
            width: a.width,
            activation: a.activation.parse::<Activation>()?,
            input_size: a.input_size,
            classes: a.classes,
            convention: a.convention.parse::<Convention>()?,
            blocks: a.blocks.clone(),
            stem_stride: a.stem_stride,
            cull: a.cull.clone(),
            thin: a.thin.as_deref().map(str::parse::<Thin>).transpose()?,
            gated: Vec::new(),
            shallow: Vec::new(),
            shallow_kernel: 3,
            aux: None,
            graph: None,
        },
    };
    crate::common::runtime("cpu", a.rt.threads.unwrap_or(0))?;
    let model = Model::new(spec, tch::Device::Cpu)?;
    let info = ModelInfo::of(&model);
    if a.json {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        print!("{}", info.table(a.layers));
    }
    Ok(())
}
