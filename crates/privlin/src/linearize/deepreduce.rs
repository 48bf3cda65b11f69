//! DeepReDuce as a learner (Jha et al., ICML 2021): whole ReLU layers removed by culling the
//! least critical stages and thinning the rest ([`crate::design::cull::plan`]), then the
//! network trained with knowledge distillation from the all-ReLU model (their Sec. 3.4: KD with
//! the all-ReLU network as teacher). The masks are fixed layer masks from the first step; the
//! epochs train the weights only. The budget is held "at most": whole layers cannot hit an
//! arbitrary count, and a budget below the smallest configuration is reported as not reached.

use super::config::DistillConfig;
use super::teacher::{Distill, Teacher};
use super::{BudgetOutcome, MaskLearner};
use crate::data::Batch;
use crate::design::cull::{plan, CullPlan, CullRule};
use crate::nn::{MaskSet, Model};
use crate::train::Objective;
use anyhow::Result;
use tch::Tensor;

pub struct DeepReduce {
    /// Distillation with the plan's layer masks.
    kd: Distill,
    plan: CullPlan,
    rule: CullRule,
}

impl DeepReduce {
    /// `order`: the model's stages, most critical first; `rule`: how the budget picks them.
    pub fn new(
        model: &Model,
        teacher: Teacher,
        budget: i64,
        order: &[String],
        rule: CullRule,
        distill: DistillConfig,
    ) -> Result<Self> {
        let plan = plan(model, order, budget, rule)?;
        let kd = Distill {
            teacher,
            cfg: distill,
            masks: Some(MaskSet::coalition(&plan.keep)),
        };
        Ok(DeepReduce { kd, plan, rule })
    }
}

impl Objective for DeepReduce {
    fn loss(&mut self, model: &Model, batch: &Batch) -> Result<(Tensor, Tensor)> {
        self.kd.loss(model, batch)
    }

    fn eval_masks(&self) -> Option<MaskSet> {
        self.kd.eval_masks()
    }
}

impl MaskLearner for DeepReduce {
    fn outcome(&self) -> BudgetOutcome {
        if self.plan.reached {
            BudgetOutcome::AtMost
        } else {
            BudgetOutcome::NotReached
        }
    }

    fn current_masks(&self) -> MaskSet {
        MaskSet::coalition(&self.plan.keep)
    }

    fn finish(&mut self, _model: &Model) -> Result<(MaskSet, Vec<String>)> {
        let p = &self.plan;
        let mut notes = vec![format!(
            "DeepReDuce ({}): kept {} (most critical first), culled {}{}; {} ReLUs",
            match self.rule {
                CullRule::Deepreduce => "least critical stages culled first, then thinned",
                CullRule::Search => "privlin's search over every set of stages",
            },
            p.kept.join(", "),
            if p.culled.is_empty() {
                "nothing".to_string()
            } else {
                p.culled.join(", ")
            },
            if p.thin.is_some() {
                ", thinned (every second ReLU layer of a stage)"
            } else {
                ""
            },
            p.relus
        )];
        if !p.reached {
            notes.push(
                "budget not reached: the smallest cull/thin configuration is over it; narrow the \
                 model (--width) or its resolution (stem_stride) as DeepReDuce does"
                    .into(),
            );
        }
        Ok((self.current_masks(), notes))
    }
}
