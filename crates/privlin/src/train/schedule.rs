//! Learning-rate schedules, evaluated per step at fractional epoch `t`.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `constant`, `multistep`, `cosine` or `onecycle`.
    pub kind: String,
    /// Multistep: epochs at which the rate is multiplied by `gamma` (the papers: 80, 120 of 160).
    pub milestones: Vec<usize>,
    pub gamma: f64,
    /// Linear warm-up from `lr / 10` over this many epochs (constant, multistep, cosine).
    pub warmup_epochs: f64,
    /// One-cycle: fraction of the run spent rising from `lr / 25` to `lr`.
    pub pct_start: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            kind: "cosine".into(),
            milestones: vec![],
            gamma: 0.1,
            warmup_epochs: 0.0,
            pct_start: 0.25,
        }
    }
}

impl ScheduleConfig {
    pub fn validate(&self) -> Result<()> {
        match self.kind.as_str() {
            "constant" | "cosine" | "multistep" | "onecycle" => Ok(()),
            other => bail!(
                "unknown schedule `{other}` (expected constant, multistep, cosine or onecycle)"
            ),
        }
    }

    /// Learning rate at fractional epoch `t` of `epochs`, for base rate `lr`.
    pub fn lr_at(&self, lr: f64, t: f64, epochs: usize) -> f64 {
        let total = epochs.max(1) as f64;
        let warm = |v: f64| {
            if self.warmup_epochs > 0.0 && t < self.warmup_epochs {
                v * (0.1 + 0.9 * t / self.warmup_epochs)
            } else {
                v
            }
        };
        match self.kind.as_str() {
            "constant" => warm(lr),
            "multistep" => {
                let passed = self.milestones.iter().filter(|&&m| t >= m as f64).count();
                warm(lr * self.gamma.powi(passed as i32))
            }
            "cosine" => {
                warm(0.5 * lr * (1.0 + (std::f64::consts::PI * (t / total).min(1.0)).cos()))
            }
            "onecycle" => {
                let rise = (self.pct_start * total).max(1e-9);
                if t < rise {
                    lr / 25.0 + (lr - lr / 25.0) * t / rise
                } else {
                    let p = ((t - rise) / (total - rise).max(1e-9)).min(1.0);
                    let lo = lr / 1e4;
                    lo + (lr - lo) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
                }
            }
            _ => lr,
        }
    }
}
