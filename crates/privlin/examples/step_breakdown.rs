//! Time forward, backward and optimizer step of one training step separately (the counterpart of
//! the PyTorch twin's breakdown), to see where privlin and PyTorch differ.
//! `cargo run --release -p privlin --example step_breakdown -- resnet18 0.25 128`
use privlin::nn::{Model, ModelSpec};
use privlin::train::losses::cross_entropy;
use privlin::train::optim::{Optimizer, OptimizerConfig};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arch = args.get(1).map(String::as_str).unwrap_or("resnet18");
    let width: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0.25);
    let batch: i64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(128);
    let mut spec = ModelSpec::new(arch.parse()?);
    spec.width = width;
    tch::manual_seed(0);
    let m = Model::new(spec, Device::Cpu)?;
    let x = Tensor::randn(m.input_shape(batch), (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [batch], (Kind::Int64, Device::Cpu));
    let params =
        m.vs.variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
    let mut opt = Optimizer::new(
        OptimizerConfig {
            lr: 0.01,
            ..Default::default()
        },
        params,
    );
    let (mut tf, mut tb, mut ts) = (0.0, 0.0, 0.0);
    for i in 0..13 {
        let t = Instant::now();
        opt.zero_grad();
        let l = cross_entropy(&m.forward(&x, true), &y, 0.0);
        let t1 = Instant::now();
        l.backward();
        let t2 = Instant::now();
        opt.step(0.01);
        let t3 = Instant::now();
        if i >= 3 {
            tf += (t1 - t).as_secs_f64();
            tb += (t2 - t1).as_secs_f64();
            ts += (t3 - t2).as_secs_f64();
        }
    }
    println!(
        "privlin fwd {:.1} ms bwd {:.1} ms step {:.2} ms",
        tf * 100.0,
        tb * 100.0,
        ts * 100.0
    );
    Ok(())
}
