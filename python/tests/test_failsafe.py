"""The gate fails safe from Python: no PASS on data it did not analyse, typed errors on mismatches."""

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import poisonscan


@pytest.fixture
def poisoned(fixtures):
    return pq.read_table(fixtures / "train_poisoned.parquet")


@pytest.fixture
def reference(fixtures):
    return pq.read_table(fixtures / "train_reference.parquet")


def test_without_a_label_the_scan_says_what_did_not_run_and_does_not_pass(poisoned, reference):
    r = poisonscan.scan(poisoned, id="id", reference=reference)
    assert r.verdict == "warn"
    assert r.checks["label"]["run"] == "skipped"
    assert "looks like one" in r.checks["label"]["reason"]
    assert any("--label label" in n for n in r.notes)
    assert "not run: backdoor, label skipped" in r._native.summary_line
    required = poisonscan.scan(poisoned, id="id", reference=reference, policy={"require": ["label"]})
    assert required.verdict == "fail"


def test_policy_keys_replace_only_those_keys(poisoned, reference):
    # 5% label flips: with error_if raised to 50%, the built-in warn_if ("> 0") still holds.
    r = poisonscan.scan(
        poisoned, label="label", id="id", reference=reference, policy={"label": {"error_if": "> 50%"}}
    )
    assert r.checks["label"]["count"] > 0
    assert r.checks["label"]["status"] == "warn"
    with pytest.raises(poisonscan.ConfigError, match="require"):
        poisonscan.scan(poisoned, policy={"require": "label"})


def test_features_given_as_one_string_is_one_column(poisoned, reference):
    r = poisonscan.scan(poisoned, label="label", id="id", reference=reference, features="f0")
    assert r.summary["inputs"]["features"] == ["f0"]
    with pytest.raises(poisonscan.SchemaError, match="'f0,f1'"):
        poisonscan.scan(poisoned, label="label", features="f0,f1")


def test_split_refuses_data_that_is_not_the_scanned_rows(poisoned, reference):
    r = poisonscan.scan(poisoned, label="label", id="id", reference=reference)
    reversed_copy = poisoned.take(pa.array(range(poisoned.num_rows - 1, -1, -1)))
    with pytest.raises(poisonscan.LineageError, match="not the data that was scanned"):
        r.clean(reversed_copy)
    with pytest.raises(poisonscan.LineageError, match="not the data that was scanned"):
        r.quarantine(reversed_copy)
    kept = r.clean(poisoned)
    assert kept.num_rows == poisoned.num_rows - r._native.flagged_count


def test_type_mismatches_are_schema_errors(poisoned, reference):
    ref_int = reference.set_column(
        reference.schema.get_field_index("f0"), "f0", pc.cast(pc.round(reference["f0"]), pa.int64())
    )
    with pytest.raises(poisonscan.SchemaError, match="f0.*Int64|Int64.*f0"):
        poisonscan.scan(poisoned, label="label", id="id", reference=ref_int)
    ref_text = reference.set_column(
        reference.schema.get_field_index("label"), "label", pc.cast(reference["label"], pa.string())
    )
    with pytest.raises(poisonscan.SchemaError, match="label"):
        poisonscan.scan(poisoned, label="label", id="id", reference=ref_text)
    data_int = poisoned.set_column(
        poisoned.schema.get_field_index("f1"), "f1", pc.cast(pc.round(poisoned["f1"]), pa.int64())
    )
    with pytest.raises(poisonscan.SchemaError, match="allow_widening"):
        poisonscan.scan(data_int, label="label", id="id", reference=reference)
    widened = poisonscan.scan(data_int, label="label", id="id", reference=reference, allow_widening=True)
    assert widened.verdict in ("warn", "fail")


def test_a_bad_embedding_is_an_impossible_finding(reference):
    def emb_table(t, bad):
        rows = []
        cols = [t[f"f{j}"].to_pylist() for j in range(8)]
        for i in range(t.num_rows):
            v = [float(c[i]) for c in cols]
            if bad and i == 5:
                v = v[:7]
            if bad and i == 6:
                v = [float("nan")] * 8
            rows.append(v)
        return pa.table({"id": t["id"], "label": t["label"], "emb": pa.array(rows, pa.list_(pa.float32()))})

    r = poisonscan.scan(emb_table(reference, True), label="label", id="id", reference=emb_table(reference, False))
    assert r.summary["violations"]["embedding"] == 2
    reasons = r.scores.column("reasons").to_pylist()
    assert "has 7 values, expected 8" in reasons[5]
    assert "NaN or inf" in reasons[6]
    assert any("used as the embedding" in n for n in r.notes)


def test_duckdb_data_and_reference_from_one_connection(fixtures):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    data = con.sql(f"select * from '{fixtures / 'train_poisoned.parquet'}'")
    ref = con.sql(f"select * from '{fixtures / 'train_reference.parquet'}'")
    r = poisonscan.scan(data, label="label", id="id", reference=ref)
    from_paths = poisonscan.scan(
        fixtures / "train_poisoned.parquet", label="label", id="id", reference=fixtures / "train_reference.parquet"
    )
    assert r.verdict == "fail" and r.summary["flagged"] == from_paths.summary["flagged"] >= 76


def test_without_id_a_key_column_is_not_a_feature_and_duplicates_are_found(poisoned, reference):
    with_id = poisonscan.scan(poisoned, label="label", id="id", reference=reference)
    without = poisonscan.scan(poisoned, label="label", reference=reference)
    assert without.checks["duplicate"]["count"] == with_id.checks["duplicate"]["count"] == 10
    assert "id" not in without.summary["inputs"]["features"]
    assert any("unique key" in n for n in without.notes)


def test_a_detector_that_cannot_run_is_reported_with_its_reason(poisoned):
    one_class = poisoned.set_column(
        poisoned.schema.get_field_index("label"), "label", pa.array([1] * poisoned.num_rows)
    )
    r = poisonscan.scan(one_class, label="label", id="id")
    assert r.verdict == "warn"
    assert r.checks["label"]["run"] == "skipped" and "1 class" in r.checks["label"]["reason"]
    tiny = poisonscan.scan(poisoned.slice(0, 2), label="label", id="id")
    assert tiny.verdict == "warn"
    assert {tiny.checks[d]["run"] for d in ("outlier", "label", "backdoor")} == {"skipped"}


def test_schema_problems_of_files_are_schema_errors(tmp_path, poisoned):
    csv = tmp_path / "dup.csv"
    csv.write_text("f0,f0,label\n1,2,a\n3,4,b\n")
    with pytest.raises(poisonscan.SchemaError, match="two columns are named 'f0'"):
        poisonscan.scan(csv)
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(poisoned.slice(0, 100), folder / "a.parquet")
    pq.write_table(poisoned.slice(100, 100).select(["id", "f0", "label"]), folder / "b.parquet")
    with pytest.raises(poisonscan.SchemaError, match="b.parquet"):
        poisonscan.scan(folder, label="label")


def test_repeated_ids_are_a_finding(poisoned, reference):
    ids = list(range(poisoned.num_rows))
    ids[20] = ids[21] = 5
    data = poisoned.set_column(poisoned.schema.get_field_index("id"), "id", pa.array(ids))
    r = poisonscan.scan(data, label="label", id="id", reference=reference)
    assert r.summary["duplicate_ids"]["values"] == 1
    assert r.summary["duplicate_ids"]["rows"] == 3
    assert r.checks["duplicate_id"]["count"] == 3


def test_fit_once_score_many(tmp_path, fixtures, poisoned, reference):
    f = poisonscan.fit(reference, label="label", id="id")
    assert f.rows == reference.num_rows and f.label == "label" and len(f.hash) == 64
    path = tmp_path / "s.psfit"
    f.save(path)
    g = poisonscan.FittedScanner.load(path)
    assert g.hash == f.hash
    by_fit = g.score(poisoned)
    by_ref = poisonscan.scan(poisoned, label="label", id="id", reference=reference)
    assert by_fit.scores.equals(by_ref.scores)
    assert by_fit.verdict == by_ref.verdict == "fail"
    assert g.score(pq.read_table(fixtures / "train_clean.parquet")).verdict == "pass"
    assert g.contract.label == "label"
    data = path.read_bytes()
    mid = len(data) // 2
    (tmp_path / "bad.psfit").write_bytes(data[:mid] + bytes([data[mid] ^ 1]) + data[mid + 1 :])
    with pytest.raises(poisonscan.SchemaError):
        poisonscan.FittedScanner.load(tmp_path / "bad.psfit")
    with pytest.raises(poisonscan.ConfigError, match="one of"):
        poisonscan.scan(poisoned, reference=reference, fitted=g)


def test_an_all_nan_column_is_left_out_and_alone_never_passes(poisoned, reference):
    nan = lambda t: t.append_column("junk", pa.array([float("nan")] * t.num_rows))  # noqa: E731
    plain = poisonscan.scan(poisoned, label="label", id="id", reference=reference)
    with_nan = poisonscan.scan(nan(poisoned), label="label", id="id", reference=nan(reference))
    assert with_nan.summary["flagged"] == plain.summary["flagged"] >= 76  # of the fixture's 80 poisons
    assert any("junk (0% of values present)" in n for n in with_nan.notes)
    alone = poisonscan.scan(
        nan(poisoned).select(["id", "junk", "label"]),
        label="label",
        id="id",
        reference=nan(reference).select(["id", "junk", "label"]),
    )
    assert alone.verdict == "warn"
    assert alone.checks["outlier"]["run"] == "skipped"
    # NaN in some cells of a real column: those rows are still analysed (imputed) and the scan still finds the flips.
    f0 = poisoned["f0"].to_pylist()
    for i in range(0, poisoned.num_rows, 50):
        f0[i] = float("nan")
    holes = poisoned.set_column(poisoned.schema.get_field_index("f0"), "f0", pa.array(f0))
    r = poisonscan.scan(holes, label="label", id="id", reference=reference)
    assert r.checks["label"]["count"] >= plain.checks["label"]["count"] - 3


def test_raise_for_status_can_demand_a_complete_scan(poisoned, reference, fixtures):
    incomplete = poisonscan.scan(pq.read_table(fixtures / "train_clean.parquet"), id="id", reference=reference)
    assert incomplete.verdict == "warn"
    assert set(incomplete.not_run) == {"label", "backdoor"}
    assert incomplete.raise_for_status() is incomplete
    with pytest.raises(poisonscan.ScanIncomplete, match="label") as e:
        incomplete.raise_for_status(complete=True)
    assert isinstance(e.value, poisonscan.PoisonscanError) and e.value.report is incomplete
    complete = poisonscan.scan(
        pq.read_table(fixtures / "train_clean.parquet"), label="label", id="id", reference=reference
    )
    assert complete.not_run == {} and complete.raise_for_status(complete=True) is complete
