//! The HE offline phase: exact `W v - s` for every weight-layer kind, the same protocol outputs as
//! the dealer for the same seeds, nothing of the client's masks or key on the channel, and
//! refusals before any work.

use privlin_mpc::he::{HeContext, HeParams, Layout};
use privlin_mpc::net::{mem, Channel, Transport};
use privlin_mpc::protocol::homomorphic::{self, HeOffline};
use privlin_mpc::protocol::linear::LinearOffline;
use privlin_mpc::protocol::policy::Party;
use privlin_mpc::protocol::{Client, OfflineMode, Options, OutputMode, Randomness, Server};
use privlin_mpc::synthetic::{self, Spec};
use privlin_mpc::{linalg, model::Op, QuantModel, Ring};
use rand::{Rng, SeedableRng};
use rand_chacha::{ChaCha12Rng, ChaCha8Rng};
use std::sync::{Arc, Mutex};

fn opts(seed: u64, offline: OfflineMode) -> Options {
    Options {
        max_wrap_log2: 0.0,
        ..Options::insecure_seeded(seed)
            .with_output(OutputMode::Logits)
            .with_offline(offline)
    }
}

/// A model with 3x3 convolutions at stride 1 and 2, 1x1 shortcuts, pre-activation channel
/// affines and a fully connected layer.
fn model(seed: u64, ring: Ring) -> QuantModel {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let spec = Spec {
        blocks: 2,
        width: 3,
        keep: 0.3,
        pre_activation: true,
        ..Spec::default()
    };
    QuantModel::new(&synthetic::model(&mut rng, &spec), ring).unwrap()
}

/// For every weight layer: the client's HE output plus the server's mask is `W v` exactly, for
/// random shares `v`, at `l = 64` and an odd `l`; every layer's worst-case noise bound leaves a
/// margin.
#[test]
fn he_correlation_is_exact_for_every_layer_kind() {
    for ring in [Ring::default(), Ring::new(41, 8, 20).unwrap()] {
        let qm = model(3, ring);
        let o = opts(1, OfflineMode::default());
        let ctx = HeContext::new(HeParams::default(), &ring).unwrap();
        let plan = homomorphic::plan(&qm.arch, &ctx).unwrap();
        let kinds: Vec<(usize, usize, usize)> = plan
            .iter()
            .map(|(_, l)| (l.geom.k, l.geom.stride, l.geom.h))
            .collect();
        assert!(
            plan.iter().any(|(_, l)| l.geom.depthwise && l.m == l.cb),
            "no channel affine: {kinds:?}"
        );
        assert!(kinds.iter().any(|k| k.0 == 3 && k.1 == 1), "{kinds:?}");
        assert!(kinds.iter().any(|k| k.0 == 3 && k.1 == 2), "{kinds:?}");
        // The 1x1 stride-2 shortcut reads its block's first convolution's ciphertexts: laid
        // out in that layer's 3x3 window (issue 37), it sends no query of its own.
        let shared: Vec<&Layout> = plan
            .iter()
            .filter_map(|(_, l)| l.host.is_some().then_some(l))
            .collect();
        assert!(
            shared.iter().any(|l| l.geom.k == 3 && l.geom.stride == 2),
            "{kinds:?}"
        );
        for l in &shared {
            assert_eq!(l.queries(), 0);
            assert!(homomorphic::message_sizes(&ctx, l).0.is_none());
        }
        assert!(
            kinds.iter().any(|k| k.2 == 1),
            "no fully connected layer: {kinds:?}"
        );
        for (_, l) in &plan {
            assert!(l.noise.margin_bits >= 1.0, "{l:?}");
            assert!(l.noise.flood_log2 >= l.noise.hide_log2 + 40.0);
        }
        let (a, b) = mem::pair();
        let m = qm.clone();
        let ops: Vec<usize> = plan.iter().map(|p| p.0).collect();
        let ops2 = ops.clone();
        let server = std::thread::spawn(move || {
            let mut he = HeOffline::new(HeParams::default());
            he.prepare_server(&m, &o).unwrap();
            let mut ch = Channel::new(Box::new(a));
            he.setup_server(&mut ch).unwrap();
            let mut rng = ChaCha12Rng::seed_from_u64(5);
            ops2.iter()
                .map(|&op| he.server(&mut ch, &m, op, &mut rng).unwrap())
                .collect::<Vec<_>>()
        });
        let mut he = HeOffline::new(HeParams::default());
        he.prepare_client(&qm.arch, &ring, &o).unwrap();
        let mut ch = Channel::new(Box::new(b));
        he.setup_client(&mut ch).unwrap();
        let mut rng = ChaCha12Rng::seed_from_u64(6);
        let mut inputs = Vec::new();
        let mut outs = Vec::new();
        // One random share per tensor: layers that read the same tensor get the same share, as
        // in the protocol (a shortcut multiplies its host's ciphertexts of that share).
        let mut shares = std::collections::HashMap::new();
        for &op in &ops {
            let input = qm.arch.ops()[op].inputs()[0];
            let v: Vec<u64> = shares
                .entry(input)
                .or_insert_with(|| {
                    (0..qm.arch.numel(input))
                        .map(|_| ring.reduce(rng.gen()))
                        .collect::<Vec<u64>>()
                })
                .clone();
            outs.push(he.client(&mut ch, &qm.arch, &ring, op, &v).unwrap());
            inputs.push(v);
        }
        let masks = server.join().unwrap();
        for ((&op, v), (out, s)) in ops.iter().zip(&inputs).zip(outs.iter().zip(&masks)) {
            let want = linalg::weight_layer(&qm.arch, &ring, op, &qm.layers[&op], v, false);
            let got: Vec<u64> = out
                .iter()
                .zip(s)
                .map(|(&a, &b)| ring.reduce(a.wrapping_add(b)))
                .collect();
            assert_eq!(
                got,
                want,
                "op {op} ({:?}) at l = {}",
                qm.arch.ops()[op].kind(),
                ring.bits
            );
        }
    }
}

/// A transport that records every payload this side writes.
struct Tap {
    inner: mem::MemTransport,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Transport for Tap {
    fn write_frame(&mut self, at: u64, payload: Vec<u8>) -> privlin_mpc::Result<()> {
        self.sent.lock().unwrap().push(payload.clone());
        self.inner.write_frame(at, payload)
    }
    fn read_header(&mut self, c: &str) -> privlin_mpc::Result<(u64, u64)> {
        self.inner.read_header(c)
    }
    fn read_payload(&mut self, len: usize, c: &str) -> privlin_mpc::Result<Vec<u8>> {
        self.inner.read_payload(len, c)
    }
}

/// One session of `inputs`; the client's logits, site shares and everything it sent.
fn session(
    qm: &QuantModel,
    inputs: &[Vec<u64>],
    o: Options,
) -> (Vec<privlin_mpc::protocol::Inference>, Vec<Vec<u8>>) {
    let (a, b) = mem::pair();
    let m = qm.clone();
    let server = std::thread::spawn(move || {
        let mut s = Server::start(m, Channel::new(Box::new(a)), &o).unwrap();
        s.serve().unwrap()
    });
    let sent = Arc::new(Mutex::new(Vec::new()));
    let tap = Tap {
        inner: b,
        sent: sent.clone(),
    };
    let mut c = Client::connect(Channel::new(Box::new(tap)), &o).unwrap();
    c.record_shares(true);
    let out = inputs.iter().map(|x| c.infer_encoded(x).unwrap()).collect();
    c.close().unwrap();
    assert_eq!(server.join().unwrap(), inputs.len());
    let sent = sent.lock().unwrap().clone();
    (out, sent)
}

/// With the same seeds, `he` and `dealer` give bit-identical logits and site shares (the HE
/// scheme draws from its own streams), and what the client sends under `he` contains none of the
/// masks it sends in the clear under `dealer`, nor its secret key.
#[test]
fn he_matches_dealer_and_keeps_masks_and_key_off_the_channel() {
    let ring = Ring::default();
    let qm = model(4, ring);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x: Vec<f32> = (0..qm.arch.numel(0))
        .map(|_| rng.gen_range(-2.0..2.0))
        .collect();
    let inputs = vec![QuantModel::encode_input(&qm.arch, &ring, &x).unwrap()];
    let (he, he_sent) = session(&qm, &inputs, opts(21, OfflineMode::default()));
    let (dealer, dealer_sent) = session(&qm, &inputs, opts(21, OfflineMode::Dealer));
    assert_eq!(he[0].raw, dealer[0].raw);
    assert_eq!(he[0].site_shares, dealer[0].site_shares);

    // The dealer's client sends each weight layer's input mask v_C as a ring vector: collect
    // every 8-byte element of those messages (masks are uniform: a collision by chance has
    // probability about 2^-40 here).
    let mask_elements: usize = qm
        .arch
        .ops()
        .iter()
        .filter(|o| matches!(o, Op::Conv { .. } | Op::Linear { .. }))
        .map(|o| qm.arch.numel(o.inputs()[0]))
        .sum();
    // Messages both transcripts share (the online masked input, OT) are not the dealer's.
    let mut masks = std::collections::HashSet::new();
    for msg in dealer_sent.iter().filter(|m| !he_sent.contains(m)) {
        // Masks travel as ring vectors: a u64 length prefix, then 8 bytes per element.
        if msg.len() > 8 && (msg.len() - 8) % 8 == 0 {
            let n = u64::from_le_bytes(msg[..8].try_into().unwrap()) as usize;
            if n * 8 + 8 == msg.len() {
                for c in msg[8..].chunks_exact(8) {
                    let v = u64::from_le_bytes(c.try_into().unwrap());
                    if v > 1 << 40 && v < u64::MAX - (1 << 40) {
                        masks.insert(c.to_vec());
                    }
                }
            }
        }
    }
    assert!(
        2 * masks.len() > mask_elements,
        "{} masks found of {mask_elements}",
        masks.len()
    );
    let he_bytes: Vec<u8> = he_sent.concat();
    let found = he_bytes.windows(8).filter(|w| masks.contains(*w)).count();
    assert_eq!(
        found, 0,
        "{found} of the dealer's clear-text masks appear in the HE transcript"
    );

    // The secret key: replay the client's HE stream and look for any 16 consecutive residues of
    // it as packed on the wire.
    let ctx = HeContext::new(HeParams::default(), &ring).unwrap();
    let mut stream = Randomness::InsecureSeeded(21).rng_for(Party::Client, b"he");
    let s = privlin_mpc::he::sample::ternary(&mut stream, ctx.degree());
    let q0 = ctx.moduli[0];
    let residues: Vec<u64> = s
        .iter()
        .map(|&v| if v < 0 { q0 - 1 } else { v as u64 })
        .collect();
    let mut packed = Vec::new();
    privlin_mpc::he::codec::pack(&ctx, 1, ctx.degree(), &residues, &mut packed);
    let key: std::collections::HashSet<&[u8]> = packed.windows(32).collect();
    let leaked = he_bytes.windows(32).filter(|w| key.contains(w)).count();
    assert_eq!(
        leaked, 0,
        "{leaked} 32-byte windows of the packed secret key on the channel"
    );
}

/// Parameters below 128-bit security, or a model whose weights exceed the public bound, are
/// refused before the hello.
#[test]
fn refusals_before_any_work() {
    let qm = model(5, Ring::default());
    let weak = OfflineMode::He(HeParams {
        extra: 4,
        extra_bits: 40,
        ..Default::default()
    });
    let (a, _b) = mem::pair();
    let err = Server::start(qm.clone(), Channel::new(Box::new(a)), &opts(1, weak))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("less than 128-bit security"), "{err}");
    let tight = OfflineMode::He(HeParams {
        weight_bits: 2,
        ..Default::default()
    });
    let (a, _b) = mem::pair();
    let err = Server::start(qm, Channel::new(Box::new(a)), &opts(1, tight))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("public HE weight bound 2^2"), "{err}");
}

/// Truncated, oversized and out-of-range ciphertexts and keys are errors that name the message;
/// a full-size ciphertext of random bytes too (its residues exceed the primes).
#[test]
fn malformed_ciphertexts_and_keys_are_errors() {
    use privlin_mpc::he::{codec, scheme};
    let ring = Ring::default();
    let ctx = HeContext::new(HeParams::default(), &ring).unwrap();
    let mut rng = ChaCha12Rng::seed_from_u64(2);
    let (sk, pk) = scheme::SecretKey::generate(&ctx, &mut rng).unwrap();
    assert!(scheme::PublicKey::decode(&ctx, &pk).is_ok());
    for bad in [&pk[..pk.len() - 1], &[pk.clone(), vec![0]].concat()[..]] {
        let e = scheme::PublicKey::decode(&ctx, bad)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("HE public key") && e.contains("expected"), "{e}");
    }
    let mut ct = Vec::new();
    let m: Vec<u64> = (0..ctx.degree() as u64).collect();
    sk.encrypt(&ctx, &m, [7; 32], &mut rng, &mut ct).unwrap();
    assert!(scheme::Ciphertext::decode(&ctx, &ct, [7; 32], "query").is_ok());
    let ones = vec![0xffu8; ct.len()];
    let e = scheme::Ciphertext::decode(&ctx, &ones, [7; 32], "query")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("query") && e.contains("not below the prime"),
        "{e}"
    );
    let e = scheme::Ciphertext::decode(&ctx, &ct[1..], [7; 32], "query")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("expected"), "{e}");
    let c1 = codec::packed_len(&ctx, 2, ctx.degree());
    let e = sk
        .decrypt(&ctx, &ones[..c1], &[], &[], "answer")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("answer"), "{e}");
    // A session whose client sends random bytes of the right size as its first query.
    let qm = model(6, ring);
    let (a, b) = mem::pair();
    let o = opts(3, OfflineMode::default());
    let m2 = qm.clone();
    let server = std::thread::spawn(move || {
        let mut s = Server::start(m2, Channel::new(Box::new(a)), &o)?;
        s.serve()
    });
    let mut ch = Channel::new(Box::new(b));
    use privlin_mpc::net::Expect;
    ch.recv("hello", Expect::AtMost(1 << 24)).unwrap();
    let mut r = <ChaCha12Rng as SeedableRng>::seed_from_u64(3);
    privlin_mpc::ot::iknp::Receiver::setup(&mut ch, &mut r).unwrap();
    ch.send(pk).unwrap();
    ch.send(vec![1]).unwrap();
    let first = homomorphic::plan(&qm.arch, &ctx).unwrap()[0].1;
    let up = homomorphic::message_sizes(&ctx, &first)
        .0
        .expect("the first layer sends a query");
    let mut w = privlin_mpc::wire::Writer::new();
    w.bytes(&[0u8; 32]).bytes(&vec![0xff; up as usize - 48]);
    ch.send(w.finish()).unwrap();
    let e = server.join().unwrap().err().unwrap().to_string();
    assert!(
        e.contains("HE ciphertexts") && e.contains("not below the prime"),
        "{e}"
    );
}

/// The server's weight polynomials kept in NTT form for the session give the same protocol
/// outputs, bit for bit, as encoding them at every inference, whatever part of the model the
/// budget caches (none, the first layers, all); the cost model and the backend agree on which
/// layers are cached, and the cache holds what its budget allows.
#[test]
fn cached_weight_forms_give_the_same_results() {
    let ring = Ring::default();
    let qm = model(5, ring);
    let ctx = HeContext::new(HeParams::default(), &ring).unwrap();
    let plan: std::collections::HashMap<_, _> = homomorphic::plan(&qm.arch, &ctx)
        .unwrap()
        .into_iter()
        .collect();
    let first = *plan.keys().min().unwrap();
    let one_layer = homomorphic::layer_weight_polys(&plan[&first]) as u64
        * homomorphic::weight_poly_bytes(&ctx);
    let all = homomorphic::cache_bytes(&plan, &ctx, u64::MAX);
    assert_eq!(homomorphic::cached_layers(&plan, &ctx, 0).len(), 0);
    assert_eq!(
        homomorphic::cached_layers(&plan, &ctx, one_layer)
            .into_iter()
            .collect::<Vec<_>>(),
        vec![first]
    );
    assert_eq!(
        homomorphic::cached_layers(&plan, &ctx, all).len(),
        plan.len()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x: Vec<f32> = (0..qm.arch.numel(0))
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let enc = QuantModel::encode_input(&qm.arch, &ring, &x).unwrap();
    let inputs = vec![enc.clone(), enc];
    let mut outs = Vec::new();
    for budget in [0, one_layer, all] {
        let mut o = opts(3, OfflineMode::default());
        o.limits.he_cache_bytes = budget;
        // The backend's cache, filled at the server's set-up.
        let mut be = HeOffline::new(HeParams::default());
        be.prepare_server(&qm, &o).unwrap();
        assert_eq!(
            be.cached_bytes(),
            homomorphic::cache_bytes(&plan, &ctx, budget),
            "budget {budget}"
        );
        assert!(be.cached_bytes() <= budget);
        be.check_cache(&qm).unwrap();
        if budget > 0 {
            // The cache refuses a model whose cached layer's weights changed.
            let mut other = qm.clone();
            let w = &mut other.layers.get_mut(&first).unwrap().weight;
            w[0] = ring.reduce(w[0].wrapping_add(1));
            let err = be.check_cache(&other).unwrap_err();
            assert!(err.to_string().contains("cached HE polynomials"), "{err}");
        }
        let s = privlin_mpc::bench::session(&qm, &inputs, None, 1, &o).unwrap();
        outs.push(
            s.inferences
                .iter()
                .map(|i| i.raw.clone().unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], outs[2]);
}

/// The service's cache: built once per served model and handed to each session's backend, it
/// gives the same results as a session's own; a backend refuses a cache of another model or of
/// other HE parameters at set-up.
#[test]
fn shared_weight_cache_serves_its_model_only() {
    let ring = Ring::default();
    let qm = model(5, ring);
    let o = opts(3, OfflineMode::default());
    let params = HeParams::default();
    let cache = Arc::new(homomorphic::WeightCache::build(&qm, &params, u64::MAX).unwrap());
    let ctx = HeContext::new(params, &ring).unwrap();
    let plan: std::collections::HashMap<_, _> = homomorphic::plan(&qm.arch, &ctx)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        cache.bytes(),
        homomorphic::cache_bytes(&plan, &ctx, u64::MAX)
    );
    assert_eq!(cache.layers(), plan.len());
    let mut be = HeOffline::with_cache(params, cache.clone());
    be.prepare_server(&qm, &o).unwrap();
    assert_eq!(be.cached_bytes(), cache.bytes());
    // Another model (other weights) is refused.
    let other = model(6, ring);
    let mut be = HeOffline::with_cache(params, cache.clone());
    let err = be.prepare_server(&other, &o).unwrap_err();
    assert!(err.to_string().contains("cached HE polynomials"), "{err}");
    // Other HE parameters are refused.
    let p2 = HeParams {
        weight_bits: params.weight_bits + 1,
        ..params
    };
    let mut be = HeOffline::with_cache(p2, cache.clone());
    let err = be.prepare_server(&qm, &o).unwrap_err();
    assert!(err.to_string().contains("other HE parameters"), "{err}");
}
