"""Clean tables unlike the real benchmark's: each is scanned by the release CLI without a reference and with one (a
seeded 20% of its rows; the scan gets the other 80%), and every row it flags is a false alarm. Prints, per table and
mode, the summary line (verdict, rows flagged, per detector).

    python3 benches/clean_tables.py [--keep DIR]

Tables (seeded, no poison):
- `two_features_random_labels`: 500 rows, two Gaussian features, a label drawn independently of them (in two
  dimensions some rows fall within the duplicate detector's 1/1000 line of a row of the other label by chance);
- `discrete_survival`: 2,000 rows of four discrete columns (a class 1..3, a sex as text, an age band 0..4, a Poisson
  count of siblings) and a survival label that follows them only in odds, Titanic-like: most rows share their
  features with other rows, under both labels;
- `discrete_survival_with_fare`: the same with a continuous fare (log-normal, two decimals);
- `bag_of_words`: 3,000 rows of 20 Poisson(0.1) counts and a label from a logistic of them (each word moves it):
  rows that differ in a word differ in label far more often than chance, and many rows repeat each other;
- `imbalanced_95_5`, `heavy_tails` (log-normal, Pareto, t(2), exponential columns), `high_cardinality_text` (a
  Zipf-distributed city among 300), `nulls_20pct` (three columns 20% missing), `ten_overlapping_classes`,
  `small_rounded` (150 rows, one decimal), `wide_500x100`, `timestamp_column` (a sorted epoch column),
  `repeated_measurements` (600 rows repeated 1-5 times under their label), `mixed_integer` (five integer columns).

Needs numpy, pandas and pyarrow in the running Python, and cargo (builds the release CLI).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tables():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 500
    yield "two_features_random_labels", "label", pd.DataFrame(
        {"id": np.arange(n), "a": rng.normal(size=n), "b": rng.normal(size=n), "label": rng.integers(0, 2, n)}
    )
    rng = np.random.default_rng(1)
    n = 2000
    pclass = rng.integers(1, 4, n)
    sex = rng.integers(0, 2, n)
    agebin = rng.integers(0, 5, n)
    sib = rng.poisson(0.5, n)
    logit = -1 + 1.5 * sex - 0.6 * (pclass - 2) - 0.2 * agebin
    survived = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "pclass": pclass,
            "sex": np.where(sex == 1, "f", "m"),
            "agebin": agebin,
            "sib": sib,
            "survived": survived,
        }
    )
    yield "discrete_survival", "survived", df
    yield "discrete_survival_with_fare", "survived", df.assign(fare=np.round(rng.lognormal(3, 1, n), 2))

    def logit_label(x, rng, scale):
        w = rng.normal(size=x.shape[1])
        z = (x - x.mean(0)) / (x.std(0) + 1e-9) @ w * scale / np.sqrt(x.shape[1])
        return (rng.random(len(x)) < 1 / (1 + np.exp(-z))).astype(int)

    def frame(x, prefix, **extra):
        return pd.DataFrame(x, columns=[f"{prefix}{i}" for i in range(x.shape[1])]).assign(**extra)

    rng = np.random.default_rng(12)
    x = rng.poisson(0.1, size=(3000, 20)).astype(np.int64)
    yield "bag_of_words", "label", frame(x, "w", label=logit_label(x.astype(float), rng, 3))
    rng = np.random.default_rng(10)
    x = rng.normal(size=(5000, 10))
    y = (rng.random(5000) < 0.05).astype(int)
    x[y == 1] += 0.8
    yield "imbalanced_95_5", "label", frame(x, "f", label=y)
    rng = np.random.default_rng(11)
    n = 3000
    x = np.column_stack([rng.lognormal(0, 1.5, n), rng.pareto(1.5, n), rng.standard_t(2, n), rng.exponential(1, n),
                         rng.normal(size=n)])
    yield "heavy_tails", "label", frame(x, "f", label=logit_label(np.log1p(np.abs(x)), rng, 2))
    rng = np.random.default_rng(13)
    n = 4000
    city = rng.zipf(1.3, n) % 300
    x = rng.normal(size=(n, 3))
    yield "high_cardinality_text", "label", frame(x, "f", city=[f"c{v}" for v in city], label=logit_label(x, rng, 2))
    rng = np.random.default_rng(14)
    x = rng.normal(size=(3000, 6))
    y = logit_label(x, rng, 3)
    df = frame(x, "f")
    for c in ["f0", "f2", "f4"]:
        df.loc[rng.random(3000) < 0.2, c] = np.nan
    yield "nulls_20pct", "label", df.assign(label=y)
    rng = np.random.default_rng(15)
    y = rng.integers(0, 10, 4000)
    x = rng.normal(size=(10, 8))[y] + rng.normal(size=(4000, 8))
    yield "ten_overlapping_classes", "label", frame(x, "f", label=y)
    rng = np.random.default_rng(16)
    y = rng.integers(0, 3, 150)
    yield "small_rounded", "label", frame(np.round(rng.normal(size=(150, 4)) * 0.5 + y[:, None], 1), "f", label=y)
    rng = np.random.default_rng(17)
    x = rng.normal(size=(500, 100))
    yield "wide_500x100", "label", frame(x, "f", label=logit_label(x, rng, 3))
    rng = np.random.default_rng(18)
    ts = np.sort(rng.integers(1_600_000_000, 1_700_000_000, 3000))
    x = rng.normal(size=(3000, 4))
    yield "timestamp_column", "label", frame(x, "f", ts=ts, label=logit_label(x, rng, 3))
    rng = np.random.default_rng(19)
    base = rng.normal(size=(600, 5))
    yb = logit_label(base, rng, 3)
    times = rng.integers(1, 6, 600)
    yield "repeated_measurements", "label", frame(np.repeat(base, times, axis=0), "f", label=np.repeat(yb, times))
    rng = np.random.default_rng(20)
    n = 3000
    x = np.column_stack([rng.integers(0, 100, n), rng.integers(0, 2, n), rng.normal(50, 10, n).round(0),
                         rng.integers(18, 90, n), rng.choice([0, 0, 0, 1000, 5000], n)]).astype(np.int64)
    yield "mixed_integer", "label", pd.DataFrame(x, columns=["score", "flag", "weight", "age", "bonus"]).assign(
        label=logit_label(x.astype(float), rng, 2))


def main() -> None:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", help="write the tables and reports here instead of a temporary folder")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "poisonscan"], cwd=ROOT, check=True)
    exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "poisonscan")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or tmp
        os.makedirs(out, exist_ok=True)
        for name, label, df in tables():
            df = df.copy()
            if "id" not in df:
                df.insert(0, "id", np.arange(len(df)))
            order = np.random.default_rng(99).permutation(len(df))
            cut = len(df) // 5
            paths = {}
            for part, rows in [("all", df), ("reference", df.iloc[order[:cut]]), ("rest", df.iloc[order[cut:]])]:
                paths[part] = os.path.join(out, f"{name}-{part}.parquet")
                rows.to_parquet(paths[part], index=False)
            for mode, args in [("no reference", [paths["all"]]),
                               ("with a reference", [paths["rest"], "--reference", paths["reference"]])]:
                report = os.path.join(out, f"{name}-{mode.replace(' ', '-')}.json")
                done = subprocess.run(
                    [exe, "scan", "-q", *args, "--label", label, "--id", "id", "--report", report],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                if done.returncode not in (0, 1):
                    sys.exit(f"{name}: poisonscan exited with {done.returncode}")
                summary = done.stdout.strip().splitlines()[-1]
                print(f"{name} ({len(df)} rows), {mode}: {summary}")

if __name__ == "__main__":
    main()
