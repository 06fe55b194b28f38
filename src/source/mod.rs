//! Data sources: everything poisonscan reads arrives as a stream of Arrow [`RecordBatch`]es.
//!
//! A [`Source`] is a Parquet file or folder, an Arrow IPC file or stream, a CSV file, batches in memory, or any
//! [`RecordBatchReader`] (a one-shot stream, e.g. from Python's `__arrow_c_stream__`). Checks and detectors only see
//! [`BatchStream`]s, so they never care where the data came from. Memory is bounded by the batch size: files are read
//! batch by batch, never loaded whole.

#[cfg(feature = "polars")]
pub mod polars;
pub(crate) mod validate;

use crate::error::SourceError;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::{FileReader, StreamReader};
use arrow::record_batch::RecordBatchReader;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Default rows per batch.
pub const DEFAULT_BATCH_SIZE: usize = 65_536;

/// File formats poisonscan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet (file, or a folder of files).
    Parquet,
    /// Arrow IPC file format (`.arrow`, `.ipc`, `.feather` v2).
    IpcFile,
    /// Arrow IPC stream format (`.arrows`).
    IpcStream,
    /// CSV with a header row.
    Csv,
}

impl Format {
    /// Guess the format from a path's extension (a folder is read as Parquet).
    pub fn from_path(path: &Path) -> Result<Format, SourceError> {
        if path.is_dir() {
            return Ok(Format::Parquet);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "parquet" | "pq" => Ok(Format::Parquet),
            "arrow" | "ipc" | "feather" => Ok(Format::IpcFile),
            "arrows" => Ok(Format::IpcStream),
            "csv" | "tsv" => Ok(Format::Csv),
            _ => Err(SourceError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Parquet => "Parquet",
            Format::IpcFile => "Arrow IPC file",
            Format::IpcStream => "Arrow IPC stream",
            Format::Csv => "CSV",
        }
    }
}

/// An iterator of record batches with a known schema.
pub struct BatchStream {
    schema: SchemaRef,
    origin: String,
    inner: Box<dyn Iterator<Item = Result<RecordBatch, SourceError>> + Send>,
}

impl BatchStream {
    /// Schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    /// Human-readable origin (a path, or "python stream").
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl BatchStream {
    /// Decode ahead on a background thread (up to `depth` batches), so decoding overlaps with the work done on
    /// each batch. Memory grows by at most `depth` batches. A panic in the decoder ends the stream with a
    /// [`SourceError::Read`], never with a silent end of data.
    pub fn prefetch(self, depth: usize) -> BatchStream {
        let (tx, rx) = std::sync::mpsc::sync_channel(depth.max(1));
        let mut inner = self.inner;
        let origin = self.origin.clone();
        std::thread::spawn(move || {
            let mut rows_read = 0u64;
            loop {
                let item = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    inner.next()
                })) {
                    Ok(None) => break,
                    Ok(Some(item)) => item,
                    Err(panic) => Err(SourceError::Read {
                        origin: origin.clone(),
                        rows_read,
                        message: format!(
                            "the decoder panicked: {}",
                            crate::error::panic_message(panic.as_ref()).unwrap_or("(no message)")
                        ),
                    }),
                };
                let failed = item.is_err();
                if let Ok(b) = &item {
                    rows_read += b.num_rows() as u64;
                }
                if tx.send(item).is_err() || failed {
                    break;
                }
            }
        });
        BatchStream {
            schema: self.schema,
            origin: self.origin,
            inner: Box::new(rx.into_iter()),
        }
    }
}

impl Iterator for BatchStream {
    type Item = Result<RecordBatch, SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

/// Run `f` (opening or decoding a file an attacker may have written); a panic inside it becomes a typed
/// [`SourceError::Read`] naming `origin`, never a crash. arrow-rs counts panics on malformed input as bugs but has
/// some; this is where they stop.
fn contained<T>(
    origin: &str,
    rows_read: u64,
    f: impl FnOnce() -> Result<T, SourceError>,
) -> Result<T, SourceError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => Err(SourceError::Read {
            origin: origin.to_string(),
            rows_read,
            message: format!(
                "the decoder panicked (malformed file): {}",
                crate::error::panic_message(panic.as_ref()).unwrap_or("(no message)")
            ),
        }),
    }
}

/// The stream with every decoding step run under [`contained`]: a panic ends it with an error.
fn guarded(stream: BatchStream) -> BatchStream {
    let BatchStream {
        schema,
        origin,
        mut inner,
    } = stream;
    let o = origin.clone();
    let (mut rows_read, mut done) = (0u64, false);
    let iter = std::iter::from_fn(move || {
        if done {
            return None;
        }
        let item = contained(&o, rows_read, || Ok(inner.next()));
        match item {
            Ok(None) => None,
            Ok(Some(Ok(b))) => {
                rows_read += b.num_rows() as u64;
                Some(Ok(b))
            }
            Ok(Some(Err(e))) | Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    });
    BatchStream {
        schema,
        origin,
        inner: Box::new(iter),
    }
}

/// Wrap a reader so every error names the origin and counts rows read so far.
fn wrap_reader<R>(reader: R, origin: String) -> BatchStream
where
    R: RecordBatchReader + Send + 'static,
{
    let schema = reader.schema();
    let o = origin.clone();
    let mut rows_read = 0u64;
    let mut failed = false;
    let inner = reader.map_while(move |r| {
        if failed {
            return None;
        }
        Some(match r {
            Ok(b) => {
                rows_read += b.num_rows() as u64;
                Ok(b)
            }
            Err(e) => {
                failed = true;
                Err(SourceError::Read {
                    origin: o.clone(),
                    rows_read,
                    message: e.to_string(),
                })
            }
        })
    });
    BatchStream {
        schema,
        origin,
        inner: Box::new(inner),
    }
}

/// Where a scan's data comes from. Path and in-memory sources can be read more than once; a stream only once
/// (see [`Source::into_rewindable`]).
pub enum Source {
    /// A file or a folder of Parquet files.
    Path {
        /// The file or folder.
        path: PathBuf,
        /// Its format.
        format: Format,
        /// Rows per batch.
        batch_size: usize,
        /// Columns to read (all when `None`); Parquet reads only these.
        projection: Option<Vec<String>>,
    },
    /// Batches held in memory.
    Memory {
        /// Schema.
        schema: SchemaRef,
        /// The batches.
        batches: Vec<RecordBatch>,
        /// Description for messages.
        origin: String,
    },
    /// A one-shot stream (taken on first open).
    Stream {
        /// The reader; `None` once consumed.
        reader: Option<Box<dyn RecordBatchReader + Send>>,
        /// Description for messages.
        origin: String,
    },
    /// A stream spooled to a temporary Arrow IPC file (deleted on drop).
    Spooled {
        /// The temporary file.
        file: tempfile::NamedTempFile,
        /// Description of the original stream.
        origin: String,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({})", self.origin())
    }
}

impl Source {
    /// A file or folder; format from the extension.
    pub fn path(path: impl Into<PathBuf>) -> Result<Source, SourceError> {
        let path = path.into();
        if !path.exists() {
            return Err(SourceError::Open {
                path,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            });
        }
        let format = Format::from_path(&path)?;
        Ok(Source::Path {
            path,
            format,
            batch_size: DEFAULT_BATCH_SIZE,
            projection: None,
        })
    }

    /// A one-shot stream of batches (e.g. imported through the Arrow C stream interface).
    pub fn stream(reader: Box<dyn RecordBatchReader + Send>, origin: impl Into<String>) -> Source {
        Source::Stream {
            reader: Some(reader),
            origin: origin.into(),
        }
    }

    /// Batches in memory.
    pub fn memory(
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        origin: impl Into<String>,
    ) -> Source {
        Source::Memory {
            schema,
            batches,
            origin: origin.into(),
        }
    }

    /// Set the rows per batch for file sources.
    pub fn with_batch_size(mut self, n: usize) -> Source {
        if let Source::Path { batch_size, .. } = &mut self {
            *batch_size = n.max(1);
        }
        self
    }

    /// Read only these columns (Parquet pushes the projection down; other formats drop columns after reading).
    pub fn with_projection(mut self, columns: Option<Vec<String>>) -> Source {
        if let Source::Path { projection, .. } = &mut self {
            *projection = columns;
        }
        self
    }

    /// Description for messages and reports.
    pub fn origin(&self) -> String {
        match self {
            Source::Path { path, .. } => path.display().to_string(),
            Source::Memory { origin, .. }
            | Source::Stream { origin, .. }
            | Source::Spooled { origin, .. } => origin.clone(),
        }
    }

    /// Whether [`Source::open`] may be called more than once.
    pub fn is_rewindable(&self) -> bool {
        !matches!(self, Source::Stream { .. })
    }

    /// Make a stream rewindable by spooling it to a temporary Arrow IPC file (bounded memory, disk-backed).
    pub fn into_rewindable(self) -> Result<Source, SourceError> {
        match self {
            Source::Stream { reader, origin } => {
                let reader = reader.ok_or_else(|| SourceError::Consumed {
                    origin: origin.clone(),
                })?;
                let spool_err = |e: &dyn std::fmt::Display| SourceError::Spool {
                    origin: origin.clone(),
                    message: e.to_string(),
                };
                let file = tempfile::NamedTempFile::new().map_err(|e| spool_err(&e))?;
                let schema = reader.schema();
                let handle = file.reopen().map_err(|e| spool_err(&e))?;
                let mut writer = arrow::ipc::writer::FileWriter::try_new(
                    std::io::BufWriter::new(handle),
                    &schema,
                )
                .map_err(|e| spool_err(&e))?;
                let mut stream = wrap_reader(reader, origin.clone());
                for batch in &mut stream {
                    writer.write(&batch?).map_err(|e| spool_err(&e))?;
                }
                writer.finish().map_err(|e| spool_err(&e))?;
                Ok(Source::Spooled { file, origin })
            }
            other => Ok(other),
        }
    }

    /// Parts of the input that can be decoded independently, in row order: every row group of a Parquet file, or
    /// of each file of a Parquet folder (sorted by name, as [`Source::open`] reads them). `None` for other sources.
    /// Opening the parts one after another yields the rows [`Source::open`] yields, in the same order (batch
    /// boundaries may differ); reading them on several threads lets decoding use every core.
    pub fn parts(&mut self) -> Result<Option<Vec<Part>>, SourceError> {
        let (path, batch_size, projection) = match self {
            Source::Path {
                path,
                format: Format::Parquet,
                batch_size,
                projection,
            } => (path.clone(), *batch_size, projection.clone()),
            _ => return Ok(None),
        };
        // Opening validates what `open` validates (readable footers, one schema across a folder).
        drop(self.open()?);
        let files = if path.is_dir() {
            parquet_files(&path)?
        } else {
            vec![path]
        };
        let mut parts = Vec::new();
        let mut first_row = 0u64;
        for file in files {
            let metadata = contained(&file.display().to_string(), 0, || {
                let f = open_file(&file)?;
                let len = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
                let m = ArrowReaderMetadata::load(&f, ArrowReaderOptions::default())
                    .map_err(|e| corrupt(&file, Format::Parquet, e))?;
                validate::parquet_chunks_inside(m.metadata(), len)
                    .map_err(|e| corrupt(&file, Format::Parquet, e))?;
                Ok(m)
            })?;
            for (row_group, rg) in metadata.metadata().row_groups().iter().enumerate() {
                let rows = rg.num_rows().max(0) as u64;
                parts.push(Part {
                    path: file.clone(),
                    metadata: metadata.clone(),
                    row_group,
                    first_row,
                    rows,
                    batch_size,
                    projection: projection.clone(),
                });
                first_row += rows;
            }
        }
        Ok(Some(parts))
    }

    /// Size and modification time of every file a path source reads (`None` for memory and stream sources), to
    /// notice an input that changes while it is being scanned ([`Source::unchanged_since`]).
    pub fn file_state(&self) -> Option<Vec<(PathBuf, u64, Option<std::time::SystemTime>)>> {
        let Source::Path { path, .. } = self else {
            return None;
        };
        let files = if path.is_dir() {
            parquet_files(path).ok()?
        } else {
            vec![path.clone()]
        };
        Some(
            files
                .into_iter()
                .map(|f| {
                    let m = std::fs::metadata(&f).ok();
                    let len = m.as_ref().map_or(u64::MAX, |m| m.len());
                    let modified = m.and_then(|m| m.modified().ok());
                    (f, len, modified)
                })
                .collect(),
        )
    }

    /// Refuse a path source whose files differ from `before` (a file of [`Source::file_state`] taken earlier):
    /// another size or modification time, a file added to or removed from the folder.
    pub fn unchanged_since(
        &self,
        before: &Option<Vec<(PathBuf, u64, Option<std::time::SystemTime>)>>,
    ) -> Result<(), SourceError> {
        let (Some(before), Some(now)) = (before, self.file_state()) else {
            return Ok(());
        };
        if before.len() != now.len() {
            let path = match self {
                Source::Path { path, .. } => path.clone(),
                _ => PathBuf::new(),
            };
            return Err(SourceError::Changed { path });
        }
        for (b, n) in before.iter().zip(&now) {
            if b != n {
                return Err(SourceError::Changed { path: n.0.clone() });
            }
        }
        Ok(())
    }

    /// Whether the column types are guessed from text (CSV), so an integer-looking float column reads as integers.
    pub fn types_from_text(&self) -> bool {
        matches!(
            self,
            Source::Path {
                format: Format::Csv,
                ..
            }
        )
    }

    /// Open a pass over the data. A schema with two columns of one name is refused (nothing could tell them apart).
    pub fn open(&mut self) -> Result<BatchStream, SourceError> {
        let origin = self.origin();
        let stream = guarded(contained(&origin, 0, || self.open_any())?);
        let mut seen = std::collections::HashSet::new();
        for f in stream.schema().fields() {
            if !seen.insert(f.name().as_str()) {
                return Err(SourceError::DuplicateColumn {
                    origin,
                    column: f.name().clone(),
                });
            }
        }
        Ok(stream)
    }

    fn open_any(&mut self) -> Result<BatchStream, SourceError> {
        match self {
            Source::Path {
                path,
                format,
                batch_size,
                projection,
            } => open_path(path, *format, *batch_size, projection.as_deref()),
            Source::Memory {
                schema,
                batches,
                origin,
            } => {
                let batches: Vec<Result<RecordBatch, SourceError>> =
                    batches.iter().cloned().map(Ok).collect();
                Ok(BatchStream {
                    schema: schema.clone(),
                    origin: origin.clone(),
                    inner: Box::new(batches.into_iter()),
                })
            }
            Source::Stream { reader, origin } => match reader.take() {
                Some(r) => Ok(wrap_reader(r, origin.clone())),
                None => Err(SourceError::Consumed {
                    origin: origin.clone(),
                }),
            },
            Source::Spooled { file, origin } => {
                let f = file.reopen().map_err(|e| SourceError::Spool {
                    origin: origin.clone(),
                    message: e.to_string(),
                })?;
                let reader = FileReader::try_new(BufReader::new(f), None).map_err(|e| {
                    SourceError::Spool {
                        origin: origin.clone(),
                        message: e.to_string(),
                    }
                })?;
                Ok(wrap_reader(reader, origin.clone()))
            }
        }
    }
}

/// One independently decodable part of a Parquet input: one row group of one file (see [`Source::parts`]).
#[derive(Clone)]
pub struct Part {
    path: PathBuf,
    metadata: ArrowReaderMetadata,
    row_group: usize,
    first_row: u64,
    rows: u64,
    batch_size: usize,
    projection: Option<Vec<String>>,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Part({})", self.origin())
    }
}

impl Part {
    /// Position of the part's first row in the whole input.
    pub fn first_row(&self) -> u64 {
        self.first_row
    }

    /// Rows in the part.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The file and row group, for messages.
    pub fn origin(&self) -> String {
        format!("{} (row group {})", self.path.display(), self.row_group)
    }

    /// Open a pass over this part's rows.
    pub fn open(&self) -> Result<BatchStream, SourceError> {
        let origin = self.origin();
        let stream = contained(&origin, 0, || {
            let f = open_file(&self.path)?;
            let builder =
                ParquetRecordBatchReaderBuilder::new_with_metadata(f, self.metadata.clone())
                    .with_row_groups(vec![self.row_group]);
            let reader = configure(builder, self.batch_size, self.projection.as_deref())
                .build()
                .map_err(|e| corrupt(&self.path, Format::Parquet, e))?;
            Ok(wrap_reader(reader, self.origin()))
        })?;
        Ok(guarded(stream))
    }
}

fn corrupt(path: &Path, format: Format, e: impl std::fmt::Display) -> SourceError {
    SourceError::Corrupt {
        path: path.to_path_buf(),
        format: format.name(),
        message: e.to_string(),
    }
}

fn open_file(path: &Path) -> Result<File, SourceError> {
    let f = File::open(path).map_err(|source| SourceError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let len = f
        .metadata()
        .map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if len == 0 {
        return Err(SourceError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(f)
}

fn open_path(
    path: &Path,
    format: Format,
    batch_size: usize,
    projection: Option<&[String]>,
) -> Result<BatchStream, SourceError> {
    if path.is_dir() {
        return open_parquet_folder(path, batch_size, projection);
    }
    validate::framing(path, format)?;
    let stream = match format {
        Format::Parquet => open_parquet(path, batch_size, projection)?,
        Format::IpcFile => {
            let f = open_file(path)?;
            let r = FileReader::try_new(BufReader::new(f), None)
                .map_err(|e| corrupt(path, format, e))?;
            wrap_reader(r, path.display().to_string())
        }
        Format::IpcStream => {
            let f = open_file(path)?;
            let r = StreamReader::try_new(BufReader::new(f), None)
                .map_err(|e| corrupt(path, format, e))?;
            wrap_reader(r, path.display().to_string())
        }
        Format::Csv => open_csv(path, batch_size)?,
    };
    match (format, projection) {
        (Format::Parquet, _) | (_, None) => Ok(stream),
        (_, Some(cols)) => project_stream(stream, cols),
    }
}

fn project_stream(stream: BatchStream, cols: &[String]) -> Result<BatchStream, SourceError> {
    let schema = stream.schema();
    let indices: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| cols.iter().any(|c| c == f.name()))
        .map(|(i, _)| i)
        .collect();
    let projected = schema.project(&indices).map_err(|e| SourceError::Read {
        origin: stream.origin.clone(),
        rows_read: 0,
        message: e.to_string(),
    })?;
    let origin = stream.origin.clone();
    let o = origin.clone();
    let inner = stream.map(move |b| {
        b.and_then(|b| {
            b.project(&indices).map_err(|e| SourceError::Read {
                origin: o.clone(),
                rows_read: 0,
                message: e.to_string(),
            })
        })
    });
    Ok(BatchStream {
        schema: std::sync::Arc::new(projected),
        origin,
        inner: Box::new(inner),
    })
}

fn open_parquet(
    path: &Path,
    batch_size: usize,
    projection: Option<&[String]>,
) -> Result<BatchStream, SourceError> {
    let f = open_file(path)?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let builder = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| corrupt(path, Format::Parquet, e))?;
    validate::parquet_chunks_inside(builder.metadata(), len)
        .map_err(|e| corrupt(path, Format::Parquet, e))?;
    let reader = configure(builder, batch_size, projection)
        .build()
        .map_err(|e| corrupt(path, Format::Parquet, e))?;
    Ok(wrap_reader(reader, path.display().to_string()))
}

/// Batch size and column projection (pushed down into the Parquet reader) of a reader builder.
fn configure(
    builder: ParquetRecordBatchReaderBuilder<File>,
    batch_size: usize,
    projection: Option<&[String]>,
) -> ParquetRecordBatchReaderBuilder<File> {
    let builder = builder.with_batch_size(batch_size);
    match projection {
        None => builder,
        Some(cols) => {
            let indices: Vec<usize> = builder
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| cols.iter().any(|c| c == f.name()))
                .map(|(i, _)| i)
                .collect();
            let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), indices);
            builder.with_projection(mask)
        }
    }
}

/// The Parquet files of a folder, sorted by name.
fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| SourceError::Open {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension()
                        .and_then(|e| e.to_str())
                        .map(|e| e.to_ascii_lowercase())
                        .as_deref(),
                    Some("parquet") | Some("pq")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

fn open_parquet_folder(
    dir: &Path,
    batch_size: usize,
    projection: Option<&[String]>,
) -> Result<BatchStream, SourceError> {
    let files = parquet_files(dir)?;
    let first = files
        .first()
        .cloned()
        .ok_or_else(|| SourceError::EmptyFolder {
            path: dir.to_path_buf(),
        })?;
    // Open every file up front: schema mismatches and corrupt footers fail before any row is scored.
    let mut streams = Vec::with_capacity(files.len());
    let mut schema: Option<SchemaRef> = None;
    for f in &files {
        validate::framing(f, Format::Parquet)?;
        let s = open_parquet(f, batch_size, projection)?;
        if let Some(first_schema) = &schema {
            if !same_columns(first_schema, &s.schema()) {
                return Err(SourceError::SchemaMismatch {
                    path: f.clone(),
                    first: first.clone(),
                    detail: format!(
                        "{} vs {}",
                        describe_schema(first_schema),
                        describe_schema(&s.schema())
                    ),
                });
            }
        } else {
            schema = Some(s.schema());
        }
        streams.push(s);
    }
    let schema = schema.ok_or_else(|| SourceError::EmptyFolder {
        path: dir.to_path_buf(),
    })?;
    Ok(BatchStream {
        schema,
        origin: dir.display().to_string(),
        inner: Box::new(streams.into_iter().flatten()),
    })
}

fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields().iter())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// `name: Type, ...` for messages.
pub fn describe_schema(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn open_csv(path: &Path, batch_size: usize) -> Result<BatchStream, SourceError> {
    let mut f = open_file(path)?;
    let delimiter = if path.extension().and_then(|e| e.to_str()) == Some("tsv") {
        b'\t'
    } else {
        b','
    };
    let format = arrow::csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter);
    // Infer types from the first 10k rows; a column with a stray non-number becomes Utf8 and the scan coerces it
    // back, reporting the rows that do not parse as type violations.
    let (schema, _) = format
        .infer_schema(&mut BufReader::new(&mut f), Some(10_000))
        .map_err(|e| corrupt(path, Format::Csv, e))?;
    f.seek(SeekFrom::Start(0))
        .map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let reader = arrow::csv::ReaderBuilder::new(std::sync::Arc::new(schema))
        .with_format(format)
        .with_batch_size(batch_size)
        .build(BufReader::new(f))
        .map_err(|e| corrupt(path, Format::Csv, e))?;
    Ok(wrap_reader(reader, path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn stream(n: usize, panic_at: Option<usize>) -> BatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let s = schema.clone();
        let inner = (0..n).map(move |k| {
            if Some(k) == panic_at {
                panic!("bad page {k}");
            }
            let col = Arc::new(Int64Array::from(vec![k as i64; 3]));
            RecordBatch::try_new(s.clone(), vec![col]).map_err(|e| SourceError::Read {
                origin: "test".into(),
                rows_read: 0,
                message: e.to_string(),
            })
        });
        BatchStream {
            schema,
            origin: "test".into(),
            inner: Box::new(inner),
        }
    }

    #[test]
    fn prefetch_yields_every_batch_in_order() {
        let got: Vec<i64> = stream(7, None)
            .prefetch(2)
            .map(|b| {
                b.unwrap()
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0)
            })
            .collect();
        assert_eq!(got, (0..7).collect::<Vec<i64>>());
    }

    #[test]
    fn a_decoder_panic_is_an_error_not_the_end_of_the_data() {
        let got: Vec<Result<RecordBatch, SourceError>> = stream(7, Some(4)).prefetch(2).collect();
        assert_eq!(got.len(), 5, "four batches, then the error");
        assert!(got[..4].iter().all(Result::is_ok));
        match &got[4] {
            Err(SourceError::Read {
                rows_read, message, ..
            }) => {
                assert_eq!(*rows_read, 12);
                assert!(message.contains("bad page 4"), "{message}");
            }
            other => panic!("expected a read error, got {other:?}"),
        }
    }
}
