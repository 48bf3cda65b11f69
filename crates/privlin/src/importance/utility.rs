//! The utility of a coalition of sites: top-1 accuracy (percent) of the trained all-ReLU model on a
//! fixed utility set when the coalition's sites keep their nonlinearity and every other counted
//! site is the identity, weights untouched (PrivShap section 3.1).
//!
//! Coalitions are evaluated in site order: two coalitions that agree on the first `k` sites share
//! the forward computation up to site `k`. For every batch of the utility set the oracle keeps the
//! segment states of the previous coalition and resumes from the deepest one the next coalition
//! shares, so enumerating coalitions in lexicographic order recomputes about two segments per
//! coalition instead of all of them.

use super::game::Oracle;
use super::players::{site_keep, Player};
use crate::data::Loader;
use crate::nn::{MaskSet, Model, State};
use crate::train::losses::correct;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use tch::Tensor;

pub struct ModelOracle<'m> {
    model: &'m Model,
    players: Vec<Player>,
    names: Vec<String>,
    /// The utility set, normalized, on the model's device.
    batches: Vec<(Tensor, Tensor)>,
    images: usize,
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
            images,
            segments_run: 0,
            segments_full: 0,
            show_progress: false,
        }
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
        let mut hits = vec![0i64; coalitions.len()];
        tch::no_grad(|| {
            for (images, labels) in &self.batches {
                // states[k]: the state before segment k of the previous coalition.
                let mut states: Vec<State> = vec![State::new(images)];
                let mut prev: Option<&Vec<bool>> = None;
                for (keep, k) in &order {
                    let shared = prev.map(|p| common_prefix(p, keep)).unwrap_or(0);
                    let start = shared.min(states.len() - 1);
                    states.truncate(start + 1);
                    let masks = MaskSet::coalition(keep);
                    let mut f = model.pass(false).with_masks(&masks);
                    let mut s = states[start].shallow_clone();
                    for seg in start..n_seg {
                        model.run_segments(&mut s, seg..seg + 1, &mut f);
                        if seg < n_sites {
                            states.push(s.shallow_clone());
                        }
                    }
                    self.segments_run += (n_seg - start) as u64;
                    self.segments_full += n_seg as u64;
                    hits[*k] += correct(&s.x, labels).int64_value(&[]);
                    prev = Some(keep);
                    pb.inc(1);
                }
            }
        });
        pb.finish_and_clear();
        Ok(hits
            .iter()
            .map(|&h| 100.0 * h as f64 / self.images.max(1) as f64)
            .collect())
    }
}
