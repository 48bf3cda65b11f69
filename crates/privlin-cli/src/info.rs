use crate::common::RuntimeArgs;
use anyhow::Result;
use clap::Args;
use privlin::info::ModelInfo;
use privlin::nn::{Activation, Arch, Convention, Model, ModelSpec};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Architecture: resnet9, resnet18, resnet34, resnet50, vgg11, vgg16, wrn-D-K.
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
