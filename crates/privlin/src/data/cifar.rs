//! The official CIFAR binary layouts: CIFAR-10 (`data_batch_1..5.bin`, `test_batch.bin`, records of
//! 1 label byte + 3072 pixel bytes) and CIFAR-100 (`train.bin`, `test.bin`, records of a coarse
//! and a fine label byte + 3072 pixel bytes).

use super::Dataset;
use anyhow::{bail, Context, Result};
use std::path::Path;

const PIXELS: usize = 3 * 32 * 32;

/// Which labels of CIFAR-100 to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar100Labels {
    Fine,
    Coarse,
}

fn read_records(
    path: &Path,
    label_bytes: usize,
    label_index: usize,
    classes: usize,
) -> Result<(Vec<u8>, Vec<i64>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let record = label_bytes + PIXELS;
    if bytes.is_empty() || bytes.len() % record != 0 {
        bail!(
            "{}: {} bytes is not a whole number of {record}-byte records (truncated or not a CIFAR binary file)",
            path.display(),
            bytes.len()
        );
    }
    let n = bytes.len() / record;
    let mut images = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[label_index] as usize;
        if label >= classes {
            bail!(
                "{}: record {i} has label {label}, but the dataset has {classes} classes (corrupt file?)",
                path.display()
            );
        }
        labels.push(label as i64);
        images.extend_from_slice(&rec[label_bytes..]);
    }
    Ok((images, labels))
}

fn read_names(path: &Path, n: usize) -> Vec<String> {
    let names: Vec<String> = std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if names.len() == n {
        names
    } else {
        (0..n).map(|i| i.to_string()).collect()
    }
}

fn load_files(
    files: &[std::path::PathBuf],
    label_bytes: usize,
    label_index: usize,
    classes: &[String],
    name: String,
) -> Result<Dataset> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let (im, lb) = read_records(f, label_bytes, label_index, classes.len())?;
        images.extend(im);
        labels.extend(lb);
    }
    Ok(Dataset::new(name, images, labels, classes.to_vec(), 32))
}

/// CIFAR-10 in `dir` (the `cifar-10-batches-bin` folder): `(train, test)`.
pub fn load_cifar10(dir: &Path) -> Result<(Dataset, Dataset)> {
    let classes = read_names(&dir.join("batches.meta.txt"), 10);
    let train: Vec<_> = (1..=5)
        .map(|i| dir.join(format!("data_batch_{i}.bin")))
        .collect();
    for f in &train {
        if !f.exists() {
            bail!(
                "{}: missing (CIFAR-10 binary layout needs data_batch_1..5.bin and test_batch.bin)",
                f.display()
            );
        }
    }
    Ok((
        load_files(&train, 1, 0, &classes, "cifar10/train".into())?,
        load_files(
            &[dir.join("test_batch.bin")],
            1,
            0,
            &classes,
            "cifar10/test".into(),
        )?,
    ))
}

/// CIFAR-100 in `dir` (the `cifar-100-binary` folder): `(train, test)`.
pub fn load_cifar100(dir: &Path, labels: Cifar100Labels) -> Result<(Dataset, Dataset)> {
    let (n, idx, names) = match labels {
        Cifar100Labels::Fine => (100, 1, "fine_label_names.txt"),
        Cifar100Labels::Coarse => (20, 0, "coarse_label_names.txt"),
    };
    let classes = read_names(&dir.join(names), n);
    Ok((
        load_files(
            &[dir.join("train.bin")],
            2,
            idx,
            &classes,
            "cifar100/train".into(),
        )?,
        load_files(
            &[dir.join("test.bin")],
            2,
            idx,
            &classes,
            "cifar100/test".into(),
        )?,
    ))
}
