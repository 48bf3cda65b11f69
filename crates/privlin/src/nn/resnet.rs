//! CIFAR-style ResNet-18/34/50 (He et al. 2016): 3x3 stem convolution, no max-pool, four stages;
//! HybReNets (DeepReShape) are ResNet-18's layout with stage widths `m, A m, A B m, A B C m`.
//! Blocks per stage and the stem stride (DeepReDuce's resolution reshaping) come from the spec.
//!
//! Module paths follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`,
//! `fc`); activation sites are `act1` (stem) and `layerS.B.actK`, the last one of each block
//! applied after the residual addition.

use super::forward::Forward;
use super::layers::{global_avg_pool, path_name, ConvBn, Linear};
use super::site::SiteKind;
use super::spec::{Arch, ModelSpec};
use super::{GraphNode, Net, State};
use tch::nn::Path;
use tch::Tensor;

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a handful of blocks per model, built once
enum Block {
    Basic {
        c1: ConvBn,
        c2: ConvBn,
        down: Option<ConvBn>,
        sites: Vec<String>,
    },
    Bottleneck {
        c1: ConvBn,
        c2: ConvBn,
        c3: ConvBn,
        down: Option<ConvBn>,
        sites: Vec<String>,
    },
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

impl Block {
    fn basic(p: Path, cin: i64, planes: i64, stride: i64) -> Self {
        let name = path_name(&p);
        Block::Basic {
            c1: ConvBn::new(&p / "conv1", &p / "bn1", cin, planes, 3, stride),
            c2: ConvBn::new(&p / "conv2", &p / "bn2", planes, planes, 3, 1),
            down: downsample(&p, cin, planes, stride),
            sites: vec![format!("{name}.act1"), format!("{name}.act2")],
        }
    }

    fn bottleneck(p: Path, cin: i64, planes: i64, stride: i64) -> Self {
        let name = path_name(&p);
        let cout = planes * 4;
        Block::Bottleneck {
            c1: ConvBn::new(&p / "conv1", &p / "bn1", cin, planes, 1, 1),
            c2: ConvBn::new(&p / "conv2", &p / "bn2", planes, planes, 3, stride),
            c3: ConvBn::new(&p / "conv3", &p / "bn3", planes, cout, 1, 1),
            down: downsample(&p, cin, cout, stride),
            sites: vec![
                format!("{name}.act1"),
                format!("{name}.act2"),
                format!("{name}.act3"),
            ],
        }
    }

    fn parts(&self) -> usize {
        match self {
            Block::Basic { .. } => 2,
            Block::Bottleneck { .. } => 3,
        }
    }

    /// Part `k` of the block: each part ends with one activation site.
    fn part(&self, k: usize, s: &mut State, f: &mut Forward) {
        let close = |down: &Option<ConvBn>, out: Tensor, s: &mut State, f: &mut Forward| {
            let skip = s.skip.take().expect("block input saved by part 0");
            let sc = match down {
                Some(d) => d.forward(&skip, f),
                None => skip,
            };
            out + sc
        };
        match (self, k) {
            (Block::Basic { c1, sites, .. }, 0) | (Block::Bottleneck { c1, sites, .. }, 0) => {
                s.skip = Some(s.x.shallow_clone());
                let t = c1.forward(&s.x, f);
                s.x = f.site(&sites[0], SiteKind::Block, &t);
            }
            (
                Block::Basic {
                    c2, down, sites, ..
                },
                1,
            ) => {
                let out = c2.forward(&s.x, f);
                let t = close(down, out, s, f);
                s.x = f.site(&sites[1], SiteKind::PostAdd, &t);
            }
            (Block::Bottleneck { c2, sites, .. }, 1) => {
                let t = c2.forward(&s.x, f);
                s.x = f.site(&sites[1], SiteKind::Block, &t);
            }
            (
                Block::Bottleneck {
                    c3, down, sites, ..
                },
                2,
            ) => {
                let out = c3.forward(&s.x, f);
                let t = close(down, out, s, f);
                s.x = f.site(&sites[2], SiteKind::PostAdd, &t);
            }
            _ => unreachable!("block part {k}"),
        }
    }
}

#[derive(Debug)]
pub struct ResNet {
    stem: ConvBn,
    blocks: Vec<Block>,
    fc: Linear,
    /// Segment i -> (block, part); segment 0 is the stem, the last one the head.
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
        let mut blocks = Vec::new();
        let mut cin = base;
        for (stage, &n) in layers.iter().enumerate() {
            // ResNets: round(64 x 2^s x width), as before; HybReNets: exact multiples of m.
            let planes = match spec.arch {
                Arch::Hrn { .. } => base * mults[stage],
                _ => spec.ch(64 * mults[stage]),
            };
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let bp = p / format!("layer{}", stage + 1) / b;
                blocks.push(if bottleneck {
                    Block::bottleneck(bp, cin, planes, stride)
                } else {
                    Block::basic(bp, cin, planes, stride)
                });
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
            fc: Linear::new(p / "fc", cin, spec.classes),
            plan,
        }
    }
}

impl Block {
    /// Appends the block's nodes reading value `x`; returns the block's output value.
    fn graph(&self, g: &mut Vec<GraphNode>, x: usize) -> usize {
        let push = |g: &mut Vec<GraphNode>, n: GraphNode| {
            g.push(n);
            g.len()
        };
        let (convs, down, sites): (Vec<&ConvBn>, _, _) = match self {
            Block::Basic {
                c1,
                c2,
                down,
                sites,
            } => (vec![c1, c2], down, sites),
            Block::Bottleneck {
                c1,
                c2,
                c3,
                down,
                sites,
            } => (vec![c1, c2, c3], down, sites),
        };
        let mut h = x;
        for (k, c) in convs.iter().enumerate() {
            h = push(g, c.node(h));
            if k + 1 < convs.len() {
                h = push(
                    g,
                    GraphNode::Site {
                        input: h,
                        name: sites[k].clone(),
                    },
                );
            }
        }
        let sc = match down {
            Some(d) => push(g, d.node(x)),
            None => x,
        };
        let s = push(g, GraphNode::Add { inputs: [h, sc] });
        push(
            g,
            GraphNode::Site {
                input: s,
                name: sites.last().unwrap().clone(),
            },
        )
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
            x = b.graph(&mut g, x);
        }
        g.push(GraphNode::GlobalAvgPool { input: x });
        let (name, _, _) = self.fc.describe();
        g.push(GraphNode::Linear {
            input: g.len(),
            name: name.to_string(),
        });
        Some(g)
    }

    fn segments(&self) -> usize {
        self.plan.len() + 2
    }

    fn segment(&self, i: usize, s: &mut State, f: &mut Forward) {
        if i == 0 {
            let t = self.stem.forward(&s.x, f);
            s.x = f.site("act1", SiteKind::Stem, &t);
        } else if i <= self.plan.len() {
            let (b, k) = self.plan[i - 1];
            self.blocks[b].part(k, s, f);
        } else {
            s.x = self.fc.forward(&global_avg_pool(&s.x), f);
        }
    }
}
