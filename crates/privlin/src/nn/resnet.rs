//! CIFAR-style ResNet-18/34/50 (He et al. 2016): 3x3 stem convolution, no max-pool, four stages.
//!
//! Module paths follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`,
//! `fc`); activation sites are `act1` (stem) and `layerS.B.actK`, the last one of each block
//! applied after the residual addition.

use super::forward::Forward;
use super::layers::{global_avg_pool, path_name, ConvBn, Linear};
use super::site::SiteKind;
use super::spec::{Arch, ModelSpec};
use super::Net;
use tch::nn::Path;
use tch::Tensor;

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a handful of blocks per model, built once
enum Block {
    Basic {
        c1: ConvBn,
        c2: ConvBn,
        down: Option<ConvBn>,
        sites: [String; 2],
    },
    Bottleneck {
        c1: ConvBn,
        c2: ConvBn,
        c3: ConvBn,
        down: Option<ConvBn>,
        sites: [String; 3],
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
            sites: [format!("{name}.act1"), format!("{name}.act2")],
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
            sites: [
                format!("{name}.act1"),
                format!("{name}.act2"),
                format!("{name}.act3"),
            ],
        }
    }

    fn forward(&self, x: &Tensor, f: &mut Forward) -> Tensor {
        let shortcut = |down: &Option<ConvBn>, f: &mut Forward| match down {
            Some(d) => d.forward(x, f),
            None => x.shallow_clone(),
        };
        match self {
            Block::Basic {
                c1,
                c2,
                down,
                sites,
            } => {
                let out = {
                    let t = c1.forward(x, f);
                    f.site(&sites[0], SiteKind::Block, &t)
                };
                let out = c2.forward(&out, f) + shortcut(down, f);
                f.site(&sites[1], SiteKind::PostAdd, &out)
            }
            Block::Bottleneck {
                c1,
                c2,
                c3,
                down,
                sites,
            } => {
                let out = {
                    let t = c1.forward(x, f);
                    f.site(&sites[0], SiteKind::Block, &t)
                };
                let out = {
                    let t = c2.forward(&out, f);
                    f.site(&sites[1], SiteKind::Block, &t)
                };
                let out = c3.forward(&out, f) + shortcut(down, f);
                f.site(&sites[2], SiteKind::PostAdd, &out)
            }
        }
    }
}

#[derive(Debug)]
pub struct ResNet {
    stem: ConvBn,
    blocks: Vec<Block>,
    fc: Linear,
}

impl ResNet {
    pub fn new(p: &Path, spec: &ModelSpec) -> Self {
        let (layers, bottleneck): ([i64; 4], bool) = match spec.arch {
            Arch::Resnet18 => ([2, 2, 2, 2], false),
            Arch::Resnet34 => ([3, 4, 6, 3], false),
            Arch::Resnet50 => ([3, 4, 6, 3], true),
            other => unreachable!("ResNet::new called for {other}"),
        };
        let expansion = if bottleneck { 4 } else { 1 };
        let base = spec.ch(64);
        let stem = ConvBn::new(p / "conv1", p / "bn1", 3, base, 3, 1);
        let mut blocks = Vec::new();
        let mut cin = base;
        for (stage, &n) in layers.iter().enumerate() {
            let planes = spec.ch(64 << stage);
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
        ResNet {
            stem,
            blocks,
            fc: Linear::new(p / "fc", cin, spec.classes),
        }
    }
}

impl Net for ResNet {
    fn forward(&self, x: &Tensor, f: &mut Forward) -> Tensor {
        let mut out = {
            let t = self.stem.forward(x, f);
            f.site("act1", SiteKind::Stem, &t)
        };
        for b in &self.blocks {
            out = b.forward(&out, f);
        }
        self.fc.forward(&global_avg_pool(&out), f)
    }
}
