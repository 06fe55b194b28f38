"""Scan a Spark DataFrame for poisoning: fit on the driver, score every partition with ``mapInArrow`` on the
executors, merge the partitions' states on the driver.

    >>> import poisonscan.spark
    >>> df = spark.read.parquet("s3://bucket/train/")
    >>> report = poisonscan.spark.scan(df, reference=trusted_table, label="label", id="id", split=True)
    >>> report.raise_for_status()
    >>> report.clean.write.parquet("s3://bucket/train_clean/")
    >>> report.scores.write.parquet("s3://bucket/train_scores/")

Needs ``pip install poisonscan[spark]`` (and poisonscan installed where the executors' Python runs). The fit is sent
to the executors as bytes in the task closure and read once per Python worker. A partition is a Spark partition; the
partitions' states (report JSON and row digests) come back as binary rows and are merged in partition order, which is
the DataFrame's row order for data that was read and not shuffled.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence, Union

import pyarrow as pa

from . import FittedScanner
from . import _partitioned as _p

__all__ = ["scan"]

_PROBE_ROWS = 64


def _first_rows(df: Any, n: int) -> pa.Table:
    head = df.limit(n)
    if hasattr(head, "toArrow"):
        return head.toArrow()
    return pa.Table.from_pandas(head.toPandas(), preserve_index=False)


def scan(
    df: Any,
    *,
    reference: Any = None,
    fitted: Optional[FittedScanner] = None,
    label: Optional[str] = None,
    id: Optional[str] = None,
    features: Union[None, str, Sequence[str]] = None,
    embedding: Optional[str] = None,
    policy: Any = None,
    split: bool = False,
    **options: Any,
) -> _p.PartitionedReport:
    """Scan a ``pyspark.sql.DataFrame`` and return a :class:`poisonscan._partitioned.PartitionedReport`.

    Options as :func:`poisonscan.ray.scan`. ``report.scores`` (and, with ``split=True``, ``report.clean`` and
    ``report.quarantine``) are DataFrames; the scored partitions are cached once and the state rows collected.
    """
    from pyspark import TaskContext
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    job = _p.Job(fitted, reference, label, id, features, embedding, policy, options)
    sample = _first_rows(df, _PROBE_ROWS)
    schema = job.schema(sample, split)
    data_schema = sample.schema

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        table = pa.Table.from_batches(list(batches), schema=data_schema)
        key = f"{TaskContext.get().partitionId():010d}"
        out = job.score(table, schema, key=key)
        yield from out.to_batches()

    scored = df.mapInArrow(score, from_arrow_schema(schema)).cache()
    rows = scored.filter(F.col(_p.REPORT).isNotNull()).select(*_p.STATE_COLUMNS).collect()
    states = sorted((r[_p.PART], r[_p.REPORT], bytes(r[_p.DIGESTS])) for r in rows)
    merged, starts = job.merge(states)

    scores_schema = pa.schema([f for f in schema if f.name not in (_p.DATA, *_p.STATE_COLUMNS)])

    def fix_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield from _p.score_rows(pa.Table.from_batches([b]), starts).to_batches()

    scores = scored.mapInArrow(fix_rows, from_arrow_schema(scores_schema))
    clean = quarantine = None
    if split:
        data_rows = scored.filter(F.col(_p.REPORT).isNull())
        clean = data_rows.filter(~F.col("flagged")).select(f"{_p.DATA}.*")
        quarantine = data_rows.filter(F.col("flagged")).select(f"{_p.DATA}.*")
    return _p.PartitionedReport(merged, scores, clean, quarantine)
