//! # Outliers, clustering-based (`score_outlier`)
//!
//! ## What it detects
//! Rows far from every dense region of the trusted data: corrupted or fabricated rows whose values are each within
//! range (so the contract passes them) but whose combination is implausible, and out-of-distribution injections.
//!
//! ## How
//! k-means (linfa-clustering, k-means++ init) on standardized features of the fit set: the trusted reference when
//! given, else a digest-chosen sample of the data. Clusters holding under 1% of the fit rows are dropped (a tight group
//! of injected rows must not become its own "normal" cluster). Each row's statistic is its Euclidean distance to the
//! nearest kept centroid; each cluster's limit is calibrated on the fit rows assigned to it:
//! `median + t * sigma` of their distances (sigma = 1.4826 MAD, or `(q90 - q50) / 1.2816` when larger: rows of a
//! few discrete columns pile up at one distance and leave the MAD about 0), with `t` the larger of 7 and how far the fit rows
//! themselves reach in those units (`1.5 * q99.9` of the normalized distances on a reference; on data `3 * q95`, or
//! the exponential tail through q80 and q95 extrapolated to a 1e-4 chance when that reaches further). Score =
//! r / (1 + r) with r = distance / limit, so the limit maps to 0.5; below the limit the score is halved into
//! `[0, 0.25)`, under the other detectors' sub-threshold evidence.
//!
//! ## When it is wrong
//! Heavy-tailed clean features (log-normal amounts, counts) have legitimate rows far from centres: with a reference
//! their tail sets the limit, without one such rows can be flagged. Rows inside the data's range but in a
//! previously empty region between clusters score low. Poisons that copy clean rows (label flips, in-range
//! backdoors) are not outliers: other detectors catch those.
//!
//! ## Reference
//! Chandola, Banerjee, Kumar, "Anomaly detection: a survey", ACM Computing Surveys 41(3), 2009 (clustering-based
//! anomaly detection, section 6); MacQueen 1967 / Arthur & Vassilvitskii 2007 (k-means, k-means++).

use super::ivf::nearest;
use super::linear::squash;
use super::{
    kmeans_best_of, median_sigma, quantile, ratio_score, take_rows, DetectContext, DetectorOutput,
    FLAG_AT,
};
use crate::features::sample_by_digest;
use ndarray::Array2;
use rayon::prelude::*;
use serde_json::json;

/// Most rows the k-means model is fitted and calibrated on.
const FIT_ROWS: usize = 20_000;
/// k-means runs per fit (in parallel); the one with the lowest inertia is kept.
const KMEANS_RUNS: u64 = 2;
/// Rows below which the detector does not fit (too few to calibrate).
const MIN_FIT_ROWS: usize = 50;
/// Weight of a score below the flag line (docs/detectors/outlier.md: measured on the real benchmark).
const UNFLAGGED_WEIGHT: f32 = 0.5;

/// The last model fitted on a reference in this process.
pub(crate) static KEPT: super::Kept<Option<OutlierModel>> = std::sync::Mutex::new(None);

/// The fitted model: kept centroids and each one's distance limit.
#[derive(Debug, Clone)]
pub struct OutlierModel {
    /// Centroids (standardized space).
    pub centroids: Array2<f32>,
    /// Calibrated distance limit per centroid.
    pub limits: Vec<f64>,
}

/// Fit on `fit` rows (in the order of their values, as `detect` gives them); `trusted` says whether they are a clean
/// reference.
pub fn fit(fit: &Array2<f32>, trusted: bool, seed: u64) -> Option<OutlierModel> {
    let n = fit.nrows();
    if n < MIN_FIT_ROWS {
        return None;
    }
    let k = (((n as f64) / 50.0).sqrt().round() as usize).clamp(2, 16);
    // The best of a few runs: one draw of starting centres moves the clusters' limits enough to flag a clean row
    // (docs/detectors/outlier.md).
    let (centroids, assign) = kmeans_best_of(fit, k, seed, 30, KMEANS_RUNS).ok()?;
    let min_size = (n / 100).max(10);
    let mut sizes = vec![0usize; centroids.nrows()];
    for &a in assign.iter() {
        sizes[a] += 1;
    }
    let keep: Vec<usize> = (0..centroids.nrows())
        .filter(|&c| sizes[c] >= min_size)
        .collect();
    if keep.is_empty() {
        return None;
    }
    let centroids = take_rows(centroids.view(), &keep);
    let (assign, dist) = assign_all(&centroids, fit);
    // Per-cluster centre and robust spread of the fit rows' distances (pooled when a cluster is small).
    let pooled = median_sigma(&dist);
    let stats: Vec<(f64, f64)> = (0..centroids.nrows())
        .map(|c| {
            let d: Vec<f64> = dist
                .iter()
                .zip(&assign)
                .filter(|(_, &a)| a == c)
                .map(|(&d, _)| d)
                .collect();
            let (m, s) = if d.len() >= 50 {
                median_sigma(&d)
            } else {
                pooled
            };
            // Where most of a cluster's rows sit at one distance (a few discrete columns: many rows are the same
            // point), the MAD is about 0 and says nothing of how far the other rows lie: the spread is also taken
            // from the 90% quantile (`(q90 - q50) / 1.2816`, the sigma of a Gaussian).
            // `m` is the median of the same distances (the cluster's, or all of them when pooled).
            let src = if d.len() >= 50 { &d } else { &dist };
            let s = s.max((quantile(src, 0.9) - m) / Q90_Z);
            (m, s.max(pooled.1 * 0.25).max(1e-6))
        })
        .collect();
    // Tail of the normalized distances over all fit rows: how far clean rows reach, in robust sigmas.
    let u: Vec<f64> = dist
        .iter()
        .zip(&assign)
        .map(|(&d, &a)| (d - stats[a].0) / stats[a].1)
        .collect();
    let reach = if trusted {
        1.5 * quantile(&u, 0.999)
    } else {
        data_reach(&u)
    };
    let sigmas = reach.max(7.0);
    let limits = stats.iter().map(|&(m, s)| m + sigmas * s).collect();
    Some(OutlierModel { centroids, limits })
}

/// The standard normal's 90% quantile: `(q90 - q50) / Q90_Z` is a Gaussian's sigma.
const Q90_Z: f64 = 1.2816;

/// Chance, on data without a reference, that a clean row's normalized distance lies beyond the limit, by the
/// exponential tail fitted below.
const DATA_TAIL_RATE: f64 = 1e-4;

/// How far clean rows reach in the data's own normalized distances `u`: the larger of `3 q95` and the exponential
/// tail through the 80% and 95% quantiles extrapolated to [`DATA_TAIL_RATE`] (`q95 + s ln(0.05 / rate)` with
/// `s = (q95 - q80) / ln 4`, the tail's scale). With up to 5% of the rows poisoned far out, both quantiles stay among
/// the clean rows' values (they move up the clean tail), so poisoned rows cannot set their own limit; the tail's scale
/// lets a heavy-tailed table (hpc_data's counts) reach as far as its clean rows do, where `3 q95` alone flagged them.
fn data_reach(u: &[f64]) -> f64 {
    let (q80, q95) = (quantile(u, 0.80), quantile(u, 0.95));
    let scale = (q95 - q80).max(0.0) / 4f64.ln();
    (3.0 * q95).max(q95 + scale * (0.05 / DATA_TAIL_RATE).ln())
}

fn assign_all(centroids: &Array2<f32>, x: &Array2<f32>) -> (Vec<usize>, Vec<f64>) {
    let r: Vec<(usize, f64)> = (0..x.nrows())
        .into_par_iter()
        .map(|i| {
            let row = x.row(i).to_vec();
            let (d, c) = nearest(centroids, &row, 1)[0];
            (c as usize, (d as f64).sqrt())
        })
        .collect();
    r.into_iter().unzip()
}

/// Score every valid row.
pub fn detect(ctx: &DetectContext) -> DetectorOutput {
    let n = ctx.x.nrows();
    // Distances are taken on the features with their tails log-compressed (`squash`, as the label-flip detector's
    // linear voter sees them): a heavy-tailed clean column no longer puts its far rows beyond every cluster's limit.
    let (mut pool, trusted) = match ctx.reference {
        // The reference matrix is already a digest-chosen sample of at most max_fit_rows rows.
        Some(r) if r.x.nrows() >= MIN_FIT_ROWS => (r.x.clone(), true),
        _ => (
            take_rows(
                ctx.x.view(),
                &sample_by_digest(
                    ctx.digests,
                    ctx.valid,
                    ctx.config.max_fit_rows.min(FIT_ROWS),
                ),
            ),
            false,
        ),
    };
    // The fit rows in an order set by their values, and a reference larger than FIT_ROWS thinned to the FIT_ROWS
    // chosen by them: k-means++ draws rows by position, and by position the same data shuffled gave a clean table
    // 0 to 33 flagged rows.
    pool.mapv_inplace(squash);
    let fit_x = take_rows(pool.view(), &super::by_value(pool.view(), FIT_ROWS));
    // A model fitted on the reference is the same in every scan against it: kept per process.
    let model = if trusted {
        let key = super::matrix_key(fit_x.view(), &[ctx.config.seed]).finalize();
        (*super::kept_or_build(&KEPT, key, || fit(&fit_x, true, ctx.config.seed))).clone()
    } else {
        fit(&fit_x, false, ctx.config.seed)
    };
    let Some(model) = model else {
        return DetectorOutput::skipped(
            "outlier",
            n,
            format!(
                "{} usable rows to fit on: needs at least {MIN_FIT_ROWS}",
                fit_x.nrows()
            ),
        );
    };
    let scored: Vec<(f32, Option<String>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            if !ctx.valid[i] {
                return (0.0, None);
            }
            let row: Vec<f32> = ctx.x.row(i).iter().map(|&v| squash(v)).collect();
            let (d2, c) = nearest(&model.centroids, &row, 1)[0];
            let d = (d2 as f64).sqrt();
            let lim = model.limits[c as usize];
            // Below the limit the ratio is a distance, not evidence: halved into [0, 0.25), it ranks under the
            // other detectors' evidence below their flag lines (label-flip candidates, rare values), as the
            // contract's unflagged values beyond the range do.
            let s = ratio_score(d / lim);
            let s = if s >= FLAG_AT { s } else { UNFLAGGED_WEIGHT * s };
            let reason = (s >= FLAG_AT).then(|| {
                format!(
                    "{:.1}x farther from the nearest cluster centre (cluster {c}) than the calibrated limit ({d:.2} vs {lim:.2})",
                    d / lim
                )
            });
            (s, reason)
        })
        .collect();
    let (scores, reasons): (Vec<f32>, Vec<Option<String>>) = scored.into_iter().unzip();
    DetectorOutput {
        name: "outlier",
        scores,
        reasons,
        summary: json!({
            "fitted_on": if trusted { "reference" } else { "data" },
            "fit_rows": fit_x.nrows(),
            "clusters": model.centroids.nrows(),
            "limits": model.limits,
        }),
        skipped: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Exp, LogNormal, Normal};

    fn share_beyond(u: &[f64], limit: f64) -> f64 {
        u.iter().filter(|&&v| v > limit).count() as f64 / u.len() as f64
    }

    #[test]
    fn the_data_reach_follows_a_heavy_tail_keeps_light_ones_and_ignores_a_few_poisoned_rows() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let n = 50_000;
        // A light tail (distances of Gaussian clusters): both reaches stay under the 7 sigmas every limit keeps.
        let light: Vec<f64> = (0..n)
            .map(|_| Normal::new(0.0, 1.0).unwrap().sample(&mut rng))
            .collect();
        assert!(data_reach(&light) < 7.0 && 3.0 * quantile(&light, 0.95) < 7.0);
        // An exponential tail: the limit leaves about DATA_TAIL_RATE of the rows beyond it.
        let exp: Vec<f64> = (0..n)
            .map(|_| Exp::new(1.0).unwrap().sample(&mut rng))
            .collect();
        assert!(share_beyond(&exp, data_reach(&exp)) <= 5.0 * DATA_TAIL_RATE);
        // A heavier (log-normal) tail: further out than 3 q95, with fewer clean rows beyond it (0.11% against 0.13%).
        let heavy: Vec<f64> = (0..n)
            .map(|_| LogNormal::new(0.0, 0.8).unwrap().sample(&mut rng))
            .collect();
        let (reach, old) = (data_reach(&heavy), 3.0 * quantile(&heavy, 0.95));
        assert!(reach > old, "{reach} against {old}");
        assert!(share_beyond(&heavy, reach) < share_beyond(&heavy, old));
        // 3% of the rows poisoned far out push both quantiles up the clean tail (the reach 1.54x, 3 q95 1.34x), and
        // stay far beyond the limit they set.
        let mut poisoned = heavy.clone();
        poisoned.extend(std::iter::repeat_n(1e3, n * 3 / 100));
        let moved = data_reach(&poisoned);
        assert!(
            moved < 2.0 * reach && moved < 1e3 / 10.0,
            "{moved} against {reach}"
        );
    }
}
