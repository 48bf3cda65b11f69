//! Stage `pi`: the fine-tuned checkpoint exported and test images classified under the
//! two-party protocol (`pi/pi.json`); a model the exporter cannot take, or `[pi] images = 0`,
//! leaves the reason in `pi/skipped.txt` instead.

use crate::pi::{PiConfig, PI_REPORT};
use crate::pipeline::stage::{Ctx, OnChange, Stage, StageKind};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const SKIPPED: &str = "skipped.txt";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pi {
    pub ckpt: PathBuf,
    pub config: PiConfig,
    pub out: PathBuf,
}

impl Stage for Pi {
    fn kind(&self) -> StageKind {
        StageKind::Pi
    }

    fn reads(&self) -> Vec<PathBuf> {
        vec![self.ckpt.clone()]
    }

    fn writes(&self) -> Vec<PathBuf> {
        vec![self.out.clone()]
    }

    fn on_change(&self) -> OnChange {
        OnChange::Redo
    }

    fn run(&self, _ctx: &Ctx) -> Result<String> {
        let skip = |why: String| -> Result<String> {
            std::fs::create_dir_all(&self.out)?;
            let _ = std::fs::remove_file(self.out.join(PI_REPORT));
            crate::io::atomic_write_bytes(&self.out.join(SKIPPED), why.as_bytes())?;
            Ok(format!("private inference: skipped: {why}"))
        };
        if self.config.images == 0 {
            return skip("[pi] images = 0".into());
        }
        let (model, _) = crate::train::load_model(&self.ckpt, tch::Device::Cpu)?;
        if let Some(why) = crate::pi::export::unsupported(&model) {
            return skip(why);
        }
        let _ = std::fs::remove_file(self.out.join(SKIPPED));
        let p = crate::pi::measure(&self.ckpt, &self.out, &self.config)?;
        Ok(format!(
            "private inference of {} test images: private class = float class on {}/{}; {:.2} MB online, {:.2} MB offline per inference",
            p.images,
            p.agree_float,
            p.images,
            p.partial.online_bytes as f64 / 1e6,
            p.partial.offline_bytes as f64 / 1e6
        ))
    }
}
