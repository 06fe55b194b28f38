//! # Backdoor clusters, per class (`score_backdoor`)
//!
//! ## What it detects
//! Backdoor injections: copies of class-a rows carrying a trigger pattern, relabelled to a target class b. Inside
//! class b they form a small, tight, well-separated sub-cluster that resembles class a. With an out-of-range trigger
//! the contract also fires; with an in-range trigger this detector is what finds them.
//!
//! ## How
//! For each class with at least 30 usable rows (fit on at most `max_fit_rows` rows chosen by digest):
//! 1. *Spectral signature* (Tran, Li, Madry 2018): centre the class matrix, take the top eigenvector v of its
//!    covariance (linfa-linalg `eigh`), score `((x - mean) . v)`, robustly standardized (median, 1.4826 MAD).
//! 2. *Activation clustering* (Chen et al. 2018): project on the top 10 principal components, split with 2-means
//!    (linfa-clustering), and compute the simplified silhouette (distance to the other centroid vs own centroid).
//! 3. The smaller cluster is suspicious only when it holds < 35% of the class **and** separates well
//!    (mean silhouette > 0.15), **and** either
//!    - with a trusted reference: the reference's rows of the class fall into it at most a third as often
//!      (`f_data >= 3 f_ref + 0.01`: the sub-cluster is new, not a legitimate mode), and the class's rows thin out
//!      between the two clusters (a valley along the line through their centroids: the sub-cluster is a population
//!      of its own, not the tail of a heavy-tailed column that a small reference happened to hold few of), or
//!    - without one: at least half of its rows are near copies of another class's rows apart from a few columns
//!      (`detect::near_copy`: trimmed nearest-neighbour distance under a quarter of that class's own spacing).
//!      Natural sub-populations resemble another class without copying its rows, and are not flagged.
//!
//! A second rule shares this score: rows that copy another class's row except for a few columns holding values shared
//! by the group, a trigger patch (`detect::trigger`, merged in by the scan).
//!
//! ART's defaults (always flag the smaller cluster; remove 1.5 epsilon of every class) flag clean data; these rules
//! make a clean Gaussian class (2-means splits it about evenly) and a legitimate sub-population (present in the
//! reference too) flag nothing. Rows of a suspicious cluster score `0.5 + 0.5 s_i` (s_i their own silhouette, > 0);
//! other rows get a spectral score `0.45 min(1, |z| / reach)` (reach 10 for a Gaussian spread, stretched for a heavy
//! tail: `spectral_hint`), below the flag line but useful for ranking.
//!
//! ## When it is wrong
//! Very small injections (a handful of rows) barely move the class statistics: 2-means may not isolate them. Without
//! a reference, copies with noise on every column are not recognised as copies, and a clean class whose rows repeat
//! another class's rows exactly (discrete data) can look copied. Several distinct
//! triggers into one class split into several small clusters: only the one 2-means isolates is caught.
//!
//! ## Reference
//! Tran, Li, Madry, "Spectral Signatures in Backdoor Attacks", NeurIPS 2018; Chen et al., "Detecting Backdoor Attacks
//! on Deep Neural Networks by Activation Clustering", AAAI SafeAI 2019; IBM ART `ActivationDefence` defaults.

use super::{kmeans, kmeans_from, median_sigma, DetectContext, DetectorOutput, FLAG_AT};
use crate::features::sample_by_digest;
use linfa_linalg::eigh::EighInto;
use ndarray::{Array1, Array2, Axis};
use rayon::prelude::*;
use serde_json::json;

const MIN_CLASS_ROWS: usize = 30;
const MAX_SMALL_SHARE: f64 = 0.35;
const MIN_SILHOUETTE: f64 = 0.15;
const PCA_DIMS: usize = 10;
/// Without a reference: share of a sub-cluster's rows that must be near copies of another class's rows.
const MIN_COPY_SHARE: f64 = 0.5;

/// Per-class robust per-feature centre and scale.
struct ClassScale {
    center: Array1<f64>,
    scale: Array1<f64>,
}

impl ClassScale {
    fn fit(x: &Array2<f64>) -> ClassScale {
        let d = x.ncols();
        let mut center = Array1::zeros(d);
        let mut scale = Array1::ones(d);
        for j in 0..d {
            let col: Vec<f64> = x.column(j).to_vec();
            let (m, s) = median_sigma(&col);
            center[j] = m;
            scale[j] = if s > 1e-9 { s } else { 1.0 };
        }
        ClassScale { center, scale }
    }
    fn apply(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.center) / &self.scale
    }
}

/// Principal axes of a class: mean and the top `r` eigenvectors (d x r), largest first.
pub(crate) struct Pca {
    pub(crate) mean: Array1<f64>,
    pub(crate) axes: Array2<f64>,
}

pub(crate) fn pca(x: &Array2<f64>, r: usize) -> Option<Pca> {
    let n = x.nrows() as f64;
    let mean = x.mean_axis(Axis(0))?;
    let c = x - &mean;
    let cov = c.t().dot(&c) / n.max(1.0);
    let (vals, vecs) = cov.eigh_into().ok()?;
    let mut order: Vec<usize> = (0..vals.len()).collect();
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
    let r = r.min(order.len()).max(1);
    let axes = vecs.select(Axis(1), &order[..r]);
    Some(Pca { mean, axes })
}

impl Pca {
    pub(crate) fn project(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean).dot(&self.axes)
    }
}

fn dist(a: ndarray::ArrayView1<f64>, b: ndarray::ArrayView1<f64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Whether the class's rows, projected on the line through the two centroids (the larger side's at 0, the smaller
/// side's at `len`), thin out between them: some point between the two, at least a tenth of the way from each, holds
/// under [`VALLEY_SHARE`] of the rows that the densest points on either side of it hold (counts within `len / 10`),
/// and [`VALLEY_Z`] standard deviations under them.
/// A sub-population of its own (copies of another class, flipped rows) leaves such a valley; the tail of one
/// population (a log-normal fare split off by 2-means) thins out steadily and leaves none.
fn has_valley(z: &Array2<f64>, cent: &Array2<f64>, small: usize) -> bool {
    let (c0, c1) = (cent.row(1 - small), cent.row(small));
    let u = &c1 - &c0;
    let len = u.dot(&u).sqrt();
    if !(len > 0.0 && len.is_finite()) {
        return false;
    }
    let t: Vec<f64> = z
        .rows()
        .into_iter()
        .map(|r| (&r - &c0).dot(&u) / len)
        .collect();
    let h = len / 10.0;
    // Points every h / 2 from the larger side's centroid to half a length beyond the smaller side's.
    let dens: Vec<usize> = (0..=30)
        .map(|k| {
            let g = k as f64 * h / 2.0;
            t.iter().filter(|&&v| (v - g).abs() < h).count()
        })
        .collect();
    let before: Vec<usize> = dens
        .iter()
        .scan(0, |m, &d| {
            *m = (*m).max(d);
            Some(*m)
        })
        .collect();
    let mut after = dens.clone();
    for k in (0..after.len() - 1).rev() {
        after[k] = after[k].max(after[k + 1]);
    }
    (2..=18).any(|k| {
        let (v, p) = (dens[k] as f64, before[k].min(after[k]) as f64);
        v < VALLEY_SHARE * p && p - v > VALLEY_Z * (p + v).sqrt()
    })
}

/// The share of its neighbouring peaks' density under which a point between two centroids is a valley
/// ([`has_valley`]).
const VALLEY_SHARE: f64 = 0.75;
/// How many standard deviations of the two counts (`sqrt(p + v)`) a valley's count `v` lies under the lower of its
/// neighbouring peaks' `p` ([`has_valley`]): the tail of a few dozen rows dips by chance (3 rows between peaks of 7).
const VALLEY_Z: f64 = 1.5;

/// Centroids of the two sides of the split of `t` (1-D) that maximizes the between-group sum of squares.
fn spectral_split(z: &Array2<f32>, t: &[f64]) -> Option<Array2<f32>> {
    let n = t.len();
    if n < 4 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| t[a].total_cmp(&t[b]));
    let total: f64 = t.iter().sum();
    let (mut best, mut best_k, mut left) = (f64::NEG_INFINITY, 0, 0.0);
    for k in 1..n {
        left += t[order[k - 1]];
        let (nl, nr) = (k as f64, (n - k) as f64);
        let d = left / nl - (total - left) / nr;
        let between = nl * nr / n as f64 * d * d;
        if between > best {
            best = between;
            best_k = k;
        }
    }
    let mean_of = |ids: &[usize]| z.select(Axis(0), ids).mean_axis(Axis(0));
    let (a, b) = (mean_of(&order[..best_k])?, mean_of(&order[best_k..])?);
    let mut init = Array2::<f32>::zeros((2, z.ncols()));
    init.row_mut(0).assign(&a);
    init.row_mut(1).assign(&b);
    Some(init)
}

/// Per-class finding for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClassSplit {
    /// Class.
    pub class: String,
    /// Rows of the class used.
    pub rows: usize,
    /// Rows in the smaller 2-means cluster.
    pub small_rows: usize,
    /// Mean simplified silhouette.
    pub silhouette: f64,
    /// Share of the reference's rows of the class in the small cluster (with a reference).
    pub reference_share: Option<f64>,
    /// Nearest other class to the small cluster's centroid.
    pub near_class: Option<String>,
    /// Whether the class's rows thin out between the two clusters (a population of its own, not the tail of one).
    pub separated: bool,
    /// Whether the small cluster was judged a backdoor.
    pub suspicious: bool,
}

/// Run the detector.
pub fn detect(ctx: &DetectContext) -> DetectorOutput {
    let n = ctx.x.nrows();
    let nc = ctx.classes.len();
    let mut scores = vec![0f32; n];
    let mut reasons: Vec<Option<String>> = vec![None; n];
    let d = ctx.x.ncols();
    if d == 0 || nc == 0 {
        return DetectorOutput::skipped("backdoor", n, "no usable feature column or no label");
    }
    // Class means (data), for "resembles class a".
    let mut means = Array2::<f64>::zeros((nc, d));
    let mut counts = vec![0usize; nc];
    for i in 0..n {
        if let (true, Some(c)) = (ctx.valid[i], ctx.labels[i]) {
            counts[c as usize] += 1;
            let mut m = means.row_mut(c as usize);
            m.zip_mut_with(&ctx.x.row(i), |a, &b| *a += b as f64);
        }
    }
    for (c, &cnt) in counts.iter().enumerate() {
        if cnt > 0 {
            means.row_mut(c).mapv_inplace(|v| v / cnt as f64);
        }
    }
    // Classes are independent: analyse them in parallel, each scoring its own rows (indexed within the class), and
    // write the results back in class order.
    // Class spacings for the near-copy test, measured once and shared by the classes' searches.
    let spacings = super::near_copy::Spacings::new(nc);
    let per_class: Vec<ClassResult> = (0..nc)
        .into_par_iter()
        .filter_map(|c| {
            let usable: Vec<bool> = (0..n)
                .map(|i| ctx.valid[i] && ctx.labels[i] == Some(c as u32))
                .collect();
            let rows = sample_by_digest(ctx.digests, &usable, ctx.config.max_fit_rows);
            if rows.len() < MIN_CLASS_ROWS {
                return None;
            }
            let mut sc = vec![0f32; rows.len()];
            let mut rs = vec![None; rows.len()];
            let split = analyse_class(ctx, c, &rows, &means, &counts, &spacings, &mut sc, &mut rs);
            Some((rows, split, sc, rs))
        })
        .collect();
    if per_class.is_empty() {
        let largest = counts.iter().max().copied().unwrap_or(0);
        return DetectorOutput::skipped(
            "backdoor",
            n,
            format!("no class has {MIN_CLASS_ROWS} usable rows to analyse (largest: {largest})"),
        );
    }
    let analysed = per_class.len();
    let mut splits = Vec::new();
    for (rows, split, sc, rs) in per_class {
        for ((&i, s), r) in rows.iter().zip(sc).zip(rs) {
            scores[i] = s;
            reasons[i] = r;
        }
        splits.extend(split);
    }
    DetectorOutput {
        name: "backdoor",
        scores,
        reasons,
        summary: json!({ "classes": splits, "classes_analysed": analysed, "classes_too_small": nc - analysed }),
        skipped: None,
    }
}

/// Robust z along the top axis at which the spectral hint reaches its full 0.45, for a class whose |z| spread like a
/// Gaussian's.
const HINT_REACH: f64 = 10.0;
/// The 80th percentile of |z| for a Gaussian (z of the 90th percentile).
const GAUSSIAN_Q80: f64 = 1.2816;

/// The spectral hint of each row of a class from its coordinate `t` on the class's top axis: `0.45 min(1, |z| /
/// reach)`, z robust (median, 1.4826 MAD). The reach is [`HINT_REACH`], stretched by how much wider than a Gaussian's
/// the class's |z| are at their 80th percentile: a heavy-tailed class (counts, runtimes) holds many rows at |z| of
/// 10 and more by nature (hpc_data's clean twin: 437 of 3,465 rows above 0.3 with a fixed reach), and those outranked
/// the label detector's candidates. A poisoned group of under a fifth of the class leaves the 80th percentile where
/// the clean rows put it.
fn spectral_hint(t: &[f64]) -> Vec<f32> {
    let (tm, ts) = median_sigma(t);
    let ts = ts.max(1e-9);
    let z: Vec<f64> = t.iter().map(|v| ((v - tm) / ts).abs()).collect();
    let reach = HINT_REACH * (super::quantile(&z, 0.8) / GAUSSIAN_Q80).max(1.0);
    z.iter()
        .map(|z| (0.45 * (z / reach).min(1.0)) as f32)
        .collect()
}

/// One class's analysis: its scored rows, its split (if any), and scores and reasons indexed like the rows.
type ClassResult = (
    Vec<usize>,
    Option<ClassSplit>,
    Vec<f32>,
    Vec<Option<String>>,
);

/// Analyse class `c` on its (sampled) rows; `scores` and `reasons` are indexed by position in `rows`.
#[allow(clippy::too_many_arguments)]
fn analyse_class(
    ctx: &DetectContext,
    c: usize,
    rows: &[usize],
    means: &Array2<f64>,
    counts: &[usize],
    spacings: &super::near_copy::Spacings,
    scores: &mut [f32],
    reasons: &mut [Option<String>],
) -> Option<ClassSplit> {
    let x = ctx.x.select(Axis(0), rows).mapv(|v| v as f64);
    // Whiten per class (median, 1.4826 MAD per feature): the global scaling is dominated by the spread between
    // classes, which would shrink exactly the directions in which a copy of another class stands out.
    let scale = ClassScale::fit(&x);
    let p = pca(&scale.apply(&x), PCA_DIMS)?;
    let z = p.project(&scale.apply(&x));
    // Spectral signature along the top axis.
    let t: Vec<f64> = z.column(0).to_vec();
    scores.copy_from_slice(&spectral_hint(&t));
    // Activation clustering: 2-means in the reduced space.
    let zf = z.mapv(|v| v as f32);
    // Start 2-means from the best split along the spectral direction (where a poisoned sub-population lies),
    // which is deterministic and avoids the poor local optima of a random start.
    let init = spectral_split(&zf, &t);
    let (cent, assign) = match init {
        Some(init) => kmeans_from(&zf, init, 100).ok()?,
        None => kmeans(&zf, 2, ctx.config.seed ^ c as u64, 100).ok()?,
    };
    let cent = cent.mapv(|v| v as f64);
    let size1 = assign.iter().filter(|&&a| a == 1).count();
    let small = if size1 * 2 < rows.len() { 1 } else { 0 };
    let small_rows = if small == 1 {
        size1
    } else {
        rows.len() - size1
    };
    let share = small_rows as f64 / rows.len() as f64;
    let own_sil: Vec<f64> = (0..rows.len())
        .map(|k| {
            let a = dist(z.row(k), cent.row(assign[k]));
            let b = dist(z.row(k), cent.row(1 - assign[k]));
            if a.max(b) > 0.0 {
                (b - a) / a.max(b)
            } else {
                0.0
            }
        })
        .collect();
    let sil = own_sil.iter().sum::<f64>() / own_sil.len() as f64;
    // Small cluster's centroid in feature space, and the nearest other class.
    let members: Vec<usize> = (0..rows.len()).filter(|&k| assign[k] == small).collect();
    let rest: Vec<usize> = (0..rows.len()).filter(|&k| assign[k] != small).collect();
    let centroid_of = |ks: &[usize]| x.select(Axis(0), ks).mean_axis(Axis(0));
    let (sc, rc) = (centroid_of(&members)?, centroid_of(&rest)?);
    let near = (0..means.nrows())
        .filter(|&o| o != c && counts[o] > 0)
        .map(|o| (dist(sc.view(), means.row(o)), o))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let resembles_other = near
        .map(|(dn, _)| dn < dist(sc.view(), rc.view()))
        .unwrap_or(false);
    let reference_share = ctx.reference.and_then(|r| {
        let ids: Vec<usize> = (0..r.x.nrows())
            .filter(|&i| r.labels[i] == Some(c as u32))
            .collect();
        if ids.len() < MIN_CLASS_ROWS {
            return None;
        }
        let rz = p.project(&scale.apply(&r.x.select(Axis(0), &ids).mapv(|v| v as f64)));
        let in_small = (0..rz.nrows())
            .filter(|&k| dist(rz.row(k), cent.row(small)) < dist(rz.row(k), cent.row(1 - small)))
            .count();
        Some(in_small as f64 / rz.nrows() as f64)
    });
    // With a reference the share there is the only evidence beside the split's shape, and a small reference that
    // happens to hold few rows of a tail makes the tail look new: the sub-cluster must also be a population of its
    // own, apart from the rest of the class.
    let separated = has_valley(&z, &cent, small);
    let structural = share < MAX_SMALL_SHARE && sil > MIN_SILHOUETTE && small_rows >= 3;
    // Without a reference a sub-cluster is a backdoor only when its rows are near copies of another class's rows
    // (apart from a few trigger columns): natural modes of a class resemble other classes without copying them.
    let copies = (structural && reference_share.is_none()).then(|| {
        let global: Vec<usize> = members.iter().map(|&k| rows[k]).collect();
        super::near_copy::near_copy_share(ctx, c as u32, &global, spacings, MIN_COPY_SHARE)
    });
    let suspicious = structural
        && match (reference_share, copies) {
            (Some(fr), _) => share >= 3.0 * fr + 0.01 && separated,
            (None, Some((copied, _))) => copied >= MIN_COPY_SHARE,
            (None, None) => false,
        };
    if suspicious {
        let near_txt = match copies {
            Some((copied, Some(src))) => format!(
                ", {:.0}% of its rows near copies of class {} rows apart from a few columns",
                100.0 * copied,
                ctx.classes[src as usize]
            ),
            _ => near
                .filter(|_| resembles_other)
                .map(|(_, o)| format!(" that lies near class {}", ctx.classes[o]))
                .unwrap_or_default(),
        };
        for &k in &members {
            if own_sil[k] > 0.0 {
                scores[k] = (0.5 + 0.5 * own_sil[k].min(1.0)) as f32;
                reasons[k] = Some(format!(
                    "in a {}-row sub-cluster of class {} ({:.0}% of the class, silhouette {:.2}){near_txt}{}",
                    small_rows,
                    ctx.classes[c],
                    100.0 * share,
                    sil,
                    reference_share
                        .map(|f| format!(", absent from the reference ({:.1}% there)", 100.0 * f))
                        .unwrap_or_default()
                ));
            } else {
                scores[k] = scores[k].min(FLAG_AT - 0.01);
            }
        }
    }
    Some(ClassSplit {
        class: ctx.classes[c].clone(),
        rows: rows.len(),
        small_rows,
        silhouette: sil,
        reference_share,
        near_class: near.map(|(_, o)| ctx.classes[o].clone()),
        separated,
        suspicious,
    })
}

#[cfg(test)]
mod tests {
    use super::{has_valley, spectral_hint};
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    fn normal(n: usize, seed: u64) -> Vec<f64> {
        let mut r = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let d = Normal::new(0.0, 1.0).unwrap();
        (0..n).map(|_| d.sample(&mut r)).collect()
    }

    #[test]
    fn the_spectral_hint_reaches_further_in_a_heavy_tailed_class_only() {
        // A Gaussian class: the reach stays about 10 robust sigmas, so a row planted at 8 sigmas scores about 0.36.
        let mut t = normal(2000, 1);
        t.push(8.0);
        let h = spectral_hint(&t);
        assert!((h[2000] - 0.36).abs() < 0.02, "{}", h[2000]);
        // A heavy-tailed class (log-normal, sigma 2): with a fixed reach of 10 robust sigmas 240 of its 2,000 rows
        // score 0.3 or more; the stretched reach leaves fewer than half of them there (114).
        let heavy: Vec<f64> = normal(2000, 2).iter().map(|g| (2.0 * g).exp()).collect();
        let h = spectral_hint(&heavy);
        let high = |h: &[f32]| h.iter().filter(|&&s| s >= 0.3).count();
        let (m, s) = super::median_sigma(&heavy);
        let fixed: Vec<f32> = heavy
            .iter()
            .map(|v| (0.45 * (((v - m) / s).abs() / 10.0).min(1.0)) as f32)
            .collect();
        assert!(
            high(&fixed) > 200 && 2 * high(&h) < high(&fixed),
            "fixed {}, stretched {}",
            high(&fixed),
            high(&h)
        );
        // A group of 5% of the class far beyond the tail still gets the full hint.
        let mut poisoned = heavy.clone();
        poisoned.extend(std::iter::repeat_n(1e6, 100));
        let h = spectral_hint(&poisoned);
        assert!(h[2000..].iter().all(|&s| (s - 0.45).abs() < 1e-6));
        assert!(high(&h[..2000]) < 120, "{}", high(&h[..2000]));
    }

    /// Rows `(x, y)` and the centroids of the rows with `x` below `cut` (row 0) and at or above it (row 1).
    fn split_at(x: &[f64], y: &[f64], cut: f64) -> (ndarray::Array2<f64>, ndarray::Array2<f64>) {
        let z = ndarray::Array2::from_shape_fn((x.len(), 2), |(i, j)| [x[i], y[i]][j]);
        let mut cent = ndarray::Array2::zeros((2, 2));
        for side in 0..2 {
            let rows: Vec<usize> = (0..x.len())
                .filter(|&i| (x[i] >= cut) == (side == 1))
                .collect();
            for &i in &rows {
                cent[[side, 0]] += x[i] / rows.len() as f64;
                cent[[side, 1]] += y[i] / rows.len() as f64;
            }
        }
        (z, cent)
    }

    #[test]
    fn a_tail_split_off_has_no_valley_and_a_group_apart_has_one() {
        let mut tail_valleys = 0;
        for seed in 0..20 {
            // A log-normal column (a fare) split at its 92nd percentile, as 2-means splits a heavy tail: the rows
            // thin out steadily past the cut.
            let fare: Vec<f64> = normal(1000, 10 + seed).iter().map(|g| g.exp()).collect();
            let noise = normal(1000, 100 + seed);
            let mut sorted = fare.clone();
            sorted.sort_by(f64::total_cmp);
            let (z, cent) = split_at(&fare, &noise, sorted[920]);
            tail_valleys += has_valley(&z, &cent, 1) as usize;
            // 920 rows of a Gaussian and 80 rows around (6, 0); and 117 and 9 rows (olive's flipped rows in one
            // class): a valley between them.
            for (big, small) in [(920, 80), (117, 9)] {
                let x: Vec<f64> = normal(big + small, 200 + seed)
                    .iter()
                    .enumerate()
                    .map(|(i, g)| if i < big { *g } else { 6.0 + 0.5 * g })
                    .collect();
                let (z, cent) = split_at(&x, &normal(big + small, 300 + seed), 3.0);
                assert!(has_valley(&z, &cent, 1), "seed {seed}, {small} rows");
            }
        }
        // The tail's counts dip by chance now and then (one draw of 20: 7 rows between peaks of 14 and more,
        // 1.53 standard deviations): the valley is a guard beside the reference's share, not a test on its own.
        assert!(tail_valleys <= 1, "{tail_valleys} of 20 tails");
    }
}
