//! Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016) with pre-activation blocks, as in the public
//! CIFAR code SNL and ReLUPruner build on: `conv1`, `blockS.layer.B.{bn1,relu1,conv1,bn2,relu2,
//! conv2,convShortcut}`, final `bn1` + `relu` (the final BN-ReLU site), `fc`. Widths
//! `16, 16k, 32k, 64k` (times the width multiplier), (d - 4) / 6 blocks per stage, no dropout.
//!
//! Gated branching ("Making Models Shallow Again"): the shallow branch `blockS.layer.B.gb.conv`
//! reads the pre-activated input as `conv1` does and replaces `conv1-bn2-relu2-conv2` (no batch
//! norm after it, as after `conv2`); a shallow block keeps only its pre-activation site.

use super::auxiliary::AuxClassifier;
use super::forward::Forward;
use super::layers::{global_avg_pool, path_name, BatchNorm, Conv, Linear};
use super::site::SiteKind;
use super::spec::{Arch, ModelSpec};
use super::{GraphNode, Net, State};
use tch::nn::Path;
use tch::Tensor;

#[derive(Debug)]
struct PreActBlock {
    name: String,
    bn1: BatchNorm,
    /// `conv1`, `bn2`, `conv2`: absent in a shallow block.
    main: Option<(Conv, BatchNorm, Conv)>,
    /// The shallow branch of a gated or shallow block.
    branch: Option<Conv>,
    shortcut: Option<Conv>,
    /// `relu1`, and `relu2` unless the block is shallow.
    sites: Vec<String>,
}

impl PreActBlock {
    fn new(p: Path, cin: i64, cout: i64, stride: i64, branch: (bool, bool), kernel: i64) -> Self {
        let name = path_name(&p);
        let (gated, shallow) = branch;
        PreActBlock {
            name: name.clone(),
            bn1: BatchNorm::new(&p / "bn1", cin),
            main: (!shallow).then(|| {
                (
                    Conv::new(&p / "conv1", cin, cout, 3, stride, 1),
                    BatchNorm::new(&p / "bn2", cout),
                    Conv::new(&p / "conv2", cout, cout, 3, 1, 1),
                )
            }),
            branch: (gated || shallow)
                .then(|| Conv::new(&p / "gb" / "conv", cin, cout, kernel, stride, kernel / 2)),
            shortcut: (cin != cout || stride != 1)
                .then(|| Conv::new(&p / "convShortcut", cin, cout, 1, stride, 0)),
            sites: if shallow {
                vec![format!("{name}.relu1")]
            } else {
                vec![format!("{name}.relu1"), format!("{name}.relu2")]
            },
        }
    }

    /// Appends the block's nodes reading value `x`; returns the block's output value (`None` for
    /// a gated block, which has no export).
    fn graph(&self, g: &mut Vec<GraphNode>, x: usize) -> Option<usize> {
        g.push(self.bn1.node(x));
        g.push(GraphNode::Site {
            input: g.len(),
            name: self.sites[0].clone(),
        });
        let pre = g.len();
        match (&self.main, &self.branch) {
            (Some((conv1, bn2, conv2)), None) => {
                g.push(GraphNode::ConvBn {
                    input: pre,
                    conv: conv1.describe().0.to_string(),
                    bn: bn2.name.clone(),
                    stride: conv1.describe().1,
                    padding: conv1.describe().2,
                });
                g.push(GraphNode::Site {
                    input: g.len(),
                    name: self.sites[1].clone(),
                });
                g.push(conv2.node(g.len()));
            }
            (None, Some(b)) => g.push(b.node(pre)),
            _ => return None,
        }
        let h = g.len();
        let skip = match &self.shortcut {
            Some(sc) => {
                g.push(sc.node(pre));
                g.len()
            }
            None => x,
        };
        g.push(GraphNode::Add { inputs: [skip, h] });
        Some(g.len())
    }

    fn parts(&self) -> usize {
        self.sites.len()
    }

    /// The block's output from the pre-activated input `pre` (main and/or shallow branch) and the
    /// saved shortcut input.
    fn close(&self, pre: &Tensor, s: &mut State, f: &mut Forward) -> Tensor {
        let main = self.main.as_ref().map(|(conv1, bn2, conv2)| {
            let t = conv1.forward(pre, f);
            let t = bn2.forward(&t, f);
            let out = f.site(&self.sites[1], SiteKind::Block, &t);
            conv2.forward(&out, f)
        });
        let branch = self.branch.as_ref().map(|b| b.forward(pre, f));
        let out = match (main, branch) {
            (Some(m), None) => m,
            (None, Some(b)) => b,
            (Some(m), Some(b)) => {
                f.tap_branch(&self.name, pre, &m);
                let g = f.gate();
                b * g + m * (1.0 - g)
            }
            (None, None) => unreachable!("a block has a main or a shallow branch"),
        };
        let skip = s.skip.take().expect("block input saved by part 0");
        match &self.shortcut {
            Some(sc) => sc.forward(&skip, f) + out,
            None => skip + out,
        }
    }

    /// Part 0: the pre-activation site (and, in a shallow block, the rest); part 1: conv1, the
    /// second site, conv2 and the addition.
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
            s.x = if self.parts() == 1 {
                self.close(&pre, s, f)
            } else {
                pre
            };
        } else {
            let pre = s.x.shallow_clone();
            s.x = self.close(&pre, s, f);
        }
    }
}

#[derive(Debug)]
pub struct Wrn {
    conv1: Conv,
    blocks: Vec<PreActBlock>,
    /// The final BN-ReLU and the main classifier (absent when the AC serves the model).
    head: Option<(BatchNorm, Linear)>,
    /// The auxiliary classifier and the index of the block it reads.
    aux: Option<(AuxClassifier, usize)>,
    serve_aux: bool,
    /// Segment i -> (block, part).
    plan: Vec<(usize, usize)>,
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
        let serve_aux = matches!(&spec.aux, Some(a) if a.serve);
        let mut blocks = Vec::new();
        let mut aux = None;
        let mut cin = widths[0];
        for stage in 0..3 {
            if let Some(a) = &spec.aux {
                if a.after == format!("block{stage}") {
                    let head = AuxClassifier::new(p, cin, widths[stage + 1], spec.classes);
                    aux = Some((head, blocks.len() - 1));
                    if serve_aux {
                        break;
                    }
                }
            }
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let bp = p / format!("block{}", stage + 1) / "layer" / b;
                let name = format!("block{}.layer.{b}", stage + 1);
                blocks.push(PreActBlock::new(
                    bp,
                    cin,
                    widths[stage + 1],
                    stride,
                    spec.branch_of(&name),
                    spec.shallow_kernel,
                ));
                cin = widths[stage + 1];
            }
        }
        let plan = blocks
            .iter()
            .enumerate()
            .flat_map(|(b, blk)| (0..blk.parts()).map(move |k| (b, k)))
            .collect();
        Wrn {
            conv1,
            blocks,
            head: (!serve_aux).then(|| {
                (
                    BatchNorm::new(p / "bn1", cin),
                    Linear::new(p / "fc", cin, spec.classes),
                )
            }),
            aux,
            serve_aux,
            plan,
        }
    }
}

impl Net for Wrn {
    fn segments(&self) -> usize {
        // Body parts, the final BN-ReLU site (main classifier) or the AC's site, and the head; a
        // trained AC adds its site before the head.
        self.plan.len() + 2 + usize::from(self.aux.is_some() && !self.serve_aux)
    }

    fn graph(&self) -> Option<Vec<GraphNode>> {
        let mut g = vec![self.conv1.node(0)];
        let mut x = 1;
        for b in &self.blocks {
            x = b.graph(&mut g, x)?;
        }
        match (&self.head, &self.aux) {
            (Some((bn1, fc)), _) => {
                g.push(bn1.node(x));
                g.push(GraphNode::Site {
                    input: g.len(),
                    name: "relu".into(),
                });
                g.push(GraphNode::GlobalAvgPool { input: g.len() });
                let (name, _, _) = fc.describe();
                g.push(GraphNode::Linear {
                    input: g.len(),
                    name: name.to_string(),
                });
            }
            (None, Some((head, _))) => head.graph(&mut g, x),
            (None, None) => unreachable!("a WRN has a classifier"),
        }
        Some(g)
    }

    fn segment(&self, i: usize, s: &mut State, f: &mut Forward) {
        let n = self.plan.len();
        if i == 0 {
            s.x = self.conv1.forward(&s.x, f);
        }
        if i < n {
            let (b, k) = self.plan[i];
            self.blocks[b].part(k, s, f);
            if let Some((_, at)) = &self.aux {
                if !self.serve_aux && b == *at && k + 1 == self.blocks[b].parts() {
                    s.aux = Some(s.x.shallow_clone());
                }
            }
            return;
        }
        match (&self.head, &self.aux) {
            (Some((bn1, _)), _) if i == n => {
                let t = bn1.forward(&s.x, f);
                s.x = f.site("relu", SiteKind::Final, &t);
            }
            (Some(_), Some((head, _))) if i == n + 1 => {
                let a = s.aux.take().expect("the AC's input saved by its stage");
                s.aux = Some(head.features(&a, f));
            }
            (Some((_, fc)), aux) => {
                s.x = fc.forward(&global_avg_pool(&s.x), f);
                if let (Some((head, _)), Some(a)) = (aux, s.aux.take()) {
                    let logits = head.logits(&a, f);
                    f.set_aux_logits(logits);
                }
            }
            (None, Some((head, _))) if i == n => s.x = head.features(&s.x, f),
            (None, Some((head, _))) => s.x = head.logits(&s.x, f),
            (None, None) => unreachable!("a WRN has a classifier"),
        }
    }
}
