//! CIFAR-style ResNet-18/34/50 (He et al. 2016): 3x3 stem convolution, no max-pool, four stages;
//! HybReNets (DeepReShape) are ResNet-18's layout with stage widths `m, A m, A B m, A B C m`.
//! Blocks per stage and the stem stride (DeepReDuce's resolution reshaping) come from the spec.
//!
//! Module paths follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`,
//! `fc`); activation sites are `act1` (stem) and `layerS.B.actK`, the last one of each block
//! applied after the residual addition.
//!
//! "Making Models Shallow Again" (gated branching): a gated block also carries a shallow branch
//! `layerS.B.gb.{conv,bn}`, one conv-BN from the block's input to its output shape with no
//! nonlinearity, and computes `gate * f_GB(x) + (1 - gate) * f_MB(x) + shortcut(x)` before its
//! last site; a shallow block has lost its main branch (and the sites inside it). An auxiliary
//! classifier ([`super::auxiliary`]) reads the output of one stage.

use super::auxiliary::AuxClassifier;
use super::forward::Forward;
use super::layers::{global_avg_pool, path_name, ConvBn, Linear};
use super::site::SiteKind;
use super::spec::{Arch, ModelSpec};
use super::{GraphNode, Net, State};
use tch::nn::Path;

/// A residual block: a main branch of conv-BN units (an activation site after every unit but the
/// last), optionally a shallow branch, a shortcut, the addition and the block's last site.
#[derive(Debug)]
struct Block {
    name: String,
    /// The main branch's units; empty in a shallow block.
    main: Vec<ConvBn>,
    /// The shallow branch of a gated or shallow block.
    branch: Option<ConvBn>,
    down: Option<ConvBn>,
    /// Sites of the remaining parts in order; the last follows the residual addition.
    sites: Vec<String>,
}

fn downsample(p: &Path, cin: i64, cout: i64, stride: i64) -> Option<ConvBn> {
    (stride != 1 || cin != cout).then(|| {
        ConvBn::new(
            p / "downsample" / 0,
            p / "downsample" / 1,
            cin,
            cout,
            1,
            stride,
        )
    })
}

/// Which branches a block has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Branches {
    Main,
    Gated,
    Shallow,
}

impl Block {
    /// A basic (two 3x3 units) or bottleneck (1x1, 3x3, 1x1) block with the given branches; the
    /// shallow branch's kernel is `kernel`.
    fn new(
        p: Path,
        cin: i64,
        planes: i64,
        stride: i64,
        bottleneck: bool,
        branches: Branches,
        kernel: i64,
    ) -> Self {
        let name = path_name(&p);
        let cout = if bottleneck { planes * 4 } else { planes };
        let units: Vec<(i64, i64, i64, i64)> = if bottleneck {
            vec![
                (cin, planes, 1, 1),
                (planes, planes, 3, stride),
                (planes, cout, 1, 1),
            ]
        } else {
            vec![(cin, planes, 3, stride), (planes, planes, 3, 1)]
        };
        let n = units.len();
        let main = if branches == Branches::Shallow {
            Vec::new()
        } else {
            units
                .iter()
                .enumerate()
                .map(|(k, &(ci, co, ks, st))| {
                    ConvBn::new(
                        &p / format!("conv{}", k + 1),
                        &p / format!("bn{}", k + 1),
                        ci,
                        co,
                        ks,
                        st,
                    )
                })
                .collect()
        };
        let branch = (branches != Branches::Main).then(|| {
            ConvBn::new(
                &p / "gb" / "conv",
                &p / "gb" / "bn",
                cin,
                cout,
                kernel,
                stride,
            )
        });
        let sites = if branches == Branches::Shallow {
            vec![format!("{name}.act{n}")]
        } else {
            (1..=n).map(|k| format!("{name}.act{k}")).collect()
        };
        Block {
            name,
            main,
            branch,
            down: downsample(&p, cin, cout, stride),
            sites,
        }
    }

    fn parts(&self) -> usize {
        self.sites.len()
    }

    /// Part `k` of the block: each part ends with one activation site.
    fn part(&self, k: usize, s: &mut State, f: &mut Forward) {
        if k == 0 {
            s.skip = Some(s.x.shallow_clone());
        }
        if k + 1 < self.parts() {
            let t = self.main[k].forward(&s.x, f);
            s.x = f.site(&self.sites[k], SiteKind::Block, &t);
            return;
        }
        let skip = s.skip.take().expect("block input saved by part 0");
        let main = self.main.last().map(|u| u.forward(&s.x, f));
        let branch = self.branch.as_ref().map(|b| b.forward(&skip, f));
        let out = match (main, branch) {
            (Some(m), None) => m,
            (None, Some(b)) => b,
            (Some(m), Some(b)) => {
                f.tap_branch(&self.name, &skip, &m);
                let g = f.gate();
                b * g + m * (1.0 - g)
            }
            (None, None) => unreachable!("a block has a main or a shallow branch"),
        };
        let sc = match &self.down {
            Some(d) => d.forward(&skip, f),
            None => skip,
        };
        s.x = f.site(self.sites.last().unwrap(), SiteKind::PostAdd, &(out + sc));
    }

    /// Appends the block's nodes reading value `x`; returns the block's output value. `None` for a
    /// gated block (two branches mixed by a training-time gate have no export).
    fn graph(&self, g: &mut Vec<GraphNode>, x: usize) -> Option<usize> {
        let push = |g: &mut Vec<GraphNode>, n: GraphNode| {
            g.push(n);
            g.len()
        };
        let h = match (&self.branch, self.main.is_empty()) {
            (Some(b), true) => push(g, b.node(x)),
            (None, false) => {
                let mut h = x;
                for (k, c) in self.main.iter().enumerate() {
                    h = push(g, c.node(h));
                    if k + 1 < self.main.len() {
                        h = push(
                            g,
                            GraphNode::Site {
                                input: h,
                                name: self.sites[k].clone(),
                            },
                        );
                    }
                }
                h
            }
            _ => return None,
        };
        let sc = match &self.down {
            Some(d) => push(g, d.node(x)),
            None => x,
        };
        let s = push(g, GraphNode::Add { inputs: [h, sc] });
        Some(push(
            g,
            GraphNode::Site {
                input: s,
                name: self.sites.last().unwrap().clone(),
            },
        ))
    }
}

#[derive(Debug)]
pub struct ResNet {
    stem: ConvBn,
    blocks: Vec<Block>,
    /// The main classifier (absent when the auxiliary classifier serves the model).
    fc: Option<Linear>,
    /// The auxiliary classifier and the index of the block it reads.
    aux: Option<(AuxClassifier, usize)>,
    serve_aux: bool,
    /// Segment i -> (block, part); segment 0 is the stem, then the AC's site if any, then the head.
    plan: Vec<(usize, usize)>,
}

impl ResNet {
    pub fn new(p: &Path, spec: &ModelSpec) -> Self {
        let (layers, mults) = match (spec.stage_blocks(), spec.arch.stage_multipliers()) {
            (Some(l), Some(m)) => (l, m),
            _ => unreachable!("ResNet::new called for {}", spec.arch),
        };
        let bottleneck = spec.arch == Arch::Resnet50;
        let expansion = if bottleneck { 4 } else { 1 };
        let base = spec.ch(64);
        let stem = ConvBn::new(p / "conv1", p / "bn1", 3, base, 3, spec.stem_stride);
        let serve_aux = matches!(&spec.aux, Some(a) if a.serve);
        let mut blocks = Vec::new();
        let mut aux = None;
        let mut cin = base;
        for (stage, &n) in layers.iter().enumerate() {
            // ResNets: round(64 x 2^s x width), as before; HybReNets: exact multiples of m.
            let planes = match spec.arch {
                Arch::Hrn { .. } => base * mults[stage],
                _ => spec.ch(64 * mults[stage]),
            };
            if let Some(a) = &spec.aux {
                if a.after == format!("layer{stage}") {
                    let head = AuxClassifier::new(p, cin, planes * expansion, spec.classes);
                    aux = Some((head, blocks.len() - 1));
                    if serve_aux {
                        break;
                    }
                }
            }
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let name = format!("layer{}.{b}", stage + 1);
                let branches = match spec.branch_of(&name) {
                    (true, _) => Branches::Gated,
                    (_, true) => Branches::Shallow,
                    _ => Branches::Main,
                };
                let bp = p / format!("layer{}", stage + 1) / b;
                blocks.push(Block::new(
                    bp,
                    cin,
                    planes,
                    stride,
                    bottleneck,
                    branches,
                    spec.shallow_kernel,
                ));
                cin = planes * expansion;
            }
        }
        let plan = blocks
            .iter()
            .enumerate()
            .flat_map(|(b, blk)| (0..blk.parts()).map(move |k| (b, k)))
            .collect();
        ResNet {
            stem,
            blocks,
            fc: (!serve_aux).then(|| Linear::new(p / "fc", cin, spec.classes)),
            aux,
            serve_aux,
            plan,
        }
    }
}

impl Net for ResNet {
    fn graph(&self) -> Option<Vec<GraphNode>> {
        let mut g = vec![self.stem.node(0)];
        g.push(GraphNode::Site {
            input: 1,
            name: "act1".into(),
        });
        let mut x = g.len();
        for b in &self.blocks {
            x = b.graph(&mut g, x)?;
        }
        match (&self.fc, &self.aux) {
            (Some(fc), _) => {
                g.push(GraphNode::GlobalAvgPool { input: x });
                g.push(GraphNode::Linear {
                    input: g.len(),
                    name: fc.describe().0.to_string(),
                });
            }
            (None, Some((head, _))) => head.graph(&mut g, x),
            (None, None) => unreachable!("a ResNet has a classifier"),
        }
        Some(g)
    }

    fn segments(&self) -> usize {
        self.plan.len() + 2 + usize::from(self.aux.is_some())
    }

    fn segment(&self, i: usize, s: &mut State, f: &mut Forward) {
        let n = self.plan.len();
        if i == 0 {
            let t = self.stem.forward(&s.x, f);
            s.x = f.site("act1", SiteKind::Stem, &t);
        } else if i <= n {
            let (b, k) = self.plan[i - 1];
            self.blocks[b].part(k, s, f);
            if let Some((_, at)) = &self.aux {
                if !self.serve_aux && b == *at && k + 1 == self.blocks[b].parts() {
                    s.aux = Some(s.x.shallow_clone());
                }
            }
        } else if let (true, Some((head, _))) = (i == n + 1, &self.aux) {
            if self.serve_aux {
                s.x = head.features(&s.x, f);
            } else {
                let a = s.aux.take().expect("the AC's input saved by its stage");
                s.aux = Some(head.features(&a, f));
            }
        } else {
            match (&self.fc, &self.aux) {
                (Some(fc), aux) => {
                    s.x = fc.forward(&global_avg_pool(&s.x), f);
                    if let (Some((head, _)), Some(a)) = (aux, s.aux.take()) {
                        let logits = head.logits(&a, f);
                        f.set_aux_logits(logits);
                    }
                }
                (None, Some((head, _))) => s.x = head.logits(&s.x, f),
                (None, None) => unreachable!("a ResNet has a classifier"),
            }
        }
    }
}
