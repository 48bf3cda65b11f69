//! `privlin pi load`: the service under a stream of requests, per model and rate.

use super::*;

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Exported model directory or checkpoint; repeat for one line per model.
    #[arg(long, required = true)]
    model: Vec<PathBuf>,
    /// Names of the models in the table and plot (default: the directory names).
    #[arg(long)]
    label: Vec<String>,
    /// Request rates (per second, all clients together), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.5")]
    rates: Vec<f64>,
    /// Seconds of arrivals per rate.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Requests still queued this many seconds after the arrivals end are abandoned (default:
    /// the duration).
    #[arg(long)]
    grace: Option<f64>,
    /// Concurrent client sessions.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Offline phases each client precomputes and refills between requests (0: all inline).
    #[arg(long, default_value_t = 2)]
    pool: usize,
    /// Greedy client sessions beside the measured ones, each running inline inferences back to
    /// back for the whole window (their requests are counted apart).
    #[arg(long, default_value_t = 0)]
    greedy: usize,
    /// Threads of each server session's own work pool (0: all sessions share one pool, the
    /// behaviour before per-session pools; default: the machine's cores).
    #[arg(long)]
    session_threads: Option<usize>,
    /// Image folder data set whose test images are sent (default: random inputs).
    #[arg(long)]
    data: Option<String>,
    /// Distinct inputs sent in turn.
    #[arg(long, default_value_t = 8)]
    images: usize,
    #[command(flatten)]
    ring: RingArgs,
    /// Seed of the arrival times (the parties draw their randomness from the operating system,
    /// as a deployed service does, although everything runs on loopback).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write every level's report (with per-request records) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw p50 and p95 latency against the request rate as an SVG, one line per model.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub(super) fn load_cmd(a: LoadArgs) -> Result<()> {
    use privlin_mpc::load::{self, LoadConfig};
    if a.rates.is_empty() || a.rates.iter().any(|r| !(*r > 0.0 && r.is_finite())) {
        bail!(
            "--rates {:?}: every rate must be a positive number",
            a.rates
        );
    }
    if !a.label.is_empty() && a.label.len() != a.model.len() {
        bail!("{} --label for {} --model", a.label.len(), a.model.len());
    }
    if a.clients == 0 || a.images == 0 || a.duration.is_nan() || a.duration <= 0.0 {
        bail!("--clients, --images and --duration must be positive");
    }
    let ring = a.ring.ring()?;
    // The parties' randomness from the operating system; only the arrivals are seeded.
    let opts = a.ring.options(Options::default())?;
    let cores = bench::cores();
    println!(
        "machine: {} ({cores} threads; the server and every client share it)",
        bench::machine()
    );
    println!(
        "{}; arrivals seeded ({}); offline linear layers: {}; output: {}; {} client sessions, pool of {} precomputed offline phases each, {:.0} s of Poisson arrivals per rate",
        opts.randomness.label(),
        a.seed,
        opts.offline.label(),
        opts.output.label(),
        a.clients,
        a.pool,
        a.duration
    );
    let mut report = Vec::new();
    let mut lines = Vec::new();
    for (mi, path) in a.model.iter().enumerate() {
        let label = a.label.get(mi).cloned().unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string())
        });
        let file = load_export(path)?;
        let model = QuantModel::new(&file, ring)?;
        let imgs = inputs(&model.arch, &a.data, a.images)?;
        let norm = pi::images::normalization_or_default(&file.arch.json.normalize)?;
        let mut xs = Vec::new();
        let mut classes = Vec::new();
        for (_, px) in &imgs {
            let x = pi::normalize_image(px, &norm);
            let enc = QuantModel::encode_input(&model.arch, &ring, &x)?;
            let run = privlin_mpc::plain::forward(&model, &enc);
            classes.push(privlin_mpc::plain::decode_logits(&model, &run.logits).1);
            xs.push(enc);
        }
        let cal = bench::calibrate_for(&model, cores);
        let (_, _, on_s, off_s) = cost::totals(&model.arch, &ring, &opts, &cal)?;
        let predicted = 1.0 / (on_s + off_s);
        let single = load::single_request(&model, &xs[0], &opts)?;
        println!(
            "\n## {label}: {} active ReLUs, {:.1} M MACs\none request alone: {:.3} s with its offline phase precomputed, {:.3} s with it inline; cost model: {:.3} s online + {:.3} s offline compute per inference, saturation at about {predicted:.3} requests/s",
            model.arch.active_total(),
            (0..model.arch.ops().len()).map(|i| privlin_mpc::model::macs(&model.arch, i)).sum::<u64>() as f64 / 1e6,
            single.0,
            single.1,
            on_s,
            off_s
        );
        println!("| rate /s | arrived | done | throughput /s | latency p50 / p95 / p99 s | queue p50 / p95 s | inline offline p50 / p95 s | online p50 s | precomputed |");
        println!("|---:|---:|---:|---:|---|---|---|---:|---:|");
        let mut levels = Vec::new();
        let mut departs = None;
        for &rate in &a.rates {
            let cfg = LoadConfig {
                rate,
                duration: Duration::from_secs_f64(a.duration),
                clients: a.clients,
                pool: a.pool,
                grace: Duration::from_secs_f64(a.grace.unwrap_or(a.duration)),
                seed: a.seed,
                greedy: a.greedy,
                session_threads: a
                    .session_threads
                    .unwrap_or(ServeConfig::default().session_threads),
            };
            let r = load::run(&model, &xs, &classes, &opts, &cfg)?;
            println!(
                "| {rate} | {} | {} | {:.3} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} | {:.0} % |",
                r.arrived,
                r.completed,
                r.throughput,
                r.latency.p50,
                r.latency.p95,
                r.latency.p99,
                r.queue.p50,
                r.queue.p95,
                r.inline_offline.p50,
                r.inline_offline.p95,
                r.online.p50,
                100.0 * r.pooled_share
            );
            if r.greedy > 0 {
                println!(
                    "  beside {} greedy session(s) that completed {} inline inferences in the window",
                    r.greedy, r.greedy_requests
                );
            }
            for f in &r.failures {
                println!("  session failed: {f}");
            }
            if r.wrong > 0 {
                println!(
                    "  {} requests got a class other than the plaintext model's",
                    r.wrong
                );
            }
            // Departure from the single-request figure: p50 above 1.5x it and at least 0.25 s
            // more (milliseconds of scheduling noise are not a departure for a 50 ms request).
            if departs.is_none() && r.latency.p50 > (1.5 * single.0).max(single.0 + 0.25) {
                departs = Some(rate);
            }
            levels.push(r);
        }
        match departs {
            Some(r) => println!("p50 latency first exceeds the single precomputed request's by 1.5x and 0.25 s at {r} requests/s (cost model saturation: {predicted:.3} /s)"),
            None => println!("p50 latency stays within 1.5x (or 0.25 s) of the single precomputed request at every rate tried (cost model saturation: {predicted:.3} /s)"),
        }
        let points = |q: fn(&load::Percentiles) -> f64| {
            levels
                .iter()
                .filter(|r| r.completed > 0)
                .map(|r| (r.rate, q(&r.latency)))
                .collect()
        };
        for (suffix, q) in [("p50", points(|p| p.p50)), ("p95", points(|p| p.p95))] {
            lines.push(privlin::plot::Line {
                label: format!("{label} {suffix}"),
                points: q,
            });
        }
        report.push(serde_json::json!({
            "label": label,
            "model": path,
            "active_relus": model.arch.active_total(),
            "single_request_s": {"precomputed": single.0, "inline": single.1},
            "predicted": {"online_s": on_s, "offline_s": off_s, "saturation_per_s": predicted},
            "departs_at": departs,
            "levels": levels,
        }));
    }
    if let Some(p) = &a.plot {
        privlin::plot::pareto(
            p,
            "Private inference latency under load",
            "requests per second (log)",
            "latency s",
            &lines,
        )?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.json {
        let v = serde_json::json!({
            "machine": bench::machine(),
            "threads": cores,
            "randomness": opts.randomness.label(), "arrival_seed": a.seed,
            "offline_linear": opts.offline.label(),
            "clients": a.clients,
            "pool": a.pool,
            "duration_s": a.duration,
            "models": report,
        });
        privlin::io::atomic_write_bytes(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
