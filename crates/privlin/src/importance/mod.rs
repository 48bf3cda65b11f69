//! Layer importance and its methods: Shapley values of activation sites (PrivShap), SENet ReLU
//! sensitivity, ReLUPruner layer importance, and the uniform / proportional baselines.

pub mod compute;
pub mod game;
pub mod players;
pub mod score;
pub mod senet;
pub mod senet_sparse;
pub mod shapley;
pub mod taylor_layer;
pub mod utility;
pub mod workers;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The methods of `privlin importance --method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ShapleyExact,
    ShapleyTree,
    ShapleyMc,
    ShapleyBandit,
    ShapleyKernel,
    ShapleyLeverage,
    ShapleyAntithetic,
    ShapleyStratified,
    Senet,
    SenetSparse,
    TaylorLayer,
    Uniform,
    Proportional,
}

impl Method {
    pub const NAMES: &'static str =
        "shapley-exact, shapley-tree, shapley-mc, shapley-bandit, shapley-kernel, shapley-leverage, \
         shapley-antithetic, shapley-stratified, senet, senet-sparse, taylor-layer, uniform, proportional";

    pub fn name(self) -> &'static str {
        match self {
            Method::ShapleyExact => "shapley-exact",
            Method::ShapleyTree => "shapley-tree",
            Method::ShapleyMc => "shapley-mc",
            Method::ShapleyBandit => "shapley-bandit",
            Method::ShapleyKernel => "shapley-kernel",
            Method::ShapleyLeverage => "shapley-leverage",
            Method::ShapleyAntithetic => "shapley-antithetic",
            Method::ShapleyStratified => "shapley-stratified",
            Method::Senet => "senet",
            Method::SenetSparse => "senet-sparse",
            Method::TaylorLayer => "taylor-layer",
            Method::Uniform => "uniform",
            Method::Proportional => "proportional",
        }
    }

    pub fn is_shapley(self) -> bool {
        matches!(
            self,
            Method::ShapleyExact
                | Method::ShapleyTree
                | Method::ShapleyMc
                | Method::ShapleyBandit
                | Method::ShapleyKernel
                | Method::ShapleyLeverage
                | Method::ShapleyAntithetic
                | Method::ShapleyStratified
        )
    }
}

impl FromStr for Method {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "shapley-exact" | "exact" => Method::ShapleyExact,
            "shapley-tree" | "tree" | "privshap" => Method::ShapleyTree,
            "shapley-mc" | "mc" => Method::ShapleyMc,
            "shapley-bandit" | "bandit" | "mab" => Method::ShapleyBandit,
            "shapley-kernel" | "kernelshap" => Method::ShapleyKernel,
            "shapley-leverage" | "leverageshap" => Method::ShapleyLeverage,
            "shapley-antithetic" => Method::ShapleyAntithetic,
            "shapley-stratified" => Method::ShapleyStratified,
            "senet" => Method::Senet,
            "senet-sparse" => Method::SenetSparse,
            "taylor-layer" | "relupruner" => Method::TaylorLayer,
            "uniform" => Method::Uniform,
            "proportional" => Method::Proportional,
            other => bail!(
                "unknown importance method `{other}`; known: {}",
                Method::NAMES
            ),
        })
    }
}

/// A site of a player, with its capacity (for budget allocation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerSite {
    pub player: usize,
    pub name: String,
    pub capacity: i64,
    pub kind: crate::nn::SiteKind,
}

/// `importance.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    pub method: String,
    /// Player names, in order.
    pub players: Vec<String>,
    /// One value per player.
    pub values: Vec<f64>,
    /// Standard errors, where the estimator has them.
    pub stderr: Option<Vec<f64>>,
    /// Distinct coalitions the estimator asked for (0 for methods without a game).
    pub evaluations: usize,
    /// Of those, how many were computed in this run (the others came from the cache).
    pub computed: usize,
    pub seconds: f64,
    /// Parameters used (threshold, seed, sample counts, density, batches ...).
    pub params: serde_json::Value,
    /// The sites behind each player (absent for a utility-table game).
    pub sites: Option<Vec<PlayerSite>>,
    /// Which data the utility was measured on (says so when it is the test set).
    pub utility_set: Option<String>,
    /// U(N) and U(empty set), for Shapley methods.
    pub utility_full: Option<f64>,
    pub utility_empty: Option<f64>,
    pub checkpoint: Option<String>,
    pub convention: Option<String>,
    /// Forward segments run / segments without prefix sharing (model games).
    pub segments: Option<(u64, u64)>,
}

impl Importance {
    /// A result with values only; the caller fills in what its method knows.
    pub fn new(method: &str, players: Vec<String>, values: Vec<f64>) -> Self {
        Importance {
            method: method.to_string(),
            players,
            values,
            stderr: None,
            evaluations: 0,
            computed: 0,
            seconds: 0.0,
            params: serde_json::json!({}),
            sites: None,
            utility_set: None,
            utility_full: None,
            utility_empty: None,
            checkpoint: None,
            convention: None,
            segments: None,
        }
    }
}
