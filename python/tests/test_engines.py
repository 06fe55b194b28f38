"""Ray Data and Spark: the same fixture partitioned 1, 3 and 7 ways against the local scan (`.ci/run` runs these in
an environment with `ray[data]` and `pyspark`; elsewhere they are skipped)."""

from __future__ import annotations

import importlib
import os
import sys

import pyarrow as pa
import pytest

import poisonscan as ps
from partition_parity import assert_parity, fitted, local_scan, slices, table

NAMES = ["train_poisoned.parquet", "train_clean.parquet"]


def _engine(module: str):
    """The engine's module; skipped where it is not installed, unless POISONSCAN_REQUIRE_ENGINES is set (`.ci/run`),
    where a missing engine fails."""
    if os.environ.get("POISONSCAN_REQUIRE_ENGINES"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture(scope="module")
def ray_ctx(tmp_path_factory):
    ray = _engine("ray")
    tmp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp), log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def spark():
    _engine("pyspark")
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    s = (
        SparkSession.builder.master("local[2]")
        .appName("poisonscan-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    yield s
    s.stop()


def ray_dataset(ray, t: pa.Table, parts: int):
    import ray.data

    return ray.data.from_arrow(slices(t, parts))


@pytest.mark.parametrize("parts", [1, 3, 7])
@pytest.mark.parametrize("name", NAMES)
def test_ray_scan_matches_the_local_scan(ray_ctx, name, parts):
    import poisonscan.ray

    f = fitted()
    ds = ray_dataset(ray_ctx, table(name), parts)
    assert ds.num_blocks() == parts
    report = poisonscan.ray.scan(ds, fitted=f)
    scores = pa.concat_tables(list(report.scores.iter_batches(batch_format="pyarrow", batch_size=None)))
    assert_parity(local_scan(f, name), report, scores, name, parts)


def test_ray_fits_on_the_driver_and_splits(ray_ctx, tmp_path):
    import poisonscan.ray

    data = table("train_poisoned.parquet")
    ds = ray_dataset(ray_ctx, data, 3)
    reference = table("train_reference.parquet")
    report = poisonscan.ray.scan(ds, reference=reference, label="label", id="id", split=True)
    assert report.verdict == "fail"
    local = ps.scan(data, reference=reference, label="label", id="id")
    assert report.fingerprint == local.summary["fingerprint"]
    report.quarantine.write_parquet(str(tmp_path / "q"))
    report.clean.write_parquet(str(tmp_path / "c"))
    import pyarrow.parquet as pq

    q, c = pq.read_table(tmp_path / "q"), pq.read_table(tmp_path / "c")
    assert q.num_rows == report.flagged_count and q.num_rows + c.num_rows == data.num_rows
    assert set(q.column_names) == set(data.column_names)
    with pytest.raises(ps.PoisoningDetected):
        report.raise_for_status()


@pytest.mark.parametrize("parts", [1, 3, 7])
@pytest.mark.parametrize("name", NAMES)
def test_spark_scan_matches_the_local_scan(spark, name, parts):
    import poisonscan.spark

    f = fitted()
    df = _ordered_partitions(spark, table(name), parts)
    assert df.rdd.getNumPartitions() == parts
    report = poisonscan.spark.scan(df, fitted=f)
    scores = report.scores.toArrow() if hasattr(report.scores, "toArrow") else pa.Table.from_pandas(report.scores.toPandas())
    assert_parity(local_scan(f, name), report, scores, name, parts)


def _ordered_partitions(spark, t: pa.Table, parts: int):
    """A DataFrame whose partitions are the table's contiguous slices, in order (what an ordered read gives)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    pieces = [[tuple(r.values()) for r in s.to_pylist()] for s in slices(t, parts)]
    rdd = spark.sparkContext.parallelize(range(parts), parts).flatMap(lambda i: pieces[i])
    return spark.createDataFrame(rdd, from_arrow_schema(t.schema))


def test_spark_fits_on_the_driver_and_splits(spark):
    import poisonscan.spark

    data = table("train_poisoned.parquet")
    df = _ordered_partitions(spark, data, 3)
    report = poisonscan.spark.scan(df, reference=table("train_reference.parquet"), label="label", id="id", split=True)
    assert report.verdict == "fail"
    q, c = report.quarantine.count(), report.clean.count()
    assert q == report.flagged_count and q + c == data.num_rows
    assert set(report.quarantine.columns) == set(data.column_names)
