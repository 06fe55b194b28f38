"""Scan a Ray Dataset for poisoning: fit on the driver, score every block on the workers, merge on the driver.

    >>> import ray, poisonscan.ray
    >>> ds = ray.data.read_parquet("s3://bucket/train/")
    >>> report = poisonscan.ray.scan(ds, reference=trusted_table, label="label", id="id", split=True)
    >>> report.raise_for_status()
    >>> report.clean.write_parquet("s3://bucket/train_clean/")       # Ray's own sinks
    >>> report.scores.write_parquet("s3://bucket/train_scores/")

Needs ``pip install poisonscan[ray]``. The fit (a :class:`poisonscan.FittedScanner`) is sent to the workers as bytes
and read once per worker process. Blocks are scored with ``map_batches(batch_format="pyarrow", batch_size=None)``, so
a partition is a block; order is preserved (``execution_options.preserve_order`` of the dataset's context, during
the scan) so that the merged Merkle root is the one a local scan of the same rows gives.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import pyarrow as pa

from . import FittedScanner
from . import _partitioned as _p

__all__ = ["scan"]

_PROBE_ROWS = 64


def scan(
    dataset: Any,
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
    """Scan a ``ray.data.Dataset`` and return a :class:`poisonscan._partitioned.PartitionedReport`.

    ``reference``: trusted data (any input :func:`poisonscan.fit` takes), fitted on the driver; or ``fitted``: a
    :class:`poisonscan.FittedScanner`. ``policy``: as in :func:`poisonscan.scan`. ``split=True`` also returns the
    clean and quarantined rows as datasets (``report.clean``, ``report.quarantine``). Other options: ``k``,
    ``outliers``, ``label_flips``, ``backdoors``, ``batch_size``, ``allow_widening``, ``key``.

    ``report.scores`` is a Ray Dataset with the columns of ``Report.scores`` (``row`` counts from the first row of the
    dataset). The scored blocks are materialized once (in Ray's object store) and the state rows collected from them.
    """
    import ray
    from ray.data import DataContext

    job = _p.Job(fitted, reference, label, id, features, embedding, policy, options)

    # A dataset carries the context it was made with (its transformations share it): ordered execution is set
    # there, for this scan only.
    ctx = getattr(dataset, "context", None) or DataContext.get_current()
    keep_order = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        sample = _first_rows(dataset, _PROBE_ROWS)
        schema = job.schema(sample, split)
        blob_ref = ray.put(job.blob)
        job.blob = b""  # the workers read the fit from the object store

        def score_block(batch: pa.Table) -> pa.Table:
            return job.score(batch, schema, blob=ray.get(blob_ref))

        scored = dataset.map_batches(score_block, batch_format="pyarrow", batch_size=None, zero_copy_batch=True).materialize()
        states_ds = scored.map_batches(_p.state_rows, batch_format="pyarrow", batch_size=None)
        states = [
            (r[_p.PART], r[_p.REPORT], bytes(r[_p.DIGESTS]))
            for b in states_ds.iter_batches(batch_format="pyarrow", batch_size=None)
            for r in b.to_pylist()
        ]
        merged, starts = job.merge(states)
    finally:
        ctx.execution_options.preserve_order = keep_order

    scores = scored.map_batches(_p.score_rows, fn_kwargs={"starts": starts}, batch_format="pyarrow", batch_size=None)
    clean = quarantine = None
    if split:
        clean = scored.map_batches(_p.split_rows, fn_kwargs={"flagged": False}, batch_format="pyarrow", batch_size=None)
        quarantine = scored.map_batches(_p.split_rows, fn_kwargs={"flagged": True}, batch_format="pyarrow", batch_size=None)
    return _p.PartitionedReport(merged, scores, clean, quarantine)


def _first_rows(dataset: Any, n: int) -> pa.Table:
    """Up to ``n`` rows from the start of the dataset, as a pyarrow Table (with the dataset's schema)."""
    batches = list(dataset.limit(n).iter_batches(batch_format="pyarrow", batch_size=None))
    if batches:
        return pa.concat_tables(batches)
    schema = dataset.schema()
    arrow = getattr(schema, "base_schema", schema)
    return pa.Table.from_batches([], schema=arrow)
