//! Misbehaving peers get clear errors, never a panic or an unbounded allocation.

use privlin_mpc::net::{mem, Channel};
use privlin_mpc::protocol::{Client, Hello, Server};
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
    let err = Client::connect(Channel::new(Box::new(b)), Some(1))
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
    let err = ch.recv("anything").unwrap_err();
    assert!(
        matches!(err, MpcError::Oversized { len, max } if len == u32::MAX as u64 && max == 1 << 20),
        "{err}"
    );
}

#[test]
fn truncated_frame_is_malformed() {
    let (mut a, b) = mem::pair();
    a.send_raw(frame(100, b"short")).unwrap();
    let mut ch = Channel::new(Box::new(b));
    let err = ch.recv("masked input").unwrap_err();
    assert!(err.to_string().contains("masked input"), "{err}");
    let (mut a, b) = mem::pair();
    a.send_raw(vec![1, 2, 3]).unwrap();
    let err = Channel::new(Box::new(b)).recv("x").unwrap_err();
    assert!(matches!(err, MpcError::Malformed { .. }), "{err}");
}

/// A client that sends garbage instead of its base-OT points, and one that disconnects.
#[test]
fn server_reports_bad_and_vanishing_clients() {
    let (a, b) = mem::pair();
    let m = model();
    let server =
        std::thread::spawn(move || Server::start(m, Channel::new(Box::new(a)), Some(1)).err());
    let mut c = Channel::new(Box::new(b));
    Hello::decode(&c.recv("hello").unwrap()).unwrap();
    c.send(b"not a point".to_vec()).unwrap();
    let err = server.join().unwrap().expect("server must fail");
    assert!(matches!(err, MpcError::Malformed { .. }), "{err}");

    let (a, b) = mem::pair();
    let m = model();
    let server = std::thread::spawn(move || {
        let mut s = Server::start(m, Channel::new(Box::new(a)), Some(1))?;
        s.serve()
    });
    let mut c = Client::connect(Channel::new(Box::new(b)), Some(2)).unwrap();
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
        arch: m.arch.clone(),
    }
    .encode();
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
        privlin_mpc::wire::decode_everything(&buf);
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
    let err = ch.recv("stamped").unwrap_err();
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

/// An offline backend other than the dealer, for the hand-shake test.
struct OtherBackend;

impl privlin_mpc::protocol::linear::LinearOffline for OtherBackend {
    fn label(&self) -> &'static str {
        "other backend"
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
    let server = std::thread::spawn(move || Server::start(m, Channel::new(Box::new(a)), Some(1)));
    let err = Client::connect_with(Channel::new(Box::new(b)), Some(2), Box::new(OtherBackend))
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("dealer") && msg.contains("other backend"),
        "{msg}"
    );
    assert!(server.join().unwrap().is_err());
}
