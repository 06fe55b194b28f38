#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: poisonscan_fuzz::init(), |data: &[u8]| {
    poisonscan_fuzz::read_source("data.csv", data);
});
