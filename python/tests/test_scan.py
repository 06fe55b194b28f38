import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import poisonscan
from conftest import FIXTURES, ROOT, truth_rows


def test_clean_twin_passes_and_poisoned_fails_with_reasons(fixtures):
    ok = poisonscan.scan(fixtures / "train_clean.parquet", label="label", reference=fixtures / "train_reference.parquet")
    assert ok.passed
    bad = poisonscan.scan(
        str(fixtures / "train_poisoned.parquet"), label="label", id="id", reference=str(fixtures / "train_reference.parquet")
    )
    assert not bad.passed and bad.verdict == "fail"
    truth = truth_rows(fixtures / "train_poisoned.truth.csv")
    flagged = {f["row"] for f in bad.findings}
    assert len(flagged & set(truth)) >= 0.9 * len(truth)
    assert len(flagged - set(truth)) <= 2
    assert all(f["reasons"] for f in bad.findings)
    assert bad.summary["rows"] == 2040 and bad.summary["report_version"] == 3


def test_corrupted_rows_are_all_flagged_with_the_right_reason(fixtures):
    r = poisonscan.scan(fixtures / "corrupted.parquet", label="label", id="id", reference=fixtures / "reference.parquet")
    truth = truth_rows(fixtures / "corrupted.truth.csv")
    scores = r.scores.to_pydict()
    expected = {"nan": "NaN", "inf": "inf", "neg_inf": "-inf", "extreme": "far above the reference maximum",
                "negative_count": "count = -5.0 is negative", "unknown_label": "not a known label", "unknown_category": "zzz"}
    for row, kind in truth.items():
        assert scores["flagged"][row], (row, kind)
        assert expected[kind] in scores["reasons"][row], (row, kind, scores["reasons"][row])
    assert sum(scores["flagged"]) == len(truth)


def test_scores_table_has_one_row_per_input_row(fixtures):
    r = poisonscan.scan(fixtures / "train_poisoned.parquet", label="label", id="id", reference=fixtures / "train_reference.parquet")
    t = r.scores
    assert t.num_rows == 2040
    assert t.column_names[:4] == ["row", "id", "score", "flagged"]
    for c in ["score_contract", "score_duplicate", "score_outlier", "score_label", "score_backdoor", "reasons"]:
        assert c in t.column_names
    assert t.column("row").to_pylist() == list(range(2040))


def _scores(report):
    t = report.scores
    return [t.column(c).to_pylist() for c in t.column_names if c.startswith("score")]


def test_pyarrow_polars_pandas_and_readers_give_identical_scores(fixtures):
    polars = pytest.importorskip("polars")
    pandas = pytest.importorskip("pandas")
    table = pq.read_table(fixtures / "train_poisoned.parquet")
    ref = pq.read_table(fixtures / "train_reference.parquet")
    base = _scores(poisonscan.scan(table, label="label", reference=ref))
    inputs = [
        polars.from_arrow(table),
        table.to_pandas(),
        pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=97)),
        fixtures / "train_poisoned.parquet",
    ]
    for data in inputs:
        assert _scores(poisonscan.scan(data, label="label", reference=ref)) == base, type(data)


def test_duckdb_relation_input(fixtures):
    duckdb = pytest.importorskip("duckdb")
    table = pq.read_table(fixtures / "train_clean.parquet")
    rel = duckdb.from_arrow(table)
    r = poisonscan.scan(rel, label="label", reference=fixtures / "train_reference.parquet")
    assert r.passed and r.summary["rows"] == 2000


def test_a_reader_is_streamed_batch_by_batch(fixtures):
    table = pq.read_table(fixtures / "train_clean.parquet")
    produced = []

    def batches():
        for _ in range(3):
            for b in table.to_batches(max_chunksize=50):
                produced.append(b.num_rows)
                yield b

    reader = pa.RecordBatchReader.from_batches(table.schema, batches())
    r = poisonscan.scan(reader, label="label", reference=fixtures / "train_reference.parquet")
    assert r.summary["rows"] == 6000 == sum(produced)
    assert len(produced) > 100  # many small batches, pulled one at a time
    # The same rows three times: every copy past the first is an exact duplicate with the same label.
    assert r.summary["duplicates"]["exact_copies"] == 4000
    assert r.summary["checks"]["duplicate"]["count"] == 0


def test_raise_for_status_and_split(fixtures):
    data = pq.read_table(fixtures / "train_poisoned.parquet")
    r = poisonscan.scan(data, label="label", reference=fixtures / "train_reference.parquet")
    with pytest.raises(poisonscan.PoisoningDetected) as e:
        r.raise_for_status()
    assert isinstance(e.value, poisonscan.PoisonscanError)
    assert e.value.report is r and "verdict FAIL" in str(e.value)
    clean, quarantine = r.clean(data), r.quarantine(data)
    assert clean.num_rows + quarantine.num_rows == data.num_rows
    assert quarantine.num_rows == sum(r.flagged_mask) == len(r.findings)
    assert clean.schema == data.schema
    with pytest.raises(poisonscan.LineageError, match="not the data that was scanned"):
        r.clean(data.slice(0, 10))


def test_bad_inputs_raise_typed_errors(fixtures, tmp_path):
    with pytest.raises(poisonscan.SchemaError, match="'nope'.*--label"):
        poisonscan.scan(fixtures / "clean.parquet", label="nope")
    with pytest.raises(poisonscan.InputError, match="truncated.parquet"):
        poisonscan.scan(fixtures / "broken" / "truncated.parquet", label="label")
    with pytest.raises(poisonscan.InputError, match="empty"):
        poisonscan.scan(fixtures / "broken" / "empty.parquet")
    with pytest.raises(poisonscan.InputError, match="no rows"):
        poisonscan.scan(fixtures / "broken" / "zero_rows.parquet", reference=fixtures / "reference.parquet")
    with pytest.raises(poisonscan.SchemaError, match="f1"):
        poisonscan.scan(fixtures / "broken" / "wrong_schema.parquet", reference=fixtures / "reference.parquet")
    with pytest.raises(poisonscan.SchemaError, match="__arrow_c_stream__"):
        poisonscan.scan(12345)
    with pytest.raises(poisonscan.ConfigError, match="unknown check"):
        poisonscan.scan(fixtures / "clean.parquet", policy={"nonsense": {"error_if": "> 0"}})
    bad = tmp_path / "policy.toml"
    bad.write_text("[label]\nerror_if = 'lots'\n")
    with pytest.raises(poisonscan.ConfigError, match="threshold"):
        poisonscan.scan(fixtures / "clean.parquet", policy=bad)
    with pytest.raises(poisonscan.ConfigError):
        poisonscan.scan(fixtures / "clean.parquet", reference=fixtures / "reference.parquet", contract=tmp_path / "x.json")
    with pytest.raises(poisonscan.InputError):
        poisonscan.scan(tmp_path / "missing.parquet")


def test_policy_dict_changes_the_verdict(fixtures):
    lax = {"contract": {"error_if": "> 5%"}}
    r = poisonscan.scan(fixtures / "corrupted.parquet", label="label", reference=fixtures / "reference.parquet", policy=lax)
    assert r.passed
    assert r.summary["checks"]["contract"]["count"] == 36  # impossible findings
    assert r.summary["checks"]["unusual"]["count"] == 6  # the extremes: graded, flagged, a warning at 0.3% of rows


def test_profile_save_load_and_scan_with_contract(fixtures, tmp_path):
    c = poisonscan.profile(fixtures / "reference.parquet", label="label", id="id")
    assert c.classes == ["0", "1", "2", "3"]
    p = tmp_path / "contract.json"
    c.save(p)
    c2 = poisonscan.Contract.load(p)
    assert c2.to_json() == c.to_json()
    r = poisonscan.scan(fixtures / "corrupted.csv", label="label", id="id", contract=c2)
    assert not r.passed
    assert r.summary["violations"]["wrong_type"] == 6


def test_lineage_verify_and_diff(fixtures, tmp_path):
    table = pq.read_table(fixtures / "train_clean.parquet")
    m = poisonscan.lineage(table, id="id")
    assert m.rows == 2000 and len(m.merkle_root) == 64
    assert poisonscan.verify(m, fixtures / "train_clean.parquet")
    path = tmp_path / "m.parquet"
    m.save(path)
    f0 = table.column("f0").to_pylist()
    f0[7] += 1.0
    changed = table.set_column(1, "f0", pa.array(f0))
    assert not poisonscan.verify(path, changed)
    d = poisonscan.diff(path, changed.slice(0, 1990))
    assert (d.added, d.removed, d.changed) == (0, 10, 1)
    assert d.status[7] == "changed" and d.by_id
    r = poisonscan.scan(changed, label="label", id="id", baseline=m, reference=fixtures / "train_reference.parquet")
    assert r.summary["baseline"]["changed"] == 1 and not r.passed


def test_nested_and_untyped_columns_are_fingerprinted_and_ids_may_repeat():
    # A struct column, a map column and a column with no value in any row (pyarrow's null type), as from Spark or a
    # sparse export; ids that repeat. The same rows in another order diff clean; an edit shows as one change.
    table = pa.table(
        {
            "id": [1, 2, 1],
            "meta": [{"src": "a", "n": 1}, {"src": "b", "n": 2}, None],
            "tags": pa.array([[("k", 1)], [], [("k", 2)]], type=pa.map_(pa.string(), pa.int64())),
            "empty": pa.nulls(3),
            "label": [0, 1, 0],
        }
    )
    m = poisonscan.lineage(table, id="id")
    assert m.rows == 3
    assert poisonscan.verify(m, table)
    d = poisonscan.diff(m, table.take([2, 1, 0]))
    assert (d.added, d.removed, d.changed) == (0, 0, 0)
    meta = table.column("meta").to_pylist()
    meta[2] = {"src": "c", "n": 3}
    edited = table.set_column(1, "meta", pa.array(meta, type=table.schema.field("meta").type))
    d = poisonscan.diff(m, edited)
    assert (d.added, d.removed, d.changed) == (0, 0, 1) and d.status[2] == "changed"
    r = poisonscan.scan(table, label="label", id="id")
    assert r.summary["rows"] == 3 and r.scores.num_rows == 3


def test_keyed_manifest_needs_the_key(fixtures):
    secret = "a-long-enough-secret-for-tests"
    m = poisonscan.lineage(fixtures / "train_clean.parquet", key=secret)
    assert poisonscan.verify(m, fixtures / "train_clean.parquet", key=secret)
    with pytest.raises(poisonscan.ConfigError, match="keyed"):
        poisonscan.verify(m, fixtures / "train_clean.parquet")
    with pytest.raises(poisonscan.ConfigError, match="key id"):
        poisonscan.verify(m, fixtures / "train_clean.parquet", key="another-secret-of-enough-length")


@pytest.mark.parametrize("name,code", [("train_clean", 0), ("train_poisoned", 1)])
def test_pretraining_gate_example(name, code, tmp_path):
    q = tmp_path / "q.parquet"
    p = subprocess.run(
        [sys.executable, str(ROOT / "python" / "examples" / "pretraining_gate.py"),
         str(FIXTURES / f"{name}.parquet"), str(FIXTURES / "train_reference.parquet"), str(q)],
        capture_output=True, text=True,
    )
    assert p.returncode == code, p.stdout + p.stderr
    if code == 0:
        assert "training on 2000 rows" in p.stdout
    else:
        assert "refusing to train" in p.stdout and q.exists()


def test_a_rust_panic_is_an_exception_not_a_crash():
    from poisonscan import _poisonscan

    with pytest.raises(poisonscan.InternalError, match="panic"):
        _poisonscan._panic_for_test()
    # The interpreter and the module still work afterwards.
    assert poisonscan.scan(FIXTURES / "clean.parquet", label="label", reference=FIXTURES / "reference.parquet").passed
