//! Scan results: per-row scores with reasons, the versioned JSON report, and the verdict.

use crate::contract::drift::ColumnDrift;
use crate::detect::FLAG_AT;
use crate::error::Error;
use crate::policy::Status;
use arrow::array::{ArrayRef, BooleanArray, Float32Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Version of the report JSON layout.
pub const REPORT_VERSION: u32 = 3;

/// Pass, warn or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Safe to train on under the policy.
    Pass,
    /// Passed, with warnings.
    Warn,
    /// Policy violated: poisoning or corruption found.
    Fail,
}

impl Verdict {
    /// CLI exit code: 0 pass/warn, 1 fail.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass | Verdict::Warn => 0,
            Verdict::Fail => 1,
        }
    }
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// Whether a check analysed the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Run {
    /// The check analysed the data.
    Ran,
    /// The check could not run on this data (the reason says why); the scan is incomplete.
    Skipped,
    /// The check was switched off on purpose (`--no-outliers`, ...), or has nothing to compare with.
    Disabled,
}

impl Run {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Run::Ran => "ran",
            Run::Skipped => "skipped",
            Run::Disabled => "disabled",
        }
    }
}

/// Outcome of one policy check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// Rows (or columns, for drift) counted.
    pub count: u64,
    /// Count over its total.
    pub fraction: f64,
    /// Status under the policy (a skipped core detector is at least `warn`, a required check not run `fail`).
    pub status: Status,
    /// Whether the check analysed the data.
    pub run: Run,
    /// Why the check did not run, or which policy rule set its status when it was not a threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CheckResult {
    /// A check's result: `count` of `total` (the fraction of an empty total is 0).
    pub fn counted(
        count: u64,
        total: u64,
        status: Status,
        run: Run,
        reason: Option<String>,
    ) -> Self {
        CheckResult {
            count,
            fraction: count as f64 / total.max(1) as f64,
            status,
            run,
            reason,
        }
    }
}

/// A flagged row in the report's sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleRow {
    /// 0-based input row.
    pub row: u64,
    /// Id value when an id column was given.
    pub id: Option<String>,
    /// Overall score.
    pub score: f32,
    /// Reasons.
    pub reasons: String,
}

/// Baseline comparison counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineSummary {
    /// Manifest compared against.
    pub manifest: String,
    /// Rows not in the manifest.
    pub added: u64,
    /// Manifest rows not in the data.
    pub removed: u64,
    /// Rows with the same id and other content.
    pub changed: u64,
    /// Rows matched by id (else by content).
    pub by_id: bool,
    /// The data's columns or types differ from the manifest's (every row's digest changes with them).
    #[serde(default)]
    pub schema_changed: bool,
}

/// The versioned JSON report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Layout version.
    pub report_version: u32,
    /// `poisonscan`.
    pub tool: String,
    /// Tool version.
    pub tool_version: String,
    /// Inputs and options.
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Where the contract came from: `reference`, `contract file` or `inferred from data`.
    pub contract_source: String,
    /// blake3 of the contract.
    pub contract_hash: String,
    /// blake3 of the policy.
    pub policy_hash: String,
    /// Rows scanned.
    pub rows: u64,
    /// Rows flagged by any check.
    pub flagged: u64,
    /// Policy checks.
    pub checks: BTreeMap<String, CheckResult>,
    /// Contract violations by kind.
    pub violations: BTreeMap<String, u64>,
    /// Drift per column and for the label distribution.
    pub drift: Vec<ColumnDrift>,
    /// Fingerprint of the data scanned.
    pub fingerprint: crate::lineage::Fingerprint,
    /// Schema hash.
    pub schema_hash: String,
    /// Comparison with `--baseline`.
    pub baseline: Option<BaselineSummary>,
    /// Duplicate counts.
    pub duplicates: crate::detect::duplicate::DuplicateSummary,
    /// Detector calibration and fit summaries.
    pub detectors: BTreeMap<String, serde_json::Value>,
    /// What the scan decided on its own and the user should know: columns left out of the features and why, a
    /// column that looks like the label, embedding columns used.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Id values that occur more than once (when an id column was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_ids: Option<crate::lineage::DuplicateIds>,
    /// Up to 100 flagged rows, highest score first.
    pub sample: Vec<SampleRow>,
    /// Milliseconds per stage.
    pub timings_ms: BTreeMap<String, u64>,
    /// The verdict.
    pub verdict: Verdict,
    /// One-line summary (also the CLI's last stdout line).
    pub summary: String,
}

impl Report {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Write the JSON atomically.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        crate::output::write_text_atomically(path, &self.to_json())
    }
}

/// Per-row scores: one entry per input row, in input order.
#[derive(Debug, Clone, Default)]
pub struct RowScores {
    /// Id values (when an id column was given), as text for reasons and reports.
    pub ids: Option<Vec<String>>,
    /// The id column in the data's own Arrow type, so that the scores join back to the data without casts; when
    /// absent the scores carry `ids` as text.
    pub id_values: Option<ArrayRef>,
    /// Id column name.
    pub id_column: Option<String>,
    /// Score per check, by check name (`contract`, `duplicate`, `outlier`, `label`, `backdoor`, `baseline`).
    pub checks: BTreeMap<String, Vec<f32>>,
    /// Reasons per row, `; `-separated (empty when none).
    pub reasons: Vec<String>,
    /// Status against the baseline, when one was given.
    pub baseline_status: Option<Vec<&'static str>>,
}

impl RowScores {
    /// Rows.
    pub fn len(&self) -> usize {
        self.reasons.len()
    }
    /// True for zero rows.
    pub fn is_empty(&self) -> bool {
        self.reasons.is_empty()
    }
    /// Overall score per row: the maximum over checks.
    pub fn overall(&self) -> Vec<f32> {
        let mut s = vec![0f32; self.len()];
        for v in self.checks.values() {
            for (a, b) in s.iter_mut().zip(v) {
                *a = a.max(*b);
            }
        }
        s
    }
    /// Flag per row: overall score >= 0.5.
    pub fn flagged(&self) -> Vec<bool> {
        self.overall().into_iter().map(|s| s >= FLAG_AT).collect()
    }

    /// Schema of the scores table.
    pub fn schema(&self) -> SchemaRef {
        self.schema_with(None)
    }

    /// Schema of the scores table; `id_nullable` fixes the id column's nullability (else: nullable when it holds a
    /// null), so that the scores of several chunks share one schema.
    pub fn schema_with(&self, id_nullable: Option<bool>) -> SchemaRef {
        let mut f = vec![Field::new("row", DataType::UInt64, false)];
        if let Some(c) = &self.id_column {
            f.push(match &self.id_values {
                Some(a) => Field::new(
                    c,
                    a.data_type().clone(),
                    id_nullable.unwrap_or(a.null_count() > 0),
                ),
                None => Field::new(c, DataType::Utf8, false),
            });
        }
        f.push(Field::new("score", DataType::Float32, false));
        f.push(Field::new("flagged", DataType::Boolean, false));
        for k in self.checks.keys() {
            f.push(Field::new(format!("score_{k}"), DataType::Float32, false));
        }
        if self.baseline_status.is_some() {
            f.push(Field::new("baseline_status", DataType::Utf8, false));
        }
        f.push(Field::new("reasons", DataType::Utf8, false));
        Arc::new(Schema::new(f))
    }

    /// The scores as one Arrow batch (columns: row, id, score, flagged, `score_<check>`..., reasons).
    pub fn to_batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        self.to_batch_at(0, None)
    }

    /// The scores as one Arrow batch whose rows are numbered from `first_row` (a chunk's place in the data), with
    /// the schema of [`RowScores::schema_with`].
    pub fn to_batch_at(
        &self,
        first_row: u64,
        id_nullable: Option<bool>,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        let n = self.len() as u64;
        let overall = self.overall();
        let mut cols: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(
            first_row..first_row + n,
        ))];
        match (&self.id_column, &self.id_values, &self.ids) {
            (Some(_), Some(a), _) => cols.push(a.clone()),
            (Some(_), None, Some(ids)) => {
                cols.push(Arc::new(StringArray::from_iter_values(ids.iter())))
            }
            _ => {}
        }
        cols.push(Arc::new(Float32Array::from(overall.clone())));
        cols.push(Arc::new(BooleanArray::from(
            overall.iter().map(|&s| s >= FLAG_AT).collect::<Vec<_>>(),
        )));
        for v in self.checks.values() {
            cols.push(Arc::new(Float32Array::from(v.clone())));
        }
        if let Some(b) = &self.baseline_status {
            cols.push(Arc::new(StringArray::from_iter_values(b.iter())));
        }
        cols.push(Arc::new(StringArray::from_iter_values(self.reasons.iter())));
        RecordBatch::try_new(self.schema_with(id_nullable), cols)
    }

    /// Write the scores table (Parquet, or CSV / Arrow IPC by extension) atomically.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let batch = self.batch_for(path)?;
        let mut w = crate::output::TableWriter::create(path, &batch.schema())?;
        w.write(&batch)?;
        w.finish()
    }

    /// Write the scores table into `file`, staged for `path` by an [`crate::output::OutputSet`].
    pub fn write_to(&self, file: std::fs::File, path: &Path) -> Result<(), Error> {
        let batch = self.batch_for(path)?;
        let mut w = crate::output::TableWriter::into_file(file, path, &batch.schema())?;
        w.write(&batch)?;
        w.finish()
    }

    fn batch_for(&self, path: &Path) -> Result<RecordBatch, Error> {
        self.to_batch().map_err(|e| Error::Output {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}
