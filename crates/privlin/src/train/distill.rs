//! The all-ReLU (AR) teacher of distillation and PRAM, and the distillation objective every stage
//! shares: the mask learners' loss, `privlin train --teacher`, DeepReDuce's training (issue 40:
//! a training concept, so it lives in `train/`, and the method folders import it).

use super::losses::{cross_entropy, distillation};
use super::Objective;
use crate::data::Batch;
use crate::nn::{MaskSet, Model};
use serde::{Deserialize, Serialize};
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

/// Distillation from a frozen teacher with fixed masks (`None`: the plain model): the objective of
/// `privlin train --teacher` (Hinton et al. 2015, as DeepReDuce trains its reshaped networks) and
/// of DeepReDuce's layer masks.
pub struct Distill {
    pub teacher: Teacher,
    pub cfg: DistillConfig,
    pub masks: Option<MaskSet>,
}

impl Objective for Distill {
    fn loss(&mut self, model: &Model, batch: &Batch) -> anyhow::Result<(Tensor, Tensor)> {
        let t = self.teacher.logits(&batch.images);
        let s = match &self.masks {
            Some(m) => model.forward_masked(&batch.images, true, m),
            None => model.forward(&batch.images, true),
        };
        Ok((distill_loss(&s, &t, &batch.labels, &self.cfg), s))
    }

    fn eval_masks(&self) -> Option<MaskSet> {
        self.masks.clone()
    }
}

/// Distillation from the all-ReLU teacher while masks are learned: `ce * CE + kl * T^2 KL`
/// (PrivShap "CE + KL"; ReLUPruner eq. 10 and Algorithm 1 line 6, `gamma CE + alpha KL`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    pub ce: f64,
    pub kl: f64,
    pub temperature: f64,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            ce: 1.0,
            kl: 1.0,
            temperature: 4.0,
        }
    }
}
