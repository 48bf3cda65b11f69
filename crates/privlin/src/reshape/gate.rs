//! The gate of gated branching ("Making Models Shallow Again", Sec. 4): `gamma` rises from 0 to
//! 1 until the epoch of the first learning-rate decay and stays 1 after it (paper: linear,
//! `gamma = i / 90` at epoch `i` of 180; cosine as the alternative).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GateShape {
    #[default]
    Linear,
    /// `(1 - cos(pi t)) / 2`: slow at both ends.
    Cosine,
}

/// `gamma` for each epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateSchedule {
    pub shape: GateShape,
    /// Epochs until `gamma` reaches 1 (0: 1 from the start).
    pub ramp: usize,
}

impl GateSchedule {
    /// The gate during epoch `epoch` (0-based): 0 in the first, 1 from epoch `ramp` on.
    pub fn at(&self, epoch: usize) -> f64 {
        if self.ramp == 0 {
            return 1.0;
        }
        let t = (epoch as f64 / self.ramp as f64).min(1.0);
        match self.shape {
            GateShape::Linear => t,
            GateShape::Cosine => 0.5 * (1.0 - (std::f64::consts::PI * t).cos()),
        }
    }
}
