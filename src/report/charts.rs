//! SVG charts (plotters). Each chart carries a caption line saying which
//! commit, toolchain and machine produced it.

use std::path::Path;

use plotters::prelude::*;

/// One line of a line chart: a name and (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// How an axis is scaled.
#[derive(Clone, Copy)]
pub enum Scale {
    Linear,
    Log,
}

pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub caption: &'a str,
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn bounds(values: impl Iterator<Item = f64> + Clone, scale: Scale) -> (f64, f64) {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    match scale {
        Scale::Log => (lo / 1.5, hi * 1.5),
        Scale::Linear => (0.0, hi * 1.1),
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws `series` as lines with points into an SVG file.
pub fn line_chart(path: &Path, chart: &LineChart<'_>, series: &[Series]) -> DrawResult {
    let pts = || series.iter().flat_map(|s| s.points.iter().copied());
    if pts().next().is_none() {
        return Ok(());
    }
    let (x0, x1) = bounds(pts().map(|p| p.0), chart.x_scale);
    let (y0, y1) = bounds(pts().map(|p| p.1), chart.y_scale);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (main, foot) = root.split_vertically(530);
    foot.draw_text(
        chart.caption,
        &("sans-serif", 12).into_font().color(&BLACK.mix(0.6)),
        (10, 8),
    )?;
    let mut builder = ChartBuilder::on(&main);
    builder
        .caption(chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    macro_rules! draw {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_desc(chart.x_label)
                .y_desc(chart.y_label)
                .x_label_formatter(&|v| number(*v))
                .y_label_formatter(&|v| number(*v))
                .label_style(("sans-serif", 13))
                .draw()?;
            for (i, s) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                ctx.draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
                ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 13))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
        }};
    }
    match (chart.x_scale, chart.y_scale) {
        (Scale::Log, Scale::Log) => {
            draw!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?)
        }
        (Scale::Log, Scale::Linear) => {
            draw!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?)
        }
        (Scale::Linear, Scale::Log) => {
            draw!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?)
        }
        (Scale::Linear, Scale::Linear) => draw!(builder.build_cartesian_2d(x0..x1, y0..y1)?),
    }
    root.present()?;
    Ok(())
}

/// An axis label: whole numbers without decimals, others with two digits.
fn number(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws labelled horizontal bars into an SVG file.
pub fn bar_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    caption: &str,
    bars: &[(String, f64)],
) -> DrawResult {
    if bars.is_empty() {
        return Ok(());
    }
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max) * 1.15;
    let height = 120 + 34 * bars.len() as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (main, foot) = root.split_vertically(height - 30);
    foot.draw_text(
        caption,
        &("sans-serif", 12).into_font().color(&BLACK.mix(0.6)),
        (10, 8),
    )?;
    let n = bars.len();
    let mut ctx = ChartBuilder::on(&main)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(230)
        .build_cartesian_2d(0.0..max, (0..n - 1).into_segmented())?;
    ctx.configure_mesh()
        .x_desc(x_label)
        .x_label_formatter(&|v| number(*v))
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars
                .get(n - 1 - *i)
                .map(|b| b.0.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 13))
        .disable_y_mesh()
        .draw()?;
    ctx.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        let row = n - 1 - i;
        let color = PALETTE[i % PALETTE.len()];
        let mut r = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(row)),
                (*v, SegmentValue::Exact(row + 1)),
            ],
            color.mix(0.8).filled(),
        );
        r.set_margin(5, 5, 0, 0);
        r
    }))?;
    ctx.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        Text::new(
            format!("{v:.0}"),
            (*v, SegmentValue::CenterOf(n - 1 - i)),
            ("sans-serif", 12),
        )
    }))?;
    root.present()?;
    Ok(())
}

/// Adds the full provenance as an XML comment after the SVG's first line
/// (the visible caption has no room for every crate version).
pub fn stamp(path: &Path, provenance: &str) -> std::io::Result<()> {
    let Ok(svg) = std::fs::read_to_string(path) else {
        return Ok(()); // not drawn (no data)
    };
    let comment = format!("<!-- statebench: {} -->", provenance.replace("--", "- -"));
    let stamped = match svg.split_once('\n') {
        Some((first, rest)) if first.starts_with("<?xml") => format!("{first}\n{comment}\n{rest}"),
        _ => format!("{comment}\n{svg}"),
    };
    std::fs::write(path, stamped)
}

/// One panel of a [`timeline_panels`] chart: a line on the left axis (log
/// scale), a step line on the right one (linear), and a horizontal limit
/// on the left one.
pub struct Panel {
    pub title: String,
    pub left: Vec<(f64, f64)>,
    pub right: Vec<(f64, f64)>,
    pub limit: Option<f64>,
}

/// The labels of a [`timeline_panels`] chart.
pub struct Timelines<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub left_label: &'a str,
    pub right_label: &'a str,
    pub limit_label: &'a str,
    pub caption: &'a str,
}

/// Draws one panel per entry of `panels`, stacked, on a shared time axis.
pub fn timeline_panels(path: &Path, chart: &Timelines<'_>, panels: &[Panel]) -> DrawResult {
    if panels.is_empty() {
        return Ok(());
    }
    let all = || panels.iter().flat_map(|p| p.left.iter().chain(&p.right));
    let x1 = all().map(|p| p.0).fold(1.0, f64::max);
    let lefts = || {
        panels
            .iter()
            .flat_map(|p| p.left.iter().map(|v| v.1).chain(p.limit))
            .filter(|v| *v > 0.0)
    };
    let y0 = lefts().fold(f64::INFINITY, f64::min).min(1.0) / 1.5;
    let y1 = lefts().fold(1.0, f64::max) * 1.5;
    let r1 = panels
        .iter()
        .flat_map(|p| p.right.iter().map(|v| v.1))
        .fold(1.0, f64::max)
        + 1.0;
    let height = 60 + 260 * panels.len() as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (main, foot) = root.split_vertically(height - 30);
    foot.draw_text(
        chart.caption,
        &("sans-serif", 12).into_font().color(&BLACK.mix(0.6)),
        (10, 8),
    )?;
    let main = main.titled(chart.title, ("sans-serif", 20))?;
    let left_color = PALETTE[3];
    let right_color = PALETTE[0];
    for (panel, area) in panels.iter().zip(main.split_evenly((panels.len(), 1))) {
        let mut ctx = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.0..x1, (y0..y1).log_scale())?
            .set_secondary_coord(0.0..x1, 0.0..r1);
        ctx.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.left_label)
            .x_label_formatter(&|v| number(*v))
            .y_label_formatter(&|v| number(*v))
            .label_style(("sans-serif", 12))
            .draw()?;
        ctx.configure_secondary_axes()
            .y_desc(chart.right_label)
            .y_label_formatter(&|v| number(*v))
            .label_style(("sans-serif", 12))
            .draw()?;
        ctx.draw_series(LineSeries::new(
            panel.left.iter().copied().filter(|p| p.1 > 0.0),
            left_color.stroke_width(2),
        ))?
        .label(chart.left_label)
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], left_color.stroke_width(2))
        });
        if let Some(limit) = panel.limit {
            let grey = BLACK.mix(0.5);
            ctx.draw_series(LineSeries::new(
                [(0.0, limit), (x1, limit)],
                grey.stroke_width(1),
            ))?
            .label(chart.limit_label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        }
        // Replicas change in steps: hold each value until the next.
        let mut steps = Vec::new();
        for w in panel.right.windows(2) {
            steps.push(w[0]);
            steps.push((w[1].0, w[0].1));
        }
        steps.extend(panel.right.last().copied());
        ctx.draw_secondary_series(LineSeries::new(steps, right_color.stroke_width(2)))?
            .label(chart.right_label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], right_color.stroke_width(2))
            });
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
