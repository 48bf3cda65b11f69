//! SVG bar charts: per-player importance with error bars (like PrivShap figures 5-8) and per-site
//! budget against capacity.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

/// Bars of `values` (with `stderr` whiskers) over `labels`.
pub fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    labels: &[String],
    values: &[f64],
    stderr: Option<&[f64]>,
) -> Result<()> {
    let w = (160 + 34 * labels.len()).max(640) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let se = |i: usize| {
            stderr
                .map(|s| s[i])
                .filter(|v| v.is_finite())
                .unwrap_or(0.0)
        };
        let hi = values
            .iter()
            .enumerate()
            .map(|(i, v)| v + se(i))
            .fold(0.0f64, f64::max);
        let lo = values
            .iter()
            .enumerate()
            .map(|(i, v)| v - se(i))
            .fold(0.0f64, f64::min);
        let pad = 0.05 * (hi - lo).max(1e-9);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(110)
            .y_label_area_size(70)
            .build_cartesian_2d((0..labels.len()).into_segmented(), (lo - pad)..(hi + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_label)
            .x_labels(labels.len())
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_style(
                ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            )
            .draw()
            .map_err(err)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), v),
                    ],
                    BLUE.mix(0.6).filled(),
                );
                bar.set_margin(0, 0, 4, 4);
                bar
            }))
            .map_err(err)?;
        if stderr.is_some() {
            chart
                .draw_series(values.iter().enumerate().map(|(i, &v)| {
                    ErrorBar::new_vertical(
                        SegmentValue::CenterOf(i),
                        v - se(i),
                        v,
                        v + se(i),
                        BLACK.filled(),
                        6,
                    )
                }))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    crate::io::atomic_write_bytes(path, svg.as_bytes())
}

/// Per-site budget (filled) against capacity (outline).
pub fn budget_vs_capacity(
    path: &Path,
    title: &str,
    labels: &[String],
    budget: &[i64],
    capacity: &[i64],
) -> Result<()> {
    let w = (160 + 34 * labels.len()).max(640) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let hi = capacity.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(110)
            .y_label_area_size(80)
            .build_cartesian_2d((0..labels.len()).into_segmented(), 0.0..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("ReLUs")
            .x_labels(labels.len())
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_style(
                ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            )
            .draw()
            .map_err(err)?;
        chart
            .draw_series(capacity.iter().enumerate().map(|(i, &c)| {
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), c as f64),
                    ],
                    BLACK.stroke_width(1),
                );
                r.set_margin(0, 0, 4, 4);
                r
            }))
            .map_err(err)?
            .label("capacity")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], BLACK.stroke_width(1)));
        chart
            .draw_series(budget.iter().enumerate().map(|(i, &b)| {
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), b as f64),
                    ],
                    RED.mix(0.6).filled(),
                );
                r.set_margin(0, 0, 4, 4);
                r
            }))
            .map_err(err)?
            .label("budget")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], RED.mix(0.6).filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    crate::io::atomic_write_bytes(path, svg.as_bytes())
}
