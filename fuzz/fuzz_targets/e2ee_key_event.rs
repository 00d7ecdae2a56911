//! Fuzz target: `salon::fuzz::e2ee_key_event` (see bridge/src/fuzz.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| salon::fuzz::e2ee_key_event(data));
