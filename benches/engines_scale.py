"""Scale-out figures for docs/scale.md: a local scan against Ray Data and Spark (local[2]) scans of the same rows
with the same fit, at several partition counts.

    python benches/engines_scale.py --rows 200000 --parts 2,8,32 --engines ray,spark

Needs poisonscan, numpy, ray[data] and pyspark (Java 17) in the running Python. Prints one line per run: wall time,
rows/s per core, the driver's peak RSS, and the bytes of partition state the driver collected (report JSON plus 32
bytes of row digest per row); and the times of the first scans against the fit (the first builds the detectors'
reference-side models, the later ones, and the local scan, reuse them).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import pyarrow as pa

import poisonscan as ps
from poisonscan import _partitioned as _p


def make(rows: int, dim: int, seed: int, flips: float) -> pa.Table:
    centers = np.random.default_rng(0).normal(0, 3, size=(4, dim))  # one population for data and reference
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=rows)
    x = centers[y] + rng.normal(0, 1, size=(rows, dim))
    flip = rng.random(rows) < flips
    y = np.where(flip, (y + rng.integers(1, 4, size=rows)) % 4, y)
    cols = {f"f{j}": pa.array(x[:, j].astype(np.float32)) for j in range(dim)}
    cols["label"] = pa.array([f"c{v}" for v in y])
    cols["id"] = pa.array(np.arange(rows, dtype=np.int64) + seed * 10**9)
    return pa.table(cols)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def blocks(t: pa.Table, parts: int):
    n = t.num_rows
    cuts = [round(n * i / parts) for i in range(parts + 1)]
    return [t.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]


def line(run: str, dt: float, r: _p.PartitionedReport, local: ps.Report, rows: int) -> str:
    same = r.fingerprint == local.summary["fingerprint"]
    return (
        f"{run}: {dt:.1f} s ({rows / dt / 2:,.0f} rows/s per core), {r.flagged_count} flagged "
        f"(local {local.summary['flagged']}), fingerprint {'equal' if same else 'DIFFERENT'}, "
        f"driver (Python) peak RSS {peak_rss_mb():.0f} MB, state {r.state_bytes / 1e6:.2f} MB ({r.state_bytes - 32 * rows:,} B beyond the digests)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--parts", default="2,8,32")
    ap.add_argument("--engines", default="ray,spark")
    args = ap.parse_args()
    parts = [int(p) for p in args.parts.split(",")]
    data = make(args.rows, args.dim, 1, 0.05)
    reference = make(max(args.rows // 10, 2000), args.dim, 2, 0.0)
    t0 = time.perf_counter()
    fit = ps.fit(reference, label="label", id="id")
    print(f"fit on {reference.num_rows} rows: {time.perf_counter() - t0:.1f} s, {len(_p.fitted_bytes(fit)[0]) / 1e6:.1f} MB")
    # The first scan against the fit builds the detectors' reference-side models; later scans reuse them.
    for n, run in ((25_000, "first"), (25_000, "second"), (100_000, "third")):
        t0 = time.perf_counter()
        ps.scan(data.slice(0, n), fitted=fit)
        print(f"{run} scan against the fit, {n} rows: {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    local = ps.scan(data, fitted=fit)
    dt = time.perf_counter() - t0
    print(
        f"local: {args.rows} rows in {dt:.1f} s ({args.rows / dt / 2:,.0f} rows/s per core), "
        f"{local.summary['flagged']} flagged, peak RSS {peak_rss_mb():.0f} MB"
    )
    engines = [e for e in args.engines.split(",") if e]
    if "ray" in engines:
        import ray
        import poisonscan.ray

        ray.init(num_cpus=2, include_dashboard=False, _temp_dir="/tmp/ps-ray-bench", log_to_driver=False,
                 logging_level="ERROR")
        ray.data.DataContext.get_current().enable_progress_bars = False
        for p in parts:
            ds = ray.data.from_arrow(blocks(data, p))
            t0 = time.perf_counter()
            r = poisonscan.ray.scan(ds, fitted=fit)
            n = r.scores.count()
            dt = time.perf_counter() - t0
            print(line(f"ray {p} blocks", dt, r, local, args.rows) + f", {n} score rows")
        ray.shutdown()
    if "spark" in engines:
        os.environ["PYSPARK_PYTHON"] = sys.executable
        from pyspark.sql import SparkSession
        from pyspark.sql.pandas.types import from_arrow_schema
        import poisonscan.spark

        spark = (
            SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", "4g").getOrCreate()
        )
        rows = [tuple(r.values()) for r in data.to_pylist()]
        schema = from_arrow_schema(data.schema)
        for p in parts:
            cuts = [round(len(rows) * i / p) for i in range(p + 1)]
            rdd = spark.sparkContext.parallelize(range(p), p).flatMap(lambda i, c=cuts: rows[c[i] : c[i + 1]])
            df = spark.createDataFrame(rdd, schema).cache()
            df.count()
            t0 = time.perf_counter()
            r = poisonscan.spark.scan(df, fitted=fit)
            dt = time.perf_counter() - t0
            print(line(f"spark {p} partitions", dt, r, local, args.rows))
            df.unpersist()
        spark.stop()


if __name__ == "__main__":
    main()
