"""How the detectors' scores are fused into the overall score, measured: poisonscan's max over its detectors'
`score_*` columns beside alternatives computed from the same columns, on every attacked case of the real benchmark
(same tables, attacks and seeds as run.py), with and without the reference. Prints the mean precision@k of each.

    python3 benches/real/fusion.py [--tables iris,cells] [--json out.json]

Alternatives: the backdoor detector's unflagged scores halved, capped at 0.25, or dropped (all rows, or only in
scans where it flagged nothing); rank fusion (flagged rows first, then the highest percentile over the detectors).
Needs the installed wheel and benches/real/requirements.txt.
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

TABLES = "iris,cells,hpc_data,credit_data,mlc_churn,olive,Default"


def fusions(sc) -> dict:
    from scipy.stats import rankdata

    det = [c for c in sc.columns if c.startswith("score_")]
    s = {c: sc[c].to_numpy(dtype=float) for c in det}
    overall = sc["score"].to_numpy(dtype=float)
    bd = s["score_backdoor"]
    unflagged = bd < 0.5

    def with_backdoor(b: np.ndarray) -> np.ndarray:
        return np.max(np.column_stack([b] + [s[c] for c in det if c != "score_backdoor"]), axis=1)

    n = len(overall)
    pct = np.column_stack(
        [(rankdata(s[c]) - 1) / max(n - 1, 1) if np.ptp(s[c]) > 0 else np.zeros(n) for c in det]
    )
    return {
        "max (poisonscan)": overall,
        "backdoor unflagged x0.5": with_backdoor(np.where(unflagged, 0.5 * bd, bd)),
        "backdoor unflagged <= 0.25": with_backdoor(np.where(unflagged, np.minimum(bd, 0.25), bd)),
        "backdoor unflagged dropped when it flagged none": with_backdoor(
            np.where(unflagged & (not (bd >= 0.5).any()), 0.0, bd)
        ),
        "backdoor unflagged dropped": with_backdoor(np.where(unflagged, 0.0, bd)),
        "rank fusion": np.where(overall >= 0.5, 1 + overall, pct.max(axis=1)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", default=TABLES)
    ap.add_argument("--json")
    a = ap.parse_args()
    out: dict = {}
    for tname in a.tables.split(","):
        t = realdata.load(tname)
        for attack in attacks.ATTACKS:
            case = attacks.make(t, attack, seed=attacks.seed_of(attack))  # run.py's seeds
            if not case.truth.any():
                continue
            for ref in (True, False):
                import poisonscan

                r = poisonscan.scan(
                    tools._arrow(case.data),
                    label=t.label,
                    id="row_id",
                    reference=tools._arrow(t.reference) if ref else None,
                )
                for name, v in fusions(r.scores.to_pandas()).items():
                    key = f"{'reference' if ref else 'no reference'}: {name}"
                    out.setdefault(key, {})[f"{tname}|{attack}"] = metrics.precision_at_k(v, case.truth)
    for k, v in out.items():
        print(f"{k}: mean precision@k {np.mean(list(v.values())):.4f} over {len(v)} cases")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
