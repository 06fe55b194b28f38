//! The score stage's detectors: the feature matrix is chosen (reference columns matched to the data's, categories
//! one-hot), scaled robustly on the reference (else the data), and each detector runs or says why it could not.

use super::columns::{class_of, one_hot_columns, select_features};
use super::fit::{ReferenceRows, Roles};
use super::pass::DataPass;
use super::Scanner;
use crate::contract::{Contract, ViolationKind};
use crate::detect::duplicate::DuplicateSummary;
use crate::detect::{self, DetectContext, DetectorOutput, LabelledMatrix, FLAG_AT};
use crate::features::{sample_by_digest, RobustScaler};
use crate::lineage::Diff;
use crate::report::Run;
use std::collections::BTreeMap;
use std::time::Instant;

/// Most rows for which the outlier, label-flip and backdoor detectors run at once (see [`detect()`]).
const CONCURRENT_ROWS: usize = 250_000;

/// Whether a check ran, and why not when it did not.
pub(super) type Runs = BTreeMap<&'static str, (Run, Option<String>)>;

/// What the detectors found.
pub(super) struct Detection {
    pub(super) outputs: Vec<DetectorOutput>,
    pub(super) runs: Runs,
    /// Each detector's summary for the report (or why it did not run).
    pub(super) summaries: BTreeMap<String, serde_json::Value>,
    pub(super) duplicates: DuplicateSummary,
    pub(super) visuals: crate::html::visuals::Visuals,
    /// The feature columns used (one-hot categories included).
    pub(super) feature_names: Vec<String>,
}

/// Run the detectors on the rows the pass gathered. `reference` is the fit's trusted rows, `diff` the lineage diff
/// against a baseline (its statuses tell the duplicate detector which copy is new).
#[allow(clippy::too_many_arguments)]
pub(super) fn detect(
    s: &Scanner,
    contract: &Contract,
    pass: &mut DataPass,
    reference: Option<ReferenceRows>,
    roles: &Roles,
    diff: Option<&Diff>,
    notes: &mut Vec<String>,
    timings: &mut BTreeMap<String, u64>,
) -> Detection {
    let t2 = Instant::now();
    let n = pass.rows;
    let classes = contract.classes().unwrap_or_default();
    // A missing value (null, NaN, inf, an unusable embedding) is imputed and its row analysed on its other
    // columns. A row holding a value the contract flags (out of range, unknown, wrong type) is already flagged
    // and stays out of the detectors: counted among a class's rows it would inflate that class's label-flip
    // excess and pull clean boundary rows over the line (measured on the real benchmark).
    let missing_kind = |k: ViolationKind| {
        matches!(
            k,
            ViolationKind::Null
                | ViolationKind::Nan
                | ViolationKind::Inf
                | ViolationKind::Embedding
        )
    };
    let mut value_flagged = vec![false; n];
    for v in pass.violations.iter().filter(|v| v.score >= FLAG_AT) {
        if missing_kind(v.kind) {
            continue;
        }
        value_flagged[v.row as usize] = true;
    }
    let mut reference_raw = reference;
    let (feature_names, reference_usable) = select_features(
        &mut pass.features,
        &pass.feature_names,
        pass.embedding.as_deref(),
        reference_raw.as_mut(),
        notes,
    );
    if !reference_usable {
        reference_raw = None;
    }
    // Text columns the contract calls a closed category set become one-hot features (one 0/1 column per
    // category, unscaled: a different category counts as much as two robust standard deviations).
    let one_hot_start = pass.features.dim;
    let categorical = one_hot_columns(contract, &pass.text_names, s, &roles.keys);
    let mut feature_names = feature_names;
    if !categorical.is_empty() {
        let shown: Vec<String> = categorical
            .iter()
            .map(|(t, c)| format!("{} ({})", pass.text_names[*t], c.len()))
            .collect();
        notes.push(format!(
            "text columns one-hot encoded as features (categories): {}",
            shown.join(", ")
        ));
        feature_names.extend(pass.features.append_one_hot(&pass.text_names, &categorical));
        if let Some(r) = reference_raw.as_mut() {
            let mapped: Option<Vec<(usize, Vec<String>)>> = categorical
                .iter()
                .map(|(t, c)| {
                    let name = &pass.text_names[*t];
                    r.text_names
                        .iter()
                        .position(|m| m == name)
                        .map(|p| (p, c.clone()))
                })
                .collect();
            match mapped {
                Some(m) => {
                    r.features.append_one_hot(&r.text_names, &m);
                }
                None => reference_raw = None,
            }
        }
    }
    let valid: Vec<bool> = (0..n)
        .map(|i| pass.features.valid[i] && !value_flagged[i])
        .collect();
    let not_analysed = valid.iter().filter(|v| !**v).count();
    if not_analysed > 0 && pass.features.dim > 0 {
        notes.push(format!(
            "{not_analysed} rows were not analysed by the detectors: a value the contract flags, or more than \
             half of their feature values missing"
        ));
    }
    let mut x = pass.features.take_array();
    let reference = reference_raw.map(|mut r| {
        let mut rx = r.features.take_array();
        let rows = sample_by_digest(&r.digests, &r.features.valid, s.detect.max_fit_rows);
        rx = detect::take_rows(rx.view(), &rows);
        let labels = rows
            .iter()
            .map(|&i| class_of(&classes, r.labels[i].as_deref()))
            .collect();
        LabelledMatrix { x: rx, labels }
    });
    let mut scaler = match &reference {
        Some(r) if r.x.nrows() > 0 && r.x.ncols() == x.ncols() => {
            RobustScaler::fit(&r.x, &vec![true; r.x.nrows()])
        }
        _ => RobustScaler::fit(&x, &valid),
    };
    scaler.leave_unscaled(one_hot_start);
    scaler.transform(&mut x);
    let reference = reference.filter(|r| r.x.ncols() == x.ncols()).map(|mut r| {
        scaler.transform(&mut r.x);
        r
    });
    let ctx = DetectContext {
        x: &x,
        valid: &valid,
        labels: &pass.labels,
        classes: &classes,
        digests: &pass.digests,
        reference: reference.as_ref(),
        config: &s.detect,
        pred_probs: pass.pred_probs.as_ref(),
        label_clean_rate: contract
            .calibration
            .as_ref()
            .map(|c| c.label_clean_rate.as_slice()),
    };
    // Why a detector cannot run on this data, before running it.
    let no_features = (x.ncols() == 0)
        .then(|| "no usable feature column (numeric, boolean or embedding; see notes)".to_string());
    let no_label = match (&s.label, classes.len()) {
        (None, _) => Some(match &roles.label_guess {
            Some(g) => format!("no label column given; column {g} looks like one: --label {g}"),
            None => "no label column given".to_string(),
        }),
        (Some(l), c) if c < 2 => Some(format!(
            "the label {l} has {c} class{} in the {}: needs two or more",
            if c == 1 { "" } else { "es" },
            if contract.inferred_from_data {
                "data"
            } else {
                "contract"
            }
        )),
        _ => None,
    };
    let mut runs: BTreeMap<&'static str, (Run, Option<String>)> = BTreeMap::new();
    let mut outputs = Vec::new();
    let mut detector_summaries = BTreeMap::new();
    let plan = |on: bool, flag: &str, needs_label: bool| -> Result<(), (Run, String)> {
        if !on {
            return Err((Run::Disabled, format!("switched off with {flag}")));
        }
        if let Some(w) = &no_features {
            return Err((Run::Skipped, w.clone()));
        }
        match (&no_label, needs_label) {
            (Some(w), true) => Err((Run::Skipped, w.clone())),
            _ => Ok(()),
        }
    };
    let timed = |t: Instant| t.elapsed().as_millis() as u64;
    // The stages share only these (the scanner itself holds its unshared source).
    let cfg = &s.detect;
    let outlier_stage = || {
        plan(cfg.outliers, "--no-outliers / outliers=False", false).map(|()| {
            let t = Instant::now();
            // Distances to the data's own clusters on the numeric and embedding columns only: a rare category is
            // the contract's business, and 0/1 columns split every cluster into modes that look like outliers.
            let out = if one_hot_start < x.ncols() && one_hot_start > 0 {
                let numeric =
                    |m: &ndarray::Array2<f32>| m.slice(ndarray::s![.., ..one_hot_start]).to_owned();
                let xn = numeric(&x);
                let rn = ctx.reference.map(|r| LabelledMatrix {
                    x: numeric(&r.x),
                    labels: r.labels.clone(),
                });
                let nctx = DetectContext {
                    x: &xn,
                    reference: rn.as_ref(),
                    ..ctx
                };
                detect::outlier::detect(&nctx)
            } else {
                detect::outlier::detect(&ctx)
            };
            (out, timed(t))
        })
    };
    let label_stage = || {
        plan(
            cfg.label_flips,
            "--no-label-flips / label_flips=False",
            true,
        )
        .map(|()| {
            let t = Instant::now();
            let lf = detect::label_flip::detect(&ctx);
            (lf, timed(t))
        })
    };
    let backdoor_stage = || {
        plan(cfg.backdoors, "--no-backdoors / backdoors=False", true).map(|()| {
            let t = Instant::now();
            let mut bd = detect::backdoor::detect(&ctx);
            if bd.skipped.is_none() {
                // Shared trigger patches on copies of other classes' rows (detect::trigger), as part of the same score.
                let raw = |j: usize, v: f32| v * scaler.scale[j] + scaler.center[j];
                let (found, summary) = detect::trigger::detect(&ctx, &feature_names, &raw);
                merge_trigger(&mut bd, found, summary);
            }
            (bd, timed(t))
        })
    };
    // The three detectors are independent: on inputs of up to CONCURRENT_ROWS rows they run at once (each stage
    // has serial steps that leave a core idle); larger inputs run them one after another, so that their working
    // memory is not held at the same time. Their outputs are the same either way.
    let (outlier, (label, backdoor)) = if n <= CONCURRENT_ROWS {
        rayon::join(outlier_stage, || rayon::join(label_stage, backdoor_stage))
    } else {
        (outlier_stage(), (label_stage(), backdoor_stage()))
    };
    match outlier {
        Ok((out, ms)) => {
            outputs.push(out);
            timings.insert("detect_outlier".to_string(), ms);
        }
        Err(r) => {
            runs.insert("outlier", (r.0, Some(r.1)));
        }
    }
    let mut knn = None;
    match label {
        Ok((lf, ms)) => {
            outputs.push(lf.output.clone());
            if lf.output.skipped.is_none() {
                knn = Some(lf);
            }
            timings.insert("detect_label".to_string(), ms);
        }
        Err(r) => {
            runs.insert("label", (r.0, Some(r.1)));
        }
    }
    match backdoor {
        Ok((bd, ms)) => {
            outputs.push(bd);
            timings.insert("detect_backdoor".to_string(), ms);
        }
        Err(r) => {
            runs.insert("backdoor", (r.0, Some(r.1)));
        }
    }
    let dup_summary = if pass.duplicate_columns == 0 {
        outputs.push(DetectorOutput::skipped(
            "duplicate",
            n,
            "no column to compare rows on (every column is the label, the id, a key or empty)",
        ));
        Default::default()
    } else {
        let (dup, summary) = detect::duplicate::detect(
            &pass.feature_keys,
            &pass.labels,
            &classes,
            diff.map(|d| d.status.as_slice()),
            knn.as_ref(),
            knn.as_ref().map(|k| k.output.scores.as_slice()),
            detect::duplicate::TableNature {
                continuous: continuous_column(&x, &valid, &feature_names).as_deref(),
                coincidence: coincidence(&x, &valid),
                reference_rows: reference.as_ref().map_or(0, |r| r.x.nrows()),
            },
        );
        outputs.push(dup);
        summary
    };
    timings.insert("detect_total".to_string(), t2.elapsed().as_millis() as u64);
    let drift_bins = std::mem::take(&mut pass.drift_bins);
    let visuals = if s.whole_outputs {
        crate::html::visuals::gather(&ctx, &outputs, drift_bins)
    } else {
        Default::default()
    };
    for o in &outputs {
        detector_summaries.insert(o.name.to_string(), o.summary.clone());
        let run = match &o.skipped {
            Some(why) => (Run::Skipped, Some(why.clone())),
            None => (Run::Ran, None),
        };
        runs.insert(o.name, run);
    }
    for (name, (run, why)) in &runs {
        if *run != Run::Ran {
            detector_summaries.insert(name.to_string(), serde_json::json!({ run.as_str(): why }));
        }
    }
    Detection {
        outputs,
        runs,
        summaries: detector_summaries,
        duplicates: dup_summary,
        visuals,
        feature_names,
    }
}

/// Rows sampled per column to tell whether its values repeat.
const DISTINCT_SAMPLE: usize = 10_000;

/// Up to [`DISTINCT_SAMPLE`] valid rows, evenly spaced; `None` with fewer than 20.
fn distinct_sample(valid: &[bool]) -> Option<Vec<usize>> {
    let rows: Vec<usize> = (0..valid.len()).filter(|&i| valid[i]).collect();
    let step = rows.len().div_ceil(DISTINCT_SAMPLE);
    (rows.len() >= 20).then(|| rows.iter().step_by(step).copied().collect())
}

/// The first feature column whose values are mostly distinct (at least half of up to 10,000 valid rows, evenly
/// spaced): in such data clean rows almost never coincide on every column, so a large group of identical rows is
/// made, not drawn (see `detect::duplicate`). `None` with fewer than 20 valid rows.
fn continuous_column(x: &ndarray::Array2<f32>, valid: &[bool], names: &[String]) -> Option<String> {
    let sample = distinct_sample(valid)?;
    (0..x.ncols().min(names.len())).find_map(|j| {
        let distinct: std::collections::HashSet<u32> =
            sample.iter().map(|&i| x[[i, j]].to_bits()).collect();
        (2 * distinct.len() >= sample.len()).then(|| names[j].clone())
    })
}

/// How likely two rows are to be identical on every feature column by chance, if the columns were independent: the
/// product over columns of `sum_v p_v^2`, estimated from up to 10,000 valid rows (evenly spaced) without bias
/// (`sum c (c - 1) / (m (m - 1))`). About 0 with any continuous column; in a table of a few integer columns it says
/// how many exact coincidences clean rows hold (see `detect::duplicate`).
fn coincidence(x: &ndarray::Array2<f32>, valid: &[bool]) -> f64 {
    let Some(sample) = distinct_sample(valid) else {
        return 0.0;
    };
    let m = sample.len() as f64;
    (0..x.ncols())
        .map(|j| {
            let mut counts: std::collections::HashMap<u32, usize> =
                std::collections::HashMap::new();
            for &i in &sample {
                let v = x[[i, j]];
                *counts
                    .entry(if v == 0.0 { 0 } else { v.to_bits() })
                    .or_default() += 1;
            }
            counts.values().map(|&c| (c * (c - 1)) as f64).sum::<f64>() / (m * (m - 1.0))
        })
        .product()
}

/// Merge the trigger-patch findings into the backdoor detector's output: a row takes the higher score, and its
/// reasons are joined.
fn merge_trigger(
    bd: &mut DetectorOutput,
    found: Vec<detect::trigger::Finding>,
    summary: serde_json::Value,
) {
    let mut flagged = 0usize;
    for (i, f) in found.into_iter().enumerate() {
        let Some((score, reason)) = f else { continue };
        flagged += 1;
        bd.scores[i] = bd.scores[i].max(score);
        bd.reasons[i] = Some(match bd.reasons[i].take() {
            Some(r) => format!("{r}; {reason}"),
            None => reason,
        });
    }
    if let Some(m) = bd.summary.as_object_mut() {
        m.insert(
            "trigger_patches".into(),
            serde_json::json!({ "rows_flagged": flagged, "search": summary }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::coincidence;
    use ndarray::Array2;

    #[test]
    fn coincidence_is_the_product_of_the_columns_collision_chances() {
        // Column 0: values 0, 1 in halves (two rows of 40 drawn: 2 * 20 * 19 / (40 * 39)); column 1: ten values of
        // four rows each (10 * 4 * 3 / (40 * 39)).
        let x = Array2::from_shape_fn((40, 2), |(i, j)| {
            if j == 0 {
                (i % 2) as f32
            } else {
                (i % 10) as f32
            }
        });
        let want = (2.0 * 20.0 * 19.0 / 1560.0) * (10.0 * 12.0 / 1560.0);
        assert!((coincidence(&x, &[true; 40]) - want).abs() < 1e-12);
        // A continuous column: no two rows coincide, nor do whole rows.
        let x = Array2::from_shape_fn((40, 2), |(i, j)| {
            if j == 0 {
                (i % 2) as f32
            } else {
                i as f32 * 0.37
            }
        });
        assert_eq!(coincidence(&x, &[true; 40]), 0.0);
        // Invalid rows are left out; too few rows say nothing.
        assert_eq!(coincidence(&x, &[false; 40]), 0.0);
    }
}
