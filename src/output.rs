//! Writing outputs atomically: every file is written to a temporary file in the destination folder and renamed
//! into place only when complete, so a failed scan never leaves a partly written output.

use crate::error::Error;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Refuse outputs that would overwrite an input or one another, or land inside an input folder (a folder input is
/// every data file in it, so a file written there would join the dataset). `inputs` and `outputs` are (option,
/// path) pairs, named in the error. Paths are compared after resolving symbolic links and `..`; an output that does
/// not exist yet is resolved through its nearest existing folder.
pub fn check_outputs(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<(), Error> {
    let inputs: Vec<(&str, &Path, PathBuf)> = inputs
        .iter()
        .filter_map(|&(what, p)| p.canonicalize().ok().map(|r| (what, p, r)))
        .collect();
    let mut seen: Vec<(&str, PathBuf)> = Vec::new();
    for &(flag, out) in outputs {
        let resolved = resolve(out);
        for (what, input, r) in &inputs {
            let clash = if r.is_dir() {
                resolved
                    .starts_with(r)
                    .then_some("is inside the input folder")
            } else {
                (resolved == *r).then_some("is the input")
            };
            if let Some(clash) = clash {
                return Err(Error::Usage(format!(
                    "{flag} {} {clash} {} ({what}); an input is never written: choose another path",
                    out.display(),
                    input.display()
                )));
            }
        }
        if let Some((other, _)) = seen.iter().find(|(_, r)| *r == resolved) {
            return Err(Error::Usage(format!(
                "{flag} {} is also the {other} output: give each output its own path",
                out.display()
            )));
        }
        seen.push((flag, resolved));
    }
    Ok(())
}

/// Outputs written together, all or none: each is staged in a temporary file beside its destination, created when
/// the set is prepared (so an unwritable path fails before any data is read), and every one is renamed into place
/// only when all were written. Dropping the set without [`OutputSet::commit`] removes the temporaries.
#[derive(Debug, Default)]
pub struct OutputSet {
    staged: Vec<(PathBuf, tempfile::NamedTempFile)>,
}

impl OutputSet {
    /// Stage a temporary file for each path (its folder is created when missing). An existing folder at a path, or
    /// a folder that cannot be written, is an error naming the option.
    pub fn prepare(outputs: &[(&str, &Path)]) -> Result<OutputSet, Error> {
        let mut set = OutputSet::default();
        for &(flag, path) in outputs {
            if path.is_dir() {
                return Err(output_error(
                    path,
                    format!("{flag}: is a folder, expected a file path"),
                ));
            }
            let (tmp, _) = temp_beside(path)
                .map_err(|e| output_error(path, format!("{flag}: cannot be written: {e}")))?;
            set.staged.push((path.to_path_buf(), tmp));
        }
        Ok(set)
    }

    /// A handle on the temporary file staged for `path`, and the path (for the format and error messages).
    pub fn file(&self, path: &Path) -> Result<File, Error> {
        let (_, tmp) = self
            .staged
            .iter()
            .find(|(p, _)| p == path)
            .ok_or_else(|| output_error(path, "no output was prepared for this path".into()))?;
        tmp.reopen().map_err(|e| output_error(path, e.to_string()))
    }

    /// Write `text` into the file staged for `path`.
    pub fn write_text(&self, path: &Path, text: &str) -> Result<(), Error> {
        use std::io::Write;
        let mut f = self.file(path)?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.flush())
            .map_err(|e| output_error(path, e.to_string()))
    }

    /// Rename every staged file into place. Should a rename fail, the outputs already renamed are removed again.
    pub fn commit(self) -> Result<(), Error> {
        let mut done: Vec<PathBuf> = Vec::new();
        for (path, tmp) in self.staged {
            if let Err(e) = tmp.persist(&path) {
                for p in &done {
                    let _ = std::fs::remove_file(p);
                }
                return Err(output_error(&path, e.error.to_string()));
            }
            done.push(path);
        }
        Ok(())
    }
}

/// `path` with symbolic links and `..` resolved as far as it exists, and the rest appended.
fn resolve(path: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let parts: Vec<Component> = absolute.components().collect();
    for split in (1..=parts.len()).rev() {
        let head: PathBuf = parts[..split].iter().collect();
        if let Ok(mut r) = head.canonicalize() {
            // The rest does not exist, so it holds no links: `..` there is lexical.
            for part in &parts[split..] {
                match part {
                    Component::ParentDir => {
                        r.pop();
                    }
                    Component::CurDir => {}
                    other => r.push(other),
                }
            }
            return r;
        }
    }
    absolute
}

/// Write `text` to `path` atomically (see [`write_atomically`]).
pub fn write_text_atomically(path: &Path, text: &str) -> Result<(), Error> {
    write_atomically(path, |mut f| {
        use std::io::Write;
        f.write_all(text.as_bytes()).map_err(|e| e.to_string())
    })
}

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
    let mut builder = tempfile::Builder::new();
    builder.prefix(".poisonscan-").suffix(".tmp");
    // Created like any other new file (0666 less the umask), not private as temporary files are: the output is
    // renamed into place and read by the rest of the pipeline.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder.tempfile_in(&dir).map_err(|e| err(e.to_string()))?;
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
        let (tmp, file) = temp_beside(path)?;
        let mut w = TableWriter::into_file(file, path, schema)?;
        w.tmp = Some(tmp);
        Ok(w)
    }

    /// Write into `file` (staged by an [`OutputSet`]) in the format `path`'s extension names; `finish` then only
    /// completes the file.
    pub fn into_file(file: File, path: &Path, schema: &SchemaRef) -> Result<TableWriter, Error> {
        let err = |m: String| output_error(path, m);
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
            tmp: None,
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
            Inner::Csv(w) => {
                use std::io::Write;
                w.into_inner().flush().map_err(|e| err(e.to_string()))?
            }
            Inner::Ipc(mut w) => w.finish().map_err(|e| err(e.to_string()))?,
        }
        if let Some(tmp) = self.tmp.take() {
            tmp.persist(&path).map_err(|e| err(e.error.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_may_not_be_an_input_another_output_or_inside_an_input_folder() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let data = d.join("data.parquet");
        std::fs::write(&data, b"x").unwrap();
        let folder = d.join("parts");
        std::fs::create_dir(&folder).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&data, d.join("link.parquet")).unwrap();
        let refused = |inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]| {
            matches!(check_outputs(inputs, outputs), Err(Error::Usage(_)))
        };
        let input = [("the data", data.as_path())];
        // The input itself, by another spelling (`..` through a folder that does not exist yet), through a link.
        assert!(refused(&input, &[("-o", &data)]));
        assert!(refused(
            &input,
            &[("-o", &d.join("new/sub/../../data.parquet"))]
        ));
        #[cfg(unix)]
        assert!(refused(&input, &[("-o", &d.join("link.parquet"))]));
        // Inside an input folder, even in a sub-folder not made yet.
        assert!(refused(
            &[("the data", folder.as_path())],
            &[("--scores", &folder.join("later/scores.csv"))]
        ));
        // Two outputs on one file.
        assert!(refused(
            &input,
            &[
                ("--clean", &d.join("a.parquet")),
                ("--quarantine", &d.join("./a.parquet"))
            ]
        ));
        // Distinct outputs beside the inputs are fine, and an input that does not exist constrains nothing.
        assert!(check_outputs(
            &[
                ("the data", data.as_path()),
                ("--reference", &d.join("missing.parquet"))
            ],
            &[
                ("--clean", &d.join("clean.parquet")),
                ("--quarantine", &d.join("quarantine.parquet")),
                ("--scores", &d.join("parts-scores.csv")),
            ]
        )
        .is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn outputs_are_created_with_the_usual_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        write_atomically(&p, |_| Ok(())).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // The same mode as a file the plain way (0666 less the umask), not owner-only as a temporary file.
        let plain = dir.path().join("plain");
        File::create(&plain).unwrap();
        assert_eq!(mode(&p), mode(&plain));
    }
}
