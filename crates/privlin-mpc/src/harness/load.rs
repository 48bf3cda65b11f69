//! Load test of the private-inference service (`privlin pi load`): a server ([`serve_sessions`])
//! and `clients` client sessions on this machine over loopback TCP; requests arrive as a Poisson
//! process of the given total rate (each client a Poisson stream of `rate / clients`) for
//! `duration`, each client serves its requests in arrival order and, between them, refills its
//! pool of precomputed offline phases up to `pool`. A request's latency (arrival to class) splits
//! into queueing (waiting for its client: an earlier request or a refill in progress), the
//! offline phase run inline when the pool was empty, and the online phase. This is the regime
//! the "offline-online fallacy" of the design papers' slides is about: one request at a time, the
//! offline phase looks free; under a stream of requests it must keep up with the arrival rate.

use crate::net::tcp::TcpTransport;
use crate::net::Channel;
use crate::protocol::service::{serve_sessions, Event, ServeConfig};
use crate::protocol::{Client, Options};
use crate::{MpcError, QuantModel, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// One load level.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Requests per second, all clients together.
    pub rate: f64,
    /// Arrivals are generated over this window.
    pub duration: Duration,
    /// Concurrent client sessions.
    pub clients: usize,
    /// Precomputed offline phases each client keeps (0: every request runs its offline inline).
    pub pool: usize,
    /// Requests still queued this long after the window are abandoned (counted unfinished).
    pub grace: Duration,
    /// Seed of the arrival times.
    pub seed: u64,
    /// Greedy client sessions beside the measured ones: each runs inline inferences back to
    /// back (no pool, no arrivals) for the whole window, to show what one busy peer does to
    /// the others' latency. Their requests are counted apart, not in the percentiles.
    pub greedy: usize,
    /// The server's [`ServeConfig::session_threads`].
    pub session_threads: usize,
}

/// One completed request.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub client: usize,
    pub arrival_s: f64,
    pub queue_s: f64,
    /// Offline phase run inline (0 when precomputed).
    pub offline_s: f64,
    pub online_s: f64,
    pub latency_s: f64,
    pub pooled: bool,
    pub correct: bool,
}

/// `p50 / p95 / p99` (nearest rank) of a sample.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Percentiles {
    pub fn of(v: &[f64]) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let at = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Percentiles {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        }
    }
}

/// The outcome of one load level.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub rate: f64,
    pub duration_s: f64,
    pub clients: usize,
    pub pool: usize,
    /// Requests that arrived in the window, completed ones, and abandoned ones.
    pub arrived: usize,
    pub completed: usize,
    pub unfinished: usize,
    /// Completed requests per second of the run (window plus drain).
    pub throughput: f64,
    pub latency: Percentiles,
    pub queue: Percentiles,
    /// Over all completed requests (0 for those whose offline phase was precomputed).
    pub inline_offline: Percentiles,
    pub online: Percentiles,
    /// Share of completed requests whose offline phase had been precomputed.
    pub pooled_share: f64,
    /// Offline phases precomputed during the window (refills).
    pub refills: usize,
    /// Completed requests whose class differs from the expected one.
    pub wrong: usize,
    /// Greedy sessions ([`LoadConfig::greedy`]) and the inferences they completed.
    pub greedy: usize,
    pub greedy_requests: usize,
    /// Sessions that failed on either side (their error messages).
    pub failures: Vec<String>,
    pub records: Vec<Record>,
}

/// Poisson arrival times on `[0, duration)` at `rate` per second.
pub fn poisson_arrivals(rate: f64, duration: f64, rng: &mut impl Rng) -> Vec<f64> {
    let mut t = 0.0;
    let mut out = Vec::new();
    if rate <= 0.0 {
        return out;
    }
    loop {
        let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
        t += -u.ln() / rate;
        if t >= duration {
            return out;
        }
        out.push(t);
    }
}

/// Runs one load level against a fresh in-process server of `model` on loopback TCP: `inputs`
/// (encoded) are sent in turn, and each class is checked against `expected` (the plaintext
/// fixed-point class of the same input). `opts` serves both sides (each draws its own stream).
pub fn run(
    model: &QuantModel,
    inputs: &[Vec<u64>],
    expected: &[usize],
    opts: &Options,
    cfg: &LoadConfig,
) -> Result<LoadReport> {
    if cfg.clients == 0 || inputs.is_empty() || inputs.len() != expected.len() {
        return Err(MpcError::Params(
            "a load test needs at least one client and one input with its expected class".into(),
        ));
    }
    if !(cfg.rate > 0.0 && cfg.rate.is_finite()) {
        return Err(MpcError::Params(format!(
            "request rate {} is not a positive number",
            cfg.rate
        )));
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut server_opts = *opts;
    server_opts.limits.max_pool = server_opts.limits.max_pool.max(cfg.pool);
    let sessions = cfg.clients + cfg.greedy;
    let scfg = ServeConfig {
        sessions,
        max_concurrent: sessions,
        queue: 0,
        io_timeout: Duration::from_secs(600),
        idle_timeout: cfg.duration + cfg.grace + Duration::from_secs(600),
        session_deadline: cfg.duration + cfg.grace + Duration::from_secs(3600),
        profile: None,
        // Every client of the load test is on this machine.
        max_per_peer: usize::MAX,
        session_threads: cfg.session_threads,
        ..ServeConfig::default()
    };
    let stop = AtomicBool::new(false);
    let server_errors = Mutex::new(Vec::new());
    let on_event = |e: Event| {
        if let Event::Ended {
            result: Err(err), ..
        } = e
        {
            server_errors.lock().unwrap().push(format!("server: {err}"));
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let window = cfg.duration.as_secs_f64();
    let arrivals: Vec<Vec<f64>> = (0..cfg.clients)
        .map(|_| poisson_arrivals(cfg.rate / cfg.clients as f64, window, &mut rng))
        .collect();
    let arrived: usize = arrivals.iter().map(|a| a.len()).sum();
    let start = Barrier::new(sessions);
    let t0 = Mutex::new(None::<Instant>);
    let client_opts = server_opts;
    let (results, elapsed, greedy) = std::thread::scope(|scope| {
        let server = scope.spawn(|| {
            serve_sessions(
                &listener,
                model.clone(),
                &server_opts,
                &scfg,
                &stop,
                &on_event,
            )
        });
        let handles: Vec<_> = arrivals
            .iter()
            .enumerate()
            .map(|(k, arr)| {
                let (start, t0) = (&start, &t0);
                scope.spawn(move || {
                    client_loop(k, addr, arr, inputs, expected, &client_opts, cfg, start, t0)
                })
            })
            .collect();
        let greedy: Vec<_> = (0..cfg.greedy)
            .map(|k| {
                let (start, t0) = (&start, &t0);
                scope.spawn(move || greedy_loop(k, addr, inputs, &client_opts, cfg, start, t0))
            })
            .collect();
        let greedy: Vec<Result<usize>> = greedy
            .into_iter()
            .map(|h| h.join().expect("greedy client thread"))
            .collect();
        let results: Vec<Result<(Vec<Record>, usize, usize)>> = handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect();
        let elapsed = t0
            .lock()
            .unwrap()
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        stop.store(true, Ordering::SeqCst);
        let _ = server.join().expect("server thread");
        (results, elapsed, greedy)
    });
    let mut records = Vec::new();
    let (mut refills, mut unfinished) = (0, 0);
    let mut failures = server_errors.into_inner().unwrap();
    for (k, r) in results.into_iter().enumerate() {
        match r {
            Ok((recs, f, u)) => {
                records.extend(recs);
                refills += f;
                unfinished += u;
            }
            Err(e) => failures.push(format!("client {k}: {e}")),
        }
    }
    let mut greedy_requests = 0;
    for (k, g) in greedy.into_iter().enumerate() {
        match g {
            Ok(n) => greedy_requests += n,
            Err(e) => failures.push(format!("greedy client {k}: {e}")),
        }
    }
    records.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
    let col = |f: &dyn Fn(&Record) -> f64| records.iter().map(f).collect::<Vec<_>>();
    let completed = records.len();
    Ok(LoadReport {
        rate: cfg.rate,
        duration_s: window,
        clients: cfg.clients,
        pool: cfg.pool,
        arrived,
        completed,
        unfinished,
        throughput: if elapsed > 0.0 {
            completed as f64 / elapsed
        } else {
            0.0
        },
        latency: Percentiles::of(&col(&|r| r.latency_s)),
        queue: Percentiles::of(&col(&|r| r.queue_s)),
        inline_offline: Percentiles::of(&col(&|r| r.offline_s)),
        online: Percentiles::of(&col(&|r| r.online_s)),
        pooled_share: if completed > 0 {
            records.iter().filter(|r| r.pooled).count() as f64 / completed as f64
        } else {
            0.0
        },
        refills,
        wrong: records.iter().filter(|r| !r.correct).count(),
        greedy: cfg.greedy,
        greedy_requests,
        failures,
        records,
    })
}

/// One request alone on a fresh in-process server: `(seconds with the offline phase precomputed,
/// seconds with it inline)`, each from the client's sending of the command to its class.
pub fn single_request(model: &QuantModel, input: &[u64], opts: &Options) -> Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let scfg = ServeConfig {
        sessions: 1,
        max_concurrent: 1,
        queue: 0,
        ..ServeConfig::default()
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let server =
            scope.spawn(|| serve_sessions(&listener, model.clone(), opts, &scfg, &stop, &|_| {}));
        let res = (|| -> Result<(f64, f64)> {
            let stream = TcpStream::connect(addr)?;
            let ch = Channel::new(Box::new(TcpTransport::new(
                stream,
                Duration::from_secs(600),
            )?));
            let mut c = Client::connect(ch, opts)?;
            c.precompute()?;
            let t = Instant::now();
            c.infer_encoded(input)?;
            let pooled = t.elapsed().as_secs_f64();
            let t = Instant::now();
            c.infer_encoded(input)?;
            let inline = t.elapsed().as_secs_f64();
            c.close()?;
            Ok((pooled, inline))
        })();
        stop.store(true, Ordering::SeqCst);
        server.join().expect("server thread")?;
        res
    })
}

/// One client session: fills its pool before the common start, then serves its arrivals in
/// order, refilling the pool whenever it is idle. Returns its records, refills and abandoned
/// requests.
#[allow(clippy::too_many_arguments)]
fn client_loop(
    k: usize,
    addr: std::net::SocketAddr,
    arrivals: &[f64],
    inputs: &[Vec<u64>],
    expected: &[usize],
    opts: &Options,
    cfg: &LoadConfig,
    start: &Barrier,
    t0: &Mutex<Option<Instant>>,
) -> Result<(Vec<Record>, usize, usize)> {
    let connect = || -> Result<Client> {
        let stream = TcpStream::connect(addr)?;
        let ch = Channel::new(Box::new(TcpTransport::new(
            stream,
            Duration::from_secs(600),
        )?));
        Client::connect(ch, opts)
    };
    // Every client waits at the barrier, also when its connection failed (the others must start).
    let client = connect().and_then(|mut c| {
        for _ in 0..cfg.pool {
            c.precompute()?;
        }
        Ok(c)
    });
    start.wait();
    let mut c = client?;
    let t0 = *t0.lock().unwrap().get_or_insert_with(Instant::now);
    let now = || t0.elapsed().as_secs_f64();
    let give_up = cfg.duration.as_secs_f64() + cfg.grace.as_secs_f64();
    let (mut records, mut refills) = (Vec::new(), 0);
    let mut j = 0;
    while j < arrivals.len() {
        let t = now();
        if t > give_up {
            break;
        }
        if t >= arrivals[j] {
            let idx = (k + j * 7919) % inputs.len();
            let inf = c.infer_encoded(&inputs[idx])?;
            let end = now();
            let busy = inf.offline_s + inf.online_s;
            records.push(Record {
                client: k,
                arrival_s: arrivals[j],
                queue_s: (end - busy - arrivals[j]).max(0.0),
                offline_s: if inf.pooled { 0.0 } else { inf.offline_s },
                online_s: inf.online_s,
                latency_s: end - arrivals[j],
                pooled: inf.pooled,
                correct: inf.class == expected[idx],
            });
            j += 1;
        } else if c.pooled() < cfg.pool {
            c.precompute()?;
            refills += 1;
        } else {
            std::thread::sleep(Duration::from_secs_f64((arrivals[j] - t).min(0.02)));
        }
    }
    c.close()?;
    Ok((records, refills, arrivals.len() - j))
}

/// One greedy session ([`LoadConfig::greedy`]): inline inferences back to back from the common
/// start to the end of the window. Returns how many it completed.
fn greedy_loop(
    k: usize,
    addr: std::net::SocketAddr,
    inputs: &[Vec<u64>],
    opts: &Options,
    cfg: &LoadConfig,
    start: &Barrier,
    t0: &Mutex<Option<Instant>>,
) -> Result<usize> {
    let client = TcpStream::connect(addr)
        .map_err(MpcError::from)
        .and_then(|s| {
            Ok(Channel::new(Box::new(TcpTransport::new(
                s,
                Duration::from_secs(600),
            )?)))
        })
        .and_then(|ch| Client::connect(ch, opts));
    start.wait();
    let mut c = client?;
    let t0 = *t0.lock().unwrap().get_or_insert_with(Instant::now);
    let mut done = 0;
    while t0.elapsed() < cfg.duration {
        c.infer_encoded(&inputs[(k + done) % inputs.len()])?;
        done += 1;
    }
    c.close()?;
    Ok(done)
}
