//! The scan pipeline: contract, lineage and features in one streaming pass, then detectors, findings and the verdict.
//!
//! ```no_run
//! use poisonscan::{Scanner, Source};
//! let outcome = Scanner::new(Source::path("fixtures/corrupted.parquet")?)
//!     .label("label")
//!     .reference(Source::path("fixtures/reference.parquet")?)
//!     .run()?;
//! println!("{}", outcome.report.summary);
//! # Ok::<(), poisonscan::Error>(())
//! ```

use crate::contract::checks;
use crate::contract::drift::ColumnDrift;
use crate::contract::profile::{Profiler, Trust};
use crate::contract::{Contract, ContractChecker, Violation, ViolationKind};
use crate::detect::{self, DetectConfig, DetectContext, DetectorOutput, LabelledMatrix, FLAG_AT};
use crate::error::{Error, LineageError};
use crate::features::{sample_by_digest, FeatureMatrix, FeatureSpec, RobustScaler};
use crate::lineage::encode::schema_hash;
use crate::lineage::{
    self, DuplicateIds, HashMode, Key, LineageState, Manifest, RowDigest, RowHasher, RowStatus,
};
use crate::policy::{Policy, Status, CORE_DETECTORS};
use crate::report::{
    BaselineSummary, CheckResult, Report, RowScores, Run, SampleRow, Verdict, REPORT_VERSION,
};
use crate::source::Source;
use arrow::array::RecordBatch;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

/// Where the contract comes from.
#[derive(Debug)]
pub enum ContractSource {
    /// Infer it robustly from the data itself (the data is read twice; streams are spooled to disk).
    Infer,
    /// Profile a trusted reference (also used to fit and calibrate the detectors).
    Reference(Source),
    /// A scanner fitted earlier on a trusted reference (`poisonscan fit`): its contract and reference rows.
    Fitted {
        /// The fitted scanner.
        fitted: Box<crate::fit::FittedScanner>,
        /// Its path, for the report.
        origin: String,
    },
    /// A contract file read earlier.
    Contract {
        /// The contract.
        contract: Contract,
        /// Its path, for the report.
        origin: String,
    },
}

/// Configures and runs a scan. Everything the CLI's `scan` does is available here.
#[derive(Debug)]
pub struct Scanner {
    data: Source,
    contract_source: ContractSource,
    label: Option<String>,
    id: Option<String>,
    features: Option<Vec<String>>,
    embedding: Option<String>,
    pred_probs: Option<String>,
    policy: Policy,
    detect: DetectConfig,
    key: Option<Key>,
    baseline: Option<(Manifest, String)>,
    progress: bool,
    allow_widening: bool,
}

/// Result of a scan.
#[derive(Debug)]
pub struct ScanOutcome {
    /// The report (verdict, counts, drift, sample of flagged rows).
    pub report: Report,
    /// One score row per input row.
    pub scores: RowScores,
    /// Every contract violation.
    pub violations: Vec<Violation>,
    /// The contract the data was checked against.
    pub contract: Contract,
    /// Row digests of the data (keyed when a key was given).
    pub digests: Vec<RowDigest>,
    /// How the digests were made (to recognise the scanned data again).
    pub hash_mode: HashMode,
    /// What the HTML report plots beyond the JSON report.
    pub visuals: crate::html::visuals::Visuals,
    /// The policy the checks were judged by.
    pub policy: Policy,
    /// Per-column counts of the data (nulls, values, min, max, distinct), for the OpenLineage metrics facet.
    pub metrics: Vec<crate::events::ColumnMetrics>,
    data: Source,
}

impl Scanner {
    /// Scan `data`; by default the contract is inferred from the data itself.
    pub fn new(data: Source) -> Scanner {
        Scanner {
            data,
            contract_source: ContractSource::Infer,
            label: None,
            id: None,
            features: None,
            embedding: None,
            pred_probs: None,
            policy: Policy::default(),
            detect: DetectConfig::default(),
            key: None,
            baseline: None,
            progress: false,
            allow_widening: false,
        }
    }
    /// Label column.
    pub fn label(mut self, col: impl Into<String>) -> Self {
        self.label = Some(col.into());
        self
    }
    /// Id column.
    pub fn id(mut self, col: impl Into<String>) -> Self {
        self.id = Some(col.into());
        self
    }
    /// Feature columns (default: every numeric column but label and id).
    pub fn features(mut self, cols: Vec<String>) -> Self {
        self.features = Some(cols);
        self
    }
    /// Embedding column (`FixedSizeList<float>` / `List<float>`).
    pub fn embedding(mut self, col: impl Into<String>) -> Self {
        self.embedding = Some(col.into());
        self
    }
    /// Column of out-of-sample model probabilities (`List<float>`, one per class in label order).
    pub fn pred_probs(mut self, col: impl Into<String>) -> Self {
        self.pred_probs = Some(col.into());
        self
    }
    /// Trusted reference data.
    pub fn reference(mut self, reference: Source) -> Self {
        self.contract_source = ContractSource::Reference(reference);
        self
    }
    /// Scan with a fitted scanner instead of a reference: its label, id, features and embedding are used, and given
    /// ones must agree with them.
    pub fn fitted(
        mut self,
        fitted: crate::fit::FittedScanner,
        origin: impl Into<String>,
    ) -> Result<Self, Error> {
        let origin = origin.into();
        let agree = |what: &str, given: &Option<String>, fit: Option<&str>| {
            match (given, fit) {
            (Some(g), f) if Some(g.as_str()) != f => Err(Error::Usage(format!(
                "{what} {g} differs from the fitted scanner's ({}; {origin}): fit again, or drop {what}",
                f.unwrap_or("none")
            ))),
            _ => Ok(()),
        }
        };
        agree("--label", &self.label, fitted.label())?;
        agree("--id", &self.id, fitted.id())?;
        agree("--embedding", &self.embedding, fitted.embedding())?;
        if self.features.is_some() && self.features.as_deref() != fitted.features() {
            return Err(Error::Usage(format!(
                "--features differ from the fitted scanner's ({origin}): fit again, or drop --features"
            )));
        }
        self.label = fitted.label().map(str::to_string);
        self.id = fitted.id().map(str::to_string);
        self.embedding = fitted.embedding().map(str::to_string);
        self.features = fitted.features().map(|f| f.to_vec());
        self.contract_source = ContractSource::Fitted {
            fitted: Box::new(fitted),
            origin,
        };
        Ok(self)
    }
    /// A contract (e.g. read with [`Contract::read`]).
    pub fn contract(mut self, contract: Contract, origin: impl Into<String>) -> Self {
        self.contract_source = ContractSource::Contract {
            contract,
            origin: origin.into(),
        };
        self
    }
    /// Gate policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
    /// Detector settings.
    pub fn detect_config(mut self, cfg: DetectConfig) -> Self {
        self.detect = cfg;
        self
    }
    /// Lineage key (keyed row digests).
    pub fn key(mut self, key: Option<Key>) -> Self {
        self.key = key;
        self
    }
    /// Trusted manifest to diff against.
    pub fn baseline(mut self, manifest: Manifest, origin: impl Into<String>) -> Self {
        self.baseline = Some((manifest, origin.into()));
        self
    }
    /// Accept integer data in a float column of the contract (off by default: a changed type is a schema error).
    /// CSV data is always read this way, since its types are guessed from text.
    pub fn allow_widening(mut self, on: bool) -> Self {
        self.allow_widening = on;
        self
    }
    /// Show a progress spinner on a terminal.
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Run the scan.
    pub fn run(mut self) -> Result<ScanOutcome, Error> {
        let t0 = Instant::now();
        // What the data's files look like before anything is read: a file rewritten during the scan is refused.
        let data_state = self.data.file_state();
        let mut timings = BTreeMap::new();
        let data_origin = self.data.origin();
        let mut exclude: Vec<String> = [&self.label, &self.id, &self.pred_probs]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        exclude.sort();
        // 1. Contract (and the reference's features).
        let (contract, contract_source, reference_raw) =
            match std::mem::replace(&mut self.contract_source, ContractSource::Infer) {
                ContractSource::Contract { contract, origin } => {
                    (contract, format!("contract file {origin}"), None)
                }
                ContractSource::Fitted { fitted, origin } => {
                    let f = *fitted;
                    let source = format!("fitted scanner {origin} (reference {})", f.origin());
                    (f.contract().clone(), source, Some(f.rows))
                }
                ContractSource::Reference(mut src) => {
                    let r = read_reference(&mut src, &self, &exclude)?;
                    (r.0, format!("reference {}", src.origin()), Some(r.1))
                }
                ContractSource::Infer => {
                    self.data = std::mem::replace(
                        &mut self.data,
                        Source::memory(
                            std::sync::Arc::new(arrow::datatypes::Schema::empty()),
                            vec![],
                            "",
                        ),
                    )
                    .into_rewindable()?;
                    let mut stream = self.data.open()?;
                    let schema = stream.schema();
                    check_columns(&schema, &data_origin, &self)?;
                    let mut p = Profiler::new(
                        schema,
                        &data_origin,
                        self.label.as_deref(),
                        self.id.as_deref(),
                    );
                    for b in &mut stream {
                        p.add_batch(&b?)?;
                    }
                    (
                        p.finish(Trust::Data),
                        "inferred from data".to_string(),
                        None,
                    )
                }
            };
        if let (Some(l), Some(cl)) = (&self.label, &contract.label) {
            if l != cl {
                return Err(Error::Usage(format!(
                    "--label {l} differs from the contract's label column {cl}"
                )));
            }
        }
        timings.insert("contract".to_string(), t0.elapsed().as_millis() as u64);
        let mut notes: Vec<String> = Vec::new();
        let label_guess = match &self.label {
            Some(_) => None,
            None => label_like(contract.columns.iter().map(|c| c.name.as_str())),
        };
        if let Some(g) = &label_guess {
            notes.push(format!(
                "no label column given; column {g} looks like one and is not used as a feature: pass --label {g} \
                 (Python: label=\"{g}\") to run the label-based detectors"
            ));
        }
        let keys = key_columns(&contract, self.id.as_deref());
        if !keys.is_empty() {
            notes.push(format!(
                "{} {} a unique key per row: not used as a feature or to find duplicates{}",
                keys.join(", "),
                if keys.len() == 1 { "holds" } else { "hold" },
                if self.id.is_none() {
                    format!(" (pass --id {} to carry it into the scores)", keys[0])
                } else {
                    String::new()
                }
            ));
        }
        // 2. One streaming pass over the data.
        let t1 = Instant::now();
        let mode = self.hash_mode()?;
        let mut data_exclude = exclude.clone();
        data_exclude.extend(label_guess.iter().cloned());
        data_exclude.extend(keys.iter().cloned());
        let reference_emb_len = reference_raw
            .as_ref()
            .and_then(|r| r.features.embedding_len);
        let mut pass = data_pass(
            &mut self,
            &contract,
            &data_exclude,
            &keys,
            mode,
            reference_emb_len,
        )?;
        notes.append(&mut pass.notes);
        self.data.unchanged_since(&data_state)?;
        timings.insert(
            "read_check_hash".to_string(),
            t1.elapsed().as_millis() as u64,
        );
        let n = pass.rows;
        if n == 0 {
            return Err(Error::ZeroRows {
                origin: data_origin,
            });
        }
        // 3. Detectors.
        let t2 = Instant::now();
        let classes = contract.classes().unwrap_or_default();
        // A row leaves the detectors only when the contract flags it (impossible, or unusual past the flag distance).
        let mut contract_scores = vec![0.0f32; n];
        let (mut impossible, mut unusual) = (vec![false; n], vec![false; n]);
        for v in &pass.violations {
            let r = v.row as usize;
            contract_scores[r] = contract_scores[r].max(v.score);
            if v.impossible() {
                impossible[r] = true;
            } else if v.flags() {
                unusual[r] = true;
            }
        }
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
        let mut reference_raw = reference_raw;
        let (feature_names, reference_usable) = select_features(
            &mut pass.features,
            &pass.feature_names,
            pass.embedding.as_deref(),
            reference_raw.as_mut(),
            &mut notes,
        );
        if !reference_usable {
            reference_raw = None;
        }
        // Text columns the contract calls a closed category set become one-hot features (one 0/1 column per
        // category, unscaled: a different category counts as much as two robust standard deviations).
        let one_hot_start = pass.features.dim;
        let categorical = one_hot_columns(&contract, &pass.text_names, &self, &keys);
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
            let rows = sample_by_digest(&r.digests, &r.features.valid, self.detect.max_fit_rows);
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
            config: &self.detect,
            pred_probs: pass.pred_probs.as_ref(),
            label_clean_rate: contract
                .calibration
                .as_ref()
                .map(|c| c.label_clean_rate.as_slice()),
        };
        // Why a detector cannot run on this data, before running it.
        let no_features = (x.ncols() == 0).then(|| {
            "no usable feature column (numeric, boolean or embedding; see notes)".to_string()
        });
        let no_label = match (&self.label, classes.len()) {
            (None, _) => Some(match &label_guess {
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
        let mut timed = |name: &str, t: Instant| {
            timings.insert(format!("detect_{name}"), t.elapsed().as_millis() as u64);
        };
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
        match plan(
            self.detect.outliers,
            "--no-outliers / outliers=False",
            false,
        ) {
            Ok(()) => {
                let t = Instant::now();
                // Distances to the data's own clusters on the numeric and embedding columns only: a rare category is
                // the contract's business, and 0/1 columns split every cluster into modes that look like outliers.
                if one_hot_start < x.ncols() && one_hot_start > 0 {
                    let numeric = |m: &ndarray::Array2<f32>| {
                        m.slice(ndarray::s![.., ..one_hot_start]).to_owned()
                    };
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
                    outputs.push(detect::outlier::detect(&nctx));
                } else {
                    outputs.push(detect::outlier::detect(&ctx));
                }
                timed("outlier", t);
            }
            Err(r) => {
                runs.insert("outlier", (r.0, Some(r.1)));
            }
        }
        let mut knn = None;
        match plan(
            self.detect.label_flips,
            "--no-label-flips / label_flips=False",
            true,
        ) {
            Ok(()) => {
                let t = Instant::now();
                let lf = detect::label_flip::detect(&ctx);
                outputs.push(lf.output.clone());
                if lf.output.skipped.is_none() {
                    knn = Some(lf);
                }
                timed("label", t);
            }
            Err(r) => {
                runs.insert("label", (r.0, Some(r.1)));
            }
        }
        match plan(
            self.detect.backdoors,
            "--no-backdoors / backdoors=False",
            true,
        ) {
            Ok(()) => {
                let t = Instant::now();
                outputs.push(detect::backdoor::detect(&ctx));
                timed("backdoor", t);
            }
            Err(r) => {
                runs.insert("backdoor", (r.0, Some(r.1)));
            }
        }
        let diff = match &self.baseline {
            Some((m, _)) => Some(lineage::diff(
                m,
                &pass.digests,
                pass.ids.as_deref(),
                &pass.schema_hash,
            )),
            None => None,
        };
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
                diff.as_ref().map(|d| d.status.as_slice()),
                knn.as_ref(),
                knn.as_ref().map(|k| k.output.scores.as_slice()),
            );
            outputs.push(dup);
            summary
        };
        timings.insert("detect_total".to_string(), t2.elapsed().as_millis() as u64);
        let visuals =
            crate::html::visuals::gather(&ctx, &outputs, std::mem::take(&mut pass.drift_bins));
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
                detector_summaries
                    .insert(name.to_string(), serde_json::json!({ run.as_str(): why }));
            }
        }
        // 4. Scores, reasons, checks, verdict.
        let id_values = if pass.id_chunks.is_empty() {
            None
        } else {
            let parts: Vec<&dyn arrow::array::Array> =
                pass.id_chunks.iter().map(|a| a.as_ref()).collect();
            Some(arrow::compute::concat(&parts).map_err(|e| Error::Output {
                path: "scores".into(),
                message: format!("joining the id column's batches: {e}"),
            })?)
        };
        let mut scores = RowScores {
            ids: pass.ids.clone(),
            id_values,
            id_column: self.id.clone(),
            ..Default::default()
        };
        let mut reasons: Vec<Vec<String>> = vec![Vec::new(); n];
        for v in &pass.violations {
            reasons[v.row as usize].push(v.reason());
        }
        scores.checks.insert("contract".into(), contract_scores);
        for o in &outputs {
            for (i, r) in o.reasons.iter().enumerate() {
                if let (Some(r), true) = (r, o.scores[i] >= FLAG_AT) {
                    reasons[i].push(r.clone());
                }
            }
            scores.checks.insert(o.name.to_string(), o.scores.clone());
        }
        for name in ["outlier", "label", "backdoor"] {
            scores
                .checks
                .entry(name.to_string())
                .or_insert_with(|| vec![0.0; n]);
        }
        let mut baseline_summary = None;
        if let (Some(d), Some((_, origin))) = (&diff, &self.baseline) {
            for (i, st) in d.status.iter().enumerate() {
                if *st == RowStatus::Changed {
                    reasons[i].extend(d.reason(i));
                }
            }
            scores.checks.insert("baseline".into(), d.scores());
            scores.baseline_status = Some(d.status.iter().map(|s| s.as_str()).collect());
            baseline_summary = Some(BaselineSummary {
                manifest: origin.clone(),
                added: d.count(RowStatus::Added) as u64,
                removed: d.removed.len() as u64,
                changed: d.count(RowStatus::Changed) as u64,
                by_id: d.by_id,
                schema_changed: d.schema_changed,
            });
        }
        scores.reasons = reasons.into_iter().map(|r| r.join("; ")).collect();
        let flagged_mask = scores.flagged();
        let flagged = flagged_mask.iter().filter(|&&f| f).count() as u64;
        let duplicate_ids = pass.ids.as_deref().and_then(DuplicateIds::find);
        if let (Some(d), Some(col)) = (&duplicate_ids, &self.id) {
            notes.push(d.describe(col));
        }
        if !contract.inferred_from_data {
            runs.insert("drift", (Run::Ran, None));
        } else {
            runs.insert(
                "drift",
                (
                    Run::Disabled,
                    Some("no reference or contract file: nothing to compare the data with".into()),
                ),
            );
        }
        if self.id.is_none() {
            runs.insert(
                "duplicate_id",
                (Run::Disabled, Some("no id column given".into())),
            );
        }
        let mut checks = BTreeMap::new();
        let policy = &self.policy;
        let mut eval = |name: &str, count: u64, total: u64| {
            let (run, why) = runs.get(name).cloned().unwrap_or((Run::Ran, None));
            let (status, reason) = gate_status(policy, name, run, why, count, total);
            checks.insert(
                name.to_string(),
                CheckResult::counted(count, total, status, run, reason),
            );
        };
        let rows_with = |m: &[bool]| m.iter().filter(|&&v| v).count() as u64;
        eval("contract", rows_with(&impossible), n as u64);
        eval("unusual", rows_with(&unusual), n as u64);
        for name in ["duplicate", "outlier", "label", "backdoor"] {
            let c = scores
                .checks
                .get(name)
                .map(|v| v.iter().filter(|&&s| s >= FLAG_AT).count())
                .unwrap_or(0);
            eval(name, c as u64, n as u64);
        }
        eval(
            "duplicate_id",
            duplicate_ids.as_ref().map_or(0, |d| d.rows),
            n as u64,
        );
        eval(
            "drift",
            pass.drift.iter().filter(|d| d.drifted).count() as u64,
            pass.drift.len() as u64,
        );
        if let Some(b) = &baseline_summary {
            eval("baseline_changed", b.changed + b.removed, n as u64);
            eval("baseline_added", b.added, n as u64);
        }
        let worst = checks
            .values()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass);
        let verdict = match worst {
            Status::Pass => Verdict::Pass,
            Status::Warn => Verdict::Warn,
            Status::Fail => Verdict::Fail,
        };
        let mut violation_kinds: BTreeMap<String, u64> = BTreeMap::new();
        for v in &pass.violations {
            let kind = match (v.kind, v.flags()) {
                (ViolationKind::Unusual, false) => "unusual_not_flagged",
                (k, _) => k.as_str(),
            };
            *violation_kinds.entry(kind.to_string()).or_default() += 1;
        }
        let overall = scores.overall();
        let mut order: Vec<usize> = (0..n).filter(|&i| flagged_mask[i]).collect();
        order.sort_by(|&a, &b| overall[b].total_cmp(&overall[a]).then(a.cmp(&b)));
        let sample = order
            .iter()
            .take(100)
            .map(|&i| SampleRow {
                row: i as u64,
                id: pass.ids.as_ref().map(|ids| ids[i].clone()),
                score: overall[i],
                reasons: scores.reasons[i].clone(),
            })
            .collect();
        let per_check: Vec<String> = checks
            .iter()
            .filter(|(_, c)| c.count > 0 && c.run == Run::Ran)
            .map(|(k, c)| {
                let status = match c.status {
                    Status::Fail => " fail",
                    Status::Warn => " warn",
                    Status::Pass => "",
                };
                format!("{k} {}{status}", c.count)
            })
            .collect();
        // Checks that did not run, grouped by reason: "label, backdoor skipped (no label column given)".
        let mut by_reason: Vec<(String, Vec<&str>)> = Vec::new();
        for (k, (run, why)) in &runs {
            let shown = *run == Run::Skipped
                || (*run == Run::Disabled
                    && (CORE_DETECTORS.contains(k) || self.policy.requires(k)));
            if !shown {
                continue;
            }
            let why = format!("{} ({})", run.as_str(), why.clone().unwrap_or_default());
            match by_reason.iter_mut().find(|(w, _)| *w == why) {
                Some((_, names)) => names.push(k),
                None => by_reason.push((why, vec![k])),
            }
        }
        let not_run: Vec<String> = by_reason
            .iter()
            .map(|(why, names)| format!("{} {why}", names.join(", ")))
            .collect();
        let summary = format!(
            "poisonscan: {n} rows scanned, {flagged} flagged{}{}; verdict {}",
            if per_check.is_empty() {
                String::new()
            } else {
                format!(" ({})", per_check.join(", "))
            },
            if not_run.is_empty() {
                String::new()
            } else {
                format!("; not run: {}", not_run.join(", "))
            },
            verdict.as_str().to_uppercase()
        );
        timings.insert("total".to_string(), t0.elapsed().as_millis() as u64);
        let mut inputs = BTreeMap::new();
        inputs.insert("data".to_string(), serde_json::json!(data_origin));
        inputs.insert("label".to_string(), serde_json::json!(self.label));
        inputs.insert("id".to_string(), serde_json::json!(self.id));
        inputs.insert("features".to_string(), serde_json::json!(feature_names));
        inputs.insert("embedding".to_string(), serde_json::json!(pass.embedding));
        inputs.insert("policy".to_string(), serde_json::json!(self.policy.origin));
        // Whether the row digests (and so the fingerprint) are keyed: a key with an unkeyed baseline is not used.
        inputs.insert(
            "keyed".to_string(),
            serde_json::json!(matches!(mode, HashMode::Keyed(_))),
        );
        let report = Report {
            report_version: REPORT_VERSION,
            tool: "poisonscan".into(),
            tool_version: crate::VERSION.into(),
            inputs,
            contract_source,
            contract_hash: contract.hash(),
            policy_hash: self.policy.hash(),
            rows: n as u64,
            flagged,
            checks,
            violations: violation_kinds,
            drift: pass.drift,
            fingerprint: pass.lineage.finish()?,
            schema_hash: pass.schema_hash,
            baseline: baseline_summary,
            duplicates: dup_summary,
            detectors: detector_summaries,
            notes,
            duplicate_ids,
            sample,
            timings_ms: timings,
            verdict,
            summary,
        };
        Ok(ScanOutcome {
            report,
            scores,
            violations: pass.violations,
            contract,
            digests: pass.digests,
            hash_mode: mode,
            visuals,
            metrics: pass.metrics,
            policy: self.policy.clone(),
            data: self.data,
        })
    }

    fn hash_mode(&self) -> Result<HashMode, Error> {
        match (&self.baseline, &self.key) {
            (Some((m, origin)), key) => {
                if let Some(id) = &self.id {
                    lineage::check_id_column(m, origin, id)?;
                }
                let problems = m.check_integrity(key.as_ref())?;
                if !problems.is_empty() {
                    return Err(LineageError::InvalidManifest {
                        path: origin.into(),
                        message: problems.join("; "),
                    }
                    .into());
                }
                Ok(if m.header.keyed {
                    key.as_ref().map(|k| k.mode()).unwrap_or(HashMode::Plain)
                } else {
                    HashMode::Plain
                })
            }
            (None, Some(k)) => Ok(k.mode()),
            (None, None) => Ok(HashMode::Plain),
        }
    }
}

/// The status of one check under the policy, and the reason when it is not a threshold's: a required check that did
/// not run fails; a core detector that could not run makes the scan incomplete (at best WARN).
fn gate_status(
    policy: &Policy,
    name: &str,
    run: Run,
    why: Option<String>,
    count: u64,
    total: u64,
) -> (Status, Option<String>) {
    match run {
        Run::Ran => (policy.evaluate(name, count, total), None),
        _ if policy.requires(name) => (
            Status::Fail,
            Some(format!(
                "{}; the policy requires it",
                why.unwrap_or_else(|| run.as_str().into())
            )),
        ),
        Run::Skipped if CORE_DETECTORS.contains(&name) => (
            Status::Warn,
            Some(format!(
                "{}; the scan is incomplete",
                why.unwrap_or_else(|| "did not run".into())
            )),
        ),
        _ => (Status::Pass, why),
    }
}

/// Columns the contract marks as row keys, other than the id: never features.
fn key_columns(contract: &Contract, id: Option<&str>) -> Vec<String> {
    contract
        .columns
        .iter()
        .filter(|c| c.key && Some(c.name.as_str()) != id)
        .map(|c| c.name.clone())
        .collect()
}

/// The text columns (positions in `text_names`) that the contract calls a closed category set of 2 to 64 values, with
/// the categories in the contract's order: not the label, the id or a key.
fn one_hot_columns(
    contract: &Contract,
    text_names: &[String],
    s: &Scanner,
    keys: &[String],
) -> Vec<(usize, Vec<String>)> {
    text_names
        .iter()
        .enumerate()
        .filter_map(|(t, name)| {
            let c = contract.column(name)?;
            if c.family != "string"
                || Some(name) == s.label.as_ref()
                || Some(name) == s.id.as_ref()
                || Some(name) == contract.label.as_ref()
                || keys.contains(name)
            {
                return None;
            }
            let cats: Vec<String> = c
                .categories
                .as_ref()?
                .iter()
                .map(|x| x.value.clone())
                .collect();
            (2..=64).contains(&cats.len()).then_some((t, cats))
        })
        .collect()
}

/// A column named like a label (`label`, `target`, `y`, `class`, ...), for a scan given none.
fn label_like<'a>(names: impl Iterator<Item = &'a str>) -> Option<String> {
    const LIKE: [&str; 9] = [
        "label",
        "labels",
        "target",
        "y",
        "class",
        "outcome",
        "ground_truth",
        "gt",
        "category",
    ];
    let names: Vec<&str> = names.collect();
    LIKE.iter()
        .find_map(|want| names.iter().find(|n| n.eq_ignore_ascii_case(want)))
        .map(|n| n.to_string())
}

/// Choose the feature columns the detectors use: the reference's columns are matched to the data's by name, and a
/// column missing on more than half of the rows it is fitted on (the reference's, else the data's) is left out of
/// both, with a note. Returns the names kept and whether the reference's features fit the data's.
fn select_features(
    data: &mut FeatureMatrix,
    names: &[String],
    embedding: Option<&str>,
    reference: Option<&mut ReferenceRows>,
    notes: &mut Vec<String>,
) -> (Vec<String>, bool) {
    let emb_dim = data.dim.saturating_sub(names.len());
    let mut all: Vec<String> = names.to_vec();
    let emb_name = embedding.unwrap_or("embedding");
    all.extend((0..emb_dim).map(|j| format!("{emb_name}[{j}]")));
    let mut reference = reference;
    let mut reference_usable = reference.is_some();
    if let Some(r) = reference.as_deref_mut() {
        let r_emb = r.features.dim.saturating_sub(r.names.len());
        let mut keep: Vec<usize> = Vec::new();
        for n in names {
            match r.names.iter().position(|m| m == n) {
                Some(j) => keep.push(j),
                None => reference_usable = false,
            }
        }
        if r_emb == emb_dim {
            keep.extend((0..emb_dim).map(|j| r.names.len() + j));
        } else {
            reference_usable = false;
        }
        if reference_usable {
            r.features.keep_columns(&keep);
        } else {
            notes.push(
                "the reference's feature columns differ from the data's: the detectors are fitted on the data"
                    .into(),
            );
        }
    }
    let (fit, on) = match reference.as_deref() {
        Some(r) if reference_usable => (r.features.present_fraction(), "reference"),
        _ => (data.present_fraction(), "data"),
    };
    let keep: Vec<usize> = (0..all.len()).filter(|&j| fit[j] >= 0.5).collect();
    let dropped: Vec<String> = (0..all.len())
        .filter(|&j| fit[j] < 0.5)
        .map(|j| format!("{} ({:.0}% of values present)", all[j], 100.0 * fit[j]))
        .collect();
    if !dropped.is_empty() {
        notes.push(format!(
            "left out of the features, missing (null, NaN or inf) on more than half of the {on}'s rows: {}",
            dropped.join(", ")
        ));
        data.keep_columns(&keep);
        if let (Some(r), true) = (reference, reference_usable) {
            r.features.keep_columns(&keep);
        }
    }
    (
        keep.iter().map(|&j| all[j].clone()).collect(),
        reference_usable,
    )
}

fn class_of(classes: &[String], v: Option<&str>) -> Option<u32> {
    let v = v?;
    classes.iter().position(|c| c == v).map(|p| p as u32)
}

fn check_columns(
    schema: &arrow::datatypes::SchemaRef,
    origin: &str,
    s: &Scanner,
) -> Result<(), Error> {
    for (col, role) in [
        (&s.label, "--label"),
        (&s.id, "--id"),
        (&s.embedding, "--embedding"),
        (&s.pred_probs, "--pred-probs"),
    ] {
        if let Some(c) = col {
            lineage::column_index(schema, origin, c, role)?;
        }
    }
    Ok(())
}

/// Profile a trusted reference into a contract, including the detectors' calibration measured on it
/// (`poisonscan profile`). `features` / `embedding` choose the feature columns as in a scan.
pub fn profile_reference(
    reference: &mut Source,
    label: Option<&str>,
    id: Option<&str>,
    features: Option<Vec<String>>,
    embedding: Option<&str>,
) -> Result<Contract, Error> {
    Ok(profile_rows(reference, label, id, features, embedding)?.0)
}

/// The contract of a reference (with its calibration) and the rows the detectors are fitted on.
pub(crate) fn profile_rows(
    reference: &mut Source,
    label: Option<&str>,
    id: Option<&str>,
    features: Option<Vec<String>>,
    embedding: Option<&str>,
) -> Result<(Contract, ReferenceRows), Error> {
    let mut s = Scanner::new(Source::memory(
        std::sync::Arc::new(arrow::datatypes::Schema::empty()),
        vec![],
        "",
    ));
    s.label = label.map(str::to_string);
    s.id = id.map(str::to_string);
    s.features = features;
    s.embedding = embedding.map(str::to_string);
    let mut exclude: Vec<String> = [&s.label, &s.id].into_iter().flatten().cloned().collect();
    exclude.sort();
    let (mut contract, raw) = read_reference(reference, &s, &exclude)?;
    let classes = contract.classes().unwrap_or_default();
    if label.is_some() && classes.len() >= 2 {
        let mut rows = ReferenceRows {
            features: raw.features.clone(),
            names: raw.names.clone(),
            text_names: raw.text_names.clone(),
            labels: Vec::new(),
            digests: Vec::new(),
        };
        // The features a scan with this contract uses: no key columns, no column missing on most rows, categories
        // one-hot (the same choices as `Scanner::run`, so the calibration measures the same space).
        let keys = key_columns(&contract, s.id.as_deref());
        let emb = rows.features.dim.saturating_sub(rows.names.len());
        let keep: Vec<usize> = (0..rows.names.len())
            .filter(|&j| !keys.contains(&rows.names[j]))
            .chain(rows.names.len()..rows.names.len() + emb)
            .collect();
        rows.features.keep_columns(&keep);
        let names: Vec<String> = keep[..keep.len() - emb]
            .iter()
            .map(|&j| rows.names[j].clone())
            .collect();
        select_features(&mut rows.features, &names, embedding, None, &mut Vec::new());
        let one_hot_start = rows.features.dim;
        let cats = one_hot_columns(&contract, &rows.text_names, &s, &keys);
        rows.features.append_one_hot(&rows.text_names, &cats);
        let picked = sample_by_digest(&raw.digests, &rows.features.valid, s.detect.max_fit_rows);
        let mut x = detect::take_rows(rows.features.take_array().view(), &picked);
        if x.ncols() > 0 {
            let mut scaler = RobustScaler::fit(&x, &vec![true; x.nrows()]);
            scaler.leave_unscaled(one_hot_start);
            scaler.transform(&mut x);
            let labels: Vec<Option<u32>> = picked
                .iter()
                .map(|&i| class_of(&classes, raw.labels[i].as_deref()))
                .collect();
            let cfg = &s.detect;
            contract.calibration = Some(crate::contract::Calibration {
                label_clean_rate: detect::label_flip::clean_candidate_rates(
                    &x,
                    &labels,
                    classes.len(),
                    cfg.k,
                    cfg.nprobe,
                    cfg.linear,
                ),
            });
        }
    }
    Ok((contract, raw))
}

/// Trusted rows as read: raw features (before any column choice or scaling), labels and digests.
#[derive(Debug, Clone)]
pub(crate) struct ReferenceRows {
    pub(crate) features: FeatureMatrix,
    /// Names of the scalar feature columns (the embedding's cells follow them).
    pub(crate) names: Vec<String>,
    /// Names of the text columns recorded for one-hot features.
    pub(crate) text_names: Vec<String>,
    pub(crate) labels: Vec<Option<String>>,
    pub(crate) digests: Vec<RowDigest>,
}

fn read_reference(
    src: &mut Source,
    s: &Scanner,
    exclude: &[String],
) -> Result<(Contract, ReferenceRows), Error> {
    let mut stream = src.open()?;
    let schema = stream.schema();
    let origin = stream.origin().to_string();
    check_columns(&schema, &origin, s)?;
    let guess = match &s.label {
        Some(_) => None,
        None => label_like(schema.fields().iter().map(|f| f.name().as_str())),
    };
    let ex: Vec<&str> = exclude
        .iter()
        .map(String::as_str)
        .chain(guess.as_deref())
        .collect();
    let spec = FeatureSpec::resolve(
        &schema,
        &origin,
        s.features.as_deref(),
        s.embedding.as_deref(),
        &ex,
    )?;
    let label_idx = s.label.as_ref().and_then(|l| schema.index_of(l).ok());
    let hasher = RowHasher::new((0..schema.fields().len()).collect(), HashMode::Plain);
    let mut p = Profiler::new(schema.clone(), &origin, s.label.as_deref(), s.id.as_deref());
    let mut rows = ReferenceRows {
        features: FeatureMatrix {
            embedding_len: spec.embedding_length(&schema),
            ..FeatureMatrix::default()
        },
        names: spec.names.clone(),
        text_names: spec.text_names.clone(),
        labels: Vec::new(),
        digests: Vec::new(),
    };
    for b in &mut stream {
        let b = b?;
        // One digest per reference row serves both the profile's sample and the detectors' fit sample.
        let d = hasher.digest_batch(&b)?;
        p.add_batch_with_digests(&b, &d);
        rows.features.push_batch(&b, &spec);
        rows.digests.extend(d);
        match label_idx.and_then(|i| checks::as_utf8(b.column(i))) {
            Some(l) => rows.labels.extend(l.iter().map(|v| v.map(str::to_string))),
            None => rows.labels.extend(std::iter::repeat_n(None, b.num_rows())),
        }
    }
    if p.rows() == 0 {
        return Err(Error::ZeroRows { origin });
    }
    Ok((p.finish(Trust::Reference), rows))
}

struct DataPass {
    rows: usize,
    violations: Vec<Violation>,
    features: FeatureMatrix,
    feature_names: Vec<String>,
    labels: Vec<Option<u32>>,
    ids: Option<Vec<String>>,
    /// The id column's slices, in the data's own type.
    id_chunks: Vec<arrow::array::ArrayRef>,
    digests: Vec<RowDigest>,
    feature_keys: Vec<u128>,
    lineage: LineageState,
    drift: Vec<ColumnDrift>,
    /// The binned distributions behind `drift`, for the HTML report.
    drift_bins: Vec<crate::html::visuals::DriftBins>,
    /// Per-column counts for the OpenLineage metrics facet.
    metrics: Vec<crate::events::ColumnMetrics>,
    schema_hash: String,
    pred_probs: Option<ndarray::Array2<f32>>,
    /// The embedding column used, if any.
    embedding: Option<String>,
    /// Choices made on the way (an embedding found by itself).
    notes: Vec<String>,
    /// Columns rows are compared on to find duplicates.
    duplicate_columns: usize,
    /// Names of the text columns recorded for one-hot features.
    text_names: Vec<String>,
}

/// Drift counters for one column.
struct DriftCounter {
    column: usize,
    name: String,
    kind: &'static str,
    expected: Vec<f64>,
    counts: Vec<u64>,
    edges: Option<Vec<f64>>,
    values: HashMap<String, usize>,
}

fn drift_counters(contract: &Contract, schema: &arrow::datatypes::SchemaRef) -> Vec<DriftCounter> {
    let mut out = Vec::new();
    for c in &contract.columns {
        let Ok(idx) = schema.index_of(&c.name) else {
            continue;
        };
        let is_label = contract.label.as_ref() == Some(&c.name);
        if let Some(s) = &c.sketch {
            out.push(DriftCounter {
                column: idx,
                name: c.name.clone(),
                kind: "numeric",
                expected: s.proportions.clone(),
                counts: vec![0; s.proportions.len()],
                edges: Some(s.edges.clone()),
                values: HashMap::new(),
            });
        } else if let Some(cats) = &c.categories {
            out.push(DriftCounter {
                column: idx,
                name: c.name.clone(),
                kind: if is_label { "label" } else { "categorical" },
                expected: cats.iter().map(|c| c.proportion).collect(),
                counts: vec![0; cats.len()],
                edges: None,
                values: cats
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.value.clone(), i))
                    .collect(),
            });
        }
    }
    out
}

impl DriftCounter {
    /// The counts with their bins named, for the HTML report.
    fn into_bins(self) -> crate::html::visuals::DriftBins {
        let bins = match &self.edges {
            // Each bin by its upper edge (the last by its lower one), short enough to label a bar.
            Some(e) => (0..=e.len())
                .map(|i| match e.get(i) {
                    Some(&x) => format!("<{}", crate::html::short_num(x)),
                    None => format!(">={}", crate::html::short_num(e[i - 1])),
                })
                .collect(),
            None => {
                let mut names = vec![String::new(); self.counts.len()];
                for (v, &i) in &self.values {
                    names[i] = v.clone();
                }
                names
            }
        };
        crate::html::visuals::DriftBins {
            column: self.name,
            kind: self.kind.to_string(),
            bins,
            expected: self.expected,
            observed: self.counts,
        }
    }

    fn add(&mut self, batch: &RecordBatch) {
        let a = batch.column(self.column);
        match &self.edges {
            Some(edges) => {
                if let Some(v) = checks::as_f64(a) {
                    for x in v.iter().flatten().filter(|x| x.is_finite()) {
                        self.counts[edges.partition_point(|&e| e < x)] += 1;
                    }
                }
            }
            None => {
                if let Some(s) = checks::as_utf8(a) {
                    for v in s.iter().flatten() {
                        if let Some(&k) = self.values.get(v) {
                            self.counts[k] += 1;
                        }
                    }
                }
            }
        }
    }
}

fn data_pass(
    s: &mut Scanner,
    contract: &Contract,
    exclude: &[String],
    keys: &[String],
    mode: HashMode,
    reference_emb_len: Option<usize>,
) -> Result<DataPass, Error> {
    let mut stream = s.data.open()?;
    let schema = stream.schema();
    let origin = stream.origin().to_string();
    check_columns(&schema, &origin, s)?;
    let widen = s.allow_widening || s.data.types_from_text();
    let checker = ContractChecker::with_widening(contract, &schema, &origin, widen)?;
    let ex: Vec<&str> = exclude.iter().map(String::as_str).collect();
    let spec = FeatureSpec::resolve(
        &schema,
        &origin,
        s.features.as_deref(),
        s.embedding.as_deref(),
        &ex,
    )?;
    let label_idx = s.label.as_ref().and_then(|l| schema.index_of(l).ok());
    let id_idx = s.id.as_ref().and_then(|l| schema.index_of(l).ok());
    let pp_idx = s.pred_probs.as_ref().and_then(|l| schema.index_of(l).ok());
    let row_hasher = RowHasher::new((0..schema.fields().len()).collect(), mode);
    // Duplicates are rows equal on everything but label, id, predictions and key columns.
    let feature_cols: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| Some(i) != label_idx && Some(i) != id_idx && Some(i) != pp_idx)
        .filter(|&i| !keys.contains(schema.field(i).name()))
        // A numeric column without a single finite value where it was profiled says nothing about a row.
        .filter(|&i| {
            contract.column(schema.field(i).name()).is_none_or(|c| {
                !matches!(c.family.as_str(), "int" | "float") || c.observed.is_some()
            })
        })
        .collect();
    let duplicate_columns = feature_cols.len();
    let feature_hasher = RowHasher::new(feature_cols, HashMode::Plain);
    let classes = contract.classes().unwrap_or_default();
    let mut drift = if contract.inferred_from_data {
        Vec::new()
    } else {
        drift_counters(contract, &schema)
    };
    let bar = progress_bar(s.progress);
    let emb_name = spec.embedding.map(|i| schema.field(i).name().clone());
    let mut pass = DataPass {
        rows: 0,
        violations: Vec::new(),
        features: FeatureMatrix {
            embedding_len: spec.embedding_length(&schema).or(reference_emb_len),
            ..FeatureMatrix::default()
        },
        feature_names: spec.names.clone(),
        labels: Vec::new(),
        ids: id_idx.map(|_| Vec::new()),
        id_chunks: Vec::new(),
        digests: Vec::new(),
        feature_keys: Vec::new(),
        lineage: LineageState::default(),
        drift: Vec::new(),
        drift_bins: Vec::new(),
        metrics: Vec::new(),
        schema_hash: schema_hash(&schema),
        pred_probs: None,
        embedding: emb_name.clone(),
        notes: spec.notes.clone(),
        duplicate_columns,
        text_names: spec.text_names.clone(),
    };
    let mut probs: Vec<f32> = Vec::new();
    let mut metrics = crate::events::MetricsCollector::new(&schema);
    for batch in &mut stream {
        let batch = batch?;
        metrics.add(&batch);
        let start = pass.rows as u64;
        let (coerced, v) = checker.check_batch(&batch, start);
        pass.violations.extend(v);
        let d = row_hasher.digest_batch(&batch)?;
        pass.lineage.add(start, &d);
        pass.digests.extend_from_slice(&d);
        for f in feature_hasher.digest_batch(&batch)? {
            let mut k = [0u8; 16];
            k.copy_from_slice(&f[..16]);
            pass.feature_keys.push(u128::from_le_bytes(k));
        }
        let bad_before = pass.features.bad_embeddings.len();
        pass.features.push_batch(&coerced, &spec);
        if let (Some(e), Some(len)) = (&emb_name, pass.features.embedding_len) {
            for &(row, found, nonfinite) in &pass.features.bad_embeddings[bad_before..] {
                pass.violations.push(Violation {
                    row: row as u64,
                    column: e.clone(),
                    kind: ViolationKind::Embedding,
                    observed: if nonfinite {
                        "NaN or inf values".into()
                    } else {
                        format!("{found} values")
                    },
                    expected: format!("{len} finite values"),
                    score: 1.0,
                });
            }
        }
        match label_idx.and_then(|i| checks::as_utf8(coerced.column(i))) {
            Some(l) => pass.labels.extend(l.iter().map(|v| class_of(&classes, v))),
            None => pass
                .labels
                .extend(std::iter::repeat_n(None, batch.num_rows())),
        }
        if let (Some(i), Some(ids)) = (id_idx, pass.ids.as_mut()) {
            ids.extend(lineage::id_strings(batch.column(i))?);
            pass.id_chunks.push(batch.column(i).clone());
        }
        if let Some(i) = pp_idx {
            for row in crate::features::embedding_rows(batch.column(i)) {
                match row {
                    Some(r) if r.len() == classes.len() => probs.extend(r),
                    _ => probs.extend(std::iter::repeat_n(f32::NAN, classes.len())),
                }
            }
        }
        for dc in drift.iter_mut() {
            dc.add(&coerced);
        }
        pass.rows += batch.num_rows();
        if let Some(b) = &bar {
            b.set_position(pass.rows as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if pp_idx.is_some() && !classes.is_empty() {
        pass.pred_probs = ndarray::Array2::from_shape_vec((pass.rows, classes.len()), probs).ok();
    }
    pass.drift = drift
        .iter()
        .map(|d| ColumnDrift::compute(&d.name, d.kind, &d.expected, &d.counts, contract.rows))
        .collect();
    pass.drift_bins = drift.into_iter().map(DriftCounter::into_bins).collect();
    pass.metrics = metrics.finish();
    Ok(pass)
}

fn progress_bar(on: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !on || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} scanning: {human_pos} rows ({per_sec})")
    {
        b.set_style(style);
    }
    b.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(b)
}

impl ScanOutcome {
    /// The audit lines of this scan (see [`crate::events`]).
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        crate::events::audit_events(&self.report, &self.policy, std::time::SystemTime::now())
    }

    /// The OpenLineage run event of this scan (see [`crate::events`]).
    pub fn openlineage_event(&self) -> serde_json::Value {
        crate::events::openlineage_event(
            &self.report,
            &self.policy,
            &self.metrics,
            std::time::SystemTime::now(),
        )
    }

    /// The report as one self-contained HTML page (see [`crate::html`]).
    pub fn to_html(&self) -> String {
        crate::html::render(&crate::html::HtmlInput {
            report: &self.report,
            scores: &self.scores,
            violations: &self.violations,
            visuals: &self.visuals,
            policy: &self.policy,
        })
    }

    /// True unless the verdict is fail.
    pub fn passed(&self) -> bool {
        self.report.verdict != Verdict::Fail
    }

    /// Write the input split into kept and flagged rows (same schema as the input), both or neither. The data is
    /// read again (streams were spooled when the scan needed it; a consumed one-shot stream cannot be split).
    pub fn split(
        &mut self,
        clean: Option<&Path>,
        quarantine: Option<&Path>,
    ) -> Result<(u64, u64), Error> {
        let paths: Vec<(&str, &Path)> = [("clean", clean), ("quarantine", quarantine)]
            .into_iter()
            .filter_map(|(w, p)| p.map(|p| (w, p)))
            .collect();
        let set = crate::output::OutputSet::prepare(&paths)?;
        let counts = self.split_into(&set, clean, quarantine)?;
        set.commit()?;
        Ok(counts)
    }

    /// As [`ScanOutcome::split`], into files staged by `set` (committed by the caller with the other outputs).
    pub fn split_into(
        &mut self,
        set: &crate::output::OutputSet,
        clean: Option<&Path>,
        quarantine: Option<&Path>,
    ) -> Result<(u64, u64), Error> {
        let flagged = self.scores.flagged();
        let mut stream = self.data.open()?;
        let schema = stream.schema();
        let origin = stream.origin().to_string();
        let hasher = RowHasher::new((0..schema.fields().len()).collect(), self.hash_mode);
        let writer = |p: &Path| crate::output::TableWriter::into_file(set.file(p)?, p, &schema);
        let mut wc = clean.map(writer).transpose()?;
        let mut wq = quarantine.map(writer).transpose()?;
        let (mut nc, mut nq, mut offset) = (0u64, 0u64, 0usize);
        for b in &mut stream {
            let b = b?;
            let end = offset + b.num_rows();
            if end > flagged.len() {
                return Err(rows_differ(end, flagged.len()));
            }
            // The input may have changed since it was scanned: every row must be the one scored.
            same_rows(&hasher, &b, &self.digests[offset..end], offset, &origin)?;
            let (kb, qb) = split_batch(&b, &flagged[offset..end])?;
            offset = end;
            if let Some(w) = wc.as_mut() {
                nc += kb.num_rows() as u64;
                w.write(&kb)?;
            }
            if let Some(w) = wq.as_mut() {
                nq += qb.num_rows() as u64;
                w.write(&qb)?;
            }
        }
        if offset != flagged.len() {
            return Err(rows_differ(offset, flagged.len()));
        }
        if let Some(w) = wc {
            w.finish()?;
        }
        if let Some(w) = wq {
            w.finish()?;
        }
        Ok((nc, nq))
    }
}

/// Refuse a batch whose rows are not the ones scanned at `offset` (digests compared row by row).
fn same_rows(
    hasher: &RowHasher,
    b: &RecordBatch,
    scanned: &[RowDigest],
    offset: usize,
    origin: &str,
) -> Result<(), Error> {
    let d = hasher.digest_batch(b)?;
    if let Some(i) = d.iter().zip(scanned).position(|(a, b)| a != b) {
        return Err(LineageError::NotScannedData {
            origin: origin.to_string(),
            message: format!("row {} differs from the row scanned there", offset + i),
        }
        .into());
    }
    Ok(())
}

/// Rows of `batches` split by a flag mask: (kept, flagged). The batches must be the scanned data: each row's digest
/// (made with `mode`) must equal the scan's `digests` at its position. Used by the Python helpers.
pub fn split_batches(
    batches: &[RecordBatch],
    flagged: &[bool],
    digests: &[RowDigest],
    mode: HashMode,
    origin: &str,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), Error> {
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    if total != flagged.len() || total != digests.len() {
        return Err(LineageError::NotScannedData {
            origin: origin.to_string(),
            message: format!("it has {total} rows, the scan scored {}", flagged.len()),
        }
        .into());
    }
    let (mut keep, mut quar, mut off) = (Vec::new(), Vec::new(), 0usize);
    for b in batches {
        let hasher = RowHasher::new((0..b.num_columns()).collect(), mode);
        same_rows(&hasher, b, &digests[off..off + b.num_rows()], off, origin)?;
        let (k, q) = split_batch(b, &flagged[off..off + b.num_rows()])?;
        off += b.num_rows();
        keep.push(k);
        quar.push(q);
    }
    Ok((keep, quar))
}

/// One batch split by its rows' flags: (kept, flagged).
fn split_batch(b: &RecordBatch, flags: &[bool]) -> Result<(RecordBatch, RecordBatch), Error> {
    let e = |e: arrow::error::ArrowError| Error::Usage(e.to_string());
    let q = arrow::array::BooleanArray::from(flags.to_vec());
    let k = arrow::compute::not(&q).map_err(e)?;
    Ok((
        arrow::compute::filter_record_batch(b, &k).map_err(e)?,
        arrow::compute::filter_record_batch(b, &q).map_err(e)?,
    ))
}

fn rows_differ(seen: usize, scanned: usize) -> Error {
    Error::Usage(format!(
        "the data has {seen} rows but the scan scored {scanned}: pass the same data that was scanned"
    ))
}
