//! What the HTML report plots, gathered during the scan while the scaled features are at hand: a sample of rows
//! projected on the features' first two principal axes, each backdoor finding's class split against the rest of the
//! class and the reference, and the binned distributions behind the drift statistics.
//!
//! Memory is bounded by the sample sizes below, not by the data: at most [`MAX_POINTS`] rows of the data and
//! [`MAX_REFERENCE_POINTS`] of the reference are kept, chosen by row digest (the same rows on every run).

use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::detect::backdoor::pca;
use crate::detect::{DetectContext, DetectorOutput, FLAG_AT};
use crate::features::sample_by_digest;

/// Rows of the data in the projection (all flagged ones among them, up to half of it).
pub const MAX_POINTS: usize = 4000;
/// Rows of the reference in the projection.
pub const MAX_REFERENCE_POINTS: usize = 1000;
/// Rows used to fit the principal axes.
const FIT_ROWS: usize = 20_000;
/// Classes shown with their backdoor split, and rows of the data and of the reference per class view.
pub const MAX_VIEWS: usize = 6;
const VIEW_POINTS: usize = 1200;
const VIEW_REFERENCE_POINTS: usize = 300;

/// One plotted row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Point {
    /// 0-based input row (none for a reference row).
    pub row: Option<u64>,
    /// First coordinate.
    pub x: f32,
    /// Second coordinate.
    pub y: f32,
    /// Class index into the projection's classes.
    pub class: Option<u32>,
}

/// Rows projected on two axes.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Projection {
    /// Data rows.
    pub points: Vec<Point>,
    /// Reference rows.
    pub reference: Vec<Point>,
    /// Share of the variance on each axis (principal axes), or a description of the axes.
    pub explained: [f64; 2],
}

/// A class whose rows the backdoor detector split, on two axes: the direction from the rest of the class to the
/// flagged sub-cluster, and the class's main remaining direction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassView {
    /// Class.
    pub class: String,
    /// The class's rows (`row` set) and whether each is in the flagged sub-cluster.
    pub points: Vec<(Point, bool)>,
    /// The reference's rows of the class.
    pub reference: Vec<Point>,
}

/// Binned distribution of one column in the reference and in the data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftBins {
    /// Column.
    pub column: String,
    /// `numeric`, `categorical` or `label`.
    pub kind: String,
    /// Bin or category names.
    pub bins: Vec<String>,
    /// Reference share per bin.
    pub expected: Vec<f64>,
    /// Data rows per bin.
    pub observed: Vec<u64>,
}

/// Everything the HTML report plots beyond the JSON report.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Visuals {
    /// Classes, by index.
    pub classes: Vec<String>,
    /// Rows on the features' first two principal axes (none without features).
    pub projection: Option<Projection>,
    /// One view per class with a suspicious split.
    pub backdoor: Vec<ClassView>,
    /// Distributions behind the drift statistics.
    pub drift: Vec<DriftBins>,
}

fn to_f64(x: &Array2<f32>, rows: &[usize]) -> Array2<f64> {
    let d = x.ncols();
    let mut m = Array2::<f64>::zeros((rows.len(), d));
    for (k, &i) in rows.iter().enumerate() {
        for j in 0..d {
            m[[k, j]] = f64::from(x[[i, j]]);
        }
    }
    m
}

/// Project the chosen rows of `x` on `axes` (d x 2) around `mean`.
fn project(
    x: &Array2<f32>,
    rows: &[usize],
    mean: &ndarray::Array1<f64>,
    axes: &Array2<f64>,
    labels: &[Option<u32>],
    with_row: bool,
) -> Vec<Point> {
    let p = (to_f64(x, rows) - mean).dot(axes);
    rows.iter()
        .enumerate()
        .map(|(k, &i)| Point {
            row: with_row.then_some(i as u64),
            x: p[[k, 0]] as f32,
            y: p.ncols().checked_sub(2).map_or(0.0, |_| p[[k, 1]] as f32),
            class: labels.get(i).copied().flatten(),
        })
        .collect()
}

/// Gather the visuals after the detectors ran on `ctx` (scaled features) with their `outputs`.
pub fn gather(ctx: &DetectContext, outputs: &[DetectorOutput], drift: Vec<DriftBins>) -> Visuals {
    let mut v = Visuals {
        classes: ctx.classes.to_vec(),
        drift,
        ..Default::default()
    };
    let x = ctx.x;
    if x.ncols() == 0 || x.nrows() == 0 {
        return v;
    }
    let flagged: Vec<bool> = (0..x.nrows())
        .map(|i| ctx.valid[i] && outputs.iter().any(|o| o.scores[i] >= FLAG_AT))
        .collect();
    let fit_rows = sample_by_digest(ctx.digests, ctx.valid, FIT_ROWS);
    let fit = to_f64(x, &fit_rows);
    let Some(p) = pca(&fit, 2) else {
        return v;
    };
    let total: f64 = fit.var_axis(Axis(0), 0.0).sum().max(f64::MIN_POSITIVE);
    let var = (&fit - &p.mean).dot(&p.axes).var_axis(Axis(0), 0.0);
    let explained = [
        var.get(0).copied().unwrap_or(0.0) / total,
        var.get(1).copied().unwrap_or(0.0) / total,
    ];
    drop(fit);
    let flagged_rows: Vec<usize> = (0..x.nrows())
        .filter(|&i| flagged[i])
        .take(MAX_POINTS / 2)
        .collect();
    let mut rows = flagged_rows.clone();
    let others: Vec<bool> = (0..x.nrows())
        .map(|i| ctx.valid[i] && !flagged[i])
        .collect();
    rows.extend(sample_by_digest(
        ctx.digests,
        &others,
        MAX_POINTS - flagged_rows.len(),
    ));
    rows.sort_unstable();
    let reference = ctx.reference.map(|r| {
        let keep: Vec<usize> = (0..r.x.nrows()).take(MAX_REFERENCE_POINTS).collect();
        (r, keep)
    });
    v.projection = Some(Projection {
        points: project(x, &rows, &p.mean, &p.axes, ctx.labels, true),
        reference: reference
            .as_ref()
            .map(|(r, keep)| project(&r.x, keep, &p.mean, &p.axes, &r.labels, false))
            .unwrap_or_default(),
        explained,
    });
    if let Some(b) = outputs.iter().find(|o| o.name == "backdoor") {
        v.backdoor = class_views(ctx, b, reference.as_ref().map(|(r, _)| *r));
    }
    v
}

/// At most `want` of `rows`, evenly spread over them.
fn spread(rows: &[usize], want: usize) -> Vec<usize> {
    let step = rows.len().div_ceil(want.max(1)).max(1);
    rows.iter().copied().step_by(step).take(want).collect()
}

/// Per class with rows the backdoor detector flagged: axis 1 from the rest of the class to the flagged rows, axis 2
/// the main direction of the class orthogonal to it.
fn class_views(
    ctx: &DetectContext,
    b: &DetectorOutput,
    reference: Option<&crate::detect::LabelledMatrix>,
) -> Vec<ClassView> {
    let x = ctx.x;
    let mut views = Vec::new();
    for (c, name) in ctx.classes.iter().enumerate() {
        if views.len() == MAX_VIEWS {
            break;
        }
        let c = c as u32;
        let members: Vec<usize> = (0..x.nrows())
            .filter(|&i| ctx.valid[i] && ctx.labels[i] == Some(c))
            .collect();
        let (inside, rest): (Vec<usize>, Vec<usize>) =
            members.iter().partition(|&&i| b.scores[i] >= FLAG_AT);
        if inside.is_empty() || rest.is_empty() {
            continue;
        }
        let mean_of = |rows: &[usize]| to_f64(x, rows).mean_axis(Axis(0));
        let (Some(m_in), Some(m_rest)) = (mean_of(&inside), mean_of(&rest)) else {
            continue;
        };
        let mut a1 = &m_in - &m_rest;
        let norm = a1.dot(&a1).sqrt();
        if norm <= 0.0 || !norm.is_finite() {
            continue;
        }
        a1 /= norm;
        // The class's main direction once axis 1 is taken out.
        let sample: Vec<usize> = members.iter().copied().take(FIT_ROWS).collect();
        let xc = to_f64(x, &sample) - &m_rest;
        let along = xc.dot(&a1);
        let resid = &xc
            - &along
                .insert_axis(Axis(1))
                .dot(&a1.clone().insert_axis(Axis(0)));
        let a2 = pca(&resid, 1)
            .map(|p| p.axes.column(0).to_owned())
            .unwrap_or_else(|| ndarray::Array1::zeros(x.ncols()));
        let mut axes = Array2::<f64>::zeros((x.ncols(), 2));
        axes.column_mut(0).assign(&a1);
        axes.column_mut(1).assign(&a2);
        let mut shown = spread(&inside, VIEW_POINTS / 2);
        shown.extend(spread(&rest, VIEW_POINTS - shown.len()));
        let pts = project(x, &shown, &m_rest, &axes, ctx.labels, true);
        let points = pts
            .into_iter()
            .map(|p| {
                let inside = p.row.is_some_and(|r| b.scores[r as usize] >= FLAG_AT);
                (p, inside)
            })
            .collect();
        let reference = reference
            .map(|r| {
                let keep: Vec<usize> = (0..r.x.nrows())
                    .filter(|&i| r.labels[i] == Some(c))
                    .take(VIEW_REFERENCE_POINTS)
                    .collect();
                project(&r.x, &keep, &m_rest, &axes, &r.labels, false)
            })
            .unwrap_or_default();
        views.push(ClassView {
            class: name.clone(),
            points,
            reference,
        });
    }
    views
}
