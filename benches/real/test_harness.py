"""Tests of the benchmark harness itself: metrics against hand-computed values, attacks against their promises."""

import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import attacks  # noqa: E402
import metrics  # noqa: E402
import realdata  # noqa: E402
import tools  # noqa: E402


def test_precision_at_k_counts_ties_in_expectation():
    truth = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    assert metrics.precision_at_k(np.array([0.9, 0.8, 0.1, 0.1, 0.1, 0.1]), truth) == 1.0
    # one poison on top, then a four-way tie holding the other poison for the one place left: 1 + 1/4
    assert metrics.precision_at_k(np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.1]), truth) == pytest.approx(1.25 / 2)
    # a constant score earns the base rate, never 1.0
    assert metrics.precision_at_k(np.ones(6), truth) == pytest.approx(2 / 6)


def test_roc_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, size=60).astype(float)
    y = rng.random(60) < 0.3
    pos, neg = s[y], s[~y]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert metrics.roc_auc(s, y) == pytest.approx(pairs)


def test_flag_metrics():
    m = metrics.flag_metrics(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    assert (m["precision"], m["recall"], m["flagged_fraction"]) == (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def iris():
    return realdata.load("iris")


def _rows(df):
    return sorted(map(tuple, df.astype(str).to_numpy().tolist()))


def test_split_is_stratified_disjoint_and_typed(iris):
    assert len(iris.train) + len(iris.reference) == 150
    assert iris.reference[iris.label].value_counts().tolist() == [10, 10, 10]
    assert set(iris.numeric) == {"sepal_length", "sepal_width", "petal_length", "petal_width"}
    whole = realdata._normalise(realdata._iris(), "species")
    assert _rows(pd.concat([iris.train, iris.reference])) == _rows(whole)  # a partition of the table
    # position reveals nothing: the training part is not sorted by class
    assert iris.train[iris.label].iloc[:40].nunique() == 3


def test_a_run_of_some_attacks_builds_the_same_cases_as_the_full_run():
    import run

    _, full = run.table_cases("iris", list(attacks.ATTACKS))
    _, some = run.table_cases("iris", ["corrupted cells 1%", "evasive: near clones"])
    for case in some[1:]:
        same = next(c for c in full if c.attack == case.attack)
        assert case.data.equals(same.data) and (case.truth == same.truth).all()


def test_reused_tools_keep_the_date_of_the_run_that_measured_them(tmp_path):
    import json

    import run

    case = {"table": "iris", "attack": "flip random 5%", "rows": 10, "poisons": 1}
    anchors = {"kNN k=10": {"precision_at_k": 0.5}}
    # The anchors were measured on 12-01; a later run (12-05) took them over with --reuse, and was written out.
    earlier = {"date": "2026-12-05", "tools": ["poisonscan", "kNN k=10"], "peak_rss_mib": {},
               "reused": {"from": "x.json", "date": "2026-12-01", "tools": ["kNN k=10"]},
               "cases": [dict(case, tools=dict(anchors, poisonscan={}))]}
    path = tmp_path / "full.json"
    path.write_text(json.dumps(earlier))
    def now():
        return {"date": "2026-12-08", "tools": ["poisonscan"], "peak_rss_mib": {},
                "cases": [dict(case, tools={"poisonscan": {}})]}

    merged = run.merge_earlier(now(), str(path))
    assert merged["reused"]["date"] == "2026-12-01"
    assert merged["cases"][0]["tools"]["kNN k=10"] == {"precision_at_k": 0.5}
    # Tools the earlier run measured itself carry its own date.
    earlier.pop("reused")
    path.write_text(json.dumps(earlier))
    assert run.merge_earlier(now(), str(path))["reused"]["date"] == "2026-12-05"


@pytest.mark.parametrize("attack", list(attacks.ATTACKS))
def test_every_attack_marks_what_it_changed(iris, attack):
    case = attacks.make(iris, attack, seed=3)
    assert len(case.truth) == len(case.data) and case.truth.any()
    assert list(case.data.dtypes) == list(iris.train.dtypes), "real column types are kept"
    again = attacks.make(iris, attack, seed=3)
    pd.testing.assert_frame_equal(case.data, again.data)  # deterministic
    # rows not marked as poison are rows of the clean training part (cover rows included), untouched
    original = set(_rows(iris.train))
    assert all(row in original for row in _rows(case.data[~case.truth]) if "cover" not in case.note)


def test_flips_change_labels_only(iris):
    case = attacks.make(iris, "flip random 5%", seed=1)
    assert _rows(case.data[iris.numeric]) == _rows(iris.train[iris.numeric])
    before = pd.Series(_rows(iris.train)).value_counts()
    after = pd.Series(_rows(case.data)).value_counts()
    changed = int((after - before.reindex(after.index, fill_value=0)).clip(lower=0).sum())
    assert changed == int(case.truth.sum()) == 6


def test_knn_anchor_finds_iris_flips(iris):
    case = attacks.make(iris, "flip random 20%", seed=2)
    res = tools.knn_disagreement(case.data, iris, tools.anchor_matrix(case.data, iris))
    assert metrics.roc_auc(res.scores, case.truth) > 0.85


def test_corrupted_cells_name_each_poisoned_row_and_its_changed_column(iris):
    case = attacks.make(iris, "corrupted cells 1%", seed=4)
    assert sorted(case.cells) == sorted(np.flatnonzero(case.truth).tolist())
    # Each poisoned row differs from every clean training row exactly in the recorded column.
    clean = iris.train.reset_index(drop=True)
    for r, col in case.cells.items():
        row = case.data.iloc[r]
        others = [c for c in iris.train.columns if c != col]
        same = (clean[others] == row[others]).all(axis=1)
        assert same.any(), (r, col)
        v = row[col]
        assert pd.isna(v) or not (clean.loc[same, col] == v).any(), (r, col, v)


def test_cells_named_counts_reasons_that_name_the_column():
    reasons = ["a = 5 is far above", "b is null (no reference)", "c = 1 is far above", ""]
    assert metrics.cells_named(reasons, {0: "a", 1: "b", 2: "a", 3: "d"}) == 0.5
