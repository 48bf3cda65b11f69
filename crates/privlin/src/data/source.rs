//! Where data comes from: the built-in synthetic generator or a directory in one of the supported
//! layouts (detected automatically unless `format` says otherwise).

use super::synthetic::{self, SyntheticSpec};
use super::{cifar, image_folder, tiny_imagenet, Dataset, Normalization};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Data settings, as in the `[data]` table of a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `synthetic` or a directory.
    pub source: String,
    /// `auto`, `synthetic`, `cifar10`, `cifar100`, `cifar100-coarse`, `image-folder`, `tiny-imagenet`.
    pub format: String,
    /// Keep at most this many training images per class.
    pub train_per_class: Option<usize>,
    /// Keep at most this many test images per class.
    pub test_per_class: Option<usize>,
    /// Fraction of the training set held out (stratified) as a utility/validation split.
    pub holdout: f64,
    /// Seed of the synthetic generator and of the held-out split.
    pub seed: u64,
    /// Resize images to this size (default: the dataset's own).
    pub size: Option<u32>,
    /// Pad-4 random crop and horizontal flip on training batches.
    pub augment: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: "synthetic".into(),
            format: "auto".into(),
            train_per_class: None,
            test_per_class: None,
            holdout: 0.0,
            seed: 0,
            size: None,
            augment: true,
        }
    }
}

/// Train, test and optional held-out splits, with the normalization computed on the train split.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Arc<Dataset>,
    pub test: Arc<Dataset>,
    pub holdout: Option<Arc<Dataset>>,
    pub norm: Normalization,
}

impl Splits {
    pub fn classes(&self) -> usize {
        self.train.classes.len()
    }
}

fn detect(dir: &Path) -> Result<&'static str> {
    if !dir.is_dir() {
        bail!(
            "data source {}: not a directory (and not `synthetic`)",
            dir.display()
        );
    }
    Ok(if dir.join("data_batch_1.bin").exists() {
        "cifar10"
    } else if dir.join("train.bin").exists() && dir.join("test.bin").exists() {
        "cifar100"
    } else if dir.join("wnids.txt").exists() {
        "tiny-imagenet"
    } else if dir.join("train").is_dir() {
        "image-folder"
    } else {
        bail!(
            "{}: layout not recognised (expected CIFAR-10/100 binary files, Tiny-ImageNet's wnids.txt, or ImageFolder train/ and test/ folders)",
            dir.display()
        )
    })
}

impl DataConfig {
    pub fn is_synthetic(&self) -> bool {
        self.source == "synthetic" || self.format == "synthetic"
    }

    /// Load the splits this config describes.
    pub fn load(&self) -> Result<Splits> {
        if !(0.0..1.0).contains(&self.holdout) {
            bail!(
                "data.holdout must be a fraction in [0, 1), got {}",
                self.holdout
            );
        }
        let (mut train, mut test) = if self.is_synthetic() {
            let d = SyntheticSpec::default();
            synthetic::generate(&SyntheticSpec {
                seed: self.seed,
                classes: 10,
                size: self.size.map(|s| s as usize).unwrap_or(d.size),
                train_per_class: self.train_per_class.unwrap_or(d.train_per_class),
                test_per_class: self.test_per_class.unwrap_or(d.test_per_class),
            })?
        } else {
            let dir = Path::new(&self.source);
            let format = if self.format == "auto" {
                detect(dir)?
            } else {
                self.format.as_str()
            };
            match format {
                "cifar10" => cifar::load_cifar10(dir)?,
                "cifar100" => cifar::load_cifar100(dir, cifar::Cifar100Labels::Fine)?,
                "cifar100-coarse" => cifar::load_cifar100(dir, cifar::Cifar100Labels::Coarse)?,
                "image-folder" => image_folder::load(dir, self.size, self.train_per_class, self.test_per_class)?,
                "tiny-imagenet" => tiny_imagenet::load(dir, self.size, self.train_per_class, self.test_per_class)?,
                other => bail!(
                    "unknown data format `{other}` (expected auto, synthetic, cifar10, cifar100, cifar100-coarse, image-folder, tiny-imagenet)"
                ),
            }
        };
        if let Some(k) = self.train_per_class {
            train = train.limit_per_class(k);
        }
        if let Some(k) = self.test_per_class {
            test = test.limit_per_class(k);
        }
        if self.size.is_some_and(|s| s as i64 != train.size) {
            bail!(
                "data.size {} asked, but {} holds {}x{} images and is not resized",
                self.size.unwrap_or_default(),
                train.name,
                train.size,
                train.size
            );
        }
        let (train, holdout) = if self.holdout > 0.0 {
            let (rest, held) = train.split_holdout(self.holdout, self.seed);
            (rest, Some(Arc::new(held)))
        } else {
            (train, None)
        };
        if train.is_empty() || test.is_empty() {
            bail!("data source {}: empty train or test split", self.source);
        }
        let norm = train.channel_stats();
        Ok(Splits {
            train: Arc::new(train),
            test: Arc::new(test),
            holdout,
            norm,
        })
    }
}
