//! The all-ReLU (AR) teacher of distillation and PRAM, and the distillation loss of the mask
//! learners.

use super::config::DistillConfig;
use crate::nn::Model;
use crate::train::losses::{cross_entropy, distillation};
use tch::Tensor;

/// A frozen all-ReLU model, evaluated without gradients in inference mode.
pub struct Teacher {
    pub model: Model,
}

impl Teacher {
    pub fn new(model: Model) -> Self {
        Teacher { model }
    }

    /// Logits for `x`.
    pub fn logits(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| self.model.forward(x, false))
    }

    /// Logits and the post-activation map of every site.
    pub fn logits_and_posts(&self, x: &Tensor) -> (Tensor, Vec<Tensor>) {
        tch::no_grad(|| {
            let mut f = self.model.pass(false).with_taps();
            let logits = self.model.forward_with(x, &mut f);
            let posts = f.take_taps().into_iter().map(|t| t.post).collect();
            (logits, posts)
        })
    }
}

/// `ce * CE(student, y) + kl * T^2 KL(teacher || student)`: the loss of every mask learner
/// (PrivShap section 4.1; ReLUPruner eq. 10, `gamma CE + alpha KL`).
pub fn distill_loss(
    student: &Tensor,
    teacher: &Tensor,
    labels: &Tensor,
    cfg: &DistillConfig,
) -> Tensor {
    let mut loss = cross_entropy(student, labels, 0.0) * cfg.ce;
    if cfg.kl > 0.0 {
        loss += distillation(student, teacher, cfg.temperature) * cfg.kl;
    }
    loss
}
