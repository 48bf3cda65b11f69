//! A checkpoint's data and masks: the loaders of its training, test and holdout splits, and the
//! checkpoint with the masks it records. Every stage reads checkpoints this way (training,
//! importance, linearization, reshaping, private inference), so it lives in `train/` (issue 40).

use super::checkpoint::{load_model, CheckpointSpec};
use crate::data::Loader;
use crate::nn::{MaskSet, Model};
use anyhow::{Context, Result};
use std::path::Path;
use tch::Device;

/// A checkpoint's data as loaders, from one load of its splits: training (`per_class` limits
/// it), test, and the split a stage ranks with apart from the test split it reports on (the
/// checkpoint's holdout split, `data.holdout`, or, when it has none, the test split, named as
/// such so the caller can say so). Channels-last when `cfg.channels_last` (the models then go
/// channels-last too: [`Model::use_channels_last`]).
pub struct CheckpointLoaders {
    pub train: Loader,
    pub test: Loader,
    pub select: Loader,
    /// `holdout` or `test`.
    pub select_split: &'static str,
}

/// [`CheckpointLoaders`] of `spec`'s data.
pub fn checkpoint_loaders(
    spec: &CheckpointSpec,
    cfg: &crate::train::TrainConfig,
    per_class: Option<usize>,
    device: Device,
) -> Result<CheckpointLoaders> {
    let splits = spec
        .data
        .load()
        .with_context(|| format!("loading the training data from `{}`", spec.data.source))?;
    let train = match per_class {
        Some(k) => std::sync::Arc::new(splits.train.limit_per_class(k)),
        None => splits.train.clone(),
    };
    let mut train = Loader::train(
        train,
        spec.normalization,
        cfg.batch_size,
        cfg.seed,
        spec.data.augment,
        device,
    );
    let eval = |set| {
        let mut l = Loader::eval(set, spec.normalization, cfg.eval_batch_size, device);
        l.channels_last = cfg.channels_last;
        l
    };
    let (select, select_split) = match &splits.holdout {
        Some(h) => (eval(h.clone()), "holdout"),
        None => (eval(splits.test.clone()), "test"),
    };
    train.channels_last = cfg.channels_last;
    Ok(CheckpointLoaders {
        train,
        test: eval(splits.test.clone()),
        select,
        select_split,
    })
}

/// Training and test loaders of a checkpoint's data ([`checkpoint_loaders`]).
pub fn loaders(
    spec: &CheckpointSpec,
    cfg: &crate::train::TrainConfig,
    per_class: Option<usize>,
    device: Device,
) -> Result<(Loader, Loader)> {
    let l = checkpoint_loaders(spec, cfg, per_class, device)?;
    Ok((l.train, l.test))
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
