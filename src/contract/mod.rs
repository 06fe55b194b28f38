//! The schema contract: what trusted data looks like, column by column (TFDV / Deequ style).
//!
//! A [`Contract`] is inferred by [`profile::Profiler`] from a trusted reference (or robustly from the data itself),
//! saved as versioned, hand-editable JSON, and enforced batch by batch by [`ContractChecker`].

pub mod checks;
pub mod drift;
pub mod grade;
pub mod profile;

use crate::error::ContractError;
use crate::lineage::encode::type_family;
use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

pub use drift::DriftSketch;

/// Current contract file version (2: hard bounds apart from the graded reference range; version 1 files are read).
pub const CONTRACT_VERSION: u32 = 2;

/// What trusted data looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    /// File format version.
    pub contract_version: u32,
    /// poisonscan version that inferred it.
    pub tool_version: String,
    /// Where it was inferred from.
    pub origin: String,
    /// True when inferred from the scanned data itself (no trusted reference): ranges are robust guesses.
    pub inferred_from_data: bool,
    /// Rows profiled.
    pub rows: u64,
    /// Label column.
    pub label: Option<String>,
    /// Id column.
    pub id: Option<String>,
    /// One entry per column, in schema order.
    pub columns: Vec<ColumnContract>,
    /// Detector calibration measured on the trusted reference (so a scan with only the contract is calibrated).
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

/// Detector calibration carried by a contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Per class (contract label order): share of clean reference rows that are label-flip candidates.
    pub label_clean_rate: Vec<Option<f64>>,
}

/// Expectations for one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnContract {
    /// Column name.
    pub name: String,
    /// Arrow data type as written by the reference (e.g. `Float64`).
    pub dtype: String,
    /// Type family: int, float, bool, string, binary, date, timestamp, decimal, list.
    pub family: String,
    /// Nulls allowed.
    pub nullable: bool,
    /// NaN allowed (floats).
    #[serde(default)]
    pub allow_nan: bool,
    /// +-inf allowed (floats).
    #[serde(default)]
    pub allow_inf: bool,
    /// Hard lower bound (numeric columns): a value below is impossible. Profiling sets 0 for a column that is never
    /// negative in the reference; a hand-edited contract may declare any bound.
    #[serde(default)]
    pub min: Option<f64>,
    /// Hard upper bound (numeric columns): a value above is impossible. Only a hand-edited contract sets it.
    #[serde(default)]
    pub max: Option<f64>,
    /// The reference's range (numeric columns): a value beyond it is unusual, graded by how far out it is.
    #[serde(default)]
    pub range: Option<[f64; 2]>,
    /// Distance below and above `range` at which an unusual value is flagged (score 0.5), calibrated on the
    /// reference's tails (see `contract::grade`).
    #[serde(default)]
    pub flag_beyond: Option<[f64; 2]>,
    /// For a never-negative column, the flag distance above `range` on the `ln(1 + x)` scale (heavy tails).
    #[serde(default)]
    pub log_flag_above: Option<f64>,
    /// Share of the profiled rows that are null (used to grade rare nulls when the contract comes from the data).
    #[serde(default)]
    pub null_proportion: Option<f64>,
    /// Smallest and largest values seen when profiling.
    #[serde(default)]
    pub observed: Option<[f64; 2]>,
    /// Allowed values (low-cardinality string/bool columns and the label), with their reference proportions.
    #[serde(default)]
    pub categories: Option<Vec<Category>>,
    /// Allowed string length range in characters.
    #[serde(default)]
    pub length: Option<[u64; 2]>,
    /// Distribution sketch for drift (numeric columns).
    #[serde(default)]
    pub sketch: Option<DriftSketch>,
}

/// One allowed value and its share of the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    /// Value as text.
    pub value: String,
    /// Share of non-null reference rows.
    pub proportion: f64,
}

impl Contract {
    /// Read a contract JSON file.
    pub fn read(path: &Path) -> Result<Contract, ContractError> {
        let bad = |m: String| ContractError::InvalidFile {
            path: path.to_path_buf(),
            message: m,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let mut c: Contract =
            serde_json::from_str(&text).map_err(|e| bad(format!("does not parse: {e}")))?;
        match c.contract_version {
            CONTRACT_VERSION => {}
            1 => c.upgrade_v1(),
            v => {
                return Err(bad(format!(
                    "contract_version {v} is not supported (this poisonscan reads versions 1 and {CONTRACT_VERSION})"
                )))
            }
        }
        for col in &c.columns {
            if let Some([lo, hi]) = col.range {
                if lo > hi {
                    return Err(bad(format!(
                        "column '{}': range [{lo}, {hi}] is reversed",
                        col.name
                    )));
                }
            }
            if col
                .flag_beyond
                .is_some_and(|f| f.iter().any(|d| d.is_nan() || *d < 0.0))
            {
                return Err(bad(format!(
                    "column '{}': flag_beyond must hold two non-negative distances",
                    col.name
                )));
            }
        }
        for col in &c.columns {
            if let (Some(lo), Some(hi)) = (col.min, col.max) {
                if lo > hi {
                    return Err(bad(format!("column '{}': min {lo} > max {hi}", col.name)));
                }
            }
        }
        Ok(c)
    }

    /// A version 1 contract's `min`/`max` were a soft range already widened by a margin: they become the graded
    /// `range`, flagged a quarter of its width beyond; a lower bound of 0 stays a hard bound (never negative).
    fn upgrade_v1(&mut self) {
        for col in &mut self.columns {
            if let (Some(lo), Some(hi)) = (col.min, col.max) {
                let w = 0.25 * (hi - lo).max(f64::MIN_POSITIVE);
                col.range = Some([lo, hi]);
                col.flag_beyond = Some([w, w]);
                col.min = (lo == 0.0).then_some(0.0);
                col.max = None;
            }
        }
        self.contract_version = CONTRACT_VERSION;
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// blake3 of the canonical JSON (for reports).
    pub fn hash(&self) -> String {
        blake3::hash(serde_json::to_string(self).unwrap_or_default().as_bytes())
            .to_hex()
            .to_string()
    }

    /// The column contract by name.
    pub fn column(&self, name: &str) -> Option<&ColumnContract> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Label classes in the contract's order.
    pub fn classes(&self) -> Option<Vec<String>> {
        let l = self.label.as_ref()?;
        let c = self.column(l)?.categories.as_ref()?;
        Some(c.iter().map(|c| c.value.clone()).collect())
    }
}

/// Kinds of per-row contract violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Null where the reference has none.
    Null,
    /// NaN where the reference has none.
    Nan,
    /// +-inf where the reference has none.
    Inf,
    /// Outside a hard bound declared in the contract (impossible).
    OutOfRange,
    /// Negative in a column that is never negative (impossible).
    Negative,
    /// Beyond the reference's range: graded by how far, flagged past the calibrated distance.
    Unusual,
    /// Not one of the allowed values.
    UnknownCategory,
    /// Label not in the label set.
    UnknownLabel,
    /// String length outside the allowed range.
    Length,
    /// Value does not parse as the contract's type.
    WrongType,
}

impl ViolationKind {
    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::Null => "null",
            ViolationKind::Nan => "nan",
            ViolationKind::Inf => "inf",
            ViolationKind::OutOfRange => "out_of_range",
            ViolationKind::Negative => "negative",
            ViolationKind::Unusual => "unusual",
            ViolationKind::UnknownCategory => "unknown_category",
            ViolationKind::UnknownLabel => "unknown_label",
            ViolationKind::Length => "length",
            ViolationKind::WrongType => "wrong_type",
        }
    }
}

/// One per-row contract finding: impossible (score 1) or unusual (graded score).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// 0-based input row.
    pub row: u64,
    /// Column.
    pub column: String,
    /// What is wrong.
    pub kind: ViolationKind,
    /// Observed value as text.
    pub observed: String,
    /// What was expected.
    pub expected: String,
    /// Score in [0, 1]: 1 for impossible findings, graded for unusual ones (flagged at 0.5).
    #[serde(default = "one")]
    pub score: f32,
}

fn one() -> f32 {
    1.0
}

impl Violation {
    /// Impossible findings (wrong type, nulls, NaN, inf, negatives, hard bounds, unknown values) always count.
    pub fn impossible(&self) -> bool {
        self.kind != ViolationKind::Unusual
    }

    /// Whether the finding flags its row (impossible, or unusual at or past the flag distance).
    pub fn flags(&self) -> bool {
        self.score >= crate::detect::FLAG_AT
    }

    /// A sentence a person can read.
    pub fn reason(&self) -> String {
        match self.kind {
            ViolationKind::Null => format!("{} is null ({})", self.column, self.expected),
            ViolationKind::Nan => format!("{} is NaN ({})", self.column, self.expected),
            ViolationKind::Inf => {
                format!("{} = {} ({})", self.column, self.observed, self.expected)
            }
            ViolationKind::OutOfRange => format!(
                "{} = {} outside the contract's bounds {}: impossible",
                self.column, self.observed, self.expected
            ),
            ViolationKind::Negative => format!(
                "{} = {} is negative, and the column is never negative in the reference: impossible",
                self.column, self.observed
            ),
            ViolationKind::Unusual => format!(
                "{} = {} {}: unusual, {}",
                self.column,
                self.observed,
                self.expected,
                if self.flags() { "flagged" } else { "not flagged" }
            ),
            ViolationKind::UnknownCategory => format!(
                "{} = '{}' not among allowed values {}",
                self.column, self.observed, self.expected
            ),
            ViolationKind::UnknownLabel => format!(
                "{} = '{}' is not a known label {}",
                self.column, self.observed, self.expected
            ),
            ViolationKind::Length => format!(
                "{} has length {} outside {}",
                self.column, self.observed, self.expected
            ),
            ViolationKind::WrongType => format!(
                "{} = '{}' is not a valid {}",
                self.column, self.observed, self.expected
            ),
        }
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

fn fmt_set(c: &[Category]) -> String {
    let mut s: Vec<&str> = c.iter().map(|c| c.value.as_str()).take(12).collect();
    if c.len() > 12 {
        s.push("...");
    }
    format!("{{{}}}", s.join(", "))
}

/// The data type a contract family is read as.
fn family_type(family: &str, dtype: &DataType) -> DataType {
    match family {
        "int" => DataType::Int64,
        "float" => DataType::Float64,
        "bool" => DataType::Boolean,
        "string" => DataType::Utf8,
        _ => dtype.clone(),
    }
}

/// How a data column is turned into what the contract expects.
#[derive(Debug, Clone)]
enum Coercion {
    /// Same family: read as is.
    None,
    /// Parse or cast to the contract type; values that do not convert are wrong-type violations.
    Cast(DataType),
}

#[derive(Debug, Clone)]
struct CheckedColumn {
    index: usize,
    contract: ColumnContract,
    coercion: Coercion,
    is_label: bool,
    /// The contract was inferred from the data itself: rare nulls and values are unusual, graded by rarity.
    from_data: bool,
    /// Rows the contract was profiled on.
    profiled_rows: u64,
}

/// Enforces a [`Contract`] on the batches of one data schema.
#[derive(Debug, Clone)]
pub struct ContractChecker {
    columns: Vec<CheckedColumn>,
    schema: SchemaRef,
}

fn parse_dtype(s: &str) -> Option<DataType> {
    s.parse::<DataType>().ok()
}

impl ContractChecker {
    /// Check the data schema against the contract: every contract column present with a compatible type, no extra
    /// columns. Fails before any row is scored.
    pub fn new(
        contract: &Contract,
        schema: &SchemaRef,
        origin: &str,
    ) -> Result<ContractChecker, ContractError> {
        let present = || {
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for f in schema.fields() {
            if contract.column(f.name()).is_none() {
                return Err(ContractError::ExtraColumn {
                    origin: origin.to_string(),
                    column: f.name().clone(),
                    expected: contract
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let mut columns = Vec::new();
        for c in &contract.columns {
            let index = schema
                .index_of(&c.name)
                .map_err(|_| ContractError::MissingColumn {
                    origin: origin.to_string(),
                    column: c.name.clone(),
                    role: if Some(&c.name) == contract.label.as_ref() {
                        "label column of the contract".into()
                    } else {
                        "contract".into()
                    },
                    present: present(),
                })?;
            let dt = schema.field(index).data_type();
            let found = type_family(dt);
            let expected_dt = parse_dtype(&c.dtype).unwrap_or(DataType::Null);
            let compatible = found == c.family
                || matches!(
                    (found, c.family.as_str()),
                    ("int", "float")
                        | ("float", "int")
                        | ("string", "int")
                        | ("string", "float")
                        | ("string", "bool")
                )
                || (c.family == "string" && matches!(found, "int" | "bool"));
            if !compatible {
                return Err(ContractError::TypeMismatch {
                    origin: origin.to_string(),
                    column: c.name.clone(),
                    expected: c.dtype.clone(),
                    found: dt.to_string(),
                });
            }
            let coercion = if found == c.family {
                Coercion::None
            } else {
                Coercion::Cast(family_type(&c.family, &expected_dt))
            };
            columns.push(CheckedColumn {
                index,
                contract: c.clone(),
                coercion,
                is_label: Some(&c.name) == contract.label.as_ref(),
                from_data: contract.inferred_from_data,
                profiled_rows: contract.rows,
            });
        }
        Ok(ContractChecker {
            columns,
            schema: schema.clone(),
        })
    }

    /// Check one batch whose first row is input row `start`. Returns the batch with columns coerced to the
    /// contract's types (same schema order, coerced columns replaced) and the violations found.
    pub fn check_batch(&self, batch: &RecordBatch, start: u64) -> (RecordBatch, Vec<Violation>) {
        let mut out = Vec::new();
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        let mut fields: Vec<arrow::datatypes::FieldRef> =
            self.schema.fields().iter().cloned().collect();
        for col in &self.columns {
            let mut a = batch.column(col.index).clone();
            if let Coercion::Cast(to) = &col.coercion {
                if let Some((c, bad)) = checks::coerce(&a, to) {
                    for i in bad {
                        out.push(Violation {
                            row: start + i as u64,
                            column: col.contract.name.clone(),
                            kind: ViolationKind::WrongType,
                            observed: checks::show(a.as_ref(), i),
                            expected: format!(
                                "{} (contract type {})",
                                col.contract.family, col.contract.dtype
                            ),
                            score: 1.0,
                        });
                    }
                    a = c;
                    fields[col.index] = std::sync::Arc::new(
                        fields[col.index]
                            .as_ref()
                            .clone()
                            .with_data_type(to.clone())
                            .with_nullable(true),
                    );
                    arrays[col.index] = a.clone();
                }
            }
            check_column(col, &a, start, &mut out);
        }
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
        let coerced = RecordBatch::try_new(schema, arrays).unwrap_or_else(|_| batch.clone());
        (coerced, out)
    }
}

fn check_column(col: &CheckedColumn, a: &ArrayRef, start: u64, out: &mut Vec<Violation>) {
    let c = &col.contract;
    let push = |out: &mut Vec<Violation>,
                i: usize,
                kind: ViolationKind,
                observed: String,
                expected: String| {
        out.push(Violation {
            row: start + i as u64,
            column: c.name.clone(),
            kind,
            observed,
            expected,
            score: 1.0,
        })
    };
    if !c.nullable || col.is_label {
        for i in checks::null_rows(a.as_ref()) {
            push(
                out,
                i,
                ViolationKind::Null,
                "null".into(),
                never_in(col, "null").into(),
            );
        }
    } else if let Some(share) = c
        .null_proportion
        .filter(|&p| col.from_data && is_rare(p, col.profiled_rows))
    {
        for i in checks::null_rows(a.as_ref()) {
            out.push(rare_finding(
                c,
                start + i as u64,
                "null".into(),
                share,
                col.profiled_rows,
            ));
        }
    }
    if let Some(v) = checks::as_f64(a) {
        let (nan, inf) = checks::non_finite(&v);
        if !c.allow_nan {
            for i in nan {
                push(
                    out,
                    i,
                    ViolationKind::Nan,
                    "NaN".into(),
                    never_in(col, "NaN").into(),
                );
            }
        }
        if !c.allow_inf {
            for i in inf {
                push(
                    out,
                    i,
                    ViolationKind::Inf,
                    fmt_num(v.value(i)),
                    never_in(col, "infinite").into(),
                );
            }
        }
        if !col.is_label {
            check_numeric_range(c, col.from_data, &v, start, out);
        }
    }
    if let Some(cats) = &c.categories {
        if let Some(s) = checks::as_utf8(a) {
            let allowed: HashSet<&str> = cats.iter().map(|c| c.value.as_str()).collect();
            let kind = if col.is_label {
                ViolationKind::UnknownLabel
            } else {
                ViolationKind::UnknownCategory
            };
            for i in checks::not_in_set(&s, &allowed) {
                push(out, i, kind, s.value(i).to_string(), fmt_set(cats));
            }
            if col.from_data {
                let rare: std::collections::HashMap<&str, f64> = cats
                    .iter()
                    .filter(|c| is_rare(c.proportion, col.profiled_rows))
                    .map(|c| (c.value.as_str(), c.proportion))
                    .collect();
                if !rare.is_empty() {
                    for (i, v) in s.iter().enumerate() {
                        if let Some(&p) = v.and_then(|v| rare.get(v)) {
                            let shown = format!("'{}'", s.value(i));
                            out.push(rare_finding(
                                c,
                                start + i as u64,
                                shown,
                                p,
                                col.profiled_rows,
                            ));
                        }
                    }
                }
            }
        }
    }
    if let Some([lo, hi]) = c.length {
        if matches!(
            a.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            if let Some(s) = checks::as_utf8(a) {
                for i in checks::length_out_of_range(&s, lo, hi) {
                    push(
                        out,
                        i,
                        ViolationKind::Length,
                        s.value(i).chars().count().to_string(),
                        format!("[{lo}, {hi}]"),
                    );
                }
            }
        }
    }
}

/// The expectation a null, NaN or inf broke, worded for where the contract came from.
fn never_in(col: &CheckedColumn, what: &str) -> &'static str {
    match (col.from_data, what) {
        (false, "null") => "never null in reference",
        (false, "NaN") => "reference has no NaN",
        (false, _) => "reference has no infinite values",
        (true, "null") => "almost never null in the data, and no reference",
        (true, "NaN") => "almost never NaN in the data, and no reference",
        (true, _) => "almost never infinite in the data, and no reference",
    }
}

/// Share of the rows at or below which a null or a value is rare in data scanned without a reference.
pub const RARE_IN_DATA: f64 = 0.002;
/// Counts at or below which a null or a value is always rare, however few the rows.
pub const RARE_COUNT_IN_DATA: f64 = 3.0;
/// Share at which a rare null or value is flagged (score 0.5) without a reference; rarer ones score higher.
pub const FLAG_SHARE_IN_DATA: f64 = 0.0005;

/// Whether a value seen in `share` of `rows` rows is rare: at most 0.2% of them, or at most 3 rows.
pub fn is_rare(share: f64, rows: u64) -> bool {
    let count = share * rows as f64;
    count <= (RARE_IN_DATA * rows as f64).max(RARE_COUNT_IN_DATA) + 1e-9
}

/// Without a reference nothing the data holds can be called impossible: a null or value seen `k` times in `n` rows
/// is unusual, scored `r / (1 + r)` with `r = max(0.05% of n, 1) / k` (a value seen once is always flagged).
fn rare_finding(
    c: &ColumnContract,
    row: u64,
    observed: String,
    share: f64,
    rows: u64,
) -> Violation {
    let k = (share * rows as f64).round().max(1.0);
    let r = (FLAG_SHARE_IN_DATA * rows as f64).max(1.0) / k;
    Violation {
        row,
        column: c.name.clone(),
        kind: ViolationKind::Unusual,
        observed,
        expected: format!(
            "is rare: {k} of {rows} rows ({:.2}%), and no reference says it is allowed",
            100.0 * share
        ),
        score: crate::detect::ratio_score(r),
    }
}

/// Hard bounds (impossible) and the graded reference range (unusual) of one numeric column.
fn check_numeric_range(
    c: &ColumnContract,
    from_data: bool,
    v: &Float64Array,
    start: u64,
    out: &mut Vec<Violation>,
) {
    let hard = c.min.is_some() || c.max.is_some();
    let bounds = format!(
        "[{}, {}]",
        c.min.map(fmt_num).unwrap_or_else(|| "-inf".into()),
        c.max.map(fmt_num).unwrap_or_else(|| "inf".into())
    );
    let lo = c.min.unwrap_or(f64::NEG_INFINITY);
    let hi = c.max.unwrap_or(f64::INFINITY);
    for (i, x) in v.iter().enumerate() {
        let Some(x) = x.filter(|x| x.is_finite()) else {
            continue;
        };
        let row = start + i as u64;
        if hard && (x < lo || x > hi) {
            let kind = if x < 0.0 && c.min == Some(0.0) {
                ViolationKind::Negative
            } else {
                ViolationKind::OutOfRange
            };
            out.push(Violation {
                row,
                column: c.name.clone(),
                kind,
                observed: fmt_num(x),
                expected: bounds.clone(),
                score: 1.0,
            });
            continue;
        }
        if let (Some(range), Some(fb)) = (c.range, c.flag_beyond) {
            let e = grade::excess(range, fb, c.log_flag_above, x);
            if e > 0.0 {
                out.push(Violation {
                    row,
                    column: c.name.clone(),
                    kind: ViolationKind::Unusual,
                    observed: fmt_sig(x),
                    expected: describe_excess(x, range, fb, e, from_data),
                    score: grade::score(e),
                });
            }
        }
    }
}

/// "is far above the reference maximum 16 (8984 beyond, 898.40x the distance 10 at which the column is flagged)".
fn describe_excess(x: f64, range: [f64; 2], fb: [f64; 2], e: f64, from_data: bool) -> String {
    let above = x > range[1];
    let (edge, dist, at) = match (above, from_data) {
        (true, false) => ("the reference maximum", x - range[1], fb[1]),
        (false, false) => ("the reference minimum", range[0] - x, fb[0]),
        (true, true) => ("the data's 99.5th percentile", x - range[1], fb[1]),
        (false, true) => ("the data's 0.5th percentile", range[0] - x, fb[0]),
    };
    let how = match (e >= 1.0, e < 0.1) {
        (true, _) => "far",
        (false, true) => "just",
        _ => "",
    };
    let dir = if above { "above" } else { "below" };
    let how = if how.is_empty() {
        dir.to_string()
    } else {
        format!("{how} {dir}")
    };
    format!(
        "is {how} {edge} {} ({} beyond, {:.2}x the distance {} at which the column is flagged)",
        fmt_sig(if above { range[1] } else { range[0] }),
        fmt_sig(dist),
        e,
        fmt_sig(at)
    )
}

/// A number with about five significant digits, for reasons.
fn fmt_sig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return fmt_num(x);
    }
    let digits = (5 - x.abs().log10().floor() as i32 - 1).clamp(0, 12) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}
