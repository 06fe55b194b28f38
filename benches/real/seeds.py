"""Precision@k of chosen attacks over several seeds: one seed per case (run.py) moves a 170-poison case by about
0.04 (hpc_data's 5% random flips: 0.549 at seed 0, 0.486 at seed 1), so a ranking change is judged on the mean of
several attack seeds. poisonscan with and without the reference beside chosen anchors, on the same cases.

    python3 benches/real/seeds.py --tables hpc_data,credit_data --attacks "flip random 5%,flip a->b random" \\
        --seeds 3 [--anchors "cleanlab CV-LR,kNN k=10" | --anchors -] [--json out.json]

Seeds 1..N (run.py uses seed i + 1 for the i-th attack). Prints one line per table and attack: the mean over seeds of
precision@k of the overall score (`ps`, `ps-noref`), of the label detector's own score (`L`, `L-noref`) and of each
anchor. Needs the installed wheel and benches/real/requirements.txt.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attacks  # noqa: E402
import metrics  # noqa: E402
import realdata  # noqa: E402
import tools  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", required=True)
    ap.add_argument("--attacks", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--anchors", default="cleanlab CV-LR,kNN k=10", help='"-" for none')
    ap.add_argument("--json")
    a = ap.parse_args()
    anchors = [] if a.anchors == "-" else a.anchors.split(",")
    results = {}
    for tname in a.tables.split(","):
        t = realdata.load(tname)
        for attack in a.attacks.split(","):
            acc: dict = {}
            for seed in range(1, a.seeds + 1):
                case = attacks.make(t, attack, seed)
                for ref in (True, False):
                    out = tools.TOOLS["poisonscan" if ref else "poisonscan (no ref)"][0](case.data, t, None)
                    suffix = "" if ref else "-noref"
                    acc.setdefault("ps" + suffix, []).append(metrics.precision_at_k(out.scores, case.truth))
                    acc.setdefault("L" + suffix, []).append(metrics.precision_at_k(out.extra["label"], case.truth))
                x = tools.anchor_matrix(case.data, t) if anchors else None
                for name in anchors:
                    out = tools.TOOLS[name][0](case.data, t, x)
                    acc.setdefault(name, []).append(metrics.precision_at_k(out.scores, case.truth))
            print(f"{tname:12s} {attack:26s} " + " ".join(f"{k} {np.mean(v):.3f}" for k, v in acc.items()), flush=True)
            results[f"{tname}|{attack}"] = acc
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
