//! `privlin eval`.

use crate::common::{runtime, RuntimeArgs};
use anyhow::{Context, Result};
use clap::Args;
use privlin::data::Loader;
use privlin::nn::MaskSet;
use privlin::train::{evaluate, load_model};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint directory (spec.json + model.safetensors).
    #[arg(long)]
    ckpt: PathBuf,
    /// Data source (default: the one the checkpoint was trained on).
    #[arg(long)]
    data: Option<String>,
    #[arg(long)]
    test_per_class: Option<usize>,
    /// Masks (safetensors, site name -> mask) to apply.
    #[arg(long)]
    masks: Option<PathBuf>,
    /// Also report accuracy with every counted site replaced by the identity.
    #[arg(long)]
    linearize_all: bool,
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    rt: RuntimeArgs,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let device = runtime(
        a.rt.device.as_deref().unwrap_or("auto"),
        a.rt.threads.unwrap_or(0),
    )?;
    let (model, spec) = load_model(&a.ckpt, device)?;
    let mut data = spec.data.clone();
    if let Some(d) = &a.data {
        data.source = d.clone();
        data.format = "auto".into();
    }
    if a.test_per_class.is_some() {
        data.test_per_class = a.test_per_class;
    }
    data.holdout = 0.0;
    let splits = data
        .load()
        .with_context(|| format!("loading data from `{}`", data.source))?;
    anyhow::ensure!(
        splits.classes() as i64 == model.spec.classes && splits.test.size == model.spec.input_size,
        "data `{}` ({} classes, {}x{}) does not fit the checkpoint ({} classes, {}x{})",
        data.source,
        splits.classes(),
        splits.test.size,
        splits.test.size,
        model.spec.classes,
        model.spec.input_size,
        model.spec.input_size
    );
    // The checkpoint's own normalization, not the one of the data loaded now.
    let loader = Loader::eval(
        splits.test.clone(),
        spec.normalization,
        a.batch_size,
        device,
    );
    // A partial-ReLU checkpoint is evaluated with its own masks unless --masks says otherwise.
    let masks = match (&a.masks, &spec.masks) {
        (Some(p), _) => Some(MaskSet::load(model.sites(), p, device)?),
        (None, Some(f)) => Some(MaskSet::load(model.sites(), &a.ckpt.join(f), device)?),
        (None, None) => None,
    };
    let r = evaluate(&model, &loader, masks.as_ref());
    let relus: i64 = match &masks {
        Some(m) => {
            let counts = m.counts(model.sites())?;
            (0..counts.len())
                .filter(|&i| model.counted(i))
                .map(|i| counts[i])
                .sum()
        }
        None => model.relu_count(),
    };
    let lin = a
        .linearize_all
        .then(|| evaluate(&model, &loader, Some(&model.all_linearized())));
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "checkpoint": a.ckpt, "images": r.images, "accuracy": r.accuracy, "loss": r.loss,
                "relus": relus, "convention": model.spec.convention.name(),
                "linearized_accuracy": lin.map(|l| l.accuracy),
            })
        );
    } else {
        println!(
            "{}: top-1 {:.2}%, loss {:.4} on {} images of {}; {} ReLUs ({})",
            a.ckpt.display(),
            100.0 * r.accuracy,
            r.loss,
            r.images,
            splits.test.name,
            relus,
            model.spec.convention.describe()
        );
        if let Some(l) = lin {
            println!(
                "every counted site linearized: top-1 {:.2}%",
                100.0 * l.accuracy
            );
        }
    }
    Ok(())
}
