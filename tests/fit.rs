//! A fitted scanner file: same results as scanning with its reference, refused when changed, from another version
//! or for a schema it was not fitted for.

mod common;

use assert_cmd::Command;
use common::*;
use predicates::prelude::*;

fn cli() -> Command {
    Command::cargo_bin("poisonscan").unwrap()
}

fn fit(out: &std::path::Path) {
    cli()
        .args(["fit", "--label", "label", "--id", "id"])
        .arg(fixture("train_reference.parquet"))
        .arg("-o")
        .arg(out)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("fitted on 2000 rows"));
}

#[test]
fn a_fitted_scanner_scores_exactly_as_its_reference() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fitted = d.join("s.psfit");
    fit(&fitted);
    for (data, code) in [("train_poisoned.parquet", 1), ("train_clean.parquet", 0)] {
        let (a, b) = (d.join("a.csv"), d.join("b.csv"));
        cli()
            .args(["scan", "-q"])
            .arg(fixture(data))
            .arg("--fitted")
            .arg(&fitted)
            .arg("--scores")
            .arg(&a)
            .assert()
            .code(code);
        cli()
            .args([
                "scan",
                "-q",
                "--label",
                "label",
                "--id",
                "id",
                "--reference",
            ])
            .arg(fixture("train_reference.parquet"))
            .arg(fixture(data))
            .arg("--scores")
            .arg(&b)
            .assert()
            .code(code);
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{data}: scores differ"
        );
    }
}

#[test]
fn a_changed_file_another_schema_or_other_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fitted = d.join("s.psfit");
    fit(&fitted);
    // One byte changed in the middle of the file (the feature values).
    let mut bytes = std::fs::read(&fitted).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let bad = d.join("bad.psfit");
    std::fs::write(&bad, &bytes).unwrap();
    cli()
        .args(["scan", "-q"])
        .arg(fixture("train_poisoned.parquet"))
        .arg("--fitted")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.psfit"))
        .stdout(predicate::str::contains("verdict ERROR"));
    // Not a fitted scanner at all.
    cli()
        .args(["scan", "-q"])
        .arg(fixture("train_poisoned.parquet"))
        .arg("--fitted")
        .arg(fixture("train_reference.parquet"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a fitted scanner"));
    // Data of another schema than the reference's.
    cli()
        .args(["scan", "-q"])
        .arg(fixture("corrupted.csv"))
        .arg("--fitted")
        .arg(&fitted)
        .assert()
        .code(2);
    // A label other than the one it was fitted with.
    cli()
        .args(["scan", "-q", "--label", "f0"])
        .arg(fixture("train_poisoned.parquet"))
        .arg("--fitted")
        .arg(&fitted)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("differs from the fitted scanner"));
}

#[test]
fn a_fit_travels_as_bytes_and_a_changed_byte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.psfit");
    fit(&path);
    let file = std::fs::read(&path).unwrap();
    let loaded = poisonscan::fit::FittedScanner::load(&path).unwrap();
    let bytes = loaded.to_bytes().unwrap();
    assert_eq!(bytes, file, "to_bytes is what save wrote");
    let back =
        poisonscan::fit::FittedScanner::from_bytes(&bytes, std::path::Path::new("<b>")).unwrap();
    assert_eq!(back.hash(), loaded.hash());
    assert_eq!(back.rows(), 2000);
    // A flipped byte in the feature values (not the IPC framing) fails the content hash; a cut file does not parse.
    let mut changed = bytes.clone();
    let mid = changed.len() / 2;
    changed[mid] ^= 0x55;
    assert!(
        poisonscan::fit::FittedScanner::from_bytes(&changed, std::path::Path::new("<b>")).is_err()
    );
    let cut = &bytes[..bytes.len() - 100];
    let err = poisonscan::fit::FittedScanner::from_bytes(cut, std::path::Path::new("<cut>"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("<cut>"), "{err}");
}

#[test]
fn a_scan_in_chunks_writes_every_rows_scores_the_merged_report_and_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fitted = d.join("s.psfit");
    fit(&fitted);
    let input = fixture("train_poisoned.parquet");
    let before = std::fs::read(&input).unwrap();
    let (scores, report, clean, quarantine) = (
        d.join("scores.csv"),
        d.join("report.json"),
        d.join("clean.parquet"),
        d.join("q.parquet"),
    );
    cli()
        .args(["scan", "-q", "--chunk-rows", "600"])
        .arg(&input)
        .arg("--fitted")
        .arg(&fitted)
        .arg("--scores")
        .arg(&scores)
        .arg("--report")
        .arg(&report)
        .arg("--clean")
        .arg(&clean)
        .arg("--quarantine")
        .arg(&quarantine)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("2040 rows scanned in 4 chunks"));
    assert_eq!(
        std::fs::read(&input).unwrap(),
        before,
        "the input is left as it was"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["rows"], 2040);
    assert_eq!(r["chunk_rows"], 600);
    assert_eq!(r["verdict"], "fail");
    let starts: Vec<u64> = r["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["start"].as_u64().unwrap())
        .collect();
    assert_eq!(starts, [0, 600, 1200, 1800]);
    // Every row's scores, numbered in the data; the flagged ones are the quarantined ones.
    let text = std::fs::read_to_string(&scores).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let flagged_col = header.iter().position(|h| *h == "flagged").unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2040);
    assert!(rows.iter().enumerate().all(|(i, r)| r[0] == i.to_string()));
    let flagged = rows.iter().filter(|r| r[flagged_col] == "true").count() as u64;
    assert_eq!(flagged, r["flagged"].as_u64().unwrap());
    let count = |p: &std::path::Path| {
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(p).unwrap())
            .map(|f| {
                parquet::file::reader::FileReader::metadata(&f)
                    .file_metadata()
                    .num_rows() as u64
            })
            .unwrap()
    };
    assert_eq!(count(&quarantine), flagged);
    assert_eq!(count(&clean) + flagged, 2040);
    // The fingerprint is the one-piece scan's.
    let one = d.join("one.json");
    cli()
        .args(["scan", "-q"])
        .arg(&input)
        .arg("--fitted")
        .arg(&fitted)
        .arg("--report")
        .arg(&one)
        .assert()
        .code(1);
    let o: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&one).unwrap()).unwrap();
    assert_eq!(r["fingerprint"], o["fingerprint"]);
}

#[test]
fn a_scan_in_chunks_refuses_what_needs_every_row_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let scores = d.join("scores.csv");
    for extra in [
        vec!["--html".to_string(), d.join("r.html").display().to_string()],
        vec![],
    ] {
        let mut c = cli();
        c.args(["scan", "-q", "--chunk-rows", "500"])
            .arg(fixture("train_poisoned.parquet"))
            .args(["--label", "label"])
            .arg("--scores")
            .arg(&scores)
            .args(&extra);
        if !extra.is_empty() {
            c.arg("--reference").arg(fixture("train_reference.parquet"));
        }
        // With --html: needs every row; without a fit (nothing given): each chunk would infer its own contract.
        c.assert().code(2).stderr(
            predicate::str::contains("without --chunk-rows")
                .or(predicate::str::contains("--fitted")),
        );
        assert!(!scores.exists(), "nothing is written");
        assert!(!d.join("r.html").exists());
    }
}
