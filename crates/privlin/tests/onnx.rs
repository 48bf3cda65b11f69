//! ONNX in and out: networks written in PyTorch (python/onnx_models.py, generated in the venv,
//! nothing downloaded) imported into privlin give onnxruntime's logits; a zoo ResNet-18 exported
//! and imported again is the same model; a linearized model exported to ONNX gives in
//! onnxruntime the logits privlin computes; failures write nothing.
mod common;

use privlin::nn::{with_torch_seed, MaskSet, Model, ModelSpec, SiteMask};
use privlin::onnx::{export, import, ImportOptions};
use privlin::train::checkpoint::load_model;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

/// The PyTorch-written models, exported once per test binary.
fn models() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("privlin-onnx-models-{}", std::process::id()));
        let out = Command::new(common::python())
            .current_dir(common::repo().join("python"))
            .args(["onnx_models.py", "--out"])
            .arg(&dir)
            .output()
            .expect("running python/onnx_models.py");
        assert!(
            out.status.success(),
            "python/onnx_models.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

/// onnxruntime's logits for `model` on `x` (one thread).
fn onnxruntime(model: &Path, x: &Tensor, dir: &Path) -> Tensor {
    let (i, o) = (
        dir.join("ort_in.safetensors"),
        dir.join("ort_out.safetensors"),
    );
    Tensor::write_safetensors(&[("input", x)], &i).unwrap();
    let out = Command::new(common::python())
        .current_dir(common::repo().join("python"))
        .arg("onnx_run.py")
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(&i)
        .arg("--out")
        .arg(&o)
        .output()
        .expect("running python/onnx_run.py");
    assert!(
        out.status.success(),
        "onnxruntime failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    read(&o)["logits"].shallow_clone()
}

/// Largest difference, against a tolerance relative to the logits' scale: two float32
/// implementations of the same convolutions differ by rounding (about 1e-6 relative per
/// operation, accumulated over a few dozen layers).
fn assert_close(ours: &Tensor, theirs: &Tensor, what: &str) {
    assert_eq!(ours.size(), theirs.size(), "{what}: shapes");
    let diff = (ours - theirs).abs().max().double_value(&[]);
    let scale = theirs.abs().max().double_value(&[]).max(1.0);
    assert!(
        diff <= 1e-4 * scale,
        "{what}: max |difference| {diff:e} at logit scale {scale}"
    );
    // The classes agree too (the test inputs are not near a tie at this tolerance).
    assert_eq!(
        Vec::<i64>::try_from(ours.argmax(1, false)).unwrap(),
        Vec::<i64>::try_from(theirs.argmax(1, false)).unwrap(),
        "{what}: classes"
    );
}

#[test]
fn imported_graphs_give_onnxruntime_logits() {
    let dir = tempfile::tempdir().unwrap();
    for (name, sites, relu6) in [
        ("tv_resnet18", 17, 0),
        ("mobilenet_v2", 14, 14),
        ("concat_cnn", 3, 0),
        ("plain_cnn", 3, 0),
    ] {
        let ckpt = dir.path().join(name);
        let rep = import(
            &models().join(format!("{name}.onnx")),
            &ckpt,
            &ImportOptions::default(),
        )
        .unwrap();
        assert_eq!(rep.sites, sites, "{name}: sites");
        let (model, spec) = load_model(&ckpt, Device::Cpu).unwrap();
        assert_eq!(spec.model.arch.to_string(), "graph");
        let g = spec.model.graph.as_ref().unwrap();
        assert_eq!(
            g.nodes
                .iter()
                .filter(|n| n.op == privlin_onnx::Op::Relu6)
                .count(),
            relu6,
            "{name}: ReLU6 sites"
        );
        let reference = read(&models().join(format!("{name}.ref.safetensors")));
        let y = tch::no_grad(|| model.forward(&reference["input"], false));
        assert_close(&y, &reference["logits"], name);
    }
}

/// Give BN layers non-trivial statistics and affine parameters.
fn perturb_bn(m: &Model) {
    tch::no_grad(|| {
        for (name, mut t) in m.vs.variables() {
            if name.ends_with("running_mean") || name.ends_with(".bias") {
                let _ = t.uniform_(-0.2, 0.2);
            } else if name.ends_with("running_var") {
                let _ = t.uniform_(0.5, 1.5);
            }
        }
    });
}

#[test]
fn zoo_resnet18_round_trips_through_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::new("resnet18".parse().unwrap());
    spec.width = 0.125;
    let zoo = Model::seeded(spec, Device::Cpu, 3).unwrap();
    with_torch_seed(4, || perturb_bn(&zoo));
    let path = dir.path().join("r18.onnx");
    let rep = export(&zoo, None, &path, true).unwrap();
    assert_eq!(rep.sites_kept, zoo.sites().len());
    let ckpt = dir.path().join("ckpt");
    import(&path, &ckpt, &ImportOptions::default()).unwrap();
    let (back, _) = load_model(&ckpt, Device::Cpu).unwrap();
    assert_eq!(back.sites().len(), zoo.sites().len());
    assert_eq!(back.relu_count(), zoo.relu_count());
    assert_eq!(back.macs_total(), zoo.macs_total());
    // `privlin info`'s depth: the longest path of weight layers, 18 for ResNet-18 either way.
    assert_eq!(
        privlin::info::ModelInfo::of(&back).depth,
        zoo.depth().map(|d| d.0)
    );
    assert_eq!(privlin::info::ModelInfo::of(&back).depth, Some(18));
    let x = with_torch_seed(5, || {
        Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu))
    });
    let (a, b) = tch::no_grad(|| (zoo.forward(&x, false), back.forward(&x, false)));
    assert_close(&b, &a, "zoo ResNet-18 after export and import");
    assert_close(
        &onnxruntime(&path, &x, dir.path()),
        &a,
        "onnxruntime on the exported zoo ResNet-18",
    );
    // Batch norms kept (to train after import): the same parameters, trainable as the zoo's.
    let kept = dir.path().join("r18-bn.onnx");
    export(&zoo, None, &kept, false).unwrap();
    let ckpt = dir.path().join("ckpt-bn");
    import(&kept, &ckpt, &ImportOptions::default()).unwrap();
    let (back, _) = load_model(&ckpt, Device::Cpu).unwrap();
    assert_eq!(back.num_parameters(), zoo.num_parameters());
    let c = tch::no_grad(|| back.forward(&x, false));
    assert_close(&c, &a, "zoo ResNet-18 with its batch norms through ONNX");
    assert_close(
        &onnxruntime(&kept, &x, dir.path()),
        &a,
        "onnxruntime, batch norms kept",
    );
}

#[test]
fn a_linearized_model_exported_to_onnx_gives_privlins_logits() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("mbv2");
    import(
        &models().join("mobilenet_v2.onnx"),
        &ckpt,
        &ImportOptions::default(),
    )
    .unwrap();
    let (model, _) = load_model(&ckpt, Device::Cpu).unwrap();
    // Every kind of site: kept, the identity, a pixel mask, a channel mask.
    let mut masks = MaskSet::coalition(&vec![true; model.sites().len()]);
    with_torch_seed(6, || {
        for (i, s) in model.sites().iter().enumerate() {
            let m = match i % 4 {
                0 => SiteMask::Keep,
                1 => SiteMask::Identity,
                2 => SiteMask::Tensor(
                    Tensor::rand(s.shape, (Kind::Float, Device::Cpu))
                        .gt(0.7)
                        .to_kind(Kind::Float),
                ),
                _ => SiteMask::Tensor(
                    Tensor::rand([s.shape[0], 1, 1], (Kind::Float, Device::Cpu))
                        .gt(0.5)
                        .to_kind(Kind::Float),
                ),
            };
            masks.set(i, m);
        }
    });
    let path = dir.path().join("linearized.onnx");
    let rep = export(&model, Some(&masks), &path, true).unwrap();
    assert!(rep.sites_partial >= 6, "{rep:?}");
    assert!(rep.sites_identity >= 3, "{rep:?}");
    let x = with_torch_seed(7, || {
        Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0
    });
    let ours = tch::no_grad(|| model.forward_masked(&x, false, &masks));
    let all = tch::no_grad(|| model.forward(&x, false));
    assert!(
        (&ours - &all).abs().max().double_value(&[]) > 1e-3,
        "the masks change the logits, so the test can tell"
    );
    assert_close(
        &onnxruntime(&path, &x, dir.path()),
        &ours,
        "linearized MobileNetV2",
    );
}

#[test]
fn a_failed_import_writes_nothing_and_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(models().join("plain_cnn.onnx")).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = dir.path().join("out");
    let err = format!(
        "{:#}",
        import(&truncated, &out, &ImportOptions::default()).unwrap_err()
    );
    assert!(err.contains("truncated.onnx"), "{err}");
    assert!(!out.exists(), "nothing is written on failure");
    // A classifier that reads a fixed number of features refuses another input size, naming
    // the node.
    let err = format!(
        "{:#}",
        import(
            &models().join("concat_cnn.onnx"),
            &out,
            &ImportOptions {
                input_size: Some(64),
                ..Default::default()
            }
        )
        .unwrap_err()
    );
    assert!(err.contains("MatMul"), "{err}");
    assert!(!out.exists());
    // A graph with global pooling reads other sizes.
    import(
        &models().join("mobilenet_v2.onnx"),
        &out,
        &ImportOptions {
            input_size: Some(64),
            ..Default::default()
        },
    )
    .unwrap();
    let (m, _) = load_model(&out, Device::Cpu).unwrap();
    assert_eq!(m.spec.input_size, 64);
    assert_eq!(m.sites()[0].shape, [8, 64, 64]);
}
