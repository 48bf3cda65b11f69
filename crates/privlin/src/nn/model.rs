//! A built model: spec, parameters (a `tch` var store named like the PyTorch twin), network, and the
//! structure (sites, weight layers, MACs) traced from one forward pass at the model's input size.

use super::forward::{Forward, LayerInfo, Trace};
use super::mask::MaskSet;
use super::site::SiteInfo;
use super::spec::{Arch, ModelSpec};
use super::{graph, resnet, resnet9, vgg, wrn, Net, State};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

pub struct Model {
    pub spec: ModelSpec,
    pub vs: nn::VarStore,
    net: Box<dyn Net>,
    trace: Trace,
    /// Per site: removed by DeepReDuce culling or thinning ([`super::removal`]).
    removed: Vec<bool>,
    /// The gate of gated blocks in every pass this model makes ([`Model::set_gate`]).
    gate: std::cell::Cell<f64>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// libtorch draws parameter initializations from one generator for the whole process, so a seed
/// set by one thread is consumed by whichever thread builds next. Every draw privlin makes from it
/// (building a model, [`with_torch_seed`]) holds this lock, which makes a seeded build reproducible
/// while other threads (parallel tests, a pool of workers) build or seed models of their own.
static TORCH_GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn torch_generator() -> std::sync::MutexGuard<'static, ()> {
    // A panic while the lock was held leaves no state behind it to repair.
    TORCH_GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Run `f` with libtorch's global generator seeded with `seed` and held by this thread, so the
/// random tensors `f` draws depend on `seed` alone. `f` must not build a [`Model`] (that takes the
/// same lock): use [`Model::seeded`] for that.
pub fn with_torch_seed<T>(seed: u64, f: impl FnOnce() -> T) -> T {
    let _held = torch_generator();
    tch::manual_seed(seed as i64);
    f()
}

impl Model {
    /// Build `spec` on `device` with freshly initialized parameters drawn from wherever the global
    /// generator stands: for weights that are overwritten (a checkpoint about to be loaded). Use
    /// [`Model::seeded`] for reproducible initial weights.
    pub fn new(spec: ModelSpec, device: Device) -> Result<Self> {
        let _held = torch_generator();
        Self::build(spec, device)
    }

    /// Build `spec` on `device` with parameters initialized from `seed`: the same seed gives the
    /// same weights whatever other threads build or draw meanwhile.
    pub fn seeded(spec: ModelSpec, device: Device, seed: u64) -> Result<Self> {
        let _held = torch_generator();
        tch::manual_seed(seed as i64);
        Self::build(spec, device)
    }

    fn build(spec: ModelSpec, device: Device) -> Result<Self> {
        spec.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let net: Box<dyn Net> = match spec.arch {
            Arch::Resnet9 => Box::new(resnet9::ResNet9::new(&root, &spec)),
            Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 | Arch::Hrn { .. } => {
                Box::new(resnet::ResNet::new(&root, &spec))
            }
            Arch::Vgg11 | Arch::Vgg16 => Box::new(vgg::Vgg::new(&root, &spec)),
            Arch::Wrn { .. } => Box::new(wrn::Wrn::new(&root, &spec)),
            Arch::Graph => Box::new(graph::GraphNet::new(
                &root,
                spec.graph.as_deref().expect("checked by validate"),
            )),
        };
        let mut model = Model {
            spec,
            vs,
            net,
            trace: Trace::default(),
            removed: Vec::new(),
            gate: std::cell::Cell::new(1.0),
        };
        let probe = Tensor::zeros(model.input_shape(1), (Kind::Float, device));
        let mut f = Forward::new(model.spec.activation, false).with_trace();
        let _ = tch::no_grad(|| model.forward_with(&probe, &mut f));
        model.trace = f.take_trace().expect("trace requested");
        model.removed = super::removal::removed_sites(&model.spec, &model.trace.sites)?;
        Ok(model)
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn input_shape(&self, batch: i64) -> [i64; 4] {
        [batch, 3, self.spec.input_size, self.spec.input_size]
    }

    /// Activation sites in forward order.
    pub fn sites(&self) -> &[SiteInfo] {
        &self.trace.sites
    }

    /// Weight layers (convolutions, linear) in forward order, with MACs per image.
    pub fn layers(&self) -> &[LayerInfo] {
        &self.trace.layers
    }

    /// MACs per image of the served model: the layers of an auxiliary classifier that is only
    /// trained do not count, nor, in a gated block, the branch that is on its way out (the main
    /// one).
    pub fn macs_total(&self) -> i64 {
        self.layers()
            .iter()
            .filter(|l| self.serves_layer(&l.name))
            .map(|l| l.macs)
            .sum()
    }

    /// Whether weight layer `name` belongs to the model as served: not part of a trained-only
    /// auxiliary classifier.
    pub fn serves_layer(&self, name: &str) -> bool {
        !(self.spec.aux_training() && name.starts_with("aux."))
    }

    /// Set the gate of gated blocks for every later pass: 0 runs the main branches, 1 the shallow
    /// ones ("Making Models Shallow Again", gated branching).
    pub fn set_gate(&self, gate: f64) {
        self.gate.set(gate);
    }

    pub fn gate(&self) -> f64 {
        self.gate.get()
    }

    /// Depth in weight layers on the longest input-to-output path of the served model (stem,
    /// main-branch convolutions, classifier), and the paper's "layer depth": the convolutions on
    /// that path inside residual blocks ("Making Models Shallow Again", Tables 1-2: 16 for
    /// ResNet-18, 18 for WRN-22-8). `None` for architectures without an export graph, or gated.
    pub fn depth(&self) -> Option<(usize, usize)> {
        let g = self.graph()?;
        // Longest path over values: value 0 is the input, node i produces value i + 1.
        let mut all = vec![0usize; g.len() + 1];
        let mut body = vec![0usize; g.len() + 1];
        for (i, n) in g.iter().enumerate() {
            use super::GraphNode as N;
            let (inputs, weight, name): (Vec<usize>, bool, Option<&str>) = match n {
                N::ConvBn { input, conv, .. } | N::Conv { input, conv, .. } => {
                    (vec![*input], true, Some(conv.as_str()))
                }
                N::Linear { input, .. } => (vec![*input], true, None),
                N::BatchNorm { input, .. }
                | N::GlobalAvgPool { input }
                | N::MaxPool { input, .. }
                | N::Site { input, .. } => (vec![*input], false, None),
                N::Add { inputs } => (inputs.to_vec(), false, None),
            };
            let in_block = name.is_some_and(|c| {
                (c.starts_with("layer") || c.starts_with("block")) && c.matches('.').count() >= 2
            });
            all[i + 1] = inputs.iter().map(|&v| all[v]).max().unwrap_or(0) + usize::from(weight);
            body[i + 1] =
                inputs.iter().map(|&v| body[v]).max().unwrap_or(0) + usize::from(in_block);
        }
        Some((all[g.len()], body[g.len()]))
    }

    /// Whether site `idx` counts (and may be linearized) under the spec's convention; a site
    /// removed by culling or thinning never counts, nor the site of an auxiliary classifier that
    /// is trained but not served.
    pub fn counted(&self, idx: usize) -> bool {
        let site = &self.sites()[idx];
        !self.removed(idx)
            && self.spec.convention.counts(site.kind)
            && !(self.spec.aux_training() && site.name == super::auxiliary::AUX_SITE)
    }

    /// Whether site `idx` was removed from the architecture (DeepReDuce culling or thinning).
    pub fn removed(&self, idx: usize) -> bool {
        self.removed.get(idx).copied().unwrap_or(false)
    }

    /// Total ReLU count under the spec's counting convention.
    pub fn relu_count(&self) -> i64 {
        (0..self.sites().len())
            .filter(|&i| self.counted(i))
            .map(|i| self.sites()[i].count())
            .sum()
    }

    /// Masks that make every counted site the identity (uncounted sites keep their nonlinearity).
    pub fn all_linearized(&self) -> MaskSet {
        MaskSet::coalition(
            &(0..self.sites().len())
                .map(|i| !self.counted(i))
                .collect::<Vec<_>>(),
        )
    }

    /// Plain forward pass (every site keeps its nonlinearity).
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_with(x, &mut self.pass(train))
    }

    pub fn forward_masked(&self, x: &Tensor, train: bool, masks: &MaskSet) -> Tensor {
        self.forward_with(x, &mut self.pass(train).with_masks(masks))
    }

    /// Forward pass with caller-controlled masks and taps.
    pub fn forward_with(&self, x: &Tensor, f: &mut Forward) -> Tensor {
        let mut s = State::new(x);
        self.run_segments(&mut s, 0..self.net.segments(), f);
        s.x
    }

    /// Number of forward segments: one per site, then the head.
    pub fn segments(&self) -> usize {
        self.net.segments()
    }

    /// Run segments `range` on `s`: segment `i < sites().len()` ends with site `i`, so a pass can be
    /// stopped after any site and resumed from the saved state.
    pub fn run_segments(&self, s: &mut State, range: std::ops::Range<usize>, f: &mut Forward) {
        f.resume_at(range.start);
        for i in range {
            self.net.segment(i, s, f);
        }
    }

    /// The main-path weight layer that feeds site `idx` (skipping residual shortcuts), if any.
    pub fn preceding_layer(&self, idx: usize) -> Option<&LayerInfo> {
        self.trace
            .site_prev_layer
            .get(idx)
            .copied()
            .flatten()
            .map(|l| &self.trace.layers[l])
    }

    /// A fresh [`Forward`] state for this model's activation.
    pub fn pass(&self, train: bool) -> Forward<'static> {
        Forward::new(self.spec.activation, train)
            .with_removed(&self.removed)
            .with_gate(self.gate.get())
    }

    /// Store the convolution weights channels-last when `channels_last` (the `train.channels_last`
    /// of every training stage: all-ReLU training, mask learning, fine-tuning); refused for a
    /// model with a convolution of fewer than 8 output channels. Measured on this project's CPU
    /// build of libtorch 2.11: a 3x3 stem with 4 output channels (width 0.0625) in channels-last
    /// layout stalls training (13 images/s instead of about 1,600) and with one thread ends in
    /// heap corruption; 8 channels run normally.
    pub fn use_channels_last(&mut self, channels_last: bool) -> Result<()> {
        if !channels_last {
            return Ok(());
        }
        let narrowest = self
            .layers()
            .iter()
            .filter(|l| l.kind == super::LayerKind::Conv)
            .map(|l| l.out_shape[0])
            .min()
            .unwrap_or(8);
        if narrowest < 8 {
            bail!(
                "train.channels_last = true with a {narrowest}-channel convolution: libtorch's CPU convolution stalls (and can corrupt memory) in that layout below 8 channels; set channels_last = false for this width"
            );
        }
        self.to_channels_last();
        Ok(())
    }

    /// Store every 4-D parameter (convolution weights) in channels-last layout.
    pub fn to_channels_last(&mut self) {
        tch::no_grad(|| {
            for (_, mut t) in self.vs.variables() {
                if t.dim() == 4 {
                    let cl = super::layers::to_channels_last(&t);
                    t.set_data(&cl);
                }
            }
        });
    }

    /// The network as an export graph (`None` for architectures without an exporter).
    pub fn graph(&self) -> Option<Vec<super::GraphNode>> {
        self.net.graph()
    }

    /// Parameters and buffers by name, sorted.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn num_parameters(&self) -> i64 {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// Save parameters and BN buffers as safetensors (PyTorch state-dict names), atomically.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        let named: Vec<(String, Tensor)> = self
            .named_tensors()
            .into_iter()
            .map(|(n, t)| {
                (
                    n,
                    t.detach()
                        .to_device(Device::Cpu)
                        .to_kind(Kind::Float)
                        .contiguous(),
                )
            })
            .collect();
        crate::io::atomic_write_with(path, |tmp| {
            Tensor::write_safetensors(&named, tmp).map_err(Into::into)
        })
    }

    /// Load weights saved by [`Model::save_weights`] or exported from the PyTorch twin
    /// (`num_batches_tracked` buffers are ignored). Refuses a file that does not match this
    /// architecture, naming the first tensor that differs; the model is left untouched then.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        let file: HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .with_context(|| {
                format!(
                    "reading checkpoint {} (truncated or not a safetensors file?)",
                    path.display()
                )
            })?
            .into_iter()
            .collect();
        self.load_named(file, &path.display().to_string())
    }

    /// Load named tensors (from `origin`, used in messages) after checking that names and shapes
    /// match this model exactly; nothing is changed when they do not.
    pub fn load_named(&mut self, file: HashMap<String, Tensor>, origin: &str) -> Result<()> {
        let file: HashMap<String, Tensor> = file
            .into_iter()
            .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
            .collect();
        let ours = self.named_tensors();
        let desc = format!(
            "{} (width {}, {} classes{})",
            self.spec.arch,
            self.spec.width,
            self.spec.classes,
            match &self.spec.blocks {
                Some(b) => format!(", blocks {b:?}"),
                None => String::new(),
            }
        );
        for (name, t) in &ours {
            match file.get(name) {
                None => bail!(
                    "checkpoint {} does not match {desc}: it lacks tensor `{name}`",
                    origin
                ),
                Some(src) if src.size() != t.size() => bail!(
                    "checkpoint {} does not match {desc}: tensor `{name}` has shape {:?}, the model expects {:?}",
                    origin,
                    src.size(),
                    t.size()
                ),
                Some(_) => {}
            }
        }
        if file.len() != ours.len() {
            let known: std::collections::HashSet<&String> = ours.iter().map(|(n, _)| n).collect();
            let mut extra: Vec<&String> = file.keys().filter(|n| !known.contains(n)).collect();
            extra.sort();
            bail!(
                "checkpoint {} does not match {desc}: it has tensor `{}` that the model does not",
                origin,
                extra[0]
            );
        }
        tch::no_grad(|| {
            for (name, mut t) in ours {
                let src = &file[&name];
                t.copy_(&src.to_kind(t.kind()).to_device(t.device()));
            }
        });
        Ok(())
    }
}
