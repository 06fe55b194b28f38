//! Signed attestations (in-toto Statement v1 in a DSSE envelope, Ed25519): every field of the envelope and of the
//! statement tampered with is rejected, another key's signature is rejected, changed data is rejected, and the CLI
//! gives the documented exit codes (including keys made by OpenSSL).

mod common;

use assert_cmd::Command;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::*;
use ed25519_dalek::{SigningKey, VerifyingKey};
use poisonscan::attest::{self, AttestationCheck, Envelope, Statement};
use poisonscan::Source;
use predicates::prelude::*;
use std::path::Path;

struct Keys {
    sk: SigningKey,
    pk: VerifyingKey,
}

fn keys() -> Keys {
    let (private, public, _) = attest::generate_key().unwrap();
    Keys {
        sk: attest::signing_key_from_pem(&private, "k").unwrap(),
        pk: attest::public_key_from_pem(&public, "k.pub").unwrap(),
    }
}

/// A manifest of the clean training fixture written to `dir`, and its lineage statement.
fn lineage_statement(dir: &Path) -> Statement {
    let mut src = Source::path(fixture("train_clean.parquet")).unwrap();
    let m = poisonscan::lineage::make_manifest(&mut src, Some("id"), None).unwrap();
    let path = dir.join("m.parquet");
    m.write(&path).unwrap();
    attest::statement_for_file(&path, None).unwrap()
}

fn check(text: &str, pk: &VerifyingKey, data: &Path) -> AttestationCheck {
    let mut src = Source::path(data).unwrap();
    attest::verify_attestation(text, pk, &mut src, None).unwrap()
}

fn rejected(text: &str, pk: &VerifyingKey, why: &str) {
    let c = check(text, pk, &fixture("train_clean.parquet"));
    assert!(!c.verified, "accepted: {text}");
    assert!(
        c.problems.iter().any(|p| p.contains(why)),
        "expected '{why}', got {:?}",
        c.problems
    );
}

fn envelope(text: &str) -> Envelope {
    serde_json::from_str(text).unwrap()
}

fn with_payload(env: &Envelope, payload: &[u8]) -> String {
    let mut e = env.clone();
    e.payload = B64.encode(payload);
    e.to_json()
}

/// Every leaf of a JSON value, as a path of keys and indices, with a changed value for it.
fn tampered_leaves(v: &serde_json::Value) -> Vec<serde_json::Value> {
    fn walk(
        root: &serde_json::Value,
        path: Vec<serde_json::Value>,
        v: &serde_json::Value,
        out: &mut Vec<serde_json::Value>,
    ) {
        use serde_json::Value as V;
        let changed = match v {
            V::Object(m) => {
                for (k, x) in m {
                    let mut p = path.clone();
                    p.push(V::String(k.clone()));
                    walk(root, p, x, out);
                }
                return;
            }
            V::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(V::from(i));
                    walk(root, p, x, out);
                }
                return;
            }
            V::String(s) => {
                let mut c: Vec<char> = s.chars().collect();
                match c.first_mut() {
                    Some(ch) => *ch = if *ch == 'a' { 'b' } else { 'a' },
                    None => c.push('x'),
                }
                V::String(c.into_iter().collect())
            }
            V::Number(n) => V::from(n.as_f64().unwrap_or(0.0) + 1.0),
            V::Bool(b) => V::Bool(!b),
            V::Null => V::String("x".into()),
        };
        let mut t = root.clone();
        let mut at = &mut t;
        for p in &path {
            at = match p {
                V::String(k) => &mut at[k.as_str()],
                V::Number(i) => &mut at[i.as_u64().unwrap() as usize],
                _ => unreachable!(),
            };
        }
        *at = changed;
        out.push(t);
    }
    let mut out = Vec::new();
    walk(v, Vec::new(), v, &mut out);
    out
}

#[test]
fn an_untouched_attestation_verifies_and_every_tampered_statement_field_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let st = lineage_statement(dir.path());
    let text = attest::sign(&st, &k.sk).to_json();
    let c = check(&text, &k.pk, &fixture("train_clean.parquet"));
    assert!(c.verified, "{:?}", c.problems);
    assert_eq!(c.predicate_type.as_deref(), Some(attest::LINEAGE_PREDICATE));

    // Each leaf of the signed statement changed, the signature kept: subject names and digests, predicate type,
    // every predicate field. The statement is signed as the exact bytes the variants are serialized like, so that
    // each variant differs from the signed payload in that one value only.
    let value = serde_json::to_value(&st).unwrap();
    let bytes = serde_json::to_vec(&value).unwrap();
    let mut env = envelope(&text);
    env.payload = B64.encode(&bytes);
    env.signatures[0].sig = B64.encode(
        ed25519_dalek::Signer::sign(&k.sk, &attest::pae(attest::PAYLOAD_TYPE, &bytes)).to_bytes(),
    );
    assert!(check(&env.to_json(), &k.pk, &fixture("train_clean.parquet")).verified);
    let variants = tampered_leaves(&value);
    assert!(variants.len() > 25, "{} leaves", variants.len());
    for t in variants {
        let forged = with_payload(&env, &serde_json::to_vec(&t).unwrap());
        rejected(&forged, &k.pk, "does not verify");
    }
}

#[test]
fn every_tampered_envelope_field_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let st = lineage_statement(dir.path());
    let env = attest::sign(&st, &k.sk);
    let payload = B64.decode(&env.payload).unwrap();

    // A payload byte: every 97th byte flipped, one at a time.
    for i in (0..payload.len()).step_by(97) {
        let mut p = payload.clone();
        p[i] ^= 0x01;
        rejected(&with_payload(&env, &p), &k.pk, "does not verify");
    }
    // A payload character of the base64 text.
    let mut e = env.clone();
    let mut chars: Vec<char> = e.payload.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    e.payload = chars.into_iter().collect();
    rejected(&e.to_json(), &k.pk, "does not verify");
    // Payload that is not base64.
    let mut e = env.clone();
    e.payload.insert(3, '*');
    rejected(&e.to_json(), &k.pk, "not base64");
    // A signature byte: each of the 64.
    let sig = B64.decode(&env.signatures[0].sig).unwrap();
    for i in 0..sig.len() {
        let mut s = sig.clone();
        s[i] ^= 0x80;
        let mut e = env.clone();
        e.signatures[0].sig = B64.encode(&s);
        rejected(&e.to_json(), &k.pk, "does not verify");
    }
    // A truncated signature.
    let mut e = env.clone();
    e.signatures[0].sig = B64.encode(&sig[..63]);
    rejected(&e.to_json(), &k.pk, "does not verify");
    // The key id.
    let mut e = env.clone();
    e.signatures[0].keyid = "0".repeat(64);
    rejected(&e.to_json(), &k.pk, "no signature by the public key");
    // No signature at all.
    let mut e = env.clone();
    e.signatures.clear();
    rejected(&e.to_json(), &k.pk, "signed by: nobody");
    // The payload type (DSSE signs it too).
    let mut e = env.clone();
    e.payload_type = "application/json".into();
    rejected(&e.to_json(), &k.pk, "payload type");
    // Not an envelope.
    rejected("{\"hello\": 1}", &k.pk, "not a DSSE envelope");
    rejected("", &k.pk, "not a DSSE envelope");
}

#[test]
fn another_keys_signature_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (keys(), keys());
    let st = lineage_statement(dir.path());
    let by_b = attest::sign(&st, &b.sk);
    // Under its own key id: not a signature by A.
    rejected(&by_b.to_json(), &a.pk, "no signature by the public key");
    // Relabelled with A's key id: the signature does not verify under A's key.
    let mut relabelled = by_b.clone();
    relabelled.signatures[0].keyid = attest::key_id(&a.pk);
    rejected(&relabelled.to_json(), &a.pk, "does not verify");
    // B's signature next to A's: verifies for A and for B, each by its own signature.
    let mut both = attest::sign(&st, &a.sk);
    both.signatures.push(by_b.signatures[0].clone());
    assert!(check(&both.to_json(), &a.pk, &fixture("train_clean.parquet")).verified);
    assert!(check(&both.to_json(), &b.pk, &fixture("train_clean.parquet")).verified);
    // A third key verifies neither.
    rejected(
        &both.to_json(),
        &keys().pk,
        "no signature by the public key",
    );
}

#[test]
fn a_validly_signed_statement_about_other_data_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let st = lineage_statement(dir.path());
    // The signer's own statement with a wrong subject digest (a signing bug or a confused pipeline).
    let mut wrong = st.clone();
    wrong.subject[0]
        .digest
        .insert(attest::LTHASH_DIGEST.into(), "00".repeat(32));
    rejected(
        &attest::sign(&wrong, &k.sk).to_json(),
        &k.pk,
        "subject's digests differ",
    );
    // A predicate type poisonscan does not make, properly signed.
    let mut other = st.clone();
    other.predicate_type = "https://slsa.dev/provenance/v1".into();
    rejected(
        &attest::sign(&other, &k.sk).to_json(),
        &k.pk,
        "predicate type",
    );
    // Another statement type, properly signed.
    let mut old = st.clone();
    old.statement_type = "https://in-toto.io/Statement/v0.1".into();
    rejected(
        &attest::sign(&old, &k.sk).to_json(),
        &k.pk,
        "statement type",
    );
}

#[test]
fn changed_data_is_rejected_with_what_changed() {
    use arrow::array::UInt32Array;
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let text = attest::sign(&lineage_statement(dir.path()), &k.sk).to_json();
    let batches = read_parquet(&fixture("train_clean.parquet"));
    let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let n = all.num_rows() as u32;
    let take = |idx: Vec<u32>, name: &str| {
        let idx = UInt32Array::from(idx);
        let cols = all
            .columns()
            .iter()
            .map(|c| arrow::compute::take(c, &idx, None).unwrap())
            .collect();
        let b = arrow::array::RecordBatch::try_new(all.schema(), cols).unwrap();
        let p = dir.path().join(name);
        write_parquet(&p, &b);
        p
    };
    // One row replaced by a copy of its neighbour: same row count, other contents.
    let mut idx: Vec<u32> = (0..n).collect();
    idx[5] = 6;
    let c = check(&text, &k.pk, &take(idx, "changed.parquet"));
    assert!(!c.verified);
    assert!(
        c.problems[0].contains("row contents differ"),
        "{:?}",
        c.problems
    );
    // The same rows in another order.
    let c = check(
        &text,
        &k.pk,
        &take((0..n).rev().collect(), "reversed.parquet"),
    );
    assert!(!c.verified);
    assert!(
        c.problems[0].contains("different order"),
        "{:?}",
        c.problems
    );
    // A row dropped.
    let c = check(&text, &k.pk, &take((1..n).collect(), "dropped.parquet"));
    assert!(!c.verified);
    assert!(
        c.problems.iter().any(|p| p.contains("1999 rows")),
        "{:?}",
        c.problems
    );
    // The same rows rewritten (other file bytes, other row groups): still the attested dataset.
    let c = check(&text, &k.pk, &take((0..n).collect(), "rewritten.parquet"));
    assert!(c.verified, "{:?}", c.problems);
}

#[test]
fn the_statement_names_the_manifest_file_by_sha256_and_the_dataset_by_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let st = lineage_statement(dir.path());
    let bytes = std::fs::read(dir.path().join("m.parquet")).unwrap();
    let m = poisonscan::lineage::Manifest::read(&dir.path().join("m.parquet")).unwrap();
    assert_eq!(st.statement_type, "https://in-toto.io/Statement/v1");
    assert_eq!(st.subject.len(), 2);
    assert_eq!(
        st.subject[0].digest[attest::LTHASH_DIGEST],
        m.header.fingerprint.lthash
    );
    assert_eq!(
        st.subject[0].digest[attest::MERKLE_DIGEST],
        m.header.fingerprint.merkle_root
    );
    let sha = attest::sha256_hex(&bytes);
    assert_eq!(st.subject[1].digest["sha256"], sha);
    assert_eq!(st.predicate["manifest_sha256"], sha);
    assert_eq!(st.predicate["manifest"]["seal"], m.header.seal);
    assert_eq!(st.predicate["tool_version"], poisonscan::VERSION);
}

fn cli() -> Command {
    Command::cargo_bin("poisonscan").unwrap()
}

#[test]
fn cli_signs_and_verifies_manifests_and_scan_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli()
        .args(["keygen", "-o"])
        .arg(d.join("k.pem"))
        .assert()
        .code(0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("k.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A key is never overwritten.
    cli()
        .args(["keygen", "-o"])
        .arg(d.join("k.pem"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("never overwritten"));
    // Another spelling of the private key's path for the public key is refused before anything is written (it
    // would have written the public key over the private one).
    cli()
        .current_dir(d)
        .args(["keygen", "-o", "same.pem", "--public", "./same.pem"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is also the private key output"));
    assert!(!d.join("same.pem").exists());
    cli()
        .arg("lineage")
        .arg(fixture("train_clean.parquet"))
        .arg("-o")
        .arg(d.join("m.parquet"))
        .assert()
        .code(0);
    cli()
        .arg("attest")
        .arg(d.join("m.parquet"))
        .arg("--signing-key")
        .arg(d.join("k.pem"))
        .arg("-o")
        .arg(d.join("m.att.json"))
        .assert()
        .code(0);
    let verify = |att: &str, data: &str| {
        let mut c = cli();
        c.args(["verify", "--public-key"])
            .arg(d.join("k.pub.pem"))
            .arg(d.join(att))
            .arg(fixture(data));
        c
    };
    verify("m.att.json", "train_clean.parquet")
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("(lineage, key").and(predicate::str::contains("VERIFIED")),
        );
    verify("m.att.json", "train_poisoned.parquet")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("NOT VERIFIED"))
        .stderr(predicate::str::contains("row contents differ"));
    // The private key is refused for verifying (exit 2), a missing attestation is an input error (exit 3).
    cli()
        .args(["verify", "--public-key"])
        .arg(d.join("k.pem"))
        .arg(d.join("m.att.json"))
        .arg(fixture("train_clean.parquet"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("private key"));
    verify("missing.json", "train_clean.parquet")
        .assert()
        .code(3);
    // A file that is not an envelope is not verified (exit 1).
    std::fs::write(d.join("junk.json"), "not json").unwrap();
    verify("junk.json", "train_clean.parquet")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not a DSSE envelope"));
    // Something that is neither a manifest nor a report cannot be attested (exit 3), nothing is written.
    cli()
        .arg("attest")
        .arg(fixture("clean.csv"))
        .arg("--signing-key")
        .arg(d.join("k.pem"))
        .arg("-o")
        .arg(d.join("bad.att.json"))
        .assert()
        .code(3);
    assert!(!d.join("bad.att.json").exists());

    // Scan verdicts: the clean twin (PASS) and the poisoned data (FAIL), each signed with its report.
    for (data, reference, code) in [
        ("train_clean.parquet", "train_reference.parquet", 0),
        ("train_poisoned.parquet", "train_reference.parquet", 1),
    ] {
        let att = format!("{data}.att.json");
        cli()
            .args(["scan", "-q", "--label", "label", "--id", "id"])
            .arg(fixture(data))
            .arg("--reference")
            .arg(fixture(reference))
            .arg("--report")
            .arg(d.join("r.json"))
            .arg("--attest")
            .arg(d.join(&att))
            .arg("--signing-key")
            .arg(d.join("k.pem"))
            .assert()
            .code(code);
        // The predicate names the report written by its sha256.
        let env: Envelope =
            serde_json::from_str(&std::fs::read_to_string(d.join(&att)).unwrap()).unwrap();
        let st: Statement = serde_json::from_slice(&B64.decode(&env.payload).unwrap()).unwrap();
        let report = std::fs::read(d.join("r.json")).unwrap();
        assert_eq!(st.predicate["report_sha256"], attest::sha256_hex(&report));
        assert_eq!(st.subject[1].digest["sha256"], attest::sha256_hex(&report));
        let verdict = if code == 0 { "pass" } else { "fail" };
        assert_eq!(st.predicate["verdict"], verdict);
        verify(&att, data)
            .assert()
            .code(0)
            .stdout(predicate::str::contains(format!(
                "scan verdict {}",
                verdict.to_uppercase()
            )));
        // --require-pass turns an authentic FAIL verdict into a failed check.
        verify(&att, data).arg("--require-pass").assert().code(code);
        // The report file signed after the fact verifies the same way.
        cli()
            .arg("attest")
            .arg(d.join("r.json"))
            .arg("--signing-key")
            .arg(d.join("k.pem"))
            .arg("-o")
            .arg(d.join("r.att.json"))
            .assert()
            .code(0);
        verify("r.att.json", data).assert().code(0);
    }
    // A lineage attestation records no verdict: --require-pass does not accept it.
    verify("m.att.json", "train_clean.parquet")
        .arg("--require-pass")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("records no scan verdict"));
    // --attest without a key is a usage error before anything is read.
    cli()
        .arg("scan")
        .arg(fixture("train_clean.parquet"))
        .arg("--attest")
        .arg(d.join("x.json"))
        .assert()
        .code(2);
}

#[test]
fn keys_made_by_openssl_sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(d)
            .status()
    };
    match openssl(&["genpkey", "-algorithm", "ed25519", "-out", "o.pem"]) {
        Ok(s) if s.success() => {}
        // No OpenSSL on this machine: the PEM parsing is covered by the generated keys.
        _ => return,
    }
    assert!(
        openssl(&["pkey", "-in", "o.pem", "-pubout", "-out", "o.pub"])
            .unwrap()
            .success()
    );
    let sk = attest::read_signing_key(&d.join("o.pem")).unwrap();
    let pk = attest::read_public_key(&d.join("o.pub")).unwrap();
    assert_eq!(sk.verifying_key(), pk);
    let st = lineage_statement(d);
    let text = attest::sign(&st, &sk).to_json();
    assert!(check(&text, &pk, &fixture("train_clean.parquet")).verified);
    // OpenSSL's view of the key id input: the SPKI DER of the public key.
    let der = std::process::Command::new("openssl")
        .args(["pkey", "-pubin", "-in", "o.pub", "-outform", "DER"])
        .current_dir(d)
        .output()
        .unwrap()
        .stdout;
    assert_eq!(attest::key_id(&pk), attest::sha256_hex(&der));
}

#[test]
fn the_fuzzing_seed_is_an_envelope_the_fuzz_targets_key_signed() {
    // fuzz/fuzz_targets/attestation.rs verifies with this key; a seed that stopped opening would leave the
    // fuzzer outside the statement parser.
    let key = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    let seed = std::fs::read_to_string(fixture("fuzz/seeds/attestation.json")).unwrap();
    let st = attest::open_envelope(&seed, &key).unwrap();
    assert_eq!(st.predicate_type, attest::LINEAGE_PREDICATE);
    let pem = std::fs::read_to_string(fixture("fuzz/seeds/public_key.pem")).unwrap();
    assert_eq!(attest::public_key_from_pem(&pem, "seed").unwrap(), key);
}
