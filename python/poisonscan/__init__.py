"""poisonscan: scan machine-learning training data for poisoning before a model is trained on it.

    >>> import poisonscan
    >>> report = poisonscan.scan(table, label="label", reference=trusted)
    >>> report.raise_for_status()          # raises poisonscan.PoisoningDetected on a failing verdict

``data`` and ``reference`` are any object with ``__arrow_c_stream__`` (pyarrow Table / RecordBatchReader, polars
DataFrame, pandas DataFrame, duckdb relation) or a path to Parquet (file or folder), Arrow IPC or CSV. Streams are
consumed batch by batch; nothing is copied into Python objects. The GIL is released while Rust scans.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _poisonscan as _native
from ._poisonscan import (
    ConfigError,
    FittedScanner as _NativeFitted,
    InputError,
    InternalError,
    LineageError,
    Manifest,
    PoisoningDetected,
    PoisonscanError,
    SchemaError,
    __version__,
)

__all__ = [
    "scan",
    "fit",
    "FittedScanner",
    "profile",
    "lineage",
    "diff",
    "verify",
    "attest",
    "verify_attestation",
    "generate_signing_key",
    "Attestation",
    "Report",
    "Contract",
    "Manifest",
    "Diff",
    "PoisonscanError",
    "SchemaError",
    "InputError",
    "ConfigError",
    "LineageError",
    "PoisoningDetected",
    "ScanIncomplete",
    "InternalError",
    "Monitor",
    "PartitionedReport",
    "ChunkedReport",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]


class ScanIncomplete(PoisonscanError):
    """``Report.raise_for_status(complete=True)`` on a scan in which a check was skipped (``.report``, ``.not_run``)."""


def _raise_for_status(report: Any, summary_line: str, complete: bool) -> None:
    """:class:`PoisoningDetected` on a failing verdict; with ``complete``, :class:`ScanIncomplete` when a check was
    skipped (both carry ``.report``). For a :class:`Report` and a ``PartitionedReport`` alike."""
    if not report.passed:
        err = PoisoningDetected(summary_line)
        err.report = report  # type: ignore[attr-defined]
        raise err
    not_run = report.not_run
    if complete and not_run:
        inc = ScanIncomplete("scan incomplete: " + "; ".join(f"{k}: {why}" for k, why in not_run.items()))
        inc.report = report  # type: ignore[attr-defined]
        inc.not_run = not_run  # type: ignore[attr-defined]
        raise inc


def _data_arg(obj: Any, what: str) -> Any:
    """A path, or an object exposing ``__arrow_c_stream__`` (converting pandas < 2.2 and duckdb when needed)."""
    if isinstance(obj, (str, os.PathLike)):
        return os.fspath(obj)
    if hasattr(obj, "__arrow_c_stream__"):
        return obj
    module = type(obj).__module__ or ""
    if module.startswith("pandas"):
        import pyarrow as pa

        return pa.Table.from_pandas(obj, preserve_index=False)
    if hasattr(obj, "fetch_arrow_reader"):  # duckdb relation
        return obj.fetch_arrow_reader()
    if hasattr(obj, "to_arrow"):
        return obj.to_arrow()
    raise SchemaError(
        f"{what}: expected a path or an object with __arrow_c_stream__ "
        f"(pyarrow, polars, pandas >= 2.2, duckdb), got {type(obj).__name__}"
    )


def _is_duckdb(obj: Any) -> bool:
    return (type(obj).__module__ or "").startswith("duckdb")


def _policy_toml(policy: Union[None, PathLike, Mapping[str, Any]]) -> tuple:
    """TOML text of a policy dict: ``{"require": [...], "<check>": {"warn_if": ..., "error_if": ...}}``."""
    if policy is None:
        return None, None
    if isinstance(policy, Mapping):
        head, tables = [], []
        for check, rule in policy.items():
            if check == "require":
                if isinstance(rule, str) or not isinstance(rule, (list, tuple)):
                    raise ConfigError('policy["require"]: expected a list of check names, e.g. ["label"]')
                head.append(f"require = {json.dumps([str(r) for r in rule])}")
                continue
            if not isinstance(rule, Mapping):
                raise ConfigError(f"policy[{check!r}]: expected a dict like {{'error_if': '> 1%'}}")
            tables.append(f"[{json.dumps(str(check))}]")
            for k, v in rule.items():
                tables.append(f"{json.dumps(str(k))} = {json.dumps(str(v))}")
        return "\n".join(head + tables) + "\n", "<dict>"
    path = os.fspath(policy)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(), path
    except OSError as e:
        raise ConfigError(f"{path}: cannot read policy: {e}") from None


class Contract:
    """A schema contract inferred from trusted data (versioned JSON, hand-editable)."""

    def __init__(self, json_text: str, origin: str = "<contract>") -> None:
        _native._check_contract(json_text)
        self._json = json_text
        self._data: Dict[str, Any] = json.loads(json_text)
        self.origin = origin

    @classmethod
    def load(cls, path: PathLike) -> "Contract":
        p = os.fspath(path)
        try:
            with open(p, encoding="utf-8") as f:
                return cls(f.read(), p)
        except OSError as e:
            raise ConfigError(f"{p}: cannot read contract: {e}") from None

    def save(self, path: PathLike) -> None:
        p = os.fspath(path)
        tmp = p + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self._json)
        os.replace(tmp, p)

    def to_json(self) -> str:
        return self._json

    @property
    def columns(self) -> List[Dict[str, Any]]:
        return list(self._data["columns"])

    @property
    def label(self) -> Optional[str]:
        return self._data.get("label")

    @property
    def classes(self) -> Optional[List[str]]:
        label = self.label
        for c in self._data["columns"]:
            if c["name"] == label and c.get("categories"):
                return [x["value"] for x in c["categories"]]
        return None

    def __repr__(self) -> str:
        return f"<poisonscan.Contract {len(self.columns)} columns, label={self.label!r}>"


class Report:
    """Result of :func:`scan`."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self._summary: Optional[Dict[str, Any]] = None

    @property
    def passed(self) -> bool:
        """True unless the verdict is ``"fail"``."""
        return self._native.passed

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"warn"`` or ``"fail"``."""
        return self._native.verdict

    @property
    def summary(self) -> Dict[str, Any]:
        """The full report (checks, drift, lineage, detectors, timings) as a dict."""
        if self._summary is None:
            self._summary = json.loads(self._native.to_json())
        return self._summary

    @property
    def scores(self) -> Any:
        """One row per input row (``row``, id, ``score``, ``flagged``, ``score_<check>``..., ``reasons``)."""
        return self._native.scores

    @property
    def findings(self) -> List[Dict[str, Any]]:
        """Flagged rows: ``row``, ``id``, ``score``, ``reasons``."""
        return [
            {"row": r, "id": i, "score": s, "reasons": reasons}
            for (r, i, s, reasons) in self._native._findings()
        ]

    @property
    def flagged_mask(self) -> List[bool]:
        return self._native.flagged_mask()

    def to_json(self) -> str:
        return self._native.to_json()

    def write_json(self, path: PathLike) -> None:
        self._native.write_json(os.fspath(path))

    def write_scores(self, path: PathLike) -> None:
        self._native.write_scores(os.fspath(path))

    def to_html(self) -> str:
        """The report as one self-contained HTML page (no network; plots are inline SVG)."""
        return self._native.to_html()

    def write_html(self, path: PathLike) -> None:
        """Write :meth:`to_html` to ``path`` atomically."""
        self._native.write_html(os.fspath(path))

    def audit_events(self) -> List[Dict[str, Any]]:
        """The audit events (Elastic Common Schema): the verdict, then each check that warned or failed."""
        return [json.loads(line) for line in self._native.audit_lines()]

    def append_audit_log(self, path: PathLike) -> None:
        """Append :meth:`audit_events` to ``path`` as JSON lines (created if missing)."""
        self._native.append_audit_log(os.fspath(path))

    def openlineage_event(self) -> Dict[str, Any]:
        """An OpenLineage ``COMPLETE`` run event whose input dataset carries the ``dataQualityAssertions`` and
        ``dataQualityMetrics`` facets."""
        return json.loads(self._native.openlineage_json())

    def send_openlineage(self, target: str) -> None:
        """Write :meth:`openlineage_event` to a file, or POST it to an ``http://`` / ``https://`` URL."""
        self._native.send_openlineage(os.fspath(target))

    def attestation(self, signing_key: Union[PathLike, str, bytes], *, report_name: str = "report.json") -> str:
        """This scan's verdict as a signed in-toto attestation (DSSE envelope JSON, Ed25519). ``signing_key``: a
        PKCS#8 PEM file, or its PEM text. The statement names the report by the sha256 of :meth:`to_json`, which is
        what :meth:`write_json` writes; ``report_name`` is the name it is given there."""
        pem, origin = _pem(signing_key, "signing_key")
        data = self.summary.get("inputs", {}).get("data") or "data"
        return self._native._attestation(pem, origin, report_name, str(data))

    def _repr_html_(self) -> str:
        # Jupyter shows the page in an iframe of its own, so its style sheet cannot restyle the notebook.
        import html as _html

        return (
            '<iframe style="width: 100%; height: 720px; border: 1px solid #ccc" srcdoc="'
            + _html.escape(self.to_html(), quote=True)
            + '"></iframe>'
        )

    @property
    def not_run(self) -> Dict[str, str]:
        """Checks that were skipped (could not run on this data), with the reason: empty when the scan is complete."""
        return {k: c.get("reason", "") for k, c in self.checks.items() if c.get("run") == "skipped"}

    def raise_for_status(self, complete: bool = False) -> "Report":
        """Raise :class:`PoisoningDetected` when the verdict is ``"fail"``; with ``complete=True`` also raise
        :class:`ScanIncomplete` when a check was skipped (a WARN verdict from a scan that did not analyse
        everything). Return self otherwise."""
        _raise_for_status(self, self._native.summary_line, complete)
        return self

    @property
    def checks(self) -> Dict[str, Dict[str, Any]]:
        """Per check: ``count``, ``fraction``, ``status`` and ``run`` (``ran`` / ``skipped`` / ``disabled``, with a
        ``reason`` when it did not run)."""
        return dict(self.summary["checks"])

    @property
    def notes(self) -> List[str]:
        """What the scan decided by itself (columns left out of the features, a column that looks like the label)."""
        return list(self.summary.get("notes", []))

    def clean(self, data: Any) -> Any:
        """The rows of ``data`` (the data that was scanned) that were not flagged, as a pyarrow Table. Raises
        :class:`LineageError` when ``data`` is not exactly the scanned rows in their order."""
        return self._native._split(_data_arg(data, "data"))[0]

    def quarantine(self, data: Any) -> Any:
        """The flagged rows of ``data``, as a pyarrow Table."""
        return self._native._split(_data_arg(data, "data"))[1]

    def __repr__(self) -> str:
        return f"<poisonscan.Report {self._native.summary_line}>"


def scan(
    data: Any,
    *,
    label: Optional[str] = None,
    id: Optional[str] = None,
    reference: Any = None,
    contract: Union[None, Contract, PathLike] = None,
    policy: Union[None, PathLike, Mapping[str, Any]] = None,
    baseline: Union[None, Manifest, PathLike] = None,
    key: Union[None, str, bytes] = None,
    features: Union[None, str, Sequence[str]] = None,
    embedding: Optional[str] = None,
    pred_probs: Optional[str] = None,
    k: int = 10,
    outliers: bool = True,
    label_flips: bool = True,
    backdoors: bool = True,
    batch_size: int = 65536,
    allow_widening: bool = False,
    fitted: Optional["FittedScanner"] = None,
    html: Optional[PathLike] = None,
    audit_log: Optional[PathLike] = None,
    openlineage: Optional[str] = None,
    attest: Optional[PathLike] = None,
    signing_key: Union[None, PathLike, str, bytes] = None,
    chunk_rows: Optional[int] = None,
    scores: Optional[PathLike] = None,
    clean: Optional[PathLike] = None,
    quarantine: Optional[PathLike] = None,
    report: Optional[PathLike] = None,
) -> Any:
    """Scan ``data`` for poisoning and return a :class:`Report`.

    ``reference``: trusted data the contract and detectors are fitted on. ``contract``: a :class:`Contract` or its
    JSON path (instead of a reference). ``policy``: a TOML path or a dict like
    ``{"require": ["label"], "label": {"error_if": "> 1%"}}``; keys given replace only those keys of the built-in
    rule. ``baseline``: a :class:`Manifest` (or path) to diff against. ``key``: lineage secret (else
    ``POISONSCAN_KEY``). ``features``: column names (a single string is one column name). ``allow_widening``: accept
    integer data in a float column of the contract. ``fitted``: a :class:`FittedScanner` (instead of ``reference``).
    ``html``: write the HTML report there. ``audit_log``: append the audit events (JSON lines, ECS) there.
    ``openlineage``: write the OpenLineage run event to that file, or POST it to that http(s) URL. ``attest``: write
    the verdict there as a signed in-toto attestation (see :func:`attest`), with ``signing_key`` (an Ed25519 PKCS#8
    PEM file or its text). These are written after the scan; a failing verdict does not prevent them (it is what they
    report).

    ``chunk_rows``: scan data larger than memory ``chunk_rows`` rows at a time against one fit (``reference``,
    ``fitted`` or ``contract``), as ``poisonscan scan --chunk-rows`` does: the score rows go to ``scores``, the kept
    and flagged rows to ``clean`` / ``quarantine``, the merged report to ``report`` (files; all written or none), and
    a :class:`ChunkedReport` is returned (verdict, checks, fingerprint; ``docs/scale.md`` says what is per chunk).
    ``html``, ``audit_log``, ``openlineage``, ``attest`` and ``baseline`` need every row at once and are refused.
    """
    files = {"scores": scores, "clean": clean, "quarantine": quarantine, "report": report}
    if chunk_rows is None and any(v is not None for v in files.values()):
        given = ", ".join(k for k, v in files.items() if v is not None)
        raise ConfigError(f"{given}: files written by a scan in chunks; give chunk_rows (or use the Report's methods)")
    if chunk_rows is not None:
        whole = {"html": html, "audit_log": audit_log, "openlineage": openlineage, "attest": attest, "baseline": baseline}
        refused = [k for k, v in whole.items() if v is not None]
        if refused:
            raise ConfigError(f"{', '.join(refused)}: need every row at once; scan without chunk_rows")
        if not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1:
            raise ConfigError(f"chunk_rows: expected a positive number of rows, got {chunk_rows!r}")
    if (attest is None) != (signing_key is None):
        raise ConfigError("attest and signing_key go together: give both or neither")
    signing_pem = None if signing_key is None else _pem(signing_key, "signing_key")
    if sum(x is not None for x in (reference, contract, fitted)) > 1:
        raise ConfigError("give one of reference, contract or fitted, not several")
    if isinstance(features, str):
        features = [features]
    if features is not None:
        features = list(features)
        bad = [f for f in features if not isinstance(f, str)]
        if bad:
            raise ConfigError(f"features: expected column names (str), got {bad[0]!r}")
    if reference is not None and _is_duckdb(reference) and _is_duckdb(data):
        # One duckdb connection serves one open result at a time: read the (trusted, usually small) reference
        # first, then stream the data.
        import pyarrow as pa

        reference = pa.table(reference)
    contract_json = contract_origin = None
    if contract is not None:
        c = contract if isinstance(contract, Contract) else Contract.load(contract)
        contract_json, contract_origin = c.to_json(), c.origin
    policy_toml, policy_origin = _policy_toml(policy)
    if baseline is not None and not isinstance(baseline, Manifest):
        baseline = os.fspath(baseline)
    native = _native._scan(
        _data_arg(data, "data"),
        label=label,
        id=id,
        reference=None if reference is None else _data_arg(reference, "reference"),
        contract_json=contract_json,
        contract_origin=contract_origin,
        policy_toml=policy_toml,
        policy_origin=policy_origin,
        baseline=baseline,
        key=key,
        features=features,
        embedding=embedding,
        pred_probs=pred_probs,
        k=k,
        outliers=outliers,
        label_flips=label_flips,
        backdoors=backdoors,
        batch_size=batch_size,
        allow_widening=allow_widening,
        fitted=None if fitted is None else fitted._native,
        chunked=None
        if chunk_rows is None
        else {
            "rows": chunk_rows,
            **{k: None if v is None else os.fspath(v) for k, v in files.items()},
            "inputs": [os.fspath(x) for x in (data, reference) if isinstance(x, (str, os.PathLike))],
        },
    )
    if chunk_rows is not None:
        return ChunkedReport(json.loads(native), {k: v for k, v in files.items() if v is not None})
    result = Report(native)
    if html is not None:
        result.write_html(html)
    if audit_log is not None:
        result.append_audit_log(audit_log)
    if openlineage is not None:
        result.send_openlineage(openlineage)
    if attest is not None and signing_pem is not None:
        _write_text(attest, result._native._attestation(signing_pem[0], signing_pem[1], "report.json", _name(data)))
    return result


class FittedScanner:
    """A scanner fitted on trusted reference data: the contract, its calibration and the reference rows the
    detectors fit on, in one versioned, hashed file. Score any number of datasets or arriving batches with it."""

    def __init__(self, native: Any) -> None:
        self._native = native

    @classmethod
    def load(cls, path: PathLike) -> "FittedScanner":
        """Read a file written by :meth:`save` (raises ``SchemaError`` for a changed file or another version)."""
        return cls(_NativeFitted.load(os.fspath(path)))

    def save(self, path: PathLike) -> None:
        self._native.save(os.fspath(path))

    @property
    def hash(self) -> str:
        return self._native.hash

    @property
    def rows(self) -> int:
        return self._native.rows

    @property
    def label(self) -> Optional[str]:
        return self._native.label

    @property
    def contract(self) -> "Contract":
        return Contract(self._native.contract_json(), "<fitted>")

    def score(self, data: Any, **options: Any) -> Report:
        """Scan ``data`` with this fit: :func:`scan` with ``fitted=self`` (other options as there)."""
        return scan(data, fitted=self, **options)

    def __repr__(self) -> str:
        return repr(self._native)


def fit(
    reference: Any,
    *,
    label: Optional[str] = None,
    id: Optional[str] = None,
    features: Union[None, str, Sequence[str]] = None,
    embedding: Optional[str] = None,
) -> FittedScanner:
    """Fit a :class:`FittedScanner` on trusted reference data (as ``scan(..., reference=...)`` would)."""
    if isinstance(features, str):
        features = [features]
    return FittedScanner(
        _native._fit(
            _data_arg(reference, "reference"),
            label=label,
            id=id,
            features=None if features is None else list(features),
            embedding=embedding,
        )
    )


def profile(reference: Any, *, label: Optional[str] = None, id: Optional[str] = None) -> Contract:
    """Infer a :class:`Contract` from trusted data."""
    return Contract(_native._profile(_data_arg(reference, "reference"), label=label, id=id), "<profile>")


def lineage(data: Any, *, id: Optional[str] = None, key: Union[None, str, bytes] = None) -> Manifest:
    """Make a :class:`Manifest` (fingerprint, Merkle root, row digests) of ``data``."""
    return _native._lineage(_data_arg(data, "data"), id=id, key=key)


@dataclass(frozen=True)
class Diff:
    """Rows added, removed and changed since a manifest."""

    added: int
    removed: int
    changed: int
    status: List[str]
    removed_rows: List[int]
    by_id: bool


def diff(manifest: Union[Manifest, PathLike], data: Any, *, key: Union[None, str, bytes] = None) -> Diff:
    """Compare ``data`` with a trusted manifest (by id when the manifest has ids, else by content)."""
    m = manifest if isinstance(manifest, Manifest) else Manifest.load(os.fspath(manifest))
    status, removed, by_id = m._diff(_data_arg(data, "data"), key=key)
    return Diff(
        added=status.count("added"),
        removed=len(removed),
        changed=status.count("changed"),
        status=status,
        removed_rows=removed,
        by_id=by_id,
    )


def verify(manifest: Union[Manifest, PathLike], data: Any, *, key: Union[None, str, bytes] = None) -> bool:
    """True when ``data`` is exactly what ``manifest`` describes (raises on a damaged or forged manifest)."""
    m = manifest if isinstance(manifest, Manifest) else Manifest.load(os.fspath(manifest))
    ok, _problems = m._verify(_data_arg(data, "data"), key=key)
    return bool(ok)


def _pem(value: Union[PathLike, str, bytes], what: str) -> tuple:
    """PEM text and a name for errors: from PEM text (str or bytes) or a path to a PEM file."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace"), f"<{what}>"
    if isinstance(value, str) and "-----BEGIN" in value:
        return value, f"<{what}>"
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read(), path
        except OSError as e:
            raise ConfigError(f"{what}: cannot read {path}: {e}") from None
    raise ConfigError(f"{what}: expected a PEM file path, or PEM text (str or bytes), got {type(value).__name__}")


def _name(data: Any) -> str:
    return os.fspath(data) if isinstance(data, (str, os.PathLike)) else f"<{type(data).__name__}>"


def _write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (the core's writer: a temporary file beside it, renamed into place)."""
    _native._write_text(os.fspath(path), text)


def generate_signing_key(path: PathLike, *, public: Optional[PathLike] = None) -> str:
    """Make an Ed25519 key pair for attestations: the private key (PKCS#8 PEM, owner-only) at ``path``, the public
    key (SPKI PEM) at ``public`` (default: beside it, ``.pub.pem``). Never overwrites a file. Returns the key id
    (hex sha256 of the public key's SPKI DER)."""
    pub = os.fspath(public) if public is not None else os.fspath(_native._public_key_path(os.fspath(path)))
    return _native._generate_key(os.fspath(path), pub)


def attest(
    subject: Union["Report", PathLike],
    *,
    signing_key: Union[PathLike, str, bytes],
    output: Optional[PathLike] = None,
    key: Union[None, str, bytes] = None,
) -> str:
    """Sign ``subject`` as an in-toto Statement v1 in a DSSE envelope (Ed25519) and return the envelope's JSON;
    written to ``output`` too when given. ``subject``: a :class:`Report` (its verdict), or the path of a manifest
    file (:meth:`Manifest.save`, ``poisonscan lineage``) or of a scan report JSON. ``signing_key``: an Ed25519
    PKCS#8 PEM file or its text. ``key``: the secret of a keyed manifest, to check its seal before signing."""
    pem, origin = _pem(signing_key, "signing_key")
    if isinstance(subject, Report):
        text = subject.attestation(pem)
    elif isinstance(subject, Manifest):
        raise ConfigError(
            "attest: give the path of the saved manifest (Manifest.save): the attestation names the file by its sha256"
        )
    elif isinstance(subject, (str, os.PathLike)):
        text = _native._attest_file(os.fspath(subject), pem, origin, key=key)
    else:
        raise ConfigError(f"attest: expected a Report or a path, got {type(subject).__name__}")
    if output is not None:
        _write_text(output, text)
    return text


@dataclass(frozen=True)
class Attestation:
    """Outcome of :func:`verify_attestation`. True when verified."""

    verified: bool
    problems: List[str]
    key_id: str
    predicate_type: Optional[str]
    verdict: Optional[str]
    statement: Optional[Dict[str, Any]]

    def __bool__(self) -> bool:
        return self.verified


def verify_attestation(
    attestation: Union[PathLike, str],
    data: Any,
    *,
    public_key: Union[PathLike, str, bytes],
    key: Union[None, str, bytes] = None,
    require_pass: bool = False,
) -> Attestation:
    """Verify a signed attestation with the signer's public key (SPKI PEM file or text) against ``data``: the
    signature, the statement, then the data's fingerprint and schema. No secret is needed (``key`` only for an
    attestation of keyed digests). ``require_pass``: also require an attested scan verdict of pass or warn.
    ``attestation``: the envelope file, or its JSON text."""
    if isinstance(attestation, str) and attestation.lstrip().startswith("{"):
        text = attestation
    else:
        path = os.fspath(attestation)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            raise InputError(f"{path}: cannot read the attestation: {e}") from None
    pem, origin = _pem(public_key, "public_key")
    c = json.loads(
        _native._verify_attestation(text, _data_arg(data, "data"), pem, origin, key=key, require_pass=require_pass)
    )
    return Attestation(
        verified=bool(c["verified"]),
        problems=list(c["problems"]),
        key_id=c["key_id"],
        predicate_type=c.get("predicate_type"),
        verdict=c.get("verdict"),
        statement=c.get("statement"),
    )


# Partitioned scans and the batch monitor build on the names above.
from ._partitioned import ChunkedReport, Monitor, PartitionedReport  # noqa: E402
