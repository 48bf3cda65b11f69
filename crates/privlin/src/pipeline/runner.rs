//! The one place that decides, for every stage alike, whether to run, resume, skip or refuse.
//!
//! Each stage instance has a stamp `OUT/stages/<id>.json`, written atomically: `started` (with
//! the fingerprint) before the stage runs, `complete` after it returns. A stage is
//! - skipped when its stamp is complete, has the current fingerprint and its artifacts exist;
//! - resumed when its stamp is `started` with the current fingerprint (a killed run: training
//!   stages continue from their own `resume.safetensors`);
//! - refused when its artifacts exist but were made under another fingerprint (another config
//!   here or upstream): the message names what differs and what to delete; cheap derived stages
//!   (allocation, private-inference measurement, reports: [`Stage::on_change`]) are made again
//!   instead, saying so;
//! - run otherwise.
//!
//! Since stamps and artifacts are written atomically, an executor may run a node twice (a Ray
//! retry) or in another process and never sees half a file.

use super::plan::Plan;
use super::stage::{Ctx, OnChange, Stage};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Started,
    Complete,
}

/// `OUT/stages/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stamp {
    pub id: String,
    pub kind: String,
    pub status: Status,
    pub fingerprint: String,
    /// The stage's own config, to say what differs when a fingerprint does not match.
    pub config: serde_json::Value,
    pub seconds: Option<f64>,
    pub summary: Option<String>,
    /// Host and process that wrote the stamp (which worker ran the stage).
    pub host: String,
    pub pid: u32,
}

/// What the runner did with a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Skipped,
    Ran { seconds: f64, summary: String },
}

/// Environment variable naming a stage that fails once, on its first attempt (to test retries
/// and resumption): the runner leaves a marker beside the stamp and fails before running it.
pub const FAIL_ONCE_ENV: &str = "PRIVLIN_FAIL_ONCE";

/// One line to stderr in one write, so that the lines of stages running in parallel processes
/// do not interleave.
fn say(line: String) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Paths (`a.b.c`) where two configs differ, the first four.
fn differences(a: &serde_json::Value, b: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value::Object;
    if out.len() >= 4 {
        return;
    }
    match (a, b) {
        (Object(x), Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => differences(u, v, &p, out),
                    (u, v) => out.push(format!(
                        "{p}: {} -> {}",
                        u.map_or("absent".into(), |u| u.to_string()),
                        v.map_or("absent".into(), |v| v.to_string())
                    )),
                }
            }
        }
        _ if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

fn read_stamp(path: &std::path::Path) -> Result<Option<Stamp>> {
    if !path.exists() {
        return Ok(None);
    }
    crate::io::read_json(path)
        .map(Some)
        .with_context(|| format!("stage stamp {}", path.display()))
}

/// The nodes that are complete under the current plan (their stamp says so, with the current
/// fingerprint, and their artifacts exist); fingerprints are computed once for all of them.
pub fn complete_nodes(plan: &Plan) -> Result<std::collections::HashSet<String>> {
    let fps = plan.fingerprints();
    let mut done = std::collections::HashSet::new();
    for n in &plan.nodes {
        if complete_with(plan, &n.id, &fps)? {
            done.insert(n.id.clone());
        }
    }
    Ok(done)
}

/// Fail naming the first node (other than those that run every time) that is not complete.
pub fn check_all_complete(plan: &Plan, how: &str) -> Result<()> {
    let done = complete_nodes(plan)?;
    for n in &plan.nodes {
        if !n.spec.stage().always() && !done.contains(&n.id) {
            bail!("stage `{}` did not complete{how}", n.id);
        }
    }
    Ok(())
}

fn complete_with(
    plan: &Plan,
    id: &str,
    fps: &std::collections::HashMap<String, String>,
) -> Result<bool> {
    let node = plan.node(id)?;
    let Some(s) = read_stamp(&plan.stamp_path(id))? else {
        return Ok(false);
    };
    Ok(s.status == Status::Complete
        && s.fingerprint == fps[id]
        && node.spec.stage().writes().iter().all(|p| p.exists()))
}

/// Run node `id` of `plan` in this process (or skip, resume or refuse it), printing one line
/// per decision to stderr.
pub fn run_node(plan: &Plan, id: &str, ctx: &Ctx) -> Result<Outcome> {
    let node = plan.node(id)?;
    let stage: &dyn Stage = node.spec.stage();
    let fps = plan.fingerprints();
    let fp = &fps[id];
    let label = format!(
        "[{}/{}] {id}",
        plan.index(id).map_or(0, |i| i + 1),
        plan.nodes.len()
    );
    let stamp_path = plan.stamp_path(id);
    let old = read_stamp(&stamp_path)?;
    let writes = stage.writes();
    let mut resuming = false;
    if let Some(s) = &old {
        if &s.fingerprint != fp && writes.iter().any(|p| p.exists()) {
            let mut diff = Vec::new();
            differences(&s.config, &stage.fingerprint(), "", &mut diff);
            let what = if diff.is_empty() {
                "upstream: a stage it depends on was made with another config".to_string()
            } else {
                diff.join("; ")
            };
            let paths: Vec<String> = writes
                .iter()
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect();
            if stage.on_change() == OnChange::Redo {
                say(format!(
                    "{label}: {} was made with another config ({what}), making it again",
                    paths.join(", ")
                ));
            } else {
                bail!(
                "stage `{id}`: {} was made with a different config than the current one ({what}): delete it to redo the stage, or restore the config",
                paths.join(", ")
            );
            }
        }
        if &s.fingerprint == fp {
            if s.status == Status::Complete && writes.iter().all(|p| p.exists()) && !stage.always()
            {
                say(format!(
                    "{label}: {} is complete, skipped",
                    writes
                        .first()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ));
                return Ok(Outcome::Skipped);
            }
            resuming = s.status == Status::Started;
        }
    }
    for d in &node.deps {
        let dep = plan.node(d)?;
        if !dep.spec.stage().always() && !complete_with(plan, d, &fps)? {
            bail!("stage `{id}` needs `{d}`, which is not complete: run it first");
        }
    }
    if std::env::var(FAIL_ONCE_ENV).as_deref() == Ok(id) {
        let marker = stamp_path.with_extension("failed-once");
        if !marker.exists() {
            if let Some(dir) = marker.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::io::atomic_write_bytes(&marker, b"injected failure\n")?;
            bail!("stage `{id}`: injected failure ({FAIL_ONCE_ENV})");
        }
    }
    let mut stamp = Stamp {
        id: id.to_string(),
        kind: stage.kind().name().to_string(),
        status: Status::Started,
        fingerprint: fp.clone(),
        config: stage.fingerprint(),
        seconds: None,
        summary: None,
        host: host(),
        pid: std::process::id(),
    };
    if let Some(dir) = stamp_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::io::atomic_write_json(&stamp_path, &stamp)?;
    say(format!(
        "{label}: {}{} -> {}",
        stage.kind().name(),
        if resuming { " (resuming)" } else { "" },
        writes
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    ));
    let t0 = Instant::now();
    // Resume is decided here, once: the stage continues its own partial state only then.
    let ctx = Ctx {
        resume: resuming,
        ..ctx.clone()
    };
    let summary = stage.run(&ctx).with_context(|| format!("stage `{id}`"))?;
    let seconds = t0.elapsed().as_secs_f64();
    stamp.status = Status::Complete;
    stamp.seconds = Some(seconds);
    stamp.summary = Some(summary.clone());
    crate::io::atomic_write_json(&stamp_path, &stamp)?;
    say(format!("{label}: {summary} ({seconds:.1} s)"));
    Ok(Outcome::Ran { seconds, summary })
}
