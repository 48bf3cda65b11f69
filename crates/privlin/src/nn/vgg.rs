//! VGG-11 / VGG-16 with batch norm, CIFAR variant (Simonyan & Zisserman 2015; the layout of the
//! common CIFAR code): `features.i` conv, `features.i+1` BN, `features.i+2` activation site,
//! max-pools between stages, one linear `classifier` on the flattened last feature map.

use super::forward::Forward;
use super::layers::{ConvBn, Linear};
use super::site::SiteKind;
use super::spec::{Arch, ModelSpec};
use super::Net;
use tch::nn::Path;
use tch::Tensor;

#[derive(Debug)]
enum Item {
    Conv(Box<ConvBn>, String),
    Pool,
}

#[derive(Debug)]
pub struct Vgg {
    features: Vec<Item>,
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
        let mut features = Vec::new();
        let (mut idx, mut cin) = (0i64, 3i64);
        for &c in cfg {
            if c == M {
                features.push(Item::Pool);
                idx += 1;
            } else {
                let cout = spec.ch(c);
                let cb = ConvBn::new(&features_p / idx, &features_p / (idx + 1), cin, cout, 3, 1);
                features.push(Item::Conv(Box::new(cb), format!("features.{}", idx + 2)));
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
    fn forward(&self, x: &Tensor, f: &mut Forward) -> Tensor {
        let mut x = x.shallow_clone();
        for item in &self.features {
            x = match item {
                Item::Conv(cb, site) => {
                    let t = cb.forward(&x, f);
                    f.site(site, SiteKind::Block, &t)
                }
                Item::Pool => x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false),
            };
        }
        self.classifier.forward(&x.flatten(1, -1), f)
    }
}
