//! Dense f32 feature matrices for the detectors.
//!
//! Numeric columns (all but label, id and key columns, or a chosen list) and an optional embedding column
//! (`FixedSizeList<float>` or `List<float>`, found by itself when no features are named) are flattened into one
//! row-major matrix. A missing cell (null, NaN, infinite) is stored as NaN and imputed with the column's centre when
//! the matrix is standardized, so the row is still analysed on its other columns; a row with more than half of its cells missing is left out of the detectors. A column that is missing on
//! more than half of the rows it is fitted on is left out of the features (with a note in the report).

use crate::contract::checks;
use crate::error::ContractError;
use crate::lineage::encode::type_family;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use ndarray::Array2;

/// Which columns make the features.
#[derive(Debug, Clone)]
pub struct FeatureSpec {
    /// Indices of scalar numeric feature columns.
    pub columns: Vec<usize>,
    /// Names of those columns.
    pub names: Vec<String>,
    /// Index of the embedding column, if any.
    pub embedding: Option<usize>,
    /// Text columns whose values are recorded as codes, to be one-hot encoded when the contract says they are a
    /// closed category set (default feature choice only).
    pub text: Vec<usize>,
    /// Names of those columns.
    pub text_names: Vec<String>,
    /// Choices made without being asked (an embedding column found by itself), for the report.
    pub notes: Vec<String>,
}

/// Whether a column holds a list of numbers (an embedding).
fn is_number_list(dt: &DataType) -> bool {
    match dt {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => {
            f.data_type().is_floating() || f.data_type().is_integer()
        }
        _ => false,
    }
}

impl FeatureSpec {
    /// Choose features from a schema: `chosen` when given, else every int/float/bool column that is not excluded.
    pub fn resolve(
        schema: &SchemaRef,
        origin: &str,
        chosen: Option<&[String]>,
        embedding: Option<&str>,
        exclude: &[&str],
    ) -> Result<FeatureSpec, ContractError> {
        let mut columns = Vec::new();
        match chosen {
            Some(list) => {
                for name in list {
                    let i = crate::lineage::column_index(schema, origin, name, "--features")?;
                    let dt = schema.field(i).data_type();
                    if !matches!(type_family(dt), "int" | "float" | "bool" | "string") {
                        return Err(ContractError::TypeMismatch {
                            origin: origin.into(),
                            column: name.clone(),
                            expected: "a numeric type (feature column)".into(),
                            found: dt.to_string(),
                        });
                    }
                    columns.push(i);
                }
            }
            None => {
                for (i, f) in schema.fields().iter().enumerate() {
                    if exclude.contains(&f.name().as_str()) || Some(f.name().as_str()) == embedding
                    {
                        continue;
                    }
                    if matches!(type_family(f.data_type()), "int" | "float" | "bool") {
                        columns.push(i);
                    }
                }
            }
        }
        let mut notes = Vec::new();
        let embedding = match embedding {
            Some(e) => {
                let i = crate::lineage::column_index(schema, origin, e, "--embedding")?;
                if !is_number_list(schema.field(i).data_type()) {
                    return Err(ContractError::TypeMismatch {
                        origin: origin.into(),
                        column: e.into(),
                        expected: "FixedSizeList<float> or List<float> (embedding)".into(),
                        found: schema.field(i).data_type().to_string(),
                    });
                }
                Some(i)
            }
            // Nothing named: the first list-of-numbers column is the embedding (an embedding-only table would
            // otherwise have nothing to analyse).
            None if chosen.is_none() => {
                let lists: Vec<usize> = (0..schema.fields().len())
                    .filter(|&i| {
                        let f = schema.field(i);
                        !exclude.contains(&f.name().as_str()) && is_number_list(f.data_type())
                    })
                    .collect();
                if let Some(&i) = lists.first() {
                    notes.push(format!(
                        "column {} ({}) used as the embedding feature (no --embedding or --features given)",
                        schema.field(i).name(),
                        schema.field(i).data_type()
                    ));
                    for &j in &lists[1..] {
                        notes.push(format!(
                            "column {} is also a list of numbers but only one embedding is used: name it with \
                             --embedding to use it instead",
                            schema.field(j).name()
                        ));
                    }
                }
                lists.first().copied()
            }
            None => None,
        };
        let names = columns
            .iter()
            .map(|&i| schema.field(i).name().clone())
            .collect();
        let text: Vec<usize> = match chosen {
            Some(_) => Vec::new(),
            None => (0..schema.fields().len())
                .filter(|&i| {
                    let f = schema.field(i);
                    !exclude.contains(&f.name().as_str()) && type_family(f.data_type()) == "string"
                })
                .collect(),
        };
        let text_names = text
            .iter()
            .map(|&i| schema.field(i).name().clone())
            .collect();
        Ok(FeatureSpec {
            columns,
            names,
            embedding,
            text,
            text_names,
            notes,
        })
    }

    /// Expected length of the embedding: the fixed size of a `FixedSizeList`, else None (learned from the rows).
    pub fn embedding_length(&self, schema: &SchemaRef) -> Option<usize> {
        match schema.field(self.embedding?).data_type() {
            DataType::FixedSizeList(_, n) => usize::try_from(*n).ok(),
            _ => None,
        }
    }

    /// True when there is nothing to build features from.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty() && self.embedding.is_none()
    }
}

/// Row-major feature matrix being filled batch by batch.
#[derive(Debug, Clone, Default)]
pub struct FeatureMatrix {
    /// Values, row-major, `rows * dim`.
    pub data: Vec<f32>,
    /// Columns per row (0 until the first batch fixes it).
    pub dim: usize,
    /// Whether each row has at most half of its cells missing (the rest are imputed).
    pub valid: Vec<bool>,
    /// Length every embedding must have (from the type, a reference, or the most common length of the first batch).
    pub embedding_len: Option<usize>,
    /// Rows whose embedding cannot be used: (row, length found, whether the length was right and a value was not
    /// finite). Each is an impossible contract finding.
    pub bad_embeddings: Vec<(usize, usize, bool)>,
    /// Codes of the text columns of the spec (`FeatureSpec::text`), in the same order.
    pub text: Vec<TextCodes>,
}

/// A row with `missing` of its `dim` cells missing is analysed when at most half of them are.
fn enough_present(missing: usize, dim: usize) -> bool {
    dim > 0 && 2 * missing <= dim
}

/// Distinct values a text column may have and still be recorded (closed category sets have at most 64).
const MAX_TEXT_VALUES: usize = 256;

/// One text column recorded as a code per row (its distinct values in first-seen order), so it can be one-hot encoded
/// once the contract tells whether it is a category set. `u32::MAX` marks a null or an unrecorded value.
#[derive(Debug, Clone, Default)]
pub struct TextCodes {
    /// Distinct values, by code.
    pub values: Vec<String>,
    index: std::collections::HashMap<String, u32>,
    /// Code per row.
    pub codes: Vec<u32>,
    /// More than MAX_TEXT_VALUES distinct values were seen (the column is not a category set).
    pub overflow: bool,
}

impl TextCodes {
    /// Rebuild from saved values and codes.
    pub fn from_parts(values: Vec<String>, codes: Vec<u32>, overflow: bool) -> TextCodes {
        let index = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), i as u32))
            .collect();
        TextCodes {
            values,
            index,
            codes,
            overflow,
        }
    }

    fn push(&mut self, a: &ArrayRef) {
        let Some(s) = checks::as_utf8(a) else {
            self.codes.extend(std::iter::repeat_n(u32::MAX, a.len()));
            return;
        };
        for v in s.iter() {
            let code = match v {
                None => u32::MAX,
                Some(_) if self.overflow => u32::MAX,
                Some(v) => match self.index.get(v) {
                    Some(&c) => c,
                    None if self.values.len() < MAX_TEXT_VALUES => {
                        let c = self.values.len() as u32;
                        self.values.push(v.to_string());
                        self.index.insert(v.to_string(), c);
                        c
                    }
                    None => {
                        self.overflow = true;
                        u32::MAX
                    }
                },
            };
            self.codes.push(code);
        }
    }
}

impl FeatureMatrix {
    /// Rows so far.
    pub fn rows(&self) -> usize {
        self.valid.len()
    }

    /// Append the features of a batch (already coerced to the contract's types). Missing cells are NaN.
    pub fn push_batch(&mut self, batch: &RecordBatch, spec: &FeatureSpec) {
        let n = batch.num_rows();
        let start = self.rows();
        if self.text.len() != spec.text.len() {
            self.text = vec![TextCodes::default(); spec.text.len()];
        }
        for (t, &c) in self.text.iter_mut().zip(&spec.text) {
            t.push(batch.column(c));
        }
        let cols: Vec<Option<arrow::array::Float64Array>> = spec
            .columns
            .iter()
            .map(|&c| checks::as_f64(batch.column(c)))
            .collect();
        let emb = spec.embedding.map(|c| embedding_rows(batch.column(c)));
        if let (Some(e), None) = (&emb, self.embedding_len) {
            // The most common length of the first batch (smallest on ties): one odd first row cannot set it.
            let mut counts = std::collections::BTreeMap::<usize, usize>::new();
            for v in e.iter().flatten() {
                *counts.entry(v.len()).or_default() += 1;
            }
            self.embedding_len = counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(&l, _)| l)
                .filter(|&l| l > 0);
        }
        let emb_dim = self.embedding_len.unwrap_or(0);
        if self.dim == 0 {
            self.dim = spec.columns.len() + emb_dim;
        }
        let emb_dim = self.dim - spec.columns.len();
        for i in 0..n {
            let mut missing = 0usize;
            for c in &cols {
                let x = match c {
                    Some(a) if !a.is_null(i) => a.value(i) as f32,
                    _ => f32::NAN,
                };
                missing += !x.is_finite() as usize;
                self.data.push(if x.is_finite() { x } else { f32::NAN });
            }
            if emb_dim > 0 {
                match emb.as_ref().and_then(|e| e[i].as_ref()) {
                    Some(v) if v.len() == emb_dim && v.iter().all(|x| x.is_finite()) => {
                        self.data.extend_from_slice(v);
                    }
                    other => {
                        if let Some(v) = other {
                            self.bad_embeddings
                                .push((start + i, v.len(), v.len() == emb_dim));
                        }
                        missing += emb_dim;
                        self.data.extend(std::iter::repeat_n(f32::NAN, emb_dim));
                    }
                }
            }
            self.valid.push(enough_present(missing, self.dim));
        }
    }

    /// Share of rows with a value in each column.
    pub fn present_fraction(&self) -> Vec<f64> {
        let mut present = vec![0u64; self.dim];
        for r in self.data.chunks_exact(self.dim.max(1)) {
            for (p, v) in present.iter_mut().zip(r) {
                *p += v.is_finite() as u64;
            }
        }
        present
            .into_iter()
            .map(|p| p as f64 / self.rows().max(1) as f64)
            .collect()
    }

    /// Keep only the columns `keep` (in that order: a permutation reorders them); validity is recomputed.
    pub fn keep_columns(&mut self, keep: &[usize]) {
        if keep.iter().copied().eq(0..self.dim) {
            return;
        }
        let mut data = Vec::with_capacity(self.rows() * keep.len());
        for (i, r) in self.data.chunks_exact(self.dim.max(1)).enumerate() {
            let before = data.len();
            data.extend(keep.iter().map(|&j| r[j]));
            let missing = data[before..].iter().filter(|v| !v.is_finite()).count();
            self.valid[i] = enough_present(missing, keep.len());
        }
        self.data = data;
        self.dim = keep.len();
    }

    /// Append one-hot columns: for each `(text column position, categories)`, one 0/1 column per category (a null
    /// or a value outside the categories is all zeros). Returns the names, `column=value`.
    pub fn append_one_hot(
        &mut self,
        names: &[String],
        cats: &[(usize, Vec<String>)],
    ) -> Vec<String> {
        let extra: usize = cats.iter().map(|(_, c)| c.len()).sum();
        if extra == 0 {
            return Vec::new();
        }
        // For each text column, the one-hot slot of each of its codes.
        let slots: Vec<Vec<Option<usize>>> = cats
            .iter()
            .scan(0usize, |off, (t, c)| {
                let base = *off;
                *off += c.len();
                let codes = &self.text[*t];
                Some(
                    codes
                        .values
                        .iter()
                        .map(|v| c.iter().position(|x| x == v).map(|p| base + p))
                        .collect(),
                )
            })
            .collect();
        let (n, d) = (self.rows(), self.dim);
        let mut data = Vec::with_capacity(n * (d + extra));
        for i in 0..n {
            data.extend_from_slice(&self.data[i * d..(i + 1) * d]);
            let at = data.len();
            data.extend(std::iter::repeat_n(0.0, extra));
            for ((t, _), slot) in cats.iter().zip(&slots) {
                let code = self.text[*t].codes.get(i).copied().unwrap_or(u32::MAX);
                if let Some(Some(s)) = slot.get(code as usize) {
                    data[at + s] = 1.0;
                }
            }
        }
        self.data = data;
        self.dim = d + extra;
        for (i, v) in self.valid.iter_mut().enumerate() {
            let r = &self.data[i * self.dim..(i + 1) * self.dim];
            *v = enough_present(r.iter().filter(|x| !x.is_finite()).count(), self.dim);
        }
        cats.iter()
            .flat_map(|(t, c)| c.iter().map(move |v| format!("{}={v}", names[*t])))
            .collect()
    }

    /// The matrix as an ndarray, moving the values out (the matrix keeps its shape and validity, not its values):
    /// the detectors' copy is then the only one in memory.
    pub fn take_array(&mut self) -> Array2<f32> {
        let data = std::mem::take(&mut self.data);
        Array2::from_shape_vec((self.rows(), self.dim), data)
            .unwrap_or_else(|_| Array2::zeros((0, 0)))
    }

    /// The matrix as an ndarray (missing cells NaN).
    pub fn to_array(&self) -> Array2<f32> {
        Array2::from_shape_vec((self.rows(), self.dim), self.data.clone())
            .unwrap_or_else(|_| Array2::zeros((0, 0)))
    }
}

pub(crate) fn embedding_rows(a: &ArrayRef) -> Vec<Option<Vec<f32>>> {
    let get = |v: ArrayRef| -> Option<Vec<f32>> {
        let f = arrow::compute::cast(&v, &DataType::Float32).ok()?;
        let f = f.as_primitive::<arrow::datatypes::Float32Type>();
        if f.null_count() > 0 {
            return None;
        }
        Some(f.values().to_vec())
    };
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                return None;
            }
            match a.data_type() {
                DataType::FixedSizeList(_, _) => get(a.as_fixed_size_list().value(i)),
                DataType::List(_) => get(a.as_list::<i32>().value(i)),
                DataType::LargeList(_) => get(a.as_list::<i64>().value(i)),
                _ => None,
            }
        })
        .collect()
}

/// Robust standardization: subtract the median, divide by IQR / 1.349 (falling back to the standard deviation, then 1).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RobustScaler {
    /// Per-column centre.
    pub center: Vec<f32>,
    /// Per-column scale.
    pub scale: Vec<f32>,
}

impl RobustScaler {
    /// Fit on the valid rows of `x`, each column on its finite values.
    pub fn fit(x: &Array2<f32>, valid: &[bool]) -> RobustScaler {
        let d = x.ncols();
        let mut center = vec![0.0; d];
        let mut scale = vec![1.0; d];
        for j in 0..d {
            let mut col: Vec<f32> = x
                .column(j)
                .iter()
                .zip(valid)
                .filter(|(a, &v)| v && a.is_finite())
                .map(|(&a, _)| a)
                .collect();
            if col.is_empty() {
                continue;
            }
            col.sort_by(f32::total_cmp);
            let q = |p: f64| col[((col.len() - 1) as f64 * p).round() as usize];
            let med = q(0.5);
            let iqr = (q(0.75) - q(0.25)) / 1.349;
            let s = if iqr > 1e-12 {
                iqr
            } else {
                let mean = col.iter().map(|&v| v as f64).sum::<f64>() / col.len() as f64;
                let var =
                    col.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / col.len() as f64;
                if var.sqrt() > 1e-12 {
                    var.sqrt() as f32
                } else {
                    1.0
                }
            };
            center[j] = med;
            scale[j] = s;
        }
        RobustScaler { center, scale }
    }

    /// Leave columns `from..` as they are (one-hot 0/1 columns): centre 0, scale 1.
    pub fn leave_unscaled(&mut self, from: usize) {
        for j in from..self.center.len() {
            self.center[j] = 0.0;
            self.scale[j] = 1.0;
        }
    }

    /// Standardize in place (values are clipped to +-1e4 so one extreme cannot dominate every distance); a missing
    /// (non-finite) cell becomes 0, the column's centre.
    pub fn transform(&self, x: &mut Array2<f32>) {
        for mut row in x.rows_mut() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if v.is_finite() {
                    ((*v - self.center[j]) / self.scale[j]).clamp(-1e4, 1e4)
                } else {
                    0.0
                };
            }
        }
    }
}

/// Deterministic, engine-independent sample: the `max` valid rows with the smallest digest prefixes (all valid rows
/// when there are fewer), returned in row order.
pub fn sample_by_digest(digests: &[[u8; 32]], valid: &[bool], max: usize) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..digests.len()).filter(|&i| valid[i]).collect();
    if rows.len() > max {
        let key = |i: usize| {
            let mut k = [0u8; 8];
            k.copy_from_slice(&digests[i][..8]);
            (u64::from_le_bytes(k), i)
        };
        rows.select_nth_unstable_by_key(max, |&i| key(i));
        rows.truncate(max);
        rows.sort_unstable();
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{FixedSizeListBuilder, Float32Builder, Float64Array, Int32Array};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn matrix_marks_non_finite_rows_and_reads_embeddings() {
        let mut eb = FixedSizeListBuilder::new(Float32Builder::new(), 2);
        for r in [[1.0, 2.0], [3.0, f32::NAN], [5.0, 6.0]] {
            eb.values().append_slice(&r);
            eb.append(true);
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, true),
            Field::new("y", DataType::Int32, false),
            Field::new("e", eb.finish().data_type().clone(), false),
        ]));
        let mut eb = FixedSizeListBuilder::new(Float32Builder::new(), 2);
        for r in [[1.0, 2.0], [3.0, f32::NAN], [5.0, 6.0]] {
            eb.values().append_slice(&r);
            eb.append(true);
        }
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(vec![Some(1.0), Some(2.0), None])),
                Arc::new(Int32Array::from(vec![0, 1, 0])),
                Arc::new(eb.finish()),
            ],
        )
        .unwrap();
        let spec = FeatureSpec::resolve(&schema, "t", None, Some("e"), &["y"]).unwrap();
        assert_eq!(spec.names, vec!["a".to_string()]);
        let mut m = FeatureMatrix::default();
        m.push_batch(&batch, &spec);
        assert_eq!(m.dim, 3);
        // Row 1: its embedding has a NaN (2 of 3 cells missing); row 2: `a` is null (1 of 3 missing, imputed).
        assert_eq!(m.valid, vec![true, false, true]);
        assert_eq!(&m.data[..3], &[1.0, 1.0, 2.0]);
        assert_eq!(m.bad_embeddings, vec![(1, 2, true)]);
        let mut x = m.to_array();
        let scaler = RobustScaler::fit(&x, &m.valid);
        scaler.transform(&mut x);
        assert_eq!(x[[2, 0]], 0.0, "a missing cell is imputed with the centre");
        assert!(x.iter().all(|v| v.is_finite()));
        // An embedding-only spec is found by itself.
        let auto = FeatureSpec::resolve(&schema, "t", None, None, &["y"]).unwrap();
        assert_eq!(auto.embedding, Some(2));
        assert!(
            auto.notes[0].contains("used as the embedding"),
            "{:?}",
            auto.notes
        );
        let mut m2 = m.clone();
        m2.keep_columns(&[1, 2]);
        assert_eq!(m2.dim, 2);
        assert_eq!(m2.valid, vec![true, false, true]);
        // A permutation of every column reorders them (a reference whose columns come in another order).
        let mut m3 = m.clone();
        m3.keep_columns(&[2, 0, 1]);
        assert_eq!(&m3.data[..3], &[2.0, 1.0, 1.0]);
    }

    #[test]
    fn digest_sample_is_deterministic_and_ordered() {
        let d: Vec<[u8; 32]> = (0..100u64)
            .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
            .collect();
        let v = vec![true; 100];
        let a = sample_by_digest(&d, &v, 10);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        let mut rev = d.clone();
        rev.reverse();
        let b: Vec<usize> = sample_by_digest(&rev, &v, 10)
            .into_iter()
            .map(|i| 99 - i)
            .collect();
        let mut b = b;
        b.sort();
        assert_eq!(a, b, "same rows whatever their order");
    }
}
