//! Fuzz target: `salon::fuzz::config` (see bridge/src/fuzz.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| salon::fuzz::config(data));
