#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: poisonscan_fuzz::init(), |data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = poisonscan::policy::Policy::from_toml(text, std::path::Path::new("p.toml")) {
            for check in ["contract", "label", "outlier", "drift"] {
                let _ = p.evaluate(check, 3, 100);
            }
            let _ = p.hash();
        }
    }
});
