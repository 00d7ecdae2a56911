//! Fuzz target: `salon::fuzz::e2ee_frame` (see bridge/src/fuzz.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| salon::fuzz::e2ee_frame(data));
