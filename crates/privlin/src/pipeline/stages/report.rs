//! Stage `report`: `report.md` of one point from its artifacts, and the lines a run prints at
//! the end.

use crate::budget::Allocation;
use crate::importance::Importance;
use crate::linearize::report::{markdown, ReportInputs, DELPHI_SECONDS_PER_KRELU};
use crate::linearize::run::{StageReport, FINETUNE_REPORT, LINEARIZE_REPORT};
use crate::pi::{PiReport, PI_REPORT};
use crate::pipeline::stage::{Ctx, OnChange, Stage, StageKind};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub title: String,
    pub ar: PathBuf,
    /// Importance and allocation of per-site learners (absent for global ones).
    pub importance: Option<PathBuf>,
    pub allocation: Option<PathBuf>,
    pub pr: PathBuf,
    pub final_: PathBuf,
    pub pi: PathBuf,
    pub out: PathBuf,
}

impl Report {
    fn inputs(&self) -> Result<(StageReport, StageReport, Option<PiReport>)> {
        Ok((
            crate::io::read_json(&self.pr.join(LINEARIZE_REPORT))?,
            crate::io::read_json(&self.final_.join(FINETUNE_REPORT))?,
            crate::io::read_json(&self.pi.join(PI_REPORT)).ok(),
        ))
    }

    /// What a finished point measured, in the lines `privlin run` ends with.
    pub fn summary(&self) -> Result<String> {
        let (lin, ft, pi) = self.inputs()?;
        let mut s = format!(
            "{}: {} of {} ReLUs ({:.2} %), test accuracy all-ReLU {:.2} %, linearized {:.2} %, fine-tuned {:.2} %; DELPHI estimate {:.3} s (papers' {} s per 1,000 ReLUs)",
            self.title,
            ft.relus,
            ft.capacity,
            100.0 * ft.relus as f64 / ft.capacity as f64,
            100.0 * ft.test_acc_ar,
            100.0 * lin.test_acc,
            100.0 * ft.test_acc,
            ft.relus as f64 / 1000.0 * DELPHI_SECONDS_PER_KRELU,
            DELPHI_SECONDS_PER_KRELU
        );
        if let Some(w) = crate::linearize::report::far_below_start(&ft) {
            s.push_str(&format!("\nwarning: {w}"));
        }
        if lin.budget_outcome == Some(crate::linearize::BudgetOutcome::NotReached) {
            s.push_str(&format!(
                "\nbudget NOT REACHED by {}: {} ReLUs kept against a budget of {} (report.md says why)",
                lin.method, ft.relus, lin.budget
            ));
        }
        if let Some(p) = &pi {
            let wan = p.partial.slowest().expect("profiles");
            s.push_str(&format!(
                "\nprivate inference of {} test images: private class = float class on {}/{}; per inference {:.2} MB online, {:.2} MB offline, measured {:.3} s online / {:.3} s offline here; predicted online {:.3} s on {}",
                p.images,
                p.agree_float,
                p.images,
                p.partial.online_bytes as f64 / 1e6,
                p.partial.offline_bytes as f64 / 1e6,
                p.online_s,
                p.offline_s,
                wan.online_s,
                wan.network
            ));
        }
        s.push_str(&format!(
            "\nreport: {}; masks: {}/masks.safetensors, active ReLU index: {}/active.safetensors",
            self.out.display(),
            self.final_.display(),
            self.final_.display()
        ));
        Ok(s)
    }
}

impl Stage for Report {
    fn kind(&self) -> StageKind {
        StageKind::Report
    }

    fn reads(&self) -> Vec<PathBuf> {
        let mut r = vec![
            self.ar.clone(),
            self.pr.clone(),
            self.final_.clone(),
            self.pi.clone(),
        ];
        r.extend(self.importance.iter().cloned());
        r.extend(self.allocation.iter().cloned());
        r
    }

    fn writes(&self) -> Vec<PathBuf> {
        vec![self.out.clone()]
    }

    fn on_change(&self) -> OnChange {
        OnChange::Redo
    }

    fn run(&self, _ctx: &Ctx) -> Result<String> {
        let (model, _) = crate::train::load_model(&self.ar, tch::Device::Cpu)?;
        let (lin, ft, pi) = self.inputs()?;
        let alloc: Option<Allocation> = match &self.allocation {
            Some(p) => Some(crate::io::read_json(p)?),
            None => None,
        };
        let imp: Option<Importance> = match &self.importance {
            Some(p) => Some(crate::io::read_json(p)?),
            None => None,
        };
        let md = markdown(&ReportInputs {
            title: &self.title,
            model: &model,
            importance: imp.as_ref(),
            allocation: alloc.as_ref(),
            linearize: Some(&lin),
            finetune: Some(&ft),
            pi: pi.as_ref(),
            reshape: crate::io::read_json(&self.final_.join(crate::reshape::RESHAPE_REPORT))
                .ok()
                .as_ref(),
        });
        crate::io::atomic_write_bytes(&self.out, md.as_bytes())?;
        Ok(format!("{}", self.out.display()))
    }
}
