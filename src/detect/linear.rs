//! Class probabilities from a multinomial logistic regression (linfa-logistic), the second voter of the label-flip
//! detector beside the kNN neighbourhood.
//!
//! A kNN vote sees only a row's few nearest neighbours: on a small reference (a few dozen rows per class) and in
//! tables with discrete or one-hot columns, it is coarse, and a linear model that pools every row of the base
//! generalizes better. On the real benchmark (docs/quality.md) the blend raised mean precision@k from 0.554 to 0.608
//! with a reference and from 0.362 to 0.479 without, and lowered the rows flagged on clean twins from 0.28% to 0.10%
//! (worst 1.30% to 0.34%) with a reference. Rows of the base get *out-of-fold* probabilities (5 folds, stratified by
//! class, each fold's model fitted on the other four), so a row never votes for its own label; every other row gets
//! the average of the five fold models. Not a model fitted on the whole base: fitted on 25% more rows, it is more
//! confident than the fold models, so the data's rows would be candidates more often than the reference's clean rows
//! they are calibrated against (a clean synthetic twin then flagged 4 rows of a class where the reference expected
//! 0.5). The average is a little less confident than each fold model, which errs on the side of fewer flags; the
//! first fold's model alone (as confident as the out-of-fold votes) ranked worse on the real benchmark (mean
//! precision@k 0.612 -> 0.599 with a reference, 0.468 -> 0.462 without, measured before the features were clipped). Five predictions per row
//! cost 1.3 s for 1M rows x 32 features x 10 classes on one core; rows are predicted in parallel chunks.
//!
//! The model is L2-regularized (`alpha` = 1 on the summed loss, as scikit-learn's `C = 1`), fitted with L-BFGS (at
//! most 100 iterations) in f64, on the detector's scaled features clipped to 5 IQRs
//! from the median; its coefficients are kept in f32, and rows are predicted in f32 from them. Folds are fitted in
//! parallel (rayon).

use linfa::prelude::*;
use linfa_logistic::{MultiFittedLogisticRegression, MultiLogisticRegression};
use ndarray::{Array1, Array2, ArrayView2};
use rayon::prelude::*;

/// Folds of the out-of-fold probabilities.
pub const FOLDS: usize = 5;
/// L2 penalty on the summed log-loss.
const ALPHA: f64 = 1.0;
/// Features are clipped to this many IQRs from the median before the model sees them. On heavy-tailed integer
/// columns (hpc_data's counts reach 5,500 IQRs) the unclipped fit is no better than the class frequencies
/// (scikit-learn's, cross-validated: mean probability of the own label 0.49, linfa's below the frequencies' 0.38),
/// clipped at 5 it is 0.61.
const CLIP: f32 = 5.0;
/// L-BFGS iterations.
const MAX_ITERATIONS: u64 = 100;
/// Most base rows the folds are fitted on (evenly spread); the other base rows are scored like data rows. A linear
/// model of a few dozen features needs no more, and linfa-logistic's L-BFGS on the summed loss of 80,000 rows of a
/// 10-class synthetic table stopped at its starting point (uniform probabilities), where 16,000 rows fit (mean
/// probability of the own class 0.94). Fitting a 100k-row base (10 classes, 32 features: five folds of 8,000 rows,
/// then the other 90,000 rows predicted) took 2.2-2.9 s, measured while a CI run shared the two cores.
pub const FIT_ROWS: usize = 10_000;

/// A fitted model's coefficients in f32 (the fit itself runs in f64, see [`fit`]).
struct Model {
    /// Class index of each coefficient column.
    classes: Vec<u32>,
    /// Features x classes.
    params: Array2<f32>,
    intercept: Array1<f32>,
}

impl Model {
    fn from_fit(m: &MultiFittedLogisticRegression<f64, u32>) -> Model {
        Model {
            classes: m.classes().to_vec(),
            params: m.params().mapv(|v| v as f32),
            intercept: m.intercept().mapv(|v| v as f32),
        }
    }
}

/// A multinomial logistic regression fitted on the base, with the base rows' out-of-fold probabilities.
pub struct LinearVotes {
    models: Vec<Model>,
    /// Out-of-fold class probabilities of each base row (rows x classes).
    pub base: Array2<f32>,
    nc: usize,
}

/// Fit on clipped features (see [`clipped`]), in f64: argmin's More-Thuente line search (under linfa-logistic's
/// L-BFGS) runs without an iteration limit and stops on an interval narrower than 1e-10 of the step, which f32 steps
/// cannot reach; an f32 fit that could not meet the Wolfe conditions spun for minutes on a CLI test's data
/// (docs/detectors/label_flip.md).
fn fit(x: ArrayView2<f32>, y: &[u32]) -> Option<Model> {
    let mut distinct: Vec<u32> = y.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 || x.nrows() < 2 {
        return None;
    }
    let data = Dataset::new(x.mapv(f64::from), Array1::from(y.to_vec()));
    MultiLogisticRegression::default()
        .alpha(ALPHA)
        .max_iterations(MAX_ITERATIONS)
        .fit(&data)
        .ok()
        .map(|m| Model::from_fit(&m))
}

/// The features clipped to +-[`CLIP`] (the detector's features are robustly scaled: median 0, IQR 1).
fn clipped(x: ArrayView2<f32>) -> Array2<f32> {
    x.mapv(|v| v.clamp(-CLIP, CLIP))
}

/// Probabilities of clipped features `x` under `model`, one column per class index (classes the model never saw get
/// 0).
fn probs(model: &Model, x: ArrayView2<f32>, nc: usize) -> Array2<f32> {
    // Softmax of x W + b, row by row (as linfa-logistic's `predict_probabilities`).
    let mut p = x.dot(&model.params) + &model.intercept;
    for mut row in p.rows_mut() {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum);
    }
    let mut out = Array2::<f32>::zeros((x.nrows(), nc));
    for (col, &c) in model.classes.iter().enumerate() {
        if (c as usize) < nc {
            out.column_mut(c as usize).assign(&p.column(col));
        }
    }
    // A NaN from a diverged fit must not poison the blend: such a row gets a uniform vote.
    for mut row in out.rows_mut() {
        if row.iter().any(|v| !v.is_finite()) {
            row.fill(1.0 / nc as f32);
        }
    }
    out
}

impl LinearVotes {
    /// Fit on base rows `x` with class indices `y` (< `nc`). None when fewer than two classes, a class has fewer
    /// rows than there are folds, or the out-of-fold probabilities of the rows' own labels are no higher than the
    /// class frequencies (a fit that failed or a model with nothing to say: the kNN vote then stands alone).
    pub fn fit(x: ArrayView2<f32>, y: &[u32], nc: usize) -> Option<LinearVotes> {
        if y.len() <= FIT_ROWS {
            let (models, base) = Self::folds(x, y, nc)?;
            let v = LinearVotes { models, base, nc };
            return v.informative(y).then_some(v);
        }
        let sub = super::spread_rows(y.len(), FIT_ROWS);
        let xs = super::take_rows(x, &sub);
        let ys: Vec<u32> = sub.iter().map(|&i| y[i]).collect();
        let (models, oof) = Self::folds(xs.view(), &ys, nc)?;
        let probe = LinearVotes {
            models,
            base: oof,
            nc,
        };
        if !probe.informative(&ys) {
            return None;
        }
        // Out-of-fold for the rows the folds were fitted on, the fold models' average for the rest.
        let mut in_sub = vec![false; y.len()];
        for &i in &sub {
            in_sub[i] = true;
        }
        let rest: Vec<usize> = (0..y.len()).filter(|&i| !in_sub[i]).collect();
        let predicted = probe.predict(super::take_rows(x, &rest).view());
        let mut base = Array2::<f32>::zeros((y.len(), nc));
        for (j, &i) in rest.iter().enumerate() {
            base.row_mut(i).assign(&predicted.row(j));
        }
        for (r, &i) in sub.iter().enumerate() {
            base.row_mut(i).assign(&probe.base.row(r));
        }
        Some(LinearVotes {
            models: probe.models,
            base,
            nc,
        })
    }

    /// Whether the out-of-fold probability of each row's own label is higher on average than the class frequencies
    /// give it (the mean of the frequency of a row's class, the sum of squared frequencies). Not the
    /// log-likelihood: on heavy-tailed integer columns a few confidently wrong rows sink the log-likelihood of a model
    /// that ranks well (the real benchmark's hpc_data lost its linear votes under that test); nor accuracy, which a
    /// useful model of a table with a 3% class cannot raise clearly above always answering the 97% class (Default and
    /// mlc_churn lost theirs).
    fn informative(&self, y: &[u32]) -> bool {
        let n = y.len();
        if n == 0 {
            return false;
        }
        let mut freq = vec![0f64; self.nc];
        for &c in y {
            freq[c as usize] += 1.0 / n as f64;
        }
        let prior: f64 = freq.iter().map(|f| f * f).sum();
        let model: f64 = y
            .iter()
            .enumerate()
            .map(|(i, &c)| self.base[[i, c as usize]] as f64)
            .sum::<f64>()
            / n as f64;
        model > prior
    }

    /// The fold models and the out-of-fold probabilities of `x`.
    fn folds(x: ArrayView2<f32>, y: &[u32], nc: usize) -> Option<(Vec<Model>, Array2<f32>)> {
        let x = clipped(x);
        let x = x.view();
        let mut per_class = vec![0usize; nc];
        for &c in y {
            *per_class.get_mut(c as usize)? += 1;
        }
        if per_class.iter().filter(|&&c| c > 0).count() < 2
            || per_class.iter().any(|&c| c > 0 && c < FOLDS)
        {
            return None;
        }
        // Stratified folds: the j-th row of each class goes to fold j mod FOLDS.
        let mut seen = vec![0usize; nc];
        let fold: Vec<usize> = y
            .iter()
            .map(|&c| {
                let f = seen[c as usize] % FOLDS;
                seen[c as usize] += 1;
                f
            })
            .collect();
        type Fold = (Model, Vec<usize>, Array2<f32>);
        let fits: Vec<Option<Fold>> = (0..FOLDS)
            .into_par_iter()
            .map(|f| {
                let train: Vec<usize> = (0..y.len()).filter(|&i| fold[i] != f).collect();
                let test: Vec<usize> = (0..y.len()).filter(|&i| fold[i] == f).collect();
                let xt = super::take_rows(x, &train);
                let yt: Vec<u32> = train.iter().map(|&i| y[i]).collect();
                let m = fit(xt.view(), &yt)?;
                let xs = super::take_rows(x, &test);
                let p = probs(&m, xs.view(), nc);
                Some((m, test, p))
            })
            .collect();
        let mut base = Array2::<f32>::zeros((y.len(), nc));
        let mut models = Vec::with_capacity(FOLDS);
        for f in fits {
            let (m, rows, p) = f?;
            for (r, &i) in rows.iter().enumerate() {
                base.row_mut(i).assign(&p.row(r));
            }
            models.push(m);
        }
        Some((models, base))
    }

    /// Probabilities of rows outside the base (or outside the rows the folds were fitted on): the average of the
    /// fold models, in parallel chunks of rows.
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        const CHUNK: usize = 16_384;
        let k = self.models.len().max(1) as f32;
        let span = |c: usize| c * CHUNK..((c + 1) * CHUNK).min(x.nrows());
        let parts: Vec<Array2<f32>> = (0..x.nrows().div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                // Clipped once per chunk, for all the fold models.
                let rows = clipped(x.slice(ndarray::s![span(c), ..]));
                let mut out = Array2::<f32>::zeros((rows.nrows(), self.nc));
                for m in &self.models {
                    out += &probs(m, rows.view(), self.nc);
                }
                out / k
            })
            .collect();
        let mut out = Array2::<f32>::zeros((x.nrows(), self.nc));
        for (c, p) in parts.iter().enumerate() {
            out.slice_mut(ndarray::s![span(c), ..]).assign(p);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_probabilities_from_the_f64_fit_match_linfa_s_own() {
        // Three classes in 3 features; the f32 softmax over the kept coefficients must give what linfa-logistic's
        // predict gives in f64, with each class in its own column (class 2 is index 2 even though the model saw 0..3).
        let n = 90;
        let x = Array2::from_shape_fn((n, 3), |(i, j)| {
            let c = (i % 3) as f32;
            c * (j as f32 + 1.0) * 0.7 + ((i * 7 + j * 13) % 11) as f32 / 11.0
        });
        let y: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        let data = Dataset::new(x.mapv(f64::from), Array1::from(y.clone()));
        let fitted = MultiLogisticRegression::default()
            .alpha(ALPHA)
            .max_iterations(MAX_ITERATIONS)
            .fit(&data)
            .unwrap();
        let expected = fitted.predict_probabilities(&x.mapv(f64::from));
        let got = probs(&Model::from_fit(&fitted), x.view(), 4);
        assert_eq!(got.ncols(), 4);
        for (r, row) in expected.rows().into_iter().enumerate() {
            for (col, &c) in fitted.classes().iter().enumerate() {
                assert!(
                    (f64::from(got[[r, c as usize]]) - row[col]).abs() < 1e-4,
                    "row {r} class {c}"
                );
            }
            assert_eq!(got[[r, 3]], 0.0);
        }
        // And the model separates them: each row's own class is its most probable.
        let own = (0..n)
            .filter(|&i| (0..4).all(|c| got[[i, y[i] as usize]] >= got[[i, c]]))
            .count();
        assert!(own as f64 >= 0.9 * n as f64, "{own} of {n}");
    }

    #[test]
    fn separable_classes_get_their_own_label_out_of_fold() {
        // Two classes either side of x0 = 0; out-of-fold probabilities must favour each row's own class.
        let n = 200;
        let x = Array2::from_shape_fn((n, 2), |(i, j)| {
            let side = if i % 2 == 0 { -1.0 } else { 1.0 };
            if j == 0 {
                side * (1.0 + (i % 7) as f32 / 7.0)
            } else {
                ((i * 31) % 11) as f32 / 11.0
            }
        });
        let y: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
        let v = LinearVotes::fit(x.view(), &y, 2).unwrap();
        for (i, &c) in y.iter().enumerate() {
            assert!(
                v.base[[i, c as usize]] > 0.9,
                "row {i}: {:?}",
                v.base.row(i)
            );
        }
        let q = Array2::from_shape_vec((2, 2), vec![-2.0, 0.5, 2.0, 0.5]).unwrap();
        let p = v.predict(q.view());
        assert!(p[[0, 0]] > 0.9 && p[[1, 1]] > 0.9, "{p:?}");
        // A class with fewer rows than folds: no model.
        let mut y2 = vec![0u32; n];
        y2[0] = 1;
        assert!(LinearVotes::fit(x.view(), &y2, 2).is_none());
    }

    #[test]
    fn a_flipped_row_is_voted_against_by_the_model_of_the_other_folds() {
        let n = 300;
        let x = Array2::from_shape_fn((n, 1), |(i, _)| {
            if i < 150 {
                -1.0 - (i % 10) as f32 * 0.1
            } else {
                1.0 + (i % 10) as f32 * 0.1
            }
        });
        let mut y: Vec<u32> = (0..n).map(|i| (i >= 150) as u32).collect();
        y[10] = 1; // deep inside class 0
        let v = LinearVotes::fit(x.view(), &y, 2).unwrap();
        assert!(v.base[[10, 1]] < 0.2, "{:?}", v.base.row(10));
    }

    #[test]
    fn labels_the_features_do_not_predict_get_no_linear_vote() {
        // Labels drawn independently of the features: out of fold the model cannot beat the class frequencies.
        let n = 400;
        let x = Array2::from_shape_fn((n, 3), |(i, j)| ((i * 7 + j * 13) % 17) as f32 / 17.0);
        let y: Vec<u32> = (0..n)
            .map(|i| ((i * 2654435761usize) >> 7) as u32 % 2)
            .collect();
        assert!(LinearVotes::fit(x.view(), &y, 2).is_none());
    }

    #[test]
    fn a_large_base_is_fitted_on_a_spread_subset_and_every_row_gets_a_vote() {
        let n = FIT_ROWS + 5_000;
        let x = Array2::from_shape_fn((n, 2), |(i, j)| {
            let side = if i % 3 == 0 { -1.0 } else { 1.0 };
            if j == 0 {
                side * (1.0 + (i % 5) as f32 / 5.0)
            } else {
                (i % 13) as f32 / 13.0
            }
        });
        let y: Vec<u32> = (0..n).map(|i| (i % 3 != 0) as u32).collect();
        let v = LinearVotes::fit(x.view(), &y, 2).unwrap();
        assert_eq!(v.base.nrows(), n);
        let right = (0..n).filter(|&i| v.base[[i, y[i] as usize]] > 0.9).count();
        assert_eq!(right, n);
    }
}
