//! Both nonlinear families (garbled circuits and OT comparisons) priced side by side for a list
//! of exported models, e.g. one linearized network at several budgets: where each family wins.

use anyhow::Result;
use privlin_mpc::cost;
use privlin_mpc::net::Profile;
use privlin_mpc::nonlinear::Nonlinear;
use privlin_mpc::protocol::Options;
use privlin_mpc::{bench, ModelFile, QuantModel, Ring};
use serde::Serialize;
use std::path::Path;

/// One model under one family: exact bytes and flights, predicted seconds under the profile.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyPoint {
    pub model: String,
    pub nonlinear: String,
    pub active_relus: usize,
    pub online_bytes: u64,
    pub offline_bytes: u64,
    pub online_flights: u64,
    pub offline_flights: u64,
    pub online_s: f64,
    pub offline_s: f64,
}

/// Prices `models` under both families ([`Nonlinear::candidates`]) with this machine's
/// calibration (measured once per model, `threads` per party) and `profile` (`None`: compute
/// and hand-over only).
pub fn compare(
    models: &[(String, ModelFile)],
    ring: Ring,
    opts: &Options,
    profile: Option<&Profile>,
    threads: usize,
) -> Result<Vec<FamilyPoint>> {
    let mut out = Vec::new();
    for (label, file) in models {
        let qm = QuantModel::new(file, ring)?;
        let cal = bench::calibrate_for(&qm, threads);
        for f in Nonlinear::candidates() {
            let o = opts.with_nonlinear(f);
            let (on, off, on_c, off_c) = cost::totals(&qm.arch, &ring, &o, &cal)?;
            out.push(FamilyPoint {
                model: label.clone(),
                nonlinear: f.name(),
                active_relus: qm.arch.active_total(),
                online_bytes: on.bytes(),
                offline_bytes: off.bytes(),
                online_flights: on.flights,
                offline_flights: off.flights,
                online_s: cost::phase_seconds(on_c, &on, profile, &cal),
                offline_s: cost::phase_seconds(off_c, &off, profile, &cal),
            });
        }
    }
    Ok(out)
}

/// Predicted seconds per model and family, online filled and offline stacked above it
/// (outlined: the bar's full height is online + offline).
pub fn plot(points: &[FamilyPoint], path: &Path, network: &str) -> Result<()> {
    use crate::plot::{bar_chart, palette, BarSeries};
    let labels: Vec<String> = points
        .iter()
        .map(|p| format!("{} {}", p.model, p.nonlinear))
        .collect();
    let total: Vec<f64> = points.iter().map(|p| p.online_s + p.offline_s).collect();
    let online: Vec<f64> = points.iter().map(|p| p.online_s).collect();
    bar_chart(
        path,
        &format!("Predicted latency per inference, both nonlinear families, {network}"),
        "seconds (online filled, + offline outlined)",
        &labels,
        &[
            BarSeries {
                values: &total,
                errors: None,
                color: palette(1),
                filled: false,
                label: Some("online + offline"),
            },
            BarSeries {
                values: &online,
                errors: None,
                color: palette(0),
                filled: true,
                label: Some("online"),
            },
        ],
    )
}
