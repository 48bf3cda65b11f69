//! A run or a sweep as a plan: a DAG of stage instances in which shared work is one node (one
//! all-ReLU model, one importance result per method), then a chain per point.

use super::config::{preset, PipelineConfig};
use super::stages::allocate::Allocate;
use super::stages::collect::Collect;
use super::stages::finetune::Finetune;
use super::stages::importance::ImportanceStage;
use super::stages::linearize::{Linearize, Source};
use super::stages::pi::Pi;
use super::stages::report::Report;
use super::stages::reshape::Reshape;
use super::stages::train::Train;
use super::stages::StageSpec;
use crate::linearize::config::{LinearizeConfig, TaylorConfig};
use crate::linearize::{FinetuneConfig, Method as LearnerMethod};
use crate::train::RunConfig;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the runner keeps its stamps and the plan file, inside the run directory.
pub const STAGES_DIR: &str = "stages";
pub const PLAN_FILE: &str = "plan.json";

/// One stage instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique in the plan: `train`, `importance/senet`, `senet/4pct/linearize`, ...
    pub id: String,
    /// Nodes whose artifacts this one reads.
    pub deps: Vec<String>,
    pub spec: StageSpec,
}

/// A plan: nodes in an order where every dependency comes first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The run directory (stamps in `OUT/stages/`).
    pub out: PathBuf,
    /// Device and thread count of the config (an executor may override the threads).
    pub device: String,
    pub threads: usize,
    pub nodes: Vec<Node>,
}

/// Where the artifacts of one pipeline point live.
#[derive(Debug, Clone)]
pub struct Layout {
    pub ar: PathBuf,
    pub importance: PathBuf,
    pub budget: PathBuf,
    pub pr: PathBuf,
    pub final_: PathBuf,
    /// The private-inference export and `pi.json`.
    pub pi: PathBuf,
    pub report: PathBuf,
}

impl Layout {
    /// `privlin run`: everything directly in `out`.
    pub fn single(out: &Path) -> Self {
        Layout {
            ar: out.join("ar"),
            importance: out.join("importance.json"),
            budget: out.join("budget.json"),
            pr: out.join("pr"),
            final_: out.join("final"),
            pi: out.join("pi"),
            report: out.join("report.md"),
        }
    }

    /// A sweep point: the shared all-ReLU model and importance results, the rest per point.
    /// `model`: the base network's directory when a sweep covers several (`OUT/models/NAME`).
    pub fn sweep_point(
        out: &Path,
        model: Option<&str>,
        tag: &str,
        label: &str,
        importance_method: &str,
    ) -> Self {
        let point = out.join("sweep").join(tag).join(label);
        let base = match model {
            Some(m) => out.join("models").join(m),
            None => out.to_path_buf(),
        };
        Layout {
            ar: base.join("ar"),
            importance: base
                .join("importance")
                .join(format!("{importance_method}.json")),
            budget: point.join("budget.json"),
            pr: point.join("pr"),
            final_: point.join("final"),
            pi: point.join("pi"),
            report: point.join("report.md"),
        }
    }
}

/// A base network of a multi-model sweep: `ARCH` or `ARCH@WIDTH` over the config's `[model]`;
/// returns its directory-safe name and the config with it.
fn model_variant(base: &PipelineConfig, m: &str) -> Result<(String, PipelineConfig)> {
    let (arch, width) = match m.split_once('@') {
        Some((a, w)) => (
            a.trim(),
            Some(w.trim().parse::<f64>().with_context(|| {
                format!(
                    "--models `{m}`: width `{w}` is not a number (ARCH@WIDTH, e.g. resnet18@0.25)"
                )
            })?),
        ),
        None => (m.trim(), None),
    };
    let parsed: crate::nn::Arch = arch.parse().with_context(|| format!("--models `{m}`"))?;
    let mut cfg = base.clone();
    cfg.model.arch = parsed.to_string();
    if let Some(w) = width {
        if !(w > 0.0 && w.is_finite()) {
            bail!("--models `{m}`: width {w} must be positive");
        }
        cfg.model.width = w;
    }
    let name = format!("{}-w{}", parsed, cfg.model.width);
    Ok((budget_label(&name), cfg))
}

/// Refuse a tagged sweep line whose preset is not the config's while the config sets an
/// importance method or learner explicitly: those belong to the config's preset, so the line
/// would silently run `preset`'s own methods under a name that promises the variant.
fn explicit_methods_apply(
    cfg: &PipelineConfig,
    config_preset: &str,
    preset: &str,
    tag: &str,
) -> Result<()> {
    let mut set = Vec::new();
    if let Some(m) = cfg.importance.get("method") {
        set.push(format!("[importance] method = {m}"));
    }
    if let Some(m) = &cfg.linearize.method {
        set.push(format!("[linearize] method = \"{m}\""));
    }
    if !set.is_empty() {
        bail!(
            "--tag `{tag}`: preset `{preset}` is not the config's preset `{config_preset}`, so the config's {} \
             would not apply to this line; add `--set preset=\"{preset}\"` to sweep that variant \
             of `{preset}`, or drop the method",
            set.join(" and ")
        );
    }
    Ok(())
}

/// The order in which an `snl` line runs its budgets, and for each the position (in that order)
/// of the point whose stopping state it continues from: largest first, shares and counts each on
/// their own path (a share and a count are compared only once the model is built). Returns
/// `(index into budgets, predecessor)`.
pub fn snl_path_order(budgets: &[String]) -> Result<Vec<(usize, Option<usize>)>> {
    let parsed: Vec<crate::budget::Budget> = budgets
        .iter()
        .map(|b| b.parse().with_context(|| format!("sweep budget `{b}`")))
        .collect::<Result<_>>()?;
    let key = |b: &crate::budget::Budget| match *b {
        crate::budget::Budget::Ratio(r) => (0, r),
        crate::budget::Budget::Count(n) => (1, n as f64),
    };
    let mut idx: Vec<usize> = (0..budgets.len()).collect();
    // Shares before counts, each largest first; stable, so repeats keep the user's order.
    idx.sort_by(|&a, &b| {
        let (ka, kb) = (key(&parsed[a]), key(&parsed[b]));
        ka.0.cmp(&kb.0).then(kb.1.total_cmp(&ka.1))
    });
    let mut out = Vec::with_capacity(idx.len());
    for (pos, &i) in idx.iter().enumerate() {
        let k = key(&parsed[i]);
        // The nearest earlier point of the same kind with a strictly larger budget (a repeat
        // thereby continues from the same point as its first occurrence).
        let prev = (0..pos).rev().find(|&q| {
            let kq = key(&parsed[idx[q]]);
            kq.0 == k.0 && kq.1 > k.1
        });
        out.push((i, prev));
    }
    Ok(out)
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

impl Plan {
    fn empty(cfg: &PipelineConfig) -> Self {
        Plan {
            out: cfg.out.clone(),
            device: cfg.device.clone(),
            threads: cfg.threads,
            nodes: Vec::new(),
        }
    }

    /// Add a node, or reuse an identical one (shared work); the same id for different work is
    /// an error.
    fn add(&mut self, id: String, deps: Vec<String>, spec: StageSpec) -> Result<String> {
        if let Some(n) = self.nodes.iter().find(|n| n.id == id) {
            if n.spec != spec {
                bail!(
                    "plan: two different stages would be `{id}` (give the variants different tags)"
                );
            }
            return Ok(id);
        }
        for d in &deps {
            if !self.nodes.iter().any(|n| &n.id == d) {
                bail!("plan: `{id}` depends on `{d}`, which is not in the plan before it");
            }
        }
        // The edges are what the stages declare (issue 40): a node depends on every earlier node
        // that writes an artifact it reads (or a folder holding it). The plan builder's own list
        // must be among them, so a stage whose reads() forgot an input is caught here.
        let derived = self.writers_of(&spec.stage().reads());
        if let Some(d) = deps.iter().find(|d| !derived.contains(d)) {
            bail!(
                "plan: `{id}` depends on `{d}`, but its stage does not declare reading anything \
                 `{d}` writes (Stage::reads)"
            );
        }
        self.nodes.push(Node {
            id: id.clone(),
            deps: derived,
            spec,
        });
        Ok(id)
    }

    /// The nodes so far that write one of `reads`: the artifact itself, a folder above it, or
    /// (for a stage that reads a whole folder, like a sweep's collection) something inside it;
    /// in plan order.
    fn writers_of(&self, reads: &[PathBuf]) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| {
                let writes = n.spec.stage().writes();
                reads
                    .iter()
                    .any(|r| writes.iter().any(|w| r.starts_with(w) || w.starts_with(r)))
            })
            .map(|n| n.id.clone())
            .collect()
    }

    /// The chain of one point; `prefix` names its nodes (empty for a single run). `path`: for
    /// `snl`, the linearize node (id, checkpoint) of the line's next larger budget, whose stopping
    /// state this point continues from.
    #[allow(clippy::too_many_arguments)]
    fn add_point(
        &mut self,
        cfg: &PipelineConfig,
        layout: &Layout,
        prefix: &str,
        train_id: &str,
        importance_id: &str,
        title: &str,
        path: Option<&(String, PathBuf)>,
    ) -> Result<String> {
        let (imp_method, learner) = cfg.methods()?;
        let id = |s: &str| format!("{prefix}{s}");
        let train = self.add(
            train_id.to_string(),
            vec![],
            StageSpec::Train(Train {
                run: RunConfig {
                    out: layout.ar.clone(),
                    device: cfg.device.clone(),
                    threads: cfg.threads,
                    model: cfg.model.clone(),
                    data: cfg.data.clone(),
                    train: cfg.train.clone(),
                    teacher: None,
                },
            }),
        )?;
        let per_site = imp_method.filter(|_| !learner.is_global());
        let (source, lin_deps, imp_alloc) = match per_site.clone() {
            Some(m) => {
                let imp = self.add(
                    importance_id.to_string(),
                    vec![train.clone()],
                    StageSpec::Importance(ImportanceStage {
                        ckpt: layout.ar.clone(),
                        config: cfg.importance_config(&m)?,
                        out: layout.importance.clone(),
                    }),
                )?;
                let alloc = self.add(
                    id("allocate"),
                    vec![imp],
                    StageSpec::Allocate(Allocate {
                        importance: layout.importance.clone(),
                        budget: cfg.budget.clone(),
                        out: layout.budget.clone(),
                    }),
                )?;
                (
                    Source::Allocation(layout.budget.clone()),
                    vec![train.clone(), alloc],
                    Some((layout.importance.clone(), layout.budget.clone())),
                )
            }
            None => (Source::Total(cfg.budget.clone()), vec![train.clone()], None),
        };
        let mut lin_cfg = cfg.linearize.clone();
        lin_cfg.method = Some(learner.name().into());
        // The relupruner preset trains by its paper's optimizer unless [linearize.train] says
        // otherwise (TaylorConfig::paper_optimizer).
        if learner == LearnerMethod::Taylor
            && cfg.linearize.train == LinearizeConfig::default().train
        {
            lin_cfg.train.optimizer = TaylorConfig::paper_optimizer();
        }
        let mut lin_deps = lin_deps;
        lin_deps.extend(path.map(|(id, _)| id.clone()));
        let lin = self.add(
            id("linearize"),
            lin_deps,
            StageSpec::Linearize(Linearize {
                ar: layout.ar.clone(),
                source,
                config: lin_cfg,
                out: layout.pr.clone(),
                continue_from: path.map(|(_, pr)| pr.clone()),
            }),
        )?;
        // The snl preset fine-tunes by its authors' recipe unless [finetune] says otherwise.
        let ft_cfg = if learner == LearnerMethod::Snl && cfg.finetune == FinetuneConfig::default() {
            FinetuneConfig::snl()
        } else {
            cfg.finetune.clone()
        };
        let ft = if super::config::reshapes(&cfg.preset) {
            self.add(
                id("reshape"),
                vec![lin.clone(), train.clone()],
                StageSpec::Reshape(Reshape {
                    pr: layout.pr.clone(),
                    ar: layout.ar.clone(),
                    finetune: ft_cfg,
                    config: cfg.reshape.clone(),
                    out: layout.final_.clone(),
                }),
            )?
        } else {
            self.add(
                id("finetune"),
                vec![lin.clone(), train.clone()],
                StageSpec::Finetune(Finetune {
                    pr: layout.pr.clone(),
                    ar: layout.ar.clone(),
                    config: ft_cfg,
                    out: layout.final_.clone(),
                }),
            )?
        };
        let pi = self.add(
            id("pi"),
            vec![ft.clone()],
            StageSpec::Pi(Pi {
                ckpt: layout.final_.clone(),
                config: cfg.pi.clone(),
                out: layout.pi.clone(),
            }),
        )?;
        let mut deps = vec![train, lin, ft, pi];
        if per_site.is_some() {
            deps.insert(1, importance_id.to_string());
            deps.insert(2, id("allocate"));
        }
        self.add(
            id("report"),
            deps,
            StageSpec::Report(Report {
                title: title.to_string(),
                ar: layout.ar.clone(),
                importance: imp_alloc.as_ref().map(|x| x.0.clone()),
                allocation: imp_alloc.map(|x| x.1),
                pr: layout.pr.clone(),
                final_: layout.final_.clone(),
                pi: layout.pi.clone(),
                out: layout.report.clone(),
            }),
        )
    }

    /// `privlin run`: one point, artifacts directly in `cfg.out`.
    pub fn run(cfg: &PipelineConfig) -> Result<Self> {
        let mut plan = Plan::empty(cfg);
        let title = format!(
            "privlin run: preset `{}`, budget {}",
            cfg.preset, cfg.budget
        );
        plan.add_point(
            cfg,
            &Layout::single(&cfg.out),
            "",
            "train",
            "importance",
            &title,
            None,
        )?;
        Ok(plan)
    }

    /// `privlin sweep`: every (preset, budget) point sharing the all-ReLU model and each
    /// importance result, then the collection of all finished points. `tag` names a variant's
    /// line (one preset only). `models` (`ARCH` or `ARCH@WIDTH`, e.g. `hrn-5x7x2x@0.0625`)
    /// repeats the sweep on each base network, each with its own all-ReLU training and
    /// importance results; a line is then `MODEL_PRESET`.
    pub fn sweep(
        base: &PipelineConfig,
        budgets: &[String],
        presets: &[String],
        tag: Option<&str>,
        models: &[String],
    ) -> Result<Self> {
        let presets = if presets.is_empty() {
            vec![base.preset.clone()]
        } else {
            presets.to_vec()
        };
        if tag.is_some() && presets.len() > 1 {
            bail!("--tag names one variant: give one preset with it");
        }
        if budgets.is_empty() {
            bail!("a sweep needs at least one budget");
        }
        // Every budget parsed before any stage runs (a typo is refused up front, not after the
        // all-ReLU training and the importance stage).
        for b in budgets {
            b.parse::<crate::budget::Budget>()
                .with_context(|| format!("--budgets: `{b}`"))?;
        }
        let mut plan = Plan::empty(base);
        let variants: Vec<Option<(String, PipelineConfig)>> = if models.is_empty() {
            vec![None]
        } else {
            models
                .iter()
                .map(|m| model_variant(base, m).map(Some))
                .collect::<Result<_>>()?
        };
        let total = variants.len() * presets.len() * budgets.len();
        let mut k = 0;
        for variant in &variants {
            let (model_dir, vbase) = match variant {
                Some((name, cfg)) => (Some(name.as_str()), cfg),
                None => (None, base),
            };
            // Node ids of a network's shared work: `train/NAME`, `importance/NAME/METHOD`.
            let scoped = |kind: &str| match model_dir {
                Some(m) => format!("{kind}/{m}"),
                None => kind.to_string(),
            };
            let train_id = scoped("train");
            for p in &presets {
                preset(p)?;
                // A tagged line is a variant made with `--set`: dropping a method it set (below)
                // would run the preset unchanged under the variant's name.
                if let Some(t) = tag.filter(|_| p != &base.preset) {
                    explicit_methods_apply(vbase, &base.preset, p, t)?;
                }
                let tag = tag.map(str::to_string).unwrap_or_else(|| p.clone());
                let tag = match model_dir {
                    Some(m) => format!("{m}_{tag}"),
                    None => tag,
                };
                let mut points = Vec::new();
                for b in budgets {
                    let mut cfg = vbase.clone();
                    cfg.preset = p.clone();
                    cfg.budget = b.clone();
                    if p != &base.preset {
                        // Another preset's learner, not the base config's explicit one.
                        cfg.linearize.method = None;
                        cfg.importance.remove("method");
                    }
                    let (imp_method, learner) = cfg
                        .methods()
                        .with_context(|| format!("sweep point `{tag}` at {b}"))?;
                    // The section as this point's learner runs it (SNL's one optimizer).
                    cfg.linearize
                        .validate_for(learner)
                        .with_context(|| format!("sweep point `{tag}` at {b}: [linearize]"))?;
                    points.push((b, cfg, imp_method, learner));
                }
                // SNL's path is the same for every budget until it stops: its points run from
                // the largest budget down, each continuing where the one before stopped.
                let paths = if points.iter().all(|p| p.3 == LearnerMethod::Snl) {
                    let order = snl_path_order(budgets)?;
                    points = order.iter().map(|(i, _)| points[*i].clone()).collect();
                    order.into_iter().map(|(_, prev)| prev).collect()
                } else {
                    vec![None; points.len()]
                };
                let mut made: Vec<(String, PathBuf)> = Vec::new();
                for ((b, cfg, imp_method, _), prev) in points.iter().zip(paths) {
                    k += 1;
                    let imp_method = imp_method.clone().unwrap_or_else(|| "none".into());
                    let label = budget_label(b);
                    let layout =
                        Layout::sweep_point(&base.out, model_dir, &tag, &label, &imp_method);
                    let title = format!("sweep point {k}/{total}: `{tag}` at budget {b}");
                    let imp_id = format!("{}/{imp_method}", scoped("importance"));
                    let prefix = format!("{tag}/{label}/");
                    plan.add_point(
                        cfg,
                        &layout,
                        &prefix,
                        &train_id,
                        &imp_id,
                        &title,
                        prev.map(|j| &made[j]),
                    )
                    .with_context(|| format!("sweep point `{tag}` at {b}"))?;
                    made.push((format!("{prefix}linearize"), layout.pr.clone()));
                }
            }
        }
        let reports: Vec<String> = plan
            .nodes
            .iter()
            .filter(|n| matches!(n.spec, StageSpec::Report(_)))
            .map(|n| n.id.clone())
            .collect();
        plan.add(
            "collect".into(),
            reports,
            StageSpec::Collect(Collect {
                out: base.out.clone(),
            }),
        )?;
        Ok(plan)
    }

    pub fn node(&self, id: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .with_context(|| format!("plan of {}: no stage `{id}`", self.out.display()))
    }

    pub fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The fingerprints of every node: a digest of its own config and its dependencies'
    /// fingerprints, so a change upstream reaches every stage after it.
    pub fn fingerprints(&self) -> HashMap<String, String> {
        let mut fp: HashMap<String, String> = HashMap::new();
        for n in &self.nodes {
            let mut h = Sha256::new();
            h.update(n.spec.stage().fingerprint().to_string().as_bytes());
            for d in &n.deps {
                h.update(b"\0");
                h.update(fp[d].as_bytes());
            }
            let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            fp.insert(n.id.clone(), digest);
        }
        fp
    }

    pub fn stamp_path(&self, id: &str) -> PathBuf {
        self.out.join(STAGES_DIR).join(format!("{id}.json"))
    }

    pub fn plan_path(&self) -> PathBuf {
        self.out.join(STAGES_DIR).join(PLAN_FILE)
    }

    /// Write the plan to `OUT/stages/plan.json` (what `privlin stage run` and workers read).
    pub fn save(&self) -> Result<PathBuf> {
        let p = self.plan_path();
        std::fs::create_dir_all(p.parent().expect("stages dir"))
            .with_context(|| format!("creating {}", self.out.display()))?;
        crate::io::atomic_write_json(&p, self)?;
        Ok(p)
    }

    pub fn load(path: &Path) -> Result<Self> {
        crate::io::read_json(path).with_context(|| format!("plan {}", path.display()))
    }

    /// The report nodes' stages (to print a run's results at the end).
    pub fn reports(&self) -> Vec<&Report> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.spec {
                StageSpec::Report(r) => Some(r),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stage::Stage;

    fn order(b: &[&str]) -> Vec<(usize, Option<usize>)> {
        let b: Vec<String> = b.iter().map(|s| s.to_string()).collect();
        snl_path_order(&b).unwrap()
    }

    #[test]
    fn snl_points_run_largest_first_each_continuing_the_next_larger() {
        // 1%, 10%, 3%: 10% from scratch, 3% from 10%, 1% from 3%.
        assert_eq!(
            order(&["1%", "10%", "3%"]),
            vec![(1, None), (2, Some(0)), (0, Some(1))]
        );
        // Counts and shares are separate paths; a repeat continues where its first did.
        assert_eq!(
            order(&["5000", "10%", "20000", "10%"]),
            vec![(1, None), (3, None), (2, None), (0, Some(2))]
        );
        assert!(snl_path_order(&["3 pct".into()]).is_err());
    }

    /// A sweep's budgets and its SNL points' optimizer are checked when the plan is made, before
    /// any stage runs (issue 40: `--budgets 3%,lots` used to fail after training and importance).
    #[test]
    fn a_sweep_refuses_a_bad_budget_and_snl_optimizer_up_front() {
        let base = PipelineConfig::parse("preset = \"uniform\"", "test", &[]).unwrap();
        let budgets = |b: &[&str]| b.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let err = Plan::sweep(&base, &budgets(&["3%", "lots"]), &[], None, &[]).unwrap_err();
        assert!(format!("{err:#}").contains("`lots`"), "{err:#}");
        let sgd = PipelineConfig::parse(
            "preset = \"uniform\"",
            "test",
            &["linearize.train.optimizer.kind=\"sgd\"".to_string()],
        )
        .unwrap();
        let err = Plan::sweep(&sgd, &budgets(&["3%"]), &["snl".into()], None, &[]).unwrap_err();
        assert!(format!("{err:#}").contains("one Adam"), "{err:#}");
        Plan::sweep(&sgd, &budgets(&["3%"]), &["uniform".into()], None, &[]).unwrap();
    }

    #[test]
    fn a_tagged_line_keeps_its_explicit_method_or_is_refused() {
        let budgets = vec!["3%".to_string()];
        let sets = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let imp = |plan: &Plan| {
            plan.nodes
                .iter()
                .filter_map(|n| n.id.strip_prefix("importance/"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        // The config's preset is relupruner; a `senet` line tagged as a variant with its own
        // importance method would run senet's one-shot sensitivity under the variant's name.
        let base = PipelineConfig::parse(
            "preset = \"relupruner\"",
            "test",
            &sets(&["importance.method=\"senet-sparse\""]),
        )
        .unwrap();
        let err = Plan::sweep(&base, &budgets, &["senet".into()], Some("sparse"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--tag `sparse`")
                && err.contains("senet-sparse")
                && err.contains("--set preset=\"senet\""),
            "{err}"
        );
        // Without a tag the other preset uses its own methods (the config's belong to its own).
        let plan = Plan::sweep(&base, &budgets, &["senet".into()], None, &[]).unwrap();
        assert_eq!(imp(&plan), vec!["senet"]);
        // With the preset set, the variant runs with the method it names.
        let base = PipelineConfig::parse(
            "preset = \"relupruner\"",
            "test",
            &sets(&["preset=\"senet\"", "importance.method=\"senet-sparse\""]),
        )
        .unwrap();
        let plan = Plan::sweep(&base, &budgets, &["senet".into()], Some("sparse"), &[]).unwrap();
        assert_eq!(imp(&plan), vec!["senet-sparse"]);
    }

    #[test]
    fn an_snl_sweep_chains_its_linearize_stages_and_other_learners_do_not() {
        let base = PipelineConfig::parse("", "the defaults", &[]).unwrap();
        let budgets: Vec<String> = ["1%", "10%"].iter().map(|s| s.to_string()).collect();
        let plan = Plan::sweep(&base, &budgets, &["snl".into()], None, &[]).unwrap();
        let lin = |id: &str| match &plan.node(id).unwrap().spec {
            StageSpec::Linearize(l) => l.clone(),
            _ => panic!("{id} is not a linearize stage"),
        };
        let (ten, one) = (lin("snl/10pct/linearize"), lin("snl/1pct/linearize"));
        assert_eq!(ten.continue_from, None);
        assert_eq!(one.continue_from, Some(ten.out.clone()));
        let deps = &plan.node("snl/1pct/linearize").unwrap().deps;
        assert!(
            deps.contains(&"snl/10pct/linearize".to_string()),
            "{deps:?}"
        );
        assert!(
            plan.index("snl/10pct/linearize") < plan.index("snl/1pct/linearize"),
            "the larger budget comes first in the plan"
        );
        // Without a continuation the fingerprint has no such field (plans made before it
        // keep their fingerprints).
        assert!(ten.fingerprint().get("continue_from").is_none());
        let plan = Plan::sweep(&base, &budgets, &["l1-budget-ramp".into()], None, &[]).unwrap();
        for n in &plan.nodes {
            if let StageSpec::Linearize(l) = &n.spec {
                assert_eq!(l.continue_from, None, "{}", n.id);
            }
        }
    }
}
