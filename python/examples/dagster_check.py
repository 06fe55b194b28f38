"""A Dagster asset check that gates a training-data asset with poisonscan. The check is blocking: a failing verdict
fails the run (downstream training never materializes) and the report is attached as check metadata.

    defs = dg.Definitions(assets=[training_data], asset_checks=[poisonscan_check(training_data, ...)])
"""

import os
from typing import Any, Optional

import dagster as dg

import poisonscan


def poisonscan_check(
    asset: Any,
    data: str,
    reference: Optional[str],
    label: str,
    id: Optional[str] = None,
    report_dir: Optional[str] = None,
) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name="poisonscan", blocking=True, description="poisoning scan of the training data")
    def check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        report = poisonscan.scan(data, label=label, id=id, reference=reference)
        metadata = {
            "verdict": report.verdict,
            "summary": report.summary["summary"],
            "flagged": report.summary["flagged"],
            "checks": dg.MetadataValue.json(report.checks),
            "fingerprint": report.summary["fingerprint"]["lthash"],
        }
        if report_dir is not None:
            os.makedirs(report_dir, exist_ok=True)
            html = os.path.join(report_dir, "poisonscan.html")
            report.write_html(html)
            metadata["report_html"] = dg.MetadataValue.path(html)
        context.log.info(report.summary["summary"])
        return dg.AssetCheckResult(
            passed=report.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
        )

    return check
