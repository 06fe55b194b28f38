"""Detection metrics against per-row ground truth."""

from __future__ import annotations

from typing import Dict, List

import numpy as np


def precision_at_k(scores: np.ndarray, truth: np.ndarray) -> float:
    """Precision of the k highest scores, k = number of true poisons, ties at the k-th score counted in expectation
    (a tie block contributes its poison fraction times the places left), so a constant score earns the base rate."""
    truth = np.asarray(truth, dtype=bool)
    k = int(truth.sum())
    if k == 0:
        return float("nan")
    s = np.nan_to_num(np.asarray(scores, dtype="float64"), nan=-np.inf)
    kth = np.sort(s)[::-1][k - 1]
    above = s > kth
    tied = s == kth
    taken = k - int(above.sum())
    expected = truth[above].sum() + truth[tied].sum() * taken / tied.sum()
    return float(expected / k)


def cells_named(reasons: List[str], cells: Dict[int, str]) -> float:
    """Share of the corrupted cells whose row's reasons name the corrupted column (as `column = ...` or
    `column is ...`, the way poisonscan's findings begin)."""
    named = sum(1 for r, c in cells.items() if f"{c} = " in reasons[r] or f"{c} is " in reasons[r])
    return named / len(cells) if cells else float("nan")


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Probability that a poison outranks a clean row (ties count one half; scikit-learn); NaN scores rank lowest."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return float("nan")
    s = np.nan_to_num(np.asarray(scores, dtype="float64"), nan=-np.finfo(float).max, posinf=np.finfo(float).max, neginf=-np.finfo(float).max)
    return float(roc_auc_score(truth, s))


def flag_metrics(flagged: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
    flagged = np.asarray(flagged, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    tp = int((flagged & truth).sum())
    return {
        "precision": float(tp / flagged.sum()) if flagged.any() else float("nan"),
        "recall": float(tp / truth.sum()) if truth.any() else float("nan"),
        "flagged_fraction": float(flagged.mean()) if len(flagged) else float("nan"),
    }
