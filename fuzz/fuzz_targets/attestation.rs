#![no_main]
use libfuzzer_sys::fuzz_target;

// A fixed key: fixtures/fuzz/seeds/attestation.json is a lineage attestation it signed (tests/attest.rs checks
// that it opens), so the fuzzer starts from a payload that gets past the signature check.
fn key() -> ed25519_dalek::VerifyingKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key()
}

fuzz_target!(init: poisonscan_fuzz::init(), |data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // Envelope parsing and signature checking, and both PEM readers, on arbitrary text: errors, never a panic.
        let _ = poisonscan::attest::open_envelope(text, &key());
        let _ = poisonscan::attest::public_key_from_pem(text, "fuzz");
        let _ = poisonscan::attest::signing_key_from_pem(text, "fuzz");
    }
});
