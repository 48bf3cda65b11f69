//! `privlin cost`: the predicted private-inference cost per layer.

use super::*;

#[derive(Args, Debug)]
pub struct CostArgs {
    /// Exported model directory, or a checkpoint (exported on the fly with its masks).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    ring: RingArgs,
    /// Skip measuring this machine's speeds; print bytes and rounds only.
    #[arg(long)]
    no_calibrate: bool,
    /// Draw the predicted seconds of each layer (online filled, offline outlined) as an SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Network profile of the plot (none, lan, wan-fast, wan).
    #[arg(long, default_value = "wan")]
    plot_profile: String,
}

/// Calibration for `cost` (this machine's speeds, and the model's own weight layers timed), or
/// zeros when skipped.
pub(super) fn calibration(file: &ModelFile, ring: &Ring, skip: bool) -> Result<Calibration> {
    if skip {
        return Ok(Calibration::default());
    }
    Ok(bench::calibrate_for(
        &QuantModel::new(file, *ring)?,
        bench::cores(),
    ))
}

pub fn cost_cmd(a: CostArgs) -> Result<()> {
    let ring = a.ring.ring()?;
    let plot_profile = profile(&Some(a.plot_profile.clone()))?;
    if a.plot.is_some() && a.no_calibrate {
        bail!("--plot draws predicted seconds: it needs the calibration (drop --no-calibrate)");
    }
    let file = load_export(&a.model)?;
    let arch = &file.arch;
    let cal = calibration(&file, &ring, a.no_calibrate)?;
    let mut opts = a.ring.options(Options::default())?;
    opts.nonlinear = resolve_family(&QuantModel::new(&file, ring)?, &opts)?;
    let costs = cost::layer_costs(arch, &ring, &opts, &cal)?;
    println!(
        "model: {} | ring l={} f={} w={} | offline linear layers: {} | active ReLUs: {}",
        arch.json.name,
        ring.bits,
        ring.frac,
        ring.gc_bits,
        opts.offline.label(),
        opts.nonlinear.name()
    );
    if !a.no_calibrate {
        println!(
            "calibration on {}: {:.2} ns/MAC, {:.1} ns/AND garbled, {:.1} ns/AND evaluated, {:.1} ns/OT",
            bench::machine(), cal.mac_ns, cal.garble_and_ns, cal.eval_and_ns, cal.ot_ns
        );
    }
    println!(
        "{:<26} {:>6} {:>9} {:>9} {:>13} {:>13} {:>14} {:>10} {:>10}",
        "layer",
        "kind",
        "positions",
        "active",
        "MACs",
        "online B",
        "offline B",
        "online s",
        "offline s"
    );
    for c in &costs {
        println!(
            "{:<26} {:>6} {:>9} {:>9} {:>13} {:>13} {:>14} {:>10.4} {:>10.4}",
            c.label,
            c.kind,
            if c.kind == "relu" {
                c.positions.to_string()
            } else {
                "".into()
            },
            if c.kind == "relu" {
                c.active.to_string()
            } else {
                "".into()
            },
            c.macs,
            c.online.bytes(),
            c.offline.bytes(),
            c.online_compute_s,
            c.offline_compute_s
        );
    }
    if let Some((ctx, plan)) = cost::he_plan(arch, &ring, &opts.offline)? {
        println!(
            "HE layouts (log2 Q = {:.1}, answers at {:.1} bits): layer, input channels per \
             polynomial x output channels per product, polynomials up / answers down, noise margin",
            ctx.log_q, ctx.log_qk
        );
        let mut ops: Vec<_> = plan.iter().collect();
        ops.sort_by_key(|(i, _)| **i);
        for (&i, l) in ops {
            let shared = l.host.map_or(String::new(), |h| {
                format!(
                    "  (reads the ciphertexts of {})",
                    privlin_mpc::protocol::op_label(arch, h)
                )
            });
            println!(
                "  {:<26} {:>4} x {:<4} {:>5} / {:<5} {:>5.1} bits{shared}",
                privlin_mpc::protocol::op_label(arch, i),
                l.cb,
                l.m,
                l.queries(),
                l.answers(),
                l.noise.margin_bits
            );
        }
    }
    if let Some((answers, log2)) = cost::flood_per_inference(arch, &ring, &opts.offline)? {
        println!(
            "HE flooding: {answers} answers per inference, each within 2^-{} of weight-independent; per inference within 2^{log2:.1} (union bound)",
            match opts.offline {
                OfflineMode::He(p) => p.flood_bits,
                OfflineMode::Dealer => 0,
            }
        );
    }
    if let Some((ctx, plan)) = cost::he_plan(arch, &ring, &opts.offline)? {
        use privlin_mpc::protocol::homomorphic;
        let budget = opts.limits.he_cache_bytes;
        let kept = homomorphic::cached_layers(&plan, &ctx, budget);
        println!(
            "HE weight cache (server, per session): {:.1} MB for {} of {} weight layers (budget {} MB; all layers: {:.1} MB)",
            homomorphic::cache_bytes(&plan, &ctx, budget) as f64 / 1e6,
            kept.len(),
            plan.len(),
            budget >> 20,
            homomorphic::cache_bytes(&plan, &ctx, u64::MAX) as f64 / 1e6
        );
    }
    let (on, off, on_c, off_c) = cost::totals(arch, &ring, &opts, &cal)?;
    let active = arch.active_total();
    println!(
        "total: {active} active ReLUs, {} MACs; online {} B in {} flights, offline {} B in {} flights",
        costs.iter().map(|c| c.macs).sum::<u64>(), on.bytes(), on.flights, off.bytes(), off.flights
    );
    println!(
        "{:<40} {:>12} {:>12}",
        "predicted latency (one inference)", "online s", "offline s"
    );
    println!(
        "{:<50} {:>12.3} {:>12.3}",
        "compute and hand-over only (no network delay)",
        cost::phase_seconds(on_c, &on, None, &cal),
        cost::phase_seconds(off_c, &off, None, &cal)
    );
    for p in Profile::presets() {
        println!(
            "{:<50} {:>12.3} {:>12.3}",
            p.describe(),
            cost::phase_seconds(on_c, &on, Some(&p), &cal),
            cost::phase_seconds(off_c, &off, Some(&p), &cal)
        );
    }
    println!(
        "{:<50} {:>12.3}",
        format!(
            "papers' figure: {} s per 1,000 ReLUs",
            cost::PAPER_SECONDS_PER_KRELU
        ),
        active as f64 / 1000.0 * cost::PAPER_SECONDS_PER_KRELU
    );
    // Both nonlinear families side by side (the weight layers' part is the same in both).
    println!("\nboth nonlinear families, one inference (online + offline s per profile)");
    let mut head = format!(
        "{:<6} {:>12} {:>12} {:>9}",
        "family", "online B", "offline B", "flights"
    );
    head += &format!(" {:>10}", "none");
    for p in Profile::presets() {
        head += &format!(" {:>10}", p.name);
    }
    println!("{head}");
    for f in Nonlinear::candidates() {
        let o = opts.with_nonlinear(f);
        let (on, off, on_c, off_c) = cost::totals(arch, &ring, &o, &cal)?;
        let mut row = format!(
            "{:<6} {:>12} {:>12} {:>4} / {:<3}",
            f.name(),
            on.bytes(),
            off.bytes(),
            on.flights,
            off.flights
        );
        for p in std::iter::once(None).chain(Profile::presets().into_iter().map(Some)) {
            let t = cost::phase_seconds(on_c, &on, p.as_ref(), &cal)
                + cost::phase_seconds(off_c, &off, p.as_ref(), &cal);
            row += &format!(" {t:>10.3}");
        }
        println!("{row}");
    }
    if a.no_calibrate {
        println!("(no calibration: seconds are the network's alone)");
    }
    if let Some(path) = &a.plot {
        let labels: Vec<String> = costs.iter().map(|c| c.label.clone()).collect();
        let per = |online: bool| -> Vec<f64> {
            costs
                .iter()
                .map(|c| {
                    let (compute, traffic) = if online {
                        (c.online_compute_s, &c.online)
                    } else {
                        (c.offline_compute_s, &c.offline)
                    };
                    cost::phase_seconds(compute, traffic, plot_profile.as_ref(), &cal)
                })
                .collect()
        };
        let (on, off) = (per(true), per(false));
        let network = plot_profile
            .as_ref()
            .map(|p| p.describe())
            .unwrap_or_else(|| "no network delay".into());
        privlin::plot::bar_chart(
            path,
            &format!("Predicted seconds per layer, {network}"),
            "seconds per inference",
            &labels,
            &[
                privlin::plot::BarSeries {
                    values: &off,
                    errors: None,
                    color: privlin::plot::palette(1),
                    filled: false,
                    label: Some("offline"),
                },
                privlin::plot::BarSeries {
                    values: &on,
                    errors: None,
                    color: privlin::plot::palette(0),
                    filled: true,
                    label: Some("online"),
                },
            ],
        )?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
