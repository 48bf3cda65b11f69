//! Measurements: calibration of the cost model, per-ReLU micro-benchmarks, whole-model sessions
//! over the in-memory channel (two threads, optionally shaped).

use crate::cost::Calibration;
use crate::error::Result;
use crate::gc::FixedKeyHash;
use crate::linalg;
use crate::net::{mem, Channel, Meter, Profile};
use crate::ot::{iknp, silent};
use crate::protocol::{garbled, Client, Inference, Options, Server, SiteDims};
use crate::ring::Ring;
use crate::wire::Block;
use crate::QuantModel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use std::time::Instant;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// Hardware threads of this machine.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Threads of each party when both run on this machine: half the cores each, so that neither
/// waits for the other's threads (the cost model describes a party with its cores to itself).
pub fn threads_per_party() -> usize {
    (cores() / 2).max(1)
}

/// The processor and its hardware threads, for the header of every measurement.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpu}, {} threads", cores())
}

/// Median of `times`.
fn median_of(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Median of `reps` timings of `f`, in seconds (a session runs each step once, cold: the median
/// is closer to that than the best).
fn median<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    median_of(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Per-ReLU measurements of the circuit and OT layers (no network).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReluMicro {
    pub threads: usize,
    pub relus: usize,
    pub and_gates_per_relu: usize,
    pub garble_us: f64,
    pub eval_us: f64,
    /// IKNP for the client's `w + l` input labels, both parties.
    pub ot_us: f64,
    /// Online work outside the circuit: the server's label selection and output decoding, the
    /// client's packing of output bits.
    pub online_overhead_us: f64,
}

/// Times garbling, evaluation and OT extension of `n` active-ReLU circuits on `threads` threads.
pub fn relu_micro(ring: &Ring, n: usize, threads: usize) -> ReluMicro {
    pool(threads).install(|| {
        let d = SiteDims::new(ring, n, ring.frac);
        let hash = FixedKeyHash::new(0);
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        let delta: Block = rng.gen::<u128>() | 1;
        let zs: Vec<Block> = (0..n * d.w).map(|_| rng.gen()).collect();
        let zc: Vec<Block> = (0..n * d.client_bits()).map(|_| rng.gen()).collect();
        let mut tables = Vec::new();
        let g = median(3, || {
            tables = garbled::garble(&hash, delta, 0, &d, &zs, &zc).0
        });
        let e = median(3, || {
            std::hint::black_box(garbled::evaluate(&hash, 0, &d, &zs, &zc, &tables));
        });
        let shares: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
        let out_bits: Vec<bool> = (0..n * d.l).map(|_| rng.gen()).collect();
        let over = median(3, || {
            let lab = garbled::encode(&zs, delta, &shares, d.w);
            let mut w = crate::wire::Writer::new();
            w.blocks(&lab).bits(&out_bits);
            std::hint::black_box(garbled::decode(&out_bits, &out_bits, d.l));
        });
        // One extension for all `n` circuits, as the protocol extends once per site.
        let ot = median_of(
            (0..3)
                .map(|_| ot_pair(n * d.client_bits(), threads))
                .collect(),
        );
        ReluMicro {
            threads,
            relus: n,
            and_gates_per_relu: d.ands,
            garble_us: g / n as f64 * 1e6,
            eval_us: e / n as f64 * 1e6,
            ot_us: ot / n as f64 * 1e6,
            online_overhead_us: over / n as f64 * 1e6,
        }
    })
}

/// One site of active ReLUs run end to end by a server and a client thread over the in-memory
/// channel (each party on `threads` threads): what both families cost per ReLU measured the same
/// way, on the client's clock (both parties' compute in turn, and the channel's hand-over; no
/// network delay).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SiteRun {
    pub family: String,
    pub threads: usize,
    pub relus: usize,
    /// Median over the repetitions, per ReLU.
    pub offline_us: f64,
    pub online_us: f64,
    /// Bytes per ReLU both ways, frame headers included.
    pub offline_bytes: f64,
    pub online_bytes: f64,
    pub offline_flights: u64,
    pub online_flights: u64,
    /// OTs per ReLU (correlated OTs for the circuit's inputs, or random OTs of both directions).
    pub ots_per_relu: usize,
    /// Silent-OT extension rounds of one repetition, both directions (zero for the circuit).
    pub extension_rounds: usize,
    /// Bytes of the session's set-up, both ways (base OTs; under `ot` also the silent
    /// extension's IKNP bootstrap in both directions), paid once per session, not per ReLU.
    pub setup_bytes: u64,
}

/// The client's side of [`site_run`]: per repetition `(offline s, online s, meter)`, its output
/// masks, OTs per ReLU, the set-up's bytes.
type ClientRuns = (Vec<(f64, f64, Meter)>, Vec<Vec<u64>>, usize, u64);

/// Measures one site of `n` active ReLUs (pre-activations at scale 2f, truncated by f) under
/// `nonlinear`, `reps` times after one session set-up; checks that the two parties' output
/// shares add up to `relu_trunc` of the input.
pub fn site_run(
    ring: &Ring,
    n: usize,
    threads: usize,
    nonlinear: crate::nonlinear::Nonlinear,
    reps: usize,
) -> Result<SiteRun> {
    use crate::nonlinear::{ot_relu, Nonlinear};
    if nonlinear == Nonlinear::Auto {
        return Err(crate::MpcError::Params(
            "a site measurement takes a concrete family (gc, ot)".into(),
        ));
    }
    let shift = ring.frac;
    let mut rng = ChaCha12Rng::seed_from_u64(17);
    let half = 1i64 << (ring.gc_bits - 2);
    let vals: Vec<u64> = (0..n)
        .map(|_| ring.from_signed(rng.gen_range(-half..half)))
        .collect();
    let ys: Vec<u64> = (0..n).map(|_| ring.reduce(rng.gen())).collect();
    let yc: Vec<u64> = vals
        .iter()
        .zip(&ys)
        .map(|(&v, &s)| ring.reduce(v.wrapping_sub(s)))
        .collect();
    let want: Vec<u64> = vals.iter().map(|&v| ring.relu_trunc(v, shift)).collect();
    let (a, b) = mem::pair();
    let ring = *ring;
    let server = std::thread::spawn(move || -> Result<Vec<Vec<u64>>> {
        pool(threads).install(|| {
            let mut ch = Channel::new(Box::new(a));
            let mut rng = ChaCha12Rng::seed_from_u64(18);
            let mut outs = Vec::new();
            match nonlinear {
                Nonlinear::Ot { digit_bits } => {
                    let mut tx = silent::Sender::setup(&mut ch, &mut rng)?;
                    let mut rx = silent::Receiver::setup(&mut ch, &mut rng)?;
                    for _ in 0..reps {
                        let shape = ot_relu::Shape::new(&ring, shift, digit_bits, n)?;
                        let site =
                            ot_relu::server_offline(&mut ch, &mut tx, &mut rx, &mut rng, shape)?;
                        // Each repetition is one inference's offline phase: fresh pools.
                        tx.discard();
                        rx.discard();
                        outs.push(ot_relu::server_online(&mut ch, site, &ys)?);
                    }
                }
                _ => {
                    let mut tx = iknp::Sender::setup(&mut ch, &mut rng)?;
                    let d = SiteDims::new(&ring, n, shift);
                    let hash = FixedKeyHash::new(0);
                    let delta: Block = rng.gen::<u128>() | 1;
                    for rep in 0..reps {
                        let zero_c = tx.extend(&mut ch, n * d.client_bits(), delta)?;
                        let zero_s: Vec<Block> =
                            (0..n * d.server_bits()).map(|_| rng.gen()).collect();
                        let gate0 = (rep * n * d.ands) as u64;
                        let (tables, decode) =
                            garbled::garble(&hash, delta, gate0, &d, &zero_s, &zero_c);
                        let mut w = crate::wire::Writer::with_capacity(tables.len() * 16 + 16);
                        w.blocks(&tables);
                        ch.send(w.finish())?;
                        let labels = garbled::encode(&zero_s, delta, &ys, d.w);
                        let mut w = crate::wire::Writer::with_capacity(labels.len() * 16 + 16);
                        w.blocks(&labels);
                        ch.send(w.finish())?;
                        let msg = ch.recv(
                            "circuit outputs",
                            crate::net::Expect::Exact(crate::wire::bits_bytes(n * d.l)),
                        )?;
                        let bits = crate::wire::Reader::new(&msg, "circuit outputs")
                            .bits_n(n * d.l, "bits")?;
                        outs.push(garbled::decode(&bits, &decode, d.l));
                    }
                }
            }
            Ok(outs)
        })
    });
    let client = pool(threads).install(|| -> Result<ClientRuns> {
        let mut ch = Channel::new(Box::new(b));
        let mut rng = ChaCha12Rng::seed_from_u64(19);
        let mut runs = Vec::new();
        let mut masks = Vec::new();
        let ots;
        let setup;
        match nonlinear {
            Nonlinear::Ot { digit_bits } => {
                let mut rx = silent::Receiver::setup(&mut ch, &mut rng)?;
                let mut tx = silent::Sender::setup(&mut ch, &mut rng)?;
                setup = ch.meter.total("").bytes();
                let shape = ot_relu::Shape::new(&ring, shift, digit_bits, n)?;
                ots = shape.client_ots + shape.server_ots;
                for _ in 0..reps {
                    ch.meter.reset();
                    ch.phase("offline");
                    let t0 = Instant::now();
                    let site = ot_relu::client_offline(
                        &mut ch,
                        &mut rx,
                        &mut tx,
                        &mut rng,
                        shape.clone(),
                        &yc,
                    )?;
                    rx.discard();
                    tx.discard();
                    let t1 = Instant::now();
                    masks.push(site.out.clone());
                    ch.phase("online");
                    ot_relu::client_online(&mut ch, site)?;
                    let t2 = Instant::now();
                    runs.push((
                        (t1 - t0).as_secs_f64(),
                        (t2 - t1).as_secs_f64(),
                        ch.meter.clone(),
                    ));
                }
            }
            _ => {
                let mut rx = iknp::Receiver::setup(&mut ch, &mut rng)?;
                setup = ch.meter.total("").bytes();
                let d = SiteDims::new(&ring, n, shift);
                ots = d.client_bits();
                let hash = FixedKeyHash::new(0);
                for rep in 0..reps {
                    ch.meter.reset();
                    ch.phase("offline");
                    let t0 = Instant::now();
                    let mut choices = Vec::with_capacity(n * d.client_bits());
                    let mut r = Vec::with_capacity(n);
                    for &v in &yc {
                        let m: u64 = ring.reduce(rng.gen());
                        choices.extend(crate::gc::circuit::bits(v, d.w));
                        choices
                            .extend(crate::gc::circuit::bits(ring.reduce(m.wrapping_neg()), d.l));
                        r.push(m);
                    }
                    let lab_c = rx.extend(&mut ch, &choices)?;
                    let msg = ch.recv(
                        "garbled tables",
                        crate::net::Expect::Exact(crate::wire::blocks_bytes(n * 2 * d.ands)),
                    )?;
                    let tables = crate::wire::Reader::new(&msg, "garbled tables")
                        .blocks_n(n * 2 * d.ands, "tables")?;
                    let t1 = Instant::now();
                    ch.phase("online");
                    let msg = ch.recv(
                        "server labels",
                        crate::net::Expect::Exact(crate::wire::blocks_bytes(n * d.server_bits())),
                    )?;
                    let lab_s = crate::wire::Reader::new(&msg, "server labels")
                        .blocks_n(n * d.server_bits(), "labels")?;
                    let gate0 = (rep * n * d.ands) as u64;
                    let bits = garbled::evaluate(&hash, gate0, &d, &lab_s, &lab_c, &tables);
                    let mut w = crate::wire::Writer::with_capacity(bits.len() / 8 + 16);
                    w.bits(&bits);
                    ch.send(w.finish())?;
                    let t2 = Instant::now();
                    masks.push(r);
                    runs.push((
                        (t1 - t0).as_secs_f64(),
                        (t2 - t1).as_secs_f64(),
                        ch.meter.clone(),
                    ));
                }
            }
        }
        Ok((runs, masks, ots, setup))
    });
    let outs = server.join().expect("server thread")?;
    let (runs, masks, ots, setup_bytes) = client?;
    for (s, c) in outs.iter().zip(&masks) {
        let got: Vec<u64> = s
            .iter()
            .zip(c)
            .map(|(&a, &b)| ring.reduce(a.wrapping_add(b)))
            .collect();
        if got != want {
            return Err(crate::MpcError::Protocol(format!(
                "{}: the two parties' output shares do not add up to ReLU(y) >> f",
                nonlinear.name()
            )));
        }
    }
    let per = |x: f64| x / n as f64;
    let meter = &runs[0].2;
    Ok(SiteRun {
        family: nonlinear.name(),
        threads,
        relus: n,
        offline_us: per(median_of(runs.iter().map(|r| r.0).collect())) * 1e6,
        online_us: per(median_of(runs.iter().map(|r| r.1).collect())) * 1e6,
        offline_bytes: per(meter.total("offline").bytes() as f64),
        online_bytes: per(meter.total("online").bytes() as f64),
        offline_flights: meter.total("offline").flights,
        online_flights: meter.total("online").flights,
        ots_per_relu: ots,
        extension_rounds: match nonlinear {
            Nonlinear::Ot { digit_bits } => {
                ot_relu::Shape::new(&ring, shift, digit_bits, n)?
                    .offline_messages(&mut Default::default())
                    .1
            }
            _ => 0,
        },
        setup_bytes,
    })
}

/// Nanoseconds per hash on one thread, in batches of four as half-gates garbling calls it: the
/// GKWY hash the protocol uses (two AES calls) and the one-call form it replaced (one AES call;
/// not tweakable-CCR, measured only to price the fix). Same run, same inputs.
pub fn hash_cost(n: usize) -> (f64, f64) {
    let h = FixedKeyHash::new(0);
    let mut rng = ChaCha12Rng::seed_from_u64(8);
    let xs: Vec<[Block; 4]> = (0..n / 4).map(|_| rng.gen()).collect();
    let time = |f: &dyn Fn([Block; 4], [Block; 4]) -> [Block; 4]| {
        median(5, || {
            let mut acc = 0u128;
            for (j, x) in xs.iter().enumerate() {
                let t = (j as u128) << 2;
                acc ^= f(*x, [t, t, t | 1, t | 1])[0];
            }
            std::hint::black_box(acc);
        }) / (4 * xs.len()) as f64
            * 1e9
    };
    let gkwy = time(&|x, t| h.hash(x, t));
    let old = time(&|x, t| h.one_call_mmo(x, t));
    (gkwy, old)
}

/// One extension of `m` correlated OTs between two threads (base OTs excluded), in seconds.
fn ot_pair(m: usize, threads: usize) -> f64 {
    let (a, b) = mem::pair();
    let sender = std::thread::spawn(move || {
        pool(threads).install(|| {
            let mut ch = Channel::new(Box::new(a));
            let mut rng = ChaCha12Rng::seed_from_u64(2);
            let mut s = iknp::Sender::setup(&mut ch, &mut rng).unwrap();
            s.extend(&mut ch, m, 1).unwrap();
        })
    });
    pool(threads).install(|| {
        let mut ch = Channel::new(Box::new(b));
        let mut rng = ChaCha12Rng::seed_from_u64(3);
        let mut r = iknp::Receiver::setup(&mut ch, &mut rng).unwrap();
        let choices: Vec<bool> = (0..m).map(|_| rng.gen()).collect();
        let t = Instant::now();
        r.extend(&mut ch, &choices).unwrap();
        let el = t.elapsed().as_secs_f64();
        sender.join().unwrap();
        el
    })
}

/// Seconds of one round of the silent OT extension, both parties on `threads` threads each (as
/// in a session, the receiver's work follows the sender's message), median of three rounds
/// from an empty pool; base OTs and the IKNP bootstrap excluded.
pub fn silent_round_s(threads: usize) -> f64 {
    let (a, b) = mem::pair();
    let usable = silent::FERRET_B10.usable();
    let sender = std::thread::spawn(move || {
        pool(threads).install(|| {
            let mut ch = Channel::new(Box::new(a));
            let mut rng = ChaCha12Rng::seed_from_u64(2);
            let mut s = silent::Sender::setup(&mut ch, &mut rng).unwrap();
            for _ in 0..3 {
                s.reserve(&mut ch, usable).unwrap();
                s.discard();
                ch.recv("go", crate::net::Expect::Exact(1)).unwrap();
            }
        })
    });
    pool(threads).install(|| {
        let mut ch = Channel::new(Box::new(b));
        let mut rng = ChaCha12Rng::seed_from_u64(3);
        let mut r = silent::Receiver::setup(&mut ch, &mut rng).unwrap();
        let times = (0..3)
            .map(|_| {
                let t = Instant::now();
                r.reserve(&mut ch, usable).unwrap();
                let el = t.elapsed().as_secs_f64();
                r.discard();
                ch.send(vec![1]).unwrap();
                el
            })
            .collect();
        sender.join().unwrap();
        median_of(times)
    })
}

/// Measures the cost model's per-operation speeds on this machine, the circuit and OT layers on
/// sites of `relus` active ReLUs (their speed per ReLU depends on the site's size: small sites
/// stay in cache).
pub fn calibrate(ring: &Ring, threads: usize, relus: usize) -> Calibration {
    let micro = relu_micro(ring, relus, threads);
    let mac = pool(threads).install(|| {
        let mut rng = ChaCha12Rng::seed_from_u64(4);
        let (c, h) = (32usize, 32usize);
        let x: Vec<u64> = (0..c * h * h).map(|_| rng.gen()).collect();
        let w: Vec<u64> = (0..c * c * 9).map(|_| rng.gen()).collect();
        let t = median(3, || {
            std::hint::black_box(linalg::conv2d(&x, [c, h, h], &w, [c, h, h], 1, 1));
        });
        t / (c * c * 9 * h * h) as f64 * 1e9
    });
    let ands = micro.and_gates_per_relu as f64;
    let flight_ns = ping_pong_ns();
    let byte_ns =
        transfer_ns_per_byte((relus * 2 * micro.and_gates_per_relu).clamp(1 << 18, 1 << 24));
    // ReLUs on OT: the site measured end to end, less the hand-over of its flights and bytes
    // (phase_seconds charges those again) and the silent-OT rounds it ran (priced per round).
    let ot_round_ns = silent_round_s(threads) * 1e9;
    let (ot_relu_offline_ns, ot_relu_online_ns) = match site_run(
        ring,
        relus,
        threads,
        crate::nonlinear::Nonlinear::Ot {
            digit_bits: crate::nonlinear::millionaire::DEFAULT_DIGIT_BITS,
        },
        3,
    ) {
        Ok(r) => {
            let compute = |us: f64, bytes: f64, flights: u64| {
                (us * 1e3 - bytes * byte_ns - flights as f64 * flight_ns / relus as f64).max(0.0)
            };
            let rounds_ns = r.extension_rounds as f64 * ot_round_ns / relus as f64;
            (
                (compute(r.offline_us, r.offline_bytes, r.offline_flights) - rounds_ns).max(0.0),
                compute(r.online_us, r.online_bytes, r.online_flights),
            )
        }
        Err(_) => (0.0, 0.0),
    };
    let elem = {
        let ring = *ring;
        let mut rng = ChaCha12Rng::seed_from_u64(5);
        let v: Vec<u64> = (0..1 << 20).map(|_| rng.gen()).collect();
        median(3, || {
            let t: Vec<u64> = v
                .iter()
                .map(|&x| ring.reduce(ring.truncate_share_server(x, 12).wrapping_add(x)))
                .collect();
            std::hint::black_box(t);
        }) / (1u64 << 20) as f64
            * 1e9
    };
    Calibration {
        elem_ns: elem,
        flight_ns,
        // Messages of the size of a site's garbled tables.
        byte_ns,
        layer_s: Default::default(),
        he: crate::he::speed::HeSpeeds::measure(Default::default(), ring).ok(),
        mac_ns: mac,
        garble_and_ns: micro.garble_us * 1e3 / ands,
        eval_and_ns: micro.eval_us * 1e3 / ands,
        ot_ns: micro.ot_us * 1e3 / (ring.gc_bits + ring.bits) as f64,
        relu_online_ns: micro.online_overhead_us * 1e3,
        ot_relu_offline_ns,
        ot_relu_online_ns,
        ot_round_ns,
        threads,
    }
}

/// The site size whose circuits and OTs stand for `model`'s: the size of the site that holds the
/// median active ReLU (sites weighted by their active ReLUs), between 1,024 and 65,536.
pub fn representative_site(model: &QuantModel) -> usize {
    let mut sizes: Vec<usize> = model
        .arch
        .active
        .values()
        .map(|v| v.len())
        .filter(|&n| n > 0)
        .collect();
    sizes.sort_unstable();
    let total: usize = sizes.iter().sum();
    let mut acc = 0;
    let median = sizes
        .iter()
        .find(|&&n| {
            acc += n;
            2 * acc >= total
        })
        .copied()
        .unwrap_or(0);
    median.clamp(1024, 65536)
}

/// The calibration at the model's representative site size, plus the measured time of every
/// weight layer of `model` (random shares).
pub fn calibrate_for(model: &QuantModel, threads: usize) -> Calibration {
    let mut cal = calibrate(&model.ring, threads, representative_site(model));
    cal.layer_s = pool(threads).install(|| {
        let mut rng = ChaCha12Rng::seed_from_u64(6);
        model
            .layers
            .iter()
            .map(|(&i, layer)| {
                let input = model.arch.ops()[i].inputs()[0];
                let x: Vec<u64> = (0..model.arch.numel(input))
                    .map(|_| model.ring.reduce(rng.gen()))
                    .collect();
                let t = median(3, || {
                    std::hint::black_box(linalg::weight_layer(
                        &model.arch,
                        &model.ring,
                        i,
                        layer,
                        &x,
                        true,
                    ));
                });
                (i, t)
            })
            .collect()
    });
    cal
}

/// Half the round trip of a small message between two threads on the in-memory channel.
fn ping_pong_ns() -> f64 {
    let (a, b) = mem::pair();
    let n = 200;
    let echo = std::thread::spawn(move || {
        let mut ch = Channel::new(Box::new(a));
        for _ in 0..n {
            let m = ch.recv("ping", crate::net::Expect::Exact(16)).unwrap();
            ch.send(m).unwrap();
        }
    });
    let mut ch = Channel::new(Box::new(b));
    let t = Instant::now();
    for _ in 0..n {
        ch.send(vec![0u8; 16]).unwrap();
        ch.recv("pong", crate::net::Expect::Exact(16)).unwrap();
    }
    let el = t.elapsed().as_secs_f64();
    echo.join().unwrap();
    el / (2 * n) as f64 * 1e9
}

/// Sending, receiving and decoding a vector of `n` blocks between two threads, per byte.
fn transfer_ns_per_byte(n: usize) -> f64 {
    let (a, b) = mem::pair();
    let reps = 3;
    let sink = std::thread::spawn(move || {
        let mut ch = Channel::new(Box::new(a));
        for _ in 0..reps {
            let m = ch
                .recv(
                    "block vector",
                    crate::net::Expect::Exact(crate::wire::blocks_bytes(n)),
                )
                .unwrap();
            let v = crate::wire::Reader::new(&m, "block vector")
                .blocks()
                .unwrap();
            std::hint::black_box(v);
            ch.send(vec![0]).unwrap();
        }
    });
    let mut ch = Channel::new(Box::new(b));
    let blocks: Vec<Block> = (0..n as u128).collect();
    let t = median(reps, || {
        let mut w = crate::wire::Writer::with_capacity(16 * n + 8);
        w.blocks(&blocks);
        ch.send(w.finish()).unwrap();
        ch.recv("ack", crate::net::Expect::Exact(1)).unwrap();
    });
    sink.join().unwrap();
    t / (16 * n) as f64 * 1e9
}

/// The weight layers' part of an inference's offline phase in `meter` (the client's): bytes both
/// ways and seconds on the client's clock, summed over the `offline/<weight layer>` labels.
pub fn offline_linear(meter: &Meter, arch: &crate::model::Arch) -> (u64, f64) {
    let layers: std::collections::HashSet<String> = (0..arch.ops().len())
        .filter(|&i| arch.ops()[i].is_weight_layer())
        .map(|i| format!("offline/{}", crate::protocol::op_label(arch, i)))
        .collect();
    meter
        .entries()
        .iter()
        .filter(|e| layers.contains(&e.label))
        .fold((0, 0.0), |(b, t), e| (b + e.bytes(), t + e.seconds))
}

/// What a two-thread session measured.
#[derive(Debug)]
pub struct Session {
    pub inferences: Vec<Inference>,
    /// The client's counters for the last inference (setup excluded).
    pub client: Meter,
    pub server: Meter,
    pub setup: Meter,
}

/// Runs `inputs` through a server and a client in two threads over the in-memory channel, each
/// party on `threads` threads, the link shaped by `profile`, both with `opts` (each party draws
/// its own stream from `opts.randomness`).
pub fn session(
    model: &QuantModel,
    inputs: &[Vec<u64>],
    profile: Option<Profile>,
    threads: usize,
    opts: &Options,
) -> Result<Session> {
    session_with_progress(model, inputs, profile, threads, opts, &mut |_| {})
}

/// [`session`], calling `done(k)` after the `k`-th inference (for progress bars).
pub fn session_with_progress(
    model: &QuantModel,
    inputs: &[Vec<u64>],
    profile: Option<Profile>,
    threads: usize,
    opts: &Options,
    done: &mut (dyn FnMut(usize) + Send),
) -> Result<Session> {
    let (a, b) = mem::pair();
    let m = model.clone();
    let p2 = profile.clone();
    let so = *opts;
    let server = std::thread::spawn(move || -> Result<Meter> {
        pool(threads).install(|| {
            let mut s = Server::start(m, Channel::new(Box::new(a)).with_profile(p2), &so)?;
            while s.serve_one()? {}
            s.channel().meter.stop_clock();
            Ok(s.channel().meter.clone())
        })
    });
    let res = pool(threads).install(|| -> Result<(Vec<Inference>, Meter, Meter)> {
        let mut c = Client::connect(Channel::new(Box::new(b)).with_profile(profile), opts)?;
        c.channel().meter.stop_clock();
        let setup = c.channel().meter.clone();
        let mut out = Vec::new();
        for (k, x) in inputs.iter().enumerate() {
            c.channel().meter.reset();
            out.push(c.infer_encoded(x)?);
            done(k + 1);
        }
        c.channel().meter.stop_clock();
        let meter = c.channel().meter.clone();
        c.close()?;
        Ok((out, meter, setup))
    });
    let srv = server.join().expect("server thread");
    // A server that refused (say, its ring) shows up at the client as a disconnect: report the
    // server's reason.
    let (inferences, client, setup) = match (res, &srv) {
        (Err(_), Err(e)) => return Err(crate::MpcError::Protocol(format!("server: {e}"))),
        (res, _) => res?,
    };
    Ok(Session {
        inferences,
        client,
        server: srv?,
        setup,
    })
}
