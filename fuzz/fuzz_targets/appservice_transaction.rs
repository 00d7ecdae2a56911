//! Fuzz target: `salon::fuzz::appservice_transaction` (see bridge/src/fuzz.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| salon::fuzz::appservice_transaction(data));
