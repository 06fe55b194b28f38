//! Error types, one per layer, and the top-level [`enum@Error`] that maps each to a CLI exit code.
//!
//! Exit codes follow dbt/Soda: 2 for usage, configuration or schema problems (the user must change the command,
//! contract, policy or the data's schema: types that differ from the contract's, two columns of one name, files of
//! one folder with different schemas), 3 for input/IO problems or an incomplete scan (the data could not be read
//! completely).

use std::path::PathBuf;
use thiserror::Error;

/// Errors while opening or reading a data source.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The path could not be opened or listed.
    #[error("{path}: cannot open: {source}")]
    Open {
        /// File or folder.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is empty (zero bytes).
    #[error("{path}: file is empty (0 bytes)")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The input changed (size or modification time) while it was being scanned: the scan did not read one
    /// consistent dataset, so it cannot vouch for it.
    #[error("{path}: the input changed while it was being scanned (size or modification time differ from when the scan started); scan it again once it is complete")]
    Changed {
        /// The file that changed.
        path: PathBuf,
    },
    /// The file is not a valid file of the expected format (corrupt, truncated, wrong format).
    #[error("{path}: not a readable {format} file: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Format expected from the extension or magic bytes.
        format: &'static str,
        /// What the reader reported.
        message: String,
    },
    /// The extension is not one that poisonscan reads.
    #[error(
        "{path}: unknown format (expected .parquet/.pq, .arrow/.ipc/.feather, .arrows or .csv)"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A folder that holds no Parquet files.
    #[error("{path}: folder holds no .parquet files")]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
    },
    /// Files of one folder disagree on the schema.
    #[error("{path}: schema differs from the first file of the folder ({first}): {detail}")]
    SchemaMismatch {
        /// The file that differs.
        path: PathBuf,
        /// The first file of the folder.
        first: PathBuf,
        /// What differs.
        detail: String,
    },
    /// Reading a batch failed part-way (a truncated or corrupt page, a CSV row that does not parse).
    #[error("{origin}: reading failed after {rows_read} rows: {message}")]
    Read {
        /// Where the data came from.
        origin: String,
        /// Rows read successfully before the failure.
        rows_read: u64,
        /// What the reader reported.
        message: String,
    },
    /// Two columns have the same name.
    #[error("{origin}: two columns are named '{column}': give every column its own name")]
    DuplicateColumn {
        /// Where the data came from.
        origin: String,
        /// The repeated name.
        column: String,
    },
    /// A one-shot stream was asked for a second pass.
    #[error("{origin}: the stream was already consumed; spool it first")]
    Consumed {
        /// Where the data came from.
        origin: String,
    },
    /// Writing a temporary spool file failed.
    #[error("spooling {origin} to a temporary file failed: {message}")]
    Spool {
        /// Where the data came from.
        origin: String,
        /// What failed.
        message: String,
    },
}

/// Errors about the schema contract: missing columns, wrong types, unreadable contract files.
#[derive(Debug, Error)]
pub enum ContractError {
    /// A column the contract or command names is missing from the data.
    #[error("{origin}: column '{column}' is missing ({role}); columns present: {present}")]
    MissingColumn {
        /// Where the data came from.
        origin: String,
        /// Missing column.
        column: String,
        /// Why it was expected ("--label", "contract", ...).
        role: String,
        /// Columns that are there.
        present: String,
    },
    /// The data has a column the contract does not know.
    #[error("{origin}: column '{column}' is not in the contract (expected columns: {expected})")]
    ExtraColumn {
        /// Where the data came from.
        origin: String,
        /// Unexpected column.
        column: String,
        /// The contract's columns.
        expected: String,
    },
    /// A column's type cannot be read as the contract's type.
    #[error("{origin}: column '{column}' has type {found}, the contract expects {expected}")]
    TypeMismatch {
        /// Where the data came from.
        origin: String,
        /// Column.
        column: String,
        /// Type in the contract.
        expected: String,
        /// Type in the data.
        found: String,
    },
    /// A column type poisonscan cannot check or hash.
    #[error("{origin}: column '{column}' has unsupported type {found}")]
    UnsupportedType {
        /// Where the data came from.
        origin: String,
        /// Column.
        column: String,
        /// Its type.
        found: String,
    },
    /// The contract file could not be read or parsed.
    #[error("{path}: invalid contract file: {message}")]
    InvalidFile {
        /// Contract file.
        path: PathBuf,
        /// Problem.
        message: String,
    },
    /// A fitted-scanner file could not be read, was changed, or is of another version.
    #[error("{path}: invalid fitted scanner: {message}")]
    InvalidFitted {
        /// The file.
        path: PathBuf,
        /// Problem.
        message: String,
    },
}

/// Errors of the lineage layer (manifests, keys).
#[derive(Debug, Error)]
pub enum LineageError {
    /// The manifest file is not a poisonscan manifest or is damaged.
    #[error("{path}: invalid manifest: {message}")]
    InvalidManifest {
        /// Manifest file.
        path: PathBuf,
        /// Problem.
        message: String,
    },
    /// A key is needed (keyed manifest) or the key file is unusable.
    #[error("key error: {0}")]
    Key(String),
    /// Row chunks are missing when the state is finished (a partition was not merged).
    #[error("lineage state is incomplete: {0}")]
    Incomplete(String),
    /// An attestation cannot be made from the file given (it is neither a manifest nor a scan report, or it
    /// cannot be read).
    #[error("attestation: {0}")]
    Attestation(String),
    /// Data given to split by a scan's flags is not the data that was scanned (other rows, another order).
    #[error("{origin}: not the data that was scanned: {message}; split exactly the rows scanned, in their order")]
    NotScannedData {
        /// Where the data came from.
        origin: String,
        /// The first difference.
        message: String,
    },
}

/// Errors of the policy file.
#[derive(Debug, Error)]
#[error("{path}: invalid policy: {message}")]
pub struct PolicyError {
    /// Policy file (or `<built-in>`).
    pub path: PathBuf,
    /// Problem.
    pub message: String,
}

/// Any error poisonscan returns.
#[derive(Debug, Error)]
pub enum Error {
    /// Reading input failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Contract violation at schema level, or bad contract file.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// Lineage / manifest problem.
    #[error(transparent)]
    Lineage(#[from] LineageError),
    /// Policy file problem.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The input holds no rows.
    #[error("{origin}: no rows to scan (an empty input never passes)")]
    ZeroRows {
        /// Where the data came from.
        origin: String,
    },
    /// Writing an output failed (nothing partial is left behind).
    #[error("{path}: cannot write output: {message}")]
    Output {
        /// Output path.
        path: PathBuf,
        /// Problem.
        message: String,
    },
    /// Bad arguments or options.
    #[error("{0}")]
    Usage(String),
    /// A detector failed on data it should have handled (a bug: please report it).
    #[error("detector {detector} failed: {message}")]
    Detector {
        /// Which detector.
        detector: &'static str,
        /// Problem.
        message: String,
    },
}

impl Error {
    /// The CLI exit code for this error: 2 usage/configuration, 3 input/IO or incomplete scan.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Contract(_)
            | Error::Policy(_)
            | Error::Usage(_)
            | Error::Source(SourceError::SchemaMismatch { .. })
            | Error::Source(SourceError::DuplicateColumn { .. })
            | Error::Lineage(LineageError::Key(_)) => 2,
            Error::Source(_)
            | Error::Lineage(_)
            | Error::ZeroRows { .. }
            | Error::Output { .. }
            | Error::Detector { .. } => 3,
        }
    }

    /// Short kind name used in reports and by the Python binding to choose an exception class.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Source(SourceError::SchemaMismatch { .. })
            | Error::Source(SourceError::DuplicateColumn { .. }) => "schema",
            Error::Source(_) | Error::ZeroRows { .. } | Error::Output { .. } => "input",
            Error::Contract(_) => "schema",
            Error::Lineage(LineageError::Key(_)) => "usage",
            Error::Lineage(_) => "lineage",
            Error::Policy(_) | Error::Usage(_) => "usage",
            Error::Detector { .. } => "internal",
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of a caught panic (its `&str` or `String` payload), if it has one.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}
