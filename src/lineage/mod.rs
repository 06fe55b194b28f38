//! blake3 lineage: canonical row digests, dataset fingerprints, keyed manifests, verification and diffs.
//!
//! See [`encode`] for the canonical row encoding, [`fingerprint`] for the mergeable fingerprint and Merkle root,
//! [`manifest`] for the file format and keyed seals.

pub mod encode;
pub mod fingerprint;
pub mod lanes;
pub mod lthash;
pub mod manifest;

pub use encode::{HashMode, RowDigest, RowHasher};
pub use fingerprint::{Fingerprint, LineageState};
pub use manifest::{Key, Manifest};

use crate::error::{ContractError, Error, SourceError};
use crate::source::{BatchStream, Part, Source};
use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Digests of every row of an input, with its ids and fingerprint state.
#[derive(Debug)]
pub struct DigestedInput {
    /// Schema of the input.
    pub schema: SchemaRef,
    /// Row digests in input order.
    pub digests: Vec<RowDigest>,
    /// Id values in input order (when an id column is given).
    pub ids: Option<Vec<String>>,
    /// Fingerprint state over all rows.
    pub state: LineageState,
}

/// Id values of a column as strings (nulls as the empty string).
pub fn id_strings(col: &ArrayRef) -> Result<Vec<String>, ContractError> {
    let s =
        crate::contract::checks::as_utf8(col).ok_or_else(|| ContractError::UnsupportedType {
            origin: "id column".into(),
            column: String::new(),
            found: col.data_type().to_string(),
        })?;
    Ok(s.iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

/// Id values that occur on more than one row: an id column is meant to name one row each.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DuplicateIds {
    /// Distinct id values that are repeated.
    pub values: u64,
    /// Rows whose id value is repeated (all copies, the first one included).
    pub rows: u64,
    /// Up to 10 repeated values, each with up to 5 of its 0-based rows, in order of first occurrence.
    pub examples: Vec<(String, Vec<u64>)>,
}

impl DuplicateIds {
    /// The repeated values of `ids`, or None when every value is unique.
    pub fn find(ids: &[String]) -> Option<DuplicateIds> {
        let mut rows: std::collections::HashMap<&str, Vec<u64>> = std::collections::HashMap::new();
        for (i, v) in ids.iter().enumerate() {
            rows.entry(v.as_str()).or_default().push(i as u64);
        }
        let mut repeated: Vec<(&str, Vec<u64>)> =
            rows.into_iter().filter(|(_, r)| r.len() > 1).collect();
        if repeated.is_empty() {
            return None;
        }
        repeated.sort_by_key(|(_, r)| r[0]);
        Some(DuplicateIds {
            values: repeated.len() as u64,
            rows: repeated.iter().map(|(_, r)| r.len() as u64).sum(),
            examples: repeated
                .iter()
                .take(10)
                .map(|(v, r)| (v.to_string(), r.iter().take(5).copied().collect()))
                .collect(),
        })
    }

    /// One line for people: "3 id values occur on more than one row (7 rows), e.g. '12' at rows 4, 9".
    pub fn describe(&self, column: &str) -> String {
        let ex: Vec<String> = self
            .examples
            .iter()
            .take(3)
            .map(|(v, r)| {
                let rows: Vec<String> = r.iter().map(|x| x.to_string()).collect();
                format!("'{v}' at rows {}", rows.join(", "))
            })
            .collect();
        format!(
            "id column {column}: {} value{} occur{} on more than one row ({} rows), e.g. {}",
            self.values,
            if self.values == 1 { "" } else { "s" },
            if self.values == 1 { "s" } else { "" },
            self.rows,
            ex.join("; ")
        )
    }
}

/// Index of a named column, or a typed error naming the role it was wanted for.
pub fn column_index(
    schema: &SchemaRef,
    origin: &str,
    name: &str,
    role: &str,
) -> Result<usize, ContractError> {
    schema
        .index_of(name)
        .map_err(|_| ContractError::MissingColumn {
            origin: origin.to_string(),
            column: name.to_string(),
            role: role.to_string(),
            present: schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Digest every row of `source` (one streaming pass).
///
/// A Parquet file or folder with several row groups is read row group by row group on the rayon pool, each part
/// decoded and hashed by one task into its own slice of the digests and its own [`LineageState`], which are then
/// merged: decoding and hashing share every core without a hand-off between threads. Other sources are decoded
/// ahead on one thread while the previous batch is hashed on the pool. Memory is bounded by (threads + 2) batches
/// plus 32 bytes (and the id) per row.
pub fn digest_source(
    source: &mut Source,
    id: Option<&str>,
    mode: HashMode,
) -> Result<DigestedInput, Error> {
    let origin = source.origin();
    // A Parquet input is opened once (by `parts`): a single part is read as the whole stream.
    let parts = source.parts()?.filter(|p| !p.is_empty());
    let stream = match parts.as_deref() {
        Some([part, ..]) => part.open()?,
        _ => source.open()?,
    };
    let schema = stream.schema();
    let id_idx = id
        .map(|c| column_index(&schema, &origin, c, "--id"))
        .transpose()?;
    let hasher = RowHasher::new((0..schema.fields().len()).collect(), mode);
    let (digests, ids, state) = match parts {
        Some(parts) if parts.len() > 1 => {
            drop(stream);
            digest_parts(&parts, &hasher, id_idx)?
        }
        // Decode ahead on its own thread while the previous batch is hashed on the rayon pool.
        _ => digest_stream(stream.prefetch(2), &hasher, id_idx)?,
    };
    if digests.is_empty() {
        return Err(Error::ZeroRows { origin });
    }
    Ok(DigestedInput {
        schema,
        digests,
        ids,
        state,
    })
}

/// Row digests, ids (when an id column is given) and fingerprint state of an input.
type Digests = (Vec<RowDigest>, Option<Vec<String>>, LineageState);

/// Fingerprint state and ids of one part.
type PartState = (LineageState, Option<Vec<String>>);

/// [`digest_source`] over one stream of batches, in order.
fn digest_stream(
    stream: BatchStream,
    hasher: &RowHasher,
    id_idx: Option<usize>,
) -> Result<Digests, Error> {
    let mut digests = Vec::new();
    let mut ids = id_idx.map(|_| Vec::new());
    let mut state = LineageState::default();
    for batch in stream {
        let batch: RecordBatch = batch?;
        let start = digests.len();
        hasher.digest_batch_into(&batch, &mut digests)?;
        state.add(start as u64, &digests[start..]);
        if let (Some(i), Some(ids)) = (id_idx, ids.as_mut()) {
            ids.extend(id_strings(batch.column(i))?);
        }
    }
    Ok((digests, ids, state))
}

/// [`digest_source`] over independently decodable parts, in parallel.
fn digest_parts(
    parts: &[Part],
    hasher: &RowHasher,
    id_idx: Option<usize>,
) -> Result<Digests, Error> {
    use rayon::prelude::*;
    let total: u64 = parts.iter().map(Part::rows).sum();
    let mut digests = vec![[0u8; 32]; total as usize];
    // One disjoint slice of the digests per part, in row order.
    let mut slots = Vec::with_capacity(parts.len());
    let mut rest = digests.as_mut_slice();
    for p in parts {
        let (head, tail) = rest.split_at_mut(p.rows() as usize);
        slots.push(head);
        rest = tail;
    }
    let done: Vec<Result<PartState, Error>> = parts
        .par_iter()
        .zip(slots)
        .map(|(part, out)| {
            let mut state = LineageState::default();
            let mut ids = id_idx.map(|_| Vec::with_capacity(out.len()));
            let mut filled = 0usize;
            for batch in part.open()? {
                let batch = batch?;
                let end = filled + batch.num_rows();
                if end > out.len() {
                    return Err(Error::Source(SourceError::Read {
                        origin: part.origin(),
                        rows_read: filled as u64,
                        message: format!(
                            "the row group holds more rows than the {} its metadata declares",
                            out.len()
                        ),
                    }));
                }
                hasher.digest_batch_to(&batch, &mut out[filled..end])?;
                if let (Some(i), Some(ids)) = (id_idx, ids.as_mut()) {
                    ids.extend(id_strings(batch.column(i))?);
                }
                filled = end;
            }
            if filled != out.len() {
                return Err(Error::Source(SourceError::Read {
                    origin: part.origin(),
                    rows_read: filled as u64,
                    message: format!(
                        "the row group ended after {filled} rows; its metadata declares {}",
                        out.len()
                    ),
                }));
            }
            state.add(part.first_row(), out);
            Ok((state, ids))
        })
        .collect();
    let mut state = LineageState::default();
    let mut ids = id_idx.map(|_| Vec::with_capacity(digests.len()));
    for d in done {
        let (s, part_ids) = d?;
        state.merge(s)?;
        if let (Some(all), Some(part_ids)) = (ids.as_mut(), part_ids) {
            all.extend(part_ids);
        }
    }
    Ok((digests, ids, state))
}

/// Refuse an `--id` column other than the one `manifest` (named `origin` in the message) records its rows by: ids of
/// different columns never match, so every row would come out added and every manifest row removed.
pub fn check_id_column(manifest: &Manifest, origin: &str, id: &str) -> Result<(), Error> {
    match &manifest.header.id_column {
        Some(has) if has != id => Err(Error::Usage(format!(
            "--id {id}: {origin} records its rows by id column '{has}'; use --id {has}, or re-create the manifest \
             with `poisonscan lineage DATA --id {id}`"
        ))),
        _ => Ok(()),
    }
}

/// Make a manifest of `source`.
pub fn make_manifest(
    source: &mut Source,
    id: Option<&str>,
    key: Option<&Key>,
) -> Result<Manifest, Error> {
    let mode = key.map(|k| k.mode()).unwrap_or(HashMode::Plain);
    let d = digest_source(source, id, mode)?;
    let fp = d.state.finish()?;
    Ok(Manifest::build(
        source.origin(),
        encode::schema_hash(&d.schema),
        fp,
        d.digests,
        id.map(str::to_string),
        d.ids,
        key,
    ))
}

/// Outcome of `verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    /// True when the manifest is intact and the data matches it.
    pub matches: bool,
    /// What does not match.
    pub problems: Vec<String>,
    /// Fingerprint of the data as scanned now.
    pub data_fingerprint: Fingerprint,
}

/// Check a manifest's integrity and that `source` is exactly the data it describes.
pub fn verify(
    manifest: &Manifest,
    source: &mut Source,
    key: Option<&Key>,
) -> Result<Verification, Error> {
    let mut problems = manifest.check_integrity(key)?;
    let mode = if manifest.header.keyed {
        key.map(|k| k.mode()).unwrap_or(HashMode::Plain)
    } else {
        HashMode::Plain
    };
    let d = digest_source(source, manifest.header.id_column.as_deref(), mode)?;
    let fp = d.state.finish()?;
    if encode::schema_hash(&d.schema) != manifest.header.schema_hash {
        problems.push("schema differs from the manifest's".into());
    }
    if fp.rows != manifest.header.fingerprint.rows {
        problems.push(format!(
            "row count {} differs from the manifest's {}",
            fp.rows, manifest.header.fingerprint.rows
        ));
    }
    if fp.lthash != manifest.header.fingerprint.lthash {
        problems.push("row contents differ (LtHash)".into());
    } else if fp.merkle_root != manifest.header.fingerprint.merkle_root {
        problems
            .push("same rows in a different order (Merkle root differs, LtHash matches)".into());
    }
    if problems.is_empty() {
        if let (Some(a), Some(b)) = (&d.ids, &manifest.ids) {
            if a != b {
                problems.push("ids differ".into());
            }
        }
    }
    Ok(Verification {
        matches: problems.is_empty(),
        problems,
        data_fingerprint: fp,
    })
}

/// Check a manifest's integrity, digest `source` the way the manifest was made (keyed or not, by id or not) and diff
/// it: the library side of `poisonscan diff`. Returns the diff and the data's digests and ids.
pub fn diff_source(
    manifest: &Manifest,
    manifest_origin: &str,
    source: &mut Source,
    key: Option<&Key>,
) -> Result<(Diff, DigestedInput), Error> {
    let problems = manifest.check_integrity(key)?;
    if !problems.is_empty() {
        return Err(crate::error::LineageError::InvalidManifest {
            path: manifest_origin.into(),
            message: problems.join("; "),
        }
        .into());
    }
    let mode = match (key, manifest.header.keyed) {
        (Some(k), true) => k.mode(),
        _ => HashMode::Plain,
    };
    let d = digest_source(source, manifest.header.id_column.as_deref(), mode)?;
    let df = diff(
        manifest,
        &d.digests,
        d.ids.as_deref(),
        &encode::schema_hash(&d.schema),
    );
    Ok((df, d))
}

/// Status of one data row against a trusted manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    /// The same row is in the manifest.
    Unchanged,
    /// Not in the manifest.
    Added,
    /// Same id, different content.
    Changed,
}

impl RowStatus {
    /// Name as used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Unchanged => "unchanged",
            RowStatus::Added => "added",
            RowStatus::Changed => "changed",
        }
    }
}

/// Rows added, removed and changed since a manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Diff {
    /// Status of each data row, in data order.
    pub status: Vec<RowStatus>,
    /// Manifest row position of each changed / unchanged data row (None for added rows).
    pub manifest_row: Vec<Option<u64>>,
    /// Manifest row positions that are not in the data.
    pub removed: Vec<u64>,
    /// Whether rows were matched by id (else by content).
    pub by_id: bool,
    /// The data's columns or types differ from the manifest's (every row's digest changes with them).
    #[serde(default)]
    pub schema_changed: bool,
}

impl Diff {
    /// Number of rows with a status.
    pub fn count(&self, s: RowStatus) -> usize {
        self.status.iter().filter(|x| **x == s).count()
    }

    /// `score_baseline` per data row: changed 1.0 (flagged), added 0.3 (new, not suspicious by itself), unchanged 0.
    pub fn scores(&self) -> Vec<f32> {
        self.status
            .iter()
            .map(|s| match s {
                RowStatus::Changed => 1.0,
                RowStatus::Added => 0.3,
                RowStatus::Unchanged => 0.0,
            })
            .collect()
    }

    /// Reason text for data row `i` (None when unchanged).
    pub fn reason(&self, i: usize) -> Option<String> {
        match (self.status[i], self.manifest_row[i]) {
            (RowStatus::Changed, Some(r)) => Some(format!(
                "changed since the baseline manifest (manifest row {r})"
            )),
            (RowStatus::Changed, None) => Some("changed since the baseline manifest".into()),
            (RowStatus::Added, _) => Some("added since the baseline manifest".into()),
            (RowStatus::Unchanged, _) => None,
        }
    }
}

/// Diff data digests (and ids) against a manifest: by id when both have ids, else by content (multiset).
/// `schema_hash` is the data's (`encode::schema_hash`), compared with the manifest's.
///
/// Ids need not be unique. The data rows of an id first take the manifest rows of that id with the same content
/// (unchanged, in row order), then its remaining manifest rows in row order (changed); rows left over are added or
/// removed. So a diff of data against its own manifest finds no differences, however the rows are ordered.
pub fn diff(
    manifest: &Manifest,
    digests: &[RowDigest],
    ids: Option<&[String]>,
    schema_hash: &str,
) -> Diff {
    let n = digests.len();
    let mut status = vec![RowStatus::Added; n];
    let mut manifest_row = vec![None; n];
    let mut seen = vec![false; manifest.digests.len()];
    // Manifest rows under each key, last row first so that `pop` hands them out in row order.
    fn stacks<K: std::hash::Hash + Eq>(
        keys: impl DoubleEndedIterator<Item = (usize, K)>,
    ) -> HashMap<K, Vec<usize>> {
        let mut m: HashMap<K, Vec<usize>> = HashMap::new();
        for (i, k) in keys.rev() {
            m.entry(k).or_default().push(i);
        }
        m
    }
    match (ids, manifest.ids.as_ref()) {
        (Some(ids), Some(mids)) => {
            // Same id and same content: unchanged.
            let mut same = stacks(
                mids.iter()
                    .zip(&manifest.digests)
                    .map(|(id, d)| (id.as_str(), d))
                    .enumerate(),
            );
            let mut pending = Vec::new();
            for (r, (id, d)) in ids.iter().zip(digests).enumerate() {
                match same.get_mut(&(id.as_str(), d)).and_then(|v| v.pop()) {
                    Some(m) => {
                        seen[m] = true;
                        manifest_row[r] = Some(m as u64);
                        status[r] = RowStatus::Unchanged;
                    }
                    None => pending.push(r),
                }
            }
            // Same id, other content: the id's manifest rows not matched above, in row order.
            let mut by_id = stacks(mids.iter().map(String::as_str).enumerate());
            for r in pending {
                let Some(rows) = by_id.get_mut(ids[r].as_str()) else {
                    continue;
                };
                while let Some(m) = rows.pop() {
                    if !seen[m] {
                        seen[m] = true;
                        manifest_row[r] = Some(m as u64);
                        status[r] = RowStatus::Changed;
                        break;
                    }
                }
            }
        }
        _ => {
            let mut pool = stacks(manifest.digests.iter().enumerate());
            for (r, d) in digests.iter().enumerate() {
                if let Some(m) = pool.get_mut(d).and_then(|v| v.pop()) {
                    seen[m] = true;
                    manifest_row[r] = Some(m as u64);
                    status[r] = RowStatus::Unchanged;
                }
            }
        }
    }
    let removed = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| i as u64)
        .collect();
    Diff {
        status,
        manifest_row,
        removed,
        by_id: ids.is_some() && manifest.ids.is_some(),
        schema_changed: schema_hash != manifest.header.schema_hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A manifest of rows given by (id, content) pairs; the content number stands for the row's digest.
    fn manifest(rows: &[(u8, u8)]) -> Manifest {
        let (ids, digests) = split(rows);
        let mut state = LineageState::default();
        state.add(0, &digests);
        let fp = state.finish().unwrap();
        Manifest::build(
            "test".into(),
            String::new(),
            fp,
            digests,
            Some("id".into()),
            Some(ids),
            None,
        )
    }

    fn split(rows: &[(u8, u8)]) -> (Vec<String>, Vec<RowDigest>) {
        rows.iter()
            .map(|&(id, c)| (id.to_string(), *blake3::hash(&[c]).as_bytes()))
            .unzip()
    }

    fn diff_of(m: &Manifest, rows: &[(u8, u8)], by_id: bool) -> Diff {
        let (ids, digests) = split(rows);
        diff(m, &digests, by_id.then_some(ids.as_slice()), "")
    }

    fn counts(d: &Diff) -> (usize, usize, usize, usize) {
        (
            d.count(RowStatus::Unchanged),
            d.count(RowStatus::Changed),
            d.count(RowStatus::Added),
            d.removed.len(),
        )
    }

    #[test]
    fn repeated_ids_are_matched_by_content_then_in_order() {
        let m = manifest(&[(1, 10), (2, 20), (1, 11), (3, 30)]);
        // The same rows: no differences (the second row of id 1 used to come out added, and its manifest row
        // removed).
        assert_eq!(
            counts(&diff_of(&m, &[(1, 10), (2, 20), (1, 11), (3, 30)], true)),
            (4, 0, 0, 0)
        );
        // Rows of id 1 swapped: still the same rows.
        let d = diff_of(&m, &[(1, 11), (2, 20), (1, 10), (3, 30)], true);
        assert_eq!(counts(&d), (4, 0, 0, 0));
        assert_eq!(d.manifest_row[0], Some(2));
        // The second row of id 1 edited: that row is changed, paired with the manifest row of id 1 left over.
        let d = diff_of(&m, &[(1, 10), (2, 20), (1, 99), (3, 30)], true);
        assert_eq!(counts(&d), (3, 1, 0, 0));
        assert_eq!(
            (d.status[2], d.manifest_row[2]),
            (RowStatus::Changed, Some(2))
        );
        // A third row of id 1: added; a row of id 1 gone: removed.
        assert_eq!(
            counts(&diff_of(
                &m,
                &[(1, 10), (2, 20), (1, 11), (3, 30), (1, 12)],
                true
            )),
            (4, 0, 1, 0)
        );
        let d = diff_of(&m, &[(2, 20), (1, 11), (3, 30)], true);
        assert_eq!(counts(&d), (3, 0, 0, 1));
        assert_eq!(d.removed, vec![0]);
    }

    proptest! {
        /// Against its own manifest, any reordering of the rows shows no differences; editing, dropping or adding
        /// one row shows exactly that one difference -- by id (ids drawn from a few values, so many repeat) and by
        /// content.
        #[test]
        fn a_diff_finds_exactly_the_edits(
            (rows, shuffled) in prop::collection::vec((0u8..6, 0u8..8), 1..60)
                .prop_flat_map(|rows| (Just(rows.clone()), Just(rows).prop_shuffle())),
            pick in any::<prop::sample::Index>(),
            by_id in any::<bool>(),
        ) {
            let m = manifest(&rows);
            let n = rows.len();
            prop_assert_eq!(counts(&diff_of(&m, &shuffled, by_id)), (n, 0, 0, 0));
            let k = pick.index(n);
            // Edit row k's content to a value no row has.
            let mut edited = rows.clone();
            edited[k].1 = 200;
            let expect = if by_id { (n - 1, 1, 0, 0) } else { (n - 1, 0, 1, 1) };
            prop_assert_eq!(counts(&diff_of(&m, &edited, by_id)), expect);
            // Drop row k.
            let mut dropped = rows.clone();
            dropped.remove(k);
            prop_assert_eq!(counts(&diff_of(&m, &dropped, by_id)), (n - 1, 0, 0, 1));
            // Add a copy of row k.
            let mut added = rows.clone();
            added.push(rows[k]);
            prop_assert_eq!(counts(&diff_of(&m, &added, by_id)), (n, 0, 1, 0));
        }
    }
}
