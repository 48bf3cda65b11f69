//! The nonlinear layers' protocol families: garbled circuits ([`crate::gc`], DELPHI's) or
//! oblivious transfer ([`ot_relu`], CrypTFlow2's millionaires' protocol in DELPHI's
//! offline/online split; max-pool windows as trees of its steps, [`ot_pool`]; the class output
//! as the maximum of packed logits on the same tree, [`ot_argmax`]).

pub mod millionaire;

/// Tests' two parties over the in-memory channel, each with its session's OT extensions in both
/// directions set up (seeded), running `server` on a thread and `client` here.
#[cfg(test)]
pub(crate) mod testing {
    use crate::net::{mem, Channel};
    use crate::ot::silent;
    use rand::SeedableRng;
    use rand_chacha::ChaCha12Rng;

    pub fn two_parties<S: Send + 'static, C>(
        server: impl FnOnce(&mut Channel, &mut silent::Sender, &mut silent::Receiver, &mut ChaCha12Rng) -> S
            + Send
            + 'static,
        client: impl FnOnce(
            &mut Channel,
            &mut silent::Receiver,
            &mut silent::Sender,
            &mut ChaCha12Rng,
        ) -> C,
    ) -> (S, C) {
        let (a, b) = mem::pair();
        let s = std::thread::spawn(move || {
            let mut ch = Channel::new(Box::new(a));
            let mut rng = ChaCha12Rng::seed_from_u64(5);
            let mut tx = silent::Sender::setup(&mut ch, &mut rng).unwrap();
            let mut rx = silent::Receiver::setup(&mut ch, &mut rng).unwrap();
            server(&mut ch, &mut tx, &mut rx, &mut rng)
        });
        let mut ch = Channel::new(Box::new(b));
        let mut rng = ChaCha12Rng::seed_from_u64(6);
        let mut rx = silent::Receiver::setup(&mut ch, &mut rng).unwrap();
        let mut tx = silent::Sender::setup(&mut ch, &mut rng).unwrap();
        let c = client(&mut ch, &mut rx, &mut tx, &mut rng);
        (s.join().unwrap(), c)
    }
}
pub mod ot_argmax;
pub mod ot_pool;
pub mod ot_relu;

use crate::error::{MpcError, Result};
use serde::{Deserialize, Serialize};

/// How active ReLUs, max-pool windows and the class output's argmax are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Nonlinear {
    /// Half-gates garbled circuits with IKNP OT for the client's labels.
    #[default]
    Gc,
    /// The millionaires' protocol with `digit_bits`-bit digits and OT multiplexers.
    Ot { digit_bits: u32 },
    /// A server chooses the family with the lower predicted online + offline network time under
    /// the `wan` profile for the model at hand ([`crate::cost::choose_nonlinear`]); a client
    /// follows the server's choice.
    Auto,
}

impl Nonlinear {
    /// `gc`, `ot` (digits of [`millionaire::DEFAULT_DIGIT_BITS`]), `ot:M` or `auto`.
    pub fn by_name(name: &str) -> Result<Self> {
        match name.split_once(':') {
            None if name == "gc" => Ok(Nonlinear::Gc),
            None if name == "auto" => Ok(Nonlinear::Auto),
            None if name == "ot" => Ok(Nonlinear::Ot {
                digit_bits: millionaire::DEFAULT_DIGIT_BITS,
            }),
            Some(("ot", m)) => {
                let digit_bits: u32 = m.parse().map_err(|_| {
                    MpcError::Params(format!(
                        "nonlinear family `{name}`: digit size `{m}` is not a number"
                    ))
                })?;
                if !(1..=millionaire::MAX_DIGIT_BITS).contains(&digit_bits) {
                    return Err(MpcError::Params(format!(
                        "nonlinear family `{name}`: digit size must lie in 1..={}",
                        millionaire::MAX_DIGIT_BITS
                    )));
                }
                Ok(Nonlinear::Ot { digit_bits })
            }
            _ => Err(MpcError::Params(format!(
                "unknown nonlinear family `{name}` (gc, ot, ot:M with digits of M bits, auto)"
            ))),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Nonlinear::Gc => "gc".into(),
            Nonlinear::Ot { digit_bits } if *digit_bits == millionaire::DEFAULT_DIGIT_BITS => {
                "ot".into()
            }
            Nonlinear::Ot { digit_bits } => format!("ot:{digit_bits}"),
            Nonlinear::Auto => "auto".into(),
        }
    }

    /// The concrete families `auto` chooses between.
    pub fn candidates() -> [Nonlinear; 2] {
        [
            Nonlinear::Gc,
            Nonlinear::Ot {
                digit_bits: millionaire::DEFAULT_DIGIT_BITS,
            },
        ]
    }

    /// One byte on the wire (0: gc, m: ot with m-bit digits; `auto` is resolved before a hello
    /// is sent, and its code is refused by [`Nonlinear::from_code`]).
    pub fn code(&self) -> u8 {
        match self {
            Nonlinear::Gc => 0,
            Nonlinear::Ot { digit_bits } => *digit_bits as u8,
            Nonlinear::Auto => u8::MAX,
        }
    }

    pub fn from_code(c: u8) -> Option<Self> {
        match c as u32 {
            0 => Some(Nonlinear::Gc),
            m if m <= millionaire::MAX_DIGIT_BITS => Some(Nonlinear::Ot { digit_bits: m }),
            _ => None,
        }
    }
}
