//! The images a private-inference client classifies, and the float model's classes for them.

use crate::data::{DataConfig, Normalization};
use crate::nn::{MaskSet, Model};
use anyhow::{Context, Result};
use tch::{Kind, Tensor};

/// The first `n` test images of `data` (at `size` x `size`, `classes` classes), classes
/// interleaved so that the first images cover every class: `(label, CHW bytes)`.
pub fn test_images(
    data: &DataConfig,
    size: u32,
    classes: usize,
    n: usize,
) -> Result<Vec<(i64, Vec<u8>)>> {
    let cfg = DataConfig {
        train_per_class: Some(1),
        test_per_class: Some(n.div_ceil(classes.max(1)).max(1)),
        holdout: 0.0,
        size: Some(size),
        ..data.clone()
    };
    let splits = cfg
        .load()
        .with_context(|| format!("loading `{}`", data.source))?;
    let t = &splits.test;
    let mut rank = vec![0usize; t.len()];
    let mut seen = std::collections::HashMap::new();
    for (i, &l) in t.labels.iter().enumerate() {
        let r = seen.entry(l).or_insert(0usize);
        rank[i] = *r;
        *r += 1;
    }
    let mut order: Vec<usize> = (0..t.len()).collect();
    order.sort_by_key(|&i| (rank[i], t.labels[i]));
    Ok(order
        .into_iter()
        .take(n)
        .map(|i| (t.labels[i], t.image(i).to_vec()))
        .collect())
}

/// The float model's class for each normalized `(C, H, W)` input, with `masks` if given.
pub fn float_classes(
    model: &Model,
    masks: Option<&MaskSet>,
    inputs: &[Vec<f32>],
    shape: [usize; 3],
) -> Vec<usize> {
    let [c, h, w] = shape.map(|d| d as i64);
    inputs
        .chunks(256)
        .flat_map(|chunk| {
            let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
            let x = Tensor::from_slice(&flat)
                .view([chunk.len() as i64, c, h, w])
                .to_device(model.device());
            let y = tch::no_grad(|| match masks {
                Some(m) => model.forward_masked(&x, false, m),
                None => model.forward(&x, false),
            });
            Vec::<i64>::try_from(&y.argmax(-1, false).to_kind(Kind::Int64))
                .expect("class indices")
                .into_iter()
                .map(|k| k as usize)
        })
        .collect()
}

/// The input normalization of an export: the one its `model.json` names, or, for an export
/// without one (the engine's synthetic models), mean 0.5 and standard deviation 0.25 per channel.
pub fn normalization_or_default(
    n: &Option<privlin_mpc::model::Normalize>,
) -> Result<Normalization> {
    match n {
        Some(n) => normalization(n),
        None => Ok(Normalization {
            mean: [0.5; 3],
            std: [0.25; 3],
        }),
    }
}

/// The input normalization an export's `model.json` names (three channels).
pub fn normalization(n: &privlin_mpc::model::Normalize) -> Result<Normalization> {
    let three = |v: &[f32], what: &str| -> Result<[f32; 3]> {
        v.try_into().map_err(|_| {
            anyhow::anyhow!(
                "model.json: normalize.{what} has {} values, expected 3",
                v.len()
            )
        })
    };
    Ok(Normalization {
        mean: three(&n.mean, "mean")?,
        std: three(&n.std, "std")?,
    })
}
