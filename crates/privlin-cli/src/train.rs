//! `privlin train` (and the pipeline's first stage).

use crate::common::RuntimeArgs;
use anyhow::{bail, Result};
use clap::Args;
use privlin::train::run::TrainOutcome;
use privlin::train::RunConfig;
use std::path::PathBuf;

#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// TOML run config; flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Checkpoint directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue a killed run from its last checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Architecture: resnet9, resnet18, resnet34, resnet50, vgg11, vgg16, wrn-D-K, hrn-AxBxCx.
    #[arg(long)]
    arch: Option<String>,
    /// Start from this checkpoint's architecture, weights and normalization (a model brought in
    /// by `privlin import`, or any privlin checkpoint): fine-tuning on the data.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Cull (remove every ReLU of) these stages, e.g. stem,s1 (DeepReDuce).
    #[arg(long, value_delimiter = ',')]
    cull: Option<Vec<String>>,
    /// Thin the remaining stages: `second` (DeepReDuce's choice) or `first`.
    #[arg(long)]
    thin: Option<String>,
    /// Stem stride (resolution reshaping).
    #[arg(long)]
    stem_stride: Option<i64>,
    /// Distill from this checkpoint (CE + T^2 KL, T = 4), e.g. the all-ReLU model when training
    /// a culled, thinned or reshaped network as DeepReDuce does.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Width multiplier (0.25: ResNet-18 with base width 16).
    #[arg(long)]
    width: Option<f64>,
    /// relu or silu.
    #[arg(long)]
    activation: Option<String>,
    /// ReLU counting convention: all, snl, relupruner.
    #[arg(long)]
    convention: Option<String>,
    /// `synthetic` or a dataset directory (CIFAR-10/100 binary, ImageFolder, Tiny-ImageNet).
    #[arg(long)]
    data: Option<String>,
    /// Data layout (default: detected).
    #[arg(long)]
    format: Option<String>,
    /// Keep at most this many training images per class.
    #[arg(long)]
    train_per_class: Option<usize>,
    /// Keep at most this many test images per class.
    #[arg(long)]
    test_per_class: Option<usize>,
    /// Hold out this fraction of the training set (stratified).
    #[arg(long)]
    holdout: Option<f64>,
    /// Resize images to this size.
    #[arg(long)]
    input_size: Option<u32>,
    #[arg(long)]
    no_augment: bool,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// sgd or adam.
    #[arg(long)]
    optimizer: Option<String>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    momentum: Option<f64>,
    #[arg(long)]
    weight_decay: Option<f64>,
    /// constant, multistep, cosine or onecycle.
    #[arg(long)]
    schedule: Option<String>,
    /// Multistep milestones in epochs, e.g. 80,120.
    #[arg(long, value_delimiter = ',')]
    milestones: Option<Vec<usize>>,
    #[arg(long)]
    warmup_epochs: Option<f64>,
    #[arg(long)]
    label_smoothing: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    channels_last: bool,
    #[command(flatten)]
    rt: RuntimeArgs,
}

fn build_config(a: &TrainArgs) -> Result<RunConfig> {
    let mut c = match &a.config {
        Some(p) => RunConfig::from_toml_file(p)?,
        None => RunConfig::default(),
    };
    macro_rules! set {
        ($flag:expr, $field:expr) => {
            if let Some(v) = $flag.clone() {
                $field = v;
            }
        };
    }
    set!(a.out, c.out);
    set!(a.arch, c.model.arch);
    set!(a.cull, c.model.cull);
    set!(a.stem_stride, c.model.stem_stride);
    if a.thin.is_some() {
        c.model.thin = a.thin.clone();
    }
    if a.teacher.is_some() {
        c.teacher = a.teacher.clone();
    }
    if a.from.is_some() {
        c.model.from = a.from.clone();
    }
    set!(a.width, c.model.width);
    set!(a.convention, c.model.convention);
    if let Some(act) = &a.activation {
        c.model.activation = act.parse()?;
    }
    set!(a.data, c.data.source);
    set!(a.format, c.data.format);
    if a.train_per_class.is_some() {
        c.data.train_per_class = a.train_per_class;
    }
    if a.test_per_class.is_some() {
        c.data.test_per_class = a.test_per_class;
    }
    if a.input_size.is_some() {
        c.data.size = a.input_size;
    }
    set!(a.holdout, c.data.holdout);
    if a.no_augment {
        c.data.augment = false;
    }
    set!(a.epochs, c.train.epochs);
    set!(a.batch_size, c.train.batch_size);
    if let Some(o) = &a.optimizer {
        c.train.optimizer.kind = match o.to_ascii_lowercase().as_str() {
            "sgd" => privlin::train::optim::OptimizerKind::Sgd,
            "adam" => privlin::train::optim::OptimizerKind::Adam,
            other => bail!("unknown optimizer `{other}` (expected sgd or adam)"),
        };
    }
    set!(a.lr, c.train.optimizer.lr);
    set!(a.momentum, c.train.optimizer.momentum);
    set!(a.weight_decay, c.train.optimizer.weight_decay);
    set!(a.schedule, c.train.schedule.kind);
    set!(a.milestones, c.train.schedule.milestones);
    set!(a.warmup_epochs, c.train.schedule.warmup_epochs);
    set!(a.label_smoothing, c.train.label_smoothing);
    if let Some(s) = a.seed {
        c.train.seed = s;
        c.data.seed = s;
    }
    if a.channels_last {
        c.train.channels_last = true;
    }
    set!(a.rt.device, c.device);
    set!(a.rt.threads, c.threads);
    c.train.validate()?;
    Ok(c)
}

pub fn run(a: TrainArgs) -> Result<()> {
    let cfg = build_config(&a)?;
    let o = privlin::train::run::train(&cfg, a.resume)?;
    print_outcome(&o, &cfg.out);
    Ok(())
}

/// Print what a training run measured.
pub fn print_outcome(o: &TrainOutcome, out: &std::path::Path) {
    println!("{}", o.info.table(false));
    println!(
        "test accuracy (all-ReLU): {:.2}% on {} test images after {} epochs ({:.1} s this run)",
        100.0 * o.test_acc,
        o.test_images,
        o.epochs,
        o.seconds
    );
    println!(
        "test accuracy with every counted site linearized (identity): {:.2}%  (chance: {:.2}%)",
        100.0 * o.test_acc_linearized,
        100.0 / o.classes as f64
    );
    println!(
        "checkpoint: {}/model.safetensors + spec.json; metrics: {}/metrics.jsonl",
        out.display(),
        out.display()
    );
}
