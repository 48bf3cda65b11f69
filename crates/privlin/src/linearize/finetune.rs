//! Fine-tuning with frozen masks (SENet eq. 2; ReLUPruner eq. 11):
//!
//! `L = lambda * T^2 KL(softmax(z_ar / T) || softmax(z_pr / T)) + (1 - lambda) * CE(y, z_pr)
//!      + beta / 2 * sum_m || psi_pr^m / ||psi_pr^m||_2 - psi_ar^m / ||psi_ar^m||_2 ||_2`
//!
//! where `psi^m` are the vectorized post-activation maps of site `m` of the partial-ReLU student
//! and the all-ReLU teacher (PRAM: post-ReLU activation mismatch). The paper's defaults: lambda
//! 0.9, beta 1000, T 4. With `loss = "snl"` the objective is the SNL authors' `CE + T^2 KL`, 1:1,
//! without PRAM ([`FinetuneConfig::snl`] is their whole recipe).
//!
//! One deviation, measured: eq. 2 prints the plain L2 distance of the normalized maps. With
//! beta = 1000 that term is three orders of magnitude above KL and CE (about 7,000 on the demo's
//! 17 sites) and fine-tuning collapsed (82.8 % -> 29.1 % test accuracy on the demo). We use the
//! squared distance averaged over the map's elements, the form attention-transfer losses
//! (Zagoruyko & Komodakis 2017), which PRAM follows, are computed in: with beta = 1000 it is of
//! the order of the KL term.

use super::config::FinetuneConfig;
use super::teacher::Teacher;
use crate::data::Batch;
use crate::nn::{MaskSet, Model};
use crate::train::losses::{cross_entropy, distillation};
use crate::train::Objective;
use anyhow::Result;
use tch::{Kind, Tensor};

/// PRAM of one site: the squared distance between the L2-normalized vectorized maps, averaged
/// over the map's elements and the batch.
pub fn pram(student: &Tensor, teacher: &Tensor) -> Tensor {
    let s = student.flatten(1, -1);
    let t = teacher.flatten(1, -1).detach();
    let unit = |x: &Tensor| {
        let n = x
            .norm_scalaropt_dim(2, [1i64].as_slice(), true)
            .clamp_min(1e-12);
        x / n
    };
    (unit(&s) - unit(&t)).square().mean(Kind::Float)
}

pub struct Finetune {
    teacher: Teacher,
    masks: MaskSet,
    cfg: FinetuneConfig,
    /// The last batch's loss terms (KL, CE, PRAM sum), for logs and tests.
    pub last_terms: Option<(f64, f64, f64)>,
}

impl Finetune {
    pub fn new(teacher: Teacher, masks: MaskSet, cfg: FinetuneConfig) -> Self {
        Finetune {
            teacher,
            masks,
            cfg,
            last_terms: None,
        }
    }
}

impl Objective for Finetune {
    fn loss(&mut self, model: &Model, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let snl = self.cfg.loss == "snl";
        let use_pram = self.cfg.beta > 0.0 && !snl;
        let (t_logits, t_posts) = if use_pram {
            self.teacher.logits_and_posts(&batch.images)
        } else {
            (self.teacher.logits(&batch.images), Vec::new())
        };
        let mut f = model.pass(true).with_masks(&self.masks);
        if use_pram {
            f = f.with_taps();
        }
        let s = model.forward_with(&batch.images, &mut f);
        let kl = distillation(&s, &t_logits, self.cfg.temperature);
        let ce = cross_entropy(&s, &batch.labels, 0.0);
        let mut loss = if snl {
            &kl + &ce
        } else {
            &kl * self.cfg.lambda + &ce * (1.0 - self.cfg.lambda)
        };
        let mut pram_sum = Tensor::zeros([], (Kind::Float, s.device()));
        if use_pram {
            for (tap, t) in f.take_taps().iter().zip(&t_posts) {
                pram_sum += pram(&tap.post, t);
            }
            loss += &pram_sum * (self.cfg.beta / 2.0);
        }
        self.last_terms = Some((
            kl.double_value(&[]),
            ce.double_value(&[]),
            pram_sum.double_value(&[]),
        ));
        Ok((loss, s))
    }

    fn eval_masks(&self) -> Option<MaskSet> {
        Some(self.masks.clone())
    }
}
