//! Tiny-ImageNet-200 in its original layout: `wnids.txt` (class order),
//! `train/<wnid>/images/*.JPEG`, `val/images/*.JPEG` with `val/val_annotations.txt`
//! (tab-separated: file, wnid, box). The validation set serves as the test split.

use super::image_folder::{class_files, decode_files};
use super::Dataset;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;

pub fn load(
    root: &Path,
    size: Option<u32>,
    limit: Option<usize>,
    test_limit: Option<usize>,
) -> Result<(Dataset, Dataset)> {
    let wnids_path = root.join("wnids.txt");
    let wnids: Vec<String> = std::fs::read_to_string(&wnids_path)
        .with_context(|| format!("{}: missing (Tiny-ImageNet layout)", wnids_path.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if wnids.is_empty() {
        bail!("{}: no class ids", wnids_path.display());
    }
    let index: HashMap<&str, i64> = wnids
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i as i64))
        .collect();
    let size = size.unwrap_or(64);

    let mut train_files = Vec::new();
    for (label, w) in wnids.iter().enumerate() {
        let dir = root.join("train").join(w).join("images");
        train_files.extend(
            class_files(&dir, limit)?
                .into_iter()
                .map(|f| (f, label as i64)),
        );
    }

    let ann_path = root.join("val").join("val_annotations.txt");
    let ann = std::fs::read_to_string(&ann_path)
        .with_context(|| format!("{}: missing validation annotation file", ann_path.display()))?;
    let mut per_class = vec![0usize; wnids.len()];
    let mut val_files = Vec::new();
    for (lineno, line) in ann
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut cols = line.split('\t');
        let (Some(file), Some(wnid)) = (cols.next(), cols.next()) else {
            bail!(
                "{}: line {} is not `file<TAB>wnid<TAB>box`",
                ann_path.display(),
                lineno + 1
            );
        };
        let label = *index.get(wnid.trim()).with_context(|| {
            format!(
                "{}: line {}: unknown class id `{wnid}`",
                ann_path.display(),
                lineno + 1
            )
        })?;
        per_class[label as usize] += 1;
        if test_limit.is_some_and(|k| per_class[label as usize] > k) {
            continue;
        }
        let path = root.join("val").join("images").join(file.trim());
        if !path.is_file() {
            bail!(
                "{}: line {}: image {} does not exist",
                ann_path.display(),
                lineno + 1,
                path.display()
            );
        }
        val_files.push((path, label));
    }
    if val_files.is_empty() {
        bail!("{}: no validation images listed", ann_path.display());
    }
    let labels = |f: &[(std::path::PathBuf, i64)]| f.iter().map(|(_, l)| *l).collect::<Vec<_>>();
    Ok((
        Dataset::new(
            "tiny-imagenet/train".into(),
            decode_files(&train_files, size)?,
            labels(&train_files),
            wnids.clone(),
            size as i64,
        ),
        Dataset::new(
            "tiny-imagenet/val".into(),
            decode_files(&val_files, size)?,
            labels(&val_files),
            wnids,
            size as i64,
        ),
    ))
}
