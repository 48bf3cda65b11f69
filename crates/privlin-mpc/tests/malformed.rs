//! Misbehaving peers get clear errors, never a panic or an unbounded allocation.

use privlin_mpc::net::{mem, Channel, Expect};
use privlin_mpc::protocol::policy::{Limits, MAX_HELLO_BYTES};
use privlin_mpc::protocol::{Client, Hello, Options, OutputMode, Server};
use privlin_mpc::synthetic::{self, Spec};
use privlin_mpc::{MpcError, QuantModel, Ring};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn model() -> QuantModel {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    QuantModel::new(
        &synthetic::model(&mut rng, &Spec::default()),
        Ring::default(),
    )
    .unwrap()
}

fn opts() -> Options {
    Options::insecure_seeded(1)
}

fn frame(len: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = len.to_le_bytes().to_vec();
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn garbage_hello_is_malformed() {
    let (mut a, b) = mem::pair();
    a.send_raw(frame(5, b"hello")).unwrap();
    let err = Client::connect(Channel::new(Box::new(b)), &opts())
        .err()
        .unwrap();
    assert!(matches!(err, MpcError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("hello"), "{err}");
}

#[test]
fn oversized_frame_is_refused_before_allocation() {
    let (mut a, b) = mem::pair();
    a.send_raw(frame(u32::MAX, b"")).unwrap();
    let mut ch = Channel::new(Box::new(b)).with_max_frame(1 << 20);
    let err = ch.recv("anything", Expect::AtMost(1 << 40)).unwrap_err();
    assert!(
        matches!(err, MpcError::Oversized { len, max } if len == u32::MAX as u64 && max == 1 << 20),
        "{err}"
    );
}

/// Every message has the size the public architecture implies: a forged bits frame announcing
/// 1 GiB (8 GiB of `bool`s once decoded, before the fix) is refused from its header, and a frame
/// of the right size whose bit count is inflated is refused from its length prefix.
#[test]
fn forged_oversized_bits_frame_is_refused_without_allocation() {
    let n = 1000;
    let want = privlin_mpc::wire::bits_bytes(n);
    let (mut a, b) = mem::pair();
    a.send_raw(frame(1 << 30, b"")).unwrap();
    let mut ch = Channel::new(Box::new(b));
    let err = ch.recv("circuit outputs", Expect::Exact(want)).unwrap_err();
    assert!(
        err.to_string().contains("circuit outputs") && err.to_string().contains("exactly"),
        "{err}"
    );
    // Right frame size, inflated count: refused by the count before any bool is allocated.
    let mut w = privlin_mpc::wire::Writer::new();
    w.u64(1 << 40).buf.resize(want as usize, 0xff);
    let msg = w.finish();
    let err = privlin_mpc::wire::Reader::new(&msg, "circuit outputs")
        .bits_n(n, "output bits")
        .unwrap_err();
    assert!(err.to_string().contains("expected 1000"), "{err}");
}

/// Over TCP the server reads a header, finds it announces more than the HE public key it expects
/// after the base OTs, and drops the session at once: it never waits for (or allocates) the
/// gigabyte announced.
#[test]
fn server_refuses_forged_frame_header_over_tcp() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let m = model();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let t =
            privlin_mpc::net::tcp::TcpTransport::new(stream, std::time::Duration::from_secs(30))
                .unwrap();
        let mut s = Server::start(m, Channel::new(Box::new(t)), &opts())?;
        s.serve()
    });
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let mut raw = stream.try_clone().unwrap();
    let t = privlin_mpc::net::tcp::TcpTransport::new(stream, std::time::Duration::from_secs(30))
        .unwrap();
    let mut ch = Channel::new(Box::new(t));
    Hello::decode(&ch.recv("hello", Expect::AtMost(MAX_HELLO_BYTES)).unwrap()).unwrap();
    let mut rng = <rand_chacha::ChaCha12Rng as SeedableRng>::seed_from_u64(3);
    privlin_mpc::ot::iknp::Receiver::setup(&mut ch, &mut rng).unwrap();
    let started = std::time::Instant::now();
    raw.write_all(&frame(1 << 30, b"")).unwrap();
    let err = server.join().unwrap().unwrap_err();
    assert!(err.to_string().contains("HE public key"), "{err}");
    assert!(err.to_string().contains("exactly"), "{err}");
    assert!(
        started.elapsed().as_secs() < 10,
        "refused from the header, not by a timeout"
    );
}

#[test]
fn truncated_frame_is_malformed() {
    let (mut a, b) = mem::pair();
    a.send_raw(frame(100, b"short")).unwrap();
    let mut ch = Channel::new(Box::new(b));
    let err = ch.recv("masked input", Expect::Exact(100)).unwrap_err();
    assert!(err.to_string().contains("masked input"), "{err}");
    let (mut a, b) = mem::pair();
    a.send_raw(vec![1, 2, 3]).unwrap();
    let err = Channel::new(Box::new(b))
        .recv("x", Expect::AtMost(10))
        .unwrap_err();
    assert!(matches!(err, MpcError::Malformed { .. }), "{err}");
}

/// A client that sends garbage instead of its base-OT points, and one that disconnects.
#[test]
fn server_reports_bad_and_vanishing_clients() {
    let (a, b) = mem::pair();
    let m = model();
    let server =
        std::thread::spawn(move || Server::start(m, Channel::new(Box::new(a)), &opts()).err());
    let mut c = Channel::new(Box::new(b));
    Hello::decode(&c.recv("hello", Expect::AtMost(MAX_HELLO_BYTES)).unwrap()).unwrap();
    c.send(b"not a point".to_vec()).unwrap();
    let err = server.join().unwrap().expect("server must fail");
    assert!(matches!(err, MpcError::Malformed { .. }), "{err}");

    let (a, b) = mem::pair();
    let m = model();
    let server = std::thread::spawn(move || {
        let mut s = Server::start(m, Channel::new(Box::new(a)), &opts())?;
        s.serve()
    });
    let mut c = Client::connect(Channel::new(Box::new(b)), &opts()).unwrap();
    c.channel().send(vec![1]).unwrap(); // start an inference, then vanish
    drop(c);
    let err = server.join().unwrap().unwrap_err();
    assert!(matches!(err, MpcError::Disconnected { .. }), "{err}");
}

/// Random and mutated bytes through every decoder: errors, no panics.
#[test]
fn decoders_survive_random_bytes() {
    let m = model();
    let hello = Hello {
        ring: m.ring,
        offline: "dealer".into(),
        output: OutputMode::Class,
        nonlinear: privlin_mpc::nonlinear::Nonlinear::Ot { digit_bits: 4 },
        max_pool: 3,
        truncation: privlin_mpc::protocol::Truncation::Faithful,
        arch: m.arch.clone(),
    }
    .encode();
    // A hello decodes to what was encoded.
    let back = Hello::decode(&hello).unwrap();
    assert_eq!(
        (back.max_pool, back.ring, back.output),
        (3, m.ring, OutputMode::Class)
    );
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for i in 0..3000 {
        let mut buf = hello.clone();
        match i % 3 {
            0 => buf.truncate(rng.gen_range(0..buf.len())),
            1 => {
                for _ in 0..rng.gen_range(1..8) {
                    let j = rng.gen_range(0..buf.len());
                    buf[j] = rng.gen();
                }
            }
            _ => buf = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
        }
        privlin_mpc::fuzz::decode_everything(&buf);
    }
    assert!(Hello::decode(&hello).is_ok());
}

/// A delivery stamp far in the future is an error, not a sleep.
#[test]
fn far_future_stamp_is_refused() {
    let (mut a, b) = mem::pair();
    let mut f = 0u32.to_le_bytes().to_vec();
    f.extend_from_slice(&u64::MAX.to_le_bytes());
    a.send_raw(f).unwrap();
    let mut ch = Channel::new(Box::new(b)).with_profile(privlin_mpc::net::Profile::by_name("wan"));
    let t = std::time::Instant::now();
    let err = ch.recv("stamped", Expect::Exact(0)).unwrap_err();
    assert!(err.to_string().contains("in the future"), "{err}");
    assert!(t.elapsed().as_secs() < 5);
}

/// A server whose architecture declares absurd tensor sizes is refused before the client
/// allocates anything for them.
#[test]
fn absurd_architecture_is_refused() {
    let m = model();
    for (field, size) in [("weight", 1usize << 40), ("weight", usize::MAX / 2)] {
        let mut json = m.arch.json.clone();
        let shape = json
            .weight_shapes
            .iter_mut()
            .find(|(n, _)| n.ends_with(field))
            .unwrap()
            .1;
        shape[0] = size;
        let mut w = privlin_mpc::wire::Writer::new();
        w.bytes(&serde_json::to_vec(&json).unwrap()).u64(0);
        let err = privlin_mpc::model::Arch::from_bytes(&w.finish()).unwrap_err();
        assert!(matches!(err, MpcError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("elements"), "{err}");
    }
}

/// Max-pool windows that are empty, too large for the circuit bound or larger than the map, and
/// channel affines whose weights do not fit the channels, are refused with the op named.
#[test]
fn bad_pooling_and_affine_ops_are_refused() {
    use privlin_mpc::model::{Arch, Op};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let spec = privlin_mpc::synthetic::Spec {
        max_pool: true,
        pre_activation: true,
        ..Default::default()
    };
    let file = privlin_mpc::synthetic::model(&mut rng, &spec);
    let first = |f: &dyn Fn(&Op) -> bool| file.arch.ops().iter().position(f).unwrap();
    let pool = first(&|o| matches!(o, Op::MaxPool { .. }));
    let affine = first(&|o| matches!(o, Op::ChannelAffine { .. }));
    // The active positions by site name, as an export stores them.
    let active = || {
        file.arch
            .active
            .iter()
            .map(|(&i, a)| match &file.arch.ops()[i] {
                Op::Relu { site, .. } => (site.clone(), a.iter().map(|&j| j as i64).collect()),
                _ => unreachable!(),
            })
            .collect::<std::collections::HashMap<String, Vec<i64>>>()
    };
    for kernel in [0, 9, 64] {
        let mut json = file.arch.json.clone();
        if let Op::MaxPool { kernel: k, .. } = &mut json.ops[pool] {
            *k = kernel;
        }
        let err = Arch::new(json, active()).unwrap_err().to_string();
        assert!(err.contains(&format!("op {pool} (max_pool)")), "{err}");
    }
    let mut json = file.arch.json.clone();
    let Op::ChannelAffine { weight, .. } = &json.ops[affine] else {
        unreachable!()
    };
    let weight = weight.clone();
    json.weight_shapes.get_mut(&weight).unwrap()[0] += 1;
    let err = Arch::new(json, active()).unwrap_err().to_string();
    assert!(
        err.contains(&format!("op {affine} (channel_affine)")),
        "{err}"
    );
}

/// An offline backend other than the dealer, for the hand-shake test.
struct OtherBackend;

impl privlin_mpc::protocol::linear::LinearOffline for OtherBackend {
    fn label(&self) -> String {
        "other backend".into()
    }
    fn client(
        &mut self,
        _: &mut Channel,
        _: &privlin_mpc::model::Arch,
        _: &Ring,
        _: usize,
        _: &[u64],
    ) -> privlin_mpc::Result<Vec<u64>> {
        unreachable!("refused before any weight layer")
    }
    fn server(
        &mut self,
        _: &mut Channel,
        _: &QuantModel,
        _: usize,
        _: &mut rand_chacha::ChaCha12Rng,
    ) -> privlin_mpc::Result<Vec<u64>> {
        unreachable!("refused before any weight layer")
    }
}

/// Both parties must compute the weight layers' offline correlations the same way.
#[test]
fn mismatched_offline_backend_is_refused() {
    let (a, b) = mem::pair();
    let m = model();
    let server = std::thread::spawn(move || Server::start(m, Channel::new(Box::new(a)), &opts()));
    let err = Client::connect_with(Channel::new(Box::new(b)), &opts(), Box::new(OtherBackend))
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("he (RLWE") && msg.contains("other backend"),
        "{msg}"
    );
    assert!(server.join().unwrap().is_err());
}

/// The client bounds what the server's hello may make it allocate: the hello's own size, then the
/// architecture's totals (here: more active ReLUs than the client accepts).
#[test]
fn hello_bounds_are_enforced() {
    let (mut a, b) = mem::pair();
    a.send_raw(frame(MAX_HELLO_BYTES as u32 + 1, b"")).unwrap();
    let err = Client::connect(Channel::new(Box::new(b)), &opts())
        .err()
        .unwrap();
    assert!(matches!(err, MpcError::Oversized { .. }), "{err}");

    let (a, b) = mem::pair();
    let m = model();
    let active = m.arch.active_total() as u64;
    let server = std::thread::spawn(move || Server::start(m, Channel::new(Box::new(a)), &opts()));
    let strict = Options {
        limits: Limits {
            max_active: active - 1,
            ..Limits::default()
        },
        ..opts()
    };
    let err = Client::connect(Channel::new(Box::new(b)), &strict)
        .err()
        .unwrap();
    assert!(err.to_string().contains("active ReLUs"), "{err}");
    assert!(server.join().unwrap().is_err());

    // The bytes the offline phase would send (HE answers included) are bounded too: a limit
    // above the garbled material alone but below the predicted offline traffic is refused.
    let (a, b) = mem::pair();
    let m = model();
    let received = privlin_mpc::cost::predicted_traffic(&m.arch, &m.ring, &opts())
        .unwrap()
        .total("offline/")
        .bytes_received;
    let material = privlin_mpc::protocol::policy::Footprint::of(&m.arch, &m.ring)
        .unwrap()
        .offline_bytes;
    assert!(material < received - 1, "{material} {received}");
    let server = std::thread::spawn(move || Server::start(m, Channel::new(Box::new(a)), &opts()));
    let strict = Options {
        limits: Limits {
            max_offline_bytes: received - 1,
            ..Limits::default()
        },
        ..opts()
    };
    let err = Client::connect(Channel::new(Box::new(b)), &strict)
        .err()
        .unwrap();
    assert!(err.to_string().contains("offline phase sends"), "{err}");
    assert!(server.join().unwrap().is_err());
}

/// Rings at which local truncation fails too often for the model are refused by both parties
/// before any work; the default ring is accepted.
#[test]
fn rings_with_likely_wrap_failures_are_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let file = synthetic::model(&mut rng, &Spec::default());
    let small = QuantModel::new(&file, Ring::new(40, 8, 24).unwrap()).unwrap();
    let p = privlin_mpc::protocol::policy::wrap_failure_log2(&small.arch, &small.ring).unwrap();
    assert!(p > -12.0, "{p}");
    let (a, _b) = mem::pair();
    let err = Server::start(small, Channel::new(Box::new(a)), &opts())
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("l = 40") && err.to_string().contains("2^"),
        "{err}"
    );
    let ok = QuantModel::new(&file, Ring::default()).unwrap();
    let p = privlin_mpc::protocol::policy::wrap_failure_log2(&ok.arch, &ok.ring).unwrap();
    assert!(p < -12.0, "{p}");
}

/// A peer that trickles a frame one byte at a time keeps every read inside its timeout; the
/// session deadline still ends the session.
#[test]
fn session_deadline_cuts_a_trickling_peer() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let trickler = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        for b in frame(64, &[0u8; 64]) {
            if s.write_all(&[b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (stream, _) = listener.accept().unwrap();
    let t = privlin_mpc::net::tcp::TcpTransport::new(stream, Duration::from_secs(5)).unwrap();
    let mut ch = Channel::new(Box::new(t)).with_deadline(Duration::from_millis(800));
    let started = Instant::now();
    let err = ch.recv("slow frame", Expect::Exact(64)).unwrap_err();
    assert!(err.to_string().contains("deadline"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(ch);
    trickler.join().unwrap();
}

/// A peer that stops taking bytes: the write times out instead of blocking the session forever.
#[test]
fn write_times_out_when_the_peer_reads_nothing() {
    use std::time::{Duration, Instant};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let idle = std::thread::spawn(move || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_secs(4));
        drop(s);
    });
    let (stream, _) = listener.accept().unwrap();
    let t = privlin_mpc::net::tcp::TcpTransport::new(stream, Duration::from_millis(300)).unwrap();
    let mut ch = Channel::new(Box::new(t));
    let started = Instant::now();
    let err = (0..64)
        .find_map(|_| ch.send(vec![0u8; 16 << 20]).err())
        .expect("the kernel buffers cannot take 1 GiB");
    assert!(err.to_string().contains("timed out sending"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
    idle.join().unwrap();
}

/// Average pooling may only feed weight layers: an architecture whose pool feeds a site is
/// refused by name (the check is one pass over the ops' inputs, so a hello with very many ops
/// cannot make it quadratic), and the unmodified one is accepted.
#[test]
fn average_pool_consumers_are_checked() {
    use privlin_mpc::model::{Arch, Op};
    use std::collections::HashMap;
    let m = model();
    let mut json = m.arch.json.clone();
    let mut active: HashMap<String, Vec<i64>> = m
        .arch
        .active
        .iter()
        .map(|(&i, v)| match &json.ops[i] {
            Op::Relu { site, .. } => (site.clone(), v.iter().map(|&x| x as i64).collect()),
            other => panic!("active positions on a {}", other.kind()),
        })
        .collect();
    Arch::new(json.clone(), active.clone()).unwrap();
    let pool = json
        .ops
        .iter()
        .position(|o| matches!(o, Op::AvgPool { .. }))
        .expect("the synthetic model pools");
    let consumer = json
        .ops
        .iter()
        .position(|o| o.inputs().contains(&(pool + 1)))
        .unwrap();
    json.ops[consumer] = Op::Relu {
        input: pool + 1,
        site: "after_pool".into(),
        max: None,
    };
    active.insert("after_pool".into(), vec![]);
    json.active_counts.insert("after_pool".into(), 0);
    let err = Arch::new(json, active).unwrap_err();
    assert!(
        err.to_string().contains("consumes average pooling op"),
        "{err}"
    );
}
