//! Evaluation without gradients.

use super::losses::{correct, cross_entropy};
use crate::data::Loader;
use crate::nn::{MaskSet, Model};
use tch::Kind;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    pub loss: f64,
    pub accuracy: f64,
    pub images: usize,
}

/// Top-1 accuracy and mean cross-entropy of `model` (with `masks`, if given) over `loader`.
pub fn evaluate(model: &Model, loader: &Loader, masks: Option<&MaskSet>) -> EvalResult {
    tch::no_grad(|| {
        let dev = model.device();
        let mut loss = tch::Tensor::zeros([], (Kind::Float, dev));
        let mut hits = tch::Tensor::zeros([], (Kind::Int64, dev));
        let mut n = 0usize;
        for b in loader.epoch(0) {
            let logits = match masks {
                Some(m) => model.forward_masked(&b.images, false, m),
                None => model.forward(&b.images, false),
            };
            let k = b.len();
            loss += cross_entropy(&logits.to_kind(Kind::Float), &b.labels, 0.0) * k as f64;
            hits += correct(&logits, &b.labels);
            n += k as usize;
        }
        let n_f = n.max(1) as f64;
        EvalResult {
            loss: loss.double_value(&[]) / n_f,
            accuracy: hits.int64_value(&[]) as f64 / n_f,
            images: n,
        }
    })
}
