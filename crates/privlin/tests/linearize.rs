//! Mask learners, fine-tuning and the mask export on tiny models and synthetic data.
use privlin::budget::{allocate, Allocation, Budget};
use privlin::data::{DataConfig, Loader};
use privlin::importance::{Importance, PlayerSite};
use privlin::linearize::export::{ACTIVE_FILE, ACTIVE_JSON, MASKS_FILE};
use privlin::linearize::finetune::pram;
use privlin::linearize::gradproj::GradProj;
use privlin::linearize::run::{finetune, linearize, linearize_from, BudgetSource, StageReport};
use privlin::linearize::taylor::ProgressiveTaylor;
use privlin::linearize::{
    global_topk, topk_mask, BudgetOutcome, DistillConfig, FinetuneConfig, LinearizeConfig,
    MaskLearner, Targets, Teacher,
};
use privlin::nn::{with_torch_seed, Granularity, MaskSet, Model, ModelSpec};
use privlin::train::{CheckpointSpec, EpochMetrics, MaskProgress, Objective};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn data() -> DataConfig {
    DataConfig {
        train_per_class: Some(12),
        test_per_class: Some(4),
        augment: false,
        ..DataConfig::default()
    }
}

fn spec() -> ModelSpec {
    let mut s = ModelSpec::new("resnet9".parse().unwrap());
    s.width = 0.125;
    s
}

/// An (untrained) all-ReLU checkpoint on synthetic data in `dir`.
fn ar_checkpoint(dir: &Path) -> Model {
    let m = Model::seeded(spec(), Device::Cpu, 0).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    m.save_weights(&dir.join("model.safetensors")).unwrap();
    let splits = data().load().unwrap();
    CheckpointSpec {
        model: m.spec.clone(),
        convention_text: m.spec.convention.describe(),
        dataset: splits.train.name.clone(),
        data: data(),
        class_names: splits.train.classes.clone(),
        normalization: splits.norm,
        masks: None,
    }
    .save(dir)
    .unwrap();
    m
}

/// Per-site budgets proportional to capacity.
fn allocation(m: &Model, budget: &str) -> Allocation {
    let sites: Vec<PlayerSite> = m
        .sites()
        .iter()
        .enumerate()
        .map(|(i, s)| PlayerSite {
            player: i,
            name: s.name.clone(),
            capacity: s.count(),
            kind: s.kind,
        })
        .collect();
    let imp = Importance {
        sites: Some(sites),
        ..Importance::new(
            "proportional",
            m.sites().iter().map(|s| s.name.clone()).collect(),
            m.sites().iter().map(|s| s.count() as f64).collect(),
        )
    };
    allocate(&imp, budget.parse::<Budget>().unwrap()).unwrap()
}

fn quick(method: &str) -> LinearizeConfig {
    let mut c = LinearizeConfig {
        method: Some(method.into()),
        ..LinearizeConfig::default()
    };
    c.train.epochs = 1;
    c.train.batch_size = 40;
    c.train.eval_batch_size = 40;
    c.taylor.update_every = 1;
    c.snl.check_every = 1;
    c
}

fn mask_file(dir: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(dir.join(MASKS_FILE))
        .unwrap()
        .into_iter()
        .collect()
}

/// A global learner's run of `c` on the checkpoint `ar` to a total of `total` ReLUs.
fn linearize_to(ar: &Path, c: &LinearizeConfig, total: i64, out: &Path) -> StageReport {
    linearize(
        ar,
        BudgetSource::Total(Budget::Count(total)),
        c,
        out,
        Device::Cpu,
        false,
    )
    .unwrap()
}

/// A per-site learner's run of `c` on the checkpoint `ar` with the budgets of `budget.json`.
fn linearize_within(
    ar: &Path,
    budget: &Path,
    c: &LinearizeConfig,
    out: &Path,
    resume: bool,
) -> StageReport {
    let src = BudgetSource::Allocation(budget);
    linearize(ar, src, c, out, Device::Cpu, resume).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The mask learner's record of every epoch in `dir/metrics.jsonl`.
fn progress(dir: &Path) -> Vec<MaskProgress> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<EpochMetrics>(l)
                .unwrap()
                .masks
                .expect("a masks record")
        })
        .collect()
}

/// The two runs' exported masks are identical (`what` names the comparison in a failure).
fn assert_same_masks(a: &Path, b: &Path, what: &str) {
    let (ma, mb) = (mask_file(a), mask_file(b));
    for (k, t) in &ma {
        assert!(t.equal(&mb[k]), "{what}: masks of {k} differ");
    }
}

/// The two checkpoints' weights are identical (`what` names the comparison in a failure).
fn assert_same_weights(a: &Path, b: &Path, what: &str) {
    let read = |d: &Path| -> HashMap<String, Tensor> {
        Tensor::read_safetensors(d.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .collect()
    };
    let (wa, wb) = (read(a), read(b));
    for (k, t) in &wa {
        assert!(t.equal(&wb[k]), "{what}: weight {k} differs");
    }
}

#[test]
fn topk_is_exact_and_breaks_ties_by_position() {
    let s = Tensor::from_slice(&[0.5f32, 2.0, 2.0, -1.0, 0.0, 2.0]).view([1, 2, 3]);
    let m = topk_mask(&s, 2);
    assert_eq!(
        Vec::<f32>::try_from(m.flatten(0, -1)).unwrap(),
        vec![0., 1., 1., 0., 0., 0.]
    );
    assert_eq!(topk_mask(&s, 0).sum(Kind::Float).double_value(&[]), 0.0);
    assert_eq!(topk_mask(&s, 99).sum(Kind::Float).double_value(&[]), 6.0);
    // Global: entries of the second site stand for 4 ReLUs each.
    let a = Tensor::from_slice(&[5.0f32, 1.0, 3.0]);
    let b = Tensor::from_slice(&[4.0f32, 2.0]);
    let g = global_topk(&[Some(a), None, Some(b)], &[1, 1, 4], 6);
    assert!(g[1].is_none());
    let ga = Vec::<f32>::try_from(g[0].as_ref().unwrap()).unwrap();
    let gb = Vec::<f32>::try_from(g[2].as_ref().unwrap()).unwrap();
    // 5 (1 ReLU) + 4 (4 ReLUs) + 3 (1 ReLU) = 6.
    assert_eq!((ga, gb), (vec![1., 0., 1.], vec![1., 0.]));
}

#[test]
fn gradient_projection_holds_every_site_budget_after_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let m = ar_checkpoint(dir.path());
    let alloc = allocation(&m, "7%");
    let targets = Targets::from_allocation(&m, &alloc, "test").unwrap();
    let splits = data().load().unwrap();
    let loader = Loader::train(splits.train.clone(), splits.norm, 40, 0, false, Device::Cpu);
    for ranking in ["instantaneous", "accumulated"] {
        let mut cfg = quick("gradproj").gradproj;
        cfg.ranking = ranking.into();
        let mut gp = GradProj::new(
            &m,
            Teacher::new(Model::new(spec(), Device::Cpu).unwrap()),
            &targets,
            Granularity::Pixel,
            DistillConfig::default(),
            &cfg,
        )
        .unwrap();
        let mut prev: Option<Vec<Tensor>> = None;
        let mut changed = false;
        for (step, b) in loader.epoch(0).enumerate() {
            let (loss, _) = gp.loss(&m, &b).unwrap();
            loss.backward();
            gp.after_step(&m, step).unwrap();
            let masks = gp.current_masks();
            let counts = masks.counts(m.sites()).unwrap();
            for (s, (c, sb)) in m.sites().iter().zip(counts.iter().zip(&alloc.sites)) {
                assert_eq!(*c, sb.budget, "{ranking}: step {step}, site {}", s.name);
            }
            let now: Vec<Tensor> = masks
                .named_tensors(m.sites())
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            if let Some(p) = &prev {
                changed |= p.iter().zip(&now).any(|(a, b)| !a.equal(b));
            }
            prev = Some(now);
        }
        assert!(changed, "{ranking}: the masks never moved");
    }
}

#[test]
fn taylor_keep_ratio_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let m = ar_checkpoint(dir.path());
    let targets = Targets::global(&m, m.relu_count() / 20).unwrap();
    let t = ProgressiveTaylor::new(
        &m,
        Teacher::new(Model::new(spec(), Device::Cpu).unwrap()),
        &targets,
        Granularity::Pixel,
        DistillConfig::default(),
        LinearizeConfig::default().taylor,
        1000,
    );
    let target = targets.total as f64 / m.relu_count() as f64;
    assert_eq!(t.keep_ratio(0), 1.0);
    assert_eq!(t.keep_ratio(99), 1.0);
    assert!((t.keep_ratio(600) - target).abs() < 1e-12);
    assert!((t.keep_ratio(999) - target).abs() < 1e-12);
    let mut last = 1.0;
    for s in 100..600 {
        let r = t.keep_ratio(s);
        assert!(r <= last && r > target, "step {s}: {r}");
        last = r;
    }
}

/// Every learner ends within its budget, exports masks whose active index matches them, and
/// gives the same masks when run twice with the same seed on the CPU.
#[test]
fn every_learner_meets_its_budget_exports_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let ar = dir.path().join("ar");
    let m = ar_checkpoint(&ar);
    let alloc = allocation(&m, "5%");
    let bpath = dir.path().join("budget.json");
    privlin::io::atomic_write_json(&bpath, &alloc).unwrap();
    for method in [
        "gradproj",
        "senet",
        "taylor",
        "l1-fixed-epochs",
        "l1-budget-ramp",
    ] {
        let mut runs = Vec::new();
        for rep in 0..2 {
            let out = dir.path().join(format!("{method}-{rep}"));
            let r: StageReport = linearize_within(&ar, &bpath, &quick(method), &out, false);
            assert_eq!(r.relus, alloc.budget, "{method}");
            // Only the l1 variants fill, and say so in the report and the notes alike.
            let filled_note = r.notes.iter().any(|n| n.contains("binarized to the"));
            let filled = r.budget_outcome == Some(BudgetOutcome::Filled);
            assert_eq!(filled, filled_note, "{method}: {:?}", r.notes);
            assert!(method.starts_with("l1-") || !filled, "{method}");
            if method == "gradproj" || method == "senet" {
                for (s, b) in r.sites.iter().zip(&alloc.sites) {
                    assert_eq!(s.kept, b.budget, "{method}: {}", s.name);
                }
            } else if method == "taylor" {
                // Its metrics record the pruning schedule as run: never growing, at the budget
                // by the last epoch (the schedule reaches it at `decay_end`).
                let path: Vec<i64> = progress(&out).iter().map(|p| p.relus).collect();
                assert!(path.windows(2).all(|w| w[1] <= w[0]), "{path:?}");
                assert!(path[0] < m.relu_count(), "{path:?}");
                assert_eq!(path.last(), Some(&alloc.budget), "{path:?}");
            }
            let masks = mask_file(&out);
            let active: HashMap<String, Tensor> = Tensor::read_safetensors(out.join(ACTIVE_FILE))
                .unwrap()
                .into_iter()
                .collect();
            let index: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join(ACTIVE_JSON)).unwrap())
                    .unwrap();
            assert_eq!(index["total_active"].as_i64().unwrap(), alloc.budget);
            for s in &r.sites {
                let mk = &masks[&s.name];
                assert_eq!(
                    mk.size(),
                    m.sites().iter().find(|x| x.name == s.name).unwrap().shape
                );
                let idx = &active[&s.name];
                assert_eq!(idx.size()[0], s.kept, "{method}: {}", s.name);
                // The indices point exactly at the ones of the mask.
                let flat = mk.flatten(0, -1);
                assert_eq!(
                    flat.index_select(0, idx).sum(Kind::Float).double_value(&[]),
                    s.kept as f64
                );
            }
            // The checkpoint loads with its masks.
            let (_, spec, loaded) =
                privlin::linearize::run::load_with_masks(&out, Device::Cpu).unwrap();
            assert_eq!(spec.masks.as_deref(), Some(MASKS_FILE));
            assert_eq!(
                loaded
                    .unwrap()
                    .counts(m.sites())
                    .unwrap()
                    .iter()
                    .sum::<i64>(),
                alloc.budget
            );
            runs.push(masks);
        }
        for (k, t) in &runs[0] {
            assert!(
                t.equal(&runs[1][k]),
                "{method}: masks of {k} differ between two runs"
            );
        }
    }
}

/// A run killed after an epoch and resumed ends where an uninterrupted one does: exactly for the
/// learners whose schedule does not depend on the run's length (gradient projection, and SNL,
/// whose long runs to the budget are meant to be resumed), without error for Taylor.
#[test]
fn resumed_linearization_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let ar = dir.path().join("ar");
    let m = ar_checkpoint(&ar);
    let bpath = dir.path().join("budget.json");
    privlin::io::atomic_write_json(&bpath, &allocation(&m, "4%")).unwrap();
    for method in ["gradproj", "taylor", "snl"] {
        let mut two = quick(method);
        two.train.epochs = 2;
        let straight = dir.path().join(format!("{method}-straight"));
        linearize_within(&ar, &bpath, &two, &straight, false);
        // One epoch, then "killed": resume to two from the saved state.
        let split = dir.path().join(format!("{method}-split"));
        let mut one = two.clone();
        one.train.epochs = 1;
        // The schedules depend on the total length: same total, stopped after one epoch.
        linearize_within(&ar, &bpath, &one, &split, false);
        // Epoch 1's metrics line (with its wall time) survives only a real resume.
        let metrics = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
        let first = metrics(&split).lines().next().unwrap().to_string();
        if method == "taylor" {
            // Taylor's schedule spans the whole run: a one-epoch run is not the first half of a
            // two-epoch one, so the resumed run is not compared with the straight one; it must
            // still continue from the saved epoch (its first metrics line kept, one line added)
            // and end at the budget.
            let r = linearize_within(&ar, &bpath, &two, &split, true);
            assert_eq!(metrics(&split).lines().next().unwrap(), first, "{method}");
            assert_eq!(metrics(&split).lines().count(), 2, "{method}");
            assert_eq!(r.relus, allocation(&m, "4%").budget, "{method}");
            continue;
        }
        linearize_within(&ar, &bpath, &two, &split, true);
        assert_eq!(metrics(&split).lines().next().unwrap(), first, "{method}");
        assert_eq!(metrics(&split).lines().count(), 2, "{method}");
        assert_same_masks(&straight, &split, &format!("{method} after resume"));
        assert_same_weights(&straight, &split, &format!("{method} after resume"));
    }
}

/// The largest absolute difference between two checkpoints' weights.
fn max_weight_diff(a: &Path, b: &Path) -> f64 {
    let wa = Tensor::read_safetensors(a.join("model.safetensors")).unwrap();
    let wb: HashMap<String, Tensor> = Tensor::read_safetensors(b.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    wa.iter()
        .map(|(k, t)| {
            (t - &wb[k])
                .abs()
                .max()
                .to_kind(Kind::Double)
                .double_value(&[])
        })
        .fold(0.0, f64::max)
}

/// The share of the ReLUs kept in run `a` that run `b` keeps too.
fn kept_in_both(a: &Path, b: &Path) -> f64 {
    let (ma, mb) = (mask_file(a), mask_file(b));
    let (mut both, mut kept) = (0.0, 0.0);
    for (k, t) in &ma {
        both += (t * &mb[k]).sum(Kind::Double).double_value(&[]);
        kept += t.sum(Kind::Double).double_value(&[]);
    }
    both / kept
}

/// `train.channels_last` in mask learning and fine-tuning is a layout, not another computation:
/// one masked forward and backward agree with the contiguous layout to float rounding; after
/// training, every learner keeps most of the same ReLUs (top-k can flip near-ties) and the
/// weights agree to rounding; a channels-last run resumes exactly.
#[test]
fn channels_last_learns_the_same_masks_as_the_contiguous_layout() {
    let dir = tempfile::tempdir().unwrap();
    let ar = dir.path().join("ar");
    let m = ar_checkpoint(&ar);
    // One masked forward and backward: the same logits and mask gradients in both layouts, to
    // float rounding (random pixel masks, a batch of real-size inputs).
    let x = with_torch_seed(1, || {
        Tensor::randn([6, 3, 32, 32], (Kind::Float, Device::Cpu))
    });
    let pass = |channels_last: bool| {
        let mut model = Model::seeded(spec(), Device::Cpu, 0).unwrap();
        model.use_channels_last(channels_last).unwrap();
        let masks = MaskSet::ones(model.sites(), Granularity::Pixel, true, Device::Cpu);
        let x = if channels_last {
            privlin::nn::layers::to_channels_last(&x)
        } else {
            x.shallow_clone()
        };
        let logits = model.forward_masked(&x, true, &masks);
        logits.sum(Kind::Float).backward();
        let grads: Vec<Tensor> = (0..masks.len())
            .map(|i| match masks.get(i) {
                privlin::nn::SiteMask::Tensor(t) => t.grad(),
                _ => unreachable!(),
            })
            .collect();
        (logits.detach(), grads)
    };
    let ((la, ga), (lb, gb)) = (pass(false), pass(true));
    let rel = |a: &Tensor, b: &Tensor| {
        let d = (a - b).abs().max().double_value(&[]);
        d / a.abs().max().double_value(&[]).max(1e-12)
    };
    assert!(rel(&la, &lb) < 1e-4, "logits differ by {}", rel(&la, &lb));
    for (i, (a, b)) in ga.iter().zip(&gb).enumerate() {
        assert!(
            rel(a, b) < 1e-3,
            "site {i}: mask gradients differ by {}",
            rel(a, b)
        );
    }
    let bpath = dir.path().join("budget.json");
    let alloc = allocation(&m, "5%");
    privlin::io::atomic_write_json(&bpath, &alloc).unwrap();
    for method in ["gradproj", "senet", "taylor", "l1-budget-ramp", "snl"] {
        let mut outs = Vec::new();
        for channels_last in [false, true] {
            let mut c = quick(method);
            c.train.channels_last = channels_last;
            let out = dir.path().join(format!("{method}-{channels_last}"));
            let r = linearize_within(&ar, &bpath, &c, &out, false);
            if method != "snl" {
                assert_eq!(r.relus, alloc.budget, "{method}");
            }
            outs.push(out);
        }
        let share = kept_in_both(&outs[0], &outs[1]);
        let d = max_weight_diff(&outs[0], &outs[1]);
        eprintln!("{method}: {share:.4} of the kept ReLUs in both layouts, weights within {d:.2e}");
        assert!(
            share >= 0.8,
            "{method}: only {share:.3} of the kept ReLUs agree between layouts"
        );
        assert!(d < 1e-2, "{method}: weights differ by {d} between layouts");
    }
    // Fine-tuning in both layouts from the same masks.
    let pr = dir.path().join("gradproj-false");
    let mut cfg = FinetuneConfig::default();
    cfg.train.epochs = 2;
    cfg.train.batch_size = 40;
    let contiguous = dir.path().join("ft-contiguous");
    finetune(&pr, None, &cfg, &contiguous, Device::Cpu, false).unwrap();
    cfg.train.channels_last = true;
    let straight = dir.path().join("ft-cl");
    let r = finetune(&pr, None, &cfg, &straight, Device::Cpu, false).unwrap();
    assert_eq!(r.relus, alloc.budget);
    assert_same_masks(&contiguous, &straight, "fine-tuning, two layouts");
    let d = max_weight_diff(&contiguous, &straight);
    eprintln!("fine-tuning: weights within {d:.2e}");
    assert!(
        d < 1e-2,
        "fine-tuning: weights differ by {d} between layouts"
    );
    // A channels-last mask-learning run killed after one epoch resumes to the uninterrupted one.
    let mut two = quick("gradproj");
    two.train.channels_last = true;
    two.train.epochs = 2;
    let mut one = two.clone();
    one.train.epochs = 1;
    let (straight, split) = (dir.path().join("cl-straight"), dir.path().join("cl-split"));
    linearize_within(&ar, &bpath, &two, &straight, false);
    linearize_within(&ar, &bpath, &one, &split, false);
    linearize_within(&ar, &bpath, &two, &split, true);
    assert_same_masks(&straight, &split, "channels-last after resume");
    assert_same_weights(&straight, &split, "channels-last after resume");
}

#[test]
fn finetune_keeps_the_masks_and_pram_vanishes_on_equal_maps() {
    let x = with_torch_seed(0, || {
        Tensor::randn([3, 4, 5, 5], (Kind::Float, Device::Cpu))
    });
    assert!(pram(&x, &x).double_value(&[]).abs() < 1e-12);
    assert!(
        pram(&x, &(&x * 3.0)).double_value(&[]).abs() < 1e-10,
        "scale invariant"
    );
    assert!(pram(&x, &x.relu()).double_value(&[]) > 0.0);
    // Channels-last maps (vectorized in memory order) give the same value, also when only the
    // student is channels-last.
    let y = with_torch_seed(1, || {
        Tensor::randn([3, 4, 5, 5], (Kind::Float, Device::Cpu))
    });
    let cl = privlin::nn::layers::to_channels_last;
    let p = pram(&x, &y).double_value(&[]);
    for (s, t) in [(cl(&x), cl(&y)), (cl(&x), y.shallow_clone())] {
        let q = pram(&s, &t).double_value(&[]);
        assert!(
            (p - q).abs() <= 1e-6 * p,
            "pram {q} in channels-last against {p}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let ar = dir.path().join("ar");
    let m = ar_checkpoint(&ar);
    let bpath = dir.path().join("budget.json");
    let alloc = allocation(&m, "3%");
    privlin::io::atomic_write_json(&bpath, &alloc).unwrap();
    let pr = dir.path().join("pr");
    linearize_within(&ar, &bpath, &quick("gradproj"), &pr, false);
    let mut cfg = FinetuneConfig::default();
    cfg.train.epochs = 1;
    cfg.train.batch_size = 40;
    let fin = dir.path().join("final");
    let r = finetune(&pr, None, &cfg, &fin, Device::Cpu, false).unwrap();
    assert_eq!(r.relus, alloc.budget);
    assert!(r.test_acc_start.is_some());
    let (a, b) = (mask_file(&pr), mask_file(&fin));
    for (k, t) in &a {
        assert!(t.equal(&b[k]), "fine-tuning moved the mask of {k}");
    }
    // Weights did change.
    let wa = Tensor::read_safetensors(pr.join("model.safetensors")).unwrap();
    let wb: HashMap<String, Tensor> = Tensor::read_safetensors(fin.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    assert!(wa.iter().any(|(k, t)| !t.equal(&wb[k])));
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ar = dir.path().join("ar");
    let m = ar_checkpoint(&ar);
    let mut alloc = allocation(&m, "5%");
    alloc.sites[2].name = "layer9.nope".into();
    let bpath = dir.path().join("budget.json");
    privlin::io::atomic_write_json(&bpath, &alloc).unwrap();
    let out = dir.path().join("pr");
    let e = linearize(
        &ar,
        BudgetSource::Allocation(&bpath),
        &quick("gradproj"),
        &out,
        Device::Cpu,
        false,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("layer9.nope"), "{e:#}");
    let e = linearize(
        &ar,
        BudgetSource::Total("5%".parse().unwrap()),
        &quick("gradprojx"),
        &out,
        Device::Cpu,
        false,
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("unknown linearization method `gradprojx`"),
        "{e:#}"
    );
    let e = linearize(
        &ar,
        BudgetSource::Total("5%".parse().unwrap()),
        &quick("gradproj"),
        &out,
        Device::Cpu,
        false,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("budget.json"), "{e:#}");
    let e = linearize(
        &ar,
        BudgetSource::Total("0".parse().unwrap()),
        &quick("taylor"),
        &out,
        Device::Cpu,
        false,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("budget of 0 is refused"), "{e:#}");
    let e = finetune(
        &ar,
        None,
        &FinetuneConfig::default(),
        &out,
        Device::Cpu,
        false,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("has no masks"), "{e:#}");
    // A mask file that does not fit the model names the site.
    let mut set = MaskSet::all_kept(m.sites().len());
    set.set(
        1,
        privlin::nn::SiteMask::Tensor(Tensor::ones([3, 3], (Kind::Float, Device::Cpu))),
    );
    let p = dir.path().join("bad.safetensors");
    set.save(m.sites(), &p).unwrap();
    let e = MaskSet::load(m.sites(), &p, Device::Cpu).unwrap_err();
    assert!(format!("{e:#}").contains(&m.sites()[1].name), "{e:#}");
}

#[test]
fn channel_masks_round_budgets_down_to_whole_channels() {
    let dir = tempfile::tempdir().unwrap();
    let ar = dir.path().join("ar");
    let m = ar_checkpoint(&ar);
    let alloc = allocation(&m, "20%");
    let bpath = dir.path().join("budget.json");
    privlin::io::atomic_write_json(&bpath, &alloc).unwrap();
    let mut cfg = quick("gradproj");
    cfg.granularity = Granularity::Channel;
    let out = dir.path().join("pr");
    let r = linearize_within(&ar, &bpath, &cfg, &out, false);
    for ((s, b), site) in r.sites.iter().zip(&alloc.sites).zip(m.sites()) {
        let plane = site.shape[1] * site.shape[2];
        assert_eq!(s.kept % plane, 0, "{}", s.name);
        assert_eq!(s.kept, b.budget / plane * plane, "{}", s.name);
    }
    // The export expands channel masks to full site shapes.
    let masks = mask_file(&out);
    for site in m.sites() {
        assert_eq!(masks[&site.name].size(), site.shape.to_vec());
    }
}

/// SNL as its authors run it: it stops as soon as the count reaches the budget (alphas above the
/// threshold kept, at most the budget, never filled), its alphas are not clamped, the same seed
/// gives the same masks; when the epoch cap comes first the point says "budget not reached" and
/// keeps the threshold's masks, over the budget.
#[test]
fn snl_stops_at_the_budget_or_says_it_was_not_reached() {
    let dir = tempfile::tempdir().unwrap();
    let ar = dir.path().join("ar");
    let m = ar_checkpoint(&ar);
    let total = Budget::Ratio(0.3).resolve(m.relu_count()).unwrap();
    let snl = |lambda: f64, cap: usize, out: &Path| {
        let mut c = quick("snl");
        c.train.epochs = cap;
        // Fast alphas so that a tiny model gets there in a few epochs.
        c.train.optimizer.lr = 0.05;
        c.snl.lambda = lambda;
        c.snl.warmup_epochs = 1;
        linearize_to(&ar, &c, total, out)
    };
    let (a, b) = (dir.path().join("snl-a"), dir.path().join("snl-b"));
    let r = snl(2e-3, 40, &a);
    assert_eq!(
        r.budget_outcome,
        Some(BudgetOutcome::AtMost),
        "{:?}",
        r.notes
    );
    assert!(r.relus <= total && r.relus > 0, "{} of {total}", r.relus);
    assert!(
        r.epochs < 40,
        "stopped when the budget was reached: {}",
        r.epochs
    );
    assert!(
        r.notes[0].contains("reached the budget after"),
        "{:?}",
        r.notes
    );
    // No clamping: the l1 penalty drove some alphas below zero.
    let state: HashMap<String, Tensor> = Tensor::read_safetensors(a.join("resume.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    let min = state
        .iter()
        .filter(|(k, _)| k.starts_with("objective.alpha.") || k.starts_with("alpha."))
        .map(|(_, t)| t.min().double_value(&[]))
        .fold(f64::MAX, f64::min);
    assert!(min < 0.0, "smallest alpha {min}");
    // The path in metrics.jsonl: the count above the budget with lambda never shrinking until
    // the last epoch, which holds the kept masks and no penalty; drawn in trajectory.svg.
    let path = progress(&a);
    assert_eq!(path.len(), r.epochs);
    let (last, before) = path.split_last().unwrap();
    assert_eq!(
        *last,
        MaskProgress {
            relus: r.relus,
            lambda: None
        }
    );
    assert!(before.iter().all(|p| p.relus > total), "{before:?}");
    let lambdas: Vec<f64> = before.iter().map(|p| p.lambda.unwrap()).collect();
    assert_eq!(lambdas[0], 2e-3);
    assert!(
        lambdas
            .windows(2)
            .all(|w| w[1] == w[0] || w[1] == w[0] * 1.1),
        "{lambdas:?}"
    );
    assert!(a.join("trajectory.svg").exists());
    // Deterministic.
    let r2 = snl(2e-3, 40, &b);
    assert_eq!((r2.relus, r2.epochs), (r.relus, r.epochs));
    assert_same_masks(&a, &b, "same seed");
    // The cap first: marked, over the budget, not filled or cut.
    let c = dir.path().join("snl-cap");
    let r = snl(1e-9, 1, &c);
    assert_eq!(r.budget_outcome, Some(BudgetOutcome::NotReached));
    assert!(r.relus > total, "{} of {total}", r.relus);
    assert_eq!(r.epochs, 1);
    assert!(r.notes[0].contains("budget not reached"), "{:?}", r.notes);
    assert_eq!(
        progress(&c),
        [MaskProgress {
            relus: r.relus,
            lambda: Some(1e-9)
        }]
    );
}

/// SNL's path does not depend on the budget until it stops: a run to a smaller budget continued
/// from where a run to a larger one stopped ends exactly where a run from scratch does (masks,
/// weights, epochs, metrics), a budget the stopped run already holds stops at once with its masks,
/// and a larger budget, another config or another learner's run is refused by name.
#[test]
fn snl_continues_its_path_to_a_smaller_budget_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ar = dir.path().join("ar");
    let m = ar_checkpoint(&ar);
    let (big, small) = (
        Budget::Ratio(0.3).resolve(m.relu_count()).unwrap(),
        Budget::Ratio(0.15).resolve(m.relu_count()).unwrap(),
    );
    let mut c = quick("snl");
    c.train.epochs = 60;
    c.train.optimizer.lr = 0.05;
    c.snl.lambda = 2e-3;
    c.snl.warmup_epochs = 1;
    let d = |n: &str| dir.path().join(n);
    let cont = |target: i64, cfg: &LinearizeConfig, from: &Path, out: &Path| {
        linearize_from(
            &ar,
            BudgetSource::Total(Budget::Count(target)),
            cfg,
            out,
            Device::Cpu,
            false,
            Some(from),
        )
    };
    let first = linearize_to(&ar, &c, big, &d("big"));
    assert_eq!(first.budget_outcome, Some(BudgetOutcome::AtMost));
    let fresh = linearize_to(&ar, &c, small, &d("fresh"));
    assert_eq!(fresh.budget_outcome, Some(BudgetOutcome::AtMost));
    assert!(
        fresh.epochs > first.epochs,
        "{} vs {}",
        fresh.epochs,
        first.epochs
    );
    let r = cont(small, &c, &d("big"), &d("cont")).unwrap();
    assert_eq!((r.relus, r.epochs), (fresh.relus, fresh.epochs));
    assert!(
        r.notes.iter().any(|n| n.contains("continued the SNL path")),
        "{:?}",
        r.notes
    );
    assert_same_masks(&d("fresh"), &d("cont"), "continued vs from scratch");
    assert_same_weights(&d("fresh"), &d("cont"), "continued vs from scratch");
    let lines = |p: &Path| {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines(&d("cont")), fresh.epochs);
    // A budget the stopped run already holds: no further epoch, its masks.
    let r = cont(first.relus, &c, &d("big"), &d("held")).unwrap();
    assert_eq!((r.relus, r.epochs), (first.relus, first.epochs));
    assert_same_masks(&d("big"), &d("held"), "a budget already held");
    // Refusals.
    let e = cont(big + 1, &c, &d("big"), &d("larger")).unwrap_err();
    assert!(format!("{e:#}").contains("stops earlier"), "{e:#}");
    let mut other = c.clone();
    other.snl.lambda = 1e-3;
    let e = cont(small, &other, &d("big"), &d("other")).unwrap_err();
    assert!(format!("{e:#}").contains("config differs"), "{e:#}");
    let mut ramp = c.clone();
    ramp.method = Some("l1-budget-ramp".into());
    let e = cont(small, &ramp, &d("big"), &d("ramp")).unwrap_err();
    assert!(format!("{e:#}").contains("only `snl`"), "{e:#}");
}

/// privlin's budget-ramp variant gets to the budget by its own penalty within a fixed number of
/// steps (frozen there, no end-of-run fill), where the stall rule of `l1-fixed-epochs` with the
/// same steps never does and fills; both hold the budget exactly, and the ramp is deterministic.
#[test]
fn l1_budget_ramp_reaches_the_budget_where_the_stall_rule_fills() {
    let dir = tempfile::tempdir().unwrap();
    let ar = dir.path().join("ar");
    let m = ar_checkpoint(&ar);
    let total = Budget::Ratio(0.1).resolve(m.relu_count()).unwrap();
    let run = |method: &str, out: &Path| {
        let mut c = quick(method);
        c.train.epochs = 8;
        linearize_to(&ar, &c, total, out)
    };
    let (a, b) = (dir.path().join("ramp-a"), dir.path().join("ramp-b"));
    let r = run("l1-budget-ramp", &a);
    assert_eq!(
        r.budget_outcome,
        Some(BudgetOutcome::Exact),
        "{:?}",
        r.notes
    );
    assert_eq!(r.relus, total);
    assert!(
        r.notes[0].contains("by its penalty at step"),
        "{:?}",
        r.notes
    );
    let path = progress(&a);
    assert_eq!(path.len(), 8);
    assert_eq!(
        path.last(),
        Some(&MaskProgress {
            relus: total,
            lambda: None
        }),
        "frozen at the budget: {path:?}"
    );
    let r2 = run("l1-budget-ramp", &b);
    assert_eq!(r2.notes, r.notes);
    assert_same_masks(&a, &b, "same seed");
    let r = run("l1-fixed-epochs", &dir.path().join("stall"));
    assert_eq!(
        r.budget_outcome,
        Some(BudgetOutcome::Filled),
        "{:?}",
        r.notes
    );
    assert_eq!(r.relus, total);
}
