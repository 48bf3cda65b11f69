//! The pipeline as a library concept: stages behind one trait, plans (DAGs of stage instances)
//! for a run or a sweep, one runner that decides skip / resume / refuse for every stage, and
//! executors that run a plan in this process, in local child processes or on a Ray cluster.
//!
//! ```text
//! PipelineConfig --Plan::run / Plan::sweep--> Plan (plan.json) --Executor--> run_node(id) per node
//! ```

pub mod config;
pub mod executor;
pub mod plan;
pub mod runner;
pub mod seed_spread;
pub mod stage;
pub mod stages;

pub use config::{preset, PipelineConfig};
pub use executor::{Executor, Processes, Ray, Sequential, StageCommand};
pub use plan::{budget_label, Layout, Node, Plan};
pub use runner::{run_node, Outcome};
pub use stage::{Ctx, Stage, StageKind};
