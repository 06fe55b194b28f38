"""Clean tables unlike the real benchmark's: each is scanned without a reference by the release CLI, and every row
it flags is a false alarm. Prints, per table, the verdict, the rows flagged and the rows each detector flags.

    python3 benches/clean_tables.py [--keep DIR]

Tables (seeded, no poison):
- `two_features_random_labels`: 500 rows, two Gaussian features, a label drawn independently of them (in two
  dimensions some rows fall within the duplicate detector's 1/1000 line of a row of the other label by chance);
- `discrete_survival`: 2,000 rows of four discrete columns (a class 1..3, a sex as text, an age band 0..4, a Poisson
  count of siblings) and a survival label that follows them only in odds, Titanic-like: most rows share their
  features with other rows, under both labels;
- `discrete_survival_with_fare`: the same with a continuous fare (log-normal, two decimals).

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", help="write the tables and reports here instead of a temporary folder")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "poisonscan"], cwd=ROOT, check=True)
    exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "poisonscan")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or tmp
        os.makedirs(out, exist_ok=True)
        for name, label, df in tables():
            path = os.path.join(out, f"{name}.parquet")
            report = os.path.join(out, f"{name}.json")
            df.to_parquet(path, index=False)
            done = subprocess.run(
                [exe, "scan", "-q", path, "--label", label, "--id", "id", "--report", report],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            if done.returncode not in (0, 1):
                sys.exit(f"{name}: poisonscan exited with {done.returncode}")
            with open(report) as f:
                r = json.load(f)
            summary = done.stdout.strip().splitlines()[-1]
            dup = r.get("duplicates", {})
            print(f"{name} ({len(df)} rows): {summary}")
            print(
                f"  duplicates: exact conflicting groups {dup.get('conflicting_groups')}, exact conflicts expected "
                f"{dup.get('exact_conflicts_expected')}, near conflicts flagged {dup.get('near_conflicts')}"
            )


if __name__ == "__main__":
    main()
