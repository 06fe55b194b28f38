//! Validate the framing of files an attacker may have written before a decoder trusts their declared sizes.
//!
//! arrow-rs allocates what a file declares: an Arrow IPC stream of four bytes can declare a 2 GB message, and a
//! declared body length can exceed any memory (the allocation failure aborts the process). Before a reader is
//! created, every declared length is checked against the file's actual size: IPC stream messages (continuation
//! marker, metadata length, the flatbuffer message's body length), the IPC file footer and its record-batch and
//! dictionary blocks, and the Parquet footer's metadata length (also capped at [`MAX_PARQUET_METADATA`]).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{corrupt, open_file, Format};
use crate::error::SourceError;

/// Largest Parquet footer metadata read (the Thrift-encoded schema and row-group index; real files with thousands
/// of columns and row groups stay far below it).
pub const MAX_PARQUET_METADATA: u64 = 256 << 20;
/// Largest single IPC metadata flatbuffer read.
const MAX_IPC_METADATA: u64 = 64 << 20;

fn bad(path: &Path, format: Format, what: String) -> SourceError {
    corrupt(path, format, what)
}

/// Check the declared sizes of `path` (of `format`) against its length.
pub fn framing(path: &Path, format: Format) -> Result<(), SourceError> {
    match format {
        Format::IpcStream => ipc_stream(path),
        Format::IpcFile => ipc_file(path),
        Format::Parquet => parquet_footer(path),
        Format::Csv => Ok(()),
    }
}

/// The file and its length in bytes.
fn open_with_len(path: &Path, format: Format) -> Result<(std::fs::File, u64), SourceError> {
    let f = open_file(path)?;
    let len = f
        .metadata()
        .map_err(|e| bad(path, format, e.to_string()))?
        .len();
    Ok((f, len))
}

fn read_exact_at(f: &mut std::fs::File, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)
}

/// Walk the messages of an IPC stream: `[0xFFFFFFFF] [i32 metadata length] [metadata] [body]`, until the
/// end-of-stream marker or the end of the file.
fn ipc_stream(path: &Path) -> Result<(), SourceError> {
    let format = Format::IpcStream;
    let (mut f, len) = open_with_len(path, format)?;
    walk_messages(&mut f, path, format, 0, len)
}

fn walk_messages(
    f: &mut std::fs::File,
    path: &Path,
    format: Format,
    start: u64,
    end: u64,
) -> Result<(), SourceError> {
    let io = |e: std::io::Error| bad(path, format, format!("truncated message framing: {e}"));
    let mut at = start;
    while at < end {
        if end - at < 4 {
            return Err(bad(
                path,
                format,
                format!("{} stray bytes at offset {at}", end - at),
            ));
        }
        let mut word = [0u8; 4];
        read_exact_at(f, at, &mut word).map_err(io)?;
        at += 4;
        let mut meta_len = u32::from_le_bytes(word);
        if meta_len == 0xFFFF_FFFF {
            if end - at < 4 {
                return Err(bad(path, format, "truncated message length".into()));
            }
            read_exact_at(f, at, &mut word).map_err(io)?;
            at += 4;
            meta_len = u32::from_le_bytes(word);
        }
        if meta_len == 0 {
            return Ok(()); // end of stream
        }
        let meta_len = u64::from(meta_len);
        if meta_len > MAX_IPC_METADATA || meta_len > end - at {
            return Err(bad(
                path,
                format,
                format!(
                    "a message at offset {} declares {meta_len} bytes of metadata; {} remain in the file",
                    at - 4,
                    end - at
                ),
            ));
        }
        let mut meta = vec![0u8; meta_len as usize];
        read_exact_at(f, at, &mut meta).map_err(io)?;
        at += meta_len;
        let message = arrow::ipc::root_as_message(&meta).map_err(|e| {
            bad(
                path,
                format,
                format!("invalid message metadata at offset {at}: {e}"),
            )
        })?;
        let body = message.bodyLength();
        if body < 0 || body as u64 > end - at {
            return Err(bad(
                path,
                format,
                format!(
                    "a message declares a body of {body} bytes; {} remain in the file",
                    end - at
                ),
            ));
        }
        at += body as u64;
    }
    Ok(())
}

/// The IPC file format: `ARROW1` magic, a stream, the footer flatbuffer, its i32 length, `ARROW1`. The footer and
/// every block it lists must lie inside the file.
fn ipc_file(path: &Path) -> Result<(), SourceError> {
    let format = Format::IpcFile;
    let (mut f, len) = open_with_len(path, format)?;
    if len < 18 {
        return Err(bad(
            path,
            format,
            format!("{len} bytes is too short for an Arrow IPC file"),
        ));
    }
    let mut tail = [0u8; 10];
    read_exact_at(&mut f, len - 10, &mut tail).map_err(|e| bad(path, format, e.to_string()))?;
    if &tail[4..] != b"ARROW1" {
        return Err(bad(
            path,
            format,
            "no ARROW1 magic at the end of the file".into(),
        ));
    }
    let footer_len = i32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if footer_len <= 0 || footer_len as u64 > len - 18 {
        return Err(bad(
            path,
            format,
            format!("the footer declares {footer_len} bytes in a file of {len}"),
        ));
    }
    let footer_at = len - 10 - footer_len as u64;
    let mut footer = vec![0u8; footer_len as usize];
    read_exact_at(&mut f, footer_at, &mut footer).map_err(|e| bad(path, format, e.to_string()))?;
    let parsed = arrow::ipc::root_as_footer(&footer)
        .map_err(|e| bad(path, format, format!("invalid footer: {e}")))?;
    let blocks = parsed
        .recordBatches()
        .into_iter()
        .flatten()
        .chain(parsed.dictionaries().into_iter().flatten());
    for b in blocks {
        let (off, meta, body) = (b.offset(), b.metaDataLength(), b.bodyLength());
        let ok = off >= 8
            && meta >= 0
            && body >= 0
            && (off as u64)
                .checked_add(meta as u64)
                .and_then(|x| x.checked_add(body as u64))
                .is_some_and(|e| e <= footer_at);
        if !ok {
            return Err(bad(
                path,
                format,
                format!(
                    "a block at offset {off} declares {meta} + {body} bytes beyond the data's {footer_at}"
                ),
            ));
        }
        walk_messages(
            &mut f,
            path,
            format,
            off as u64,
            off as u64 + meta as u64 + body as u64,
        )?;
    }
    Ok(())
}

/// The Parquet footer: `[metadata] [u32 metadata length] PAR1`; the length must fit in the file and under the cap.
fn parquet_footer(path: &Path) -> Result<(), SourceError> {
    let format = Format::Parquet;
    let (mut f, len) = open_with_len(path, format)?;
    if len < 12 {
        return Ok(()); // the reader says why (too short / empty) in its own words
    }
    let mut tail = [0u8; 8];
    read_exact_at(&mut f, len - 8, &mut tail).map_err(|e| bad(path, format, e.to_string()))?;
    if &tail[4..] != b"PAR1" {
        return Ok(()); // not plain Parquet (or encrypted footer): left to the reader
    }
    let meta = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if meta > len - 12 || meta > MAX_PARQUET_METADATA {
        return Err(bad(
            path,
            format,
            format!("the footer declares {meta} bytes of metadata in a file of {len} bytes"),
        ));
    }
    Ok(())
}

/// Every column chunk a Parquet footer lists must lie inside the file, with sizes that are not negative: the reader
/// allocates a chunk's declared compressed size before it reads it, so a footer that declares gigabytes for a small
/// file costs that memory (and the time to zero it) before the read fails.
pub fn parquet_chunks_inside(
    metadata: &parquet::file::metadata::ParquetMetaData,
    file_len: u64,
) -> Result<(), String> {
    for (g, rg) in metadata.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let (start, len) = c.byte_range();
            if start.checked_add(len).is_none_or(|end| end > file_len) || c.compressed_size() < 0 {
                return Err(format!(
                    "row group {g}, column {}: the footer declares bytes {start}..{} in a file of {file_len} bytes",
                    c.column_path(),
                    start.saturating_add(len)
                ));
            }
        }
    }
    Ok(())
}
