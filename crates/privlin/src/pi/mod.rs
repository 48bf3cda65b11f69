//! Private inference of privlin's models with `privlin-mpc`: the export of a (partial-ReLU)
//! checkpoint to the two-party format ([`export`]), the test images a client classifies
//! ([`images`]), and the pipeline stage that runs them under the protocol and predicts the cost
//! under each network profile ([`measure`]).

pub mod export;
pub mod export_graph;
pub mod families;
pub mod images;
pub mod measure;

pub use export::{active_indices, export, normalize_image};
pub use images::{float_classes, test_images};
pub use measure::{measure, PiConfig, PiReport, PI_REPORT};
