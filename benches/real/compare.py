"""Compare two results files of run.py case by case: mean precision@k over attacked cases, clean-twin rows flagged
(mean, worst), and every case whose precision@k (or clean-twin share) moved.

    python3 benches/real/compare.py OLD.json NEW.json [--tools "poisonscan,poisonscan (no ref)"]
"""

import argparse
import json
import math


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--tools", default="poisonscan,poisonscan (no ref)")
    a = ap.parse_args()
    old, new = (json.load(open(p)) for p in (a.old, a.new))
    for tool in a.tools.split(","):
        pk = ([], [])
        clean = ([], [])
        rec = ([], [])
        prec = ([], [])
        moved = []
        for x, y in zip(old["cases"], new["cases"]):
            if (x["table"], x["attack"]) != (y["table"], y["attack"]):
                raise SystemExit("the files hold different cases")
            tx, ty = x["tools"][tool], y["tools"][tool]
            if x["poisons"] == 0:
                clean[0].append(tx["flagged_fraction"])
                clean[1].append(ty["flagged_fraction"])
                if abs(tx["flagged_fraction"] - ty["flagged_fraction"]) > 1e-9:
                    moved.append((x["table"], "clean twin", tx["flagged_fraction"], ty["flagged_fraction"]))
                continue
            pk[0].append(tx["precision_at_k"])
            pk[1].append(ty["precision_at_k"])
            rec[0].append(tx["recall"])
            rec[1].append(ty["recall"])
            for side, t in ((0, tx), (1, ty)):
                if not math.isnan(t["precision"]):
                    prec[side].append(t["precision"])
            if abs(tx["precision_at_k"] - ty["precision_at_k"]) > 0.005:
                moved.append((x["table"], x["attack"], tx["precision_at_k"], ty["precision_at_k"]))
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        print(
            f"{tool}: mean p@k {mean(pk[0]):.3f} -> {mean(pk[1]):.3f}; flag recall {mean(rec[0]):.2f} -> "
            f"{mean(rec[1]):.2f}, precision {mean(prec[0]):.2f} -> {mean(prec[1]):.2f}; clean twins mean {100 * mean(clean[0]):.2f}% -> {100 * mean(clean[1]):.2f}%, "
            f"worst {100 * max(clean[0]):.2f}% -> {100 * max(clean[1]):.2f}%"
        )
        for table, attack, u, v in moved:
            if not (math.isnan(u) or math.isnan(v)):
                print(f"    {table:12s} {attack:36s} {u:.3f} -> {v:.3f}")


if __name__ == "__main__":
    main()
