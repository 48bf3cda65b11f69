//! What measures and exercises the engine, apart from it (issue 40): per-ReLU and whole-model
//! benchmarks and the calibration of the cost model ([`bench`]), the load generator of
//! `privlin pi load` ([`load`]), and the synthetic models of tests and benchmarks
//! ([`synthetic`]). Nothing in the protocol imports this module; the engine reads as primitives
//! (`ring`, `gc`, `ot`, `he`, `net`) -> protocol (`nonlinear`, `protocol`) -> service
//! (`protocol::service`), with `cost` predicting what the protocol sends.

pub mod bench;
pub mod load;
pub mod synthetic;
