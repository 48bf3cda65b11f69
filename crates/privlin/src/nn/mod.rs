//! Models with maskable activation sites.

pub mod auxiliary;
pub mod forward;
pub mod graph;
pub mod layers;
pub mod mask;
pub mod model;
pub mod removal;
pub mod resnet;
pub mod resnet9;
pub mod site;
pub mod spec;
pub mod vgg;
pub mod wrn;

pub use forward::{BranchTap, Forward, LayerInfo, LayerKind, Tap};
pub use mask::{MaskSet, SiteMask};
pub use model::{with_torch_seed, Model};
pub use site::{Activation, Granularity, SiteInfo, SiteKind};
pub use spec::{Arch, AuxHead, Convention, ModelSpec, Thin};

/// What passes between segments: the running activation and the saved input of the residual
/// branch that is open, if any.
#[derive(Debug)]
pub struct State {
    pub x: tch::Tensor,
    pub skip: Option<tch::Tensor>,
    /// The input of a trained (not served) auxiliary classifier, then its activated features.
    pub aux: Option<tch::Tensor>,
    /// Values of an imported graph that later segments still read ([`graph::GraphNet`]),
    /// by value index.
    pub live: Vec<(usize, tch::Tensor)>,
}

impl State {
    pub fn new(x: &tch::Tensor) -> Self {
        State {
            x: x.shallow_clone(),
            skip: None,
            aux: None,
            live: Vec::new(),
        }
    }

    pub fn shallow_clone(&self) -> Self {
        State {
            x: self.x.shallow_clone(),
            skip: self.skip.as_ref().map(|t| t.shallow_clone()),
            aux: self.aux.as_ref().map(|t| t.shallow_clone()),
            live: self
                .live
                .iter()
                .map(|(v, t)| (*v, t.shallow_clone()))
                .collect(),
        }
    }
}

/// A network whose every nonlinearity goes through [`Forward::site`], written as a sequence of
/// segments: segment `i < n_sites` ends with (and contains no site after) activation site `i`, the
/// last segment is the classifier head. A forward pass can therefore stop after any site and resume
/// from the saved [`State`]: coalitions that agree on their first `k` sites share that computation.
pub trait Net: std::fmt::Debug + Send {
    /// Number of segments (number of sites + 1).
    fn segments(&self) -> usize;
    /// Run segment `i` on `s` in place.
    fn segment(&self, i: usize, s: &mut State, f: &mut Forward);
    /// The network as a graph of weight layers, additions, pooling and sites (in site order), for
    /// export to private inference; `None` where an architecture has no exporter yet.
    fn graph(&self) -> Option<Vec<GraphNode>> {
        None
    }
}

/// Appends `conv-BN -> site [-> 2x2 max-pool]` reading value `x` (the unit of VGG and ResNet-9);
/// returns its output value.
pub fn unit_graph(
    g: &mut Vec<GraphNode>,
    cb: &layers::ConvBn,
    site: &str,
    pool: bool,
    x: usize,
) -> usize {
    g.push(cb.node(x));
    g.push(GraphNode::Site {
        input: g.len(),
        name: site.to_string(),
    });
    if pool {
        g.push(GraphNode::MaxPool {
            input: g.len(),
            kernel: 2,
            stride: 2,
        });
    }
    g.len()
}

/// A node of an exported graph. Value `0` is the input, node `i` produces value `i + 1`.
#[derive(Debug, Clone, PartialEq)]
pub enum GraphNode {
    /// Convolution (no bias) followed by batch norm, both named by module path.
    ConvBn {
        input: usize,
        conv: String,
        bn: String,
        stride: i64,
        padding: i64,
    },
    /// Convolution without batch norm after it (WRN's stem, second convolutions and shortcuts).
    Conv {
        input: usize,
        conv: String,
        stride: i64,
        padding: i64,
    },
    /// A batch norm that no convolution precedes directly (WRN's pre-activation batch norms).
    BatchNorm {
        input: usize,
        bn: String,
    },
    Linear {
        input: usize,
        name: String,
    },
    GlobalAvgPool {
        input: usize,
    },
    /// Max pooling (square windows, no padding); `kernel` = the map's side for a global one.
    MaxPool {
        input: usize,
        kernel: i64,
        stride: i64,
    },
    Add {
        inputs: [usize; 2],
    },
    Site {
        input: usize,
        name: String,
    },
}
