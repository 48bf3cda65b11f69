//! Several seeds per point: a sweep's points whose tags differ only in a `-s<seed>` suffix (as
//! `scripts/seeds_cifar10.sh` names them: `privshap-s0`, `privshap-s1`, ...) are one method line
//! run with several seeds. [`spreads`] reduces them to mean, standard deviation and range per line
//! and budget, and [`verdict`] says which differences the seeds can tell from noise: a line is
//! ahead of another only when its worst seed is above the other's best (ranges apart); otherwise
//! the two are within noise. A line run with one seed only (a costly baseline beside lines run with
//! several) is listed with its one number and placed against the best line's range, never ranked:
//! one seed has no spread. Mask-learning epochs are listed beside the accuracy: a baseline that
//! learns its masks for hundreds of epochs is placed with that cost in the same line.

use std::collections::BTreeMap;
use std::fmt::Write;

/// A point's tag split into its method line and seed: `resnet18_w0.25_privshap-s2` ->
/// (`resnet18_w0.25_privshap`, Some(2)); a tag without the suffix is its own line.
pub fn split_seed(tag: &str) -> (&str, Option<u64>) {
    if let Some((line, seed)) = tag.rsplit_once("-s") {
        // Digits only (`parse` alone would take `+1`); `parse` refuses an empty seed.
        if !line.is_empty() && seed.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(s) = seed.parse() {
                return (line, Some(s));
            }
        }
    }
    (tag, None)
}

/// One finished point as the spread reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedPoint<'a> {
    pub tag: &'a str,
    /// The budget's label (`3pct`).
    pub budget: &'a str,
    pub relus: i64,
    /// Test accuracy after fine-tuning, in percent.
    pub acc: f64,
    /// Whether the learner held the budget (false: SNL's epoch cap came first).
    pub reached: bool,
    /// Epochs of mask learning (`linearize.json` `epochs`; a continued SNL path counts all).
    pub epochs: usize,
}

/// One method line at one budget over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub line: String,
    pub budget: String,
    /// Seeds in increasing order, with the accuracy of each.
    pub seeds: Vec<(u64, f64)>,
    pub relus_mean: f64,
    /// Mask-learning epochs, mean over the seeds.
    pub epochs_mean: f64,
    pub mean: f64,
    /// Sample standard deviation (n - 1); `None` for one seed (no spread).
    pub sd: Option<f64>,
    pub min: f64,
    pub max: f64,
    /// Seeds whose learner did not reach the budget: such a line is not compared.
    pub not_reached: usize,
}

impl Spread {
    /// `56.90 [56.00, 57.90]`, or `59.40 (one seed)`.
    pub fn summary(&self) -> String {
        if self.seeds.len() == 1 {
            format!("{:.2} (one seed)", self.mean)
        } else {
            format!("{:.2} [{:.2}, {:.2}]", self.mean, self.min, self.max)
        }
    }
}

/// Seed lines at the budgets where at least one line has two seeds or more (there, lines with one
/// seed too): budgets from the fewest ReLUs up, lines by mean accuracy, best first.
pub fn spreads(points: &[SeedPoint]) -> Vec<Spread> {
    let mut groups: BTreeMap<(&str, &str), Vec<(u64, &SeedPoint)>> = BTreeMap::new();
    for p in points {
        if let (line, Some(seed)) = split_seed(p.tag) {
            groups.entry((p.budget, line)).or_default().push((seed, p));
        }
    }
    let seeded: Vec<&str> = groups
        .iter()
        .filter(|(_, ps)| ps.len() >= 2)
        .map(|((budget, _), _)| *budget)
        .collect();
    let mut out = groups
        .into_iter()
        .filter(|((budget, _), _)| seeded.contains(budget))
        .map(|((budget, line), ps)| {
            let mut seeds: Vec<(u64, f64)> = ps.iter().map(|&(seed, p)| (seed, p.acc)).collect();
            seeds.sort_by_key(|s| s.0);
            let n = seeds.len() as f64;
            let mean = seeds.iter().map(|s| s.1).sum::<f64>() / n;
            let var = seeds.iter().map(|s| (s.1 - mean).powi(2)).sum::<f64>() / (n - 1.0);
            Spread {
                line: line.to_string(),
                budget: budget.to_string(),
                relus_mean: ps.iter().map(|(_, p)| p.relus as f64).sum::<f64>() / n,
                epochs_mean: ps.iter().map(|(_, p)| p.epochs as f64).sum::<f64>() / n,
                mean,
                sd: (seeds.len() >= 2).then(|| var.sqrt()),
                min: seeds.iter().map(|s| s.1).fold(f64::MAX, f64::min),
                max: seeds.iter().map(|s| s.1).fold(f64::MIN, f64::max),
                not_reached: ps.iter().filter(|(_, p)| !p.reached).count(),
                seeds,
            }
        })
        .collect::<Vec<_>>();
    let size = |b: &str| {
        points
            .iter()
            .filter(|p| p.budget == b)
            .map(|p| p.relus)
            .min()
            .unwrap_or(0)
    };
    out.sort_by(|a, b| {
        (size(&a.budget), &a.budget)
            .cmp(&(size(&b.budget), &b.budget))
            .then(b.mean.total_cmp(&a.mean))
    });
    out
}

/// The budgets of `spreads` in their order.
pub fn budgets(spreads: &[Spread]) -> Vec<&str> {
    let mut v: Vec<&str> = spreads.iter().map(|s| s.budget.as_str()).collect();
    v.dedup();
    v
}

/// What the seeds say at one budget: the line with the best mean among those with two seeds or
/// more, the lines it is ahead of (its worst seed above their best) and those within noise of it
/// (ranges overlap); lines with one seed are placed against its range (above, inside, below) but
/// not ranked. Lines whose learner missed the budget in a seed are named apart, not compared.
/// `None` below two lines.
pub fn verdict(budget: &str, spreads: &[Spread]) -> Option<String> {
    let (held, missed): (Vec<&Spread>, Vec<&Spread>) = spreads
        .iter()
        .filter(|s| s.budget == budget)
        .partition(|s| s.not_reached == 0);
    if held.len() + missed.len() < 2 {
        return None;
    }
    let (several, single): (Vec<&Spread>, Vec<&Spread>) =
        held.into_iter().partition(|s| s.seeds.len() >= 2);
    let names = |v: &[&Spread]| {
        v.iter()
            .map(|o| format!("{} {}", o.line, o.summary()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    let best = several.iter().max_by(|a, b| a.mean.total_cmp(&b.mean));
    if let Some(best) = best {
        parts.push(format!(
            "best mean at {budget}: {} {} over {} seeds",
            best.line,
            best.summary(),
            best.seeds.len()
        ));
        let (ahead, tied): (Vec<&Spread>, Vec<&Spread>) = several
            .iter()
            .filter(|o| o.line != best.line)
            .partition(|o| best.min > o.max);
        if !tied.is_empty() {
            parts.push(format!(
                "within noise of it (ranges overlap): {}",
                names(&tied)
            ));
        }
        if !ahead.is_empty() {
            parts.push(format!("behind it (ranges apart): {}", names(&ahead)));
        }
    }
    if !single.is_empty() {
        let placed: Vec<String> = single
            .iter()
            .map(|o| {
                let place = match best {
                    Some(b) if o.mean > b.max => ", above its range",
                    Some(b) if o.mean < b.min => ", below its range",
                    Some(_) => ", inside its range",
                    None => "",
                };
                // Placed at another cost: say so in the same breath.
                let cost = match best {
                    Some(b) if (o.epochs_mean - b.epochs_mean).abs() >= 0.5 => format!(
                        " ({:.0} epochs of mask learning against its {:.0})",
                        o.epochs_mean, b.epochs_mean
                    ),
                    _ => String::new(),
                };
                format!("{} {:.2}{place}{cost}", o.line, o.mean)
            })
            .collect();
        parts.push(format!(
            "one seed, not ranked (no spread): {}",
            placed.join(", ")
        ));
    }
    if !missed.is_empty() {
        parts.push(format!(
            "not compared (budget not reached in a seed): {}",
            missed
                .iter()
                .map(|o| o.line.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Some(parts.join("; "))
}

/// The spreads as a text table (one row per line and budget).
pub fn table(spreads: &[Spread]) -> String {
    let w = spreads.iter().map(|s| s.line.len()).fold(17, usize::max);
    let mut t = format!(
        "{:<w$} {:>8} {:>3} {:>24} {:>6} {:>7}\n",
        "line (over seeds)", "budget", "n", "acc % mean [min, max]", "sd", "epochs"
    );
    for s in spreads {
        let missed = match s.not_reached {
            0 => String::new(),
            1 => "  (budget not reached in 1 seed)".to_string(),
            k => format!("  (budget not reached in {k} seeds)"),
        };
        let _ = writeln!(
            t,
            "{:<w$} {:>8} {:>3} {:>24} {:>6} {:>7.0}{missed}",
            s.line,
            s.budget,
            s.seeds.len(),
            s.summary(),
            s.sd.map_or("-".to_string(), |sd| format!("{sd:.2}")),
            s.epochs_mean,
        );
    }
    t
}

/// `seeds.csv`: one row per line and budget.
pub fn csv(spreads: &[Spread]) -> String {
    let mut s = String::from(
        "line,budget,n,seeds,relus_mean,acc_mean,acc_sd,acc_min,acc_max,budget_not_reached,linearize_epochs_mean\n",
    );
    for p in spreads {
        let seeds: Vec<String> = p.seeds.iter().map(|s| s.0.to_string()).collect();
        let _ = writeln!(
            s,
            "{},{},{},{},{:.1},{:.4},{},{:.4},{:.4},{},{:.1}",
            p.line,
            p.budget,
            p.seeds.len(),
            seeds.join(" "),
            p.relus_mean,
            p.mean,
            // One seed: no spread, an empty field.
            p.sd.map_or(String::new(), |sd| format!("{sd:.4}")),
            p.min,
            p.max,
            p.not_reached,
            p.epochs_mean
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt<'a>(tag: &'a str, budget: &'a str, acc: f64) -> SeedPoint<'a> {
        SeedPoint {
            tag,
            budget,
            // 100 ReLUs per percent.
            relus: 100 * budget.trim_end_matches("pct").parse::<i64>().unwrap(),
            acc,
            reached: true,
            epochs: 2,
        }
    }

    #[test]
    fn tags_split_into_line_and_seed() {
        assert_eq!(split_seed("r18_privshap-s2"), ("r18_privshap", Some(2)));
        assert_eq!(
            split_seed("r18_l1-budget-ramp-s10"),
            ("r18_l1-budget-ramp", Some(10))
        );
        assert_eq!(split_seed("r18_senet-sparse"), ("r18_senet-sparse", None));
        assert_eq!(split_seed("r18_uniform"), ("r18_uniform", None));
        assert_eq!(split_seed("-s1"), ("-s1", None));
        assert_eq!(split_seed("x-s"), ("x-s", None));
    }

    #[test]
    fn spread_and_verdict_tell_apart_from_overlap() {
        let pts: Vec<SeedPoint> = [
            ("a-s0", "1pct", 49.0),
            ("a-s1", "1pct", 48.0),
            ("a-s2", "1pct", 50.0),
            ("b-s0", "1pct", 47.5),
            ("b-s1", "1pct", 48.5),
            ("c-s0", "1pct", 40.0),
            ("c-s1", "1pct", 41.0),
            // One seed only: listed beside the lines with several, placed, not ranked.
            ("d-s0", "1pct", 60.0),
            ("f-s3", "1pct", 48.5),
            // No seed suffix: not a seed line.
            ("e", "1pct", 70.0),
            // Only one-seed lines at 3pct: no spread to compare with.
            ("a-s0", "3pct", 55.0),
            ("b-s0", "3pct", 54.0),
            ("a-s0", "10pct", 60.0),
            ("a-s1", "10pct", 61.0),
        ]
        .into_iter()
        .map(|(t, b, a)| pt(t, b, a))
        .collect();
        let sp = spreads(&pts);
        let lines: Vec<(&str, &str)> = sp
            .iter()
            .map(|s| (s.budget.as_str(), s.line.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                ("1pct", "d"),
                ("1pct", "a"),
                ("1pct", "f"),
                ("1pct", "b"),
                ("1pct", "c"),
                ("10pct", "a")
            ]
        );
        assert_eq!(budgets(&sp), ["1pct", "10pct"]);
        let a = &sp[1];
        assert_eq!(a.seeds, [(0, 49.0), (1, 48.0), (2, 50.0)]);
        assert!((a.mean - 49.0).abs() < 1e-12 && (a.sd.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!((a.min, a.max), (48.0, 50.0));
        let v = verdict("1pct", &sp).unwrap();
        assert!(
            v.starts_with("best mean at 1pct: a 49.00 [48.00, 50.00] over 3 seeds"),
            "{v}"
        );
        assert!(
            v.contains("within noise of it (ranges overlap): b 48.00"),
            "{v}"
        );
        assert!(v.contains("behind it (ranges apart): c 40.50"), "{v}");
        assert!(
            v.ends_with(
                "one seed, not ranked (no spread): d 60.00, above its range, f 48.50, inside its range"
            ),
            "{v}"
        );
        assert_eq!(verdict("3pct", &sp), None);
        let d = &sp[0];
        assert!(d.sd.is_none() && (d.min, d.max) == (60.0, 60.0));
        let c = csv(&sp);
        let rows: Vec<&str> = c.lines().skip(1).take(2).collect();
        assert_eq!(rows[0], "d,1pct,1,0,100.0,60.0000,,60.0000,60.0000,0,2.0");
        assert!(
            rows[1].starts_with("a,1pct,3,0 1 2,100.0,49.0000,1.0000"),
            "{}",
            rows[1]
        );
        let t = table(&sp);
        let rows: Vec<&str> = t.lines().skip(1).take(2).collect();
        assert!(
            rows[0].ends_with("1pct   1         60.00 (one seed)      -       2"),
            "{t}"
        );
        assert!(
            rows[1].contains("1pct   3     49.00 [48.00, 50.00]   1.00       2"),
            "{t}"
        );
    }

    #[test]
    fn a_line_that_missed_its_budget_is_not_compared() {
        let mut pts = vec![
            pt("a-s0", "1pct", 49.0),
            pt("a-s1", "1pct", 48.0),
            pt("snl-s0", "1pct", 60.0),
            pt("snl-s1", "1pct", 61.0),
        ];
        pts[3].reached = false;
        let v = verdict("1pct", &spreads(&pts)).unwrap();
        assert!(v.starts_with("best mean at 1pct: a "), "{v}");
        assert!(
            v.ends_with("not compared (budget not reached in a seed): snl"),
            "{v}"
        );
    }

    #[test]
    fn a_line_with_one_seed_is_placed_not_ranked() {
        let mut pts = vec![
            pt("a-s0", "1pct", 49.0),
            pt("a-s1", "1pct", 51.0),
            pt("snl-s0", "1pct", 45.0),
        ];
        assert_eq!(
            verdict("1pct", &spreads(&pts)).unwrap(),
            "best mean at 1pct: a 50.00 [49.00, 51.00] over 2 seeds; \
             one seed, not ranked (no spread): snl 45.00, below its range"
        );
        // At another cost, the placement says so.
        pts[2].epochs = 803;
        pts[0].epochs = 40;
        pts[1].epochs = 40;
        assert_eq!(
            verdict("1pct", &spreads(&pts)).unwrap(),
            "best mean at 1pct: a 50.00 [49.00, 51.00] over 2 seeds; \
             one seed, not ranked (no spread): snl 45.00, below its range \
             (803 epochs of mask learning against its 40)"
        );
        let t = table(&spreads(&pts));
        assert!(t.lines().nth(2).unwrap().ends_with("     803"), "{t}");
        // No line with several seeds held the budget: nothing to place the one seed against.
        pts[1].reached = false;
        assert_eq!(
            verdict("1pct", &spreads(&pts)).unwrap(),
            "one seed, not ranked (no spread): snl 45.00; \
             not compared (budget not reached in a seed): a"
        );
    }
}
