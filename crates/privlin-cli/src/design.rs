//! `privlin design`: stage criticality and HybReNets by ReLU equalization (DeepReShape).

use crate::common::{runtime, RuntimeArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use privlin::design::criticality::{deepreduce, Criticality};
use privlin::design::equalize::{
    equalize, model_config, order_name, parse_order, table, EqualizeConfig,
};
use privlin::linearize::FinetuneConfig;
use privlin::nn::{Activation, Arch, Convention, ModelSpec};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum DesignCommand {
    /// Criticality of each stage of an all-ReLU checkpoint: DeepReDuce's (only that stage's
    /// ReLUs kept) or from a stage-level Shapley game (`privlin importance --players stages`).
    Criticality(CriticalityArgs),
    /// ReLU equalization: the smallest HybReNet multipliers whose stage ReLU counts follow a
    /// criticality order, under a bound on the last multiplier; writes the chosen network as a
    /// `[model]` config that `privlin train --config` takes.
    Equalize(EqualizeArgs),
}

#[derive(Args, Debug)]
pub struct CriticalityArgs {
    /// All-ReLU checkpoint directory.
    #[arg(long)]
    ckpt: PathBuf,
    /// deepreduce or shapley (the latter reads --importance).
    #[arg(long, default_value = "deepreduce")]
    method: String,
    /// importance.json of a game with stage players (for --method shapley).
    #[arg(long)]
    importance: Option<PathBuf>,
    /// Epochs of distillation with only one stage's ReLUs (DeepReDuce); 0 evaluates as is.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Train on at most this many images per class.
    #[arg(long)]
    train_per_class: Option<usize>,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Rank stages by value above the baseline per kReLU (`per-relu`) or by the value (`total`).
    #[arg(long, default_value = "per-relu")]
    rank_by: String,
    /// Where to write criticality.json.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    rt: RuntimeArgs,
}

#[derive(Args, Debug)]
pub struct EqualizeArgs {
    /// Criticality order, most critical first: `S3>S2>S4>S1` (the slides' ResNet-18 on
    /// CIFAR-100) or `3,2,4,1`.
    #[arg(long)]
    order: Option<String>,
    /// Or a criticality.json from `privlin design criticality`.
    #[arg(long)]
    criticality: Option<PathBuf>,
    /// Upper bound on gamma (the last stage's multiplier): keeps the deepest stage's FLOPs down.
    #[arg(long, default_value_t = 2)]
    gamma_max: i64,
    /// Largest multiplier searched.
    #[arg(long, default_value_t = 16)]
    max_multiplier: i64,
    /// Width: m = 64 x width (0.25 gives DeepReShape's m = 16).
    #[arg(long, default_value_t = 0.25)]
    width: f64,
    #[arg(long, default_value_t = 32)]
    input_size: i64,
    #[arg(long, default_value_t = 10)]
    classes: i64,
    /// Blocks per stage (default 2,2,2,2).
    #[arg(long, value_delimiter = ',')]
    blocks: Option<Vec<i64>>,
    #[arg(long, default_value_t = 1)]
    stem_stride: i64,
    /// Write the chosen network's `[model]` table here (TOML).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the candidates as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(c: DesignCommand) -> Result<()> {
    match c {
        DesignCommand::Criticality(a) => criticality(a),
        DesignCommand::Equalize(a) => equalize_cmd(a),
    }
}

fn criticality(a: CriticalityArgs) -> Result<()> {
    let device = runtime(
        a.rt.device.as_deref().unwrap_or("auto"),
        a.rt.threads.unwrap_or(0),
    )?;
    let rank: privlin::design::RankBy = a.rank_by.parse()?;
    let c = match a.method.as_str() {
        "deepreduce" => {
            let spec = privlin::train::CheckpointSpec::load(&a.ckpt)?;
            let mut ft = FinetuneConfig::default();
            ft.train.batch_size = a.batch_size;
            // Ranked on the holdout split where the checkpoint has one (the metric names it).
            let data = privlin::linearize::run::checkpoint_loaders(
                &spec,
                &ft.train,
                a.train_per_class,
                device,
            )?;
            let scratch = a
                .out
                .as_ref()
                .and_then(|p| p.parent().map(|d| d.join("criticality-scratch")))
                .unwrap_or_else(|| std::env::temp_dir().join("privlin-criticality"));
            deepreduce(
                &a.ckpt,
                &data.train,
                &data.select,
                data.select_split,
                &ft,
                a.epochs,
                rank,
                &scratch,
            )?
        }
        "shapley" => {
            let path = a.importance.as_ref().context(
                "--method shapley reads --importance importance.json (players = stages)",
            )?;
            let imp: privlin::importance::Importance = privlin::io::read_json(path)?;
            let (model, _) = privlin::train::load_model(&a.ckpt, tch::Device::Cpu)?;
            Criticality::from_importance(&imp, &model, rank)
                .with_context(|| format!("reading {}", path.display()))?
        }
        other => bail!("unknown criticality method `{other}` (expected deepreduce or shapley)"),
    };
    print!("{}", c.table());
    if let Some(out) = &a.out {
        privlin::io::atomic_write_json(out, &c)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn equalize_cmd(a: EqualizeArgs) -> Result<()> {
    let order = match (&a.order, &a.criticality) {
        (Some(o), None) => parse_order(o)?,
        (None, Some(p)) => {
            let c: Criticality = privlin::io::read_json(p)?;
            parse_order(&c.order_s).with_context(|| format!("order of {}", p.display()))?
        }
        _ => bail!("give the criticality order as --order S3>S2>S4>S1 or --criticality FILE"),
    };
    let base = ModelSpec {
        arch: Arch::Hrn {
            alpha: 1,
            beta: 1,
            gamma: 1,
        },
        width: a.width,
        activation: Activation::Relu,
        input_size: a.input_size,
        classes: a.classes,
        convention: Convention::ALL,
        blocks: a.blocks.clone(),
        stem_stride: a.stem_stride,
        cull: Vec::new(),
        thin: None,
        gated: Vec::new(),
        shallow: Vec::new(),
        shallow_kernel: 3,
        aux: None,
        graph: None,
    };
    base.validate()?;
    let cands = equalize(&EqualizeConfig {
        order: order.clone(),
        gamma_max: a.gamma_max,
        max_multiplier: a.max_multiplier,
        base: base.clone(),
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&cands)?);
    } else {
        println!(
            "ReLU equalization for the order {} (gamma <= {}): {} minimal candidates",
            order_name(&order, " > "),
            a.gamma_max,
            cands.len()
        );
        print!("{}", table(&cands, &base));
    }
    if let Some(out) = &a.out {
        #[derive(serde::Serialize)]
        struct ModelOnly {
            model: privlin::train::ModelConfig,
        }
        let text = toml::to_string(&ModelOnly {
            model: model_config(&cands[0], &base),
        })?;
        let text = format!(
            "# {} chosen by `privlin design equalize` (ReLU equalization, order {}, gamma <= {}).\n# Add [data] and [train] tables or pass flags: privlin train --config {}\n{text}",
            cands[0].arch,
            order_name(&order, ">"),
            a.gamma_max,
            out.display()
        );
        privlin::io::atomic_write_bytes(out, text.as_bytes())?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
