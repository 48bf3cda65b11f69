//! `privlin reshape`: depth reduction of a partial-ReLU checkpoint ("Making Models Shallow
//! Again"): gated branching, auxiliary classifier, fine-tuning, main branches deleted.

use crate::common::{runtime, RuntimeArgs};
use anyhow::Result;
use clap::Args;
use privlin::pipeline::PipelineConfig;
use privlin::reshape::{reshape, AuxMode, BranchInit, GateShape};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ReshapeArgs {
    /// Partial-ReLU checkpoint directory (from `privlin linearize`).
    #[arg(long)]
    ckpt: PathBuf,
    /// All-ReLU teacher (default: the one named in the checkpoint's linearize.json).
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Output directory: the reshaped checkpoint, reshape.json, reshape.md (training in gated/).
    #[arg(long)]
    out: PathBuf,
    /// Take the `[reshape]` and `[finetune]` tables of this pipeline config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config value, e.g. `--set reshape.kernel=1`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// ReLU sensitivity threshold: blocks below it get a shallow branch (0.1 on CIFAR-10).
    #[arg(long)]
    d_th: Option<f64>,
    /// Auxiliary classifier: none, train or serve.
    #[arg(long)]
    aux: Option<String>,
    /// The stage the auxiliary classifier reads (default: the one before the last).
    #[arg(long)]
    aux_after: Option<String>,
    /// Rise of the gate: linear or cosine.
    #[arg(long)]
    gate: Option<String>,
    /// Epochs over which the gate rises to 1.
    #[arg(long)]
    ramp_epochs: Option<usize>,
    /// Kernel of the shallow branch (odd, 1 to 7).
    #[arg(long)]
    kernel: Option<i64>,
    /// Shallow-branch initialization: fit (least squares to the main branch) or random.
    #[arg(long)]
    init: Option<String>,
    /// Fine-tuning epochs.
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    train_per_class: Option<usize>,
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    rt: RuntimeArgs,
}

/// Parse a lowercase enum value the way the config does, naming the flag on error.
fn parse<T: serde::de::DeserializeOwned>(flag: &str, v: &str, expected: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(v.to_ascii_lowercase()))
        .map_err(|_| anyhow::anyhow!("--{flag} `{v}`: expected {expected}"))
}

pub fn run(a: ReshapeArgs) -> Result<()> {
    let base = match &a.config {
        Some(p) => PipelineConfig::load(p, &a.sets)?,
        None => PipelineConfig::parse("", "the defaults", &a.sets)?,
    };
    let (mut ft, mut rc) = (base.finetune, base.reshape);
    if let Some(v) = a.d_th {
        rc.d_th = Some(v);
    }
    if let Some(v) = &a.aux {
        rc.aux = parse::<AuxMode>("aux", v, "none, train or serve")?;
    }
    if a.aux_after.is_some() {
        rc.aux_after = a.aux_after.clone();
    }
    if let Some(v) = &a.gate {
        rc.gate = parse::<GateShape>("gate", v, "linear or cosine")?;
    }
    if a.ramp_epochs.is_some() {
        rc.ramp_epochs = a.ramp_epochs;
    }
    if let Some(v) = a.kernel {
        rc.kernel = v;
    }
    if let Some(v) = &a.init {
        rc.init = parse::<BranchInit>("init", v, "fit or random")?;
    }
    if let Some(v) = a.epochs {
        ft.train.epochs = v;
    }
    if let Some(v) = a.lr {
        ft.train.optimizer.lr = v;
    }
    if a.train_per_class.is_some() {
        ft.train_per_class = a.train_per_class;
    }
    let device = runtime(
        a.rt.device.as_deref().unwrap_or("auto"),
        a.rt.threads.unwrap_or(0),
    )?;
    let r = reshape(
        &a.ckpt,
        a.teacher.as_deref(),
        &ft,
        &rc,
        &a.out,
        device,
        a.resume,
    )?;
    println!("{}", r.blocks_table());
    if let (Some(r0), Some(r1)) = (r.test_acc_gate1_random, r.test_acc_gate1_fit) {
        println!(
            "test accuracy with every gate at 1 before fine-tuning: random branches {:.2} %, fitted {:.2} %",
            100.0 * r0,
            100.0 * r1
        );
    }
    println!("{}", r.table());
    println!("served: {}", r.served);
    for n in &r.notes {
        println!("note: {n}");
    }
    Ok(())
}
