//! VGG-11 / VGG-16 with batch norm, CIFAR variant (Simonyan & Zisserman 2015; the layout of the
//! common CIFAR code): `features.i` conv, `features.i+1` BN, `features.i+2` activation site,
//! max-pools between stages, one linear `classifier` on the flattened last feature map.

use super::forward::Forward;
use super::layers::{ConvBn, Linear};
use super::site::SiteKind;
use super::spec::{Arch, ModelSpec};
use super::{GraphNode, Net, State};
use tch::nn::Path;

/// One convolution unit: conv-BN-site, then a max-pool where the configuration has one.
#[derive(Debug)]
struct Unit {
    cb: ConvBn,
    site: String,
    pool: bool,
}

#[derive(Debug)]
pub struct Vgg {
    features: Vec<Unit>,
    classifier: Linear,
}

impl Vgg {
    pub fn new(p: &Path, spec: &ModelSpec) -> Self {
        const M: i64 = 0;
        let cfg: &[i64] = match spec.arch {
            Arch::Vgg11 => &[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
            Arch::Vgg16 => &[
                64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M,
            ],
            other => unreachable!("Vgg::new called for {other}"),
        };
        let features_p = p / "features";
        let mut features: Vec<Unit> = Vec::new();
        let (mut idx, mut cin) = (0i64, 3i64);
        for &c in cfg {
            if c == M {
                if let Some(last) = features.last_mut() {
                    last.pool = true;
                }
                idx += 1;
            } else {
                let cout = spec.ch(c);
                let cb = ConvBn::new(&features_p / idx, &features_p / (idx + 1), cin, cout, 3, 1);
                features.push(Unit {
                    cb,
                    site: format!("features.{}", idx + 2),
                    pool: false,
                });
                idx += 3;
                cin = cout;
            }
        }
        let side = spec.input_size / 32;
        Vgg {
            features,
            classifier: Linear::new(p / "classifier", cin * side * side, spec.classes),
        }
    }
}

impl Net for Vgg {
    fn graph(&self) -> Option<Vec<GraphNode>> {
        let mut g = Vec::new();
        let mut x = 0;
        for u in &self.features {
            x = super::unit_graph(&mut g, &u.cb, &u.site, u.pool, x);
        }
        let (name, _, _) = self.classifier.describe();
        g.push(GraphNode::Linear {
            input: x,
            name: name.to_string(),
        });
        Some(g)
    }

    fn segments(&self) -> usize {
        self.features.len() + 1
    }

    fn segment(&self, i: usize, s: &mut State, f: &mut Forward) {
        match self.features.get(i) {
            Some(u) => {
                let t = u.cb.forward(&s.x, f);
                let y = f.site(&u.site, SiteKind::Block, &t);
                s.x = if u.pool {
                    y.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)
                } else {
                    y
                };
            }
            None => s.x = self.classifier.forward(&s.x.flatten(1, -1), f),
        }
    }
}
