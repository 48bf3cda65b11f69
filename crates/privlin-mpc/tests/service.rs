//! The private-inference service over loopback TCP: concurrent sessions with pools of
//! precomputed offline phases, failures that cost one session, refusals, graceful shutdown, and
//! the load test's bookkeeping.

use privlin_mpc::load::{self, LoadConfig, Percentiles};
use privlin_mpc::net::tcp::TcpTransport;
use privlin_mpc::net::{Channel, Profile};
use privlin_mpc::protocol::service::{serve_sessions, Event, ServeConfig};
use privlin_mpc::protocol::{Client, Options, Request};
use privlin_mpc::synthetic::{self, Spec};
use privlin_mpc::{plain, QuantModel, Ring};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn model() -> QuantModel {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let spec = Spec {
        keep: 0.4,
        ..Spec::default()
    };
    QuantModel::new(&synthetic::model(&mut rng, &spec), Ring::default()).unwrap()
}

/// Encoded random inputs and their plaintext fixed-point classes.
fn inputs(m: &QuantModel, n: usize, seed: u64) -> Vec<(Vec<u64>, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let x: Vec<f32> = (0..m.arch.numel(0))
                .map(|_| rng.gen_range(-2.0..2.0))
                .collect();
            let enc = QuantModel::encode_input(&m.arch, &m.ring, &x).unwrap();
            let class = plain::decode_logits(m, &plain::forward(m, &enc).logits).1;
            (enc, class)
        })
        .collect()
}

fn config(max_concurrent: usize, queue: usize) -> ServeConfig {
    ServeConfig {
        max_concurrent,
        queue,
        io_timeout: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(20),
        // Every test client connects from 127.0.0.1.
        max_per_peer: usize::MAX,
        ..ServeConfig::default()
    }
}

fn connect(
    addr: SocketAddr,
    opts: &Options,
    profile: Option<Profile>,
) -> privlin_mpc::Result<Client> {
    let stream = TcpStream::connect(addr).unwrap();
    let t = TcpTransport::new(stream, Duration::from_secs(20)).unwrap();
    Client::connect(Channel::new(Box::new(t)).with_profile(profile), opts)
}

/// Runs `f` against a service of `model` under `cfg`; returns what `f` returned and every event.
fn with_service<T>(
    cfg: ServeConfig,
    f: impl FnOnce(SocketAddr, &AtomicBool) -> T,
) -> (T, Vec<Event>) {
    with_service_opts(cfg, Options::insecure_seeded(5), f)
}

fn with_service_opts<T>(
    cfg: ServeConfig,
    opts: Options,
    f: impl FnOnce(SocketAddr, &AtomicBool) -> T,
) -> (T, Vec<Event>) {
    let m = model();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = AtomicBool::new(false);
    let events = Mutex::new(Vec::new());
    let out = std::thread::scope(|s| {
        let server = s.spawn(|| {
            serve_sessions(&listener, m.clone(), &opts, &cfg, &stop, &|e| {
                events.lock().unwrap().push(e)
            })
        });
        let out = f(addr, &stop);
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap().unwrap();
        out
    });
    (out, events.into_inner().unwrap())
}

/// Three clients at once, each precomputing two offline phases and then classifying three
/// inputs: the first two inferences take the pool, the third runs its offline phase inline, the
/// pool refills, and every class is the plaintext fixed-point class.
#[test]
fn concurrent_clients_with_pools_get_the_plaintext_class() {
    let m = model();
    let data = inputs(&m, 3, 1);
    let (pooled, events) = with_service(config(3, 0), |addr, _| {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..3)
                .map(|k| {
                    let data = &data;
                    s.spawn(move || {
                        let mut c = connect(addr, &Options::insecure_seeded(10 + k), None).unwrap();
                        c.precompute().unwrap();
                        c.precompute().unwrap();
                        assert_eq!(c.pooled(), 2);
                        let mut flags = Vec::new();
                        for (x, class) in data {
                            let inf = c.infer_encoded(x).unwrap();
                            assert_eq!(inf.class, *class, "client {k}");
                            flags.push(inf.pooled);
                        }
                        c.precompute().unwrap();
                        assert_eq!(c.pooled(), 1);
                        c.close().unwrap();
                        flags
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    });
    for flags in &pooled {
        assert_eq!(flags, &[true, true, false]);
    }
    let infers: Vec<bool> = events
        .iter()
        .filter_map(|e| match e {
            Event::Request {
                request: Request::Infer { pooled, .. },
                ..
            } => Some(*pooled),
            _ => None,
        })
        .collect();
    assert_eq!(infers.len(), 9);
    assert_eq!(infers.iter().filter(|&&p| !p).count(), 3);
    let precomputes = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Request {
                    request: Request::Precompute { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(precomputes, 9);
    let ended: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Ended { result, .. } => Some(*result.as_ref().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(ended, vec![3, 3, 3]);
}

/// A client that stalls after the hello, one that vanishes mid-offline and one that vanishes
/// mid-online each cost their own session; a well-behaved client is served meanwhile and after.
#[test]
fn stalled_and_vanishing_clients_cost_only_their_session() {
    let m = model();
    let data = inputs(&m, 1, 2);
    let mut cfg = config(4, 0);
    cfg.io_timeout = Duration::from_secs(1);
    let (_, events) = with_service(cfg, |addr, _| {
        // Stalls: connects and never answers the hello.
        let stalled = TcpStream::connect(addr).unwrap();
        // Vanishes mid-offline: asks for an inference (nothing precomputed), then drops.
        let mut c = connect(addr, &Options::insecure_seeded(3), None).unwrap();
        c.channel().send(vec![1]).unwrap();
        drop(c);
        // Vanishes mid-online: the offline phase is precomputed, so the server goes straight to
        // the online phase and waits for the masked input.
        let mut c = connect(addr, &Options::insecure_seeded(4), None).unwrap();
        c.precompute().unwrap();
        c.channel().send(vec![1]).unwrap();
        drop(c);
        // Served all along.
        let mut ok = connect(addr, &Options::insecure_seeded(6), None).unwrap();
        let inf = ok.infer_encoded(&data[0].0).unwrap();
        assert_eq!(inf.class, data[0].1);
        ok.close().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        drop(stalled);
    });
    let ends: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Ended { result, .. } => Some(match result {
                Ok(n) => format!("ok {n}"),
                Err(e) => e.to_string(),
            }),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 4, "{ends:?}");
    assert!(ends.contains(&"ok 1".to_string()), "{ends:?}");
    assert!(ends.iter().any(|e| e.contains("timed out")), "{ends:?}");
    assert_eq!(
        ends.iter()
            .filter(|e| e.contains("closed") || e.contains("disconnect"))
            .count(),
        2,
        "{ends:?}"
    );
}

/// At the session limit with no queue, the next client is refused with a message naming why.
#[test]
fn a_full_server_refuses_with_a_message() {
    let (err, events) = with_service(config(1, 0), |addr, _| {
        let first = connect(addr, &Options::insecure_seeded(1), None).unwrap();
        let err = connect(addr, &Options::insecure_seeded(2), None)
            .err()
            .expect("refused")
            .to_string();
        first.close().unwrap();
        err
    });
    assert!(err.contains("refused the session: busy"), "{err}");
    assert!(events.iter().any(|e| matches!(e, Event::Refused { .. })));
}

/// Shutdown while a request is in flight: the request completes, the session then closes, and
/// the client's next request fails with an error rather than hanging.
#[test]
fn shutdown_lets_the_request_in_flight_finish() {
    let m = model();
    let data = inputs(&m, 1, 3);
    // A slow link (0.2 s per round trip) so that the inference is surely in flight at the stop.
    let slow = Profile {
        name: "slow".into(),
        bandwidth: 1e9,
        rtt: 0.2,
    };
    let mut cfg = config(2, 0);
    cfg.profile = Some(slow.clone());
    let ((first, second, took), _) = with_service(cfg, |addr, stop| {
        let mut c = connect(addr, &Options::insecure_seeded(8), Some(slow)).unwrap();
        std::thread::scope(|s| {
            let t0 = Instant::now();
            let h = s.spawn(|| {
                std::thread::sleep(Duration::from_millis(400));
                stop.store(true, Ordering::SeqCst);
            });
            let first = c.infer_encoded(&data[0].0).map(|i| i.class);
            let took = t0.elapsed();
            h.join().unwrap();
            let second = c.infer_encoded(&data[0].0).map(|i| i.class);
            (first, second, took)
        })
    });
    assert!(
        took > Duration::from_millis(400),
        "the inference ended before the stop"
    );
    assert_eq!(first.unwrap(), data[0].1);
    assert!(second.is_err());
}

/// The load test at a low rate beside a greedy session: every request completes with the right
/// class, the latency splits add up, and the pool serves the requests that find it filled.
/// The latency bound an honest request keeps beside a greedy client (issue 35).
const HONEST_LATENCY_BOUND_S: f64 = 10.0;

#[test]
fn load_test_accounts_for_every_request() {
    let m = model();
    let data = inputs(&m, 4, 4);
    let (xs, classes): (Vec<_>, Vec<_>) = data.into_iter().unzip();
    let cfg = LoadConfig {
        rate: 4.0,
        duration: Duration::from_secs(2),
        clients: 2,
        pool: 1,
        grace: Duration::from_secs(30),
        seed: 9,
        greedy: 1,
        session_threads: 1,
    };
    let r = load::run(&m, &xs, &classes, &Options::insecure_seeded(2), &cfg).unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    // The greedy session ran beside the measured ones and is counted apart.
    assert_eq!(r.greedy, 1);
    assert!(r.greedy_requests > 0);
    assert!(r.records.iter().all(|x| x.client < 2));
    assert!(r.arrived > 0);
    assert_eq!(r.completed + r.unfinished, r.arrived);
    assert_eq!(r.unfinished, 0);
    assert_eq!(r.wrong, 0);
    assert!(r.records.iter().any(|x| x.pooled), "the pool never served");
    // A greedy client's inline work (its own session's thread pool) does not push an honest
    // client's latency past a stated bound: 10 s, against well under a second for a request of
    // this model alone (the bound is loose on purpose, for any CI machine; `privlin pi load
    // --greedy` measures the real effect, docs/results.md).
    let worst = r.records.iter().map(|x| x.latency_s).fold(0.0, f64::max);
    assert!(
        worst < HONEST_LATENCY_BOUND_S,
        "an honest request took {worst:.2} s beside a greedy client"
    );
    for x in &r.records {
        let parts = x.queue_s + x.offline_s + x.online_s;
        assert!(
            x.latency_s + 1e-9 >= parts - 0.05 && x.latency_s <= parts + 0.05,
            "{x:?}"
        );
    }
    let p = Percentiles::of(&[3.0, 1.0, 2.0, 4.0]);
    assert_eq!((p.p50, p.p95, p.p99), (2.0, 4.0, 4.0));
    let a = load::poisson_arrivals(50.0, 10.0, &mut ChaCha8Rng::seed_from_u64(1));
    assert!(
        (a.len() as f64 - 500.0).abs() < 4.0 * 500f64.sqrt(),
        "{}",
        a.len()
    );
}

/// `per_peer_cap` and `silent_connection`: with one session per peer, a second connection from
/// the same address is refused with a message naming the cap while the first holds its slot; the
/// first, which sends nothing, is dropped at the 1 s set-up deadline (not the hour-long session
/// deadline), and then the same address is served again.
#[test]
fn per_peer_cap_and_silent_connection() {
    let cfg = ServeConfig {
        max_per_peer: 1,
        setup_deadline: Duration::from_secs(1),
        ..config(4, 4)
    };
    let (served, events) = with_service(cfg, |addr, stop| {
        let started = Instant::now();
        let silent = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let err = connect(addr, &Options::insecure_seeded(5), None)
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("at most 1 at once per peer"),
            "{err}"
        );
        // The silent connection's session ends at the set-up deadline...
        let mut waited = Duration::ZERO;
        while waited < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            waited += Duration::from_millis(100);
            // ... after which this address may connect again.
            if let Ok(mut c) = connect(addr, &Options::insecure_seeded(5), None) {
                let m = model();
                let (x, class) = inputs(&m, 1, 3).remove(0);
                let inf = c.infer_encoded(&x).unwrap();
                assert_eq!(inf.class, class);
                c.close().unwrap();
                drop(silent);
                stop.store(true, Ordering::SeqCst);
                return started.elapsed();
            }
        }
        panic!("the silent connection held its slot for 10 s");
    });
    assert!(served < Duration::from_secs(8), "{served:?}");
    // The served model's HE weight cache was built once, before any session.
    assert!(
        matches!(events.first(), Some(Event::Ready { he_cache_bytes, .. }) if *he_cache_bytes > 0),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Refused { why, .. } if why.contains("per peer"))));
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Ended { result: Err(err), .. } if err.to_string().contains("deadline")
        )),
        "{events:?}"
    );
}

/// A memory budget lowers each session's pool to fit: the server's Ready event reports the plan,
/// the hello carries the lowered pool, and the client refuses to precompute beyond it; a budget
/// that does not hold one offline phase per session is refused at start-up.
#[test]
fn memory_budget_lowers_the_pool_and_the_client_follows() {
    let cfg = config(1, 0);
    // The plan without a budget: shared bytes and bytes per phase of this model.
    let ((), events) = with_service(cfg.clone(), |_, _| ());
    let free = match events.first() {
        Some(Event::Ready { memory, .. }) => *memory,
        other => panic!("{other:?}"),
    };
    assert_eq!(free.max_pool, Options::default().limits.max_pool);
    assert!(free.phase_bytes > 0 && free.shared_bytes > 0);
    // Room for the phase in flight and one pooled phase.
    let mut opts = Options::insecure_seeded(5);
    opts.limits.max_memory_bytes = free.shared_bytes + 2 * free.phase_bytes + free.phase_bytes / 2;
    let (second, events) = with_service_opts(cfg.clone(), opts, |addr, _| {
        let mut c = connect(addr, &Options::insecure_seeded(6), None).unwrap();
        assert_eq!(c.hello.max_pool, 1);
        c.precompute().unwrap();
        let err = c.precompute().unwrap_err().to_string();
        let (x, class) = inputs(&model(), 1, 3).remove(0);
        assert_eq!(c.infer_encoded(&x).unwrap().class, class);
        c.close().unwrap();
        err
    });
    assert!(second.contains("server's"), "{second}");
    assert!(
        matches!(events.first(), Some(Event::Ready { memory, .. }) if memory.max_pool == 1),
        "{events:?}"
    );
    // Not even one phase in flight fits: refused before any client.
    let mut opts = Options::insecure_seeded(5);
    opts.limits.max_memory_bytes = free.shared_bytes + free.phase_bytes / 2;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = serve_sessions(
        &listener,
        model(),
        &opts,
        &cfg,
        &AtomicBool::new(false),
        &|_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("memory budget"), "{err}");
}
