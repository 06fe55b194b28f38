//! End-to-end tests of the `poisonscan` CLI: every exit code, outputs, splits, and error messages.

mod common;

use arrow::array::AsArray;
use assert_cmd::Command;
use common::*;
use predicates::prelude::*;

fn cli() -> Command {
    Command::cargo_bin("poisonscan").unwrap()
}

fn scan(data: &str, reference: &str) -> Command {
    let mut c = cli();
    c.args(["scan", "-q", "--label", "label", "--id", "id"])
        .arg(fixture(data))
        .arg("--reference")
        .arg(fixture(reference));
    c
}

#[test]
fn clean_twin_passes_with_zero_flagged_rows() {
    for (data, reference) in [
        ("clean.parquet", "reference.parquet"),
        ("train_clean.parquet", "train_reference.parquet"),
        ("clean.csv", "reference.parquet"),
    ] {
        scan(data, reference)
            .assert()
            .code(0)
            .stdout(predicate::str::contains(
                "2000 rows scanned, 0 flagged; verdict PASS",
            ));
    }
}

#[test]
fn every_corrupted_row_is_flagged_with_the_right_reason_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("scores.parquet");
    scan("corrupted.parquet", "reference.parquet")
        .arg("--scores")
        .arg(&scores)
        .assert()
        .code(1)
        .stdout(predicate::str::ends_with("verdict FAIL\n"));
    let b = read_parquet(&scores);
    assert_eq!(rows(&b), 2000, "one score row per input row");
    let b = arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
    let flagged = b.column_by_name("flagged").unwrap().as_boolean().clone();
    let reasons = b
        .column_by_name("reasons")
        .unwrap()
        .as_string::<i32>()
        .clone();
    let row = b
        .column_by_name("row")
        .unwrap()
        .as_primitive::<arrow::datatypes::UInt64Type>()
        .clone();
    let truth = truth("corrupted.truth.csv");
    let expect = |k: &str| match k {
        "nan" => "is NaN",
        "inf" => "= inf",
        "neg_inf" => "= -inf",
        "extreme" => "far above the reference maximum",
        "negative_count" => {
            "count = -5.0 is negative, and the column is never negative in the reference"
        }
        "unknown_label" => "is not a known label {0, 1, 2, 3}",
        _ => "channel = 'zzz' not among allowed values",
    };
    for i in 0..2000 {
        assert_eq!(row.value(i), i as u64);
        match truth.get(&i) {
            Some(k) => {
                assert!(flagged.value(i), "row {i} ({k}) not flagged");
                assert!(
                    reasons.value(i).contains(expect(k)),
                    "row {i} ({k}): {}",
                    reasons.value(i)
                );
            }
            None => assert!(
                !flagged.value(i),
                "clean row {i} flagged: {}",
                reasons.value(i)
            ),
        }
    }
}

#[test]
fn csv_values_that_are_not_numbers_are_wrong_type_findings() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    scan("corrupted.csv", "reference.parquet")
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["violations"]["wrong_type"], 6);
    // Extremes are unusual (graded, flagged); the rest are impossible.
    let truth = truth("corrupted_csv.truth.csv");
    let extremes = truth.values().filter(|k| k.as_str() == "extreme").count();
    assert_eq!(r["checks"]["unusual"]["count"], extremes);
    assert_eq!(r["checks"]["contract"]["count"], truth.len() - extremes);
    assert_eq!(r["report_version"], 3);
    assert_eq!(r["verdict"], "fail");
}

#[test]
fn report_has_versioned_fields_drift_and_timings() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    scan("train_poisoned.parquet", "train_reference.parquet")
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for k in [
        "tool_version",
        "inputs",
        "contract_hash",
        "policy_hash",
        "checks",
        "drift",
        "sample",
        "timings_ms",
        "fingerprint",
    ] {
        assert!(r.get(k).is_some(), "missing {k}");
    }
    assert!(r["contract_source"]
        .as_str()
        .unwrap()
        .starts_with("reference"));
    assert!(r["sample"][0]["reasons"].as_str().unwrap().len() > 10);
    assert!(r["drift"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["column"] == "f0"));
}

#[test]
fn split_writes_kept_and_flagged_rows_with_the_input_schema_and_leaves_the_input_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("train_poisoned.parquet");
    let before = std::fs::read(&input).unwrap();
    let (clean, quar) = (
        dir.path().join("clean.parquet"),
        dir.path().join("q.parquet"),
    );
    scan("train_poisoned.parquet", "train_reference.parquet")
        .arg("--clean")
        .arg(&clean)
        .arg("--quarantine")
        .arg(&quar)
        .assert()
        .code(1);
    let (c, q) = (read_parquet(&clean), read_parquet(&quar));
    assert_eq!(rows(&c) + rows(&q), 2040);
    assert!(rows(&q) >= 72 && rows(&q) <= 85, "{}", rows(&q));
    let original = read_parquet(&input);
    assert_eq!(c[0].schema(), original[0].schema());
    assert_eq!(std::fs::read(&input).unwrap(), before, "input unchanged");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn without_reference_the_contract_is_inferred_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let scores = dir.path().join("s.csv");
    cli()
        .args(["scan", "-q", "--label", "label"])
        .arg(fixture("corrupted.parquet"))
        .arg("--report")
        .arg(&report)
        .arg("--scores")
        .arg(&scores)
        .assert()
        .code(1);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["contract_source"], "inferred from data");
    // Without a reference NaN and inf are still impossible and the extremes unusual and flagged; so are negative
    // counts, since the data's own counts stop at 0. Unknown categories and labels in 0.3% of the rows cannot be
    // called impossible from the data alone: those are graded by rarity, not flagged.
    assert_eq!(r["checks"]["contract"]["count"], 24);
    assert_eq!(r["checks"]["unusual"]["count"], 6);
    assert_eq!(r["violations"]["nan"], 6);
    assert_eq!(r["violations"]["inf"], 12);
    assert_eq!(r["violations"]["negative"], 6);
    let text = std::fs::read_to_string(&scores).unwrap();
    let truth = truth("corrupted.truth.csv");
    let negative: Vec<usize> = text
        .lines()
        .skip(1)
        .enumerate()
        .filter(|(_, l)| l.contains("never negative in the data"))
        .map(|(i, _)| i)
        .collect();
    let expected: Vec<usize> = truth
        .iter()
        .filter(|(_, k)| k.as_str() == "negative_count")
        .map(|(&i, _)| i)
        .collect();
    assert_eq!(negative, expected);
}

#[test]
fn profile_then_scan_with_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let contract = dir.path().join("contract.json");
    cli()
        .args(["profile", "--label", "label", "--id", "id"])
        .arg(fixture("reference.parquet"))
        .arg("-o")
        .arg(&contract)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("profiled 2000 rows, 10 columns"));
    let text = std::fs::read_to_string(&contract).unwrap();
    assert!(text.contains("\"contract_version\": 2"));
    cli()
        .args(["scan", "-q", "--label", "label", "--id", "id"])
        .arg(fixture("clean.parquet"))
        .arg("--contract")
        .arg(&contract)
        .assert()
        .code(0);
    cli()
        .args(["scan", "-q", "--label", "label", "--id", "id"])
        .arg(fixture("corrupted.parquet"))
        .arg("--contract")
        .arg(&contract)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("contract 36 fail, unusual 6 warn"));
}

#[test]
fn policy_file_sets_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    std::fs::write(&p, "[contract]\nwarn_if = \"> 0\"\nerror_if = \"> 5%\"\n").unwrap();
    scan("corrupted.parquet", "reference.parquet")
        .arg("--policy")
        .arg(&p)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("verdict WARN"));
    std::fs::write(&p, "[contract]\nerror_if = \"maybe\"\n").unwrap();
    scan("corrupted.parquet", "reference.parquet")
        .arg("--policy")
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("policy.toml").and(predicate::str::contains("threshold")));
}

#[test]
fn usage_and_configuration_errors_exit_2_before_scoring() {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("s.parquet");
    cli()
        .args(["scan", "--label", "nope"])
        .arg(fixture("clean.parquet"))
        .arg("--scores")
        .arg(&scores)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("column 'nope' is missing (--label)")
                .and(predicate::str::contains("clean.parquet")),
        );
    assert!(!scores.exists(), "no partial output");
    cli()
        .args(["scan", "--label", "label"])
        .arg(fixture("broken/wrong_schema.parquet"))
        .arg("--reference")
        .arg(fixture("reference.parquet"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("wrong_schema.parquet").and(
                predicate::str::contains("'f1' has type Utf8, the contract expects Float64")
                    .or(predicate::str::contains("is missing")),
            ),
        );
    cli().args(["scan", "--bogus"]).assert().code(2);
    cli()
        .args(["scan"])
        .arg(fixture("clean.parquet"))
        .args(["--k", "0"])
        .assert()
        .code(2);
    cli()
        .args(["scan"])
        .arg(fixture("clean.parquet"))
        .args(["--ivf-probes", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--ivf-probes must be at least 1"));
    // The probes asked for are the ones the label-flip search used (the report's detector summary says), on a
    // reference large enough to be split into lists (smaller ones are searched exactly, with one list).
    let spec = poisonscan::synth::SynthSpec {
        rows: 5000,
        dim: 8,
        classes: 3,
        separation: 8.0,
        world_seed: 21,
    };
    let write = |path: &std::path::Path, d: &poisonscan::synth::SynthData| {
        let b = d.to_batch();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(path).unwrap(),
            b.schema(),
            None,
        )
        .unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
    };
    let (reference, data) = (
        dir.path().join("ref5000.parquet"),
        dir.path().join("data300.parquet"),
    );
    write(&reference, &spec.clean(1));
    write(
        &data,
        &poisonscan::synth::SynthSpec { rows: 300, ..spec }.clean(2),
    );
    for (probes, want) in [(Some("7"), 7), (None, 4)] {
        let report = dir.path().join("probes.json");
        let mut cmd = cli();
        cmd.args(["scan", "-q", "--label", "label", "--id", "id"])
            .arg(&data)
            .arg("--reference")
            .arg(&reference)
            .arg("--report")
            .arg(&report);
        if let Some(p) = probes {
            cmd.args(["--ivf-probes", p]);
        }
        cmd.assert().code(predicate::in_iter([0, 1]));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let label = find_key(&r, "ivf_probes").expect("a label-flip summary with ivf_probes");
        assert!(label["ivf_lists"].as_u64().unwrap() > 7, "{label}");
        assert_eq!(label["ivf_probes"].as_u64(), Some(want), "{label}");
    }
    let bad_contract = dir.path().join("c.json");
    std::fs::write(&bad_contract, "{not json").unwrap();
    cli()
        .args(["scan"])
        .arg(fixture("clean.parquet"))
        .arg("--contract")
        .arg(&bad_contract)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("c.json: invalid contract file"));
}

#[test]
fn input_errors_exit_3_naming_the_file() {
    for (f, msg) in [
        ("broken/truncated.parquet", "not a readable Parquet file"),
        ("broken/empty.parquet", "file is empty"),
        ("broken/not_parquet.parquet", "not a readable Parquet file"),
        ("broken/zero_rows.parquet", "no rows to scan"),
        ("does_not_exist.parquet", "cannot open"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r.json");
        cli()
            .args(["scan", "--label", "label"])
            .arg(fixture(f))
            .arg("--report")
            .arg(&report)
            .assert()
            .code(3)
            .stderr(predicate::str::contains(f).and(predicate::str::contains(msg)))
            .stdout(predicate::str::contains("verdict ERROR"));
        assert!(!report.exists(), "{f}: an incomplete scan writes no report");
    }
}

#[test]
fn lineage_verify_and_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.parquet");
    cli()
        .args(["lineage", "--id", "id"])
        .arg(fixture("train_clean.parquet"))
        .arg("-o")
        .arg(&m)
        .assert()
        .code(0);
    cli()
        .arg("verify")
        .arg(&m)
        .arg(fixture("train_clean.parquet"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("MATCH"));
    let original = read_parquet(&fixture("train_clean.parquet"));
    let batch = arrow::compute::concat_batches(&original[0].schema(), &original).unwrap();
    // One value changed by one ulp.
    let mut f0: Vec<f64> = batch
        .column(1)
        .as_primitive::<arrow::datatypes::Float64Type>()
        .values()
        .to_vec();
    f0[100] = f64::from_bits(f0[100].to_bits() ^ 1);
    let mut cols = batch.columns().to_vec();
    cols[1] = std::sync::Arc::new(arrow::array::Float64Array::from(f0));
    let edited = arrow::array::RecordBatch::try_new(batch.schema(), cols).unwrap();
    let reordered = arrow::compute::take_record_batch(
        &batch,
        &arrow::array::UInt32Array::from_iter_values((0..2000u32).rev()),
    )
    .unwrap();
    let appended =
        arrow::compute::concat_batches(&batch.schema(), &[batch.clone(), batch.slice(0, 1)])
            .unwrap();
    for (name, b, msg) in [
        ("edited", &edited, "row contents differ"),
        ("reordered", &reordered, "different order"),
        ("appended", &appended, "row count 2001"),
    ] {
        let p = dir.path().join(format!("{name}.parquet"));
        write_parquet(&p, b);
        cli()
            .arg("verify")
            .arg(&m)
            .arg(&p)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(msg))
            .stdout(predicate::str::contains("MISMATCH"));
    }
    // Diff by id: one changed row, one added copy.
    let report = dir.path().join("diff.json");
    let scores = dir.path().join("diff.csv");
    cli()
        .arg("diff")
        .arg(&m)
        .arg(dir.path().join("edited.parquet"))
        .arg("--report")
        .arg(&report)
        .arg("--scores")
        .arg(&scores)
        .assert()
        .code(1);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        (
            r["added"].as_u64(),
            r["removed"].as_u64(),
            r["changed"].as_u64()
        ),
        (Some(0), Some(0), Some(1))
    );
    let csv = std::fs::read_to_string(&scores).unwrap();
    assert_eq!(csv.lines().count(), 2001);
    assert!(csv.lines().nth(101).unwrap().contains("changed"));
}

#[test]
fn diff_by_an_id_that_repeats_matches_rows_by_content() {
    // Ids need not be unique (a user id, a source document): the unchanged data diffs clean against its own
    // manifest, in any row order; an edited row sharing its id with another is changed, not added and removed.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a.csv");
    std::fs::write(&data, "id,a,label\n1,0.5,0\n2,1.5,1\n1,2.5,0\n").unwrap();
    let m = dir.path().join("m.parquet");
    cli()
        .args(["lineage", "--id", "id"])
        .arg(&data)
        .arg("-o")
        .arg(&m)
        .assert()
        .code(0);
    let diff = |body: &str, code: i32, summary: &str| {
        let now = dir.path().join("now.csv");
        std::fs::write(&now, body).unwrap();
        cli()
            .arg("diff")
            .arg(&m)
            .arg(&now)
            .assert()
            .code(code)
            .stdout(predicate::str::contains(summary));
    };
    diff(
        "id,a,label\n1,2.5,0\n2,1.5,1\n1,0.5,0\n",
        0,
        "0 added, 0 removed, 0 changed",
    );
    diff(
        "id,a,label\n1,0.5,0\n2,1.5,1\n1,9.5,0\n",
        1,
        "0 added, 0 removed, 1 changed",
    );
    // A new column changes every row's digest: the diff says why.
    let wider = dir.path().join("wider.csv");
    std::fs::write(
        &wider,
        "id,a,label,extra\n1,0.5,0,7\n2,1.5,1,7\n1,2.5,0,7\n",
    )
    .unwrap();
    let report = dir.path().join("diff.json");
    cli()
        .arg("diff")
        .arg(&m)
        .arg(&wider)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("differ from the manifest's"))
        .stdout(predicate::str::contains("0 added, 0 removed, 3 changed"));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["schema_changed"], serde_json::json!(true));
    // `--id` names the manifest's own id column, or is refused with the way out (exit 2); so is a scan whose --id
    // is not the baseline manifest's id column (no row would ever match).
    let no_ids = dir.path().join("no_ids.parquet");
    cli()
        .arg("lineage")
        .arg(&data)
        .arg("-o")
        .arg(&no_ids)
        .assert()
        .code(0);
    for (args, manifest, code, stderr) in [
        (["diff", "--id", "id"], &m, 0, ""),
        (
            ["diff", "--id", "a"],
            &m,
            2,
            "records its rows by id column 'id'",
        ),
        (
            ["diff", "--id", "id"],
            &no_ids,
            2,
            "made without an id column",
        ),
        (
            ["scan", "--id", "a"],
            &m,
            2,
            "records its rows by id column 'id'",
        ),
    ] {
        let baseline = if args[0] == "scan" {
            "--baseline"
        } else {
            "--"
        };
        cli()
            .args(args)
            .arg(baseline)
            .arg(manifest)
            .arg(&data)
            .assert()
            .code(code)
            .stderr(predicate::str::contains(stderr));
    }
}

#[test]
fn an_output_on_an_input_is_refused_and_the_input_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.parquet");
    std::fs::copy(fixture("clean.parquet"), &data).unwrap();
    let before = std::fs::read(&data).unwrap();
    let spelled_otherwise = dir.path().join("not-yet").join("..").join("data.parquet");
    for args in [
        vec!["lineage", "-o"],
        vec!["scan", "--label", "label", "--clean"],
        vec!["profile", "--label", "label", "-o"],
    ] {
        cli()
            .args(&args)
            .arg(&spelled_otherwise)
            .arg(&data)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("is the input"))
            .stdout(predicate::str::contains(format!(
                "poisonscan: error (usage): {} incomplete, verdict ERROR",
                args[0]
            )));
    }
    // A file written into a folder input would join the dataset.
    let folder = dir.path().join("parts");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(&data, folder.join("a.parquet")).unwrap();
    cli()
        .args(["scan", "--label", "label", "--scores"])
        .arg(folder.join("scores.csv"))
        .arg(&folder)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("inside the input folder"));
    assert_eq!(std::fs::read(&data).unwrap(), before);
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1);
}

#[test]
fn keyed_manifest_cannot_be_edited_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    let m = dir.path().join("m.parquet");
    cli()
        .args(["lineage"])
        .arg(fixture("clean.parquet"))
        .arg("-o")
        .arg(&m)
        .arg("--key-file")
        .arg(&key)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("(keyed)"));
    cli()
        .arg("verify")
        .arg(&m)
        .arg(fixture("clean.parquet"))
        .arg("--key-file")
        .arg(&key)
        .assert()
        .code(0);
    cli()
        .arg("verify")
        .arg(&m)
        .arg(fixture("clean.parquet"))
        .env_remove("POISONSCAN_KEY")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("keyed"));
    // An attacker rewrites the manifest for tampered data, without the key: the seal no longer matches.
    let mut man = poisonscan::lineage::Manifest::read(&m).unwrap();
    man.digests[5][0] ^= 1;
    let mut st = poisonscan::lineage::LineageState::default();
    st.add(0, &man.digests);
    man.header.fingerprint = st.finish().unwrap();
    man.write(&m).unwrap();
    cli()
        .arg("verify")
        .arg(&m)
        .arg(fixture("clean.parquet"))
        .arg("--key-file")
        .arg(&key)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("seal does not match"));
}

#[test]
fn a_manifest_of_the_old_row_encoding_is_refused_not_compared() {
    // A version-1 manifest holds digests of the old encoding (every number in nine bytes): comparing them with
    // today's digests would report every row as changed. verify, diff and scan --baseline refuse it (exit 3) and say
    // to re-create it.
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.parquet");
    cli()
        .arg("lineage")
        .arg(fixture("clean.parquet"))
        .arg("-o")
        .arg(&m)
        .assert()
        .code(0);
    let mut man = poisonscan::lineage::Manifest::read(&m).unwrap();
    assert_eq!(man.header.manifest_version, 3);
    man.header.manifest_version = 1;
    man.write(&m).unwrap();
    for cmd in ["verify", "diff"] {
        cli()
            .arg(cmd)
            .arg(&m)
            .arg(fixture("clean.parquet"))
            .assert()
            .code(3)
            .stderr(predicate::str::contains("manifest version 1"))
            .stderr(predicate::str::contains("re-create the manifest"));
    }
    scan("train_clean.parquet", "train_reference.parquet")
        .arg("--baseline")
        .arg(&m)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("manifest version 1"));
    // A version-2 manifest's order-independent fingerprint is the forgeable digest sum: refused with the way out.
    man.header.manifest_version = 2;
    man.write(&m).unwrap();
    cli()
        .arg("verify")
        .arg(&m)
        .arg(fixture("clean.parquet"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("manifest version 2"))
        .stderr(predicate::str::contains("LtHash16"))
        .stderr(predicate::str::contains(
            "poisonscan lineage DATA -o MANIFEST",
        ));
}

#[test]
fn scan_with_a_baseline_flags_changed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.parquet");
    cli()
        .args(["lineage", "--id", "id"])
        .arg(fixture("train_clean.parquet"))
        .arg("-o")
        .arg(&m)
        .assert()
        .code(0);
    scan("train_clean.parquet", "train_reference.parquet")
        .arg("--baseline")
        .arg(&m)
        .assert()
        .code(0);
    let original = read_parquet(&fixture("train_clean.parquet"));
    let batch = arrow::compute::concat_batches(&original[0].schema(), &original).unwrap();
    let mut labels: Vec<i64> = batch
        .column_by_name("label")
        .unwrap()
        .as_primitive::<arrow::datatypes::Int64Type>()
        .values()
        .to_vec();
    labels[3] = (labels[3] + 1) % 4;
    let mut cols = batch.columns().to_vec();
    let li = batch.schema().index_of("label").unwrap();
    cols[li] = std::sync::Arc::new(arrow::array::Int64Array::from(labels));
    let p = dir.path().join("relabelled.parquet");
    write_parquet(
        &p,
        &arrow::array::RecordBatch::try_new(batch.schema(), cols).unwrap(),
    );
    let report = dir.path().join("r.json");
    cli()
        .args(["scan", "-q", "--label", "label", "--id", "id"])
        .arg(&p)
        .arg("--reference")
        .arg(fixture("train_reference.parquet"))
        .arg("--baseline")
        .arg(&m)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["baseline"]["changed"], 1);
    assert_eq!(r["checks"]["baseline_changed"]["status"], "fail");
    assert_eq!(r["sample"][0]["row"], 3);
    assert!(r["sample"][0]["reasons"]
        .as_str()
        .unwrap()
        .contains("changed since the baseline"));
}

#[test]
fn drift_against_the_reference_warns() {
    let dir = tempfile::tempdir().unwrap();
    let original = read_parquet(&fixture("train_clean.parquet"));
    let batch = arrow::compute::concat_batches(&original[0].schema(), &original).unwrap();
    // Keep only classes 0 and 1: the label distribution moved.
    let labels = batch
        .column_by_name("label")
        .unwrap()
        .as_primitive::<arrow::datatypes::Int64Type>()
        .clone();
    let mask =
        arrow::array::BooleanArray::from_iter(labels.iter().map(|l| Some(l.unwrap_or(0) < 2)));
    let shifted = arrow::compute::filter_record_batch(&batch, &mask).unwrap();
    let p = dir.path().join("shifted.parquet");
    write_parquet(&p, &shifted);
    let report = dir.path().join("r.json");
    cli()
        .args(["scan", "-q", "--label", "label", "--id", "id"])
        .arg(&p)
        .arg("--reference")
        .arg(fixture("train_reference.parquet"))
        .arg("--report")
        .arg(&report)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("verdict WARN"));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let label = r["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "label")
        .unwrap();
    assert_eq!(label["drifted"], true);
    assert!(label["psi"].as_f64().unwrap() > 0.25);
}

/// The first object under `v` that has the key `key`.
fn find_key<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(m) if m.contains_key(key) => Some(v),
        serde_json::Value::Object(m) => m.values().find_map(|x| find_key(x, key)),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}
