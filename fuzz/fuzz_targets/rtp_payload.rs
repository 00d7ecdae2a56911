//! Fuzz target: `salon_sfu::fuzz::rtp_payload` (see sfu/src/fuzz.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| salon_sfu::fuzz::rtp_payload(data));
