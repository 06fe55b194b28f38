//! Pipeline outputs of a finished scan: the clean / quarantine split (re-reading the data and checking that every
//! row is the one scanned), events and the HTML page.

use super::ScanOutcome;
use crate::error::{Error, LineageError};
use crate::lineage::{HashMode, RowDigest, RowHasher};
use crate::report::Verdict;
use arrow::array::RecordBatch;
use std::path::Path;

impl ScanOutcome {
    /// The audit lines of this scan (see [`crate::events`]).
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        crate::events::audit_events(&self.report, &self.policy, std::time::SystemTime::now())
    }

    /// The OpenLineage run event of this scan (see [`crate::events`]).
    pub fn openlineage_event(&self) -> serde_json::Value {
        crate::events::openlineage_event(
            &self.report,
            &self.policy,
            &self.metrics,
            std::time::SystemTime::now(),
        )
    }

    /// The report as one self-contained HTML page (see [`crate::html`]).
    pub fn to_html(&self) -> String {
        crate::html::render(&crate::html::HtmlInput {
            report: &self.report,
            scores: &self.scores,
            violations: &self.violations,
            visuals: &self.visuals,
            policy: &self.policy,
        })
    }

    /// True unless the verdict is fail.
    pub fn passed(&self) -> bool {
        self.report.verdict != Verdict::Fail
    }

    /// Write the input split into kept and flagged rows (same schema as the input), both or neither. The data is
    /// read again (streams were spooled when the scan needed it; a consumed one-shot stream cannot be split).
    pub fn split(
        &mut self,
        clean: Option<&Path>,
        quarantine: Option<&Path>,
    ) -> Result<(u64, u64), Error> {
        let paths: Vec<(&str, &Path)> = [("clean", clean), ("quarantine", quarantine)]
            .into_iter()
            .filter_map(|(w, p)| p.map(|p| (w, p)))
            .collect();
        let set = crate::output::OutputSet::prepare(&paths)?;
        let counts = self.split_into(&set, clean, quarantine)?;
        set.commit()?;
        Ok(counts)
    }

    /// As [`ScanOutcome::split`], into files staged by `set` (committed by the caller with the other outputs).
    pub fn split_into(
        &mut self,
        set: &crate::output::OutputSet,
        clean: Option<&Path>,
        quarantine: Option<&Path>,
    ) -> Result<(u64, u64), Error> {
        let flagged = self.scores.flagged();
        let mut stream = self.data.open()?;
        let schema = stream.schema();
        let origin = stream.origin().to_string();
        let hasher = RowHasher::new((0..schema.fields().len()).collect(), self.hash_mode);
        let writer = |p: &Path| crate::output::TableWriter::into_file(set.file(p)?, p, &schema);
        let mut wc = clean.map(writer).transpose()?;
        let mut wq = quarantine.map(writer).transpose()?;
        let (mut nc, mut nq, mut offset) = (0u64, 0u64, 0usize);
        for b in &mut stream {
            let b = b?;
            let end = offset + b.num_rows();
            if end > flagged.len() {
                return Err(rows_differ(end, flagged.len()));
            }
            // The input may have changed since it was scanned: every row must be the one scored.
            same_rows(&hasher, &b, &self.digests[offset..end], offset, &origin)?;
            let (kb, qb) = split_batch(&b, &flagged[offset..end])?;
            offset = end;
            if let Some(w) = wc.as_mut() {
                nc += kb.num_rows() as u64;
                w.write(&kb)?;
            }
            if let Some(w) = wq.as_mut() {
                nq += qb.num_rows() as u64;
                w.write(&qb)?;
            }
        }
        if offset != flagged.len() {
            return Err(rows_differ(offset, flagged.len()));
        }
        if let Some(w) = wc {
            w.finish()?;
        }
        if let Some(w) = wq {
            w.finish()?;
        }
        Ok((nc, nq))
    }
}

/// Refuse a batch whose rows are not the ones scanned at `offset` (digests compared row by row).
fn same_rows(
    hasher: &RowHasher,
    b: &RecordBatch,
    scanned: &[RowDigest],
    offset: usize,
    origin: &str,
) -> Result<(), Error> {
    let d = hasher.digest_batch(b)?;
    if let Some(i) = d.iter().zip(scanned).position(|(a, b)| a != b) {
        return Err(LineageError::NotScannedData {
            origin: origin.to_string(),
            message: format!("row {} differs from the row scanned there", offset + i),
        }
        .into());
    }
    Ok(())
}

/// Rows of `batches` split by a flag mask: (kept, flagged). The batches must be the scanned data: each row's digest
/// (made with `mode`) must equal the scan's `digests` at its position. Used by the Python helpers.
pub fn split_batches(
    batches: &[RecordBatch],
    flagged: &[bool],
    digests: &[RowDigest],
    mode: HashMode,
    origin: &str,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), Error> {
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    if total != flagged.len() || total != digests.len() {
        return Err(LineageError::NotScannedData {
            origin: origin.to_string(),
            message: format!("it has {total} rows, the scan scored {}", flagged.len()),
        }
        .into());
    }
    let (mut keep, mut quar, mut off) = (Vec::new(), Vec::new(), 0usize);
    for b in batches {
        let hasher = RowHasher::new((0..b.num_columns()).collect(), mode);
        same_rows(&hasher, b, &digests[off..off + b.num_rows()], off, origin)?;
        let (k, q) = split_batch(b, &flagged[off..off + b.num_rows()])?;
        off += b.num_rows();
        keep.push(k);
        quar.push(q);
    }
    Ok((keep, quar))
}

/// One batch split by its rows' flags: (kept, flagged).
pub(super) fn split_batch(
    b: &RecordBatch,
    flags: &[bool],
) -> Result<(RecordBatch, RecordBatch), Error> {
    let e = |e: arrow::error::ArrowError| Error::Usage(e.to_string());
    let q = arrow::array::BooleanArray::from(flags.to_vec());
    let k = arrow::compute::not(&q).map_err(e)?;
    Ok((
        arrow::compute::filter_record_batch(b, &k).map_err(e)?,
        arrow::compute::filter_record_batch(b, &q).map_err(e)?,
    ))
}

fn rows_differ(seen: usize, scanned: usize) -> Error {
    Error::Usage(format!(
        "the data has {seen} rows but the scan scored {scanned}: pass the same data that was scanned"
    ))
}
