//! Profiling: infer a [`Contract`] from trusted data in one streaming pass with bounded memory.
//!
//! Counts (nulls, NaN, inf, negatives, min/max, distinct values up to a cap, string lengths) are exact; quantiles come
//! from a bottom-k sample of rows chosen by row digest (the k rows with the smallest digests), so every engine and
//! every partitioning samples the same rows, and partial profiles merge in any order.

use super::checks;
use super::drift::DriftSketch;
use super::{grade, Category, ColumnContract, Contract, CONTRACT_VERSION};
use crate::error::ContractError;
use crate::lineage::encode::{type_family, HashMode, RowDigest, RowHasher};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// Rows kept in the quantile sample.
pub const SAMPLE_ROWS: usize = 20_000;
/// Distinct values tracked per column before it counts as high-cardinality.
const MAX_CATEGORIES: usize = 64;
/// Distinct label values tracked.
const MAX_CLASSES: usize = 10_000;

/// Whether the profiled data is trusted (a clean reference) or the data under scan (robust inference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// A trusted reference: anything it holds is allowed.
    Reference,
    /// The data itself, possibly poisoned: rare values are not taken as allowed.
    Data,
}

#[derive(Debug, Clone)]
struct ColumnProfile {
    nulls: u64,
    nans: u64,
    infs: u64,
    finite: u64,
    negatives: u64,
    min: f64,
    max: f64,
    numeric: bool,
    distinct: Option<BTreeMap<String, u64>>,
    len_min: u64,
    len_max: u64,
    strings: u64,
    /// Hashes of the values seen, while the column may still be a key (integer or string, values all distinct);
    /// dropped at the first repeat beyond KEY_REPEATS.
    keys: Option<HashSet<u64>>,
    repeats: u64,
    non_null: u64,
}

/// A key column may repeat at most this share of its values (an attacker's copied rows keep their id).
const KEY_REPEATS: f64 = 0.01;
/// Fewest rows for a column to be recognised as a key.
const KEY_MIN_ROWS: u64 = 20;

impl ColumnProfile {
    fn new(track_distinct: bool) -> Self {
        ColumnProfile {
            nulls: 0,
            nans: 0,
            infs: 0,
            finite: 0,
            negatives: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            numeric: false,
            distinct: track_distinct.then(BTreeMap::new),
            len_min: u64::MAX,
            len_max: 0,
            strings: 0,
            keys: None,
            repeats: 0,
            non_null: 0,
        }
    }

    /// Count one batch's values towards the key test.
    fn add_keys(&mut self, a: &ArrayRef) {
        let Some(set) = self.keys.as_mut() else {
            return;
        };
        let mut add = |h: u64| {
            if !set.insert(h) {
                self.repeats += 1;
            }
        };
        if a.data_type().is_integer() {
            if let Ok(v) = arrow::compute::cast(a, &DataType::Int64) {
                let v = v.as_primitive::<arrow::datatypes::Int64Type>();
                v.iter().flatten().for_each(|x| add(x as u64));
            }
        } else if let Some(s) = checks::as_utf8(a) {
            for v in s.iter().flatten() {
                let d = blake3::hash(v.as_bytes());
                let mut k = [0u8; 8];
                k.copy_from_slice(&d.as_bytes()[..8]);
                add(u64::from_le_bytes(k));
            }
        }
        self.non_null += (a.len() - a.null_count()) as u64;
        if self.non_null >= 100 && self.repeats as f64 > KEY_REPEATS * self.non_null as f64 {
            self.keys = None;
        }
    }

    fn merge(&mut self, o: ColumnProfile, cap: usize) {
        self.nulls += o.nulls;
        self.nans += o.nans;
        self.infs += o.infs;
        self.finite += o.finite;
        self.negatives += o.negatives;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.numeric |= o.numeric;
        self.len_min = self.len_min.min(o.len_min);
        self.len_max = self.len_max.max(o.len_max);
        self.strings += o.strings;
        self.non_null += o.non_null;
        self.repeats += o.repeats;
        self.keys = match (self.keys.take(), o.keys) {
            (Some(mut a), Some(b)) => {
                for h in b {
                    if !a.insert(h) {
                        self.repeats += 1;
                    }
                }
                (self.repeats as f64 <= KEY_REPEATS * self.non_null as f64).then_some(a)
            }
            _ => None,
        };
        self.distinct = match (self.distinct.take(), o.distinct) {
            (Some(mut a), Some(b)) => {
                for (k, v) in b {
                    *a.entry(k).or_default() += v;
                }
                (a.len() <= cap).then_some(a)
            }
            _ => None,
        };
    }
}

/// Bottom-k sample of rows by digest prefix, holding the numeric values of each sampled row.
#[derive(Debug, Clone, Default)]
struct RowSample {
    heap: BinaryHeap<u64>,
    values: HashMap<u64, Vec<f64>>,
}

impl RowSample {
    fn offer(&mut self, key: u64, values: impl FnOnce() -> Vec<f64>) {
        if self.heap.len() < SAMPLE_ROWS {
            if self.values.contains_key(&key) {
                return;
            }
            self.heap.push(key);
            self.values.insert(key, values());
        } else if let Some(&top) = self.heap.peek() {
            if key < top && !self.values.contains_key(&key) {
                self.heap.pop();
                self.values.remove(&top);
                self.heap.push(key);
                self.values.insert(key, values());
            }
        }
    }
}

/// Accumulates a profile over batches; [`Profiler::finish`] turns it into a [`Contract`].
#[derive(Debug, Clone)]
pub struct Profiler {
    schema: SchemaRef,
    origin: String,
    label: Option<String>,
    id: Option<String>,
    rows: u64,
    columns: Vec<ColumnProfile>,
    numeric: Vec<usize>,
    sample: RowSample,
}

impl Profiler {
    /// A profiler for `schema`; `label` and `id` must be columns of it (checked by the caller).
    pub fn new(schema: SchemaRef, origin: &str, label: Option<&str>, id: Option<&str>) -> Profiler {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let fam = type_family(f.data_type());
                let is_label = Some(f.name().as_str()) == label;
                let is_id = Some(f.name().as_str()) == id;
                let mut p = ColumnProfile::new(is_label || matches!(fam, "string" | "bool"));
                if !is_label && !is_id && matches!(fam, "int" | "string") {
                    p.keys = Some(HashSet::new());
                }
                p
            })
            .collect();
        let numeric = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(type_family(f.data_type()), "int" | "float"))
            .map(|(i, _)| i)
            .collect();
        Profiler {
            schema,
            origin: origin.to_string(),
            label: label.map(str::to_string),
            id: id.map(str::to_string),
            rows: 0,
            columns,
            numeric,
            sample: RowSample::default(),
        }
    }

    /// Profile one batch (its rows are digested here to choose the quantile sample).
    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<(), ContractError> {
        let hasher = RowHasher::new((0..batch.num_columns()).collect(), HashMode::Plain);
        let digests = hasher.digest_batch(batch)?;
        self.add_batch_with_digests(batch, &digests);
        Ok(())
    }

    /// Profile one batch whose plain row digests the caller already has (one per row).
    pub fn add_batch_with_digests(&mut self, batch: &RecordBatch, digests: &[RowDigest]) {
        let n = batch.num_rows();
        let mut as_f64 = Vec::new();
        for (c, prof) in self.columns.iter_mut().enumerate() {
            let a = batch.column(c);
            prof.nulls += a.null_count() as u64;
            prof.add_keys(a);
            let is_label = Some(self.schema.field(c).name()) == self.label.as_ref();
            let cap = if is_label {
                MAX_CLASSES
            } else {
                MAX_CATEGORIES
            };
            if let Some(d) = prof.distinct.as_mut() {
                if let Some(s) = checks::as_utf8(a) {
                    for v in s.iter().flatten() {
                        *d.entry(v.to_string()).or_default() += 1;
                    }
                }
                if d.len() > cap {
                    prof.distinct = None;
                }
            }
            if matches!(type_family(a.data_type()), "string") {
                if let Some(s) = checks::as_utf8(a) {
                    for v in s.iter().flatten() {
                        let l = v.chars().count() as u64;
                        prof.len_min = prof.len_min.min(l);
                        prof.len_max = prof.len_max.max(l);
                        prof.strings += 1;
                    }
                }
            }
            if self.numeric.contains(&c) {
                if let Some(v) = checks::as_f64(a) {
                    prof.numeric = true;
                    for x in v.iter().flatten() {
                        if x.is_nan() {
                            prof.nans += 1;
                        } else if x.is_infinite() {
                            prof.infs += 1;
                        } else {
                            prof.finite += 1;
                            prof.negatives += (x < 0.0) as u64;
                            prof.min = prof.min.min(x);
                            prof.max = prof.max.max(x);
                        }
                    }
                    as_f64.push(v);
                }
            }
        }
        for (i, d) in digests.iter().enumerate().take(n) {
            let mut k = [0u8; 8];
            k.copy_from_slice(&d[..8]);
            let key = u64::from_le_bytes(k);
            self.sample.offer(key, || {
                as_f64
                    .iter()
                    .map(|v| if v.is_null(i) { f64::NAN } else { v.value(i) })
                    .collect()
            });
        }
        self.rows += n as u64;
    }

    /// Merge a profile of other rows of the same schema (any order).
    pub fn merge(&mut self, other: Profiler) {
        self.rows += other.rows;
        for (i, (a, b)) in self.columns.iter_mut().zip(other.columns).enumerate() {
            let is_label = Some(self.schema.field(i).name()) == self.label.as_ref();
            a.merge(
                b,
                if is_label {
                    MAX_CLASSES
                } else {
                    MAX_CATEGORIES
                },
            );
        }
        for key in other.sample.heap.into_iter() {
            if let Some(v) = other.sample.values.get(&key) {
                let v = v.clone();
                self.sample.offer(key, || v);
            }
        }
    }

    /// Rows profiled.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The contract.
    pub fn finish(&self, trust: Trust) -> Contract {
        let mut columns = Vec::new();
        for (c, prof) in self.columns.iter().enumerate() {
            let f = self.schema.field(c);
            let is_label = Some(f.name()) == self.label.as_ref();
            let is_id = Some(f.name()) == self.id.as_ref();
            let slot = self.numeric.iter().position(|&k| k == c);
            let mut sorted: Vec<f64> = match slot {
                Some(s) => self
                    .sample
                    .values
                    .values()
                    .map(|v| v[s])
                    .filter(|x| x.is_finite())
                    .collect(),
                None => Vec::new(),
            };
            sorted.sort_by(f64::total_cmp);
            columns.push(self.column_contract(f, prof, &sorted, is_label, is_id, trust));
        }
        Contract {
            contract_version: CONTRACT_VERSION,
            tool_version: crate::VERSION.to_string(),
            origin: self.origin.clone(),
            inferred_from_data: trust == Trust::Data,
            rows: self.rows,
            label: self.label.clone(),
            id: self.id.clone(),
            columns,
            calibration: None,
        }
    }

    fn column_contract(
        &self,
        f: &arrow::datatypes::Field,
        prof: &ColumnProfile,
        sorted: &[f64],
        is_label: bool,
        is_id: bool,
        trust: Trust,
    ) -> ColumnContract {
        let rows = self.rows.max(1) as f64;
        let nonfinite_rare = |count: u64, total: f64| match trust {
            Trust::Reference => count == 0,
            Trust::Data => (count as f64) <= NONFINITE_RARE_IN_DATA * total,
        };
        let family = type_family(f.data_type()).to_string();
        let values = (prof.finite + prof.nans + prof.infs) as f64;
        let numeric = prof.numeric && !is_label && !is_id && !sorted.is_empty();
        let integer = family == "int";
        let tails = numeric
            .then(|| match trust {
                Trust::Reference => grade::from_reference(sorted, integer),
                Trust::Data => grade::from_data(sorted, integer),
            })
            .flatten();
        // A hard lower bound of 0 only from a reference whose values reach 0 and never go below (counts, amounts: the
        // domain's edge is in the data), or without a reference from data whose bulk reaches down to 0 and stops there
        // (`grade::data_zero_edge`). Elsewhere a negative value is graded below the range like any other.
        let min = (numeric
            && match trust {
                Trust::Reference => prof.negatives == 0 && prof.min == 0.0,
                Trust::Data => grade::data_zero_edge(sorted, integer),
            })
        .then_some(0.0);
        let categories = prof
            .distinct
            .as_ref()
            .and_then(|d| category_set(d, is_label));
        let categories = categories.filter(|_| !is_id);
        let length = (family == "string" && categories.is_none() && prof.strings > 0 && !is_id)
            .then(|| [prof.len_min / 2, prof.len_max + prof.len_max / 2 + 1]);
        let key = is_key(f.name(), &family, prof);
        let sketch = if prof.numeric && !is_label && !is_id {
            DriftSketch::from_sorted(sorted)
        } else {
            None
        };
        ColumnContract {
            name: f.name().clone(),
            dtype: f.data_type().to_string(),
            family,
            // Without a reference a null is never impossible: rare ones are graded by rarity when checked.
            nullable: trust == Trust::Data || prof.nulls > 0,
            null_proportion: Some(prof.nulls as f64 / rows),
            // Read only when the contract comes from the data (a rare sign is graded then).
            negative_proportion: (numeric && trust == Trust::Data)
                .then_some(prof.negatives as f64 / rows),
            // NaN and inf are machine errors rather than rare values: without a reference they stay impossible in a
            // column where they are at most 1% of the values.
            allow_nan: !nonfinite_rare(prof.nans, values),
            allow_inf: !nonfinite_rare(prof.infs, values),
            min,
            max: None,
            range: tails.map(|t| t.range),
            flag_beyond: tails.map(|t| t.flag_beyond),
            log_flag_above: tails.and_then(|t| t.log_flag_above),
            observed: (prof.finite > 0).then_some([prof.min, prof.max]),
            categories,
            length,
            sketch,
            key,
        }
    }
}

/// Whether a column is a row key rather than a feature: (almost) every value distinct, no nulls, and either a
/// string, an integer column named like an id, or integers packed into a range not much wider than the row count
/// (0..n, 1000..1000+n): a measured integer whose values happen to be distinct spreads far wider.
fn is_key(name: &str, family: &str, prof: &ColumnProfile) -> bool {
    if prof.keys.is_none()
        || prof.nulls > 0
        || prof.non_null < KEY_MIN_ROWS
        || prof.repeats as f64 > KEY_REPEATS * prof.non_null as f64
    {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    let named = [
        "id", "index", "idx", "key", "uuid", "row", "rowid", "row_id",
    ]
    .contains(&lower.as_str())
        || lower.ends_with("_id")
        || lower.ends_with("_key");
    match family {
        "string" => true,
        "int" => named || (prof.max - prof.min + 1.0) <= 2.0 * prof.non_null as f64,
        _ => false,
    }
}

/// Without a reference, NaN or inf in at most this share of a column's values are impossible there.
const NONFINITE_RARE_IN_DATA: f64 = 0.01;
/// Estimated chance (Good–Turing: values seen once / values) that a new row holds a value the profile never saw,
/// above which a string column is an open set (names, ids, free text) rather than a category set.
const OPEN_SET_MISSING_MASS: f64 = 0.01;

/// The allowed values of a string/bool column or the label, or `None` for an open set. A column whose values are
/// mostly seen once is not a category set: an unseen value there is ordinary (Good, "The population frequencies of
/// species", Biometrika 1953). Without a reference every value seen is listed with its share; rare ones are graded
/// when checked (`contract::checker`).
fn category_set(d: &BTreeMap<String, u64>, is_label: bool) -> Option<Vec<Category>> {
    let total: u64 = d.values().sum();
    if total == 0 {
        return None;
    }
    let singletons = d.values().filter(|&&n| n == 1).count() as f64;
    if !is_label && singletons / total as f64 > OPEN_SET_MISSING_MASS {
        return None;
    }
    let keep: Vec<Category> = d
        .iter()
        .map(|(v, &n)| Category {
            value: v.clone(),
            proportion: n as f64 / total as f64,
        })
        .collect();
    (!keep.is_empty()).then_some(keep)
}

/// Profile a trusted reference source into a contract (one streaming pass; label and id must exist).
pub fn profile_source(
    src: &mut crate::source::Source,
    label: Option<&str>,
    id: Option<&str>,
) -> Result<Contract, crate::error::Error> {
    let mut stream = src.open()?;
    let schema = stream.schema();
    let origin = stream.origin().to_string();
    for (c, role) in [(label, "--label"), (id, "--id")] {
        if let Some(c) = c {
            crate::lineage::column_index(&schema, &origin, c, role)?;
        }
    }
    let mut p = Profiler::new(schema, &origin, label, id);
    for b in &mut stream {
        p.add_batch(&b?)?;
    }
    if p.rows() == 0 {
        return Err(crate::error::Error::ZeroRows { origin });
    }
    Ok(p.finish(Trust::Reference))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(xs: Vec<f64>, labels: Vec<&str>) -> RecordBatch {
        let n = xs.len();
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, false),
            Field::new("k", DataType::Int64, false),
            Field::new("label", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(xs)),
                Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
                Arc::new(StringArray::from(labels)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn reference_profile_infers_ranges_sets_and_non_negativity() {
        let xs: Vec<f64> = (0..1000).map(|i| i as f64 / 100.0).collect();
        let labels: Vec<&str> = (0..1000)
            .map(|i| if i % 4 == 0 { "b" } else { "a" })
            .collect();
        let b = batch(xs, labels);
        let mut p = Profiler::new(b.schema(), "t", Some("label"), None);
        p.add_batch(&b).unwrap();
        let c = p.finish(Trust::Reference);
        let x = c.column("x").unwrap();
        assert_eq!(x.min, Some(0.0), "never negative is a hard bound");
        assert_eq!(x.max, None, "profiling declares no hard upper bound");
        assert_eq!(
            x.range,
            Some([0.0, 9.99]),
            "the graded range is the reference's own"
        );
        let [below, above] = x.flag_beyond.unwrap();
        assert!(above > 0.0 && above < 10.0 && below > 0.0);
        assert!(!x.nullable && !x.allow_nan && !x.allow_inf);
        let k = c.column("k").unwrap();
        assert!(
            k.flag_beyond.unwrap()[1] >= grade::flag_multiplier(10),
            "integer resolution is 1"
        );
        assert_eq!(c.classes().unwrap(), vec!["a".to_string(), "b".to_string()]);
        let share_b = c.column("label").unwrap().categories.as_ref().unwrap()[1].proportion;
        assert!((share_b - 0.25).abs() < 1e-9);
    }

    #[test]
    fn split_profiles_merge_to_the_same_contract() {
        let xs: Vec<f64> = (0..3000).map(|i| ((i * 37) % 1000) as f64).collect();
        let labels: Vec<&str> = (0..3000)
            .map(|i| if i % 3 == 0 { "b" } else { "a" })
            .collect();
        let whole = batch(xs, labels);
        let mut p = Profiler::new(whole.schema(), "t", Some("label"), None);
        p.add_batch(&whole).unwrap();
        let mut parts: Vec<Profiler> = [(0, 1000), (1000, 1500), (2500, 500)]
            .iter()
            .map(|&(o, l)| {
                let mut q = Profiler::new(whole.schema(), "t", Some("label"), None);
                q.add_batch(&whole.slice(o, l)).unwrap();
                q
            })
            .collect();
        let mut acc = parts.pop().unwrap();
        for q in parts {
            acc.merge(q);
        }
        assert_eq!(acc.finish(Trust::Reference), p.finish(Trust::Reference));
    }

    #[test]
    fn data_trust_grades_rare_labels_instead_of_refusing_them() {
        let xs: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let labels: Vec<&str> = (0..1000).map(|i| if i < 2 { "zz" } else { "a" }).collect();
        let b = batch(xs, labels);
        let mut p = Profiler::new(b.schema(), "t", Some("label"), None);
        p.add_batch(&b).unwrap();
        let c = p.finish(Trust::Data);
        assert_eq!(c.classes().unwrap().len(), 2);
        let checker = crate::contract::ContractChecker::new(&c, &b.schema(), "t").unwrap();
        let (_, found) = checker.check_batch(&b, 0);
        let rare: Vec<_> = found.iter().filter(|v| v.column == "label").collect();
        assert_eq!(rare.len(), 2, "{found:?}");
        // Seen twice in 1,000 rows: unusual, r = max(0.05% of 1000, 1) / 2 = 0.5, r / (1 + r) = 1/3, below the flag
        // line: 0.25 + (1/3) / 2 = 5/12 (not flagged).
        assert!(rare
            .iter()
            .all(|v| !v.impossible() && (v.score - 5.0 / 12.0).abs() < 1e-6));
        assert!(rare[0].reason().contains("is rare: 2 of 1000 rows (0.20%)"));
    }

    #[test]
    fn open_string_sets_are_not_categories() {
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false)]));
        let names: Vec<String> = (0..500)
            .map(|i| format!("n{}", i % 40 + (i / 450) * 1000 + i / 460))
            .collect();
        let b = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(names))]).unwrap();
        let mut p = Profiler::new(b.schema(), "t", None, None);
        p.add_batch(&b).unwrap();
        assert!(p
            .finish(Trust::Reference)
            .column("name")
            .unwrap()
            .categories
            .is_none());
        let few: Vec<&str> = (0..500).map(|i| ["x", "y", "z"][i % 3]).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false)]));
        let b = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(few))]).unwrap();
        let mut p = Profiler::new(b.schema(), "t", None, None);
        p.add_batch(&b).unwrap();
        assert_eq!(
            p.finish(Trust::Reference)
                .column("name")
                .unwrap()
                .categories
                .as_ref()
                .unwrap()
                .len(),
            3
        );
    }
}
