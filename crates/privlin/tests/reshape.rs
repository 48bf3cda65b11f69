//! "Making Models Shallow Again" on tiny models and synthetic data: the gate's end points, the
//! deleted main branch, exact merges, MAC/ReLU/depth accounting of a reshaped ResNet-18, block
//! sensitivity, bad input and a resumed reshape stage.
use privlin::data::DataConfig;
use privlin::linearize::export::{export, MASKS_FILE};
use privlin::linearize::run::load_with_masks;
use privlin::linearize::FinetuneConfig;
use privlin::nn::{with_torch_seed, AuxHead, MaskSet, Model, ModelSpec, SiteMask};
use privlin::reshape::merge::{compose, fold_bn, AffineConv};
use privlin::reshape::run::{copy_by_name, derive};
use privlin::reshape::{
    block_sensitivity, reshape, AuxMode, GateSchedule, GateShape, ReshapeConfig,
};
use privlin::train::CheckpointSpec;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn spec(arch: &str, width: f64) -> ModelSpec {
    let mut s = ModelSpec::new(arch.parse().unwrap());
    s.width = width;
    s
}

/// Random BN statistics so that eval-mode batch norm is not the identity.
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

fn logits(m: &Model, x: &Tensor) -> Tensor {
    tch::no_grad(|| m.forward(x, false))
}

/// gate = 0 is the original block, gate = 1 the shallow branch, exactly; the model with its main
/// branches deleted gives the gate-1 logits, for basic, bottleneck and pre-activation blocks.
#[test]
fn gate_end_points_and_deleted_main_branch_are_exact() {
    for (arch, width, blocks) in [
        ("resnet18", 0.125, vec!["layer1.0", "layer2.1", "layer4.0"]),
        ("resnet34", 0.0625, vec!["layer2.0", "layer3.4"]),
        ("wrn-16-2", 0.5, vec!["block1.layer.1", "block3.layer.0"]),
    ] {
        let plain = Model::seeded(spec(arch, width), Device::Cpu, 3).unwrap();
        let mut gs = spec(arch, width);
        gs.gated = blocks.iter().map(|b| b.to_string()).collect();
        let gated = Model::seeded(gs.clone(), Device::Cpu, 4).unwrap();
        let x = with_torch_seed(3, || {
            perturb_bn(&plain);
            perturb_bn(&gated);
            Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu))
        });
        let missing = copy_by_name(&plain, &gated).unwrap();
        assert!(missing.iter().all(|n| n.contains(".gb.")), "{missing:?}");
        gated.set_gate(0.0);
        assert!(
            logits(&gated, &x).equal(&logits(&plain, &x)),
            "{arch}: gate 0 differs from the original model"
        );
        gated.set_gate(1.0);
        let g1 = logits(&gated, &x);
        let mut ss = gs.clone();
        ss.shallow = std::mem::take(&mut ss.gated);
        let shallow = derive(&gated, ss).unwrap();
        assert!(
            logits(&shallow, &x).equal(&g1),
            "{arch}: the shallow model differs from gate 1"
        );
        // In between, the mix is linear in the gate.
        gated.set_gate(0.25);
        let mid = logits(&gated, &x);
        assert!(!mid.equal(&g1), "{arch}: the gate has no effect");
        // Fewer sites and MACs once the main branches are gone.
        assert!(shallow.sites().len() < plain.sites().len());
        assert!(shallow.macs_total() < plain.macs_total());
    }
}

#[test]
fn gate_schedule_rises_to_one_at_the_ramp_and_stays() {
    let lin = GateSchedule {
        shape: GateShape::Linear,
        ramp: 90,
    };
    assert_eq!(lin.at(0), 0.0);
    assert!((lin.at(45) - 0.5).abs() < 1e-12);
    assert_eq!(lin.at(90), 1.0);
    assert_eq!(lin.at(179), 1.0);
    let cos = GateSchedule {
        shape: GateShape::Cosine,
        ramp: 10,
    };
    assert_eq!(cos.at(0), 0.0);
    assert!((cos.at(5) - 0.5).abs() < 1e-12);
    assert!(cos.at(2) < lin.at(18)); // slow start
    assert_eq!(cos.at(10), 1.0);
}

/// Batch norm folded into its conv equals conv then BN; a conv followed by a 1x1 conv composes
/// exactly; a 3x3 after a 3x3 is refused (not exact at the border).
#[test]
fn folded_conv_bn_and_composed_convs_are_exact() {
    // Every draw under one seed, held against other threads' draws.
    with_torch_seed(5, || {
        let opts = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([2, 6, 9, 9], opts);
        let w = Tensor::randn([8, 6, 3, 3], opts);
        let (g, b) = (Tensor::rand([8], opts) + 0.5, Tensor::randn([8], opts));
        let (m, v) = (Tensor::randn([8], opts), Tensor::rand([8], opts) + 0.5);
        let y = x.conv2d(&w, None::<Tensor>, [2, 2], [1, 1], [1, 1], 1);
        let y = y.batch_norm(
            Some(&g),
            Some(&b),
            Some(&m),
            Some(&v),
            false,
            0.1,
            1e-5,
            false,
        );
        let folded = fold_bn(&w, &g, &b, &m, &v, 1e-5, 2, 1);
        let d = (folded.forward(&x) - &y).abs().max().double_value(&[]);
        assert!(d < 1e-4, "folded BN differs by {d}");
        let second = AffineConv {
            weight: Tensor::randn([5, 8, 1, 1], opts),
            bias: Tensor::randn([5], opts),
            stride: 1,
            padding: 0,
        };
        let both = compose(&folded, &second).unwrap();
        let d = (both.forward(&x) - second.forward(&y))
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-4, "composed convs differ by {d}");
        let three = AffineConv {
            weight: Tensor::randn([5, 8, 3, 3], opts),
            bias: Tensor::randn([5], opts),
            stride: 1,
            padding: 1,
        };
        assert!(compose(&folded, &three).is_err());
    });
}

/// ResNet-18 at width 0.25 (16 base channels) with layer1.0, layer2.1 and layer3.1 shallow and
/// the AC after layer3 serving, against numbers computed by hand.
#[test]
fn reshaped_resnet18_accounting_matches_hand_computed() {
    let plain = Model::new(spec("resnet18", 0.25), Device::Cpu).unwrap();
    assert_eq!(
        plain.depth(),
        Some((18, 16)),
        "ResNet-18: 16 block convolutions"
    );
    let wrn = Model::new(spec("wrn-22-8", 0.0625), Device::Cpu).unwrap();
    assert_eq!(wrn.depth().unwrap().1, 18, "WRN-22: 18 block convolutions");
    let mut s = spec("resnet18", 0.25);
    s.shallow = vec!["layer1.0".into(), "layer2.1".into(), "layer3.1".into()];
    s.aux = Some(AuxHead {
        after: "layer3".into(),
        serve: true,
    });
    let m = Model::new(s.clone(), Device::Cpu).unwrap();
    let conv = |cin: i64, cout: i64, k: i64, side: i64| cin * cout * k * k * side * side;
    let stem = conv(3, 16, 3, 32);
    let layer1 = conv(16, 16, 3, 32) * 3; // shallow 1.0 (one conv) + 1.1 (two)
    let layer2 =
        conv(16, 32, 3, 16) + conv(32, 32, 3, 16) + conv(16, 32, 1, 16) + conv(32, 32, 3, 16);
    let layer3 = conv(32, 64, 3, 8) + conv(64, 64, 3, 8) + conv(32, 64, 1, 8) + conv(64, 64, 3, 8);
    let aux = conv(64, 128, 3, 4) + 128 * 10;
    assert_eq!(m.macs_total(), stem + layer1 + layer2 + layer3 + aux);
    let relus = 16 * 1024 // stem
        + 16 * 1024 * 3 // layer1: 1.0.act2, 1.1.act1, 1.1.act2
        + 32 * 256 * 3 // layer2: 2.0 both, 2.1.act2
        + 64 * 64 * 3 // layer3
        + 128 * 16; // aux.act1
    assert_eq!(m.relu_count(), relus);
    // Longest path: stem, 3 + 3 + 3 block convolutions, aux conv, aux fc.
    assert_eq!(m.depth(), Some((12, 9)));
    // The AC trained but not served: neither its site nor its layers count.
    s.aux = Some(AuxHead {
        after: "layer3".into(),
        serve: false,
    });
    let t = Model::new(s, Device::Cpu).unwrap();
    let layer4 = conv(64, 128, 3, 4) + conv(128, 128, 3, 4) * 3 + conv(64, 128, 1, 4);
    assert_eq!(
        t.macs_total(),
        stem + layer1 + layer2 + layer3 + layer4 + 128 * 10
    );
    assert_eq!(
        t.relu_count(),
        relus - 128 * 16 + 128 * 16 * 4,
        "layer4's four sites count, the AC's does not"
    );
    assert_eq!(t.depth(), Some((15, 13)));
}

fn data() -> DataConfig {
    DataConfig {
        train_per_class: Some(12),
        test_per_class: Some(4),
        augment: false,
        ..DataConfig::default()
    }
}

/// An all-ReLU ResNet-18 checkpoint in `dir/ar` and a partial-ReLU one in `dir/pr` whose masks
/// linearize `layer1.0.act1` and `layer2.1.act1` entirely and half of `layer3.0.act1`.
fn checkpoints(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let m = Model::seeded(spec("resnet18", 0.125), Device::Cpu, 0).unwrap();
    let splits = data().load().unwrap();
    let ck = |masks: Option<String>| CheckpointSpec {
        model: m.spec.clone(),
        convention_text: m.spec.convention.describe(),
        dataset: splits.train.name.clone(),
        data: data(),
        class_names: splits.train.classes.clone(),
        normalization: splits.norm,
        masks,
    };
    let (ar, pr) = (dir.join("ar"), dir.join("pr"));
    for d in [&ar, &pr] {
        std::fs::create_dir_all(d).unwrap();
        m.save_weights(&d.join("model.safetensors")).unwrap();
    }
    ck(None).save(&ar).unwrap();
    let mut masks = MaskSet::all_kept(m.sites().len());
    for (i, s) in m.sites().iter().enumerate() {
        match s.name.as_str() {
            "layer1.0.act1" | "layer2.1.act1" => masks.set(i, SiteMask::Identity),
            "layer3.0.act1" => {
                let t = Tensor::ones(s.shape, (Kind::Float, Device::Cpu));
                let _ = t.narrow(0, 0, s.shape[0] / 2).fill_(0.0);
                masks.set(i, SiteMask::Tensor(t));
            }
            _ => {}
        }
    }
    export(&m, &masks, &pr).unwrap();
    ck(Some(MASKS_FILE.into())).save(&pr).unwrap();
    (ar, pr)
}

#[test]
fn block_sensitivity_selects_the_linearized_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pr) = checkpoints(dir.path());
    let (m, _, masks) = load_with_masks(&pr, Device::Cpu).unwrap();
    let b = block_sensitivity(&m, &masks.unwrap(), 0.1).unwrap();
    let d: HashMap<&str, f64> = b.iter().map(|b| (b.block.as_str(), b.d)).collect();
    assert_eq!(d["layer1.0"], 0.0);
    assert_eq!(d["layer2.1"], 0.0);
    assert!((d["layer3.0"] - 0.5).abs() < 1e-12);
    assert_eq!(d["layer4.1"], 1.0);
    let sel: Vec<&str> = b
        .iter()
        .filter(|b| b.selected)
        .map(|b| b.block.as_str())
        .collect();
    assert_eq!(sel, ["layer1.0", "layer2.1"]);
    // Only the intra-block site is a candidate: never the stem or a post-addition site.
    assert!(b
        .iter()
        .all(|b| b.sites.len() == 1 && b.sites[0].ends_with(".act1")));
}

fn quick_ft(epochs: usize) -> FinetuneConfig {
    let mut ft = FinetuneConfig::default();
    ft.train.epochs = epochs;
    ft.train.batch_size = 40;
    ft.train.eval_batch_size = 40;
    ft.train.schedule.kind = "constant".into();
    ft
}

/// The stage end to end: blocks below d_th made shallow, AC served, report rows consistent with
/// the checkpoint; a run stopped after two epochs and resumed to three equals a straight run.
#[test]
fn reshape_stage_writes_a_shallow_checkpoint_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (ar, pr) = checkpoints(dir.path());
    let rc = ReshapeConfig {
        aux: AuxMode::Serve,
        ramp_epochs: Some(1),
        init_batches: 2,
        ..ReshapeConfig::default()
    };
    let straight = dir.path().join("straight");
    let r = reshape(
        &pr,
        Some(&ar),
        &quick_ft(3),
        &rc,
        &straight,
        Device::Cpu,
        false,
    )
    .unwrap();
    assert_eq!(r.rows.len(), 4, "all-ReLU, start, with GB, AC output");
    assert_eq!(r.rows[2].layer_depth, Some(14));
    assert_eq!(
        r.rows[3].layer_depth,
        Some(10),
        "14 minus layer4's four convolutions"
    );
    assert!(r.rows[3].macs < r.rows[2].macs && r.rows[2].macs < r.rows[1].macs);
    assert!(r.test_acc_gate1_fit.is_some() && r.branch_init.len() == 2);
    let (m, spec, masks) = load_with_masks(&straight, Device::Cpu).unwrap();
    assert_eq!(spec.model.shallow, ["layer1.0", "layer2.1"]);
    assert!(matches!(&spec.model.aux, Some(a) if a.serve && a.after == "layer3"));
    assert_eq!(
        privlin::reshape::run::kept_relus(&m, &masks.unwrap()).unwrap(),
        r.rows[3].relus
    );
    assert_eq!(m.macs_total(), r.rows[3].macs);
    // Stopped after two epochs, resumed to three.
    let split = dir.path().join("split");
    reshape(
        &pr,
        Some(&ar),
        &quick_ft(2),
        &rc,
        &split,
        Device::Cpu,
        false,
    )
    .unwrap();
    reshape(&pr, Some(&ar), &quick_ft(3), &rc, &split, Device::Cpu, true).unwrap();
    let read = |d: &Path| -> HashMap<String, Tensor> {
        Tensor::read_safetensors(d.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .collect()
    };
    let (a, b) = (read(&straight), read(&split));
    assert_eq!(a.len(), b.len());
    for (k, t) in &a {
        assert!(t.equal(&b[k]), "weight {k} differs after resume");
    }
    // The same stage in channels-last layout: the same shallow model, weights to float rounding.
    let mut ft = quick_ft(3);
    ft.train.channels_last = true;
    let cl = dir.path().join("channels-last");
    let r_cl = reshape(&pr, Some(&ar), &ft, &rc, &cl, Device::Cpu, false).unwrap();
    assert_eq!(r_cl.rows[3].relus, r.rows[3].relus);
    assert_eq!(r_cl.rows[3].macs, r.rows[3].macs);
    let c = read(&cl);
    for (k, t) in &a {
        let d = (t - &c[k]).abs().max().double_value(&[]);
        assert!(
            d < 1e-2,
            "weight {k} differs by {d} in channels-last layout"
        );
    }
}

#[test]
fn bad_reshape_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ar, pr) = checkpoints(dir.path());
    let run = |rc: ReshapeConfig, out: &str| {
        reshape(
            &pr,
            Some(&ar),
            &quick_ft(2),
            &rc,
            &dir.path().join(out),
            Device::Cpu,
            false,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let e = run(
        ReshapeConfig {
            d_th: Some(1.5),
            ..ReshapeConfig::default()
        },
        "a",
    );
    assert!(e.contains("d_th") && e.contains("1.5"), "{e}");
    assert!(
        !dir.path().join("a").exists(),
        "nothing written on bad input"
    );
    let e = format!(
        "{:#}",
        reshape(
            &pr,
            Some(&ar),
            &quick_ft(2),
            &ReshapeConfig {
                aux: AuxMode::Serve,
                aux_after: Some("layer4".into()),
                ..ReshapeConfig::default()
            },
            &dir.path().join("b"),
            Device::Cpu,
            false
        )
        .unwrap_err()
    );
    assert!(e.contains("layer4") && e.contains("last stage"), "{e}");
    // A gate that never reaches 1 within the epochs.
    let e = run(
        ReshapeConfig {
            ramp_epochs: Some(2),
            ..ReshapeConfig::default()
        },
        "c",
    );
    assert!(e.contains("ramp_epochs"), "{e}");
    // Blocks that do not exist, architectures without residual blocks.
    let mut s = spec("resnet18", 0.125);
    s.shallow = vec!["layer5.0".into()];
    let e = Model::new(s, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("layer5.0") && e.contains("layer4.1"), "{e}");
    let mut s = spec("resnet50", 0.125);
    s.shallow = vec!["layer1.0".into()];
    let e = Model::new(s, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("resnet50") && e.contains("bottleneck"), "{e}");
    let mut s = spec("vgg11", 0.125);
    s.gated = vec!["layer1.0".into()];
    let e = Model::new(s, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("no residual blocks"), "{e}");
    // A reshaped checkpoint loaded as the plain architecture names the extra tensor.
    let mut s = spec("resnet18", 0.125);
    s.shallow = vec!["layer2.1".into()];
    let reshaped = Model::new(s, Device::Cpu).unwrap();
    let w = dir.path().join("reshaped.safetensors");
    reshaped.save_weights(&w).unwrap();
    let mut plain = Model::new(spec("resnet18", 0.125), Device::Cpu).unwrap();
    let e = plain.load_weights(&w).unwrap_err().to_string();
    assert!(
        e.contains("layer2.1.bn1") || e.contains("layer2.1.conv1"),
        "{e}"
    );
}

/// A threshold that selects no block: said so, and the stage fine-tunes without gated branching.
#[test]
fn threshold_selecting_no_block_continues_without_gated_branching() {
    let dir = tempfile::tempdir().unwrap();
    let (ar, pr) = checkpoints(dir.path());
    let rc = ReshapeConfig {
        d_th: Some(0.0),
        ..ReshapeConfig::default()
    };
    let r = reshape(
        &pr,
        Some(&ar),
        &quick_ft(1),
        &rc,
        &dir.path().join("o"),
        Device::Cpu,
        false,
    )
    .unwrap();
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("without gated branching")),
        "{:?}",
        r.notes
    );
    assert_eq!(r.rows[2].layer_depth, Some(16));
}
