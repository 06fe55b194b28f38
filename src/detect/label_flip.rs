//! # Label flips (`score_label`)
//!
//! ## What it detects
//! Rows whose label disagrees with the labels of their nearest neighbours: random flips, targeted flips (class a
//! relabelled b), boundary flips, near-duplicates with a different label, and in-range backdoor copies when a trusted
//! reference shows that their neighbourhood belongs to another class.
//!
//! ## How
//! Leave-one-out kNN label probabilities (k = 10, the row's own vote removed), as in cleanlab's `features=` path:
//! neighbours come from an IVF index (k-means coarse quantizer, a few probed lists, rayon over queries) built on the
//! trusted reference when given, else on a digest-chosen sample of the data, with distances taken on the features
//! scaled by their class separation (`separation_weights`: columns that say little about the label count less).
//! Votes are weighted by
//! `1 / (1 + d^2 / s^2)` (s^2: median squared distance to the k-th neighbour) so scores are continuous. A second
//! voter, a multinomial logistic regression on the same base (`detect::linear`: out-of-fold for base rows, a fold
//! model of the same size for the others), is averaged in with equal weight. With model probabilities
//! (`pred_probs`), those replace both.
//!
//! Confident learning (Northcutt et al.): per-class thresholds `t_j` = mean probability of class j over base rows
//! labelled j. A row labelled y is a candidate when `p_y < t_y`; its statistic is the margin
//! `m = max_{j != y} p_j - p_y`; rows with `m >= 0.5` (another class holds clearly more neighbour weight) are
//! candidates. Calibration, with a reference: the reference's own leave-one-out search gives the rate at which clean
//! rows of each class are candidates (classes that overlap have a higher rate). A class's candidates in the data are
//! flagged only when they clearly exceed what clean data would hold (`X_y > E_y + 3 sqrt(E_y + V_y) + 1`, with
//! `E_y = N_y (c_y + 0.5) / n_y` and `V_y` the variance of that estimate from `n_y` reference rows): so clean data
//! flags nothing, and in a poisoned class the few clean candidates
//! flagged with the flips are about `E_y`. Without a reference (nothing clean to measure) a candidate's margin must
//! reach `UNCALIBRATED_LIMIT` (0.85, a near-unanimous neighbourhood), and candidates are flagged only beyond what
//! labels drawn from the data's own linear model would give (`E_y` = the model's probability of y summed over the
//! rows that would be class-y candidates), or beyond `NATURAL_SHARE` of the rows over all classes (what clean real
//! tables hold); docs/detectors/label_flip.md gives how both were chosen.
//!
//! ## When it is wrong
//! Classes that overlap heavily in feature space (the Bayes error is high) make honest rows look flipped; without a
//! reference, flips no more numerous than such rows are ranked, not flagged. Flips that are many and clustered (a
//! whole region relabelled) outvote their own evidence when the index is built on the data; a reference fixes that,
//! and without one a group that votes for itself against a confident linear model is ranked by that model
//! (`ISLAND_KNN`), not flagged. Rows with few close neighbours (sparse regions) get noisy probabilities.
//!
//! ## Reference
//! Northcutt, Jiang, Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 70, 2021;
//! cleanlab `find_label_issues` / `features=` kNN path. Jégou et al. 2011 (IVF search).

use super::duplicate::TightConflicts;
use super::forest::ForestVotes;
use super::gauss::{self, GaussVotes};
use super::ivf::{default_nlist, IvfIndex, Neighbour};
use super::linear::LinearVotes;
use super::{quantile, take_rows, DetectContext, DetectorOutput, FLAG_AT};
use crate::features::sample_by_digest;
use ndarray::{Array1, Array2, ArrayView2};
use rayon::prelude::*;
use serde_json::json;

/// kNN evidence for one row.
#[derive(Debug, Clone)]
pub struct KnnEvidence {
    /// Class probabilities.
    pub probs: Vec<f32>,
    /// Neighbours found (data row ids or reference row ids, see `base_is_data`).
    pub neighbours: Vec<Neighbour>,
}

/// A row's nearest neighbour: (squared distance, row, its label), if it has one.
pub type NearestRow = Option<(f32, usize, Option<u32>)>;

/// Output of the label-flip detector, with the kNN evidence the duplicate detector reuses.
#[derive(Debug, Clone)]
pub struct LabelFlipOutput {
    /// Scores and reasons.
    pub output: DetectorOutput,
    /// Nearest neighbour of each scored row: (squared distance, row id in the base), plus the base's label.
    pub nearest: Vec<Option<(f32, usize, Option<u32>)>>,
    /// Whether neighbour ids are data rows (else reference rows).
    pub base_is_data: bool,
    /// Median squared distance to the nearest neighbour over scored rows.
    pub median_nn2: f32,
    /// When the base is a reference: each data row's nearest other data row among those in its IVF list
    /// (squared distance, data row, its label), and the median of those distances. Near duplicates inside the data
    /// are found from this, since the reference-side neighbours cannot see them.
    pub data_nearest: Option<(Vec<NearestRow>, f32)>,
    /// Near copies under another label among the data rows' nearest data rows, with what the data's own nearest
    /// rows give clean data (the duplicate detector tests and flags them).
    pub tight: Option<TightConflicts>,
}

/// Copy up to `buf.len()` items into `buf`; the number copied.
fn fill(buf: &mut [(f32, usize)], items: impl Iterator<Item = (f32, usize)>) -> usize {
    let mut m = 0;
    for (slot, item) in buf.iter_mut().zip(items) {
        *slot = item;
        m += 1;
    }
    m
}

/// Data rows nearer to a row than this share of its k-th neighbour's distance are left out of its vote when the
/// votes come from the data itself (not from a trusted reference): they may be its own copies. A near clone of a row
/// relabelled b, injected three times, otherwise gets two votes for b from its sibling clones; left out, its vote is
/// its real neighbourhood's. On the real benchmark without a reference (docs/quality.md) this found Default's near
/// clones (0.00 -> 0.47) and iris's in-range trigger (4 identical copies, 0.00 -> 0.75).
const LEAVE_OUT_NEAR: f32 = 0.3;
/// Fewest votes left after leaving near rows out; with fewer the row votes with all its neighbours.
const MIN_VOTES: usize = 3;

/// A relabelled island: when the votes come from the data, rows whose neighbours vote for their label (kNN share of
/// the own label at least [`ISLAND_KNN`]) while the linear model rejects it (its probability at most
/// [`ISLAND_LINEAR`]), and whose same-label voters are mostly ([`ISLAND_MUTUAL`]) such rows too: a group relabelled
/// inside another class's region, voting for itself (a cluster flip, a set of trigger copies). Such rows are ranked
/// by the linear model's margin when that is higher than the blend's, below the flag line only: the rule does not
/// flag. Chosen on a kNN + logistic regression replica of the blend, then measured (docs/detectors/label_flip.md):
/// without a reference the real benchmark's Default cluster flip marks 147 rows (precision@k 0.18 -> 0.62; 0.56 since
/// the linear voter sees log-compressed tails, session 23), no other case moves and no clean twin has an island; the
/// 100k bench's multi-modal world marks 23 (0.646 -> 0.644). A mutual share of 0.5 gave 0.68 on Default and 0.636
/// there.
const ISLAND_KNN: f32 = 0.8;
/// See [`ISLAND_KNN`].
const ISLAND_LINEAR: f32 = 0.1;
/// See [`ISLAND_KNN`].
const ISLAND_MUTUAL: f64 = 0.7;

/// Data rows (indexed like the labels of `base`, a data base) in relabelled islands (see [`ISLAND_KNN`]): `knn[r]`
/// the neighbours of queried row `rows[r]` (base positions), `lin[r]` its linear probabilities.
fn islands(
    rows: &[usize],
    knn: &[Vec<Neighbour>],
    lin: ArrayView2<f32>,
    base: &Base,
    nc: usize,
    s2: f32,
) -> Vec<bool> {
    let labels = base.labels;
    let n = labels.len();
    let marked: Vec<bool> = rows
        .par_iter()
        .enumerate()
        .map(|(r, &i)| {
            // The linear model's test first: it is one lookup, and few rows pass it, so the kNN vote (taken again
            // by the main pass) is taken here only for those.
            labels[i].is_some_and(|y| {
                lin[[r, y as usize]] <= ISLAND_LINEAR
                    && vote(voters(&knn[r], true), base.labels, &base.ids, nc, s2)[y as usize]
                        >= ISLAND_KNN
            })
        })
        .collect();
    let mut sig = vec![false; n];
    for (&i, m) in rows.iter().zip(marked) {
        sig[i] = m;
    }
    let mut island = vec![false; n];
    for (r, &i) in rows.iter().enumerate() {
        if !sig[i] {
            continue;
        }
        let (mut same, mut marked) = (0usize, 0usize);
        for &(_, id) in voters(&knn[r], true) {
            let j = base.ids[id as usize];
            if labels[j] == labels[i] {
                same += 1;
                marked += sig[j] as usize;
            }
        }
        island[i] = same > 0 && marked as f64 >= ISLAND_MUTUAL * same as f64;
    }
    island
}

/// The neighbours that vote (`neigh` sorted nearest first): from the data, without those nearer than
/// [`LEAVE_OUT_NEAR`] of the k-th one's distance (unless fewer than [`MIN_VOTES`] would remain); from a reference,
/// all of them.
fn voters(neigh: &[Neighbour], from_data: bool) -> &[Neighbour] {
    let Some(&(dk2, _)) = neigh.last() else {
        return neigh;
    };
    if !from_data {
        return neigh;
    }
    let cut = dk2 * LEAVE_OUT_NEAR * LEAVE_OUT_NEAR;
    let near = neigh.partition_point(|&(d2, _)| d2 < cut);
    if neigh.len() - near >= MIN_VOTES {
        &neigh[near..]
    } else {
        neigh
    }
}

/// Class probabilities from the distance-weighted votes of `neigh` (already the [`voters`]).
fn vote(
    neigh: &[Neighbour],
    labels: &[Option<u32>],
    ids: &[usize],
    n_classes: usize,
    s2: f32,
) -> Vec<f32> {
    let mut p = vec![0f32; n_classes];
    let mut total = 0f32;
    for &(d2, id) in neigh {
        if let Some(c) = labels[ids[id as usize]] {
            let w = 1.0 / (1.0 + d2 / s2.max(1e-12));
            p[c as usize] += w;
            total += w;
        }
    }
    if total > 0.0 {
        p.iter_mut().for_each(|v| *v /= total);
    }
    p
}

/// Margin statistic: best other class probability minus the given label's.
fn margin(p: &[f32], y: usize) -> (f32, usize) {
    let mut best = (f32::NEG_INFINITY, y);
    for (j, &v) in p.iter().enumerate() {
        if j != y && v > best.0 {
            best = (v, j);
        }
    }
    (best.0 - p[y], best.1)
}

fn to_score(m: f32, limit: f32) -> f32 {
    if m >= limit {
        0.5 + 0.5 * (m - limit) / (1.0 - limit).max(1e-6)
    } else {
        0.5 * (m + 1.0) / (limit + 1.0)
    }
    .clamp(0.0, 1.0)
}

/// What an unflagged row ranks by: the score of its margin (the best other class's probability minus its label's) and
/// of its label's own probability (`1 - 2 p(label)`, the margin against all other classes at once). With two classes
/// they are the same.
#[derive(Clone, Copy, Debug)]
struct Ranking {
    margin: f32,
    own: f32,
}

impl Ranking {
    fn of(p: &[f32], y: usize, limit: f32) -> Ranking {
        Ranking {
            margin: to_score(margin(p, y).0, limit),
            own: to_score(1.0 - 2.0 * p[y], limit),
        }
    }

    /// The score between the two: the margin's in a class without excess candidates, moving to the own
    /// probability's as `share` (the class's excess share, [`excess_share`]) goes to 1. Flips into a class from
    /// everywhere (random flips) leave the row's label a low probability spread over several other classes; a
    /// class that only holds what clean data holds ranks by the margin, where a clean row's doubt between two other
    /// classes does not add up.
    fn at(self, share: f32) -> f32 {
        self.margin + share * (self.own - self.margin)
    }
}

/// The share of a class's `x` candidates beyond what clean data holds (`e` expected, plus one Poisson standard
/// deviation, so a chance excess counts little): 0 for a class with no expectation or no excess.
fn excess_share(x: usize, e: Option<f64>) -> f32 {
    match e {
        Some(e) if x > 0 => {
            let x = x as f64;
            ((x - e - e.max(1.0).sqrt()) / x).clamp(0.0, 1.0) as f32
        }
        _ => 0.0,
    }
}

/// An unflagged row's score. Scores under the flag line stay as they are; a score at or above it whose row was not
/// flagged (its class failed the excess test, or its label probability is above the class threshold) is squeezed
/// into [0.49, 0.4999] in order, so such rows keep their ranking ([`Ranking`]) instead of tying at one value.
fn below_flag(s: f32) -> f32 {
    if s >= FLAG_AT {
        (FLAG_AT - 0.01) + 0.0099 * ((s - FLAG_AT) / (1.0 - FLAG_AT)).min(1.0)
    } else {
        s
    }
}

/// Scored row: (row, score, reason, nearest neighbour).
type RowResult = (
    usize,
    f32,
    Option<String>,
    Option<(f32, usize, Option<u32>)>,
);

/// Most base rows whose leave-one-out search measures thresholds, distance scale and clean rates.
const STATS_ROWS: usize = 20_000;

/// Margin at or above which a row is a candidate.
const LIMIT: f32 = 0.5;
/// The same without any calibration (no reference, no profiled contract).
const UNCALIBRATED_LIMIT: f32 = 0.85;
/// Without a reference: the share of a clean table's rows taken as natural candidates at `UNCALIBRATED_LIMIT` (the
/// most seen on the real benchmark's clean tables was 1.5%, mlc_churn; docs/detectors/label_flip.md).
const NATURAL_SHARE: f64 = 0.015;

/// Whether `x` candidates clearly exceed the `e` that clean data holds: by more than three standard deviations of
/// the count (Poisson, `e`) and of the expectation itself (`v`, from the rate's measurement), plus one.
fn exceeds(x: f64, e: f64, v: f64) -> bool {
    x > e + 3.0 * (e + v).sqrt() + 1.0
}

/// Variance of `E = rows * r` when the clean candidate rate `r` was measured on `measured_on` reference rows
/// (binomial: `rows^2 r (1 - r) / measured_on`); 0 when nothing was measured.
fn rate_variance(rows: usize, r: f64, measured_on: usize) -> f64 {
    if measured_on == 0 {
        return 0.0;
    }
    let rows = rows as f64;
    rows * rows * r * (1.0 - r) / measured_on as f64
}

/// Candidates over all classes.
fn x_total(cand: &[usize]) -> f64 {
    cand.iter().sum::<usize>() as f64
}

/// Of `x` candidates scoring `s` where clean data holds about `e`, the score of the `ceil(x - e)`-th clearest (at
/// least the first): the cut at or above which they are flagged. None without candidates.
fn excess_cut(mut s: Vec<f32>, x: f64, e: f64) -> Option<f32> {
    s.sort_by(|a, b| b.total_cmp(a));
    let keep = ((x - e).ceil().max(1.0) as usize).min(s.len());
    keep.checked_sub(1).map(|k| s[k])
}

/// The margin band `[lo, hi)` where a class's candidates (scores `s`, which are their margins at the calibrated
/// limit) most exceed what clean rows of the class give: with `S(m)` the share of the reference's own leave-one-out
/// margins of the class at or above `m`, the excess above a candidate's margin is
/// `D(m) = X(>= m) - N S(m)`, and the band is the stretch of candidates over which `D` rises most (the largest
/// `D(lo) - D(above hi)`, ties kept together). Where the poisoned rows are the clearest (random flips) the band starts
/// at the top, as the clearest `X - E` do; where the class holds many natural rows at margins near 1 and the excess
/// sits lower (copies relabelled into a class that half its own rows disagree with, Default's in-range backdoor),
/// the band leaves those natural rows unflagged. Returns `(cut, hi)`: of the band's candidates, as many as its excess
/// are flagged, the clearest first (`cut`, as [`excess_cut`] gives it), those at `hi` and above are not. None without
/// ten reference margins or without an excess.
fn excess_band(s: &[f32], reference_margins: &[f64], rows: usize) -> Option<(f32, f32)> {
    if reference_margins.len() < 10 {
        return None;
    }
    let mut sorted = s.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut clean = reference_margins.to_vec();
    clean.sort_by(|a, b| b.total_cmp(a));
    let expected_above = |m: f64| {
        let at_or_above = clean.partition_point(|&v| v >= m) as f64;
        rows as f64 * at_or_above / clean.len() as f64
    };
    let mut best: Option<(f64, f32, f32)> = None;
    // The lowest D so far and the margin of the block it ends at (above every candidate: D = 0, no upper end).
    let (mut low_d, mut low_at) = (0f64, f32::INFINITY);
    let mut i = 0;
    while i < sorted.len() {
        let v = sorted[i];
        let end = i + sorted[i..].iter().take_while(|&&w| w == v).count();
        let d = end as f64 - expected_above(f64::from(v));
        if best.is_none_or(|b| d - low_d > b.0) {
            best = Some((d - low_d, v, low_at));
        }
        if d < low_d {
            (low_d, low_at) = (d, v);
        }
        i = end;
    }
    // The rest of the band is what clean rows of the class hold there.
    let (excess, lo, hi) = best.filter(|b| b.0 > 0.0)?;
    let in_band: Vec<f32> = sorted.into_iter().filter(|&v| v >= lo && v < hi).collect();
    excess_cut(in_band, excess, 0.0).map(|cut| (cut, hi))
}

/// Leave-one-out statistics of the base.
#[derive(Debug, Clone)]
struct BaseStats {
    thresholds: Vec<f32>,
    margins: Vec<Vec<f64>>,
    s2: f32,
    /// The blend's voter weights (kNN first, then the model voters that vote), fitted on the base rows' labels.
    weights: Vec<f32>,
    /// The same for the blend with trees that only rank.
    ranking_weights: Vec<f32>,
}

impl BaseStats {
    /// Per class: share of base rows with margin >= LIMIT (with +0.5 continuity), None for tiny classes.
    fn clean_rates(&self) -> Vec<Option<f64>> {
        self.margins
            .iter()
            .map(|m| {
                (m.len() >= 10).then(|| {
                    let c = m.iter().filter(|&&v| v >= LIMIT as f64).count() as f64;
                    (c + 0.5) / m.len() as f64
                })
            })
            .collect()
    }
}

/// Base rows whose leave-one-out search measures the statistics: all of them, or the STATS_ROWS chosen by their
/// values (thresholds and rates are averages; a choice by position would change with the order of the rows).
fn stats_rows(x: ArrayView2<f32>) -> Vec<usize> {
    if x.nrows() <= STATS_ROWS {
        return (0..x.nrows()).collect();
    }
    let mut rows = super::by_value(x, STATS_ROWS);
    rows.sort_unstable();
    rows
}

/// Leave-one-out kNN of the base itself (blended with the linear model's out-of-fold votes when given): per-class
/// thresholds t_j, margins, and the distance scale.
fn base_statistics(
    index: &IvfIndex,
    base: &Base,
    picked: Vec<usize>,
    (k, nc): (usize, usize),
    models: Models,
) -> BaseStats {
    let queries = take_rows(base.xw.view(), &picked);
    let base_self: Vec<Option<u32>> = picked.iter().map(|&i| Some(i as u32)).collect();
    let knn = index.search_all(queries.view(), k, &base_self);
    statistics_from(base, picked, knn, (k, nc), models, None)
}

/// The model voters beside the kNN vote: the linear model and the trees, each when it votes.
#[derive(Clone, Copy)]
struct Models<'a> {
    lin: Option<&'a LinearVotes>,
    gauss: Option<&'a GaussVotes>,
    forest: Option<&'a ForestVotes>,
    /// Whether the blend's weights are fitted ([`voter_weights`]) or equal.
    fitted: bool,
}

/// Average the kNN vote `p` with the model voters' probabilities (`q`, those that vote), weighted by `w` (the kNN
/// vote's weight first, then the model voters' in order, as [`BaseStats`] holds them).
fn blend<'a>(p: &mut [f32], q: impl IntoIterator<Item = ndarray::ArrayView1<'a, f32>>, w: &[f32]) {
    let at = |v: usize| w.get(v).copied().unwrap_or(1.0);
    let mut total = at(0);
    p.iter_mut().for_each(|a| *a *= total);
    for (v, q) in q.into_iter().enumerate() {
        // A voter that abstains on this row (NaN, `detect::gauss`) is left out.
        if q.iter().any(|v| !v.is_finite()) {
            continue;
        }
        let wv = at(v + 1);
        for (a, &b) in p.iter_mut().zip(q.iter()) {
            *a += wv * b;
        }
        total += wv;
    }
    if total > 0.0 {
        for a in p.iter_mut() {
            *a /= total;
        }
    }
}

/// Floor of a voter's probability of a row's label in the weights' likelihood (a vote of exactly 0 is not certain).
const STACK_FLOOR: f64 = 1e-3;

/// Share of the blend's weights that follows the fit ([`stacked_weights`]); the rest stays equal. On a data base
/// the labels the weights are fitted to include the poison: trees fitted on the data learn an injected cluster, and
/// weights fitted alone moved to them (mlc_churn's in-range backdoor with a reference, whose small reference adds
/// the data's votes: 1.00 -> 0.62). Half and half kept it at 1.00; docs/detectors/label_flip.md.
const FITTED_SHARE: f32 = 0.5;

/// The blend's voter weights from the voters' out-of-sample probabilities of the base rows' labels (`rows[r][v]`, for
/// `voters` voters): [`FITTED_SHARE`] of the likelihood-fitted [`stacked_weights`], the rest equal. Sums to 1.
fn voter_weights(rows: &[Vec<f64>], voters: usize) -> Vec<f32> {
    let n = voters.max(1) as f32;
    stacked_weights(rows, voters)
        .into_iter()
        .map(|w| FITTED_SHARE * w + (1.0 - FITTED_SHARE) / n)
        .collect()
}

/// Mixture weights of the voters that maximise the likelihood of the base rows' labels under the blend (EM on the
/// mixture weights, which never lowers the likelihood): `rows[r][v]` is voter v's out-of-sample probability of row
/// r's label, floored at [`STACK_FLOOR`]. A voter that predicts the labels better gets more weight. Equal weights
/// when there is nothing to fit (one voter, no rows).
fn stacked_weights(rows: &[Vec<f64>], voters: usize) -> Vec<f32> {
    if voters < 2 || rows.is_empty() {
        return vec![1.0 / voters.max(1) as f32; voters];
    }
    // A voter that abstains on a row (NaN) is taken to agree with the mean of those that vote: it neither gains nor
    // loses weight by the row.
    let p = |row: &[f64], v: usize| {
        let mean = || {
            let voted = row.iter().filter(|x| x.is_finite());
            voted.clone().sum::<f64>() / voted.count().max(1) as f64
        };
        row.get(v)
            .copied()
            .filter(|x| x.is_finite())
            .unwrap_or_else(mean)
            .max(STACK_FLOOR)
    };
    let mut w = vec![1.0 / voters as f64; voters];
    for _ in 0..200 {
        let mut next = vec![0f64; voters];
        for row in rows {
            let mix: f64 = (0..voters).map(|v| w[v] * p(row, v)).sum();
            for (v, n) in next.iter_mut().enumerate() {
                *n += w[v] * p(row, v) / mix;
            }
        }
        next.iter_mut().for_each(|n| *n /= rows.len() as f64);
        let moved: f64 = next.iter().zip(&w).map(|(a, b)| (a - b).abs()).sum();
        w = next;
        if moved < 1e-6 {
            break;
        }
    }
    w.iter().map(|&v| v as f32).collect()
}

/// The Gaussian voter on a base, unless turned off, the base has under [`gauss::ROWS_PER_COLUMN`] rows per class
/// and column, or it cannot vote ([`GaussVotes::fit`]). `voted`: the base rows whose votes are read, when not all.
fn gauss_votes(base: &Base, nc: usize, on: bool, voted: Option<&[usize]>) -> Option<GaussVotes> {
    let rows = rows_per_class(base.ids.iter().map(|&id| &base.labels[id]));
    if !on || rows < gauss::ROWS_PER_COLUMN * base.x.ncols() as f64 {
        return None;
    }
    GaussVotes::fit(base.x.view(), &base_classes(base), nc, !base.is_data, voted)
}

/// The trees on a reference base, unless turned off or the base is too small for their folds; votes for the base
/// rows `voted` ([`base_statistics`]).
fn forest_votes(base: &Base, nc: usize, on: bool, voted: &[usize]) -> Option<ForestVotes> {
    if !on {
        return None;
    }
    ForestVotes::fit(base.x.view(), &base_classes(base), nc, None, Some(voted))
}

/// Class index of each base row.
fn base_classes(base: &Base) -> Vec<u32> {
    base.ids
        .iter()
        .map(|&id| base.labels[id].unwrap_or(0))
        .collect()
}

/// The linear voter on a base, unless turned off or the base is too small for its folds. `voted`: the base rows
/// whose votes are read, when not all.
fn linear_votes(base: &Base, nc: usize, on: bool, voted: Option<&[usize]>) -> Option<LinearVotes> {
    if !on {
        return None;
    }
    LinearVotes::fit(base.x.view(), &base_classes(base), nc, voted)
}

/// The statistics from the leave-one-out neighbours `knn` of base rows `picked`; `ranking` are trees that only rank
/// (their blend's weights are fitted too).
fn statistics_from(
    base: &Base,
    picked: Vec<usize>,
    knn: Vec<Vec<Neighbour>>,
    (k, nc): (usize, usize),
    models: Models,
    ranking: Option<&ForestVotes>,
) -> BaseStats {
    let base_knn: Vec<(usize, Vec<Neighbour>)> = picked.into_iter().zip(knn).collect();
    let kth: Vec<f64> = base_knn
        .iter()
        .filter_map(|(_, v)| v.last().map(|x| x.0 as f64))
        .collect();
    let s2 = quantile(&kth, 0.5).max(1e-9) as f32;
    let model_rows = |b: usize| {
        [
            models.lin.map(|l| l.base.row(b)),
            models.gauss.map(|g| g.base.row(b)),
            models.forest.map(|f| f.base.row(b)),
        ]
    };
    // Per labelled base row, each voter's out-of-sample probability of the row's label (kNN first), for the blend's
    // weights; the same with the ranking trees in the forest's place.
    let mut probs: Vec<Vec<f64>> = Vec::new();
    let mut ranking_probs: Vec<Vec<f64>> = Vec::new();
    let mut knn_votes = Vec::with_capacity(base_knn.len());
    for (b, nb) in base_knn.iter().map(|(b, nb)| (*b, nb)) {
        let Some(y) = base.labels[base.ids[b]] else {
            continue;
        };
        let y = y as usize;
        let p = vote(voters(nb, base.is_data), base.labels, &base.ids, nc, s2);
        let of_label = |q: &[Option<ndarray::ArrayView1<f32>>]| -> Vec<f64> {
            std::iter::once(p[y])
                .chain(q.iter().flatten().map(|q| q[y]))
                .map(f64::from)
                .collect()
        };
        probs.push(of_label(&model_rows(b)));
        if let Some(t) = ranking {
            ranking_probs.push(of_label(&[
                models.lin.map(|l| l.base.row(b)),
                models.gauss.map(|g| g.base.row(b)),
                Some(t.base.row(b)),
            ]));
        }
        knn_votes.push((b, y, p));
    }
    // Under 2k base rows per class a row's k nearest base rows are most of its class: how well that vote predicts
    // the base's labels says little about how it does on the data (a 24-row reference, weights fitted on it,
    // flagged 10 clean rows of 760 where equal weights flagged none), and the weights stay equal.
    let fitted = models.fitted
        && rows_per_class(base.ids.iter().map(|&id| &base.labels[id])) >= (2 * k) as f64;
    let fit = |rows: &[Vec<f64>], voters: usize| {
        if fitted {
            voter_weights(rows, voters)
        } else {
            vec![1.0 / voters as f32; voters]
        }
    };
    // The voters before the trees: the kNN vote, then the linear model and the Gaussians when they vote.
    let before_trees = 1 + usize::from(models.lin.is_some()) + usize::from(models.gauss.is_some());
    let weights = fit(&probs, before_trees + usize::from(models.forest.is_some()));
    let ranking_weights = match ranking {
        Some(_) => fit(&ranking_probs, before_trees + 1),
        None => Vec::new(),
    };
    let mut t_sum = vec![0f64; nc];
    let mut t_cnt = vec![0usize; nc];
    let mut margins: Vec<Vec<f64>> = vec![Vec::new(); nc];
    for (b, y, mut p) in knn_votes {
        blend(&mut p, model_rows(b).into_iter().flatten(), &weights);
        t_sum[y] += p[y] as f64;
        t_cnt[y] += 1;
        margins[y].push(margin(&p, y).0 as f64);
    }
    let thresholds = (0..nc)
        .map(|j| {
            if t_cnt[j] > 0 {
                (t_sum[j] / t_cnt[j] as f64) as f32
            } else {
                1.0
            }
        })
        .collect();
    BaseStats {
        thresholds,
        margins,
        s2,
        weights,
        ranking_weights,
    }
}

/// Calibration from trusted rows (standardized features and class labels): the per-class rate at which clean rows
/// are label-flip candidates. Stored in a profiled contract so `scan --contract` is calibrated too.
pub fn clean_candidate_rates(
    x: &Array2<f32>,
    labels: &[Option<u32>],
    nc: usize,
    cfg: &super::DetectConfig,
) -> Vec<Option<f64>> {
    let k = cfg.k;
    let ids: Vec<usize> = (0..x.nrows()).filter(|&i| labels[i].is_some()).collect();
    if ids.len() <= k + 1 || nc < 2 {
        return vec![None; nc];
    }
    // The weights a scan against this reference computes (`detect`).
    let weights = reference_weights(x, labels, nc);
    let base = Base::new(take_rows(x.view(), &ids), &weights, ids, labels, false);
    // The same model a scan against this reference builds (and keeps): profiling, then scanning, builds it once.
    reference_model(&base, k, nc, cfg.nprobe, Voting::of(cfg, None))
        .stats
        .clean_rates()
}

/// What a scan builds on a reference base before it looks at the data.
struct ReferenceModel {
    index: IvfIndex,
    lin: Option<LinearVotes>,
    gauss: Option<GaussVotes>,
    forest: Option<ForestVotes>,
    stats: BaseStats,
}

/// Which model voters a scan asks for.
#[derive(Clone, Copy)]
struct Voting {
    linear: bool,
    gauss: bool,
    forest: bool,
    /// Weights fitted to how well each voter predicts the base's labels (else equal).
    fitted: bool,
}

impl Voting {
    /// The configured voters; none when the user's model probabilities replace them.
    fn of(cfg: &super::DetectConfig, pred_probs: Option<&Array2<f32>>) -> Voting {
        let own = pred_probs.is_none();
        Voting {
            linear: cfg.linear && own,
            gauss: cfg.gauss && own,
            forest: cfg.forest && own,
            fitted: cfg.fit_voter_weights,
        }
    }
}

/// The last reference model built in this process.
static REFERENCE_MODEL: super::Kept<ReferenceModel> = std::sync::Mutex::new(None);

/// The reference model of `base` (built, or the one kept from an earlier scan with the same base and settings).
fn reference_model(
    base: &Base,
    k: usize,
    nc: usize,
    nprobe: usize,
    voting: Voting,
) -> std::sync::Arc<ReferenceModel> {
    let mut h = super::matrix_key(
        base.xw.view(),
        &[
            k as u64,
            nc as u64,
            nprobe as u64,
            voting.linear as u64,
            voting.gauss as u64,
            voting.forest as u64,
            voting.fitted as u64,
        ],
    );
    let labels: Vec<u8> = base
        .ids
        .iter()
        .flat_map(|&id| base.labels[id].map_or(u64::MAX, u64::from).to_le_bytes())
        .collect();
    h.update(&labels);
    super::kept_or_build(&REFERENCE_MODEL, h.finalize(), || {
        let index = IvfIndex::build(base.xw.view(), default_nlist(base.xw.nrows()), nprobe);
        // The model voters' votes are read for the statistics rows only: the data's rows are predicted apart.
        let picked = stats_rows(base.xw.view());
        let ((lin, gauss), forest) = rayon::join(
            || {
                (
                    linear_votes(base, nc, voting.linear, Some(&picked)),
                    gauss_votes(base, nc, voting.gauss, Some(&picked)),
                )
            },
            || forest_votes(base, nc, voting.forest, &picked),
        );
        let models = Models {
            lin: lin.as_ref(),
            gauss: gauss.as_ref(),
            forest: forest.as_ref(),
            fitted: voting.fitted,
        };
        let stats = base_statistics(&index, base, picked, (k, nc), models);
        ReferenceModel {
            index,
            lin,
            gauss,
            forest,
            stats,
        }
    })
}

struct Base<'a> {
    /// Features (the linear voter's input).
    x: Array2<f32>,
    /// The same scaled by the class-separation weights (every distance is taken on these).
    xw: Array2<f32>,
    /// Maps base position -> id in `labels`.
    ids: Vec<usize>,
    labels: &'a [Option<u32>],
    is_data: bool,
}

impl<'a> Base<'a> {
    fn new(
        x: Array2<f32>,
        weights: &Array1<f32>,
        ids: Vec<usize>,
        labels: &'a [Option<u32>],
        is_data: bool,
    ) -> Self {
        let xw = &x * weights;
        Base {
            x,
            xw,
            ids,
            labels,
            is_data,
        }
    }
}

fn build_base<'a>(ctx: &'a DetectContext, weights: &Array1<f32>) -> Base<'a> {
    match ctx.reference {
        Some(r) => {
            let ids: Vec<usize> = (0..r.x.nrows())
                .filter(|&i| r.labels[i].is_some())
                .collect();
            Base::new(take_rows(r.x.view(), &ids), weights, ids, &r.labels, false)
        }
        None => {
            let usable: Vec<bool> = (0..ctx.x.nrows())
                .map(|i| ctx.valid[i] && ctx.labels[i].is_some())
                .collect();
            let ids = sample_by_digest(ctx.digests, &usable, ctx.config.max_fit_rows);
            Base::new(
                take_rows(ctx.x.view(), &ids),
                weights,
                ids,
                ctx.labels,
                true,
            )
        }
    }
}

/// For each query row, its [`CLOSE_K`] nearest other query rows among those that share one of its two nearest base
/// rows. Two nearly identical rows have nearly the same nearest base rows, so this finds near duplicates among the
/// queries in O(n) from a kNN search already done, instead of a second index.
fn nearest_sharing_neighbours(
    x: ArrayView2<f32>,
    weights: &Array1<f32>,
    knn: &[Vec<Neighbour>],
) -> Vec<Close> {
    let w2: Vec<f32> = weights.iter().map(|w| w * w).collect();
    let mut by_base: Vec<(u32, u32)> = knn
        .iter()
        .enumerate()
        .flat_map(|(r, nb)| nb.iter().take(2).map(move |&(_, b)| (b, r as u32)))
        .collect();
    by_base.sort_unstable();
    let mut best = vec![Close::default(); knn.len()];
    // Rows as slices of one standard-layout matrix (no copy when the queries already are one).
    let x = x.as_standard_layout();
    let (flat, d) = (x.as_slice().unwrap_or(&[]), x.ncols());
    let row = |r: usize| flat.get(r * d..(r + 1) * d).unwrap_or(&[]);
    for group in by_base.chunk_by(|a, b| a.0 == b.0) {
        if group.len() < 2 {
            continue;
        }
        for (a, &(_, ra)) in group.iter().enumerate() {
            for &(_, rb) in group.iter().skip(a + 1) {
                if ra == rb {
                    continue;
                }
                let d2 = weighted_l2(row(ra as usize), row(rb as usize), &w2);
                best[ra as usize].insert(d2, rb);
                best[rb as usize].insert(d2, ra);
            }
        }
    }
    best
}

/// A row's nearest [`CLOSE_K`] other rows, nearest first (44 bytes a row: a million rows' lists fit in 44 MB).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Close {
    d2: [f32; CLOSE_K],
    row: [u32; CLOSE_K],
    len: u8,
}

impl Close {
    /// Keep `(d2, row)` if it is among the nearest (each row once).
    fn insert(&mut self, d2: f32, row: u32) {
        let len = self.len as usize;
        if self.row[..len].contains(&row) || (len == CLOSE_K && self.d2[CLOSE_K - 1] <= d2) {
            return;
        }
        let at = self.d2[..len].partition_point(|&d| d <= d2);
        let end = (len + 1).min(CLOSE_K);
        for k in (at + 1..end).rev() {
            self.d2[k] = self.d2[k - 1];
            self.row[k] = self.row[k - 1];
        }
        self.d2[at] = d2;
        self.row[at] = row;
        self.len = end as u8;
    }

    /// (squared distance, row), nearest first.
    fn iter(&self) -> impl Iterator<Item = (f32, usize)> + '_ {
        let len = self.len as usize;
        self.d2[..len]
            .iter()
            .zip(&self.row[..len])
            .map(|(&d, &r)| (d, r as usize))
    }
}

/// Rows a data row's tightness is measured against: its nearest [`CLOSE_K`] other data rows (the duplicate
/// detector's tight-conflict test, `duplicate::TightConflicts`).
pub const CLOSE_K: usize = 5;

/// Floor of a column's squared class-separation weight: a column that separates no class still counts a tenth as
/// much in a squared distance as one whose variance is all between classes (docs/detectors/label_flip.md).
const SEPARATION_FLOOR: f64 = 0.1;

/// Per feature column: `sqrt(max(eta^2, SEPARATION_FLOOR))`, with `eta^2` the share of the column's sum of squares
/// that lies between the class means of the valid labelled rows of `x` (one-way ANOVA's R^2). A constant column, or
/// one whose sums are not finite, gets the floor.
fn separation_weights(
    x: ArrayView2<f32>,
    labels: &[Option<u32>],
    valid: &[bool],
    nc: usize,
) -> Vec<f32> {
    let d = x.ncols();
    let mut sum = vec![vec![0f64; d]; nc];
    let mut cnt = vec![0f64; nc];
    let (mut tot, mut tot2) = (vec![0f64; d], vec![0f64; d]);
    for (i, row) in x.outer_iter().enumerate() {
        let Some(c) = labels[i].filter(|_| valid[i]).map(|c| c as usize) else {
            continue;
        };
        cnt[c] += 1.0;
        for (j, &v) in row.iter().enumerate() {
            let v = f64::from(v);
            sum[c][j] += v;
            tot[j] += v;
            tot2[j] += v * v;
        }
    }
    let n: f64 = cnt.iter().sum();
    (0..d)
        .map(|j| {
            let mu = tot[j] / n.max(1.0);
            let total = tot2[j] - n * mu * mu;
            let between: f64 = (0..nc)
                .filter(|&c| cnt[c] > 0.0)
                .map(|c| cnt[c] * (sum[c][j] / cnt[c] - mu).powi(2))
                .sum();
            let eta2 = between / total;
            let eta2 = if total > 1e-12 && eta2.is_finite() {
                eta2.clamp(0.0, 1.0)
            } else {
                0.0
            };
            eta2.max(SEPARATION_FLOOR).sqrt() as f32
        })
        .collect()
}

/// The separation weights of trusted rows (every labelled row counts): what a scan against them and the calibration
/// stored by `profile` both use.
fn reference_weights(x: &Array2<f32>, labels: &[Option<u32>], nc: usize) -> Array1<f32> {
    Array1::from(separation_weights(
        x.view(),
        labels,
        &vec![true; x.nrows()],
        nc,
    ))
}

/// Squared distance between `a` and `b` with column `j` counted `w2[j]` times.
fn weighted_l2(a: &[f32], b: &[f32], w2: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .zip(w2)
        .map(|((x, y), w)| w * (x - y) * (x - y))
        .sum()
}

/// Run the detector. Neighbours are searched on the features scaled by their class separation
/// (`separation_weights`), so that columns that carry no label information dilute the neighbourhoods less.
pub fn detect(ctx: &DetectContext) -> LabelFlipOutput {
    // Weights from the trusted rows when given (part of the fit: the same for every batch), else from the data.
    let nc = ctx.classes.len();
    let weights = match ctx.reference {
        Some(r) => reference_weights(&r.x, &r.labels, nc),
        None => Array1::from(separation_weights(ctx.x.view(), ctx.labels, ctx.valid, nc)),
    };
    let mut out = detect_on_base(ctx, &weights, false);
    // A small reference gives coarse neighbourhoods (a few dozen rows per class): rank the rows it does not flag by
    // the data's own leave-one-out evidence too. Flags stay the reference-calibrated ones.
    let small_reference = ctx
        .reference
        .is_some_and(|r| r.x.nrows() < DATA_VOTES_BELOW_REFERENCE_ROWS);
    if small_reference && ctx.pred_probs.is_none() && out.output.skipped.is_none() {
        let own = DetectContext {
            reference: None,
            label_clean_rate: None,
            ..*ctx
        };
        let data = detect_on_base(&own, &weights, true);
        // Under 2k reference rows per class the reference's k nearest rows of a class are most of that class: its
        // votes no longer tell one part of the feature space from another, and the data's own votes rank alone.
        let data_only = ctx
            .reference
            .is_some_and(|r| rows_per_class(&r.labels) < (2 * ctx.config.k) as f64);
        for (i, s) in out.output.scores.iter_mut().enumerate() {
            if out.output.reasons[i].is_none() {
                let own = below_flag(data.output.scores[i]);
                *s = if data_only { own } else { s.max(own) };
            }
        }
        if let Some(m) = out.output.summary.as_object_mut() {
            m.insert("ranked_with_data_votes".into(), json!(true));
            m.insert("ranked_by_data_votes_only".into(), json!(data_only));
            m.insert(
                "data_votes_without_near_rows".into(),
                data.output.summary["votes_without_near_rows"].clone(),
            );
        }
    }
    out
}

/// Labelled rows per class present in them.
fn rows_per_class<'a>(labels: impl IntoIterator<Item = &'a Option<u32>>) -> f64 {
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = 0usize;
    for l in labels.into_iter().flatten() {
        seen.insert(*l);
        rows += 1;
    }
    rows as f64 / seen.len().max(1) as f64
}

/// A model voter's class probabilities for the queried rows `rows` (`data_rows`, one per queried row): its
/// out-of-fold ones (`base_votes`) for rows of the base, `predict`'s for the others.
fn votes_of_rows(
    rows: &[usize],
    pos_in_base: &[Option<u32>],
    data_rows: ArrayView2<f32>,
    base_votes: &Array2<f32>,
    predict: impl Fn(ArrayView2<f32>) -> Array2<f32>,
) -> Array2<f32> {
    let outside: Vec<usize> = (0..rows.len())
        .filter(|&r| pos_in_base[rows[r]].is_none())
        .collect();
    if outside.len() == rows.len() {
        // Every queried row is outside the base (a reference base): no copy of them (128 MB at 1M x 32).
        return predict(data_rows);
    }
    let mut q = Array2::<f32>::zeros((rows.len(), base_votes.ncols()));
    if !outside.is_empty() {
        let p = predict(take_rows(data_rows, &outside).view());
        for (j, &r) in outside.iter().enumerate() {
            q.row_mut(r).assign(&p.row(j));
        }
    }
    for (r, &i) in rows.iter().enumerate() {
        if let Some(b) = pos_in_base[i] {
            q.row_mut(r).assign(&base_votes.row(b as usize));
        }
    }
    q
}

/// Classes with fewer usable rows than this cannot be compared by neighbourhood.
const MIN_CLASS_ROWS: usize = 5;

/// References smaller than this also rank unflagged rows by the data's own neighbourhoods.
const DATA_VOTES_BELOW_REFERENCE_ROWS: usize = 5_000;

/// The detector on one base: the reference when given, else the data itself.
fn detect_on_base(ctx: &DetectContext, weights: &Array1<f32>, rank_only: bool) -> LabelFlipOutput {
    let n = ctx.x.nrows();
    let nc = ctx.classes.len();
    let empty = |why: String| LabelFlipOutput {
        output: DetectorOutput::skipped("label", n, why),
        nearest: vec![None; n],
        base_is_data: true,
        median_nn2: 0.0,
        data_nearest: None,
        tight: None,
    };
    if nc < 2 {
        return empty(format!(
            "the label has {nc} class{}: label flips need two or more",
            if nc == 1 { "" } else { "es" }
        ));
    }
    let mut per_class = vec![0usize; nc];
    for (i, l) in ctx.labels.iter().enumerate() {
        if let (true, Some(c)) = (ctx.valid[i], l) {
            per_class[*c as usize] += 1;
        }
    }
    let labelled: usize = per_class.iter().sum();
    let in_small: usize = per_class.iter().filter(|&&c| c < MIN_CLASS_ROWS).sum();
    let usable_classes = per_class.iter().filter(|&&c| c >= MIN_CLASS_ROWS).count();
    if usable_classes < 2 || 2 * in_small > labelled {
        return empty(format!(
            "{nc} classes over {labelled} labelled rows, {usable_classes} with {MIN_CLASS_ROWS} or more: too few rows per \
             class to compare neighbourhoods (is the label column an id?)"
        ));
    }
    let base = build_base(ctx, weights);
    let k = ctx.config.k;
    if base.x.nrows() <= k + 1 {
        return empty(format!(
            "k = {k} neighbours need more than {} labelled {} rows; there are {}",
            k + 1,
            if base.is_data { "data" } else { "reference" },
            base.x.nrows()
        ));
    }
    let voting = Voting::of(ctx.config, ctx.pred_probs);
    // A reference base is the same in every scan against the same fit: its index, model voters and leave-one-out
    // statistics are built once per process and reused (scans of many partitions or batches pay them once).
    let model = if base.is_data {
        None
    } else {
        Some(reference_model(&base, k, nc, ctx.config.nprobe, voting))
    };
    let built;
    let (index, lin, gauss, reference_forest) = match &model {
        Some(m) => (
            &m.index,
            m.lin.as_ref(),
            m.gauss.as_ref(),
            m.forest.as_ref(),
        ),
        None => {
            // The linear voter on the base (model probabilities given by the user replace it); the trees wait for
            // the neighbours below.
            built = rayon::join(
                || {
                    IvfIndex::build(
                        base.xw.view(),
                        default_nlist(base.xw.nrows()),
                        ctx.config.nprobe,
                    )
                },
                || {
                    (
                        linear_votes(&base, nc, voting.linear, None),
                        gauss_votes(&base, nc, voting.gauss, None),
                    )
                },
            );
            (&built.0, built.1 .0.as_ref(), built.1 .1.as_ref(), None)
        }
    };
    // Query every valid labelled data row.
    let mut pos_in_base = vec![None; n];
    if base.is_data {
        for (b, &i) in base.ids.iter().enumerate() {
            pos_in_base[i] = Some(b as u32);
        }
    }
    let rows: Vec<usize> = (0..n)
        .filter(|&i| ctx.valid[i] && ctx.labels[i].is_some())
        .collect();
    let excludes: Vec<Option<u32>> = rows.iter().map(|&i| pos_in_base[i]).collect();
    // The queried rows (no copy when every row is queried: 128 MB for 1M x 32).
    let copied;
    let data_rows = if rows.len() == n {
        ctx.x.view()
    } else {
        copied = take_rows(ctx.x.view(), &rows);
        copied.view()
    };
    let knn = index.search_all_scaled(data_rows, Some(weights), k, &excludes);
    // The trees on a data base are grown once its rows' near copies are known (`ForestVotes::fit`). They vote where
    // flags are calibrated on trusted rows (a profiled contract's clean rates, measured with them) or not taken
    // (the ranking pass a small reference adds). Without any calibration the flag line is a count of near-unanimous
    // candidates ([`UNCALIBRATED_LIMIT`], [`NATURAL_SHARE`], the linear model's expectation), measured for the kNN
    // and linear votes: the trees' softer votes leave fewer rows past it, on flipped and clean tables alike (a
    // synthetic world with 5% flips went from flagged to unflagged). There the trees rank the rows left unflagged
    // (their margin in the blend of all three voters replaces the two voters' below the flag line) and flags come
    // from the kNN and linear votes alone.
    let calibrated = ctx.label_clean_rate.is_some() || rank_only;
    let data_forest = if base.is_data && voting.forest {
        let mut near = vec![Vec::new(); base.x.nrows()];
        for (r, nb) in knn.iter().enumerate() {
            if let Some(b) = pos_in_base[rows[r]] {
                let left_out = nb.len() - voters(nb, true).len();
                near[b as usize] = nb[..left_out].iter().map(|&(_, id)| id).collect();
            }
        }
        ForestVotes::fit(base.x.view(), &base_classes(&base), nc, Some(&near), None)
    } else {
        None
    };
    let models = Models {
        lin,
        gauss,
        forest: reference_forest.or(data_forest.as_ref().filter(|_| calibrated)),
        fitted: voting.fitted,
    };
    // Trees that only rank (an uncalibrated scan), and their votes for the queried rows.
    let ranking_forest = data_forest.as_ref().filter(|_| !calibrated);
    // The model voters' votes for the queried rows: out-of-fold for rows of the base (a row never votes for its own
    // label), the fold models' average for the others (only those are predicted).
    // One voter at a time (each predicts in parallel chunks): at 1M rows each holds a copy of the rows' features
    // in chunks and its probabilities.
    let lin_rows =
        lin.map(|l| votes_of_rows(&rows, &pos_in_base, data_rows, &l.base, |x| l.predict(x)));
    let trees_vote =
        |f: &ForestVotes| votes_of_rows(&rows, &pos_in_base, data_rows, &f.base, |x| f.predict(x));
    let gauss_rows =
        gauss.map(|g| votes_of_rows(&rows, &pos_in_base, data_rows, &g.base, |x| g.predict(x)));
    let forest_rows = models.forest.map(trees_vote);
    let ranking_rows = ranking_forest.map(trees_vote);
    // With a reference, near duplicates inside the data are invisible to the reference-side neighbours.
    let data_pairs = (!base.is_data).then(|| nearest_sharing_neighbours(data_rows, weights, &knn));
    // Each data row's nearest other data rows (its own leave-one-out neighbours when the base is the data), for the
    // duplicate detector's test of near copies under another label.
    let mut tight = TightConflicts::default();
    let mut buf = [(0f32, 0usize); CLOSE_K];
    for r in 0..rows.len() {
        let m = match &data_pairs {
            Some(pairs) => fill(&mut buf, pairs[r].iter().map(|(d, q)| (d, rows[q]))),
            None => fill(
                &mut buf,
                knn[r].iter().map(|&(d, id)| (d, base.ids[id as usize])),
            ),
        };
        tight.observe(rows[r], &buf[..m], ctx.labels);
    }
    let stats = match &model {
        // A reference base's statistics are part of its model.
        Some(m) => m.stats.clone(),
        // Base rows are data rows whose leave-one-out neighbours were just found: reuse them.
        None => {
            let mut at = vec![usize::MAX; n];
            for (r, &i) in rows.iter().enumerate() {
                at[i] = r;
            }
            let picked = stats_rows(base.x.view());
            let found = picked
                .iter()
                .map(|&b| knn.get(at[base.ids[b]]).cloned().unwrap_or_default())
                .collect();
            statistics_from(&base, picked, found, (k, nc), models, ranking_forest)
        }
    };
    let (thresholds, s2) = (stats.thresholds.clone(), stats.s2);
    // Rate at which clean rows of each class are candidates, measured on the reference's own leave-one-out search
    // (or carried in a profiled contract). Without either there is nothing clean to measure.
    let uncalibrated = base.is_data && ctx.label_clean_rate.is_none();
    // Nothing clean to calibrate on: demand a clearer majority of another class.
    // Without anything clean to measure, the linear model's out-of-fold probabilities stand in for clean data: the
    // rows that would be candidates were they labelled y, each weighted by the model's probability of y there, give
    // the count of class-y candidates that labels drawn from the model would hold (see `self_expected`).
    let self_calibrated = uncalibrated && lin_rows.is_some() && ctx.pred_probs.is_none();
    let expected_from = if self_calibrated {
        "data's linear model"
    } else if uncalibrated {
        "none"
    } else {
        "reference"
    };
    let limit = if uncalibrated {
        UNCALIBRATED_LIMIT
    } else {
        LIMIT
    };
    let clean_rate: Vec<Option<f64>> = if base.is_data {
        match ctx.label_clean_rate {
            Some(r) if r.len() == nc => r.to_vec(),
            _ => vec![None; nc],
        }
    } else {
        stats.clean_rates()
    };
    // Rows whose vote left out much nearer data rows (possible copies of them).
    let near_left_out = base.is_data.then(|| {
        knn.iter()
            .filter(|nb| voters(nb, true).len() < nb.len())
            .count()
    });
    // Relabelled islands (votes from the data only): ranked by the linear model's margin below the flag line.
    let island = match (&lin_rows, base.is_data, ctx.pred_probs) {
        (Some(q), true, None) => islands(&rows, &knn, q.view(), &base, nc, s2),
        _ => vec![false; n],
    };
    let mut rank_at = vec![None; n];
    if let Some(q) = &lin_rows {
        for (r, &i) in rows.iter().enumerate() {
            if let (true, Some(y)) = (island[i], ctx.labels[i]) {
                rank_at[i] = Some(to_score(margin(&q.row(r).to_vec(), y as usize).0, limit));
            }
        }
    }
    // How the reasons name the Gaussian voter: one Gaussian per class, or two for some classes.
    let two_gaussians = gauss.map(GaussVotes::classes_with_two);
    let (gaussians, gaussians_verb) = match two_gaussians {
        Some(two) if two > 0 => ("one or two Gaussians per class", "give"),
        _ => ("a Gaussian per class", "gives"),
    };
    let results: Vec<(RowResult, Vec<f64>, Ranking)> = rows
        .par_iter()
        .enumerate()
        .zip(knn)
        .map(|((r, &i), nb)| {
            let y = ctx.labels[i].unwrap_or(0) as usize;
            let nearest = nb.first().map(|&(d, id)| (d, base.ids[id as usize], base.labels[base.ids[id as usize]]));
            // The neighbours that vote (without a data row's much nearer rows), for the vote and its reason.
            let voting = voters(&nb, base.is_data);
            let lin_row = lin_rows.as_ref().map(|q| q.row(r));
            let gauss_row = gauss_rows.as_ref().map(|q| q.row(r));
            let (p, ranked) = match ctx.pred_probs {
                Some(pp) if pp.ncols() == nc => (pp.row(i).to_vec(), None),
                _ => {
                    let knn_vote = vote(voting, base.labels, &base.ids, nc, s2);
                    // The blend with the ranking trees, when they only rank.
                    let ranked = ranking_rows.as_ref().map(|t| {
                        let mut p3 = knn_vote.clone();
                        blend(
                            &mut p3,
                            [lin_row, gauss_row, Some(t.row(r))].into_iter().flatten(),
                            &stats.ranking_weights,
                        );
                        Ranking::of(&p3, y, limit)
                    });
                    let mut p = knn_vote;
                    blend(
                        &mut p,
                        [lin_row, gauss_row, forest_rows.as_ref().map(|q| q.row(r))]
                            .into_iter()
                            .flatten(),
                        &stats.weights,
                    );
                    (p, ranked)
                }
            };
            let (m, other) = margin(&p, y);
            let s = to_score(m, limit);
            let ranked = ranked.unwrap_or_else(|| Ranking::of(&p, y, limit));
            // Whether the row would be a candidate were it labelled c (its votes do not include its own label).
            let candidate_as = |c: usize, score: f32| p[c] < thresholds[c] && score >= FLAG_AT;
            let would = match (&lin_rows, self_calibrated) {
                (Some(q), true) => (0..nc)
                    .map(|c| {
                        let sc = if c == y { s } else { to_score(margin(&p, c).0, limit) };
                        if candidate_as(c, sc) {
                            f64::from(q[[r, c]])
                        } else {
                            0.0
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let reason = candidate_as(y, s).then(|| {
                let agree = voting
                    .iter()
                    .filter(|&&(_, id)| base.labels[base.ids[id as usize]] == Some(other as u32))
                    .count();
                let left_out = nb.len() - voting.len();
                // What a model voter gives the other class, e.g. "; a linear model on the data gives p(b) = 0.91".
                let says = |votes: &Option<Array2<f32>>, model: &str, verb: &str| {
                    votes.as_ref().filter(|q| q[[r, other]].is_finite()).map(|q| {
                        format!(
                            "; {model} on the {} {verb} p({}) = {:.2}",
                            if base.is_data { "data" } else { "reference" },
                            ctx.classes[other],
                            q[[r, other]]
                        )
                    })
                };
                let linear = says(&lin_rows, "a linear model", "gives");
                let gaussian = says(&gauss_rows, gaussians, gaussians_verb);
                let trees = says(&forest_rows, "trees grown", "give");
                format!(
                    "label {} but {} of {} nearest {}neighbours{} are {} (p({}) = {:.2}, p({}) = {:.2}{}{}{})",
                    ctx.classes[y],
                    agree,
                    voting.len(),
                    if base.is_data { "" } else { "reference " },
                    if left_out > 0 {
                        format!(" beyond {left_out} much nearer rows (possible copies, left out)")
                    } else {
                        String::new()
                    },
                    ctx.classes[other],
                    ctx.classes[y],
                    p[y],
                    ctx.classes[other],
                    p[other],
                    linear.unwrap_or_default(),
                    gaussian.unwrap_or_default(),
                    trees.unwrap_or_default()
                )
            });
            ((i, s, reason, nearest), would, ranked)
        })
        .collect();
    let mut self_expected = vec![0f64; if self_calibrated { nc } else { 0 }];
    // What an unflagged row ranks by (with the ranking trees when they rank).
    let mut rank_by: Vec<Option<Ranking>> = vec![None; n];
    let results: Vec<RowResult> = results
        .into_iter()
        .map(|(row, would, ranked)| {
            for (e, w) in self_expected.iter_mut().zip(would) {
                *e += w;
            }
            rank_by[row.0] = Some(ranked);
            row
        })
        .collect();
    // Per-class excess test: with a reference, clean data of class y is expected to hold about
    // E_y = N_y * rate_y candidates. Flags stand only where the data holds clearly more (X_y > E_y + 3 sqrt(E_y) + 1):
    // then the class is poisoned and its candidates are flagged; otherwise they are what clean data looks like.
    let mut cand = vec![0usize; nc];
    let mut rows_of = vec![0usize; nc];
    for (i, _, r, _) in &results {
        if let Some(y) = ctx.labels[*i] {
            rows_of[y as usize] += 1;
            cand[y as usize] += r.is_some() as usize;
        }
    }
    let expected: Vec<Option<f64>> = (0..nc)
        .map(|y| match self_expected.get(y) {
            Some(&e) => Some(e),
            None => clean_rate[y].map(|r| r * rows_of[y] as f64),
        })
        .collect();
    // Pooled over classes as well: when the data as a whole holds clearly more candidates than clean data would,
    // candidates of classes whose clean rate is tiny (under one row expected) are flagged too, so flips spread
    // thinly over many classes are not lost to the per-class test.
    // A rate measured on n_y reference rows is itself uncertain: E_y = N_y r_y carries a variance
    // N_y^2 r_y (1 - r_y) / n_y beside the candidates' own (Poisson, E_y). Both enter the test, so a small reference
    // that happened to hold few candidates of a class does not make clean data of that class look poisoned.
    // (Rates carried in a contract do not say how many rows measured them: their variance is left out.)
    let rate_var: Vec<f64> = (0..nc)
        .map(|y| match (clean_rate[y], base.is_data) {
            (Some(r), false) => rate_variance(rows_of[y], r, stats.margins[y].len()),
            _ => 0.0,
        })
        .collect();
    let (mut x_all, mut e_all, mut v_all) = (0f64, 0f64, 0f64);
    for y in 0..nc {
        if let Some(e) = expected[y] {
            x_all += cand[y] as f64;
            e_all += e;
            v_all += rate_var[y];
        }
    }
    let pooled = exceeds(x_all, e_all, v_all);
    let excess: Vec<bool> = (0..nc)
        .map(|y| match expected[y] {
            Some(e) => exceeds(cand[y] as f64, e, rate_var[y]) || (pooled && e < 1.0),
            // A class too small for a clean rate is flagged as it stands; without a reference the natural share
            // below decides.
            None => !uncalibrated,
        })
        .collect();
    // Without a reference, labels drawn from the data's own model absorb flips spread evenly (the model is fitted
    // on them), so that test alone never flags them. A second, pooled one: clean real tables hold up to
    // NATURAL_SHARE of their rows as such near-unanimous disagreements; when the candidates clearly exceed that,
    // the clearest excess ones (by margin, over all classes) are flagged.
    let natural = uncalibrated.then_some(NATURAL_SHARE * rows.len() as f64);
    let natural_cut = natural
        .filter(|&e| exceeds(x_total(&cand), e, 0.0))
        .map(|e| {
            let s: Vec<f32> = results
                .iter()
                .filter(|(_, _, r, _)| r.is_some())
                .map(|(_, sc, _, _)| *sc)
                .collect();
            excess_cut(s, x_total(&cand), e).unwrap_or(f32::INFINITY)
        });
    // In a class that exceeds, about E_y of its candidates are what clean data holds anyway: only the clearest
    // X_y - E_y (by margin, ties at the cut kept) are flagged; the others keep their rank just below the line.
    let mut cut = vec![f32::NEG_INFINITY; nc];
    // Candidate scores per class, in one pass over the rows.
    let mut by_class: Vec<Vec<f32>> = vec![Vec::new(); nc];
    for (i, sc, r, _) in &results {
        if let (Some(_), Some(y)) = (r, ctx.labels[*i]) {
            by_class[y as usize].push(*sc);
        }
    }
    // With the reference's own margins, the flagged ones are those of the margin band where the class's candidates
    // most exceed what the reference's margins expect ([`excess_band`]), not simply the clearest.
    let mut cut_hi = vec![f32::INFINITY; nc];
    for (y, s) in by_class.into_iter().enumerate() {
        if let (true, Some(e)) = (excess[y], expected[y]) {
            let band = (!base.is_data && self_expected.is_empty())
                .then(|| excess_band(&s, &stats.margins[y], rows_of[y]))
                .flatten();
            match band {
                Some((lo, hi)) => (cut[y], cut_hi[y]) = (lo, hi),
                None => cut[y] = excess_cut(s, cand[y] as f64, e).unwrap_or(f32::NEG_INFINITY),
            }
        }
    }
    let mut results = results;
    for (i, s, r, _) in results.iter_mut() {
        if let Some(y) = ctx.labels[*i] {
            let y = y as usize;
            if r.is_some() {
                let by_class = excess[y] && *s >= cut[y] && *s < cut_hi[y];
                let by_share = natural_cut.is_some_and(|c| *s >= c);
                if !by_class && !by_share {
                    *r = None;
                } else if let (false, Some(e), Some(text)) = (by_class, natural, r.as_mut()) {
                    text.push_str(&format!(
                        " [{} such rows in all, more than the {:.0} ({:.1}% of the rows) that clean data may hold \
                         without a reference]",
                        x_total(&cand),
                        e,
                        100.0 * NATURAL_SHARE
                    ));
                } else if let (Some(e), Some(text)) = (expected[y], r.as_mut()) {
                    let band = if cut_hi[y].is_finite() {
                        format!(
                            "; the excess lies at margins {:.2} to {:.2}, clearer ones are as many as the \
                             {expected_from}'s rows of the class hold",
                            cut[y], cut_hi[y]
                        )
                    } else {
                        String::new()
                    };
                    text.push_str(&format!(
                        " [class {}: {} such rows, {:.1} expected from the {expected_from}{band}]",
                        ctx.classes[y], cand[y], e,
                    ));
                }
            }
        }
    }
    // How far each class's unflagged rows rank by their label's own probability rather than their margin.
    let shares: Vec<f32> = (0..nc)
        .map(|y| {
            if ctx.config.excess_ranking {
                excess_share(cand[y], expected[y])
            } else {
                0.0
            }
        })
        .collect();
    let mut scores = vec![0f32; n];
    let mut reasons = vec![None; n];
    let mut nearest = vec![None; n];
    let mut nn2 = Vec::with_capacity(results.len());
    for (i, s, r, near) in results {
        // Unflagged rows keep their order (by margin) below the flag line instead of tying at one value.
        // A relabelled island's row ranks by the linear model's margin when that is higher (still below the line).
        scores[i] = if r.is_some() {
            s
        } else {
            let share = ctx.labels[i].map_or(0.0, |y| shares[y as usize]);
            let s = rank_by[i].map_or(s, |r| r.at(share));
            below_flag(rank_at[i].map_or(s, |l: f32| l.max(s)))
        };
        reasons[i] = r;
        if let Some(nr) = near {
            nn2.push(nr.0 as f64);
        }
        nearest[i] = near;
    }
    let out = DetectorOutput {
        name: "label",
        scores,
        reasons,
        summary: json!({
            "fitted_on": if base.is_data { "data" } else { "reference" },
            "base_rows": base.x.nrows(),
            "k": k,
            "ivf_lists": index.nlist(),
            "ivf_probes": index.nprobe,
            "margin_limit": limit,
            "natural_candidates": natural,
            "natural_share_exceeded": natural_cut.is_some(),
            "expected_from": expected_from,
            "clean_candidate_rate": clean_rate,
            "candidates_per_class": cand,
            "expected_per_class": expected,
            "class_flagged": excess,
            "class_excess_share": shares,
            "class_excess_below": cut_hi.iter().map(|&h| h.is_finite().then_some(h)).collect::<Vec<_>>(),
            "class_thresholds": thresholds,
            "pred_probs": ctx.pred_probs.is_some(),
            "linear_votes": lin.is_some(),
            "linear_fit_converged": lin.map(|l| l.converged()),
            "linear_fit_gradient": lin.map(|l| l.gradient),
            "gauss_votes": gauss.is_some(),
            "gauss_temperature": gauss.map(|g| g.temperature),
            "gauss_classes_with_two": two_gaussians,
            "forest_votes": models.forest.is_some(),
            "forest_ranks_only": ranking_forest.is_some(),
            "voter_weights": stats.weights,
            "ranking_voter_weights": ranking_forest.map(|_| &stats.ranking_weights),
            "votes_without_near_rows": near_left_out,
            "relabelled_island_rows": base.is_data.then(|| island.iter().filter(|&&b| b).count()),
            "feature_weights": weights.to_vec(),
        }),
        skipped: None,
    };
    let data_nearest = data_pairs.map(|pairs| {
        let mut dn = vec![None; n];
        let mut d2s = Vec::with_capacity(pairs.len());
        for (r, nb) in pairs.into_iter().enumerate() {
            if let Some((d2, j)) = nb.iter().next() {
                let j = rows[j];
                dn[rows[r]] = Some((d2, j, ctx.labels[j]));
                d2s.push(d2 as f64);
            }
        }
        (dn, quantile(&d2s, 0.5) as f32)
    });
    LabelFlipOutput {
        output: out,
        nearest,
        base_is_data: base.is_data,
        median_nn2: quantile(&nn2, 0.5) as f32,
        data_nearest,
        tight: Some(tight),
    }
}

#[cfg(test)]
mod tests {
    use super::{
        excess_band, stacked_weights, voter_weights, voters, Neighbour, FITTED_SHARE,
        LEAVE_OUT_NEAR, MIN_VOTES,
    };
    use crate::{Scanner, Source};

    fn scores() -> Vec<Vec<f32>> {
        let out = Scanner::new(Source::path("fixtures/train_poisoned.parquet").unwrap())
            .reference(Source::path("fixtures/train_reference.parquet").unwrap())
            .label("label")
            .id("id")
            .run()
            .unwrap();
        vec![
            out.scores.checks["label"].clone(),
            out.scores.checks["outlier"].clone(),
        ]
    }

    proptest::proptest! {
        /// Data voters are the nearest-first list without a prefix of rows nearer than LEAVE_OUT_NEAR of the k-th
        /// distance; at least MIN_VOTES remain unless the whole list votes; reference voters are the whole list.
        #[test]
        fn voters_drop_only_a_near_prefix(mut d2 in proptest::collection::vec(0.0f32..10.0, 0..16)) {
            d2.sort_by(f32::total_cmp);
            let nb: Vec<Neighbour> = d2.iter().enumerate().map(|(i, &d)| (d, i as u32)).collect();
            proptest::prop_assert_eq!(voters(&nb, false), &nb[..]);
            let v = voters(&nb, true);
            let dropped = nb.len() - v.len();
            proptest::prop_assert_eq!(v, &nb[dropped..]);
            if dropped > 0 {
                let cut = nb[nb.len() - 1].0 * LEAVE_OUT_NEAR * LEAVE_OUT_NEAR;
                proptest::prop_assert!(v.len() >= MIN_VOTES);
                proptest::prop_assert!(nb[..dropped].iter().all(|&(d, _)| d < cut));
                proptest::prop_assert!(v.iter().all(|&(d, _)| d >= cut));
            }
        }
    }

    #[test]
    fn the_voter_that_predicts_the_labels_better_gets_more_weight() {
        // Each voter's probabilities of the labels, one vector per voter, as rows (`rows[r][v]`).
        let rows = |voters: &[Vec<f64>]| -> Vec<Vec<f64>> {
            let n = voters.first().map_or(0, Vec::len);
            (0..n)
                .map(|r| voters.iter().map(|v| v[r]).collect())
                .collect()
        };
        let stacked = |voters: &[Vec<f64>]| stacked_weights(&rows(voters), voters.len());
        // Voter 0 gives the label 0.9 on every row, voter 1 gives 0.9 on half of them and 0.1 on the others: the
        // mixture 0.9 w0 + 0.9 w1 (half) and 0.9 w0 + 0.1 w1 (half) is most likely at w1 = 0.
        let good = vec![0.9; 100];
        let half: Vec<f64> = (0..100)
            .map(|r| if r % 2 == 0 { 0.9 } else { 0.1 })
            .collect();
        let w = stacked(&[good.clone(), half.clone()]);
        assert!(w[0] > 0.99 && w[1] < 0.01, "{w:?}");
        // Half of the weights stay equal.
        let v = voter_weights(&rows(&[good.clone(), half]), 2);
        assert!((v[1] - (1.0 - FITTED_SHARE) / 2.0).abs() < 0.01, "{v:?}");
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{v:?}");
        // Voters that predict alike keep equal weights; one voter or no rows is nothing to fit.
        let w = stacked(&[good.clone(), good.clone(), good.clone()]);
        assert!(w.iter().all(|&x| (x - 1.0 / 3.0).abs() < 1e-5), "{w:?}");
        assert_eq!(stacked(&[good]), vec![1.0]);
        assert_eq!(stacked(&[vec![], vec![]]), vec![0.5, 0.5]);
        // Each voter right where the other is wrong: both are needed, the better one weighs more.
        let a: Vec<f64> = (0..100).map(|r| if r < 70 { 0.9 } else { 0.0 }).collect();
        let b: Vec<f64> = (0..100).map(|r| if r < 70 { 0.0 } else { 0.9 }).collect();
        let w = stacked(&[a, b]);
        assert!(
            (w[0] - 0.7).abs() < 0.01 && (w[1] - 0.3).abs() < 0.01,
            "{w:?}"
        );
    }

    #[test]
    fn data_votes_leave_out_much_nearer_rows_and_reference_votes_keep_them() {
        // Distances (squared) to the 10 nearest rows; the 10th at 1.0, so 0.3 of it is 0.09 squared.
        let nb: Vec<Neighbour> = [0.0, 0.01, 0.0899, 0.0901, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]
            .iter()
            .enumerate()
            .map(|(i, &d2)| (d2, i as u32))
            .collect();
        // From the data: the three rows under 0.09 are left out.
        assert_eq!(voters(&nb, true), &nb[3..]);
        // From a reference: every row votes.
        assert_eq!(voters(&nb, false), &nb[..]);
        // Fewer than three would remain: all vote.
        let tight: Vec<Neighbour> = nb
            .iter()
            .map(|&(d2, i)| (if i < 8 { d2 * 0.01 } else { d2 }, i))
            .collect();
        assert_eq!(voters(&tight, true), &tight[..]);
        // Ten exact copies (k-th distance 0): nothing is nearer than 0, all vote.
        let copies: Vec<Neighbour> = (0..10).map(|i| (0.0, i)).collect();
        assert_eq!(voters(&copies, true), &copies[..]);
        assert!(voters(&[], true).is_empty());
    }

    #[test]
    fn close_rows_keep_the_nearest_five_in_order_each_once() {
        let mut c = super::Close::default();
        for (d2, r) in [
            (5.0, 1),
            (1.0, 2),
            (3.0, 3),
            (1.0, 2),
            (9.0, 4),
            (0.5, 5),
            (2.0, 6),
            (8.0, 7),
        ] {
            c.insert(d2, r);
        }
        let got: Vec<(f32, usize)> = c.iter().collect();
        assert_eq!(got, vec![(0.5, 5), (1.0, 2), (2.0, 6), (3.0, 3), (5.0, 1)]);
        c.insert(0.1, 8);
        assert_eq!(
            c.iter().map(|(_, r)| r).collect::<Vec<_>>(),
            vec![8, 5, 2, 6, 3]
        );
    }

    #[test]
    fn separation_weights_keep_separating_columns_and_floor_the_rest() {
        // Column 0 separates the two classes, column 1 is noise independent of the class, column 2 is constant;
        // row 4 is invalid (its huge value would make column 1 look separating if it counted).
        let x = ndarray::array![
            [-1.0f32, 0.5, 3.0],
            [-1.1, -0.5, 3.0],
            [1.0, 0.5, 3.0],
            [1.1, -0.5, 3.0],
            [0.0, 100.0, 3.0],
        ];
        let labels = [Some(0), Some(0), Some(1), Some(1), Some(1)];
        let valid = [true, true, true, true, false];
        let w = super::separation_weights(x.view(), &labels, &valid, 2);
        let floor = super::SEPARATION_FLOOR.sqrt() as f32;
        assert!(w[0] > 0.99, "{w:?}");
        assert!((w[1] - floor).abs() < 1e-6, "{w:?}");
        assert!((w[2] - floor).abs() < 1e-6, "{w:?}");
        // Counting the invalid row would have lifted the noise column above the floor.
        let all = super::separation_weights(x.view(), &labels, &[true; 5], 2);
        assert!(all[1] > floor + 0.01, "{all:?}");
    }

    #[test]
    fn a_rate_measured_on_few_reference_rows_widens_the_excess_test() {
        // hpc_data's clean twin (real benchmark): one class holds 67 candidates in 411 rows where its rate, measured
        // on 206 reference rows, expects 41.9. The count alone looks like an excess; the rate's own uncertainty
        // (sd ~8.7 rows) says it is not.
        let (rows, rate, measured_on, x) = (411, 0.102, 206, 67.0);
        let e = rows as f64 * rate;
        assert!(super::exceeds(x, e, 0.0));
        let v = super::rate_variance(rows, rate, measured_on);
        assert!((v.sqrt() - 8.7).abs() < 0.1, "{v}");
        assert!(!super::exceeds(x, e, v));
        // Twice the expected count is still an excess, and a rate measured on nothing adds no variance.
        assert!(super::exceeds(2.0 * e + 10.0, e, v));
        assert_eq!(super::rate_variance(rows, rate, 0), 0.0);
    }

    #[test]
    fn the_excess_band_is_where_candidates_outnumber_the_clean_margins() {
        // A class of 100 rows whose clean rows are candidates half the time, mostly at margins near 1 (the
        // reference's 40 leave-one-out margins: 20 at 0.95-0.99, 20 below the limit).
        let clean: Vec<f64> = (0..20)
            .map(|i| 0.95 + 0.002 * i as f64)
            .chain((0..20).map(|i| -0.5 + 0.01 * i as f64))
            .collect();
        // Copies at margins 0.55-0.64 on top of the natural ones: the band is theirs, below the natural mass.
        let mut s: Vec<f32> = (0..40).map(|i| 0.95 + 0.001 * i as f32).collect();
        s.extend((0..30).map(|i| 0.55 + 0.003 * i as f32));
        let (lo, hi) = excess_band(&s, &clean, 100).expect("an excess");
        assert!(
            (0.54..0.56).contains(&lo) && (0.63..0.96).contains(&hi),
            "{lo} {hi}"
        );
        // Flips at the top (margins 0.995+) beyond the natural ones: the band starts at the top.
        let mut s: Vec<f32> = (0..48).map(|i| 0.95 + 0.0009 * i as f32).collect();
        s.extend((0..30).map(|i| 0.995 + 0.0001 * i as f32));
        let (_, hi) = excess_band(&s, &clean, 100).expect("an excess");
        assert_eq!(hi, f32::INFINITY);
        // No candidates, or too few reference margins to tell a band: none (the clearest X - E decide).
        assert_eq!(excess_band(&[], &clean, 100), None);
        assert_eq!(excess_band(&s, &clean[..9], 100), None);
    }

    #[test]
    fn kept_reference_models_score_exactly_as_new_ones() {
        let first = scores();
        let kept = scores();
        *super::REFERENCE_MODEL.lock().unwrap() = None;
        *crate::detect::outlier::KEPT.lock().unwrap() = None;
        let rebuilt = scores();
        assert_eq!(first, kept);
        assert_eq!(first, rebuilt);
        assert!(
            first[0]
                .iter()
                .filter(|&&s| s >= crate::detect::FLAG_AT)
                .count()
                > 20
        );
    }
}
