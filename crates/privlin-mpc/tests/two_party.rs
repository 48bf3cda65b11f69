//! The two-party protocol against plaintext fixed-point inference, over the in-memory channel.

use privlin_mpc::net::{mem, Channel};
use privlin_mpc::nonlinear::Nonlinear;
use privlin_mpc::protocol::{
    Client, Inference, OfflineMode, Options, OutputMode, Server, Truncation,
};
use privlin_mpc::synthetic::{self, Spec};
use privlin_mpc::{plain, QuantModel, Ring};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Seeded (reproducible, insecure) options revealing `output`; the wrap-failure bound is lifted
/// for the small rings that these tests use to exercise the arithmetic.
fn opts(seed: u64, output: OutputMode) -> Options {
    Options {
        max_wrap_log2: 0.0,
        ..Options::insecure_seeded(seed).with_output(output)
    }
}

/// Runs `inputs` through a two-thread session revealing the logits; returns the client's results.
fn run(model: &QuantModel, inputs: &[Vec<u64>], seed: u64) -> Vec<Inference> {
    run_with(model, inputs, &opts(seed, OutputMode::Logits))
}

fn run_with(model: &QuantModel, inputs: &[Vec<u64>], o: &Options) -> Vec<Inference> {
    let (a, b) = mem::pair();
    let m = model.clone();
    let so = *o;
    let server = std::thread::spawn(move || {
        let mut s = Server::start(m, Channel::new(Box::new(a)), &so).unwrap();
        s.serve().unwrap()
    });
    let mut c = Client::connect(Channel::new(Box::new(b)), o).unwrap();
    c.record_shares(true);
    let out = inputs.iter().map(|x| c.infer_encoded(x).unwrap()).collect();
    c.close().unwrap();
    assert_eq!(server.join().unwrap(), inputs.len());
    out
}

fn random_input(model: &QuantModel, rng: &mut ChaCha8Rng) -> Vec<u64> {
    let x: Vec<f32> = (0..model.arch.numel(0))
        .map(|_| rng.gen_range(-2.0..2.0))
        .collect();
    QuantModel::encode_input(&model.arch, &model.ring, &x).unwrap()
}

/// Property: for random models (plain, with max-pooling, with pre-activation channel affines),
/// masks, inputs and rings, the two-party logits equal plaintext fixed-point inference exactly, where the reference truncates identity positions the way the
/// two shares do (SecureML local truncation, replayed from the client's recorded share); with
/// active ReLUs on garbled circuits and on OT (every digit size across the cases).
#[test]
fn two_party_equals_plaintext_fixed_point() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let rings = [
        Ring::default(),
        Ring::new(48, 8, 24).unwrap(),
        Ring::new(40, 6, 20).unwrap(),
    ];
    for case in 0..9 {
        let spec = Spec {
            max_pool: case % 3 == 1,
            pre_activation: case % 3 == 2,
            width: rng.gen_range(2..5),
            blocks: rng.gen_range(1..3),
            downsample: rng.gen_bool(0.5),
            keep: [0.0, 0.1, 0.5, 1.0][case % 4],
            // A site on the input: truncation shift 0 (once refused by a panic in debug builds).
            input_site: case >= 5,
            // An imported torchvision-style stem: the padded 3x3 max-pool, a concatenation.
            padded_max_pool: case == 4 || case == 6,
            concat: case == 3 || case == 6,
            // Imported ReLU6 sites (two OT sites each on the OT family).
            relu6: case == 4 || case == 7,
            ..Spec::default()
        };
        let ring = rings[case % rings.len()];
        let file = synthetic::model(&mut rng, &spec);
        let model = QuantModel::new(&file, ring).unwrap();
        let inputs: Vec<Vec<u64>> = (0..2).map(|_| random_input(&model, &mut rng)).collect();
        if spec.relu6 && spec.keep > 0.0 {
            // The bound bites: without it the logits differ (so the comparison below can tell a
            // wrong bound from a right one).
            let mut unbounded = file.clone();
            let mut json = unbounded.arch.json.clone();
            for op in &mut json.ops {
                if let privlin_mpc::model::Op::Relu { max, .. } = op {
                    *max = None;
                }
            }
            let active = json
                .ops
                .iter()
                .enumerate()
                .filter_map(|(i, op)| match op {
                    privlin_mpc::model::Op::Relu { site, .. } => Some((
                        site.clone(),
                        unbounded.arch.active[&i]
                            .iter()
                            .map(|&p| p as i64)
                            .collect(),
                    )),
                    _ => None,
                })
                .collect();
            unbounded.arch = privlin_mpc::model::Arch::new(json, active).unwrap();
            let plain_unbounded = QuantModel::new(&unbounded, ring).unwrap();
            assert!(
                inputs.iter().any(|x| plain::forward(&model, x).logits
                    != plain::forward(&plain_unbounded, x).logits),
                "case {case}: no active value above the ReLU6 bound"
            );
        }
        let ot = Nonlinear::Ot {
            digit_bits: 1 + case as u32 % 6,
        };
        for nonlinear in [Nonlinear::Gc, ot] {
            let o = opts(100 + case as u64, OutputMode::Logits).with_nonlinear(nonlinear);
            let results = run_with(&model, &inputs, &o);
            for (x, inf) in inputs.iter().zip(&results) {
                let raw = inf.raw.as_ref().expect("logits mode");
                let reference = plain::forward_with(&model, x, &mut |op, p, y, shift| {
                    let yc = inf.site_shares[&op][p];
                    let ys = ring.reduce(y.wrapping_sub(yc));
                    ring.reduce(
                        ring.truncate_share_server(ys, shift)
                            .wrapping_add(ring.truncate_share_client(yc, shift)),
                    )
                });
                assert_eq!(
                    raw, &reference.logits,
                    "case {case} spec {spec:?} ring {ring:?}"
                );
                // Against exact (round-to-nearest) truncation the difference is a few units in the last place.
                let exact = plain::forward(&model, x);
                let scale = *model.scales.last().unwrap();
                for (a, b) in raw.iter().zip(&exact.logits) {
                    let d = (ring.decode(*a, scale) - ring.decode(*b, scale)).abs();
                    // (8 units at f = 6, where pre-activation blocks carry the drift of several
                    // truncations along the untruncated residual stream.)
                    let tol = 0.05f64.max(8.0 / f64::powi(2.0, ring.frac as i32));
                    assert!(d < tol, "case {case}: local truncation drifted by {d}");
                }
                // (The concatenated branch is at scale 2f: the convolution reading it truncates
                // its input locally, not exactly.)
                if spec.keep == 1.0 && !spec.concat {
                    assert_eq!(
                        raw,
                        &exact.logits,
                        "{}: all-active model must match exact truncation",
                        nonlinear.name()
                    );
                }
            }
        }
    }
}

/// Faithful truncation (identity positions on the OT comparison): for random models, masks,
/// inputs and rings, the logits equal plaintext fixed-point inference bit for bit with every
/// identity position truncated exactly on the circuit's w-bit view (`sext_w(y) >> shift`); only
/// a channel affine's input is still truncated locally (replayed from the client's share).
#[test]
fn faithful_truncation_equals_plaintext_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(43);
    let rings = [Ring::default(), Ring::new(48, 8, 24).unwrap()];
    for case in 0..6 {
        let spec = Spec {
            max_pool: case % 3 == 1,
            pre_activation: case % 3 == 2,
            width: rng.gen_range(2..4),
            blocks: rng.gen_range(1..3),
            keep: [0.0, 0.2, 0.6][case % 3],
            input_site: case == 4,
            ..Spec::default()
        };
        let ring = rings[case % rings.len()];
        let model = QuantModel::new(&synthetic::model(&mut rng, &spec), ring).unwrap();
        let inputs: Vec<Vec<u64>> = (0..2).map(|_| random_input(&model, &mut rng)).collect();
        let o = opts(200 + case as u64, OutputMode::Logits)
            .with_nonlinear(Nonlinear::Ot {
                digit_bits: 1 + case as u32 % 6,
            })
            .with_truncation(Truncation::Faithful);
        let results = run_with(&model, &inputs, &o);
        for (x, inf) in inputs.iter().zip(&results) {
            let raw = inf.raw.as_ref().expect("logits mode");
            let reference = plain::forward_with(&model, x, &mut |op, p, y, shift| match model
                .arch
                .ops()[op]
            {
                privlin_mpc::Op::Relu { .. } if shift > 0 => {
                    ring.from_signed(ring.sext_gc(y) >> shift)
                }
                _ => {
                    let yc = inf.site_shares[&op][p];
                    let ys = ring.reduce(y.wrapping_sub(yc));
                    ring.reduce(
                        ring.truncate_share_server(ys, shift)
                            .wrapping_add(ring.truncate_share_client(yc, shift)),
                    )
                }
            });
            assert_eq!(raw, &reference.logits, "case {case} spec {spec:?}");
            if !spec.pre_activation {
                // Without channel affines every truncation is exact: the plain model itself.
                assert_eq!(raw, &plain::forward(&model, x).logits, "case {case}");
            }
        }
    }
    // Refused outside the OT family, before anything is sent.
    let model = QuantModel::new(
        &synthetic::model(&mut rng, &Spec::default()),
        Ring::default(),
    )
    .unwrap();
    let (a, _b) = mem::pair();
    let err = Server::start(
        model,
        Channel::new(Box::new(a)),
        &opts(1, OutputMode::Logits)
            .with_nonlinear(Nonlinear::Gc)
            .with_truncation(Truncation::Faithful),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("faithful truncation"), "{err}");
}

/// The same seeds give the same transcript sizes and results.
#[test]
fn sessions_are_deterministic() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let model = QuantModel::new(
        &synthetic::model(&mut rng, &Spec::default()),
        Ring::default(),
    )
    .unwrap();
    let x = random_input(&model, &mut rng);
    let a = run(&model, std::slice::from_ref(&x), 5);
    let b = run(&model, std::slice::from_ref(&x), 5);
    assert_eq!(a[0].raw, b[0].raw);
    assert_eq!(a[0].site_shares, b[0].site_shares);
}

/// The cost model's message sequence equals what the channel counted, label by label.
#[test]
fn predicted_traffic_equals_measured() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for spec in [
        Spec {
            blocks: 2,
            keep: 0.3,
            ..Spec::default()
        },
        Spec {
            keep: 0.3,
            max_pool: true,
            pre_activation: true,
            ..Spec::default()
        },
    ] {
        let model = QuantModel::new(&synthetic::model(&mut rng, &spec), Ring::default()).unwrap();
        let x = random_input(&model, &mut rng);
        let ot = Nonlinear::Ot { digit_bits: 4 };
        for (output, offline, nonlinear) in [
            (OutputMode::Logits, OfflineMode::default(), Nonlinear::Gc),
            (OutputMode::Class, OfflineMode::default(), Nonlinear::Gc),
            (OutputMode::Class, OfflineMode::Dealer, Nonlinear::Gc),
            (OutputMode::Class, OfflineMode::default(), ot),
            (
                OutputMode::Logits,
                OfflineMode::Dealer,
                Nonlinear::Ot { digit_bits: 3 },
            ),
        ] {
            for truncation in [Truncation::Local, Truncation::Faithful] {
                if truncation == Truncation::Faithful && nonlinear == Nonlinear::Gc {
                    continue;
                }
                let o = opts(9, output)
                    .with_offline(offline)
                    .with_nonlinear(nonlinear)
                    .with_truncation(truncation);
                let s = privlin_mpc::bench::session(&model, std::slice::from_ref(&x), None, 2, &o)
                    .unwrap();
                let predicted =
                    privlin_mpc::cost::predicted_traffic(&model.arch, &model.ring, &o).unwrap();
                assert_eq!(
                    s.client.counts(),
                    predicted.counts(),
                    "{output:?} {offline:?} {nonlinear:?}"
                );
                // The server saw the mirror image.
                let c = s.client.total("");
                let srv = s.server.total("");
                let setup = s.setup.total("");
                assert_eq!(
                    srv.bytes_received,
                    c.bytes_sent + setup.bytes_sent + privlin_mpc::net::HEADER + 1
                );
                assert!(c.bytes_sent > 0 && c.bytes_received > 0);
                let labels: Vec<&str> = s
                    .client
                    .entries()
                    .iter()
                    .map(|e| e.label.as_str())
                    .collect();
                match output {
                    OutputMode::Class => {
                        assert!(
                            labels.contains(&"online/argmax") && !labels.contains(&"online/output")
                        )
                    }
                    OutputMode::Logits => assert!(!labels.contains(&"online/argmax")),
                }
                if spec.max_pool {
                    assert!(
                        labels.iter().any(|l| l.starts_with("online/maxpool")),
                        "{labels:?}"
                    );
                }
            }
        }
    }
}

/// Class output: for random models, masks and inputs the class the client decodes from the
/// garbled argmax (and from the argmax on OT) equals the class of the logits the same session would reveal (same seeds), and
/// the client gets no logits.
#[test]
fn class_output_equals_argmax_of_logits() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for case in 0..4 {
        let spec = Spec {
            classes: [2, 5, 10, 3][case],
            keep: [0.0, 0.3, 1.0, 0.1][case],
            ..Spec::default()
        };
        let model = QuantModel::new(&synthetic::model(&mut rng, &spec), Ring::default()).unwrap();
        let inputs: Vec<Vec<u64>> = (0..3).map(|_| random_input(&model, &mut rng)).collect();
        let logits = run_with(&model, &inputs, &opts(30 + case as u64, OutputMode::Logits));
        // The class by the garbled argmax, and by the OT comparisons' tree.
        for nonlinear in [Nonlinear::Gc, Nonlinear::Ot { digit_bits: 4 }] {
            let o = opts(30 + case as u64, OutputMode::Class).with_nonlinear(nonlinear);
            let classes = run_with(&model, &inputs, &o);
            for (l, c) in logits.iter().zip(&classes) {
                assert!(c.raw.is_none() && c.logits.is_none());
                assert_eq!(c.class, l.class, "case {case} {}", nonlinear.name());
            }
        }
    }
}

/// The truncation leak (security review, medium): with logits revealed, the client's output over
/// repeated queries of one input is an exact linear function of the local-truncation carries at
/// the identity positions (slope 1 when regressed on them: low bits of pre-activations and the
/// last layer's weights can be regressed out). With the class output the same statistic is flat
/// (slope 0): every repetition reveals the same class.
#[test]
fn truncation_leak_statistic_is_flat_with_class_output() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    // Stem conv, one fully linearized site, pooling, linear head: every carry reaches the logits.
    let spec = Spec {
        blocks: 0,
        keep: 0.0,
        width: 3,
        classes: 4,
        ..Spec::default()
    };
    let model = QuantModel::new(&synthetic::model(&mut rng, &spec), Ring::default()).unwrap();
    let ring = model.ring;
    let scale = *model.scales.last().unwrap();
    let (site, fc) = (1usize, 3usize); // ops: conv, relu, avg_pool, linear
    let w = &model.layers[&fc].weight;
    let per_channel = model.arch.numel(site) / spec.width;
    let ch_of = |p: usize| p / per_channel;
    // An input whose top-2 margin exceeds the largest deviation carries can cause.
    let bound: f64 = (0..spec.classes)
        .map(|k| {
            (0..spec.width)
                .map(|c| {
                    ring.signed(w[k * spec.width + c]).unsigned_abs() as f64 * per_channel as f64
                })
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
        / f64::powi(2.0, scale as i32);
    let x = (0..200)
        .map(|_| random_input(&model, &mut rng))
        .find(|x| {
            let (l, _) = plain::decode_logits(&model, &plain::forward(&model, x).logits);
            let mut s = l.clone();
            s.sort_by(|a, b| b.total_cmp(a));
            s[0] - s[1] > 2.0 * bound
        })
        .expect("an input with a clear margin");
    let exact = plain::forward(&model, &x).logits;
    let statistic = |output: OutputMode| -> (f64, usize) {
        let (mut carry_effect, mut observed) = (Vec::new(), Vec::new());
        let mut distinct = std::collections::HashSet::new();
        for rep in 0..24u64 {
            let inf = &run_with(&model, std::slice::from_ref(&x), &opts(1000 + rep, output))[0];
            // What the carries added to logit 0 (known here from the plaintext value; the client
            // would search for it): sum over positions of W[0, channel] * carry.
            let mut effect = 0i64;
            plain::forward_with(&model, &x, &mut |op, p, y, shift| {
                let yc = inf.site_shares[&op][p];
                let ys = ring.reduce(y.wrapping_sub(yc));
                let local = ring.reduce(
                    ring.truncate_share_server(ys, shift)
                        .wrapping_add(ring.truncate_share_client(yc, shift)),
                );
                let carry = ring.signed(local) - ring.signed(ring.truncate(y, shift));
                assert!(carry == 0 || carry == 1);
                effect += carry * ring.signed(w[ch_of(p)]);
                local
            });
            let seen = match output {
                OutputMode::Logits => {
                    ring.signed(inf.raw.as_ref().unwrap()[0]) - ring.signed(exact[0])
                }
                OutputMode::Class => inf.class as i64,
            };
            distinct.insert(seen);
            carry_effect.push(effect as f64);
            observed.push(seen as f64);
        }
        // Least-squares slope of what the client sees on the carries' effect.
        let n = carry_effect.len() as f64;
        let (mx, my) = (
            carry_effect.iter().sum::<f64>() / n,
            observed.iter().sum::<f64>() / n,
        );
        let sxy: f64 = carry_effect
            .iter()
            .zip(&observed)
            .map(|(a, b)| (a - mx) * (b - my))
            .sum();
        let sxx: f64 = carry_effect.iter().map(|a| (a - mx).powi(2)).sum();
        assert!(sxx > 0.0, "fresh shares must change the carries");
        (sxy / sxx, distinct.len())
    };
    let (slope, distinct) = statistic(OutputMode::Logits);
    assert!((slope - 1.0).abs() < 1e-9, "logits: slope {slope}");
    assert!(distinct > 1, "logits vary with the client's shares");
    let (slope, distinct) = statistic(OutputMode::Class);
    assert_eq!(slope, 0.0, "class output: flat");
    assert_eq!(distinct, 1);
}

/// `auto`: the server takes the family of lower predicted wan network time and announces it,
/// a client with `auto` follows. Under the wan profile (50 MB/s, 40 ms round trips) a site on OT
/// saves about 5.9 KB per active ReLU (0.12 ms) and costs 5 more online flights (100 ms), so OT
/// wins on sites of more than about 850 active ReLUs: all of a width-8 32x32 model's 8,192 per
/// site, not 1 % of them. (Dealer offline: the weight layers' part is the same in both families.)
#[test]
fn auto_family_follows_the_cost_model() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let wan = privlin_mpc::net::Profile::by_name("wan").unwrap();
    for (keep, want) in [(1.0, "ot"), (0.01, "gc")] {
        let spec = Spec {
            input: [3, 32, 32],
            width: 8,
            keep,
            ..Spec::default()
        };
        let model = QuantModel::new(&synthetic::model(&mut rng, &spec), Ring::default()).unwrap();
        let o = opts(3, OutputMode::Class)
            .with_offline(OfflineMode::Dealer)
            .with_nonlinear(Nonlinear::Auto);
        let c = privlin_mpc::cost::choose_nonlinear(&model.arch, &model.ring, &o, &wan).unwrap();
        assert_eq!(c.len(), 2);
        let chosen = privlin_mpc::cost::resolve_nonlinear(&model.arch, &model.ring, &o).unwrap();
        assert_eq!(chosen.name(), want, "keep {keep}: {c:?}");
        let best = c.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        assert_eq!(c.iter().find(|x| x.0 == chosen).unwrap().1, best);
        // A session with `auto` on both sides runs the chosen family: the traffic is its.
        let x = random_input(&model, &mut rng);
        let s = privlin_mpc::bench::session(&model, std::slice::from_ref(&x), None, 1, &o).unwrap();
        let predicted = privlin_mpc::cost::predicted_traffic(
            &model.arch,
            &model.ring,
            &o.with_nonlinear(chosen),
        )
        .unwrap();
        assert_eq!(s.client.counts(), predicted.counts());
    }
    // A client that insists on the other family is refused with both names.
    let model = QuantModel::new(
        &synthetic::model(&mut rng, &Spec::default()),
        Ring::default(),
    )
    .unwrap();
    let (a, b) = mem::pair();
    let so = opts(4, OutputMode::Class).with_nonlinear(Nonlinear::Gc);
    let server =
        std::thread::spawn(move || Server::start(model, Channel::new(Box::new(a)), &so).err());
    let co = opts(4, OutputMode::Class).with_nonlinear(Nonlinear::Ot { digit_bits: 4 });
    let err = Client::connect(Channel::new(Box::new(b)), &co)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("`gc`") && err.to_string().contains("`ot`"),
        "{err}"
    );
    drop(server);
}
