//! The merge stage of a partitioned scan: the reports of scans of disjoint partitions of one dataset (each scanned
//! with the same fitted scanner and policy, on any worker) combine into one verdict, one set of check counts and the
//! dataset's exact fingerprint.
//!
//! Partitions are added in the dataset's order (the Merkle root is ordered; the LtHash is not). Each partition gives
//! its report and its row digests; the digests are folded into a [`LineageState`] at once, so the merger holds one
//! partial Merkle chunk, the counts, and one line per partition, whatever the data size.
//!
//! What is exact and what is not: row counts, the fingerprint, the contract and drift findings and every score that
//! depends only on the row and the fit (contract, outlier, reference votes) are the same however the data is
//! partitioned. Evidence that compares rows with each other (duplicates, sub-clusters of a class, votes of the data's
//! own neighbours, per-class excess counts) is computed within each partition; see `docs/scale.md`.

use crate::contract::drift::ColumnDrift;
use crate::error::{Error, LineageError};
use crate::lineage::{Fingerprint, LineageState, RowDigest};
use crate::policy::{Policy, Status, CORE_DETECTORS};
use crate::report::{CheckResult, Run, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fields of a partition's report the merge reads (a full [`crate::Report`] as JSON deserializes into it).
#[derive(Debug, Clone, Deserialize)]
struct PartReport {
    rows: u64,
    flagged: u64,
    checks: BTreeMap<String, CheckResult>,
    fingerprint: Fingerprint,
    contract_hash: String,
    policy_hash: String,
    schema_hash: String,
    #[serde(default)]
    inputs: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    drift: Vec<ColumnDrift>,
}

/// One partition as the merged report lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionSummary {
    /// Position of the partition in the order it was added.
    pub index: usize,
    /// First row of the partition in the merged data.
    pub start: u64,
    /// Rows in the partition.
    pub rows: u64,
    /// Rows it flagged.
    pub flagged: u64,
    /// Its own verdict (under the policy, on its rows alone).
    pub verdict: Verdict,
}

/// The merged result of a partitioned scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergedReport {
    /// Rows scanned in all partitions.
    pub rows: u64,
    /// Rows flagged in all partitions.
    pub flagged: u64,
    /// Checks with summed counts, their status under the policy on the merged counts.
    pub checks: BTreeMap<String, CheckResult>,
    /// The dataset's fingerprint, identical to a single scan of the same rows in the same order.
    pub fingerprint: Fingerprint,
    /// Worst status of any check on the merged counts (never `pass` when no row was scanned).
    pub verdict: Verdict,
    /// Drift of every compared column on all rows (bin counts summed over the partitions, then tested once, as a
    /// local scan does); empty when the partitions' bins could not be merged.
    #[serde(default)]
    pub drift: Vec<ColumnDrift>,
    /// Each partition.
    pub partitions: Vec<PartitionSummary>,
    /// One line: rows, partitions, flagged per check, checks that did not run, verdict.
    pub summary: String,
}

/// A check's summed count, the rows of the partitions where it ran, and how and why it did not run elsewhere.
type CheckTally = (u64, u64, Option<(Run, String)>);

/// Combines partition reports in order (see the module documentation).
#[derive(Debug, Clone)]
pub struct PartitionMerger {
    policy: Policy,
    lineage: LineageState,
    parts: Vec<PartitionSummary>,
    /// Per check: summed count, rows of the partitions where it ran, and why it did not run elsewhere.
    checks: BTreeMap<String, CheckTally>,
    /// contract, policy, schema hashes and keyed flag of the first partition: the others must match.
    identity: Option<(String, String, String, serde_json::Value)>,
    /// Drift summed so far; `None` before the first partition with rows and once two partitions' bins disagreed
    /// (then the summed per-partition count stands).
    drift: Option<Vec<ColumnDrift>>,
    /// What the summary line calls a partition (`partitions`, or `chunks` for a scan in chunks).
    unit: &'static str,
}

fn mismatch(message: String) -> Error {
    Error::Lineage(LineageError::Incomplete(message))
}

impl PartitionMerger {
    /// A merger evaluating the merged counts under `policy` (the policy the partitions were scanned with).
    pub fn new(policy: Policy) -> Self {
        PartitionMerger {
            policy,
            lineage: LineageState::default(),
            parts: Vec::new(),
            checks: BTreeMap::new(),
            identity: None,
            drift: None,
            unit: "partitions",
        }
    }

    /// Call the parts `unit` in the summary line (e.g. `chunks`).
    pub fn unit(mut self, unit: &'static str) -> Self {
        self.unit = unit;
        self
    }

    /// Add the next partition: its report (JSON, as `Report` writes it) and its row digests (32 bytes per row, in
    /// row order). Refuses digests that do not belong to the report (count or LtHash differ), and a partition scanned
    /// with another contract, policy, schema or key mode than the first.
    pub fn add(&mut self, report_json: &str, digests: &[u8]) -> Result<(), Error> {
        let index = self.parts.len();
        let part: PartReport = serde_json::from_str(report_json)
            .map_err(|e| mismatch(format!("partition {index}: not a scan report: {e}")))?;
        if digests.len() % 32 != 0 || (digests.len() / 32) as u64 != part.rows {
            return Err(mismatch(format!(
                "partition {index}: {} digest bytes for {} rows (expected 32 per row)",
                digests.len(),
                part.rows
            )));
        }
        let rows: Vec<RowDigest> = digests
            .chunks_exact(32)
            .map(|c| {
                let mut d = [0u8; 32];
                d.copy_from_slice(c);
                d
            })
            .collect();
        // The partition's own lineage state, at its place in the data: checked against its report, then merged.
        let start = self.lineage.rows();
        let mut own = LineageState::new(part.fingerprint.chunk_rows);
        own.add(start, &rows);
        if own.lthash_hex() != part.fingerprint.lthash {
            return Err(mismatch(format!(
                "partition {index}: its row digests do not give its report's fingerprint"
            )));
        }
        let keyed = part
            .inputs
            .get("keyed")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let identity = (
            part.contract_hash.clone(),
            part.policy_hash.clone(),
            part.schema_hash.clone(),
            keyed,
        );
        match &self.identity {
            None => {}
            Some(first) if part.rows > 0 && *first != identity => {
                let what = if first.0 != identity.0 {
                    "contract"
                } else if first.1 != identity.1 {
                    "policy"
                } else if first.2 != identity.2 {
                    "schema"
                } else {
                    "lineage key"
                };
                return Err(mismatch(format!(
                    "partition {index} was scanned with another {what} than partition 0"
                )));
            }
            Some(_) => {}
        }
        if part.policy_hash != self.policy.hash() && part.rows > 0 {
            return Err(mismatch(format!(
                "partition {index} was scanned with another policy than the one merging it"
            )));
        }
        // Accepted: from here on the partition is part of the merge (a refused one leaves the merger unchanged).
        if self.identity.is_none() {
            self.identity = Some(identity);
        }
        let first_rows = !self.parts.iter().any(|p| p.rows > 0);
        self.lineage.merge(own).map_err(Error::Lineage)?;
        if part.rows > 0 {
            self.add_drift(&part.drift, first_rows);
            for (name, c) in &part.checks {
                let e = self.checks.entry(name.clone()).or_insert((0, 0, None));
                if c.run == Run::Ran {
                    e.0 += c.count;
                    e.1 += part.rows;
                } else if e.2.is_none() || c.run == Run::Skipped {
                    e.2 = Some((c.run, c.reason.clone().unwrap_or_default()));
                }
            }
        }
        let verdict = part
            .checks
            .values()
            .map(|c| c.status)
            .max()
            .map(verdict_of)
            .unwrap_or(Verdict::Fail);
        self.parts.push(PartitionSummary {
            index,
            start,
            rows: part.rows,
            flagged: part.flagged,
            verdict: if part.rows == 0 {
                Verdict::Pass
            } else {
                verdict
            },
        });
        Ok(())
    }

    fn add_drift(&mut self, drift: &[ColumnDrift], first: bool) {
        if first {
            self.drift = Some(drift.to_vec());
            return;
        }
        let merged = self.drift.as_ref().and_then(|so_far| {
            if so_far.len() != drift.len() {
                return None;
            }
            so_far
                .iter()
                .zip(drift)
                .map(|(a, b)| a.merged(b))
                .collect::<Option<Vec<_>>>()
        });
        self.drift = merged;
    }

    /// Rows of the partitions added so far (where the next partition starts).
    pub fn rows(&self) -> u64 {
        self.lineage.rows()
    }

    /// Partitions added so far.
    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// The merged report of the partitions added so far; more can be added afterwards (a monitor's running state).
    pub fn snapshot(&self) -> Result<MergedReport, Error> {
        self.clone().finish()
    }

    /// The merged report.
    pub fn finish(self) -> Result<MergedReport, Error> {
        let fingerprint = self.lineage.finish()?;
        let rows = fingerprint.rows;
        let flagged = self.parts.iter().map(|p| p.flagged).sum();
        let scanned = self.parts.iter().filter(|p| p.rows > 0).count();
        // Drift is exact when every partition gave bin counts on the same bins and drift ran in all of them.
        let drift_everywhere = self
            .checks
            .get("drift")
            .is_some_and(|(_, _, not_run)| not_run.is_none());
        let exact_drift = self
            .drift
            .clone()
            .filter(|d| drift_everywhere && d.iter().all(|c| !c.counts.is_empty()));
        let mut checks = BTreeMap::new();
        for (name, (count, ran_rows, not_run)) in &self.checks {
            let (run, reason) = match not_run {
                // A check that did not run in some partition did not analyse the whole data.
                Some((run, why)) if *ran_rows > 0 => (
                    Run::Skipped,
                    Some(format!(
                        "{} in some partitions ({why}); ran on {ran_rows} of {rows} rows",
                        run.as_str()
                    )),
                ),
                Some((run, why)) => (*run, Some(why.clone())),
                None => (Run::Ran, None),
            };
            let (count, total) = match (name.as_str(), &exact_drift) {
                ("drift", Some(d)) => (
                    d.iter().filter(|c| c.drifted).count() as u64,
                    d.len() as u64,
                ),
                _ => (*count, if *ran_rows > 0 { *ran_rows } else { rows }),
            };
            let (status, reason) = match run {
                Run::Ran => (self.policy.evaluate(name, count, total), reason),
                _ if self.policy.requires(name) => (
                    Status::Fail,
                    Some(format!(
                        "{}; the policy requires it",
                        reason.unwrap_or_default()
                    )),
                ),
                Run::Skipped if CORE_DETECTORS.contains(&name.as_str()) => (
                    Status::Warn,
                    Some(format!(
                        "{}; the scan is incomplete",
                        reason.unwrap_or_default()
                    )),
                ),
                _ => (Status::Pass, reason),
            };
            checks.insert(
                name.clone(),
                CheckResult::counted(count, total, status, run, reason),
            );
        }
        let analysed = checks.values().any(|c| c.run == Run::Ran);
        let verdict = if rows == 0 || !analysed {
            Verdict::Fail
        } else {
            checks
                .values()
                .map(|c| c.status)
                .max()
                .map(verdict_of)
                .unwrap_or(Verdict::Fail)
        };
        let per_check: Vec<String> = checks
            .iter()
            .filter(|(_, c)| c.count > 0 && c.run == Run::Ran)
            .map(|(k, c)| match c.status {
                Status::Fail => format!("{k} {} fail", c.count),
                Status::Warn => format!("{k} {} warn", c.count),
                Status::Pass => format!("{k} {}", c.count),
            })
            .collect();
        let not_run: Vec<&str> = checks
            .iter()
            .filter(|(_, c)| c.run == Run::Skipped)
            .map(|(k, _)| k.as_str())
            .collect();
        let mut summary = format!(
            "poisonscan: {rows} rows scanned in {} {} ({scanned} non-empty), {flagged} flagged",
            self.parts.len(),
            self.unit
        );
        if !per_check.is_empty() {
            summary.push_str(&format!(" ({})", per_check.join(", ")));
        }
        if rows == 0 {
            summary.push_str(&format!("; not run: no rows in any of the {}", self.unit));
        } else if !not_run.is_empty() {
            summary.push_str(&format!("; not run everywhere: {}", not_run.join(", ")));
        }
        summary.push_str(&format!("; verdict {}", verdict.as_str().to_uppercase()));
        Ok(MergedReport {
            rows,
            flagged,
            checks,
            fingerprint,
            verdict,
            drift: exact_drift.unwrap_or_default(),
            partitions: self.parts,
            summary,
        })
    }
}

fn verdict_of(s: Status) -> Verdict {
    match s {
        Status::Pass => Verdict::Pass,
        Status::Warn => Verdict::Warn,
        Status::Fail => Verdict::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scanner, Source};
    use arrow::array::RecordBatch;

    fn batches(path: &str) -> Vec<RecordBatch> {
        let mut src = Source::path(path).unwrap();
        src.open().unwrap().map(|b| b.unwrap()).collect()
    }

    fn concat(b: &[RecordBatch]) -> RecordBatch {
        arrow::compute::concat_batches(&b[0].schema(), b).unwrap()
    }

    fn scan(batch: RecordBatch) -> crate::ScanOutcome {
        scan_with(batch, Policy::default())
    }

    fn scan_with(batch: RecordBatch, policy: Policy) -> crate::ScanOutcome {
        Scanner::new(Source::memory(batch.schema(), vec![batch], "part"))
            .policy(policy)
            .reference(Source::path("fixtures/train_reference.parquet").unwrap())
            .label("label")
            .id("id")
            .run()
            .unwrap()
    }

    fn digest_bytes(o: &crate::ScanOutcome) -> Vec<u8> {
        o.digests.iter().flatten().copied().collect()
    }

    #[test]
    fn partitions_merge_to_the_whole_scans_fingerprint_and_counts() {
        let all = concat(&batches("fixtures/train_poisoned.parquet"));
        let whole = scan(all.clone());
        let n = all.num_rows();
        for k in [1usize, 3, 7] {
            let step = n.div_ceil(k);
            let mut m = PartitionMerger::new(Policy::default());
            let mut flagged = 0;
            for s in (0..n).step_by(step) {
                let part = scan(all.slice(s, step.min(n - s)));
                flagged += part.report.flagged;
                let json = serde_json::to_string(&part.report).unwrap();
                m.add(&json, &digest_bytes(&part)).unwrap();
            }
            let merged = m.finish().unwrap();
            assert_eq!(
                merged.fingerprint, whole.report.fingerprint,
                "{k} partitions"
            );
            assert_eq!(merged.rows, n as u64);
            assert_eq!(merged.flagged, flagged);
            assert_eq!(merged.partitions.len(), k);
            assert_eq!(merged.verdict, whole.report.verdict);
            // Drift is tested once on the summed bin counts: the whole scan's counts and decisions.
            assert!(!merged.drift.is_empty());
            // (values read back from JSON may differ in the last bit, so statistics are compared to 1e-12)
            assert_eq!(merged.drift.len(), whole.report.drift.len());
            for (a, b) in merged.drift.iter().zip(&whole.report.drift) {
                assert_eq!(
                    (&a.column, &a.counts, a.drifted),
                    (&b.column, &b.counts, b.drifted)
                );
                assert!(
                    (a.psi - b.psi).abs() < 1e-12
                        && a.ks.zip(b.ks).is_none_or(|(x, y)| (x - y).abs() < 1e-12)
                );
            }
            // Row-local checks count the same rows however the data is split.
            for check in ["contract", "outlier", "drift"] {
                assert_eq!(
                    merged.checks[check].count, whole.report.checks[check].count,
                    "{check}, {k} partitions"
                );
            }
        }
    }

    #[test]
    fn drift_is_tested_on_all_rows_not_per_partition() {
        // Sorted by label, each quarter of the clean table holds about one class: every partition drifts on its own,
        // the whole table does not, and neither does the merge.
        let all = concat(&batches("fixtures/train_clean.parquet"));
        let label = all.column(all.schema().index_of("label").unwrap()).clone();
        let order = arrow::compute::sort_to_indices(&label, None, None).unwrap();
        let sorted = arrow::compute::take_record_batch(&all, &order).unwrap();
        let whole = scan(sorted.clone());
        assert_eq!(whole.report.checks["drift"].count, 0);
        let n = sorted.num_rows();
        let mut m = PartitionMerger::new(Policy::default());
        for s in (0..n).step_by(n.div_ceil(4)) {
            let part = scan(sorted.slice(s, n.div_ceil(4).min(n - s)));
            assert!(
                part.report.checks["drift"].count > 0,
                "a one-class partition drifts"
            );
            m.add(
                &serde_json::to_string(&part.report).unwrap(),
                &digest_bytes(&part),
            )
            .unwrap();
        }
        let merged = m.finish().unwrap();
        assert_eq!(merged.checks["drift"].count, 0, "{}", merged.summary);
        assert_eq!(merged.fingerprint, whole.report.fingerprint);
    }

    #[test]
    fn a_snapshot_is_the_merge_so_far_and_adding_goes_on() {
        let all = concat(&batches("fixtures/train_poisoned.parquet"));
        let whole = scan(all.clone());
        let n = all.num_rows();
        let mut m = PartitionMerger::new(Policy::default());
        let mut rows = 0;
        for (i, s) in (0..n).step_by(n.div_ceil(3)).enumerate() {
            let part = scan(all.slice(s, n.div_ceil(3).min(n - s)));
            m.add(
                &serde_json::to_string(&part.report).unwrap(),
                &digest_bytes(&part),
            )
            .unwrap();
            let so_far = m.snapshot().unwrap();
            assert_eq!(so_far.partitions.len(), i + 1);
            assert_eq!(
                so_far.partitions[i].start, rows,
                "starts where the rows so far end"
            );
            rows += part.report.rows;
            assert_eq!(so_far.rows, rows);
        }
        let merged = m.finish().unwrap();
        assert_eq!(merged.fingerprint, whole.report.fingerprint);
    }

    #[test]
    fn a_clean_table_passes_merged_and_an_empty_one_fails() {
        let all = concat(&batches("fixtures/train_clean.parquet"));
        let n = all.num_rows();
        let mut m = PartitionMerger::new(Policy::default());
        for s in (0..n).step_by(n.div_ceil(3)) {
            let part = scan(all.slice(s, n.div_ceil(3).min(n - s)));
            m.add(
                &serde_json::to_string(&part.report).unwrap(),
                &digest_bytes(&part),
            )
            .unwrap();
        }
        let merged = m.finish().unwrap();
        assert_ne!(merged.verdict, Verdict::Fail, "{}", merged.summary);
        assert_eq!(merged.flagged, 0, "{}", merged.summary);
        let empty = PartitionMerger::new(Policy::default()).finish().unwrap();
        assert_eq!(empty.verdict, Verdict::Fail);
        assert!(empty.summary.contains("no rows"), "{}", empty.summary);
    }

    #[test]
    fn digests_that_do_not_belong_to_the_report_are_refused() {
        let all = concat(&batches("fixtures/train_poisoned.parquet"));
        let part = scan(all.slice(0, 100));
        let json = serde_json::to_string(&part.report).unwrap();
        let mut d = digest_bytes(&part);
        let mut m = PartitionMerger::new(Policy::default());
        assert!(m.add(&json, &d[..d.len() - 32]).is_err(), "a row missing");
        d[5] ^= 1;
        let err = m.add(&json, &d).unwrap_err().to_string();
        assert!(
            err.contains("do not give its report's fingerprint"),
            "{err}"
        );
        assert!(m.add("{}", &[]).is_err(), "not a report");
        let strict = Policy::from_toml(
            "[label]\nerror_if = \"> 0\"\n",
            std::path::Path::new("p.toml"),
        )
        .unwrap();
        let err = PartitionMerger::new(strict)
            .add(&json, &digest_bytes(&part))
            .unwrap_err()
            .to_string();
        assert!(err.contains("another policy"), "{err}");
        // A partition scanned with another policy is refused and leaves the merger as it was.
        let mut strict_merger = PartitionMerger::new(Policy::default());
        let other = scan_with(all.slice(100, 100), strict_policy());
        assert!(strict_merger
            .add(
                &serde_json::to_string(&other.report).unwrap(),
                &digest_bytes(&other)
            )
            .is_err());
        assert_eq!(strict_merger.partitions(), 0);
        strict_merger.add(&json, &digest_bytes(&part)).unwrap();
        assert_eq!(strict_merger.finish().unwrap().rows, 100);
    }

    fn strict_policy() -> Policy {
        Policy::from_toml(
            "[label]\nerror_if = \"> 0\"\n",
            std::path::Path::new("p.toml"),
        )
        .unwrap()
    }
}
