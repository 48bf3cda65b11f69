//! Optimizers with state that can be checkpointed (momentum buffers, Adam moments), with
//! PyTorch's update rules (`torch.optim.SGD` with coupled weight decay, `torch.optim.Adam`), so a
//! resumed run continues exactly where the killed one stopped.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adam,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for OptimizerConfig {
    /// The papers' all-ReLU recipe: SGD, lr 0.1, momentum 0.9, weight decay 5e-4.
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Parameters by name with their optimizer state.
pub struct Optimizer {
    cfg: OptimizerConfig,
    params: Vec<(String, Tensor)>,
    /// SGD: momentum buffer; Adam: first moment.
    m: Vec<Option<Tensor>>,
    /// Adam: second moment.
    v: Vec<Option<Tensor>>,
    steps: i64,
}

impl Optimizer {
    /// An optimizer over `params` (name, tensor requiring grad).
    pub fn new(cfg: OptimizerConfig, mut params: Vec<(String, Tensor)>) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let n = params.len();
        Optimizer {
            cfg,
            params,
            m: (0..n).map(|_| None).collect(),
            v: (0..n).map(|_| None).collect(),
            steps: 0,
        }
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.cfg
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        let c = self.cfg.clone();
        self.steps += 1;
        let t = self.steps as f64;
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let g = if c.weight_decay != 0.0 {
                    &grad + &*p * c.weight_decay
                } else {
                    grad
                };
                match c.kind {
                    OptimizerKind::Sgd => {
                        let d = if c.momentum != 0.0 {
                            let buf = match self.m[i].take() {
                                None => g.detach().copy(),
                                Some(mut b) => {
                                    let _ = b.g_mul_scalar_(c.momentum).g_add_(&g);
                                    b
                                }
                            };
                            let d = if c.nesterov {
                                &g + &buf * c.momentum
                            } else {
                                buf.shallow_clone()
                            };
                            self.m[i] = Some(buf);
                            d
                        } else {
                            g
                        };
                        let _ = p.g_sub_(&(d * lr));
                    }
                    OptimizerKind::Adam => {
                        let m = self.m[i].get_or_insert_with(|| g.zeros_like());
                        let _ = m.g_mul_scalar_(c.beta1).g_add_(&(&g * (1.0 - c.beta1)));
                        let v = self.v[i].get_or_insert_with(|| g.zeros_like());
                        let _ = v
                            .g_mul_scalar_(c.beta2)
                            .g_add_(&(&g * &g * (1.0 - c.beta2)));
                        let bc1 = 1.0 - c.beta1.powf(t);
                        let bc2 = 1.0 - c.beta2.powf(t);
                        let denom = (&*v / bc2).sqrt() + c.eps;
                        let _ = p.g_sub_(&(&*m / &denom * (lr / bc1)));
                    }
                }
            }
        });
    }

    /// State tensors by name (`m.<param>`, `v.<param>`, `steps`), on the CPU.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("steps".to_string(), Tensor::from(self.steps))];
        for (i, (name, _)) in self.params.iter().enumerate() {
            if let Some(m) = &self.m[i] {
                out.push((format!("m.{name}"), m.to_device(tch::Device::Cpu)));
            }
            if let Some(v) = &self.v[i] {
                out.push((format!("v.{name}"), v.to_device(tch::Device::Cpu)));
            }
        }
        out
    }

    /// Restore state saved by [`Optimizer::state`].
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let Some(steps) = state.get("steps") else {
            bail!("optimizer state has no `steps` entry");
        };
        self.steps = steps.int64_value(&[]);
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (slot, prefix) in [(&mut self.m[i], "m"), (&mut self.v[i], "v")] {
                *slot = match state.get(&format!("{prefix}.{name}")) {
                    Some(t) if t.size() == p.size() => {
                        Some(t.to_device(p.device()).to_kind(p.kind()))
                    }
                    Some(t) => bail!(
                        "optimizer state `{prefix}.{name}` has shape {:?}, parameter has {:?}",
                        t.size(),
                        p.size()
                    ),
                    None => None,
                };
            }
        }
        Ok(())
    }
}
