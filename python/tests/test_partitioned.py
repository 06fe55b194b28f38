"""The partition and merge stages without an engine: slices of a fixture scored as an engine's workers would, merged
as its driver would, against the local scan."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

import poisonscan as ps
from poisonscan import _partitioned as _p
from partition_parity import assert_parity, fitted, local_scan, slices, table


def run_partitioned(f, parts, *, policy=None, split=False, shuffle_states=False):
    blob, h = _p.fitted_bytes(f)
    pol = ps._policy_toml(policy)
    schema = _p.probe_schema(parts[0].slice(0, 64), f, {}, split)
    outs = [_p.score_partition(t, blob, h, {}, pol, schema, key=f"{i:04d}") for i, t in enumerate(parts)]
    states = [tuple(r.values()) for o in outs for r in _p.state_rows(o).to_pylist()]
    if shuffle_states:
        states = states[::-1]
    merged, starts = _p.merge_states(sorted(states) if not shuffle_states else states, pol)
    scores = pa.concat_tables([_p.score_rows(o, starts) for o in outs])
    report = _p.PartitionedReport(merged, scores)
    return report, outs


@pytest.mark.parametrize("parts", [1, 3, 7])
@pytest.mark.parametrize("name", ["train_poisoned.parquet", "train_clean.parquet"])
def test_partitioned_scan_matches_the_local_scan(name, parts):
    f = fitted()
    local = local_scan(f, name)
    report, _ = run_partitioned(f, slices(table(name), parts))
    assert_parity(local, report, report.scores, name, parts)
    if name == "train_clean.parquet":
        assert report.verdict == "pass" and report.flagged_count == 0
    else:
        assert report.verdict == "fail" and report.flagged_count > 50
        with pytest.raises(ps.PoisoningDetected, match="partitions"):
            report.raise_for_status()


def test_split_returns_the_data_rows_by_flag():
    f = fitted()
    data = table("train_poisoned.parquet")
    report, outs = run_partitioned(f, slices(data, 3), split=True)
    clean = pa.concat_tables([_p.split_rows(o, False) for o in outs])
    quarantine = pa.concat_tables([_p.split_rows(o, True) for o in outs])
    assert clean.num_rows + quarantine.num_rows == data.num_rows
    assert quarantine.num_rows == report.flagged_count
    assert clean.schema.names == data.schema.names
    flagged_ids = set(report.scores.filter(report.scores.column("flagged")).column("id").to_pylist())
    assert set(quarantine.column("id").to_pylist()) == flagged_ids
    assert not (set(clean.column("id").to_pylist()) & flagged_ids)


def test_states_out_of_order_are_refused_or_give_another_root():
    # The Merkle root is ordered: the driver must merge in dataset order. Merged in reverse, the LtHash (a multiset
    # hash) agrees and the root does not, so a misordered merge cannot pass for the dataset's fingerprint.
    f = fitted()
    name = "train_clean.parquet"
    local = local_scan(f, name)
    report, _ = run_partitioned(f, slices(table(name), 3), shuffle_states=True)
    assert report.fingerprint["lthash"] == local.summary["fingerprint"]["lthash"]
    assert report.fingerprint["merkle_root"] != local.summary["fingerprint"]["merkle_root"]


def test_an_empty_partition_and_an_empty_scan():
    f = fitted()
    data = table("train_clean.parquet")
    report, _ = run_partitioned(f, [data.slice(0, 500), data.slice(0, 0), data.slice(500)])
    assert report.rows == data.num_rows and report.verdict == "pass"
    assert len(report.partitions) == 2, "an empty partition leaves no state"
    assert report.fingerprint == local_scan(f, "train_clean.parquet").summary["fingerprint"]
    empty_merged, _ = _p.merge_states([], ps._policy_toml(None))
    nothing = _p.PartitionedReport(empty_merged, None)
    assert nothing.rows == 0 and nothing.verdict == "fail" and not nothing.passed
    assert "no rows" in nothing.summary_line
    with pytest.raises(ps.PoisoningDetected):
        nothing.raise_for_status()
    with pytest.raises(ps.InputError, match="no rows"):
        _p.probe_schema(data.slice(0, 0), f, {}, False)


def test_the_merger_refuses_what_does_not_belong():
    f = fitted()
    data = table("train_clean.parquet")
    _, outs = run_partitioned(f, slices(data, 2))
    (key, rj, dg) = tuple(_p.state_rows(outs[0]).to_pylist()[0].values())
    m = ps._native.PartitionMerger()
    with pytest.raises(ps.LineageError, match="digest"):
        m.add(rj, dg[:-32])
    with pytest.raises(ps.LineageError, match="not a scan report"):
        m.add("{}", dg)
    other = json.loads(rj)
    other["policy_hash"] = "0" * 64
    with pytest.raises(ps.LineageError):
        m.add(json.dumps(other), dg)
    m.add(rj, dg)
    json.loads(m.finish())
    with pytest.raises(ps.ConfigError, match="finished"):
        m.finish()


def test_a_fit_travels_as_bytes_and_is_checked():
    f = fitted()
    blob, h = _p.fitted_bytes(f)
    assert _p.load_fitted(blob, h).hash == f.hash
    with pytest.raises(ps.PoisonscanError):
        ps._native.FittedScanner._from_bytes(blob[: len(blob) // 2])
    with pytest.raises(ps.ConfigError, match="hash"):
        _p.load_fitted(blob, "0" * 64)


def test_options_a_partition_cannot_honour_are_refused():
    with pytest.raises(ps.ConfigError, match="baseline"):
        _p.scan_options({"baseline": "m.psm"})
    with pytest.raises(ps.ConfigError, match="reference= .* or fitted="):
        _p.resolve_fit(None, None, "label", None, None, None)
    with pytest.raises(ps.ConfigError, match="not both"):
        _p.resolve_fit(fitted(), "x", None, None, None, None)


def test_a_monitor_keeps_the_merged_state_of_arriving_batches():
    f = fitted()
    name = "train_poisoned.parquet"
    data = table(name)
    monitor = ps.Monitor(f)
    assert monitor.batches == 0 and monitor.so_far.verdict == "fail" and monitor.so_far.rows == 0
    seen = 0
    for batch in slices(data, 4):
        report = monitor.score(batch)
        seen += batch.num_rows
        assert report.scores.num_rows == batch.num_rows
        assert monitor.so_far.rows == seen
    local = local_scan(f, name)
    final = monitor.so_far
    assert monitor.batches == 4
    assert final.fingerprint == local.summary["fingerprint"]
    assert final.verdict == local.verdict == "fail"
    assert final.checks["contract"]["count"] == local.checks["contract"]["count"]
    assert abs(final.flagged_count - local.summary["flagged"]) <= data.num_rows // 100
    with pytest.raises(ps.InputError):
        monitor.score(data.slice(0, 0))
    assert monitor.batches == 4, "a refused batch leaves the state unchanged"
    clean = ps.Monitor(f)
    for batch in slices(table("train_clean.parquet"), 3):
        clean.score(batch)
    assert clean.so_far.verdict == "pass" and clean.so_far.flagged_count == 0
    with pytest.raises(ps.ConfigError):
        ps.Monitor("scanner.psfit")


@pytest.mark.parametrize("chunk_rows, chunks", [(5000, 1), (700, 3), (300, 7)])
@pytest.mark.parametrize("name", ["train_poisoned.parquet", "train_clean.parquet"])
def test_a_scan_in_chunks_matches_the_local_scan_and_writes_every_row(tmp_path, name, chunk_rows, chunks):
    import pyarrow.parquet as pq

    from conftest import FIXTURES

    f = fitted()
    local = local_scan(f, name)
    files = {k: tmp_path / f"{k}.parquet" for k in ("scores", "clean", "quarantine")}
    files["report"] = tmp_path / "report.json"
    r = ps.scan(FIXTURES / name, fitted=f, chunk_rows=chunk_rows, **files)
    assert isinstance(r, ps.ChunkedReport)
    assert r.chunk_rows == chunk_rows and len(r.partitions) == chunks
    assert r.fingerprint == local.summary["fingerprint"]
    assert r.rows == local.summary["rows"] and r.verdict == local.verdict
    assert r.checks["contract"]["count"] == local.checks["contract"]["count"]
    assert json.loads(files["report"].read_text())["fingerprint"] == r.fingerprint
    scores, loc = pq.read_table(files["scores"]), local.scores
    assert scores.column("row").to_pylist() == list(range(loc.num_rows))
    assert scores.column("id").to_pylist() == loc.column("id").to_pylist()
    for col in ("score_contract", "score_outlier"):
        assert scores.column(col).to_pylist() == loc.column(col).to_pylist(), col
    got = [i for i, v in enumerate(scores.column("flagged").to_pylist()) if v]
    want = [i for i, v in enumerate(loc.column("flagged").to_pylist()) if v]
    assert len(set(got) ^ set(want)) <= loc.num_rows // 100
    if chunks == 1:
        assert got == want
    assert r.flagged_count == len(got)
    assert pq.read_table(files["quarantine"]).column("id").to_pylist() == [loc.column("id")[i].as_py() for i in got]
    assert pq.read_table(files["clean"]).num_rows + len(got) == loc.num_rows
    if name == "train_clean.parquet":
        assert r.passed and r.flagged_count == 0
    else:
        with pytest.raises(ps.PoisoningDetected):
            r.raise_for_status()


def test_a_scan_in_chunks_refuses_what_needs_every_row_and_writes_nothing(tmp_path):
    from conftest import FIXTURES

    data = FIXTURES / "train_poisoned.parquet"
    scores = tmp_path / "s.parquet"
    with pytest.raises(ps.ConfigError, match="every row"):
        ps.scan(data, fitted=fitted(), chunk_rows=500, scores=scores, html=tmp_path / "r.html")
    with pytest.raises(ps.ConfigError, match="chunk_rows"):
        ps.scan(data, fitted=fitted(), scores=scores)
    with pytest.raises(ps.ConfigError, match="chunk_rows"):
        ps.scan(data, fitted=fitted(), chunk_rows=0)
    # Without a fit each chunk would infer its own contract.
    with pytest.raises(ps.ConfigError, match="fit"):
        ps.scan(data, label="label", chunk_rows=500, scores=scores)
    assert not scores.exists() and list(tmp_path.iterdir()) == []
    # An output onto the input is refused and the input left as it was.
    copy = tmp_path / "data.parquet"
    copy.write_bytes(data.read_bytes())
    with pytest.raises(ps.PoisonscanError):
        ps.scan(copy, fitted=fitted(), chunk_rows=500, clean=copy)
    assert copy.read_bytes() == data.read_bytes()


def test_a_python_stream_scans_in_chunks(tmp_path):
    t = table("train_poisoned.parquet")
    f = fitted()
    r = ps.scan(t, fitted=f, chunk_rows=512, scores=tmp_path / "s.csv")
    assert r.fingerprint == local_scan(f, "train_poisoned.parquet").summary["fingerprint"]
    assert len(r.partitions) == 4 and [p["start"] for p in r.partitions] == [0, 512, 1024, 1536]
    assert len((tmp_path / "s.csv").read_text().splitlines()) == t.num_rows + 1
