//! Class probabilities from one or two Gaussians per class (regularized quadratic discriminant analysis, a mixture
//! where a class is two clouds), a voter of the label-flip detector beside the kNN neighbourhood, the linear model and
//! the trees.
//!
//! The kNN vote sees a row's few nearest neighbours and the linear model one straight boundary between two classes.
//! Neither knows a class's *shape*: in a table whose classes are elongated, correlated clouds that overlap (the
//! 100k `make_classification` table of `benches/flips_100k.py`), a flipped row sits inside the cloud of its true
//! class, yet its ten nearest neighbours mix both classes and the linear boundary cuts through the clouds. A
//! Gaussian of each class with its own covariance measures how far a row is from each class's cloud along that
//! cloud's own axes (the Mahalanobis distance); the class probabilities follow by Bayes' rule with the class
//! frequencies as priors. A class made of two clouds gets two Gaussians when they fit it better ([`class_mixture`]).
//!
//! Each class's covariance is shrunk towards a multiple of the identity by the Ledoit-Wolf estimate of the best
//! shrinkage (Ledoit & Wolf, "A well-conditioned estimator for large-dimensional covariance matrices", J. Multivariate
//! Analysis 2004): a class of 30 rows in 64 columns has a singular sample covariance, which the shrinkage makes
//! invertible and well conditioned, while a class of thousands of rows keeps its own. A small ridge
//! ([`RIDGE`] of the mean variance) keeps a column that is constant within a class (a one-hot flag) from making
//! the class's density infinitely sharp.
//!
//! A Gaussian's probabilities are overconfident wherever the class is not Gaussian (heavy tails, integer columns):
//! they are *tempered*, `p(c) ∝ exp(log-density(c) / T)`, with the one temperature `T` that makes the out-of-fold
//! probabilities of the fitted rows' own labels most likely. Like the linear voter (`detect::linear`), the fitted
//! rows get out-of-fold probabilities (five stratified folds) and other rows the average of the five fold models;
//! a base of more than [`super::linear::FIT_ROWS`] rows is fitted on that many evenly spread rows, and the voter
//! abstains when its out-of-fold probabilities say no more than the class frequencies, or when scoring a row would
//! cost more than [`MAX_ROW_WORK`] multiply-adds (many classes of many columns).

use linfa_linalg::cholesky::Cholesky;
use linfa_linalg::triangular::{SolveTriangular, UPLO};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::linear::{on_sample, squashed, squashed_in_chunks, stratified_folds, OutOfFold, FOLDS};

/// Ridge added to each class covariance's diagonal, as a share of its mean variance.
const RIDGE: f64 = 1e-3;
/// Most multiply-adds the voter may spend on scoring one row (classes x columns^2 x folds): above, it abstains.
/// 2 x 10^5 is 10 classes in 64 columns (a million rows then cost 2 x 10^11, seconds on two cores), or two classes
/// in 141 columns; a 768-dimensional embedding is beyond it.
pub const MAX_ROW_WORK: f64 = 2e5;
/// The temperatures tried (a grid in log space from 1/4 to 1,000).
const TEMPERATURES: usize = 49;

/// One Gaussian of a class (the class's only one, or a component of its mixture): rows are whitened by `z = x W - b`
/// (W = L^-T for the covariance's Cholesky factor L, b = mu W) and get the log-density `offset - |z|^2 / 2` (up to a
/// constant shared by the classes; the offset holds the class's prior and the component's share).
struct ClassModel {
    class: usize,
    offset: f64,
}

/// One fitted model: every Gaussian's whitening side by side (`w` is d x (Gaussians d), `b` their shifts), so a chunk
/// of rows is whitened for every class in one matrix product.
struct Model {
    classes: Vec<ClassModel>,
    w: Array2<f32>,
    b: Array1<f32>,
    d: usize,
}

/// The fold models of the Gaussian voter and the out-of-fold probabilities of the rows it was fitted on.
pub struct GaussVotes {
    models: Vec<Model>,
    /// Out-of-fold class probabilities of the base rows (one row per base row).
    pub base: Array2<f32>,
    nc: usize,
    /// The temperature the log-densities are divided by.
    pub temperature: f64,
    /// The squared Mahalanobis distance beyond which a row is outside every class ([`outside_every_class`]).
    pub outside: f64,
}

impl GaussVotes {
    /// Classes that two Gaussians model in at least one fold model (the others have one); the reasons and the
    /// report say so.
    pub fn classes_with_two(&self) -> usize {
        let mut two = vec![false; self.nc];
        for m in &self.models {
            let mut seen = vec![0usize; self.nc];
            for cm in &m.classes {
                if let Some(s) = seen.get_mut(cm.class) {
                    *s += 1;
                }
            }
            for (t, &s) in two.iter_mut().zip(&seen) {
                *t |= s >= 2;
            }
        }
        two.iter().filter(|&&t| t).count()
    }
}

impl OutOfFold for GaussVotes {
    fn oof(&mut self) -> &mut Array2<f32> {
        &mut self.base
    }
}

/// The Ledoit-Wolf shrunk covariance of centred rows `xc` (n x d, f64), plus the ridge, and the shrinkage (0: the
/// sample covariance, 1: a multiple of the identity).
fn shrunk_covariance(xc: &Array2<f64>) -> (Array2<f64>, f64) {
    let n = xc.nrows() as f64;
    let d = xc.ncols();
    let s = xc.t().dot(xc) / n;
    let mu = s.diag().sum() / d as f64;
    // delta: squared distance of S from mu I; beta: the estimated variance of S around the true covariance (bounded
    // by delta), as in scikit-learn's `ledoit_wolf_shrinkage`.
    let mut delta = 0f64;
    for ((i, j), &v) in s.indexed_iter() {
        let t = if i == j { v - mu } else { v };
        delta += t * t;
    }
    let x2 = xc.mapv(|v| v * v);
    let beta_sum = x2.t().dot(&x2).sum();
    let s_sq: f64 = s.iter().map(|v| v * v).sum();
    let beta = ((beta_sum / n - s_sq) / n).max(0.0).min(delta);
    let shrink = if delta > 0.0 { beta / delta } else { 1.0 };
    let mut cov = s * (1.0 - shrink);
    let floor = RIDGE * mu.max(1e-12);
    for i in 0..d {
        cov[[i, i]] += shrink * mu + floor;
    }
    (cov, shrink)
}

impl Model {
    /// Fit a mixture of up to `components` Gaussians per class present in `y` (with 2 or more rows) on squashed rows
    /// `x` ([`class_mixture`]).
    fn fit(x: ArrayView2<f32>, y: &[u32], nc: usize, components: usize) -> Option<Model> {
        let d = x.ncols();
        let n = y.len() as f64;
        let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); nc];
        for (i, &c) in y.iter().enumerate() {
            rows_of.get_mut(c as usize)?.push(i);
        }
        // Per class its Gaussians: (class, whitening, shift, offset).
        type Whitened = (usize, Array2<f32>, Array1<f32>, f64);
        let fitted: Vec<Vec<Whitened>> = rows_of
            .par_iter()
            .enumerate()
            .filter(|(_, r)| r.len() >= 2)
            .map(|(c, r)| {
                let xc = super::take_rows(x, r).mapv(f64::from);
                let prior = (r.len() as f64 / n).ln();
                class_mixture(&xc, components)?
                    .into_iter()
                    .map(|(share, (mean, l))| {
                        let eye = Array2::<f64>::eye(d);
                        let linv = l.solve_triangular(&eye, UPLO::Lower).ok()?;
                        let w = linv.t().to_owned();
                        let b = mean.dot(&w);
                        let offset = prior + share.ln() - 0.5 * log_det(&l);
                        Some((c, w.mapv(|v| v as f32), b.mapv(|v| v as f32), offset))
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        let classes_fitted = fitted.len();
        let fitted: Vec<_> = fitted.into_iter().flatten().collect();
        if classes_fitted < 2 || fitted.iter().any(|f| !f.3.is_finite()) {
            return None;
        }
        let mut w = Array2::<f32>::zeros((d, d * fitted.len()));
        let mut b = Array1::<f32>::zeros(d * fitted.len());
        let mut classes = Vec::with_capacity(fitted.len());
        for (j, (c, wc, bc, offset)) in fitted.into_iter().enumerate() {
            w.slice_mut(ndarray::s![.., j * d..(j + 1) * d]).assign(&wc);
            b.slice_mut(ndarray::s![j * d..(j + 1) * d]).assign(&bc);
            classes.push(ClassModel { class: c, offset });
        }
        Some(Model { classes, w, b, d })
    }

    /// Log-densities (up to a shared constant) of squashed rows `x`, one column per class index (`-inf` for a class
    /// the model has no Gaussian of), and each row's smallest squared Mahalanobis distance to a class.
    fn log_density(&self, x: ArrayView2<f32>, nc: usize) -> (Array2<f64>, Vec<f64>) {
        let mut z = x.dot(&self.w) - &self.b;
        z.mapv_inplace(|v| v * v);
        let mut out = Array2::<f64>::from_elem((x.nrows(), nc), f64::NEG_INFINITY);
        let mut nearest = vec![f64::INFINITY; x.nrows()];
        for ((zr, mut o), near) in z
            .rows()
            .into_iter()
            .zip(out.rows_mut())
            .zip(nearest.iter_mut())
        {
            for (cm, q) in self.classes.iter().zip(zr.exact_chunks(self.d)) {
                let q = f64::from(q.sum());
                // A class of several components: the log of the sum of their densities.
                o[cm.class] = log_add(o[cm.class], cm.offset - 0.5 * q);
                *near = near.min(q);
            }
        }
        (out, nearest)
    }
}

/// The squared Mahalanobis distance to the nearest class beyond which a row is outside every class, from the fitted
/// rows' out-of-fold distances `nearest` in `d` columns: the chi-square distribution's 99.9th percentile with `d`
/// degrees of freedom (Wilson-Hilferty), scaled by how much wider the rows' median is than the chi-square's (real
/// classes are heavier-tailed than Gaussians). Out there the Gaussians' posterior says only which class is least far,
/// with a confidence no row of the classes supports: a backdoor's copies of class-a rows moved in three of four
/// columns to the values of class b (iris) are far from both classes, and the Gaussians called them b with p = 1,
/// against the kNN vote and the trees.
fn outside_every_class(nearest: &[f64], d: usize) -> f64 {
    let d = d.max(1) as f64;
    let wh = |z: f64| d * (1.0 - 2.0 / (9.0 * d) + z * (2.0 / (9.0 * d)).sqrt()).powi(3);
    let finite: Vec<f64> = nearest.iter().copied().filter(|v| v.is_finite()).collect();
    let median = super::quantile(&finite, 0.5);
    let scale = (median / wh(0.0)).max(1.0);
    scale * wh(3.09)
}

/// A class's mean and the Cholesky factor of its shrunk covariance, fitted on `rows`.
fn gaussian(rows: &Array2<f64>) -> Option<Gaussian> {
    let mean = rows.mean_axis(Axis(0))?;
    let l = shrunk_covariance(&(rows - &mean)).0.cholesky().ok()?;
    Some((mean, l))
}

/// Squared Mahalanobis distances of `rows` from a Gaussian (mean, Cholesky factor).
fn distances(rows: &Array2<f64>, (mean, l): &Gaussian) -> Option<Vec<f64>> {
    let centred = (rows - mean).reversed_axes();
    let z = l.solve_triangular(&centred, UPLO::Lower).ok()?;
    Some(z.columns().into_iter().map(|c| c.dot(&c)).collect())
}

/// Fewest rows per feature column a Gaussian is fitted on: a class (the label-flip detector's floor on the base, per
/// class) and each component of a class's mixture. A covariance has `d (d + 1) / 2` entries; without the floor iris
/// (50 rows per class in 4 columns, a 10-row reference per class) lost two of its in-range backdoor's four rows to
/// versicolor/virginica rows the Gaussians were sure of (docs/detectors/label_flip.md).
pub const ROWS_PER_COLUMN: f64 = 20.0;
/// Smallest share of its class's rows a component of a two-Gaussian mixture may hold: a cluster of relabelled rows
/// (a cluster flip, a backdoor's copies) smaller than that cannot become a component of the class it was moved into.
const MIN_SHARE: f64 = 0.25;
/// Most rounds of assigning a class's rows to the nearer of its two components and fitting them again.
const ROUNDS: usize = 8;

/// A Gaussian: its mean and the Cholesky factor of its covariance.
type Gaussian = (Array1<f64>, Array2<f64>);
/// A class's two Gaussians with their shares, and each row's log of share times density under each.
type TwoComponents = (Vec<(f64, Gaussian)>, [Vec<f64>; 2]);

/// Log-determinant of a covariance from its Cholesky factor.
fn log_det(l: &Array2<f64>) -> f64 {
    2.0 * l.diag().iter().map(|v| v.ln()).sum::<f64>()
}

/// Log-densities of `rows` under a Gaussian, up to the constant `-d ln(2 pi) / 2`.
fn log_densities(rows: &Array2<f64>, g: &Gaussian) -> Option<Vec<f64>> {
    let h = log_det(&g.1);
    Some(
        distances(rows, g)?
            .into_iter()
            .map(|q| -0.5 * (h + q))
            .collect(),
    )
}

/// A class's Gaussians with their shares of its rows: one ([`robust_gaussian`]), or with `components` >= 2 two, when
/// the class has rows for two and two fit it better by the Bayesian information criterion (the log-likelihood gain
/// must exceed `ln(n) / 2` per added parameter: a mean, a covariance and a share). A class made of two clouds (the
/// 100k `make_classification` table draws each class as two clusters) is not one Gaussian's ellipsoid: one Gaussian
/// per class ranked its flips at 0.761, two at 0.862 (scikit-learn on the same log-compressed features and 10,000 rows,
/// `benches/flips_100k_gaussians.py`); this voter went 0.752 -> 0.865 there with a reference (session 28).
fn class_mixture(rows: &Array2<f64>, components: usize) -> Option<Vec<(f64, Gaussian)>> {
    let one = robust_gaussian(rows)?;
    let (n, d) = (rows.nrows() as f64, rows.ncols() as f64);
    let floor = (ROWS_PER_COLUMN * d).max(MIN_SHARE * n);
    if components < 2 || n < 2.0 * floor {
        return Some(vec![(1.0, one)]);
    }
    let Some((two, [a, b])) = two_components(rows, floor) else {
        return Some(vec![(1.0, one)]);
    };
    let ll_one: f64 = log_densities(rows, &one)?.iter().sum();
    let ll_two: f64 = a.iter().zip(&b).map(|(&a, &b)| log_add(a, b)).sum();
    let added = 1.0 + d + d * (d + 1.0) / 2.0;
    if ll_two.is_finite() && 2.0 * (ll_two - ll_one) > added * n.ln() {
        Some(two)
    } else {
        Some(vec![(1.0, one)])
    }
}

/// `ln(e^a + e^b)` without overflow (`-inf` when both are).
fn log_add(a: f64, b: f64) -> f64 {
    let hi = a.max(b);
    if hi == f64::NEG_INFINITY {
        return hi;
    }
    hi + ((a - hi).exp() + (b - hi).exp()).ln()
}

/// Two Gaussians of a class's rows by hard expectation-maximization: k-means (linfa, two runs) splits the rows, each
/// part gets its [`robust_gaussian`], every row goes to the component under which it is likelier (its share times
/// its density), until no row moves (at most [`ROUNDS`]). Returns the two with their shares, and each row's log of
/// share times density under each; None when a part falls under `floor` rows.
fn two_components(rows: &Array2<f64>, floor: f64) -> Option<TwoComponents> {
    let (_, mut assign) = super::kmeans_best_of(&rows.mapv(|v| v as f32), 2, 0, 50, 2).ok()?;
    let n = rows.nrows();
    let mut last = None;
    for _ in 0..ROUNDS {
        let mut parts: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        for (i, &a) in assign.iter().enumerate() {
            parts[a.min(1)].push(i);
        }
        if parts.iter().any(|p| (p.len() as f64) < floor) {
            return None;
        }
        let fit = |p: &Vec<usize>| -> Option<((f64, Gaussian), Vec<f64>)> {
            let share = p.len() as f64 / n as f64;
            let g = robust_gaussian(&rows.select(Axis(0), p))?;
            let ll = log_densities(rows, &g)?
                .into_iter()
                .map(|l| l + share.ln())
                .collect();
            Some(((share, g), ll))
        };
        let ((g0, l0), (g1, l1)) = (fit(&parts[0])?, fit(&parts[1])?);
        let next: Array1<usize> = (0..n).map(|i| usize::from(l1[i] > l0[i])).collect();
        let moved = next != assign;
        last = Some((vec![g0, g1], [l0, l1]));
        if !moved {
            break;
        }
        assign = next;
    }
    last
}

/// Share of a class's rows the concentration steps keep ([`robust_gaussian`]).
const CONCENTRATE: f64 = 0.75;

/// A class's Gaussian that a cluster of foreign rows inside it does not stretch: fitted on all rows, then twice on
/// the [`CONCENTRATE`] share of rows nearest the last fit (the concentration steps of FastMCD: Rousseeuw & Van
/// Driessen, "A fast algorithm for the minimum covariance determinant estimator", Technometrics 1999), then on the
/// rows within the chi-square's 97.5th percentile of that fit (scaled so its median distance is the chi-square's).
/// Without it, four backdoor copies relabelled into an iris class of 50 rows widened the class's covariance until
/// they were inside it, and its Gaussian called them members with p = 1. Classes of fewer than 20 rows are fitted
/// once.
fn robust_gaussian(rows: &Array2<f64>) -> Option<Gaussian> {
    let mut fit = gaussian(rows)?;
    let n = rows.nrows();
    if n < 20 {
        return Some(fit);
    }
    let d = rows.ncols() as f64;
    let wh = |z: f64| d * (1.0 - 2.0 / (9.0 * d) + z * (2.0 / (9.0 * d)).sqrt()).powi(3);
    let h = ((n as f64) * CONCENTRATE).ceil() as usize;
    for _ in 0..2 {
        let dist = distances(rows, &fit)?;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| dist[a].total_cmp(&dist[b]));
        order.truncate(h);
        order.sort_unstable();
        fit = gaussian(&rows.select(Axis(0), &order))?;
    }
    let dist = distances(rows, &fit)?;
    let scale = (super::quantile(&dist, 0.5) / wh(0.0)).max(1e-12);
    let keep: Vec<usize> = (0..n).filter(|&i| dist[i] / scale <= wh(1.96)).collect();
    if keep.len() < 2 {
        return Some(fit);
    }
    gaussian(&rows.select(Axis(0), &keep))
}

/// Rows beyond `outside` (their `nearest` class's squared distance) get no vote: NaN probabilities, which the
/// label-flip detector's blend leaves out.
fn abstain(p: &mut Array2<f32>, nearest: &[f64], outside: f64) {
    for (mut row, &dist) in p.rows_mut().into_iter().zip(nearest) {
        // NaN distances (a row no class could measure) abstain too.
        if dist.is_nan() || dist > outside {
            row.fill(f32::NAN);
        }
    }
}

/// Softmax of `l / t` row by row (a row without any finite log-density gets a uniform vote).
fn tempered(l: &Array2<f64>, t: f64) -> Array2<f32> {
    let nc = l.ncols();
    let mut out = Array2::<f32>::zeros(l.raw_dim());
    for (mut o, row) in out.rows_mut().into_iter().zip(l.rows()) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            o.fill(1.0 / nc as f32);
            continue;
        }
        let mut sum = 0f64;
        for (a, &v) in o.iter_mut().zip(row) {
            let e = ((v - max) / t).exp();
            sum += e;
            *a = e as f32;
        }
        let scale = (1.0 / sum) as f32;
        o.mapv_inplace(|a| a * scale);
    }
    out
}

/// Shares of wrong labels the temperature's fit allows for on untrusted labels ([`best_temperature`]).
const WRONG_SHARES: [f64; 5] = [0.0, 0.01, 0.02, 0.05, 0.1];

/// The temperature of the grid that makes the rows' own labels `y` most likely under tempered log-densities `l`, where
/// a share `e` of the labels (one of `wrong`, fitted with it) may be drawn at random: `p(y) = (1 - e) p_T(y) +
/// e / classes`. Fitted to untrusted labels alone (the data's, without a reference), every wrong label (a flip the
/// scan is looking for) is a row the model is sure is another class, and the likelihood pays for it with a `-ln p`
/// near infinity, which only a high temperature avoids: on the 100k flips table the temperature came out at 7.9, so
/// soft that the flips' margins stayed under the limit and the poisoned table passed. The random share takes those
/// rows. A trusted reference's labels are fitted as they are (`wrong` = `[0]`).
fn best_temperature(l: &Array2<f64>, y: &[u32], wrong: &[f64]) -> f64 {
    let nc = l.ncols().max(1) as f64;
    let grid = (0..TEMPERATURES).map(|i| 0.25 * 4000f64.powf(i as f64 / (TEMPERATURES - 1) as f64));
    // The tempered log-probability of each row's own label (None: a row without any finite log-density, which says
    // nothing about the temperature), in log space: a confident wrong label's probability underflows.
    let own = |t: f64| -> Vec<Option<f64>> {
        l.rows()
            .into_iter()
            .zip(y)
            .map(|(row, &c)| {
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if !max.is_finite() {
                    return None;
                }
                let lse = row.iter().map(|&v| ((v - max) / t).exp()).sum::<f64>().ln();
                let own = row[c as usize];
                // A class the fold never saw: as unlikely as the floor of a probability.
                Some(if own.is_finite() {
                    (own - max) / t - lse
                } else {
                    (1e-6f64).ln()
                })
            })
            .collect()
    };
    let mut best = (1.0, f64::INFINITY);
    for t in grid {
        let lp = own(t);
        for &e in wrong {
            // -ln((1 - e) p + e / classes), exactly -ln p at e = 0.
            let random = if e > 0.0 {
                (e / nc).ln()
            } else {
                f64::NEG_INFINITY
            };
            let kept = (1.0 - e).ln();
            let nll: f64 = lp
                .iter()
                .flatten()
                .map(|&lp| -log_add(kept + lp, random))
                .sum();
            if nll < best.1 {
                best = (t, nll);
            }
        }
    }
    best.0
}

impl GaussVotes {
    /// Fit on base rows `x` with class indices `y` (< `nc`), or None: fewer than two classes, a class with fewer rows
    /// than folds, a covariance that could not be factored, out-of-fold probabilities no better than the class
    /// frequencies, or scoring a row over [`MAX_ROW_WORK`].
    /// `trusted`: the labels are a trusted reference's, so the temperature's fit allows no wrong ones
    /// ([`best_temperature`]). `voted`: the base rows whose votes are read, when not all ([`on_sample`]).
    pub fn fit(
        x: ArrayView2<f32>,
        y: &[u32],
        nc: usize,
        trusted: bool,
        voted: Option<&[usize]>,
    ) -> Option<GaussVotes> {
        let d = x.ncols() as f64;
        let work = nc as f64 * d * d * FOLDS as f64;
        if work > MAX_ROW_WORK {
            return None;
        }
        // Two Gaussians per class double the cost of scoring a row.
        let components = if 2.0 * work <= MAX_ROW_WORK { 2 } else { 1 };
        on_sample(
            x,
            y,
            nc,
            voted,
            |x, y, nc, _| Self::folds(x, y, nc, components, trusted),
            |v: &GaussVotes, rows| v.predict(rows),
        )
    }

    /// The fold models, the temperature and the out-of-fold probabilities of `x`.
    fn folds(
        x: ArrayView2<f32>,
        y: &[u32],
        nc: usize,
        components: usize,
        trusted: bool,
    ) -> Option<GaussVotes> {
        let fold = stratified_folds(y, nc)?;
        let x = squashed(x);
        type Fold = (Model, Vec<usize>, (Array2<f64>, Vec<f64>));
        let fits: Vec<Option<Fold>> = (0..FOLDS)
            .into_par_iter()
            .map(|f| {
                let train: Vec<usize> = (0..y.len()).filter(|&i| fold[i] != f).collect();
                let test: Vec<usize> = (0..y.len()).filter(|&i| fold[i] == f).collect();
                let yt: Vec<u32> = train.iter().map(|&i| y[i]).collect();
                let m = Model::fit(
                    super::take_rows(x.view(), &train).view(),
                    &yt,
                    nc,
                    components,
                )?;
                let l = m.log_density(super::take_rows(x.view(), &test).view(), nc);
                Some((m, test, l))
            })
            .collect();
        let mut oof = Array2::<f64>::from_elem((y.len(), nc), f64::NEG_INFINITY);
        let mut nearest = vec![f64::INFINITY; y.len()];
        let mut models = Vec::with_capacity(FOLDS);
        for f in fits {
            let (m, rows, (l, near)) = f?;
            models.push(m);
            for (r, &i) in rows.iter().enumerate() {
                oof.row_mut(i).assign(&l.row(r));
                nearest[i] = near[r];
            }
        }
        let outside = outside_every_class(&nearest, x.ncols());
        // The temperature is fitted on the rows the voter votes on (rows outside every class abstain below).
        let inside: Vec<usize> = (0..y.len()).filter(|&i| nearest[i] <= outside).collect();
        let yi: Vec<u32> = inside.iter().map(|&i| y[i]).collect();
        let wrong: &[f64] = if trusted { &[0.0] } else { &WRONG_SHARES };
        let temperature = best_temperature(&oof.select(Axis(0), &inside), &yi, wrong);
        let mut base = tempered(&oof, temperature);
        // Tempered, the model's log-likelihood of the labels must beat the class frequencies' by more than fitting the
        // temperature gains by chance (on top of `on_sample`'s test of the mean probability, which a near-uniform
        // vote passes by chance): twice the gain is a likelihood ratio, chi-square with one degree of freedom under
        // no signal, above 10.8 (p = 0.001).
        let mut freq = vec![0f64; nc];
        for &c in y {
            freq[c as usize] += 1.0 / y.len() as f64;
        }
        let gain: f64 = y
            .iter()
            .enumerate()
            .filter(|&(i, _)| nearest[i] <= outside)
            .map(|(i, &c)| (f64::from(base[[i, c as usize]]).max(1e-6) / freq[c as usize]).ln())
            .sum();
        if 2.0 * gain <= 10.8 {
            return None;
        }
        abstain(&mut base, &nearest, outside);
        // Rows outside the fitted ones get the fold models' average, as with the linear voter (a model of all fitted
        // rows is more confident than the out-of-fold votes the flag statistics are measured on; it cost 0.758 ->
        // 0.757 with a reference on the real benchmark, Default's near clones and backdoor losing a row each, for a
        // fifth of the prediction's cost).
        Some(GaussVotes {
            models,
            base,
            nc,
            temperature,
            outside,
        })
    }

    /// Probabilities of rows outside the base: the average of the fold models' tempered probabilities, in parallel
    /// chunks of rows.
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let k = self.models.len().max(1) as f32;
        squashed_in_chunks(x, self.nc, 4_096, |rows| {
            let mut out = Array2::<f32>::zeros((rows.nrows(), self.nc));
            let mut nearest = vec![0f64; rows.nrows()];
            for m in &self.models {
                let (l, near) = m.log_density(rows, self.nc);
                out += &tempered(&l, self.temperature);
                for (a, b) in nearest.iter_mut().zip(near) {
                    *a += b / f64::from(k);
                }
            }
            let mut out = out / k;
            abstain(&mut out, &nearest, self.outside);
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    fn normal(rng: &mut rand_xoshiro::Xoshiro256PlusPlus) -> f32 {
        StandardNormal.sample(rng)
    }

    /// Two classes through the same centre, class 0 stretched along (1, 1) and class 1 along (1, -1), plus six
    /// noise columns: no straight boundary separates them, their shapes do.
    fn crossed(rows: usize, seed: u64) -> (Array2<f32>, Vec<u32>) {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut x = Array2::<f32>::zeros((rows, 8));
        let y: Vec<u32> = (0..rows).map(|i| (i % 2) as u32).collect();
        for i in 0..rows {
            let (t, w) = (2.0 * normal(&mut rng), 0.15 * normal(&mut rng));
            let sign = if y[i] == 0 { 1.0 } else { -1.0 };
            x[[i, 0]] = t + w;
            x[[i, 1]] = sign * (t - w);
            for j in 2..8 {
                x[[i, j]] = normal(&mut rng);
            }
        }
        (x, y)
    }

    #[test]
    fn each_class_is_told_by_its_shape_where_no_straight_line_separates_them() {
        let (x, y) = crossed(600, 1);
        let g = GaussVotes::fit(x.view(), &y, 2, true, None).expect("the voter fits");
        // Out of fold, the rows away from the crossing get their own label's probability near 1.
        let (mut far, mut own) = (0, 0.0f32);
        for i in 0..y.len() {
            if x[[i, 0]].abs() > 1.0 {
                far += 1;
                own += g.base[[i, y[i] as usize]];
            }
        }
        let mean = own / far as f32;
        assert!(
            mean > 0.95,
            "mean p(own label) away from the crossing {mean}"
        );
        // New rows on either diagonal: (1.5, 1.5) is class 0, (1.5, -1.5) class 1; the crossing itself is a toss-up.
        let mut q = Array2::<f32>::zeros((3, 8));
        q[[0, 0]] = 1.5;
        q[[0, 1]] = 1.5;
        q[[1, 0]] = 1.5;
        q[[1, 1]] = -1.5;
        let p = g.predict(q.view());
        assert!(p[[0, 0]] > 0.95 && p[[1, 1]] > 0.95, "{p:?}");
        assert!((p[[2, 0]] - 0.5).abs() < 0.2, "{p:?}");
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn ledoit_wolf_shrinks_noise_to_the_identity_and_keeps_strong_correlation() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
        let (n, d) = (2000, 10);
        let centre = |x: Array2<f64>| {
            let m = x.mean_axis(Axis(0)).expect("rows");
            &x - &m
        };
        // Independent unit columns: the identity is the truth, so the shrinkage is near 1.
        let iid = Array2::from_shape_fn((n, d), |_| f64::from(normal(&mut rng)));
        let (_, s_iid) = shrunk_covariance(&centre(iid));
        // Columns that share one factor (correlation 0.9): the sample covariance is kept.
        let shared = Array2::from_shape_fn((n, 1), |_| f64::from(normal(&mut rng)));
        let corr = Array2::from_shape_fn((n, d), |(i, _)| {
            0.9f64.sqrt() * shared[[i, 0]] + 0.1f64.sqrt() * f64::from(normal(&mut rng))
        });
        let (cov, s_corr) = shrunk_covariance(&centre(corr));
        assert!(s_iid > 0.5, "identity's shrinkage {s_iid}");
        assert!(s_corr < 0.05, "correlated columns' shrinkage {s_corr}");
        assert!(
            (cov[[0, 1]] - 0.9).abs() < 0.1,
            "kept covariance {}",
            cov[[0, 1]]
        );
    }

    #[test]
    fn a_class_of_fewer_rows_than_columns_and_a_constant_column_still_give_finite_votes() {
        // 12 rows per class in 20 columns; column 3 is 0 in class 0 and 1 in class 1 (a one-hot flag).
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let y: Vec<u32> = (0..24).map(|i| (i % 2) as u32).collect();
        let x = Array2::from_shape_fn((24, 20), |(i, j)| {
            let c = y[i] as f32;
            match j {
                3 => c,
                0 => 2.0 * c + 0.3 * normal(&mut rng),
                _ => normal(&mut rng),
            }
        });
        let g = GaussVotes::fit(x.view(), &y, 2, true, None)
            .expect("shrinkage makes the covariances invertible");
        assert!(g.base.iter().all(|v| v.is_finite()));
        let own: f32 = (0..24).map(|i| g.base[[i, y[i] as usize]]).sum::<f32>() / 24.0;
        assert!(own > 0.75, "mean p(own label) {own}");
        // A row of class 1's values but the flag of class 0 is not certain of either: it is finite and sums to 1.
        let mut q = x.slice(ndarray::s![1..2, ..]).to_owned();
        q[[0, 3]] = 0.0;
        let p = g.predict(q.view());
        assert!(
            p.iter().all(|v| v.is_finite()) && (p.sum() - 1.0).abs() < 1e-4,
            "{p:?}"
        );
    }

    #[test]
    fn the_voter_abstains_where_scoring_a_row_costs_too_much_or_says_nothing() {
        // Ten classes in 100 columns: 10 x 100^2 x 5 multiply-adds a row, over the cap.
        let y: Vec<u32> = (0..200).map(|i| (i % 10) as u32).collect();
        let x = Array2::from_shape_fn((200, 100), |(i, j)| ((i * 7 + j * 13) % 17) as f32);
        assert!(GaussVotes::fit(x.view(), &y, 10, true, None).is_none());
        // Labels that have nothing to do with the features: no better than the class frequencies.
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(4);
        let x = Array2::from_shape_fn((400, 4), |_| normal(&mut rng));
        let y: Vec<u32> = (0..400).map(|i| (i % 2) as u32).collect();
        let g = GaussVotes::fit(x.view(), &y, 2, true, None);
        let own: Option<f32> = g
            .as_ref()
            .map(|g| (0..400).map(|i| g.base[[i, y[i] as usize]]).sum::<f32>() / 400.0);
        assert!(g.is_none(), "{:?} {own:?}", g.map(|g| g.temperature));
    }

    #[test]
    fn a_cluster_of_foreign_rows_does_not_stretch_its_class_and_rows_outside_every_class_get_no_vote(
    ) {
        // 200 rows of a tight class in 4 columns, and 12 copies of one far row labelled the same (a backdoor's
        // relabelled copies): the concentration steps fit the class without them, so they stay far from it.
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        let mut x = Array2::from_shape_fn((212, 4), |_| f64::from(normal(&mut rng)) * 0.5);
        for i in 200..212 {
            x.row_mut(i).assign(&ndarray::arr1(&[4.0, 4.0, 4.0, 0.0]));
        }
        let robust = robust_gaussian(&x).expect("fits");
        let plain = gaussian(&x).expect("fits");
        let (dr, dp) = (
            distances(&x, &robust).unwrap(),
            distances(&x, &plain).unwrap(),
        );
        let limit = outside_every_class(&dr[..200], 4);
        assert!(
            dr[200] > 5.0 * limit,
            "robust distance {} against the limit {limit}",
            dr[200]
        );
        assert!(
            dp[200] < limit,
            "the plain fit takes them in: {} against {limit}",
            dp[200]
        );
        // A clean row's distance is about the chi-square's: within the limit.
        let inside = dr[..200].iter().filter(|&&v| v <= limit).count();
        assert!(inside >= 198, "{inside} of 200 clean rows inside");
        // Such rows get no vote from the voter (NaN), the others a vote that sums to 1.
        let mut p = Array2::<f32>::from_elem((2, 2), 0.5);
        abstain(&mut p, &[1.0, 3.0 * limit], limit);
        assert!(p.row(0).iter().all(|v| v.is_finite()) && p.row(1).iter().all(|v| v.is_nan()));
    }

    /// Class 0 is two round clouds at x = -3 and x = +3, class 1 one round cloud at the origin between them, in two
    /// columns: one Gaussian of class 0 is an ellipse over all three clouds.
    fn two_clouds_and_one_between(per_cloud: usize, seed: u64) -> (Array2<f32>, Vec<u32>) {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let rows = 3 * per_cloud;
        let y: Vec<u32> = (0..rows).map(|i| u32::from(i % 3 == 2)).collect();
        let x = Array2::from_shape_fn((rows, 2), |(i, j)| {
            let centre = match (i % 3, j) {
                (0, 0) => -3.0,
                (1, 0) => 3.0,
                _ => 0.0,
            };
            centre + 0.7 * normal(&mut rng)
        });
        (x, y)
    }

    #[test]
    fn a_class_of_two_clouds_gets_two_gaussians_and_a_class_of_one_keeps_one() {
        let (x, y) = two_clouds_and_one_between(300, 6);
        let class = |c: u32| {
            let r: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
            super::super::take_rows(x.view(), &r).mapv(f64::from)
        };
        let two = class_mixture(&class(0), 2).expect("fits");
        assert_eq!(two.len(), 2, "class 0 is two clouds");
        let mut centres: Vec<f64> = two.iter().map(|(_, (m, _))| m[0]).collect();
        centres.sort_by(f64::total_cmp);
        assert!(
            (centres[0] + 3.0).abs() < 0.3 && (centres[1] - 3.0).abs() < 0.3,
            "{centres:?}"
        );
        assert!(two.iter().all(|(share, _)| (share - 0.5).abs() < 0.1));
        assert_eq!(
            class_mixture(&class(1), 2).expect("fits").len(),
            1,
            "class 1 is one cloud"
        );
        assert_eq!(
            class_mixture(&class(0), 1).expect("fits").len(),
            1,
            "one component asked for"
        );
        // The voter: with two Gaussians for class 0 the middle cloud's rows are class 1's, out of fold.
        let g = GaussVotes::fit(x.view(), &y, 2, true, None).expect("the voter fits");
        let middle: Vec<usize> = (0..y.len())
            .filter(|&i| y[i] == 1 && x[[i, 0]].abs() < 1.0)
            .collect();
        let own = middle.iter().map(|&i| g.base[[i, 1]]).sum::<f32>() / middle.len() as f32;
        assert_eq!(
            g.classes_with_two(),
            1,
            "class 0 has two Gaussians, class 1 one"
        );
        assert!(own > 0.9, "mean p(class 1) of the middle cloud {own}");
    }

    #[test]
    fn a_small_cluster_of_foreign_rows_does_not_become_a_component_of_its_class() {
        // 400 rows of one round cloud in 2 columns and 40 near copies of a far point labelled the same (10%: a
        // cluster flip): the split that would fit them is under the smallest share, so the class keeps one
        // Gaussian, which the concentration steps fit without them.
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let x = Array2::from_shape_fn((440, 2), |(i, _)| {
            let centre = if i < 400 { 0.0 } else { 6.0 };
            centre + if i < 400 { 1.0 } else { 0.1 } * f64::from(normal(&mut rng))
        });
        let fit = class_mixture(&x, 2).expect("fits");
        assert_eq!(fit.len(), 1);
        let d = distances(&x, &fit[0].1).expect("measures");
        let limit = outside_every_class(&d[..400], 2);
        assert!(
            d[400..].iter().all(|&v| v > limit),
            "the copies are outside the class"
        );
    }

    #[test]
    fn wrong_labels_do_not_soften_the_temperature_of_untrusted_labels() {
        // Two classes whose log-densities say which class a row is by 4 nats; 5% of the labels are the other class
        // (a random label over two classes is wrong half the time: a random share of 10%).
        let n = 1000;
        let y: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
        let wrong: Vec<u32> = (0..n)
            .map(|i| if i % 20 == 0 { 1 - y[i] } else { y[i] })
            .collect();
        let l = Array2::from_shape_fn((n, 2), |(i, c)| if c as u32 == y[i] { 0.0 } else { -4.0 });
        let trusted = best_temperature(&l, &y, &[0.0]);
        let soft = best_temperature(&l, &wrong, &[0.0]);
        let robust = best_temperature(&l, &wrong, &WRONG_SHARES);
        // Clean labels: the sharpest end of the grid; wrong ones fitted as they are: softened until the wrong rows'
        // p is about 5% (T = 4 / ln 19 = 1.36); with a share of random labels allowed, as sharp as the clean labels'.
        assert!(trusted <= 0.3, "{trusted}");
        assert!(soft > 1.2, "{soft}");
        assert!(robust < 0.5 * soft, "{robust} against {soft}");
        // On clean labels the random share changes nothing.
        assert_eq!(best_temperature(&l, &y, &WRONG_SHARES), trusted);
    }
}
