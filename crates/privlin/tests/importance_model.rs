//! Layer importance on a model: prefix-shared utilities, SENet sensitivity, Taylor layer importance.
use privlin::data::{DataConfig, Loader};
use privlin::importance::game::{full, Game, Oracle};
use privlin::importance::players::{players, site_keep, Grouping};
use privlin::importance::shapley::exact::Exact;
use privlin::importance::shapley::ShapleyEstimator;
use privlin::importance::utility::{ModelOracle, UtilityKind};
use privlin::importance::{senet, senet_sparse, taylor_layer};
use privlin::nn::{Convention, MaskSet, Model, ModelSpec};
use tch::{Device, Kind};

fn setup(arch: &str, convention: Convention) -> (Model, Loader) {
    let mut s = ModelSpec::new(arch.parse().unwrap());
    s.width = 0.125;
    s.convention = convention;
    let m = Model::seeded(s, Device::Cpu, 0).unwrap();
    let d = DataConfig {
        train_per_class: Some(4),
        test_per_class: Some(6),
        ..DataConfig::default()
    }
    .load()
    .unwrap();
    (m, Loader::eval(d.test.clone(), d.norm, 25, Device::Cpu))
}

#[test]
fn prefix_shared_utilities_equal_plain_masked_evaluation() {
    let (m, l) = setup("resnet9", Convention::ALL);
    let ps = players(&m, Grouping::Sites).unwrap();
    assert_eq!(ps.len(), 8);
    let mut o = ModelOracle::new(&m, ps.clone(), &l);
    let coalitions: Vec<u64> = vec![
        0,
        full(8),
        0b1010_1010,
        0b0101_0101,
        0b1111_0000,
        0b0000_1111,
        0b1000_0001,
    ];
    let got = o.evaluate(&coalitions).unwrap();
    for (c, u) in coalitions.iter().zip(&got) {
        let masks = MaskSet::coalition(&site_keep(&m, &ps, *c));
        let mut hits = 0i64;
        tch::no_grad(|| {
            for b in l.epoch(0) {
                hits += m
                    .forward_masked(&b.images, false, &masks)
                    .argmax(-1, false)
                    .eq_tensor(&b.labels)
                    .to_kind(Kind::Int64)
                    .sum(Kind::Int64)
                    .int64_value(&[]);
            }
        });
        assert!(
            (u - 100.0 * hits as f64 / 60.0).abs() < 1e-9,
            "coalition {c:b}: {u}"
        );
    }
    // Exact enumeration in site order shares most of the forward work.
    let mut o = ModelOracle::new(&m, ps, &l);
    let mut g = Game::new(&mut o);
    let (v, _) = Exact::default().estimate(&mut g).unwrap();
    assert_eq!(g.evaluations(), 256);
    let total: f64 = v.iter().sum();
    let (uf, ue) = (g.utility(full(8)).unwrap(), g.utility(0).unwrap());
    assert!(
        (total - (uf - ue)).abs() < 1e-9,
        "efficiency: {total} vs {}",
        uf - ue
    );
    drop(g);
    assert!(
        o.segments_run * 3 < o.segments_full,
        "{} of {} segments",
        o.segments_run,
        o.segments_full
    );
}

#[test]
fn player_groups_and_uncounted_sites() {
    let (m, _) = setup("resnet18", Convention::SNL);
    // SNL convention: the stem is not a player.
    let sites = players(&m, Grouping::Sites).unwrap();
    assert_eq!(sites.len(), 16);
    assert!(sites.iter().all(|p| p.name != "act1"));
    let blocks = players(&m, Grouping::Blocks).unwrap();
    assert_eq!(blocks.len(), 8);
    assert_eq!(blocks[0].name, "layer1.0");
    assert_eq!(players(&m, Grouping::Stages).unwrap().len(), 4);
    let keep = site_keep(&m, &blocks, 0);
    assert!(
        keep[0] && !keep[1],
        "uncounted stem kept, counted sites off"
    );
}

#[test]
fn senet_and_taylor_scores_are_finite_and_informative() {
    let (m, l) = setup("resnet18", Convention::SNL);
    let ps = players(&m, Grouping::Sites).unwrap();
    let s = senet::sensitivity(&m, &ps, 0.1).unwrap();
    assert_eq!(s.len(), 16);
    assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(s.iter().any(|&v| v > 0.0 && v < 1.0), "{s:?}");
    // SENet eq. 1 recomputed here by hand: prune every convolution's weights globally by
    // magnitude to density 0.1 (the keep-th largest |w| stays), then each site's sensitivity is
    // one minus the surviving fraction of the weight layer before it (0 without one).
    let vars = m.vs.variables();
    let abs_weights = |name: &str| -> Vec<f32> {
        Vec::<f32>::try_from(vars[&format!("{name}.weight")].abs().flatten(0, -1)).unwrap()
    };
    let mut all: Vec<f32> = m
        .layers()
        .iter()
        .filter(|l| l.kind == privlin::nn::LayerKind::Conv)
        .flat_map(|l| abs_weights(&l.name))
        .collect();
    all.sort_by(|a, b| b.total_cmp(a));
    let keep = ((all.len() as f64) * 0.1).round().max(1.0) as usize;
    let threshold = all[keep - 1];
    for (k, p) in ps.iter().enumerate() {
        assert_eq!(p.sites.len(), 1);
        let want = match m.preceding_layer(p.sites[0]) {
            Some(l) => {
                let w = abs_weights(&l.name);
                1.0 - w.iter().filter(|&&x| x >= threshold).count() as f64 / w.len() as f64
            }
            None => 0.0,
        };
        assert!((s[k] - want).abs() < 1e-6, "site {k}: {} vs {want}", s[k]);
    }
    let t = taylor_layer::layer_importance(&m, &ps, &l, 2).unwrap();
    assert!(t.iter().all(|v| v.is_finite() && *v > 0.0), "{t:?}");
    assert!(senet::sensitivity(&m, &ps, 1.5).is_err());
}

/// SENet's sensitivity by sparse training: the convolutions end at the target density, every
/// sensitivity is a fraction, and the same seed gives the same values.
#[test]
fn senet_sparse_training_reaches_the_density_and_is_deterministic() {
    // One initial model, copied for each run (other tests draw from libtorch's global generator
    // concurrently, so two `Model::new` calls need not agree).
    let (m0, _) = setup("resnet9", Convention::ALL);
    let ps = players(&m0, Grouping::Sites).unwrap();
    let d = DataConfig {
        train_per_class: Some(8),
        test_per_class: Some(2),
        ..DataConfig::default()
    }
    .load()
    .unwrap();
    let train = Loader::train(d.train.clone(), d.norm, 20, 0, false, Device::Cpu);
    let cfg = senet_sparse::SparseTraining {
        density: 0.2,
        epochs: 2,
        lr: 0.01,
        batch_size: 20,
        seed: 0,
    };
    let run = || {
        let mut m = Model::new(m0.spec.clone(), Device::Cpu).unwrap();
        m.vs.copy(&m0.vs).unwrap();
        senet_sparse::sensitivity(&mut m, &ps, &train, &cfg).unwrap()
    };
    let (s, reached) = run();
    assert!((reached - 0.2).abs() < 0.01, "density reached {reached}");
    assert!(s.iter().all(|v| (0.0..=1.0).contains(v)), "{s:?}");
    assert!(s.iter().any(|&v| v > 0.0 && v < 1.0), "{s:?}");
    assert_eq!(run().0, s);
}

/// The smooth utilities are what their definitions say on a plain masked evaluation: mean
/// log-probability of the label (-CE), and minus the mean KL from the all-ReLU model's
/// predictions (zero for the full coalition).
#[test]
fn smooth_utilities_match_their_definitions() {
    let (m, l) = setup("resnet9", Convention::ALL);
    let ps = players(&m, Grouping::Sites).unwrap();
    let coalitions: Vec<u64> = vec![0, full(8), 0b1010_1010, 0b0000_1111];
    let ce = ModelOracle::new(&m, ps.clone(), &l)
        .with_utility(UtilityKind::NegCrossEntropy)
        .evaluate(&coalitions)
        .unwrap();
    let kl = ModelOracle::new(&m, ps.clone(), &l)
        .with_utility(UtilityKind::NegKl)
        .evaluate(&coalitions)
        .unwrap();
    for (i, c) in coalitions.iter().enumerate() {
        let masks = MaskSet::coalition(&site_keep(&m, &ps, *c));
        let (mut lp, mut kls, mut n) = (0.0, 0.0, 0.0);
        tch::no_grad(|| {
            for b in l.epoch(0) {
                let s = m
                    .forward_masked(&b.images, false, &masks)
                    .log_softmax(-1, Kind::Double);
                let t = m.forward(&b.images, false).log_softmax(-1, Kind::Double);
                lp += s
                    .gather(1, &b.labels.unsqueeze(1), false)
                    .sum(Kind::Double)
                    .double_value(&[]);
                kls += (t.exp() * (&t - &s)).sum(Kind::Double).double_value(&[]);
                n += b.labels.size()[0] as f64;
            }
        });
        assert!(
            (ce[i] - lp / n).abs() < 1e-4,
            "ce {c:b}: {} vs {}",
            ce[i],
            lp / n
        );
        assert!(
            (kl[i] + kls / n).abs() < 1e-4,
            "kl {c:b}: {} vs {}",
            kl[i],
            -kls / n
        );
        assert!(kl[i] <= 1e-6);
    }
    assert!(
        kl[1].abs() < 1e-6,
        "the full coalition is the all-ReLU model"
    );
    assert!(kl[0] < kl[1] && ce[0] != ce[1]);
}

/// Adaptive image count: with a loose target every coalition stops after the two-batch minimum
/// (and equals the utility of those two batches); with a target of zero it takes every image.
#[test]
fn adaptive_image_count_stops_when_the_stderr_allows() {
    let (m, l) = setup("resnet9", Convention::ALL);
    let ps = players(&m, Grouping::Sites).unwrap();
    let coalitions: Vec<u64> = vec![0, full(8), 0b1010_1010];
    let mut loose = ModelOracle::new(&m, ps.clone(), &l).with_target_stderr(Some(1e9));
    let u = loose.evaluate(&coalitions).unwrap();
    assert_eq!(loose.images_run, 3 * 50, "two batches of 25 per coalition");
    assert_eq!(loose.images_full, 3 * 60);
    let mut all = ModelOracle::new(&m, ps.clone(), &l).with_target_stderr(Some(0.0));
    all.evaluate(&coalitions).unwrap();
    assert_eq!(all.images_run, 3 * 60);
    for (c, u) in coalitions.iter().zip(&u) {
        let masks = MaskSet::coalition(&site_keep(&m, &ps, *c));
        let hits: i64 = tch::no_grad(|| {
            l.epoch(0)
                .take(2)
                .map(|b| {
                    m.forward_masked(&b.images, false, &masks)
                        .argmax(-1, false)
                        .eq_tensor(&b.labels)
                        .to_kind(Kind::Int64)
                        .sum(Kind::Int64)
                        .int64_value(&[])
                })
                .sum()
        });
        assert!((u - 100.0 * hits as f64 / 50.0).abs() < 1e-9, "{c:b}: {u}");
    }
}

#[test]
fn batched_coalitions_equal_one_at_a_time() {
    // Several coalitions per forward pass (per-image keep flags past the shared prefix) give the
    // utilities of one coalition per pass, on a residual network (skip states stacked too).
    let (m, l) = setup("resnet18", Convention::ALL);
    let ps = players(&m, Grouping::Sites).unwrap();
    let n = ps.len();
    assert_eq!(n, 17);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut coalitions: Vec<u64> = vec![0, full(n)];
    while coalitions.len() < 15 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let c = rng & full(n);
        if !coalitions.contains(&c) {
            coalitions.push(c);
        }
    }
    let plain = ModelOracle::new(&m, ps.clone(), &l)
        .with_utility(UtilityKind::NegCrossEntropy)
        .evaluate(&coalitions)
        .unwrap();
    for k in [3, 64] {
        let mut o = ModelOracle::new(&m, ps.clone(), &l)
            .with_utility(UtilityKind::NegCrossEntropy)
            .with_coalitions_per_pass(k);
        let got = o.evaluate(&coalitions).unwrap();
        for ((c, a), b) in coalitions.iter().zip(&plain).zip(&got) {
            assert!((a - b).abs() < 1e-4, "k {k}, coalition {c:b}: {a} vs {b}");
        }
        assert_eq!(o.images_run, 15 * 60);
    }
    let mut o = ModelOracle::new(&m, ps, &l)
        .with_utility(UtilityKind::NegCrossEntropy)
        .with_coalitions_per_pass(4);
    let acc = o.evaluate(&[0, full(n)]).unwrap();
    assert!(acc[0] != acc[1], "the keep flags reach the sites: {acc:?}");
}
