"""Where multiclass random flips are lost: cross-validated logistic regression (scikit-learn) on the anchors' matrix and
on poisonscan's own feature view (numeric columns robustly scaled, tails beyond one robust sigma log-compressed as
`sign(v) (1 + ln |v|)`, strings one-hot), its probabilities ranked by `1 - p(label)` and by the margin poisonscan
ranks by (best other class minus the label), and given to poisonscan as `pred_probs` (no reference: the label score
and the overall score). Mean precision@k over attack seeds 1..N.

    python3 benches/real/linear_view.py [--table hpc_data] [--attack "flip random 5%"] [--seeds 3]

Needs the installed wheel and benches/real/requirements.txt.
"""

import argparse
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attacks  # noqa: E402
import metrics  # noqa: E402
import realdata  # noqa: E402
import tools  # noqa: E402


def squash(v: np.ndarray) -> np.ndarray:
    a = np.abs(v)
    return np.where(a <= 1, v, np.sign(v) * (1 + np.log(np.maximum(a, 1e-30))))


def poisonscan_view(df: pd.DataFrame, label: str) -> np.ndarray:
    """Numeric columns: (v - median) / (IQR / 1.349) (else the standard deviation, else 1), missing at the centre,
    log-compressed beyond 1; other columns one-hot."""
    num = [c for c in df.columns if c != label and pd.api.types.is_numeric_dtype(df[c])]
    cat = [c for c in df.columns if c != label and c not in num]
    cols = []
    for c in num:
        v = df[c].to_numpy(dtype=float)
        q = np.nanpercentile(v, [25, 75])
        s = (q[1] - q[0]) / 1.349
        if not s > 0:
            s = np.nanstd(v) or 1.0
        z = (v - np.nanmedian(v)) / s
        cols.append(squash(np.where(np.isfinite(z), z, 0.0)))
    oh = pd.get_dummies(df[cat].astype(str)).to_numpy(dtype=float) if cat else np.zeros((len(df), 0))
    return np.hstack([np.column_stack(cols), oh])


def main() -> None:
    import poisonscan
    import pyarrow as pa
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default="hpc_data")
    ap.add_argument("--attack", default="flip random 5%")
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    t = realdata.load(a.table)
    acc: dict = {}
    for seed in range(1, a.seeds + 1):
        case = attacks.make(t, a.attack, seed)
        y = tools._labels(case.data, t)  # class indices in sorted order, as poisonscan's classes
        rows = np.arange(len(y))

        def cv(x: np.ndarray) -> np.ndarray:
            return cross_val_predict(
                LogisticRegression(max_iter=3000), x, y, cv=StratifiedKFold(5), method="predict_proba"
            )

        def add(name: str, score: np.ndarray) -> None:
            acc.setdefault(name, []).append(metrics.precision_at_k(score, case.truth))

        add("anchors' matrix, 1 - p(label)", 1 - cv(tools.anchor_matrix(case.data, t))[rows, y])
        p = cv(poisonscan_view(case.data, t.label))
        add("poisonscan's view, 1 - p(label)", 1 - p[rows, y])
        other = p.copy()
        other[rows, y] = -1
        add("poisonscan's view, margin", other.max(axis=1) - p[rows, y])
        tab = tools._arrow(case.data)
        features = [c for c in tab.column_names if c not in ("row_id", t.label)]
        flat = pa.array(p.astype(np.float32).ravel())
        tab = tab.append_column("pp", pa.FixedSizeListArray.from_arrays(flat, p.shape[1]))
        r = poisonscan.scan(tab, label=t.label, id="row_id", features=features, pred_probs="pp")
        sc = r.scores.to_pandas()
        add("as pred_probs, poisonscan's label score", sc["score_label"].to_numpy())
        add("as pred_probs, poisonscan's overall score", sc["score"].to_numpy())
    for name, v in acc.items():
        print(f"{a.table} {a.attack}: {name}: {np.mean(v):.3f}")


if __name__ == "__main__":
    main()
