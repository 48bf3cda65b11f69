//! `privlin pi families`: both nonlinear families priced side by side (the library's
//! `privlin::pi::families`), printed as a table and drawn.

use crate::pi::{load_export, profile, RingArgs};
use anyhow::{bail, Result};
use clap::Args;
use privlin::pi::families;
use privlin_mpc::bench;
use privlin_mpc::protocol::Options;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct FamiliesArgs {
    /// Exported model directories (repeat: one column pair per model, e.g. one budget each).
    #[arg(long, required = true)]
    model: Vec<PathBuf>,
    /// Names of the models (default: their directory names, or the parent's for `.../pi`).
    #[arg(long)]
    label: Vec<String>,
    /// Network profile of the predicted seconds (none, lan, wan-fast, wan).
    #[arg(long, default_value = "wan")]
    profile: String,
    /// Ring, output and the weight layers' offline phase (the same in both families;
    /// `--nonlinear` is ignored: both are priced).
    #[command(flatten)]
    ring: RingArgs,
    /// Draw the predicted seconds (online filled, online + offline outlined) as an SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Write the rows as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(a: FamiliesArgs) -> Result<()> {
    if !a.label.is_empty() && a.label.len() != a.model.len() {
        bail!("{} --label for {} --model", a.label.len(), a.model.len());
    }
    let ring = a.ring.ring()?;
    let prof = profile(&Some(a.profile.clone()))?;
    let opts = a.ring.options_without_family(Options::default())?;
    let mut models = Vec::new();
    for (i, path) in a.model.iter().enumerate() {
        let label = a.label.get(i).cloned().unwrap_or_else(|| {
            let named = if path.ends_with("pi") {
                path.parent().unwrap_or(path)
            } else {
                path
            };
            named
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string())
        });
        models.push((label, load_export(path)?));
    }
    let network = prof
        .as_ref()
        .map(|p| p.describe())
        .unwrap_or_else(|| "no network delay".into());
    let threads = bench::threads_per_party();
    println!(
        "machine: {}; {threads} thread(s) per party; {network}; offline linear layers: {}",
        bench::machine(),
        opts.offline.label()
    );
    let rows = families::compare(&models, ring, &opts, prof.as_ref(), threads)?;
    println!(
        "{:<12} {:>6} {:>9} {:>12} {:>13} {:>9} {:>10} {:>10} {:>10}",
        "model",
        "family",
        "ReLUs",
        "online MB",
        "offline MB",
        "flights",
        "online s",
        "offline s",
        "total s"
    );
    for r in &rows {
        println!(
            "{:<12} {:>6} {:>9} {:>12.2} {:>13.2} {:>4}/{:<4} {:>10.3} {:>10.3} {:>10.3}",
            r.model,
            r.nonlinear,
            r.active_relus,
            r.online_bytes as f64 / 1e6,
            r.offline_bytes as f64 / 1e6,
            r.online_flights,
            r.offline_flights,
            r.online_s,
            r.offline_s,
            r.online_s + r.offline_s
        );
    }
    for pair in rows.chunks(2) {
        let best = pair
            .iter()
            .min_by(|x, y| (x.online_s + x.offline_s).total_cmp(&(y.online_s + y.offline_s)))
            .expect("two families");
        println!(
            "{}: {} is faster under this profile",
            best.model, best.nonlinear
        );
    }
    if let Some(p) = &a.plot {
        families::plot(&rows, p, &network)?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.json {
        privlin::io::atomic_write_json(p, &rows)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
