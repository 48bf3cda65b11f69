//! Shapley estimators on games with known values, and budget allocation.
use privlin::budget::{allocate, Budget};
use privlin::importance::game::{full, Game, TableOracle, UtilityTable};
use privlin::importance::shapley::antithetic::Antithetic;
use privlin::importance::shapley::bandit::Bandit;
use privlin::importance::shapley::exact::Exact;
use privlin::importance::shapley::kernel::KernelShap;
use privlin::importance::shapley::monte_carlo::MonteCarlo;
use privlin::importance::shapley::stratified::Stratified;
use privlin::importance::shapley::tree::{TreeTrimming, TrimTest};
use privlin::importance::shapley::ShapleyEstimator;
use privlin::importance::{Importance, PlayerSite};
use rand::{Rng, SeedableRng};

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("p{i}")).collect()
}

fn run(
    est: &dyn ShapleyEstimator,
    oracle: &mut TableOracle,
) -> (Vec<f64>, Option<Vec<f64>>, usize) {
    let mut g = Game::new(oracle);
    let (v, se) = est.estimate(&mut g).unwrap();
    (v, se, g.evaluations())
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "player {i}: {x} vs {y} (all: {a:?} vs {b:?})"
        );
    }
}

fn count(c: u64, set: &[usize]) -> usize {
    set.iter().filter(|&&i| c >> i & 1 == 1).count()
}

#[test]
fn exact_matches_closed_forms() {
    // Additive game: the value of a player is its weight.
    let w = [3.0, -1.0, 0.5, 2.0, 0.0];
    let mut g = TableOracle::from_fn(names(5), |c| {
        (0..5).filter(|i| c >> i & 1 == 1).map(|i| w[i]).sum()
    });
    close(&run(&Exact::default(), &mut g).0, &w, 1e-12);

    // Glove game: two left gloves, one right glove; U = number of pairs.
    let mut g = TableOracle::from_fn(names(3), |c| count(c, &[0, 1]).min(count(c, &[2])) as f64);
    close(
        &run(&Exact::default(), &mut g).0,
        &[1.0 / 6.0, 1.0 / 6.0, 2.0 / 3.0],
        1e-12,
    );

    // Majority voting, 5 symmetric players.
    let mut g = TableOracle::from_fn(names(5), |c| if c.count_ones() >= 3 { 1.0 } else { 0.0 });
    close(&run(&Exact::default(), &mut g).0, &[0.2; 5], 1e-12);

    // Weighted voting [quota 3; 2, 1, 1].
    let wv = [2u32, 1, 1];
    let mut g = TableOracle::from_fn(names(3), |c| {
        let s: u32 = (0..3).filter(|i| c >> i & 1 == 1).map(|i| wv[i]).sum();
        if s >= 3 {
            1.0
        } else {
            0.0
        }
    });
    close(
        &run(&Exact::default(), &mut g).0,
        &[2.0 / 3.0, 1.0 / 6.0, 1.0 / 6.0],
        1e-12,
    );

    // Two players useful only together, three dummies.
    let mut g = TableOracle::from_fn(names(5), |c| if c & 0b11 == 0b11 { 10.0 } else { 0.0 });
    close(
        &run(&Exact::default(), &mut g).0,
        &[5.0, 5.0, 0.0, 0.0, 0.0],
        1e-12,
    );
}

#[test]
fn exact_refuses_large_games_politely() {
    let mut g = TableOracle::from_fn(names(4), |c| c.count_ones() as f64);
    let mut game = Game::new(&mut g);
    let e = Exact { max_players: 3 }
        .estimate(&mut game)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2^4 = 16") && e.contains("--max-exact"), "{e}");
}

/// A random non-monotone game with utilities in [0, 100] and a strong interaction.
fn random_game(n: usize, seed: u64) -> TableOracle {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let noise: Vec<f64> = (0..=full(n)).map(|_| rng.gen_range(0.0..10.0)).collect();
    TableOracle::from_fn(names(n), move |c| {
        let base = 80.0 * (c.count_ones() as f64 / n as f64).powi(2);
        let pair = if c & 0b11 == 0b11 { 10.0 } else { 0.0 };
        base + pair + noise[c as usize]
    })
}

#[test]
fn tree_trimming_with_alpha_zero_is_exact_and_trimming_saves_evaluations() {
    for test in [TrimTest::WithPlayer, TrimTest::Coalition] {
        let mut g = random_game(7, 1);
        let exact = run(&Exact::default(), &mut g).0;
        let (tree, _, evals) = run(
            &TreeTrimming {
                threshold: 0.0,
                test,
                ..Default::default()
            },
            &mut g,
        );
        close(&tree, &exact, 1e-9);
        assert_eq!(evals, 1 << 7);
    }
    // An accuracy-like game: chance (10) below a few sites, high with most of them.
    let mut g = TableOracle::from_fn(names(8), |c| {
        let k = c.count_ones() as f64;
        10.0 + 80.0 / (1.0 + (-(k - 6.5) * 2.0).exp()) + if c & 1 == 1 { 1.0 } else { 0.0 }
    });
    let exact = run(&Exact::default(), &mut g).0;
    let (tree, _, evals) = run(
        &TreeTrimming {
            threshold: 15.0,
            test: TrimTest::WithPlayer,
            ..Default::default()
        },
        &mut g,
    );
    // Which coalitions trimming must visit: U depends on the size k (and player 0 adds 1), and
    // U >= 15 exactly when k >= 6 (k = 5 gives at most 14.8). For player i a node S is expanded
    // when U(S u {i}) >= 15, i.e. |S| >= 5, so the visited S are those of 4..7 players and the
    // utilities asked for are U(S) and U(S u {i}): every coalition of 4 or more players,
    // sum_{k=4..8} C(8, k) = 163 of 256.
    let want: usize = (4..=8u64)
        .map(|k| (0..k).fold(1u64, |c, j| c * (8 - j) / (j + 1)) as usize)
        .sum();
    assert_eq!(want, 163);
    assert_eq!(evals, want, "trimming visited {evals} of 256 coalitions");
    // PrivShap eq. 2: the trimmed subtrees change each value by little.
    close(&tree, &exact, 0.6);
}

#[test]
fn monte_carlo_and_bandit_come_within_their_reported_error() {
    let mut g = random_game(6, 2);
    let exact = run(&Exact::default(), &mut g).0;
    let mc = MonteCarlo {
        seed: 3,
        target_stderr: 0.3,
        truncation: 0.0,
        max_permutations: 5000,
        ..MonteCarlo::default()
    };
    let (v, se, _) = run(&mc, &mut g);
    let se = se.unwrap();
    for i in 0..6 {
        assert!(
            (v[i] - exact[i]).abs() <= 4.0 * se[i],
            "MC player {i}: {} vs {} (se {})",
            v[i],
            exact[i],
            se[i]
        );
        assert!(se[i] <= 0.3 + 1e-12);
    }
    let b = Bandit {
        seed: 4,
        tolerance: 0.6,
        max_samples: 20000,
        ..Bandit::default()
    };
    let (v, se, _) = run(&b, &mut g);
    let se = se.unwrap();
    for i in 0..6 {
        assert!(
            (v[i] - exact[i]).abs() <= 4.0 * se[i],
            "bandit player {i}: {} vs {} (se {})",
            v[i],
            exact[i],
            se[i]
        );
    }
    // Top-k mode separates the two interacting players (the largest values) from the rest.
    let b = Bandit {
        seed: 5,
        top_k: Some(2),
        max_samples: 20000,
        ..Bandit::default()
    };
    let (v, _, _) = run(&b, &mut g);
    let mut order: Vec<usize> = (0..6).collect();
    order.sort_by(|&a, &c| v[c].total_cmp(&v[a]));
    let mut top: Vec<usize> = order[..2].to_vec();
    top.sort();
    assert_eq!(top, vec![0, 1], "{v:?}");
}

#[test]
fn missing_coalitions_in_a_table_are_named() {
    let t = UtilityTable {
        utility: None,
        players: names(2),
        utilities: [("00", 0.0), ("10", 1.0), ("11", 3.0)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    };
    let mut o = TableOracle::new(&t, "game.json").unwrap();
    let mut g = Game::new(&mut o);
    let e = Exact::default().estimate(&mut g).unwrap_err().to_string();
    assert!(e.contains("game.json") && e.contains("\"01\""), "{e}");
}

fn importance(values: Vec<f64>, caps: &[i64]) -> Importance {
    let sites = caps
        .iter()
        .enumerate()
        .map(|(i, &c)| PlayerSite {
            player: i,
            name: format!("s{i}"),
            capacity: c,
            kind: privlin::nn::SiteKind::Block,
        })
        .collect();
    Importance {
        sites: Some(sites),
        ..Importance::new("test", names(values.len()), values)
    }
}

#[test]
fn allocation_is_exact_capped_and_redistributed() {
    let caps = [1000, 100, 1000, 500];
    let imp = importance(vec![1.0, 5.0, 2.0, -1.0], &caps);
    let a = allocate(&imp, Budget::Count(1001)).unwrap();
    let b: Vec<i64> = a.sites.iter().map(|s| s.budget).collect();
    assert_eq!(b.iter().sum::<i64>(), 1001);
    assert_eq!(b[1], 100, "capped at capacity: {b:?}");
    assert_eq!(b[3], 0, "negative importance gets nothing: {b:?}");
    // The 900 left after the cap split 1:2.
    assert_eq!((b[0], b[2]), (300, 601));
    assert!(a
        .notes
        .iter()
        .any(|n| n.contains("s3") && n.contains("negative")));
    // The positive sites are full: the rest goes to the zero-importance one.
    let a = allocate(&imp, Budget::Count(2400)).unwrap();
    let b: Vec<i64> = a.sites.iter().map(|s| s.budget).collect();
    assert_eq!(b, vec![1000, 100, 1000, 300]);
    assert_eq!(allocate(&imp, Budget::Ratio(1.0)).unwrap().budget, 2600);
    // Refusals.
    assert!(allocate(&imp, Budget::Count(0))
        .unwrap_err()
        .to_string()
        .contains("at least 1"));
    assert!(allocate(&imp, Budget::Count(2601))
        .unwrap_err()
        .to_string()
        .contains("only 2600"));
    let e = allocate(
        &importance(vec![0.0, -2.0, 0.0, 0.0], &caps),
        Budget::Count(10),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no site has positive importance"), "{e}");
}

#[test]
fn budgets_parse() {
    assert_eq!("12900".parse::<Budget>().unwrap(), Budget::Count(12900));
    assert_eq!("50k".parse::<Budget>().unwrap(), Budget::Count(50_000));
    assert_eq!("12.9k".parse::<Budget>().unwrap(), Budget::Count(12_900));
    assert_eq!("1.2m".parse::<Budget>().unwrap(), Budget::Count(1_200_000));
    assert_eq!("5%".parse::<Budget>().unwrap(), Budget::Ratio(0.05));
    assert!("lots"
        .parse::<Budget>()
        .unwrap_err()
        .to_string()
        .contains("`lots`"));
}

/// Games with known values: additive, glove (left gloves 0..4, right 4..9), weighted voting and
/// pairwise interactions, each with `n = 9` players.
fn known_games() -> Vec<(&'static str, TableOracle, Vec<f64>)> {
    let n = 9;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let a: Vec<f64> = (0..n).map(|_| rng.gen_range(-5.0..20.0)).collect();
    let b: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..n).map(|_| rng.gen_range(-3.0..6.0)).collect())
        .collect();
    let b = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| if i == j { 0.0 } else { b[i.min(j)][i.max(j)] })
                .collect()
        })
        .collect::<Vec<Vec<f64>>>();
    let w = [4.0, 3.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0];
    let additive = {
        let a = a.clone();
        TableOracle::from_fn(names(n), move |c| {
            (0..n).filter(|i| c >> i & 1 == 1).map(|i| a[i]).sum()
        })
    };
    let pairwise = {
        let (a, b) = (a.clone(), b.clone());
        TableOracle::from_fn(names(n), move |c| {
            let m: Vec<usize> = (0..n).filter(|i| c >> i & 1 == 1).collect();
            let pairs: f64 = m
                .iter()
                .flat_map(|&i| m.iter().filter(move |&&j| j > i).map(move |&j| (i, j)))
                .map(|(i, j)| b[i][j])
                .sum();
            m.iter().map(|&i| a[i]).sum::<f64>() + pairs
        })
    };
    let pair_values: Vec<f64> = (0..n)
        .map(|i| a[i] + b[i].iter().sum::<f64>() / 2.0)
        .collect();
    let mut glove = TableOracle::from_fn(names(n), |c| {
        10.0 * count(c, &[0, 1, 2, 3]).min(count(c, &[4, 5, 6, 7, 8])) as f64
    });
    let glove_values = run(&Exact::default(), &mut glove).0;
    let mut voting = TableOracle::from_fn(names(n), move |c| {
        let s: f64 = (0..n).filter(|i| c >> i & 1 == 1).map(|i| w[i]).sum();
        if s >= 10.0 {
            100.0
        } else {
            0.0
        }
    });
    let voting_values = run(&Exact::default(), &mut voting).0;
    vec![
        ("additive", additive, a),
        ("glove", glove, glove_values),
        ("voting", voting, voting_values),
        ("pairwise", pairwise, pair_values),
    ]
}

fn sampling_estimators(seed: u64) -> Vec<Box<dyn ShapleyEstimator>> {
    vec![
        Box::new(KernelShap {
            seed,
            samples: 300,
            ..KernelShap::default()
        }),
        Box::new(KernelShap {
            seed,
            samples: 300,
            ..KernelShap::leverage()
        }),
        Box::new(Antithetic {
            seed,
            target_stderr: 0.5,
            max_pairs: 4000,
            ..Antithetic::default()
        }),
        Box::new(Stratified {
            seed,
            target_stderr: 0.5,
            ..Stratified::default()
        }),
    ]
}

/// Every new estimator comes within four of its reported standard errors of the known values,
/// with the efficiency axiom exact for the regression estimators; exact games (additive) are
/// recovered exactly by those that can (zero variance).
#[test]
fn new_estimators_come_within_their_reported_error_on_known_games() {
    for (game, mut oracle, truth) in known_games() {
        let total = {
            let mut g = Game::new(&mut oracle);
            g.utility(full(9)).unwrap() - g.utility(0).unwrap()
        };
        for est in sampling_estimators(3) {
            let (v, se, evals) = run(est.as_ref(), &mut oracle);
            let se = se.expect("standard errors");
            for i in 0..9 {
                assert!(
                    (v[i] - truth[i]).abs() <= 4.0 * se[i] + 1e-6,
                    "{} on {game}: player {i}: {} vs {} (se {})",
                    est.name(),
                    v[i],
                    truth[i],
                    se[i]
                );
            }
            if est.name().starts_with("shapley-kernel") || est.name() == "shapley-leverage" {
                assert!(
                    (v.iter().sum::<f64>() - total).abs() < 1e-6,
                    "{} efficiency",
                    est.name()
                );
                assert!(evals <= 302, "{}: {evals}", est.name());
            }
            if game == "additive" && est.name() != "shapley-stratified" {
                close(&v, &truth, 1e-6);
            }
        }
    }
}

/// KernelSHAP over every proper coalition with the exact kernel weights is the exact solution.
#[test]
fn kernel_shap_with_all_coalitions_is_exact() {
    for seed in [1, 2] {
        let mut g = random_game(8, seed);
        let exact = run(&Exact::default(), &mut g).0;
        for est in [
            KernelShap {
                samples: 254,
                ..KernelShap::default()
            },
            KernelShap {
                samples: 1000,
                ..KernelShap::leverage()
            },
        ] {
            let (v, _, evals) = run(&est, &mut g);
            close(&v, &exact, 1e-8);
            assert_eq!(evals, 256);
        }
    }
}

/// The same seed gives the same values; another seed other ones.
#[test]
fn new_estimators_are_deterministic_for_a_seed() {
    let mut g = random_game(10, 5);
    for (a, b) in sampling_estimators(11).iter().zip(sampling_estimators(11)) {
        assert_eq!(
            run(a.as_ref(), &mut g).0,
            run(b.as_ref(), &mut g).0,
            "{}",
            a.name()
        );
    }
    for (a, b) in sampling_estimators(11).iter().zip(sampling_estimators(12)) {
        assert_ne!(
            run(a.as_ref(), &mut g).0,
            run(b.as_ref(), &mut g).0,
            "{}",
            a.name()
        );
    }
}

/// `--max-evaluations`: sampling estimators stop within it; exact refuses with a clear error.
#[test]
fn evaluation_cap_holds() {
    let mut oracle = random_game(10, 6);
    let capped = |est: &dyn ShapleyEstimator, oracle: &mut TableOracle, cap: usize| {
        let mut g = Game::new(oracle);
        g.set_cap(Some(cap));
        let r = est.estimate(&mut g).map(|(v, _)| v);
        (r, g.evaluations())
    };
    let mut ests = sampling_estimators(2);
    ests.push(Box::new(MonteCarlo {
        seed: 2,
        truncation: 0.0,
        ..MonteCarlo::default()
    }));
    for est in &ests {
        let cap = if est.name() == "shapley-stratified" {
            1000
        } else {
            250
        };
        let (r, evals) = capped(est.as_ref(), &mut oracle, cap);
        assert!(r.is_ok(), "{}: {:?}", est.name(), r.err());
        assert!(
            evals <= cap && evals > cap / 3,
            "{}: {evals} of {cap}",
            est.name()
        );
    }
    let (r, _) = capped(&Exact { max_players: 20 }, &mut oracle, 100);
    let err = r.unwrap_err().to_string();
    assert!(err.contains("--max-evaluations = 100"), "{err}");
    let (r, _) = capped(&Stratified::default(), &mut oracle, 50);
    assert!(r.unwrap_err().to_string().contains("--max-evaluations"));
}

/// Issue 39: under `--max-evaluations` every sampling estimator spends the cap on distinct
/// coalitions. On a 15-player accuracy-like game (a sigmoid of additive and pairwise terms) at a
/// cap of 2,621, KernelSHAP and leverage sampling (whose draws repeat the small and large
/// coalitions) reach the cap exactly; the permutation estimators leave less than one
/// permutation's (or antithetic pair's) prefixes; all with the draws the scoring command uses.
#[test]
fn every_sampling_estimator_spends_the_cap_on_distinct_coalitions() {
    let n = 15;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(39);
    let a: Vec<f64> = (0..n).map(|_| rng.gen_range(0.0..0.6)).collect();
    let b: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..n).map(|_| rng.gen_range(-0.1..0.1)).collect())
        .collect();
    let mut oracle = TableOracle::from_fn(names(n), move |c| {
        let on: Vec<usize> = (0..n).filter(|&i| c >> i & 1 == 1).collect();
        let mut z: f64 = -2.0;
        for (x, &i) in on.iter().enumerate() {
            z += a[i];
            z += on[x + 1..].iter().map(|&j| b[i][j]).sum::<f64>();
        }
        1.0 / (1.0 + (-z).exp())
    });
    let cap = 2621;
    for seed in 0..3 {
        let ests: Vec<(Box<dyn ShapleyEstimator>, usize)> = vec![
            (
                Box::new(KernelShap {
                    seed,
                    samples: cap * 20,
                    bootstrap: 0,
                    ..KernelShap::default()
                }),
                0,
            ),
            (
                Box::new(KernelShap {
                    seed,
                    samples: cap * 20,
                    bootstrap: 0,
                    ..KernelShap::leverage()
                }),
                0,
            ),
            (
                Box::new(MonteCarlo {
                    seed,
                    truncation: 0.0,
                    min_permutations: usize::MAX,
                    max_permutations: usize::MAX,
                    ..MonteCarlo::default()
                }),
                n,
            ),
            (
                Box::new(Antithetic {
                    seed,
                    target_stderr: 0.0,
                    max_pairs: usize::MAX,
                    ..Antithetic::default()
                }),
                2 * n,
            ),
        ];
        for (est, slack) in ests {
            let mut g = Game::new(&mut oracle);
            g.set_cap(Some(cap));
            est.estimate(&mut g).unwrap();
            let evals = g.evaluations();
            assert!(
                evals <= cap && cap - evals <= slack,
                "{} (seed {seed}): {evals} distinct of {cap}, allowed to leave {slack}",
                est.name()
            );
        }
    }
}
