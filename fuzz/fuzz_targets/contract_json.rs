#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: poisonscan_fuzz::init(), |data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = poisonscan::contract::Contract::from_json(text, std::path::Path::new("c.json")) {
            // A contract that parses must also build a checker or refuse with a typed error.
            let schema = arrow::datatypes::Schema::empty();
            let _ = poisonscan::contract::ContractChecker::new(&c, &std::sync::Arc::new(schema), "fuzz");
        }
    }
});
