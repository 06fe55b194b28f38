"""Outputs pipelines and people consume: the HTML report (also in a real browser), audit events, OpenLineage run
events (validated against the vendored published schemas, and POSTed to a local HTTP server), and scores whose id
column joins back to the data without casts."""

import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import poisonscan

from conftest import FIXTURES, truth_rows


def poisoned_scan(**kw):
    return poisonscan.scan(
        FIXTURES / "train_poisoned.parquet",
        label="label",
        id="id",
        reference=FIXTURES / "train_reference.parquet",
        **kw,
    )


def test_html_report_in_python_matches_the_scan(tmp_path):
    r = poisoned_scan(html=tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert page == r.to_html()
    assert "<h1>poisonscan: FAIL</h1>" in page
    assert r.summary["summary"] in page
    frame = r._repr_html_()
    assert frame.startswith("<iframe") and "srcdoc=" in frame and "&lt;h1&gt;poisonscan: FAIL" in frame
    clean = poisonscan.scan(
        FIXTURES / "train_clean.parquet", label="label", id="id", reference=FIXTURES / "train_reference.parquet"
    )
    assert "<h1>poisonscan: PASS</h1>" in clean.to_html()
    assert "No row was flagged." in clean.to_html()


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
        pytest.skip("chromium not installed")
    return exe


def test_html_report_renders_in_headless_chromium_without_console_errors(tmp_path):
    exe = _chromium()
    r = poisoned_scan()
    page = tmp_path / "report.html"
    r.write_html(page)
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
            "--log-level=0", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    # The script ran (sortable tables wired) and the key elements are in the rendered DOM.
    assert 'data-ready="1"' in dom.stdout
    for element in ['id="verdict"', 'id="checks"', 'id="flagged-rows"', 'id="hist-label"', 'id="pca"',
                    'id="backdoor-0"', 'id="drift-table"', 'id="lineage"', "<svg"]:
        assert element in dom.stdout, element
    shots = Path(os.environ.get("POISONSCAN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "report-poisoned.png"
    done = subprocess.run(base + ["--window-size=1300,2600", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


def test_audit_log_appends_the_verdict_and_each_failing_check(tmp_path):
    log = tmp_path / "audit.jsonl"
    r = poisoned_scan(audit_log=log)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    failing = {k for k, c in r.checks.items() if c["status"] != "pass"}
    assert len(lines) == 1 + len(failing)
    verdict = lines[0]
    assert verdict["event"]["kind"] == "alert" and verdict["event"]["outcome"] == "failure"
    assert verdict["event"]["type"] == ["denied"] and verdict["event"]["action"] == "poisonscan-scan"
    assert verdict["file"]["hash"]["blake3"] == r.summary["fingerprint"]["lthash"]
    assert verdict["labels"]["verdict"] == "fail" and verdict["poisonscan"]["rows"] == r.summary["rows"]
    for e in lines[1:]:
        name = e["labels"]["check"]
        assert name in failing
        assert e["rule"]["id"] == f"poisonscan.{name}" and e["rule"]["name"] == name
        assert e["poisonscan"]["count"] == r.checks[name]["count"]
        assert e["@timestamp"].endswith("Z")
    # A passing scan appends one plain event; earlier lines stay.
    poisonscan.scan(FIXTURES / "train_clean.parquet", label="label", id="id",
                    reference=FIXTURES / "train_reference.parquet", audit_log=log)
    after = [json.loads(x) for x in log.read_text().splitlines()]
    assert after[: len(lines)] == lines and len(after) == len(lines) + 1
    assert after[-1]["event"]["kind"] == "event" and after[-1]["event"]["outcome"] == "success"


def _validate_openlineage(event):
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource

    folder = FIXTURES / "openlineage"
    base = json.loads((folder / "OpenLineage.json").read_text())
    # The facets point at the base facet under `$defs` (and once without the `#`); this version of the run event
    # schema names them `definitions`.
    with_defs = dict(base, **{"$defs": base["definitions"]})
    registry = Registry().with_resources(
        [
            ("https://openlineage.io/spec/1-0-2/OpenLineage.json", Resource.from_contents(with_defs)),
            ("https://openlineage.io/spec/1-0-1/OpenLineage.json/$defs/InputDatasetFacet",
             Resource.from_contents(dict(base["definitions"]["BaseFacet"], **{"$schema": base["$schema"]}))),
        ]
    )
    jsonschema.Draft202012Validator(base, registry=registry).validate(event)
    facets = event["inputs"][0]["inputFacets"]
    for name, file in [("dataQualityAssertions", "DataQualityAssertionsDatasetFacet.json"),
                       ("dataQualityMetrics", "DataQualityMetricsInputDatasetFacet.json")]:
        schema = json.loads((folder / file).read_text())
        jsonschema.Draft202012Validator(schema, registry=registry).validate({name: facets[name]})
        # A facet missing what its schema requires is refused: the validation can fail.
        broken = {k: v for k, v in facets[name].items() if k not in ("assertions", "columnMetrics", "_producer")}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schema, registry=registry).validate({name: broken})


def test_openlineage_event_carries_assertions_and_metrics_and_validates(tmp_path):
    out = tmp_path / "ol.json"
    r = poisoned_scan(openlineage=str(out))
    event = json.loads(out.read_text())
    _validate_openlineage(event)
    assert event["eventType"] == "COMPLETE" and event["job"] == {"namespace": "poisonscan", "name": "scan"}
    facets = event["inputs"][0]["inputFacets"]
    assertions = {a["name"]: a for a in facets["dataQualityAssertions"]["assertions"]}
    assert set(assertions) == set(r.checks)
    for name, c in r.checks.items():
        assert assertions[name]["success"] == (c["status"] == "pass" and c["run"] == "ran")
        assert assertions[name]["failures"] == c["count"]
    metrics = facets["dataQualityMetrics"]
    assert metrics["rowCount"] == r.summary["rows"]
    data = pq.read_table(FIXTURES / "train_poisoned.parquet")
    for col in ["f0", "label", "id"]:
        values = data.column(col).to_pylist()
        m = metrics["columnMetrics"][col]
        assert m["nullCount"] == 0 and m["count"] == len(values)
        assert m["min"] == min(values) and m["max"] == max(values)
        assert m["distinctCount"] == len(set(values))


def test_openlineage_event_is_posted_to_an_http_endpoint():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            n = int(self.headers["Content-Length"])
            received.append((self.path, self.headers["Content-Type"], self.rfile.read(n)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/v1/lineage"
        poisoned_scan(openlineage=url)
    finally:
        server.shutdown()
    assert len(received) == 1
    path, ctype, body = received[0]
    assert path == "/api/v1/lineage" and ctype == "application/json"
    _validate_openlineage(json.loads(body))


def test_an_unreachable_openlineage_endpoint_is_a_typed_error():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(poisonscan.PoisonscanError, match="OpenLineage endpoint not reached"):
        poisoned_scan(openlineage=f"http://127.0.0.1:{port}/api/v1/lineage")


def test_scores_keep_the_id_type_and_join_back_from_pandas_polars_and_duckdb():
    data = pq.read_table(FIXTURES / "train_poisoned.parquet")
    r = poisoned_scan()
    scores = r.scores
    assert scores.schema.field("id").type == data.schema.field("id").type == pa.int64()
    truth = truth_rows(FIXTURES / "train_poisoned.truth.csv")

    df = data.to_pandas().merge(scores.to_pandas(), on="id")
    assert len(df) == data.num_rows
    assert (df.loc[df["flagged"], "id"].isin(list(truth))).mean() > 0.9

    import polars as pl

    joined = pl.from_arrow(data).join(pl.from_arrow(scores), on="id")
    assert joined.height == data.num_rows

    import duckdb

    con = duckdb.connect()
    con.register("d", data)
    con.register("s", scores)
    n = con.execute("select count(*) from d join s using (id) where s.flagged").fetchone()[0]
    assert n == r.summary["flagged"]
    # A string id stays a string.
    text = data.set_column(0, "id", pa.array([f"r{i}" for i in range(data.num_rows)]))
    r2 = poisonscan.scan(text, label="label", id="id")
    assert r2.scores.schema.field("id").type == pa.string()
