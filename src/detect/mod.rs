//! Detectors that find poisoned rows which pass every schema check.
//!
//! Each detector lives in its own file, opening with what it detects, how, when it is wrong, and its reference.
//! Every detector gives each row a score in [0, 1] whose calibrated threshold is 0.5 (a row is flagged by a detector
//! exactly when its score is at least 0.5), and a reason a person can read for every flagged row. Thresholds are
//! calibrated on the trusted reference when one is given, else with robust statistics of the data itself, never as
//! a fixed "top x%", so clean data flags (almost) nothing.

pub mod backdoor;
pub mod duplicate;
pub mod forest;
pub mod gauss;
pub mod ivf;
pub mod label_flip;
pub mod linear;
pub mod near_copy;
pub mod outlier;
pub mod trigger;

use crate::lineage::RowDigest;
use linfa::prelude::*;
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::{Array1, Array2, ArrayView2};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Squared Euclidean distance for linfa's k-means and linfa-nn's k-d trees, summed in eight lanes ([`ivf::l2`]) when
/// both rows are contiguous, as the rows of the detectors' matrices are. linfa-nn's `L2Dist` folds one coordinate at
/// a time through ndarray-stats; it was 10% of the CPU of a 100k-row scan (the outlier detector's k-means). The
/// distance is the same up to the order of the additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneL2;

impl linfa_nn::distance::Distance<f32> for LaneL2 {
    #[inline]
    fn distance<D: ndarray::Dimension>(
        &self,
        a: ndarray::ArrayView<f32, D>,
        b: ndarray::ArrayView<f32, D>,
    ) -> f32 {
        self.rdistance(a, b).sqrt()
    }

    #[inline]
    fn rdistance<D: ndarray::Dimension>(
        &self,
        a: ndarray::ArrayView<f32, D>,
        b: ndarray::ArrayView<f32, D>,
    ) -> f32 {
        match (a.as_slice(), b.as_slice()) {
            (Some(x), Some(y)) if x.len() == y.len() => ivf::l2(x, y),
            _ => a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum(),
        }
    }

    #[inline]
    fn rdist_to_dist(&self, rdist: f32) -> f32 {
        rdist.sqrt()
    }

    #[inline]
    fn dist_to_rdist(&self, dist: f32) -> f32 {
        dist * dist
    }
}

/// Score at or above which a detector flags a row.
pub const FLAG_AT: f32 = 0.5;

/// Map a ratio `r = statistic / calibrated_limit` (r >= 0) to a score: 0.5 at the limit, towards 1 far above it.
pub fn ratio_score(r: f64) -> f32 {
    if !r.is_finite() {
        return if r > 0.0 { 1.0 } else { 0.0 };
    }
    let r = r.max(0.0);
    (r / (1.0 + r)) as f32
}

/// Detector settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetectConfig {
    /// Run the k-means outlier detector.
    pub outliers: bool,
    /// Run the kNN label-flip detector.
    pub label_flips: bool,
    /// Run the per-class backdoor detector.
    pub backdoors: bool,
    /// Neighbours for the label-flip detector.
    pub k: usize,
    /// IVF lists probed per query.
    pub nprobe: usize,
    /// Most rows any model is fitted on (chosen by row digest); every row is scored.
    pub max_fit_rows: usize,
    /// Seed for k-means initialisation.
    pub seed: u64,
    /// Let a multinomial logistic regression vote beside the kNN neighbourhood in the label-flip detector.
    pub linear: bool,
    /// Let extremely randomized trees vote beside the kNN neighbourhood and the linear model in the label-flip
    /// detector (`detect::forest`).
    #[serde(default = "default_on")]
    pub forest: bool,
    /// Weigh the label-flip detector's voters (kNN, linear model, Gaussians, trees) by how well each predicts the labels of the
    /// rows it is fitted on, half and half with equal weights (`detect::label_flip`); else equal weights.
    #[serde(default = "default_on")]
    pub fit_voter_weights: bool,
    /// Let one Gaussian per class, or two where a class is two clouds (regularized quadratic discriminant analysis,
    /// `detect::gauss`), vote beside the other voters in the label-flip detector.
    #[serde(default = "default_on")]
    pub gauss: bool,
    /// Rank a row the label-flip detector leaves unflagged between its margin and its label's own probability, by
    /// how far its class's candidates exceed what clean data holds (`detect::label_flip`); else by its margin.
    #[serde(default = "default_on")]
    pub excess_ranking: bool,
}

/// Settings saved before the tree voter (or the fitted voter weights) existed turn it on.
fn default_on() -> bool {
    true
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            outliers: true,
            label_flips: true,
            backdoors: true,
            k: 10,
            nprobe: 4,
            max_fit_rows: 100_000,
            seed: 0x5eed,
            linear: true,
            forest: true,
            fit_voter_weights: true,
            gauss: true,
            excess_ranking: true,
        }
    }
}

/// Features and labels of trusted rows.
#[derive(Debug, Clone)]
pub struct LabelledMatrix {
    /// Standardized features, one row per trusted row.
    pub x: Array2<f32>,
    /// Class index per row (None when the label is missing or unknown).
    pub labels: Vec<Option<u32>>,
}

/// What every detector sees.
#[derive(Debug, Clone, Copy)]
pub struct DetectContext<'a> {
    /// Standardized features of the data, one row per input row.
    pub x: &'a Array2<f32>,
    /// Rows usable in distance computations (finite features, no contract violation).
    pub valid: &'a [bool],
    /// Class index per row.
    pub labels: &'a [Option<u32>],
    /// Class names by index.
    pub classes: &'a [String],
    /// Row digests (for deterministic fit samples).
    pub digests: &'a [RowDigest],
    /// Trusted reference rows, standardized the same way.
    pub reference: Option<&'a LabelledMatrix>,
    /// Settings.
    pub config: &'a DetectConfig,
    /// Model probabilities per row (n x classes), when supplied.
    pub pred_probs: Option<&'a Array2<f32>>,
    /// Per-class clean candidate rates of the label-flip detector, from a profiled contract (used when no
    /// reference rows are given).
    pub label_clean_rate: Option<&'a [Option<f64>]>,
}

/// Scores and reasons of one detector.
#[derive(Debug, Clone)]
pub struct DetectorOutput {
    /// Detector name (`outlier`, `label`, `backdoor`, `duplicate`).
    pub name: &'static str,
    /// Score per row in [0, 1]; flagged at >= 0.5.
    pub scores: Vec<f32>,
    /// Reason per flagged row.
    pub reasons: Vec<Option<String>>,
    /// Calibration and fit summary for the report.
    pub summary: serde_json::Value,
    /// Why the detector did not analyse the data, when it did not (the scan is then incomplete).
    pub skipped: Option<String>,
}

impl DetectorOutput {
    /// All-zero output for `n` rows of a detector that could not run, with the reason.
    pub fn skipped(name: &'static str, n: usize, why: impl Into<String>) -> DetectorOutput {
        let why = why.into();
        DetectorOutput {
            name,
            scores: vec![0.0; n],
            reasons: vec![None; n],
            summary: serde_json::json!({ "skipped": why }),
            skipped: Some(why),
        }
    }
}

/// k-means with linfa (k-means++ init, one run, capped iterations): centroids and the row assignments.
pub fn kmeans(
    x: &Array2<f32>,
    k: usize,
    seed: u64,
    max_iter: u64,
) -> Result<(Array2<f32>, Array1<usize>), String> {
    fit_kmeans_inertia(x, k, seed, None, max_iter).map(|(c, a, _)| (c, a))
}

/// A key per row of `x` from its values alone (the first 16 bytes of a blake3 of the row's bits): equal rows get
/// equal keys.
fn row_keys(x: ArrayView2<f32>) -> Vec<[u8; 16]> {
    use rayon::prelude::*;
    (0..x.nrows())
        .into_par_iter()
        .map_init(Vec::new, |bytes, i| {
            bytes.clear();
            bytes.extend(x.row(i).iter().flat_map(|v| v.to_bits().to_le_bytes()));
            let mut key = [0u8; 16];
            key.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
            key
        })
        .collect()
}

/// Positions of at most `most` rows of `x`, chosen and ordered by their values ([`row_keys`], smallest first; equal
/// rows by position, where they are interchangeable): a sample and an order that do not depend on how the input
/// rows were ordered (a fit that draws rows by position, as k-means++ does, then gives the same model).
pub fn by_value(x: ArrayView2<f32>, most: usize) -> Vec<usize> {
    let keys = row_keys(x);
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]).then(a.cmp(&b)));
    order.truncate(most);
    order
}

/// k-means (linfa) started from given centroids: the final centroids and the row assignments.
pub fn kmeans_from(
    x: &Array2<f32>,
    init: Array2<f32>,
    max_iter: u64,
) -> Result<(Array2<f32>, Array1<usize>), String> {
    fit_kmeans_inertia(x, init.nrows(), 0, Some(init), max_iter).map(|(c, a, _)| (c, a))
}

/// k-means (linfa, k-means++) from `runs` seeds (`seed`, `seed + 1`, ...) in parallel, keeping the run with the
/// lowest inertia (the first of equals): a fit less at the mercy of one draw of starting centres.
pub fn kmeans_best_of(
    x: &Array2<f32>,
    k: usize,
    seed: u64,
    max_iter: u64,
    runs: u64,
) -> Result<(Array2<f32>, Array1<usize>), String> {
    use rayon::prelude::*;
    let fits: Vec<Result<KMeansFit, String>> = (0..runs.max(1))
        .into_par_iter()
        .map(|r| fit_kmeans_inertia(x, k, seed.wrapping_add(r), None, max_iter))
        .collect();
    let mut best: Option<KMeansFit> = None;
    for fit in fits {
        let fit = fit?;
        if best.as_ref().is_none_or(|b| fit.2 < b.2) {
            best = Some(fit);
        }
    }
    best.map(|(c, a, _)| (c, a))
        .ok_or_else(|| "no k-means run".to_string())
}

/// Centroids, row assignments and inertia of one k-means fit.
type KMeansFit = (Array2<f32>, Array1<usize>, f32);

fn fit_kmeans_inertia(
    x: &Array2<f32>,
    k: usize,
    seed: u64,
    init: Option<Array2<f32>>,
    max_iter: u64,
) -> Result<KMeansFit, String> {
    if x.nrows() < k || k == 0 {
        return Err(format!("{} rows are too few for {} clusters", x.nrows(), k));
    }
    let ds = DatasetBase::from(x.clone());
    let mut params =
        KMeans::params_with(k, rand_xoshiro::Xoshiro256Plus::seed_from_u64(seed), LaneL2)
            .n_runs(1)
            .max_n_iterations(max_iter)
            .tolerance(1e-4f32);
    if let Some(c) = init {
        params = params.init_method(linfa_clustering::KMeansInit::Precomputed(c));
    }
    let model = params.fit(&ds).map_err(|e| e.to_string())?;
    let assign = model.predict(x);
    Ok((model.centroids().clone(), assign, model.inertia()))
}

/// Positions of an evenly spread subset of at most `most` of `n` rows, in order (all `n` when `n <= most`).
pub fn spread_rows(n: usize, most: usize) -> Vec<usize> {
    let step = (n as f64 / most.max(1) as f64).max(1.0);
    (0..n.min(most))
        .map(|j| ((j as f64 * step) as usize).min(n.saturating_sub(1)))
        .collect()
}

/// Rows of `x` at `rows` as a new matrix.
pub fn take_rows(x: ArrayView2<f32>, rows: &[usize]) -> Array2<f32> {
    x.select(ndarray::Axis(0), rows)
}

/// Quantile of an unsorted slice (linear interpolation, as `quantile_sorted` of a sorted copy).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    // The two order statistics the interpolation needs, by selection (O(n)) instead of a full sort: the same values
    // as `quantile_sorted` of the sorted copy, since values equal under `total_cmp` are the same bits.
    let mut s = v.to_vec();
    let (lo, hi, w) = crate::contract::drift::quantile_position(s.len(), q);
    let (_, &mut at_lo, right) = s.select_nth_unstable_by(lo, f64::total_cmp);
    let at_hi = if hi > lo {
        right
            .iter()
            .copied()
            .min_by(f64::total_cmp)
            .unwrap_or(at_lo)
    } else {
        at_lo
    };
    at_lo * (1.0 - w) + at_hi * w
}

/// Median and MAD-based sigma (1.4826 MAD).
pub fn median_sigma(v: &[f64]) -> (f64, f64) {
    let m = quantile(v, 0.5);
    let dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    (m, 1.4826 * quantile(&dev, 0.5))
}

/// One model kept per detector and process, by the blake3 of everything it was built from.
pub(crate) type Kept<T> = std::sync::Mutex<Option<(blake3::Hash, std::sync::Arc<T>)>>;

/// The model for `key`: the kept one when the key matches, else `build()` (then kept). Models are built
/// deterministically from what the key hashes, so a kept model scores exactly as a new one. A lock poisoned by a
/// panicking scan is taken over, never trusted: the model is rebuilt.
pub(crate) fn kept_or_build<T>(
    slot: &Kept<T>,
    key: blake3::Hash,
    build: impl FnOnce() -> T,
) -> std::sync::Arc<T> {
    if let Ok(guard) = slot.lock() {
        if let Some((kept, m)) = guard.as_ref() {
            if *kept == key {
                return m.clone();
            }
        }
    }
    let m = std::sync::Arc::new(build());
    match slot.lock() {
        Ok(mut guard) => *guard = Some((key, m.clone())),
        Err(poisoned) => *poisoned.into_inner() = Some((key, m.clone())),
    }
    m
}

/// blake3 of a matrix and some settings (the key of a kept model).
pub(crate) fn matrix_key(x: ArrayView2<f32>, settings: &[u64]) -> blake3::Hasher {
    let mut h = blake3::Hasher::new();
    for v in [x.nrows() as u64, x.ncols() as u64].iter().chain(settings) {
        h.update(&v.to_le_bytes());
    }
    // One update per row, not per value (blake3 is fast on long inputs, slow on 4-byte ones).
    let mut row = Vec::with_capacity(4 * x.ncols());
    for r in x.rows() {
        row.clear();
        row.extend(r.iter().flat_map(|v| v.to_le_bytes()));
        h.update(&row);
    }
    h
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`, summed from `k` up with each term in log space, so large `n` (thousands of
/// rows) neither underflows `(1 - p)^n` nor loses the tail to `1 - P(X < k)`.
pub(crate) fn binomial_tail(n: usize, p: f64, k: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    // ln P(X = k) = ln C(n, k) + k ln p + (n - k) ln(1 - p), with ln C(n, k) summed as ln((n - k + i) / i).
    let mut ln_term: f64 = (1..=k)
        .map(|i| ((n - k + i) as f64 / i as f64).ln())
        .sum::<f64>()
        + k as f64 * lp
        + (n - k) as f64 * lq;
    let mut sum = 0.0;
    for i in k..=n {
        let t = ln_term.exp();
        sum += t;
        // Past the mode the terms fall geometrically: stop once they no longer count.
        if t < sum * 1e-17 && i as f64 > n as f64 * p {
            break;
        }
        ln_term += ((n - i) as f64 / (i + 1) as f64).ln() + lp - lq;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::binomial_tail;
    use proptest::prelude::*;

    #[test]
    fn the_binomial_tail_is_its_sum_for_small_and_large_n() {
        assert_eq!(binomial_tail(3, 0.4, 0), 1.0);
        assert_eq!(binomial_tail(2, 0.4, 3), 0.0);
        assert!((binomial_tail(3, 0.4, 3) - 0.064).abs() < 1e-12);
        // P(X >= 2) for n = 4, p = 0.3: 1 - 0.7^4 - 4 0.3 0.7^3 = 0.3483.
        assert!((binomial_tail(4, 0.3, 2) - 0.3483).abs() < 1e-12);
        // n = 5,000: (1 - p)^n underflows to 0 at p = 0.8, and the sum from 0 gave P = 1 for every k. The tail at
        // the mean is about a half, 3.1 standard deviations above it 0.1% (normal approximation, continuity
        // corrected: 1 - Phi(3.1) = 0.00097).
        let (n, p) = (5000usize, 0.8);
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        let at_mean = binomial_tail(n, p, 4000);
        assert!((0.49..0.52).contains(&at_mean), "{at_mean}");
        let far = binomial_tail(n, p, (4000.0 + 3.1 * sd + 0.5).round() as usize);
        assert!((0.0007..0.0013).contains(&far), "{far}");
        assert!(binomial_tail(n, p, 4500) < 1e-30);
    }

    proptest! {
        /// Selection gives the quantile of the sorted copy bit for bit (ties, repeats, infinities, every q).
        #[test]
        fn quantile_by_selection_is_the_sorted_one(
            v in prop::collection::vec(prop_oneof![
                -5i32..5i32,
                Just(i32::MAX),
                Just(i32::MIN),
            ], 1..60),
            q in 0.0f64..=1.0,
        ) {
            let v: Vec<f64> = v
                .into_iter()
                .map(|x| match x {
                    i32::MAX => f64::INFINITY,
                    i32::MIN => f64::NEG_INFINITY,
                    x => x as f64 / 3.0,
                })
                .collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            let want = crate::contract::drift::quantile_sorted(&sorted, q);
            let got = super::quantile(&v, q);
            prop_assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{got} vs {want}");
        }
    }
}
