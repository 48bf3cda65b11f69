//! Executors: what runs a plan's nodes. All of them run each node through
//! [`runner::run_node`](super::runner::run_node), in this process or in a `privlin stage run
//! PLAN.json ID` process, so they decide nothing about skipping or resuming and produce the same
//! files.

use super::plan::Plan;
use super::runner::{check_all_complete, run_node};
use super::stage::Ctx;
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

pub trait Executor {
    /// Run every node of `plan` (saved at `plan.plan_path()`), dependencies first.
    fn execute(&self, plan: &Plan, ctx: &Ctx) -> Result<()>;
}

/// In this process, one node after another, in plan order.
pub struct Sequential;

impl Executor for Sequential {
    fn execute(&self, plan: &Plan, ctx: &Ctx) -> Result<()> {
        for n in &plan.nodes {
            run_node(plan, &n.id, ctx)?;
        }
        Ok(())
    }
}

/// The command line that runs one node: `PROGRAM stage run PLAN ID [--threads T]`, plus the
/// utility-worker flags the node's process needs.
#[derive(Debug, Clone)]
pub struct StageCommand {
    /// The `privlin` binary.
    pub program: PathBuf,
    /// libtorch threads per node process (0: the config's).
    pub threads: usize,
    /// Extra arguments for every `stage run` (the utility-worker choice).
    pub extra: Vec<String>,
}

impl StageCommand {
    pub fn args(&self, plan: &Plan, id: &str) -> Vec<String> {
        let mut a = vec![
            "stage".to_string(),
            "run".to_string(),
            plan.plan_path().display().to_string(),
            id.to_string(),
        ];
        if self.threads > 0 {
            a.extend(["--threads".to_string(), self.threads.to_string()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// Local child processes: up to `jobs` independent nodes at once.
pub struct Processes {
    pub jobs: usize,
    pub command: StageCommand,
}

impl Executor for Processes {
    fn execute(&self, plan: &Plan, _ctx: &Ctx) -> Result<()> {
        let mut done: HashSet<String> = HashSet::new();
        let mut running: Vec<(String, Child)> = Vec::new();
        let mut failed: Option<String> = None;
        loop {
            // Reap finished children.
            let mut i = 0;
            while i < running.len() {
                if let Some(status) = running[i].1.try_wait()? {
                    let (id, _) = running.swap_remove(i);
                    if status.success() {
                        done.insert(id);
                    } else if failed.is_none() {
                        failed = Some(format!("stage `{id}` failed ({status})"));
                    }
                } else {
                    i += 1;
                }
            }
            if failed.is_none() {
                // Start the ready nodes.
                for n in &plan.nodes {
                    if running.len() >= self.jobs.max(1) {
                        break;
                    }
                    let busy = running.iter().any(|(id, _)| id == &n.id);
                    if done.contains(&n.id) || busy || !n.deps.iter().all(|d| done.contains(d)) {
                        continue;
                    }
                    let child = Command::new(&self.command.program)
                        .args(self.command.args(plan, &n.id))
                        .spawn()
                        .with_context(|| {
                            format!("starting {} for `{}`", self.command.program.display(), n.id)
                        })?;
                    running.push((n.id.clone(), child));
                }
            }
            if running.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(f) = failed {
            bail!("{f}; the finished stages are kept, run the same command again to resume");
        }
        check_all_complete(plan, "")
    }
}

/// A Ray cluster: `scripts/ray_plan.py` submits each node as a Ray task that runs the node's
/// command on a worker (the run directory must be on a filesystem every worker shares).
pub struct Ray {
    /// The Python of the environment with Ray (the project's `.venv`).
    pub python: PathBuf,
    /// `scripts/ray_plan.py`.
    pub driver: PathBuf,
    /// `auto`, `HOST:PORT`, or none: start a local Ray instance.
    pub address: Option<String>,
    /// CPUs of the local instance (none: all).
    pub cpus: Option<usize>,
    /// Retries of a failed task.
    pub retries: usize,
    pub command: StageCommand,
}

impl Executor for Ray {
    fn execute(&self, plan: &Plan, _ctx: &Ctx) -> Result<()> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.driver)
            .arg("--plan")
            .arg(plan.plan_path())
            .arg("--privlin")
            .arg(&self.command.program)
            .arg("--retries")
            .arg(self.retries.to_string());
        if self.command.threads > 0 {
            cmd.arg("--threads").arg(self.command.threads.to_string());
        }
        if let Some(a) = &self.address {
            cmd.arg("--address").arg(a);
        }
        if let Some(c) = self.cpus {
            cmd.arg("--num-cpus").arg(c.to_string());
        }
        for e in &self.command.extra {
            cmd.arg(format!("--stage-arg={e}"));
        }
        let status = cmd.status().with_context(|| {
            format!(
                "starting the Ray driver `{} {}` (install Ray with `bash scripts/setup.sh --ray`)",
                self.python.display(),
                self.driver.display()
            )
        })?;
        if !status.success() {
            bail!("the Ray driver failed ({status}); the finished stages are kept, run the same command again to resume");
        }
        check_all_complete(plan, " under Ray")
    }
}
