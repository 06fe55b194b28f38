//! The gate fails safe: it never passes data it did not analyse, writes all outputs or none, and refuses inputs that
//! do not match (one test per case of the fail-safe issue, on the poisoned fixture and its clean twin).

mod common;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use assert_cmd::Command;
use common::*;
use predicates::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn cli() -> Command {
    Command::cargo_bin("poisonscan").unwrap()
}

fn table(name: &str) -> RecordBatch {
    let b = read_parquet(&fixture(name));
    arrow::compute::concat_batches(&b[0].schema(), &b).unwrap()
}

/// `b` with column `name` replaced (or appended when absent) by `a`.
fn with_column(b: &RecordBatch, name: &str, a: ArrayRef) -> RecordBatch {
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut cols: Vec<ArrayRef> = b.columns().to_vec();
    let f = Field::new(name, a.data_type().clone(), true);
    match b.schema().index_of(name) {
        Ok(i) => {
            fields[i] = f;
            cols[i] = a;
        }
        Err(_) => {
            fields.push(f);
            cols.push(a);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

fn select(b: &RecordBatch, names: &[&str]) -> RecordBatch {
    let idx: Vec<usize> = names
        .iter()
        .map(|n| b.schema().index_of(n).unwrap())
        .collect();
    b.project(&idx).unwrap()
}

fn write(dir: &Path, name: &str, b: &RecordBatch) -> PathBuf {
    let p = dir.join(name);
    write_parquet(&p, b);
    p
}

fn report_of(args: &[&str], paths: &[&Path]) -> (i32, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let mut c = cli();
    c.arg("scan").arg("-q");
    for p in paths {
        c.arg(p);
    }
    let out = c.args(args).arg("--report").arg(&report).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let r = std::fs::read_to_string(&report)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap(), r, stdout)
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().to_string()
}

#[test]
fn an_unusable_column_is_left_out_of_the_features_and_the_rest_is_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nan = |n: usize| Arc::new(Float64Array::from(vec![f64::NAN; n])) as ArrayRef;
    let data = table("train_poisoned.parquet");
    let reference = table("train_reference.parquet");
    let run = |data: &RecordBatch, reference: &RecordBatch| {
        let dp = write(d, "data.parquet", data);
        let rp = write(d, "ref.parquet", reference);
        let args = [
            "--label",
            "label",
            "--id",
            "id",
            "--reference",
            rp.to_str().unwrap(),
        ];
        report_of(&args, &[&dp])
    };
    let (code0, r0, _) = run(&data, &reference);
    let with_nan = with_column(&data, "junk", nan(data.num_rows()));
    let ref_nan = with_column(&reference, "junk", nan(reference.num_rows()));
    let (code1, r1, _) = run(&with_nan, &ref_nan);
    assert_eq!(code0, 1);
    assert_eq!(code1, 1);
    // Most of the fixture's 80 poisons (tests/cli.rs and the Python suite check which rows), and at most one row
    // beyond them: since the Gaussian voter (session 27) all 80 and one clean row of label 0 that 8 of its 10
    // nearest reference rows, the linear model (0.71) and the Gaussians (0.94) call class 3.
    let flagged0 = r0["flagged"].as_u64().unwrap();
    assert!((76..=81).contains(&flagged0), "{flagged0} flagged");
    assert_eq!(
        r1["flagged"], r0["flagged"],
        "the NaN column changes nothing"
    );
    let notes = r1["notes"].to_string();
    assert!(notes.contains("junk (0% of values present)"), "{notes}");
    assert!(!r1["inputs"]["features"].to_string().contains("junk"));
    // The unusable column alone: nothing to analyse, never PASS.
    let only = select(&with_nan, &["id", "junk", "label"]);
    let only_ref = select(&ref_nan, &["id", "junk", "label"]);
    let (code, r, stdout) = run(&only, &only_ref);
    assert_eq!(code, 0);
    assert_eq!(r["verdict"], "warn");
    for det in ["outlier", "label", "backdoor"] {
        assert_eq!(r["checks"][det]["run"], "skipped", "{det}");
        assert!(
            r["checks"][det]["reason"]
                .as_str()
                .unwrap()
                .contains("no usable feature"),
            "{}",
            r["checks"][det]
        );
    }
    assert!(
        last_line(&stdout).contains("not run: backdoor, label, outlier skipped (no usable feature")
    );
    assert!(last_line(&stdout).ends_with("verdict WARN"), "{stdout}");
}

#[test]
fn without_a_label_the_label_detectors_are_reported_as_not_run_and_the_scan_does_not_pass() {
    for data in ["train_poisoned.parquet", "train_clean.parquet"] {
        let (code, r, stdout) = report_of(
            &[
                "--id",
                "id",
                "--reference",
                fixture("train_reference.parquet").to_str().unwrap(),
            ],
            &[&fixture(data)],
        );
        assert_eq!(code, 0, "{stdout}");
        assert_eq!(r["verdict"], "warn");
        assert_eq!(r["checks"]["label"]["run"], "skipped");
        assert_eq!(r["checks"]["backdoor"]["run"], "skipped");
        assert_eq!(r["checks"]["outlier"]["run"], "ran");
        assert!(
            last_line(&stdout).contains("column label looks like one: --label label"),
            "{stdout}"
        );
        // The label is not used as a feature.
        assert!(!r["inputs"]["features"].to_string().contains("label"));
    }
    // A policy can demand the label detectors: then the scan fails.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "require = [\"label\", \"backdoor\"]\n").unwrap();
    let (code, r, _) = report_of(
        &["--policy", policy.to_str().unwrap()],
        &[&fixture("train_clean.parquet")],
    );
    assert_eq!(code, 1);
    assert_eq!(r["checks"]["label"]["status"], "fail");
    assert!(r["checks"]["label"]["reason"]
        .as_str()
        .unwrap()
        .contains("requires"));
}

#[test]
fn a_unique_key_column_is_not_a_feature_and_duplicates_are_still_found_without_id() {
    let with_id = report_of(
        &[
            "--label",
            "label",
            "--id",
            "id",
            "--reference",
            fixture("train_reference.parquet").to_str().unwrap(),
        ],
        &[&fixture("train_poisoned.parquet")],
    );
    let without = report_of(
        &[
            "--label",
            "label",
            "--reference",
            fixture("train_reference.parquet").to_str().unwrap(),
        ],
        &[&fixture("train_poisoned.parquet")],
    );
    assert_eq!(with_id.1["checks"]["duplicate"]["count"], 10);
    assert_eq!(without.1["checks"]["duplicate"]["count"], 10);
    assert_eq!(without.1["flagged"], with_id.1["flagged"]);
    assert!(!without.1["inputs"]["features"]
        .to_string()
        .contains("\"id\""));
    assert!(without.1["notes"]
        .to_string()
        .contains("id holds a unique key per row"));
}

#[test]
fn detectors_that_cannot_run_say_why_and_the_verdict_is_at_best_warn() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = table("train_clean.parquet");
    let n = data.num_rows();
    // One class.
    let one = with_column(&data, "label", Arc::new(Int64Array::from(vec![1; n])));
    let p = write(d, "one.parquet", &one);
    let (code, r, stdout) = report_of(&["--label", "label", "--id", "id"], &[&p]);
    assert_eq!((code, r["verdict"].as_str()), (0, Some("warn")), "{stdout}");
    assert!(r["checks"]["label"]["reason"]
        .as_str()
        .unwrap()
        .contains("1 class"));
    assert!(last_line(&stdout).contains("label skipped"), "{stdout}");
    // As many labels as rows.
    let ids = with_column(
        &data,
        "label",
        Arc::new(Int64Array::from_iter_values(0..n as i64)),
    );
    let p = write(d, "ids.parquet", &ids);
    let (_, r, _) = report_of(&["--label", "label", "--id", "id"], &[&p]);
    assert_eq!(r["verdict"], "warn");
    assert!(
        r["checks"]["label"]["reason"]
            .as_str()
            .unwrap()
            .contains("too few rows per class"),
        "{}",
        r["checks"]["label"]
    );
    assert_eq!(r["checks"]["backdoor"]["run"], "skipped");
    // Two rows.
    let p = write(d, "two.parquet", &data.slice(0, 2));
    let (_, r, stdout) = report_of(&["--label", "label", "--id", "id"], &[&p]);
    assert_eq!(r["verdict"], "warn", "{stdout}");
    for det in ["outlier", "label", "backdoor"] {
        assert_eq!(
            r["checks"][det]["run"], "skipped",
            "{det}: {}",
            r["checks"][det]
        );
    }
    // k larger than the data.
    let (_, r, _) = report_of(
        &[
            "--label",
            "label",
            "--id",
            "id",
            "--k",
            "100000",
            "--reference",
            fixture("train_reference.parquet").to_str().unwrap(),
        ],
        &[&fixture("train_clean.parquet")],
    );
    assert_eq!(r["verdict"], "warn");
    assert!(
        r["checks"]["label"]["reason"]
            .as_str()
            .unwrap()
            .contains("k = 100000"),
        "{}",
        r["checks"]["label"]
    );
    // Switched off on purpose: reported as disabled, the verdict keeps PASS.
    let (code, r, stdout) = report_of(
        &[
            "--label",
            "label",
            "--id",
            "id",
            "--no-outliers",
            "--reference",
            fixture("train_reference.parquet").to_str().unwrap(),
        ],
        &[&fixture("train_clean.parquet")],
    );
    assert_eq!(code, 0);
    assert_eq!(r["checks"]["outlier"]["run"], "disabled");
    assert_eq!(r["verdict"], "pass", "{stdout}");
    assert!(
        last_line(&stdout)
            .contains("outlier disabled (switched off with --no-outliers / outliers=False)"),
        "{stdout}"
    );
}

#[test]
fn outputs_are_all_written_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let blocker = d.join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let scores = d.join("scores.parquet");
    // An unwritable report path fails before the data is read, and the scores file is not written.
    cli()
        .args(["scan", "-q", "--label", "label", "--id", "id"])
        .arg(fixture("train_poisoned.parquet"))
        .arg("--scores")
        .arg(&scores)
        .arg("--report")
        .arg(blocker.join("report.json"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("--report"))
        .stdout(predicate::str::contains("verdict ERROR"));
    assert!(!scores.exists());
    // A write that fails after the scan (CSV cannot hold a list column) leaves no output either.
    let data = table("train_clean.parquet");
    let lists = arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::Float32Type, _, _>(
        (0..data.num_rows()).map(|i| Some(vec![Some(i as f32), Some(1.0)])),
    );
    let p = write(
        d,
        "emb.parquet",
        &with_column(&data, "emb", Arc::new(lists)),
    );
    let report = d.join("r.json");
    cli()
        .args(["scan", "-q", "--label", "label", "--id", "id"])
        .arg(&p)
        .arg("--scores")
        .arg(&scores)
        .arg("--report")
        .arg(&report)
        .arg("--clean")
        .arg(d.join("clean.csv"))
        .assert()
        .code(3);
    assert!(!scores.exists() && !report.exists() && !d.join("clean.csv").exists());
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".poisonscan-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn types_that_differ_from_the_reference_or_contract_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = table("train_clean.parquet");
    let reference = table("train_reference.parquet");
    let to = |b: &RecordBatch, col: &str, t: &DataType| {
        let i = b.schema().index_of(col).unwrap();
        with_column(b, col, arrow::compute::cast(b.column(i), t).unwrap())
    };
    let scan2 = |data: &Path, reference: &Path, extra: &[&str]| {
        let mut c = cli();
        c.args(["scan", "-q", "--label", "label", "--id", "id"])
            .arg(data)
            .arg("--reference")
            .arg(reference)
            .args(extra);
        c
    };
    // Reference f0 int64, data f0 float64.
    let ref_int = write(
        d,
        "ref_int.parquet",
        &to(&reference, "f0", &DataType::Int64),
    );
    let dp = fixture("train_clean.parquet");
    scan2(&dp, &ref_int, &[])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("f0")
                .and(predicate::str::contains("Int64"))
                .and(predicate::str::contains("Float64")),
        )
        .stdout(predicate::str::contains("verdict ERROR"));
    // Reference label text, data label int64.
    let ref_text = write(
        d,
        "ref_text.parquet",
        &to(&reference, "label", &DataType::Utf8),
    );
    scan2(&dp, &ref_text, &[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("label").and(predicate::str::contains("Utf8")));
    // Float reference column, int data column: refused unless widening is asked for.
    let data_int = write(d, "data_int.parquet", &to(&data, "f1", &DataType::Int64));
    let rp = fixture("train_reference.parquet");
    scan2(&data_int, &rp, &[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--allow-widening"));
    let code = scan2(&data_int, &rp, &["--allow-widening"])
        .output()
        .unwrap()
        .status
        .code();
    assert!(matches!(code, Some(0) | Some(1)), "{code:?}");
    // A contract whose dtype is not an Arrow type.
    let contract = d.join("c.json");
    cli()
        .args(["profile", "--label", "label", "--id", "id"])
        .arg(&rp)
        .arg("-o")
        .arg(&contract)
        .assert()
        .code(0);
    let text = std::fs::read_to_string(&contract)
        .unwrap()
        .replacen("\"Float64\"", "\"Banana\"", 1);
    std::fs::write(&contract, text).unwrap();
    cli()
        .args(["scan", "-q", "--label", "label", "--id", "id"])
        .arg(&dp)
        .arg("--contract")
        .arg(&contract)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Banana"));
}

#[test]
fn repeated_column_names_and_mixed_folder_schemas_are_schema_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("dup.csv");
    std::fs::write(&csv, "f0,f0,label\n1,2,a\n3,4,b\n").unwrap();
    cli()
        .args(["scan", "-q"])
        .arg(&csv)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("two columns are named 'f0'"));
    let folder = d.join("parts");
    std::fs::create_dir(&folder).unwrap();
    let data = table("train_clean.parquet");
    write(&folder, "a.parquet", &data.slice(0, 1000));
    write(
        &folder,
        "b.parquet",
        &select(&data.slice(1000, 1000), &["id", "f0", "label"]),
    );
    cli()
        .args(["scan", "-q"])
        .arg(&folder)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("a.parquet").and(predicate::str::contains("b.parquet")));
}

#[test]
fn repeated_ids_are_reported_in_scan_lineage_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = table("train_clean.parquet");
    let mut ids: Vec<i64> = (0..data.num_rows() as i64).collect();
    ids[10] = 3;
    ids[11] = 3;
    ids[500] = 7;
    let p = write(
        d,
        "dup_ids.parquet",
        &with_column(&data, "id", Arc::new(Int64Array::from(ids))),
    );
    let (code, r, stdout) = report_of(
        &[
            "--label",
            "label",
            "--id",
            "id",
            "--reference",
            fixture("train_reference.parquet").to_str().unwrap(),
        ],
        &[&p],
    );
    assert_eq!(code, 0);
    assert_eq!(r["duplicate_ids"]["values"], 2);
    assert_eq!(r["duplicate_ids"]["rows"], 5);
    assert_eq!(r["duplicate_ids"]["examples"][0][0], "3");
    assert_eq!(
        r["duplicate_ids"]["examples"][0][1],
        serde_json::json!([3, 10, 11])
    );
    assert_eq!(r["checks"]["duplicate_id"]["status"], "warn");
    assert!(last_line(&stdout).contains("duplicate_id 5"), "{stdout}");
    let manifest = d.join("m.parquet");
    cli()
        .args(["lineage", "--id", "id"])
        .arg(&p)
        .arg("-o")
        .arg(&manifest)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("2 repeated id values"))
        .stderr(predicate::str::contains("'3' at rows 3, 10, 11"));
    let report = d.join("diff.json");
    cli()
        .arg("diff")
        .arg(&manifest)
        .arg(&p)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(0)
        .stderr(predicate::str::contains("cannot be told apart by id"));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["duplicate_ids_data"]["values"], 2);
}

#[test]
fn usage_errors_end_with_the_summary_line() {
    for args in [
        vec!["scan", "x.parquet", "--k", "-1"],
        vec!["scan", "--nope"],
        vec!["frobnicate"],
    ] {
        let out = cli().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            last_line(&stdout),
            "poisonscan: error (usage): invalid command line, verdict ERROR"
        );
    }
    cli()
        .arg("--version")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("poisonscan"));
}

#[test]
fn an_embedding_only_table_is_analysed_and_bad_embeddings_are_impossible_findings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = table("train_poisoned.parquet");
    let rows = |b: &RecordBatch, bad: bool| {
        let n = b.num_rows();
        let f: Vec<Float64Array> = (0..8)
            .map(|j| {
                b.column(b.schema().index_of(&format!("f{j}")).unwrap())
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .unwrap()
                    .clone()
            })
            .collect();
        arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::Float32Type, _, _>(
            (0..n).map(|i| {
                let mut v: Vec<Option<f32>> = f.iter().map(|c| Some(c.value(i) as f32)).collect();
                if bad && i == 5 {
                    v.pop();
                }
                if bad && i == 6 {
                    v = vec![Some(f32::NAN); 8];
                }
                Some(v)
            }),
        )
    };
    let emb_only = |b: &RecordBatch, bad: bool| {
        let e: ArrayRef = Arc::new(rows(b, bad));
        let s = select(b, &["id", "label"]);
        with_column(&s, "emb", e)
    };
    let reference = table("train_reference.parquet");
    let dp = write(d, "emb.parquet", &emb_only(&data, true));
    let rp = write(d, "emb_ref.parquet", &emb_only(&reference, false));
    let (code, r, stdout) = report_of(
        &[
            "--label",
            "label",
            "--id",
            "id",
            "--reference",
            rp.to_str().unwrap(),
        ],
        &[&dp],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(r["notes"].to_string().contains("emb"), "{}", r["notes"]);
    assert_eq!(r["checks"]["label"]["run"], "ran");
    assert!(r["checks"]["label"]["count"].as_u64().unwrap() > 0);
    assert_eq!(r["violations"]["embedding"], 2);
    let scores_dir = tempfile::tempdir().unwrap();
    let scores = scores_dir.path().join("s.csv");
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
        .arg(&rp)
        .arg(&dp)
        .arg("--scores")
        .arg(&scores)
        .assert()
        .code(1);
    let text = std::fs::read_to_string(&scores).unwrap();
    let row5 = text.lines().nth(6).unwrap();
    assert!(
        row5.contains("embedding emb has 7 values, expected 8 finite values"),
        "{row5}"
    );
    let row6 = text.lines().nth(7).unwrap();
    assert!(row6.contains("NaN or inf"), "{row6}");
}

#[test]
fn a_reference_with_its_columns_in_another_order_scores_the_same() {
    use arrow::array::{Array, AsArray};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reference = table("train_reference.parquet");
    let reordered = select(
        &reference,
        &[
            "label", "f7", "f6", "f5", "f4", "f3", "f2", "f1", "f0", "id",
        ],
    );
    let rp = write(d, "reordered.parquet", &reordered);
    let scores = |r: &Path, out: &str| {
        let p = d.join(out);
        cli()
            .args(["scan", "-q", "--label", "label", "--id", "id"])
            .arg(fixture("train_poisoned.parquet"))
            .arg("--reference")
            .arg(r)
            .arg("--scores")
            .arg(&p)
            .assert()
            .code(1);
        let b = read_parquet(&p);
        arrow::compute::concat_batches(&b[0].schema(), &b).unwrap()
    };
    let (a, b) = (
        scores(&rp, "a.parquet"),
        scores(&fixture("train_reference.parquet"), "b.parquet"),
    );
    assert_eq!(a.schema(), b.schema());
    for (i, f) in a.schema().fields().iter().enumerate() {
        if f.name() == "reasons" {
            // The same findings; contract findings are listed in the contract's column order.
            let sorted = |c: &dyn Array| -> Vec<Vec<String>> {
                c.as_string::<i32>()
                    .iter()
                    .map(|r| {
                        let mut v: Vec<String> =
                            r.unwrap_or("").split("; ").map(str::to_string).collect();
                        v.sort();
                        v
                    })
                    .collect()
            };
            assert_eq!(sorted(a.column(i).as_ref()), sorted(b.column(i).as_ref()));
        } else {
            assert_eq!(a.column(i).as_ref(), b.column(i).as_ref(), "{}", f.name());
        }
    }
}
