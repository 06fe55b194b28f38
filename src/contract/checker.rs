//! Enforcing a [`Contract`] on data batches: schema compatibility once, then per-row findings batch by batch.
//!
//! Each check is a small function over one column (`check_column`, `check_numeric_range`): impossible findings score
//! 1, unusual ones are graded by `contract::grade` (numbers beyond the reference's range) or by rarity (without a
//! reference).

use super::{checks, fmt_num, fmt_set, grade, ColumnContract, Contract, Violation, ViolationKind};
use crate::error::ContractError;
use crate::lineage::encode::type_family;
use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use std::collections::{HashMap, HashSet};

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
    /// The contract's categories as a set, and as the text findings show (built once, not per batch or row).
    allowed: Option<(HashSet<String>, String)>,
    /// Without a reference: the rare categories, their shares and their form when no common value of the column
    /// has it (see [`form`]), when rare values are not much of the column.
    rare: HashMap<String, (f64, Option<String>)>,
    /// Without a reference: whether nulls are part of the data's make-up (see [`TableNulls`]).
    table_nulls: TableNulls,
}

/// Without a reference, what a rare null of a column is judged against: the nulls of the whole table.
#[derive(Debug, Clone, PartialEq)]
enum TableNulls {
    /// No column has nulls in more than a rare few rows: the data is complete, and a null is as foreign to it as a
    /// NaN (to pandas the two are one), so a rare one is impossible, as a rare NaN is.
    Foreign,
    /// Some column (named, with its share of null rows, the largest) has nulls in more than a rare few rows: missing
    /// values are part of the data, and a rare null elsewhere is one more of them: unusual, graded, not flagged.
    Common(String, f64),
}

impl TableNulls {
    /// From the contract's null shares (its label, always non-null, aside).
    fn of(contract: &Contract) -> TableNulls {
        contract
            .columns
            .iter()
            .filter(|c| Some(&c.name) != contract.label.as_ref())
            .filter_map(|c| c.null_proportion.map(|p| (c, p)))
            .filter(|&(_, p)| p > 0.0 && !is_rare(p, contract.rows))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(TableNulls::Foreign, |(c, p)| {
                TableNulls::Common(c.name.clone(), p)
            })
    }
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
    /// Check the data schema against the contract: every contract column present with the contract's type family,
    /// no extra columns. Fails before any row is scored. Strict: see [`ContractChecker::with_widening`].
    pub fn new(
        contract: &Contract,
        schema: &SchemaRef,
        origin: &str,
    ) -> Result<ContractChecker, ContractError> {
        ContractChecker::with_widening(contract, schema, origin, false)
    }

    /// As [`ContractChecker::new`]; `widen` also accepts integer data in a float column of the contract (exact up to
    /// 2^53). Always accepted: text data in a numeric or boolean column (CSV: each value that does not parse is a
    /// wrong-type finding). Always refused: float data in an integer column, any change of the label's type, and
    /// numbers or booleans in a text column.
    pub fn with_widening(
        contract: &Contract,
        schema: &SchemaRef,
        origin: &str,
        widen: bool,
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
        let table_nulls = TableNulls::of(contract);
        for c in &contract.columns {
            let is_label = Some(&c.name) == contract.label.as_ref();
            let index = schema
                .index_of(&c.name)
                .map_err(|_| ContractError::MissingColumn {
                    origin: origin.to_string(),
                    column: c.name.clone(),
                    role: if is_label {
                        "label column of the contract".into()
                    } else {
                        "contract".into()
                    },
                    present: present(),
                })?;
            let dt = schema.field(index).data_type();
            let found = type_family(dt);
            let expected_dt = parse_dtype(&c.dtype).unwrap_or(DataType::Null);
            let text_to_value =
                found == "string" && matches!(c.family.as_str(), "int" | "float" | "bool");
            let compatible = found == c.family
                || (!is_label && text_to_value)
                || (!is_label && widen && found == "int" && c.family == "float");
            if !compatible {
                let hint = if found == "int" && c.family == "float" && !is_label {
                    " (integers in a float column are accepted with --allow-widening / allow_widening=True)"
                } else if is_label {
                    " (the label column's type must match: labels compared as text would pass a changed encoding)"
                } else {
                    ""
                };
                return Err(ContractError::TypeMismatch {
                    origin: origin.to_string(),
                    column: c.name.clone(),
                    expected: format!("{} ({}){hint}", c.dtype, c.family),
                    found: format!("{dt} ({found})"),
                });
            }
            let coercion = if found == c.family {
                Coercion::None
            } else {
                Coercion::Cast(family_type(&c.family, &expected_dt))
            };
            let from_data = contract.inferred_from_data;
            let allowed = c.categories.as_ref().map(|cats| {
                let set = cats.iter().map(|x| x.value.clone()).collect();
                (set, fmt_set(cats))
            });
            let mut rare: HashMap<String, (f64, Option<String>)> = HashMap::new();
            if let (true, Some(cats)) = (from_data, &c.categories) {
                // The forms of the column's common values: a rare value of another form ('??corrupt??' among
                // 'married' and 'single', 'N/A' among numbers-as-text) is not just a rare member of the set.
                let common: HashSet<String> = cats
                    .iter()
                    .filter(|x| !is_rare(x.proportion, contract.rows))
                    .map(|x| form(&x.value))
                    .collect();
                rare = cats
                    .iter()
                    .filter(|x| is_rare(x.proportion, contract.rows))
                    .map(|x| {
                        let f = form(&x.value);
                        let new_form = (!common.is_empty() && !common.contains(&f)).then_some(f);
                        (x.value.clone(), (x.proportion, new_form))
                    })
                    .collect();
                // When rare values make up much of the column (labels that are ids, codes seen once each), a rare
                // value is the ordinary case, not a finding (the Good-Turing argument of the profile's open sets).
                if rare.values().map(|v| v.0).sum::<f64>() > RARE_MASS_LIMIT {
                    rare.clear();
                }
            }
            columns.push(CheckedColumn {
                index,
                contract: c.clone(),
                coercion,
                is_label,
                from_data,
                profiled_rows: contract.rows,
                allowed,
                rare,
                table_nulls: table_nulls.clone(),
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
                never_in(col, ViolationKind::Null).into(),
            );
        }
    } else if let Some(share) = c
        .null_proportion
        .filter(|&p| col.from_data && is_rare(p, col.profiled_rows))
    {
        for i in checks::null_rows(a.as_ref()) {
            match &col.table_nulls {
                TableNulls::Foreign => push(
                    out,
                    i,
                    ViolationKind::Null,
                    "null".into(),
                    format!(
                        "almost never null in the data: {} of {} rows, and no column of the data has more than a \
                         rare few nulls, and no reference",
                        (share * col.profiled_rows as f64).round(),
                        col.profiled_rows
                    ),
                ),
                TableNulls::Common(other, p) => out.push(rare_finding(
                    c,
                    start + i as u64,
                    "null".into(),
                    share,
                    col.profiled_rows,
                    Rare::CommonNull(other, *p),
                )),
            }
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
                    never_in(col, ViolationKind::Nan).into(),
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
                    never_in(col, ViolationKind::Inf).into(),
                );
            }
        }
        if !col.is_label {
            check_numeric_range(c, col.from_data, col.profiled_rows, &v, start, out);
        }
    }
    if let Some((allowed, shown_set)) = &col.allowed {
        if let Some(s) = checks::as_utf8(a) {
            let kind = if col.is_label {
                ViolationKind::UnknownLabel
            } else {
                ViolationKind::UnknownCategory
            };
            for i in checks::not_in_set(&s, allowed) {
                push(out, i, kind, s.value(i).to_string(), shown_set.clone());
            }
            if !col.rare.is_empty() {
                for (i, v) in s.iter().enumerate() {
                    if let Some((p, new_form)) = v.and_then(|v| col.rare.get(v)) {
                        let shown = format!("'{}'", s.value(i));
                        out.push(rare_finding(
                            c,
                            start + i as u64,
                            shown,
                            *p,
                            col.profiled_rows,
                            match new_form {
                                Some(f) => Rare::Form(f),
                                None => Rare::Value,
                            },
                        ));
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

/// The expectation a null, NaN or inf finding broke, worded for where the contract came from.
fn never_in(col: &CheckedColumn, kind: ViolationKind) -> &'static str {
    match (col.from_data, kind) {
        (false, ViolationKind::Null) => "never null in reference",
        (false, ViolationKind::Nan) => "reference has no NaN",
        (false, _) => "reference has no infinite values",
        (true, ViolationKind::Null) => "almost never null in the data, and no reference",
        (true, ViolationKind::Nan) => "almost never NaN in the data, and no reference",
        (true, _) => "almost never infinite in the data, and no reference",
    }
}

/// Share of a column's rows above which its rare values together are ordinary and not graded.
const RARE_MASS_LIMIT: f64 = 0.05;
/// Share of the rows at or below which a null or a value is rare in data scanned without a reference.
const RARE_IN_DATA: f64 = 0.002;
/// Counts at or below which a null or a value is always rare, however few the rows.
const RARE_COUNT_IN_DATA: f64 = 3.0;
/// Share at which a rare null or value is flagged (score 0.5) without a reference; rarer ones score higher.
const FLAG_SHARE_IN_DATA: f64 = 0.0005;

/// Whether a value seen in `share` of `rows` rows is rare: at most 0.2% of them, or at most 3 rows.
fn is_rare(share: f64, rows: u64) -> bool {
    let count = share * rows as f64;
    count <= (RARE_IN_DATA * rows as f64).max(RARE_COUNT_IN_DATA) + 1e-9
}

/// Lowest score of a rare null, value or sign below the flag line without a reference; a value beyond the data's
/// range that is not flagged scores below it (see [`unflagged_excess_score`]).
const RARE_FLOOR: f32 = 0.25;

/// What is rare in a [`rare_finding`].
#[derive(Clone, Copy)]
enum Rare<'a> {
    /// The null or the value itself.
    Value,
    /// A rare category value whose form (given) no common value of the column has: graded as if seen once.
    Form(&'a str),
    /// Its sign: a negative number in a column whose other values are never negative.
    Negative,
    /// A null, in data where another column (given, with its share of null rows) has nulls in more than a rare few
    /// rows: graded by rarity but never flagged (see [`TableNulls`]).
    CommonNull(&'a str, f64),
}

/// A text value's form: each uppercase letter `A`, lowercase `a`, digit `9`, whitespace a space, any other character
/// itself, with runs collapsed (`'Married'` -> `Aa`, `'??corrupt??'` -> `?a?`, `'12-b'` -> `9-a`).
pub(crate) fn form(v: &str) -> String {
    let mut out = String::new();
    for ch in v.chars() {
        let c = if ch.is_uppercase() {
            'A'
        } else if ch.is_lowercase() {
            'a'
        } else if ch.is_numeric() {
            '9'
        } else if ch.is_whitespace() {
            ' '
        } else {
            ch
        };
        if !out.ends_with(c) {
            out.push(c);
        }
    }
    out
}

/// Without a reference a rare value or negative sign is not impossible: seen `k` times in `n` rows it is unusual,
/// graded by `r = max(0.05% of n, 1) / k`: flagged at `r >= 1` with the score `r / (1 + r)` (a value seen once is
/// always flagged), below that in `[RARE_FLOOR, 0.5)`. Such a finding is of a kind a reference would call impossible,
/// so below the flag line it ranks above a value that is merely beyond the data's range, which a reference would only
/// call unusual. A rare null is graded so only where nulls are common in another column ([`Rare::CommonNull`]), and
/// then never flagged; in data without common nulls it is impossible ([`TableNulls::Foreign`]).
fn rare_finding(
    c: &ColumnContract,
    row: u64,
    observed: String,
    share: f64,
    rows: u64,
    what: Rare<'_>,
) -> Violation {
    let k = (share * rows as f64).round().max(1.0);
    // A value of a form new to the column is graded as if seen once: its few copies are one malformation repeated.
    let graded_k = if matches!(what, Rare::Form(_)) {
        1.0
    } else {
        k
    };
    let r = (FLAG_SHARE_IN_DATA * rows as f64).max(1.0) / graded_k;
    let score = crate::detect::ratio_score(r);
    let score = if matches!(what, Rare::CommonNull(..)) {
        // Rarer still ranks higher, in [RARE_FLOOR, 0.5): one more missing value is not a flag.
        RARE_FLOOR + (0.5 - RARE_FLOOR) * score
    } else if score >= 0.5 {
        score
    } else {
        RARE_FLOOR + (0.5 - RARE_FLOOR) * 2.0 * score
    };
    let pct = 100.0 * share;
    let expected = match what {
        Rare::Value => format!(
            "is rare: {k} of {rows} rows ({pct:.2}%), and no reference says it is allowed"
        ),
        Rare::Form(f) => format!(
            "is rare: {k} of {rows} rows ({pct:.2}%), of a form ('{f}') that no common value of the column has, and \
             no reference says it is allowed"
        ),
        Rare::Negative => format!(
            "is negative, and negatives are rare in the column: {k} of {rows} rows ({pct:.2}%), and no reference \
             says they are allowed"
        ),
        Rare::CommonNull(other, p) => format!(
            "is rare: {k} of {rows} rows ({pct:.2}%), but nulls are part of the data ({other} is null in {:.2}% of \
             the rows), and no reference says it is allowed",
            100.0 * p
        ),
    };
    Violation {
        row,
        column: c.name.clone(),
        kind: ViolationKind::Unusual,
        observed,
        expected,
        score,
    }
}

/// Score of a value `e` flag distances beyond the range: `e / (1 + e)`; without a reference, below the flag line
/// (`e < 1`) it is halved to `[0, 0.25)`, under the rare nulls, values and signs (see [`rare_finding`]).
fn unflagged_excess_score(e: f64, from_data: bool) -> f32 {
    let s = grade::score(e);
    if from_data && s < 0.5 {
        s * (RARE_FLOOR / 0.5)
    } else {
        s
    }
}

/// Hard bounds (impossible) and the graded reference range (unusual) of one numeric column.
fn check_numeric_range(
    c: &ColumnContract,
    from_data: bool,
    profiled_rows: u64,
    v: &Float64Array,
    start: u64,
    out: &mut Vec<Violation>,
) {
    // Without a reference, a negative number where the bulk (the range) is never negative and negatives are rare.
    let rare_negative = c.negative_proportion.filter(|&p| {
        from_data
            && p > 0.0
            && is_rare(p, profiled_rows)
            && c.min.is_none()
            && c.range.is_some_and(|r| r[0] >= 0.0)
    });
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
            let (kind, expected) = if x < 0.0 && c.min == Some(0.0) {
                let whence = if from_data {
                    "in the data (its values reach down to 0 and stop there), and no reference"
                } else {
                    "in the reference"
                };
                (ViolationKind::Negative, whence.to_string())
            } else {
                (ViolationKind::OutOfRange, bounds.clone())
            };
            out.push(Violation {
                row,
                column: c.name.clone(),
                kind,
                observed: fmt_num(x),
                expected,
                score: 1.0,
            });
            continue;
        }
        if let (Some(share), true) = (rare_negative, x < 0.0) {
            out.push(rare_finding(
                c,
                row,
                fmt_sig(x),
                share,
                profiled_rows,
                Rare::Negative,
            ));
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
                    score: unflagged_excess_score(e, from_data),
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
