//! `privlin pi client`: private inference of images against a server.

use super::*;

#[derive(Args, Debug)]
pub struct ClientArgs {
    #[arg(long, default_value = "127.0.0.1:7700")]
    connect: String,
    /// Image folder data set (its test split is used); default: random inputs.
    #[arg(long)]
    data: Option<String>,
    /// Images to classify.
    #[arg(long, default_value_t = 1)]
    images: usize,
    #[arg(long)]
    profile: Option<String>,
    /// Also run the float checkpoint on each image and report whether the classes agree.
    #[arg(long)]
    check: Option<PathBuf>,
    /// Write the per-image results and traffic as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Seconds the whole session may last.
    #[arg(long, default_value_t = 3600)]
    session_deadline: u64,
    #[command(flatten)]
    offline: OfflineArgs,
}

/// Labels of the sites with active positions (their messages are the ReLUs' cost).
pub(super) fn site_labels(arch: &Arch) -> Vec<String> {
    (0..arch.ops().len())
        .filter(|i| arch.active.get(i).is_some_and(|v| !v.is_empty()))
        .map(|i| privlin_mpc::protocol::op_label(arch, i))
        .collect()
}

/// Bytes under `phase` of the sites with active positions (their messages are the ReLUs' cost).
pub(super) fn active_site_bytes(m: &Meter, arch: &Arch, phase: &str) -> u64 {
    let sites = site_labels(arch);
    m.entries()
        .iter()
        .filter(|e| {
            e.label
                .strip_prefix(phase)
                .is_some_and(|l| sites.iter().any(|x| x == l))
        })
        .map(|e| e.bytes())
        .sum()
}

pub(super) fn print_traffic(m: &Meter, arch: &Arch) {
    let active = arch.active_total();
    println!(
        "{:<28} {:>14} {:>14} {:>6} {:>8} {:>9}",
        "label", "sent B", "received B", "msgs", "flights", "seconds"
    );
    for e in m.entries() {
        println!(
            "{:<28} {:>14} {:>14} {:>6} {:>8} {:>9.4}",
            e.label, e.bytes_sent, e.bytes_received, e.messages, e.flights, e.seconds
        );
    }
    for phase in ["offline/", "online/"] {
        let t = m.total(phase);
        let site_bytes = active_site_bytes(m, arch, phase);
        println!(
            "{phase:<9} total {:>12} B ({} flights, {:.3} s); active-ReLU sites {} B = {:.1} B per active ReLU",
            t.bytes(),
            t.flights,
            t.seconds,
            site_bytes,
            site_bytes as f64 / active.max(1) as f64
        );
    }
}

pub(super) fn client(a: ClientArgs) -> Result<()> {
    let prof = profile(&a.profile)?;
    let stream =
        TcpStream::connect(&a.connect).with_context(|| format!("connecting to {}", a.connect))?;
    let t = TcpTransport::new(stream, Duration::from_secs(a.timeout))?;
    let ch = Channel::new(Box::new(t))
        .with_profile(prof.clone())
        .with_deadline(Duration::from_secs(a.session_deadline));
    let mut c = Client::connect(
        ch,
        &Options::default()
            .with_offline(a.offline.mode()?)
            .with_nonlinear(a.offline.nonlinear()?),
    )?;
    let arch = c.arch().clone();
    println!(
        "connected to {}: {} ({} active ReLUs); offline linear layers: {}; output: {}; network: {}",
        a.connect,
        arch.json.name,
        arch.active_total(),
        c.hello.offline,
        c.hello.output.label(),
        prof.as_ref()
            .map(|p| p.describe())
            .unwrap_or_else(|| "unshaped TCP".into())
    );
    let norm = pi::images::normalization_or_default(&arch.json.normalize)?;
    let check = match &a.check {
        Some(p) => Some(privlin::linearize::run::load_with_masks(
            p,
            runtime("cpu", 0)?,
        )?),
        None => None,
    };
    // With --check, also the plaintext fixed-point model (what the protocol computes, up to local
    // truncation), to tell quantization from protocol effects.
    let fixed = match &check {
        Some((model, spec, masks)) => {
            let file = pi::export(model, masks.as_ref(), &spec.normalization, "check")?;
            Some(QuantModel::new(&file, c.ring())?)
        }
        None => None,
    };
    let (mut fixed_agree, mut overflows) = (0, 0);
    let mut rows = Vec::new();
    let (mut agree, mut correct, mut labelled) = (0, 0, 0);
    for (k, (label, px)) in inputs(&arch, &a.data, a.images)?.into_iter().enumerate() {
        let x = pi::normalize_image(&px, &norm);
        c.channel().meter.reset();
        let inf = c.infer(&x)?;
        c.channel().meter.stop_clock();
        let float_class = check.as_ref().map(|(model, _, masks)| {
            pi::float_classes(
                model,
                masks.as_ref(),
                std::slice::from_ref(&x),
                arch.json.input_shape,
            )[0]
        });
        agree += (float_class == Some(inf.class)) as usize;
        let fixed_class = match &fixed {
            Some(q) => {
                let enc = QuantModel::encode_input(&q.arch, &q.ring, &x)?;
                let r = privlin_mpc::plain::forward(q, &enc);
                overflows += r.gc_overflows;
                if r.identity_over_bound(&q.ring) {
                    eprintln!(
                        "warning: image {k}: |y| = 2^{:.1} at an identity position, at or above 2^{} (the magnitude the wrap-failure bound assumes); local truncation may fail more often than stated (--truncation faithful does not)",
                        (r.max_identity_abs as f64).log2(),
                        q.ring.gc_bits - 1
                    );
                }
                Some(privlin_mpc::plain::decode_logits(q, &r.logits).1)
            }
            None => None,
        };
        fixed_agree += (fixed_class.is_some() && fixed_class == float_class) as usize;
        if let Some(l) = label {
            labelled += 1;
            correct += (l as usize == inf.class) as usize;
        }
        println!(
            "image {k}: private class {}{}{}{}; offline {:.3} s, online {:.3} s",
            inf.class,
            label.map(|l| format!(", label {l}")).unwrap_or_default(),
            float_class
                .map(|f| format!(", float model {f}"))
                .unwrap_or_default(),
            fixed_class
                .map(|f| format!(", plaintext fixed point {f}"))
                .unwrap_or_default(),
            inf.offline_s,
            inf.online_s
        );
        rows.push(serde_json::json!({
            "image": k, "label": label, "private_class": inf.class, "float_class": float_class,
            "fixed_point_class": fixed_class, "logits": inf.logits, "offline_s": inf.offline_s, "online_s": inf.online_s,
            "traffic": c.channel().meter.entries(),
        }));
    }
    print_traffic(&c.channel().meter, &arch);
    let (c_offline, c_output) = (c.hello.offline.clone(), c.hello.output.label());
    if check.is_some() {
        println!(
            "private class == float model's class on {agree}/{} images",
            rows.len()
        );
        println!(
            "plaintext fixed-point class == float model's class on {fixed_agree}/{} images; {overflows} active pre-activations outside the circuit width",
            rows.len()
        );
    }
    if labelled > 0 {
        println!("private accuracy {correct}/{labelled}");
    }
    c.close()?;
    if let Some(p) = &a.json {
        let v = serde_json::json!({ "server": a.connect, "offline_linear": c_offline, "output": c_output,
            "randomness": "operating-system randomness", "network": prof, "images": rows });
        privlin_mpc::model::write_atomic(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}
