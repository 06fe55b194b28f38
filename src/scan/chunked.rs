//! A scan in chunks: the data is read as a stream and scored a chunk of rows at a time against one fit, each chunk's
//! outcome handed to the caller (to write its scores and split rows) and folded into a [`PartitionMerger`], so memory
//! is bounded by one chunk and the fit, not by the data. The models a detector builds from the fit alone are kept
//! between chunks ([`crate::detect`]), so they are built once.
//!
//! What is exact and what is per chunk is what [`crate::merge`] says of partitions: row counts, the fingerprint, the
//! contract, drift and every score that depends only on the row and the fit are those of a scan in one piece;
//! evidence that compares rows with each other (duplicates, sub-clusters, the data's own neighbours) is computed
//! within each chunk.

use super::{ContractSource, Scanner};
use crate::error::Error;
use crate::fit::FittedScanner;
use crate::merge::{MergedReport, PartitionMerger};
use crate::output::TableWriter;
use crate::report::{SampleRow, REPORT_VERSION};
use crate::source::Source;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Rows kept in the merged report's sample of flagged rows.
const SAMPLE: usize = 100;

/// One scored chunk, as handed to the caller.
pub struct Chunk<'a> {
    /// Position of the chunk (0-based).
    pub index: usize,
    /// First row of the chunk in the data.
    pub start: u64,
    /// The chunk's rows as read, when [`Scanner::keep_chunks`] asked for them (else empty).
    pub batches: &'a [RecordBatch],
    /// The chunk's scan (rows numbered from 0 within the chunk).
    pub outcome: &'a super::ScanOutcome,
}

impl Chunk<'_> {
    /// The chunk's rows split into kept and flagged (same schema as the input), batch by batch; needs
    /// [`Scanner::keep_chunks`].
    pub fn split(&self) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), Error> {
        let flagged = self.outcome.scores.flagged();
        let held: usize = self.batches.iter().map(|b| b.num_rows()).sum();
        if held != flagged.len() {
            return Err(Error::Usage(format!(
                "chunk {} holds {held} of its {} rows: ask for them with keep_chunks(true)",
                self.index,
                flagged.len()
            )));
        }
        let (mut keep, mut quarantine, mut offset) = (Vec::new(), Vec::new(), 0usize);
        for b in self.batches {
            let (k, q) = super::split::split_batch(b, &flagged[offset..offset + b.num_rows()])?;
            offset += b.num_rows();
            keep.push(k);
            quarantine.push(q);
        }
        Ok((keep, quarantine))
    }
}

/// The report of a scan in chunks: the merged verdict, counts, drift and fingerprint, with what a reader of a
/// one-piece report looks for (inputs, contract, notes, a sample of the highest-scored flagged rows).
#[derive(Debug, Clone, Serialize)]
pub struct ChunkedReport {
    /// Layout version (the one-piece report's).
    pub report_version: u32,
    /// `poisonscan`.
    pub tool: String,
    /// Tool version.
    pub tool_version: String,
    /// Inputs and options (the first chunk's, with the data's own origin).
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Where the contract came from.
    pub contract_source: String,
    /// blake3 of the contract.
    pub contract_hash: String,
    /// blake3 of the policy.
    pub policy_hash: String,
    /// blake3 of the data's schema.
    pub schema_hash: String,
    /// Rows per chunk (the last may hold fewer).
    pub chunk_rows: usize,
    /// Verdict, checks, counts, drift, fingerprint and one line per chunk.
    #[serde(flatten)]
    pub merged: MergedReport,
    /// Notes of the chunks, each once, in the order first seen.
    pub notes: Vec<String>,
    /// The highest-scored flagged rows over all chunks (rows numbered in the data).
    pub sample: Vec<SampleRow>,
    /// Wall time (ms): `total`, and each stage's time summed over the chunks (`chunks_<stage>`).
    pub timings_ms: BTreeMap<String, u64>,
}

impl ChunkedReport {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl Scanner {
    /// Keep each chunk's rows for the caller of [`Scanner::run_chunked`] (to split them): memory then holds one
    /// chunk's rows as read besides its features.
    pub fn keep_chunks(mut self, on: bool) -> Self {
        self.keep_chunks = on;
        self
    }

    /// Scan in chunks of `chunk_rows` rows (see the module documentation). Needs a fit: a fitted scanner, a
    /// reference (fitted once here) or a contract file; a contract inferred from each chunk would differ between
    /// chunks, and a baseline diff needs every row at once, so both are refused. `each` sees every chunk in order,
    /// before the next is read.
    pub fn run_chunked(
        mut self,
        chunk_rows: usize,
        mut each: impl FnMut(Chunk<'_>) -> Result<(), Error>,
    ) -> Result<ChunkedReport, Error> {
        let started = Instant::now();
        if chunk_rows == 0 {
            return Err(Error::Usage("--chunk-rows must be at least 1".into()));
        }
        if self.baseline.is_some() {
            return Err(Error::Usage(
                "--baseline needs every row at once: scan without --chunk-rows".into(),
            ));
        }
        let fit = match std::mem::replace(&mut self.contract_source, ContractSource::Infer) {
            ContractSource::Fitted { fitted, origin } => Fit::Fitted(fitted, origin),
            ContractSource::Reference(mut src) => {
                let origin = src.origin();
                let f = FittedScanner::fit(
                    &mut src,
                    self.label.as_deref(),
                    self.id.as_deref(),
                    self.features.clone(),
                    self.embedding.as_deref(),
                )?;
                Fit::Fitted(Box::new(f), origin)
            }
            ContractSource::Contract { contract, origin } => Fit::Contract(contract, origin),
            ContractSource::Infer => {
                return Err(Error::Usage(
                    "--chunk-rows needs a fit that every chunk shares: give --reference, --fitted or --contract"
                        .into(),
                ))
            }
        };
        let data_state = self.data.file_state();
        let widen = self.allow_widening || self.data.types_from_text();
        let stream = self.data.open()?;
        let schema = stream.schema();
        let origin = stream.origin().to_string();
        // The split needs a chunk's rows after its scan; only then are they kept.
        let keep = self.keep_chunks;
        let feed = Arc::new(Mutex::new(Feed {
            stream,
            leftover: None,
            error: None,
            keep,
            kept: Vec::new(),
        }));
        let mut merger = PartitionMerger::new(self.policy.clone()).unit("chunks");
        let mut acc = Accumulated::default();
        let bar = super::pass::progress_bar(self.progress);
        loop {
            let more = match feed.lock() {
                Ok(mut f) => f.fill(),
                Err(_) => false,
            };
            if let Some(e) = feed.lock().ok().and_then(|mut f| f.error.take()) {
                return Err(e.into());
            }
            if !more {
                break;
            }
            let (index, start) = (merger.partitions(), merger.rows());
            let reader = ChunkReader {
                feed: feed.clone(),
                remaining: chunk_rows,
                schema: schema.clone(),
            };
            let s = Scanner {
                data: Source::stream(
                    Box::new(reader),
                    format!("{origin} (chunk {index}, from row {start})"),
                ),
                contract_source: fit.source(),
                label: self.label.clone(),
                id: self.id.clone(),
                features: self.features.clone(),
                embedding: self.embedding.clone(),
                pred_probs: self.pred_probs.clone(),
                policy: self.policy.clone(),
                detect: self.detect.clone(),
                key: self.key.clone(),
                baseline: None,
                progress: false,
                allow_widening: widen,
                keep_chunks: false,
                whole_outputs: false,
            };
            let outcome = s.run();
            // A read error of the data is reported as itself, not as the chunk's stream error.
            if let Some(e) = feed.lock().ok().and_then(|mut f| f.error.take()) {
                return Err(e.into());
            }
            let outcome = outcome?;
            let batches = match feed.lock() {
                Ok(mut f) => std::mem::take(&mut f.kept),
                Err(_) => Vec::new(),
            };
            let digests: Vec<u8> = outcome.digests.iter().flatten().copied().collect();
            merger.add(&outcome.report.to_json(), &digests)?;
            acc.add(&outcome, start);
            each(Chunk {
                index,
                start,
                batches: &batches,
                outcome: &outcome,
            })?;
            if let Some(b) = &bar {
                b.set_position(merger.rows());
            }
        }
        drop(feed);
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        self.data.unchanged_since(&data_state)?;
        // Every chunk holds rows: no first chunk, no rows.
        let Some(mut first) = acc.first.take() else {
            return Err(Error::ZeroRows { origin });
        };
        let merged = merger.finish()?;
        if merged.partitions.len() > 1 {
            acc.notes.push(format!(
                "scanned in {} chunks of up to {chunk_rows} rows against one fit: duplicates, sub-clusters and the \
                 data's own neighbours are compared within each chunk",
                merged.partitions.len()
            ));
        }
        first
            .inputs
            .insert("data".to_string(), serde_json::json!(origin));
        let mut timings: BTreeMap<String, u64> = acc
            .timings
            .iter()
            .map(|(k, v)| (format!("chunks_{k}"), *v))
            .collect();
        timings.insert("total".to_string(), started.elapsed().as_millis() as u64);
        Ok(ChunkedReport {
            report_version: REPORT_VERSION,
            tool: "poisonscan".into(),
            tool_version: crate::VERSION.into(),
            inputs: first.inputs,
            contract_source: first.contract_source,
            contract_hash: first.contract_hash,
            policy_hash: first.policy_hash,
            schema_hash: first.schema_hash,
            chunk_rows,
            merged,
            notes: acc.notes,
            sample: acc.sample,
            timings_ms: timings,
        })
    }
}

/// The data's stream, shared by the chunks in turn: the rest of a batch a chunk boundary cut stays for the next.
struct Feed {
    stream: crate::source::BatchStream,
    leftover: Option<RecordBatch>,
    /// A read error of the data, kept to be returned as itself.
    error: Option<crate::error::SourceError>,
    keep: bool,
    /// The rows handed to the current chunk, when kept.
    kept: Vec<RecordBatch>,
}

impl Feed {
    /// Make the next rows ready; false at the end of the data or on a read error (kept in `error`).
    fn fill(&mut self) -> bool {
        while self.leftover.is_none() {
            match self.stream.next() {
                None => return false,
                Some(Ok(b)) if b.num_rows() == 0 => {}
                Some(Ok(b)) => self.leftover = Some(b),
                Some(Err(e)) => {
                    self.error = Some(e);
                    return false;
                }
            }
        }
        true
    }
}

/// One chunk's view of the feed: up to `remaining` more rows.
struct ChunkReader {
    feed: Arc<Mutex<Feed>>,
    remaining: usize,
    schema: SchemaRef,
}

impl Iterator for ChunkReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let Ok(mut f) = self.feed.lock() else {
            return Some(Err(ArrowError::ExternalError(
                "the data's stream was lost by an earlier failure".into(),
            )));
        };
        if !f.fill() {
            return f
                .error
                .as_ref()
                .map(|e| Err(ArrowError::ExternalError(e.to_string().into())));
        }
        let b = f.leftover.take()?;
        let out = if b.num_rows() > self.remaining {
            f.leftover = Some(b.slice(self.remaining, b.num_rows() - self.remaining));
            b.slice(0, self.remaining)
        } else {
            b
        };
        self.remaining -= out.num_rows();
        if f.keep {
            f.kept.push(out.clone());
        }
        Some(Ok(out))
    }
}

impl arrow::record_batch::RecordBatchReader for ChunkReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Scanner {
    /// [`Scanner::run_chunked`] writing each chunk's score rows (numbered in the data) to `scores` and its rows to
    /// `clean` / `quarantine`, as files staged by `set` (the caller writes the report and commits the set, so that
    /// all outputs appear together or none).
    pub fn run_chunked_into(
        self,
        chunk_rows: usize,
        set: &crate::output::OutputSet,
        scores: Option<&Path>,
        clean: Option<&Path>,
        quarantine: Option<&Path>,
    ) -> Result<ChunkedReport, Error> {
        let split = clean.is_some() || quarantine.is_some();
        let mut score_w: Option<TableWriter> = None;
        let (mut clean_w, mut quarantine_w): (Option<TableWriter>, Option<TableWriter>) =
            (None, None);
        let report = self.keep_chunks(split).run_chunked(chunk_rows, |c| {
            if let Some(p) = scores {
                let batch = c
                    .outcome
                    .scores
                    .to_batch_at(c.start, Some(true))
                    .map_err(|e| Error::Output {
                        path: p.to_path_buf(),
                        message: e.to_string(),
                    })?;
                if score_w.is_none() {
                    score_w = Some(TableWriter::into_file(set.file(p)?, p, &batch.schema())?);
                }
                if let Some(w) = score_w.as_mut() {
                    w.write(&batch)?;
                }
            }
            if split {
                let (kept, flagged) = c.split()?;
                for (path, w, part) in [
                    (clean, &mut clean_w, kept),
                    (quarantine, &mut quarantine_w, flagged),
                ] {
                    let Some(p) = path else { continue };
                    if w.is_none() {
                        let schema = c.batches[0].schema();
                        *w = Some(TableWriter::into_file(set.file(p)?, p, &schema)?);
                    }
                    if let Some(w) = w.as_mut() {
                        for b in &part {
                            w.write(b)?;
                        }
                    }
                }
            }
            Ok(())
        })?;
        for w in [score_w, clean_w, quarantine_w].into_iter().flatten() {
            w.finish()?;
        }
        Ok(report)
    }
}

/// The fit every chunk is scanned with.
enum Fit {
    Fitted(Box<FittedScanner>, String),
    Contract(crate::contract::Contract, String),
}

impl Fit {
    fn source(&self) -> ContractSource {
        match self {
            Fit::Fitted(f, origin) => ContractSource::Fitted {
                fitted: f.clone(),
                origin: origin.clone(),
            },
            Fit::Contract(c, origin) => ContractSource::Contract {
                contract: c.clone(),
                origin: origin.clone(),
            },
        }
    }
}

/// What the chunked report keeps of each chunk beyond the merger's counts.
#[derive(Default)]
struct Accumulated {
    first: Option<FirstChunk>,
    notes: Vec<String>,
    sample: Vec<SampleRow>,
    timings: BTreeMap<String, u64>,
}

struct FirstChunk {
    inputs: BTreeMap<String, serde_json::Value>,
    contract_source: String,
    contract_hash: String,
    policy_hash: String,
    schema_hash: String,
}

impl Accumulated {
    fn add(&mut self, out: &super::ScanOutcome, start: u64) {
        let r = &out.report;
        if self.first.is_none() {
            self.first = Some(FirstChunk {
                inputs: r.inputs.clone(),
                contract_source: r.contract_source.clone(),
                contract_hash: r.contract_hash.clone(),
                policy_hash: r.policy_hash.clone(),
                schema_hash: r.schema_hash.clone(),
            });
        }
        for (k, v) in &r.timings_ms {
            *self.timings.entry(k.clone()).or_default() += v;
        }
        for n in &r.notes {
            if !self.notes.contains(n) {
                self.notes.push(n.clone());
            }
        }
        self.sample.extend(r.sample.iter().map(|s| SampleRow {
            row: s.row + start,
            ..s.clone()
        }));
        self.sample
            .sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        self.sample.truncate(SAMPLE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scanner, Source};

    /// Rows listed in a fixture's ground truth (`row,kind`: every listed row is a poison).
    fn truth(path: &str) -> std::collections::HashSet<u64> {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect()
    }

    fn scanner(data: &str) -> Scanner {
        Scanner::new(Source::path(data).unwrap().with_batch_size(256))
            .label("label")
            .id("id")
            .reference(Source::path("fixtures/train_reference.parquet").unwrap())
    }

    /// A row's scores as its chunk gave them: contract, outlier, flagged, overall.
    type Row = (f32, f32, bool, f32);

    /// Scores per chunk, stitched into rows of the data.
    fn chunked(data: &str, rows: usize) -> (ChunkedReport, Vec<Row>, usize) {
        let mut per_row = Vec::new();
        let mut chunks = 0;
        let report = scanner(data)
            .keep_chunks(true)
            .run_chunked(rows, |c| {
                assert_eq!(c.start as usize, per_row.len(), "chunks arrive in order");
                let s = &c.outcome.scores;
                let flagged = s.flagged();
                let (contract, outlier) = (&s.checks["contract"], &s.checks["outlier"]);
                let overall = s.overall();
                for (i, f) in flagged.iter().enumerate() {
                    per_row.push((contract[i], outlier[i], *f, overall[i]));
                }
                let (kept, quarantined) = c.split()?;
                let n = |b: &[RecordBatch]| b.iter().map(|b| b.num_rows()).sum::<usize>();
                assert_eq!(n(&quarantined), flagged.iter().filter(|f| **f).count());
                assert_eq!(n(&kept) + n(&quarantined), s.len());
                chunks += 1;
                Ok(())
            })
            .unwrap();
        (report, per_row, chunks)
    }

    #[test]
    fn chunks_give_the_whole_scans_fingerprint_row_scores_and_verdict() {
        let data = "fixtures/train_poisoned.parquet";
        let whole = scanner(data).run().unwrap();
        let n = whole.report.rows as usize;
        let local_flagged = whole.scores.flagged();
        let poisons = truth("fixtures/train_poisoned.truth.csv");
        for rows in [n + 5, 700, 300] {
            let (r, per_row, chunks) = chunked(data, rows);
            assert_eq!(chunks, n.div_ceil(rows));
            assert_eq!(r.merged.partitions.len(), chunks);
            assert_eq!(r.merged.rows as usize, n);
            assert_eq!(per_row.len(), n);
            assert_eq!(
                r.merged.fingerprint, whole.report.fingerprint,
                "{rows}-row chunks"
            );
            assert_eq!(r.merged.verdict, whole.report.verdict);
            assert_eq!(
                r.merged.checks["contract"].count,
                whole.report.checks["contract"].count
            );
            // Scores that depend only on the row and the fit are the whole scan's.
            for (i, (c, o, _, _)) in per_row.iter().enumerate() {
                assert_eq!(*c, whole.scores.checks["contract"][i], "row {i}");
                assert_eq!(*o, whole.scores.checks["outlier"][i], "row {i}");
            }
            let flagged: Vec<bool> = per_row.iter().map(|r| r.2).collect();
            let differ = (0..n).filter(|&i| flagged[i] != local_flagged[i]).count();
            if chunks == 1 {
                assert_eq!(flagged, local_flagged);
                assert_eq!(r.merged.flagged, whole.report.flagged);
            } else {
                // The bound docs/scale.md states for partitions: within 1% of the rows, and the poisons found.
                assert!(
                    differ <= n / 100,
                    "{differ} rows differ with {rows}-row chunks"
                );
                let found = |f: &[bool]| poisons.iter().filter(|&&p| f[p as usize]).count();
                assert!(found(&flagged) + 2 >= found(&local_flagged));
            }
            // The sample is the highest-scored flagged rows, numbered in the data.
            assert!(!r.sample.is_empty());
            let lowest = r
                .sample
                .iter()
                .map(|s| s.score)
                .fold(f32::INFINITY, f32::min);
            for s in &r.sample {
                let row = &per_row[s.row as usize];
                assert!(
                    row.2 && row.3 == s.score,
                    "sample row {} is that row of the data",
                    s.row
                );
            }
            let in_sample: std::collections::HashSet<u64> =
                r.sample.iter().map(|s| s.row).collect();
            let above = (0..n as u64)
                .filter(|i| !in_sample.contains(i) && per_row[*i as usize].2)
                .filter(|&i| per_row[i as usize].3 > lowest)
                .count();
            assert_eq!(
                above, 0,
                "no flagged row outside the sample scores above it"
            );
        }
    }

    #[test]
    fn a_clean_twin_passes_in_chunks() {
        let (r, per_row, chunks) = chunked("fixtures/train_clean.parquet", 500);
        assert!(chunks > 1);
        let flagged = per_row.iter().filter(|r| r.2).count();
        assert!(
            flagged * 100 <= per_row.len(),
            "{flagged} clean rows flagged"
        );
        assert_eq!(
            r.merged.verdict,
            crate::report::Verdict::Pass,
            "{}",
            r.merged.summary
        );
        assert!(r.merged.summary.contains("chunks"), "{}", r.merged.summary);
    }

    #[test]
    fn chunks_need_one_fit_and_no_baseline() {
        let data = || Source::path("fixtures/train_clean.parquet").unwrap();
        let e = Scanner::new(data())
            .run_chunked(100, |_| Ok(()))
            .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains("--reference"), "{e}");
        let e = scanner("fixtures/train_clean.parquet")
            .run_chunked(0, |_| Ok(()))
            .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        // The caller's error stops the scan at that chunk.
        let mut seen = 0;
        let e = scanner("fixtures/train_clean.parquet")
            .run_chunked(200, |c| {
                seen += 1;
                if c.index == 1 {
                    Err(crate::Error::Usage("stop".into()))
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
        assert_eq!((seen, e.to_string().contains("stop")), (2, true));
    }
}
