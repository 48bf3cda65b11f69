//! One forward pass: masks to apply, taps to collect, and an optional structural trace.
//!
//! Model code calls [`Forward::site`] at every nonlinearity and the layer wrappers of
//! [`super::layers`] call [`Forward::record_layer`]; methods (Shapley utilities, Taylor importance,
//! PRAM, distillation) choose masks and taps here without touching model code.

use super::mask::{MaskSet, SiteMask};
use super::site::{apply_mask, Activation, SiteInfo, SiteKind};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Pre- and post-activation tensors of one site.
#[derive(Debug)]
pub struct Tap {
    pub pre: Tensor,
    pub post: Tensor,
    /// A zero leaf tensor added to the site's output when the pass was made
    /// [`Forward::with_grad_probes`]: after `backward`, its `grad()` is `dL/da` per sample.
    pub probe: Option<Tensor>,
}

/// A weight layer seen by the trace: its MACs per image and its output shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub name: String,
    pub kind: LayerKind,
    pub out_shape: Vec<i64>,
    pub macs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    Conv,
    Linear,
}

/// What a traced forward pass (batch of one) learned about the model's structure.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    pub sites: Vec<SiteInfo>,
    pub layers: Vec<LayerInfo>,
    /// For each site, the last main-path weight layer recorded before it (residual shortcut
    /// convolutions skipped): the "preceding layer" of SENet's ReLU sensitivity.
    pub site_prev_layer: Vec<Option<usize>>,
}

/// State of one forward pass.
pub struct Forward<'a> {
    pub train: bool,
    act: Activation,
    masks: Option<&'a MaskSet>,
    taps: Option<Vec<Tap>>,
    probes: bool,
    trace: Option<Trace>,
    next_site: usize,
    /// Sites removed from the architecture (culled or thinned): the identity whatever the mask.
    removed: Vec<bool>,
    /// Gate of the shallow branches of gated blocks: `gate * f_GB + (1 - gate) * f_MB`.
    gate: f64,
    /// Logits of the auxiliary classifier, when the model trains one next to its main classifier.
    aux_logits: Option<Tensor>,
    /// Per gated block: (block, input of its shallow branch, output of its main branch).
    branch_taps: Option<Vec<BranchTap>>,
}

/// What a gated block's shallow branch reads and what its main branch produced (before the
/// residual addition), for fitting the one to the other.
#[derive(Debug)]
pub struct BranchTap {
    pub block: String,
    pub input: Tensor,
    pub main: Tensor,
}

impl<'a> Forward<'a> {
    pub fn new(act: Activation, train: bool) -> Self {
        Forward {
            train,
            act,
            masks: None,
            taps: None,
            probes: false,
            trace: None,
            next_site: 0,
            removed: Vec::new(),
            gate: 1.0,
            aux_logits: None,
            branch_taps: None,
        }
    }

    /// Collect the input of every gated block's shallow branch and its main branch's output.
    pub fn with_branch_taps(mut self) -> Self {
        self.branch_taps = Some(Vec::new());
        self
    }

    pub fn take_branch_taps(&mut self) -> Vec<BranchTap> {
        self.branch_taps.take().unwrap_or_default()
    }

    pub(crate) fn tap_branch(&mut self, block: &str, input: &Tensor, main: &Tensor) {
        if let Some(t) = self.branch_taps.as_mut() {
            t.push(BranchTap {
                block: block.to_string(),
                input: input.shallow_clone(),
                main: main.shallow_clone(),
            });
        }
    }

    /// Set the gate of gated blocks for this pass (0: main branches only, 1: shallow ones only).
    pub fn with_gate(mut self, gate: f64) -> Self {
        self.gate = gate;
        self
    }

    /// The gate of gated blocks in this pass.
    pub fn gate(&self) -> f64 {
        self.gate
    }

    /// Logits of the auxiliary classifier computed in this pass, if the model trains one.
    pub fn take_aux_logits(&mut self) -> Option<Tensor> {
        self.aux_logits.take()
    }

    pub(crate) fn set_aux_logits(&mut self, logits: Tensor) {
        self.aux_logits = Some(logits);
    }

    /// Make the sites flagged in `removed` the identity, whatever the masks say.
    pub fn with_removed(mut self, removed: &[bool]) -> Self {
        self.removed = removed.to_vec();
        self
    }

    /// Apply `masks` (aligned with the model's sites) during this pass.
    pub fn with_masks(mut self, masks: &'a MaskSet) -> Self {
        self.masks = Some(masks);
        self
    }

    /// Collect pre- and post-activation taps at every site.
    pub fn with_taps(mut self) -> Self {
        self.taps = Some(Vec::new());
        self
    }

    /// Collect taps with gradient probes: each site's output gets a zero leaf tensor added, so that
    /// the per-sample gradient of the loss with respect to the site's output can be read after the
    /// ordinary `backward` (tch exposes no `retain_grad`).
    pub fn with_grad_probes(mut self) -> Self {
        self.taps = Some(Vec::new());
        self.probes = true;
        self
    }

    pub(crate) fn with_trace(mut self) -> Self {
        self.trace = Some(Trace::default());
        self
    }

    /// The taps collected so far, in site order.
    pub fn take_taps(&mut self) -> Vec<Tap> {
        self.taps.take().unwrap_or_default()
    }

    pub(crate) fn take_trace(&mut self) -> Option<Trace> {
        self.trace.take()
    }

    /// Continue numbering sites from `site` (a pass resumed from a saved segment state).
    pub fn resume_at(&mut self, site: usize) {
        self.next_site = site;
    }

    /// The activation site `name`: `m * act(x) + (1 - m) * x` with this pass's mask for it.
    pub fn site(&mut self, name: &str, kind: SiteKind, x: &Tensor) -> Tensor {
        self.site_as(name, kind, self.act, x)
    }

    /// [`Forward::site`] with the site's own activation `act` instead of the model's (an
    /// imported `Clip(0, 6)` is a ReLU6 site in a ReLU model).
    pub fn site_as(&mut self, name: &str, kind: SiteKind, act: Activation, x: &Tensor) -> Tensor {
        let idx = self.next_site;
        self.next_site += 1;
        if let Some(trace) = self.trace.as_mut() {
            let s = x.size();
            let prev = trace.layers.iter().rposition(|l| {
                l.kind == LayerKind::Conv
                    && !l.name.contains("downsample")
                    && !l.name.contains("convShortcut")
            });
            trace.site_prev_layer.push(prev);
            trace.sites.push(SiteInfo {
                name: name.to_string(),
                shape: [s[1], s[2], s[3]],
                kind,
            });
        }
        let mask = if self.removed.get(idx).copied().unwrap_or(false) {
            &SiteMask::Identity
        } else {
            self.masks.map(|m| m.get(idx)).unwrap_or(&SiteMask::Keep)
        };
        let mut out = match mask {
            SiteMask::Keep => act.apply(x),
            SiteMask::Identity => x.shallow_clone(),
            SiteMask::Tensor(m) => apply_mask(act, x, m),
        };
        if let Some(taps) = self.taps.as_mut() {
            let probe = self.probes.then(|| {
                let p = Tensor::zeros_like(&out).set_requires_grad(true);
                out = &out + &p;
                p
            });
            taps.push(Tap {
                pre: x.shallow_clone(),
                post: out.shallow_clone(),
                probe,
            });
        }
        out
    }

    pub(crate) fn record_layer(&mut self, name: &str, kind: LayerKind, out: &Tensor, macs: i64) {
        if let Some(trace) = self.trace.as_mut() {
            trace.layers.push(LayerInfo {
                name: name.to_string(),
                kind,
                out_shape: out.size()[1..].to_vec(),
                macs,
            });
        }
    }

    pub(crate) fn tracing(&self) -> bool {
        self.trace.is_some()
    }
}
