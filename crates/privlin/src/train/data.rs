//! A checkpoint's data and masks: the loaders of its training, test and holdout splits, and the
//! checkpoint with the masks it records. Every stage reads checkpoints this way (training,
//! importance, linearization, reshaping, private inference), so it lives in `train/` (issue 40).

use super::checkpoint::{load_model, CheckpointSpec};
use crate::data::Loader;
use crate::nn::{MaskSet, Model};
use anyhow::{Context, Result};
use std::path::Path;
use tch::Device;

/// Training and test loaders of a checkpoint's data (`per_class` limits the training split), in
/// channels-last layout when `cfg.channels_last` (the models then go channels-last too:
/// [`Model::use_channels_last`]).
pub fn loaders(
    spec: &CheckpointSpec,
    cfg: &crate::train::TrainConfig,
    per_class: Option<usize>,
    device: Device,
) -> Result<(Loader, Loader)> {
    let splits = spec
        .data
        .load()
        .with_context(|| format!("loading the training data from `{}`", spec.data.source))?;
    let train = match per_class {
        Some(k) => std::sync::Arc::new(splits.train.limit_per_class(k)),
        None => splits.train.clone(),
    };
    let mut train_loader = Loader::train(
        train,
        spec.normalization,
        cfg.batch_size,
        cfg.seed,
        spec.data.augment,
        device,
    );
    let mut test_loader = Loader::eval(
        splits.test.clone(),
        spec.normalization,
        cfg.eval_batch_size,
        device,
    );
    train_loader.channels_last = cfg.channels_last;
    test_loader.channels_last = cfg.channels_last;
    Ok((train_loader, test_loader))
}

/// The split a stage ranks with, apart from the test split it reports on: the checkpoint's
/// holdout split (`data.holdout`), or, when the checkpoint has none, the test split named as
/// such (the caller says so).
pub fn selection_loader(
    spec: &CheckpointSpec,
    cfg: &crate::train::TrainConfig,
    device: Device,
) -> Result<(Loader, &'static str)> {
    let splits = spec
        .data
        .load()
        .with_context(|| format!("loading the data from `{}`", spec.data.source))?;
    let (set, name) = match &splits.holdout {
        Some(h) => (h.clone(), "holdout"),
        None => (splits.test.clone(), "test"),
    };
    let mut l = Loader::eval(set, spec.normalization, cfg.eval_batch_size, device);
    l.channels_last = cfg.channels_last;
    Ok((l, name))
}

/// Load a checkpoint and its masks (`spec.masks`), if it has any.
pub fn load_with_masks(
    dir: &Path,
    device: Device,
) -> Result<(Model, CheckpointSpec, Option<MaskSet>)> {
    let (model, spec) = load_model(dir, device)?;
    let masks = match &spec.masks {
        Some(f) => Some(MaskSet::load(model.sites(), &dir.join(f), device)?),
        None => None,
    };
    Ok((model, spec, masks))
}
