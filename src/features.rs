//! Dense f32 feature matrices for the detectors.
//!
//! Numeric columns (all but label and id, or a chosen list) and an optional embedding column (`FixedSizeList<float>`
//! or `List<float>`) are flattened into one row-major matrix. Rows with a null, NaN or infinite feature are marked
//! invalid: the contract reports them, and detectors keep them out of every distance computation.

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
        let embedding = match embedding {
            Some(e) => {
                let i = crate::lineage::column_index(schema, origin, e, "--embedding")?;
                let ok = match schema.field(i).data_type() {
                    DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => {
                        f.data_type().is_floating() || f.data_type().is_integer()
                    }
                    _ => false,
                };
                if !ok {
                    return Err(ContractError::TypeMismatch {
                        origin: origin.into(),
                        column: e.into(),
                        expected: "FixedSizeList<float> or List<float> (embedding)".into(),
                        found: schema.field(i).data_type().to_string(),
                    });
                }
                Some(i)
            }
            None => None,
        };
        let names = columns
            .iter()
            .map(|&i| schema.field(i).name().clone())
            .collect();
        Ok(FeatureSpec {
            columns,
            names,
            embedding,
        })
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
    /// Whether each row has only finite features.
    pub valid: Vec<bool>,
}

impl FeatureMatrix {
    /// Rows so far.
    pub fn rows(&self) -> usize {
        self.valid.len()
    }

    /// Append the features of a batch (already coerced to the contract's types).
    pub fn push_batch(&mut self, batch: &RecordBatch, spec: &FeatureSpec) {
        let n = batch.num_rows();
        let cols: Vec<Option<arrow::array::Float64Array>> = spec
            .columns
            .iter()
            .map(|&c| checks::as_f64(batch.column(c)))
            .collect();
        let emb = spec.embedding.map(|c| embedding_rows(batch.column(c)));
        let emb_dim = emb
            .as_ref()
            .and_then(|e| e.iter().flatten().map(|v| v.len()).next())
            .unwrap_or(0);
        if self.dim == 0 {
            self.dim = spec.columns.len() + emb_dim;
        }
        let emb_dim = self.dim - spec.columns.len();
        for i in 0..n {
            let mut ok = true;
            for c in &cols {
                let x = match c {
                    Some(a) if !a.is_null(i) => a.value(i) as f32,
                    _ => f32::NAN,
                };
                ok &= x.is_finite();
                self.data.push(if x.is_finite() { x } else { 0.0 });
            }
            if emb_dim > 0 {
                match emb.as_ref().and_then(|e| e[i].as_ref()) {
                    Some(v) if v.len() == emb_dim => {
                        for &x in v {
                            ok &= x.is_finite();
                            self.data.push(if x.is_finite() { x } else { 0.0 });
                        }
                    }
                    _ => {
                        ok = false;
                        self.data.extend(std::iter::repeat_n(0.0, emb_dim));
                    }
                }
            }
            self.valid.push(ok);
        }
    }

    /// The matrix as an ndarray.
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
    /// Fit on the valid rows of `x`.
    pub fn fit(x: &Array2<f32>, valid: &[bool]) -> RobustScaler {
        let d = x.ncols();
        let mut center = vec![0.0; d];
        let mut scale = vec![1.0; d];
        for j in 0..d {
            let mut col: Vec<f32> = x
                .column(j)
                .iter()
                .zip(valid)
                .filter(|(_, &v)| v)
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

    /// Standardize in place (values are clipped to +-1e4 so one extreme cannot dominate every distance).
    pub fn transform(&self, x: &mut Array2<f32>) {
        for mut row in x.rows_mut() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = ((*v - self.center[j]) / self.scale[j]).clamp(-1e4, 1e4);
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
        assert_eq!(m.valid, vec![true, false, false]);
        assert_eq!(&m.data[..3], &[1.0, 1.0, 2.0]);
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
