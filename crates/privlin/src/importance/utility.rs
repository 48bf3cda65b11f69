//! The utility of a coalition of sites: top-1 accuracy (percent) of the trained all-ReLU model on a
//! fixed utility set when the coalition's sites keep their nonlinearity and every other counted
//! site is the identity, weights untouched (PrivShap section 3.1). Two smooth utilities are options
//! of the game ([`UtilityKind`]): the negative cross-entropy with the labels and the negative KL
//! divergence from the all-ReLU model's predictions, both in nats per image; they vary with every
//! coalition where accuracy moves in steps of one image. [`ModelOracle::with_target_stderr`]
//! makes the image count adaptive: a coalition stops taking batches once the standard error of
//! its utility is at most the target.
//!
//! Coalitions are evaluated in site order: two coalitions that agree on the first `k` sites share
//! the forward computation up to site `k`. For every batch of the utility set the oracle keeps the
//! segment states of the previous coalition and resumes from the deepest one the next coalition
//! shares, so enumerating coalitions in lexicographic order recomputes about two segments per
//! coalition instead of all of them.

use super::game::Oracle;
use super::players::{site_keep, Player};
use super::shapley::mean_stderr;
use crate::data::Loader;
use crate::nn::{MaskSet, Model, SiteMask, State};
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::str::FromStr;
use tch::{Kind, Tensor};

/// What a coalition's utility measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UtilityKind {
    /// Top-1 accuracy, percent (PrivShap).
    Accuracy,
    /// `-CE(labels)`, nats per image.
    NegCrossEntropy,
    /// `-KL(all-ReLU model || coalition)`, nats per image.
    NegKl,
}

impl UtilityKind {
    pub fn name(self) -> &'static str {
        match self {
            UtilityKind::Accuracy => "accuracy",
            UtilityKind::NegCrossEntropy => "ce",
            UtilityKind::NegKl => "kl",
        }
    }

    /// The unit of U, for reports and plot axes.
    pub fn unit(self) -> &'static str {
        match self {
            UtilityKind::Accuracy => "accuracy in %",
            UtilityKind::NegCrossEntropy => "-cross-entropy in nats",
            UtilityKind::NegKl => "-KL to the all-ReLU model in nats",
        }
    }
}

impl FromStr for UtilityKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "accuracy" => UtilityKind::Accuracy,
            "ce" | "cross-entropy" => UtilityKind::NegCrossEntropy,
            "kl" => UtilityKind::NegKl,
            other => bail!("unknown utility `{other}` (accuracy, ce, kl)"),
        })
    }
}

pub struct ModelOracle<'m> {
    model: &'m Model,
    players: Vec<Player>,
    names: Vec<String>,
    /// The utility set, normalized, on the model's device.
    batches: Vec<(Tensor, Tensor)>,
    /// The all-ReLU model's log-probabilities per batch (KL utility only).
    teacher: Vec<Tensor>,
    kind: UtilityKind,
    /// Adaptive image count: stop a coalition once its utility's standard error is at most this.
    target_stderr: Option<f64>,
    /// Coalitions stacked into one forward pass past their shared prefix (1: one at a time).
    per_pass: usize,
    images: usize,
    /// Images evaluated over all coalitions, and images a full pass per coalition would take.
    pub images_run: u64,
    pub images_full: u64,
    /// Segments run, and segments a pass without prefix sharing would have run.
    pub segments_run: u64,
    pub segments_full: u64,
    pub show_progress: bool,
}

impl<'m> ModelOracle<'m> {
    pub fn new(model: &'m Model, players: Vec<Player>, utility_set: &Loader) -> Self {
        let batches: Vec<(Tensor, Tensor)> =
            utility_set.epoch(0).map(|b| (b.images, b.labels)).collect();
        let images = batches.iter().map(|b| b.1.size()[0] as usize).sum();
        ModelOracle {
            model,
            names: players.iter().map(|p| p.name.clone()).collect(),
            players,
            batches,
            teacher: Vec::new(),
            kind: UtilityKind::Accuracy,
            target_stderr: None,
            per_pass: 1,
            images,
            images_run: 0,
            images_full: 0,
            segments_run: 0,
            segments_full: 0,
            show_progress: false,
        }
    }

    /// Measure `kind` instead of accuracy.
    pub fn with_utility(mut self, kind: UtilityKind) -> Self {
        self.kind = kind;
        self.teacher = if kind == UtilityKind::NegKl {
            tch::no_grad(|| {
                self.batches
                    .iter()
                    .map(|(x, _)| self.model.forward(x, false).log_softmax(-1, Kind::Float))
                    .collect()
            })
        } else {
            Vec::new()
        };
        self
    }

    /// Adaptive image count: batches are taken in order until the standard error of the
    /// coalition's utility (over its images so far, at least two batches) is at most `target`.
    pub fn with_target_stderr(mut self, target: Option<f64>) -> Self {
        self.target_stderr = target.filter(|t| *t > 0.0);
        self
    }

    /// Batched evaluation: up to `k` coalitions that follow each other in site order share one
    /// forward pass past their common prefix, the batch of images repeated once per coalition
    /// and each site's mask a per-image keep flag. Fewer, larger kernels (what a GPU wants); on
    /// a CPU the repeated segments cost what they cost one at a time.
    pub fn with_coalitions_per_pass(mut self, k: usize) -> Self {
        self.per_pass = k.max(1);
        self
    }

    /// Per-image utilities of one batch's logits: summed value and summed square.
    fn batch_terms(&self, logits: &Tensor, labels: &Tensor, b: usize) -> (f64, f64) {
        let per: Tensor = match self.kind {
            UtilityKind::Accuracy => {
                logits
                    .argmax(-1, false)
                    .eq_tensor(labels)
                    .to_kind(Kind::Double)
                    * 100.0
            }
            // -CE = log p(label).
            UtilityKind::NegCrossEntropy => logits
                .log_softmax(-1, Kind::Float)
                .gather(1, &labels.unsqueeze(1), false)
                .squeeze_dim(1)
                .to_kind(Kind::Double),
            UtilityKind::NegKl => {
                let t = &self.teacher[b];
                -(t.exp() * (t - logits.log_softmax(-1, Kind::Float)))
                    .sum_dim_intlist(-1, false, Kind::Float)
                    .to_kind(Kind::Double)
            }
        };
        (
            per.sum(Kind::Double).double_value(&[]),
            (&per * &per).sum(Kind::Double).double_value(&[]),
        )
    }
}

/// The masks of `keeps.len()` coalitions stacked along the batch: a site every coalition keeps
/// (or drops) stays `Keep` (`Identity`); otherwise a `(k * batch, 1, 1, 1)` tensor of keep flags,
/// coalition `j` owning rows `j * batch ..`.
fn stacked_masks(keeps: &[&Vec<bool>], batch: usize, device: tch::Device) -> MaskSet {
    let n = keeps[0].len();
    let mut masks = MaskSet::coalition(keeps[0]);
    for site in 0..n {
        if keeps.iter().all(|k| k[site] == keeps[0][site]) {
            continue;
        }
        let flags: Vec<f32> = keeps
            .iter()
            .flat_map(|k| std::iter::repeat_n(if k[site] { 1.0 } else { 0.0 }, batch))
            .collect();
        let t = Tensor::from_slice(&flags)
            .view([-1, 1, 1, 1])
            .to_device(device);
        masks.set(site, SiteMask::Tensor(t));
    }
    masks
}

/// `s` repeated `k` times along the batch (a shallow clone when `k` is 1).
fn stack_state(s: &State, k: usize) -> State {
    if k == 1 {
        return s.shallow_clone();
    }
    let rep = |t: &Tensor| {
        let mut r = vec![1i64; t.dim()];
        r[0] = k as i64;
        t.repeat(r.as_slice())
    };
    State {
        x: rep(&s.x),
        skip: s.skip.as_ref().map(rep),
        aux: s.aux.as_ref().map(rep),
        live: s.live.iter().map(|(v, t)| (*v, rep(t))).collect(),
    }
}

fn common_prefix(a: &[bool], b: &[bool]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Oracle for ModelOracle<'_> {
    fn players(&self) -> &[String] {
        &self.names
    }

    fn evaluate(&mut self, coalitions: &[u64]) -> Result<Vec<f64>> {
        let model = self.model;
        let n_sites = model.sites().len();
        let n_seg = model.segments();
        // Site-order keep vectors, sorted lexicographically so neighbours share long prefixes.
        let mut order: Vec<(Vec<bool>, usize)> = coalitions
            .iter()
            .enumerate()
            .map(|(k, &c)| (site_keep(model, &self.players, c), k))
            .collect();
        order.sort();
        let pb = if self.show_progress && coalitions.len() * self.batches.len() > 50 {
            let pb = ProgressBar::new((coalitions.len() * self.batches.len()) as u64);
            pb.set_style(
                ProgressStyle::with_template(
                    "utilities [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
                )
                .expect("template"),
            );
            pb
        } else {
            ProgressBar::hidden()
        };
        // Per coalition: images seen, sum and sum of squares of the per-image utility.
        let mut acc = vec![(0usize, 0.0f64, 0.0f64); coalitions.len()];
        let mut live = order;
        tch::no_grad(|| {
            for (b, (images, labels)) in self.batches.iter().enumerate() {
                let bsz = labels.size()[0] as usize;
                if let Some(target) = self.target_stderr {
                    // Adaptive image count: coalitions whose utility is known well enough stop.
                    live.retain(|(_, k)| {
                        let (m, s, q) = acc[*k];
                        b < 2 || mean_stderr(s, q, m).1 > target
                    });
                }
                // states[k]: the state before segment k of the previous group's first coalition.
                let mut states: Vec<State> = vec![State::new(images)];
                let mut prev: Option<&Vec<bool>> = None;
                for group in live.chunks(self.per_pass) {
                    let first = &group[0].0;
                    // The group's common prefix runs once, with the first coalition's masks.
                    let common = group
                        .iter()
                        .map(|(keep, _)| common_prefix(first, keep))
                        .min()
                        .unwrap_or(n_sites)
                        .min(n_sites);
                    let shared = prev.map(|p| common_prefix(p, first)).unwrap_or(0);
                    let start = shared.min(states.len() - 1).min(common);
                    states.truncate(start + 1);
                    let mut s = states[start].shallow_clone();
                    let masks = MaskSet::coalition(first);
                    let mut f = model.pass(false).with_masks(&masks);
                    for seg in start..common {
                        model.run_segments(&mut s, seg..seg + 1, &mut f);
                        states.push(s.shallow_clone());
                    }
                    self.segments_run += common.saturating_sub(start) as u64;
                    // The rest runs for the whole group at once.
                    let from = common;
                    let keeps: Vec<&Vec<bool>> = group.iter().map(|(keep, _)| keep).collect();
                    let masks = stacked_masks(&keeps, bsz, images.device());
                    let mut f = model.pass(false).with_masks(&masks);
                    let mut s = stack_state(&s, group.len());
                    for seg in from..n_seg {
                        model.run_segments(&mut s, seg..seg + 1, &mut f);
                        if group.len() == 1 && seg < n_sites {
                            states.push(s.shallow_clone());
                        }
                    }
                    self.segments_run += (group.len() * (n_seg - from)) as u64;
                    let logits = s.x.chunk(group.len() as i64, 0);
                    for ((_, k), logits) in group.iter().zip(&logits) {
                        let (sum, sq) = self.batch_terms(logits, labels, b);
                        let a = &mut acc[*k];
                        a.0 += bsz;
                        a.1 += sum;
                        a.2 += sq;
                        self.images_run += bsz as u64;
                        pb.inc(1);
                    }
                    prev = Some(first);
                }
            }
        });
        self.segments_full += (coalitions.len() * n_seg * self.batches.len()) as u64;
        self.images_full += (coalitions.len() * self.images) as u64;
        pb.finish_and_clear();
        Ok(acc.iter().map(|&(m, s, _)| s / m.max(1) as f64).collect())
    }
}
