//! Players of the layer-importance game: counted activation sites, one by one or grouped by
//! residual block or stage so that deep networks have fewer players.

use crate::nn::Model;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// One player per counted site.
    Sites,
    /// Sites grouped by module path without its last component (`layer2.1.act1` -> `layer2.1`).
    Blocks,
    /// Sites grouped by the first component of the module path (`layer2.1.act1` -> `layer2`).
    Stages,
}

impl std::str::FromStr for Grouping {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "sites" => Grouping::Sites,
            "blocks" => Grouping::Blocks,
            "stages" => Grouping::Stages,
            other => bail!("unknown player grouping `{other}` (expected sites, blocks or stages)"),
        })
    }
}

/// A player: a name and the indices of the sites it switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Player {
    pub name: String,
    pub sites: Vec<usize>,
}

fn group_name(site: &str, g: Grouping) -> String {
    match g {
        Grouping::Sites => site.to_string(),
        Grouping::Blocks => site
            .rsplit_once('.')
            .map(|(p, _)| p.to_string())
            .unwrap_or_else(|| site.to_string()),
        Grouping::Stages => site.split('.').next().unwrap_or(site).to_string(),
    }
}

/// The players of `model`: counted sites (uncounted ones always keep their nonlinearity), grouped.
pub fn players(model: &Model, g: Grouping) -> Result<Vec<Player>> {
    let mut out: Vec<Player> = Vec::new();
    for (i, s) in model.sites().iter().enumerate() {
        if !model.counted(i) {
            continue;
        }
        let name = group_name(&s.name, g);
        match out.iter_mut().find(|p| p.name == name) {
            Some(p) => p.sites.push(i),
            None => out.push(Player {
                name,
                sites: vec![i],
            }),
        }
    }
    if out.len() > super::game::MAX_PLAYERS {
        bail!(
            "{} players; at most {} are supported: group sites with --players blocks or stages",
            out.len(),
            super::game::MAX_PLAYERS
        );
    }
    Ok(out)
}

/// Per-site keep flags of a coalition: uncounted sites keep, a player's sites follow its bit.
pub fn site_keep(model: &Model, players: &[Player], c: u64) -> Vec<bool> {
    let mut keep: Vec<bool> = (0..model.sites().len())
        .map(|i| !model.counted(i))
        .collect();
    for (p, player) in players.iter().enumerate() {
        if c >> p & 1 == 1 {
            for &s in &player.sites {
                keep[s] = true;
            }
        }
    }
    keep
}
