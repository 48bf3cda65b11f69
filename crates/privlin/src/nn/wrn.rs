//! Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016) with pre-activation blocks, as in the public
//! CIFAR code SNL and ReLUPruner build on: `conv1`, `blockS.layer.B.{bn1,relu1,conv1,bn2,relu2,
//! conv2,convShortcut}`, final `bn1` + `relu` (the final BN-ReLU site), `fc`. Widths
//! `16, 16k, 32k, 64k` (times the width multiplier), (d - 4) / 6 blocks per stage, no dropout.

use super::forward::Forward;
use super::layers::{global_avg_pool, path_name, BatchNorm, Conv, Linear};
use super::site::SiteKind;
use super::spec::{Arch, ModelSpec};
use super::{GraphNode, Net, State};
use tch::nn::Path;

#[derive(Debug)]
struct PreActBlock {
    bn1: BatchNorm,
    conv1: Conv,
    bn2: BatchNorm,
    conv2: Conv,
    shortcut: Option<Conv>,
    sites: [String; 2],
}

impl PreActBlock {
    fn new(p: Path, cin: i64, cout: i64, stride: i64) -> Self {
        let name = path_name(&p);
        PreActBlock {
            bn1: BatchNorm::new(&p / "bn1", cin),
            conv1: Conv::new(&p / "conv1", cin, cout, 3, stride, 1),
            bn2: BatchNorm::new(&p / "bn2", cout),
            conv2: Conv::new(&p / "conv2", cout, cout, 3, 1, 1),
            shortcut: (cin != cout || stride != 1)
                .then(|| Conv::new(&p / "convShortcut", cin, cout, 1, stride, 0)),
            sites: [format!("{name}.relu1"), format!("{name}.relu2")],
        }
    }

    /// Appends the block's nodes reading value `x`; returns the block's output value.
    fn graph(&self, g: &mut Vec<GraphNode>, x: usize) -> usize {
        g.push(self.bn1.node(x));
        g.push(GraphNode::Site {
            input: g.len(),
            name: self.sites[0].clone(),
        });
        let pre = g.len();
        g.push(GraphNode::ConvBn {
            input: pre,
            conv: self.conv1.describe().0.to_string(),
            bn: self.bn2.name.clone(),
            stride: self.conv1.describe().1,
            padding: self.conv1.describe().2,
        });
        g.push(GraphNode::Site {
            input: g.len(),
            name: self.sites[1].clone(),
        });
        g.push(self.conv2.node(g.len()));
        let h = g.len();
        let skip = match &self.shortcut {
            Some(sc) => {
                g.push(sc.node(pre));
                g.len()
            }
            None => x,
        };
        g.push(GraphNode::Add { inputs: [skip, h] });
        g.len()
    }

    /// Part 0: the pre-activation site; part 1: conv1, the second site, conv2 and the addition.
    fn part(&self, k: usize, s: &mut State, f: &mut Forward) {
        if k == 0 {
            let t = self.bn1.forward(&s.x, f);
            let pre = f.site(&self.sites[0], SiteKind::Block, &t);
            // Equal in/out: the shortcut is the raw input; otherwise a 1x1 conv of the activated input.
            s.skip = Some(if self.shortcut.is_some() {
                pre.shallow_clone()
            } else {
                s.x.shallow_clone()
            });
            s.x = pre;
        } else {
            let t = self.conv1.forward(&s.x, f);
            let t = self.bn2.forward(&t, f);
            let out = f.site(&self.sites[1], SiteKind::Block, &t);
            let out = self.conv2.forward(&out, f);
            let skip = s.skip.take().expect("block input saved by part 0");
            s.x = match &self.shortcut {
                Some(sc) => sc.forward(&skip, f) + out,
                None => skip + out,
            };
        }
    }
}

#[derive(Debug)]
pub struct Wrn {
    conv1: Conv,
    blocks: Vec<PreActBlock>,
    bn1: BatchNorm,
    fc: Linear,
}

impl Wrn {
    pub fn new(p: &Path, spec: &ModelSpec) -> Self {
        let Arch::Wrn { depth, k } = spec.arch else {
            unreachable!("Wrn::new called for {}", spec.arch)
        };
        let n = (depth - 4) / 6;
        let widths = [
            spec.ch(16),
            spec.ch(16 * k),
            spec.ch(32 * k),
            spec.ch(64 * k),
        ];
        let conv1 = Conv::new(p / "conv1", 3, widths[0], 3, 1, 1);
        let mut blocks = Vec::new();
        let mut cin = widths[0];
        for stage in 0..3 {
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let bp = p / format!("block{}", stage + 1) / "layer" / b;
                blocks.push(PreActBlock::new(bp, cin, widths[stage + 1], stride));
                cin = widths[stage + 1];
            }
        }
        Wrn {
            conv1,
            blocks,
            bn1: BatchNorm::new(p / "bn1", cin),
            fc: Linear::new(p / "fc", cin, spec.classes),
        }
    }
}

impl Net for Wrn {
    fn segments(&self) -> usize {
        2 * self.blocks.len() + 2
    }

    fn graph(&self) -> Option<Vec<GraphNode>> {
        let mut g = vec![self.conv1.node(0)];
        let mut x = 1;
        for b in &self.blocks {
            x = b.graph(&mut g, x);
        }
        g.push(self.bn1.node(x));
        g.push(GraphNode::Site {
            input: g.len(),
            name: "relu".into(),
        });
        g.push(GraphNode::GlobalAvgPool { input: g.len() });
        let (name, _, _) = self.fc.describe();
        g.push(GraphNode::Linear {
            input: g.len(),
            name: name.to_string(),
        });
        Some(g)
    }

    fn segment(&self, i: usize, s: &mut State, f: &mut Forward) {
        let n = 2 * self.blocks.len();
        if i == 0 {
            s.x = self.conv1.forward(&s.x, f);
        }
        if i < n {
            self.blocks[i / 2].part(i % 2, s, f);
        } else if i == n {
            let t = self.bn1.forward(&s.x, f);
            s.x = f.site("relu", SiteKind::Final, &t);
        } else {
            s.x = self.fc.forward(&global_avg_pool(&s.x), f);
        }
    }
}
