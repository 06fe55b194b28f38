"""The orchestrator examples in python/examples/ run for real: an Airflow task callable, a Dagster asset check run
in-process, and a Prefect flow. Each fails on the poisoned fixture, passes on its clean twin, and attaches the
report."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

import poisonscan

from conftest import FIXTURES, ROOT

EXAMPLES = ROOT / "python" / "examples"
POISONED = str(FIXTURES / "train_poisoned.parquet")
CLEAN = str(FIXTURES / "train_clean.parquet")
REFERENCE = str(FIXTURES / "train_reference.parquet")


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class FakeTaskInstance:
    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        json.dumps(value)  # XCom values must serialize
        self.xcom[key] = value


def test_airflow_callable_pushes_the_summary_and_fails_the_task(tmp_path):
    gate = load("airflow_task").poisonscan_gate
    ti = FakeTaskInstance()
    with pytest.raises(Exception) as err:
        gate(POISONED, REFERENCE, "label", id="id", report_dir=str(tmp_path / "bad"), ti=ti)
    assert "verdict FAIL" in str(err.value)
    pushed = ti.xcom["poisonscan"]
    assert pushed["verdict"] == "fail" and pushed["flagged"] > 0
    assert Path(pushed["report_html"]).read_text().startswith("<!DOCTYPE html>")
    ti = FakeTaskInstance()
    out = gate(CLEAN, REFERENCE, "label", id="id", ti=ti)
    assert out["verdict"] == "pass" and ti.xcom["poisonscan"] == out


def test_dagster_asset_check_fails_the_run_and_attaches_the_report(tmp_path):
    dg = pytest.importorskip("dagster") if not os.environ.get("CI") else __import__("dagster")
    make_check = load("dagster_check").poisonscan_check

    def run(path):
        @dg.asset(name="training_data")
        def training_data() -> str:
            return path

        @dg.asset(deps=[training_data])
        def model() -> None:
            return None

        check = make_check(training_data, path, REFERENCE, "label", id="id", report_dir=str(tmp_path))
        return dg.materialize([training_data, model, check], raise_on_error=False)

    bad = run(POISONED)
    assert not bad.success
    [evaluation] = bad.get_asset_check_evaluations()
    assert not evaluation.passed
    meta = evaluation.metadata
    assert meta["verdict"].value == "fail"
    assert Path(meta["report_html"].value).exists()
    materialized = {e.asset_key.to_user_string() for e in bad.get_asset_materialization_events()}
    assert "model" not in materialized  # training never ran on the poisoned data
    good = run(CLEAN)
    assert good.success
    assert good.get_asset_check_evaluations()[0].passed


def test_prefect_flow_fails_on_a_failing_verdict_and_keeps_the_report_artifact(tmp_path, monkeypatch):
    if not os.environ.get("CI"):
        pytest.importorskip("prefect")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    from prefect.testing.utilities import prefect_test_harness
    from prefect.artifacts import Artifact

    gate = load("prefect_flow").poisonscan_gate
    with prefect_test_harness():
        bad = gate(POISONED, REFERENCE, "label", id="id", report_dir=str(tmp_path), return_state=True)
        assert bad.is_failed()
        with pytest.raises(poisonscan.PoisoningDetected):
            bad.result()
        artifact = Artifact.get("poisonscan-report")
        assert artifact is not None and "**FAIL**" in artifact.data
        good = gate(CLEAN, REFERENCE, "label", id="id", return_state=True)
        assert good.is_completed() and good.result()["verdict"] == "pass"
