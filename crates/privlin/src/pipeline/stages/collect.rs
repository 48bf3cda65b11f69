//! Stage `collect` of a sweep: every finished point under `OUT/sweep/` into `sweep.csv`, Pareto
//! plots (accuracy vs ReLU count, and vs predicted online latency; one line per method) and
//! per-site retention plots (ReLUPruner figure 5), and, where tags differ only in a `-s<seed>`
//! suffix, `seeds.csv` with each method line's mean and range over its seeds and which
//! differences those ranges can tell from noise. It reads the directory, not only the plan's
//! points, so it runs every time.

use crate::linearize::report::DELPHI_SECONDS_PER_KRELU;
use crate::linearize::run::{StageReport, FINETUNE_REPORT, LINEARIZE_REPORT};
use crate::linearize::BudgetOutcome;
use crate::pi::{PiReport, PI_REPORT};
use crate::pipeline::seed_spread::{self, SeedPoint};
use crate::pipeline::stage::{Ctx, OnChange, Stage, StageKind};
use crate::plot::{lines_over_labels, pareto, Line};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collect {
    /// The sweep's output directory.
    pub out: PathBuf,
}

impl Stage for Collect {
    fn kind(&self) -> StageKind {
        StageKind::Collect
    }

    fn reads(&self) -> Vec<PathBuf> {
        vec![self.out.join("sweep")]
    }

    fn writes(&self) -> Vec<PathBuf> {
        vec![self.out.join("sweep.csv"), self.out.join("pareto.svg")]
    }

    fn always(&self) -> bool {
        true
    }

    /// It reads the directory, not its dependencies' outputs only: another sweep into the same
    /// directory (other presets, other base networks) makes it again rather than refusing.
    fn on_change(&self) -> OnChange {
        OnChange::Redo
    }

    fn run(&self, _ctx: &Ctx) -> Result<String> {
        collect(&self.out)
    }
}

struct Point {
    tag: String,
    label: String,
    lin: StageReport,
    ft: StageReport,
    pi: Option<PiReport>,
    /// MACs per image of the point's network.
    macs: Option<i64>,
}

/// MACs per image of the checkpoint in `dir` (traced from its spec; `None` if it cannot be read).
fn macs_of(dir: &Path) -> Option<i64> {
    let spec = crate::train::CheckpointSpec::load(dir).ok()?;
    let model = crate::nn::Model::new(spec.model, tch::Device::Cpu).ok()?;
    Some(model.macs_total())
}

fn points(out: &Path) -> Result<Vec<Point>> {
    let mut pts = Vec::new();
    let root = out.join("sweep");
    let Ok(tags) = std::fs::read_dir(&root) else {
        bail!("{}: no sweep points yet", root.display());
    };
    let mut tags: Vec<PathBuf> = tags.filter_map(|e| e.ok().map(|e| e.path())).collect();
    tags.sort();
    for t in tags.iter().filter(|p| p.is_dir()) {
        let mut bs: Vec<PathBuf> = std::fs::read_dir(t)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        bs.sort();
        for b in bs {
            let (l, f) = (
                b.join("pr").join(LINEARIZE_REPORT),
                b.join("final").join(FINETUNE_REPORT),
            );
            if l.exists() && f.exists() {
                pts.push(Point {
                    tag: t.file_name().unwrap_or_default().to_string_lossy().into(),
                    label: b.file_name().unwrap_or_default().to_string_lossy().into(),
                    lin: crate::io::read_json(&l)?,
                    ft: crate::io::read_json(&f)?,
                    pi: crate::io::read_json(&b.join("pi").join(PI_REPORT)).ok(),
                    macs: macs_of(&b.join("final")),
                });
            }
        }
    }
    Ok(pts)
}

/// Predicted offline + online seconds of one inference on the slowest network profile.
fn slowest_total(p: &Point) -> Option<f64> {
    let w = p.pi.as_ref()?.partial.slowest()?;
    Some(w.online_s + w.offline_s)
}

/// One Pareto line per method tag: (x, accuracy after fine-tuning in %) for the points where `x`
/// has a value.
fn lines_by_tag(pts: &[Point], x: impl Fn(&Point) -> Option<f64>) -> Vec<Line> {
    let mut by_tag: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for p in pts {
        if let Some(x) = x(p) {
            by_tag
                .entry(&p.tag)
                .or_default()
                .push((x, 100.0 * p.ft.test_acc));
        }
    }
    by_tag
        .into_iter()
        .map(|(t, points)| Line {
            label: t.to_string(),
            points,
        })
        .collect()
}

/// Write `sweep.csv`, `pareto.svg` and `retention-<budget>.svg` from the finished points;
/// returns the table of points and the files written.
pub fn collect(out: &Path) -> Result<String> {
    let pts = points(out)?;
    if pts.is_empty() {
        bail!("{}: no finished sweep points", out.display());
    }
    let mut csv = String::from(
        "tag,method,budget,relus,capacity,relu_share,acc_all_relu,acc_linearized,acc_finetuned,delphi_estimate_s,linearize_s,finetune_s,pi_online_bytes,pi_offline_bytes,pi_online_s_measured,pi_online_s_wan_predicted,pi_agree_float,budget_reached,linearize_epochs,macs,pi_total_s_wan_predicted,pi_nonlinear,gc_total_s_wan_predicted,ot_total_s_wan_predicted\n",
    );
    for p in &pts {
        let pi = match &p.pi {
            Some(r) => format!(
                "{},{},{:.4},{:.4},{}/{}",
                r.partial.online_bytes,
                r.partial.offline_bytes,
                r.online_s,
                r.partial.slowest().map(|x| x.online_s).unwrap_or(f64::NAN),
                r.agree_float,
                r.images
            ),
            None => ",,,,".into(),
        };
        let e2e = slowest_total(p)
            .map(|t| format!("{t:.4}"))
            .unwrap_or_default();
        let macs = p.macs.map(|m| m.to_string()).unwrap_or_default();
        let reached = p.lin.budget_outcome.map_or("", |o| o.csv_label());
        // Both families' predicted end-to-end seconds on the slowest network.
        let family = |name: &str| {
            p.pi.as_ref()
                .and_then(|r| {
                    r.by_family
                        .iter()
                        .find(|f| f.nonlinear.split(':').next() == Some(name))
                })
                .and_then(|f| f.partial.slowest())
                .map(|w| format!("{:.4}", w.online_s + w.offline_s))
                .unwrap_or_default()
        };
        let ran = p.pi.as_ref().map(|r| r.nonlinear.as_str()).unwrap_or("");
        let (gc, ot) = (family("gc"), family("ot"));
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.6},{:.4},{:.4},{:.4},{:.4},{:.1},{:.1},{pi},{reached},{},{macs},{e2e},{ran},{gc},{ot}",
            p.tag,
            p.lin.method,
            p.label,
            p.ft.relus,
            p.ft.capacity,
            p.ft.relus as f64 / p.ft.capacity as f64,
            100.0 * p.ft.test_acc_ar,
            100.0 * p.lin.test_acc,
            100.0 * p.ft.test_acc,
            p.ft.relus as f64 / 1000.0 * DELPHI_SECONDS_PER_KRELU,
            p.lin.seconds,
            p.ft.seconds,
            p.lin.epochs
        );
    }
    crate::io::atomic_write_bytes(&out.join("sweep.csv"), csv.as_bytes())?;
    let lines = lines_by_tag(&pts, |p| Some(p.ft.relus as f64));
    pareto(
        &out.join("pareto.svg"),
        "Accuracy after fine-tuning vs ReLU count",
        "ReLUs kept (log)",
        "test accuracy (%)",
        &lines,
    )?;
    let mut written = vec![out.join("sweep.csv"), out.join("pareto.svg")];
    // What the budget buys: accuracy against the predicted online latency on the slowest profile.
    let slowest = |p: &Point| p.pi.as_ref().and_then(|r| r.partial.slowest().cloned());
    let network = pts
        .iter()
        .find_map(slowest)
        .map(|w| w.network)
        .unwrap_or_default();
    let lines = lines_by_tag(&pts, |p| slowest(p).map(|w| 1e3 * w.online_s));
    if !lines.is_empty() {
        let path = out.join("pareto-latency.svg");
        pareto(
            &path,
            "Accuracy after fine-tuning vs predicted private-inference latency",
            &format!("online milliseconds per image, {network} (log)"),
            "test accuracy (%)",
            &lines,
        )?;
        written.push(path);
    }
    // FLOPs are not free (DeepReShape): online plus the weight layers' offline work per request.
    let lines = lines_by_tag(&pts, slowest_total);
    if !lines.is_empty() {
        let path = out.join("pareto-e2e.svg");
        pareto(
            &path,
            "Accuracy vs predicted private-inference latency, offline (HE) + online",
            &format!("seconds per image, offline + online, {network} (log)"),
            "test accuracy (%)",
            &lines,
        )?;
        written.push(path);
    }
    if pts.iter().any(|p| p.macs.is_some()) {
        let lines = lines_by_tag(&pts, |p| p.macs.map(|m| m as f64 / 1e6));
        let path = out.join("pareto-macs.svg");
        pareto(
            &path,
            "Accuracy after fine-tuning vs MACs",
            "MMACs per image (log)",
            "test accuracy (%)",
            &lines,
        )?;
        written.push(path);
    }
    let mut by_budget: BTreeMap<&str, Vec<&Point>> = BTreeMap::new();
    for p in &pts {
        by_budget.entry(&p.label).or_default().push(p);
    }
    for (label, ps) in &by_budget {
        let sites: Vec<String> = ps[0]
            .ft
            .sites
            .iter()
            .filter(|s| s.counted)
            .map(|s| s.name.clone())
            .collect();
        let series: Vec<(String, Vec<f64>)> = ps
            .iter()
            .map(|p| {
                (
                    p.tag.clone(),
                    p.ft.sites
                        .iter()
                        .filter(|s| s.counted)
                        .map(|s| 100.0 * s.kept as f64 / s.capacity as f64)
                        .collect(),
                )
            })
            .collect();
        let path = out.join(format!("retention-{label}.svg"));
        lines_over_labels(
            &path,
            &format!("ReLUs kept per site at budget {label}"),
            "kept (% of the site)",
            &sites,
            &series,
        )?;
        written.push(path);
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<22} {:>8} {:>9} {:>8} {:>10} {:>10}",
        "tag", "budget", "ReLUs", "AR %", "linear. %", "finetun. %"
    );
    for p in &pts {
        let _ = writeln!(
            text,
            "{:<22} {:>8} {:>9} {:>8.2} {:>10.2} {:>10.2}",
            p.tag,
            p.label,
            p.ft.relus,
            100.0 * p.ft.test_acc_ar,
            100.0 * p.lin.test_acc,
            100.0 * p.ft.test_acc
        );
    }
    let seed_points: Vec<SeedPoint> = pts
        .iter()
        .map(|p| SeedPoint {
            tag: &p.tag,
            budget: &p.label,
            relus: p.ft.relus,
            acc: 100.0 * p.ft.test_acc,
            reached: p.lin.budget_outcome != Some(BudgetOutcome::NotReached),
            epochs: p.lin.epochs,
        })
        .collect();
    let spreads = seed_spread::spreads(&seed_points);
    if !spreads.is_empty() {
        let path = out.join("seeds.csv");
        crate::io::atomic_write_bytes(&path, seed_spread::csv(&spreads).as_bytes())?;
        written.push(path);
        let _ = write!(text, "\n{}", seed_spread::table(&spreads));
    }
    let verdicts: Vec<(&str, String)> = seed_spread::budgets(&spreads)
        .into_iter()
        .filter_map(|b| Some((b, seed_spread::verdict(b, &spreads)?)))
        .collect();
    for (_, v) in &verdicts {
        let _ = writeln!(text, "{v}");
    }
    for (label, ps) in &by_budget {
        if ps.len() < 2 || verdicts.iter().any(|(b, _)| b == label) {
            continue;
        }
        let best = ps
            .iter()
            .max_by(|a, b| a.ft.test_acc.total_cmp(&b.ft.test_acc))
            .expect("non-empty");
        let _ = writeln!(
            text,
            "best at {label}: {} ({:.2} %, {} ReLUs{}; one seed per point: differences under a few points are within noise)",
            best.tag,
            100.0 * best.ft.test_acc,
            best.ft.relus,
            best.macs
                .map(|m| format!(", {:.1} MMACs", m as f64 / 1e6))
                .unwrap_or_default()
        );
    }
    for w in written {
        let _ = writeln!(text, "wrote {}", w.display());
    }
    Ok(text.trim_end().to_string())
}
