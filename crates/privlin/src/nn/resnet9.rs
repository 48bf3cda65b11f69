//! ResNet-9 of the DAWNBench CIFAR-10 entries (the 8-ReLU-layer model of PrivShap Table 4):
//! `prep` conv-BN-act, `layer1` conv-BN-act-maxpool with the residual `res1` (two conv-BN-act),
//! `layer2` conv-BN-act-maxpool, `layer3` conv-BN-act-maxpool with the residual `res3`, global
//! max-pool, `fc`. Residual additions are not followed by an activation.

use super::forward::Forward;
use super::layers::{path_name, ConvBn, Linear};
use super::site::SiteKind;
use super::spec::ModelSpec;
use super::{GraphNode, Net, State};
use tch::nn::Path;
use tch::Tensor;

#[derive(Debug)]
struct Unit {
    cb: ConvBn,
    site: String,
    pool: bool,
}

impl Unit {
    fn new(p: Path, cin: i64, cout: i64, pool: bool) -> Self {
        Unit {
            site: format!("{}.act", path_name(&p)),
            cb: ConvBn::new(&p / "conv", &p / "bn", cin, cout, 3, 1),
            pool,
        }
    }

    /// Appends the unit's nodes reading value `x`; returns its output value.
    fn graph(&self, g: &mut Vec<GraphNode>, x: usize) -> usize {
        super::unit_graph(g, &self.cb, &self.site, self.pool, x)
    }

    fn forward(&self, x: &Tensor, kind: SiteKind, f: &mut Forward) -> Tensor {
        let y = {
            let t = self.cb.forward(x, f);
            f.site(&self.site, kind, &t)
        };
        if self.pool {
            y.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)
        } else {
            y
        }
    }
}

#[derive(Debug)]
pub struct ResNet9 {
    prep: Unit,
    layer1: Unit,
    res1: [Unit; 2],
    layer2: Unit,
    layer3: Unit,
    res3: [Unit; 2],
    fc: Linear,
    /// Side of the last feature map (the input's, halved by three max-pools).
    side: i64,
}

impl ResNet9 {
    pub fn new(p: &Path, spec: &ModelSpec) -> Self {
        let (c1, c2, c3, c4) = (spec.ch(64), spec.ch(128), spec.ch(256), spec.ch(512));
        ResNet9 {
            prep: Unit::new(p / "prep", 3, c1, false),
            layer1: Unit::new(p / "layer1", c1, c2, true),
            res1: [
                Unit::new(p / "res1" / 0, c2, c2, false),
                Unit::new(p / "res1" / 1, c2, c2, false),
            ],
            layer2: Unit::new(p / "layer2", c2, c3, true),
            layer3: Unit::new(p / "layer3", c3, c4, true),
            res3: [
                Unit::new(p / "res3" / 0, c4, c4, false),
                Unit::new(p / "res3" / 1, c4, c4, false),
            ],
            fc: Linear::new(p / "fc", c4, spec.classes),
            side: spec.input_size / 8,
        }
    }
}

impl ResNet9 {
    /// The units in forward order with their site kind.
    fn unit(&self, i: usize) -> (&Unit, SiteKind) {
        match i {
            0 => (&self.prep, SiteKind::Stem),
            1 => (&self.layer1, SiteKind::Block),
            2 | 3 => (&self.res1[i - 2], SiteKind::Block),
            4 => (&self.layer2, SiteKind::Block),
            5 => (&self.layer3, SiteKind::Block),
            6 | 7 => (&self.res3[i - 6], SiteKind::Block),
            _ => unreachable!("unit {i}"),
        }
    }
}

impl Net for ResNet9 {
    fn segments(&self) -> usize {
        9
    }

    fn graph(&self) -> Option<Vec<GraphNode>> {
        let mut g = Vec::new();
        let mut x = 0;
        let mut skip = 0;
        for i in 0..8 {
            if i == 2 || i == 6 {
                skip = x;
            }
            x = self.unit(i).0.graph(&mut g, x);
            if i == 3 || i == 7 {
                g.push(GraphNode::Add { inputs: [x, skip] });
                x = g.len();
            }
        }
        // The global max-pool over the last map (4x4 at 32x32 inputs).
        let side = self.side;
        g.push(GraphNode::MaxPool {
            input: x,
            kernel: side,
            stride: side,
        });
        let (name, _, _) = self.fc.describe();
        g.push(GraphNode::Linear {
            input: g.len(),
            name: name.to_string(),
        });
        Some(g)
    }

    fn segment(&self, i: usize, s: &mut State, f: &mut Forward) {
        if i == 8 {
            let x = s.x.adaptive_max_pool2d([1, 1]).0.flatten(1, -1);
            s.x = self.fc.forward(&x, f);
            return;
        }
        let (unit, kind) = self.unit(i);
        if i == 2 || i == 6 {
            s.skip = Some(s.x.shallow_clone());
        }
        let y = unit.forward(&s.x, kind, f);
        s.x = match i {
            3 | 7 => y + s.skip.take().expect("residual input saved"),
            _ => y,
        };
    }
}
