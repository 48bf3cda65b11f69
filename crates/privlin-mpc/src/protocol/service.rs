//! The server's loop over TCP sessions (`privlin pi serve`): accept a client, run a [`Server`]
//! session under per-read timeouts and a session deadline, report how it ended, next.

use super::{Options, Server};
use crate::net::tcp::TcpTransport;
use crate::net::{Channel, Profile};
use crate::{QuantModel, Result};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// Limits of a serving loop.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Sessions to serve before returning.
    pub sessions: usize,
    /// Timeout of every read and write.
    pub io_timeout: Duration,
    /// Wall-clock bound of one session.
    pub session_deadline: Duration,
    /// Network shaping of every session (none: unshaped TCP).
    pub profile: Option<Profile>,
}

/// Serve `cfg.sessions` sessions on `listener`, one after another; `on_session` hears how each
/// ended (inferences served, or the error). A failed session costs that session only.
pub fn serve_sessions(
    listener: &TcpListener,
    model: &QuantModel,
    opts: &Options,
    cfg: &ServeConfig,
    mut on_session: impl FnMut(SocketAddr, Result<usize>),
) -> Result<()> {
    super::policy::check_wrap(&model.arch, &model.ring, opts.max_wrap_log2)?;
    for _ in 0..cfg.sessions {
        let (stream, peer) = listener.accept()?;
        let res = TcpTransport::new(stream, cfg.io_timeout).and_then(|t| {
            let ch = Channel::new(Box::new(t))
                .with_profile(cfg.profile.clone())
                .with_deadline(cfg.session_deadline);
            Server::start(model.clone(), ch, opts).and_then(|mut s| s.serve())
        });
        on_session(peer, res);
    }
    Ok(())
}
