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
