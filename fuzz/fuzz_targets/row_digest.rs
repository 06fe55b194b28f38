#![no_main]
//! Differential: the AVX2 lanes (`lineage::lanes::hash_many`) against the blake3 crate, for inputs of every length
//! the lanes take (and longer ones, which they hand to blake3), plain and keyed.
use libfuzzer_sys::fuzz_target;
use poisonscan::lineage::{lanes, HashMode};

fuzz_target!(|data: &[u8]| {
    if data.len() < 33 {
        return;
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&data[..32]);
    let rest = &data[32..];
    // Cut the rest into up to 24 inputs at lengths taken from the data itself (0..=1024 each, cycling).
    let mut inputs: Vec<&[u8]> = Vec::new();
    let mut at = 0usize;
    let mut i = 0usize;
    while at <= rest.len() && inputs.len() < 24 {
        let want = (rest[i % rest.len()] as usize * 4 + i * 37) % 1025;
        let end = (at + want).min(rest.len());
        inputs.push(&rest[at..end]);
        at = end + 1;
        i += 1;
    }
    for mode in [HashMode::Plain, HashMode::Keyed(key)] {
        let mut out = vec![[0u8; 32]; inputs.len()];
        lanes::hash_many(&mode, &inputs, &mut out);
        for (input, got) in inputs.iter().zip(&out) {
            let want = match mode {
                HashMode::Plain => blake3::hash(input),
                HashMode::Keyed(k) => blake3::keyed_hash(&k, input),
            };
            assert_eq!(got, want.as_bytes(), "len {}", input.len());
        }
    }
});
