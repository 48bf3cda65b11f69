//! `report.md` of a run: budgets, per-site counts, accuracy before and after fine-tuning, MACs,
//! ReLU count and the latency the papers estimate from it.

use super::run::StageReport;
use super::BudgetOutcome;
use crate::budget::Allocation;
use crate::importance::Importance;
use crate::nn::Model;
use crate::pi::PiReport;
use std::fmt::Write;

/// DELPHI's online cost per ReLU as the papers quote it (PrivShap section 4, ReLUPruner Table 1),
/// one constant for the whole project: [`privlin_mpc::cost::PAPER_SECONDS_PER_KRELU`].
pub use privlin_mpc::cost::PAPER_SECONDS_PER_KRELU as DELPHI_SECONDS_PER_KRELU;

/// Everything a report can show; absent stages are left out.
pub struct ReportInputs<'a> {
    pub title: &'a str,
    pub model: &'a Model,
    pub importance: Option<&'a Importance>,
    pub allocation: Option<&'a Allocation>,
    pub linearize: Option<&'a StageReport>,
    pub finetune: Option<&'a StageReport>,
    /// The private-inference stage (`pi/pi.json`).
    pub pi: Option<&'a PiReport>,
    /// The reshape stage (`final/reshape.json`), when it replaced the fine-tuning.
    pub reshape: Option<&'a crate::reshape::ReshapeReport>,
}

fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}

/// The report as Markdown.
pub fn markdown(r: &ReportInputs) -> String {
    let mut s = String::new();
    let m = r.model;
    let cap = m.relu_count();
    let _ = writeln!(s, "# {}\n", r.title);
    let _ = writeln!(
        s,
        "Model: {} width x{}, {}x{} input, {} classes; {} counted ReLUs ({}); {:.2} M MACs per image.\n",
        m.spec.arch,
        m.spec.width,
        m.spec.input_size,
        m.spec.input_size,
        m.spec.classes,
        cap,
        m.spec.convention.describe(),
        m.macs_total() as f64 / 1e6
    );
    let last = r.finetune.or(r.linearize);
    if let Some(l) = last {
        let _ = writeln!(s, "## Summary\n");
        let _ = writeln!(s, "| | all-ReLU | partial-ReLU |");
        let _ = writeln!(s, "|---|---:|---:|");
        let _ = writeln!(
            s,
            "| ReLUs | {} | {} ({:.2} %) |",
            cap,
            l.relus,
            100.0 * l.relus as f64 / cap as f64
        );
        let _ = writeln!(
            s,
            "| latency estimate (DELPHI, {DELPHI_SECONDS_PER_KRELU} s per 1,000 ReLUs, papers' figure) | {:.3} s | {:.3} s |",
            cap as f64 / 1000.0 * DELPHI_SECONDS_PER_KRELU,
            l.relus as f64 / 1000.0 * DELPHI_SECONDS_PER_KRELU
        );
        let _ = writeln!(
            s,
            "| MACs | {:.2} M | {:.2} M (linearization keeps every layer) |",
            m.macs_total() as f64 / 1e6,
            m.macs_total() as f64 / 1e6
        );
        let _ = writeln!(s, "| test accuracy | {} | |", pct(l.test_acc_ar));
        if let Some(lin) = r.linearize {
            let _ = writeln!(
                s,
                "| after linearization (`{}`, {} epochs) | | {} |",
                lin.method,
                lin.epochs,
                pct(lin.test_acc)
            );
        }
        if let Some(ft) = r.finetune {
            let loss = match ft.config.get("loss").and_then(|l| l.as_str()) {
                Some("snl") => "CE + KL, SNL's recipe",
                _ => "KL + CE + PRAM",
            };
            let _ = writeln!(
                s,
                "| after fine-tuning ({} epochs, {loss}) | | {} |",
                ft.epochs,
                pct(ft.test_acc)
            );
        }
        if let Some(lin) = r
            .linearize
            .filter(|x| x.budget_outcome == Some(BudgetOutcome::NotReached))
        {
            // The learner's own reason (its note), not one learner's reason for all.
            let why = lin
                .notes
                .iter()
                .find(|n| n.starts_with("budget not reached"))
                .map(|n| {
                    n.trim_start_matches("budget not reached")
                        .trim_start_matches(':')
                })
                .map(str::trim)
                .unwrap_or("the learner did not get to the budget");
            let _ = writeln!(
                s,
                "\n**Budget not reached** ({}): the model keeps {} ReLUs, more than the budget of \
                 {}. {why}.",
                lin.method, l.relus, l.budget
            );
        }
        if let Some(w) = r.finetune.and_then(far_below_start) {
            let _ = writeln!(s, "\n**Warning**: {w}.");
        }
        let _ = writeln!(
            s,
            "\nTest set: {} images; training images per stage: {}.\n",
            l.test_images, l.train_images
        );
    }
    if let Some(p) = r.pi {
        private_inference(&mut s, p);
    }
    if let Some(imp) = r.importance {
        let _ = writeln!(s, "## Layer importance (`{}`)\n", imp.method);
        let _ = writeln!(s, "| player | value |");
        let _ = writeln!(s, "|---|---:|");
        for (p, v) in imp.players.iter().zip(&imp.values) {
            let _ = writeln!(s, "| {p} | {v:.4} |");
        }
        let _ = writeln!(
            s,
            "\n{} utility evaluations, {:.1} s.\n",
            imp.evaluations, imp.seconds
        );
    }
    if let Some(a) = r.allocation {
        let _ = writeln!(
            s,
            "Budget: {} of {} ReLUs, allocated by `{}`.\n",
            a.budget, a.capacity, a.method
        );
        for n in &a.notes {
            let _ = writeln!(s, "- note: {n}");
        }
    }
    if let Some(l) = last {
        let _ = writeln!(s, "## Per-site ReLUs\n");
        let _ = writeln!(s, "| site | capacity | budget | kept | kept % |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for site in &l.sites {
            let _ = writeln!(
                s,
                "| {}{} | {} | {} | {} | {:.2} |",
                site.name,
                if site.counted { "" } else { " (not counted)" },
                site.capacity,
                site.budget
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
                site.kept,
                100.0 * site.kept as f64 / site.capacity as f64
            );
        }
        if let Some(rs) = r.reshape {
            let _ = writeln!(
                s,
                "\n## Depth reduction (gated branching, auxiliary classifier)\n\nServed: {}. d_th = {}, gate ramp {} of {} epochs.\n\n{}\n{}",
                rs.served,
                rs.d_th,
                rs.ramp_epochs,
                rs.epochs,
                rs.table(),
                rs.blocks_table()
            );
        }
        let notes: Vec<&String> = r
            .linearize
            .iter()
            .chain(r.finetune.iter())
            .flat_map(|x| &x.notes)
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(s, "\nNotes:\n");
            for n in notes {
                let _ = writeln!(s, "- {n}");
            }
        }
    }
    s
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// The private-inference section: measured traffic and time of this model beside the cost
/// model's predictions, and the all-ReLU network's predicted cost.
pub fn private_inference(s: &mut String, p: &PiReport) {
    let _ = writeln!(s, "## Private inference (privlin-mpc, measured)\n");
    let _ = writeln!(
        s,
        "Two-party inference (DELPHI-style: garbled circuits for the active ReLUs only, identity \
         positions truncated locally) of {} test images, ring l = {}, f = {}, w = {}; {}; {}; \
         output: {}; on {} ({} threads per party), {}. Export: `{}`.\n",
        p.images,
        p.ring.bits,
        p.ring.frac,
        p.ring.gc_bits,
        p.offline_linear,
        p.randomness,
        p.output,
        p.machine,
        p.threads,
        p.network,
        p.export
    );
    let _ = writeln!(s, "| per inference | all-ReLU (predicted) | partial-ReLU |");
    let _ = writeln!(s, "|---|---:|---:|");
    let (a, m) = (&p.all_relu, &p.partial);
    let _ = writeln!(
        s,
        "| active ReLUs (garbled circuits or OT) | {} | {} |",
        a.active_relus, m.active_relus
    );
    let _ = writeln!(
        s,
        "| online traffic (measured = predicted) | {} | {} |",
        mb(a.online_bytes),
        mb(m.online_bytes)
    );
    let _ = writeln!(
        s,
        "| offline traffic (measured = predicted) | {} | {} |",
        mb(a.offline_bytes),
        mb(m.offline_bytes)
    );
    let _ = writeln!(
        s,
        "| online / offline flights | {} / {} | {} / {} |",
        a.online_flights, a.offline_flights, m.online_flights, m.offline_flights
    );
    let _ = writeln!(
        s,
        "| online s, measured (in-memory channel) | | {:.3} s |",
        p.online_s
    );
    let _ = writeln!(
        s,
        "| offline s, measured (in-memory channel) | | {:.3} s |",
        p.offline_s
    );
    for (x, y) in a.predicted.iter().zip(&m.predicted) {
        let _ = writeln!(
            s,
            "| online / offline s, predicted: {} | {:.3} / {:.3} | {:.3} / {:.3} |",
            x.network, x.online_s, x.offline_s, y.online_s, y.offline_s
        );
    }
    let _ = writeln!(
        s,
        "| papers' estimate ({DELPHI_SECONDS_PER_KRELU} s per 1,000 ReLUs online) | {:.3} s | {:.3} s |",
        a.active_relus as f64 / 1000.0 * DELPHI_SECONDS_PER_KRELU,
        m.active_relus as f64 / 1000.0 * DELPHI_SECONDS_PER_KRELU
    );
    let _ = writeln!(
        s,
        "\nPrivate class = float model's class on {}/{} images (plaintext fixed point: {}/{}; \
         {} active pre-activations outside the circuit width); private class = label on {}/{}.\n",
        p.agree_float, p.images, p.agree_fixed_point, p.images, p.gc_overflows, p.correct, p.images
    );
    if p.max_identity_abs > 0 {
        let _ = writeln!(
            s,
            "Largest |pre-activation| at an identity position: 2^{:.1} at scale 2f (the wrap-failure bound assumes below 2^{}){}.\n",
            (p.max_identity_abs as f64).log2(),
            p.ring.gc_bits - 1,
            if p.identity_over_bound {
                ": **over the bound**, local truncation may fail more often than stated; use a wider circuit width or `--truncation faithful`"
            } else {
                ""
            }
        );
    }
    if !p.by_family.is_empty() {
        let _ = writeln!(
            s,
            "Active ReLUs ran on `{}`. Both nonlinear families priced by the cost model for this \
             model (`gc`: garbled circuits; `ot`: the millionaires' protocol on OT; the weight \
             layers' offline phase is the same in both):\n",
            p.nonlinear
        );
        let _ = writeln!(
            s,
            "| family | online | offline | online / offline flights | online + offline s, {} |",
            p.partial
                .slowest()
                .map(|w| w.network.as_str())
                .unwrap_or("slowest network")
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for f in &p.by_family {
            let c = &f.partial;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} / {} | {} |",
                f.nonlinear,
                mb(c.online_bytes),
                mb(c.offline_bytes),
                c.online_flights,
                c.offline_flights,
                c.slowest()
                    .map(|w| format!("{:.3} s", w.online_s + w.offline_s))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(s);
    }
}

/// Points of test accuracy a final stage may lose against the partial-ReLU model it started
/// from before the report and the run's last line warn.
pub const FAR_BELOW_START_POINTS: f64 = 10.0;

/// The warning when a fine-tuning or reshape stage ends far below the model it started from
/// (issue 39: the `shallow` preset at 2 % fell from 73.6 % to 28.8 % with nothing said).
pub fn far_below_start(ft: &StageReport) -> Option<String> {
    let start = ft.test_acc_start?;
    let lost = 100.0 * (start - ft.test_acc);
    (lost > FAR_BELOW_START_POINTS).then(|| {
        format!(
            "the `{}` stage ended at {:.2} % test accuracy, {lost:.1} points below the {:.2} % of \
             the model it started from (for the shallow preset: fewer blocks, a lower \
             reshape.d_th, or more epochs)",
            ft.stage,
            100.0 * ft.test_acc,
            100.0 * start
        )
    })
}
