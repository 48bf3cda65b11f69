//! `privlin pi bench`: per-ReLU and whole-model measurements against the cost model.

use super::*;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Exported model directory (default: a synthetic residual CNN, see --width).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Width of the synthetic model's stem (32x32 inputs, 2 residual blocks).
    #[arg(long, default_value_t = 16)]
    width: usize,
    /// Fraction of active positions of the synthetic model.
    #[arg(long, default_value_t = 0.1)]
    keep: f64,
    #[command(flatten)]
    ring: RingArgs,
    /// ReLU circuits in the per-ReLU measurement.
    #[arg(long, default_value_t = 20000)]
    relus: usize,
    /// Network profiles for the whole-model runs (none = unshaped).
    #[arg(long, value_delimiter = ',', default_value = "none,lan,wan-fast,wan")]
    profiles: Vec<String>,
    /// Write the measurements as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// After the first whole-model run, list every layer's measured seconds (client's clock)
    /// beside the cost model's.
    #[arg(long)]
    per_layer: bool,
}

pub(super) fn bench_cmd(a: BenchArgs) -> Result<()> {
    let ring = a.ring.ring()?;
    let file = match &a.model {
        Some(p) => load_export(p)?,
        None => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let spec = Spec {
                input: [3, 32, 32],
                width: a.width,
                blocks: 2,
                downsample: true,
                classes: 10,
                keep: a.keep,
                ..Spec::default()
            };
            synthetic::model(&mut rng, &spec)
        }
    };
    let model = QuantModel::new(&file, ring)?;
    // Both parties are this process: seeded so that runs repeat; labelled as not private.
    let opts = a.ring.options_without_family(Options::insecure_seeded(7))?;
    let families = a
        .ring
        .offline
        .families()?
        .into_iter()
        .map(|f| resolve_family(&model, &opts.with_nonlinear(f)))
        .collect::<Result<Vec<_>>>()?;
    let opts = opts.with_nonlinear(families[0]);
    let all = bench::cores();
    println!("machine: {}", bench::machine());
    println!(
        "randomness: {}; output: {}",
        opts.randomness.label(),
        opts.output.label()
    );
    println!(
        "ring: l={} f={} w={}; offline linear layers: {}",
        ring.bits,
        ring.frac,
        ring.gc_bits,
        opts.offline.label()
    );
    println!(
        "\n## Per active ReLU ({} circuits; offline = garbling + OT extension of the client's w + l input labels, online = evaluation + the server's label selection and decoding)",
        a.relus
    );
    println!(
        "{:>7} {:>5} {:>9} {:>8} {:>11} {:>8} {:>9} {:>10} {:>12} {:>11} {:>11}",
        "threads",
        "ANDs",
        "garble us",
        "OT us",
        "offline us",
        "eval us",
        "other us",
        "online us",
        "online ReLU/s",
        "x DELPHI on",
        "x DELPHI off"
    );
    let mut micro = Vec::new();
    for t in [1, all] {
        let m = bench::relu_micro(&ring, a.relus, t);
        let (off, on) = (m.garble_us + m.ot_us, m.eval_us + m.online_overhead_us);
        println!(
            "{:>7} {:>5} {:>9.2} {:>8.2} {:>11.2} {:>8.2} {:>9.2} {:>10.2} {:>12.0} {:>10.1}x {:>10.1}x",
            t,
            m.and_gates_per_relu,
            m.garble_us,
            m.ot_us,
            off,
            m.eval_us,
            m.online_overhead_us,
            on,
            1e6 / on,
            cost::DELPHI_EVAL_US_PER_RELU / on,
            cost::DELPHI_GARBLE_US_PER_RELU / m.garble_us
        );
        micro.push(m);
        if all == 1 {
            break;
        }
    }
    let (gkwy, mmo) = bench::hash_cost(1 << 20);
    println!(
        "garbling hash, one thread: {gkwy:.1} ns (GKWY tweakable CCR, 2 AES calls) vs {mmo:.1} ns for the one-call form it replaced ({:.2}x)",
        gkwy / mmo
    );
    println!(
        "x DELPHI: its {} us evaluation and {} us garbling per ReLU per thread (paper figures, ../shared/docs/reference.md) over ours on this machine",
        cost::DELPHI_EVAL_US_PER_RELU,
        cost::DELPHI_GARBLE_US_PER_RELU
    );
    // Both families on one site, end to end, measured the same way in this run.
    let ot = match families.iter().find(|f| matches!(f, Nonlinear::Ot { .. })) {
        Some(f) => *f,
        None => Nonlinear::by_name("ot")?,
    };
    println!(
        "\n## Both families per active ReLU ({} ReLUs of one site, truncated by f, run end to end by a server and a client thread over the in-memory channel, client's clock; bytes both ways with frame headers; the shares are checked against ReLU(y) >> f)",
        a.relus
    );
    println!(
        "{:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>5}",
        "family",
        "threads",
        "offline us",
        "online us",
        "total us",
        "offline B",
        "online B",
        "total B",
        "flights",
        "OTs"
    );
    let mut site_runs = Vec::new();
    for t in [1, all] {
        for fam in [Nonlinear::Gc, ot] {
            let r = bench::site_run(&ring, a.relus, t, fam, 3)?;
            println!(
                "{:>7} {:>7} {:>10.2} {:>10.2} {:>10.2} {:>10.0} {:>10.1} {:>10.0} {:>8} {:>5}",
                r.family,
                t,
                r.offline_us,
                r.online_us,
                r.offline_us + r.online_us,
                r.offline_bytes,
                r.online_bytes,
                r.offline_bytes + r.online_bytes,
                r.online_flights,
                r.ots_per_relu
            );
            site_runs.push(r);
        }
        if all == 1 {
            break;
        }
    }
    println!("flights: online flights of the site (gc: labels, output bits; ot: one per comparison level, then two)");
    // The silent OT extension under `ot`: its rounds are in the offline columns above, its
    // session set-up (base OTs, IKNP bootstrap) is not.
    let round_s = bench::silent_round_s(1);
    let lpn = privlin_mpc::ot::silent::FERRET_B10;
    let ot_run = site_runs.iter().find(|r| r.family != "gc");
    println!(
        "silent OT (Ferret, t={} k=2^{} h={}): one round {:.1} ms on one thread per party, {} OTs, {:.1} ns/OT, {:.0} KB ({:.2} B/OT); session set-up {:.2} MB both ways ({:.0} B per ReLU if a session ran only this site)",
        lpn.t,
        lpn.log_k,
        lpn.depth,
        round_s * 1e3,
        lpn.usable(),
        round_s * 1e9 / lpn.usable() as f64,
        lpn.message_bytes(1) as f64 / 1e3,
        lpn.message_bytes(1) as f64 / lpn.usable() as f64,
        ot_run.map_or(0.0, |r| r.setup_bytes as f64 / 1e6),
        ot_run.map_or(0.0, |r| r.setup_bytes as f64 / r.relus as f64),
    );
    // The per-ReLU bytes of the first family listed, one thread (they do not depend on threads).
    let first = &site_runs[if families[0] == Nonlinear::Gc { 0 } else { 1 }];
    let (online_b, offline_b) = (first.online_bytes, first.offline_bytes);
    println!(
        "bytes per active ReLU ({}): online {online_b:.0} (DELPHI {:.0}, ratio {:.2}), offline {offline_b:.0} (DELPHI {:.0}, ratio {:.2})",
        first.family,
        cost::DELPHI_ONLINE_BYTES_PER_RELU,
        online_b / cost::DELPHI_ONLINE_BYTES_PER_RELU,
        cost::DELPHI_OFFLINE_BYTES_PER_RELU,
        offline_b / cost::DELPHI_OFFLINE_BYTES_PER_RELU
    );

    println!(
        "\n## Whole model: {} ({} ops, {} active ReLUs of {} positions), one inference, two threads of this process over the in-memory channel, threads per party",
        file.arch.json.name,
        file.arch.ops().len(),
        file.arch.active_total(),
        (0..file.arch.ops().len()).filter(|&i| matches!(file.arch.ops()[i], privlin_mpc::Op::Relu { .. })).map(|i| file.arch.numel(i + 1)).sum::<usize>()
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let x: Vec<f32> = (0..file.arch.numel(0))
        .map(|_| rand::Rng::gen_range(&mut rng, -1.0..1.0))
        .collect();
    let enc = QuantModel::encode_input(&model.arch, &ring, &x)?;
    let reference = privlin_mpc::plain::forward(&model, &enc);
    println!(
        "{:>7} {:>9} {:>8} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "family",
        "profile",
        "threads",
        "offline s",
        "pred.",
        "online s",
        "pred.",
        "offline MB",
        "online MB",
        "off err",
        "on err"
    );
    let mut whole = Vec::new();
    let mut site_bytes = None;
    for (fam, pname) in families
        .iter()
        .flat_map(|f| a.profiles.iter().map(move |p| (*f, p)))
    {
        let opts = opts.with_nonlinear(fam);
        let prof = profile(&Some(pname.clone()))?;
        let per_party = bench::threads_per_party();
        for t in if prof.is_none() && per_party > 1 {
            vec![1, per_party]
        } else {
            vec![per_party]
        } {
            let cal = bench::calibrate_for(&model, t);
            let s = bench::session(&model, std::slice::from_ref(&enc), prof.clone(), t, &opts)?;
            let inf = &s.inferences[0];
            let (on_t, off_t, on_c, off_c) = cost::totals(&model.arch, &ring, &opts, &cal)?;
            let (p_off, p_on) = (
                cost::phase_seconds(off_c, &off_t, prof.as_ref(), &cal),
                cost::phase_seconds(on_c, &on_t, prof.as_ref(), &cal),
            );
            cost::check_traffic(&s.client, &model.arch, &ring, &opts)?;
            let (mon, moff) = (s.client.total("online/"), s.client.total("offline/"));
            // Bytes of the site messages (server labels, client output bits, framing) per active ReLU.
            site_bytes = Some(
                super::client::active_site_bytes(&s.client, &model.arch, "online/") as f64
                    / model.arch.active_total().max(1) as f64,
            );
            let agree = privlin_mpc::plain::decode_logits(&model, &reference.logits).1 == inf.class;
            println!(
                "{:>7} {:>9} {:>8} {:>12.3} {:>12.3} {:>12.3} {:>12.3} {:>12.2} {:>12.2} {:>9} {:>9}",
                fam.name(),
                pname,
                t,
                inf.offline_s,
                p_off,
                inf.online_s,
                p_on,
                moff.bytes() as f64 / 1e6,
                mon.bytes() as f64 / 1e6,
                pct(p_off, inf.offline_s),
                pct(p_on, inf.online_s)
            );
            if a.per_layer && whole.is_empty() {
                print_per_layer(&model, &opts, &cal, &s.client, prof.as_ref())?;
            }
            // The weight layers' part of the offline phase (HE or the dealer), measured.
            let (lin_b, lin_s) = bench::offline_linear(&s.client, &model.arch);
            whole.push(serde_json::json!({
                "offline_linear_bytes": lin_b, "offline_linear_s": lin_s,
                "nonlinear": fam.name(), "profile": pname, "shaper": prof.as_ref().map(|p| p.describe()), "threads": t,
                "offline_s": inf.offline_s, "online_s": inf.online_s,
                "predicted_offline_s": p_off, "predicted_online_s": p_on,
                "offline_bytes": moff.bytes(), "online_bytes": mon.bytes(),
                "offline_flights": moff.flights, "online_flights": mon.flights,
                "class_matches_plaintext": agree, "calibration": cal,
            }));
        }
    }
    println!("bytes: the cost model's message sequence matched the channel's counts exactly in every run");
    if let Some(b) = site_bytes {
        println!(
            "measured online bytes at the sites per active ReLU (labels, output bits, frame headers): {b:.1} (DELPHI {:.0}, ratio {:.2})",
            cost::DELPHI_ONLINE_BYTES_PER_RELU,
            b / cost::DELPHI_ONLINE_BYTES_PER_RELU
        );
    }
    println!(
        "papers' estimate for {} ReLUs at {} s per 1,000: {:.3} s online",
        file.arch.active_total(),
        cost::PAPER_SECONDS_PER_KRELU,
        file.arch.active_total() as f64 / 1000.0 * cost::PAPER_SECONDS_PER_KRELU
    );
    if let Some(p) = &a.json {
        let v = serde_json::json!({ "machine": bench::machine(), "ring": ring, "offline_linear": opts.offline.label(),
            "randomness": opts.randomness.label(), "output": opts.output.label(),
            "hash_ns": { "gkwy": gkwy, "one_call_mmo_replaced": mmo },
            "per_relu": micro, "nonlinear": first.family, "online_bytes_per_relu": online_b, "offline_bytes_per_relu": offline_b,
            "sites": site_runs, "whole_model": whole,
            "silent_ot": { "round_s": round_s, "ots_per_round": lpn.usable(), "round_bytes": lpn.message_bytes(1) } });
        privlin_mpc::model::write_atomic(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}

/// Measured seconds of every label of one inference (client's clock) beside the cost model's.
pub(super) fn print_per_layer(
    model: &QuantModel,
    opts: &Options,
    cal: &Calibration,
    m: &Meter,
    prof: Option<&Profile>,
) -> Result<()> {
    println!(
        "{:<26} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}",
        "layer", "offline s", "pred.", "err", "online s", "pred.", "err"
    );
    // Labels are unique in a meter; a layer without messages in a phase took no time there (an
    // empty float sum would print as -0).
    let seconds = |label: String| -> f64 {
        m.entries()
            .iter()
            .find(|e| e.label == label)
            .map_or(0.0, |e| e.seconds)
    };
    // Online, the client waits for the server's weight layers under the next site's label: they
    // are predicted into that row.
    let mut pending = 0.0;
    // Offline seconds, bytes (the cost model's, checked equal to the meter's before this is
    // called) and predicted compute of the sites [0] and the weight layers [1].
    let mut split = [(0.0, 0u64, 0.0); 2];
    for c in cost::layer_costs(&model.arch, &model.ring, opts, cal)? {
        let (off, on) = (
            seconds(format!("offline/{}", c.label)),
            seconds(format!("online/{}", c.label)),
        );
        let part = &mut split[usize::from(c.kind == "conv" || c.kind == "linear")];
        part.0 += off;
        part.1 += c.offline.bytes();
        part.2 += c.offline_compute_s;
        let p_off = cost::phase_seconds(c.offline_compute_s, &c.offline, prof, cal);
        let mut p_on = cost::phase_seconds(c.online_compute_s, &c.online, prof, cal);
        if c.online.messages == 0 {
            pending += p_on;
            p_on = 0.0;
        } else {
            p_on += std::mem::take(&mut pending);
        }
        println!(
            "{:<26} {:>10.4} {:>10.4} {:>8} {:>10.4} {:>10.4} {:>8}",
            c.label,
            off,
            p_off,
            pct(p_off, off),
            on,
            p_on,
            pct(p_on, on)
        );
    }
    println!(
        "offline by part: weight layers ({}) {:.3} s, {:.2} MB (compute predicted {:.3} s); \
         sites and argmax (garbled circuits, OT) {:.3} s, {:.2} MB (compute predicted {:.3} s)",
        opts.offline.name(),
        split[1].0,
        split[1].1 as f64 / 1e6,
        split[1].2,
        split[0].0,
        split[0].1 as f64 / 1e6,
        split[0].2
    );
    Ok(())
}

pub(super) fn pct(pred: f64, meas: f64) -> String {
    if meas == 0.0 {
        "-".into()
    } else {
        format!("{:+.1}%", (pred - meas) / meas * 100.0)
    }
}
