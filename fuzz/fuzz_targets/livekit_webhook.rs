//! Fuzz target: `salon::fuzz::livekit_webhook` (see bridge/src/fuzz.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| salon::fuzz::livekit_webhook(data));
