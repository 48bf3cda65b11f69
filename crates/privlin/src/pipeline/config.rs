//! The pipeline's config (`privlin run CONFIG.toml`): one point of model, data, training,
//! importance, budget, learner, fine-tuning and private inference, and the papers' presets.

use crate::budget::Budget;
use crate::data::DataConfig;
use crate::importance::compute::ImportanceConfig;
use crate::linearize::{FinetuneConfig, LinearizeConfig, Method};
use crate::pi::PiConfig;
use crate::train::{ModelConfig, TrainConfig};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A pipeline config (`privlin run CONFIG.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Run directory.
    pub out: PathBuf,
    /// A preset of [`preset`]: privshap, uniform, senet, relupruner, snl, l1-fixed-epochs,
    /// l1-budget-ramp, deepreduce, hybrenet, shallow or custom.
    pub preset: String,
    /// Total ReLUs to keep: a count (12900, 50k) or a share of the counted ReLUs (5%).
    pub budget: String,
    pub device: String,
    pub threads: usize,
    pub model: ModelConfig,
    pub data: DataConfig,
    /// The all-ReLU training.
    pub train: TrainConfig,
    /// Flags of `privlin importance` (`method`, `players`, `threshold`, ...), without `--`.
    pub importance: toml::Table,
    pub linearize: LinearizeConfig,
    pub finetune: FinetuneConfig,
    /// Depth reduction in place of the plain fine-tuning (preset `shallow`); its loss and schedule
    /// are `[finetune]`'s.
    pub reshape: crate::reshape::ReshapeConfig,
    /// The private-inference stage (test images under the two-party protocol).
    pub pi: PiConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            out: PathBuf::from("runs/run"),
            preset: "privshap".into(),
            budget: "5%".into(),
            device: "auto".into(),
            threads: 0,
            model: ModelConfig::default(),
            data: DataConfig::default(),
            train: TrainConfig::default(),
            importance: toml::Table::new(),
            linearize: LinearizeConfig::default(),
            finetune: FinetuneConfig::default(),
            reshape: crate::reshape::ReshapeConfig::default(),
            pi: PiConfig::default(),
        }
    }
}

/// The papers' recipes: which importance method sets the per-site budgets (none for the global
/// learners) and which learner finds the masks.
pub fn preset(name: &str) -> Result<(Option<&'static str>, &'static str)> {
    Ok(match name {
        // PrivShap's game with one player per site, estimated by KernelSHAP: Pearson >= 0.99
        // against the exact 17-player game of the narrow ResNet-18 with 1.7 % of its coalitions
        // (docs/results.md); tree-trimming, the paper's estimator, does not finish that game on
        // a CPU (`[importance] method = "shapley-tree"` and `players = "blocks"` run it).
        "privshap" => (Some("shapley-kernel"), "gradproj"),
        "uniform" => (Some("uniform"), "gradproj"),
        "senet" => (Some("senet"), "senet"),
        "relupruner" => (None, "taylor"),
        "snl" => (None, "snl"),
        "l1-fixed-epochs" => (None, "l1-fixed-epochs"),
        "l1-budget-ramp" => (None, "l1-budget-ramp"),
        // DeepReDuce: cull and thin whole stages to the budget, train with KD.
        "deepreduce" => (None, "deepreduce"),
        // DeepReShape: a HybReNet ([model] arch = "hrn-...", from `privlin design`) trained
        // all-ReLU, then SNL's fine-grained linearization to the budget, as in the paper.
        "hybrenet" => (None, "snl"),
        // "Making Models Shallow Again": SENet's budgets and masks, then the reshape stage
        // (gated branching, AKD) in place of the plain fine-tuning ([`reshapes`]).
        "shallow" => (Some("senet"), "senet"),
        "custom" => (None, ""),
        other => bail!(
            "unknown preset `{other}` (expected privshap, relupruner, senet, snl, l1-fixed-epochs, l1-budget-ramp, uniform, deepreduce, hybrenet, shallow or custom)"
        ),
    })
}

/// Whether a preset fine-tunes with the `reshape` stage (depth reduction) instead of `finetune`.
pub fn reshapes(preset: &str) -> bool {
    preset == "shallow"
}

/// Apply `key.path=value` overrides to a TOML table (the value parsed as TOML, else a string).
/// `user` over `defaults`: tables merge key by key, anything else in `user` replaces. The
/// `[importance]` table stays the user's own (its defaults are the flags', applied later).
fn over_defaults(mut defaults: toml::Table, user: toml::Table) -> toml::Table {
    for (k, v) in user {
        let merged = match (defaults.remove(&k), v) {
            (Some(toml::Value::Table(d)), toml::Value::Table(u)) if k != "importance" => {
                toml::Value::Table(over_defaults(d, u))
            }
            (_, v) => v,
        };
        defaults.insert(k, merged);
    }
    defaults
}

pub fn apply_sets(table: &mut toml::Table, sets: &[String]) -> Result<()> {
    for s in sets {
        let Some((key, value)) = s.split_once('=') else {
            bail!("--set `{s}`: expected key.path=value");
        };
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let parts: Vec<&str> = key.trim().split('.').collect();
        let mut t = &mut *table;
        for p in &parts[..parts.len() - 1] {
            t = t
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("--set `{s}`: `{p}` is not a table"))?;
        }
        t.insert(parts[parts.len() - 1].to_string(), value);
    }
    Ok(())
}

impl PipelineConfig {
    /// Parse `text` (from `origin`) with `--set` overrides.
    pub fn parse(text: &str, origin: &str, sets: &[String]) -> Result<Self> {
        let mut table: toml::Table =
            toml::from_str(text).with_context(|| format!("config {origin}"))?;
        apply_sets(&mut table, sets)?;
        // A partial section keeps its section's defaults for what it leaves out: `[linearize.
        // train] epochs = 1` changes the epochs of the mask learners' Adam, not the optimizer
        // (serde alone would fill the rest from `TrainConfig`'s defaults, SGD at 0.1).
        let defaults = match toml::Value::try_from(PipelineConfig::default())? {
            toml::Value::Table(t) => t,
            _ => unreachable!("a config serializes to a table"),
        };
        let table = over_defaults(defaults, table);
        let cfg: PipelineConfig = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("config {origin}"))?;
        preset(&cfg.preset).with_context(|| format!("config {origin}: preset"))?;
        cfg.budget
            .parse::<Budget>()
            .with_context(|| format!("config {origin}: budget"))?;

        cfg.finetune
            .validate()
            .with_context(|| format!("config {origin}: [finetune]"))?;
        cfg.reshape
            .validate()
            .with_context(|| format!("config {origin}: [reshape]"))?;
        cfg.pi
            .validate()
            .with_context(|| format!("config {origin}: [pi]"))?;
        let (imp, lin) = cfg.methods().with_context(|| format!("config {origin}"))?;
        cfg.linearize
            .validate_for(lin)
            .with_context(|| format!("config {origin}: [linearize]"))?;
        cfg.importance_config(imp.as_deref().unwrap_or("uniform"))
            .with_context(|| format!("config {origin}: [importance]"))?;
        Ok(cfg)
    }

    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), sets)
    }

    /// The importance method and learner, from the preset unless set explicitly.
    pub fn methods(&self) -> Result<(Option<String>, Method)> {
        let (imp, lin) = preset(&self.preset)?;
        let imp = match self.importance.get("method") {
            Some(v) => Some(
                v.as_str()
                    .context("[importance] method must be a string")?
                    .to_string(),
            ),
            None => imp.map(str::to_string),
        };
        let lin = match &self.linearize.method {
            Some(m) => m.clone(),
            None if lin.is_empty() => bail!("preset `custom` needs linearize.method"),
            None => lin.to_string(),
        };
        let lin: Method = lin.parse()?;
        if self.preset == "hybrenet"
            && !matches!(self.model.arch.parse(), Ok(crate::nn::Arch::Hrn { .. }))
        {
            bail!(
                "preset `hybrenet` linearizes a HybReNet: set [model] arch to an hrn-AxBxCx network (`privlin design` proposes one), not `{}`",
                self.model.arch
            );
        }
        if !lin.is_global() && imp.is_none() {
            bail!(
                "learner `{}` needs per-site budgets: set [importance] method",
                lin.name()
            );
        }
        Ok((imp, lin))
    }

    /// The importance stage's config for `method`: the `[importance]` table over the flags'
    /// defaults (one player per site; the tree-trimming threshold relative to chance, see
    /// [`ImportanceConfig::threshold`]).
    pub fn importance_config(&self, method: &str) -> Result<ImportanceConfig> {
        let mut table = self.importance.clone();
        table.insert("method".into(), toml::Value::String(method.into()));
        let cfg: ImportanceConfig = toml::Value::Table(table).try_into()?;
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn importance_table_takes_the_flags_names_and_the_pipeline_defaults() {
        let cfg = PipelineConfig::parse(
            "preset = \"privshap\"\n[importance]\nutility_size = 300\nmax_evaluations = 99\n",
            "test",
            &[],
        )
        .unwrap();
        let imp = cfg.importance_config("shapley-tree").unwrap();
        assert_eq!(imp.method, "shapley-tree");
        assert_eq!(imp.players, "sites", "one player per site");
        assert_eq!(cfg.methods().unwrap().0.as_deref(), Some("shapley-kernel"));
        assert_eq!(imp.utility_size, 300);
        assert_eq!(imp.max_evaluations, 99);
        // Everything else is the command line's default.
        let flags = ImportanceConfig::default();
        assert_eq!(imp.batch_size, flags.batch_size);
        assert_eq!(imp.threshold, flags.threshold);
        // The table's values are not the defaults, so the two checks above could fail.
        assert_ne!(flags.utility_size, 300);
        assert_ne!(flags.max_evaluations, 99);
        assert_eq!(cfg.importance_config("senet").unwrap().players, "sites");
        let err = PipelineConfig::parse("[importance]\ntreshold = 3\n", "test", &[]).unwrap_err();
        let chain = format!("{err:#}");
        assert!(
            chain.contains("[importance]") && chain.contains("treshold"),
            "{chain}"
        );
    }

    #[test]
    fn network_design_presets() {
        let cfg = PipelineConfig::parse("preset = \"deepreduce\"\n", "test", &[]).unwrap();
        let (imp, lin) = cfg.methods().unwrap();
        assert_eq!((imp, lin), (None, Method::DeepReduce));
        let err = PipelineConfig::parse("preset = \"hybrenet\"\n", "test", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("hrn-AxBxCx"), "{err:#}");
        let cfg = PipelineConfig::parse(
            "preset = \"hybrenet\"\n[model]\narch = \"hrn-5x7x2x\"\n",
            "test",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.methods().unwrap().1, Method::Snl);
        let err = PipelineConfig::parse(
            "preset = \"deepreduce\"\n[linearize.deepreduce]\ncriticality = 1\n",
            "test",
            &[],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("criticality"), "{err:#}");
    }

    /// SNL's one optimizer (issue 39): a weights' optimizer other than Adam at a constant rate
    /// without weight decay is refused at parse time, naming the field; the default passes.
    #[test]
    fn snl_refuses_another_weights_optimizer() {
        PipelineConfig::parse("preset = \"snl\"\n", "test", &[]).unwrap();
        // Each case spells out the default Adam and changes one thing.
        let adam = [
            "linearize.train.optimizer.kind=\"adam\"",
            "linearize.train.optimizer.lr=0.001",
            "linearize.train.optimizer.weight_decay=0.0",
        ];
        let sets = |change: &str| -> Vec<String> {
            let mut v: Vec<String> = adam.iter().map(|s| s.to_string()).collect();
            v.push(change.to_string());
            v
        };
        PipelineConfig::parse(
            "preset = \"snl\"\n",
            "test",
            &sets("linearize.train.schedule.kind=\"constant\""),
        )
        .unwrap();
        for (set, field) in [
            ("linearize.train.schedule.kind=\"cosine\"", "schedule.kind"),
            (
                "linearize.train.optimizer.weight_decay=0.0005",
                "weight_decay",
            ),
            ("linearize.train.optimizer.kind=\"sgd\"", "optimizer.kind"),
        ] {
            let err = PipelineConfig::parse("preset = \"snl\"\n", "test", &sets(set)).unwrap_err();
            let chain = format!("{err:#}");
            assert!(
                chain.contains(field) && chain.contains("one Adam"),
                "{set}: {chain}"
            );
            // Another learner may use any optimizer.
            PipelineConfig::parse("preset = \"privshap\"\n", "test", &sets(set)).unwrap();
        }
    }

    /// A partial section keeps its section's defaults: `[linearize.train] epochs = 1` leaves the
    /// learners' Adam at 1e-3 without decay (serde alone would fill in `TrainConfig`'s SGD at
    /// 0.1 with decay, which silently changed the optimizer), and the same for `[finetune.train]`.
    #[test]
    fn partial_sections_keep_their_section_defaults() {
        let cfg = PipelineConfig::parse(
            "[linearize.train]\nepochs = 1\n[finetune.train]\nbatch_size = 7\n",
            "test",
            &["linearize.train.optimizer.lr=0.002".to_string()],
        )
        .unwrap();
        let lin = LinearizeConfig::default().train;
        assert_eq!(cfg.linearize.train.epochs, 1);
        assert_eq!(cfg.linearize.train.optimizer.kind, lin.optimizer.kind);
        assert_eq!(cfg.linearize.train.optimizer.weight_decay, 0.0);
        assert_eq!(cfg.linearize.train.optimizer.lr, 0.002);
        assert_eq!(cfg.linearize.train.schedule, lin.schedule);
        let ft = FinetuneConfig::default().train;
        assert_eq!(cfg.finetune.train.batch_size, 7);
        assert_eq!(cfg.finetune.train.optimizer, ft.optimizer);
        assert_eq!(cfg.finetune.train.schedule, ft.schedule);
        // The whole config equals its default when nothing is given.
        assert_eq!(
            PipelineConfig::parse("", "test", &[]).unwrap(),
            PipelineConfig::default()
        );
    }
}
