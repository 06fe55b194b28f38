//! The schema contract: what trusted data looks like, column by column (TFDV / Deequ style).
//!
//! A [`Contract`] is inferred by [`profile::Profiler`] from a trusted reference (or robustly from the data itself),
//! saved as versioned, hand-editable JSON, and enforced batch by batch by [`ContractChecker`].

pub mod checks;
pub mod drift;
pub mod profile;

use crate::error::ContractError;
use crate::lineage::encode::type_family;
use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

pub use drift::DriftSketch;

/// Current contract file version.
pub const CONTRACT_VERSION: u32 = 1;

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
    /// Smallest allowed value (numeric columns).
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest allowed value (numeric columns).
    #[serde(default)]
    pub max: Option<f64>,
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
        let c: Contract =
            serde_json::from_str(&text).map_err(|e| bad(format!("does not parse: {e}")))?;
        if c.contract_version != CONTRACT_VERSION {
            return Err(bad(format!(
                "contract_version {} is not supported (this poisonscan reads version {CONTRACT_VERSION})",
                c.contract_version
            )));
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
    /// Outside the allowed range.
    OutOfRange,
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
            ViolationKind::UnknownCategory => "unknown_category",
            ViolationKind::UnknownLabel => "unknown_label",
            ViolationKind::Length => "length",
            ViolationKind::WrongType => "wrong_type",
        }
    }
}

/// One per-row contract violation.
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
}

impl Violation {
    /// A sentence a person can read.
    pub fn reason(&self) -> String {
        match self.kind {
            ViolationKind::Null => format!("{} is null ({})", self.column, self.expected),
            ViolationKind::Nan => format!("{} is NaN ({})", self.column, self.expected),
            ViolationKind::Inf => {
                format!("{} = {} ({})", self.column, self.observed, self.expected)
            }
            ViolationKind::OutOfRange => format!(
                "{} = {} outside reference range {}",
                self.column, self.observed, self.expected
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
        })
    };
    if !c.nullable || col.is_label {
        for i in checks::null_rows(a.as_ref()) {
            push(
                out,
                i,
                ViolationKind::Null,
                "null".into(),
                "never null in reference".into(),
            );
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
                    "reference has no NaN".into(),
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
                    "reference has no infinite values".into(),
                );
            }
        }
        if !col.is_label && (c.min.is_some() || c.max.is_some()) {
            let range = format!(
                "[{}, {}]",
                c.min.map(fmt_num).unwrap_or_else(|| "-inf".into()),
                c.max.map(fmt_num).unwrap_or_else(|| "inf".into())
            );
            for i in checks::out_of_range(&v, c.min, c.max) {
                push(
                    out,
                    i,
                    ViolationKind::OutOfRange,
                    fmt_num(v.value(i)),
                    range.clone(),
                );
            }
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
