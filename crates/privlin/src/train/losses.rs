//! Losses shared by training and the later linearization stages.

use tch::{Kind, Reduction, Tensor};

/// Cross-entropy of `logits` against integer `labels`, mean over the batch, with optional label
/// smoothing.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, label_smoothing: f64) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, label_smoothing)
}

/// Knowledge distillation (Hinton et al. 2015), as used by SENet eq. 2 and ReLUPruner:
/// `T^2 * KL(softmax(teacher / T) || softmax(student / T))`, averaged over the batch.
pub fn distillation(student: &Tensor, teacher: &Tensor, temperature: f64) -> Tensor {
    let log_p_s = (student / temperature).log_softmax(-1, Kind::Float);
    let log_p_t = (teacher.detach() / temperature).log_softmax(-1, Kind::Float);
    let kl = (log_p_t.exp() * (&log_p_t - &log_p_s)).sum(Kind::Float) / student.size()[0] as f64;
    kl * (temperature * temperature)
}

/// Number of correct top-1 predictions.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits
        .argmax(-1, false)
        .eq_tensor(labels)
        .to_kind(Kind::Int64)
        .sum(Kind::Int64)
}
