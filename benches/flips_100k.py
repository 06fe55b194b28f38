"""Label flips at 100k rows: poisonscan's label-flip ranking on a scikit-learn `make_classification` table beside a
plain leave-one-out kNN, reference kNN and cross-validated logistic regression, with the IVF search at its default probes and exact (issue 14).

    python benches/flips_100k.py [--rows 100000] [--out out/flips-100k]

The table: `make_classification(n_samples=1.25 * rows, n_features=32, n_informative=16, n_redundant=8, n_classes=5,
random_state=0)`, the rest of its arguments at scikit-learn's defaults (two clusters per class, class_sep=1.0,
flip_y=0.01: a few labels already wrong before ours, counted as clean here since nobody knows them). The first 20%
of rows are the trusted reference, the rest the data, where 5% of the rows get a random other label (the ground
truth). The clean twin is the same data without those flips. These settings were fixed before the first run.

Each poisonscan line is one CLI run (release build). Its metrics are precision@k of `score_label` and of the overall
`score`, with k = the number of flips, plus the share of the clean twin's rows flagged. Anchors, on the standardized
features:
- kNN: leave-one-out k = 10 on the data, the share of neighbours with another label;
- kNN on the reference: the same share among the 10 nearest reference rows;
- CV logistic regression: 1 - p(label) from 5-fold cross-validated logistic regression (the score cleanlab ranks by).
Needs numpy, pyarrow, scikit-learn and cargo.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benches", "real"))
from metrics import precision_at_k  # noqa: E402


def target_dir() -> str:
    return os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def flipped(rows: int):
    """The table in memory: features, true labels, the reference's row count, the data's labels after the flips and
    which data rows were flipped."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows + rows // 4, n_features=32, n_informative=16, n_redundant=8, n_classes=5, random_state=0
    )
    x = x.astype(np.float32)
    ref = rows // 4
    rng = np.random.default_rng(1)
    yd = y[ref:].copy()
    flip = rng.random(rows) < 0.05
    yd[flip] = (yd[flip] + rng.integers(1, 5, size=int(flip.sum()))) % 5
    return x, y, ref, yd, flip


def tables(rows: int, out: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, y, ref, yd, flip = flipped(rows)

    def table(xs, ys, first):
        cols = {"id": pa.array(np.arange(len(ys), dtype=np.int64) + first)}
        cols.update({f"f{j}": pa.array(xs[:, j]) for j in range(xs.shape[1])})
        cols["label"] = pa.array([f"c{v}" for v in ys])
        return pa.table(cols)

    os.makedirs(out, exist_ok=True)
    pq.write_table(table(x[:ref], y[:ref], 0), os.path.join(out, "reference.parquet"))
    pq.write_table(table(x[ref:], yd, ref), os.path.join(out, "data.parquet"))
    pq.write_table(table(x[ref:], y[ref:], ref), os.path.join(out, "twin.parquet"))
    return x[:ref], y[:ref], x[ref:], yd, flip


def scan(out: str, data: str, reference: bool, probes: int):
    import pyarrow.parquet as pq

    exe = os.path.join(target_dir(), "release", "poisonscan")
    scores = os.path.join(out, "scores.parquet")
    cmd = [exe, "scan", "-q", os.path.join(out, data), "--label", "label", "--id", "id", "--scores", scores]
    cmd += ["--report", os.path.join(out, "report.json"), "--ivf-probes", str(probes)]
    if reference:
        cmd += ["--reference", os.path.join(out, "reference.parquet")]
    t = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t
    if done.returncode not in (0, 1):
        sys.exit(f"poisonscan exited with {done.returncode}: {done.stderr}")
    s = pq.read_table(scores).to_pandas()
    return s["score_label"].to_numpy(), s["score"].to_numpy(), s["flagged"].to_numpy(dtype=bool), took


def share_other(y_nbrs: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (y_nbrs != y[:, None]).mean(axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "flips-100k"))
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "poisonscan"], cwd=ROOT, check=True)
    xr, yr, xd, yd, truth = tables(args.rows, args.out)
    print(f"{args.rows} data rows x 32, {int(truth.sum())} flipped (5%), {len(yr)}-row reference")
    print("| tool | p@k score_label | p@k score | flagged (poisoned) | flagged (clean twin) | wall |")
    print("|---|---|---|---|---|---|")
    for reference in (True, False):
        for probes in (4, 16, 100_000):
            label, overall, flagged, took = scan(args.out, "data.parquet", reference, probes)
            _, _, twin_flagged, _ = scan(args.out, "twin.parquet", reference, probes)
            name = f"poisonscan, {'reference' if reference else 'no reference'}, " + (
                "exact search" if probes == 100_000 else f"{probes} probes"
            )
            print(
                f"| {name} | {precision_at_k(label, truth):.3f} | {precision_at_k(overall, truth):.3f} | "
                f"{flagged.mean():.2%} | {twin_flagged.mean():.2%} | {took:.1f} s |",
                flush=True,
            )
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(xr)
    zr, zd = scaler.transform(xr), scaler.transform(xd)
    t = time.perf_counter()
    _, idx = NearestNeighbors(n_neighbors=11).fit(zd).kneighbors(zd)
    nbrs = np.array([row[row != i][:10] for i, row in enumerate(idx)])
    knn = share_other(yd[nbrs], yd)
    print(f"| kNN k=10, leave-one-out on the data | {precision_at_k(knn, truth):.3f} | - | - | - | "
          f"{time.perf_counter() - t:.1f} s |", flush=True)
    t = time.perf_counter()
    _, idx = NearestNeighbors(n_neighbors=10).fit(zr).kneighbors(zd)
    knn_ref = share_other(yr[idx], yd)
    print(f"| kNN k=10 on the reference | {precision_at_k(knn_ref, truth):.3f} | - | - | - | "
          f"{time.perf_counter() - t:.1f} s |", flush=True)
    t = time.perf_counter()
    probs = cross_val_predict(LogisticRegression(max_iter=2000), zd, yd, cv=5, method="predict_proba")
    cl = 1.0 - probs[np.arange(len(yd)), yd]
    print(f"| 5-fold CV logistic regression, 1 - p(label) | {precision_at_k(cl, truth):.3f} | - | - | - | "
          f"{time.perf_counter() - t:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
