//! SVG bar charts: per-player importance with error bars (like PrivShap figures 5-8) and per-site
//! budget against capacity.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

/// The legend box of every chart here, at `at`.
fn legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>, at: SeriesLabelPosition) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// A tick value as a person writes it: integers without a decimal point (`16000`, not
/// `16000.0`), others with at most three decimals and no trailing zeros.
pub fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        return format!("{:.0}", v);
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Draw `labels` rotated, hanging down from the backend points `at` (one per label) below the
/// x axis (the mesh's own rotated labels are centred on the axis line).
fn hang_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    labels: &[String],
    at: impl Iterator<Item = (i32, i32)>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let style = TextStyle::from(
        ("sans-serif", 11)
            .into_font()
            .transform(FontTransform::Rotate90),
    )
    .pos(Pos::new(HPos::Left, VPos::Center));
    for (label, (x, y)) in labels.iter().zip(at) {
        root.draw(&Text::new(label.clone(), (x, y + 6), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// One series of bars over the chart's labels.
pub struct BarSeries<'a> {
    pub values: &'a [f64],
    /// Symmetric error bars.
    pub errors: Option<&'a [f64]>,
    pub color: RGBColor,
    /// Filled bars, or outlines.
    pub filled: bool,
    /// Legend entry.
    pub label: Option<&'a str>,
}

/// Draw `series` as bars over `labels` (one slot per label, series drawn on top of each other).
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    labels: &[String],
    series: &[BarSeries],
) -> Result<()> {
    let err_of = |s: &BarSeries, i: usize| {
        s.errors
            .map(|e| e[i])
            .filter(|v| v.is_finite())
            .unwrap_or(0.0)
    };
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for s in series {
        for (i, v) in s.values.iter().enumerate() {
            lo = lo.min(v - err_of(s, i));
            hi = hi.max(v + err_of(s, i));
        }
    }
    let pad = 0.05 * (hi - lo).max(1e-9);
    let w = (160 + 34 * labels.len()).max(640) as u32;
    // Room below the axis for the longest rotated label (about 6.5 px per character at 11 pt).
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let label_area = (20 + 13 * longest / 2).clamp(110, 240) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, 330 + label_area)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(label_area)
            .y_label_area_size(80)
            // A segmented range `0..k` has k + 1 slots: one slot per label needs `0..n - 1`.
            .build_cartesian_2d(
                (0..labels.len().saturating_sub(1)).into_segmented(),
                (lo - if lo < 0.0 { pad } else { 0.0 })..(hi + pad),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_desc)
            .y_label_formatter(&tick)
            // Tick marks only: the names are drawn below (`x_labels(0)` makes plotters loop).
            .x_labels(labels.len())
            .x_label_formatter(&|_| String::new())
            .draw()
            .map_err(err)?;
        for s in series {
            let style = if s.filled {
                s.color.mix(0.6).filled()
            } else {
                s.color.stroke_width(1)
            };
            let drawn = chart
                .draw_series(s.values.iter().enumerate().map(|(i, &v)| {
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(i), 0.0),
                            (SegmentValue::Exact(i + 1), v),
                        ],
                        style,
                    );
                    bar.set_margin(0, 0, 4, 4);
                    bar
                }))
                .map_err(err)?;
            if let Some(label) = s.label {
                drawn
                    .label(label)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
            }
            if s.errors.is_some() {
                chart
                    .draw_series(s.values.iter().enumerate().map(|(i, &v)| {
                        let e = err_of(s, i);
                        ErrorBar::new_vertical(
                            SegmentValue::CenterOf(i),
                            v - e,
                            v,
                            v + e,
                            BLACK.filled(),
                            6,
                        )
                    }))
                    .map_err(err)?;
            }
        }
        let y0 = lo - if lo < 0.0 { pad } else { 0.0 };
        hang_labels(
            &root,
            labels,
            (0..labels.len()).map(|i| chart.backend_coord(&(SegmentValue::CenterOf(i), y0))),
        )?;
        if series.iter().any(|s| s.label.is_some()) {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    crate::io::atomic_write_bytes(path, svg.as_bytes())
}

/// Bars of `values` (with `stderr` whiskers where given) over `labels`.
pub fn bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    labels: &[String],
    values: &[f64],
    stderr: Option<&[f64]>,
) -> Result<()> {
    let s = BarSeries {
        values,
        errors: stderr,
        color: BLUE,
        filled: true,
        label: None,
    };
    bar_chart(path, title, y_desc, labels, &[s])
}

/// Per-site budgets as the share of each site's capacity they keep (a linear axis of counts
/// hides a 2 % budget beside its capacity); each label carries the counts, `name (kept / capacity)`.
pub fn budget_vs_capacity(
    path: &Path,
    title: &str,
    labels: &[String],
    budget: &[i64],
    capacity: &[i64],
) -> Result<()> {
    let share: Vec<f64> = budget
        .iter()
        .zip(capacity)
        .map(|(&b, &c)| 100.0 * b as f64 / c.max(1) as f64)
        .collect();
    let labels: Vec<String> = labels
        .iter()
        .zip(budget.iter().zip(capacity))
        .map(|(l, (b, c))| format!("{l} ({b} / {c})"))
        .collect();
    let series = [BarSeries {
        values: &share,
        errors: None,
        color: RED,
        filled: true,
        label: None,
    }];
    bar_chart(
        path,
        title,
        "ReLUs kept, % of the site's capacity",
        &labels,
        &series,
    )
}

/// A palette for line series (colour-blind friendly Tableau-like colours).
pub fn palette(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

/// One named line of `(x, y)` points.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Lines with markers over a logarithmic x axis (accuracy vs ReLU count: the Pareto plot of
/// `privlin sweep`).
pub fn pareto(path: &Path, title: &str, x_desc: &str, y_desc: &str, lines: &[Line]) -> Result<()> {
    let pts = lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        anyhow::bail!("plot {}: no points", path.display());
    }
    // Log axis drawn as a linear axis over log10(x) (positive values only: ReLU counts, seconds),
    // so that a range within one decade still gets several labels (plotters' log axis labels
    // powers of ten only).
    let lg = |x: f64| x.max(1e-9).log10();
    let (x0, x1) = (lg(x0) - 0.18, lg(x1) + 0.18);
    let pad = (0.05 * (y1 - y0)).max(0.01 * y1.abs().max(1e-3));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(8)
            .x_label_formatter(&|e| {
                let v = 10f64.powf(*e);
                if v >= 1.0 {
                    count_label(v)
                } else if v >= 0.01 {
                    format!("{v:.2}")
                } else {
                    format!("{v:.1e}")
                }
            })
            .draw()
            .map_err(err)?;
        for (i, l) in lines.iter().enumerate() {
            let c = palette(i);
            let mut pts: Vec<(f64, f64)> = l.points.iter().map(|&(x, y)| (lg(x), y)).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(l.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(err)?;
    }
    crate::io::atomic_write_bytes(path, svg.as_bytes())
}

/// Lines over categorical `labels` (per-site ReLU retention, like ReLUPruner figure 5): one line
/// per series, `values[i]` at label `i`.
pub fn lines_over_labels(
    path: &Path,
    title: &str,
    y_desc: &str,
    labels: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    let hi = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max);
    let n = labels.len().max(1);
    let w = (160 + 34 * n).max(700) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(110)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0.0..(hi * 1.08).max(1e-9))
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_desc)
            .x_labels(n)
            .x_label_formatter(&|_| String::new())
            .draw()
            .map_err(err)?;
        for (i, (name, v)) in series.iter().enumerate() {
            let c = palette(i);
            let pts: Vec<(f64, f64)> = v.iter().enumerate().map(|(j, &y)| (j as f64, y)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
        }
        hang_labels(
            &root,
            labels,
            (0..labels.len()).map(|i| chart.backend_coord(&(i as f64, 0.0))),
        )?;
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    crate::io::atomic_write_bytes(path, svg.as_bytes())
}

/// A count as a tick label: `1.4k`, `139k`, `2.1M`.
fn count_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// `(lo, hi)` of log10 of the positive values, padded by `pad` decades (a flat series gets a
/// tenth of a decade each side).
fn log_range(values: impl Iterator<Item = f64>, pad: f64) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .map(f64::log10)
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    (lo <= hi).then(|| {
        let pad = pad.max(0.1 - (hi - lo) / 2.0);
        (lo - pad, hi + pad)
    })
}

/// A mask learner's path over its epochs (`trajectory.svg` of a linearize run): kept ReLUs on a
/// log axis with the budget as a dashed line and, below it where the learner has one, its
/// penalty weight lambda on a log axis (SNL's schedule, Cho et al. 2022, Algorithm 1). Both log
/// axes are drawn as linear axes over log10 so that a range within one decade still gets labels.
pub fn trajectory(
    path: &Path,
    title: &str,
    relus: &[(i32, f64)],
    budget: f64,
    lambda: &[(i32, f64)],
) -> Result<()> {
    let Some((y0, y1)) = log_range(relus.iter().map(|p| p.1).chain([budget]), 0.05) else {
        anyhow::bail!("plot {}: no epochs with a positive count", path.display());
    };
    let x1 = relus.iter().map(|p| p.0).fold(1, i32::max);
    let lg = |pts: &[(i32, f64)]| -> Vec<(i32, f64)> {
        pts.iter()
            .filter(|p| p.1 > 0.0)
            .map(|&(x, y)| (x, y.log10()))
            .collect()
    };
    let lambda_range = log_range(lambda.iter().map(|p| p.1), 0.05);
    let mut svg = String::new();
    {
        let height = if lambda_range.is_some() { 640 } else { 460 };
        let root = SVGBackend::with_string(&mut svg, (760, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (top, bottom) = root.split_vertically(440);
        let mut chart = ChartBuilder::on(&top)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("ReLUs kept (log)")
            .y_label_formatter(&|v| count_label(10f64.powf(*v)))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(lg(relus), palette(0).stroke_width(2)))
            .map_err(err)?
            .label("ReLUs kept")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], palette(0).stroke_width(2))
            });
        let b = budget.max(1.0).log10();
        chart
            .draw_series(DashedLineSeries::new([(0, b), (x1, b)], 6, 4, BLACK.into()))
            .map_err(err)?
            .label(format!("budget {}", tick(&budget)))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 6, y)], BLACK));
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        if let Some((l0, l1)) = lambda_range {
            let mut chart = ChartBuilder::on(&bottom)
                .margin(14)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(0..x1, l0..l1)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc("lambda (log)")
                .y_labels(4)
                .y_label_formatter(&|v| format!("{:.1e}", 10f64.powf(*v)))
                .draw()
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(lg(lambda), palette(1).stroke_width(2)))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    crate::io::atomic_write_bytes(path, svg.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticks_read_like_numbers() {
        assert_eq!(super::tick(&16000.0), "16000");
        assert_eq!(super::tick(&2.5), "2.5");
        assert_eq!(super::tick(&0.125), "0.125");
        assert_eq!(super::tick(&-3.0), "-3");
    }
}
