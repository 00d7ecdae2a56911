//! Fuzz target: `salon_sfu::fuzz::signal_request` (see sfu/src/fuzz.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| salon_sfu::fuzz::signal_request(data));
