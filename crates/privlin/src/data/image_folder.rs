//! ImageFolder layout: `root/<split>/<class>/<image>` (JPEG or PNG); the class is the folder name,
//! classes sorted by name. Images are decoded in parallel, converted to RGB, and resized to the
//! dataset's size where they differ.

use super::Dataset;
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Decode `files` (path, label) into CHW u8 images of `size x size`.
pub fn decode_files(files: &[(PathBuf, i64)], size: u32) -> Result<Vec<u8>> {
    let pixels = 3 * (size * size) as usize;
    let mut images = vec![0u8; files.len() * pixels];
    images
        .par_chunks_mut(pixels)
        .zip(files.par_iter())
        .try_for_each(|(out, (path, _))| -> Result<()> {
            let img = image::ImageReader::open(path)
                .with_context(|| format!("{}: cannot open", path.display()))?
                .with_guessed_format()
                .with_context(|| format!("{}: cannot read", path.display()))?
                .decode()
                .with_context(|| {
                    format!(
                        "{}: not a decodable image (JPEG or PNG expected)",
                        path.display()
                    )
                })?;
            let mut rgb = img.to_rgb8();
            if rgb.width() != size || rgb.height() != size {
                rgb = image::imageops::resize(
                    &rgb,
                    size,
                    size,
                    image::imageops::FilterType::Triangle,
                );
            }
            let plane = (size * size) as usize;
            for (i, p) in rgb.pixels().enumerate() {
                for c in 0..3 {
                    out[c * plane + i] = p.0[c];
                }
            }
            Ok(())
        })?;
    Ok(images)
}

/// Size of the first image in `files` (the dataset's native size).
pub fn probe_size(files: &[(PathBuf, i64)]) -> Result<u32> {
    let (path, _) = files.first().context("no image files")?;
    let (w, h) = image::image_dimensions(path)
        .with_context(|| format!("{}: not a readable image", path.display()))?;
    if w != h {
        bail!(
            "{}: images must be square, this one is {w}x{h} (give --input-size to resize)",
            path.display()
        );
    }
    Ok(w)
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list directory", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !is_hidden(p))
        .collect();
    v.sort();
    Ok(v)
}

/// Class folders of `split_dir`, sorted by name.
pub fn class_dirs(split_dir: &Path) -> Result<Vec<PathBuf>> {
    let dirs: Vec<PathBuf> = sorted_entries(split_dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if dirs.is_empty() {
        bail!(
            "{}: no class folders (ImageFolder layout is <split>/<class>/<image>)",
            split_dir.display()
        );
    }
    Ok(dirs)
}

/// The image files of one class folder, at most `limit` (first ones by name).
pub fn class_files(dir: &Path, limit: Option<usize>) -> Result<Vec<PathBuf>> {
    let files: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    if files.is_empty() {
        bail!("{}: empty class folder", dir.display());
    }
    Ok(match limit {
        Some(k) => files.into_iter().take(k).collect(),
        None => files,
    })
}

/// Load one split folder; `classes` fixes the class order (from the training split).
pub fn load_split(
    split_dir: &Path,
    classes: &[String],
    size: Option<u32>,
    limit: Option<usize>,
    name: String,
) -> Result<Dataset> {
    let dirs = class_dirs(split_dir)?;
    let mut files = Vec::new();
    for d in &dirs {
        let cname = d
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let label = classes.iter().position(|c| *c == cname).with_context(|| {
            format!(
                "{}: class folder `{cname}` is not a class of the training split",
                d.display()
            )
        })?;
        files.extend(
            class_files(d, limit)?
                .into_iter()
                .map(|f| (f, label as i64)),
        );
    }
    let size = match size {
        Some(s) => s,
        None => probe_size(&files)?,
    };
    let images = decode_files(&files, size)?;
    let labels = files.iter().map(|(_, l)| *l).collect();
    Ok(Dataset::new(
        name,
        images,
        labels,
        classes.to_vec(),
        size as i64,
    ))
}

/// `root/train` and `root/test` (or `root/val`): `(train, test)`.
pub fn load(
    root: &Path,
    size: Option<u32>,
    limit: Option<usize>,
    test_limit: Option<usize>,
) -> Result<(Dataset, Dataset)> {
    let train_dir = root.join("train");
    let test_dir = ["test", "val"]
        .iter()
        .map(|s| root.join(s))
        .find(|p| p.is_dir())
        .with_context(|| format!("{}: no test/ or val/ folder beside train/", root.display()))?;
    let classes: Vec<String> = class_dirs(&train_dir)?
        .iter()
        .map(|d| {
            d.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let base = root
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let train = load_split(&train_dir, &classes, size, limit, format!("{base}/train"))?;
    let test = load_split(
        &test_dir,
        &classes,
        Some(train.size as u32),
        test_limit,
        format!("{base}/test"),
    )?;
    Ok((train, test))
}
