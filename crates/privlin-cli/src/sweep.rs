//! `privlin sweep CONFIG --budgets ...`: the pipeline at several budgets for one or more presets,
//! sharing the all-ReLU model and each importance result; then a CSV, an SVG Pareto plot (accuracy
//! vs ReLU count, one line per method) and per-site retention plots (ReLUPruner figure 5).

use crate::pipeline::{preset, run_pipeline, Layout, PipelineConfig};
use anyhow::{bail, Context, Result};
use clap::Args;
use privlin::linearize::report::DELPHI_SECONDS_PER_KRELU;
use privlin::linearize::run::{StageReport, FINETUNE_REPORT, LINEARIZE_REPORT};
use privlin::pi::{PiReport, PI_REPORT};
use privlin::plot::{lines_over_labels, pareto, Line};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Pipeline config (TOML), as for `privlin run`.
    config: PathBuf,
    /// Budgets, comma-separated: counts (6k, 12900) or shares of the counted ReLUs (1%).
    #[arg(long, value_delimiter = ',', required = true)]
    budgets: Vec<String>,
    /// Presets to compare, comma-separated (default: the config's).
    #[arg(long, value_delimiter = ',')]
    presets: Vec<String>,
    /// Name of this variant's line (default: the preset); for ablations with `--set`.
    #[arg(long)]
    tag: Option<String>,
    /// Override a config value, e.g. `--set linearize.taylor.second_order=false`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Only collect the finished points into the CSV and plots.
    #[arg(long)]
    collect_only: bool,
}

/// A directory-safe label for a budget (`3%` -> `3pct`).
pub fn budget_label(b: &str) -> String {
    b.trim()
        .replace('%', "pct")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn run(a: SweepArgs) -> Result<()> {
    let base = PipelineConfig::load(&a.config, &a.sets)?;
    let presets = if a.presets.is_empty() {
        vec![base.preset.clone()]
    } else {
        a.presets.clone()
    };
    if a.tag.is_some() && presets.len() > 1 {
        bail!("--tag names one variant: give one preset with it");
    }
    for p in &presets {
        preset(p)?;
    }
    let out = base.out.clone();
    if !a.collect_only {
        let total = presets.len() * a.budgets.len();
        let mut k = 0;
        for p in &presets {
            let tag = a.tag.clone().unwrap_or_else(|| p.clone());
            for b in &a.budgets {
                k += 1;
                let mut cfg = base.clone();
                cfg.preset = p.clone();
                cfg.budget = b.clone();
                if p != &base.preset {
                    // Another preset's learner, not the base config's explicit one.
                    cfg.linearize.method = None;
                    cfg.importance.remove("method");
                }
                let imp_method = cfg
                    .importance
                    .get("method")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .or_else(|| preset(p).ok().and_then(|x| x.0).map(str::to_string))
                    .unwrap_or_else(|| "none".into());
                let point = out.join("sweep").join(&tag).join(budget_label(b));
                let layout = Layout {
                    ar: out.join("ar"),
                    importance: out.join("importance").join(format!("{imp_method}.json")),
                    budget: point.join("budget.json"),
                    pr: point.join("pr"),
                    final_: point.join("final"),
                    pi: point.join("pi"),
                    report: point.join("report.md"),
                };
                let title = format!("sweep point {k}/{total}: `{tag}` at budget {b}");
                eprintln!("== {title}");
                run_pipeline(&cfg, &layout, &title)
                    .with_context(|| format!("sweep point `{tag}` at {b}"))?;
            }
        }
    }
    collect(&out)
}

struct Point {
    tag: String,
    label: String,
    lin: StageReport,
    ft: StageReport,
    pi: Option<PiReport>,
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
                    lin: privlin::io::read_json(&l)?,
                    ft: privlin::io::read_json(&f)?,
                    pi: privlin::io::read_json(&b.join("pi").join(PI_REPORT)).ok(),
                });
            }
        }
    }
    Ok(pts)
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

/// Write `sweep.csv`, `pareto.svg` and `retention-<budget>.svg` from the finished points.
pub fn collect(out: &Path) -> Result<()> {
    let pts = points(out)?;
    if pts.is_empty() {
        bail!("{}: no finished sweep points", out.display());
    }
    let mut csv = String::from(
        "tag,method,budget,relus,capacity,relu_share,acc_all_relu,acc_linearized,acc_finetuned,delphi_estimate_s,linearize_s,finetune_s,pi_online_bytes,pi_offline_bytes,pi_online_s_measured,pi_online_s_wan_predicted,pi_agree_float\n",
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
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.6},{:.4},{:.4},{:.4},{:.4},{:.1},{:.1},{pi}",
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
            p.ft.seconds
        );
    }
    privlin::io::atomic_write_bytes(&out.join("sweep.csv"), csv.as_bytes())?;
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
    let mut by_budget: BTreeMap<&str, Vec<&Point>> = BTreeMap::new();
    for p in &pts {
        by_budget.entry(&p.label).or_default().push(p);
    }
    for (label, ps) in by_budget {
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
    println!(
        "{:<22} {:>8} {:>9} {:>8} {:>10} {:>10}",
        "tag", "budget", "ReLUs", "AR %", "linear. %", "finetun. %"
    );
    for p in &pts {
        println!(
            "{:<22} {:>8} {:>9} {:>8.2} {:>10.2} {:>10.2}",
            p.tag,
            p.label,
            p.ft.relus,
            100.0 * p.ft.test_acc_ar,
            100.0 * p.lin.test_acc,
            100.0 * p.ft.test_acc
        );
    }
    for w in written {
        println!("wrote {}", w.display());
    }
    Ok(())
}
