//! The private-inference service (`privlin pi serve`): concurrent client sessions over TCP, each a
//! [`Server`] with its own keys, correlations and pool of precomputed offline phases, under
//! per-read timeouts, an idle timeout between requests and a session deadline. At most
//! `max_concurrent` sessions run at once; up to `queue` more wait for a slot; further clients are
//! refused with a message. A failed session (garbage, a stall, a disconnect) costs that session
//! only. Shutdown (`stop`) ends the accept loop, lets every request in flight finish, and closes
//! each session at its next request boundary.

use super::{busy_message, Options, Request, Server};
use crate::net::tcp::TcpTransport;
use crate::net::{Channel, Profile, Transport};
use crate::{QuantModel, Result};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Limits of a serving loop.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Sessions to admit before the accept loop ends (`usize::MAX`: until stopped).
    pub sessions: usize,
    /// Sessions running at once.
    pub max_concurrent: usize,
    /// Admitted clients waiting for a free slot (beyond them a client is refused).
    pub queue: usize,
    /// Timeout of every read and write inside a request.
    pub io_timeout: Duration,
    /// How long a session may wait for its next request.
    pub idle_timeout: Duration,
    /// Wall-clock bound of one session.
    pub session_deadline: Duration,
    /// Network shaping of every session (none: unshaped TCP).
    pub profile: Option<Profile>,
    /// Sessions (running or waiting) one peer address may hold; beyond them it is refused with a
    /// message, so that a few connections from one host cannot take every slot.
    pub max_per_peer: usize,
    /// Wall-clock bound of a session's set-up (hello, base OTs, HE key): a connection that
    /// sends nothing is dropped after it, not after the session deadline.
    pub setup_deadline: Duration,
    /// Threads of each session's own work pool (HE, garbling, OT extension); 0: every session
    /// shares the process-wide pool. With a pool per session the operating system divides the
    /// CPU between sessions' threads, so a client that keeps its session busy (back-to-back
    /// inline inferences, precomputation) takes its share, not the machine: on the shared
    /// pool its parallel jobs queue ahead of every other session's.
    pub session_threads: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            sessions: usize::MAX,
            max_concurrent: 4,
            queue: 4,
            io_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            session_deadline: Duration::from_secs(3600),
            profile: None,
            max_per_peer: 2,
            setup_deadline: Duration::from_secs(30),
            session_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Sessions per peer address (running or waiting).
struct Peers(Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// Counts one session of a peer until dropped.
struct PeerGuard<'a>(&'a Peers, std::net::IpAddr);

impl Drop for PeerGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// What the service reports, one event per request and per session end.
#[derive(Debug)]
pub enum Event {
    /// A session began (`waited_s`: in the queue for a slot).
    Started {
        session: u64,
        peer: SocketAddr,
        waited_s: f64,
    },
    /// One request of a session completed.
    Request {
        session: u64,
        peer: SocketAddr,
        request: Request,
        /// Offline phases the session holds after it.
        pooled: usize,
    },
    /// A session ended: inferences served, or the error that ended it.
    Ended {
        session: u64,
        peer: SocketAddr,
        result: Result<usize>,
    },
    /// A client refused at the door (all slots and the queue taken).
    Refused { peer: SocketAddr, why: String },
    /// The service is ready: the served model's HE weight cache is built (shared by every
    /// session; zero bytes outside the `he` mode or with no budget).
    Ready {
        he_cache_bytes: u64,
        he_cache_layers: usize,
        /// The memory plan: each session's pool (lowered to fit `--max-memory`) and the
        /// estimated peak.
        memory: super::policy::MemoryPlan,
    },
    /// `accept` failed transiently (an aborted connection, out of file descriptors, ...): the
    /// service backs off for `backoff_s` and goes on.
    AcceptError { error: String, backoff_s: f64 },
}

/// `accept` errors the service outlives: the connection is lost (aborted or reset before
/// accepted, a signal) or resources are short for now (file descriptors, buffers, memory); the
/// listener itself is fine.
pub fn accept_error_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | TimedOut | OutOfMemory
    ) {
        return true;
    }
    // EMFILE, ENFILE, ENOBUFS, ENOMEM, EPROTO, ENETDOWN, EHOSTUNREACH ... (Linux numbers).
    matches!(
        e.raw_os_error(),
        Some(24 | 23 | 105 | 12 | 71 | 100 | 113 | 101)
    )
}

/// Frees a running session's slot when dropped, whether the session returned or panicked.
struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        // A poisoned lock (a panic while it was held) still holds the counts.
        let mut st = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 -= 1;
        drop(st);
        self.0.freed.notify_all();
    }
}

/// Runs one session's work, turning a panic into the session's error: one session's bug ends
/// that session, never the service.
fn guarded(f: impl FnOnce() -> Result<usize>) -> Result<usize> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(crate::MpcError::Protocol(format!(
            "the session panicked: {why}"
        )))
    })
}

/// A session's own work pool of `threads` threads ([`ServeConfig::session_threads`]).
fn session_pool(threads: usize, id: u64) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |k| format!("session-{id}-{k}"))
        .build()
        .map_err(|e| crate::MpcError::Protocol(format!("a session's thread pool: {e}")))
}

/// Slots of concurrent sessions and the queue in front of them.
struct Slots {
    state: Mutex<(usize, usize)>, // (running, waiting)
    freed: Condvar,
}

/// How often a waiting session or the accept loop looks at `stop`.
const POLL: Duration = Duration::from_millis(50);

/// Serves sessions on `listener` until `cfg.sessions` have been admitted (and have ended) or
/// `stop` is set (then in-flight requests finish and sessions close at their next request
/// boundary). `on_event` hears every request and session end, from the sessions' threads.
pub fn serve_sessions(
    listener: &TcpListener,
    model: impl Into<std::sync::Arc<QuantModel>>,
    opts: &Options,
    cfg: &ServeConfig,
    stop: &AtomicBool,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<()> {
    // One copy of the model for every session (the caller hands it over; no copy is made here).
    let model: std::sync::Arc<QuantModel> = model.into();
    let model = &model;
    super::policy::check_wrap(&model.arch, &model.ring, opts.max_wrap_log2)?;
    // Once, before any client: a model the HE offline phase cannot serve is refused here, and
    // the model's weight polynomials are made once for every session.
    let cache = match &opts.offline {
        // Building the cache runs the checks: every layer's layout and noise bound, the
        // public weight bound.
        super::OfflineMode::He(p) => Some(std::sync::Arc::new(
            super::homomorphic::WeightCache::build(model.as_ref(), p, opts.limits.he_cache_bytes)?,
        )),
        super::OfflineMode::Dealer => None,
    };
    // The memory budget: the pool each session may keep, lowered to fit (or refused).
    let nonlinear = crate::cost::resolve_nonlinear(&model.arch, &model.ring, opts)?;
    let he_cache_bytes = cache.as_ref().map_or(0, |c| c.bytes());
    let memory = super::policy::MemoryPlan::fit(
        he_cache_bytes + model.weight_bytes(),
        super::policy::server_phase_bytes(
            &model.arch,
            &model.ring,
            nonlinear,
            opts.output,
            opts.truncation,
        )?,
        cfg.max_concurrent,
        opts.limits.max_pool,
        opts.limits.max_memory_bytes,
    )?;
    let opts = &Options {
        limits: super::Limits {
            max_pool: memory.max_pool,
            ..opts.limits
        },
        ..*opts
    };
    on_event(Event::Ready {
        he_cache_bytes,
        he_cache_layers: cache.as_ref().map_or(0, |c| c.layers()),
        memory,
    });
    let cache = &cache;
    listener.set_nonblocking(true)?;
    let slots = Slots {
        state: Mutex::new((0, 0)),
        freed: Condvar::new(),
    };
    let next_id = AtomicU64::new(0);
    let peers = Peers(Mutex::new(Default::default()));
    std::thread::scope(|scope| -> Result<()> {
        let mut admitted = 0;
        let mut backoff = POLL;
        while admitted < cfg.sessions && !stop.load(Ordering::SeqCst) {
            let (stream, peer) = match listener.accept() {
                Ok(x) => {
                    backoff = POLL;
                    x
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(POLL);
                    continue;
                }
                Err(e) if accept_error_is_transient(&e) => {
                    on_event(Event::AcceptError {
                        error: e.to_string(),
                        backoff_s: backoff.as_secs_f64(),
                    });
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            stream.set_nonblocking(false)?;
            {
                let mut m = peers.0.lock().unwrap_or_else(|p| p.into_inner());
                let n = m.entry(peer.ip()).or_insert(0);
                if *n >= cfg.max_per_peer {
                    drop(m);
                    let why = format!(
                        "too many sessions from {}: at most {} at once per peer",
                        peer.ip(),
                        cfg.max_per_peer
                    );
                    refuse(stream, &why, cfg.io_timeout);
                    on_event(Event::Refused { peer, why });
                    continue;
                }
                *n += 1;
            }
            let peer_guard = PeerGuard(&peers, peer.ip());
            {
                let mut st = slots.state.lock().unwrap();
                if st.0 + st.1 >= cfg.max_concurrent + cfg.queue {
                    drop(st);
                    let why = format!(
                        "busy: all {} session slots and {} queue places are taken; try later",
                        cfg.max_concurrent, cfg.queue
                    );
                    drop(peer_guard);
                    refuse(stream, &why, cfg.io_timeout);
                    on_event(Event::Refused { peer, why });
                    continue;
                }
                st.1 += 1;
            }
            admitted += 1;
            let id = next_id.fetch_add(1, Ordering::SeqCst);
            let slots = &slots;
            scope.spawn(move || {
                let _peer = peer_guard;
                let t0 = Instant::now();
                // Wait for a slot (or for shutdown).
                {
                    let mut st = slots.state.lock().unwrap();
                    while st.0 >= cfg.max_concurrent && !stop.load(Ordering::SeqCst) {
                        st = slots.freed.wait_timeout(st, POLL).unwrap().0;
                    }
                    st.1 -= 1;
                    if stop.load(Ordering::SeqCst) {
                        slots.freed.notify_all();
                        return;
                    }
                    st.0 += 1;
                }
                let _slot = SlotGuard(slots);
                on_event(Event::Started {
                    session: id,
                    peer,
                    waited_s: t0.elapsed().as_secs_f64(),
                });
                let result = guarded(|| {
                    let run = || {
                        session(
                            stream,
                            model,
                            opts,
                            cache,
                            cfg,
                            stop,
                            &mut |request, pooled| {
                                on_event(Event::Request {
                                    session: id,
                                    peer,
                                    request,
                                    pooled,
                                })
                            },
                        )
                    };
                    match cfg.session_threads {
                        0 => run(),
                        n => session_pool(n, id)?.install(run),
                    }
                });
                on_event(Event::Ended {
                    session: id,
                    peer,
                    result,
                });
            });
        }
        Ok(())
    })
}

/// Tells a client that it is refused (best effort: it may already be gone).
fn refuse(stream: TcpStream, why: &str, timeout: Duration) {
    if let Ok(mut t) = TcpTransport::new(stream, timeout.min(Duration::from_secs(5))) {
        let _ = t.write_frame(0, busy_message(why));
    }
}

/// One session: the hello and setup, then requests until the client says goodbye, the idle
/// timeout passes, or `stop` is set between two requests.
fn session(
    stream: TcpStream,
    model: &std::sync::Arc<QuantModel>,
    opts: &Options,
    cache: &Option<std::sync::Arc<super::homomorphic::WeightCache>>,
    cfg: &ServeConfig,
    stop: &AtomicBool,
    on_request: &mut dyn FnMut(Request, usize),
) -> Result<usize> {
    let t0 = Instant::now();
    let t = TcpTransport::new(stream, cfg.io_timeout)?;
    // The set-up runs under its own short deadline, the requests under the session's.
    let ch = Channel::new(Box::new(t))
        .with_profile(cfg.profile.clone())
        .with_deadline(cfg.setup_deadline.min(cfg.session_deadline));
    let backend: Box<dyn super::linear::LinearOffline> = match (&opts.offline, cache) {
        (super::OfflineMode::He(p), Some(c)) => {
            Box::new(super::homomorphic::HeOffline::with_cache(*p, c.clone()))
        }
        _ => opts.offline.backend(),
    };
    let mut server = Server::start_with(std::sync::Arc::clone(model), ch, opts, backend)?;
    server.channel().set_deadline(t0 + cfg.session_deadline);
    let mut served = 0;
    loop {
        let idle = Instant::now();
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(served);
            }
            if server.channel().wait_readable(POLL)? {
                break;
            }
            if idle.elapsed() > cfg.idle_timeout {
                return Err(crate::MpcError::Protocol(format!(
                    "no request for {:.0} s (the idle timeout)",
                    cfg.idle_timeout.as_secs_f64()
                )));
            }
        }
        match server.serve_request()? {
            None => return Ok(served),
            Some(r) => {
                served += matches!(r, Request::Infer { .. }) as usize;
                on_request(r, server.pooled());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `panic_frees_slot`: a session that panics ends with an error naming the panic, and its
    /// slot is freed (the guard runs on unwinding), so the next session can start.
    #[test]
    fn panic_frees_slot() {
        let slots = Slots {
            state: Mutex::new((1, 0)),
            freed: Condvar::new(),
        };
        let result = {
            let _slot = SlotGuard(&slots);
            guarded(|| panic!("a bug in one session"))
        };
        let err = result.unwrap_err();
        assert!(err.to_string().contains("a bug in one session"), "{err}");
        assert_eq!(slots.state.lock().unwrap().0, 0);
        // The guard also frees the slot when the session returns normally.
        *slots.state.lock().unwrap() = (1, 0);
        {
            let _slot = SlotGuard(&slots);
            assert_eq!(guarded(|| Ok(3)).unwrap(), 3);
        }
        assert_eq!(slots.state.lock().unwrap().0, 0);
    }

    /// Aborted connections and file-descriptor exhaustion are transient for the accept loop;
    /// a permission or address error is not.
    #[test]
    fn transient_accept_errors() {
        use std::io::{Error, ErrorKind};
        assert!(accept_error_is_transient(&Error::from(
            ErrorKind::ConnectionAborted
        )));
        assert!(accept_error_is_transient(&Error::from_raw_os_error(24))); // EMFILE
        assert!(accept_error_is_transient(&Error::from_raw_os_error(23))); // ENFILE
        assert!(!accept_error_is_transient(&Error::from(
            ErrorKind::PermissionDenied
        )));
        assert!(!accept_error_is_transient(&Error::from(
            ErrorKind::InvalidInput
        )));
    }
}
