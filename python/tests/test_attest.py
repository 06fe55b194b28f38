"""Signed attestations from Python: made by poisonscan, checked by poisonscan and, independently, by pyca/cryptography
(DSSE pre-authentication encoding + Ed25519), so the envelope is what the spec says and not only self-consistent."""

import base64
import json
import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import poisonscan
from poisonscan import ConfigError, InputError


def _pae(payload_type: bytes, payload: bytes) -> bytes:
    # DSSE protocol.md, written out independently of the Rust implementation.
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)


def test_lineage_attestation_round_trip_and_independent_signature_check(fixtures, tmp_path):
    from cryptography.hazmat.primitives import hashes, serialization

    key_id = poisonscan.generate_signing_key(tmp_path / "k.pem")
    assert stat.S_IMODE(os.stat(tmp_path / "k.pem").st_mode) == 0o600
    pub = tmp_path / "k.pub.pem"
    with pytest.raises(ConfigError, match="never overwritten"):
        poisonscan.generate_signing_key(tmp_path / "k.pem")

    m = poisonscan.lineage(fixtures / "train_clean.parquet", id="id")
    m.save(tmp_path / "m.parquet")
    text = poisonscan.attest(tmp_path / "m.parquet", signing_key=tmp_path / "k.pem", output=tmp_path / "m.att.json")
    assert (tmp_path / "m.att.json").read_text() == text

    env = json.loads(text)
    assert env["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(env["payload"])
    statement = json.loads(payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://poisonscan.dev/attestation/lineage/v1"
    assert statement["subject"][0]["digest"]["poisonscan-lthash16"] == m.fingerprint
    assert statement["subject"][0]["digest"]["poisonscan-merkle"] == m.merkle_root
    import hashlib

    manifest_sha = hashlib.sha256((tmp_path / "m.parquet").read_bytes()).hexdigest()
    assert statement["subject"][1]["digest"]["sha256"] == manifest_sha

    # Independent check: the key id is sha256 of the SPKI DER, the signature is Ed25519 over the DSSE PAE.
    public = serialization.load_pem_public_key(pub.read_bytes())
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    assert env["signatures"][0]["keyid"] == digest.finalize().hex() == key_id
    public.verify(base64.b64decode(env["signatures"][0]["sig"]), _pae(env["payloadType"].encode(), payload))

    ok = poisonscan.verify_attestation(tmp_path / "m.att.json", fixtures / "train_clean.parquet", public_key=pub)
    assert ok and ok.verified and ok.problems == [] and ok.key_id == key_id
    assert ok.predicate_type.endswith("/lineage/v1") and ok.verdict is None
    # From an Arrow table too, and from the envelope text and PEM text.
    table = pq.read_table(fixtures / "train_clean.parquet")
    assert poisonscan.verify_attestation(text, table, public_key=pub.read_text())
    # Other data: not verified, with the reason.
    bad = poisonscan.verify_attestation(text, fixtures / "train_poisoned.parquet", public_key=pub)
    assert not bad and any("row contents differ" in p for p in bad.problems)
    # require_pass: a lineage attestation records no verdict.
    assert not poisonscan.verify_attestation(text, table, public_key=pub, require_pass=True)


def test_tampered_or_foreign_attestations_are_rejected(fixtures, tmp_path):
    poisonscan.generate_signing_key(tmp_path / "a.pem")
    poisonscan.generate_signing_key(tmp_path / "b.pem")
    poisonscan.lineage(fixtures / "train_clean.parquet").save(tmp_path / "m.parquet")
    text = poisonscan.attest(tmp_path / "m.parquet", signing_key=tmp_path / "a.pem")
    data = fixtures / "train_clean.parquet"
    pub_a, pub_b = tmp_path / "a.pub.pem", tmp_path / "b.pub.pem"
    assert poisonscan.verify_attestation(text, data, public_key=pub_a)

    env = json.loads(text)
    statement = json.loads(base64.b64decode(env["payload"]))

    def forged(**changes):
        e = json.loads(text)
        e.update(changes)
        return json.dumps(e)

    def resigned_payload(st):
        return base64.b64encode(json.dumps(st).encode()).decode()

    other = dict(statement)
    other["subject"] = [dict(statement["subject"][0], digest={"poisonscan-lthash16": "0" * 64})]
    cases = {
        "payload": forged(payload=resigned_payload(other)),
        "predicate type": forged(
            payload=resigned_payload(dict(statement, predicateType="https://slsa.dev/provenance/v1"))
        ),
        "signature": forged(
            signatures=[dict(env["signatures"][0], sig=base64.b64encode(b"\x00" * 64).decode())]
        ),
        "key id": forged(signatures=[dict(env["signatures"][0], keyid="ab" * 32)]),
        "payload type": forged(payloadType="application/json"),
        "not an envelope": "{}",
    }
    for what, t in cases.items():
        r = poisonscan.verify_attestation(t, data, public_key=pub_a)
        assert not r.verified, what
        assert r.problems, what
    # Verified with another key: rejected.
    r = poisonscan.verify_attestation(text, data, public_key=pub_b)
    assert not r and "no signature by the public key" in r.problems[0]
    # A private key is refused as a public key; a missing attestation file is an input error.
    with pytest.raises(ConfigError, match="private key"):
        poisonscan.verify_attestation(text, data, public_key=tmp_path / "a.pem")
    with pytest.raises(InputError):
        poisonscan.verify_attestation(tmp_path / "missing.json", data, public_key=pub_a)
    with pytest.raises(ConfigError, match="PEM"):
        poisonscan.attest(tmp_path / "m.parquet", signing_key=b"not a key")


def test_scan_verdicts_are_signed_with_their_report(fixtures, tmp_path):
    poisonscan.generate_signing_key(tmp_path / "k.pem")
    pub = tmp_path / "k.pub.pem"
    with pytest.raises(ConfigError, match="go together"):
        poisonscan.scan(fixtures / "train_clean.parquet", attest=tmp_path / "x.json")
    for data, verdict in (("train_clean.parquet", "pass"), ("train_poisoned.parquet", "fail")):
        report = poisonscan.scan(
            fixtures / data,
            label="label",
            id="id",
            reference=fixtures / "train_reference.parquet",
            attest=tmp_path / f"{data}.att.json",
            signing_key=tmp_path / "k.pem",
        )
        assert report.verdict == verdict
        report.write_json(tmp_path / "r.json")
        env = json.loads((tmp_path / f"{data}.att.json").read_text())
        statement = json.loads(base64.b64decode(env["payload"]))
        import hashlib

        sha = hashlib.sha256((tmp_path / "r.json").read_bytes()).hexdigest()
        assert statement["predicate"]["report_sha256"] == sha
        assert statement["predicate"]["verdict"] == verdict
        assert statement["predicate"]["policy_hash"] == report.summary["policy_hash"]
        assert statement["predicate"]["contract_hash"] == report.summary["contract_hash"]
        c = poisonscan.verify_attestation(tmp_path / f"{data}.att.json", fixtures / data, public_key=pub)
        assert c.verified and c.verdict == verdict
        gate = poisonscan.verify_attestation(
            tmp_path / f"{data}.att.json", fixtures / data, public_key=pub, require_pass=True
        )
        assert gate.verified == (verdict == "pass")
        # Report.attestation and attest(report) sign the same statement.
        again = json.loads(poisonscan.attest(report, signing_key=tmp_path / "k.pem"))
        assert json.loads(base64.b64decode(again["payload"]))["predicate"] == statement["predicate"]
        # The attested verdict belongs to this data only.
        other = "train_poisoned.parquet" if data == "train_clean.parquet" else "train_clean.parquet"
        assert not poisonscan.verify_attestation(tmp_path / f"{data}.att.json", fixtures / other, public_key=pub)


def test_attested_table_from_memory(tmp_path):
    poisonscan.generate_signing_key(tmp_path / "k.pem")
    t = pa.table({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "c"]})
    poisonscan.lineage(t).save(tmp_path / "m.parquet")
    text = poisonscan.attest(tmp_path / "m.parquet", signing_key=(tmp_path / "k.pem").read_bytes())
    assert poisonscan.verify_attestation(text, t, public_key=tmp_path / "k.pub.pem")
    assert not poisonscan.verify_attestation(text, t.slice(0, 2), public_key=tmp_path / "k.pub.pem")
