//! `cargo +nightly fuzz run peer_frame`: see `verity_core::fuzzing::peer_frame` for what it promises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verity_core::fuzzing::peer_frame(data));
