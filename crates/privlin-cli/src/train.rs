//! `privlin train` (and the pipeline's first stage).

use crate::common::{runtime, RuntimeArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use privlin::data::Loader;
use privlin::info::ModelInfo;
use privlin::nn::Model;
use privlin::train::{evaluate, fit, CheckpointSpec, CrossEntropy, FitOptions, RunConfig};
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
    /// Architecture: resnet9, resnet18, resnet34, resnet50, vgg11, vgg16, wrn-D-K.
    #[arg(long)]
    arch: Option<String>,
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
    train(&cfg, a.resume)
}

/// Train the all-ReLU model `cfg` describes into `cfg.out` (the pipeline's first stage too), and
/// report its test accuracy with all sites kept and with every counted site linearized.
pub fn train(cfg: &RunConfig, resume: bool) -> Result<()> {
    let device = runtime(&cfg.device, cfg.threads)?;
    let t_load = std::time::Instant::now();
    let splits = cfg
        .data
        .load()
        .with_context(|| format!("loading data from `{}`", cfg.data.source))?;
    eprintln!(
        "data: {} ({} train, {} test{}, {} classes, {}x{}) loaded in {:.1} s",
        cfg.data.source,
        splits.train.len(),
        splits.test.len(),
        splits
            .holdout
            .as_ref()
            .map(|h| format!(", {} held out", h.len()))
            .unwrap_or_default(),
        splits.classes(),
        splits.train.size,
        splits.train.size,
        t_load.elapsed().as_secs_f64()
    );
    let spec = cfg.model.spec(splits.train.size, splits.classes() as i64)?;
    let out = cfg.out.clone();
    let ckpt_spec = CheckpointSpec {
        model: spec.clone(),
        convention_text: spec.convention.describe(),
        dataset: splits.train.name.clone(),
        data: cfg.data.clone(),
        class_names: splits.train.classes.clone(),
        normalization: splits.norm,
        masks: None,
    };
    if resume {
        if let Ok(old) = CheckpointSpec::load(&out) {
            if old.model != ckpt_spec.model || old.data != ckpt_spec.data {
                bail!(
                    "refusing to resume in {}: its spec.json describes a different model or data (delete the directory or drop --resume)",
                    out.display()
                );
            }
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    privlin::io::atomic_write_bytes(&out.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    ckpt_spec.save(&out)?;

    tch::manual_seed(cfg.train.seed as i64);
    let mut model = Model::new(spec, device)?;
    if cfg.train.channels_last {
        model.to_channels_last();
    }
    let info = ModelInfo::of(&model);
    eprintln!(
        "model: {} width x{} ({} params, {} ReLUs, {:.1} M MACs) on {}",
        info.arch,
        info.width,
        info.params,
        info.relu_total,
        info.macs_total as f64 / 1e6,
        privlin::device::describe(device)
    );
    let mut train_loader = Loader::train(
        splits.train.clone(),
        splits.norm,
        cfg.train.batch_size,
        cfg.train.seed,
        cfg.data.augment,
        device,
    );
    train_loader.channels_last = cfg.train.channels_last;
    let test_loader = Loader::eval(
        splits.test.clone(),
        splits.norm,
        cfg.train.eval_batch_size,
        device,
    );
    let t0 = std::time::Instant::now();
    let history = fit(
        &mut model,
        &train_loader,
        &mut CrossEntropy {
            label_smoothing: cfg.train.label_smoothing,
        },
        FitOptions {
            cfg: &cfg.train,
            out: &out,
            resume,
            eval: Some(&test_loader),
            eval_masks: None,
            label: "train",
            verbose: true,
        },
    )?;
    let wall = t0.elapsed().as_secs_f64();

    println!("{}", info.table(false));
    let final_acc = history.last().and_then(|m| m.test_acc).unwrap_or(f64::NAN);
    println!(
        "test accuracy (all-ReLU): {:.2}% on {} test images after {} epochs ({:.1} s this run)",
        100.0 * final_acc,
        splits.test.len(),
        history.len(),
        wall
    );
    {
        let lin = evaluate(&model, &test_loader, Some(&model.all_linearized()));
        println!(
            "test accuracy with every counted site linearized (identity): {:.2}%  (chance: {:.2}%)",
            100.0 * lin.accuracy,
            100.0 / splits.classes() as f64
        );
        println!(
            "checkpoint: {}/model.safetensors + spec.json; metrics: {}/metrics.jsonl",
            out.display(),
            out.display()
        );
    }
    Ok(())
}
