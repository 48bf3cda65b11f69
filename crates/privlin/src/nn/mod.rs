//! Models with maskable activation sites.

pub mod forward;
pub mod layers;
pub mod mask;
pub mod model;
pub mod resnet;
pub mod resnet9;
pub mod site;
pub mod spec;
pub mod vgg;
pub mod wrn;

pub use forward::{Forward, LayerInfo, LayerKind, Tap};
pub use mask::{MaskSet, SiteMask};
pub use model::Model;
pub use site::{Activation, Granularity, SiteInfo, SiteKind};
pub use spec::{Arch, Convention, ModelSpec};

/// A network whose every nonlinearity goes through [`Forward::site`].
pub trait Net: std::fmt::Debug + Send {
    fn forward(&self, x: &tch::Tensor, f: &mut Forward) -> tch::Tensor;
}
