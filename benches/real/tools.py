"""The tools run side by side: poisonscan (with and without the trusted reference) and the anchors a user would pick
instead. Each returns per-row suspicion scores (higher = more suspicious) and a flagged mask.

Anchors get one shared feature matrix (`anchor_matrix`): numeric columns with +-inf turned into missing, a missing
indicator for every numeric column that has a missing value, missing values imputed with the column median,
standardized; string columns one-hot encoded (missing is its own category). poisonscan gets the Arrow table itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import pandas as pd

from realdata import Table

K = 10  # neighbours for the kNN anchor, as in cleanlab's features= path


@dataclass
class Result:
    scores: np.ndarray
    flagged: np.ndarray
    extra: Dict[str, np.ndarray] = field(default_factory=dict)
    # per row, the tool's reasons (poisonscan only)
    reasons: Optional[List[str]] = None


def anchor_matrix(df: pd.DataFrame, t: Table) -> np.ndarray:
    parts = []
    for c in t.numeric:
        x = df[c].astype("float64").to_numpy(na_value=np.nan)
        x = np.where(np.isfinite(x), x, np.nan)
        miss = np.isnan(x)
        med = float(np.nanmedian(x)) if (~miss).any() else 0.0
        x = np.where(miss, med, x)
        sd = float(np.std(x))
        parts.append(((x - float(np.mean(x))) / (sd if sd > 0 else 1.0))[:, None])
        if miss.any():
            parts.append(miss.astype("float64")[:, None])
    for c in t.categorical:
        dummies = pd.get_dummies(df[c].astype("object").fillna("<NA>"), dtype="float64")
        parts.append(dummies.to_numpy())
    return np.hstack(parts) if parts else np.zeros((len(df), 1))


def _labels(df: pd.DataFrame, t: Table) -> np.ndarray:
    classes = sorted(df[t.label].unique())
    return np.searchsorted(np.array(classes), df[t.label].to_numpy())


def knn_disagreement(df: pd.DataFrame, t: Table, x: np.ndarray) -> Result:
    """Leave-one-out kNN (k = 10): the fraction of a row's neighbours whose label differs from its own."""
    from sklearn.neighbors import NearestNeighbors

    y = _labels(df, t)
    k = min(K, len(df) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    own = np.arange(len(df))[:, None]
    # drop the row itself wherever it appears (exact duplicates may come first), keep k others
    keep = np.where(idx == own, -1, idx)
    nbrs = np.array([row[row >= 0][:k] for row in keep])
    score = (y[nbrs] != y[:, None]).mean(axis=1)
    return Result(score, score > 0.5)


def isolation_forest(df: pd.DataFrame, t: Table, x: np.ndarray) -> Result:
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(random_state=0).fit(x)
    return Result(-model.score_samples(x), model.predict(x) == -1)


def local_outlier_factor(df: pd.DataFrame, t: Table, x: np.ndarray) -> Result:
    from sklearn.neighbors import LocalOutlierFactor

    lof = LocalOutlierFactor(n_neighbors=min(20, len(df) - 1))
    pred = lof.fit_predict(x)
    return Result(-lof.negative_outlier_factor_, pred == -1)


def cleanlab_cv(df: pd.DataFrame, t: Table, x: np.ndarray) -> Result:
    """cleanlab.filter.find_label_issues on 5-fold cross-validated logistic-regression probabilities."""
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    y = _labels(df, t)
    folds = int(min(5, np.bincount(y).min()))
    probs = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=max(2, folds), method="predict_proba")
    mask = find_label_issues(y, probs, n_jobs=1)
    return Result(1.0 - probs[np.arange(len(y)), y], np.asarray(mask, dtype=bool))


def datalab(df: pd.DataFrame, t: Table, x: np.ndarray) -> Result:
    """cleanlab Datalab on the features: label, outlier and near_duplicate issues; score = worst issue score."""
    from cleanlab import Datalab

    lab = Datalab(data={"label": _labels(df, t)}, label_name="label", verbosity=0)
    kinds = ["label", "outlier", "near_duplicate"]
    lab.find_issues(features=x, issue_types={k: {} for k in kinds})
    issues = lab.get_issues()
    scores = np.zeros(len(df))
    flagged = np.zeros(len(df), dtype=bool)
    extra = {}
    for k in kinds:
        if f"{k}_score" in issues:
            s = 1.0 - issues[f"{k}_score"].to_numpy()
            extra[k] = s
            scores = np.maximum(scores, s)
            flagged |= issues[f"is_{k}_issue"].to_numpy(dtype=bool)
    return Result(scores, flagged, extra)


def _arrow(df: pd.DataFrame):
    import pyarrow as pa

    out = df.copy()
    out.insert(0, "row_id", np.arange(len(df), dtype="int64"))
    return pa.Table.from_pandas(out, preserve_index=False)


def poisonscan_tool(with_reference: bool) -> Callable:
    def run(df: pd.DataFrame, t: Table, x: Optional[np.ndarray] = None) -> Result:
        import poisonscan

        ref = _arrow(t.reference) if with_reference else None
        report = poisonscan.scan(_arrow(df), label=t.label, id="row_id", reference=ref)
        sc = report.scores.to_pandas()
        extra = {c[len("score_"):]: sc[c].to_numpy(dtype="float64") for c in sc.columns if c.startswith("score_")}
        reasons = [str(r) if r is not None else "" for r in sc["reasons"]]
        return Result(sc["score"].to_numpy(dtype="float64"), sc["flagged"].to_numpy(dtype=bool), extra, reasons)

    return run


def warm_up(name: str) -> None:
    """Import what a tool needs, so the imports are resident before its calls are measured."""
    modules = {
        "Datalab": ["cleanlab", "cleanlab.datalab.datalab"],
        "cleanlab CV-LR": ["cleanlab.filter", "sklearn.linear_model", "sklearn.model_selection"],
        "IsolationForest": ["sklearn.ensemble"],
        "LOF": ["sklearn.neighbors"],
        "kNN k=10": ["sklearn.neighbors"],
    }.get(name, ["poisonscan", "pyarrow"])
    import importlib

    for m in modules:
        importlib.import_module(m)


# name -> (runner, needs the anchor matrix)
TOOLS: Dict[str, tuple] = {
    "poisonscan": (poisonscan_tool(True), False),
    "poisonscan (no ref)": (poisonscan_tool(False), False),
    "Datalab": (datalab, True),
    "cleanlab CV-LR": (cleanlab_cv, True),
    "IsolationForest": (isolation_forest, True),
    "LOF": (local_outlier_factor, True),
    "kNN k=10": (knn_disagreement, True),
}

ANCHORS: List[str] = [n for n in TOOLS if not n.startswith("poisonscan")]
