//! Utility workers: a game's batch of coalitions fanned out over processes that each load the
//! model and the utility set once, and merged back into the one utility cache of [`Game`].
//!
//! The estimators already ask for coalitions in batches (exact: all of them; tree-trimming: one
//! level of the tree; Monte-Carlo, antithetic, stratified, bandit: one round), so sharding a
//! batch changes where utilities are computed, never which ones: exact and tree-trimming values
//! equal a single-process run's, the sampling estimators' equal it for the same seed.
//!
//! The protocol is one JSON object per line on the worker's stdin / stdout, so that a worker can
//! be a local `privlin utility-worker` process or a pool that forwards to Ray actors
//! (`scripts/ray_utility_pool.py`), which speaks the same lines:
//! - hello `{"ckpt": PATH, "config": ImportanceConfig, "device": "cpu", "threads": N}`, answered
//!   by `{"players": [names]}`;
//! - request `{"coalitions": [u64, ...]}`, answered by `{"utilities": [f64 bits as u64, ...],
//!   "images": [run, full], "segments": [run, full]}` (utilities travel as their bit patterns so
//!   that they arrive bit for bit);
//! - any failure answers `{"error": "..."}` and the worker exits.
//!
//! [`Game`]: super::game::Game

use super::compute::{model_oracle, utility_loader, ImportanceConfig};
use super::game::{Coalition, Oracle};
use super::players::{players, Grouping};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// How to start utility workers: the command line of one worker, and how many to start here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// Program and arguments of one worker (`privlin utility-worker`, or the Ray pool).
    pub argv: Vec<String>,
    /// The command is a pool that splits each batch over `workers` actors itself (one process);
    /// otherwise `workers` processes are started here and each batch is split over them.
    pub pool: bool,
    /// libtorch threads per worker (0: the machine's cores over the local workers).
    pub threads: usize,
    pub device: String,
}

/// The first line a worker reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub ckpt: PathBuf,
    pub config: ImportanceConfig,
    pub device: String,
    pub threads: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Request {
    coalitions: Vec<Coalition>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Reply {
    #[serde(default)]
    players: Option<Vec<String>>,
    #[serde(default)]
    utilities: Option<Vec<u64>>,
    #[serde(default)]
    images: (u64, u64),
    #[serde(default)]
    segments: (u64, u64),
    #[serde(default)]
    error: Option<String>,
}

/// Work counted by all workers together.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerStats {
    pub images: (u64, u64),
    pub segments: (u64, u64),
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    name: String,
}

impl Worker {
    fn send<T: Serialize>(&mut self, msg: &T) -> Result<()> {
        let mut line = serde_json::to_vec(msg)?;
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .and_then(|_| self.stdin.flush())
            .with_context(|| format!("utility worker {}: sending", self.name))
    }

    fn recv(&mut self) -> Result<Reply> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .with_context(|| format!("utility worker {}: reading", self.name))?;
        if n == 0 {
            let status = self.child.wait().ok();
            bail!(
                "utility worker {} exited without an answer ({})",
                self.name,
                status.map_or("status unknown".into(), |s| s.to_string())
            );
        }
        let r: Reply = serde_json::from_str(&line).with_context(|| {
            format!(
                "utility worker {}: malformed answer `{}`",
                self.name,
                line.trim()
            )
        })?;
        if let Some(e) = r.error {
            bail!("utility worker {}: {e}", self.name);
        }
        Ok(r)
    }
}

/// An [`Oracle`] whose utilities come from worker processes.
pub struct UtilityWorkers {
    workers: Vec<Worker>,
    names: Vec<String>,
    stats: WorkerStats,
}

impl UtilityWorkers {
    /// Start the workers (`cfg.workers` of them) for the game of `cfg` on `ckpt` and check that they see the
    /// same players (`names`).
    pub fn start(
        spec: &WorkerSpec,
        cfg: &ImportanceConfig,
        ckpt: &Path,
        names: Vec<String>,
    ) -> Result<Self> {
        let Some((program, args)) = spec.argv.split_first() else {
            bail!("utility workers: empty command line");
        };
        let processes = if spec.pool { 1 } else { cfg.workers.max(1) };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hello = Hello {
            ckpt: ckpt.to_path_buf(),
            config: cfg.clone(),
            device: spec.device.clone(),
            threads: match (spec.threads, spec.pool) {
                (0, false) => (cores / processes).max(1),
                (0, true) => 1,
                (t, _) => t,
            },
        };
        let mut workers = Vec::new();
        for k in 0..processes {
            let mut child = Command::new(program)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting utility worker `{}`", spec.argv.join(" ")))?;
            let stdin = child.stdin.take().context("worker stdin")?;
            let stdout = BufReader::new(child.stdout.take().context("worker stdout")?);
            workers.push(Worker {
                child,
                stdin,
                stdout,
                name: format!("{k} (`{}`)", spec.argv.join(" ")),
            });
        }
        for w in &mut workers {
            w.send(&hello)?;
        }
        for w in &mut workers {
            let r = w.recv()?;
            if r.players.as_ref() != Some(&names) {
                bail!(
                    "utility worker {} sees players {:?}, this process {:?}",
                    w.name,
                    r.players,
                    names
                );
            }
        }
        Ok(UtilityWorkers {
            workers,
            names,
            stats: WorkerStats::default(),
        })
    }

    /// Close the workers' input, wait for them, and return what they counted.
    pub fn finish(mut self) -> Result<WorkerStats> {
        for w in self.workers.drain(..) {
            let Worker {
                mut child,
                stdin,
                name,
                ..
            } = w;
            drop(stdin);
            let status = child.wait()?;
            if !status.success() {
                bail!("utility worker {name} ended with {status}");
            }
        }
        Ok(self.stats)
    }
}

impl Drop for UtilityWorkers {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

/// Split `coalitions` into `k` contiguous shards in an order that keeps coalitions agreeing on
/// the first players together (bit-reversed order), so each worker's prefix sharing still pays.
/// Returns the shards and, for each shard, the input positions of its coalitions.
pub fn shards(coalitions: &[Coalition], k: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..coalitions.len()).collect();
    order.sort_by_key(|&i| (coalitions[i].reverse_bits(), i));
    let k = k.max(1).min(coalitions.len().max(1));
    let base = coalitions.len() / k;
    let extra = coalitions.len() % k;
    let mut out = Vec::with_capacity(k);
    let mut at = 0;
    for s in 0..k {
        let len = base + usize::from(s < extra);
        out.push(order[at..at + len].to_vec());
        at += len;
    }
    out
}

impl Oracle for UtilityWorkers {
    fn players(&self) -> &[String] {
        &self.names
    }

    fn evaluate(&mut self, coalitions: &[Coalition]) -> Result<Vec<f64>> {
        let parts = shards(coalitions, self.workers.len());
        for (w, idx) in self.workers.iter_mut().zip(&parts) {
            w.send(&Request {
                coalitions: idx.iter().map(|&i| coalitions[i]).collect(),
            })?;
        }
        let mut out = vec![f64::NAN; coalitions.len()];
        for (w, idx) in self.workers.iter_mut().zip(&parts) {
            let r = w.recv()?;
            let u = r.utilities.unwrap_or_default();
            if u.len() != idx.len() {
                bail!(
                    "utility worker {} answered {} utilities for {} coalitions",
                    w.name,
                    u.len(),
                    idx.len()
                );
            }
            for (&i, bits) in idx.iter().zip(u) {
                out[i] = f64::from_bits(bits);
            }
            self.stats.images.0 += r.images.0;
            self.stats.images.1 += r.images.1;
            self.stats.segments.0 += r.segments.0;
            self.stats.segments.1 += r.segments.1;
        }
        Ok(out)
    }
}

/// The worker's side: read the hello from `input`, load the model once, then answer requests
/// until `input` closes.
pub fn serve(input: impl BufRead, mut output: impl Write) -> Result<()> {
    let mut lines = input.lines();
    let reply = |out: &mut dyn Write, r: &Reply| -> Result<()> {
        let mut line = serde_json::to_vec(r)?;
        line.push(b'\n');
        out.write_all(&line)?;
        out.flush()?;
        Ok(())
    };
    let result = (|| -> Result<()> {
        let Some(first) = lines.next() else {
            return Ok(());
        };
        let hello: Hello = serde_json::from_str(&first?).context("utility worker: hello")?;
        if hello.threads > 0 {
            tch::set_num_threads(hello.threads as i32);
        }
        let device = crate::device::parse_device(&hello.device)?;
        let (model, spec) = crate::train::load_model(&hello.ckpt, device)?;
        let grouping: Grouping = hello.config.players.parse()?;
        let ps = players(&model, grouping)?;
        let (loader, _) = utility_loader(&hello.config, &spec, device)?;
        let mut oracle = model_oracle(&hello.config, &model, ps.clone(), &loader)?;
        reply(
            &mut output,
            &Reply {
                players: Some(ps.iter().map(|p| p.name.clone()).collect()),
                ..Reply::default()
            },
        )?;
        for line in lines {
            let req: Request = serde_json::from_str(&line?).context("utility worker: request")?;
            let (i0, s0) = (
                (oracle.images_run, oracle.images_full),
                (oracle.segments_run, oracle.segments_full),
            );
            let u = oracle.evaluate(&req.coalitions)?;
            reply(
                &mut output,
                &Reply {
                    utilities: Some(u.into_iter().map(f64::to_bits).collect()),
                    images: (oracle.images_run - i0.0, oracle.images_full - i0.1),
                    segments: (oracle.segments_run - s0.0, oracle.segments_full - s0.1),
                    ..Reply::default()
                },
            )?;
        }
        Ok(())
    })();
    if let Err(e) = &result {
        let _ = reply(
            &mut output,
            &Reply {
                error: Some(format!("{e:#}")),
                ..Reply::default()
            },
        );
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_coalition_once() {
        let cs: Vec<Coalition> = (0..37).map(|i| (i * 7919) % 64).collect();
        for k in [1, 2, 3, 5, 40] {
            let parts = shards(&cs, k);
            let mut seen: Vec<usize> = parts.concat();
            seen.sort();
            assert_eq!(seen, (0..cs.len()).collect::<Vec<_>>(), "k = {k}");
            let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
        assert_eq!(shards(&[], 3), vec![Vec::<usize>::new()]);
    }
}
