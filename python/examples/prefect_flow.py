"""A Prefect flow that gates training data with poisonscan: the scan runs as a task, the report is attached as a
markdown artifact (summary, checks, the HTML report's path), and a failing verdict fails the flow run.

    poisonscan_gate("train.parquet", "reference.parquet", label="label", id="id", report_dir="reports/")
"""

import os
from typing import Any, Dict, Optional

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

import poisonscan


@task(name="poisonscan-scan", retries=0)
def scan_task(data: str, reference: Optional[str], label: str, id: Optional[str], report_dir: Optional[str]) -> Dict[str, Any]:
    report = poisonscan.scan(data, label=label, id=id, reference=reference)
    lines = [f"**{report.verdict.upper()}**: {report.summary['summary']}", "", "| check | status | count |", "|---|---|---|"]
    lines += [f"| {k} | {c['status']} | {c['count']} |" for k, c in report.checks.items()]
    if report_dir is not None:
        os.makedirs(report_dir, exist_ok=True)
        html = os.path.join(report_dir, "poisonscan.html")
        report.write_html(html)
        lines += ["", f"HTML report: `{html}`"]
    create_markdown_artifact(key="poisonscan-report", markdown="\n".join(lines), description="poisonscan verdict")
    report.raise_for_status()  # PoisoningDetected fails the task, and with it the flow run
    return {"verdict": report.verdict, "summary": report.summary["summary"]}


@flow(name="poisonscan-gate")
def poisonscan_gate(data: str, reference: Optional[str], label: str, id: Optional[str] = None,
                    report_dir: Optional[str] = None) -> Dict[str, Any]:
    return scan_task(data, reference, label, id, report_dir)
