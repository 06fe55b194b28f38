//! The score stage's streaming part: one pass over the data checks every batch against the contract, hashes its
//! rows (lineage and duplicate keys), counts drift and metrics, and gathers the detectors' features. Memory: the
//! features, digests and labels of the rows (what the detectors need), not the batches.

use super::columns::{check_columns, class_of};
use super::Scanner;
use crate::contract::checks;
use crate::contract::drift::ColumnDrift;
use crate::contract::{Contract, ContractChecker, Violation, ViolationKind};
use crate::error::Error;
use crate::features::{FeatureMatrix, FeatureSpec};
use crate::lineage::encode::schema_hash;
use crate::lineage::{self, HashMode, LineageState, RowDigest, RowHasher};
use arrow::array::RecordBatch;
use std::collections::HashMap;

/// What the pass gathered.
pub(super) struct DataPass {
    pub(super) rows: usize,
    pub(super) violations: Vec<Violation>,
    pub(super) features: FeatureMatrix,
    pub(super) feature_names: Vec<String>,
    pub(super) labels: Vec<Option<u32>>,
    pub(super) ids: Option<Vec<String>>,
    /// The id column's slices, in the data's own type.
    pub(super) id_chunks: Vec<arrow::array::ArrayRef>,
    pub(super) digests: Vec<RowDigest>,
    pub(super) feature_keys: Vec<u128>,
    pub(super) lineage: LineageState,
    pub(super) drift: Vec<ColumnDrift>,
    /// The binned distributions behind `drift`, for the HTML report.
    pub(super) drift_bins: Vec<crate::html::visuals::DriftBins>,
    /// Per-column counts for the OpenLineage metrics facet.
    pub(super) metrics: Vec<crate::events::ColumnMetrics>,
    pub(super) schema_hash: String,
    pub(super) pred_probs: Option<ndarray::Array2<f32>>,
    /// The embedding column used, if any.
    pub(super) embedding: Option<String>,
    /// Choices made on the way (an embedding found by itself).
    pub(super) notes: Vec<String>,
    /// Columns rows are compared on to find duplicates.
    pub(super) duplicate_columns: usize,
    /// Names of the text columns recorded for one-hot features.
    pub(super) text_names: Vec<String>,
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

pub(super) fn data_pass(
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
        if s.whole_outputs {
            metrics.add(&batch);
        }
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

pub(super) fn progress_bar(on: bool) -> Option<indicatif::ProgressBar> {
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
