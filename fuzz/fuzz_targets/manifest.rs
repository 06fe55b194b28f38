#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: poisonscan_fuzz::init(), |data: &[u8]| {
    let (_dir, path) = poisonscan_fuzz::file_with("m.parquet", data);
    if let Ok(m) = poisonscan::lineage::Manifest::read(&path) {
        let _ = m.check_integrity(None);
    }
});
