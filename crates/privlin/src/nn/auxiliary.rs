//! The auxiliary classifier (AC) of "Making Models Shallow Again" (Sec. 4, auxiliary knowledge
//! distillation): a head on an intermediate stage, after the self-distillation heads of Zhang et
//! al. (ICCV 2019) that the paper builds on, reduced to one unit so that it costs less than the
//! stage it replaces: conv-BN 3x3 of stride 2 to the next stage's width (the shape the skipped
//! stage would have produced), one activation site `aux.act1`, global average pooling and a linear
//! classifier. Names: `aux.conv`, `aux.bn`, `aux.fc`.

use super::forward::Forward;
use super::layers::{global_avg_pool, ConvBn, Linear};
use super::site::SiteKind;
use super::GraphNode;
use tch::nn::Path;
use tch::Tensor;

/// The AC's one activation site.
pub const AUX_SITE: &str = "aux.act1";

#[derive(Debug)]
pub struct AuxClassifier {
    unit: ConvBn,
    fc: Linear,
}

impl AuxClassifier {
    pub fn new(p: &Path, cin: i64, cout: i64, classes: i64) -> Self {
        let a = p / "aux";
        AuxClassifier {
            unit: ConvBn::new(&a / "conv", &a / "bn", cin, cout, 3, 2),
            fc: Linear::new(&a / "fc", cout, classes),
        }
    }

    /// The head's unit up to and including its site.
    pub fn features(&self, x: &Tensor, f: &mut Forward) -> Tensor {
        let t = self.unit.forward(x, f);
        f.site(AUX_SITE, SiteKind::Block, &t)
    }

    /// Logits from the head's activated features.
    pub fn logits(&self, feats: &Tensor, f: &mut Forward) -> Tensor {
        self.fc.forward(&global_avg_pool(feats), f)
    }

    /// The head as exported graph nodes reading value `x` (the served model's classifier).
    pub fn graph(&self, g: &mut Vec<GraphNode>, x: usize) {
        g.push(self.unit.node(x));
        g.push(GraphNode::Site {
            input: g.len(),
            name: AUX_SITE.into(),
        });
        g.push(GraphNode::GlobalAvgPool { input: g.len() });
        g.push(GraphNode::Linear {
            input: g.len(),
            name: self.fc.describe().0.to_string(),
        });
    }
}
