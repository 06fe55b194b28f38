//! Manifests: the header (fingerprint, Merkle root, schema hash, row count, tool version, creation time, key id)
//! and the row digests, stored together in one Parquet file (header as JSON in the file's key-value metadata).
//!
//! The header carries a `seal`: blake3 of the canonical header (plain mode, catches accidental damage) or blake3's
//! keyed hash with the secret (keyed mode), so a keyed manifest cannot be forged or edited without the key: its seal
//! commits to the Merkle root, which commits to every row digest, and to a hash of the id column.

use super::encode::{HashMode, RowDigest};
use super::fingerprint::{Fingerprint, LineageState};
use crate::error::{Error, LineageError};
use arrow::array::{Array, FixedSizeBinaryArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Key-value metadata key holding the header JSON.
pub const HEADER_KEY: &str = "poisonscan.manifest";
/// Environment variable with the lineage secret.
pub const KEY_ENV: &str = "POISONSCAN_KEY";
const KEY_CONTEXT: &str = "poisonscan 2026-11 manifest key v1";

/// A lineage secret (derived with blake3's `derive_key` from whatever bytes the user supplies).
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(id {})", self.id())
    }
}

impl Key {
    /// Derive a key from secret bytes (surrounding whitespace ignored).
    pub fn from_secret(secret: &[u8]) -> Result<Key, LineageError> {
        let s = secret.trim_ascii();
        if s.len() < 16 {
            return Err(LineageError::Key(format!(
                "the secret is {} bytes; use at least 16 (e.g. `openssl rand -hex 32`)",
                s.len()
            )));
        }
        Ok(Key {
            bytes: blake3::derive_key(KEY_CONTEXT, s),
        })
    }
    /// Read a key file.
    pub fn from_file(path: &Path) -> Result<Key, LineageError> {
        let b = std::fs::read(path).map_err(|e| {
            LineageError::Key(format!("{}: cannot read key file: {e}", path.display()))
        })?;
        Key::from_secret(&b).map_err(|e| LineageError::Key(format!("{}: {e}", path.display())))
    }
    /// The key from `--key-file` when given, else from `POISONSCAN_KEY`, else none.
    pub fn resolve(key_file: Option<&Path>) -> Result<Option<Key>, LineageError> {
        if let Some(p) = key_file {
            return Key::from_file(p).map(Some);
        }
        match std::env::var_os(KEY_ENV) {
            Some(v) if !v.is_empty() => Key::from_secret(v.as_encoded_bytes()).map(Some),
            _ => Ok(None),
        }
    }
    /// Public identifier of the key (not secret): 16 hex chars.
    pub fn id(&self) -> String {
        hex::encode(&blake3::hash(&self.bytes).as_bytes()[..8])
    }
    /// The hash mode for row digests.
    pub fn mode(&self) -> HashMode {
        HashMode::Keyed(self.bytes)
    }
}

/// Version of the manifests this poisonscan writes and reads. Version 2 holds digests of row encoding version 2
/// (numbers in their shortest exact form, see `encode`); version 1 manifests (poisonscan 0.1)
/// hold digests of the old encoding, which no longer compare, and are rejected with a request to re-create them.
/// Version 3 replaces the order-independent digest sum (forgeable by a generalized birthday attack) with LtHash16
/// (`lineage::lthash`); version 2 manifests are refused the same way.
pub const MANIFEST_VERSION: u32 = 3;

/// The manifest header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestHeader {
    /// Format version of this header.
    pub manifest_version: u32,
    /// poisonscan version that wrote it.
    pub tool_version: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Data the manifest was made from.
    pub source: String,
    /// Schema hash (names and type families).
    pub schema_hash: String,
    /// Fingerprint (row count, LtHash, Merkle root).
    pub fingerprint: Fingerprint,
    /// Id column, when rows are identified by id.
    pub id_column: Option<String>,
    /// blake3 of the id values (length-prefixed, in row order), hex.
    pub ids_hash: Option<String>,
    /// Whether digests are keyed.
    pub keyed: bool,
    /// Key id in keyed mode.
    pub key_id: Option<String>,
    /// Seal over all the above fields (hex).
    pub seal: String,
}

impl ManifestHeader {
    fn seal_with(&self, key: Option<&Key>) -> String {
        let mut h = self.clone();
        h.seal = String::new();
        let bytes = serde_json::to_vec(&h).unwrap_or_default();
        match key {
            Some(k) => blake3::keyed_hash(&k.bytes, &bytes).to_hex().to_string(),
            None => blake3::hash(&bytes).to_hex().to_string(),
        }
    }
}

/// A manifest in memory: header, row digests, and ids when an id column was given.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Header.
    pub header: ManifestHeader,
    /// Row digests in row order.
    pub digests: Vec<RowDigest>,
    /// Ids in row order (when `header.id_column` is set).
    pub ids: Option<Vec<String>>,
}

/// Hash of id values, length-prefixed.
pub fn ids_hash(ids: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    for id in ids {
        h.update(&(id.len() as u64).to_le_bytes());
        h.update(id.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

impl Manifest {
    /// Build a sealed manifest from digests (and ids) of a scanned input.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        source: String,
        schema_hash: String,
        fingerprint: Fingerprint,
        digests: Vec<RowDigest>,
        id_column: Option<String>,
        ids: Option<Vec<String>>,
        key: Option<&Key>,
    ) -> Manifest {
        let created_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut header = ManifestHeader {
            manifest_version: MANIFEST_VERSION,
            tool_version: crate::VERSION.to_string(),
            created_unix,
            source,
            schema_hash,
            fingerprint,
            ids_hash: ids.as_deref().map(ids_hash),
            id_column,
            keyed: key.is_some(),
            key_id: key.map(|k| k.id()),
            seal: String::new(),
        };
        header.seal = header.seal_with(key);
        Manifest {
            header,
            digests,
            ids,
        }
    }

    /// Check the manifest against itself: the seal (with the key in keyed mode), the digest count, sum and Merkle
    /// root, and the ids hash. Returns the problems found (empty when intact).
    pub fn check_integrity(&self, key: Option<&Key>) -> Result<Vec<String>, LineageError> {
        let mut problems = Vec::new();
        if self.header.keyed {
            let k = key.ok_or_else(|| {
                LineageError::Key(format!(
                    "the manifest is keyed (key id {}); give --key-file or set {KEY_ENV}",
                    self.header.key_id.clone().unwrap_or_default()
                ))
            })?;
            if Some(k.id()) != self.header.key_id {
                return Err(LineageError::Key(format!(
                    "the key given has id {}, the manifest was sealed with key id {}",
                    k.id(),
                    self.header.key_id.clone().unwrap_or_default()
                )));
            }
        }
        let expected = self
            .header
            .seal_with(if self.header.keyed { key } else { None });
        if expected != self.header.seal {
            problems.push(
                "manifest seal does not match its header (the header was edited)".to_string(),
            );
        }
        let mut st = LineageState::new(self.header.fingerprint.chunk_rows);
        st.add(0, &self.digests);
        let fp = st.finish()?;
        if fp != self.header.fingerprint {
            problems.push("row digests stored in the manifest do not match its fingerprint (digests were edited)".into());
        }
        if let Some(ids) = &self.ids {
            if Some(ids_hash(ids)) != self.header.ids_hash {
                problems.push(
                    "ids stored in the manifest do not match its header (ids were edited)".into(),
                );
            }
        }
        Ok(problems)
    }

    /// Write atomically (temp file in the same folder, then rename).
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let header = serde_json::to_string(&self.header).map_err(|e| out_err(path, e))?;
        let mut fields = vec![
            Field::new("row", DataType::UInt64, false),
            Field::new("digest", DataType::FixedSizeBinary(32), false),
        ];
        let mut cols: Vec<Arc<dyn Array>> = vec![
            Arc::new(UInt64Array::from_iter_values(0..self.digests.len() as u64)),
            Arc::new(
                FixedSizeBinaryArray::try_from_iter(self.digests.iter())
                    .map_err(|e| out_err(path, e))?,
            ),
        ];
        if let Some(ids) = &self.ids {
            fields.push(Field::new("id", DataType::Utf8, false));
            cols.push(Arc::new(StringArray::from_iter_values(ids.iter())));
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| out_err(path, e))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
                HEADER_KEY.to_string(),
                header,
            )]))
            .build();
        crate::output::write_atomically(path, |file| {
            let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props))
                .map_err(|e| e.to_string())?;
            w.write(&batch).map_err(|e| e.to_string())?;
            w.close().map_err(|e| e.to_string())?;
            Ok(())
        })
    }

    /// Read a manifest file. A manifest is a file someone may have tampered with: a decoder panic on it (arrow-ipc
    /// panics on some malformed embedded schemas) is an invalid-manifest error, never a crash.
    pub fn read(path: &Path) -> Result<Manifest, LineageError> {
        match std::panic::catch_unwind(|| Manifest::read_unguarded(path)) {
            Ok(r) => r,
            Err(p) => Err(LineageError::InvalidManifest {
                path: path.to_path_buf(),
                message: format!(
                    "the decoder panicked (malformed file): {}",
                    crate::error::panic_message(p.as_ref()).unwrap_or("(no message)")
                ),
            }),
        }
    }

    fn read_unguarded(path: &Path) -> Result<Manifest, LineageError> {
        let bad = |m: String| LineageError::InvalidManifest {
            path: path.to_path_buf(),
            message: m,
        };
        let f = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| bad(format!("not a Parquet manifest: {e}")))?;
        crate::source::validate::parquet_chunks_inside(builder.metadata(), len).map_err(bad)?;
        let header_json = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| {
                kv.iter()
                    .find(|k| k.key == HEADER_KEY)
                    .and_then(|k| k.value.clone())
            })
            .ok_or_else(|| {
                bad(format!(
                    "no '{HEADER_KEY}' header: not a poisonscan manifest"
                ))
            })?;
        // The version first: an older header has other fields, and deserves the way out rather than a parse error.
        let raw: serde_json::Value = serde_json::from_str(&header_json)
            .map_err(|e| bad(format!("header does not parse: {e}")))?;
        let version = raw.get("manifest_version").and_then(|v| v.as_u64());
        if version != Some(u64::from(MANIFEST_VERSION)) {
            let why = match version {
                Some(1) => "its row digests use another row encoding",
                Some(2) => "its order-independent fingerprint is the digest sum, which chosen rows can forge (version 3 uses LtHash16)",
                _ => "it is not a manifest this poisonscan knows",
            };
            return Err(bad(format!(
                "manifest version {} (written by poisonscan {}), this poisonscan reads version {MANIFEST_VERSION}: \
                 {why}; re-create the manifest from the trusted data (poisonscan lineage DATA -o MANIFEST)",
                version.map_or("unknown".to_string(), |v| v.to_string()),
                raw.get("tool_version").and_then(|v| v.as_str()).unwrap_or("unknown")
            )));
        }
        let header: ManifestHeader =
            serde_json::from_value(raw).map_err(|e| bad(format!("header does not parse: {e}")))?;
        let reader = builder.build().map_err(|e| bad(e.to_string()))?;
        let mut digests = Vec::new();
        let mut ids: Option<Vec<String>> = header.id_column.as_ref().map(|_| Vec::new());
        for b in reader {
            let b = b.map_err(|e| bad(e.to_string()))?;
            let d = b
                .column_by_name("digest")
                .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
                .filter(|a| a.value_length() == 32)
                .ok_or_else(|| bad("column 'digest' missing or not 32-byte binary".into()))?;
            for i in 0..d.len() {
                let mut x = [0u8; 32];
                x.copy_from_slice(d.value(i));
                digests.push(x);
            }
            if let Some(ids) = ids.as_mut() {
                let c = b
                    .column_by_name("id")
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .ok_or_else(|| bad("column 'id' missing".into()))?;
                ids.extend(c.iter().map(|v| v.unwrap_or_default().to_string()));
            }
        }
        Ok(Manifest {
            header,
            digests,
            ids,
        })
    }
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: PathBuf::from(path),
        message: e.to_string(),
    }
}
