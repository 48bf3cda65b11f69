//! Cooperative games over activation sites (PrivShap section 3.1): players, coalitions as bitsets,
//! utilities cached by coalition and shared by every estimator.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// A coalition: bit `i` set when player `i` keeps its nonlinearity.
pub type Coalition = u64;

/// Players are at most 64 (sites of ResNet-50: 49; group them for deeper models).
pub const MAX_PLAYERS: usize = 64;

/// The coalition as a string of `n` '0'/'1' characters, character `i` for player `i`.
pub fn coalition_key(c: Coalition, n: usize) -> String {
    (0..n)
        .map(|i| if c >> i & 1 == 1 { '1' } else { '0' })
        .collect()
}

pub fn parse_coalition_key(key: &str, n: usize) -> Result<Coalition> {
    if key.len() != n || !key.bytes().all(|b| b == b'0' || b == b'1') {
        bail!("coalition key `{key}` is not a string of {n} '0'/'1' characters");
    }
    Ok(key
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'1')
        .fold(0, |c, (i, _)| c | 1 << i))
}

pub fn full(n: usize) -> Coalition {
    if n == 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// What computes utilities: a trained model on a utility set, or a table.
pub trait Oracle {
    fn players(&self) -> &[String];
    /// Utilities of `coalitions`, computed together (a model shares work between them).
    fn evaluate(&mut self, coalitions: &[Coalition]) -> Result<Vec<f64>>;
}

/// A game: an oracle behind a cache keyed by coalition. Estimators ask it for utilities; it
/// computes only what no earlier query (of any estimator, or a loaded cache file) answered.
pub struct Game<'a> {
    oracle: &'a mut dyn Oracle,
    cache: HashMap<Coalition, f64>,
    queried: HashSet<Coalition>,
    computed: usize,
    /// At most this many distinct coalitions may be asked for (`--max-evaluations`).
    cap: Option<usize>,
}

impl<'a> Game<'a> {
    pub fn new(oracle: &'a mut dyn Oracle) -> Self {
        Game {
            oracle,
            cache: HashMap::new(),
            queried: HashSet::new(),
            computed: 0,
            cap: None,
        }
    }

    /// Caps the distinct coalitions an estimator may ask for: sampling estimators stop before a
    /// round that would pass it ([`Game::fits`]); a query that passes it anyway is an error.
    pub fn set_cap(&mut self, cap: Option<usize>) {
        self.cap = cap;
    }

    pub fn cap(&self) -> Option<usize> {
        self.cap
    }

    /// Whether asking for `coalitions` keeps the distinct queries within the cap.
    pub fn fits(&self, coalitions: &[Coalition]) -> bool {
        let Some(cap) = self.cap else {
            return true;
        };
        let mut new: Vec<Coalition> = coalitions
            .iter()
            .copied()
            .filter(|c| !self.queried.contains(c))
            .collect();
        new.sort_unstable();
        new.dedup();
        self.queried.len() + new.len() <= cap
    }

    pub fn n(&self) -> usize {
        self.oracle.players().len()
    }

    pub fn players(&self) -> Vec<String> {
        self.oracle.players().to_vec()
    }

    /// Utilities of `coalitions` (duplicates allowed), computing the missing ones in one call.
    pub fn utilities(&mut self, coalitions: &[Coalition]) -> Result<Vec<f64>> {
        if !self.fits(coalitions) {
            bail!(
                "the estimator asked for more than --max-evaluations = {} distinct coalitions \
                 ({} asked so far): raise the cap or use a sampling estimator, which stops at it",
                self.cap.unwrap_or(0),
                self.queried.len()
            );
        }
        let mut missing: Vec<Coalition> = coalitions
            .iter()
            .copied()
            .filter(|c| !self.cache.contains_key(c))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let values = self.oracle.evaluate(&missing)?;
            self.computed += missing.len();
            for (c, v) in missing.into_iter().zip(values) {
                if !v.is_finite() {
                    bail!("utility of coalition {} is {v}", coalition_key(c, self.n()));
                }
                self.cache.insert(c, v);
            }
        }
        self.queried.extend(coalitions.iter().copied());
        Ok(coalitions.iter().map(|c| self.cache[c]).collect())
    }

    pub fn utility(&mut self, c: Coalition) -> Result<f64> {
        Ok(self.utilities(&[c])?[0])
    }

    /// Distinct coalitions the estimator asked for (its cost, whatever the cache held).
    pub fn evaluations(&self) -> usize {
        self.queried.len()
    }

    /// Utilities actually computed by the oracle (cache misses).
    pub fn computed(&self) -> usize {
        self.computed
    }

    /// Forget which coalitions were asked for (the cache stays): the next estimator starts at zero.
    pub fn reset_queries(&mut self) {
        self.queried.clear();
        self.computed = 0;
    }

    pub fn cache_table(&self) -> UtilityTable {
        let n = self.n();
        UtilityTable {
            utility: None,
            players: self.players(),
            utilities: self
                .cache
                .iter()
                .map(|(c, v)| (coalition_key(*c, n), *v))
                .collect(),
        }
    }

    /// Pre-fill the cache from a table with the same players.
    pub fn load_cache(&mut self, t: &UtilityTable, origin: &Path) -> Result<()> {
        if t.players != self.players() {
            bail!(
                "utility cache {}: players {:?} differ from this game's {:?}",
                origin.display(),
                t.players,
                self.players()
            );
        }
        for (k, v) in &t.utilities {
            let c = parse_coalition_key(k, self.n())
                .with_context(|| format!("utility cache {}", origin.display()))?;
            self.cache.insert(c, *v);
        }
        Ok(())
    }
}

/// `{"players": [names], "utilities": {"0110...": u, ...}}`: a whole game (for tests and for users
/// who bring their own), or a utility cache saved by a model game.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UtilityTable {
    pub players: Vec<String>,
    pub utilities: BTreeMap<String, f64>,
    /// What the utilities measure (`accuracy`, `ce`, `kl`), where a model game saved them: a
    /// cache of one utility is refused for another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utility: Option<String>,
}

impl UtilityTable {
    pub fn load(path: &Path) -> Result<Self> {
        let t: UtilityTable = crate::io::read_json(path)?;
        if t.players.is_empty() || t.players.len() > MAX_PLAYERS {
            bail!(
                "{}: {} players (1 to {MAX_PLAYERS} supported)",
                path.display(),
                t.players.len()
            );
        }
        for k in t.utilities.keys() {
            parse_coalition_key(k, t.players.len())
                .with_context(|| format!("{}", path.display()))?;
        }
        Ok(t)
    }
}

/// A game given as a table: a coalition missing from the table is an error that names it.
pub struct TableOracle {
    players: Vec<String>,
    values: HashMap<Coalition, f64>,
    origin: String,
}

impl TableOracle {
    pub fn new(t: &UtilityTable, origin: &str) -> Result<Self> {
        let n = t.players.len();
        let values = t
            .utilities
            .iter()
            .map(|(k, v)| Ok((parse_coalition_key(k, n)?, *v)))
            .collect::<Result<_>>()?;
        Ok(TableOracle {
            players: t.players.clone(),
            values,
            origin: origin.to_string(),
        })
    }

    /// A table from a utility function over all `2^n` coalitions (tests, synthetic games).
    pub fn from_fn(players: Vec<String>, u: impl Fn(Coalition) -> f64) -> Self {
        let n = players.len();
        TableOracle {
            values: (0..=full(n)).map(|c| (c, u(c))).collect(),
            players,
            origin: "function".into(),
        }
    }
}

impl Oracle for TableOracle {
    fn players(&self) -> &[String] {
        &self.players
    }

    fn evaluate(&mut self, coalitions: &[Coalition]) -> Result<Vec<f64>> {
        coalitions
            .iter()
            .map(|c| {
                self.values.get(c).copied().with_context(|| {
                    format!(
                        "utility table {} has no entry for coalition \"{}\"",
                        self.origin,
                        coalition_key(*c, self.players.len())
                    )
                })
            })
            .collect()
    }
}
