//! Layer importance on a model: prefix-shared utilities, SENet sensitivity, Taylor layer importance.
use privlin::data::{DataConfig, Loader};
use privlin::importance::game::{full, Game, Oracle};
use privlin::importance::players::{players, site_keep, Grouping};
use privlin::importance::shapley::exact::Exact;
use privlin::importance::shapley::ShapleyEstimator;
use privlin::importance::utility::ModelOracle;
use privlin::importance::{senet, taylor_layer};
use privlin::nn::{Convention, MaskSet, Model, ModelSpec};
use tch::{Device, Kind};

fn setup(arch: &str, convention: Convention) -> (Model, Loader) {
    tch::manual_seed(0);
    let mut s = ModelSpec::new(arch.parse().unwrap());
    s.width = 0.125;
    s.convention = convention;
    let m = Model::new(s, Device::Cpu).unwrap();
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
    let t = taylor_layer::layer_importance(&m, &ps, &l, 2).unwrap();
    assert!(t.iter().all(|v| v.is_finite() && *v > 0.0), "{t:?}");
    assert!(senet::sensitivity(&m, &ps, 1.5).is_err());
}
