//! A fitted scanner is a file: the contract profiled from a trusted reference (with the detectors' calibration) and
//! the reference rows the detectors are fitted on, saved once (`poisonscan fit`) and used to scan any number of
//! datasets or arriving batches (`poisonscan scan --fitted`) without reading the reference again.
//!
//! ```no_run
//! use poisonscan::{fit::FittedScanner, Scanner, Source};
//! let fitted = FittedScanner::fit(&mut Source::path("fixtures/train_reference.parquet")?, Some("label"), Some("id"), None, None)?;
//! fitted.save(std::path::Path::new("scanner.psfit"))?;
//! let fitted = FittedScanner::load(std::path::Path::new("scanner.psfit"))?;
//! let outcome = Scanner::new(Source::path("fixtures/train_poisoned.parquet")?).fitted(fitted, "scanner.psfit")?.run()?;
//! # Ok::<(), poisonscan::Error>(())
//! ```
//!
//! Format: an Arrow IPC file. Its schema metadata `poisonscan.fit` holds a JSON header (format version, tool version,
//! the options it was fitted with, the contract, feature names); its columns hold the reference rows (one Float32
//! column per raw feature, the label as text, the row digest, the codes of text columns). `poisonscan.fit.hash` is the
//! blake3 of the header text and of every value, so a file changed by a byte is refused. A scan with a fitted
//! scanner gives the same result as a scan with its reference when the reference has at most 100,000 rows (larger
//! references keep the 100,000 rows with the smallest digests, the rows the detectors are fitted on anyway).

use crate::contract::Contract;
use crate::error::Error;
use crate::features::{FeatureMatrix, TextCodes};
use crate::scan::ReferenceRows;
use crate::source::Source;
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, Float32Array, RecordBatch,
    StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Version of the fitted-scanner file layout.
pub const FIT_VERSION: u32 = 1;
const META_KEY: &str = "poisonscan.fit";
const HASH_KEY: &str = "poisonscan.fit.hash";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    fit_version: u32,
    tool_version: String,
    origin: String,
    label: Option<String>,
    id: Option<String>,
    features: Option<Vec<String>>,
    embedding: Option<String>,
    contract: Contract,
    names: Vec<String>,
    text_names: Vec<String>,
    text_values: Vec<Vec<String>>,
    text_overflow: Vec<bool>,
    dim: usize,
    embedding_len: Option<usize>,
    rows: usize,
}

/// A scanner fitted on a trusted reference (see the module documentation).
#[derive(Debug, Clone)]
pub struct FittedScanner {
    header: Header,
    /// The header as written (hashed as text, so a float's last digit cannot change the hash).
    header_text: String,
    hash: String,
    pub(crate) rows: ReferenceRows,
}

fn invalid(path: &Path, message: impl Into<String>) -> Error {
    Error::Contract(crate::error::ContractError::InvalidFitted {
        path: path.to_path_buf(),
        message: message.into(),
    })
}

impl FittedScanner {
    /// Profile and fit on a trusted reference. `label`, `id`, `features`, `embedding` as in a scan.
    pub fn fit(
        reference: &mut Source,
        label: Option<&str>,
        id: Option<&str>,
        features: Option<Vec<String>>,
        embedding: Option<&str>,
    ) -> Result<FittedScanner, Error> {
        let origin = reference.origin();
        let (contract, rows) =
            crate::scan::profile_rows(reference, label, id, features.clone(), embedding)?;
        let rows = keep_fit_rows(rows, crate::detect::DetectConfig::default().max_fit_rows);
        let header = Header {
            fit_version: FIT_VERSION,
            tool_version: crate::VERSION.to_string(),
            origin,
            label: label.map(str::to_string),
            id: id.map(str::to_string),
            features,
            embedding: embedding.map(str::to_string),
            contract,
            names: rows.names.clone(),
            text_names: rows.text_names.clone(),
            text_values: rows
                .features
                .text
                .iter()
                .map(|t| t.values.clone())
                .collect(),
            text_overflow: rows.features.text.iter().map(|t| t.overflow).collect(),
            dim: rows.features.dim,
            embedding_len: rows.features.embedding_len,
            rows: rows.labels.len(),
        };
        let header_text = serde_json::to_string(&header).unwrap_or_default();
        let mut f = FittedScanner {
            header,
            header_text,
            hash: String::new(),
            rows,
        };
        f.hash = f.content_hash();
        Ok(f)
    }

    /// The contract (profiled from the reference, with its calibration).
    pub fn contract(&self) -> &Contract {
        &self.header.contract
    }
    /// Label column it was fitted with.
    pub fn label(&self) -> Option<&str> {
        self.header.label.as_deref()
    }
    /// Id column it was fitted with.
    pub fn id(&self) -> Option<&str> {
        self.header.id.as_deref()
    }
    /// Feature columns it was fitted with, when they were named.
    pub fn features(&self) -> Option<&[String]> {
        self.header.features.as_deref()
    }
    /// Embedding column it was fitted with, when named.
    pub fn embedding(&self) -> Option<&str> {
        self.header.embedding.as_deref()
    }
    /// Where the reference came from.
    pub fn origin(&self) -> &str {
        &self.header.origin
    }
    /// Reference rows kept.
    pub fn rows(&self) -> usize {
        self.header.rows
    }
    /// blake3 of the header and every value (hex).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    fn content_hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&(self.header_text.len() as u64).to_le_bytes());
        h.update(self.header_text.as_bytes());
        for v in &self.rows.features.data {
            h.update(&v.to_le_bytes());
        }
        for v in &self.rows.features.valid {
            h.update(&[*v as u8]);
        }
        for l in &self.rows.labels {
            match l {
                Some(s) => {
                    h.update(&[1]);
                    h.update(&(s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
                None => {
                    h.update(&[0]);
                }
            }
        }
        for d in &self.rows.digests {
            h.update(d);
        }
        for t in &self.rows.features.text {
            for c in &t.codes {
                h.update(&c.to_le_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }

    /// Write the file atomically (Arrow IPC).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let bytes = self.to_bytes().map_err(|e| Error::Output {
            path: path.to_path_buf(),
            message: e,
        })?;
        crate::output::write_atomically(path, |mut file| {
            std::io::Write::write_all(&mut file, &bytes).map_err(|e| e.to_string())
        })
    }

    /// The file's bytes (what [`FittedScanner::save`] writes): how a fit is sent to the workers of an engine.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let batch = self.to_batch().map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut w = arrow::ipc::writer::FileWriter::try_new(&mut buf, &batch.schema())
            .map_err(|e| e.to_string())?;
        w.write(&batch).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
        drop(w);
        Ok(buf)
    }

    /// Read a fit from the bytes of a file ([`FittedScanner::to_bytes`]); `origin` names it in errors. Refuses what
    /// [`FittedScanner::load`] refuses.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<FittedScanner, Error> {
        decode_guarded(origin, || {
            FittedScanner::parse(std::io::Cursor::new(bytes), origin)
        })
    }

    fn to_batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let f = &self.rows.features;
        let n = self.rows.labels.len();
        let mut fields = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for j in 0..f.dim {
            fields.push(Field::new(format!("x{j}"), DataType::Float32, false));
            cols.push(Arc::new(Float32Array::from_iter_values(
                (0..n).map(|i| f.data[i * f.dim + j]),
            )));
        }
        fields.push(Field::new("valid", DataType::Boolean, false));
        cols.push(Arc::new(BooleanArray::from(f.valid.clone())));
        fields.push(Field::new("label", DataType::Utf8, true));
        cols.push(Arc::new(StringArray::from(self.rows.labels.clone())));
        fields.push(Field::new("digest", DataType::FixedSizeBinary(32), false));
        cols.push(Arc::new(FixedSizeBinaryArray::try_from_iter(
            self.rows.digests.iter(),
        )?));
        for (j, t) in f.text.iter().enumerate() {
            fields.push(Field::new(format!("t{j}"), DataType::UInt32, false));
            cols.push(Arc::new(UInt32Array::from(t.codes.clone())));
        }
        let meta = HashMap::from([
            (META_KEY.to_string(), self.header_text.clone()),
            (HASH_KEY.to_string(), self.hash.clone()),
        ]);
        RecordBatch::try_new(Arc::new(Schema::new_with_metadata(fields, meta)), cols)
    }

    /// Read a file written by [`FittedScanner::save`]; refuses another layout version, a damaged or edited file.
    pub fn load(path: &Path) -> Result<FittedScanner, Error> {
        decode_guarded(path, || FittedScanner::load_unguarded(path))
    }

    fn load_unguarded(path: &Path) -> Result<FittedScanner, Error> {
        let file =
            std::fs::File::open(path).map_err(|e| invalid(path, format!("cannot read: {e}")))?;
        FittedScanner::parse(std::io::BufReader::new(file), path)
    }

    fn parse<R: std::io::Read + std::io::Seek>(
        input: R,
        path: &Path,
    ) -> Result<FittedScanner, Error> {
        let reader = arrow::ipc::reader::FileReader::try_new(input, None)
            .map_err(|e| invalid(path, format!("not a fitted scanner (Arrow IPC): {e}")))?;
        let schema = reader.schema();
        let text = schema
            .metadata()
            .get(META_KEY)
            .ok_or_else(|| invalid(path, "not a fitted scanner: no poisonscan.fit header"))?;
        let stored_hash = schema.metadata().get(HASH_KEY).cloned().unwrap_or_default();
        let header: Header = serde_json::from_str(text)
            .map_err(|e| invalid(path, format!("fitted scanner header does not parse: {e}")))?;
        if header.fit_version != FIT_VERSION {
            return Err(invalid(
                path,
                format!(
                    "fit_version {} is not supported (this poisonscan {} reads version {FIT_VERSION}): fit the \
                     reference again with `poisonscan fit`",
                    header.fit_version,
                    crate::VERSION
                ),
            ));
        }
        let batches: Vec<RecordBatch> = reader
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(path, format!("damaged fitted scanner: {e}")))?;
        let rows = rows_from(&header, &batches).map_err(|m| invalid(path, m))?;
        let mut f = FittedScanner {
            header,
            header_text: text.clone(),
            hash: stored_hash,
            rows,
        };
        if f.content_hash() != f.hash {
            return Err(invalid(
                path,
                "the fitted scanner's content does not match its hash: the file was changed or damaged",
            ));
        }
        f.hash = f.content_hash();
        Ok(f)
    }
}

/// Run a decoder: a panic on a malformed file is an invalid-file error naming `origin`, never a crash.
fn decode_guarded(
    origin: &Path,
    decode: impl FnOnce() -> Result<FittedScanner, Error> + std::panic::UnwindSafe,
) -> Result<FittedScanner, Error> {
    match std::panic::catch_unwind(decode) {
        Ok(r) => r,
        Err(p) => Err(invalid(
            origin,
            format!(
                "the decoder panicked (malformed file): {}",
                crate::error::panic_message(p.as_ref()).unwrap_or("(no message)")
            ),
        )),
    }
}

/// Keep at most `max` rows, those with the smallest digests (the rows the detectors would be fitted on).
fn keep_fit_rows(rows: ReferenceRows, max: usize) -> ReferenceRows {
    let n = rows.labels.len();
    if n <= max {
        return rows;
    }
    let keep = crate::features::sample_by_digest(&rows.digests, &vec![true; n], max);
    let f = &rows.features;
    let mut features = FeatureMatrix {
        dim: f.dim,
        embedding_len: f.embedding_len,
        ..FeatureMatrix::default()
    };
    for &i in &keep {
        features
            .data
            .extend_from_slice(&f.data[i * f.dim..(i + 1) * f.dim]);
        features.valid.push(f.valid[i]);
    }
    features.text = f
        .text
        .iter()
        .map(|t| {
            TextCodes::from_parts(
                t.values.clone(),
                keep.iter().map(|&i| t.codes[i]).collect(),
                t.overflow,
            )
        })
        .collect();
    ReferenceRows {
        features,
        names: rows.names,
        text_names: rows.text_names,
        labels: keep.iter().map(|&i| rows.labels[i].clone()).collect(),
        digests: keep.iter().map(|&i| rows.digests[i]).collect(),
    }
}

fn rows_from(h: &Header, batches: &[RecordBatch]) -> Result<ReferenceRows, String> {
    let col = |b: &RecordBatch, name: &str| -> Result<ArrayRef, String> {
        b.column_by_name(name)
            .cloned()
            .ok_or_else(|| format!("damaged fitted scanner: column {name} is missing"))
    };
    let mut features = FeatureMatrix {
        dim: h.dim,
        embedding_len: h.embedding_len,
        ..FeatureMatrix::default()
    };
    let mut labels = Vec::new();
    let mut digests = Vec::new();
    let mut codes: Vec<Vec<u32>> = vec![Vec::new(); h.text_names.len()];
    for b in batches {
        let xs: Vec<ArrayRef> = (0..h.dim)
            .map(|j| col(b, &format!("x{j}")))
            .collect::<Result<_, _>>()?;
        let xs: Vec<&Float32Array> = xs
            .iter()
            .map(|a| a.as_primitive_opt::<arrow::datatypes::Float32Type>())
            .collect::<Option<_>>()
            .ok_or("damaged fitted scanner: a feature column is not Float32")?;
        for i in 0..b.num_rows() {
            features.data.extend(xs.iter().map(|c| c.value(i)));
        }
        let valid = col(b, "valid")?;
        let valid = valid
            .as_boolean_opt()
            .ok_or("damaged fitted scanner: valid")?;
        features
            .valid
            .extend(valid.iter().map(|v| v.unwrap_or(false)));
        let l = col(b, "label")?;
        let l = l
            .as_string_opt::<i32>()
            .ok_or("damaged fitted scanner: label")?;
        labels.extend(l.iter().map(|v| v.map(str::to_string)));
        let d = col(b, "digest")?;
        let d = d
            .as_fixed_size_binary_opt()
            .ok_or("damaged fitted scanner: digest")?;
        for i in 0..d.len() {
            let mut x = [0u8; 32];
            x.copy_from_slice(d.value(i));
            digests.push(x);
        }
        for (j, c) in codes.iter_mut().enumerate() {
            let t = col(b, &format!("t{j}"))?;
            let t = t
                .as_primitive_opt::<arrow::datatypes::UInt32Type>()
                .ok_or("damaged fitted scanner: text codes")?;
            c.extend(t.values().iter().copied());
        }
    }
    if labels.len() != h.rows || h.text_values.len() != h.text_names.len() {
        return Err(format!(
            "damaged fitted scanner: {} rows, the header says {}",
            labels.len(),
            h.rows
        ));
    }
    features.text = codes
        .into_iter()
        .zip(&h.text_values)
        .zip(&h.text_overflow)
        .map(|((c, v), &o)| TextCodes::from_parts(v.clone(), c, o))
        .collect();
    Ok(ReferenceRows {
        features,
        names: h.names.clone(),
        text_names: h.text_names.clone(),
        labels,
        digests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::RowDigest;

    fn fitted() -> FittedScanner {
        let mut src = Source::path(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/train_reference.parquet"),
        )
        .unwrap();
        FittedScanner::fit(&mut src, Some("label"), Some("id"), None, None).unwrap()
    }

    #[test]
    fn save_and_load_round_trip_and_another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = fitted();
        let p = dir.path().join("s.psfit");
        f.save(&p).unwrap();
        let g = FittedScanner::load(&p).unwrap();
        assert_eq!(g.hash(), f.hash());
        assert_eq!(g.rows.features.data, f.rows.features.data);
        assert_eq!(g.rows.labels, f.rows.labels);
        assert_eq!(g.contract().columns.len(), f.contract().columns.len());
        // Another layout version.
        let mut old = f.clone();
        old.header.fit_version = 99;
        old.header_text = serde_json::to_string(&old.header).unwrap();
        old.hash = old.content_hash();
        let q = dir.path().join("old.psfit");
        old.save(&q).unwrap();
        let e = FittedScanner::load(&q).unwrap_err().to_string();
        assert!(
            e.contains("fit_version 99") && e.contains("poisonscan fit"),
            "{e}"
        );
        // Rows kept for the fit: at most max, the smallest digests.
        let kept = keep_fit_rows(f.rows.clone(), 100);
        assert_eq!(kept.labels.len(), 100);
        assert_eq!(kept.features.data.len(), 100 * f.rows.features.dim);
        let mut smallest: Vec<RowDigest> = f.rows.digests.clone();
        smallest.sort_by_key(|d| u64::from_le_bytes(d[..8].try_into().unwrap()));
        for d in &kept.digests {
            assert!(smallest[..100].contains(d));
        }
    }
}
