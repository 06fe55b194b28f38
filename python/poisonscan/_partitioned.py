"""What the engine integrations (:mod:`poisonscan.ray`, :mod:`poisonscan.spark`) share: score one partition with a
fitted scanner on a worker, and merge the partitions' states on the driver.

A worker returns, for its partition, one Arrow table with a fixed schema: the partition's score rows (the columns of
``Report.scores``; ``row`` is made global after the merge) and one *state row* that carries the partition's key, its
report (JSON) and its row digests (32 bytes per row); every row carries the partition's key. The driver collects
only the state rows, folds them in dataset order with the native ``PartitionMerger`` (exact fingerprint and Merkle root, summed check counts, the policy
re-evaluated on the totals) and returns a :class:`PartitionedReport`; the score rows stay in the engine.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import pyarrow as pa

from . import ConfigError, FittedScanner, Report, _data_arg, _native, _policy_toml, _raise_for_status, fit

PART = "__ps_part"
REPORT = "__ps_report"
DIGESTS = "__ps_digests"
DATA = "__ps_data"
STATE_COLUMNS = (PART, REPORT, DIGESTS)

# Options a partition scan accepts (the rest of `scan`'s options describe a whole dataset: a baseline diff needs every
# row, outputs are written by the engine's own sinks).
SCAN_OPTIONS = ("k", "outliers", "label_flips", "backdoors", "batch_size", "allow_widening", "key")

_cache_lock = threading.Lock()
_fits: Dict[str, FittedScanner] = {}


def fitted_bytes(fitted: FittedScanner) -> Tuple[bytes, str]:
    """The fit as it travels to the workers: the file's bytes and its hash."""
    return fitted._native._to_bytes(), fitted.hash


def load_fitted(blob: bytes, fit_hash: str) -> FittedScanner:
    """The fit on a worker, read once per process (the file is checked against its hash when read)."""
    with _cache_lock:
        f = _fits.get(fit_hash)
        if f is None:
            f = FittedScanner(_native.FittedScanner._from_bytes(blob))
            if f.hash != fit_hash:
                raise ConfigError(f"the fitted scanner sent to this worker has hash {f.hash}, expected {fit_hash}")
            _fits.clear()
            _fits[fit_hash] = f
        return f


def resolve_fit(
    fitted: Optional[FittedScanner],
    reference: Any,
    label: Optional[str],
    id: Optional[str],
    features: Union[None, str, Sequence[str]],
    embedding: Optional[str],
) -> FittedScanner:
    """The fit a distributed scan uses: ``fitted`` as given, else fitted on the driver from ``reference``."""
    if fitted is not None and reference is not None:
        raise ConfigError("give one of reference or fitted, not both")
    if fitted is not None:
        if any(x is not None for x in (label, id, features, embedding)):
            raise ConfigError("label, id, features and embedding come from the fitted scanner: do not give them with fitted")
        return fitted
    if reference is None:
        raise ConfigError(
            "a distributed scan scores every partition against one fit: give reference= (trusted data, fitted on the "
            "driver) or fitted= (a poisonscan.FittedScanner)"
        )
    return fit(reference, label=label, id=id, features=features, embedding=embedding)


class Job:
    """What a distributed scan sends to every partition: the fit (as bytes, with its hash), the scan options and the
    policy (TOML text and origin)."""

    def __init__(self, fitted: Optional[FittedScanner], reference: Any, label: Optional[str], id: Optional[str],
                 features: Union[None, str, Sequence[str]], embedding: Optional[str], policy: Any,
                 options: Mapping[str, Any]) -> None:
        self.options = scan_options(options)
        self.fit = resolve_fit(fitted, reference, label, id, features, embedding)
        self.policy = _policy_toml(policy)
        self.blob, self.fit_hash = fitted_bytes(self.fit)

    def __getstate__(self) -> Dict[str, Any]:
        # What travels to the workers: the fit as bytes, never the driver's native object.
        state = dict(self.__dict__)
        state["fit"] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)

    def schema(self, sample: pa.Table, split: bool) -> pa.Schema:
        return probe_schema(sample, self.fit, self.options, split)

    def score(self, table: pa.Table, schema: pa.Schema, key: Optional[str] = None, blob: Optional[bytes] = None) -> pa.Table:
        return score_partition(table, self.blob if blob is None else blob, self.fit_hash, self.options, self.policy,
                               schema, key=key)

    def merge(self, states: Sequence[Tuple[str, str, bytes]]) -> Tuple[Dict[str, Any], Dict[str, int]]:
        return merge_states(states, self.policy)


def scan_options(options: Mapping[str, Any]) -> Dict[str, Any]:
    bad = sorted(set(options) - set(SCAN_OPTIONS))
    if bad:
        raise ConfigError(
            f"{', '.join(bad)}: not an option of a distributed scan (it takes {', '.join(SCAN_OPTIONS)}, policy, "
            "reference or fitted, and split)"
        )
    return dict(options)


def output_schema(scores: pa.Schema, data: Optional[pa.Schema]) -> pa.Schema:
    """The schema every partition returns: the score columns (nullable; ``row`` as int64), the data as one struct
    column when the split is wanted, and the state columns."""
    fields = []
    for f in scores:
        t = pa.int64() if f.name == "row" else f.type
        fields.append(pa.field(f.name, t, nullable=True))
    if data is not None:
        fields.append(pa.field(DATA, pa.struct([f.with_nullable(True) for f in data]), nullable=True))
    fields += [pa.field(PART, pa.string()), pa.field(REPORT, pa.string()), pa.field(DIGESTS, pa.binary())]
    return pa.schema(fields)


def probe_schema(sample: pa.Table, fitted: FittedScanner, options: Mapping[str, Any], split: bool) -> pa.Schema:
    """The output schema, from scanning the first rows of the data on the driver (an engine needs it up front)."""
    scores = scan_with_fit(sample, fitted, (None, None), options).scores
    return output_schema(scores.schema, sample.schema if split else None)


def score_partition(
    table: pa.Table,
    blob: bytes,
    fit_hash: str,
    options: Mapping[str, Any],
    policy: Tuple[Optional[str], Optional[str]],
    schema: pa.Schema,
    key: Optional[str] = None,
) -> pa.Table:
    """Scan one partition on a worker: its score rows and one state row, in ``schema``. ``key`` names the partition
    (an engine's partition number, so that a recomputed partition has the same key; else a random one)."""
    if table.num_rows == 0:
        # An empty partition (engines make them) adds nothing: no rows, no state. An empty dataset still fails: no
        # state is merged and the merged report of no rows never passes.
        return schema.empty_table()
    native = scan_with_fit(table, load_fitted(blob, fit_hash), policy, options)
    scores = native.scores
    n = scores.num_rows
    key = key if key is not None else uuid.uuid4().hex
    columns = []
    for f in schema:
        if f.name == PART:
            columns.append(pa.array([key] * (n + 1), pa.string()))
        elif f.name == REPORT:
            columns.append(pa.array([None] * n + [native.to_json()], pa.string()))
        elif f.name == DIGESTS:
            columns.append(pa.array([None] * n + [native._digests()], pa.binary()))
        elif f.name == DATA:
            struct = pa.StructArray.from_arrays([c.combine_chunks() for c in table.columns], fields=list(f.type))
            columns.append(pa.concat_arrays([struct, pa.nulls(1, f.type)]))
        elif f.name in scores.column_names:
            col = scores.column(f.name).cast(f.type).combine_chunks()
            columns.append(pa.concat_arrays([col, pa.nulls(1, f.type)]))
        else:  # a column this partition's scan did not produce
            columns.append(pa.nulls(n + 1, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def state_rows(table: pa.Table) -> pa.Table:
    """The state rows of a partition's output."""
    import pyarrow.compute as pc

    return table.filter(pc.is_valid(table.column(REPORT))).select(list(STATE_COLUMNS))


def score_rows(table: pa.Table, starts: Mapping[str, int]) -> pa.Table:
    """The score rows, ``row`` made global (the partition's first row in the data plus the row within it), without
    the state and data columns. Every row carries its partition's key, so an engine may split or join blocks."""
    import pyarrow.compute as pc

    scores = table.filter(pc.is_null(table.column(REPORT)))
    if scores.num_rows:
        keys = scores.column(PART)
        seen = pc.unique(keys)
        offsets = pa.array([starts[k] for k in seen.to_pylist()], pa.int64())
        shift = pc.take(offsets, pc.index_in(keys, value_set=seen))
        scores = scores.set_column(scores.schema.get_field_index("row"), "row", pc.add(scores.column("row"), shift))
    return scores.drop_columns([c for c in (DATA, *STATE_COLUMNS) if c in scores.column_names])


def split_rows(table: pa.Table, flagged: bool) -> pa.Table:
    """The data rows that were (not) flagged, with their own columns."""
    import pyarrow.compute as pc

    rows = table.filter(pc.is_null(table.column(REPORT)))
    mask = rows.column("flagged") if flagged else pc.invert(rows.column("flagged"))
    data = rows.filter(mask).column(DATA).combine_chunks()
    return pa.Table.from_arrays(data.flatten(), schema=pa.schema(list(data.type)))


class PartitionedReport:
    """The merged result of a scan run on an engine: the same verdict, checks and fingerprint a local scan of the same
    rows gives (see ``docs/scale.md`` for what is exact), with the scores left in the engine."""

    def __init__(self, merged: Dict[str, Any], scores: Any, clean: Any = None, quarantine: Any = None) -> None:
        self.summary = merged
        self.scores = scores
        self._clean = clean
        self._quarantine = quarantine

    @property
    def verdict(self) -> str:
        return self.summary["verdict"]

    @property
    def passed(self) -> bool:
        return self.verdict != "fail"

    @property
    def rows(self) -> int:
        return self.summary["rows"]

    @property
    def flagged_count(self) -> int:
        return self.summary["flagged"]

    @property
    def checks(self) -> Dict[str, Dict[str, Any]]:
        return dict(self.summary["checks"])

    @property
    def not_run(self) -> Dict[str, str]:
        return {k: c.get("reason", "") for k, c in self.checks.items() if c.get("run") == "skipped"}

    @property
    def fingerprint(self) -> Dict[str, Any]:
        return dict(self.summary["fingerprint"])

    @property
    def partitions(self) -> List[Dict[str, Any]]:
        return list(self.summary["partitions"])

    @property
    def state_bytes(self) -> int:
        """Bytes of partition state the driver received: the partitions' reports and row digests."""
        return int(self.summary.get("state_bytes", 0))

    @property
    def summary_line(self) -> str:
        return self.summary["summary"]

    @property
    def clean(self) -> Any:
        """The rows that were not flagged (an engine dataset / DataFrame), when the scan ran with ``split=True``."""
        if self._clean is None:
            raise ConfigError("scan with split=True to get the clean and quarantined rows")
        return self._clean

    @property
    def quarantine(self) -> Any:
        """The flagged rows, when the scan ran with ``split=True``."""
        if self._quarantine is None:
            raise ConfigError("scan with split=True to get the clean and quarantined rows")
        return self._quarantine

    def raise_for_status(self, complete: bool = False) -> "PartitionedReport":
        """As :meth:`poisonscan.Report.raise_for_status`."""
        _raise_for_status(self, self.summary_line, complete)
        return self

    def to_json(self) -> str:
        return json.dumps(self.summary, indent=2)

    def write_json(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Write the merged report to ``path`` atomically."""
        _native._write_text(os.fspath(path), self.to_json())

    def __repr__(self) -> str:
        return f"<poisonscan.PartitionedReport {self.summary_line}>"


class ChunkedReport(PartitionedReport):
    """The merged result of a scan in chunks (``poisonscan.scan(..., chunk_rows=N)``): verdict, checks, fingerprint
    and one line per chunk (``partitions``) as a :class:`PartitionedReport`, plus the notes and the highest-scored
    flagged rows of the whole data (``sample``). The scores and the split rows were written to the files given; their
    paths are in ``files``."""

    def __init__(self, merged: Dict[str, Any], files: Dict[str, Any]) -> None:
        super().__init__(merged, files.get("scores"), files.get("clean"), files.get("quarantine"))
        self.files = files

    @property
    def chunk_rows(self) -> int:
        return int(self.summary["chunk_rows"])

    @property
    def notes(self) -> List[str]:
        return list(self.summary.get("notes", []))

    @property
    def sample(self) -> List[Dict[str, Any]]:
        return list(self.summary.get("sample", []))

    @property
    def clean(self) -> Any:
        """Path of the kept rows, when ``clean=`` was given."""
        if self._clean is None:
            raise ConfigError("scan with clean=PATH to write the kept rows")
        return self._clean

    @property
    def quarantine(self) -> Any:
        """Path of the flagged rows, when ``quarantine=`` was given."""
        if self._quarantine is None:
            raise ConfigError("scan with quarantine=PATH to write the flagged rows")
        return self._quarantine

    def __repr__(self) -> str:
        return f"<poisonscan.ChunkedReport {self.summary_line}>"


def merge_states(states: Sequence[Tuple[str, str, bytes]], policy: Tuple[Optional[str], Optional[str]]) -> Tuple[Dict[str, Any], Dict[str, int]]:
    """Fold the partitions' states, in dataset order: the merged report (with ``state_bytes``, the bytes received)
    and each partition's first row."""
    merger = _native.PartitionMerger(policy[0], policy[1])
    for _, report_json, digests in states:
        merger.add(report_json, digests)
    merged = json.loads(merger.finish())
    starts = {key: p["start"] for (key, _, _), p in zip(states, merged["partitions"])}
    merged["state_bytes"] = sum(len(r.encode()) + len(d) for _, r, d in states)
    return merged, starts


def scan_with_fit(table: Any, fitted: FittedScanner, policy: Tuple[Optional[str], Optional[str]],
                  options: Mapping[str, Any]) -> Any:
    """The native scan of one partition or batch against a fit (``policy``: TOML text and origin)."""
    return _native._scan(table, reference=None, policy_toml=policy[0], policy_origin=policy[1],
                         fitted=fitted._native, **options)



class Monitor:
    """Score batches as they arrive (at ingestion, or at inference time) against one fit, and keep the merged state
    of everything scored so far: drift, findings and the fingerprint of all rows in arrival order.

        >>> monitor = poisonscan.Monitor(poisonscan.FittedScanner.load("scanner.psfit"))
        >>> for batch in batches:
        ...     report = monitor.score(batch)       # this batch's Report (its scores, reasons, verdict)
        ...     print(monitor.so_far.summary_line)  # all batches so far, merged
    """

    def __init__(self, fitted: FittedScanner, *, policy: Any = None, **options: Any) -> None:
        if not isinstance(fitted, FittedScanner):
            raise ConfigError("Monitor: expected a poisonscan.FittedScanner (poisonscan.fit or FittedScanner.load)")
        self._fitted = fitted
        self._options = scan_options(options)
        self._policy = _policy_toml(policy)
        self._merger = _native.PartitionMerger(self._policy[0], self._policy[1])

    def score(self, batch: Any) -> Any:
        """Scan ``batch`` (any input :func:`poisonscan.scan` takes) with the fit, add it to the running state and
        return its :class:`poisonscan.Report`. An empty batch raises ``InputError`` and leaves the state unchanged."""
        native = scan_with_fit(_data_arg(batch, "batch"), self._fitted, self._policy, self._options)
        self._merger.add(native.to_json(), native._digests())
        return Report(native)

    @property
    def batches(self) -> int:
        """Batches scored so far."""
        return self._merger.partitions

    @property
    def so_far(self) -> PartitionedReport:
        """The merged report of every batch scored so far (a batch is a partition; scores stay with each batch's
        report). Before any batch it has no rows and fails."""
        return PartitionedReport(json.loads(self._merger.snapshot()), None)

    def __repr__(self) -> str:
        return f"<poisonscan.Monitor {self.batches} batches: {self.so_far.summary_line}>"
