//! The two-party protocol against plaintext fixed-point inference, over the in-memory channel.

use privlin_mpc::net::{mem, Channel};
use privlin_mpc::protocol::{Client, Inference, Server};
use privlin_mpc::synthetic::{self, Spec};
use privlin_mpc::{plain, QuantModel, Ring};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Runs `inputs` through a two-thread session; returns the client's results.
fn run(model: &QuantModel, inputs: &[Vec<u64>], seed: u64) -> Vec<Inference> {
    let (a, b) = mem::pair();
    let m = model.clone();
    let server = std::thread::spawn(move || {
        let mut s = Server::start(m, Channel::new(Box::new(a)), Some(seed)).unwrap();
        s.serve().unwrap()
    });
    let mut c = Client::connect(Channel::new(Box::new(b)), Some(seed + 1)).unwrap();
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

/// Property: for random models, masks, inputs and rings, the two-party logits equal plaintext
/// fixed-point inference exactly, where the reference truncates identity positions the way the
/// two shares do (SecureML local truncation, replayed from the client's recorded share).
#[test]
fn two_party_equals_plaintext_fixed_point() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let rings = [
        Ring::default(),
        Ring::new(48, 8, 24).unwrap(),
        Ring::new(40, 6, 20).unwrap(),
    ];
    for case in 0..6 {
        let spec = Spec {
            width: rng.gen_range(2..5),
            blocks: rng.gen_range(1..3),
            downsample: rng.gen_bool(0.5),
            keep: [0.0, 0.1, 0.5, 1.0][case % 4],
            ..Spec::default()
        };
        let ring = rings[case % rings.len()];
        let model = QuantModel::new(&synthetic::model(&mut rng, &spec), ring).unwrap();
        let inputs: Vec<Vec<u64>> = (0..2).map(|_| random_input(&model, &mut rng)).collect();
        let results = run(&model, &inputs, 100 + case as u64);
        for (x, inf) in inputs.iter().zip(&results) {
            let reference = plain::forward_with(&model, x, &mut |op, p, y, shift| {
                let yc = inf.site_shares[&op][p];
                let ys = ring.reduce(y.wrapping_sub(yc));
                ring.reduce(
                    ring.truncate_share_server(ys, shift)
                        .wrapping_add(ring.truncate_share_client(yc, shift)),
                )
            });
            assert_eq!(
                inf.raw, reference.logits,
                "case {case} spec {spec:?} ring {ring:?}"
            );
            // Against exact (round-to-nearest) truncation the difference is a few units in the last place.
            let exact = plain::forward(&model, x);
            let scale = *model.scales.last().unwrap();
            for (a, b) in inf.raw.iter().zip(&exact.logits) {
                let d = (ring.decode(*a, scale) - ring.decode(*b, scale)).abs();
                assert!(d < 0.05, "case {case}: local truncation drifted by {d}");
            }
            if spec.keep == 1.0 {
                assert_eq!(
                    inf.raw, exact.logits,
                    "all-active model must match exact truncation"
                );
            }
        }
    }
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
    let spec = Spec {
        blocks: 2,
        keep: 0.3,
        ..Spec::default()
    };
    let model = QuantModel::new(&synthetic::model(&mut rng, &spec), Ring::default()).unwrap();
    let x = random_input(&model, &mut rng);
    let s = privlin_mpc::bench::session(&model, &[x], None, 2, 9).unwrap();
    let predicted = privlin_mpc::cost::predicted_traffic(&model.arch, &model.ring);
    assert_eq!(s.client.counts(), predicted.counts());
    // The server saw the mirror image.
    let c = s.client.total("");
    let srv = s.server.total("");
    let setup = s.setup.total("");
    assert_eq!(
        srv.bytes_received,
        c.bytes_sent + setup.bytes_sent + privlin_mpc::net::HEADER + 1
    );
    assert!(c.bytes_sent > 0 && c.bytes_received > 0);
}
