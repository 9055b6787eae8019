//! The SVG chart: one horizontal bar per figure, Berth's advantage over registry:2 on a log10
//! axis, drawn from 1× (right = Berth better), a vertical line at 1× and a tick at each target.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::figures::{Figure, fmt_num};

const WIDTH: u32 = 1000;
const ROW: u32 = 30;
const LABEL_AREA: u32 = 250;

/// Draws `figures` into `path` (SVG).
pub fn draw(path: &Path, figures: &[Figure], title: &str) -> Result<()> {
    let rows: Vec<&Figure> = figures.iter().filter(|f| f.failed.is_none()).collect();
    let n = rows.len().max(1);
    let height = 130 + ROW * n as u32;
    let (lo, hi) = x_range(&rows);
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(LABEL_AREA)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("Berth advantage over registry:2 (×, log scale; > 1 = Berth better)")
        .x_label_formatter(&|x| axis_label(*x))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;

    let label_style = ("sans-serif", 14)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    let value_style = ("sans-serif", 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, f) in rows.iter().enumerate() {
        // First figure at the top.
        let y = (n - 1 - i) as f64;
        let (label_x, label_y) = chart.backend_coord(&(lo, y + 0.5));
        root.draw(&Text::new(f.name.clone(), (label_x - 8, label_y), label_style.clone()))
            .map_err(|e| anyhow!("{e}"))?;
        let Some(ratio) = f.ratio else {
            chart
                .draw_series(std::iter::once(Text::new(
                    "not measured".to_owned(),
                    (1.0, y + 0.5),
                    value_style.clone(),
                )))
                .map_err(|e| anyhow!("{e}"))?;
            continue;
        };
        let r = ratio.clamp(lo, hi);
        let color = match f.met {
            Some(true) => RGBColor(46, 139, 87),
            Some(false) => RGBColor(205, 92, 92),
            None => RGBColor(100, 130, 180),
        };
        let (a, b) = if r >= 1.0 { (1.0, r) } else { (r, 1.0) };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, y + 0.2), (b, y + 0.8)],
                color.filled(),
            )))
            .map_err(|e| anyhow!("{e}"))?;
        if let Some(t) = f.target_ratio {
            let t = t.clamp(lo, hi);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(t, y + 0.05), (t, y + 0.95)],
                    BLACK.stroke_width(3),
                )))
                .map_err(|e| anyhow!("{e}"))?;
        }
        let right = f.target_ratio.map_or(r, |t| r.max(t.clamp(lo, hi))).max(1.0);
        let (vx, vy) = chart.backend_coord(&(right, y + 0.5));
        let bound = if f.ratio_is_lower_bound { "≥ " } else { "" };
        root.draw(&Text::new(
            format!("{bound}{}×", fmt_num(ratio)),
            (vx + 6, vy),
            value_style.clone(),
        ))
        .map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n as f64)],
            BLACK.stroke_width(1),
        )))
        .map_err(|e| anyhow!("{e}"))?;
    let legend = "bar: Berth's advantage (green: target met, red: not met, blue: no ratio target) · black tick: target ratio · line: 1× (parity)";
    let (lx, _) = chart.backend_coord(&(lo, 0.0));
    root.draw(&Text::new(
        legend,
        (lx, height as i32 - 12),
        ("sans-serif", 12).into_font().color(&RGBColor(80, 80, 80)),
    ))
    .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Axis tick labels: `0.1×`, `1×`, `10×`, … (ticks fall on powers of ten and their multiples).
fn axis_label(x: f64) -> String {
    if x >= 1.0 {
        format!("{x:.0}×")
    } else {
        let s = format!("{x:.3}");
        format!("{}×", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// A log axis range covering every ratio and target, in whole powers of ten, at least 0.1–100.
fn x_range(rows: &[&Figure]) -> (f64, f64) {
    let values = rows
        .iter()
        .flat_map(|f| [f.ratio, f.target_ratio])
        .flatten()
        .filter(|v| v.is_finite() && *v > 0.0);
    let (mut lo, mut hi) = (0.1f64, 100.0f64);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v * 1.5);
    }
    (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::Better;

    #[test]
    fn draws_an_svg() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.svg");
        let figures = vec![
            Figure::new("a_rate", "MB/s", Better::Higher, vec![100.0], vec![450.0]).target_speedup(3.0),
            Figure::new("b_latency", "ms", Better::Lower, vec![10.0], vec![20.0]),
            Figure::new("c_missing", "x", Better::Higher, vec![], vec![1.0]),
            Figure {
                ratio_is_lower_bound: true,
                ..Figure::new("d_huge", "req/s", Better::Higher, vec![1.0], vec![5000.0]).target_speedup(30.0)
            },
        ];
        draw(&path, &figures, "test")?;
        let svg = std::fs::read_to_string(&path)?;
        assert!(svg.contains("<svg") && svg.contains("a_rate") && svg.contains("4.50×"));
        assert!(svg.contains("≥ 5000×"), "a lower bound is marked");
        assert_eq!(
            (axis_label(0.1), axis_label(1.0), axis_label(1000.0)),
            ("0.1×".into(), "1×".into(), "1000×".into())
        );
        assert_eq!(x_range(&figures.iter().collect::<Vec<_>>()), (0.1, 10000.0));
        Ok(())
    }
}
