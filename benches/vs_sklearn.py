"""Speed beside the tool a user would run instead: a full poisonscan scan (CLI, release build: read, contract, lineage,
all detectors, scores written) against scikit-learn's IsolationForest fit + score on the same feature matrix, in the
same run, on the scale script's data (`examples/make_scale`: 32 float features, 10 classes, 2% label flips,
100k-row clean reference).

    python benches/vs_sklearn.py --rows 100000 --repeat 3

Needs numpy, pyarrow and scikit-learn in the running Python, and cargo (builds the release CLI and the data
generator). IsolationForest runs with n_jobs=2 (the machine's two cores, as poisonscan uses them) and 100 trees
(its default); its time excludes reading the file, poisonscan's includes it. Prints one line per run and the median
of each.

`--stages` adds where the scan's time goes: one more scan per mode on both cores and on one
(`RAYON_NUM_THREADS=1`, which approximates each stage's CPU time), with the report's `timings_ms` per stage, beside
IsolationForest on one core (`n_jobs=1`). Detector stages run concurrently on both cores, so there the stages
overlap and do not add up to the total.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def target_dir() -> str:
    return os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def build() -> None:
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--bin", "poisonscan", "--example", "make_scale"],
        cwd=ROOT,
        check=True,
    )


def data(rows: int) -> str:
    d = os.path.join(ROOT, "out", f"scale-{rows}")
    if not os.path.exists(os.path.join(d, "data.parquet")):
        exe = os.path.join(target_dir(), "release", "examples", "make_scale")
        subprocess.run([exe, d, str(rows), "32"], check=True, stdout=subprocess.DEVNULL)
    return d


def poisonscan(d: str, reference: bool, threads: int | None = None) -> float:
    exe = os.path.join(target_dir(), "release", "poisonscan")
    cmd = [exe, "scan", "-q", os.path.join(d, "data.parquet"), "--label", "label", "--id", "id"]
    if reference:
        cmd += ["--reference", os.path.join(d, "reference.parquet")]
    cmd += ["--scores", os.path.join(d, "bench-scores.parquet"), "--report", os.path.join(d, "bench-report.json")]
    env = dict(os.environ)
    if threads is not None:
        env["RAYON_NUM_THREADS"] = str(threads)
    t = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    took = time.perf_counter() - t
    # 0 pass, 1 fail (the data holds flips): anything else means the scan did not run.
    if done.returncode not in (0, 1):
        sys.exit(f"poisonscan exited with {done.returncode}: {' '.join(cmd)}")
    return took


def isolation_forest(x, jobs: int = 2) -> float:
    from sklearn.ensemble import IsolationForest

    t = time.perf_counter()
    model = IsolationForest(n_estimators=100, random_state=0, n_jobs=jobs).fit(x)
    model.score_samples(x)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stages", action="store_true", help="also the report's per-stage timings on two cores and one")
    args = ap.parse_args()
    import numpy as np
    import pyarrow.parquet as pq

    build()
    d = data(args.rows)
    table = pq.read_table(os.path.join(d, "data.parquet"))
    features = [c for c in table.column_names if c not in ("id", "label")]
    x = np.column_stack([table.column(c).to_numpy() for c in features]).astype(np.float32)
    times: dict[str, list[float]] = {"poisonscan, reference": [], "poisonscan, no reference": [], "IsolationForest": []}
    for run in range(args.repeat):
        # Interleaved, so the machine's drift falls on all three alike.
        for name, f in (
            ("poisonscan, reference", lambda: poisonscan(d, True)),
            ("poisonscan, no reference", lambda: poisonscan(d, False)),
            ("IsolationForest", lambda: isolation_forest(x)),
        ):
            took = f()
            times[name].append(took)
            print(f"run {run + 1}: {name}: {took:.2f} s", flush=True)
    forest = statistics.median(times["IsolationForest"])
    print(f"{args.rows} rows x {x.shape[1]} features, median of {args.repeat}:")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name}: {m:.2f} s ({m / forest:.2f}x IsolationForest fit + score)")
    if args.stages:
        stages(d, x)


def stages(d: str, x) -> None:
    """One scan per mode on both cores and on one, with the report's per-stage timings (ms)."""
    import json

    one = isolation_forest(x, jobs=1)
    print(f"IsolationForest on one core (n_jobs=1): {one:.2f} s")
    for reference in (True, False):
        for threads in (None, 1):
            took = poisonscan(d, reference, threads)
            with open(os.path.join(d, "bench-report.json")) as f:
                timings = json.load(f)["timings_ms"]
            mode = "reference" if reference else "no reference"
            cores = "both cores" if threads is None else "one core"
            parts = ", ".join(f"{k} {v}" for k, v in sorted(timings.items(), key=lambda kv: -kv[1]))
            print(f"poisonscan, {mode}, {cores}: {took:.2f} s ({took / one:.1f}x IsolationForest on one core) | {parts}")


if __name__ == "__main__":
    main()
