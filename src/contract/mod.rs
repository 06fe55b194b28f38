//! The schema contract: what trusted data looks like, column by column (TFDV / Deequ style).
//!
//! A [`Contract`] is inferred by [`profile::Profiler`] from a trusted reference (or robustly from the data itself),
//! saved as versioned, hand-editable JSON, and enforced batch by batch by [`ContractChecker`].

mod checker;
pub mod checks;
pub mod drift;
pub mod grade;
pub mod profile;
#[cfg(test)]
mod tests;

use crate::error::ContractError;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use checker::ContractChecker;
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
    /// For a heavy upper tail, the flag distance above `range` on the `ln(1 + x - origin)` scale (origin 0, or the
    /// range's lower end when it is below 0).
    #[serde(default)]
    pub log_flag_above: Option<f64>,
    /// Share of the profiled rows that are null (used to grade rare nulls when the contract comes from the data).
    #[serde(default)]
    pub null_proportion: Option<f64>,
    /// Share of the profiled rows holding a negative number, in a contract inferred from the data (a rare sign is
    /// graded by rarity there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_proportion: Option<f64>,
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
    /// A row key (unique integers or strings, not named as the id): never a feature, left out of duplicate
    /// detection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key: bool,
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
        Contract::from_json(&text, path)
    }

    /// Parse and validate contract JSON (`path` names it in errors): version, types, bounds.
    pub fn from_json(text: &str, path: &Path) -> Result<Contract, ContractError> {
        let bad = |m: String| ContractError::InvalidFile {
            path: path.to_path_buf(),
            message: m,
        };
        let mut c: Contract =
            serde_json::from_str(text).map_err(|e| bad(format!("does not parse: {e}")))?;
        match c.contract_version {
            CONTRACT_VERSION => {}
            1 => c.upgrade_v1(),
            v => {
                return Err(bad(format!(
                    "contract_version {v} is not supported (this poisonscan reads versions 1 and {CONTRACT_VERSION})"
                )))
            }
        }
        let mut names = std::collections::HashSet::new();
        for col in &c.columns {
            if !names.insert(col.name.as_str()) {
                return Err(bad(format!("column '{}' is listed twice", col.name)));
            }
            match col.dtype.parse::<arrow::datatypes::DataType>() {
                Ok(dt) if crate::lineage::encode::type_family(&dt) == col.family => {}
                Ok(dt) => {
                    return Err(bad(format!(
                        "column '{}': dtype {} is of family {}, not the family \"{}\" written beside it",
                        col.name,
                        col.dtype,
                        crate::lineage::encode::type_family(&dt),
                        col.family
                    )))
                }
                Err(_) => {
                    return Err(bad(format!(
                        "column '{}': dtype \"{}\" is not an Arrow data type (e.g. Int64, Float64, Utf8, Boolean)",
                        col.name, col.dtype
                    )))
                }
            }
            if let (Some(lo), Some(hi)) = (col.min, col.max) {
                if lo > hi {
                    return Err(bad(format!("column '{}': min {lo} > max {hi}", col.name)));
                }
            }
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
    /// An embedding of another length than the others, or with NaN/inf values.
    Embedding,
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
            ViolationKind::Embedding => "embedding",
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
                "{} = {} is negative, and the column is never negative {}: impossible",
                self.column, self.observed, self.expected
            ),
            ViolationKind::Unusual => format!(
                "{} = {} {}: unusual, {}",
                self.column,
                self.observed,
                self.expected,
                if self.flags() {
                    "flagged"
                } else {
                    "not flagged"
                }
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
            ViolationKind::Embedding => format!(
                "embedding {} has {}, expected {}: impossible",
                self.column, self.observed, self.expected
            ),
        }
    }
}

pub(crate) fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

pub(crate) fn fmt_set(c: &[Category]) -> String {
    let mut s: Vec<&str> = c.iter().map(|c| c.value.as_str()).take(12).collect();
    if c.len() > 12 {
        s.push("...");
    }
    format!("{{{}}}", s.join(", "))
}
