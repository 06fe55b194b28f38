//! Shared helpers of the fuzz targets: every target feeds bytes an attacker may have written to a public entry point
//! and requires that it returns (a value or a typed error), never crashes, aborts, hangs or runs out of memory.
//!
//! libfuzzer-sys aborts on any panic, even one the library catches; `init` restores the default hook so that the
//! library's own containment (a decoder panic becomes `SourceError::Read`) is what is tested: only a panic that
//! escapes it reaches the fuzzer.

use std::io::Write;

/// Let caught panics stay caught (see the module docs).
pub fn init() {
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
}

/// Write `data` to a temporary file named `name` and return its folder (kept alive by the caller) and path.
pub fn file_with(name: &str, data: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).expect("temp file");
    f.write_all(data).expect("write");
    (dir, path)
}

/// Open `data` as a file named `name` and read every batch (with a small batch size, so that batch boundaries are
/// exercised), then profile it as a reference would be. Errors are the expected outcome for most inputs.
pub fn read_source(name: &str, data: &[u8]) {
    let (_dir, path) = file_with(name, data);
    let Ok(src) = poisonscan::source::Source::path(&path) else {
        return;
    };
    let mut src = src.with_batch_size(64);
    let Ok(stream) = src.open() else {
        return;
    };
    let mut rows = 0usize;
    for batch in stream {
        match batch {
            Ok(b) => {
                rows += b.num_rows();
                row_digests_agree(&b);
            }
            Err(_) => return,
        }
        if rows > 1_000_000 {
            return;
        }
    }
    let _ = poisonscan::scan::profile_reference(&mut src, None, None, None, None);
}

/// Differential check of the canonical row encoder and the batched digests: every row digest of `digest_batch`
/// (the AVX2 lanes, eight rows at a time) equals the blake3 hash of that row's canonical encoding, plain and keyed.
pub fn row_digests_agree(b: &arrow::array::RecordBatch) {
    use poisonscan::lineage::{HashMode, RowHasher};
    for mode in [HashMode::Plain, HashMode::Keyed([0x5a; 32])] {
        let h = RowHasher::new((0..b.num_columns()).collect(), mode);
        let Ok(digests) = h.digest_batch(b) else {
            return; // a type the encoder refuses, with a typed error
        };
        assert_eq!(digests.len(), b.num_rows());
        for (row, d) in digests.iter().enumerate().take(256) {
            let bytes = h
                .encode_row(b, row)
                .expect("a row of a batch that digested encodes");
            assert_eq!(*d, mode.hash(&bytes), "row {row}");
        }
    }
}
