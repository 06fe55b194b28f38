"""A pre-training gate: scan the training data against a trusted reference, refuse to train on poisoned data.

    python pretraining_gate.py TRAIN.parquet REFERENCE.parquet [QUARANTINE.parquet]

Exit code 0 and "training on N rows" when the data passes; exit code 1 with the reasons when it does not (the
flagged rows are written to QUARANTINE when given, so someone can look at them), or when a check could not run.
"""

import sys

import pyarrow.parquet as pq

import poisonscan


def main(train_path: str, reference_path: str, quarantine_path: str = "") -> int:
    data = pq.read_table(train_path)
    reference = pq.read_table(reference_path)
    report = poisonscan.scan(data, label="label", id="id", reference=reference)
    try:
        report.raise_for_status(complete=True)
    except poisonscan.ScanIncomplete as err:
        print(f"refusing to train: {err}")
        return 1
    except poisonscan.PoisoningDetected as err:
        print(f"refusing to train: {err}")
        for finding in report.findings[:5]:
            print(f"  row {finding['row']}: {finding['reasons']}")
        if quarantine_path:
            pq.write_table(report.quarantine(data), quarantine_path)
        return 1
    clean = report.clean(data)
    print(f"training on {clean.num_rows} rows ({report.verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
