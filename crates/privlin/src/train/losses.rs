//! Losses shared by training and the later linearization stages.

use tch::{Kind, Reduction, Tensor};

/// Cross-entropy of `logits` against integer `labels`, mean over the batch, with optional label
/// smoothing.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, label_smoothing: f64) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, label_smoothing)
}

/// `KL(softmax(teacher / T) || softmax(student / T))`, averaged over the batch: the KL term as
/// SENet eq. 2 prints it (no `T^2` factor).
pub fn kl_divergence(student: &Tensor, teacher: &Tensor, temperature: f64) -> Tensor {
    let log_p_s = (student / temperature).log_softmax(-1, Kind::Float);
    let log_p_t = (teacher.detach() / temperature).log_softmax(-1, Kind::Float);
    (log_p_t.exp() * (&log_p_t - &log_p_s)).sum(Kind::Float) / student.size()[0] as f64
}

/// Knowledge distillation (Hinton et al. 2015): `T^2 * KL(softmax(teacher / T) ||
/// softmax(student / T))`, averaged over the batch; the `T^2` keeps the soft targets' gradients
/// at the scale of the hard ones'. The mask learners' loss and the SNL authors' `train_kd` use
/// it; SENet's fine-tuning uses [`kl_divergence`] unless `finetune.kl_t2` is set.
pub fn distillation(student: &Tensor, teacher: &Tensor, temperature: f64) -> Tensor {
    kl_divergence(student, teacher, temperature) * (temperature * temperature)
}

/// Number of correct top-1 predictions.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits
        .argmax(-1, false)
        .eq_tensor(labels)
        .to_kind(Kind::Int64)
        .sum(Kind::Int64)
}
