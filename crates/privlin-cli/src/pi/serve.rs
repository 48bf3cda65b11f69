//! `privlin pi serve`: the private-inference service on TCP, and its log lines.

use super::*;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Exported model directory.
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: String,
    #[command(flatten)]
    ring: RingArgs,
    /// Network profile the in-process shaper imposes on this side's messages (lan, wan-fast, wan).
    #[arg(long)]
    profile: Option<String>,
    /// Admit this many client sessions, then exit once they end (0, the default: serve until
    /// Ctrl-C).
    #[arg(long, default_value_t = 0)]
    sessions: usize,
    /// Client sessions served at once.
    #[arg(long, default_value_t = 4)]
    max_sessions: usize,
    /// Sessions (running or waiting) one client address may hold at once.
    #[arg(long, default_value_t = 2)]
    max_per_peer: usize,
    /// Seconds a session's set-up (hello, base OTs, HE key) may take: a connection that sends
    /// nothing is dropped after it.
    #[arg(long, default_value_t = 30)]
    setup_timeout: u64,
    /// Threads of each session's own work pool, so that one busy client takes its share of the
    /// CPU and not the machine (0: all sessions share one pool; default: the machine's cores).
    #[arg(long)]
    session_threads: Option<usize>,
    /// Clients that wait for a free session slot; beyond them a client is refused with a message.
    #[arg(long, default_value_t = 4)]
    queue: usize,
    /// Seconds a silent peer (or one that takes no bytes) is waited for inside a request.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Seconds a session may wait for its next request.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Seconds a whole client session may last.
    #[arg(long, default_value_t = 3600)]
    session_deadline: u64,
    /// Offline phases a client session may precompute and keep (lowered to fit --max-memory-mb;
    /// the hello tells the client).
    #[arg(long, default_value_t = 8)]
    max_pool: usize,
    /// MB the server may hold for its sessions (HE weight cache, the model, each concurrent
    /// session's offline phase in flight and its pool), checked at start-up; 0: no budget.
    #[arg(long, default_value_t = 0)]
    max_memory_mb: u64,
}

pub(super) fn serve(a: ServeArgs) -> Result<()> {
    let file = load_export(&a.model)?;
    let model = QuantModel::new(&file, a.ring.ring()?)?;
    let mut opts = a.ring.options(Options::default())?;
    opts.limits.max_pool = a.max_pool;
    opts.limits.max_memory_bytes = a.max_memory_mb * 1_000_000;
    privlin_mpc::protocol::policy::check_wrap(&model.arch, &model.ring, opts.max_wrap_log2)?;
    opts.nonlinear = resolve_family(&model, &opts)?;
    let prof = profile(&a.profile)?;
    let listener = TcpListener::bind(&a.listen).with_context(|| format!("binding {}", a.listen))?;
    eprintln!(
        "serving {} ({} active ReLUs, ring l={} f={} w={}; output: {}; offline linear layers: {}) on {}; network: {}",
        a.model.display(),
        model.arch.active_total(),
        model.ring.bits,
        model.ring.frac,
        model.ring.gc_bits,
        opts.output.label(),
        opts.offline.label(),
        a.listen,
        prof.as_ref()
            .map(|p| p.describe())
            .unwrap_or_else(|| "unshaped TCP".into())
    );
    let cfg = ServeConfig {
        sessions: if a.sessions == 0 {
            usize::MAX
        } else {
            a.sessions
        },
        max_concurrent: a.max_sessions.max(1),
        queue: a.queue,
        io_timeout: Duration::from_secs(a.timeout),
        idle_timeout: Duration::from_secs(a.idle_timeout),
        session_deadline: Duration::from_secs(a.session_deadline),
        profile: prof,
        max_per_peer: a.max_per_peer.max(1),
        setup_deadline: Duration::from_secs(a.setup_timeout),
        session_threads: a
            .session_threads
            .unwrap_or(ServeConfig::default().session_threads),
    };
    // Ctrl-C: stop admitting, finish the requests in flight, close each session at its next
    // request boundary.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("second Ctrl-C: exiting without waiting");
            std::process::exit(130);
        }
        eprintln!("shutting down: finishing the requests in flight (Ctrl-C again to exit now)");
    })
    .context("installing the Ctrl-C handler")?;
    let name = a.model.display().to_string();
    service::serve_sessions(&listener, model, &opts, &cfg, &stop, &|e| {
        eprintln!("{}", service_log_line(&name, &e))
    })?;
    Ok(())
}

/// One log line per service event.
pub(super) fn service_log_line(model: &str, e: &service::Event) -> String {
    use privlin_mpc::protocol::Request;
    match e {
        service::Event::Started {
            session,
            peer,
            waited_s,
        } => format!("{peer} #{session}: session started ({waited_s:.2} s waiting for a slot), model {model}"),
        service::Event::Request {
            session,
            peer,
            request,
            pooled,
        } => match request {
            Request::Infer {
                pooled: ready,
                offline_s,
                online_s,
                bytes,
            } => format!(
                "{peer} #{session}: inference, model {model}, offline {}, online {online_s:.3} s, total {:.3} s, {:.2} MB; {pooled} precomputed left",
                if *ready {
                    "ready (precomputed)".to_string()
                } else {
                    format!("inline {offline_s:.3} s")
                },
                offline_s + online_s,
                *bytes as f64 / 1e6
            ),
            Request::Precompute { offline_s, bytes } => format!(
                "{peer} #{session}: offline phase precomputed in {offline_s:.3} s, {:.2} MB; {pooled} precomputed",
                *bytes as f64 / 1e6
            ),
        },
        service::Event::Ended {
            session,
            peer,
            result,
        } => match result {
            Ok(n) => format!("{peer} #{session}: session ended, {n} inferences served"),
            Err(e) => format!("{peer} #{session}: session failed: {e}"),
        },
        service::Event::Refused { peer, why } => format!("{peer}: refused: {why}"),
        service::Event::Ready {
            he_cache_bytes,
            he_cache_layers,
            memory,
        } => format!(
            "ready: HE weight cache {:.1} MB for {he_cache_layers} weight layers, shared by every session; {:.1} MB per offline phase, pools of {} per session: about {:.1} MB at peak with {} sessions",
            *he_cache_bytes as f64 / 1e6,
            memory.phase_bytes as f64 / 1e6,
            memory.max_pool,
            memory.peak_bytes as f64 / 1e6,
            memory.sessions
        ),
        service::Event::AcceptError { error, backoff_s } => {
            format!("accept failed ({error}); retrying in {backoff_s:.2} s")
        }
    }
}
