//! Writing outputs atomically: every file is written to a temporary file in the destination folder and renamed
//! into place only when complete, so a failed scan never leaves a partly written output.

use crate::error::Error;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Write `path` through `write`, atomically. On any error the temporary file is removed and `path` is untouched.
pub fn write_atomically<F>(path: &Path, write: F) -> Result<(), Error>
where
    F: FnOnce(File) -> Result<(), String>,
{
    let (tmp, file) = temp_beside(path)?;
    write(file).map_err(|m| output_error(path, m))?;
    tmp.persist(path)
        .map_err(|e| output_error(path, e.error.to_string()))?;
    Ok(())
}

fn output_error(path: &Path, message: String) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        message,
    }
}

/// A temporary file in `path`'s folder (created if missing) and a handle to write it; `persist(path)` renames it
/// into place, dropping it removes it.
fn temp_beside(path: &Path) -> Result<(tempfile::NamedTempFile, File), Error> {
    let err = |m: String| output_error(path, m);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| err(format!("cannot create folder {}: {e}", dir.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix(".poisonscan-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| err(e.to_string()))?;
    let file = tmp.reopen().map_err(|e| err(e.to_string()))?;
    Ok((tmp, file))
}

/// Tabular output format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Parquet (default).
    Parquet,
    /// CSV with a header.
    Csv,
    /// Arrow IPC file.
    Ipc,
}

impl TableFormat {
    /// From a path's extension: `.csv` CSV, `.arrow`/`.ipc`/`.feather` IPC, anything else Parquet.
    pub fn from_path(path: &Path) -> TableFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("csv") => TableFormat::Csv,
            Some("arrow") | Some("ipc") | Some("feather") => TableFormat::Ipc,
            _ => TableFormat::Parquet,
        }
    }
}

/// A table being written batch by batch into a temporary file, renamed into place by [`TableWriter::finish`].
pub struct TableWriter {
    path: PathBuf,
    tmp: Option<tempfile::NamedTempFile>,
    inner: Inner,
}

enum Inner {
    Parquet(parquet::arrow::ArrowWriter<File>),
    Csv(arrow::csv::Writer<File>),
    Ipc(arrow::ipc::writer::FileWriter<File>),
}

impl TableWriter {
    /// Start writing `path` with `schema`.
    pub fn create(path: &Path, schema: &SchemaRef) -> Result<TableWriter, Error> {
        let err = |m: String| output_error(path, m);
        let (tmp, file) = temp_beside(path)?;
        let inner = match TableFormat::from_path(path) {
            TableFormat::Parquet => Inner::Parquet(
                parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)
                    .map_err(|e| err(e.to_string()))?,
            ),
            TableFormat::Csv => Inner::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file),
            ),
            TableFormat::Ipc => Inner::Ipc(
                arrow::ipc::writer::FileWriter::try_new(file, schema)
                    .map_err(|e| err(e.to_string()))?,
            ),
        };
        Ok(TableWriter {
            path: path.to_path_buf(),
            tmp: Some(tmp),
            inner,
        })
    }

    /// Append a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        let r = match &mut self.inner {
            Inner::Parquet(w) => w.write(batch).map_err(|e| e.to_string()),
            Inner::Csv(w) => w.write(batch).map_err(|e| e.to_string()),
            Inner::Ipc(w) => w.write(batch).map_err(|e| e.to_string()),
        };
        r.map_err(|m| Error::Output {
            path: self.path.clone(),
            message: m,
        })
    }

    /// Finish and rename into place.
    pub fn finish(mut self) -> Result<(), Error> {
        let path = self.path.clone();
        let err = |m: String| Error::Output {
            path: path.clone(),
            message: m,
        };
        match self.inner {
            Inner::Parquet(w) => {
                w.close().map_err(|e| err(e.to_string()))?;
            }
            Inner::Csv(w) => drop(w.into_inner()),
            Inner::Ipc(mut w) => w.finish().map_err(|e| err(e.to_string()))?,
        }
        if let Some(tmp) = self.tmp.take() {
            tmp.persist(&path).map_err(|e| err(e.error.to_string()))?;
        }
        Ok(())
    }
}
