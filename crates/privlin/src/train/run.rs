//! Training the all-ReLU model a [`RunConfig`] describes (`privlin train` and the pipeline's
//! first stage).

use super::distill::{Distill, DistillConfig, Teacher};
use super::{evaluate, fit, CheckpointSpec, CrossEntropy, FitOptions, RunConfig};
use crate::data::Loader;
use crate::info::ModelInfo;
use crate::nn::Model;
use anyhow::{bail, Context, Result};

/// What a finished training run measured.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub info: ModelInfo,
    pub test_acc: f64,
    /// Test accuracy with every counted site linearized (the identity).
    pub test_acc_linearized: f64,
    pub test_images: usize,
    pub classes: usize,
    pub epochs: usize,
    pub seconds: f64,
}

/// Train the all-ReLU model `cfg` describes into `cfg.out` (the pipeline's first stage too), and
/// report its test accuracy with all sites kept and with every counted site linearized.
pub fn train(cfg: &RunConfig, resume: bool) -> Result<TrainOutcome> {
    if cfg.threads > 0 {
        tch::set_num_threads(cfg.threads as i32);
    }
    let device = crate::device::parse_device(&cfg.device)?;
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
    // A model that starts from a checkpoint (an imported one) keeps the normalization its
    // weights were trained with.
    let mut splits = splits;
    if let Some(dir) = &cfg.model.from {
        let from = CheckpointSpec::load(dir)?;
        if from.normalization != splits.norm {
            eprintln!(
                "model.from = {}: using its input normalization {:?} / {:?} (the data's own is {:?} / {:?})",
                dir.display(),
                from.normalization.mean,
                from.normalization.std,
                splits.norm.mean,
                splits.norm.std
            );
            splits.norm = from.normalization;
        }
    }
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
    crate::io::atomic_write_bytes(&out.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    ckpt_spec.save(&out)?;

    let mut model = Model::seeded(spec, device, cfg.train.seed)?;
    if let Some(dir) = &cfg.model.from {
        model.load_weights(&dir.join(super::checkpoint::WEIGHTS_FILE))?;
    }
    model.use_channels_last(cfg.train.channels_last)?;
    let info = ModelInfo::of(&model);
    eprintln!(
        "model: {} width x{} ({} params, {} ReLUs, {:.1} M MACs) on {}",
        info.arch,
        info.width,
        info.params,
        info.relu_total,
        info.macs_total as f64 / 1e6,
        crate::device::describe(device)
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
    let mut ce = CrossEntropy {
        label_smoothing: cfg.train.label_smoothing,
    };
    let mut kd = match &cfg.teacher {
        Some(dir) => {
            let (mut teacher, tspec) = super::load_model(dir, device)
                .with_context(|| format!("loading the teacher {}", dir.display()))?;
            teacher.use_channels_last(cfg.train.channels_last)?;
            if tspec.model.input_size != model.spec.input_size
                || tspec.model.classes != model.spec.classes
                || tspec.normalization != splits.norm
            {
                bail!(
                    "teacher {} does not fit this run: {}x{} input, {} classes, its own normalization; the student has {}x{} and {}",
                    dir.display(),
                    tspec.model.input_size,
                    tspec.model.input_size,
                    tspec.model.classes,
                    model.spec.input_size,
                    model.spec.input_size,
                    model.spec.classes
                );
            }
            eprintln!(
                "distilling from {} ({}): CE + T^2 KL, T = 4",
                dir.display(),
                tspec.model.arch
            );
            Some(Distill {
                teacher: Teacher::new(teacher),
                cfg: DistillConfig::default(),
                masks: None,
            })
        }
        None => None,
    };
    let objective: &mut dyn super::Objective = match kd.as_mut() {
        Some(k) => k,
        None => &mut ce,
    };
    let t0 = std::time::Instant::now();
    let history = fit(
        &mut model,
        &train_loader,
        objective,
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

    let test_acc = history.last().and_then(|m| m.test_acc).unwrap_or(f64::NAN);
    let lin = evaluate(&model, &test_loader, Some(&model.all_linearized()));
    Ok(TrainOutcome {
        info,
        test_acc,
        test_acc_linearized: lin.accuracy,
        test_images: splits.test.len(),
        classes: splits.classes(),
        epochs: history.len(),
        seconds: wall,
    })
}
