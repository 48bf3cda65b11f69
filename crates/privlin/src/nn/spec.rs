//! Model specifications: architecture, width, activation, input size, classes, counting convention.

use super::site::{Activation, SiteKind};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The architectures of the model zoo (CIFAR-style stems: 3x3 convolution, no max-pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// The DAWNBench ResNet-9 (prep, layer1 + res1, layer2, layer3 + res3): 8 ReLU layers.
    Resnet9,
    Resnet18,
    Resnet34,
    Resnet50,
    Vgg11,
    Vgg16,
    /// Wide ResNet WRN-depth-k (pre-activation blocks).
    Wrn {
        depth: i64,
        k: i64,
    },
}

impl Arch {
    pub const NAMES: &'static str =
        "resnet9, resnet18, resnet34, resnet50, vgg11, vgg16, wrn-D-K (e.g. wrn-22-8)";
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::Resnet9 => f.write_str("resnet9"),
            Arch::Resnet18 => f.write_str("resnet18"),
            Arch::Resnet34 => f.write_str("resnet34"),
            Arch::Resnet50 => f.write_str("resnet50"),
            Arch::Vgg11 => f.write_str("vgg11"),
            Arch::Vgg16 => f.write_str("vgg16"),
            Arch::Wrn { depth, k } => write!(f, "wrn-{depth}-{k}"),
        }
    }
}

impl FromStr for Arch {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let l = s.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match l.as_str() {
            "resnet9" | "resnet-9" => Arch::Resnet9,
            "resnet18" | "resnet-18" => Arch::Resnet18,
            "resnet34" | "resnet-34" => Arch::Resnet34,
            "resnet50" | "resnet-50" => Arch::Resnet50,
            "vgg11" | "vgg-11" | "vgg11-bn" | "vgg11bn" => Arch::Vgg11,
            "vgg16" | "vgg-16" | "vgg16-bn" | "vgg16bn" => Arch::Vgg16,
            _ => {
                let rest = l.strip_prefix("wrn").map(|r| r.trim_start_matches('-'));
                let parsed = rest.and_then(|r| {
                    let (d, k) = r.split_once('-')?;
                    Some((d.parse::<i64>().ok()?, k.parse::<i64>().ok()?))
                });
                match parsed {
                    Some((depth, k)) if (depth - 4) % 6 == 0 && depth >= 10 && k >= 1 => {
                        Arch::Wrn { depth, k }
                    }
                    Some((depth, _)) => {
                        bail!("WRN depth {depth} is not 6n+4 with n >= 1 (e.g. 16, 22, 28)")
                    }
                    None => bail!("unknown architecture `{s}`; known: {}", Arch::NAMES),
                }
            }
        })
    }
}

impl Serialize for Arch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Arch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which kinds of sites count as ReLUs (and are subject to linearization).
///
/// Public code disagrees on this and the choice moves the baseline count by 2-13 %
/// (`shared/docs/reference.md`): SNL, AutoReP and ReLUPruner leave the stem ReLU out; SNL leaves
/// WRN's final BN-ReLU out, ReLUPruner counts it; every one counts the ReLU after a residual
/// addition. Sites of an uncounted kind always keep their nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Convention {
    pub stem: bool,
    pub post_add: bool,
    #[serde(rename = "final")]
    pub final_relu: bool,
}

impl Default for Convention {
    fn default() -> Self {
        Convention::ALL
    }
}

impl Convention {
    /// Every nonlinearity counts.
    pub const ALL: Convention = Convention {
        stem: true,
        post_add: true,
        final_relu: true,
    };
    /// SNL / AutoReP: no stem ReLU, no final BN-ReLU.
    pub const SNL: Convention = Convention {
        stem: false,
        post_add: true,
        final_relu: false,
    };
    /// ReLUPruner: no stem ReLU, final BN-ReLU counted.
    pub const RELUPRUNER: Convention = Convention {
        stem: false,
        post_add: true,
        final_relu: true,
    };

    pub fn counts(&self, kind: SiteKind) -> bool {
        match kind {
            SiteKind::Stem => self.stem,
            SiteKind::Block => true,
            SiteKind::PostAdd => self.post_add,
            SiteKind::Final => self.final_relu,
        }
    }

    pub fn name(&self) -> String {
        match *self {
            Convention::ALL => "all".into(),
            Convention::SNL => "snl".into(),
            Convention::RELUPRUNER => "relupruner".into(),
            c => format!(
                "stem={},post_add={},final={}",
                c.stem, c.post_add, c.final_relu
            ),
        }
    }

    /// A one-line statement of the convention, printed with every count.
    pub fn describe(&self) -> String {
        let yn = |b: bool| if b { "counted" } else { "not counted" };
        format!(
            "convention `{}`: stem ReLU {}, post-addition ReLU {}, final BN-ReLU {}",
            self.name(),
            yn(self.stem),
            yn(self.post_add),
            yn(self.final_relu)
        )
    }
}

impl FromStr for Convention {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "all" => Convention::ALL,
            "snl" | "autorep" => Convention::SNL,
            "relupruner" => Convention::RELUPRUNER,
            other => {
                bail!("unknown counting convention `{other}` (expected all, snl or relupruner)")
            }
        })
    }
}

fn default_width() -> f64 {
    1.0
}
fn default_input() -> i64 {
    32
}
fn default_classes() -> i64 {
    10
}

/// Everything needed to rebuild a model; stored as JSON next to every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub arch: Arch,
    /// Width multiplier on the architecture's channel counts (0.25 turns ResNet-18's 64 into 16).
    #[serde(default = "default_width")]
    pub width: f64,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_input")]
    pub input_size: i64,
    #[serde(default = "default_classes")]
    pub classes: i64,
    #[serde(default)]
    pub convention: Convention,
}

impl ModelSpec {
    pub fn new(arch: Arch) -> Self {
        ModelSpec {
            arch,
            width: 1.0,
            activation: Activation::Relu,
            input_size: 32,
            classes: 10,
            convention: Convention::ALL,
        }
    }

    /// Scale a channel count by the width multiplier (at least one channel).
    pub fn ch(&self, c: i64) -> i64 {
        ((c as f64 * self.width).round() as i64).max(1)
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.width > 0.0 && self.width.is_finite()) {
            bail!("width multiplier must be positive, got {}", self.width);
        }
        if self.classes < 1 {
            bail!("classes must be at least 1, got {}", self.classes);
        }
        let min = match self.arch {
            Arch::Vgg11 | Arch::Vgg16 | Arch::Resnet9 => 32,
            _ => 8,
        };
        if self.input_size < min || self.input_size % 8 != 0 {
            bail!(
                "input size {} is not supported by {} (a multiple of 8, at least {min}; 32 and 64 are the usual)",
                self.input_size,
                self.arch
            );
        }
        Ok(())
    }
}
