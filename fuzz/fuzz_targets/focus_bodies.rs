//! Fuzz target: `salon::fuzz::focus_bodies` (see bridge/src/fuzz.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| salon::fuzz::focus_bodies(data));
