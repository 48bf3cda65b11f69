//! Model specifications: architecture, width, activation, input size, classes, counting convention.

use super::site::{Activation, SiteKind};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The architectures of the model zoo (CIFAR-style stems: 3x3 convolution, no max-pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// The DAWNBench ResNet-9 (prep, layer1 + res1, layer2, layer3 + res3): 8 ReLU layers.
    Resnet9,
    Resnet18,
    Resnet34,
    Resnet50,
    Vgg11,
    Vgg16,
    /// Wide ResNet WRN-depth-k (pre-activation blocks).
    Wrn {
        depth: i64,
        k: i64,
    },
    /// HybReNet `hrn-AxBxCx` (DeepReShape): ResNet-18's layout (basic blocks, 3x3 stem, no
    /// max-pool) with stage widths `m, A m, A B m, A B C m`, `m = 64 x width`; the slides' alpha,
    /// beta and gamma are `A`, `B` and `C` (heterogeneous stage-wise channel scaling).
    Hrn {
        alpha: i64,
        beta: i64,
        gamma: i64,
    },
    /// A network imported from ONNX (`privlin import`): its graph is the spec's `graph`.
    Graph,
}

impl Arch {
    pub const NAMES: &'static str =
        "resnet9, resnet18, resnet34, resnet50, vgg11, vgg16, wrn-D-K (e.g. wrn-22-8), hrn-AxBxCx (e.g. hrn-5x7x2x)";

    /// The ResNet family built by `nn::resnet` (stages `layer1..4`, a 3x3 stem).
    pub fn is_resnet(&self) -> bool {
        self.default_blocks().is_some()
    }

    /// Residual blocks per stage of a ResNet-family architecture.
    pub fn default_blocks(&self) -> Option<[i64; 4]> {
        match self {
            Arch::Resnet18 | Arch::Hrn { .. } => Some([2, 2, 2, 2]),
            Arch::Resnet34 | Arch::Resnet50 => Some([3, 4, 6, 3]),
            _ => None,
        }
    }

    /// Stage width multipliers relative to the stem width `m`: `1, 2, 4, 8` for ResNets,
    /// `1, A, A B, A B C` for HybReNets.
    pub fn stage_multipliers(&self) -> Option<[i64; 4]> {
        match *self {
            Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 => Some([1, 2, 4, 8]),
            Arch::Hrn { alpha, beta, gamma } => {
                Some([1, alpha, alpha * beta, alpha * beta * gamma])
            }
            _ => None,
        }
    }
}

/// Parses `hrn-AxBxCx` (the trailing `x` optional): three positive integer multipliers.
fn parse_hrn(rest: &str, original: &str) -> Result<Arch> {
    let body = rest.trim_start_matches('-');
    let body = body.strip_suffix('x').unwrap_or(body);
    let parts: Vec<&str> = body.split('x').collect();
    if parts.len() != 3 {
        bail!(
            "malformed HybReNet name `{original}`: expected hrn-AxBxCx with three stage multipliers (e.g. hrn-5x7x2x)"
        );
    }
    let mut m = [0i64; 3];
    for (k, p) in parts.iter().enumerate() {
        let v: i64 = p.parse().map_err(|_| {
            anyhow::anyhow!(
                "malformed HybReNet name `{original}`: multiplier `{p}` is not an integer (expected hrn-AxBxCx, e.g. hrn-5x7x2x)"
            )
        })?;
        if v < 1 {
            bail!(
                "HybReNet `{original}`: multiplier {} = {v} must be at least 1",
                ["alpha", "beta", "gamma"][k]
            );
        }
        m[k] = v;
    }
    Ok(Arch::Hrn {
        alpha: m[0],
        beta: m[1],
        gamma: m[2],
    })
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::Resnet9 => f.write_str("resnet9"),
            Arch::Resnet18 => f.write_str("resnet18"),
            Arch::Resnet34 => f.write_str("resnet34"),
            Arch::Resnet50 => f.write_str("resnet50"),
            Arch::Vgg11 => f.write_str("vgg11"),
            Arch::Vgg16 => f.write_str("vgg16"),
            Arch::Wrn { depth, k } => write!(f, "wrn-{depth}-{k}"),
            Arch::Hrn { alpha, beta, gamma } => write!(f, "hrn-{alpha}x{beta}x{gamma}x"),
            Arch::Graph => f.write_str("graph"),
        }
    }
}

impl FromStr for Arch {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let l = s.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match l.as_str() {
            "resnet9" | "resnet-9" => Arch::Resnet9,
            "resnet18" | "resnet-18" => Arch::Resnet18,
            "resnet34" | "resnet-34" => Arch::Resnet34,
            "resnet50" | "resnet-50" => Arch::Resnet50,
            "vgg11" | "vgg-11" | "vgg11-bn" | "vgg11bn" => Arch::Vgg11,
            "vgg16" | "vgg-16" | "vgg16-bn" | "vgg16bn" => Arch::Vgg16,
            "graph" => Arch::Graph,
            _ if l.starts_with("hrn") => return parse_hrn(&l[3..], s.trim()),
            _ => {
                let rest = l.strip_prefix("wrn").map(|r| r.trim_start_matches('-'));
                let parsed = rest.and_then(|r| {
                    let (d, k) = r.split_once('-')?;
                    Some((d.parse::<i64>().ok()?, k.parse::<i64>().ok()?))
                });
                match parsed {
                    Some((depth, k)) if (depth - 4) % 6 == 0 && depth >= 10 && k >= 1 => {
                        Arch::Wrn { depth, k }
                    }
                    Some((depth, _)) => {
                        bail!("WRN depth {depth} is not 6n+4 with n >= 1 (e.g. 16, 22, 28)")
                    }
                    None => bail!("unknown architecture `{s}`; known: {}", Arch::NAMES),
                }
            }
        })
    }
}

impl Serialize for Arch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Arch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which kinds of sites count as ReLUs (and are subject to linearization).
///
/// Public code disagrees on this and the choice moves the baseline count by 2-13 %
/// (`shared/docs/reference.md`): SNL, AutoReP and ReLUPruner leave the stem ReLU out; SNL leaves
/// WRN's final BN-ReLU out, ReLUPruner counts it; every one counts the ReLU after a residual
/// addition. Sites of an uncounted kind always keep their nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Convention {
    pub stem: bool,
    pub post_add: bool,
    #[serde(rename = "final")]
    pub final_relu: bool,
}

impl Default for Convention {
    fn default() -> Self {
        Convention::ALL
    }
}

impl Convention {
    /// Every nonlinearity counts.
    pub const ALL: Convention = Convention {
        stem: true,
        post_add: true,
        final_relu: true,
    };
    /// SNL / AutoReP: no stem ReLU, no final BN-ReLU.
    pub const SNL: Convention = Convention {
        stem: false,
        post_add: true,
        final_relu: false,
    };
    /// ReLUPruner: no stem ReLU, final BN-ReLU counted.
    pub const RELUPRUNER: Convention = Convention {
        stem: false,
        post_add: true,
        final_relu: true,
    };

    pub fn counts(&self, kind: SiteKind) -> bool {
        match kind {
            SiteKind::Stem => self.stem,
            SiteKind::Block => true,
            SiteKind::PostAdd => self.post_add,
            SiteKind::Final => self.final_relu,
        }
    }

    pub fn name(&self) -> String {
        match *self {
            Convention::ALL => "all".into(),
            Convention::SNL => "snl".into(),
            Convention::RELUPRUNER => "relupruner".into(),
            c => format!(
                "stem={},post_add={},final={}",
                c.stem, c.post_add, c.final_relu
            ),
        }
    }

    /// A one-line statement of the convention, printed with every count.
    pub fn describe(&self) -> String {
        let yn = |b: bool| if b { "counted" } else { "not counted" };
        format!(
            "convention `{}`: stem ReLU {}, post-addition ReLU {}, final BN-ReLU {}",
            self.name(),
            yn(self.stem),
            yn(self.post_add),
            yn(self.final_relu)
        )
    }
}

impl FromStr for Convention {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "all" => Convention::ALL,
            "snl" | "autorep" => Convention::SNL,
            "relupruner" => Convention::RELUPRUNER,
            other => {
                bail!("unknown counting convention `{other}` (expected all, snl or relupruner)")
            }
        })
    }
}

fn default_width() -> f64 {
    1.0
}
fn default_input() -> i64 {
    32
}
fn default_classes() -> i64 {
    10
}
fn one() -> i64 {
    1
}
pub(crate) fn is_one(v: &i64) -> bool {
    *v == 1
}

/// DeepReDuce's ReLU thinning: every other ReLU layer of a stage is removed. Sites are numbered
/// within their stage from 0; `Second` removes the odd ones, which in basic blocks is the ReLU
/// after the residual addition and keeps each block's first ReLU (DeepReDuce's published models);
/// `First` removes the even ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Thin {
    Second,
    First,
}

impl FromStr for Thin {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "second" | "post-add" | "post_add" | "deepreduce" => Thin::Second,
            "first" => Thin::First,
            other => bail!(
                "unknown thinning `{other}` (expected `second`: drop every second ReLU layer of a stage, the post-addition one in basic blocks, as DeepReDuce's models; or `first`)"
            ),
        })
    }
}

/// Everything needed to rebuild a model; stored as JSON next to every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub arch: Arch,
    /// Width multiplier on the architecture's channel counts (0.25 turns ResNet-18's 64 into 16).
    #[serde(default = "default_width")]
    pub width: f64,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_input")]
    pub input_size: i64,
    #[serde(default = "default_classes")]
    pub classes: i64,
    #[serde(default)]
    pub convention: Convention,
    /// Residual blocks per stage (ResNet family and HybReNets); `None`: the architecture's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<i64>>,
    /// Stride of the stem convolution (ResNet family): 2 halves every feature map, DeepReDuce's
    /// resolution reshaping.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub stem_stride: i64,
    /// Stages whose ReLU layers are removed from the architecture (DeepReDuce's culling): names as
    /// `privlin info` lists them (`stem`, `layer1`..`layer4`, `block1`.., or `s1`..); `stem`
    /// alone gives the model without a stem ReLU (SNL's and DeepReDuce's setting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cull: Vec<String>,
    /// DeepReDuce's thinning of the stages that remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thin: Option<Thin>,
    /// Residual blocks that carry a gated shallow branch next to their main branch ("Making
    /// Models Shallow Again", gated branching): `layer1.0` (ResNet family), `block1.layer.0` (WRN).
    /// The gate is a runtime value of the model ([`super::Model::set_gate`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gated: Vec<String>,
    /// Residual blocks reduced to their shallow branch: the main branch is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shallow: Vec<String>,
    /// Kernel of the shallow branch's convolution (odd; 3 halves a basic block's MACs).
    #[serde(
        default = "three",
        skip_serializing_if = "is_three",
        rename = "shallow_kernel"
    )]
    pub shallow_kernel: i64,
    /// The auxiliary classifier, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<AuxHead>,
    /// The imported network of `arch = "graph"` (`privlin import`): operations, shapes and
    /// parameter names; the weights are the checkpoint's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<Box<privlin_onnx::Graph>>,
}

fn three() -> i64 {
    3
}
fn is_three(v: &i64) -> bool {
    *v == 3
}

/// An auxiliary classifier (AC) after stage `after` ("Making Models Shallow Again", Sec. 4,
/// after the self-distillation heads of Zhang et al. 2019): conv-BN 3x3 of stride 2 to the next
/// stage's width, one activation site `aux.act1`, global average pooling and a linear layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuxHead {
    /// The stage the head reads (`layer3` of ResNet-18, `block2` of a WRN).
    pub after: String,
    /// The model answers from the AC and every stage after `after` is gone; otherwise the AC is
    /// trained next to the main classifier and neither counted nor exported.
    #[serde(default)]
    pub serve: bool,
}

impl ModelSpec {
    pub fn new(arch: Arch) -> Self {
        ModelSpec {
            arch,
            width: 1.0,
            activation: Activation::Relu,
            input_size: 32,
            classes: 10,
            convention: Convention::ALL,
            blocks: None,
            stem_stride: 1,
            cull: Vec::new(),
            thin: None,
            gated: Vec::new(),
            shallow: Vec::new(),
            shallow_kernel: 3,
            aux: None,
            graph: None,
        }
    }

    /// The spec of an imported graph: input size and classes from the graph.
    pub fn imported(graph: privlin_onnx::Graph) -> Self {
        let mut s = ModelSpec::new(Arch::Graph);
        s.input_size = graph.input_shape.get(1).copied().unwrap_or(0);
        s.classes = graph.classes();
        s.graph = Some(Box::new(graph));
        s
    }

    /// An imported graph's own checks: the graph is consistent, reads square RGB images of the
    /// spec's size, gives the spec's classes, and no zoo-only option is set.
    fn validate_graph(&self) -> Result<()> {
        let Some(g) = &self.graph else {
            bail!("arch `graph` without a graph: imported models come from `privlin import MODEL.onnx --out DIR`");
        };
        g.check()?;
        if g.input_shape != [3, self.input_size, self.input_size] {
            bail!(
                "the imported graph reads (batch, {:?}); privlin feeds square RGB images of input_size {} (batch, 3, {}, {})",
                g.input_shape,
                self.input_size,
                self.input_size,
                self.input_size
            );
        }
        if g.classes() != self.classes {
            bail!(
                "the imported graph gives {} outputs, the spec says {} classes",
                g.classes(),
                self.classes
            );
        }
        if self.width != 1.0 {
            bail!(
                "width {} on an imported graph: its channel counts are the graph's (width 1)",
                self.width
            );
        }
        if self.activation != Activation::Relu {
            bail!("activation `{:?}` on an imported graph: its sites are its own Relu and Clip(0, 6) nodes", self.activation);
        }
        let zoo_only = [
            ("blocks", self.blocks.is_some()),
            ("stem_stride", self.stem_stride != 1),
            ("cull", !self.cull.is_empty()),
            ("thin", self.thin.is_some()),
            ("gated", !self.gated.is_empty()),
            ("shallow", !self.shallow.is_empty()),
            ("aux", self.aux.is_some()),
        ];
        if let Some((what, _)) = zoo_only.iter().find(|(_, set)| *set) {
            bail!(
                "`{what}` needs a residual zoo model (resnet18/34/50, hrn-*, wrn-*); an imported graph has no stages or blocks that privlin knows of"
            );
        }
        if let Some(n) = g.nodes.iter().find(|n| {
            matches!(&n.op, privlin_onnx::Op::AvgPool { window, .. }
                if window.ceil && (window.pads[0] != window.pads[2] || window.pads[1] != window.pads[3]))
        }) {
            bail!("node `{}`: average pooling with asymmetric pads in ceil mode is not supported", n.name);
        }
        Ok(())
    }

    /// Residual block names in forward order (`layer2.1`, `block1.layer.0`); empty for
    /// architectures without residual blocks.
    pub fn block_names(&self) -> Vec<String> {
        if let Some(blocks) = self.stage_blocks() {
            let mut out = Vec::new();
            for (s, &n) in blocks.iter().enumerate() {
                for b in 0..n {
                    out.push(format!("layer{}.{b}", s + 1));
                }
            }
            return out;
        }
        if let Arch::Wrn { depth, .. } = self.arch {
            let n = (depth - 4) / 6;
            return (1..=3)
                .flat_map(|s| (0..n).map(move |b| format!("block{s}.layer.{b}")))
                .collect();
        }
        Vec::new()
    }

    /// Stage names of the residual body in forward order (`layer1`.., `block1`..).
    pub fn body_stages(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for b in self.block_names() {
            let st = b.split('.').next().unwrap_or("").to_string();
            if !out.contains(&st) {
                out.push(st);
            }
        }
        out
    }

    /// The stage a block belongs to (`layer2` for `layer2.1`).
    pub fn stage_of_block(block: &str) -> &str {
        block.split('.').next().unwrap_or(block)
    }

    /// Whether block `name` has a gated or a shallow branch: `(gated, shallow)`.
    pub fn branch_of(&self, name: &str) -> (bool, bool) {
        (
            self.gated.iter().any(|b| b == name),
            self.shallow.iter().any(|b| b == name),
        )
    }

    /// Whether the model has an auxiliary classifier that is trained but not served.
    pub fn aux_training(&self) -> bool {
        matches!(&self.aux, Some(a) if !a.serve)
    }

    /// Whether anything of "Making Models Shallow Again" changed the architecture.
    pub fn is_reshaped(&self) -> bool {
        !self.gated.is_empty() || !self.shallow.is_empty() || self.aux.is_some()
    }

    fn validate_reshape(&self) -> Result<()> {
        if !self.is_reshaped() {
            return Ok(());
        }
        let blocks = self.block_names();
        if blocks.is_empty() {
            bail!(
                "{} has no residual blocks: gated branching and the auxiliary classifier need a ResNet, HybReNet or WRN",
                self.arch
            );
        }
        if self.arch == Arch::Resnet50 && !(self.gated.is_empty() && self.shallow.is_empty()) {
            // A bottleneck's main branch costs 17 p^2 MACs per pixel (1x1 4p->p, 3x3 p->p,
            // 1x1 p->4p); one conv from its input to its output costs 16 p^2 k^2: 144 p^2 at
            // 3x3, 16 p^2 at 1x1. Gated branching saves nothing worth its accuracy there.
            bail!(
                "gated branching is refused for resnet50: a bottleneck block's main branch costs 17 p^2 MACs per pixel, one shallow conv from its input to its output 16 p^2 k^2 (144 p^2 at 3x3, 16 p^2 at 1x1), so the shallow block saves at most 6 % of the block's MACs; use basic-block ResNets (resnet18/34, hrn-*) or WRNs"
            );
        }
        for (what, list) in [("gated", &self.gated), ("shallow", &self.shallow)] {
            for b in list {
                if !blocks.contains(b) {
                    bail!(
                        "{what} block `{b}` does not exist in {}; its blocks are {}",
                        self.arch,
                        blocks.join(", ")
                    );
                }
                if list.iter().filter(|x| *x == b).count() > 1 {
                    bail!("{what} block `{b}` is listed twice");
                }
            }
        }
        if let Some(b) = self.gated.iter().find(|b| self.shallow.contains(b)) {
            bail!("block `{b}` is listed both as gated and as shallow");
        }
        if self.shallow_kernel < 1 || self.shallow_kernel % 2 == 0 || self.shallow_kernel > 7 {
            bail!(
                "shallow_kernel = {}: expected an odd kernel size from 1 to 7",
                self.shallow_kernel
            );
        }
        if let Some(a) = &self.aux {
            let stages = self.body_stages();
            let pos = stages.iter().position(|s| *s == a.after);
            match pos {
                Some(i) if i + 1 < stages.len() => {}
                Some(_) => bail!(
                    "auxiliary classifier after `{}`: that is the last stage, where the main classifier already is; choose one of {}",
                    a.after,
                    stages[..stages.len() - 1].join(", ")
                ),
                None => bail!(
                    "auxiliary classifier after `{}`: {} has no such stage; choose one of {}",
                    a.after,
                    self.arch,
                    stages[..stages.len() - 1].join(", ")
                ),
            }
            if a.serve {
                let cut = stages.iter().position(|s| *s == a.after).unwrap();
                if let Some(b) = self.gated.iter().chain(&self.shallow).find(|b| {
                    stages[cut + 1..]
                        .iter()
                        .any(|s| s == Self::stage_of_block(b))
                }) {
                    bail!("block `{b}` lies after the auxiliary classifier that serves the model, so it does not exist");
                }
            }
        }
        Ok(())
    }

    /// Residual blocks per stage (ResNet family): the spec's or the architecture's.
    pub fn stage_blocks(&self) -> Option<[i64; 4]> {
        let d = self.arch.default_blocks()?;
        Some(match &self.blocks {
            Some(b) if b.len() == 4 => [b[0], b[1], b[2], b[3]],
            _ => d,
        })
    }

    /// Scale a channel count by the width multiplier (at least one channel).
    pub fn ch(&self, c: i64) -> i64 {
        ((c as f64 * self.width).round() as i64).max(1)
    }

    pub fn validate(&self) -> Result<()> {
        if self.arch == Arch::Graph || self.graph.is_some() {
            if self.arch != Arch::Graph {
                bail!(
                    "a graph in the spec of arch `{}`: only `graph` models carry one",
                    self.arch
                );
            }
            return self.validate_graph();
        }
        if !(self.width > 0.0 && self.width.is_finite()) {
            bail!("width multiplier must be positive, got {}", self.width);
        }
        if self.classes < 1 {
            bail!("classes must be at least 1, got {}", self.classes);
        }
        if let Some(b) = &self.blocks {
            if self.arch.default_blocks().is_none() {
                bail!(
                    "blocks per stage can be set for resnet18/34/50 and hrn-* models, not for {}",
                    self.arch
                );
            }
            if b.len() != 4 || b.iter().any(|&n| n < 1) {
                bail!("blocks = {b:?}: expected four stage block counts, each at least 1");
            }
        }
        if self.stem_stride != 1 {
            if !self.arch.is_resnet() {
                bail!(
                    "stem stride {} (resolution reshaping) is supported for resnet18/34/50 and hrn-* models, not for {}",
                    self.stem_stride,
                    self.arch
                );
            }
            if !(1..=4).contains(&self.stem_stride) {
                bail!("stem stride {} must be 1, 2, 3 or 4", self.stem_stride);
            }
        }
        let min = match self.arch {
            Arch::Vgg11 | Arch::Vgg16 | Arch::Resnet9 => 32,
            _ => 8,
        };
        if self.input_size < min || self.input_size % 8 != 0 {
            bail!(
                "input size {} is not supported by {} (a multiple of 8, at least {min}; 32 and 64 are the usual)",
                self.input_size,
                self.arch
            );
        }
        self.validate_reshape()?;
        if self.input_size % (8 * self.stem_stride) != 0 {
            bail!(
                "resolution {}x{} with stem stride {} does not divide into the three stride-2 stages: the input size must be a multiple of {}",
                self.input_size,
                self.input_size,
                self.stem_stride,
                8 * self.stem_stride
            );
        }
        Ok(())
    }
}
