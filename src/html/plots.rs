//! Plots for the HTML report, drawn as inline SVG with the `plotters` crate's SVG backend (no JavaScript, no fonts
//! embedded: text is SVG `<text>` the browser renders).

use plotters::prelude::*;

/// Width and height of the plots, in pixels.
const SIZE: (u32, u32) = (560, 300);
/// Bins of a score histogram.
const SCORE_BINS: usize = 20;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// Class colours (Tableau 10 without its red, which marks flagged rows).
const CLASS_COLOURS: [(u8, u8, u8); 9] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// A chart builder with the report's caption, margin and axis label areas (`x_labels` pixels for the x labels).
fn frame<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
    title: &'b str,
    x_labels: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(x_labels)
        .y_label_area_size(55);
    b
}

/// The series legend in the upper right corner of a chart.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Colour of class `i` (data rows); reference rows are drawn in the same colour, hollow.
pub fn class_colour(i: usize) -> RGBColor {
    let (r, g, b) = CLASS_COLOURS[i % CLASS_COLOURS.len()];
    RGBColor(r, g, b)
}

/// Histogram of a detector's scores on a log count axis, with the flag threshold marked.
pub fn score_histogram(title: &str, scores: &[f32], threshold: f32) -> Result<String, String> {
    let mut counts = [0u64; SCORE_BINS];
    for &s in scores {
        let b = ((s.clamp(0.0, 1.0) * SCORE_BINS as f32) as usize).min(SCORE_BINS - 1);
        counts[b] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = frame(&root, title, 35)
            .build_cartesian_2d(0f64..1f64, (0.5f64..max * 2.0).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("score")
            .y_desc("rows (log)")
            .disable_x_mesh()
            .draw()
            .map_err(err)?;
        let w = 1.0 / SCORE_BINS as f64;
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c > 0)
                    .map(|(b, &c)| {
                        let lo = b as f64 * w;
                        let colour = if lo + w / 2.0 >= f64::from(threshold) {
                            RGBColor(200, 40, 40)
                        } else {
                            RGBColor(70, 110, 170)
                        };
                        Rectangle::new(
                            [(lo + w * 0.05, 0.5), (lo + w * 0.95, c as f64)],
                            colour.filled(),
                        )
                    }),
            )
            .map_err(err)?;
        let t = f64::from(threshold);
        chart
            .draw_series(LineSeries::new(
                vec![(t, 0.5), (t, max * 2.0)],
                BLACK.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("flag threshold {threshold}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(2)));
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// One series of a scatter plot.
pub struct Series<'a> {
    /// Legend text.
    pub name: String,
    /// Points.
    pub points: &'a [(f32, f32)],
    /// Colour.
    pub colour: RGBColor,
    /// Filled (data) or hollow (reference) markers.
    pub filled: bool,
    /// Marker radius.
    pub radius: i32,
}

fn bounds(series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let mut xs = (f64::INFINITY, f64::NEG_INFINITY);
    let mut ys = (f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        for &(x, y) in s.points {
            if x.is_finite() && y.is_finite() {
                xs = (xs.0.min(f64::from(x)), xs.1.max(f64::from(x)));
                ys = (ys.0.min(f64::from(y)), ys.1.max(f64::from(y)));
            }
        }
    }
    let pad = |(lo, hi): (f64, f64)| {
        if !lo.is_finite() {
            return (-1.0, 1.0);
        }
        let m = ((hi - lo) * 0.05).max(1e-6);
        (lo - m, hi + m)
    };
    (pad(xs), pad(ys))
}

/// Scatter plot of several series with a legend.
pub fn scatter(title: &str, axes: (&str, &str), series: &[Series]) -> Result<String, String> {
    let ((x0, x1), (y0, y1)) = bounds(series);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (SIZE.0, SIZE.1 + 100)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = frame(&root, title, 35)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .draw()
            .map_err(err)?;
        for s in series {
            let colour = s.colour;
            let (filled, r) = (s.filled, s.radius);
            let style = move || {
                if filled {
                    colour.mix(0.75).filled()
                } else {
                    colour.stroke_width(1)
                }
            };
            chart
                .draw_series(
                    s.points
                        .iter()
                        .filter(|p| p.0.is_finite() && p.1.is_finite())
                        .map(|&(x, y)| Circle::new((f64::from(x), f64::from(y)), r, style())),
                )
                .map_err(err)?
                .label(s.name.clone())
                .legend(move |(x, y)| Circle::new((x + 6, y), r.max(3), style()));
        }
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// Reference share against data share per bin, as paired bars.
pub fn paired_bars(
    title: &str,
    bins: &[String],
    expected: &[f64],
    observed: &[f64],
) -> Result<String, String> {
    let n = bins.len().max(1);
    let top = expected
        .iter()
        .chain(observed)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.4;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let labels = bins.to_vec();
        let mut chart = frame(&root, title, 45)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..top)
            .map_err(err)?;
        // Bin i is centred on x = i; only those ticks are labelled.
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() > 1e-6 || i < 0.0 {
                    return String::new();
                }
                labels.get(i as usize).cloned().unwrap_or_default()
            })
            .x_label_style(("sans-serif", 10))
            .y_desc("share of rows")
            .draw()
            .map_err(err)?;
        let refc = RGBColor(120, 120, 120);
        let datac = RGBColor(70, 110, 170);
        chart
            .draw_series(expected.iter().enumerate().map(|(i, &e)| {
                let i = i as f64;
                Rectangle::new([(i - 0.42, 0.0), (i - 0.02, e)], refc.filled())
            }))
            .map_err(err)?
            .label("reference")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], refc.filled()));
        chart
            .draw_series(observed.iter().enumerate().map(|(i, &o)| {
                let i = i as f64;
                Rectangle::new([(i + 0.02, 0.0), (i + 0.42, o)], datac.filled())
            }))
            .map_err(err)?
            .label("data")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], datac.filled()));
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}
