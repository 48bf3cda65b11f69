//! The same safetensors give the same logits in privlin and in its PyTorch twin
//! (python/privlin_twin.py), weights moving in both directions.
mod common;

use privlin::nn::{with_torch_seed, Activation, Model, ModelSpec};
use std::collections::HashMap;
use std::process::Command;
use tch::{Device, Kind, Tensor};

fn spec(arch: &str, width: f64, input: i64, act: Activation, classes: i64) -> ModelSpec {
    let mut s = ModelSpec::new(arch.parse().unwrap());
    s.width = width;
    s.input_size = input;
    s.activation = act;
    s.classes = classes;
    s
}

/// Give BN layers non-trivial statistics and affine parameters so eval-mode BN is exercised.
fn perturb_bn(m: &Model) {
    tch::no_grad(|| {
        for (name, mut t) in m.vs.variables() {
            if name.ends_with("running_mean") {
                let _ = t.uniform_(-0.2, 0.2);
            } else if name.ends_with("running_var") {
                let _ = t.uniform_(0.5, 1.5);
            }
        }
    });
}

fn run_twin(s: &ModelSpec, dir: &std::path::Path, export: bool) -> Tensor {
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_string(s).unwrap()).unwrap();
    let mut cmd = Command::new(common::python());
    cmd.current_dir(common::repo().join("python"))
        .arg("twin_logits.py")
        .arg("--spec")
        .arg(&spec_path)
        .arg("--weights")
        .arg(dir.join("w.safetensors"))
        .arg("--input")
        .arg(dir.join("x.safetensors"))
        .arg("--out")
        .arg(dir.join("y.safetensors"));
    if export {
        cmd.arg("--export");
    }
    let out = cmd.output().expect("running the PyTorch twin");
    assert!(
        out.status.success(),
        "twin failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let y: HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("y.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    y["logits"].shallow_clone()
}

fn check(arch: &str, width: f64, input: i64, act: Activation, classes: i64) {
    check_spec(spec(arch, width, input, act, classes));
}

fn check_spec(s: ModelSpec) {
    let (arch, width, input, act) = (s.arch.to_string(), s.width, s.input_size, s.activation);
    let dir = tempfile::tempdir().unwrap();
    let x = with_torch_seed(7, || {
        Tensor::randn([3, 3, input, input], (Kind::Float, Device::Cpu))
    });
    Tensor::write_safetensors(&[("input", &x)], dir.path().join("x.safetensors")).unwrap();

    // privlin -> PyTorch.
    let m = Model::seeded(s.clone(), Device::Cpu, 7).unwrap();
    with_torch_seed(7, || perturb_bn(&m));
    m.save_weights(&dir.path().join("w.safetensors")).unwrap();
    let ours = tch::no_grad(|| m.forward(&x, false));
    let theirs = run_twin(&s, dir.path(), false);
    let tol = 1e-4 * (1.0 + ours.abs().max().double_value(&[]));
    let d = (&ours - &theirs).abs().max().double_value(&[]);
    assert!(
        d < tol,
        "{arch}@{width} {input}px {act:?}: privlin->PyTorch max |diff| {d}"
    );

    // PyTorch -> privlin.
    let theirs = run_twin(&s, dir.path(), true);
    let mut m2 = Model::new(s.clone(), Device::Cpu).unwrap();
    m2.load_weights(&dir.path().join("w.safetensors")).unwrap();
    let ours = tch::no_grad(|| m2.forward(&x, false));
    let d = (&ours - &theirs).abs().max().double_value(&[]);
    assert!(
        d < tol,
        "{arch}@{width} {input}px {act:?}: PyTorch->privlin max |diff| {d}"
    );
}

#[test]
fn resnet18_and_resnet9_match_twin() {
    check("resnet18", 0.125, 32, Activation::Relu, 10);
    check("resnet9", 0.125, 32, Activation::Relu, 100);
}

#[test]
fn resnet34_50_match_twin() {
    check("resnet34", 0.125, 32, Activation::Silu, 10);
    check("resnet50", 0.125, 32, Activation::Relu, 10);
}

/// HybReNets and DeepReDuce's culled, thinned, resolution-reshaped ResNets (removed sites are
/// the identity on both sides).
#[test]
fn hybrenet_and_deepreduce_models_match_twin() {
    check("hrn-5x7x2x", 0.0625, 32, Activation::Relu, 10);
    let mut s = spec("resnet18", 0.125, 32, Activation::Relu, 10);
    s.cull = vec!["stem".into(), "s2".into()];
    s.thin = Some(privlin::nn::Thin::Second);
    s.stem_stride = 2;
    check_spec(s);
    let mut s = spec("hrn-2x2x2x", 0.0625, 32, Activation::Relu, 10);
    s.blocks = Some(vec![1, 2, 1, 1]);
    s.thin = Some(privlin::nn::Thin::First);
    check_spec(s);
}

#[test]
fn vgg_match_twin() {
    check("vgg11", 0.125, 32, Activation::Relu, 10);
    check("vgg16", 0.125, 64, Activation::Relu, 200);
}

#[test]
fn wrn_matches_twin() {
    check("wrn-16-2", 0.5, 32, Activation::Relu, 10);
    check("wrn-22-8", 0.0625, 64, Activation::Silu, 10);
}

/// privlin's SGD (momentum 0.9, weight decay 5e-4) and train-mode BN follow torch.optim.SGD and
/// nn.BatchNorm2d: three steps from the same weights on the same batch give the same weights.
///
/// Both sides run on one intra-op thread (`tch::set_num_threads(1)` here, `--threads 1` for the
/// twin): the comparison is about the optimizer and batch norm, not about threading. With two
/// threads the two libtorch instances split reductions differently, and three steps at lr 0.1
/// through batch norm amplified that to 1.8e-4 on a 2-core AMD EPYC without AVX-512 (issue 38).
/// On one thread both processes run the same libtorch build's kernels in the same order on the
/// same CPU, so what is left is at float32's epsilon (1.2e-7 measured on a 2-core AMD EPYC with
/// AVX-512, printed by the test); the bound 1e-4 is three orders above that and still an order
/// below what a wrong momentum or weight-decay rule moves (lr 0.1 x 5e-4 x |w| per step is 5e-5
/// on a weight of 1, a dropped momentum term 1e-2 and more).
#[test]
fn sgd_training_steps_match_pytorch() {
    tch::set_num_threads(1);
    use privlin::train::losses::cross_entropy;
    use privlin::train::optim::{Optimizer, OptimizerConfig};
    let s = spec("resnet18", 0.125, 32, Activation::Relu, 10);
    let dir = tempfile::tempdir().unwrap();
    let m = Model::seeded(s.clone(), Device::Cpu, 11).unwrap();
    m.save_weights(&dir.path().join("w.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("spec.json"),
        serde_json::to_string(&s).unwrap(),
    )
    .unwrap();
    let (x, y) = with_torch_seed(11, || {
        (
            Tensor::randn([16, 3, 32, 32], (Kind::Float, Device::Cpu)),
            Tensor::randint(10, [16], (Kind::Int64, Device::Cpu)),
        )
    });
    Tensor::write_safetensors(
        &[("input", &x), ("labels", &y)],
        dir.path().join("b.safetensors"),
    )
    .unwrap();
    let params =
        m.vs.variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
    let mut opt = Optimizer::new(OptimizerConfig::default(), params);
    for _ in 0..3 {
        opt.zero_grad();
        cross_entropy(&m.forward(&x, true), &y, 0.0).backward();
        opt.step(0.1);
    }
    let out = Command::new(common::python())
        .current_dir(common::repo().join("python"))
        .arg("twin_sgd_steps.py")
        .arg("--spec")
        .arg(dir.path().join("spec.json"))
        .arg("--weights")
        .arg(dir.path().join("w.safetensors"))
        .arg("--batch")
        .arg(dir.path().join("b.safetensors"))
        .arg("--out")
        .arg(dir.path().join("after.safetensors"))
        .arg("--threads")
        .arg("1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.path().join("after.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let mut worst = 0f64;
    for (name, t) in m.named_tensors() {
        let d = (&t - &theirs[&name]).abs().max().double_value(&[]);
        worst = worst.max(d);
        assert!(d < 1e-4, "{name}: max |diff| {d} after 3 SGD steps");
    }
    eprintln!("largest |diff| of any weight after 3 SGD steps, one thread each: {worst:.3e}");
}

/// Reshaped models ("Making Models Shallow Again"): gated blocks (gate 1 on both sides), shallow
/// blocks, the auxiliary classifier trained (main logits) and serving, ResNet and WRN.
#[test]
fn reshaped_models_match_twin() {
    use privlin::nn::AuxHead;
    let aux = |after: &str, serve: bool| {
        Some(AuxHead {
            after: after.into(),
            serve,
        })
    };
    let mut s = spec("resnet18", 0.125, 32, Activation::Relu, 10);
    s.shallow = vec!["layer1.0".into(), "layer2.1".into()];
    s.aux = aux("layer3", true);
    check_spec(s);
    let mut s = spec("resnet34", 0.0625, 32, Activation::Relu, 10);
    s.gated = vec!["layer3.2".into()];
    s.shallow = vec!["layer2.0".into()];
    s.shallow_kernel = 1;
    s.aux = aux("layer2", false);
    check_spec(s);
    let mut s = spec("wrn-16-2", 0.5, 32, Activation::Relu, 10);
    s.shallow = vec!["block1.layer.1".into()];
    s.aux = aux("block2", true);
    check_spec(s);
}
