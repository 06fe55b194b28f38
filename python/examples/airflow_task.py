"""An Airflow task that gates training data with poisonscan: a plain Python callable for ``PythonOperator`` (or
``@task``). It pushes the summary to XCom, writes the JSON and HTML reports, and fails the task on a failing verdict.

    from airflow.operators.python import PythonOperator
    gate = PythonOperator(
        task_id="poisonscan_gate",
        python_callable=poisonscan_gate,
        op_kwargs={"data": "s3-mounted/train.parquet", "reference": "trusted/reference.parquet",
                   "label": "label", "id": "id", "report_dir": "/reports/{{ ds }}"},
    )
    gate >> train_model
"""

import os
from typing import Any, Dict, Optional

import poisonscan


def poisonscan_gate(
    data: str,
    reference: Optional[str],
    label: str,
    id: Optional[str] = None,
    report_dir: Optional[str] = None,
    ti: Any = None,
    **context: Any,
) -> Dict[str, Any]:
    report = poisonscan.scan(data, label=label, id=id, reference=reference)
    summary: Dict[str, Any] = {
        "verdict": report.verdict,
        "summary": report.summary["summary"],
        "rows": report.summary["rows"],
        "flagged": report.summary["flagged"],
        "fingerprint": report.summary["fingerprint"]["lthash"],
    }
    if report_dir is not None:
        os.makedirs(report_dir, exist_ok=True)
        summary["report_json"] = os.path.join(report_dir, "poisonscan.json")
        summary["report_html"] = os.path.join(report_dir, "poisonscan.html")
        report.write_json(summary["report_json"])
        report.write_html(summary["report_html"])
    if ti is not None:
        ti.xcom_push(key="poisonscan", value=summary)
    if not report.passed:
        try:  # fail without retries: the data will not get better by trying again
            from airflow.exceptions import AirflowFailException as Fail
        except ImportError:
            Fail = poisonscan.PoisoningDetected
        raise Fail(summary["summary"])
    return summary
