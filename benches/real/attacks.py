"""Attacks on a real table's training part, each returning the attacked data and per-row ground truth.

Every attack is deterministic for a seed. Rows an attack adds (backdoor copies, duplicates, clones) are appended and
the result is shuffled, so position reveals nothing. Ground truth marks the poisoned rows: relabelled rows, injected
copies, corrupted rows. Cover rows of the blended backdoor (trigger under their correct label) are not poisons.
The clean twin of every case is the unattacked training part (`clean`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from realdata import Table


@dataclass
class Case:
    table: str
    attack: str
    data: pd.DataFrame
    truth: np.ndarray  # bool per row of data
    note: str = ""
    # corrupted cells only: row of data -> the column whose value was corrupted
    cells: Optional[Dict[int, str]] = None


# ---------------------------------------------------------------------------------------------------------------
# helpers


def standardized(df: pd.DataFrame, numeric: List[str]) -> np.ndarray:
    """Numeric columns centred and scaled by their mean and std; missing -> 0."""
    cols = []
    for c in numeric:
        x = df[c].astype("float64").to_numpy(na_value=np.nan)
        b = x[np.isfinite(x)]
        mu = float(np.mean(b)) if len(b) else 0.0
        sd = float(np.std(b)) if len(b) else 1.0
        z = (x - mu) / (sd if sd > 0 else 1.0)
        z[~np.isfinite(z)] = 0.0
        cols.append(z)
    return np.column_stack(cols) if cols else np.zeros((len(df), 1))


def classes_by_size(t: Table) -> List[str]:
    return list(t.train[t.label].value_counts().index)


def _other_label(rng: np.random.Generator, classes: List[str], current: str) -> str:
    others = [c for c in classes if c != current]
    return others[int(rng.integers(len(others)))]


def _finish(t: Table, attack: str, data: pd.DataFrame, truth: np.ndarray, seed: int, note: str = "",
            cells: Optional[Dict[int, str]] = None) -> Case:
    order = np.random.default_rng(seed + 7).permutation(len(data))
    data = data.iloc[order].reset_index(drop=True)
    if cells is not None:
        position = np.empty(len(order), dtype=int)
        position[order] = np.arange(len(order))
        cells = {int(position[r]): c for r, c in cells.items()}
    return Case(t.name, attack, data, truth[order], note, cells)


def _count(n: int, frac: float, minimum: int = 3) -> int:
    return max(minimum, int(round(frac * n)))


def _trigger_columns(t: Table, rng: np.random.Generator, want: int) -> List[str]:
    """Numeric columns with at least 10 distinct values (else any numeric column), `want` of them."""
    rich = [c for c in t.numeric if t.train[c].nunique(dropna=True) >= 10]
    pool = rich if len(rich) >= min(want, len(t.numeric)) else list(t.numeric)
    idx = rng.choice(len(pool), size=min(want, len(pool)), replace=False)
    return [pool[i] for i in sorted(idx)]


def _cast_like(col: pd.Series, value: float):
    if pd.api.types.is_integer_dtype(col):
        return int(round(value))
    return float(value)


def _jitter(t: Table, rows: pd.DataFrame, rng: np.random.Generator, scale: float = 0.01) -> pd.DataFrame:
    """Near copies: float columns moved by `scale` standard deviations of noise, one integer column by 1."""
    rows = rows.copy()
    ints = []
    for c in t.numeric:
        sd = float(np.nanstd(t.train[c].astype("float64").to_numpy(na_value=np.nan)))
        if pd.api.types.is_integer_dtype(t.train[c]):
            ints.append(c)
        else:
            noise = rng.normal(0.0, scale * (sd if sd > 0 else 1.0), size=len(rows))
            rows[c] = rows[c].astype("float64") + noise
    if ints:
        for i, ix in enumerate(rows.index):
            c = ints[int(rng.integers(len(ints)))]
            v = rows.at[ix, c]
            if not pd.isna(v):
                rows.at[ix, c] = int(v) + 1
    return rows


# ---------------------------------------------------------------------------------------------------------------
# label attacks


def random_flips(t: Table, seed: int, frac: float) -> Tuple[pd.DataFrame, np.ndarray, str]:
    rng = np.random.default_rng(seed)
    data = t.train.copy()
    n = len(data)
    rows = rng.choice(n, size=_count(n, frac), replace=False)
    classes = classes_by_size(t)
    col = data.columns.get_loc(t.label)
    for r in rows:
        data.iat[r, col] = _other_label(rng, classes, data.iat[r, col])
    truth = np.zeros(n, dtype=bool)
    truth[rows] = True
    return data, truth, f"{len(rows)} rows relabelled at random"


def targeted_flips(t: Table, seed: int, boundary: bool, frac: float = 0.05):
    rng = np.random.default_rng(seed)
    data = t.train.copy()
    a, b = classes_by_size(t)[:2]
    y = data[t.label].to_numpy()
    ia, ib = np.flatnonzero(y == a), np.flatnonzero(y == b)
    m = min(_count(len(data), frac), int(0.4 * len(ia)))
    if boundary:
        z = standardized(data, t.numeric)
        d = np.min(((z[ia, None, :] - z[None, ib, :]) ** 2).sum(-1), axis=1)
        rows = ia[np.argsort(d, kind="stable")[:m]]
    else:
        rows = rng.choice(ia, size=m, replace=False)
    data.loc[rows, t.label] = b
    truth = np.zeros(len(data), dtype=bool)
    truth[rows] = True
    how = "nearest to" if boundary else "random rows of"
    return data, truth, f"{m} rows ({how} class {b}) of {a} relabelled {b}"


def cluster_flip(t: Table, seed: int, frac: float = 0.03):
    rng = np.random.default_rng(seed)
    data = t.train.copy()
    a, b = classes_by_size(t)[:2]
    y = data[t.label].to_numpy()
    ia = np.flatnonzero(y == a)
    m = min(_count(len(data), frac), len(ia) // 2)
    z = standardized(data, t.numeric)
    centre = z[ia[int(rng.integers(len(ia)))]]
    d = ((z[ia] - centre) ** 2).sum(1)
    rows = ia[np.argsort(d, kind="stable")[:m]]
    data.loc[rows, t.label] = b
    truth = np.zeros(len(data), dtype=bool)
    truth[rows] = True
    return data, truth, f"a tight group of {m} rows of {a} relabelled {b}"


def _margins(z: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per row: distance to the nearest other-class row minus distance to the nearest same-class row, and the class
    of that nearest other-class row."""
    from sklearn.neighbors import NearestNeighbors

    n = len(y)
    same = np.full(n, np.inf)
    other = np.full(n, np.inf)
    other_class = np.empty(n, dtype=object)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        nn = NearestNeighbors(n_neighbors=min(2, len(rows))).fit(z[rows])
        d, _ = nn.kneighbors(z[rows])
        same[rows] = d[:, -1] if len(rows) > 1 else np.inf
        rest = np.flatnonzero(y != c)
        d1, _ = nn.kneighbors(z[rest], n_neighbors=1)
        closer = d1[:, 0] < other[rest]
        other[rest[closer]] = d1[closer, 0]
        other_class[rest[closer]] = c
    return other - same, other_class


def thin_flips(t: Table, seed: int):
    """One low-margin row per k-means cluster, relabelled to the class of its nearest other-class row."""
    from sklearn.cluster import KMeans

    data = t.train.copy()
    y = data[t.label].to_numpy()
    z = standardized(data, t.numeric)
    k = int(np.clip(len(data) // 100, 5, 20))
    cl = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(z)
    margin, target = _margins(z, y)
    rows = []
    for c in range(k):
        members = np.flatnonzero(cl == c)
        if len(members):
            rows.append(int(members[np.argmin(margin[members])]))
    for r in rows:
        data.at[r, t.label] = target[r]
    truth = np.zeros(len(data), dtype=bool)
    truth[rows] = True
    return data, truth, f"{len(rows)} low-margin rows, one per k-means cluster (k={k}), relabelled to the neighbouring class"


# ---------------------------------------------------------------------------------------------------------------
# backdoors


def backdoor(t: Table, seed: int, in_range: bool, frac: float = 0.03, n_trigger: int = 3):
    rng = np.random.default_rng(seed)
    a, b = classes_by_size(t)[:2]
    src = t.train[t.train[t.label] == a]
    m = min(_count(len(t.train), frac), len(src))
    copies = src.iloc[rng.choice(len(src), size=m, replace=False)].copy()
    cols = _trigger_columns(t, rng, n_trigger)
    desc = []
    for c in cols:
        x = t.train[c].astype("float64").to_numpy(na_value=np.nan)
        x = x[np.isfinite(x)]
        if in_range:
            v = float(np.quantile(x, 0.9))
        else:
            iqr = float(np.quantile(x, 0.75) - np.quantile(x, 0.25)) or float(np.std(x)) or 1.0
            v = float(np.max(x)) + 3.0 * iqr
        copies[c] = _cast_like(t.train[c], v)
        desc.append(f"{c}={_cast_like(t.train[c], v):.4g}")
    copies[t.label] = b
    data = pd.concat([t.train, copies], ignore_index=True)
    truth = np.r_[np.zeros(len(t.train), dtype=bool), np.ones(m, dtype=bool)]
    kind = "in-range" if in_range else "out-of-range"
    return data, truth, f"{m} copies of {a} rows with {kind} trigger {', '.join(desc)}, relabelled {b}"


def blended_backdoor(t: Table, seed: int, frac: float = 0.02, cover_frac: float = 0.01):
    """Trigger on half of four trigger columns (in range), plus cover rows carrying it under their own label."""
    rng = np.random.default_rng(seed)
    a, b = classes_by_size(t)[:2]
    src = t.train[t.train[t.label] == a]
    cols = _trigger_columns(t, rng, 4)
    cols = cols[: max(1, len(cols) // 2)]
    m = min(_count(len(t.train), frac), len(src))
    mc = min(_count(len(t.train), cover_frac), len(src))
    picks = rng.choice(len(src), size=m + mc, replace=len(src) < m + mc)
    rows = src.iloc[picks].copy()
    for c in cols:
        x = t.train[c].astype("float64").to_numpy(na_value=np.nan)
        v = float(np.quantile(x[np.isfinite(x)], 0.8))
        rows[c] = _cast_like(t.train[c], v)
    poison, cover = rows.iloc[:m].copy(), rows.iloc[m:].copy()
    poison[t.label] = b
    data = pd.concat([t.train, poison, cover], ignore_index=True)
    truth = np.r_[np.zeros(len(t.train), dtype=bool), np.ones(m, dtype=bool), np.zeros(mc, dtype=bool)]
    return data, truth, f"{m} {a}->{b} copies with a blended trigger on {cols}, {mc} cover rows labelled {a}"


# ---------------------------------------------------------------------------------------------------------------
# corruption and duplicates


def corrupted_cells(t: Table, seed: int, frac: float = 0.01):
    rng = np.random.default_rng(seed)
    data = t.train.copy()
    n = len(data)
    floats = [c for c in t.numeric if pd.api.types.is_float_dtype(data[c])]
    nonneg = [c for c in t.numeric if data[c].min() >= 0 and data[c].max() > 0]
    kinds = []
    if floats:
        kinds += ["nan", "+inf", "-inf"]
    kinds += ["x1000"]
    if nonneg:
        kinds += ["negative"]
    if t.categorical:
        kinds += ["unknown category"]
    rows = rng.choice(n, size=_count(n, frac, minimum=len(kinds)), replace=False)
    notes = {}
    cells = {}
    for i, r in enumerate(rows):
        kind = kinds[i % len(kinds)]
        if kind in ("nan", "+inf", "-inf"):
            c = floats[int(rng.integers(len(floats)))]
            data.at[r, c] = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}[kind]
        elif kind == "x1000":
            c = t.numeric[int(rng.integers(len(t.numeric)))]
            v = data.at[r, c]
            base = float(data[c].abs().max()) if pd.isna(v) or v == 0 else float(v)
            data.at[r, c] = _cast_like(data[c], base * 1000.0)
        elif kind == "negative":
            c = nonneg[int(rng.integers(len(nonneg)))]
            v = data.at[r, c]
            mag = float(data[c].max()) if pd.isna(v) or v <= 0 else float(v)
            data.at[r, c] = _cast_like(data[c], -mag)
        else:
            c = t.categorical[int(rng.integers(len(t.categorical)))]
            data.at[r, c] = "??corrupt??"
        notes[kind] = notes.get(kind, 0) + 1
        cells[int(r)] = c
    truth = np.zeros(n, dtype=bool)
    truth[rows] = True
    return data, truth, ", ".join(f"{v} {k}" for k, v in notes.items()), cells


def conflicting_duplicates(t: Table, seed: int, near: bool, frac: float = 0.01):
    rng = np.random.default_rng(seed)
    n = len(t.train)
    m = _count(n, frac)
    src = t.train.iloc[rng.choice(n, size=m, replace=False)].copy()
    copies = _jitter(t, src, rng) if near else src.copy()
    classes = classes_by_size(t)
    copies[t.label] = [_other_label(rng, classes, v) for v in src[t.label]]
    data = pd.concat([t.train, copies], ignore_index=True)
    truth = np.r_[np.zeros(n, dtype=bool), np.ones(m, dtype=bool)]
    kind = "near" if near else "exact"
    return data, truth, f"{m} {kind} copies of rows under another label"


def near_clones(t: Table, seed: int, sources: int = 5, copies: int = 3):
    rng = np.random.default_rng(seed)
    n = len(t.train)
    src = t.train.iloc[rng.choice(n, size=sources, replace=False)]
    classes = classes_by_size(t)
    parts = []
    for _, row in src.iterrows():
        rep = pd.DataFrame([row] * copies).reset_index(drop=True).astype(t.train.dtypes.to_dict())
        rep = _jitter(t, rep, rng)
        rep[t.label] = _other_label(rng, classes, row[t.label])
        parts.append(rep)
    clones = pd.concat(parts, ignore_index=True)
    data = pd.concat([t.train, clones], ignore_index=True)
    truth = np.r_[np.zeros(n, dtype=bool), np.ones(len(clones), dtype=bool)]
    return data, truth, f"{copies} near clones of each of {sources} rows under another label"


# ---------------------------------------------------------------------------------------------------------------

ATTACKS: Dict[str, Callable] = {
    "flip random 5%": lambda t, s: random_flips(t, s, 0.05),
    "flip random 20%": lambda t, s: random_flips(t, s, 0.20),
    "flip a->b random": lambda t, s: targeted_flips(t, s, boundary=False),
    "flip a->b boundary": lambda t, s: targeted_flips(t, s, boundary=True),
    "flip cluster 3%": cluster_flip,
    "backdoor out-of-range": lambda t, s: backdoor(t, s, in_range=False),
    "backdoor in-range": lambda t, s: backdoor(t, s, in_range=True),
    "corrupted cells 1%": corrupted_cells,
    "duplicates exact": lambda t, s: conflicting_duplicates(t, s, near=False),
    "duplicates near": lambda t, s: conflicting_duplicates(t, s, near=True),
    "evasive: flip random 0.3%": lambda t, s: random_flips(t, s, 0.003),
    "evasive: backdoor in-range 0.5%": lambda t, s: backdoor(t, s, in_range=True, frac=0.005),
    "evasive: blended trigger + cover": blended_backdoor,
    "evasive: thin flips": thin_flips,
    "evasive: near clones": near_clones,
}


def seed_of(attack: str) -> int:
    """The benchmark's seed for an attack: its place in `ATTACKS` (from 1), whichever attacks a run selects, so that
    `run.py --attacks X` builds the same poisoned table as the full run."""
    return list(ATTACKS).index(attack) + 1


def make(t: Table, attack: str, seed: int) -> Case:
    data, truth, note, *cells = ATTACKS[attack](t, seed)
    return _finish(t, attack, data, truth, seed, note, cells[0] if cells else None)


def clean_twin(t: Table) -> Case:
    return Case(t.name, "clean twin", t.train.copy(), np.zeros(len(t.train), dtype=bool), "no attack")
