//! Signed, publicly verifiable attestations: an [in-toto Statement v1] about a dataset, in a [DSSE] envelope signed
//! with Ed25519.
//!
//! A keyed manifest seal proves integrity only to whoever holds the secret. An attestation is checked with the
//! signer's *public* key: a model card, an auditor or a downstream team can verify that a dataset is the one that was
//! fingerprinted (lineage predicate) or scanned with a given verdict (scan predicate), without any secret.
//!
//! - Subjects: the dataset, with digests `poisonscan-lthash16` (the order-independent fingerprint,
//!   [`crate::lineage::Fingerprint::lthash`]) and `poisonscan-merkle` (the ordered Merkle root); and the file the
//!   statement is about (the manifest, or the scan report) by its `sha256`, which is what generic in-toto tooling
//!   matches. Each subject's digests are digests of that one artifact, as the in-toto spec requires, so the manifest
//!   file's sha256 is a subject of its own rather than a digest of the dataset.
//! - Predicates: [`LINEAGE_PREDICATE`] (the manifest header and the file's sha256) and [`SCAN_PREDICATE`] (verdict,
//!   summary, the sha256 of the report JSON, tool version, contract and policy hashes, the dataset's fingerprint).
//! - Keys: PKCS#8 PEM private keys and SPKI PEM public keys (what `openssl genpkey -algorithm ed25519` writes, or
//!   [`generate_key`]). A key id is the hex sha256 of the public key's SPKI DER encoding.
//! - The signature covers DSSE's pre-authentication encoding ([`pae`]) of the payload type and the payload bytes;
//!   verification uses `verify_strict` (no malleable or small-order signatures).
//!
//! [in-toto Statement v1]: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
//! [DSSE]: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md

use crate::error::{Error, LineageError};
use crate::lineage::{self, Fingerprint, HashMode, Key, Manifest};
use crate::report::Report;
use crate::source::Source;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1 type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Predicate of a lineage attestation (a manifest).
pub const LINEAGE_PREDICATE: &str = "https://poisonscan.dev/attestation/lineage/v1";
/// Predicate of a scan attestation (a verdict).
pub const SCAN_PREDICATE: &str = "https://poisonscan.dev/attestation/scan/v1";
/// Subject digest name of the order-independent fingerprint.
pub const LTHASH_DIGEST: &str = "poisonscan-lthash16";
/// Subject digest name of the Merkle root.
pub const MERKLE_DIGEST: &str = "poisonscan-merkle";

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Type of the payload ([`PAYLOAD_TYPE`]).
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The statement's JSON bytes, base64 (standard alphabet, padded).
    pub payload: String,
    /// Signatures over [`pae`] of the payload type and the payload bytes.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Key id of the signer ([`key_id`]).
    pub keyid: String,
    /// Ed25519 signature, base64.
    pub sig: String,
}

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// [`LINEAGE_PREDICATE`] or [`SCAN_PREDICATE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The claim.
    pub predicate: serde_json::Value,
}

/// A subject: a name and digests of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Name (a path as given when the statement was made; not compared on verification).
    pub name: String,
    /// Digest algorithm name to lowercase hex digest.
    pub digest: BTreeMap<String, String>,
}

/// The dataset part of a predicate: what verification recomputes from the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestedDataset {
    /// Schema hash (column names and type families).
    pub schema_hash: String,
    /// Fingerprint.
    pub fingerprint: Fingerprint,
    /// Whether row digests were keyed (verification then needs the lineage secret).
    pub keyed: bool,
}

/// DSSE pre-authentication encoding: `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Key id of a public key: hex sha256 of its SPKI DER encoding.
pub fn key_id(key: &VerifyingKey) -> String {
    match key.to_public_key_der() {
        Ok(der) => hex::encode(Sha256::digest(der.as_bytes())),
        // Encoding a 32-byte Ed25519 key cannot fail; the raw key is hashed if it ever did.
        Err(_) => hex::encode(Sha256::digest(key.as_bytes())),
    }
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn key_error(origin: &str, what: &str, e: impl std::fmt::Display) -> LineageError {
    LineageError::Key(format!(
        "{origin}: not an Ed25519 {what} in PEM ({e}); make one with `poisonscan keygen -o KEY.pem` or \
         `openssl genpkey -algorithm ed25519`"
    ))
}

/// An Ed25519 private key from PKCS#8 PEM text (`origin` names it in errors).
pub fn signing_key_from_pem(pem: &str, origin: &str) -> Result<SigningKey, LineageError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| key_error(origin, "private key (PKCS#8)", e))
}

/// An Ed25519 public key from SPKI PEM text (`origin` names it in errors). A private key is refused: verifying
/// needs only the public half, and handing out the private one would be a mistake worth stopping.
pub fn public_key_from_pem(pem: &str, origin: &str) -> Result<VerifyingKey, LineageError> {
    if pem.contains("PRIVATE KEY") {
        return Err(LineageError::Key(format!(
            "{origin}: this is a private key; verify with the public key (`openssl pkey -in KEY.pem -pubout`, or \
             the .pub.pem that `poisonscan keygen` wrote)"
        )));
    }
    VerifyingKey::from_public_key_pem(pem.trim())
        .map_err(|e| key_error(origin, "public key (SPKI)", e))
}

fn read_text(path: &Path, what: &str) -> Result<String, LineageError> {
    std::fs::read_to_string(path)
        .map_err(|e| LineageError::Key(format!("{}: cannot read the {what}: {e}", path.display())))
}

/// Read an Ed25519 private key (PKCS#8 PEM file).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, LineageError> {
    signing_key_from_pem(
        &read_text(path, "signing key")?,
        &path.display().to_string(),
    )
}

/// Read an Ed25519 public key (SPKI PEM file).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, LineageError> {
    public_key_from_pem(&read_text(path, "public key")?, &path.display().to_string())
}

/// A new key pair as (private PKCS#8 PEM, public SPKI PEM, key id).
pub fn generate_key() -> Result<(String, String, String), LineageError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let private = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| LineageError::Key(format!("cannot encode the key: {e}")))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .map_err(|e| LineageError::Key(format!("cannot encode the key: {e}")))?;
    Ok((private.to_string(), public, key_id(&key.verifying_key())))
}

/// Where `poisonscan keygen -o KEY.pem` puts the public key: `KEY.pub.pem` beside it.
pub fn public_key_path(private: &Path) -> std::path::PathBuf {
    let stem = private
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".into());
    private.with_file_name(format!("{stem}.pub.pem"))
}

/// Generate a key pair and write it: the private key (PKCS#8 PEM, readable by its owner only) to `private`, the
/// public key (SPKI PEM) to `public`. Refuses to replace an existing file (a lost signing key cannot be recovered).
/// Returns the key id.
pub fn write_key_pair(private: &Path, public: &Path) -> Result<String, Error> {
    // Two spellings of one file (`k.pem`, `./k.pem`, a link) would write the public key over the private one.
    crate::output::check_outputs(&[], &[("private key", private), ("public key", public)])?;
    for p in [private, public] {
        if p.exists() {
            return Err(Error::Usage(format!(
                "{} exists: a key is never overwritten; remove it first or choose another path",
                p.display()
            )));
        }
    }
    let (sk, pk, id) = generate_key()?;
    crate::output::write_atomically(private, |mut f| {
        use std::io::Write;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
        }
        f.write_all(sk.as_bytes()).map_err(|e| e.to_string())
    })?;
    if let Err(e) = crate::output::write_text_atomically(public, &pk) {
        // Both or neither.
        let _ = std::fs::remove_file(private);
        return Err(e);
    }
    Ok(id)
}

/// Sign `statement` into a DSSE envelope.
pub fn sign(statement: &Statement, key: &SigningKey) -> Envelope {
    let payload = serde_json::to_vec(statement).unwrap_or_default();
    let sig = key.sign(&pae(PAYLOAD_TYPE, &payload));
    Envelope {
        payload_type: PAYLOAD_TYPE.to_string(),
        payload: B64.encode(&payload),
        signatures: vec![EnvelopeSignature {
            keyid: key_id(&key.verifying_key()),
            sig: B64.encode(sig.to_bytes()),
        }],
    }
}

impl Envelope {
    /// Pretty JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn dataset_subject(name: &str, fp: &Fingerprint) -> Subject {
    Subject {
        name: name.to_string(),
        digest: BTreeMap::from([
            (LTHASH_DIGEST.to_string(), fp.lthash.clone()),
            (MERKLE_DIGEST.to_string(), fp.merkle_root.clone()),
        ]),
    }
}

fn file_subject(name: &str, sha256: String) -> Subject {
    Subject {
        name: name.to_string(),
        digest: BTreeMap::from([("sha256".to_string(), sha256)]),
    }
}

/// The lineage statement of a manifest whose file bytes hash to `manifest_sha256` (named `manifest_name`).
pub fn lineage_statement(
    manifest: &Manifest,
    manifest_name: &str,
    manifest_sha256: String,
) -> Statement {
    let h = &manifest.header;
    let dataset = AttestedDataset {
        schema_hash: h.schema_hash.clone(),
        fingerprint: h.fingerprint.clone(),
        keyed: h.keyed,
    };
    Statement {
        statement_type: STATEMENT_TYPE.to_string(),
        subject: vec![
            dataset_subject(&h.source, &h.fingerprint),
            file_subject(manifest_name, manifest_sha256.clone()),
        ],
        predicate_type: LINEAGE_PREDICATE.to_string(),
        predicate: serde_json::json!({
            "tool": "poisonscan",
            "tool_version": crate::VERSION,
            "dataset": dataset,
            "manifest_sha256": manifest_sha256,
            "manifest": h,
        }),
    }
}

/// The scan statement of a report whose JSON text is `report_json` (named `report_name`). `keyed`: whether the
/// scan's row digests were keyed.
pub fn scan_statement(
    report: &Report,
    report_json: &str,
    report_name: &str,
    data_name: &str,
    keyed: bool,
) -> Statement {
    let report_sha256 = sha256_hex(report_json.as_bytes());
    let dataset = AttestedDataset {
        schema_hash: report.schema_hash.clone(),
        fingerprint: report.fingerprint.clone(),
        keyed,
    };
    let checks: BTreeMap<&str, &crate::policy::Status> = report
        .checks
        .iter()
        .map(|(k, c)| (k.as_str(), &c.status))
        .collect();
    Statement {
        statement_type: STATEMENT_TYPE.to_string(),
        subject: vec![
            dataset_subject(data_name, &report.fingerprint),
            file_subject(report_name, report_sha256.clone()),
        ],
        predicate_type: SCAN_PREDICATE.to_string(),
        predicate: serde_json::json!({
            "tool": "poisonscan",
            "tool_version": crate::VERSION,
            "dataset": dataset,
            "verdict": report.verdict,
            "summary": report.summary,
            "rows": report.rows,
            "flagged": report.flagged,
            "checks": checks,
            "report_version": report.report_version,
            "report_sha256": report_sha256,
            "contract_source": report.contract_source,
            "contract_hash": report.contract_hash,
            "policy_hash": report.policy_hash,
        }),
    }
}

/// The statement for a file given to `poisonscan attest`: a manifest (Parquet) or a scan report (JSON). `key`
/// checks a keyed manifest's seal before it is signed.
pub fn statement_for_file(path: &Path, key: Option<&Key>) -> Result<Statement, Error> {
    let bytes = std::fs::read(path).map_err(|e| cannot_read(path, e))?;
    let name = path.display().to_string();
    if bytes.starts_with(b"PAR1") {
        let m = Manifest::read(path)?;
        if m.header.keyed && key.is_none() {
            return Err(Error::Lineage(LineageError::Key(format!(
                "{name} is a keyed manifest: give its secret (--key-file or POISONSCAN_KEY) so that its seal is \
                 checked before it is signed"
            ))));
        }
        let problems = m.check_integrity(key)?;
        if !problems.is_empty() {
            return Err(Error::Lineage(LineageError::InvalidManifest {
                path: path.to_path_buf(),
                message: format!(
                    "refusing to sign a damaged manifest: {}",
                    problems.join("; ")
                ),
            }));
        }
        return Ok(lineage_statement(&m, &name, sha256_hex(&bytes)));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| not_attestable(path))?;
    let report: Report = serde_json::from_str(text).map_err(|e| {
        Error::Lineage(LineageError::Attestation(format!(
            "{name}: neither a poisonscan manifest (Parquet) nor a scan report of version {} (JSON): {e}",
            crate::report::REPORT_VERSION
        )))
    })?;
    let keyed = report
        .inputs
        .get("keyed")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let data = report
        .inputs
        .get("data")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("data")
        .to_string();
    // `text` is the file's bytes: the report sha256 names the file as it is.
    Ok(scan_statement(&report, text, &name, &data, keyed))
}

fn cannot_read(path: &Path, e: std::io::Error) -> Error {
    Error::Lineage(LineageError::Attestation(format!(
        "{}: cannot read: {e}",
        path.display()
    )))
}

/// The text of an attestation file (an input error naming the file when it cannot be read).
pub fn read_file(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| cannot_read(path, e))
}

fn not_attestable(path: &Path) -> Error {
    Error::Lineage(LineageError::Attestation(format!(
        "{}: neither a poisonscan manifest (Parquet) nor a scan report (JSON)",
        path.display()
    )))
}

/// Outcome of verifying an attestation against data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttestationCheck {
    /// Signature, statement and data all check out.
    pub verified: bool,
    /// Everything that does not (empty when verified).
    pub problems: Vec<String>,
    /// Key id of the public key used.
    pub key_id: String,
    /// Predicate type, once the signature checked out.
    pub predicate_type: Option<String>,
    /// The attested verdict of a scan statement (`pass`, `warn`, `fail`).
    pub verdict: Option<String>,
    /// The statement, once the signature checked out.
    pub statement: Option<Statement>,
    /// Fingerprint of the data as read now (when the data was read).
    pub data_fingerprint: Option<Fingerprint>,
}

impl AttestationCheck {
    /// Also require an attested scan verdict of pass or warn (a lineage statement records none); `flag` names the
    /// option in the reason.
    pub fn require_pass(&mut self, flag: &str) {
        if !self.verified {
            return;
        }
        match self.verdict.as_deref() {
            Some("pass") | Some("warn") => {}
            Some(v) => self
                .problems
                .push(format!("{flag}: the attested verdict is {v}")),
            None => self.problems.push(format!(
                "{flag}: this is a lineage attestation, it records no scan verdict"
            )),
        }
        self.verified = self.problems.is_empty();
    }
}

/// Check the envelope's signature by `key` and return its statement, or why it cannot be trusted. Nothing of the
/// payload is interpreted before the signature checks out.
pub fn open_envelope(text: &str, key: &VerifyingKey) -> Result<Statement, String> {
    let env: Envelope =
        serde_json::from_str(text).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(format!(
            "payload type '{}' is not '{PAYLOAD_TYPE}'",
            env.payload_type
        ));
    }
    let payload = B64
        .decode(env.payload.as_bytes())
        .map_err(|e| format!("the payload is not base64: {e}"))?;
    let want = key_id(key);
    let mine: Vec<&EnvelopeSignature> = env.signatures.iter().filter(|s| s.keyid == want).collect();
    if mine.is_empty() {
        let ids: Vec<&str> = env.signatures.iter().map(|s| s.keyid.as_str()).collect();
        return Err(format!(
            "no signature by the public key given (key id {want}); signed by: {}",
            if ids.is_empty() {
                "nobody".to_string()
            } else {
                ids.join(", ")
            }
        ));
    }
    let message = pae(&env.payload_type, &payload);
    let good = mine.iter().any(|s| {
        B64.decode(s.sig.as_bytes())
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .is_some_and(|sig| key.verify_strict(&message, &sig).is_ok())
    });
    if !good {
        return Err(format!(
            "the signature by key {want} does not verify: the envelope was altered or signed by another key"
        ));
    }
    let st: Statement = serde_json::from_slice(&payload)
        .map_err(|e| format!("the signed payload is not an in-toto statement: {e}"))?;
    if st.statement_type != STATEMENT_TYPE {
        return Err(format!(
            "statement type '{}' is not '{STATEMENT_TYPE}'",
            st.statement_type
        ));
    }
    if st.predicate_type != LINEAGE_PREDICATE && st.predicate_type != SCAN_PREDICATE {
        return Err(format!(
            "predicate type '{}' is not one poisonscan makes ({LINEAGE_PREDICATE}, {SCAN_PREDICATE})",
            st.predicate_type
        ));
    }
    Ok(st)
}

/// The dataset subject's digests and the predicate's dataset of a signed statement.
fn attested(st: &Statement) -> Result<(String, String, AttestedDataset), String> {
    let subject = st
        .subject
        .iter()
        .find(|s| s.digest.contains_key(LTHASH_DIGEST))
        .ok_or_else(|| format!("no subject has a {LTHASH_DIGEST} digest"))?;
    let digest = |name: &str| {
        subject
            .digest
            .get(name)
            .cloned()
            .ok_or_else(|| format!("the dataset subject has no {name} digest"))
    };
    let dataset: AttestedDataset = st
        .predicate
        .get("dataset")
        .cloned()
        .ok_or_else(|| "the predicate has no dataset".to_string())
        .and_then(|d| {
            serde_json::from_value(d).map_err(|e| format!("the predicate's dataset: {e}"))
        })?;
    Ok((digest(LTHASH_DIGEST)?, digest(MERKLE_DIGEST)?, dataset))
}

/// Verify an attestation (envelope JSON text) with `public` against `data`: the signature, the statement, then the
/// data's fingerprint and schema against the signed subject. `lineage_key` is needed only for an attestation of
/// keyed digests. The data is read only once the signature checked out.
pub fn verify_attestation(
    text: &str,
    public: &VerifyingKey,
    data: &mut Source,
    lineage_key: Option<&Key>,
) -> Result<AttestationCheck, Error> {
    let mut check = AttestationCheck {
        verified: false,
        problems: Vec::new(),
        key_id: key_id(public),
        predicate_type: None,
        verdict: None,
        statement: None,
        data_fingerprint: None,
    };
    let st = match open_envelope(text, public) {
        Ok(st) => st,
        Err(p) => {
            check.problems.push(p);
            return Ok(check);
        }
    };
    check.predicate_type = Some(st.predicate_type.clone());
    check.verdict = st
        .predicate
        .get("verdict")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let (lthash, merkle, dataset) = match attested(&st) {
        Ok(a) => a,
        Err(p) => {
            check.problems.push(p);
            check.statement = Some(st);
            return Ok(check);
        }
    };
    check.statement = Some(st);
    if lthash != dataset.fingerprint.lthash || merkle != dataset.fingerprint.merkle_root {
        check
            .problems
            .push("the subject's digests differ from the predicate's fingerprint".into());
        return Ok(check);
    }
    let mode = if dataset.keyed {
        match lineage_key {
            Some(k) => k.mode(),
            None => return Err(Error::Lineage(LineageError::Key(
                "the attestation is of keyed row digests: give the lineage secret (--key-file or \
                     POISONSCAN_KEY) to recompute them"
                    .into(),
            ))),
        }
    } else {
        HashMode::Plain
    };
    let d = lineage::digest_source(data, None, mode)?;
    let fp = d.state.finish()?;
    if lineage::encode::schema_hash(&d.schema) != dataset.schema_hash {
        check
            .problems
            .push("the data's columns or types differ from the attested schema".into());
    }
    if fp.rows != dataset.fingerprint.rows {
        check.problems.push(format!(
            "the data has {} rows; the attestation says {}",
            fp.rows, dataset.fingerprint.rows
        ));
    }
    if fp.lthash != lthash {
        check.problems.push(format!(
            "row contents differ from the attested {LTHASH_DIGEST} digest"
        ));
    } else if fp.merkle_root != merkle {
        check.problems.push(
            "same rows in a different order (the Merkle root differs, the LtHash matches)".into(),
        );
    }
    check.data_fingerprint = Some(fp);
    check.verified = check.problems.is_empty();
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // protocol.md: PAE("http://example.com/HelloWorld", "hello world")
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn generated_keys_round_trip_through_pem() {
        let (private, public, id) = generate_key().unwrap();
        let sk = signing_key_from_pem(&private, "k").unwrap();
        let pk = public_key_from_pem(&public, "k.pub").unwrap();
        assert_eq!(sk.verifying_key(), pk);
        assert_eq!(key_id(&pk), id);
        assert_eq!(id.len(), 64);
        assert!(public_key_from_pem(&private, "k").is_err());
        assert!(signing_key_from_pem(&public, "k.pub").is_err());
    }

    #[test]
    fn a_statement_opens_only_with_its_key() {
        let (private, public, _) = generate_key().unwrap();
        let (_, other, _) = generate_key().unwrap();
        let sk = signing_key_from_pem(&private, "k").unwrap();
        let st = Statement {
            statement_type: STATEMENT_TYPE.into(),
            subject: vec![],
            predicate_type: LINEAGE_PREDICATE.into(),
            predicate: serde_json::json!({}),
        };
        let env = sign(&st, &sk).to_json();
        let pk = public_key_from_pem(&public, "p").unwrap();
        assert_eq!(open_envelope(&env, &pk).unwrap(), st);
        let err = open_envelope(&env, &public_key_from_pem(&other, "o").unwrap()).unwrap_err();
        assert!(err.contains("no signature by the public key"), "{err}");
    }
}
