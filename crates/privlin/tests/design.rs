//! Network design (issue 18): HybReNet and DeepReDuce ReLU/MAC counts against hand-computed
//! values, culled and thinned sites as the identity, ReLU equalization, DeepReDuce's cull/thin
//! plan for a budget, and bad input refused with the value named.
use privlin::design::cull::{plan, CullRule};
use privlin::design::equalize::{equalize, parse_order, EqualizeConfig};
use privlin::design::stage_costs;
use privlin::info::ModelInfo;
use privlin::nn::{with_torch_seed, Arch, Convention, MaskSet, Model, ModelSpec, Thin};
use tch::{Device, Kind, Tensor};

fn spec(arch: &str, width: f64) -> ModelSpec {
    let mut s = ModelSpec::new(arch.parse::<Arch>().unwrap());
    s.width = width;
    s
}

fn stage_relus(info: &ModelInfo, stage: &str) -> i64 {
    info.stages
        .iter()
        .find(|r| r.stage == stage)
        .map(|r| r.relus)
        .unwrap()
}

#[test]
fn hybrenet_counts_match_hand_computed_values() {
    // hrn-5x7x2x at m = 4: stage widths 4, 20, 140, 280 on 32, 16, 8, 4 pixels, two blocks of
    // two ReLUs each.
    let m = Model::new(spec("hrn-5x7x2x", 0.0625), Device::Cpu).unwrap();
    let info = ModelInfo::of(&m);
    assert_eq!(stage_relus(&info, "stem"), 4 * 32 * 32);
    assert_eq!(stage_relus(&info, "layer1"), 4 * 4 * 32 * 32);
    assert_eq!(stage_relus(&info, "layer2"), 4 * 20 * 16 * 16);
    assert_eq!(stage_relus(&info, "layer3"), 4 * 140 * 8 * 8);
    assert_eq!(stage_relus(&info, "layer4"), 4 * 280 * 4 * 4);
    assert_eq!(m.relu_count(), 4096 + 16384 + 20480 + 35840 + 17920);
    // Stage 4 MACs: first block 9*140*280*16 + 9*280^2*16, its 1x1 shortcut 140*280*16, the
    // second block 18*280^2*16.
    let s4 = info
        .stages
        .iter()
        .find(|r| r.stage == "layer4")
        .unwrap()
        .macs;
    assert_eq!(s4, 5_644_800 + 11_289_600 + 627_200 + 22_579_200);
    // SNL's convention drops the stem.
    let mut snl = spec("hrn-5x7x2x", 0.0625);
    snl.convention = Convention::SNL;
    assert_eq!(
        Model::new(snl, Device::Cpu).unwrap().relu_count(),
        m.relu_count() - 4096
    );
}

#[test]
fn formula_costs_equal_the_traced_model() {
    let mut cases = vec![
        spec("resnet18", 0.25),
        spec("hrn-5x7x2x", 0.0625),
        spec("hrn-6x6x2x", 0.0625),
    ];
    let mut r34 = spec("resnet34", 0.125);
    r34.stem_stride = 2;
    cases.push(r34);
    let mut blocks = spec("hrn-2x3x2x", 0.125);
    blocks.blocks = Some(vec![1, 3, 2, 1]);
    blocks.input_size = 64;
    cases.push(blocks);
    for s in cases {
        let m = Model::new(s.clone(), Device::Cpu).unwrap();
        let info = ModelInfo::of(&m);
        let (stem, st, head) = stage_costs(&s).unwrap();
        assert_eq!(stage_relus(&info, "stem"), stem.relus, "{}", s.arch);
        for (k, c) in st.iter().enumerate() {
            let row = info
                .stages
                .iter()
                .find(|r| r.stage == format!("layer{}", k + 1))
                .unwrap();
            assert_eq!(
                (row.relus, row.macs),
                (c.relus, c.macs),
                "{} stage {k}",
                s.arch
            );
        }
        assert_eq!(
            stem.macs + st.iter().map(|c| c.macs).sum::<i64>() + head,
            m.macs_total(),
            "{}",
            s.arch
        );
    }
}

#[test]
fn culled_thinned_and_reshaped_resnet18_counts() {
    // Full-width ResNet-18, convention `all`: 65,536 stem; stages 262,144 / 131,072 / 65,536 /
    // 32,768 ReLUs.
    let mut s = spec("resnet18", 1.0);
    s.cull = vec!["stem".into(), "layer1".into()];
    let m = Model::new(s.clone(), Device::Cpu).unwrap();
    assert_eq!(m.relu_count(), 131_072 + 65_536 + 32_768);
    s.thin = Some(Thin::Second);
    let m = Model::new(s.clone(), Device::Cpu).unwrap();
    assert_eq!(m.relu_count(), (131_072 + 65_536 + 32_768) / 2);
    // Thinning keeps each block's first ReLU (DeepReDuce's models) and drops the post-addition one.
    for (i, site) in m.sites().iter().enumerate() {
        if site.name.starts_with("layer2") {
            assert_eq!(m.removed(i), site.name.ends_with("act2"), "{}", site.name);
        }
    }
    // The MACs do not change with culling: only ReLUs are removed.
    assert_eq!(
        m.macs_total(),
        Model::new(spec("resnet18", 1.0), Device::Cpu)
            .unwrap()
            .macs_total()
    );
    // Resolution reshaping: a stem stride of 2 quarters every map.
    let mut r = spec("resnet18", 1.0);
    r.stem_stride = 2;
    assert_eq!(
        Model::new(r, Device::Cpu).unwrap().relu_count(),
        557_056 / 4
    );
    // s1..s4 name the body stages.
    let mut a = spec("resnet18", 0.25);
    a.cull = vec!["s4".into()];
    let mut b = spec("resnet18", 0.25);
    b.cull = vec!["layer4".into()];
    assert_eq!(
        Model::new(a, Device::Cpu).unwrap().relu_count(),
        Model::new(b, Device::Cpu).unwrap().relu_count()
    );
}

#[test]
fn removed_sites_are_the_identity_whatever_the_masks() {
    let mut s = spec("resnet18", 0.125);
    s.cull = vec!["stem".into(), "layer3".into()];
    s.thin = Some(Thin::Second);
    let culled = Model::seeded(s.clone(), Device::Cpu, 3).unwrap();
    let plain = Model::seeded(spec("resnet18", 0.125), Device::Cpu, 4).unwrap();
    let mut vars = plain.vs.variables();
    tch::no_grad(|| {
        for (n, t) in culled.vs.variables() {
            vars.get_mut(&n).unwrap().copy_(&t);
        }
    });
    let keep: Vec<bool> = (0..culled.sites().len())
        .map(|i| !culled.removed(i))
        .collect();
    let x = with_torch_seed(3, || {
        Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu))
    });
    let want = tch::no_grad(|| plain.forward_masked(&x, false, &MaskSet::coalition(&keep)));
    // Masks of ones everywhere: the removed sites stay the identity.
    let got =
        tch::no_grad(|| culled.forward_masked(&x, false, &MaskSet::all_kept(culled.sites().len())));
    assert!((&want - &got).abs().max().double_value(&[]) < 1e-6);
    assert!(
        (&got - tch::no_grad(|| plain.forward(&x, false)))
            .abs()
            .max()
            .double_value(&[])
            > 1e-3,
        "culling changed nothing"
    );
}

#[test]
fn relu_equalization_recovers_the_slides_networks() {
    let order = parse_order("S3>S2>S4>S1").unwrap();
    let base = spec("hrn-1x1x1x", 0.25);
    let run = |gamma_max| {
        equalize(&EqualizeConfig {
            order: order.clone(),
            gamma_max,
            max_multiplier: 16,
            base: base.clone(),
        })
        .unwrap()
    };
    let c2 = run(2);
    let names: Vec<&str> = c2.iter().map(|c| c.arch.as_str()).collect();
    for want in ["hrn-7x5x2x", "hrn-6x6x2x", "hrn-5x7x2x"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(!names.contains(&"hrn-5x5x3x"), "gamma bound ignored");
    assert_eq!(names[0], "hrn-5x7x2x", "fewest ReLUs first");
    for c in &c2 {
        assert!(c.multipliers[2] <= 2);
        for w in order.windows(2) {
            assert!(c.stages[w[0]].relus > c.stages[w[1]].relus, "{}", c.arch);
        }
        // Minimal: no other candidate is at most as large in every multiplier.
        for o in &c2 {
            let dominates = o.multipliers != c.multipliers
                && (0..3).all(|k| o.multipliers[k] <= c.multipliers[k]);
            assert!(!dominates, "{} dominated by {}", c.arch, o.arch);
        }
        // Stage counts of the candidate equal the built model's (at a width small enough).
        if c.arch == "hrn-5x7x2x" {
            let m = Model::new(spec(&c.arch, 0.25), Device::Cpu).unwrap();
            assert_eq!(c.relus, m.relu_count());
        }
    }
    let c3 = run(3);
    assert_eq!(c3[0].arch, "hrn-5x5x3x");
    // An order that no multipliers satisfy within the search range is refused.
    let err = equalize(&EqualizeConfig {
        order: parse_order("S4>S3>S2>S1").unwrap(),
        gamma_max: 2,
        max_multiplier: 3,
        base,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("no multipliers"), "{err}");
}

#[test]
fn deepreduce_plan_takes_the_largest_configuration_within_the_budget() {
    let m = Model::new(spec("resnet18", 1.0), Device::Cpu).unwrap();
    let order: Vec<String> = ["layer3", "layer2", "layer4", "layer1", "stem"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // The `search` variant. 10 % of 557,056: layer3 + layer4 thinned (32,768 + 16,384) fits,
    // layer3 alone does not.
    let plan = |m: &Model, order: &[String], budget| plan(m, order, budget, CullRule::Search);
    let p = plan(&m, &order, 55_705).unwrap();
    assert!(p.reached);
    assert_eq!(p.relus, 49_152);
    assert_eq!(p.thin, Some(Thin::Second));
    assert_eq!(p.kept, vec!["layer3".to_string(), "layer4".to_string()]);
    // Exactly layer3's count: kept whole, not thinned.
    let p = plan(&m, &order, 65_536).unwrap();
    assert_eq!((p.relus, p.thin), (65_536, None));
    assert_eq!(p.kept, vec!["layer3".to_string()]);
    // Below the smallest configuration (layer4 thinned, 16,384): not reached, said so.
    let p = plan(&m, &order, 5_000).unwrap();
    assert!(!p.reached);
    assert_eq!(p.relus, 16_384);
    // An order that misses a stage is refused with the stage named.
    let err = plan(&m, &order[..4], 50_000).unwrap_err().to_string();
    assert!(err.contains("`stem`"), "{err}");
}

/// DeepReDuce's order (the default rule): the least critical stages go first and the kept ones
/// are thinned before the next cull, so only the most critical stages are kept, whatever the
/// search would gain by keeping a less critical one (issue 39).
#[test]
fn deepreduce_order_culls_the_least_critical_stages_first() {
    let m = Model::new(spec("resnet18", 1.0), Device::Cpu).unwrap();
    let order: Vec<String> = ["layer3", "layer2", "layer4", "layer1", "stem"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rule = CullRule::Deepreduce;
    // 10 %: layer3 + layer2 (196,608) thinned is 98,304, over; layer3 alone (65,536) over;
    // layer3 thinned (32,768) fits. The search keeps layer3 + layer4 thinned (49,152) instead,
    // culling the second most critical stage.
    let p = plan(&m, &order, 55_705, rule).unwrap();
    assert!(p.reached);
    assert_eq!((p.relus, p.thin), (32_768, Some(Thin::Second)));
    assert_eq!(p.kept, vec!["layer3".to_string()]);
    assert_eq!(p.culled, ["layer2", "layer4", "layer1", "stem"]);
    let s = plan(&m, &order, 55_705, CullRule::Search).unwrap();
    assert_eq!(s.relus, 49_152);
    // Every budget keeps a prefix of the order: the most critical stages.
    for budget in [600_000, 300_000, 200_000, 150_000, 100_000, 70_000, 40_000] {
        let p = plan(&m, &order, budget, rule).unwrap();
        assert!(p.reached && p.relus <= budget, "{budget}: {p:?}");
        assert_eq!(p.kept[..], order[..p.kept.len()], "{budget}");
    }
    // No cull when the whole network fits; below the smallest (layer3 thinned), not reached.
    assert_eq!(plan(&m, &order, 557_056, rule).unwrap().culled.len(), 0);
    let p = plan(&m, &order, 5_000, rule).unwrap();
    assert!(!p.reached);
    assert_eq!((p.relus, &p.kept[..]), (32_768, &order[..1]));
}

#[test]
fn bad_design_input_is_refused_with_the_value_named() {
    let e = |s: &str| s.parse::<Arch>().unwrap_err().to_string();
    assert!(e("hrn-5x7").contains("hrn-5x7"), "{}", e("hrn-5x7"));
    assert!(e("hrn-5x0x2x").contains("beta = 0"), "{}", e("hrn-5x0x2x"));
    assert!(e("hrn-5x-1x2x").contains("-1"), "{}", e("hrn-5x-1x2x"));
    assert!(e("hrn-ax7x2x").contains("`a`"), "{}", e("hrn-ax7x2x"));
    let build = |s: ModelSpec| Model::new(s, Device::Cpu).unwrap_err().to_string();
    let mut s = spec("resnet18", 0.25);
    s.cull = vec![
        "stem".into(),
        "s1".into(),
        "s2".into(),
        "s3".into(),
        "s4".into(),
    ];
    assert!(build(s).contains("removes every counted ReLU"));
    let mut s = spec("resnet18", 0.25);
    s.cull = vec!["layer7".into()];
    let msg = build(s);
    assert!(msg.contains("`layer7`") && msg.contains("layer4"), "{msg}");
    let mut s = spec("resnet18", 0.25);
    s.stem_stride = 2;
    s.input_size = 40;
    let msg = build(s);
    assert!(
        msg.contains("40x40") && msg.contains("stem stride 2"),
        "{msg}"
    );
    let mut s = spec("vgg11", 0.25);
    s.stem_stride = 2;
    assert!(build(s).contains("vgg11"));
    let mut s = spec("resnet18", 0.25);
    s.blocks = Some(vec![2, 0, 2, 2]);
    assert!(build(s).contains("[2, 0, 2, 2]"));
    assert!("sideways"
        .parse::<Thin>()
        .unwrap_err()
        .to_string()
        .contains("sideways"));
    assert!(parse_order("S3>S5>S4>S1")
        .unwrap_err()
        .to_string()
        .contains("S5"));
}

#[test]
fn criticality_ranks_stages_per_relu_or_by_total_value() {
    use privlin::design::{Criticality, RankBy};
    use privlin::importance::Importance;
    let m = Model::new(spec("resnet18", 0.25), Device::Cpu).unwrap();
    // Stage ReLUs 16,384 (stem) / 65,536 / 32,768 / 16,384 / 8,192; values as a stage game
    // might give them.
    let imp = Importance::new(
        "shapley-exact",
        ["act1", "layer1", "layer2", "layer3", "layer4"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        vec![1.3, 24.0, 17.5, 9.5, 3.3],
    );
    let per = Criticality::from_importance(&imp, &m, RankBy::PerRelu).unwrap();
    assert_eq!(per.order_s, "S3>S2>S4>S1");
    assert_eq!(per.order.last().unwrap(), "stem");
    let total = Criticality::from_importance(&imp, &m, RankBy::Total).unwrap();
    assert_eq!(total.order_s, "S1>S2>S3>S4");
    let stem = &per.stages[0];
    assert_eq!((stem.stage.as_str(), stem.relus), ("stem", 16_384));
    assert!((stem.per_krelu - 1.3 / 16.384).abs() < 1e-9);
    // A player that is not a stage is refused.
    let blocks = Importance::new("x", vec!["layer1.0".into()], vec![1.0]);
    let err = Criticality::from_importance(&blocks, &m, RankBy::PerRelu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer1.0") && err.contains("--players stages"),
        "{err}"
    );
}
