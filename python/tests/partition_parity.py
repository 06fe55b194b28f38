"""Checks shared by the partition tests (no engine) and the engine tests (Ray, Spark): a partitioned scan against the
local scan of the same rows with the same fit."""

from __future__ import annotations

from typing import Any, List

import pyarrow as pa
import pyarrow.parquet as pq

import poisonscan as ps
from conftest import FIXTURES, truth_rows


def fitted() -> ps.FittedScanner:
    return ps.fit(FIXTURES / "train_reference.parquet", label="label", id="id")


def table(name: str) -> pa.Table:
    return pq.read_table(FIXTURES / name)


def slices(t: pa.Table, parts: int) -> List[pa.Table]:
    """``parts`` contiguous, unequal slices (the last ones larger), in order."""
    n = t.num_rows
    cuts = sorted({0, n} | {round(n * (i / parts) ** 0.8) for i in range(1, parts)})
    return [t.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]


def assert_parity(local: ps.Report, merged: Any, scores: pa.Table, data_name: str, parts: int) -> None:
    """The bounds `docs/scale.md` states: fingerprint, rows and contract findings exact; the verdict equal; row-local
    scores equal per row; the flagged set within 1% of the rows (in-partition evidence differs), every ground-truth
    poison the local scan finds found too when there are at most 3 partitions."""
    lf = local.summary["fingerprint"]
    assert merged.fingerprint == lf, (merged.fingerprint, lf)
    assert merged.rows == local.summary["rows"]
    assert merged.verdict == local.verdict, merged.summary_line
    assert len(merged.partitions) == parts
    starts = [p["start"] for p in merged.partitions]
    assert starts == [sum(p["rows"] for p in merged.partitions[:i]) for i in range(parts)], starts
    assert merged.state_bytes > 32 * merged.rows
    assert merged.checks["contract"]["count"] == local.checks["contract"]["count"]
    scores = scores.sort_by("row")
    loc = local.scores
    assert scores.column("row").to_pylist() == list(range(loc.num_rows))
    assert scores.column("id").to_pylist() == loc.column("id").to_pylist()
    for col in ("score_contract", "score_outlier"):
        a, b = scores.column(col).to_pylist(), loc.column(col).to_pylist()
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-6, col
    pf = set(i for i, f in enumerate(scores.column("flagged").to_pylist()) if f)
    lfl = set(i for i, f in enumerate(loc.column("flagged").to_pylist()) if f)
    assert merged.flagged_count == len(pf)
    assert len(pf ^ lfl) <= loc.num_rows // 100, (sorted(pf - lfl), sorted(lfl - pf))
    if parts <= 3:
        assert pf == lfl
    truth_file = FIXTURES / data_name.replace(".parquet", ".truth.csv")
    if truth_file.exists():
        truth = set(truth_rows(truth_file))
        assert len(truth & pf) >= len(truth & lfl) - 2


def local_scan(f: ps.FittedScanner, name: str, **options: Any) -> ps.Report:
    return ps.scan(FIXTURES / name, fitted=f, **options)

