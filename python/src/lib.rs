//! Python binding of poisonscan: converts types, releases the GIL during scans, maps errors to exceptions.
//! All logic lives in the core crate.

use poisonscan::attest;
use poisonscan::detect::DetectConfig;
use poisonscan::lineage::{self, Key, Manifest};
use poisonscan::{Contract, Policy, Scanner, Source};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3_arrow::{PyRecordBatchReader, PyTable};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

create_exception!(
    _poisonscan,
    PoisonscanError,
    PyException,
    "Base class of every poisonscan error."
);
create_exception!(
    _poisonscan,
    SchemaError,
    PoisonscanError,
    "The data does not fit the schema or contract."
);
create_exception!(
    _poisonscan,
    InputError,
    PoisonscanError,
    "The data could not be read completely."
);
create_exception!(
    _poisonscan,
    ConfigError,
    PoisonscanError,
    "A bad option, policy, contract file or key."
);
create_exception!(
    _poisonscan,
    LineageError,
    PoisonscanError,
    "A manifest is damaged or does not fit."
);
create_exception!(
    _poisonscan,
    PoisoningDetected,
    PoisonscanError,
    "The scan failed its policy."
);
create_exception!(
    _poisonscan,
    InternalError,
    PoisonscanError,
    "A bug in poisonscan (please report it)."
);

fn to_py(e: poisonscan::Error) -> PyErr {
    let msg = e.to_string();
    match e.kind() {
        "schema" => SchemaError::new_err(msg),
        "input" => InputError::new_err(msg),
        "usage" => ConfigError::new_err(msg),
        "lineage" => LineageError::new_err(msg),
        _ => InternalError::new_err(msg),
    }
}

/// Run `f` without the GIL; a panic becomes `InternalError`, never a crash.
fn guarded<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> Result<T, poisonscan::Error> + Send,
) -> PyResult<T> {
    let r = py.detach(move || catch_unwind(AssertUnwindSafe(f)));
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(e)),
        Err(p) => {
            let what = poisonscan::error::panic_message(p.as_ref()).unwrap_or("unknown panic");
            Err(InternalError::new_err(format!(
                "internal error (panic): {what}"
            )))
        }
    }
}

/// A path (str / os.PathLike) or any object with `__arrow_c_stream__`.
fn to_source(obj: &Bound<'_, PyAny>, what: &str, batch_size: usize) -> PyResult<Source> {
    if let Ok(p) = obj.extract::<PathBuf>() {
        return Source::path(p)
            .map(|s| s.with_batch_size(batch_size))
            .map_err(|e| to_py(e.into()));
    }
    let reader: PyRecordBatchReader = obj.extract().map_err(|e| {
        SchemaError::new_err(format!(
            "{what}: expected a path or an object with __arrow_c_stream__ (pyarrow, polars, pandas >= 2.2, duckdb): {e}"
        ))
    })?;
    let reader = reader.into_reader()?;
    Ok(Source::stream(reader, format!("python {what} stream")))
}

fn key_of(key: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Key>> {
    let Some(k) = key else {
        return Key::resolve(None).map_err(|e| to_py(e.into()));
    };
    let bytes: Vec<u8> = if let Ok(s) = k.extract::<String>() {
        s.into_bytes()
    } else {
        k.extract::<Vec<u8>>()
            .map_err(|_| ConfigError::new_err("key: expected str or bytes"))?
    };
    Key::from_secret(&bytes)
        .map(Some)
        .map_err(|e| to_py(e.into()))
}

/// A scan's result.
#[pyclass(module = "poisonscan._poisonscan", name = "Report", frozen)]
struct PyReport {
    report: poisonscan::Report,
    scores: poisonscan::RowScores,
    digests: Vec<poisonscan::lineage::RowDigest>,
    hash_mode: poisonscan::lineage::HashMode,
    violations: Vec<poisonscan::contract::Violation>,
    visuals: poisonscan::html::visuals::Visuals,
    policy: poisonscan::policy::Policy,
    metrics: Vec<poisonscan::events::ColumnMetrics>,
}

impl PyReport {
    fn openlineage(&self) -> serde_json::Value {
        poisonscan::events::openlineage_event(
            &self.report,
            &self.policy,
            &self.metrics,
            std::time::SystemTime::now(),
        )
    }

    fn html(&self) -> String {
        poisonscan::html::render(&poisonscan::html::HtmlInput {
            report: &self.report,
            scores: &self.scores,
            violations: &self.violations,
            visuals: &self.visuals,
            policy: &self.policy,
        })
    }
}

#[pymethods]
impl PyReport {
    /// The audit events (Elastic Common Schema), one JSON text per line.
    fn audit_lines(&self) -> Vec<String> {
        poisonscan::events::audit_events(&self.report, &self.policy, std::time::SystemTime::now())
            .iter()
            .map(|e| e.to_string())
            .collect()
    }
    /// Append the audit events to `path` (JSON lines).
    fn append_audit_log(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        guarded(py, || {
            let events = poisonscan::events::audit_events(
                &self.report,
                &self.policy,
                std::time::SystemTime::now(),
            );
            poisonscan::events::append_audit_log(&path, &events)
        })
    }
    /// The OpenLineage run event as JSON text.
    /// A signed scan attestation (DSSE envelope JSON) of this report, with the private key's PEM text.
    fn _attestation(
        &self,
        signing_key_pem: &str,
        key_origin: &str,
        report_name: &str,
        data_name: &str,
    ) -> PyResult<String> {
        let sk = attest::signing_key_from_pem(signing_key_pem, key_origin)
            .map_err(|e| to_py(e.into()))?;
        let st = attest::scan_statement(
            &self.report,
            &self.report.to_json(),
            report_name,
            data_name,
            matches!(self.hash_mode, poisonscan::lineage::HashMode::Keyed(_)),
        );
        Ok(attest::sign(&st, &sk).to_json())
    }
    fn openlineage_json(&self) -> String {
        self.openlineage().to_string()
    }
    /// Write the OpenLineage run event to a file, or POST it to an http(s) URL.
    fn send_openlineage(&self, py: Python<'_>, target: String) -> PyResult<()> {
        guarded(py, || {
            poisonscan::events::send_openlineage(&target, &self.openlineage())
        })
    }
    /// The report as one self-contained HTML page.
    fn to_html(&self, py: Python<'_>) -> PyResult<String> {
        guarded(py, || Ok(self.html()))
    }
    /// Write the HTML report atomically.
    fn write_html(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        guarded(py, || {
            poisonscan::output::write_text_atomically(&path, &self.html())
        })
    }
    /// True unless the verdict is "fail".
    #[getter]
    fn passed(&self) -> bool {
        self.report.verdict != poisonscan::Verdict::Fail
    }
    /// "pass", "warn" or "fail".
    #[getter]
    fn verdict(&self) -> &'static str {
        self.report.verdict.as_str()
    }
    /// One-line summary.
    #[getter]
    fn summary_line(&self) -> String {
        self.report.summary.clone()
    }
    /// Rows scanned.
    #[getter]
    fn rows(&self) -> u64 {
        self.report.rows
    }
    /// Rows flagged.
    #[getter]
    fn flagged_count(&self) -> u64 {
        self.report.flagged
    }
    /// Per-row flag mask.
    fn flagged_mask(&self) -> Vec<bool> {
        self.scores.flagged()
    }
    /// The report as JSON text.
    fn to_json(&self) -> String {
        self.report.to_json()
    }
    /// Write the report JSON atomically.
    fn write_json(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let r = self.report.clone();
        guarded(py, move || r.write(&path))
    }
    /// Per-row scores as a pyarrow Table (same columns as the CLI's scores file).
    #[getter]
    fn scores<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let batch = self
            .scores
            .to_batch()
            .map_err(|e| InternalError::new_err(e.to_string()))?;
        let schema = batch.schema();
        PyTable::try_new(vec![batch], schema)?.into_pyarrow(py)
    }
    /// Write the scores table (Parquet, or CSV by extension) atomically.
    fn write_scores(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let s = self.scores.clone();
        guarded(py, move || s.write(&path))
    }
    /// Flagged rows: (row, id, score, reasons).
    fn _findings(&self) -> Vec<(usize, Option<String>, f32, String)> {
        let overall = self.scores.overall();
        self.scores
            .flagged()
            .iter()
            .enumerate()
            .filter(|(_, f)| **f)
            .map(|(i, _)| {
                (
                    i,
                    self.scores.ids.as_ref().map(|v| v[i].clone()),
                    overall[i],
                    self.scores.reasons[i].clone(),
                )
            })
            .collect()
    }
    /// Split `data` (the same rows that were scanned) into (kept, flagged) pyarrow Tables.
    fn _split<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let mut src = to_source(data, "data", poisonscan::source::DEFAULT_BATCH_SIZE)?;
        let flagged = self.scores.flagged();
        let digests = self.digests.clone();
        let mode = self.hash_mode;
        let (schema, keep, quar) = guarded(py, move || {
            let stream = src.open()?;
            let schema = stream.schema();
            let origin = stream.origin().to_string();
            let batches: Vec<_> = stream.collect::<Result<_, _>>()?;
            let (k, q) =
                poisonscan::scan::split_batches(&batches, &flagged, &digests, mode, &origin)?;
            Ok((schema, k, q))
        })?;
        Ok((
            PyTable::try_new(keep, schema.clone())?.into_pyarrow(py)?,
            PyTable::try_new(quar, schema)?.into_pyarrow(py)?,
        ))
    }
    /// The row digests (32 bytes per row, in row order): what a partition gives the merge stage.
    fn _digests<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, self.digests.as_flattened())
    }
    fn __repr__(&self) -> String {
        format!("<poisonscan.Report {}>", self.report.summary)
    }
}

/// Combines the reports of scans of a dataset's partitions (in dataset order) into one verdict and fingerprint.
#[pyclass(module = "poisonscan._poisonscan", name = "PartitionMerger")]
struct PyPartitionMerger {
    inner: Option<poisonscan::merge::PartitionMerger>,
}

#[pymethods]
impl PyPartitionMerger {
    #[new]
    #[pyo3(signature = (policy_toml=None, policy_origin=None))]
    fn new(policy_toml: Option<String>, policy_origin: Option<String>) -> PyResult<Self> {
        let policy = policy_of(policy_toml, policy_origin)?;
        Ok(PyPartitionMerger {
            inner: Some(poisonscan::merge::PartitionMerger::new(policy)),
        })
    }
    /// Add the next partition's report JSON and row digests.
    fn add(&mut self, report_json: &str, digests: &[u8]) -> PyResult<()> {
        let m = self
            .inner
            .as_mut()
            .ok_or_else(|| ConfigError::new_err("this merger has already finished"))?;
        m.add(report_json, digests).map_err(to_py)
    }
    /// Partitions added so far.
    #[getter]
    fn partitions(&self) -> usize {
        self.inner.as_ref().map_or(0, |m| m.partitions())
    }
    /// The merged report of the partitions added so far, as JSON (adding can go on).
    fn snapshot(&self) -> PyResult<String> {
        let m = self
            .inner
            .as_ref()
            .ok_or_else(|| ConfigError::new_err("this merger has already finished"))?;
        merged_json(m.snapshot())
    }
    /// The merged report as JSON (the merger cannot be used afterwards).
    fn finish(&mut self) -> PyResult<String> {
        let m = self
            .inner
            .take()
            .ok_or_else(|| ConfigError::new_err("this merger has already finished"))?;
        merged_json(m.finish())
    }
}

fn merged_json(
    merged: Result<poisonscan::merge::MergedReport, poisonscan::Error>,
) -> PyResult<String> {
    serde_json::to_string(&merged.map_err(to_py)?)
        .map_err(|e| InternalError::new_err(format!("merged report: {e}")))
}

fn policy_of(policy_toml: Option<String>, policy_origin: Option<String>) -> PyResult<Policy> {
    match policy_toml {
        Some(t) => Policy::from_toml(
            &t,
            Path::new(&policy_origin.unwrap_or_else(|| "<policy>".into())),
        )
        .map_err(|e| to_py(e.into())),
        None => Ok(Policy::default()),
    }
}

/// Scan data for poisoning. See the Python wrapper `poisonscan.scan` for the documented signature.
#[pyfunction]
#[pyo3(signature = (data, *, label=None, id=None, reference=None, contract_json=None, contract_origin=None, policy_toml=None, policy_origin=None, baseline=None, key=None, features=None, embedding=None, pred_probs=None, k=10, outliers=true, label_flips=true, backdoors=true, batch_size=65536, allow_widening=false, fitted=None, chunked=None))]
#[allow(clippy::too_many_arguments)]
fn _scan(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    label: Option<String>,
    id: Option<String>,
    reference: Option<&Bound<'_, PyAny>>,
    contract_json: Option<String>,
    contract_origin: Option<String>,
    policy_toml: Option<String>,
    policy_origin: Option<String>,
    baseline: Option<&Bound<'_, PyAny>>,
    key: Option<&Bound<'_, PyAny>>,
    features: Option<Vec<String>>,
    embedding: Option<String>,
    pred_probs: Option<String>,
    k: usize,
    outliers: bool,
    label_flips: bool,
    backdoors: bool,
    batch_size: usize,
    allow_widening: bool,
    fitted: Option<PyRef<'_, PyFittedScanner>>,
    chunked: Option<Chunked>,
) -> PyResult<Scanned> {
    let fitted = fitted.map(|f| f.inner.clone());
    if k == 0 {
        return Err(ConfigError::new_err("k must be at least 1"));
    }
    let data = to_source(data, "data", batch_size)?;
    let reference = reference
        .map(|r| to_source(r, "reference", batch_size))
        .transpose()?;
    let key = key_of(key)?;
    let policy = policy_of(policy_toml, policy_origin)?;
    let contract = match contract_json {
        Some(j) => Some(
            Contract::from_json(
                &j,
                Path::new(contract_origin.as_deref().unwrap_or("<contract>")),
            )
            .map_err(|e| to_py(e.into()))?,
        ),
        None => None,
    };
    let manifest = match baseline {
        Some(b) => match b.extract::<PyRef<PyManifest>>() {
            Ok(m) => Some((m.inner.clone(), "<manifest>".to_string())),
            Err(_) => {
                let p: PathBuf = b.extract().map_err(|_| {
                    ConfigError::new_err("baseline: expected a Manifest or a path to one")
                })?;
                Some((
                    Manifest::read(&p).map_err(|e| to_py(e.into()))?,
                    p.display().to_string(),
                ))
            }
        },
        None => None,
    };
    let detect = DetectConfig {
        outliers,
        label_flips,
        backdoors,
        k,
        ..DetectConfig::default()
    };
    let out = guarded(py, move || {
        let mut s = Scanner::new(data)
            .policy(policy)
            .detect_config(detect)
            .allow_widening(allow_widening)
            .key(key);
        if let Some(l) = label {
            s = s.label(l);
        }
        if let Some(i) = id {
            s = s.id(i);
        }
        if let Some(f) = features {
            s = s.features(f);
        }
        if let Some(e) = embedding {
            s = s.embedding(e);
        }
        if let Some(p) = pred_probs {
            s = s.pred_probs(p);
        }
        if let Some(f) = fitted {
            s = s.fitted(f, "<FittedScanner>")?;
        } else if let Some(r) = reference {
            s = s.reference(r);
        } else if let Some(c) = contract {
            s = s.contract(c, contract_origin.unwrap_or_else(|| "<contract>".into()));
        }
        if let Some((m, origin)) = manifest {
            s = s.baseline(m, origin);
        }
        match chunked {
            Some(c) => Ok(Err(c.run(s)?)),
            None => Ok(Ok(s.run()?)),
        }
    })?;
    let out = match out {
        Ok(out) => out,
        Err(json) => return Ok(Scanned::Chunked(json)),
    };
    Ok(Scanned::Whole(PyReport {
        report: out.report,
        scores: out.scores,
        digests: out.digests,
        hash_mode: out.hash_mode,
        violations: out.violations,
        visuals: out.visuals,
        policy: out.policy,
        metrics: out.metrics,
    }))
}

/// What `_scan` returns: a report, or the merged report (JSON) of a scan in chunks (moved to Python at once, so
/// the size of the larger variant does not matter).
#[derive(IntoPyObject)]
#[allow(clippy::large_enum_variant)]
enum Scanned {
    Whole(PyReport),
    Chunked(String),
}

/// A scan in chunks (`poisonscan.scan(..., chunk_rows=N)`): rows per chunk and the files written as the chunks go.
#[derive(FromPyObject)]
struct Chunked {
    #[pyo3(item)]
    rows: usize,
    #[pyo3(item)]
    scores: Option<PathBuf>,
    #[pyo3(item)]
    clean: Option<PathBuf>,
    #[pyo3(item)]
    quarantine: Option<PathBuf>,
    #[pyo3(item)]
    report: Option<PathBuf>,
    /// Input files (the data, the reference), which no output may replace.
    #[pyo3(item)]
    inputs: Vec<PathBuf>,
}

impl Chunked {
    /// Scan in chunks into staged outputs; all are renamed into place together, or none on an error.
    fn run(self, s: Scanner) -> Result<String, poisonscan::Error> {
        let named = [
            ("scores", self.scores.as_deref()),
            ("clean", self.clean.as_deref()),
            ("quarantine", self.quarantine.as_deref()),
            ("report", self.report.as_deref()),
        ];
        let given: Vec<(&str, &Path)> = named
            .iter()
            .filter_map(|(w, p)| p.map(|p| (*w, p)))
            .collect();
        let inputs: Vec<(&str, &Path)> =
            self.inputs.iter().map(|p| ("input", p.as_path())).collect();
        poisonscan::output::check_outputs(&inputs, &given)?;
        let set = poisonscan::output::OutputSet::prepare(&given)?;
        let report = s.run_chunked_into(
            self.rows,
            &set,
            self.scores.as_deref(),
            self.clean.as_deref(),
            self.quarantine.as_deref(),
        )?;
        let json = report.to_json();
        if let Some(p) = &self.report {
            set.write_text(p, &json)?;
        }
        set.commit()?;
        Ok(json)
    }
}

/// Infer a contract from trusted data; returns its JSON.
#[pyfunction]
#[pyo3(signature = (reference, *, label=None, id=None))]
fn _profile(
    py: Python<'_>,
    reference: &Bound<'_, PyAny>,
    label: Option<String>,
    id: Option<String>,
) -> PyResult<String> {
    let mut src = to_source(
        reference,
        "reference",
        poisonscan::source::DEFAULT_BATCH_SIZE,
    )?;
    guarded(py, move || {
        let c = poisonscan::scan::profile_reference(
            &mut src,
            label.as_deref(),
            id.as_deref(),
            None,
            None,
        )?;
        Ok(c.to_json())
    })
}

/// Validate contract JSON (raises SchemaError naming the problem: version, types, bounds).
#[pyfunction]
fn _check_contract(json: &str) -> PyResult<()> {
    Contract::from_json(json, Path::new("<contract>"))
        .map(|_| ())
        .map_err(|e| to_py(e.into()))
}

/// A scanner fitted on trusted reference data (contract, calibration, the rows the detectors fit on).
#[pyclass(module = "poisonscan._poisonscan", name = "FittedScanner", frozen)]
struct PyFittedScanner {
    inner: poisonscan::fit::FittedScanner,
}

#[pymethods]
impl PyFittedScanner {
    /// Read a fitted scanner file (refuses another version or a changed file).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<PyFittedScanner> {
        let inner = guarded(py, move || poisonscan::fit::FittedScanner::load(&path))?;
        Ok(PyFittedScanner { inner })
    }
    /// Read a fit from the bytes of a file (`_to_bytes`), e.g. on an engine's worker.
    #[staticmethod]
    fn _from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<PyFittedScanner> {
        let inner = guarded(py, move || {
            poisonscan::fit::FittedScanner::from_bytes(data, Path::new("<fitted bytes>"))
        })?;
        Ok(PyFittedScanner { inner })
    }
    /// The file's bytes.
    fn _to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let b = self
            .inner
            .to_bytes()
            .map_err(|e| InternalError::new_err(format!("fitted scanner: {e}")))?;
        Ok(pyo3::types::PyBytes::new(py, &b))
    }
    /// Write it atomically.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let f = self.inner.clone();
        guarded(py, move || f.save(&path))
    }
    /// blake3 of its content (hex).
    #[getter]
    fn hash(&self) -> String {
        self.inner.hash().to_string()
    }
    /// Reference rows kept.
    #[getter]
    fn rows(&self) -> usize {
        self.inner.rows()
    }
    /// Label column it was fitted with.
    #[getter]
    fn label(&self) -> Option<String> {
        self.inner.label().map(str::to_string)
    }
    /// Id column it was fitted with.
    #[getter]
    fn id(&self) -> Option<String> {
        self.inner.id().map(str::to_string)
    }
    /// The contract as JSON text.
    fn contract_json(&self) -> String {
        self.inner.contract().to_json()
    }
    fn __repr__(&self) -> String {
        format!(
            "<poisonscan.FittedScanner {} rows of {}, label={:?}, hash {}>",
            self.inner.rows(),
            self.inner.origin(),
            self.inner.label(),
            &self.inner.hash()[..16]
        )
    }
}

/// Fit a scanner on trusted reference data.
#[pyfunction]
#[pyo3(signature = (reference, *, label=None, id=None, features=None, embedding=None))]
fn _fit(
    py: Python<'_>,
    reference: &Bound<'_, PyAny>,
    label: Option<String>,
    id: Option<String>,
    features: Option<Vec<String>>,
    embedding: Option<String>,
) -> PyResult<PyFittedScanner> {
    let mut src = to_source(
        reference,
        "reference",
        poisonscan::source::DEFAULT_BATCH_SIZE,
    )?;
    let inner = guarded(py, move || {
        poisonscan::fit::FittedScanner::fit(
            &mut src,
            label.as_deref(),
            id.as_deref(),
            features,
            embedding.as_deref(),
        )
    })?;
    Ok(PyFittedScanner { inner })
}

/// A lineage manifest (header and row digests).
#[pyclass(module = "poisonscan._poisonscan", name = "Manifest", frozen)]
struct PyManifest {
    inner: Manifest,
}

#[pymethods]
impl PyManifest {
    /// Read a manifest file.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<PyManifest> {
        Ok(PyManifest {
            inner: Manifest::read(&path).map_err(|e| to_py(e.into()))?,
        })
    }
    /// Write it (Parquet, atomically).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let m = self.inner.clone();
        guarded(py, move || m.write(&path))
    }
    /// The header as JSON text.
    fn header_json(&self) -> String {
        serde_json::to_string(&self.inner.header).unwrap_or_default()
    }
    /// Rows described.
    #[getter]
    fn rows(&self) -> u64 {
        self.inner.header.fingerprint.rows
    }
    /// Order-independent fingerprint (hex).
    #[getter]
    fn fingerprint(&self) -> String {
        self.inner.header.fingerprint.lthash.clone()
    }
    /// Merkle root (hex).
    #[getter]
    fn merkle_root(&self) -> String {
        self.inner.header.fingerprint.merkle_root.clone()
    }
    /// Whether `data` is exactly what the manifest describes; returns (matches, problems).
    #[pyo3(signature = (data, *, key=None))]
    fn _verify(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(bool, Vec<String>)> {
        let mut src = to_source(data, "data", poisonscan::source::DEFAULT_BATCH_SIZE)?;
        let key = key_of(key)?;
        let m = self.inner.clone();
        guarded(py, move || {
            let v = lineage::verify(&m, &mut src, key.as_ref())?;
            Ok((v.matches, v.problems))
        })
    }
    /// Rows added / removed / changed in `data` since the manifest: (status per data row, removed manifest rows).
    #[pyo3(signature = (data, *, key=None))]
    fn _diff(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Vec<&'static str>, Vec<u64>, bool)> {
        let mut src = to_source(data, "data", poisonscan::source::DEFAULT_BATCH_SIZE)?;
        let key = key_of(key)?;
        let m = self.inner.clone();
        guarded(py, move || {
            let (df, _) = lineage::diff_source(&m, "<manifest>", &mut src, key.as_ref())?;
            Ok((
                df.status.iter().map(|s| s.as_str()).collect(),
                df.removed,
                df.by_id,
            ))
        })
    }
}

/// Make a manifest of `data`.
#[pyfunction]
#[pyo3(signature = (data, *, id=None, key=None))]
fn _lineage(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    id: Option<String>,
    key: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyManifest> {
    let mut src = to_source(data, "data", poisonscan::source::DEFAULT_BATCH_SIZE)?;
    let key = key_of(key)?;
    let m = guarded(py, move || {
        lineage::make_manifest(&mut src, id.as_deref(), key.as_ref())
    })?;
    Ok(PyManifest { inner: m })
}

/// A signed attestation (DSSE envelope JSON) of a manifest or scan report file.
#[pyfunction]
#[pyo3(signature = (path, signing_key_pem, key_origin, *, key=None))]
fn _attest_file(
    py: Python<'_>,
    path: PathBuf,
    signing_key_pem: String,
    key_origin: String,
    key: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let sk =
        attest::signing_key_from_pem(&signing_key_pem, &key_origin).map_err(|e| to_py(e.into()))?;
    let key = key_of(key)?;
    guarded(py, move || {
        let st = attest::statement_for_file(&path, key.as_ref())?;
        Ok(attest::sign(&st, &sk).to_json())
    })
}

/// Verify an attestation (envelope JSON text) with a public key (PEM text) against data; the check as JSON.
#[pyfunction]
#[pyo3(signature = (text, data, public_key_pem, key_origin, *, key=None, require_pass=false))]
fn _verify_attestation(
    py: Python<'_>,
    text: String,
    data: &Bound<'_, PyAny>,
    public_key_pem: String,
    key_origin: String,
    key: Option<&Bound<'_, PyAny>>,
    require_pass: bool,
) -> PyResult<String> {
    let pk =
        attest::public_key_from_pem(&public_key_pem, &key_origin).map_err(|e| to_py(e.into()))?;
    let mut src = to_source(data, "data", poisonscan::source::DEFAULT_BATCH_SIZE)?;
    let key = key_of(key)?;
    let mut c = guarded(py, move || {
        attest::verify_attestation(&text, &pk, &mut src, key.as_ref())
    })?;
    if require_pass {
        c.require_pass("require_pass");
    }
    Ok(serde_json::to_string(&c).unwrap_or_default())
}

/// Write a new Ed25519 key pair; returns the key id.
#[pyfunction]
fn _generate_key(py: Python<'_>, private: PathBuf, public: PathBuf) -> PyResult<String> {
    guarded(py, move || attest::write_key_pair(&private, &public))
}

/// Write text to a file atomically.
#[pyfunction]
fn _write_text(py: Python<'_>, path: PathBuf, text: String) -> PyResult<()> {
    guarded(py, move || {
        poisonscan::output::write_text_atomically(&path, &text)
    })
}

/// The default public key path beside a private key.
#[pyfunction]
fn _public_key_path(private: PathBuf) -> PathBuf {
    attest::public_key_path(&private)
}

/// Panics inside the guarded region, so tests can check that a Rust panic becomes `InternalError`.
#[pyfunction]
fn _panic_for_test(py: Python<'_>) -> PyResult<()> {
    guarded(py, || -> Result<(), poisonscan::Error> {
        panic!("deliberate panic for the test suite")
    })
}

#[pymodule]
fn _poisonscan(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", poisonscan::VERSION)?;
    m.add("PoisonscanError", py.get_type::<PoisonscanError>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("LineageError", py.get_type::<LineageError>())?;
    m.add("PoisoningDetected", py.get_type::<PoisoningDetected>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add_class::<PyReport>()?;
    m.add_class::<PyManifest>()?;
    m.add_class::<PyFittedScanner>()?;
    m.add_class::<PyPartitionMerger>()?;
    m.add_function(wrap_pyfunction!(_fit, m)?)?;
    m.add_function(wrap_pyfunction!(_scan, m)?)?;
    m.add_function(wrap_pyfunction!(_profile, m)?)?;
    m.add_function(wrap_pyfunction!(_lineage, m)?)?;
    m.add_function(wrap_pyfunction!(_check_contract, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(_attest_file, m)?)?;
    m.add_function(wrap_pyfunction!(_verify_attestation, m)?)?;
    m.add_function(wrap_pyfunction!(_generate_key, m)?)?;
    m.add_function(wrap_pyfunction!(_public_key_path, m)?)?;
    m.add_function(wrap_pyfunction!(_write_text, m)?)?;
    Ok(())
}
