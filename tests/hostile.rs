//! Crafted hostile files, one per class of the known decoder failures: each is refused with a typed input error
//! (exit 3) naming the file, quickly and in little memory, never with a crash or an abort.

mod common;

use assert_cmd::Command;
use common::*;

/// Scan `bytes` written as `name`; returns stderr. Exit 3 is required.
fn refused(name: &str, bytes: &[u8], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = Command::cargo_bin("poisonscan")
        .unwrap()
        .args(["scan", "-q"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{name}: {err}");
    assert!(
        err.contains(&path.display().to_string()),
        "{name}: the file is not named: {err}"
    );
    assert!(err.contains(expect), "{name}: {err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the input was changed"
    );
}

/// Parquet: `PAR1`, Thrift metadata, its length, `PAR1`.
fn parquet_with_metadata(meta: &[u8], declared: u32) -> Vec<u8> {
    let mut v = b"PAR1".to_vec();
    v.extend_from_slice(meta);
    v.extend_from_slice(&declared.to_le_bytes());
    v.extend_from_slice(b"PAR1");
    v
}

#[test]
fn a_thrift_list_size_larger_than_the_file_is_refused() {
    // FileMetaData { version: 1, schema: list<struct> of 2^31 - 1 elements } in 21 bytes (arrow-rs #9874, #10920).
    let meta = [0x15, 0x02, 0x19, 0xFC, 0xFF, 0xFF, 0xFF, 0xFF, 0x07];
    refused(
        "bomb.parquet",
        &parquet_with_metadata(&meta, meta.len() as u32),
        "exceeds",
    );
    let meta = [0x15, 0x02, 0x19, 0xFC, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
    refused(
        "bomb2.parquet",
        &parquet_with_metadata(&meta, meta.len() as u32),
        "not a readable Parquet file",
    );
}

#[test]
fn thrift_lists_of_bools_that_declare_more_than_the_file_holds_are_refused_at_once() {
    // FileMetaData { 100: list<bool> of 2^31 - 1 elements } x 2,000. parquet 59.3.2 skipped a bool list element
    // as zero bytes, so this footer meant 2,000 x 2^31 steps reading nothing (hours); the vendored patch
    // (vendor/parquet/POISONSCAN.md) reads a byte per element, and the next field header is no bool.
    let field = [0x09, 0xC8, 0x01, 0xF1, 0xFF, 0xFF, 0xFF, 0xFF, 0x07];
    let mut meta: Vec<u8> = field
        .iter()
        .copied()
        .cycle()
        .take(field.len() * 2000)
        .collect();
    meta.push(0);
    refused(
        "bools.parquet",
        &parquet_with_metadata(&meta, meta.len() as u32),
        "into bool",
    );
}

#[test]
fn a_manifest_whose_page_header_declares_billions_of_bools_is_refused_at_once() {
    // Found by the `manifest` fuzz target (a CI timeout): a page header whose unknown field is a list of 2^31
    // bools took 1.5 s in a release build and 9-26 s under the fuzzer, and chaining such fields takes hours.
    manifest_and_data_refused("fuzz/manifest-bool-list.parquet", "into bool");
}

#[test]
fn a_page_header_that_skips_past_the_end_of_the_file_is_refused_at_once() {
    // Found by the `manifest` fuzz target (a CI timeout, the run after the bool fix): an unknown field in a page
    // header declares a list of millions of fixed-size values where the file ends. parquet 59.3.2's skip of bytes
    // past the end returned Ok without reading, so each element was a step that read nothing: 39 s in a release
    // build. The vendored patch makes a short skip (and a short string) an end of input.
    manifest_and_data_refused("fuzz/manifest-eof-skip.parquet", "Unexpected EOF");
}

/// The fuzz-found manifest fixture `name`, read by `verify` as a manifest and by `scan` as data: both refuse it
/// (exit 3, naming the file) with `expect` in the message.
fn manifest_and_data_refused(name: &str, expect: &str) {
    let err = verify_refuses(name);
    assert!(
        err.contains("invalid manifest") && err.contains(expect),
        "{err}"
    );
    refused(
        "as-data.parquet",
        &std::fs::read(fixture(name)).unwrap(),
        expect,
    );
}

#[test]
fn a_parquet_footer_declaring_more_metadata_than_the_file_holds_is_refused() {
    refused(
        "footer.parquet",
        &parquet_with_metadata(&[0u8; 16], 0xFFFF_FFF0),
        "declares 4294967280 bytes of metadata",
    );
}

#[test]
fn an_ipc_stream_declaring_a_huge_message_is_refused_before_allocating() {
    // Four bytes that, read as a message length, ask for 2 GB (arrow-rs #10521: declared lengths trusted).
    refused(
        "four.arrows",
        b"\x7f~~~",
        "declares 2122219135 bytes of metadata",
    );
    refused(
        "cont.arrows",
        b"\xff\xff\xff\xff\xff\xff\xff\x7f",
        "bytes of metadata",
    );
}

#[test]
fn a_truncated_ipc_stream_body_is_refused() {
    let good = std::fs::read(fixture("train_poisoned.parquet")).unwrap();
    // Build a real stream from the fixture, then cut its last record batch body short.
    let batches = read_parquet(&fixture("train_poisoned.parquet"));
    let mut buf = Vec::new();
    {
        let mut w =
            arrow::ipc::writer::StreamWriter::try_new(&mut buf, &batches[0].schema()).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
    }
    let cut = &buf[..buf.len() - 200];
    refused("cut.arrows", cut, "declares a body of");
    assert!(!good.is_empty());
}

#[test]
fn an_ipc_file_whose_footer_or_blocks_point_outside_it_is_refused() {
    let batches = read_parquet(&fixture("train_poisoned.parquet"));
    let mut buf = Vec::new();
    {
        let mut w =
            arrow::ipc::writer::FileWriter::try_new(&mut buf, &batches[0].schema()).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
    }
    // The footer length (the i32 before the trailing magic) set beyond the file.
    let mut bad = buf.clone();
    let n = bad.len();
    bad[n - 10..n - 6].copy_from_slice(&i32::MAX.to_le_bytes());
    refused("footer.arrow", &bad, "the footer declares");
    // The data cut out from under the footer's blocks (footer kept, a middle part removed).
    let footer_len = i32::from_le_bytes(buf[n - 10..n - 6].try_into().unwrap()) as usize;
    let tail = buf[n - 10 - footer_len..].to_vec();
    let mut short = buf[..(n - 10 - footer_len) / 2].to_vec();
    short.extend_from_slice(&tail);
    refused("blocks.arrow", &short, "declares");
}

#[test]
fn flipped_bytes_in_a_byte_stream_split_column_never_crash() {
    // BYTE_STREAM_SPLIT pages with one byte flipped (arrow-rs #11121: out-of-bounds on such a flip). Every flip must
    // end in rows or in a typed error, never in a panic that escapes or an abort.
    use arrow::array::{ArrayRef, Float64Array, RecordBatch};
    use parquet::basic::{Compression, Encoding};
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;
    let values: Vec<f64> = (0..500).map(|i| i as f64 * 0.37 - 20.0).collect();
    let batch =
        RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(values)) as ArrayRef)])
            .unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_encoding(Encoding::BYTE_STREAM_SPLIT)
        .build();
    let mut good = Vec::new();
    {
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut good, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bss.parquet");
    let (mut errors, mut read) = (0, 0);
    // Flip each byte of the page headers and the start of the data (the first 160 bytes after the magic), 3 ways.
    for at in 4..164usize.min(good.len() - 8) {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = good.clone();
            bad[at] ^= mask;
            std::fs::write(&path, &bad).unwrap();
            let outcome = std::panic::catch_unwind(|| {
                let mut src = poisonscan::source::Source::path(&path)?;
                let mut rows = 0;
                for b in src.open()? {
                    rows += b?.num_rows();
                }
                Ok::<usize, poisonscan::error::SourceError>(rows)
            });
            match outcome {
                Ok(Ok(_)) => read += 1,
                Ok(Err(_)) => errors += 1,
                Err(_) => {
                    panic!("a panic escaped the source on a flip at byte {at} (mask {mask:#x})")
                }
            }
        }
    }
    assert!(
        errors > 0 && errors + read == 480,
        "{errors} errors, {read} read"
    );
    // And from the CLI: a damaged page is exit 3 naming the file.
    let mut bad = good.clone();
    bad[4] ^= 0xFF;
    refused("bss.parquet", &bad, "bss.parquet");
}

/// `verify` on the manifest fixture `name` (an input a fuzz target found): exit 3 naming the file; returns stderr.
fn verify_refuses(name: &str) -> String {
    let crash = fixture(name);
    let out = Command::cargo_bin("poisonscan")
        .unwrap()
        .arg("verify")
        .arg(&crash)
        .arg(fixture("clean.parquet"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{err}");
    let file = crash.file_name().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&file), "{err}");
    err
}

#[test]
fn a_manifest_whose_embedded_schema_panics_the_decoder_is_an_invalid_manifest() {
    // Found by the `manifest` fuzz target: a manifest whose embedded Arrow schema has an unknown union mode makes
    // arrow-ipc 59.3 panic ("Unexpected union mode"). verify must exit 3 naming the file, not crash with 101.
    let err = verify_refuses("fuzz/manifest-union-mode.parquet");
    assert!(
        err.contains("invalid manifest: the decoder panicked"),
        "{err}"
    );
}

#[test]
fn a_manifest_whose_footer_declares_huge_column_chunks_is_refused_at_once() {
    // Found by the `manifest` fuzz target: a footer whose column chunk claims more bytes than the file holds made
    // the reader allocate and zero them before failing (44 s in a debug build). The chunk ranges are now checked
    // against the file's size first.
    let err = verify_refuses("fuzz/manifest-huge-chunk.parquet");
    // Refused by the range check, before any chunk is read (the reader's own error came only after the allocation).
    assert!(
        err.contains("invalid manifest") && err.contains("the footer declares bytes"),
        "{err}"
    );
    // The same file scanned as data: the same check in the data source.
    refused(
        "chunk.parquet",
        &std::fs::read(fixture("fuzz/manifest-huge-chunk.parquet")).unwrap(),
        "the footer declares bytes",
    );
}
