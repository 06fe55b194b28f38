//! The scan pipeline as a composition of stages, each in its own module with the state it hands on:
//!
//! - [`fit`]: the contract (a contract file, a fitted scanner, a reference profiled now, or the data itself) and the
//!   trusted rows the detectors are fitted and calibrated on;
//! - score, in two parts: [`pass`], one streaming pass over the data (contract checks, row digests and lineage,
//!   drift counts, features), and [`detectors`], the detectors on the gathered features;
//! - merge: partial states of partitions scored apart combine in [`crate::merge`] (lineage state, drift counts,
//!   check counts);
//! - [`verdict`]: per-row scores and reasons, the policy's checks, the summary line and the report;
//! - [`split`]: the clean / quarantine outputs of a finished scan.
//!
//! ```no_run
//! use poisonscan::{Scanner, Source};
//! let outcome = Scanner::new(Source::path("fixtures/corrupted.parquet")?)
//!     .label("label")
//!     .reference(Source::path("fixtures/reference.parquet")?)
//!     .run()?;
//! println!("{}", outcome.report.summary);
//! # Ok::<(), poisonscan::Error>(())
//! ```

pub mod chunked;
mod columns;
pub(crate) mod detectors;
pub(crate) mod fit;
pub(crate) mod pass;
mod split;
pub(crate) mod verdict;

pub use fit::profile_reference;
pub(crate) use fit::profile_rows;
pub(crate) use fit::ReferenceRows;
pub use split::split_batches;

use crate::contract::{Contract, Violation};
use crate::detect::DetectConfig;
use crate::error::{Error, LineageError};
use crate::lineage::{self, HashMode, Key, Manifest, RowDigest};
use crate::policy::Policy;
use crate::report::{Report, RowScores};
use crate::source::Source;
use std::collections::BTreeMap;
use std::time::Instant;

/// Where the contract comes from.
#[derive(Debug)]
pub enum ContractSource {
    /// Infer it robustly from the data itself (the data is read twice; streams are spooled to disk).
    Infer,
    /// Profile a trusted reference (also used to fit and calibrate the detectors).
    Reference(Source),
    /// A scanner fitted earlier on a trusted reference (`poisonscan fit`): its contract and reference rows.
    Fitted {
        /// The fitted scanner.
        fitted: Box<crate::fit::FittedScanner>,
        /// Its path, for the report.
        origin: String,
    },
    /// A contract file read earlier.
    Contract {
        /// The contract.
        contract: Contract,
        /// Its path, for the report.
        origin: String,
    },
}

/// Configures and runs a scan. Everything the CLI's `scan` does is available here.
#[derive(Debug)]
pub struct Scanner {
    data: Source,
    contract_source: ContractSource,
    label: Option<String>,
    id: Option<String>,
    features: Option<Vec<String>>,
    embedding: Option<String>,
    pred_probs: Option<String>,
    policy: Policy,
    detect: DetectConfig,
    key: Option<Key>,
    baseline: Option<(Manifest, String)>,
    progress: bool,
    allow_widening: bool,
    /// A scan in chunks keeps each chunk's rows for its caller ([`Scanner::keep_chunks`]).
    keep_chunks: bool,
    /// Gather what only a one-piece scan's outputs use (the HTML report's plots, the OpenLineage metrics); a chunk
    /// of a scan in chunks does not.
    whole_outputs: bool,
}

/// Result of a scan.
#[derive(Debug)]
pub struct ScanOutcome {
    /// The report (verdict, counts, drift, sample of flagged rows).
    pub report: Report,
    /// One score row per input row.
    pub scores: RowScores,
    /// Every contract violation.
    pub violations: Vec<Violation>,
    /// The contract the data was checked against.
    pub contract: Contract,
    /// Row digests of the data (keyed when a key was given).
    pub digests: Vec<RowDigest>,
    /// How the digests were made (to recognise the scanned data again).
    pub hash_mode: HashMode,
    /// What the HTML report plots beyond the JSON report.
    pub visuals: crate::html::visuals::Visuals,
    /// The policy the checks were judged by.
    pub policy: Policy,
    /// Per-column counts of the data (nulls, values, min, max, distinct), for the OpenLineage metrics facet.
    pub metrics: Vec<crate::events::ColumnMetrics>,
    data: Source,
}

impl Scanner {
    /// Scan `data`; by default the contract is inferred from the data itself.
    pub fn new(data: Source) -> Scanner {
        Scanner {
            data,
            contract_source: ContractSource::Infer,
            label: None,
            id: None,
            features: None,
            embedding: None,
            pred_probs: None,
            policy: Policy::default(),
            detect: DetectConfig::default(),
            key: None,
            baseline: None,
            progress: false,
            allow_widening: false,
            keep_chunks: false,
            whole_outputs: true,
        }
    }
    /// Label column.
    pub fn label(mut self, col: impl Into<String>) -> Self {
        self.label = Some(col.into());
        self
    }
    /// Id column.
    pub fn id(mut self, col: impl Into<String>) -> Self {
        self.id = Some(col.into());
        self
    }
    /// Feature columns (default: every numeric column but label and id).
    pub fn features(mut self, cols: Vec<String>) -> Self {
        self.features = Some(cols);
        self
    }
    /// Embedding column (`FixedSizeList<float>` / `List<float>`).
    pub fn embedding(mut self, col: impl Into<String>) -> Self {
        self.embedding = Some(col.into());
        self
    }
    /// Column of out-of-sample model probabilities (`List<float>`, one per class in label order).
    pub fn pred_probs(mut self, col: impl Into<String>) -> Self {
        self.pred_probs = Some(col.into());
        self
    }
    /// Trusted reference data.
    pub fn reference(mut self, reference: Source) -> Self {
        self.contract_source = ContractSource::Reference(reference);
        self
    }
    /// Scan with a fitted scanner instead of a reference: its label, id, features and embedding are used, and given
    /// ones must agree with them.
    pub fn fitted(
        mut self,
        fitted: crate::fit::FittedScanner,
        origin: impl Into<String>,
    ) -> Result<Self, Error> {
        let origin = origin.into();
        let agree = |what: &str, given: &Option<String>, fit: Option<&str>| {
            match (given, fit) {
            (Some(g), f) if Some(g.as_str()) != f => Err(Error::Usage(format!(
                "{what} {g} differs from the fitted scanner's ({}; {origin}): fit again, or drop {what}",
                f.unwrap_or("none")
            ))),
            _ => Ok(()),
        }
        };
        agree("--label", &self.label, fitted.label())?;
        agree("--id", &self.id, fitted.id())?;
        agree("--embedding", &self.embedding, fitted.embedding())?;
        if self.features.is_some() && self.features.as_deref() != fitted.features() {
            return Err(Error::Usage(format!(
                "--features differ from the fitted scanner's ({origin}): fit again, or drop --features"
            )));
        }
        self.label = fitted.label().map(str::to_string);
        self.id = fitted.id().map(str::to_string);
        self.embedding = fitted.embedding().map(str::to_string);
        self.features = fitted.features().map(|f| f.to_vec());
        self.contract_source = ContractSource::Fitted {
            fitted: Box::new(fitted),
            origin,
        };
        Ok(self)
    }
    /// A contract (e.g. read with [`Contract::read`]).
    pub fn contract(mut self, contract: Contract, origin: impl Into<String>) -> Self {
        self.contract_source = ContractSource::Contract {
            contract,
            origin: origin.into(),
        };
        self
    }
    /// Gate policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
    /// Detector settings.
    pub fn detect_config(mut self, cfg: DetectConfig) -> Self {
        self.detect = cfg;
        self
    }
    /// Lineage key (keyed row digests).
    pub fn key(mut self, key: Option<Key>) -> Self {
        self.key = key;
        self
    }
    /// Trusted manifest to diff against.
    pub fn baseline(mut self, manifest: Manifest, origin: impl Into<String>) -> Self {
        self.baseline = Some((manifest, origin.into()));
        self
    }
    /// Accept integer data in a float column of the contract (off by default: a changed type is a schema error).
    /// CSV data is always read this way, since its types are guessed from text.
    pub fn allow_widening(mut self, on: bool) -> Self {
        self.allow_widening = on;
        self
    }
    /// Show a progress spinner on a terminal.
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Run the scan.
    pub fn run(mut self) -> Result<ScanOutcome, Error> {
        let started = Instant::now();
        // What the data's files look like before anything is read: a file rewritten during the scan is refused.
        let data_state = self.data.file_state();
        let data_origin = self.data.origin();
        let mut timings = BTreeMap::new();
        // Fit: the contract and the trusted rows.
        let fit::Fit {
            contract,
            source: contract_source,
            reference,
        } = fit::fit(&mut self)?;
        timings.insert("contract".to_string(), started.elapsed().as_millis() as u64);
        let roles = fit::roles(&self, &contract);
        let mut notes = roles.notes.clone();
        // Score, streaming: one pass over the data.
        let t = Instant::now();
        let mode = self.hash_mode()?;
        let reference_emb_len = reference.as_ref().and_then(|r| r.features.embedding_len);
        let mut pass = pass::data_pass(
            &mut self,
            &contract,
            &roles.exclude,
            &roles.keys,
            mode,
            reference_emb_len,
        )?;
        notes.append(&mut pass.notes);
        self.data.unchanged_since(&data_state)?;
        timings.insert(
            "read_check_hash".to_string(),
            t.elapsed().as_millis() as u64,
        );
        if pass.rows == 0 {
            return Err(Error::ZeroRows {
                origin: data_origin,
            });
        }
        // Lineage against a trusted snapshot, then the detectors.
        let diff = self
            .baseline
            .as_ref()
            .map(|(m, _)| lineage::diff(m, &pass.digests, pass.ids.as_deref(), &pass.schema_hash));
        let detection = detectors::detect(
            &self,
            &contract,
            &mut pass,
            reference,
            &roles,
            diff.as_ref(),
            &mut notes,
            &mut timings,
        );
        // Verdict.
        verdict::finish(
            self,
            verdict::Stages {
                contract,
                contract_source,
                data_origin,
                pass,
                detection,
                diff,
                mode,
                notes,
                timings,
                started,
            },
        )
    }

    fn hash_mode(&self) -> Result<HashMode, Error> {
        match (&self.baseline, &self.key) {
            (Some((m, origin)), key) => {
                if let Some(id) = &self.id {
                    lineage::check_id_column(m, origin, id)?;
                }
                let problems = m.check_integrity(key.as_ref())?;
                if !problems.is_empty() {
                    return Err(LineageError::InvalidManifest {
                        path: origin.into(),
                        message: problems.join("; "),
                    }
                    .into());
                }
                Ok(if m.header.keyed {
                    key.as_ref().map(|k| k.mode()).unwrap_or(HashMode::Plain)
                } else {
                    HashMode::Plain
                })
            }
            (None, Some(k)) => Ok(k.mode()),
            (None, None) => Ok(HashMode::Plain),
        }
    }
}
